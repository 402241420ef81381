/**
 * Point-in-time recovery with the programs CloudNativePG's barman-cloud
 * plugin runs: MinIO as the S3 store, PostgreSQL 17 archiving its WAL with
 * barman-cloud-wal-archive, base backups with barman-cloud-backup, recovery
 * with barman-cloud-restore and barman-cloud-wal-restore, retention with
 * barman-cloud-backup-delete.
 *
 * Every setting comes from the rendered Cluster (archiving, or recovering
 * from an archive: bootstrap.recovery and its external cluster), the
 * ObjectStore it names and the ScheduledBackup, and each command line is
 * built the way the plugin (v0.14.0, through its cloudnative-pg/barman-cloud
 * library) builds it from them. One difference: with wal.maxParallel the
 * plugin archives up to that many ready segments at once, where
 * archive_command takes one at a time; that matters only when segments
 * queue up, which they do not here.
 *
 * PostgreSQL refuses root, so it runs as uid 1000 in a user namespace,
 * reachable only through its socket; barman-cloud runs as that same user, as
 * in the pod. Shared by pitr.e2e.test.ts and scripts/bench-pitr-rpo.mjs.
 */
import { execFileSync, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { find, freePort, httpJson, Manifest, pitrPrograms, Program, programs, rendered, sleep, tail } from './harness';

/** Where and how a Cluster's WAL and base backups go: an ObjectStore and a barman server name in it. */
export interface BarmanSettings {
  /** barman's server name: the folder under the destination path. */
  readonly serverName: string;
  readonly destinationPath: string;
  readonly endpointURL: string;
  readonly bucket: string;
  /** The destination path's key prefix ("postgres"). */
  readonly prefix: string;
  readonly walCompression: string;
  readonly dataCompression: string;
  /** The ObjectStore's retentionPolicy ("30d") as barman takes it ("RECOVERY WINDOW OF 30 DAYS"). */
  readonly retentionPolicy: string;
}

/** What the operator and the plugin take from a rendered Cluster and the objects it names. */
export interface ClusterSettings {
  /** Where the Cluster archives: its WAL-archiving plugin's ObjectStore and serverName. */
  readonly archive: BarmanSettings;
  /** postgresql.parameters */
  readonly parameters: Record<string, string>;
  /** bootstrap.initdb, for a Cluster that starts empty. */
  readonly initdb?: { database: string; owner: string; encoding: string; localeCollate: string; localeCType: string };
  /** bootstrap.recovery, for a Cluster made from an archive: the external cluster it reads and where it stops. */
  readonly recovery?: { readonly source: BarmanSettings; readonly targetTime?: string };
  /** The ScheduledBackup's name: the operator names its backups after it. */
  readonly scheduledBackup: string;
}

/**
 * The Cluster rendered with backups to the S3 store at `endpointURL` (the
 * store's real address, so no rewrite is needed), archiving under
 * `serverName`, and recovering from an archive when `recovery` says so;
 * the rest is the default config.
 */
export function renderedCluster(endpointURL: string, opts: { serverName?: string; recovery?: { serverName: string; targetTime?: string } } = {}): ClusterSettings {
  const backup = { destinationPath: 's3://kudo-backups/postgres', endpointURL, ...(opts.serverName !== undefined ? { serverName: opts.serverName } : {}) };
  const cloudnativePg = { backup, ...(opts.recovery !== undefined ? { recovery: opts.recovery } : {}) };
  return clusterSettings(rendered({ postgres: { mode: 'cloudnative-pg', cloudnativePg } }).manifests);
}

export function clusterSettings(ms: Manifest[]): ClusterSettings {
  const cluster = find(ms, 'Cluster', 'postgres');
  const plugin = (cluster.spec.plugins ?? []).find((p: any) => p.isWALArchiver === true);
  if (!plugin) throw new Error('Cluster postgres has no plugin with isWALArchiver: nothing would archive its WAL');
  const schedules = ms.filter(
    (m) => m.kind === 'ScheduledBackup' && m.spec.cluster.name === cluster.metadata.name && m.spec.method === 'plugin' && m.spec.pluginConfiguration?.name === plugin.name,
  );
  if (schedules.length !== 1) throw new Error(`expected one ScheduledBackup of Cluster postgres through ${plugin.name}, found ${schedules.length}`);
  const bootstrap = cluster.spec.bootstrap;
  let recovery: ClusterSettings['recovery'];
  if (bootstrap.recovery !== undefined) {
    const source = (cluster.spec.externalClusters ?? []).find((c: any) => c.name === bootstrap.recovery.source);
    if (source?.plugin?.name !== plugin.name) throw new Error(`bootstrap.recovery.source ${bootstrap.recovery.source} is no external cluster read through ${plugin.name}`);
    recovery = {
      // The plugin's default server name is the Cluster's own name, for the external cluster too.
      source: storeSettings(ms, source.plugin.parameters.barmanObjectName, source.plugin.parameters.serverName ?? source.name),
      targetTime: bootstrap.recovery.recoveryTarget?.targetTime,
    };
  }
  return {
    archive: storeSettings(ms, plugin.parameters.barmanObjectName, plugin.parameters.serverName ?? cluster.metadata.name),
    parameters: cluster.spec.postgresql.parameters,
    initdb: bootstrap.initdb,
    recovery,
    scheduledBackup: schedules[0].metadata.name,
  };
}

function storeSettings(ms: Manifest[], objectStore: string, serverName: string): BarmanSettings {
  const spec = find(ms, 'ObjectStore', objectStore).spec;
  const c = spec.configuration;
  // s3://bucket/prefix: a URL of a scheme Node does not know, so host and path are taken as written.
  const url = new URL(c.destinationPath);
  return {
    serverName,
    destinationPath: c.destinationPath,
    endpointURL: c.endpointURL,
    bucket: url.host,
    prefix: url.pathname.replace(/^\/+|\/+$/g, ''),
    walCompression: c.wal.compression,
    dataCompression: c.data.compression,
    retentionPolicy: barmanRetention(spec.retentionPolicy),
  };
}

/** The plugin's translation of a retentionPolicy (barman-cloud pkg/utils ParsePolicy). */
export function barmanRetention(policy: string): string {
  const m = /^([1-9][0-9]*)([dwm])$/.exec(policy);
  if (!m) throw new Error(`retentionPolicy "${policy}" is not <n>d, <n>w or <n>m`);
  const unit: Record<string, string> = { d: 'DAYS', w: 'WEEKS', m: 'MONTHS' };
  return `RECOVERY WINDOW OF ${m[1]} ${unit[m[2]]}`;
}

/** The endpoint, and the provider that s3Credentials selects. Every command gets them. */
const storeOptions = (s: BarmanSettings) => ['--endpoint-url', s.endpointURL, '--cloud-provider', 'aws-s3'];

/** Each command's arguments, in the order the plugin puts them. */
export const barmanArgs = {
  walArchive: (s: BarmanSettings) => [`--${s.walCompression}`, ...storeOptions(s), s.destinationPath, s.serverName],
  walRestore: (s: BarmanSettings) => [...storeOptions(s), s.destinationPath, s.serverName],
  backup: (s: BarmanSettings, name: string) => ['--user', 'postgres', '--name', name, `--${s.dataCompression}`, ...storeOptions(s), s.destinationPath, s.serverName],
  restore: (s: BarmanSettings, backupId: string, pgdata: string) => [...storeOptions(s), s.destinationPath, s.serverName, backupId, pgdata],
  backupList: (s: BarmanSettings) => ['--format', 'json', ...storeOptions(s), s.destinationPath, s.serverName],
  backupDelete: (s: BarmanSettings) => [...storeOptions(s), '--retention-policy', s.retentionPolicy, s.destinationPath, s.serverName],
  /** Run before a Cluster's first archive: fails when the server name already holds WAL (another history). */
  checkWalArchive: (s: BarmanSettings) => [...storeOptions(s), s.destinationPath, s.serverName],
};

/** The file name suffix barman gives a compressed WAL segment. */
const WAL_SUFFIX: Record<string, string> = { gzip: '.gz', bzip2: '.bz2' };

/** Where barman keeps a WAL segment in the bucket. */
export function walKey(s: BarmanSettings, wal: string): string {
  const suffix = WAL_SUFFIX[s.walCompression];
  if (suffix === undefined) throw new Error(`no WAL file suffix known for compression ${s.walCompression}`);
  return `${s.prefix}/${s.serverName}/wals/${wal.slice(0, 16)}/${wal}${suffix}`;
}

export interface ObjectStoreServer {
  readonly endpoint: string;
  /** What the Secret that s3Credentials names would hold: the plugin passes them to barman as AWS_* variables. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

/** MinIO on a free loopback port with fresh keys, its data in `dir`. */
export async function startMinio(dir: string): Promise<ObjectStoreServer> {
  const port = await freePort();
  const user = `kudo-${randomBytes(4).toString('hex')}`;
  const password = randomBytes(16).toString('hex');
  const data = path.join(dir, 'minio-data');
  fs.mkdirSync(data, { recursive: true });
  // No web console (it would take a second port); HOME keeps MinIO's ~/.minio in the temp dir.
  const server = new Program('minio', pitrPrograms().minio, ['server', '--quiet', '--address', `127.0.0.1:${port}`, data], {
    logDir: dir,
    env: { PATH: process.env.PATH, HOME: dir, MINIO_ROOT_USER: user, MINIO_ROOT_PASSWORD: password, MINIO_BROWSER: 'off' },
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await server.waitFor('readiness', async () => (await httpJson(`${endpoint}/minio/health/ready`)).status === 200, 60_000);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return { endpoint, env: { AWS_ACCESS_KEY_ID: user, AWS_SECRET_ACCESS_KEY: password }, stop: () => server.stop() };
}

/** A small S3 client (boto3, as barman uses) for what an operator does by hand and for looking into the bucket. */
const S3_PY = `
import json, sys, time, boto3
from botocore.exceptions import ClientError
op, endpoint, bucket, arg = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint)
if op == "create-bucket":
    s3.create_bucket(Bucket=bucket)
elif op == "list":
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=arg)
    print(json.dumps([o["Key"] for p in pages for o in p.get("Contents", [])]))
elif op == "first-bytes":
    print(s3.get_object(Bucket=bucket, Key=arg, Range="bytes=0-1")["Body"].read().hex())
elif op == "wait":
    print("ready", flush=True)
    while True:
        try:
            s3.head_object(Bucket=bucket, Key=arg)
            break
        except ClientError:
            time.sleep(0.05)
    print(repr(time.time()), flush=True)
`;

function s3(store: ObjectStoreServer, s: BarmanSettings, op: string, arg = ''): string {
  return execFileSync(path.join(pitrPrograms().barmanBin, 'python'), ['-c', S3_PY, op, s.endpointURL, s.bucket, arg], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: '/nonexistent', ...store.env },
    stdio: 'pipe',
  }).trim();
}

/** The bucket of the destination path, made as an operator would before the first backup. */
export function createBucket(store: ObjectStoreServer, s: BarmanSettings): void {
  s3(store, s, 'create-bucket');
}

/** Every key under the server's folder of the destination path. */
export function listObjects(store: ObjectStoreServer, s: BarmanSettings): string[] {
  return JSON.parse(s3(store, s, 'list', `${s.prefix}/${s.serverName}/`));
}

/** An object's first two bytes, in hex (1f8b for gzip). */
export function firstBytes(store: ObjectStoreServer, s: BarmanSettings, key: string): string {
  return s3(store, s, 'first-bytes', key);
}

/**
 * Starts watching for an object: `ready` settles once the watcher polls
 * (every 50 ms), `seen` with the wall-clock time (ms) it first found it.
 */
export function watchObject(store: ObjectStoreServer, s: BarmanSettings, key: string, timeoutMs = 300_000): { ready: Promise<void>; seen: Promise<number> } {
  const child = spawn(path.join(pitrPrograms().barmanBin, 'python'), ['-c', S3_PY, 'wait', s.endpointURL, s.bucket, key], {
    env: { PATH: process.env.PATH, HOME: '/nonexistent', ...store.env },
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: timeoutMs,
  });
  let out = '';
  let onReady!: () => void;
  let onFail!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => ([onReady, onFail] = [resolve, reject]));
  child.stdout.on('data', (d) => {
    out += d;
    if (out.startsWith('ready\n')) onReady();
  });
  const seen = new Promise<number>((resolve, reject) =>
    child.on('exit', (code, signal) => {
      const t = Number(out.split('\n')[1]);
      if (code === 0 && Number.isFinite(t)) return resolve(t * 1000);
      const e = new Error(`watching ${key} failed (${signal ?? `exit ${code}`}): ${out}`);
      onFail(e); // a no-op once ready
      reject(e);
    }),
  );
  // Callers await `ready` first; a failure before it must not also surface as an unhandled `seen`.
  seen.catch(() => undefined);
  return { ready, seen };
}

/** PostgreSQL refuses to run as root: server-side programs run as uid 1000 in a user namespace. */
const unprivileged = (command: string, args: string[]) => ['unshare', '--user', '--map-user=1000', '--map-group=1000', '--', command, ...args];

const shellQuote = (arg: string) => `'${arg.replace(/'/g, "'\\''")}'`;

/** What barman-cloud and the server (which runs barman-cloud as archive/restore command) need in their environment. */
function barmanEnv(store: ObjectStoreServer, home: string): Record<string, string> {
  // A HOME of our own, so no ~/.aws of this machine's user changes what boto3 does.
  return { PATH: `${pitrPrograms().barmanBin}:${process.env.PATH}`, HOME: home, LC_ALL: 'C.UTF-8', ...store.env };
}

/** Runs a barman-cloud tool as the instance's user; returns its stdout, or throws with its output. */
export function barman(store: ObjectStoreServer, dir: string, tool: string, args: string[], env: Record<string, string> = {}): string {
  const [cmd, ...rest] = unprivileged(path.join(pitrPrograms().barmanBin, tool), args);
  return execFileSync(cmd, rest, { encoding: 'utf8', env: { ...barmanEnv(store, dir), ...env }, stdio: 'pipe' });
}

export interface BarmanBackup {
  readonly backup_id: string;
  readonly backup_name: string;
  readonly status: string;
}

export function backupList(store: ObjectStoreServer, s: BarmanSettings, dir: string): BarmanBackup[] {
  return JSON.parse(barman(store, dir, 'barman-cloud-backup-list', barmanArgs.backupList(s))).backups_list;
}

/** The server settings that archive every completed WAL segment to the store. */
export function archiving(s: BarmanSettings): Record<string, string> {
  const tool = path.join(pitrPrograms().barmanBin, 'barman-cloud-wal-archive');
  return { archive_mode: 'on', archive_command: `${[tool, ...barmanArgs.walArchive(s)].map(shellQuote).join(' ')} %p` };
}

/**
 * The settings the plugin's restore job writes (recovery_target_action =
 * promote, restore_command fetching WAL from the source archive), with the
 * target of the Cluster's bootstrap.recovery.recoveryTarget.targetTime.
 */
export function recovery(source: BarmanSettings, targetTime?: string): Record<string, string> {
  const tool = path.join(pitrPrograms().barmanBin, 'barman-cloud-wal-restore');
  return {
    restore_command: `${[tool, ...barmanArgs.walRestore(source)].map(shellQuote).join(' ')} %f %p`,
    recovery_target_action: 'promote',
    ...(targetTime !== undefined ? { recovery_target_time: postgresTime(targetTime) } : {}),
  };
}

/**
 * The operator's rewrite of an RFC 3339 targetTime for recovery_target_time
 * (cloudnative-pg/machinery ConvertToPostgresFormat): "YYYY-MM-DD
 * HH:MM:SS.ffffff+hh:mm", "Z" as "+00:00" because PostgreSQL refuses zone
 * abbreviations there when it starts; anything else is passed on as written.
 */
export function postgresTime(targetTime: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$/.exec(targetTime);
  if (!m) return targetTime;
  // Go's layout truncates to microseconds; no zone is taken as UTC.
  return `${m[1]} ${m[2]}.${(m[3] ?? '').padEnd(6, '0').slice(0, 6)}${m[4] === undefined || m[4] === 'Z' ? '+00:00' : m[4]}`;
}

export interface PgInstance {
  readonly name: string;
  readonly dataDir: string;
  readonly server: Program;
  /** Runs each statement in its own transaction, as `user` in `database` (the superuser in postgres by default). */
  psql(statements: string | string[], database?: string, user?: string): string;
  /** Environment for a client on the same host (barman-cloud-backup connects through the socket). */
  readonly clientEnv: Record<string, string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts a server on `dataDir` with the Cluster's parameters, archiving as
 * the Cluster does, plus `settings`. LOOPBACK_REWRITES ports and paths: a
 * free port, the socket in the temp dir, and no TCP listener at all (only
 * local clients here).
 */
export async function startInstance(
  name: string,
  c: ClusterSettings,
  store: ObjectStoreServer,
  dataDir: string,
  dir: string,
  settings: Record<string, string> = {},
): Promise<PgInstance> {
  const bin = programs().pgBin;
  const port = await freePort();
  const socketDir = path.join(dir, `${name}-run`);
  fs.mkdirSync(socketDir, { recursive: true });
  const all = { ...c.parameters, ...archiving(c.archive), ...settings, listen_addresses: '', port: String(port), unix_socket_directories: socketDir };
  const [cmd, ...args] = unprivileged(path.join(bin, 'postgres'), ['-D', dataDir, ...Object.entries(all).flatMap(([k, v]) => ['-c', `${k}=${v}`])]);
  const server = new Program(name, cmd, args, { logDir: dir, env: barmanEnv(store, dir) });
  const clientEnv = { PATH: process.env.PATH ?? '', LC_ALL: 'C.UTF-8', PGHOST: socketDir, PGPORT: String(port) };
  const psql = (statements: string | string[], database = 'postgres', user = 'postgres') =>
    execFileSync(
      path.join(bin, 'psql'),
      ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-U', user, '-d', database, ...(Array.isArray(statements) ? statements : [statements]).flatMap((sql) => ['-c', sql])],
      { encoding: 'utf8', env: clientEnv, stdio: 'pipe' },
    ).trim();
  try {
    // During recovery the server takes connections once consistent (hot_standby is on by default).
    await server.waitFor('the local socket', () => psql('SELECT 1') === '1', 120_000);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return { name, dataDir, server, psql, clientEnv, stop: (signal: NodeJS.Signals = 'SIGINT') => server.stop(signal) };
}

/** As the plugin does before a Cluster's first archive: refuses a server name that already holds WAL. */
function checkEmptyArchive(store: ObjectStoreServer, s: BarmanSettings, dir: string): void {
  barman(store, dir, 'barman-cloud-check-wal-archive', barmanArgs.checkWalArchive(s));
}

/**
 * A new primary as CloudNativePG bootstraps one (bootstrap.initdb: its
 * encoding and locales, the superuser postgres, then the owner and the
 * database), archiving its WAL from the start.
 */
export async function initPrimary(c: ClusterSettings, store: ObjectStoreServer, dir: string): Promise<PgInstance> {
  const i = c.initdb;
  if (i === undefined) throw new Error('the Cluster has no bootstrap.initdb');
  const dataDir = path.join(dir, 'primary-data');
  const [cmd, ...args] = unprivileged(path.join(programs().pgBin, 'initdb'), [
    '-D',
    dataDir,
    '--username=postgres',
    `--encoding=${i.encoding}`,
    `--lc-collate=${i.localeCollate}`,
    `--lc-ctype=${i.localeCType}`,
  ]);
  execFileSync(cmd, args, { env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' }, stdio: 'pipe' });
  checkEmptyArchive(store, c.archive, dir);
  const pg = await startInstance('primary', c, store, dataDir, dir);
  pg.psql([`CREATE ROLE "${i.owner}" LOGIN`, `CREATE DATABASE "${i.database}" OWNER "${i.owner}"`]);
  return pg;
}

/**
 * Ends the current WAL segment (what archive_timeout does when it runs out)
 * and waits until the archiver has put it in the store; returns its name.
 */
export async function switchAndArchive(pg: PgInstance, timeoutMs = 60_000): Promise<string> {
  const wal = pg.psql('SELECT pg_walfile_name(pg_switch_wal())');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [archived, failed] = pg.psql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver").split('|');
    // Segment names sort in WAL order (a timeline's .history sorts before its segments).
    if (archived >= wal) return wal;
    if (Date.now() > deadline) throw new Error(`${wal} not archived within ${timeoutMs} ms (${failed} failures):\n${tail(pg.server.output())}`);
    await sleep(200);
  }
}

/**
 * A Cluster made from an archive into an empty data directory, as the
 * plugin's restore job does it: barman-cloud-restore of a base backup from
 * the source, then the server replays WAL from the source up to the target
 * and promotes itself, archiving its new history under its own server name.
 */
export async function restoreInstance(name: string, c: ClusterSettings, store: ObjectStoreServer, dir: string, backupId: string): Promise<PgInstance> {
  if (c.recovery === undefined) throw new Error('the Cluster has no bootstrap.recovery');
  const dataDir = path.join(dir, `${name}-data`);
  // A new directory (mkdirSync fails on an existing one), so nothing of the lost primary is in it.
  fs.mkdirSync(dataDir, { mode: 0o700 });
  barman(store, dir, 'barman-cloud-restore', barmanArgs.restore(c.recovery.source, backupId, dataDir));
  fs.writeFileSync(path.join(dataDir, 'recovery.signal'), '');
  checkEmptyArchive(store, c.archive, dir);
  const pg = await startInstance(name, c, store, dataDir, dir, recovery(c.recovery.source, c.recovery.targetTime));
  try {
    await pg.server.waitFor('the end of recovery', () => pg.psql('SELECT pg_is_in_recovery()') === 'f', 120_000);
  } catch (e) {
    await pg.stop();
    throw e;
  }
  return pg;
}
