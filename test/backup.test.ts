import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { resolveConfig } from '../charts/config';
import { config, container, find, Manifest, podSpec, synthAll, synthChart } from './util';

const manifests = (c = config()) => synthChart('50-backup', c);
const cron = (ms: Manifest[], name: string) => find(ms, 'CronJob', name);

test('scheduled dumps that cannot pile up or run late', () => {
  const ms = manifests();
  for (const name of ['postgres-backup', 'media-backup']) {
    const cj = cron(ms, name);
    expect(cj.spec).toMatchObject({
      timeZone: 'Etc/UTC',
      concurrencyPolicy: 'Forbid',
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
    });
    expect(cj.spec.jobTemplate.spec.backoffLimit).toBe(2);
    expect(cj.spec.jobTemplate.spec.activeDeadlineSeconds).toBeGreaterThan(0);
  }
  expect(cron(ms, 'postgres-backup').spec.schedule).toBe('15 3 * * *');
  expect(cron(ms, 'media-backup').spec.schedule).toBe('45 3 * * *');
});

test("every backup and restore CronJob: its Jobs and pods carry the backup labels and the pods the config's hash; a pod never restarts in place, sees no Service links, and a one-step Job has no init steps", () => {
  const ms = manifests();
  const LABELS = {
    'app.kubernetes.io/name': 'backup',
    'app.kubernetes.io/instance': 'kudo-backup',
    'app.kubernetes.io/component': 'backup',
    'app.kubernetes.io/part-of': 'kudo',
    'app.kubernetes.io/managed-by': 'cdk8s',
  };
  for (const name of ['postgres-backup', 'media-backup', 'postgres-restore', 'media-restore']) {
    const job = cron(ms, name).spec.jobTemplate;
    expect([name, job.metadata.labels]).toEqual([name, expect.objectContaining(LABELS)]);
    expect([name, job.spec.template.metadata.labels]).toEqual([name, expect.objectContaining(LABELS)]);
    expect([name, job.spec.template.metadata.annotations['checksum/config']]).toEqual([name, expect.stringMatching(/^[0-9a-f]{16}$/)]);
    const spec = podSpec(cron(ms, name));
    expect([name, spec.restartPolicy, spec.enableServiceLinks]).toEqual([name, 'Never', false]);
  }
  // One step: the container alone.
  expect(podSpec(cron(ms, 'media-backup')).initContainers).toBeUndefined();
  expect(podSpec(cron(ms, 'media-restore')).initContainers).toBeUndefined();
});

test('pg_dump comes from the same image as the server; restic stores what it dumped, then the dump is removed', () => {
  const all = config();
  const spec = podSpec(cron(manifests(), 'postgres-backup'));
  // Then the generated Secrets' values, stored after the dump (so a failed export never costs it).
  expect(spec.initContainers.map((c: any) => c.name)).toEqual(['dump', 'store', 'export-secrets']);
  expect(spec.containers.map((c: any) => c.name)).toEqual(['store-secrets']);
  const dump = spec.initContainers[0];
  expect(dump.image).toBe(`${all.postgres.image.repository}:${all.postgres.image.tag}`);
  expect(dump.command).toEqual(['bash', '/opt/kudo/backup-postgres.sh']);
  const env = Object.fromEntries(dump.env.map((e: any) => [e.name, e.value]));
  expect(env).toMatchObject({ STAGING_DIR: '/backups/staging', PGHOST: 'postgres.kudo.svc', PGUSER: 'synapse', PGDATABASE: 'synapse' });
  const store = spec.initContainers[1];
  expect(store.image).toBe('docker.io/restic/restic:0.18.1');
  expect(store.command).toEqual(['sh', '/opt/kudo/backup-restic.sh', 'postgres', '/backups/staging/postgres']);
  expect(Object.fromEntries(store.env.map((e: any) => [e.name, e.value]))).toEqual({
    LOCAL_REPOSITORY: '/backups/restic',
    RESTIC_PASSWORD_FILE: '/secrets/backup/restic_password',
    TMPDIR: '/scratch',
    RESTIC_CACHE_DIR: '/scratch/cache',
    KEEP_DAILY: '7',
    KEEP_WEEKLY: '4',
    KEEP_MONTHLY: '12',
    REMOVE_AFTER_STORE: '1',
  });
  // The local repository's password: the generated Secret kudo-backup.
  expect(spec.volumes.find((v: any) => v.name === 'repository-password')).toEqual({
    name: 'repository-password',
    secret: { secretName: 'kudo-backup', items: [{ key: 'restic_password', path: 'restic_password' }], defaultMode: 0o440 },
  });
  // The media is stored as it is: restic reads only what changed since the last snapshot.
  expect(container(cron(manifests(), 'media-backup'), 'store').command).toEqual(['sh', '/opt/kudo/backup-restic.sh', 'media', '/media']);
});

test("restricted pods with resources, as Synapse's uid; the media Jobs prefer the node of the pod holding the media volume", () => {
  // The media volume is Synapse's: any other uid or fsGroup would re-own (or fail to read) its files.
  const synapse = podSpec(find(synthAll(), 'Deployment', 'synapse')).securityContext;
  const near = {
    preferredDuringSchedulingIgnoredDuringExecution: [
      {
        weight: 100,
        podAffinityTerm: {
          labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'synapse', 'app.kubernetes.io/instance': 'kudo-synapse' } },
          topologyKey: 'kubernetes.io/hostname',
        },
      },
    ],
  };
  for (const name of ['postgres-backup', 'media-backup', 'postgres-restore', 'media-restore']) {
    const spec = podSpec(cron(manifests(), name));
    expect(spec.securityContext).toMatchObject({ runAsUser: synapse.runAsUser, fsGroup: synapse.fsGroup, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(c.resources.limits).toBeDefined();
    }
  }
  // Preferred, not required: with every Synapse process stopped (a restore) the Jobs still run.
  expect(podSpec(cron(manifests(), 'media-backup')).affinity.podAffinity).toEqual(near);
  expect(podSpec(cron(manifests(), 'media-restore')).affinity.podAffinity).toEqual(near);
  // The dump goes where the database and the backup volume are reachable: no tie to the media's node.
  expect(podSpec(cron(manifests(), 'postgres-backup')).affinity).toBeUndefined();
  const media = podSpec(cron(manifests(), 'media-backup'));
  expect(media.volumes.find((v: any) => v.name === 'media').persistentVolumeClaim.claimName).toBe('synapse-media');
  expect(media.containers[0].volumeMounts.find((m: any) => m.name === 'media').readOnly).toBe(true);
});

test('restores are suspended templates, never scheduled', () => {
  for (const name of ['postgres-restore', 'media-restore']) {
    const cj = cron(manifests(), name);
    expect(cj.spec.suspend).toBe(true);
    expect(cj.spec.schedule).toBe('0 0 31 2 *');
  }
  expect(container(cron(manifests(), 'media-restore'), 'restore').volumeMounts.find((m: any) => m.name === 'media').readOnly).toBeUndefined();
});

test('a backup volume of the configured size', () => {
  const pvc = find(manifests(config({ backup: { storage: { size: '200Gi', className: 'cheap' } } })), 'PersistentVolumeClaim', 'kudo-backups');
  expect(pvc.spec).toMatchObject({ accessModes: ['ReadWriteOnce'], storageClassName: 'cheap', resources: { requests: { storage: '200Gi' } } });
});

test("S3 with restic: each backup is also stored off-site, with the operator's password and keys from files", () => {
  const ms = manifests(config({ backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo-backups' } } }));
  for (const name of ['postgres-backup', 'media-backup', 'postgres-restore', 'media-restore']) {
    const spec = podSpec(cron(ms, name));
    const c = [...(spec.initContainers ?? []), ...spec.containers].find((x: any) => x.image.startsWith('docker.io/restic/restic:'));
    expect(c.env).toEqual(
      expect.arrayContaining([
        { name: 'OFFSITE_REPOSITORY', value: 's3:https://s3.example.com/kudo-backups' },
        { name: 'OFFSITE_PASSWORD_FILE', value: '/secrets/offsite/RESTIC_PASSWORD' },
        { name: 'S3_CREDENTIALS_DIR', value: '/secrets/offsite' },
      ]),
    );
    // The S3 keys are files too: no secret in the pod spec's environment (the scripts export them).
    expect(c.env.filter((e: any) => e.valueFrom?.secretKeyRef)).toEqual([]);
    expect(spec.volumes.find((v: any) => v.name === 'offsite').projected.sources.map((x: any) => [x.secret.name, x.secret.items[0].key])).toEqual([
      ['kudo-backup-s3', 'RESTIC_PASSWORD'],
      ['kudo-backup-s3', 'AWS_ACCESS_KEY_ID'],
      ['kudo-backup-s3', 'AWS_SECRET_ACCESS_KEY'],
    ]);
  }
  // Without S3, nothing of it is rendered.
  expect(podSpec(cron(manifests(), 'media-backup')).volumes.map((v: any) => v.name)).not.toContain('offsite');
});

test("restic's temporary packs and cache go to disk-backed scratch space, not the small in-memory /tmp", () => {
  // restic writes pack files of up to 16 MiB to TMPDIR (or /tmp): in a 16Mi memory emptyDir every upload
  // larger than about 12 MiB failed with "no space left on device".
  const ms = manifests(config({ backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo-backups' } } }));
  for (const name of ['postgres-backup', 'media-backup']) {
    const spec = podSpec(cron(ms, name));
    const up = [...(spec.initContainers ?? []), ...spec.containers].find((c: any) => c.name === 'store');
    const env = Object.fromEntries(up.env.map((e: any) => [e.name, e.value]));
    expect(env.TMPDIR).toBe('/scratch');
    expect(env.RESTIC_CACHE_DIR).toBe('/scratch/cache');
    expect(up.volumeMounts).toContainEqual({ name: 'scratch', mountPath: '/scratch' });
    // On the node's disk (no medium: Memory), bounded, and inside the container's ephemeral-storage limit.
    expect(spec.volumes.find((v: any) => v.name === 'scratch')).toEqual({ name: 'scratch', emptyDir: { sizeLimit: '2Gi' } });
    expect(up.resources.limits['ephemeral-storage']).toBe('2Gi');
    expect(up.resources.requests['ephemeral-storage']).toBe('512Mi');
  }
});

test('S3 needs a repository; backups can be switched off', () => {
  expect(() => resolveConfig({ backup: { s3: { enabled: true } } })).toThrow('backup.s3.repository is required');
  expect(() => resolveConfig({ backup: { s3: { repository: 'https://x' } } })).toThrow('backup.s3.repository: must be a restic S3 repository');
  expect(() => resolveConfig({ backup: { schedule: { postgres: 'daily' } } })).toThrow('backup.schedule.postgres: not a schedule Kubernetes accepts: expected five fields');
  expect(() => synthChart('50-backup', config({ backup: { enabled: false } }))).toThrow('no chart');
});

test('the nightly dump leaves out the data of e2e_one_time_keys_json (the rendered script, run by bash with a stand-in pg_dump)', () => {
  // Synapse's backup guide: restored one-time keys were already handed out, and handing them out again breaks decryption.
  const scripts = find(manifests(), 'ConfigMap', 'backup-scripts').data;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-dump-'));
  try {
    for (const name of ['pgpass.sh', 'backup-common.sh', 'backup-lib.sh', 'backup-postgres.sh']) fs.writeFileSync(path.join(dir, name), scripts[name]);
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    // pg_dump writes its arguments, one a line, as the dump; pg_restore --list says it holds table data.
    fs.writeFileSync(
      path.join(bin, 'pg_dump'),
      '#!/bin/sh\n[ "$1" = --version ] && { echo "pg_dump (PostgreSQL) 17"; exit 0; }\n' +
        'for a; do case "$a" in --file=*) f=${a#--file=};; esac; done\nprintf \'%s\\n\' "$@" > "$f"\n',
      { mode: 0o755 },
    );
    fs.writeFileSync(path.join(bin, 'pg_restore'), '#!/bin/sh\necho "1; 0 0 TABLE DATA public users synapse"\n', { mode: 0o755 });
    // psql answers the database's size (the free-space check): a kilobyte.
    fs.writeFileSync(path.join(bin, 'psql'), '#!/bin/sh\necho 1024\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'password'), 'pw');
    const backups = path.join(dir, 'backups');
    execFileSync('bash', [path.join(dir, 'backup-postgres.sh')], {
      stdio: 'pipe',
      env: {
        PATH: `${bin}:${process.env.PATH}`,
        STAGING_DIR: backups,
        PGHOST: 'db',
        PGPORT: '5432',
        PGUSER: 'synapse',
        PGDATABASE: 'synapse',
        PASSWORD_FILE: path.join(dir, 'password'),
        KEEP_DAILY: '7',
        KEEP_WEEKLY: '4',
        KEEP_MONTHLY: '12',
      },
    });
    expect(fs.readdirSync(path.join(backups, 'postgres'))).toEqual(['synapse.dump']);
    const args = fs
      .readFileSync(path.join(backups, 'postgres', 'synapse.dump'), 'utf8')
      .trim()
      .split('\n');
    expect(args).toContain('--exclude-table-data=e2e_one_time_keys_json');
    // Uncompressed: restic compresses, and finds what consecutive dumps share.
    expect(args).toContain('--compress=0');
    expect(args[args.length - 1]).toBe('synapse');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('a backup volume too small for what it must hold is refused', () => {
  // restic stores one copy of the media store and of the (uncompressed) dump, compressed and deduplicated; the
  // retention keeps what changed besides: 1.25 x (media + database) is the least the volume must hold.
  test('20Gi of media and a 10Gi database (the small defaults) fit the default 50Gi', () => {
    expect(() => resolveConfig({})).not.toThrow();
    expect(() => resolveConfig({ backup: { storage: { size: '38Gi' } } })).not.toThrow();
    // Exactly 1.25 x 30Gi is enough.
    expect(resolveConfig({ backup: { storage: { size: '38400Mi' } } }).backup.storage.size).toBe('38400Mi');
  });
  test('with backups off the volume is not checked (it is not rendered)', () => {
    expect(resolveConfig({ backup: { enabled: false, storage: { size: '1Gi' } } }).backup.storage.size).toBe('1Gi');
  });
  test('37Gi is less than 1.25 x 30Gi', () => {
    expect(() => resolveConfig({ backup: { storage: { size: '37Gi' } } })).toThrow(
      'backup.storage.size is 37Gi, less than 1.25 x (synapse.media.size 20Gi + postgres.storage.size 10Gi) = 37.5Gi that the backup ' +
        "volume's restic repository needs for one copy of each and what the retention keeps: enlarge backup.storage.size",
    );
  });
  test('an external database is not counted (its size is unknown here; the dump job checks free space before it writes)', () => {
    const external = { postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'verify-full', ca: { kind: 'Secret', name: 'db-ca', key: 'ca.pem' } } } };
    expect(() => resolveConfig({ ...external, backup: { storage: { size: '26Gi' } } })).not.toThrow();
    expect(() => resolveConfig({ ...external, backup: { storage: { size: '24Gi' } } })).toThrow('less than 1.25 x (synapse.media.size 20Gi) = 25Gi');
  });
});

describe('the generated Secrets go with the backup', () => {
  test('a step reads them with get-only rights into memory after the dump is stored; restic stores them as a snapshot of their own', () => {
    const ms = manifests();
    const spec = podSpec(cron(ms, 'postgres-backup'));
    const exporter = container(cron(ms, 'postgres-backup'), 'export-secrets');
    expect(exporter.image).toBe('ghcr.io/element-hq/synapse:v1.163.2');
    expect(exporter.command).toEqual(['python3', '/opt/kudo/export_secrets.py', '/opt/kudo/secrets-plan.json', '/secrets-export/secrets.json']);
    expect(exporter.volumeMounts.map((m: any) => m.name)).toEqual(['scripts', 'tmp', 'api-token', 'secrets-export']);
    // In memory only, and small: the values never touch a disk unencrypted.
    expect(spec.volumes.find((v: any) => v.name === 'secrets-export')).toEqual({ name: 'secrets-export', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } });
    const stored = container(cron(ms, 'postgres-backup'), 'store-secrets');
    expect(stored.command).toEqual(['sh', '/opt/kudo/backup-restic.sh', 'secrets', '/secrets-export']);
    expect(stored.env.map((e: any) => e.name)).not.toContain('REMOVE_AFTER_STORE');
    // The API token: only the export step mounts it; the pod gets none automatically.
    expect(spec.serviceAccountName).toBe('backup');
    expect(spec.automountServiceAccountToken).toBe(false);
    const withToken = [...spec.initContainers, ...spec.containers].filter((c: any) => c.volumeMounts.some((m: any) => m.name === 'api-token')).map((c: any) => c.name);
    expect(withToken).toEqual(['export-secrets']);
    expect(podSpec(cron(ms, 'media-backup')).serviceAccountName).toBeUndefined();
    // Read rights on the Secrets the stack generates, in each namespace holding them; nothing else.
    const rules = (ns: string) => ms.find((m) => m.kind === 'Role' && m.metadata.name === 'backup' && m.metadata.namespace === ns)!.rules;
    expect(rules('kudo')).toEqual([
      {
        apiGroups: [''],
        resources: ['secrets'],
        verbs: ['get'],
        resourceNames: ['kudo-backup', 'kudo-postgres', 'kudo-redis', 'kudo-synapse', 'kudo-synapse-admin', 'kudo-turn'],
      },
    ]);
    expect(rules('kudo-media')).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['kudo-livekit', 'kudo-redis', 'kudo-turn'] }]);
    expect(
      ms
        .filter((m) => m.kind === 'Role')
        .map((m) => `${m.metadata.namespace}/${m.metadata.name}`)
        .sort(),
    ).toEqual(['kudo-media/backup', 'kudo/backup']);
    const plan = JSON.parse(find(ms, 'ConfigMap', 'backup-scripts').data['secrets-plan.json']);
    expect(plan.values.map((v: any) => v.name)).toEqual([
      'postgresPassword',
      'postgresSuperuserPassword',
      'macaroonSecretKey',
      'formSecret',
      'registrationSharedSecret',
      'signingKey',
      'adminPassword',
      'turnSharedSecret',
      'redisPassword',
      'livekitApiKey',
      'livekitApiSecret',
      'backupPassword',
    ]);
  });

  test("a value the operator provides (an external database's password) is theirs: not exported", () => {
    const ms = manifests(config({ postgres: { mode: 'external', external: { host: 'db.example.com', sslmode: 'require' } } }));
    const names = JSON.parse(find(ms, 'ConfigMap', 'backup-scripts').data['secrets-plan.json']).values.map((v: any) => v.name);
    expect(names).not.toContain('postgresPassword');
    expect(names).toContain('signingKey');
  });

  test('secrets.mode "existing": the operator\'s secret store holds them; no export step, no reader, no API access', () => {
    const c = config({ secrets: { mode: 'existing' } });
    const ms = manifests(c);
    expect(podSpec(cron(ms, 'postgres-backup')).initContainers.map((x: any) => x.name)).toEqual(['dump']);
    // Neither the API token nor the memory the export would use.
    const volumes = podSpec(cron(ms, 'postgres-backup')).volumes.map((v: any) => v.name);
    expect(volumes).not.toContain('api-token');
    expect(volumes).not.toContain('secrets-export');
    expect(ms.filter((m) => ['Role', 'RoleBinding', 'ServiceAccount'].includes(m.kind))).toEqual([]);
    const api = find(synthChart('06-network-policies', c), 'NetworkPolicy', 'kubernetes-api');
    expect(api.spec.podSelector.matchExpressions[0].values).toEqual(['secret-generator', 'admin-bootstrap']);
  });
});

describe('secrets.restoreFromBackup: a rebuilt cluster gets its old Secrets back instead of new ones', () => {
  const S3 = { backup: { s3: { enabled: true, repository: 's3:https://s3.example.com:9000/kudo' } } };

  test('the generator first fetches the Secrets snapshot from the off-site repository, then restores from it', () => {
    const c = config({ ...S3, secrets: { restoreFromBackup: '4bba301e' } });
    const job = synthChart('05-secrets', c).find((m) => m.kind === 'Job')!;
    const spec = podSpec(job);
    const fetch = spec.initContainers[0];
    expect(spec.initContainers).toHaveLength(1);
    // The name the runbook (docs/operations.md, "Disaster recovery") gives for its logs (kubectl logs job/... -c fetch).
    expect(fetch.name).toBe('fetch');
    expect(fetch.image).toBe('docker.io/restic/restic:0.18.1');
    // restic's memory (512Mi, as the other restic steps) and its scratch space on disk, not /tmp.
    expect(fetch.resources).toEqual({
      requests: { cpu: '50m', memory: '64Mi', 'ephemeral-storage': '64Mi' },
      limits: { cpu: '1', memory: '512Mi', 'ephemeral-storage': '2Gi' },
    });
    expect(fetch.volumeMounts).toEqual([
      { name: 'scripts', mountPath: '/opt/kudo', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'scratch', mountPath: '/scratch' },
      { name: 'offsite', mountPath: '/secrets/offsite', readOnly: true },
      { name: 'restored-secrets', mountPath: '/restored-secrets' },
    ]);
    expect(fetch.command).toEqual(['sh', '/opt/kudo/restic-fetch.sh', 'secrets', '/secrets-export', '/restored-secrets']);
    expect(Object.fromEntries(fetch.env.map((e: any) => [e.name, e.value]))).toEqual({
      TMPDIR: '/scratch',
      RESTIC_CACHE_DIR: '/scratch/cache',
      OFFSITE_REPOSITORY: 's3:https://s3.example.com:9000/kudo',
      OFFSITE_PASSWORD_FILE: '/secrets/offsite/RESTIC_PASSWORD',
      S3_CREDENTIALS_DIR: '/secrets/offsite',
      FROM: 'offsite',
      SNAPSHOT: '4bba301e',
    });
    expect(spec.containers[0].command).toEqual(['python3', '/opt/kudo/generate_secrets.py', '/opt/kudo/plan.json', '--restore', '/restored-secrets/secrets.json']);
    expect(spec.containers[0].volumeMounts).toContainEqual({ name: 'restored-secrets', mountPath: '/restored-secrets', readOnly: true });
    expect(spec.volumes.find((v: any) => v.name === 'restored-secrets')).toEqual({ name: 'restored-secrets', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } });
    expect(spec.volumes.find((v: any) => v.name === 'offsite').projected.sources.map((x: any) => x.secret.name)).toEqual(['kudo-backup-s3', 'kudo-backup-s3', 'kudo-backup-s3']);
    // The scripts the fetch step runs are in the generator's ConfigMap.
    expect(Object.keys(find(synthChart('05-secrets', c), 'ConfigMap', 'secret-generator').data).sort()).toEqual([
      'backup-common.sh',
      'generate_secrets.py',
      'kube.py',
      'plan.json',
      'restic-fetch.sh',
    ]);
    // And it may reach the store: the object store's port, from the generator alone.
    const np = find(synthChart('06-network-policies', c), 'NetworkPolicy', 'secrets-restore');
    expect(np.spec.podSelector.matchLabels['app.kubernetes.io/name']).toBe('secret-generator');
    expect(np.spec.egress.map((r: any) => r.ports)).toEqual([[{ protocol: 'TCP', port: 9000 }]]);
  });

  test('without it the generator makes values, fetches nothing and reaches no store', () => {
    const c = config(S3);
    expect(podSpec(synthChart('05-secrets', c).find((m) => m.kind === 'Job')!).initContainers).toBeUndefined();
    expect(synthChart('06-network-policies', c).filter((m) => m.metadata.name === 'secrets-restore')).toEqual([]);
  });

  test.each([
    [{ secrets: { restoreFromBackup: 'latest' } }, 'secrets.restoreFromBackup reads the Secrets from the off-site backup: it needs backup.enabled and backup.s3.enabled'],
    [{ ...S3, secrets: { restoreFromBackup: 'latest', mode: 'existing' } }, 'secrets.restoreFromBackup needs secrets.mode "generated"'],
    [{ ...S3, secrets: { restoreFromBackup: 'yesterday' } }, 'secrets.restoreFromBackup: must be "latest" or a restic snapshot ID such as "4bba301e"'],
  ])('refused: %j', (overrides, message) => {
    expect(() => resolveConfig(overrides)).toThrow(message);
  });
});
