/**
 * The rendered backup and restore scripts, run with PostgreSQL 17's own
 * pg_dump/pg_restore against a database that Synapse itself filled, and
 * restic against a local repository.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import { createHash, createHmac } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import {
  configMapFile, container, find, generatedSecrets, httpJson, Manifest, podSpec, programs, rendered, secretVolumeFiles, tempDir, writeSecretFiles,
} from './harness';
import { ImageSandbox, podVolumes, shareWithPod } from './image';
import { postgresVersion, RunningPostgres, startPostgres } from './postgres';
import { login, RunningSynapse, startSynapse } from './synapse';

const { config, manifests } = rendered();
const RESTIC_VERSION = execFileSync(programs().restic, ['version'], { encoding: 'utf8' }).split(' ').slice(0, 2).join(' ');

let secrets: Record<string, string>;
let source: RunningPostgres;
let synapse: RunningSynapse;
let dir: string;
let scripts: string;
let backups: string;
let passwordDir: string;

/** Runs a rendered CronJob's container: its command and env, with the paths, hosts and ports rewritten. */
function runJob(cronJob: string, containerName: string, pg: RunningPostgres | undefined, opts: { media?: string; env?: Record<string, string>; path?: string } = {}) {
  const c = container(find(manifests, 'CronJob', cronJob), containerName);
  const env: Record<string, string> = { PATH: opts.path ?? `${programs().pgBin}:${process.env.PATH}`, HOME: dir };
  for (const e of c.env) {
    if (e.value === undefined) continue;
    env[e.name] = e.value;
  }
  env.BACKUP_DIR = backups; // paths
  if (env.PASSWORD_FILE) env.PASSWORD_FILE = path.join(passwordDir, 'password'); // paths
  if (env.MEDIA_DIR) env.MEDIA_DIR = opts.media!; // paths
  if (pg && env.PGHOST) {
    env.PGHOST = pg.host; // hosts
    env.PGPORT = String(pg.port); // ports
  }
  Object.assign(env, opts.env);
  const [shell, script, ...args] = c.command as string[];
  const r = spawnSync(shell, [path.join(scripts, path.basename(script)), ...args], { env, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** Every public table and a digest of all its rows, in a stable order. */
function tableDigests(pg: RunningPostgres): Record<string, string> {
  const tables = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", pg.database).split('\n');
  return Object.fromEntries(tables.map((t) => [t, pg.psql(
    `SELECT count(*) || ':' || md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM public."${t}" r`, pg.database,
  )]));
}

function fileDigests(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(root, p)] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(root);
  return out;
}

const listBackups = (kind: string) => fs.readdirSync(path.join(backups, kind)).sort();

beforeAll(async () => {
  dir = tempDir('backup');
  scripts = path.join(dir, 'scripts');
  backups = path.join(dir, 'backups');
  passwordDir = path.join(dir, 'secrets');
  fs.mkdirSync(scripts);
  fs.mkdirSync(backups);
  // paths: the scripts ConfigMap as mounted.
  for (const f of Object.keys(find(manifests, 'ConfigMap', 'backup-scripts').data)) {
    fs.writeFileSync(path.join(scripts, f), configMapFile(manifests, 'backup-scripts', f), { mode: 0o555 });
  }
  secrets = await generatedSecrets(manifests);
  writeSecretFiles(passwordDir, secretVolumeFiles(find(manifests, 'CronJob', 'postgres-backup'), 'password', config, secrets));
  source = await startPostgres(manifests, config, secrets);
  // Synapse fills its database: the schema, an admin, a room with messages, and media.
  synapse = await startSynapse(manifests, config, secrets, source);
  const nonce = (await httpJson(`${synapse.base}/_synapse/admin/v1/register`)).body.nonce;
  const mac = createHmac('sha1', secrets.registrationSharedSecret).update(`${nonce}\0alice\0${secrets.adminPassword}\0notadmin`).digest('hex');
  const reg = await httpJson(`${synapse.base}/_synapse/admin/v1/register`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ nonce, username: 'alice', password: secrets.adminPassword, admin: false, mac }),
  });
  expect(reg.status).toBe(200);
  const token = await login(synapse.base, 'alice', secrets.adminPassword);
  const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const room = await httpJson(`${synapse.base}/_matrix/client/v3/createRoom`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'backup' }) });
  for (let i = 0; i < 20; i++) {
    await httpJson(`${synapse.base}/_matrix/client/v3/rooms/${encodeURIComponent(room.body.room_id)}/send/m.room.message/t${i}`, {
      method: 'PUT', headers: auth, body: JSON.stringify({ msgtype: 'm.text', body: `message ${i}` }),
    });
  }
  for (const name of ['a.txt', 'b.bin']) {
    const up = await httpJson(`${synapse.base}/_matrix/media/v3/upload?filename=${name}`, {
      method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/octet-stream' }, body: `${name} `.repeat(1000),
    });
    expect(up.status).toBe(200);
  }
  // Stopped, as the runbook says, so nothing changes between dump and comparison.
  await synapse.stop();
}, 300_000);

afterAll(async () => {
  await synapse?.stop();
  await source?.stop();
});

describe(`backups with ${postgresVersion()} tools`, () => {
  test('the backup job dumps the database, verified and named by its time', () => {
    const r = runJob('postgres-backup', 'dump', source);
    expect(r.output).toMatch(/wrote .*synapse-\d{8}T\d{6}Z\.dump/);
    expect(r.status).toBe(0);
    const files = listBackups('postgres');
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^synapse-\d{8}T\d{6}Z\.dump$/);
    expect(r.output).toContain('retention: kept 1, deleted 0');
  });

  test('a restore into an empty server brings back every row of every table', async () => {
    const before = tableDigests(source);
    expect(Object.keys(before).length).toBeGreaterThan(100);
    expect(before.events.split(':')[0]).not.toBe('0');
    const empty = await startPostgres(manifests, config, secrets);
    try {
      expect(empty.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", empty.database)).toBe('0');
      const r = runJob('postgres-restore', 'restore', empty);
      expect(r.output).toContain('restored');
      expect(r.status).toBe(0);
      expect(tableDigests(empty)).toEqual(before);
      // The runbook's last step: Synapse starts on the restored database and the data is there.
      const restored = await startSynapse(manifests, config, secrets, empty);
      try {
        const token = await login(restored.base, 'alice', secrets.adminPassword);
        const rooms = await httpJson(`${restored.base}/_matrix/client/v3/joined_rooms`, { headers: { Authorization: `Bearer ${token}` } });
        expect(rooms.body.joined_rooms).toHaveLength(1);
        // A restore while Synapse is connected is refused.
        const busy = runJob('postgres-restore', 'restore', empty);
        expect(busy.status).not.toBe(0);
        expect(busy.output).toMatch(/other session\(s\) use synapse; stop Synapse/);
      } finally {
        await restored.stop();
      }
    } finally {
      await empty.stop();
    }
  });

  test('a dump that fails midway leaves the previous backup intact', () => {
    const before = listBackups('postgres');
    const digest = createHash('sha256').update(fs.readFileSync(path.join(backups, 'postgres', before[0]))).digest('hex');
    // A pg_dump that writes part of a dump and dies, first on PATH.
    const fake = path.join(dir, 'failing-bin');
    fs.mkdirSync(fake, { recursive: true });
    fs.writeFileSync(path.join(fake, 'pg_dump'), '#!/bin/sh\nfor a; do case "$a" in --file=*) f=${a#--file=};; esac; done\nhead -c 4096 /dev/urandom > "$f"\nexit 1\n', { mode: 0o755 });
    const r = runJob('postgres-backup', 'dump', source, { path: `${fake}:${programs().pgBin}:${process.env.PATH}` });
    expect(r.status).not.toBe(0);
    expect(listBackups('postgres')).toEqual(before);
    expect(createHash('sha256').update(fs.readFileSync(path.join(backups, 'postgres', before[0]))).digest('hex')).toBe(digest);
    // And a server that is gone: same outcome.
    const down = runJob('postgres-backup', 'dump', source, { env: { PGPORT: '1' } });
    expect(down.status).not.toBe(0);
    expect(listBackups('postgres')).toEqual(before);
  });

  test('the media store is archived and restored file for file', () => {
    const before = fileDigests(synapse.mediaDir);
    expect(Object.keys(before).length).toBeGreaterThanOrEqual(2);
    const r = runJob('media-backup', 'archive', undefined, { media: synapse.mediaDir });
    expect(r.status).toBe(0);
    expect(listBackups('media')[0]).toMatch(/^media-\d{8}T\d{6}Z\.tar$/);
    const target = path.join(dir, 'restored-media');
    fs.mkdirSync(target);
    const restore = runJob('media-restore', 'restore', undefined, { media: target });
    expect(restore.status).toBe(0);
    expect(fileDigests(target)).toEqual(before);
  });

  describe(`${RESTIC_VERSION}: the S3 upload step (against a local repository), in its image and under its volumes' limits`, () => {
    const s3 = rendered({ backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } } }).manifests;
    const repo = () => path.join(dir, 'restic-repo');
    let shared = false;
    const restic = (args: string[]) => execFileSync(programs().restic, args, {
      encoding: 'utf8', env: { PATH: process.env.PATH, RESTIC_REPOSITORY: repo(), RESTIC_PASSWORD: 'e2e-only', RESTIC_CACHE_DIR: path.join(dir, 'restic-cache') },
    });
    /**
     * The rendered upload container of `cronJob` (of `ms`), run in the restic image as the pod's user, its volumes at
     * their mount paths: the emptyDirs as tmpfs of their size limits, the backup volume `backupsDir`, the media store.
     */
    const upload = (cronJob: string, o: { ms?: Manifest[]; backupsDir?: string } = {}) => {
      const cj = find(o.ms ?? s3, 'CronJob', cronJob);
      const c = container(cj, 'upload');
      const env: Record<string, string> = {};
      for (const e of c.env) if (e.value !== undefined) env[e.name] = e.value;
      env.RESTIC_REPOSITORY = '/repository'; // paths: a local repository stands in for the bucket
      // The Secret volume (the operator's kudo-backup-s3), as the manifest maps its keys to files; a local
      // repository does not use the S3 keys, but the script reads them.
      const values: Record<string, string> = { RESTIC_PASSWORD: 'e2e-only', AWS_ACCESS_KEY_ID: 'e2e-key-id', AWS_SECRET_ACCESS_KEY: 'e2e-secret' };
      const vol = podSpec(cj).volumes.find((v: any) => v.name === 'restic');
      const files = Object.fromEntries(vol.projected.sources.map((src: any) => [src.secret.items[0].path, values[src.secret.items[0].key]]));
      expect(Object.keys(files).sort()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'RESTIC_PASSWORD']);
      writeSecretFiles(path.join(dir, 'restic-secret'), files);
      fs.mkdirSync(repo(), { recursive: true });
      // Once: doing it again would change the files' ctime, which restic rightly reads as a change.
      if (!shared) shareWithPod(dir, podSpec(cj).securityContext.fsGroup);
      shared = true;
      const volumes = podVolumes(cj, 'upload', {
        scripts: scripts, backups: o.backupsDir ?? backups, restic: path.join(dir, 'restic-secret'), media: synapse.mediaDir,
      });
      volumes['/repository'] = { host: repo() };
      const sandbox = new ImageSandbox(cj, 'upload', { '/usr/bin/restic': programs().restic });
      const [command, args] = sandbox.wrap(c.command[0], c.command.slice(1), env, '/', undefined, volumes);
      return spawnSync(command, args, { encoding: 'utf8', env: { PATH: process.env.PATH } });
    };

    test('uploads the dumps and the media store, encrypted and deduplicated', () => {
      const first = upload('postgres-backup');
      expect(`${first.stdout}${first.stderr}`).toContain('initialising');
      expect(first.status).toBe(0);
      const again = upload('postgres-backup');
      expect(again.status).toBe(0);
      // Nothing changed, so the second snapshot stores only its own metadata, not the dump again.
      expect(again.stdout).toMatch(/Files:\s+0 new,\s+0 changed,\s+1 unmodified/);
      expect(again.stdout).toMatch(/Added to the repository: \d+ B /);
      const media = upload('media-backup');
      expect(media.status).toBe(0);
      const snapshots = JSON.parse(restic(['snapshots', '--json']));
      expect(snapshots.map((s: any) => s.tags[0]).sort()).toEqual(['media', 'postgres', 'postgres']);
      // The repository holds no plain text of what went in (grep exits 1: no match).
      expect(spawnSync('grep', ['-rlF', 'a.txt a.txt', repo()]).status).toBe(1);
      expect(spawnSync('grep', ['-rlF', 'a.txt a.txt', synapse.mediaDir]).status).toBe(0);
    });

    test('a snapshot restores the very dump that went in', () => {
      const target = path.join(dir, 'restic-restore');
      restic(['restore', 'latest', '--tag', 'postgres', '--target', target]);
      const dump = listBackups('postgres')[0];
      // The snapshot holds the container's path.
      const restoredFile = path.join(target, 'backups', 'postgres', dump);
      expect(fs.readFileSync(restoredFile)).toEqual(fs.readFileSync(path.join(backups, 'postgres', dump)));
    });

    test('a dump larger than the in-memory /tmp uploads under the rendered limits; as rendered before, restic ran out of space', () => {
      // 48 MiB that do not compress or deduplicate, in one dump file: three times what the 16Mi /tmp holds.
      const big = path.join(dir, 'big-backups');
      fs.mkdirSync(path.join(big, 'postgres'), { recursive: true });
      fs.writeFileSync(path.join(big, 'postgres', 'synapse-20261201T031500Z.dump'), crypto.randomBytes(48 * 2 ** 20));
      const ok = upload('postgres-backup', { backupsDir: big });
      expect(`${ok.stdout}${ok.stderr}`).toMatch(/Added to the repository: (4[0-9]|5[0-9])\.\d+ MiB/);
      expect(ok.status).toBe(0);

      // The upload as rendered before: restic's cache in /tmp and its temporary packs there too, /tmp a 16Mi memory volume.
      const old = structuredClone(s3);
      const c = container(find(old, 'CronJob', 'postgres-backup'), 'upload');
      c.env = c.env.filter((e: any) => e.name !== 'TMPDIR').map((e: any) => (e.name === 'RESTIC_CACHE_DIR' ? { ...e, value: '/tmp/restic' } : e));
      c.volumeMounts = c.volumeMounts.filter((m: any) => m.name !== 'scratch');
      fs.writeFileSync(path.join(big, 'postgres', 'synapse-20261202T031500Z.dump'), crypto.randomBytes(48 * 2 ** 20));
      const failed = upload('postgres-backup', { ms: old, backupsDir: big });
      expect(`${failed.stdout}${failed.stderr}`).toMatch(/no space left on device/);
      expect(failed.status).not.toBe(0);
    });
  });
});
