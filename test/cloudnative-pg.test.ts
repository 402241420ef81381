/**
 * postgres.mode cloudnative-pg: a CloudNativePG Cluster with WAL archiving
 * through the barman-cloud plugin, and Synapse, the backups, the secret
 * generator and the NetworkPolicies wired to what the operator makes.
 */
import * as yaml from 'js-yaml';
import { resolveConfig } from '../charts/config';
import { checklist, renderedManifests } from '../scripts/inspect';
import { config, container, find, Manifest, podSpec, PRODUCTION, synthAll } from './util';

const BACKUP = { destinationPath: 's3://kudo-backups/postgres', endpointURL: 'https://minio.example.org:9000' };
const cnpg = (overrides: object = {}) => config({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP, ...overrides } } });
const ms = synthAll(cnpg());
const homeserver = (m: Manifest[]) => yaml.load(find(m, 'ConfigMap', 'synapse-config').data['homeserver.yaml']) as any;

test("a Cluster with Synapse's database, owned by its role, UTF8 with C collation", () => {
  const cluster = find(ms, 'Cluster', 'postgres');
  expect(cluster.apiVersion).toBe('postgresql.cnpg.io/v1');
  expect(cluster.metadata.namespace).toBe('kudo');
  expect(cluster.spec.bootstrap.initdb).toEqual({ database: 'synapse', owner: 'synapse', encoding: 'UTF8', localeCollate: 'C', localeCType: 'C' });
  expect(cluster.spec.instances).toBe(1);
  expect(cluster.spec.storage).toEqual({ size: '10Gi' });
  expect(cluster.spec.resources).toEqual({ requests: { cpu: '250m', memory: '512Mi' }, limits: { cpu: '2', memory: '1Gi' } });
  expect(cluster.spec.affinity).toMatchObject({ enablePodAntiAffinity: true, topologyKey: 'kubernetes.io/hostname' });
  // The operator owns listen_addresses; setting it is refused by its webhook.
  expect(cluster.spec.postgresql.parameters.listen_addresses).toBeUndefined();
  expect(cluster.spec.enableSuperuserAccess).toBe(false);
});

test('production runs three instances; synchronous replication on request', () => {
  const prod = synthAll(config({ ...PRODUCTION, postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP } } }));
  expect(find(prod, 'Cluster', 'postgres').spec.instances).toBe(3);
  const sync = synthAll(config({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { instances: 2, synchronous: true, backup: BACKUP } } }));
  expect(find(sync, 'Cluster', 'postgres').spec.postgresql.synchronous).toEqual({ method: 'any', number: 1, dataDurability: 'required' });
});

test('WAL archiving and base backups through the barman-cloud plugin, to the configured bucket', () => {
  const store = find(ms, 'ObjectStore', 'postgres-backups');
  expect(store.apiVersion).toBe('barmancloud.cnpg.io/v1');
  expect(store.spec.configuration).toMatchObject({
    destinationPath: 's3://kudo-backups/postgres',
    endpointURL: 'https://minio.example.org:9000',
    s3Credentials: {
      accessKeyId: { name: 'kudo-postgres-s3', key: 'ACCESS_KEY_ID' },
      secretAccessKey: { name: 'kudo-postgres-s3', key: 'ACCESS_SECRET_KEY' },
    },
    wal: { compression: 'gzip' },
    data: { compression: 'gzip' },
  });
  expect(store.spec.retentionPolicy).toBe('30d');
  const cluster = find(ms, 'Cluster', 'postgres');
  expect(cluster.spec.plugins).toEqual([
    { name: 'barman-cloud.cloudnative-pg.io', isWALArchiver: true, parameters: { barmanObjectName: 'postgres-backups', serverName: 'postgres' } },
  ]);
  expect(cluster.spec.postgresql.parameters.archive_timeout).toBe('60s');
  const scheduled = find(ms, 'ScheduledBackup', 'postgres-daily');
  expect(scheduled.spec).toMatchObject({
    cluster: { name: 'postgres' },
    method: 'plugin',
    pluginConfiguration: { name: 'barman-cloud.cloudnative-pg.io' },
    schedule: '0 0 2 * * *',
    immediate: true,
  });
});

test('without backups: no ObjectStore, no ScheduledBackup, no archiving', () => {
  const off = synthAll(config({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } } }));
  expect(off.filter((m) => m.kind === 'ObjectStore' || m.kind === 'ScheduledBackup')).toEqual([]);
  expect(find(off, 'Cluster', 'postgres').spec.plugins).toBeUndefined();
  expect(find(off, 'Cluster', 'postgres').spec.postgresql.parameters.archive_timeout).toBeUndefined();
});

test("no StatefulSet PostgreSQL, and Synapse connects to the -rw Service with the owner's Secret", () => {
  expect(ms.filter((m) => m.kind === 'StatefulSet' && m.metadata.name === 'postgres')).toEqual([]);
  expect(ms.filter((m) => m.kind === 'Service' && m.metadata.name === 'postgres')).toEqual([]);
  const args = homeserver(ms).database.args;
  expect(args).toMatchObject({ host: 'postgres-rw.kudo.svc', port: 5432, user: 'synapse', dbname: 'synapse' });
  const password = podSpec(find(ms, 'Deployment', 'synapse')).volumes.find((v: any) => v.name === 'db-password');
  expect(password.secret).toMatchObject({ secretName: 'postgres-app', items: [{ key: 'password', path: 'password' }] });
});

test("every Synapse worker reads the owner's Secret too", () => {
  const workers = synthAll(config({ ...PRODUCTION, postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP } } }));
  const synapsePods = workers.filter(
    (m) => ['Deployment', 'StatefulSet'].includes(m.kind) && m.metadata.labels?.['app.kubernetes.io/name']?.startsWith('synapse') && m.metadata.name !== 'synapse-router',
  );
  expect(synapsePods.length).toBeGreaterThan(5);
  for (const w of synapsePods) {
    const v = podSpec(w).volumes.find((x: any) => x.name === 'db-password');
    expect([w.metadata.name, v.secret.secretName]).toEqual([w.metadata.name, 'postgres-app']);
  }
});

test("every client checks the server's certificate against the operator's CA (verify-full): Synapse, its workers, the dumps and restores", () => {
  const caVolume = { name: 'db-ca', secret: { secretName: 'postgres-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }], defaultMode: 0o444 } };
  expect(homeserver(ms).database.args).toMatchObject({ sslmode: 'verify-full', sslrootcert: '/db-ca/ca.crt' });
  expect(podSpec(find(ms, 'Deployment', 'synapse')).volumes).toContainEqual(caVolume);
  const workers = synthAll(config({ ...PRODUCTION, postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP } } }));
  const worker = find(workers, 'StatefulSet', 'synapse-event-persister');
  expect(podSpec(worker).volumes).toContainEqual(caVolume);
  for (const name of ['postgres-backup', 'postgres-restore']) {
    const job = find(ms, 'CronJob', name).spec.jobTemplate;
    expect(job.spec.template.spec.volumes).toContainEqual(caVolume);
    const step = job.spec.template.spec.initContainers.concat(job.spec.template.spec.containers).find((c: any) => c.env?.some((e: any) => e.name === 'PGHOST'));
    expect(step.env).toEqual(
      expect.arrayContaining([
        { name: 'PGSSLMODE', value: 'verify-full' },
        { name: 'PGSSLROOTCERT', value: '/db-ca/ca.crt' },
      ]),
    );
    expect(step.volumeMounts).toContainEqual({ name: 'db-ca', mountPath: '/db-ca', readOnly: true });
  }
});

test("the secret generator makes neither PostgreSQL password; the dump CronJob uses the owner's", () => {
  const plan = JSON.parse(find(ms, 'ConfigMap', 'secret-generator').data['plan.json']);
  expect(plan.values.map((v: any) => v.name)).not.toContain('postgresPassword');
  expect(plan.values.map((v: any) => v.name)).not.toContain('postgresSuperuserPassword');
  expect(plan.values.map((v: any) => v.name)).toContain('macaroonSecretKey');
  const dump = find(ms, 'CronJob', 'postgres-backup');
  expect(container(dump.spec.jobTemplate, 'dump').env).toContainEqual({ name: 'PGHOST', value: 'postgres-rw.kudo.svc' });
  const volume = dump.spec.jobTemplate.spec.template.spec.volumes.find((v: any) => v.name === 'password');
  expect(volume.secret).toMatchObject({ secretName: 'postgres-app', items: [{ key: 'password', path: 'password' }] });
});

test('the checklist asks for the S3 keys WAL archiving uses, and for no database password', () => {
  const c = cnpg();
  const list = checklist(c, renderedManifests(c));
  expect(list.secretsToCreate).toEqual([{ namespace: 'kudo', secret: 'kudo-postgres-s3', keys: ['ACCESS_KEY_ID', 'ACCESS_SECRET_KEY'] }]);
  expect(list.prerequisites.join('\n')).toContain('CloudNativePG');
});

describe('NetworkPolicies', () => {
  const policy = (name: string) => find(ms, 'NetworkPolicy', name).spec;
  const ports = (rule: any) => rule.ports.map((p: any) => p.port);

  test('the instances: clients on 5432, the operator and each other on 5432 and 8000', () => {
    const pg = policy('postgres');
    expect(pg.podSelector).toEqual({ matchLabels: { 'cnpg.io/cluster': 'postgres' } });
    expect(pg.ingress[0].from.map((f: any) => f.podSelector.matchLabels['app.kubernetes.io/name'])).toEqual(['synapse', 'synapse-migrate', 'backup']);
    expect(ports(pg.ingress[0])).toEqual([5432]);
    expect(pg.ingress[1].from).toContainEqual({
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'cnpg-system' } },
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'cloudnative-pg' } },
    });
    expect(ports(pg.ingress[1])).toEqual([5432, 8000]);
  });

  test("the instances reach each other, the Kubernetes API and the object store's port", () => {
    expect(policy('postgres').policyTypes).toEqual(['Ingress', 'Egress']);
    const egress = policy('postgres').egress;
    expect(egress.map(ports)).toEqual([[5432, 8000], [443, 6443], [9000]]);
    // Each other: the instances by the Cluster's label, nothing wider.
    expect(egress[0].to).toEqual([{ podSelector: { matchLabels: { 'cnpg.io/cluster': 'postgres' } } }]);
    expect(policy('postgres').ingress[1].from).toContainEqual({ podSelector: { matchLabels: { 'cnpg.io/cluster': 'postgres' } } });
    const aws = synthAll(config({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres' } } } }));
    expect(find(aws, 'NetworkPolicy', 'postgres').spec.egress.map(ports)).toEqual([
      [5432, 8000],
      [443, 6443],
    ]);
  });

  test('Synapse and the backups connect to the instances', () => {
    expect(policy('synapse').egress[0]).toEqual({ to: [{ podSelector: { matchLabels: { 'cnpg.io/cluster': 'postgres' } } }], ports: [{ protocol: 'TCP', port: 5432 }] });
    expect(policy('backup').egress[0].to).toEqual([{ podSelector: { matchLabels: { 'cnpg.io/cluster': 'postgres' } } }]);
  });

  test('the operator in another namespace is followed', () => {
    const other = synthAll(cnpg({ operatorNamespace: 'postgres-operator' }));
    expect(find(other, 'NetworkPolicy', 'postgres').spec.ingress[1].from[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name']).toBe('postgres-operator');
  });
});

test("a PodMonitor for the instances' metrics when monitoring is on", () => {
  const mon = synthAll(config({ monitoring: { enabled: true }, postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP } } }));
  expect(find(mon, 'PodMonitor', 'postgres').spec).toEqual({ selector: { matchLabels: { 'cnpg.io/cluster': 'postgres' } }, podMetricsEndpoints: [{ port: 'metrics' }] });
  expect(find(mon, 'NetworkPolicy', 'postgres').spec.ingress[2].ports).toEqual([{ protocol: 'TCP', port: 9187 }]);
});

test('Argo CD: the ObjectStore before the Cluster, the Cluster with the databases, the ScheduledBackup at the edge', () => {
  const wave = (kind: string, name: string) => find(ms, kind, name).metadata.annotations!['argocd.argoproj.io/sync-wave'];
  expect([wave('ObjectStore', 'postgres-backups'), wave('Cluster', 'postgres'), wave('ScheduledBackup', 'postgres-daily')]).toEqual(['-2', '0', '4']);
  // Synapse's schema migration between the Cluster and Synapse.
  expect(ms.filter((m) => m.kind === 'Job' && m.metadata.name.startsWith('synapse-migrate')).map((m) => m.metadata.annotations!['argocd.argoproj.io/sync-wave'])).toEqual(['1']);
  expect(wave('Deployment', 'synapse')).toBe('2');
});

test('point-in-time recovery is rendered from the config: a Cluster that recovers from the old archive and archives under a new name', () => {
  const recovered = synthAll(cnpg({ backup: { ...BACKUP, serverName: 'postgres-r1' }, recovery: { serverName: 'postgres', targetTime: '2026-11-26T14:00:00Z' } }));
  const spec = find(recovered, 'Cluster', 'postgres').spec;
  expect(spec.bootstrap).toEqual({ recovery: { source: 'origin', database: 'synapse', owner: 'synapse', recoveryTarget: { targetTime: '2026-11-26T14:00:00Z' } } });
  expect(spec.externalClusters).toEqual([
    {
      name: 'origin',
      plugin: { name: 'barman-cloud.cloudnative-pg.io', parameters: { barmanObjectName: 'postgres-backups', serverName: 'postgres' } },
    },
  ]);
  expect(spec.plugins[0].parameters).toEqual({ barmanObjectName: 'postgres-backups', serverName: 'postgres-r1' });
  // Without a target: the end of the archive.
  const latest = find(synthAll(cnpg({ backup: { ...BACKUP, serverName: 'postgres-r1' }, recovery: { serverName: 'postgres' } })), 'Cluster', 'postgres').spec;
  expect(latest.bootstrap).toEqual({ recovery: { source: 'origin', database: 'synapse', owner: 'synapse' } });
  // By default the archive is named after the Cluster, and the database is made by initdb.
  expect(find(ms, 'Cluster', 'postgres').spec.plugins[0].parameters).toEqual({ barmanObjectName: 'postgres-backups', serverName: 'postgres' });
  expect(find(ms, 'Cluster', 'postgres').spec.externalClusters).toBeUndefined();
});

test("a recovered Cluster keeps Synapse's database and owner, so the operator's postgres-app Secret is for the role Synapse logs in as", () => {
  // Without them CloudNativePG 1.30 defaults both to "app" and writes postgres-app for a user "app".
  const recovered = synthAll(cnpg({ backup: { ...BACKUP, serverName: 'postgres-r1' }, recovery: { serverName: 'postgres' } }));
  const recovery = find(recovered, 'Cluster', 'postgres').spec.bootstrap.recovery;
  expect(recovery).toMatchObject({ database: 'synapse', owner: 'synapse' });
  expect(homeserver(recovered).database.args).toMatchObject({ user: 'synapse', dbname: 'synapse' });
});

describe('bad combinations are refused, naming the key', () => {
  test.each([
    [{ postgres: { mode: 'cloudnative-pg' } }, 'postgres.cloudnativePg.backup.destinationPath is required'],
    [{ postgres: { mode: 'cloudnative-pg', cloudnativePg: { synchronous: true, backup: BACKUP } } }, 'postgres.cloudnativePg.synchronous needs at least 2 instances (has 1)'],
    [
      { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 'kudo-backups/postgres' } } } },
      'postgres.cloudnativePg.backup.destinationPath: must be an S3 URL',
    ],
    [{ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { ...BACKUP, schedule: '0 2 * * *' } } } }, 'must be a six-field schedule with seconds first'],
    [
      { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP } }, secrets: { refs: { postgresPassword: { name: 'x', key: 'y' } } } },
      'secrets.refs.postgresPassword is not read with postgres.mode "cloudnative-pg"',
    ],
    [{ postgres: { cloudnativePg: { instances: 3 } } }, 'postgres.cloudnativePg is read only when postgres.mode is "cloudnative-pg"'],
    [
      { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP, recovery: { serverName: 'postgres' } } } },
      'postgres.cloudnativePg.recovery.serverName is "postgres", the name the Cluster archives under (postgres.cloudnativePg.backup.serverName)',
    ],
    [
      { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false }, recovery: { serverName: 'postgres' } } } },
      'postgres.cloudnativePg.recovery needs postgres.cloudnativePg.backup',
    ],
    // A destinationPath alone archives nothing: recovery needs the archive enabled too.
    [
      { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { ...BACKUP, enabled: false, serverName: 'b' }, recovery: { serverName: 'postgres' } } } },
      'postgres.cloudnativePg.recovery needs postgres.cloudnativePg.backup',
    ],
    [
      { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { ...BACKUP, serverName: 'b' }, recovery: { serverName: 'postgres', targetTime: 'yesterday' } } } },
      'postgres.cloudnativePg.recovery.targetTime: must be a time with its offset',
    ],
    // PostgreSQL refuses a "Z" in recovery_target_time; the operator rewrites it only in the "T" form.
    [
      { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { ...BACKUP, serverName: 'b' }, recovery: { serverName: 'postgres', targetTime: '2026-11-26 14:00:00Z' } } } },
      'postgres.cloudnativePg.recovery.targetTime: must be a time with its offset',
    ],
    // The backup Jobs dump and restore with postgres.image: pg_dump refuses a server of a newer major.
    [
      { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP, image: { tag: '18.1-standard-bookworm' } } } },
      `postgres.image.tag "17.11-bookworm" is the backup Jobs' pg_dump and pg_restore, but postgres.cloudnativePg.image.tag "18.1-standard-bookworm" runs PostgreSQL 18`,
    ],
    [
      { postgres: { mode: 'cloudnative-pg', image: { tag: '18.6-bookworm' }, cloudnativePg: { backup: BACKUP } } },
      `postgres.image.tag "18.6-bookworm" is the backup Jobs' pg_dump and pg_restore, but postgres.cloudnativePg.image.tag "17.11-standard-bookworm" runs PostgreSQL 17`,
    ],
  ])('%j', (input, message) => {
    expect(() => resolveConfig(input, 'kudo.yaml')).toThrow(message);
  });
});

describe('a major upgrade (docs/operations.md, "PostgreSQL 17 → 18"): the server image and the backup Jobs\' image change together', () => {
  test('both at 18: the Cluster runs the 18 image, the dump and restore Jobs the 18 tools', () => {
    const m = synthAll(
      config({ postgres: { mode: 'cloudnative-pg', image: { tag: '18.6-bookworm' }, cloudnativePg: { backup: BACKUP, image: { tag: '18.1-standard-bookworm' } } } }),
    );
    expect(find(m, 'Cluster', 'postgres').spec.imageName).toBe('ghcr.io/cloudnative-pg/postgresql:18.1-standard-bookworm');
    expect(container(find(m, 'CronJob', 'postgres-backup'), 'dump').image).toBe('docker.io/library/postgres:18.6-bookworm');
    expect(container(find(m, 'CronJob', 'postgres-restore'), 'restore').image).toBe('docker.io/library/postgres:18.6-bookworm');
  });

  test('without the backup Jobs the server image changes alone', () => {
    const c = resolveConfig(
      { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP, image: { tag: '18.1-standard-bookworm' } } }, backup: { enabled: false } },
      'kudo.yaml',
    );
    expect(c.postgres.cloudnativePg.image.tag).toBe('18.1-standard-bookworm');
  });
});

describe('production: a lost node loses neither the database nor a committed transaction', () => {
  const cluster = (c: object) => find(synthAll(config(c)), 'Cluster', 'postgres').spec;
  const prod = (cnpg: object = {}) => ({ ...PRODUCTION, postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP, ...cnpg } } });

  test('instances on different nodes (required), commits wait for one replica', () => {
    const spec = cluster(prod());
    expect(spec.affinity).toEqual({ enablePodAntiAffinity: true, topologyKey: 'kubernetes.io/hostname', podAntiAffinityType: 'required' });
    expect(spec.postgresql.synchronous).toEqual({ method: 'any', number: 1, dataDurability: 'required' });
  });
  test('small keeps the preferred anti-affinity and asynchronous replication', () => {
    const spec = cluster({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: BACKUP, instances: 2 } } });
    expect(spec.affinity.podAntiAffinityType).toBe('preferred');
    expect(spec.postgresql.synchronous).toBeUndefined();
  });
  test('each can be set back', () => {
    const spec = cluster(prod({ podAntiAffinity: 'preferred', synchronous: false }));
    expect(spec.affinity.podAntiAffinityType).toBe('preferred');
    expect(spec.postgresql.synchronous).toBeUndefined();
  });
  test('one instance in production is refused unless synchronous is turned off', () => {
    expect(() => config(prod({ instances: 1 }))).toThrow(/postgres\.cloudnativePg\.synchronous needs at least 2 instances \(has 1\).*synchronous: false/);
    expect(cluster(prod({ instances: 1, synchronous: false })).instances).toBe(1);
  });
  test('podAntiAffinity takes preferred or required', () => {
    expect(() => config(prod({ podAntiAffinity: 'always' }))).toThrow(/postgres\.cloudnativePg\.podAntiAffinity: found string "always", allowed: "preferred", "required"/);
  });
});
