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
      timeZone: 'Etc/UTC', concurrencyPolicy: 'Forbid', startingDeadlineSeconds: 3600, successfulJobsHistoryLimit: 3, failedJobsHistoryLimit: 3,
    });
    expect(cj.spec.jobTemplate.spec.backoffLimit).toBe(2);
    expect(cj.spec.jobTemplate.spec.activeDeadlineSeconds).toBeGreaterThan(0);
  }
  expect(cron(ms, 'postgres-backup').spec.schedule).toBe('15 3 * * *');
  expect(cron(ms, 'media-backup').spec.schedule).toBe('45 3 * * *');
});

test('pg_dump comes from the same image as the server', () => {
  const all = config();
  const dump = container(cron(manifests(), 'postgres-backup'), 'dump');
  expect(dump.image).toBe(`${all.postgres.image.repository}:${all.postgres.image.tag}`);
  expect(dump.command).toEqual(['bash', '/opt/kudo/backup-postgres.sh']);
  const env = Object.fromEntries(dump.env.map((e: any) => [e.name, e.value]));
  expect(env).toMatchObject({ PGHOST: 'postgres.kudo.svc', PGUSER: 'synapse', PGDATABASE: 'synapse', KEEP_DAILY: '7', KEEP_WEEKLY: '4', KEEP_MONTHLY: '12' });
});

test('restricted pods with resources, as Synapse\'s uid, on Synapse\'s node', () => {
  // The media volume is Synapse's: any other uid or fsGroup would re-own (or fail to read) its files.
  const synapse = podSpec(find(synthAll(), 'Deployment', 'synapse')).securityContext;
  for (const name of ['postgres-backup', 'media-backup']) {
    const cj = cron(manifests(), name);
    const spec = podSpec(cj);
    expect(spec.securityContext).toMatchObject({ runAsUser: synapse.runAsUser, fsGroup: synapse.fsGroup, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    for (const c of spec.containers) {
      expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(c.resources.limits).toBeDefined();
    }
    expect(spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]).toEqual({
      labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'synapse', 'app.kubernetes.io/instance': 'kudo-synapse' } },
      topologyKey: 'kubernetes.io/hostname',
    });
  }
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

test('S3 with restic: upload after the local backup, credentials from a Secret', () => {
  const ms = manifests(config({ backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo-backups' } } }));
  const spec = podSpec(cron(ms, 'postgres-backup'));
  expect(spec.initContainers.map((c: any) => c.name)).toEqual(['dump']);
  const up = spec.containers[0];
  expect(up.image).toBe('docker.io/restic/restic:0.18.1');
  expect(up.command).toEqual(['sh', '/opt/kudo/backup-restic.sh', 'postgres', '/backups/postgres']);
  expect(up.env).toContainEqual({ name: 'RESTIC_REPOSITORY', value: 's3:https://s3.example.com/kudo-backups' });
  expect(up.env).toContainEqual({ name: 'RESTIC_PASSWORD_FILE', value: '/secrets/restic/RESTIC_PASSWORD' });
  // The S3 keys are files too: no secret in the pod spec's environment (the script exports them).
  expect(up.env).toContainEqual({ name: 'S3_CREDENTIALS_DIR', value: '/secrets/restic' });
  expect(up.env.filter((e: any) => e.valueFrom?.secretKeyRef)).toEqual([]);
  expect(spec.volumes.find((v: any) => v.name === 'restic').projected.sources.map((x: any) => [x.secret.name, x.secret.items[0].key])).toEqual([
    ['kudo-backup-s3', 'RESTIC_PASSWORD'], ['kudo-backup-s3', 'AWS_ACCESS_KEY_ID'], ['kudo-backup-s3', 'AWS_SECRET_ACCESS_KEY'],
  ]);
  expect(container(cron(ms, 'media-backup'), 'upload').command).toEqual(['sh', '/opt/kudo/backup-restic.sh', 'media', '/media']);
});

test('restic\'s temporary packs and cache go to disk-backed scratch space, not the small in-memory /tmp', () => {
  // restic writes pack files of up to 16 MiB to TMPDIR (or /tmp): in a 16Mi memory emptyDir every upload
  // larger than about 12 MiB failed with "no space left on device".
  const ms = manifests(config({ backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo-backups' } } }));
  for (const name of ['postgres-backup', 'media-backup']) {
    const spec = podSpec(cron(ms, name));
    const up = spec.containers.find((c: any) => c.name === 'upload');
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

describe('retention (the rendered prune script, run by bash)', () => {
  const script = find(manifests(), 'ConfigMap', 'backup-scripts').data['backup-prune.sh'];
  function prune(names: string[], keep: { daily: number; weekly: number; monthly: number }): string[] {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-prune-'));
    for (const n of names) fs.writeFileSync(path.join(dir, n), '');
    fs.writeFileSync(path.join(dir, 'prune.sh'), script);
    execFileSync('bash', [path.join(dir, 'prune.sh'), dir, 'synapse'], {
      env: { PATH: process.env.PATH, KEEP_DAILY: String(keep.daily), KEEP_WEEKLY: String(keep.weekly), KEEP_MONTHLY: String(keep.monthly) },
    });
    return fs.readdirSync(dir).filter((f) => f.startsWith('synapse-')).sort();
  }
  // One backup a day from 2026-01-01 to 2026-03-31, two on the last day.
  const days: string[] = [];
  for (let d = new Date(Date.UTC(2026, 0, 1)); d <= new Date(Date.UTC(2026, 2, 31)); d.setUTCDate(d.getUTCDate() + 1)) {
    days.push(`synapse-${d.toISOString().slice(0, 10).replace(/-/g, '')}T031500Z.dump`);
  }
  days.push('synapse-20260331T120000Z.dump');

  test('the newest of each of the last 7 days, 4 weeks and 12 months', () => {
    const kept = prune(days, { daily: 7, weekly: 4, monthly: 12 });
    expect(kept).toEqual([
      'synapse-20260131T031500Z.dump', // January
      'synapse-20260228T031500Z.dump', // February
      'synapse-20260315T031500Z.dump', // ISO week 11 (ends Sunday 15 March)
      'synapse-20260322T031500Z.dump', // week 12
      'synapse-20260325T031500Z.dump', 'synapse-20260326T031500Z.dump', 'synapse-20260327T031500Z.dump',
      'synapse-20260328T031500Z.dump',
      'synapse-20260329T031500Z.dump', // a daily one, and week 13
      'synapse-20260330T031500Z.dump',
      'synapse-20260331T120000Z.dump', // the newest: its day, week 14 and March
    ]);
  });

  test('unfinished dumps and other files are left alone', () => {
    const kept = prune(['synapse-20260101T000000Z.dump', 'synapse-20260102T000000Z.dump.partial', 'synapse-20260103T000000Z.dump'], { daily: 1, weekly: 0, monthly: 0 });
    expect(kept).toEqual(['synapse-20260102T000000Z.dump.partial', 'synapse-20260103T000000Z.dump']);
  });
});

test('the nightly dump leaves out the data of e2e_one_time_keys_json (the rendered script, run by bash with a stand-in pg_dump)', () => {
  // Synapse's backup guide: restored one-time keys were already handed out, and handing them out again breaks decryption.
  const scripts = find(manifests(), 'ConfigMap', 'backup-scripts').data;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-dump-'));
  try {
    for (const name of ['pgpass.sh', 'backup-lib.sh', 'backup-prune.sh', 'backup-postgres.sh']) fs.writeFileSync(path.join(dir, name), scripts[name]);
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    // pg_dump writes its arguments, one a line, as the dump; pg_restore --list says it holds table data.
    fs.writeFileSync(path.join(bin, 'pg_dump'), '#!/bin/sh\n[ "$1" = --version ] && { echo "pg_dump (PostgreSQL) 17"; exit 0; }\n'
      + 'for a; do case "$a" in --file=*) f=${a#--file=};; esac; done\nprintf \'%s\\n\' "$@" > "$f"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(bin, 'pg_restore'), '#!/bin/sh\necho "1; 0 0 TABLE DATA public users synapse"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'password'), 'pw');
    const backups = path.join(dir, 'backups');
    execFileSync('bash', [path.join(dir, 'backup-postgres.sh')], {
      stdio: 'pipe',
      env: {
        PATH: `${bin}:${process.env.PATH}`, BACKUP_DIR: backups, PGHOST: 'db', PGPORT: '5432', PGUSER: 'synapse', PGDATABASE: 'synapse',
        PASSWORD_FILE: path.join(dir, 'password'), KEEP_DAILY: '7', KEEP_WEEKLY: '4', KEEP_MONTHLY: '12',
      },
    });
    const dumps = fs.readdirSync(path.join(backups, 'postgres'));
    expect(dumps).toHaveLength(1);
    const args = fs.readFileSync(path.join(backups, 'postgres', dumps[0]), 'utf8').trim().split('\n');
    expect(args).toContain('--exclude-table-data=e2e_one_time_keys_json');
    expect(args[args.length - 1]).toBe('synapse');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
