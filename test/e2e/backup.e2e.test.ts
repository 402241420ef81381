/**
 * The rendered backup and restore Jobs, step by step, against a database and media that Synapse itself filled:
 * pg_dump and pg_restore of PostgreSQL 17 (the PostgreSQL image's steps), and restic (the restic image's steps) run
 * in their image as the pod's user, with the pod's volumes at their mount paths — the backup volume, the Secrets,
 * and each emptyDir a tmpfs of its size limit — so what would not fit in the pod does not fit here either.
 */
import { execFileSync, spawnSync, SpawnSyncReturns } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { configMapFile, container, find, generatedSecrets, httpJson, Manifest, podSpec, programs, rendered, secretVolumeFiles, tempDir, writeSecretFiles } from './harness';
import { ImageSandbox, podVolumes, shareWithPod, Volume } from './image';
import { libpqClientEnv, postgresVersion, RunningPostgres, startPostgres } from './postgres';
import { login, registerUser, RunningSynapse, startSynapse } from './synapse';

const S3 = 's3:https://s3.example.com/kudo';
const { config, manifests } = rendered({ backup: { s3: { enabled: true, repository: S3 } } });
const RESTIC_VERSION = execFileSync(programs().restic, ['version'], { encoding: 'utf8' }).split(' ').slice(0, 2).join(' ');
const MiB = 2 ** 20;

let secrets: Record<string, string>;
let source: RunningPostgres;
let synapse: RunningSynapse;
let dir: string;
let scripts: string;
/** The backup volume, as a folder of this machine (or a size-limited tmpfs where a test says so). */
let backups: string;
/** The off-site repository: a local folder stands in for the bucket. */
let offsite: string;
let secretDirs: Record<string, string>;

const OFFSITE_PASSWORD = 'offsite-e2e-only';

/**
 * Runs one container of a rendered CronJob as its pod would: the PostgreSQL steps with this machine's PostgreSQL 17
 * (paths and the database's address rewritten), restic's in the restic image with the pod's volumes.
 */
function step(
  cronJob: string,
  name: string,
  o: { pg?: RunningPostgres; media?: string; backupsDir?: string; env?: Record<string, string>; path?: string; ms?: Manifest[] } = {},
): SpawnSyncReturns<string> {
  const cj = find(o.ms ?? manifests, 'CronJob', cronJob);
  const c = container(cj, name);
  const env: Record<string, string> = {};
  for (const e of c.env) if (e.value !== undefined) env[e.name] = e.value;
  if (env.OFFSITE_REPOSITORY !== undefined) env.OFFSITE_REPOSITORY = '/offsite'; // paths: a local repository stands in for the bucket
  Object.assign(env, o.env);
  const volume = o.backupsDir ?? backups;
  if (c.image.includes('/restic/restic:')) {
    const volumes: Record<string, Volume> = {
      ...podVolumes(cj, name, { scripts, backups: volume, ...secretDirs, ...(o.media ? { media: o.media } : {}) }),
      '/offsite': { host: offsite },
    };
    const sandbox = new ImageSandbox(cj, name, { '/usr/bin/restic': programs().restic });
    const [command, args] = sandbox.wrap(c.command[0], c.command.slice(1), env, '/', undefined, volumes);
    return spawnSync(command, args, { encoding: 'utf8', env: { PATH: process.env.PATH } });
  }
  // paths: the mounts of the PostgreSQL steps are this machine's folders.
  env.STAGING_DIR = path.join(volume, 'staging');
  env.PASSWORD_FILE = path.join(secretDirs.password, 'password');
  if (o.pg) Object.assign(env, libpqClientEnv(o.pg, env)); // hosts, ports, paths
  Object.assign(env, o.env);
  const [shell, script] = c.command as string[];
  const r = spawnSync(shell, [path.join(scripts, path.basename(script))], {
    encoding: 'utf8',
    env: { ...env, PATH: o.path ?? `${programs().pgBin}:${process.env.PATH}`, HOME: dir },
  });
  // What it wrote, as the pod's user would own it (it ran as this machine's root): restic's steps come next.
  shareWithPod(volume, podSpec(cj).securityContext.fsGroup);
  return r;
}
const out = (r: SpawnSyncReturns<string>) => `${r.stdout}${r.stderr}`;

/** restic on a repository, from this machine (the test's own look). */
function restic(repo: 'local' | 'offsite', args: string[], volume = backups): string {
  const password = repo === 'local' ? secrets.backupPassword : OFFSITE_PASSWORD;
  return execFileSync(programs().restic, args, {
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
    env: {
      PATH: process.env.PATH,
      RESTIC_REPOSITORY: repo === 'local' ? path.join(volume, 'restic') : offsite,
      RESTIC_PASSWORD: password,
      RESTIC_CACHE_DIR: path.join(dir, 'restic-cache'),
    },
  });
}
const snapshots = (repo: 'local' | 'offsite', tag: string, volume = backups) =>
  JSON.parse(restic(repo, ['snapshots', '--json', '--tag', tag], volume)) as { short_id: string; time: string; paths: string[] }[];

/** Every public table and a digest of all its rows, in a stable order. */
function tableDigests(pg: RunningPostgres): Record<string, string> {
  const tables = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", pg.database).split('\n');
  return Object.fromEntries(
    tables.map((t) => [t, pg.psql(`SELECT count(*) || ':' || md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM public."${t}" r`, pg.database)]),
  );
}

function fileDigests(root: string): Record<string, string> {
  const digests: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else digests[path.relative(root, p)] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(root);
  return digests;
}

/** A folder holding `mib` MiB of random bytes (which neither compress nor deduplicate) in files of 8 MiB. */
function randomFiles(folder: string, mib: number): void {
  fs.mkdirSync(folder, { recursive: true });
  for (let i = 0; i * 8 < mib; i++) fs.writeFileSync(path.join(folder, `f${i}`), crypto.randomBytes(Math.min(8, mib - i * 8) * MiB));
}

/** A size-limited file system standing for a backup volume of `mib` MiB (mounted here; unmounted after the run). */
const tmpfsMounts: string[] = [];
function smallVolume(mib: number): string {
  const d = tempDir('volume');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}M,mode=0777`, 'kudo-backup-volume', d]);
  tmpfsMounts.push(d);
  return d;
}

beforeAll(async () => {
  dir = tempDir('backup');
  scripts = path.join(dir, 'scripts');
  backups = path.join(dir, 'backups');
  offsite = path.join(dir, 'offsite');
  fs.mkdirSync(scripts);
  fs.mkdirSync(backups);
  fs.mkdirSync(offsite);
  // The scripts ConfigMap as mounted.
  for (const f of Object.keys(find(manifests, 'ConfigMap', 'backup-scripts').data)) {
    fs.writeFileSync(path.join(scripts, f), configMapFile(manifests, 'backup-scripts', f), { mode: 0o555 });
  }
  secrets = await generatedSecrets(manifests);
  // The Secret volumes, as the manifest maps keys to files: the database password, the local repository's password
  // (generated), and the operator's off-site Secret.
  const cj = find(manifests, 'CronJob', 'postgres-backup');
  secretDirs = { password: path.join(dir, 'secret-password'), 'repository-password': path.join(dir, 'secret-repository'), offsite: path.join(dir, 'secret-offsite') };
  writeSecretFiles(secretDirs.password, secretVolumeFiles(cj, 'password', config, secrets));
  writeSecretFiles(secretDirs['repository-password'], secretVolumeFiles(cj, 'repository-password', config, secrets));
  writeSecretFiles(
    secretDirs.offsite,
    secretVolumeFiles(cj, 'offsite', config, {
      ...secrets,
      'kudo-backup-s3/RESTIC_PASSWORD': OFFSITE_PASSWORD,
      'kudo-backup-s3/AWS_ACCESS_KEY_ID': 'e2e-key-id',
      'kudo-backup-s3/AWS_SECRET_ACCESS_KEY': 'e2e-secret',
    }),
  );
  source = await startPostgres(manifests, config, secrets);
  // Synapse fills its database: the schema, an admin, a room with messages, and media.
  synapse = await startSynapse(manifests, config, secrets, source);
  const reg = await registerUser(synapse.base, secrets.registrationSharedSecret, 'alice', secrets.adminPassword);
  expect(reg.status).toBe(200);
  const token = await login(synapse.base, 'alice', secrets.adminPassword);
  const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const room = await httpJson(`${synapse.base}/_matrix/client/v3/createRoom`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'backup' }) });
  for (let i = 0; i < 20; i++) {
    await httpJson(`${synapse.base}/_matrix/client/v3/rooms/${encodeURIComponent(room.body.room_id)}/send/m.room.message/t${i}`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({ msgtype: 'm.text', body: `message ${i}` }),
    });
  }
  for (const name of ['a.txt', 'b.bin']) {
    const up = await httpJson(`${synapse.base}/_matrix/media/v3/upload?filename=${name}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/octet-stream' },
      body: `${name} `.repeat(1000),
    });
    expect(up.status).toBe(200);
  }
  // Stopped, as the runbook says, so nothing changes between dump and comparison.
  await synapse.stop();
  // The volumes as the kubelet prepares them for the pod's fsGroup.
  shareWithPod(dir, podSpec(cj).securityContext.fsGroup);
  shareWithPod(synapse.mediaDir, podSpec(cj).securityContext.fsGroup);
}, 300_000);

afterAll(async () => {
  await synapse?.stop();
  await source?.stop();
  for (const d of tmpfsMounts) spawnSync('umount', [d]);
});

describe(`backups with ${postgresVersion()} tools and ${RESTIC_VERSION}, each step in its image with its pod's volumes and limits`, () => {
  test('the nightly dump is stored as a restic snapshot on the backup volume and off-site, then the staged dump is removed', () => {
    const dump = step('postgres-backup', 'dump', { pg: source });
    expect(out(dump)).toMatch(/dumped .* \(\d+ tables\) to .*synapse\.dump/);
    expect(dump.status).toBe(0);
    const store = step('postgres-backup', 'store');
    expect(out(store)).toContain('stored postgres');
    expect(store.status).toBe(0);
    expect(snapshots('local', 'postgres').map((s) => s.paths)).toEqual([['/backups/staging/postgres']]);
    expect(snapshots('offsite', 'postgres')).toHaveLength(1);
    expect(fs.existsSync(path.join(backups, 'staging', 'postgres'))).toBe(false);
    // Encrypted: the repositories hold no plain text of what went in (grep exits 1: no match).
    expect(spawnSync('grep', ['-rlF', 'message 19', path.join(backups, 'restic'), offsite]).status).toBe(1);
  });

  test('a restore into an empty server brings back every row of every table, and Synapse serves it', async () => {
    const before = tableDigests(source);
    expect(Object.keys(before).length).toBeGreaterThan(100);
    expect(before.events.split(':')[0]).not.toBe('0');
    const empty = await startPostgres(manifests, config, secrets);
    try {
      expect(empty.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", empty.database)).toBe('0');
      const fetch = step('postgres-restore', 'fetch');
      expect(fetch.status).toBe(0);
      const r = step('postgres-restore', 'restore', { pg: empty });
      expect(out(r)).toContain('restored');
      expect(r.status).toBe(0);
      // Every row, but the one-time keys' (left out of every dump: Synapse's backup guide).
      const { e2e_one_time_keys_json: _keys, ...others } = before;
      const { e2e_one_time_keys_json: restoredKeys, ...restored } = tableDigests(empty);
      expect(restored).toEqual(others);
      expect(restoredKeys.split(':')[0]).toBe('0');
      const synapseAgain = await startSynapse(manifests, config, secrets, empty);
      try {
        const token = await login(synapseAgain.base, 'alice', secrets.adminPassword);
        const rooms = await httpJson(`${synapseAgain.base}/_matrix/client/v3/joined_rooms`, { headers: { Authorization: `Bearer ${token}` } });
        expect(rooms.body.joined_rooms).toHaveLength(1);
        // A restore while Synapse is connected is refused.
        expect(step('postgres-restore', 'fetch').status).toBe(0);
        const busy = step('postgres-restore', 'restore', { pg: empty });
        expect(busy.status).not.toBe(0);
        expect(out(busy)).toMatch(/other session\(s\) use synapse; stop every Synapse process/);
      } finally {
        await synapseAgain.stop();
      }
    } finally {
      await empty.stop();
    }
  });

  test('a dump that fails midway, or a database that is gone, stores nothing and leaves the snapshots as they were', () => {
    const before = snapshots('local', 'postgres').map((s) => s.short_id);
    // A pg_dump that writes part of a dump and dies, first on PATH.
    const fake = path.join(dir, 'failing-bin');
    fs.mkdirSync(fake, { recursive: true });
    fs.writeFileSync(path.join(fake, 'pg_dump'), '#!/bin/sh\nfor a; do case "$a" in --file=*) f=${a#--file=};; esac; done\nhead -c 4096 /dev/urandom > "$f"\nexit 1\n', {
      mode: 0o755,
    });
    expect(step('postgres-backup', 'dump', { pg: source, path: `${fake}:${programs().pgBin}:${process.env.PATH}` }).status).not.toBe(0);
    expect(step('postgres-backup', 'dump', { pg: source, env: { PGPORT: '1' } }).status).not.toBe(0);
    expect(fs.readdirSync(path.join(backups, 'staging', 'postgres'))).toEqual([]);
    expect(snapshots('local', 'postgres').map((s) => s.short_id)).toEqual(before);
    fs.rmSync(path.join(backups, 'staging', 'postgres'), { recursive: true });
  });

  test('the media store is stored and restored file for file; a night with no new media adds almost nothing', () => {
    const before = fileDigests(synapse.mediaDir);
    expect(Object.keys(before).length).toBeGreaterThanOrEqual(2);
    const first = step('media-backup', 'store', { media: synapse.mediaDir });
    expect(first.status).toBe(0);
    const again = step('media-backup', 'store', { media: synapse.mediaDir });
    expect(again.status).toBe(0);
    // The cost of a night follows what changed, not the size of the store (the old nightly tar was all of it).
    expect(out(again)).toMatch(/Files:\s+0 new,\s+0 changed,\s+\d+ unmodified/);
    const target = tempDir('restored-media');
    shareWithPod(target, podSpec(find(manifests, 'CronJob', 'media-restore')).securityContext.fsGroup);
    const restore = step('media-restore', 'restore', { media: target });
    expect(out(restore)).toContain('restored latest (media)');
    expect(restore.status).toBe(0);
    expect(fileDigests(target)).toEqual(before);
  });

  test('a restore can come from the off-site repository alone (FROM=offsite)', () => {
    const target = tempDir('restored-offsite');
    shareWithPod(target, podSpec(find(manifests, 'CronJob', 'media-restore')).securityContext.fsGroup);
    const r = step('media-restore', 'restore', { media: target, env: { FROM: 'offsite' } });
    expect(out(r)).toContain('from /offsite');
    expect(r.status).toBe(0);
    expect(fileDigests(target)).toEqual(fileDigests(synapse.mediaDir));
  });

  test("48 MiB of dump go through restic under the pod's limits (its 16Mi in-memory /tmp could not hold its temporary packs)", () => {
    const volume = tempDir('big-volume');
    randomFiles(path.join(volume, 'staging', 'postgres'), 48);
    shareWithPod(volume, podSpec(find(manifests, 'CronJob', 'postgres-backup')).securityContext.fsGroup);
    const ok = step('postgres-backup', 'store', { backupsDir: volume });
    expect(out(ok)).toMatch(/Added to the repository: (4[0-9]|5[0-9])\.\d+ MiB/);
    expect(ok.status).toBe(0);
    // As rendered before: restic's cache and temporary packs in /tmp, a 16Mi memory volume.
    const old = structuredClone(manifests);
    const c = container(find(old, 'CronJob', 'postgres-backup'), 'store');
    c.env = c.env.filter((e: any) => e.name !== 'TMPDIR').map((e: any) => (e.name === 'RESTIC_CACHE_DIR' ? { ...e, value: '/tmp/restic' } : e));
    c.volumeMounts = c.volumeMounts.filter((m: any) => m.name !== 'scratch');
    randomFiles(path.join(volume, 'staging', 'postgres'), 48);
    const failed = step('postgres-backup', 'store', { backupsDir: volume, ms: old });
    expect(out(failed)).toMatch(/no space left on device/);
    expect(failed.status).not.toBe(0);
  });

  describe('a backup volume that fills up', () => {
    /** Three snapshots of one day (the daily retention keeps its newest), 100 MiB each, made on `volume`'s repository. */
    function earlierNight(volume: string): void {
      for (const hour of ['01', '02', '03']) {
        const media = tempDir(`media-${hour}`);
        randomFiles(media, 100);
        const env = {
          PATH: process.env.PATH,
          RESTIC_REPOSITORY: path.join(volume, 'restic'),
          RESTIC_PASSWORD: secrets.backupPassword,
          RESTIC_CACHE_DIR: path.join(dir, 'restic-cache'),
        };
        if (hour === '01') execFileSync(programs().restic, ['init'], { env, stdio: 'pipe' });
        execFileSync(programs().restic, ['backup', '--host', 'kudo', '--tag', 'media', '--time', `2026-11-01 ${hour}:00:00`, media], { env, stdio: 'pipe' });
        fs.rmSync(media, { recursive: true });
      }
    }

    test('prunes what the retention no longer keeps before it writes, and succeeds', () => {
      const volume = smallVolume(640);
      earlierNight(volume);
      const media = tempDir('media-new');
      randomFiles(media, 120);
      shareWithPod(volume, podSpec(find(manifests, 'CronJob', 'media-backup')).securityContext.fsGroup);
      shareWithPod(media, podSpec(find(manifests, 'CronJob', 'media-backup')).securityContext.fsGroup);
      const r = step('media-backup', 'store', { backupsDir: volume, media, env: { OFFSITE_REPOSITORY: '' } });
      expect(out(r)).toMatch(/bytes free, this snapshot needs about \d+: pruning first/);
      expect(r.status).toBe(0);
      // restic's retention: the newest of each day (1 November's 03:00, tonight's), and, while fewer days than
      // keep-daily have snapshots, the oldest one too (01:00). 02:00 was pruned to make room.
      const times = snapshots('local', 'media', volume).map((s) => s.time.slice(0, 13));
      expect(times.slice(0, 2)).toEqual(['2026-11-01T01', '2026-11-01T03']);
      expect(times).toHaveLength(3);
    });

    test('when even pruning leaves too little room it stops, says so, and keeps every snapshot', () => {
      const volume = smallVolume(480);
      earlierNight(volume);
      const before = snapshots('local', 'media', volume).map((s) => s.short_id);
      const media = tempDir('media-huge');
      randomFiles(media, 300);
      shareWithPod(volume, podSpec(find(manifests, 'CronJob', 'media-backup')).securityContext.fsGroup);
      shareWithPod(media, podSpec(find(manifests, 'CronJob', 'media-backup')).securityContext.fsGroup);
      const r = step('media-backup', 'store', { backupsDir: volume, media, env: { OFFSITE_REPOSITORY: '' } });
      expect(out(r)).toMatch(/ERROR: the backup volume has \d+ bytes free after pruning, this snapshot needs about \d+: enlarge backup.storage or lower backup.retention/);
      expect(r.status).not.toBe(0);
      // What the retention keeps is still there (the newest and the oldest of that night); 02:00 was pruned.
      expect(snapshots('local', 'media', volume).map((s) => s.short_id)).toEqual([before[0], before[2]]);

      // A full backup volume does not cost the off-site copy: it is stored, and the Job still fails.
      const withOffsite = step('media-backup', 'store', { backupsDir: volume, media });
      expect(out(withOffsite)).toContain("the backup volume's repository did not take the snapshot (see above); the off-site copy was stored");
      expect(withOffsite.status).not.toBe(0);
      // The newest off-site snapshot is of these 300 MiB.
      const newest = (JSON.parse(restic('offsite', ['snapshots', '--json', '--tag', 'media', 'latest'])) as { summary: { total_bytes_processed: number } }[])[0];
      expect(newest.summary.total_bytes_processed).toBe(300 * MiB);
    });
  });
});
