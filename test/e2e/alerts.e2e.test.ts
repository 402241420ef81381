/**
 * The rendered alerting rules, run by Prometheus's own rule engine: promtool
 * (built from the Go module proxy by test/e2e/install-promtool.sh) checks the
 * rules of every PrometheusRule as Prometheus loads them, then evaluates them
 * over synthetic series in `promtool test rules`.
 *
 * The series carry the labels prometheus-operator gives scraped series, worked
 * out here from the rendered ServiceMonitors and PodMonitor as the operator
 * does (job = the selected Service's name, or <namespace>/<name> for a
 * PodMonitor), so a rule that guesses a job label finds nothing and fails.
 * Thresholds that depend on the config (max_connections, coturn's quota and
 * relay ports, LiveKit's replicas) come from the rendered manifests too.
 *
 * For every alert: series on which it fires exactly once, with the expected
 * labels and annotations (as Alertmanager would receive them), and series on
 * which it stays silent; then two mutated rule files (a threshold, a job
 * label) that promtool must reject, so the test is seen to be able to fail.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import {
  container,
  find,
  generatedSecrets,
  Manifest,
  podSpec,
  postgresExporterPath,
  Program,
  promtoolPath,
  rendered,
  replaceOnce,
  ROOT,
  rewritePaths,
  secretVolumeFiles,
  sleep,
  tempDir,
  writeSecretFiles,
} from './harness';
import { RunningPostgres, startPostgres } from './postgres';
import { PRODUCTION } from '../util';

const PROMTOOL = promtoolPath();
const PROMTOOL_VERSION = spawnSync(PROMTOOL, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];

type Labels = Record<string, string>;

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Labels;
  readonly annotations: Labels;
}

/** A series of the input: its labels (with __name__) and promtool's expanding notation, one value a minute. */
interface Series {
  readonly labels: Labels;
  readonly values: string;
}

/** An alert expected at the evaluation time: the labels its expression yields, and its value (for the annotations). */
interface Firing {
  readonly labels: Labels;
  readonly value: number;
  /** Which of the alert's rules (when one name has several, by severity). */
  readonly severity?: string;
}

interface Case {
  /** What happens, e.g. "the main process's scrape fails". */
  readonly name: string;
  readonly series: readonly Series[];
  /** A time at which the condition may hold but `for` has not passed: nothing fires yet. */
  readonly pendingAt?: string;
  readonly at: string;
  /** Empty: the alert stays silent. */
  readonly firing: readonly Firing[];
}

/** How prometheus-operator labels one scraped target. */
type Target = Labels & { namespace: string; job: string };

// ---------------------------------------------------------------------------
// The scrape, as prometheus-operator sets it up from the rendered monitors.
// ---------------------------------------------------------------------------

const matches = (labels: Labels | undefined, selector: Labels) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** Pods a workload runs: replicas, or two TURN nodes for a DaemonSet. */
function podNames(w: Manifest): string[] {
  const n = w.kind === 'DaemonSet' ? 2 : (w.spec.replicas ?? 1);
  const suffix = (i: number) => (w.kind === 'StatefulSet' ? `${i}` : `${w.kind === 'DaemonSet' ? 'node' : '6c9f7d8b5d'}-${'abcde'[i]}`);
  return Array.from({ length: n }, (_, i) => `${w.metadata.name}-${suffix(i)}`);
}

/**
 * The targets of a ServiceMonitor (every Service it selects that has its port,
 * every pod behind it) or of a PodMonitor (CloudNativePG's instances), with the
 * labels prometheus-operator gives them.
 */
function targetsOf(ms: Manifest[], kind: 'ServiceMonitor' | 'PodMonitor', namespace: string, name: string): Target[] {
  const monitor = ms.find((m) => m.kind === kind && m.metadata.namespace === namespace && m.metadata.name === name);
  if (!monitor) throw new Error(`no ${kind} ${namespace}/${name} is rendered`);
  if (kind === 'PodMonitor') {
    const cluster = ms.find((m) => m.kind === 'Cluster' && m.metadata.namespace === namespace);
    if (!cluster) throw new Error('a PodMonitor without a CloudNativePG Cluster');
    return Array.from({ length: cluster.spec.instances }, (_, i) => ({
      namespace,
      job: `${namespace}/${name}`,
      pod: `${cluster.metadata.name}-${i + 1}`,
      container: 'postgres',
      endpoint: monitor.spec.podMetricsEndpoints[0].port,
      instance: `10.1.0.${i + 1}:9187`,
    }));
  }
  const port: string = monitor.spec.endpoints[0].port;
  const out: Target[] = [];
  let ip = 10;
  for (const svc of ms.filter(
    (m) => m.kind === 'Service' && monitor.spec.namespaceSelector.matchNames.includes(m.metadata.namespace) && matches(m.metadata.labels, monitor.spec.selector.matchLabels),
  )) {
    const p = svc.spec.ports.find((x: any) => x.name === port);
    if (!p) continue;
    const workloads = ms.filter(
      (m) =>
        ['Deployment', 'StatefulSet', 'DaemonSet'].includes(m.kind) &&
        m.metadata.namespace === svc.metadata.namespace &&
        matches(m.spec.template.metadata.labels, svc.spec.selector),
    );
    for (const w of workloads) {
      const c = podSpec(w).containers.find((x: any) => (x.ports ?? []).some((cp: any) => cp.containerPort === p.port || cp.name === p.targetPort));
      for (const pod of podNames(w)) {
        out.push({
          namespace: svc.metadata.namespace!,
          job: svc.metadata.name,
          service: svc.metadata.name,
          endpoint: port,
          pod,
          container: c?.name ?? w.metadata.name,
          instance: `10.0.0.${ip++}:${p.port}`,
        });
      }
    }
  }
  if (out.length === 0) throw new Error(`${kind} ${namespace}/${name} selects no Service with port "${port}" and pods behind it`);
  return out;
}

/** The rendered render's facts the scenarios need. */
interface Stack {
  readonly name: string;
  readonly ms: Manifest[];
  readonly rules: Rule[];
  readonly stackNs: string;
  readonly mediaNs: string;
  /** Synapse's processes (ServiceMonitors whose path is Synapse's metrics), main first. */
  readonly synapse: Target[][];
  readonly router?: Target[];
  readonly postgres?: { readonly source: 'postgres-exporter' | 'cloudnative-pg'; readonly targets: Target[]; readonly maxConnections: number; readonly superuserReserved: number };
  readonly redis?: Target[];
  readonly livekit: Target[];
  readonly coturn: Target[];
  readonly coturnConf: string;
  readonly backupCronJobs: string[];
  /** The claims the kubelet reports on: the media's, then the database's (the StatefulSet's pod 0, or CloudNativePG's last instance). */
  readonly dataClaims: string[];
  readonly backupClaim?: string;
  /** [namespace, name, issuer] of certificates cert-manager makes for the stack. */
  readonly certificates: [string, string, string][];
}

function stackOf(name: string, overrides: object): Stack {
  const { config, manifests: ms } = rendered(overrides);
  const stackNs = config.namespaces.stack;
  const mediaNs = config.namespaces.hostNetwork;
  const monitors = ms.filter((m) => m.kind === 'ServiceMonitor');
  const synapse = monitors
    .filter((m) => m.spec.endpoints[0].path === '/_synapse/metrics')
    .map((m) => targetsOf(ms, 'ServiceMonitor', m.metadata.namespace!, m.metadata.name))
    .sort((a, b) => Number(b[0].job === 'synapse') - Number(a[0].job === 'synapse'));
  const routerMonitor = monitors.find((m) => m.metadata.name === 'synapse-router');
  const pgArgs: string[] = ms.find((m) => m.kind === 'StatefulSet' && m.metadata.name === 'postgres')?.spec.template.spec.containers[0].args ?? [];
  const setting = (n: string) => pgArgs.find((a) => a.startsWith(`${n}=`))?.split('=')[1];
  const cluster = ms.find((m) => m.kind === 'Cluster');
  let postgres: Stack['postgres'];
  if (config.postgres.mode === 'statefulset') {
    // superuser_reserved_connections: PostgreSQL's default (3) unless the server is started with another.
    postgres = {
      source: 'postgres-exporter',
      targets: targetsOf(ms, 'ServiceMonitor', stackNs, 'postgres'),
      maxConnections: Number(setting('max_connections')),
      superuserReserved: Number(setting('superuser_reserved_connections') ?? 3),
    };
  } else if (cluster) {
    const params = cluster.spec.postgresql.parameters;
    postgres = {
      source: 'cloudnative-pg',
      targets: targetsOf(ms, 'PodMonitor', stackNs, 'postgres'),
      maxConnections: Number(params.max_connections),
      superuserReserved: Number(params.superuser_reserved_connections ?? 3),
    };
  }
  const pvc = (n: string) => ms.find((m) => m.kind === 'PersistentVolumeClaim' && m.metadata.labels?.['app.kubernetes.io/name'] === n)?.metadata.name;
  const pgSts = ms.find((m) => m.kind === 'StatefulSet' && m.metadata.name === 'postgres');
  // CloudNativePG names each instance's claim after its pod: <cluster>-<n>.
  const dbClaim = pgSts
    ? `${pgSts.spec.volumeClaimTemplates[0].metadata.name}-${pgSts.metadata.name}-0`
    : cluster
      ? `${cluster.metadata.name}-${cluster.spec.instances}`
      : undefined;
  const certificates: [string, string, string][] = [
    ...ms.filter((m) => m.kind === 'Certificate').map((m) => [m.metadata.namespace!, m.metadata.name, m.spec.issuerRef.name] as [string, string, string]),
    ...ms
      .filter((m) => m.kind === 'Ingress' && m.metadata.annotations?.['cert-manager.io/cluster-issuer'])
      .flatMap((m) => m.spec.tls.map((t: any) => [m.metadata.namespace!, t.secretName, m.metadata.annotations!['cert-manager.io/cluster-issuer']] as [string, string, string])),
  ];
  return {
    name,
    ms,
    rules: ms.filter((m) => m.kind === 'PrometheusRule').flatMap((m) => m.spec.groups.flatMap((g: any) => g.rules)),
    stackNs,
    mediaNs,
    synapse,
    router: routerMonitor ? targetsOf(ms, 'ServiceMonitor', stackNs, 'synapse-router') : undefined,
    postgres,
    redis: monitors.some((m) => m.metadata.name === 'redis') ? targetsOf(ms, 'ServiceMonitor', stackNs, 'redis') : undefined,
    livekit: targetsOf(ms, 'ServiceMonitor', mediaNs, 'livekit'),
    coturn: targetsOf(ms, 'ServiceMonitor', mediaNs, 'coturn'),
    coturnConf: find(ms, 'ConfigMap', 'coturn-config').data['turnserver.conf'],
    backupCronJobs: ms.filter((m) => m.kind === 'CronJob' && m.metadata.labels?.['app.kubernetes.io/name'] === 'backup' && !m.spec.suspend).map((m) => m.metadata.name),
    dataClaims: [pvc('synapse')!, ...(dbClaim !== undefined ? [dbClaim] : [])],
    backupClaim: pvc('backup'),
    certificates,
  };
}

// ---------------------------------------------------------------------------
// Series helpers (one value a minute; promtool's "a+bxn" expands to n+1 values).
// ---------------------------------------------------------------------------

const MINUTES = 40;
const s = (name: string, labels: Labels, values: string): Series => ({ labels: { __name__: name, ...labels }, values });
const steady = (v: number, n = MINUTES) => `${v}x${n}`;
/** a for the first `m` minutes, then b. */
const then = (a: number, m: number, b: number) => `${a}x${m - 1} ${b}x${MINUTES - m}`;
const counter = (perMinute: number, n = MINUTES) => `0+${perMinute}x${n}`;
/** From `start`, changing by `perMinute` (either sign) for n minutes. */
const ramp = (start: number, perMinute: number, n: number) => (perMinute >= 0 ? `${start}+${perMinute}x${n}` : `${start}-${-perMinute}x${n}`);
const upAll = (targets: Target[], v = 1) => targets.map((t) => s('up', t, steady(v)));
const jobOf = (targets: Target[]) => ({ namespace: targets[0].namespace, job: targets[0].job });

/** The kubelet's volume stats, as kube-prometheus-stack scrapes them (labels of the kubelet's target, and the claim's). */
const kubelet = (st: Stack, claim: string): Labels => ({
  namespace: st.stackNs,
  persistentvolumeclaim: claim,
  job: 'kubelet',
  service: 'kubelet',
  endpoint: 'https-metrics',
  instance: '10.0.7.7:10250',
  node: 'node-a',
  metrics_path: '/metrics',
});
/** PostgreSQL's claims: the StatefulSet's, or one per CloudNativePG instance, named after its pod. */
const dbClaims = (st: Stack) => (st.postgres!.source === 'cloudnative-pg' ? st.postgres!.targets.map((t) => t.pod) : [st.dataClaims[st.dataClaims.length - 1]]);

/** The cumulative buckets of a histogram whose every observation (n a minute) falls at `seconds`. */
function histogram(name: string, labels: Labels, buckets: number[], seconds: number, perMinute: number): Series[] {
  return [...buckets.map(String), '+Inf'].map((le) => s(`${name}_bucket`, { ...labels, le }, counter(le === '+Inf' || Number(le) >= seconds ? perMinute : 0)));
}

// Synapse's buckets for synapse_http_server_response_time_seconds (prometheus_client's defaults, as Synapse exposes them).
const SYNAPSE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** The value of `name=` in turnserver.conf. */
const confOption = (conf: string, name: string) => {
  const m = new RegExp(`^${name}=(.*)$`, 'm').exec(conf);
  if (!m) throw new Error(`turnserver.conf sets no ${name}`);
  return Number(m[1]);
};

// ---------------------------------------------------------------------------
// The scenarios: for every alert, series on which it fires once and on which it stays silent.
// ---------------------------------------------------------------------------

const SCENARIOS: Record<string, (st: Stack) => Case[]> = {
  SynapseDown: (st) => {
    const [main, ...workers] = st.synapse;
    const all = st.synapse.flat();
    const cases: Case[] = [
      {
        name: "the main process's scrape fails, the workers answer",
        series: [...main.map((t) => s('up', t, then(1, 3, 0))), ...upAll(workers.flat())],
        pendingAt: '6m',
        at: '9m',
        firing: [{ labels: jobOf(main), value: 0 }],
      },
      {
        name: 'the main process has no pod (no target at all)',
        series: upAll(workers.flat()),
        pendingAt: '4m',
        at: '6m',
        firing: [{ labels: jobOf(main), value: 1 }],
      },
      { name: 'every process answers', series: upAll(all), at: '20m', firing: [] },
    ];
    if (workers.length > 0) {
      const last = workers[workers.length - 1];
      cases.push({
        name: `worker type ${last[0].job} has no pod, the rest answer`,
        series: upAll(all.filter((t) => t.job !== last[0].job)),
        pendingAt: '4m',
        at: '6m',
        firing: [{ labels: jobOf(last), value: 1 }],
      });
    }
    return cases;
  },
  SynapseRouterDown: (st) => [
    { name: "every router pod's scrape fails", series: upAll(st.router!, 0), pendingAt: '4m', at: '6m', firing: [{ labels: jobOf(st.router!), value: 0 }] },
    { name: 'one of the router pods answers', series: st.router!.map((t, i) => s('up', t, steady(i === 0 ? 1 : 0))), at: '20m', firing: [] },
  ],
  SynapseEventSendSlow: (st) => {
    const t = st.synapse[st.synapse.length - 1][0];
    const send = { ...t, method: 'PUT', servlet: 'RoomSendEventRestServlet', tag: '', code: '200', server_name: 'example.com' };
    const sync = { ...send, method: 'GET', servlet: 'SyncRestServlet' };
    return [
      {
        name: 'every message takes 7 s to send',
        series: histogram('synapse_http_server_response_time_seconds', send, SYNAPSE_BUCKETS, 7, 10),
        pendingAt: '10m',
        at: '20m',
        firing: [{ labels: { namespace: t.namespace }, value: NaN }],
      },
      {
        // Long-polling /sync is slow by design and must not count.
        name: 'messages take 0.2 s, /sync long-polls for 30 s',
        series: [
          ...histogram('synapse_http_server_response_time_seconds', send, SYNAPSE_BUCKETS, 0.2, 10),
          ...histogram('synapse_http_server_response_time_seconds', sync, SYNAPSE_BUCKETS, 30, 10),
        ],
        at: '30m',
        firing: [],
      },
    ];
  },
  SynapseEventPersistenceSlow: (st) => {
    const t = st.synapse[0][0];
    const tx = (desc: string, seconds: number) => [
      s('synapse_storage_transaction_time_count_total', { ...t, desc, server_name: 'example.com' }, counter(10)),
      s('synapse_storage_transaction_time_sum_total', { ...t, desc, server_name: 'example.com' }, counter(10 * seconds)),
    ];
    return [
      { name: 'persist_events transactions take 3 s each', series: tx('persist_events', 3), pendingAt: '10m', at: '20m', firing: [{ labels: jobOf([t]), value: 3 }] },
      { name: 'persist_events takes 20 ms, another transaction 5 s', series: [...tx('persist_events', 0.02), ...tx('get_users_in_room', 5)], at: '30m', firing: [] },
    ];
  },
  PostgresDown: (st) => {
    const pg = st.postgres!;
    const serverUp = pg.source === 'postgres-exporter' ? 'pg_up' : 'cnpg_collector_up';
    const extra: Labels = pg.source === 'cloudnative-pg' ? { cluster: 'postgres' } : {};
    const cases: Case[] = [
      {
        name: 'the exporter answers but cannot reach PostgreSQL',
        series: [...upAll(pg.targets), ...pg.targets.map((t) => s(serverUp, { ...t, ...extra }, then(1, 3, 0)))],
        pendingAt: '6m',
        at: '9m',
        firing: [{ labels: jobOf(pg.targets), value: 0 }],
      },
      {
        name: 'the pod stops answering (scrapes fail, the server metric goes stale)',
        series: [...pg.targets.map((t) => s('up', t, then(1, 3, 0))), ...pg.targets.map((t) => s(serverUp, { ...t, ...extra }, `1x2 _x${MINUTES - 2}`))],
        pendingAt: '6m',
        at: '12m',
        firing: [{ labels: jobOf(pg.targets), value: 0 }],
      },
      { name: 'no pod at all', series: [], pendingAt: '4m', at: '6m', firing: [{ labels: jobOf(pg.targets), value: 1 }] },
      { name: 'PostgreSQL answers', series: [...upAll(pg.targets), ...pg.targets.map((t) => s(serverUp, { ...t, ...extra }, steady(1)))], at: '20m', firing: [] },
    ];
    if (pg.targets.length > 1) {
      cases.push({
        name: "one instance of several is down (failover's business, not an outage)",
        series: [...upAll(pg.targets), ...pg.targets.map((t, i) => s(serverUp, { ...t, ...extra }, steady(i === 0 ? 0 : 1)))],
        at: '20m',
        firing: [],
      });
    }
    return cases;
  },
  PostgresConnectionsNearMax: (st) => {
    const pg = st.postgres!;
    const t = pg.targets[0];
    // PostgreSQL refuses non-superusers at max_connections - superuser_reserved_connections; the alert keeps 5 spare.
    const limit = pg.maxConnections - pg.superuserReserved - 5;
    const series = (used: number): Series[] => {
      const settings =
        pg.source === 'postgres-exporter'
          ? [s('pg_settings_max_connections', t, steady(pg.maxConnections)), s('pg_settings_superuser_reserved_connections', t, steady(pg.superuserReserved))]
          : [
              s('cnpg_pg_settings_setting', { ...t, name: 'max_connections' }, steady(pg.maxConnections)),
              s('cnpg_pg_settings_setting', { ...t, name: 'superuser_reserved_connections' }, steady(pg.superuserReserved)),
            ];
      if (pg.source === 'postgres-exporter') {
        const row = (state: string, backendType: string, usename: string, n: number) =>
          s(
            'pg_stat_activity_count',
            { ...t, datname: 'synapse', state, usename, application_name: '', backend_type: backendType, wait_event_type: '', wait_event: '' },
            steady(n),
          );
        // Autovacuum workers have slots of their own: they must not count.
        return [
          ...settings,
          row('active', 'client backend', 'synapse', 2),
          row('idle', 'client backend', 'synapse', used - 2),
          row('active', 'autovacuum worker', '', 3),
          row('disabled', '', '', 0),
        ];
      }
      const row = (state: string, usename: string, n: number) => s('cnpg_backends_total', { ...t, datname: 'synapse', usename, application_name: '', state }, steady(n));
      // Replicas' WAL senders (user streaming_replica) have slots of their own: they must not count.
      return [...settings, row('active', 'synapse', 2), row('idle', 'synapse', used - 2), row('active', 'streaming_replica', 3)];
    };
    return [
      {
        name: `${limit + 1} of ${pg.maxConnections} connections in use`,
        series: series(limit + 1),
        pendingAt: '8m',
        at: '12m',
        firing: [{ labels: { namespace: t.namespace, job: t.job, pod: t.pod }, value: limit + 1 }],
      },
      { name: `${limit} of ${pg.maxConnections} connections in use (and others that have slots of their own)`, series: series(limit), at: '30m', firing: [] },
    ];
  },
  RedisDown: (st) => [
    {
      name: 'the exporter cannot reach Redis',
      series: [...upAll(st.redis!), ...st.redis!.map((t) => s('redis_up', t, then(1, 3, 0)))],
      pendingAt: '6m',
      at: '9m',
      firing: [{ labels: jobOf(st.redis!), value: 0 }],
    },
    { name: 'Redis answers', series: [...upAll(st.redis!), ...st.redis!.map((t) => s('redis_up', t, steady(1)))], at: '20m', firing: [] },
  ],
  BackupTooOld: (st) => {
    const ksm = { job: 'kube-state-metrics', instance: '10.0.9.9:8080' };
    const [first, ...others] = st.backupCronJobs;
    const l = (cronjob: string) => ({ namespace: st.stackNs, cronjob, ...ksm });
    const n = 1600;
    const created = st.backupCronJobs.map((c) => s('kube_cronjob_created', l(c), steady(0, n)));
    // Times are seconds since the test's start (0).
    return [
      {
        name: `${first} last succeeded at the start; the others an hour ago`,
        series: [
          ...created,
          s('kube_cronjob_status_last_successful_time', l(first), steady(0, n)),
          ...others.map((c) => s('kube_cronjob_status_last_successful_time', l(c), steady(90000, n))),
        ],
        pendingAt: '1570m',
        at: '1580m',
        firing: [{ labels: l(first), value: 1580 * 60 }],
      },
      {
        name: `${first} has never succeeded`,
        series: [...created, ...others.map((c) => s('kube_cronjob_status_last_successful_time', l(c), steady(90000, n)))],
        pendingAt: '1570m',
        at: '1580m',
        firing: [{ labels: l(first), value: 1580 * 60 }],
      },
      {
        name: 'every backup succeeded 25 hours ago',
        series: [...created, ...st.backupCronJobs.map((c) => s('kube_cronjob_status_last_successful_time', l(c), steady(0, n)))],
        at: '1500m',
        firing: [],
      },
    ];
  },
  VolumeNearlyFull: (st) => {
    const volume = (claim: string, free: number) => [
      s('kubelet_volume_stats_available_bytes', kubelet(st, claim), steady(free * 1e9)),
      s('kubelet_volume_stats_capacity_bytes', kubelet(st, claim), steady(100e9)),
    ];
    const db = st.dataClaims[st.dataClaims.length - 1];
    return [
      {
        name: `${db} has 5 % free, the others half`,
        series: st.dataClaims.flatMap((c) => volume(c, c === db ? 5 : 50)),
        pendingAt: '10m',
        at: '20m',
        firing: [{ labels: { namespace: st.stackNs, persistentvolumeclaim: db }, value: 5 }],
      },
      { name: 'every claim has half free', series: st.dataClaims.flatMap((c) => volume(c, 50)), at: '30m', firing: [] },
      // Someone else's full volume in another namespace is not this stack's.
      { name: "another namespace's claim is full", series: volume(st.dataClaims[0], 1).map((x) => ({ ...x, labels: { ...x.labels, namespace: 'other' } })), at: '30m', firing: [] },
    ];
  },
  VolumeFillingUp: (st) => {
    // Free space falling by `perMinute` bytes from 50 GB of 100 GB, for eight hours (the rule looks at the last six).
    const volume = (claim: string, perMinute: number) => [
      s('kubelet_volume_stats_available_bytes', kubelet(st, claim), ramp(50e9, -perMinute, 480)),
      s('kubelet_volume_stats_capacity_bytes', kubelet(st, claim), steady(100e9, 480)),
    ];
    const db = st.dataClaims[st.dataClaims.length - 1];
    // At 90 minutes: 45.5 GB free, falling 50 MB a minute, i.e. full in 45.5e9 / (50e6 / 60) s = 15.2 hours.
    return [
      {
        name: `${db} loses 50 MB a minute (3 GB an hour), the others nothing`,
        series: st.dataClaims.flatMap((c) => volume(c, c === db ? 50e6 : 0)),
        pendingAt: '50m',
        at: '90m',
        firing: [{ labels: { namespace: st.stackNs, persistentvolumeclaim: db }, value: 45.5e9 / (50e6 / 60) / 3600 }],
      },
      // 1 MB a minute: 1.4 GB a day, full in a month.
      { name: 'every claim loses 1 MB a minute', series: st.dataClaims.flatMap((c) => volume(c, 1e6)), at: '300m', firing: [] },
      // Free space growing (media deleted by retention) is no alarm either.
      {
        name: 'a claim gains free space',
        series: st.dataClaims.flatMap((c) => volume(c, c === db ? -50e6 : 0)),
        at: '300m',
        firing: [],
      },
      {
        name: "another namespace's claim fills",
        series: volume(st.dataClaims[0], 50e6).map((x) => ({ ...x, labels: { ...x.labels, namespace: 'other' } })),
        at: '90m',
        firing: [],
      },
    ];
  },
  PostgresDatabaseNearVolume: (st) => {
    const pg = st.postgres!;
    // The databases' sizes on every instance, and each instance's claim (CloudNativePG's is named after its pod).
    const series = (synapseBytes: number, claimBytes = 100e9) => [
      ...pg.targets.flatMap((t) => [
        s(pg.source === 'postgres-exporter' ? 'pg_database_size_bytes' : 'cnpg_pg_database_size_bytes', { ...t, datname: 'synapse' }, steady(synapseBytes)),
        s(pg.source === 'postgres-exporter' ? 'pg_database_size_bytes' : 'cnpg_pg_database_size_bytes', { ...t, datname: 'postgres' }, steady(10e6)),
      ]),
      ...dbClaims(st).map((c) => s('kubelet_volume_stats_capacity_bytes', kubelet(st, c), steady(claimBytes))),
    ];
    return [
      { name: 'the databases take 85 % of the claim', series: series(85e9), pendingAt: '20m', at: '40m', firing: [{ labels: { namespace: st.stackNs }, value: 85.01 }] },
      { name: 'the databases take half of the claim', series: series(50e9), at: '40m', firing: [] },
      { name: '85 GB on a claim of 200 GB', series: series(85e9, 200e9), at: '40m', firing: [] },
    ];
  },
  PostgresDatabaseGrowingFast: (st) => {
    const pg = st.postgres!;
    // From 20 GB, growing `perMinute` bytes, on claims of 100 GB, for eight hours.
    const series = (perMinute: number) => [
      ...pg.targets.flatMap((t) => [
        s(pg.source === 'postgres-exporter' ? 'pg_database_size_bytes' : 'cnpg_pg_database_size_bytes', { ...t, datname: 'synapse' }, ramp(20e9, perMinute, 480)),
        s(pg.source === 'postgres-exporter' ? 'pg_database_size_bytes' : 'cnpg_pg_database_size_bytes', { ...t, datname: 'postgres' }, steady(10e6, 480)),
      ]),
      ...dbClaims(st).map((c) => s('kubelet_volume_stats_capacity_bytes', kubelet(st, c), steady(100e9, 480))),
    ];
    // At 90 minutes: 20.9 GB + 10 MB, growing 10 MB a minute (14.4 GB a day): full in 79.09 / 14.4 = 5.5 days.
    return [
      {
        name: 'the synapse database grows 10 MB a minute',
        series: series(10e6),
        pendingAt: '50m',
        at: '90m',
        firing: [{ labels: { namespace: st.stackNs }, value: (100e9 - 20.9e9 - 10e6) / (10e6 * 1440) }],
      },
      { name: 'the synapse database grows 1 MB a minute (55 days to full)', series: series(1e6), at: '300m', firing: [] },
      { name: 'the synapse database shrinks (retention purged it)', series: series(-1e6), at: '300m', firing: [] },
    ];
  },
  PostgresTableBloated: (st) => {
    // postgres_exporter's pg_stat_user_tables, for Synapse's database, for three hours.
    const t = st.postgres!.targets[0];
    const table = (relname: string) => ({ ...t, datname: 'synapse', schemaname: 'public', relname });
    const rows = (relname: string, live: number, dead: string) => [
      s('pg_stat_user_tables_n_live_tup', table(relname), steady(live, 180)),
      s('pg_stat_user_tables_n_dead_tup', table(relname), dead),
    ];
    const labels = (relname: string) => ({ namespace: t.namespace, job: t.job, pod: t.pod, datname: 'synapse', schemaname: 'public', relname });
    return [
      {
        name: 'state_groups_state has as many dead rows as live ones (2 million), events 10 %',
        series: [...rows('state_groups_state', 2000000, steady(2000000, 180)), ...rows('events', 1000000, steady(100000, 180))],
        pendingAt: '110m',
        at: '125m',
        firing: [{ labels: labels('state_groups_state'), value: 50 }],
      },
      { name: 'autovacuum removes them after an hour', series: rows('state_groups_state', 2000000, '2000000x60 0x120'), at: '125m', firing: [] },
      { name: 'a small table is 90 % dead rows (9 000)', series: rows('device_lists_stream', 1000, steady(9000, 180)), at: '125m', firing: [] },
    ];
  },
  BackupVolumeNearlyFull: (st) => {
    const backupVolume = kubelet(st, st.backupClaim!);
    // Reported only while a backup mounts the volume: from minute 5 to 15, then gone ("_": no sample).
    const run = (free: number, after = 20) => [
      s('kubelet_volume_stats_available_bytes', backupVolume, `_x5 ${free}x9 _x${after}`),
      s('kubelet_volume_stats_capacity_bytes', backupVolume, `_x5 100x9 _x${after}`),
    ];
    const labels = { namespace: st.stackNs, persistentvolumeclaim: st.backupClaim! };
    return [
      { name: 'a backup run left 4 % free, and the volume is unmounted since', series: run(4), pendingAt: '12m', at: '30m', firing: [{ labels, value: 4 }] },
      { name: 'a backup run left 40 % free', series: run(40), at: '30m', firing: [] },
      { name: 'the run that left 4 % free was more than 26 hours ago', series: run(4, 1600), at: '1590m', firing: [] },
    ];
  },
  PostgresWALArchiveFailing: (st) => {
    // pg_stat_archiver through CloudNativePG's default queries: on the primary only; times are epoch seconds, -1 for never.
    const t = st.postgres!.targets[0];
    const archiver = (archived: string, failed: string) => [s('cnpg_pg_stat_archiver_last_archived_time', t, archived), s('cnpg_pg_stat_archiver_last_failed_time', t, failed)];
    return [
      {
        name: 'every attempt fails from minute 3 on',
        series: archiver(steady(60), then(-1, 3, 200)),
        pendingAt: '8m',
        at: '15m',
        firing: [{ labels: { namespace: t.namespace, job: t.job, pod: t.pod }, value: 200 }],
      },
      { name: 'an attempt failed once, the next ones succeeded', series: archiver(then(60, 5, 400), steady(200)), at: '20m', firing: [] },
      { name: 'archiving has never failed', series: archiver(steady(60), steady(-1)), at: '20m', firing: [] },
    ];
  },
  PostgresBaseBackupTooOld: (st) => {
    // The barman-cloud plugin's metric, reported by every instance; times are seconds since the test's start (0).
    const last = (ts: number) => st.postgres!.targets.map((t) => s('barman_cloud_cloudnative_pg_io_last_available_backup_timestamp', t, steady(ts, 1700)));
    return [
      {
        name: 'the last base backup was taken at the start',
        series: last(0),
        pendingAt: '1600m',
        at: '1630m',
        firing: [{ labels: jobOf(st.postgres!.targets), value: 1630 * 60 }],
      },
      { name: 'the last base backup is 2 hours old', series: last(90000), at: '1630m', firing: [] },
    ];
  },
  LiveKitDown: (st) => [
    { name: "every LiveKit pod's scrape fails", series: upAll(st.livekit, 0), pendingAt: '4m', at: '6m', firing: [{ labels: jobOf(st.livekit), value: 0 }] },
    { name: 'no LiveKit pod at all', series: [], pendingAt: '4m', at: '6m', firing: [{ labels: jobOf(st.livekit), value: 1 }] },
    { name: 'LiveKit answers', series: upAll(st.livekit), at: '20m', firing: [] },
  ],
  LiveKitNodeUnavailable: (st) => [
    {
      name: `one of ${st.livekit.length} LiveKit nodes is down`,
      series: st.livekit.map((t, i) => s('up', t, i === 0 ? then(1, 3, 0) : steady(1))),
      pendingAt: '10m',
      at: '14m',
      firing: [{ labels: jobOf(st.livekit), value: st.livekit.length - 1 }],
    },
    { name: 'every LiveKit node answers', series: upAll(st.livekit), at: '20m', firing: [] },
    { name: "every LiveKit node is down (LiveKitDown's, not this one's)", series: upAll(st.livekit, 0), at: '20m', firing: [] },
  ],
  CoturnDown: (st) => [
    {
      name: `coturn on ${st.coturn[0].instance} stops answering, the other TURN node answers`,
      series: st.coturn.map((t, i) => s('up', t, i === 0 ? then(1, 3, 0) : steady(1))),
      pendingAt: '6m',
      at: '9m',
      firing: [{ labels: st.coturn[0], value: 0 }],
    },
    { name: 'no TURN node runs coturn', series: [], pendingAt: '4m', at: '6m', firing: [{ labels: jobOf(st.coturn), value: 1 }] },
    { name: 'every TURN node answers', series: upAll(st.coturn), at: '20m', firing: [] },
  ],
  TurnAllocationsNearLimit: (st) => {
    // coturn refuses at total-quota (0: none), or when its relay ports run out: it always has one even/odd pair per allocation.
    const quota = confOption(st.coturnConf, 'total-quota');
    const [min, max] = [confOption(st.coturnConf, 'min-port'), confOption(st.coturnConf, 'max-port')];
    const pairs = Math.floor((max - (min + (min % 2)) + 1) / 2);
    const limit = Math.min(quota === 0 ? Infinity : quota, pairs);
    const alloc = (t: Target, n: number) => [s('turn_total_allocations', { ...t, type: 'UDP' }, steady(n - 2)), s('turn_total_allocations', { ...t, type: 'TLS/TCP' }, steady(2))];
    const node = (t: Target) => ({ namespace: t.namespace, job: t.job, pod: t.pod, instance: t.instance });
    return [
      {
        name: `one node holds 90 % of the ${limit} allocations coturn takes`,
        series: [...alloc(st.coturn[0], Math.floor(limit * 0.9)), ...alloc(st.coturn[1], 10)],
        pendingAt: '4m',
        at: '6m',
        firing: [{ labels: node(st.coturn[0]), value: Math.floor(limit * 0.9) }],
      },
      { name: `both nodes hold half of the ${limit}`, series: st.coturn.flatMap((t) => alloc(t, Math.floor(limit / 2))), at: '20m', firing: [] },
    ];
  },
  CertificateExpiringSoon: (st) => {
    const [ns1, name1, issuer1] = st.certificates[0];
    // Another namespace's, when there is one: both of the stack's namespaces are watched.
    const [ns2, name2, issuer2] = st.certificates.find(([ns]) => ns !== ns1) ?? st.certificates[st.certificates.length - 1];
    const cm = { job: 'cert-manager', instance: '10.0.8.8:9402' };
    const issuer = (i: string) => ({ issuer_name: i, issuer_kind: 'ClusterIssuer', issuer_group: 'cert-manager.io' });
    // cert-manager's chart default (honorLabels false): the Certificate's namespace arrives as exported_namespace.
    const exported = (expiry: number) =>
      s('certmanager_certificate_expiration_timestamp_seconds', { namespace: 'cert-manager', exported_namespace: ns1, name: name1, ...issuer(issuer1), ...cm }, steady(expiry, 80));
    // With honorLabels: true, as namespace.
    const honoured = (expiry: number) => s('certmanager_certificate_expiration_timestamp_seconds', { namespace: ns2, name: name2, ...issuer(issuer2), ...cm }, steady(expiry, 80));
    // Someone else's certificate, about to expire: not this stack's business.
    const foreign = s(
      'certmanager_certificate_expiration_timestamp_seconds',
      { namespace: 'cert-manager', exported_namespace: 'default', name: 'other-tls', ...issuer('other'), ...cm },
      steady(3600 * 5, 80),
    );
    const day = 86400;
    const at = 61 * 60;
    return [
      {
        name: `${ns1}/${name1} (exported_namespace) has 20 days left`,
        series: [exported(20 * day + 7200), honoured(60 * day), foreign],
        pendingAt: '59m',
        at: '61m',
        firing: [{ labels: { namespace: ns1, exported_namespace: ns1, name: name1, ...issuer(issuer1), ...cm }, value: 20 * day + 7200 - at, severity: 'warning' }],
      },
      {
        name: `${ns2}/${name2} (namespace, honorLabels) has 6 days left: warning and critical`,
        series: [exported(60 * day), honoured(6 * day + 7200), foreign],
        pendingAt: '59m',
        at: '61m',
        firing: ['warning', 'critical'].map((severity) => ({ labels: { namespace: ns2, name: name2, ...issuer(issuer2), ...cm }, value: 6 * day + 7200 - at, severity })),
      },
      { name: 'both have 25 days left', series: [exported(25 * day), honoured(25 * day), foreign], at: '70m', firing: [] },
    ];
  },
};

// ---------------------------------------------------------------------------
// Expected annotations: the rules' templates, expanded as Prometheus does for
// the few constructs they use (anything else fails here, on purpose).
// ---------------------------------------------------------------------------

/** Prometheus's humanizeDuration (prometheus/common helpers/templates) for values of a minute or more. */
function humanizeDuration(v: number): string {
  if (!(v >= 60)) throw new Error(`humanizeDuration(${v}): only durations of a minute or more are expected here`);
  const d = Math.trunc(v);
  const [sec, min, hours, days] = [d % 60, Math.trunc(d / 60) % 60, Math.trunc(d / 3600) % 24, Math.trunc(d / 86400)];
  if (days !== 0) return `${days}d ${hours}h ${min}m ${sec}s`;
  if (hours !== 0) return `${hours}h ${min}m ${sec}s`;
  return `${min}m ${sec}s`;
}

function expand(template: string, labels: Labels, value: number): string {
  const withIfs = template.replace(/\{\{ if \$labels\.(\w+) \}\}(.*?)\{\{ end \}\}/g, (_, l: string, body: string) => (labels[l] ? body : ''));
  return withIfs.replace(/\{\{(.*?)\}\}/g, (_, raw: string) => {
    const e = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^\$labels\.(\w+)$/.exec(e))) return labels[m[1]] ?? '';
    if ((m = /^printf "%\.(\d)f" \$value$/.exec(e))) {
      if (Number.isNaN(value)) throw new Error(`a scenario gives no value for ${template}`);
      return value.toFixed(Number(m[1]));
    }
    if (e === '$value | humanizeDuration') return humanizeDuration(value);
    throw new Error(`the test cannot expand {{ ${e} }} (in "${template}"): extend expand()`);
  });
}

// ---------------------------------------------------------------------------
// promtool
// ---------------------------------------------------------------------------

function promtool(args: string[], cwd: string): { code: number; out: string } {
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** The unit-test file for one render: a test group per case, evaluating its alert before `for` has passed and after. */
function unitTests(st: Stack): { file: object; groups: number } {
  const tests: object[] = [];
  for (const [alertname, scenario] of Object.entries(SCENARIOS)) {
    const rules = st.rules.filter((r) => r.alert === alertname);
    if (rules.length === 0) continue;
    for (const c of scenario(st)) {
      const expAlerts = c.firing.map((f) => {
        const rule = rules.length === 1 ? rules[0] : rules.find((r) => r.labels.severity === f.severity);
        if (!rule) throw new Error(`${alertname}: ${rules.length} rules and no severity "${f.severity}" picks one`);
        const labels = { ...f.labels, ...rule.labels };
        return {
          exp_labels: labels,
          exp_annotations: Object.fromEntries(Object.entries(rule.annotations).map(([k, v]) => [k, expand(v, f.labels, f.value)])),
        };
      });
      tests.push({
        name: `${st.name}: ${alertname}: ${c.name}`,
        interval: '1m',
        input_series: c.series.map((x) => ({ series: seriesText(x.labels), values: x.values })),
        alert_rule_test: [...(c.pendingAt !== undefined ? [{ eval_time: c.pendingAt, alertname, exp_alerts: [] }] : []), { eval_time: c.at, alertname, exp_alerts: expAlerts }],
      });
    }
  }
  return { file: { rule_files: ['rules.yaml'], evaluation_interval: '1m', tests }, groups: tests.length };
}

function seriesText(l: Labels): string {
  const { __name__: name, ...rest } = l;
  return `${name}{${Object.entries(rest)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ')}}`;
}

/** Every PrometheusRule's groups as one Prometheus rule file. */
function ruleFile(ms: Manifest[]): string {
  return yaml.dump({ groups: ms.filter((m) => m.kind === 'PrometheusRule').flatMap((m) => m.spec.groups) }, { lineWidth: -1 });
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

const RENDERS: [string, object][] = [
  ['default config', { monitoring: { enabled: true } }],
  ['production: workers, three LiveKit nodes', { ...PRODUCTION, livekit: { replicas: 3 }, monitoring: { enabled: true } }],
  [
    'CloudNativePG with WAL archiving',
    {
      ...PRODUCTION,
      postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres' } } },
      monitoring: { enabled: true },
    },
  ],
];

describe(`alerting rules with ${PROMTOOL_VERSION}`, () => {
  describe.each(RENDERS)('%s', (name, overrides) => {
    const st = stackOf(name, overrides);
    let dir: string;

    beforeAll(() => {
      dir = tempDir('alerts');
      fs.writeFileSync(path.join(dir, 'rules.yaml'), ruleFile(st.ms));
    });

    test('every alert has a scenario', () => {
      const alerts = new Set(st.rules.map((r) => r.alert));
      expect([...alerts].filter((a) => !(a in SCENARIOS))).toEqual([]);
      // Scenarios for alerts this render does not have are skipped; each must exist in some render (checked below).
      expect(alerts.size).toBeGreaterThan(8);
    });

    test('promtool check rules accepts every rule', () => {
      const r = promtool(['check', 'rules', 'rules.yaml'], dir);
      expect(r.out).toContain(`SUCCESS: ${st.rules.length} rules found`);
      expect(r.code).toBe(0);
    });

    test('each alert fires exactly once on its failure, with its labels and annotations, and stays silent otherwise', () => {
      const { file, groups } = unitTests(st);
      fs.writeFileSync(path.join(dir, 'tests.yaml'), yaml.dump(file, { lineWidth: -1 }));
      const r = promtool(['test', 'rules', 'tests.yaml'], dir);
      if (r.code !== 0) throw new Error(`promtool test rules failed (${dir}/tests.yaml):\n${r.out}`);
      expect(r.out).toContain('SUCCESS');
      // Two or more cases for every alert of this render, at least one of which fires.
      for (const alert of new Set(st.rules.map((x) => x.alert))) {
        const cases = SCENARIOS[alert](st);
        expect([alert, cases.length >= 2, cases.some((c) => c.firing.length > 0), cases.some((c) => c.firing.length === 0)]).toEqual([alert, true, true, true]);
      }
      expect(groups).toBeGreaterThan(20);
    });

    test("the Grafana dashboards' queries are valid PromQL (checked as recording rules)", () => {
      const dashboards = st.ms.filter((m) => m.kind === 'ConfigMap' && m.metadata.labels?.grafana_dashboard === '1');
      expect(dashboards.length).toBeGreaterThanOrEqual(4);
      const rules = dashboards.flatMap((d) =>
        Object.values(d.data as Record<string, string>).flatMap((json) =>
          JSON.parse(json).panels.flatMap((p: any) =>
            p.targets.map((t: any, i: number) => ({
              record: `kudo:dashboard:${d.metadata.name.replace(/-/g, '_')}_${p.id}_${i}`,
              expr: t.expr.replaceAll('$__rate_interval', '5m'),
            })),
          ),
        ),
      );
      fs.writeFileSync(path.join(dir, 'dashboards.yaml'), yaml.dump({ groups: [{ name: 'dashboards', rules }] }, { lineWidth: -1 }));
      const r = promtool(['check', 'rules', 'dashboards.yaml'], dir);
      expect(r.out).toContain(`SUCCESS: ${rules.length} rules found`);
    });
  });

  test('every scenario belongs to an alert some render has', () => {
    const all = new Set(RENDERS.flatMap(([n, o]) => stackOf(n, o).rules.map((r) => r.alert)));
    expect(Object.keys(SCENARIOS).filter((a) => !all.has(a))).toEqual([]);
  });

  describe('the test can fail: promtool rejects mutated rules', () => {
    const st = stackOf('default config', RENDERS[0][1]);
    const run = (mutate: (rules: string) => string) => {
      const dir = tempDir('alerts-mutated');
      const original = ruleFile(st.ms);
      const mutated = mutate(original);
      expect(mutated).not.toEqual(original);
      fs.writeFileSync(path.join(dir, 'rules.yaml'), mutated);
      fs.writeFileSync(path.join(dir, 'tests.yaml'), yaml.dump(unitTests(st).file, { lineWidth: -1 }));
      return promtool(['test', 'rules', 'tests.yaml'], dir);
    };

    test('a backup threshold of 260 hours instead of 26', () => {
      const r = run((rules) => rules.replaceAll('> 93600', '> 936000'));
      expect(r.code).not.toBe(0);
      expect(r.out).toContain('alertname: BackupTooOld');
      expect(r.out).not.toContain('alertname: CoturnDown');
    });

    test("coturn's job guessed from the ServiceMonitor's name instead of the Service's", () => {
      const r = run((rules) => rules.replaceAll('job="coturn-metrics"', 'job="coturn"'));
      expect(r.code).not.toBe(0);
      expect(r.out).toContain('alertname: CoturnDown');
      expect(r.out).toContain('alertname: TurnAllocationsNearLimit');
    });
  });
});

// ---------------------------------------------------------------------------
// Table bloat, from the real programs: PostgreSQL as the StatefulSet runs it and postgres_exporter as its
// container runs beside it (in the pod's network, with its rendered environment). A table autovacuum may not
// touch is filled and mostly deleted, the exporter scraped, then the table vacuumed and scraped again; promtool
// evaluates the rendered rule on each scrape's series, held for longer than the rule's `for`.
// ---------------------------------------------------------------------------

/** The samples of the text exposition format whose name starts with `prefix` (NaN and infinities left out). */
function scrapedSamples(text: string, prefix: string): { labels: Labels; value: number }[] {
  const out: { labels: Labels; value: number }[] = [];
  for (const line of text.split('\n').filter((l) => l.startsWith(prefix))) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`cannot read the exporter's line: ${line}`);
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const labels: Labels = { __name__: m[1] };
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = JSON.parse(`"${l[2]}"`);
    out.push({ labels, value });
  }
  return out;
}

describe('PostgresTableBloated on what the real postgres_exporter reports of a real PostgreSQL', () => {
  const overrides = RENDERS[0][1];
  const st = stackOf('default config', overrides);
  const sts = find(st.ms, 'StatefulSet', 'postgres');
  const exporterContainer = container(sts, 'exporter');
  let pg: RunningPostgres | undefined;
  let exporter: Program | undefined;
  let metricsUrl: string;
  let dir: string;

  beforeAll(async () => {
    const { config } = rendered(overrides);
    const values = await generatedSecrets(st.ms);
    pg = await startPostgres(st.ms, config, values);
    dir = tempDir('postgres-exporter');
    // paths: the password volume as the exporter mounts it; ports: the server listens on the test's port.
    const secrets = path.join(dir, 'secrets');
    writeSecretFiles(secrets, secretVolumeFiles(sts, 'password', config, values));
    const mount = exporterContainer.volumeMounts.find((m: any) => m.name === 'password').mountPath;
    const env: Record<string, string> = Object.fromEntries(exporterContainer.env.map((e: any) => [e.name, rewritePaths(e.value, { [mount]: secrets })]));
    const serverPort = container(sts, 'postgres').ports[0].containerPort;
    env.DATA_SOURCE_URI = replaceOnce(env.DATA_SOURCE_URI, `:${serverPort}/`, `:${pg.port}/`);
    const [cmd, args] = pg.network.wrap(postgresExporterPath(), exporterContainer.args ?? []);
    exporter = new Program('postgres_exporter', cmd, args, { logDir: dir, env: { PATH: process.env.PATH, ...env } });
    // Scraped where prometheus-operator scrapes it: the pod's address, the container's metrics port.
    metricsUrl = `http://${pg.host}:${exporterContainer.ports.find((p: any) => p.name === 'metrics').containerPort}/metrics`;
    await exporter.waitFor('pg_up 1', async () => /^pg_up 1$/m.test(await (await fetch(metricsUrl)).text()), 30_000);
  });

  afterAll(async () => {
    await exporter?.stop();
    await pg?.stop();
  });

  /** The table's series, once the exporter reports `until` of them (the statistics reach it within a second or so). */
  async function scrape(until: (table: Record<string, number>) => boolean): Promise<{ samples: { labels: Labels; value: number }[]; table: Record<string, number> }> {
    for (let i = 0; ; i++) {
      const samples = scrapedSamples(await (await fetch(metricsUrl)).text(), 'pg_');
      const table = Object.fromEntries(
        samples.filter((x) => x.labels.relname === 'bloated').map((x) => [x.labels.__name__.replace('pg_stat_user_tables_', ''), x.value] as [string, number]),
      );
      if (until(table)) return { samples, table };
      if (i === 50) throw new Error(`the exporter never reported what the test waits for; it reports ${JSON.stringify(table)}`);
      await sleep(200);
    }
  }

  test('fires for a table 90 % dead rows that autovacuum may not touch, and not once it is vacuumed, nor for a small one', async () => {
    const rule = st.rules.find((r) => r.alert === 'PostgresTableBloated');
    if (rule === undefined) throw new Error('the rendered PrometheusRules have no PostgresTableBloated alert');
    const p = pg!;
    // Synapse's role in its database, as Synapse's own tables; autovacuum off, as when it falls behind. 200 000 rows
    // then 180 000 deleted: above the alert's floor of dead rows; the small table's 4 500 are below it.
    p.psql(
      'CREATE TABLE bloated (id bigint PRIMARY KEY, body text) WITH (autovacuum_enabled = off); ' +
        'CREATE TABLE small (id bigint PRIMARY KEY, body text) WITH (autovacuum_enabled = off); ' +
        'INSERT INTO bloated SELECT i, md5(i::text) FROM generate_series(1, 200000) i; ' +
        'INSERT INTO small SELECT i, md5(i::text) FROM generate_series(1, 5000) i',
    );
    p.psql('DELETE FROM bloated WHERE id % 10 <> 0; DELETE FROM small WHERE id % 10 <> 0');
    const before = await scrape((t) => t.n_dead_tup === 180000);
    // Never autovacuumed: the exporter reports the time as 0.
    expect([before.table.n_live_tup, before.table.last_autovacuum, before.table.last_vacuum]).toEqual([20000, 0, 0]);
    expect(before.samples.find((x) => x.labels.__name__ === 'pg_stat_user_tables_n_dead_tup' && x.labels.relname === 'small')?.value).toBe(4500);
    // The query of docs/scaling.md, as an operator runs it by hand, puts the table first.
    const readme = fs.readFileSync(path.join(ROOT, 'docs', 'scaling.md'), 'utf8');
    const growth = readme.slice(readme.indexOf('\n## Growth: '), readme.indexOf('\n## ', readme.indexOf('\n## Growth: ') + 1));
    const query = /```sql\n([^`]+)```/.exec(growth)?.[1];
    if (query === undefined) throw new Error('docs/scaling.md\'s "Growth" section has no sql block');
    expect(p.psql(query).split('\n')[0]).toMatch(/^bloated\|20000\|180000\|90\|\|\|\d+ MB$/);
    // VACUUM cannot run in a transaction block: one statement per psql.
    p.psql('VACUUM (VERBOSE) bloated');
    p.psql('VACUUM small');
    const after = await scrape((t) => t.n_dead_tup === 0);
    expect(after.table.n_live_tup).toBe(20000);
    expect(after.table.last_vacuum).toBeGreaterThan(0);

    // prometheus-operator's target labels on every series; an exporter label of the same name becomes exported_<name>.
    const target = st.postgres!.targets[0];
    const minutes = Number(/^(\d+)h$/.exec(rule.for)?.[1] ?? NaN) * 60;
    if (!(minutes > 0)) throw new Error(`the test reads the rule's "for" in hours, not ${rule.for}`);
    const input = (samples: { labels: Labels; value: number }[]) =>
      samples.map(({ labels, value }) => {
        const renamed = Object.fromEntries(Object.entries(labels).map(([k, v]) => [k in target ? `exported_${k}` : k, v]));
        return { series: seriesText({ ...renamed, ...target }), values: steady(value, minutes + 10) };
      });
    const alertLabels = { namespace: target.namespace, job: target.job, pod: target.pod, datname: p.database, schemaname: 'public', relname: 'bloated' };
    const alertname = 'PostgresTableBloated';
    const tests = [
      {
        name: 'bloated: 180 000 dead rows of 200 000, small: 4 500 of 5 000',
        interval: '1m',
        input_series: input(before.samples),
        alert_rule_test: [
          { eval_time: `${minutes - 5}m`, alertname, exp_alerts: [] },
          {
            eval_time: `${minutes + 5}m`,
            alertname,
            exp_alerts: [
              {
                exp_labels: { ...alertLabels, ...rule.labels },
                exp_annotations: Object.fromEntries(Object.entries(rule.annotations).map(([k, v]) => [k, expand(v, alertLabels, 90)])),
              },
            ],
          },
        ],
      },
      { name: 'both vacuumed', interval: '1m', input_series: input(after.samples), alert_rule_test: [{ eval_time: `${minutes + 5}m`, alertname, exp_alerts: [] }] },
    ];
    fs.writeFileSync(path.join(dir, 'rules.yaml'), ruleFile(st.ms));
    fs.writeFileSync(path.join(dir, 'tests.yaml'), yaml.dump({ rule_files: ['rules.yaml'], evaluation_interval: '1m', tests }, { lineWidth: -1 }));
    const r = promtool(['test', 'rules', 'tests.yaml'], dir);
    if (r.code !== 0) throw new Error(`promtool test rules failed (${dir}/tests.yaml):\n${r.out}`);
    expect(r.out).toContain('SUCCESS');
  });
});
