import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { Testing } from 'cdk8s';
import { MonitoringChart, turnAllocationLimit } from '../charts/monitoring';
import { config, container, find, Manifest, PRODUCTION, synthAll, synthChart } from './util';

const on = config({ monitoring: { enabled: true, serviceMonitorLabels: { release: 'prometheus' } } });
const all = synthAll(on);

// dist/ records the default shape; this optional chart is recorded here.
test('shape with monitoring on', () => {
  expect(synthChart('60-monitoring', on)).toMatchSnapshot();
});

test('off by default: no ServiceMonitors, exporters, alerts or dashboards', () => {
  const plain = synthAll();
  expect(plain.filter((m) => ['ServiceMonitor', 'PodMonitor', 'PrometheusRule'].includes(m.kind))).toEqual([]);
  expect(plain.filter((m) => m.kind === 'ConfigMap' && m.metadata.labels?.grafana_dashboard !== undefined)).toEqual([]);
  expect(find(plain, 'StatefulSet', 'postgres').spec.template.spec.containers.map((c: any) => c.name)).toEqual(['postgres', 'tls-reload']);
});

test('a ServiceMonitor for every metrics endpoint, with the labels Prometheus selects', () => {
  const monitors = all.filter((m) => m.kind === 'ServiceMonitor');
  expect(monitors.map((m) => `${m.metadata.namespace}/${m.metadata.name} ${m.spec.endpoints[0].path}`).sort()).toEqual([
    'kudo-media/coturn /metrics',
    'kudo-media/livekit /metrics',
    'kudo/postgres /metrics',
    'kudo/redis /metrics',
    'kudo/synapse /_synapse/metrics',
  ]);
  for (const m of monitors) {
    expect(m.metadata.labels!.release).toBe('prometheus');
    // Each selects a Service that exists and has the named port.
    const svc = all.find(
      (s) =>
        s.kind === 'Service' &&
        s.metadata.namespace === m.metadata.namespace &&
        s.metadata.labels?.['app.kubernetes.io/name'] === m.spec.selector.matchLabels['app.kubernetes.io/name'] &&
        s.spec.ports.some((p: any) => p.name === m.spec.endpoints[0].port),
    );
    expect([m.metadata.name, svc?.metadata.name]).toEqual([m.metadata.name, expect.any(String)]);
  }
});

test('exporters beside PostgreSQL and Redis, each reading its password from a file', () => {
  const pg = container(find(all, 'StatefulSet', 'postgres'), 'exporter');
  expect(pg.image).toBe('quay.io/prometheuscommunity/postgres-exporter:v0.18.1');
  expect(pg.env).toContainEqual({ name: 'DATA_SOURCE_PASS_FILE', value: '/secrets/password' });
  expect(pg.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
  const redis = container(find(all, 'StatefulSet', 'redis'), 'exporter');
  // redis_exporter's password file maps the address it scrapes to the password, written by an init step from the Secret.
  expect(redis.env).toEqual([{ name: 'REDIS_ADDR', value: 'redis://127.0.0.1:6379' }]);
  expect(redis.args).toEqual(['--redis.password-file=/run/redis/exporter-passwords.json']);
  const init = container(find(all, 'StatefulSet', 'redis'), 'exporter-password');
  expect(init.command[2]).toContain('> /run/redis/exporter-passwords.json');
  expect(init.command[2]).toContain('{"redis://127.0.0.1:6379": "%s"}');
  expect(find(all, 'Service', 'coturn-metrics').spec).toMatchObject({ clusterIP: 'None', ports: [{ name: 'metrics', port: 9641 }] });
});

test('NetworkPolicies let Prometheus scrape, and only the metrics ports', () => {
  const synapse = find(all, 'NetworkPolicy', 'synapse');
  const scrape = synapse.spec.ingress.find((r: any) => r.from[0].namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring');
  expect(scrape.ports).toEqual([{ protocol: 'TCP', port: 9000 }]);
  expect(find(all, 'NetworkPolicy', 'postgres').spec.ingress[1].ports).toEqual([{ protocol: 'TCP', port: 9187 }]);
  expect(find(all, 'NetworkPolicy', 'redis').spec.ingress[1].ports).toEqual([{ protocol: 'TCP', port: 9121 }]);
});

test("the Redis exporter's password file is JSON for any password, written by the init step's own script under sh", () => {
  const script: string = container(find(all, 'StatefulSet', 'redis'), 'exporter-password').command[2];
  const dir = mkdtempSync(join(tmpdir(), 'kudo-exporter-'));
  try {
    const password = 'a"b\\c$d`e\'f';
    writeFileSync(join(dir, 'password'), password);
    // The same script, pointed at a scratch directory instead of the pod's mounts.
    execFileSync('sh', ['-c', script.replaceAll('/secrets/password', join(dir, 'password')).replaceAll('/run/redis/', `${dir}/`)]);
    expect(JSON.parse(readFileSync(join(dir, 'exporter-passwords.json'), 'utf8'))).toEqual({ 'redis://127.0.0.1:6379': password });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------
// Alerts (PrometheusRules) and dashboards. test/e2e/alerts.e2e.test.ts runs the rules in promtool.
// ---------------------------------------------------------------------------

const rulesOf = (ms: Manifest[]) => ms.filter((m) => m.kind === 'PrometheusRule');
const alertsOf = (ms: Manifest[]) => rulesOf(ms).flatMap((m) => m.spec.groups.flatMap((g: any) => g.rules));
const alert = (ms: Manifest[], name: string) => {
  const hits = alertsOf(ms).filter((r: any) => r.alert === name);
  if (hits.length !== 1) throw new Error(`expected one rule ${name}, found ${hits.length}`);
  return hits[0];
};
const dashboardsOf = (ms: Manifest[]) => ms.filter((m) => m.kind === 'ConfigMap' && m.metadata.name.startsWith('grafana-dashboard-'));

const production = synthAll(config({ ...PRODUCTION, livekit: { replicas: 3 }, monitoring: { enabled: true } }));
const cloudnativePg = synthAll(config({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } }, monitoring: { enabled: true } }));
const external = synthAll(config({ postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'require' } }, monitoring: { enabled: true } }));

test('a PrometheusRule per component, in its namespace, labelled for Prometheus to select', () => {
  expect(rulesOf(all).map((m) => `${m.metadata.namespace}/${m.metadata.name}`)).toEqual([
    'kudo/synapse',
    'kudo/postgres',
    'kudo/redis',
    'kudo/backup',
    'kudo/volumes',
    'kudo-media/livekit',
    'kudo-media/coturn',
    'kudo/certificates',
  ]);
  for (const m of rulesOf(all)) expect(m.metadata.labels).toMatchObject({ release: 'prometheus', 'app.kubernetes.io/part-of': 'kudo' });
  expect(alertsOf(all).map((r: any) => r.alert)).toEqual([
    'SynapseDown',
    'SynapseEventSendSlow',
    'SynapseEventPersistenceSlow',
    'PostgresDown',
    'PostgresConnectionsNearMax',
    'PostgresDatabaseNearVolume',
    'PostgresDatabaseGrowingFast',
    'PostgresTableBloated',
    'RedisDown',
    'BackupTooOld',
    'BackupVolumeNearlyFull',
    'VolumeNearlyFull',
    'VolumeFillingUp',
    'LiveKitDown',
    'CoturnDown',
    'TurnAllocationsNearLimit',
    'CertificateExpiringSoon',
    'CertificateExpiringSoon',
  ]);
});

test.each([
  ['default', all],
  ['production', production],
  ['CloudNativePG', cloudnativePg],
  ['external database', external],
])('%s: every rule has a severity, a summary, a description, a runbook and a hold time', (_, ms) => {
  expect(alertsOf(ms).length).toBeGreaterThan(8);
  for (const r of alertsOf(ms)) {
    expect([r.alert, r.labels.severity]).toEqual([r.alert, expect.stringMatching(/^(critical|warning)$/)]);
    expect([r.alert, Object.keys(r.annotations).sort()]).toEqual([r.alert, ['description', 'runbook', 'summary']]);
    for (const text of Object.values<string>(r.annotations)) expect(text.length).toBeGreaterThan(10);
    expect([r.alert, r.for]).toEqual([r.alert, expect.stringMatching(/^[0-9]+[mh]$/)]);
  }
});

/** The (namespace, job) pairs prometheus-operator scrapes: the Service name for a ServiceMonitor, <namespace>/<name> for a PodMonitor. */
function scrapedJobs(ms: Manifest[]): Set<string> {
  const jobs = new Set<string>();
  for (const sm of ms.filter((m) => m.kind === 'ServiceMonitor')) {
    for (const svc of ms.filter(
      (m) =>
        m.kind === 'Service' &&
        sm.spec.namespaceSelector.matchNames.includes(m.metadata.namespace) &&
        Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => m.metadata.labels?.[k] === v) &&
        m.spec.ports.some((p: any) => p.name === sm.spec.endpoints[0].port),
    )) {
      jobs.add(`${svc.metadata.namespace} ${svc.metadata.name}`);
    }
  }
  for (const pm of ms.filter((m) => m.kind === 'PodMonitor')) jobs.add(`${pm.metadata.namespace} ${pm.metadata.namespace}/${pm.metadata.name}`);
  return jobs;
}

/** Every (namespace, job) an expression selects by: each {...} with both. */
function selectedJobs(expr: string): string[] {
  return [...expr.matchAll(/\{([^}]*)\}/g)].flatMap(([, body]) => {
    const ns = /(?:^|, )namespace="([^"]+)"/.exec(body)?.[1];
    const job = /(?:^|, )job(=~?)"([^"]+)"/.exec(body);
    if (ns === undefined || job === null) return [];
    return (job[1] === '=~' ? job[2].split('|') : [job[2]]).map((j) => `${ns} ${j}`);
  });
}

test.each([
  ['default', all],
  ['production', production],
  ['CloudNativePG', cloudnativePg],
  ['external database', external],
])("%s: every job an alert or a dashboard selects is one that prometheus-operator scrapes (the Service's name)", (_, ms) => {
  const scraped = scrapedJobs(ms);
  const exprs = [
    ...alertsOf(ms).map((r: any) => r.expr as string),
    ...dashboardsOf(ms).flatMap((d) => Object.values(d.data as Record<string, string>).flatMap((j) => JSON.parse(j).panels.flatMap((p: any) => p.targets.map((t: any) => t.expr)))),
  ];
  const selected = exprs.flatMap(selectedJobs);
  expect(selected.length).toBeGreaterThan(20);
  // And no monitor scrapes nothing (in cloudnative-pg and external modes there is no postgres_exporter Service).
  expect(
    ms
      .filter((m) => m.kind === 'ServiceMonitor')
      .filter((m) => ![...scraped].some((j) => j.startsWith(`${m.metadata.namespace} `) && scrapedJobs([m, ...ms.filter((x) => x.kind === 'Service')]).has(j)))
      .map((m) => m.metadata.name),
  ).toEqual([]);
  expect(selected.filter((j) => !scraped.has(j))).toEqual([]);
  // coturn's job is the Service made for it, not the ServiceMonitor's name.
  expect(selected).toContain('kudo-media coturn-metrics');
});

test('with workers: every Synapse process and the router are watched; with 3 LiveKit nodes, a node lost warns', () => {
  const processes = [...scrapedJobs(production)].filter((j) => j.startsWith('kudo synapse') && j !== 'kudo synapse-router');
  expect(processes).toContain('kudo synapse-event-persister');
  expect([...new Set(selectedJobs(alert(production, 'SynapseDown').expr))].sort()).toEqual(processes.sort());
  expect(alert(production, 'SynapseRouterDown').expr).toContain('job="synapse-router"');
  expect(alert(production, 'LiveKitNodeUnavailable').expr).toBe('(sum by (namespace, job) (up{namespace="kudo-media", job="livekit"}) < 3) > 0');
  // One node: LiveKitDown says it all.
  expect(alertsOf(all).map((r: any) => r.alert)).not.toContain('LiveKitNodeUnavailable');
});

test("PostgreSQL's alerts follow postgres.mode: postgres_exporter, CloudNativePG's metrics, or none for an external database", () => {
  expect(alert(all, 'PostgresConnectionsNearMax').expr).toContain('pg_stat_activity_count{namespace="kudo", job="postgres", backend_type="client backend"}');
  expect(alert(all, 'PostgresConnectionsNearMax').expr).toContain('pg_settings_superuser_reserved_connections{namespace="kudo", job="postgres"}) - 5)');
  expect(alert(cloudnativePg, 'PostgresDown').expr).toContain('cnpg_collector_up{namespace="kudo", job="kudo/postgres"}');
  expect(alert(cloudnativePg, 'PostgresConnectionsNearMax').expr).toContain('cnpg_backends_total{namespace="kudo", job="kudo/postgres", usename!="streaming_replica"}');
  expect(rulesOf(external).map((m) => m.metadata.name)).not.toContain('postgres');
  // The dumps still run against an external database, and are watched.
  expect(rulesOf(external).map((m) => m.metadata.name)).toContain('backup');
});

test('the backup alert watches the backup CronJobs that run, and goes with backups', () => {
  const running = all.filter((m) => m.kind === 'CronJob' && m.metadata.labels?.['app.kubernetes.io/name'] === 'backup' && !m.spec.suspend).map((m) => m.metadata.name);
  expect(running).toEqual(['postgres-backup', 'media-backup']);
  expect(alert(all, 'BackupTooOld').expr).toContain(`cronjob=~"${running.join('|')}"`);
  expect(alert(all, 'BackupTooOld').expr).toContain('> 93600');
  const noBackup = synthAll(config({ backup: { enabled: false }, monitoring: { enabled: true } }));
  expect(rulesOf(noBackup).map((m) => m.metadata.name)).not.toContain('backup');
});

test('volumes near full: the media and the database claims, and the backup volume over the last day (it is mounted only while a backup runs)', () => {
  // Claim names from the rendered objects: the media PVC, the StatefulSet's claim template for pod 0, the backup PVC.
  const pvc = (ms: Manifest[], name: string) => ms.find((m) => m.kind === 'PersistentVolumeClaim' && m.metadata.labels?.['app.kubernetes.io/name'] === name)!.metadata.name;
  const pg = find(all, 'StatefulSet', 'postgres');
  const dataClaim = `${pg.spec.volumeClaimTemplates[0].metadata.name}-postgres-0`;
  expect([pvc(all, 'synapse'), dataClaim, pvc(all, 'backup')]).toEqual(['synapse-media', 'data-postgres-0', 'kudo-backups']);
  const claims = 'persistentvolumeclaim=~"synapse-media|data-postgres-0"';
  expect(alert(all, 'VolumeNearlyFull').expr).toBe(
    `100 * max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_available_bytes{namespace="kudo", ${claims}})\n` +
      `/ max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_capacity_bytes{namespace="kudo", ${claims}}) < 10`,
  );
  expect(alert(all, 'VolumeNearlyFull').for).toBe('15m');
  // CloudNativePG names a claim after each instance (postgres-1, postgres-2, ...; a replaced one gets the next number).
  expect(alert(cloudnativePg, 'VolumeNearlyFull').expr).toContain('persistentvolumeclaim=~"synapse-media|postgres-[0-9]+"');
  expect(alert(external, 'VolumeNearlyFull').expr).toContain('persistentvolumeclaim=~"synapse-media"');
  const backups = alert(all, 'BackupVolumeNearlyFull');
  expect(backups.expr).toBe(
    '100 * min by (namespace, persistentvolumeclaim) (min_over_time(kubelet_volume_stats_available_bytes{namespace="kudo", persistentvolumeclaim="kudo-backups"}[26h]))\n' +
      '/ max by (namespace, persistentvolumeclaim) (max_over_time(kubelet_volume_stats_capacity_bytes{namespace="kudo", persistentvolumeclaim="kudo-backups"}[26h])) < 10',
  );
  expect(backups.for).toBe('15m');
  const noBackup = synthAll(config({ backup: { enabled: false }, monitoring: { enabled: true } }));
  expect(alertsOf(noBackup).map((r: any) => r.alert)).not.toContain('BackupVolumeNearlyFull');
});

test("growth: a claim full within a day at the last 6 hours' pace, and the databases against PostgreSQL's claim", () => {
  const claims = 'persistentvolumeclaim=~"synapse-media|data-postgres-0"';
  const filling = alert(all, 'VolumeFillingUp');
  expect(filling.expr).toBe(
    `max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_available_bytes{namespace="kudo", ${claims}})\n` +
      `/ max by (namespace, persistentvolumeclaim) (-deriv(kubelet_volume_stats_available_bytes{namespace="kudo", ${claims}}[6h]))\n/ 3600 > 0 < 24`,
  );
  expect([filling.for, filling.labels.severity]).toEqual(['1h', 'critical']);
  const size = 'max by (namespace) (sum by (namespace, pod) (pg_database_size_bytes{namespace="kudo", job="postgres"}))';
  const capacity = 'min by (namespace) (kubelet_volume_stats_capacity_bytes{namespace="kudo", persistentvolumeclaim=~"data-postgres-0"})';
  expect(alert(all, 'PostgresDatabaseNearVolume').expr).toBe(`100 * ${size}\n/ ${capacity} > 80`);
  expect(alert(all, 'PostgresDatabaseNearVolume').for).toBe('30m');
  expect(alert(all, 'PostgresDatabaseGrowingFast').expr).toBe(
    `(${capacity} - ${size})\n/ max by (namespace) (sum by (namespace, pod) (deriv(pg_database_size_bytes{namespace="kudo", job="postgres"}[6h])))\n/ 86400 > 0 < 7`,
  );
  expect(alert(all, 'PostgresDatabaseGrowingFast').for).toBe('1h');
  // CloudNativePG: its own metric, one claim per instance.
  expect(alert(cloudnativePg, 'PostgresDatabaseNearVolume').expr).toBe(
    '100 * max by (namespace) (sum by (namespace, pod) (cnpg_pg_database_size_bytes{namespace="kudo", job="kudo/postgres"}))\n' +
      '/ min by (namespace) (kubelet_volume_stats_capacity_bytes{namespace="kudo", persistentvolumeclaim=~"postgres-[0-9]+"}) > 80',
  );
  // An external database's volume is not the cluster's.
  expect(alertsOf(external).map((r: any) => r.alert)).not.toContain('PostgresDatabaseGrowingFast');
  expect(alertsOf(external).map((r: any) => r.alert)).toContain('VolumeFillingUp');
});

test('table bloat: dead rows over a third of a table and over 100 000 for 2 hours, from postgres_exporter only', () => {
  const table = (m: string) => `max by (namespace, job, pod, datname, schemaname, relname) (pg_stat_user_tables_${m}{namespace="kudo", job="postgres"})`;
  const bloat = alert(all, 'PostgresTableBloated');
  expect(bloat.expr).toBe(`100 * ${table('n_dead_tup')}\n/ (${table('n_dead_tup')} + ${table('n_live_tup')}) > 33\nand ${table('n_dead_tup')} > 100000`);
  expect([bloat.for, bloat.labels.severity]).toEqual(['2h', 'warning']);
  expect(bloat.annotations.runbook).toContain('VACUUM (VERBOSE) {{ $labels.schemaname }}.{{ $labels.relname }}');
  expect(bloat.annotations.runbook).toContain('backend_xmin');
  // CloudNativePG's default queries have no pg_stat_user_tables; an external database is not watched.
  expect(alertsOf(cloudnativePg).map((r: any) => r.alert)).not.toContain('PostgresTableBloated');
  expect(alertsOf(external).map((r: any) => r.alert)).not.toContain('PostgresTableBloated');
});

test("PostgreSQL's dashboard panels carry their units, from postgres_exporter's metrics or CloudNativePG's", () => {
  const units = (ms: Manifest[]) => {
    const d = JSON.parse(dashboardsOf(ms)[1].data['kudo-postgres.json']);
    return Object.fromEntries(d.panels.filter((p: any) => ['Commits per second', 'Database size'].includes(p.title)).map((p: any) => [p.title, p.fieldConfig.defaults.unit]));
  };
  for (const ms of [all, cloudnativePg]) expect(units(ms)).toEqual({ 'Commits per second': 'ops', 'Database size': 'bytes' });
});

test("CloudNativePG with its backup: a failing WAL archive and an old base backup (the barman-cloud plugin's metric) alert", () => {
  const withBackup = synthAll(
    config({
      postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres' } } },
      monitoring: { enabled: true },
    }),
  );
  const s = '{namespace="kudo", job="kudo/postgres"}';
  expect(alert(withBackup, 'PostgresWALArchiveFailing').expr).toBe(
    `max by (namespace, job, pod) (cnpg_pg_stat_archiver_last_failed_time${s})\n> max by (namespace, job, pod) (cnpg_pg_stat_archiver_last_archived_time${s})`,
  );
  expect(alert(withBackup, 'PostgresBaseBackupTooOld').expr).toBe(`time() - max by (namespace, job) (barman_cloud_cloudnative_pg_io_last_available_backup_timestamp${s}) > 93600`);
  // The metric is 0 until the first base backup, taken when the Cluster is created: an hour for that one.
  expect(alert(withBackup, 'PostgresBaseBackupTooOld').for).toBe('1h');
  // Without WAL archiving, or with the StatefulSet, neither.
  for (const ms of [cloudnativePg, all]) {
    expect(
      alertsOf(ms)
        .map((r: any) => r.alert)
        .filter((a: string) => /WALArchive|BaseBackup/.test(a)),
    ).toEqual([]);
  }
});

test("TURN allocations warn at 80 % of what coturn always grants: total-quota, or the relay range's even/odd pairs", () => {
  expect(turnAllocationLimit({ relayPorts: { min: 49152, max: 49252 }, totalQuota: 1200 })).toBe(50);
  expect(turnAllocationLimit({ relayPorts: { min: 10001, max: 12399 }, totalQuota: 1200 })).toBe(1199);
  expect(turnAllocationLimit({ relayPorts: { min: 10000, max: 12399 }, totalQuota: 1000 })).toBe(1000);
  expect(turnAllocationLimit({ relayPorts: { min: 10000, max: 10999 }, totalQuota: 4000 })).toBe(500);
  const small = synthAll(config({ coturn: { relayPorts: { min: 49152, max: 49252 }, totalQuota: 40 }, monitoring: { enabled: true } }));
  expect(alert(small, 'TurnAllocationsNearLimit').expr).toMatch(/\) > 32$/);
  // The defaults: total-quota 1200 on a range of as many pairs.
  expect(alert(all, 'TurnAllocationsNearLimit').expr).toMatch(/\) > 960$/);
});

test("certificates in the stack's namespaces, whether cert-manager's namespace label is honoured or exported", () => {
  const rules = alertsOf(all).filter((r: any) => r.alert === 'CertificateExpiringSoon');
  expect(rules.map((r: any) => [r.labels.severity, r.expr.split('\n').pop()])).toEqual([
    ['warning', ') - time() < 1814400'],
    ['critical', ') - time() < 604800'],
  ]);
  expect(rules[0].expr).toContain('{exported_namespace=~"kudo|kudo-media"}');
  expect(rules[0].expr).toContain('{exported_namespace="", namespace=~"kudo|kudo-media"}');
  const gateway = synthAll(config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'cilium', gatewayNamespace: 'gateways' }, monitoring: { enabled: true } }));
  expect(alertsOf(gateway).find((r: any) => r.alert === 'CertificateExpiringSoon').expr).toContain('{exported_namespace=~"kudo|kudo-media|gateways"}');
});

test("a Grafana dashboard per component: ConfigMaps with the sidecar's label, one valid dashboard each", () => {
  expect(dashboardsOf(all).map((m) => `${m.metadata.namespace}/${m.metadata.name}`)).toEqual([
    'kudo/grafana-dashboard-synapse',
    'kudo/grafana-dashboard-postgres',
    'kudo/grafana-dashboard-redis',
    'kudo-media/grafana-dashboard-livekit',
    'kudo-media/grafana-dashboard-coturn',
  ]);
  const uids = new Set<string>();
  for (const m of dashboardsOf(all)) {
    expect(m.metadata.labels!.grafana_dashboard).toBe('1');
    const files = Object.entries(m.data as Record<string, string>);
    expect(files).toHaveLength(1);
    const d = JSON.parse(files[0][1]);
    expect(files[0][0]).toBe(`${d.uid}.json`);
    uids.add(d.uid);
    expect(d.panels.length).toBeGreaterThanOrEqual(4);
    for (const p of d.panels) {
      expect(p.targets.length).toBeGreaterThan(0);
      expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      // Inside 24 columns, not overlapping the panel before it in the same row.
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
    }
  }
  expect(uids.size).toBe(5);
  // Backups are on PostgreSQL's dashboard.
  expect(dashboardsOf(all)[1].data['kudo-postgres.json']).toContain('kube_cronjob_status_last_successful_time');
});

test("the dashboards' label is configurable; alerts and dashboards can each be left out", () => {
  const custom = synthAll(config({ monitoring: { enabled: true, dashboardLabels: { 'grafana.example.org/dashboard': 'kudo' } } }));
  expect(dashboardsOf(custom).map((m) => m.metadata.labels!['grafana.example.org/dashboard'])).toEqual(['kudo', 'kudo', 'kudo', 'kudo', 'kudo']);
  expect(dashboardsOf(custom)[0].metadata.labels!.grafana_dashboard).toBeUndefined();
  const none = synthAll(config({ monitoring: { enabled: true, alerts: false, dashboards: false } }));
  expect(rulesOf(none)).toEqual([]);
  expect(dashboardsOf(none)).toEqual([]);
  expect(none.filter((m) => m.kind === 'ServiceMonitor')).toHaveLength(5);
});

test('a MonitoringChart given only scrape targets (no stack) renders their ServiceMonitors and nothing else', () => {
  const chart = new MonitoringChart(Testing.app(), 'm', {
    targets: [{ name: 'synapse', namespace: 'kudo', port: 'metrics', path: '/_synapse/metrics' }],
    serviceMonitorLabels: {},
    interval: '30s',
  });
  expect(Testing.synth(chart).map((m) => `${m.kind}/${m.metadata.namespace}/${m.metadata.name}`)).toEqual(['ServiceMonitor/kudo/synapse']);
});

test('an empty dashboard label is refused: the sidecar could not find the dashboards', () => {
  expect(() => synthAll(config({ monitoring: { enabled: true, dashboardLabels: {} } }))).toThrow(/monitoring\.dashboardLabels is empty/);
  expect(() => new MonitoringChart(Testing.app(), 'm', { targets: [], serviceMonitorLabels: {}, interval: '30s', alerts: true })).toThrow(
    'MonitoringChart: alerts and dashboards need `stack`',
  );
});

test('livekit.hostNetwork false: the LiveKit runbooks do not send the operator looking for free host ports', () => {
  const pods = synthAll(config({ monitoring: { enabled: true }, livekit: { hostNetwork: false, replicas: 2, rtc: { udpPort: 31000, tcpPort: 31100 } } }));
  for (const name of ['LiveKitDown', 'LiveKitNodeUnavailable']) {
    expect([name, alert(pods, name).annotations.runbook]).not.toEqual([name, expect.stringContaining('host ports')]);
    expect(alert(pods, name).annotations.runbook).toContain('livekit.nodeSelector');
  }
  // On the host network they still do.
  expect(alert(production, 'LiveKitNodeUnavailable').annotations.runbook).toContain('host ports free');
});
