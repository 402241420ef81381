/**
 * Monitoring with prometheus-operator: a ServiceMonitor for every metrics
 * endpoint, the alerts that matter for this stack (PrometheusRules) and a
 * small Grafana dashboard per component (ConfigMaps for Grafana's sidecar).
 *
 * Every expression selects series by the labels prometheus-operator gives
 * them: `namespace`, and `job`, which is the name of the scraped Service for
 * a ServiceMonitor and `<namespace>/<name>` for a PodMonitor. Metric names
 * were read from the programs' sources at the pinned versions (Synapse
 * 1.163.2, LiveKit 1.13.11, postgres_exporter 0.18.1, CloudNativePG 1.30.0,
 * coturn's prom_server.c) and from kube-state-metrics' and cert-manager's
 * documentation; test/e2e/alerts.e2e.test.ts proves each alert with promtool.
 */
import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { PrometheusRule, PrometheusRuleSpecGroupsRulesExpr, ServiceMonitor } from '../imports/monitoring.coreos.com';
import { labels, selectorLabels } from './common';
import { relayPortPairs } from './config';

export interface ScrapeTarget {
  /** app.kubernetes.io/name of the Service (and of what it selects). */
  readonly name: string;
  readonly namespace: string;
  /** The Service port's name. */
  readonly port: string;
  readonly path: string;
}

/**
 * What the alerts and dashboards watch. Components are named by the Service
 * Prometheus scrapes them through (prometheus-operator's `job`).
 */
export interface MonitoredStack {
  /** Synapse's processes: the main process's Service first, then each running worker type's; the router's Service with workers. */
  readonly synapse: { readonly namespace: string; readonly services: readonly string[]; readonly router?: string };
  /**
   * PostgreSQL's metrics: postgres_exporter beside the StatefulSet (a Service), with its claim (`claim`, for the
   * databases' growth against it),
   * or CloudNativePG's instances (a PodMonitor). @default - none (an external database)
   */
  readonly postgres?:
    | { readonly source: 'postgres-exporter'; readonly namespace: string; readonly service: string; readonly claim?: string }
    | {
        readonly source: 'cloudnative-pg';
        readonly namespace: string;
        readonly podMonitor: string;
        /** The instances' claims, an RE2 pattern (one per instance). @default - no alerts on the databases' growth */
        readonly claim?: string;
        /** WAL archiving and daily base backups through the barman-cloud plugin. @default false */
        readonly backup?: boolean;
      };
  /** redis_exporter beside Redis. @default - none (Redis off) */
  readonly redis?: { readonly namespace: string; readonly service: string };
  /** hostNetwork false: LiveKit's pods have no host ports (livekit.hostNetwork). @default true */
  readonly livekit: { readonly namespace: string; readonly service: string; readonly replicas: number; readonly hostNetwork?: boolean };
  /** coturn's limits on concurrent allocations: total-quota (0: none) and the relay range (its namespace and Service are the `coturn` prop's). */
  readonly turn: { readonly relayPorts: { readonly min: number; readonly max: number }; readonly totalQuota: number };
  /** The backup CronJobs (kube-state-metrics' series) and the backup volume's claim (the kubelet's). @default - none (backups off) */
  readonly backups?: { readonly namespace: string; readonly cronJobs: readonly string[]; readonly claim: string };
  /**
   * The data's claims, watched for free space (the kubelet's volume stats): names, or RE2 patterns
   * such as CloudNativePG's postgres-[0-9]+ (a claim per instance).
   */
  readonly volumes: { readonly namespace: string; readonly claims: readonly string[] };
  /** Where cert-manager keeps the stack's Certificates (cert-manager's own metrics). */
  readonly certificateNamespaces: readonly string[];
}

export interface MonitoringProps extends ChartProps {
  readonly targets: readonly ScrapeTarget[];
  /** Labels the cluster's Prometheus selects ServiceMonitors and PrometheusRules by. */
  readonly serviceMonitorLabels: Record<string, string>;
  readonly interval: string;
  /** coturn's metrics: it has no Service of its own, so one is made for scraping. */
  readonly coturn?: { readonly namespace: string; readonly port: number };
  /** What the alerts and dashboards watch. @default - no alerts and no dashboards */
  readonly stack?: MonitoredStack;
  /** One PrometheusRule per component. @default false */
  readonly alerts?: boolean;
  /** A Grafana dashboard per component: ConfigMaps with these labels, which Grafana's sidecar loads. @default - no dashboards */
  readonly dashboardLabels?: Record<string, string>;
}

/** The Service made for scraping coturn (its job label). */
export const COTURN_METRICS_SERVICE = 'coturn-metrics';

/** ServiceMonitors for every metrics endpoint of the stack, and its alerts and dashboards. */
export class MonitoringChart extends Chart {
  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id, props);
    if ((props.alerts === true || props.dashboardLabels !== undefined) && props.stack === undefined) {
      throw new Error('MonitoringChart: alerts and dashboards need `stack` (what they watch)');
    }
    if (props.dashboardLabels !== undefined && Object.keys(props.dashboardLabels).length === 0) {
      throw new Error(
        'monitoring.dashboardLabels is empty: Grafana\'s sidecar finds dashboards by a label (e.g. grafana_dashboard: "1"); set monitoring.dashboards: false to render none',
      );
    }
    const targets = [...props.targets];
    if (props.coturn) {
      const component = { name: 'coturn', component: 'turn' };
      // Headless: its endpoints are the TURN nodes' addresses (host network).
      new k8s.KubeService(this, 'coturn-metrics', {
        metadata: { name: COTURN_METRICS_SERVICE, namespace: props.coturn.namespace, labels: labels(component) },
        spec: {
          clusterIp: 'None',
          selector: selectorLabels(component),
          ports: [{ name: 'metrics', port: props.coturn.port, targetPort: k8s.IntOrString.fromNumber(props.coturn.port) }],
        },
      });
      targets.push({ name: 'coturn', namespace: props.coturn.namespace, port: 'metrics', path: '/metrics' });
    }
    for (const t of targets) {
      new ServiceMonitor(this, `${t.namespace}-${t.name}`, {
        metadata: { name: t.name, namespace: t.namespace, labels: { ...labels({ name: t.name, component: 'monitoring' }), ...props.serviceMonitorLabels } },
        spec: {
          selector: { matchLabels: { 'app.kubernetes.io/name': t.name } },
          namespaceSelector: { matchNames: [t.namespace] },
          endpoints: [{ port: t.port, path: t.path, interval: props.interval }],
        },
      });
    }
    if (props.stack === undefined) return;
    const watched = watchedComponents(props.stack, props.coturn?.namespace);
    if (props.alerts === true) {
      for (const c of watched) {
        // One per component, in the component's namespace: each can be read, silenced and reviewed on its own,
        // and a Prometheus that confines rules to their namespace (enforcedNamespaceLabel) still evaluates them.
        new PrometheusRule(this, `${c.name}-rules`, {
          metadata: { name: c.name, namespace: c.namespace, labels: { ...labels({ name: c.name, component: 'monitoring' }), ...props.serviceMonitorLabels } },
          spec: {
            groups: [
              {
                name: `kudo-${c.name}`,
                rules: c.alerts.map((a) => ({
                  alert: a.alert,
                  expr: PrometheusRuleSpecGroupsRulesExpr.fromString(a.expr),
                  for: a.for,
                  labels: { severity: a.severity },
                  annotations: { summary: a.summary, description: a.description, runbook: a.runbook },
                })),
              },
            ],
          },
        });
      }
    }
    if (props.dashboardLabels !== undefined) {
      for (const c of watched.filter((w) => w.dashboard !== undefined)) {
        new k8s.KubeConfigMap(this, `${c.name}-dashboard`, {
          metadata: {
            name: `grafana-dashboard-${c.name}`,
            namespace: c.namespace,
            labels: { ...labels({ name: c.name, component: 'monitoring' }), ...props.dashboardLabels },
          },
          data: { [`kudo-${c.name}.json`]: dashboardJson(`kudo-${c.name}`, c.dashboard!.title, c.dashboard!.panels) },
        });
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------

interface Alert {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  /** critical: users are affected now (page); warning: they will be unless someone acts (ticket). */
  readonly severity: 'critical' | 'warning';
  /** Templates use only {{ $labels.NAME }}, {{ printf "%.0f" $value }}, {{ printf "%.1f" $value }} and {{ $value | humanizeDuration }}. */
  readonly summary: string;
  readonly description: string;
  readonly runbook: string;
}

interface Panel {
  readonly title: string;
  readonly kind?: 'timeseries' | 'stat';
  readonly unit?: string;
  readonly description?: string;
  /** [legend, PromQL]; `$__rate_interval` is Grafana's. */
  readonly queries: readonly (readonly [string, string])[];
}

interface Watched {
  /** The PrometheusRule's and the dashboard's name. */
  readonly name: string;
  readonly namespace: string;
  readonly alerts: readonly Alert[];
  readonly dashboard?: { readonly title: string; readonly panels: readonly Panel[] };
}

/** A label matcher set, e.g. {namespace="kudo", job="synapse"}; a value "~re" matches a regex, "!v" excludes v. */
function sel(matchers: Record<string, string>): string {
  const matcher = ([k, v]: [string, string]) => {
    if (v.startsWith('~')) return `${k}=~"${v.slice(1)}"`;
    if (v.startsWith('!')) return `${k}!="${v.slice(1)}"`;
    return `${k}="${v}"`;
  };
  return `{${Object.entries(matchers).map(matcher).join(', ')}}`;
}

/** A matcher value for sel(): exactly one of these names (a regex when there are several). */
const anyOf = (names: readonly string[]) => (names.length === 1 ? names[0] : `~${names.map((n) => n.replace(/[.]/g, '\\\\.')).join('|')}`);

/**
 * Fires per job (namespace, job) when no target of it is up: every scrape
 * fails, or there is no target at all (no pod, or no ready endpoint) —
 * `up` then does not exist, which only absent() sees.
 */
function noTargetUp(namespace: string, jobs: readonly string[]): string {
  return [`sum by (namespace, job) (up${sel({ namespace, job: anyOf(jobs) })}) == 0`, ...jobs.map((job) => `or absent(up${sel({ namespace, job })})`)].join('\n');
}

/** PostgreSQL refuses non-superusers when this few connections are left: half of what Kudo keeps free beyond Synapse's pools. */
const POSTGRES_SPARE_CONNECTIONS = 5;
/** Daily backups: a day, plus two hours for a run that finishes later than the one before it (CronJob startingDeadlineSeconds is 1 h). */
const BACKUP_MAX_AGE_SECONDS = 26 * 3600;
/** Warn when a volume has less than this share free (percent). */
const VOLUME_FREE_PERCENT = 10;
/** Page when a volume fills within this many hours at the pace of the last VOLUME_PACE_WINDOW. */
const VOLUME_FULL_HOURS = 24;
const VOLUME_PACE_WINDOW = '6h';
/** Warn when the databases take more than this share of PostgreSQL's volume (percent): WAL and VACUUM need the rest. */
const DATABASE_VOLUME_PERCENT = 80;
/** Warn when the databases fill PostgreSQL's volume within this many days at the pace of the last VOLUME_PACE_WINDOW. */
const DATABASE_FULL_DAYS = 7;
/**
 * Warn when dead rows stay over this share of a table's rows (percent). Autovacuum starts at 20 % of the live rows
 * (autovacuum_vacuum_scale_factor), about 17 % of all: a third is well past where it should have run.
 */
const TABLE_DEAD_PERCENT = 33;
/** ...and number at least this many: a small table's dead rows take little space, and VACUUM frees them quickly. */
const TABLE_DEAD_ROWS_MIN = 100_000;
/** Warn this far below the limit: time to add a node or ports before calls fail. */
const TURN_WARNING_SHARE = 0.8;
/** cert-manager renews Let's Encrypt's 90-day certificates 30 days before expiry. */
const CERT_WARNING_DAYS = 21;
const CERT_CRITICAL_DAYS = 7;
const DAY = 86400;

/**
 * Concurrent allocations a coturn process always grants: the lower of
 * total-quota (the config refuses 0, coturn's "no limit") and the even/odd
 * port pairs of its relay range (config.ts relayPortPairs).
 */
export function turnAllocationLimit(turn: MonitoredStack['turn']): number {
  return Math.min(turn.totalQuota, relayPortPairs(turn.relayPorts.min, turn.relayPorts.max));
}

function watchedComponents(s: MonitoredStack, coturnNamespace?: string): Watched[] {
  const out: Watched[] = [synapse(s.synapse)];
  if (s.postgres !== undefined) out.push(postgres(s.postgres, s.backups));
  if (s.redis !== undefined) out.push(redis(s.redis));
  if (s.backups !== undefined) out.push(backups(s.backups));
  out.push(volumes(s.volumes));
  out.push(livekit(s.livekit));
  if (coturnNamespace !== undefined) out.push(coturn(coturnNamespace, s.turn));
  out.push(certificates(s.synapse.namespace, s.certificateNamespaces));
  return out;
}

function synapse(p: MonitoredStack['synapse']): Watched {
  const ns = p.namespace;
  const jobs = sel({ namespace: ns, job: anyOf(p.services) });
  const send = sel({ namespace: ns, job: anyOf(p.services), servlet: 'RoomSendEventRestServlet' });
  const persist = sel({ namespace: ns, job: anyOf(p.services), desc: 'persist_events' });
  const alerts: Alert[] = [
    {
      alert: 'SynapseDown',
      expr: noTargetUp(ns, p.services),
      for: '5m',
      severity: 'critical',
      summary: 'Synapse process {{ $labels.job }} is down',
      description:
        'No {{ $labels.job }} pod in {{ $labels.namespace }} has answered Prometheus for 5 minutes (none running, or its metrics ' +
        'listener unreachable). Without the main process nobody can log in, sync or send; without a worker type, what it serves fails.',
      runbook:
        'kubectl -n {{ $labels.namespace }} get pods -l app.kubernetes.io/name={{ $labels.job }}; ' +
        'kubectl -n {{ $labels.namespace }} logs -l app.kubernetes.io/name={{ $labels.job }} --tail=100. ' +
        'Synapse refuses to start when PostgreSQL is unreachable or its config is invalid: look for PostgresDown and the first error in the log.',
    },
    {
      // The client's view: sending a message waits for the event to be persisted.
      alert: 'SynapseEventSendSlow',
      expr: `histogram_quantile(0.9, sum by (namespace, le) (rate(synapse_http_server_response_time_seconds_bucket${send}[10m]))) > 2.5`,
      for: '15m',
      severity: 'warning',
      summary: 'Sending a message takes over 2.5 s for more than 10 % of requests',
      description:
        'For 15 minutes, the 90th percentile of PUT /rooms/…/send in {{ $labels.namespace }} has been above 2.5 s (it is normally well ' +
        'under 0.5 s). Sending waits for the event to be persisted: the database or the event persister is the bottleneck.',
      runbook:
        "Compare with SynapseEventPersistenceSlow and PostgreSQL's dashboard (connections, transactions). Look for long-running queries: " +
        'kubectl -n {{ $labels.namespace }} exec postgres-0 -c postgres -- psql -U synapse -c "select pid, now() - xact_start, state, left(query, 80) ' +
        'from pg_stat_activity order by 2 desc nulls last limit 10". A large room\'s state resolution also shows here (Synapse logs).',
    },
    {
      // The database's view: the transaction that writes a batch of events (up to 100, one room).
      alert: 'SynapseEventPersistenceSlow',
      expr:
        `sum by (namespace, job) (rate(synapse_storage_transaction_time_sum_total${persist}[10m]))\n` +
        `/ sum by (namespace, job) (rate(synapse_storage_transaction_time_count_total${persist}[10m])) > 1`,
      for: '15m',
      severity: 'warning',
      summary: 'Synapse\'s event-persisting transactions take {{ printf "%.1f" $value }} s on average',
      description:
        'For 15 minutes the persist_events transactions of {{ $labels.job }} in {{ $labels.namespace }} have averaged over 1 s; ' +
        'a healthy PostgreSQL commits one in tens of milliseconds. Messages are delayed for everyone.',
      runbook:
        'Check PostgreSQL: disk latency, locks (pg_locks), autovacuum on the events tables, connections (PostgresConnectionsNearMax). ' +
        'kubectl -n {{ $labels.namespace }} logs -l app.kubernetes.io/name={{ $labels.job }} | grep -i "persist".',
    },
  ];
  if (p.router !== undefined) {
    alerts.push({
      alert: 'SynapseRouterDown',
      expr: noTargetUp(ns, [p.router]),
      for: '5m',
      severity: 'critical',
      summary: 'The Synapse router (HAProxy) is down',
      description:
        'No {{ $labels.job }} pod in {{ $labels.namespace }} has answered Prometheus for 5 minutes. Every client and federation ' +
        'request reaches Synapse through it: Matrix is unreachable.',
      runbook:
        'kubectl -n {{ $labels.namespace }} get pods -l app.kubernetes.io/name={{ $labels.job }}; ' +
        'kubectl -n {{ $labels.namespace }} logs -l app.kubernetes.io/name={{ $labels.job }} --tail=50 (HAProxy logs a config error at start).',
    });
  }
  const rate = (m: string, extra: Record<string, string> = {}) => `rate(${m}${sel({ namespace: ns, job: anyOf(p.services), ...extra })}[$__rate_interval])`;
  return {
    name: 'synapse',
    namespace: ns,
    alerts,
    dashboard: {
      title: 'Kudo / Synapse',
      panels: [
        { title: 'Processes up', kind: 'stat', queries: [['{{job}}', `sum by (job) (up${jobs})`]] },
        ...(p.router !== undefined
          ? [{ title: 'Router up', kind: 'stat' as const, queries: [['{{job}}', `sum by (job) (up${sel({ namespace: ns, job: p.router })})`]] as const }]
          : []),
        { title: 'Requests per second', unit: 'reqps', queries: [['{{job}}', `sum by (job) (${rate('synapse_http_server_requests_received_total')})`]] },
        { title: 'Server errors (5xx) per second', unit: 'reqps', queries: [['{{job}}', `sum by (job) (${rate('synapse_http_server_responses_total', { code: '~5..' })})`]] },
        {
          title: 'Message send time',
          unit: 's',
          description: 'PUT /rooms/…/send: the client waits until the event is persisted.',
          queries: [0.5, 0.9, 0.99].map(
            (q) =>
              [
                `p${q * 100}`,
                `histogram_quantile(${q}, sum by (le) (${rate('synapse_http_server_response_time_seconds_bucket', { servlet: 'RoomSendEventRestServlet' })}))`,
              ] as const,
          ),
        },
        { title: 'Events persisted per second', unit: 'ops', queries: [['events', `sum(${rate('synapse_storage_events_persisted_events_total')})`]] },
        {
          title: 'Event persistence transaction time (mean)',
          unit: 's',
          queries: [
            [
              '{{job}}',
              `sum by (job) (${rate('synapse_storage_transaction_time_sum_total', { desc: 'persist_events' })}) / sum by (job) (${rate('synapse_storage_transaction_time_count_total', { desc: 'persist_events' })})`,
            ],
          ],
        },
        { title: 'CPU', unit: 'percentunit', queries: [['{{pod}}', `sum by (pod) (${rate('process_cpu_seconds_total')})`]] },
        { title: 'Memory (resident)', unit: 'bytes', queries: [['{{pod}}', `sum by (pod) (process_resident_memory_bytes${jobs})`]] },
      ],
    },
  };
}

function postgres(p: NonNullable<MonitoredStack['postgres']>, b: MonitoredStack['backups']): Watched {
  const ns = p.namespace;
  const exporter = p.source === 'postgres-exporter';
  const job = exporter ? p.service : `${ns}/${p.podMonitor}`;
  const s = (extra: Record<string, string> = {}) => sel({ namespace: ns, job, ...extra });
  // postgres_exporter: pg_up, pg_stat_activity_count (per database, state, backend type), pg_settings_*.
  // CloudNativePG: cnpg_collector_up, cnpg_backends_total (per database, user, state), cnpg_pg_settings_setting{name}.
  const serverUp = exporter ? `pg_up${s()}` : `cnpg_collector_up${s()}`;
  // Connections that count against max_connections: client backends (autovacuum workers and WAL senders have slots of their own).
  const used = exporter
    ? `sum by (namespace, job, pod) (pg_stat_activity_count${s({ backend_type: 'client backend' })})`
    : `sum by (namespace, job, pod) (cnpg_backends_total${s({ usename: '!streaming_replica' })})`;
  const setting = (name: string) =>
    exporter ? `max by (namespace, job, pod) (pg_settings_${name}${s()})` : `max by (namespace, job, pod) (cnpg_pg_settings_setting${s({ name })})`;
  const alerts: Alert[] = [
    {
      alert: 'PostgresDown',
      expr: `max by (namespace, job) (${serverUp}) == 0\nor ${noTargetUp(ns, [job])}`,
      for: '5m',
      severity: 'critical',
      summary: 'PostgreSQL is down',
      description: exporter
        ? 'For 5 minutes postgres_exporter in {{ $labels.namespace }} could not connect to PostgreSQL, or the pod did not answer at all. ' +
          'Synapse cannot read or write anything.'
        : 'For 5 minutes no CloudNativePG instance of {{ $labels.job }} has reported PostgreSQL up (or none answered). Synapse cannot read or write anything.',
      runbook: exporter
        ? 'kubectl -n {{ $labels.namespace }} get pods -l app.kubernetes.io/name=postgres; kubectl -n {{ $labels.namespace }} logs postgres-0 -c postgres --tail=100; ' +
          'kubectl -n {{ $labels.namespace }} get pvc (a full volume stops PostgreSQL).'
        : 'kubectl -n {{ $labels.namespace }} get cluster,pods -l cnpg.io/cluster; kubectl cnpg status (plugin) shows the primary and failover state.',
    },
    {
      alert: 'PostgresConnectionsNearMax',
      expr: `${used}\n> on (namespace, job, pod) (${setting('max_connections')} - ${setting('superuser_reserved_connections')} - ${POSTGRES_SPARE_CONNECTIONS})`,
      for: '10m',
      severity: 'warning',
      summary: 'PostgreSQL {{ $labels.pod }} has {{ printf "%.0f" $value }} connections, near max_connections',
      description:
        `Fewer than ${POSTGRES_SPARE_CONNECTIONS} connections are left on {{ $labels.pod }} before PostgreSQL refuses non-superusers ` +
        "(max_connections minus superuser_reserved_connections). Kudo sizes max_connections as Synapse's pools plus 10 for backups and " +
        "administration, so something beyond Synapse holds connections; once none are left Synapse's requests fail.",
      runbook:
        'List who holds them: kubectl -n {{ $labels.namespace }} exec {{ $labels.pod }} -c postgres -- psql -U synapse -c ' +
        '"select usename, application_name, state, count(*) from pg_stat_activity group by 1, 2, 3 order by 4 desc". ' +
        'Raise postgres.maxConnections only together with the pools (synapse.databasePool).',
    },
  ];
  if (p.source === 'cloudnative-pg' && p.backup === true) alerts.push(...cnpgBackupAlerts(s()));
  if (p.claim !== undefined) alerts.push(...databaseGrowthAlerts(exporter ? `pg_database_size_bytes${s()}` : `cnpg_pg_database_size_bytes${s()}`, ns, p.claim));
  // CloudNativePG's default monitoring queries have no pg_stat_user_tables.
  if (exporter) alerts.push(tableBloatAlert(s()));
  const backupAge =
    b !== undefined
      ? [
          {
            title: 'Time since the last successful backup',
            unit: 's',
            queries: [['{{cronjob}}', `time() - kube_cronjob_status_last_successful_time${sel({ namespace: b.namespace, cronjob: anyOf(b.cronJobs) })}`]] as const,
          },
        ]
      : [];
  return {
    name: 'postgres',
    namespace: ns,
    alerts,
    dashboard: {
      title: 'Kudo / PostgreSQL',
      panels: [
        { title: 'PostgreSQL up', kind: 'stat', queries: [['{{pod}}', serverUp]] },
        {
          title: 'Connections',
          queries: [
            ['in use {{pod}}', used],
            ['max_connections {{pod}}', setting('max_connections')],
          ],
        },
        {
          title: 'Connections by state',
          queries: [['{{state}}', exporter ? `sum by (state) (pg_stat_activity_count${s({ backend_type: 'client backend' })})` : `sum by (state) (cnpg_backends_total${s()})`]],
        },
        ...(exporter
          ? [
              { title: 'Commits per second', unit: 'ops', queries: [['{{datname}}', `sum by (datname) (rate(pg_stat_database_xact_commit${s()}[$__rate_interval]))`]] as const },
              { title: 'Database size', unit: 'bytes', queries: [['{{datname}}', `pg_database_size_bytes${s()}`]] as const },
            ]
          : [
              {
                title: 'Commits per second',
                unit: 'ops',
                queries: [['{{datname}}', `sum by (datname) (rate(cnpg_pg_stat_database_xact_commit${s()}[$__rate_interval]))`]] as const,
              },
              { title: 'Database size', unit: 'bytes', queries: [['{{datname}} {{pod}}', `cnpg_pg_database_size_bytes${s()}`]] as const },
            ]),
        ...backupAge,
      ],
    },
  };
}

/**
 * The databases against PostgreSQL's volume: all of an instance's databases (sum by pod), the largest instance,
 * and the smallest claim (CloudNativePG's instances have one each, the same size). The volume also holds WAL,
 * so the database can fill it before reaching its size: VolumeNearlyFull watches the volume itself.
 */
function databaseGrowthAlerts(size: string, namespace: string, claim: string): Alert[] {
  const sizeNow = `max by (namespace) (sum by (namespace, pod) (${size}))`;
  const capacity = `min by (namespace) (kubelet_volume_stats_capacity_bytes${sel({ namespace, persistentvolumeclaim: `~${claim}` })})`;
  const growth = `max by (namespace) (sum by (namespace, pod) (deriv(${size}[${VOLUME_PACE_WINDOW}])))`;
  const runbook =
    'kubectl -n {{ $labels.namespace }} exec <postgres pod> -c postgres -- psql -U synapse -c "select relname, pg_size_pretty(pg_total_relation_size(relid)) ' +
    'from pg_statio_user_tables order by pg_total_relation_size(relid) desc limit 10" shows the largest tables. Grow the volume ' +
    '(postgres.storage.size, if its StorageClass allows expansion); bound what is kept (synapse.retention; docs/scaling.md, "Growth: media and message retention").';
  return [
    {
      alert: 'PostgresDatabaseNearVolume',
      expr: `100 * ${sizeNow}\n/ ${capacity} > ${DATABASE_VOLUME_PERCENT}`,
      for: '30m',
      severity: 'warning',
      summary: 'PostgreSQL\'s databases take {{ printf "%.0f" $value }} % of its volume',
      description:
        `For 30 minutes the databases in {{ $labels.namespace }} have taken more than ${DATABASE_VOLUME_PERCENT} % of PostgreSQL's volume. ` +
        'The rest holds WAL and what VACUUM needs; a full volume stops PostgreSQL, and Synapse with it.',
      runbook,
    },
    {
      alert: 'PostgresDatabaseGrowingFast',
      expr: `(${capacity} - ${sizeNow})\n/ ${growth}\n/ ${DAY} > 0 < ${DATABASE_FULL_DAYS}`,
      for: '1h',
      severity: 'warning',
      summary: 'At its current pace PostgreSQL\'s databases fill its volume in {{ printf "%.1f" $value }} days',
      description:
        `At the pace of the last ${VOLUME_PACE_WINDOW}, the databases in {{ $labels.namespace }} outgrow PostgreSQL's volume within ${DATABASE_FULL_DAYS} days ` +
        '(for an hour now). Something writes much more than usual: a busy new room, a bridge, a spammer, or a purge that stopped.',
      runbook,
    },
  ];
}

/**
 * A table whose dead rows (deleted or updated row versions VACUUM has not removed) stay a large share of it:
 * postgres_exporter's pg_stat_user_tables, for the database it connects to (Synapse's). VACUUM makes the space
 * reusable; until it does, the table and its indexes grow on every write. Autovacuum not having run on a table is
 * no alert of its own: a table nobody writes needs none, and one that needs it shows here.
 */
function tableBloatAlert(s: string): Alert {
  const table = (m: string) => `max by (namespace, job, pod, datname, schemaname, relname) (pg_stat_user_tables_${m}${s})`;
  const dead = table('n_dead_tup');
  const psql = 'kubectl -n {{ $labels.namespace }} exec {{ $labels.pod }} -c postgres -- psql -U synapse -d {{ $labels.datname }} -c';
  return {
    alert: 'PostgresTableBloated',
    expr: `100 * ${dead}\n/ (${dead} + ${table('n_live_tup')}) > ${TABLE_DEAD_PERCENT}\nand ${dead} > ${TABLE_DEAD_ROWS_MIN}`,
    // Long enough for autovacuum to finish a large table (it reports dead rows gone only when it is done).
    for: '2h',
    severity: 'warning',
    summary: 'Table {{ $labels.relname }} is {{ printf "%.0f" $value }} % dead rows',
    description:
      `For 2 hours more than ${TABLE_DEAD_PERCENT} % of the rows of {{ $labels.schemaname }}.{{ $labels.relname }} in {{ $labels.datname }} ` +
      `({{ $labels.pod }}), and over ${TABLE_DEAD_ROWS_MIN} of them, have been dead: autovacuum has not removed them. The table and its indexes ` +
      'grow on every write instead of reusing that space, queries read the dead rows too, and the volume fills (VolumeFillingUp).',
    runbook:
      `See when it was last vacuumed: ${psql} "select n_live_tup, n_dead_tup, last_autovacuum, last_vacuum from pg_stat_user_tables where relname = '{{ $labels.relname }}'". ` +
      `Look for what holds back the oldest row VACUUM may remove: ${psql} "select pid, now() - xact_start, state, backend_xmin, left(query, 60) ` +
      'from pg_stat_activity where backend_xmin is not null order by age(backend_xmin) desc limit 5" (a long transaction, "idle in transaction"), ' +
      '"select * from pg_prepared_xacts" and "select slot_name, xmin from pg_replication_slots"; end it, then ' +
      `${psql} "VACUUM (VERBOSE) {{ $labels.schemaname }}.{{ $labels.relname }}" (its last lines say how many dead rows it could not remove yet). ` +
      'VACUUM makes the space reusable but does not shrink the files; docs/scaling.md, "Growth: media and message retention".',
  };
}

/**
 * CloudNativePG 1.30 with the barman-cloud plugin: pg_stat_archiver through its default monitoring queries
 * (cnpg_pg_stat_archiver_*, on the primary), and the base backups through the plugin's own metrics
 * (barman_cloud_cloudnative_pg_io_*; the operator's cnpg_collector_last_available_backup_timestamp stays 0 with a plugin).
 */
function cnpgBackupAlerts(s: string): Alert[] {
  return [
    {
      // PostgreSQL keeps every WAL segment it could not archive: pg_wal grows until the volume is full.
      alert: 'PostgresWALArchiveFailing',
      expr: `max by (namespace, job, pod) (cnpg_pg_stat_archiver_last_failed_time${s})\n> max by (namespace, job, pod) (cnpg_pg_stat_archiver_last_archived_time${s})`,
      for: '10m',
      severity: 'warning',
      summary: 'WAL archiving from {{ $labels.pod }} is failing',
      description:
        'For 10 minutes the last attempt to archive a WAL segment from {{ $labels.pod }} to the object store has failed. ' +
        'No point-in-time recovery reaches past the last archived segment, and PostgreSQL keeps every unarchived segment, ' +
        'so its volume fills until the database stops.',
      runbook:
        'kubectl -n {{ $labels.namespace }} logs {{ $labels.pod }} -c plugin-barman-cloud --tail=100 (the S3 error); ' +
        'kubectl -n {{ $labels.namespace }} get objectstore -o yaml; check the S3 credentials Secret and that the bucket is reachable ' +
        '(postgres.cloudnativePg.backup.destinationPath, endpointURL).',
    },
    {
      alert: 'PostgresBaseBackupTooOld',
      expr: `time() - max by (namespace, job) (barman_cloud_cloudnative_pg_io_last_available_backup_timestamp${s}) > ${BACKUP_MAX_AGE_SECONDS}`,
      // The metric is 0 until the first base backup (taken when the Cluster is created): give that one time to finish.
      for: '1h',
      severity: 'warning',
      summary: 'The last base backup of {{ $labels.job }} is {{ $value | humanizeDuration }} old',
      description:
        'No base backup of the CloudNativePG Cluster has completed in the object store for over 26 hours (or none ever has); ' +
        'they are taken daily (postgres.cloudnativePg.backup.schedule). A recovery must replay every WAL segment since the last one, ' +
        'and retention may already have removed what it needs.',
      runbook:
        'kubectl -n {{ $labels.namespace }} get backups --sort-by=.metadata.creationTimestamp; ' +
        'kubectl -n {{ $labels.namespace }} describe backup <the last one>; kubectl -n {{ $labels.namespace }} get scheduledbackup. ' +
        'Take one now with kubectl cnpg backup postgres --method plugin --plugin-name barman-cloud.cloudnative-pg.io.',
    },
  ];
}

function redis(p: NonNullable<MonitoredStack['redis']>): Watched {
  const s = sel({ namespace: p.namespace, job: p.service });
  return {
    name: 'redis',
    namespace: p.namespace,
    alerts: [
      {
        alert: 'RedisDown',
        expr: `max by (namespace, job) (redis_up${s}) == 0\nor ${noTargetUp(p.namespace, [p.service])}`,
        for: '5m',
        severity: 'critical',
        summary: 'Redis is down',
        description:
          'For 5 minutes redis_exporter in {{ $labels.namespace }} could not reach Redis, or the pod did not answer. LiveKit nodes ' +
          "then report stale stats and answer 406, so no new calls start; Synapse's workers lose replication.",
        runbook: 'kubectl -n {{ $labels.namespace }} get pods -l app.kubernetes.io/name=redis; kubectl -n {{ $labels.namespace }} logs redis-0 -c redis --tail=50.',
      },
    ],
    dashboard: {
      title: 'Kudo / Redis',
      panels: [
        { title: 'Redis up', kind: 'stat', queries: [['{{pod}}', `redis_up${s}`]] },
        { title: 'Clients', queries: [['{{pod}}', `redis_connected_clients${s}`]] },
        { title: 'Commands per second', unit: 'ops', queries: [['{{pod}}', `rate(redis_commands_processed_total${s}[$__rate_interval])`]] },
        { title: 'Memory', unit: 'bytes', queries: [['{{pod}}', `redis_memory_used_bytes${s}`]] },
      ],
    },
  };
}

function backups(b: NonNullable<MonitoredStack['backups']>): Watched {
  // kube-state-metrics' series carry the CronJob's namespace (its ServiceMonitor honours the labels it exports).
  const cronJobs = sel({ namespace: b.namespace, cronjob: anyOf(b.cronJobs) });
  const claim = sel({ namespace: b.namespace, persistentvolumeclaim: b.claim });
  return {
    name: 'backup',
    namespace: b.namespace,
    alerts: [
      {
        alert: 'BackupTooOld',
        expr:
          `time() - kube_cronjob_status_last_successful_time${cronJobs} > ${BACKUP_MAX_AGE_SECONDS}\n` +
          `or time() - kube_cronjob_created${cronJobs} > ${BACKUP_MAX_AGE_SECONDS} unless on (namespace, cronjob) kube_cronjob_status_last_successful_time${cronJobs}`,
        for: '15m',
        severity: 'warning',
        summary: 'The last successful {{ $labels.cronjob }} is {{ $value | humanizeDuration }} old',
        description: 'The nightly {{ $labels.cronjob }} in {{ $labels.namespace }} has not succeeded for over 26 hours (or never has): ' + 'a restore would lose more than a day.',
        runbook:
          'kubectl -n {{ $labels.namespace }} get jobs --sort-by=.metadata.creationTimestamp | grep {{ $labels.cronjob }}; ' +
          'kubectl -n {{ $labels.namespace }} logs job/<the last one> --all-containers. A full backup volume (kudo-backups) or ' +
          'an unreachable S3 repository are the usual causes; run one now with kubectl -n {{ $labels.namespace }} create job --from=cronjob/{{ $labels.cronjob }} {{ $labels.cronjob }}-manual.',
      },
      {
        // Only a running backup mounts the volume, and the kubelet reports only mounted volumes:
        // the fullest it was during the last day's runs, not its state right now.
        alert: 'BackupVolumeNearlyFull',
        expr:
          `100 * min by (namespace, persistentvolumeclaim) (min_over_time(kubelet_volume_stats_available_bytes${claim}[26h]))\n` +
          `/ max by (namespace, persistentvolumeclaim) (max_over_time(kubelet_volume_stats_capacity_bytes${claim}[26h])) < ${VOLUME_FREE_PERCENT}`,
        for: '15m',
        severity: 'warning',
        summary: 'The backup volume {{ $labels.persistentvolumeclaim }} had only {{ printf "%.0f" $value }} % free during the last day\'s backups',
        description:
          `Less than ${VOLUME_FREE_PERCENT} % of {{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} was free while a backup ran in the last 26 hours. ` +
          'Once it is full every backup fails, night after night, and the last good one ages.',
        runbook:
          'kubectl -n {{ $labels.namespace }} get pvc {{ $labels.persistentvolumeclaim }}; grow it (backup.storage.size, if its StorageClass ' +
          'allows expansion) or keep fewer backups (backup.retention). BackupTooOld says whether backups already fail.',
      },
    ],
  };
}

function volumes(v: MonitoredStack['volumes']): Watched {
  const s = sel({ namespace: v.namespace, persistentvolumeclaim: `~${v.claims.join('|')}` });
  return {
    name: 'volumes',
    namespace: v.namespace,
    alerts: [
      {
        alert: 'VolumeNearlyFull',
        expr:
          `100 * max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_available_bytes${s})\n` +
          `/ max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_capacity_bytes${s}) < ${VOLUME_FREE_PERCENT}`,
        for: '15m',
        severity: 'warning',
        summary: 'The volume {{ $labels.persistentvolumeclaim }} has {{ printf "%.0f" $value }} % free',
        description:
          `For 15 minutes less than ${VOLUME_FREE_PERCENT} % of {{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} has been free. ` +
          'A full media volume fails every upload; a full database volume stops PostgreSQL, and Synapse with it.',
        runbook:
          'kubectl -n {{ $labels.namespace }} get pvc {{ $labels.persistentvolumeclaim }}; grow it (synapse.media.size or postgres.storage.size, ' +
          'if its StorageClass allows expansion). For the database, look also for WAL that could not be archived (PostgresWALArchiveFailing).',
      },
      {
        // Hours left at the last hours' pace: free space over its fall per second. A steady or growing free space
        // divides by zero or less and is filtered out (+Inf, negative).
        alert: 'VolumeFillingUp',
        expr:
          `max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_available_bytes${s})\n` +
          `/ max by (namespace, persistentvolumeclaim) (-deriv(kubelet_volume_stats_available_bytes${s}[${VOLUME_PACE_WINDOW}]))\n/ 3600 > 0 < ${VOLUME_FULL_HOURS}`,
        for: '1h',
        severity: 'critical',
        summary: 'The volume {{ $labels.persistentvolumeclaim }} is full in {{ printf "%.0f" $value }} hours at its current pace',
        description:
          `At the pace of the last ${VOLUME_PACE_WINDOW}, {{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} is full within ${VOLUME_FULL_HOURS} hours ` +
          '(for an hour now). A full media volume fails every upload; a full database volume stops PostgreSQL, and Synapse with it.',
        runbook:
          'kubectl -n {{ $labels.namespace }} get pvc {{ $labels.persistentvolumeclaim }}; find what writes (uploads to the media volume; on the database volume: ' +
          'PostgresDatabaseGrowingFast, WAL not archived: PostgresWALArchiveFailing); grow it (synapse.media.size or postgres.storage.size) or bound what is kept ' +
          '(synapse.mediaRetention, synapse.retention).',
      },
    ],
  };
}

function livekit(p: MonitoredStack['livekit']): Watched {
  const s = sel({ namespace: p.namespace, job: p.service });
  // What keeps a pod Pending: on the host network, a node whose LiveKit ports another pod holds.
  const [pending, pendingNeeds] =
    (p.hostNetwork ?? true)
      ? ['no node with free host ports, or none matches livekit.nodeSelector', 'host ports free and matching livekit.nodeSelector']
      : ['no node matches livekit.nodeSelector, or none has room for its requests', 'room for its requests and matching livekit.nodeSelector'];
  const alerts: Alert[] = [
    {
      alert: 'LiveKitDown',
      expr: noTargetUp(p.namespace, [p.service]),
      for: '5m',
      severity: 'critical',
      summary: 'No LiveKit node is up',
      description: 'No LiveKit pod in {{ $labels.namespace }} has answered Prometheus for 5 minutes: calls cannot start or continue.',
      runbook:
        `kubectl -n {{ $labels.namespace }} get pods -l app.kubernetes.io/name=livekit -o wide (Pending: ${pending}); ` +
        'kubectl -n {{ $labels.namespace }} logs -l app.kubernetes.io/name=livekit --tail=50.',
    },
  ];
  // LiveKit exports no availability of its own: a node whose stats go stale (Redis down) answers 406, which RedisDown covers.
  if (p.replicas > 1) {
    alerts.push({
      alert: 'LiveKitNodeUnavailable',
      expr: `(sum by (namespace, job) (up${s}) < ${p.replicas}) > 0`,
      for: '10m',
      severity: 'warning',
      summary: 'Only {{ printf "%.0f" $value }} of ' + `${p.replicas} LiveKit nodes are up`,
      description:
        `For 10 minutes fewer than the ${p.replicas} LiveKit nodes (livekit.replicas) in {{ $labels.namespace }} have answered: ` +
        'rooms on a lost node are dropped and the others take the load.',
      runbook: `kubectl -n {{ $labels.namespace }} get pods -l app.kubernetes.io/name=livekit -o wide; a Pending pod needs a node with its ${pendingNeeds}.`,
    });
  }
  return {
    name: 'livekit',
    namespace: p.namespace,
    alerts,
    dashboard: {
      title: 'Kudo / LiveKit',
      panels: [
        { title: 'Nodes up', kind: 'stat', queries: [['nodes', `sum(up${s})`]] },
        { title: 'Rooms', queries: [['{{pod}}', `livekit_room_total${s}`]] },
        { title: 'Participants', queries: [['{{pod}}', `livekit_participant_total${s}`]] },
        { title: 'Published tracks', queries: [['{{kind}}', `sum by (kind) (livekit_track_published_total${s})`]] },
        { title: 'Media traffic', unit: 'Bps', queries: [['{{direction}}', `sum by (direction) (rate(livekit_packet_bytes${s}[$__rate_interval]))`]] },
      ],
    },
  };
}

function coturn(namespace: string, turn: MonitoredStack['turn']): Watched {
  const s = sel({ namespace, job: COTURN_METRICS_SERVICE });
  const limit = turnAllocationLimit(turn);
  const warnAt = Math.floor(limit * TURN_WARNING_SHARE);
  return {
    name: 'coturn',
    namespace,
    alerts: [
      {
        // Per node: turn.<domain> resolves to every TURN node, so one that is down fails the clients sent to it.
        alert: 'CoturnDown',
        expr: `up${s} == 0\nor absent(up${s})`,
        for: '5m',
        severity: 'critical',
        summary: 'coturn is down{{ if $labels.instance }} on {{ $labels.instance }}{{ end }}',
        description:
          "A TURN node's coturn has not answered Prometheus for 5 minutes, or no TURN node runs coturn at all " +
          '(no node labelled kudo/turn=true). Clients behind strict NATs and firewalls cannot join calls through it.',
        runbook:
          'kubectl -n {{ $labels.namespace }} get pods -l app.kubernetes.io/name=coturn -o wide; kubectl get nodes -l kudo/turn=true; ' +
          'kubectl -n {{ $labels.namespace }} logs -l app.kubernetes.io/name=coturn --tail=50.',
      },
      {
        // coturn counts no failed allocations (its metrics: current allocations, traffic, STUN and 401 counters);
        // it refuses them at total-quota (486) or when relay ports run out (508), so warn before either.
        alert: 'TurnAllocationsNearLimit',
        expr: `sum by (namespace, job, pod, instance) (turn_total_allocations${s}) > ${warnAt}`,
        for: '5m',
        severity: 'warning',
        summary: 'coturn on {{ $labels.instance }} holds {{ printf "%.0f" $value }} allocations; it refuses new ones from ' + `${limit}`,
        description:
          `coturn answers 486 once it holds total-quota (${turn.totalQuota}) allocations, and 508 ` +
          `when its relay ports (${turn.relayPorts.min}-${turn.relayPorts.max}, ${relayPortPairs(turn.relayPorts.min, turn.relayPorts.max)} even/odd pairs) run out. ` +
          'Every participant takes several allocations (one per PeerConnection and TURN URL); new calls through TURN will fail.',
        runbook: 'Widen coturn.relayPorts (and the firewall), raise coturn.totalQuota, or label another node kudo/turn=true.',
      },
    ],
    dashboard: {
      title: 'Kudo / coturn',
      panels: [
        { title: 'TURN nodes up', kind: 'stat', queries: [['nodes', `sum(up${s})`]] },
        {
          title: 'Allocations',
          queries: [
            ['{{instance}}', `sum by (instance) (turn_total_allocations${s})`],
            ['refused from about', `vector(${limit})`],
          ],
        },
        {
          title: 'Relayed traffic (finished sessions)',
          unit: 'Bps',
          queries: [
            ['received', `sum(rate(turn_total_traffic_rcvb${s}[$__rate_interval]))`],
            ['sent', `sum(rate(turn_total_traffic_sentb${s}[$__rate_interval]))`],
          ],
        },
        {
          title: 'STUN binding requests per second',
          unit: 'reqps',
          queries: [
            ['requests', `sum(rate(stun_binding_request${s}[$__rate_interval]))`],
            ['errors', `sum(rate(stun_binding_error${s}[$__rate_interval]))`],
          ],
        },
      ],
    },
  };
}

function certificates(namespace: string, namespaces: readonly string[]): Watched {
  // cert-manager's chart scrapes without honorLabels by default, so the Certificate's namespace arrives as
  // exported_namespace (namespace is cert-manager's own); with honorLabels it is namespace. Take either.
  const m = 'certmanager_certificate_expiration_timestamp_seconds';
  const ours = anyOf(namespaces);
  const expiry =
    `label_replace(\n  ${m}${sel({ exported_namespace: ours })}\n  or ${m}${sel({ exported_namespace: '', namespace: ours })},\n` +
    '  "namespace", "$1", "exported_namespace", "(.+)"\n)';
  const rule = (days: number, severity: Alert['severity']): Alert => ({
    alert: 'CertificateExpiringSoon',
    expr: `${expiry} - time() < ${days * DAY}`,
    for: '1h',
    severity,
    summary: 'Certificate {{ $labels.namespace }}/{{ $labels.name }} expires in {{ $value | humanizeDuration }}',
    description:
      `cert-manager renews 30 days before expiry; less than ${days} days are left, so renewal has been failing for ` +
      `${30 - days} days. When it expires, clients refuse the host it serves.`,
    runbook:
      'kubectl -n {{ $labels.namespace }} describe certificate {{ $labels.name }}; kubectl -n {{ $labels.namespace }} get ' +
      'certificaterequests,orders,challenges. HTTP-01 needs port 80 of the host to reach the ingress controller (npm run checklist).',
  });
  return {
    name: 'certificates',
    namespace,
    // One name, two severities: Alertmanager's usual inhibition (same alertname) silences the warning once it is critical.
    alerts: [rule(CERT_WARNING_DAYS, 'warning'), rule(CERT_CRITICAL_DAYS, 'critical')],
  };
}

// ---------------------------------------------------------------------------
// Dashboards
// ---------------------------------------------------------------------------

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

/** A Grafana dashboard (schema 39): stats 6 columns wide in the top row, then graphs two to a row. Deterministic JSON. */
function dashboardJson(uid: string, title: string, panels: readonly Panel[]): string {
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  const placed = panels.map((p, i) => {
    const stat = p.kind === 'stat';
    const [w, h] = stat ? [6, 4] : [12, 8];
    const afterStats = !stat && i > 0 && panels[i - 1].kind === 'stat';
    if (x + w > 24 || afterStats) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    const gridPos = { h, w, x, y };
    x += w;
    rowHeight = Math.max(rowHeight, h);
    return {
      id: i + 1,
      type: stat ? 'stat' : 'timeseries',
      title: p.title,
      ...(p.description !== undefined ? { description: p.description } : {}),
      gridPos,
      datasource: DATASOURCE,
      fieldConfig: { defaults: { ...(p.unit !== undefined ? { unit: p.unit } : {}) }, overrides: [] },
      options: stat
        ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'none' }
        : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
      targets: p.queries.map(([legend, expr], j) => ({ refId: String.fromCharCode(65 + j), datasource: DATASOURCE, expr, legendFormat: legend })),
    };
  });
  return JSON.stringify(
    {
      uid,
      title,
      tags: ['kudo'],
      editable: false,
      schemaVersion: 39,
      version: 1,
      refresh: '1m',
      time: { from: 'now-6h', to: 'now' },
      timezone: 'utc',
      templating: { list: [{ name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', hide: 0 }] },
      annotations: { list: [] },
      panels: placed,
    },
    null,
    2,
  );
}
