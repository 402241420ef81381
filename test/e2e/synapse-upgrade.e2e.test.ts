/**
 * A Synapse upgrade with the real programs: an old release (1.98.0, from PyPI, installed by
 * install-programs.sh) builds a database with a user, a room, messages and an uploaded file; the
 * rendered migration Job's command, run with the pinned release, migrates it; the pinned release's
 * processes (the main one and workers behind the router, from the rendered manifests) start on the
 * migrated schema and serve the old data. Before the migration, the schema step every Synapse pod
 * runs first keeps waiting and a worker refuses the old schema by itself; after it, the old release
 * refuses the database (a downgrade across a schema change).
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import {
  configMapFile,
  container,
  find,
  freePort,
  generatedSecrets,
  httpJson,
  oldSynapsePython,
  Program,
  programs,
  rendered,
  rewritePaths,
  secretVolumeFiles,
  tempDir,
  writeSecretFiles,
} from './harness';
import { pointDatabaseArgs, RunningPostgres, startPostgres } from './postgres';
import { RunningRedis, startRedis } from './redis';
import { login, registerUser } from './synapse';
import { RunningRouter, RunningSynapseProcesses, startRouter, startSynapseProcesses } from './synapse-workers';

// The main process and a few workers: the sync, the events' writer and the media.
const FEW = {
  clientReader: 0,
  synchrotron: 1,
  initialSynchrotron: 0,
  federationInbound: 0,
  federationReader: 0,
  federationSender: 0,
  mediaRepository: 1,
  eventPersister: 1,
  eventCreator: 0,
  streamWriter: 0,
  background: 0,
};
const { config, manifests } = rendered({ synapse: { workers: { enabled: true, replicas: FEW } } });
const job = manifests.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('synapse-migrate-'))!;
const deploy = find(manifests, 'Deployment', 'synapse');
const PASSWORD = 'correct horse battery staple';
const MESSAGES = ['before the upgrade: one', 'before the upgrade: two', 'before the upgrade: three'];
const MEDIA = Buffer.from('a file uploaded under Synapse 1.98.0\n');

let secrets: Record<string, string>;
let pg: RunningPostgres;
let redis: RunningRedis;
let processes: RunningSynapseProcesses | undefined;
let router: RunningRouter | undefined;
/** A Synapse pod's files as it mounts them: the ConfigMap (homeserver.yaml on loopback), the Secret files, the password file. */
let pod: { dir: string; pathMap: Record<string, string>; env: Record<string, string> };
let oldMedia: string;
let roomId: string;
let mediaUri: string;
const running: Program[] = [];

/** A rendered config with every absolute path mapped to the pod's files. */
function mountedPaths(v: unknown, pathMap: Record<string, string>): unknown {
  if (typeof v === 'string' && v.startsWith('/')) return rewritePaths(v, pathMap);
  if (Array.isArray(v)) return v.map((x) => mountedPaths(x, pathMap));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mountedPaths(x, pathMap)]));
  return v;
}

/** The rendered homeserver.yaml with loopback rewrites: PostgreSQL's address, the mounted paths. */
function podFiles(db: RunningPostgres): typeof pod {
  const dir = tempDir('synapse-upgrade-pod');
  const d = { config: path.join(dir, 'config'), secrets: path.join(dir, 'secrets'), db: path.join(dir, 'db'), run: path.join(dir, 'run'), media: path.join(dir, 'media') };
  for (const p of [d.config, d.run, d.media]) fs.mkdirSync(p, { recursive: true });
  writeSecretFiles(d.secrets, secretVolumeFiles(job, 'secrets', config, secrets));
  writeSecretFiles(d.db, secretVolumeFiles(job, 'db-password', config, secrets));
  for (const [file, text] of Object.entries<string>(find(manifests, 'ConfigMap', 'synapse-config').data)) fs.writeFileSync(path.join(d.config, file), text);
  const pathMap = { '/config': d.config, '/secrets': d.secrets, '/db': d.db, '/run/synapse': d.run, '/media': d.media };
  const hs = yaml.load(configMapFile(manifests, 'synapse-config', 'homeserver.yaml')) as any;
  // paths: the pod's mounts; then hosts + ports + paths: PostgreSQL in its pod network namespace, by its rendered name (TLS).
  const mounted = mountedPaths(hs, pathMap) as any;
  pointDatabaseArgs(mounted.database.args, db);
  fs.writeFileSync(path.join(d.config, 'homeserver.yaml'), yaml.dump(mounted));
  // The Job's init step as rendered: libpq's password file.
  const [cmd, ...args] = (container(job, 'pgpass').command as string[]).map((a) => rewritePaths(a, pathMap));
  execFileSync(cmd, args);
  const env = Object.fromEntries(container(job, 'migrate').env.map((e: any) => [e.name, rewritePaths(e.value, pathMap)]));
  return { dir, pathMap, env };
}

/** A container's command run by the pinned Synapse's Python, its paths mapped to the pod's files. */
function pinned(name: string, command: string[], files = pod): Program {
  const [python, ...args] = command;
  expect(python).toBe('python');
  const p = new Program(
    name,
    programs().synapsePython,
    args.map((a) => rewritePaths(a, files.pathMap)),
    { logDir: files.dir, env: { PATH: process.env.PATH, ...files.env } },
  );
  running.push(p);
  return p;
}

/** The old release with a config of its own time: inline secrets (it knows no *_path files), the same server name, key and database. */
async function startOld(name: string): Promise<{ program: Program; base: string; ready: () => Promise<void> }> {
  const dir = tempDir(`synapse-old-${name}`);
  const port = await freePort();
  const hs = {
    server_name: config.serverName,
    public_baseurl: `http://127.0.0.1:${port}/`,
    report_stats: false,
    listeners: [{ port, type: 'http', tls: false, x_forwarded: false, bind_addresses: ['127.0.0.1'], resources: [{ names: ['client', 'federation'], compress: false }] }],
    database: { name: 'psycopg2', args: { user: pg.user, password: pg.password, dbname: pg.database, host: pg.host, port: pg.port, cp_min: 1, cp_max: 5 } },
    media_store_path: oldMedia,
    signing_key_path: path.join(pod.pathMap['/secrets'], 'signing.key'),
    macaroon_secret_key: readSecret('macaroon_secret_key'),
    form_secret: readSecret('form_secret'),
    registration_shared_secret: readSecret('registration_shared_secret'),
    trusted_key_servers: [],
    enable_registration: false,
  };
  fs.writeFileSync(path.join(dir, 'homeserver.yaml'), yaml.dump(hs));
  const program = new Program(name, oldSynapsePython(), ['-m', 'synapse.app.homeserver', '--config-path', path.join(dir, 'homeserver.yaml')], {
    logDir: dir,
    env: { PATH: process.env.PATH },
  });
  running.push(program);
  const base = `http://127.0.0.1:${port}`;
  return { program, base, ready: () => program.waitFor('/health', async () => (await fetch(`${base}/health`)).status === 200, 120_000) };
}

const schemaVersion = () => pg.psql('SELECT version FROM schema_version');
/** A Secret file as the pod sees it. */
const readSecret = (file: string) => fs.readFileSync(path.join(pod.pathMap['/secrets'], file), 'utf8').trim();

beforeAll(async () => {
  secrets = await generatedSecrets(manifests);
  pg = await startPostgres(manifests, config, secrets);
  redis = await startRedis(manifests, config, secrets);
  pod = podFiles(pg);
  oldMedia = tempDir('synapse-old-media');
}, 300_000);

afterAll(async () => {
  await router?.stop();
  await processes?.stop();
  await Promise.all(running.map((p) => p.stop()));
  await redis?.program.stop();
  await pg?.stop();
});

test('Synapse 1.98.0 builds the database: a user, a room, messages and an uploaded file', async () => {
  const old = await startOld('synapse-1.98.0');
  await old.ready();
  expect((await httpJson(`${old.base}/_synapse/admin/v1/server_version`)).body.server_version).toBe('1.98.0');
  expect((await registerUser(old.base, readSecret('registration_shared_secret'), 'alice', PASSWORD)).status).toBe(200);
  const token = await login(old.base, 'alice', PASSWORD);
  const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const room = await httpJson(`${old.base}/_matrix/client/v3/createRoom`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'Before the upgrade' }) });
  expect(room.status).toBe(200);
  roomId = room.body.room_id;
  for (const [i, body] of MESSAGES.entries()) {
    const sent = await httpJson(`${old.base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${i}`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({ msgtype: 'm.text', body }),
    });
    expect(sent.status).toBe(200);
  }
  const upload = await fetch(`${old.base}/_matrix/media/v3/upload?filename=old.txt`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'text/plain' },
    body: MEDIA,
  });
  expect(upload.status).toBe(200);
  mediaUri = ((await upload.json()) as any).content_uri;
  await old.program.stop();
  expect(schemaVersion()).toBe('83');
}, 300_000);

test("before the migration, every Synapse pod's schema step waits, and a worker of the pinned release refuses the old schema by itself", async () => {
  const wait = pinned('wait-for-schema-before', podInit('schema').command);
  await wait.waitFor('its waiting line', () => wait.output().includes('waiting for the migration Job: schema version 83, this Synapse needs 94'), 60_000);
  // Still waiting ten seconds later: it never gives up on its own.
  await new Promise((r) => setTimeout(r, 10_000));
  expect(wait.running).toBe(true);
  await wait.stop();

  // A synchrotron as its StatefulSet runs it (its worker file, a worker name), on the old schema.
  const worker = manifests.find((m) => ['Deployment', 'StatefulSet'].includes(m.kind) && m.metadata.name === 'synapse-synchrotron')!;
  const workerFile = yaml.load(configMapFile(manifests, 'synapse-config', 'worker-synchrotron.yaml')) as any;
  for (const l of workerFile.worker_listeners ?? []) {
    l.port = await freePort();
    l.bind_addresses = ['127.0.0.1'];
  }
  fs.writeFileSync(path.join(pod.pathMap['/config'], 'worker-synchrotron.yaml'), yaml.dump(mountedPaths(workerFile, pod.pathMap)));
  fs.writeFileSync(path.join(pod.pathMap['/run/synapse'], 'worker-name.yaml'), 'worker_name: "synapse-synchrotron-0"\n');
  const refused = pinned('synchrotron-on-the-old-schema', container(worker, 'synapse').command);
  expect(await refused.exit(120_000)).not.toBe(0);
  expect(refused.output()).toContain(
    'Expected database schema version 94 but got 83: run the main synapse process to upgrade the database schema before starting worker processes.',
  );
  expect(schemaVersion()).toBe('83');
}, 300_000);

/** A Synapse pod's init container of the rendered main Deployment. */
function podInit(name: string): any {
  return deploy.spec.template.spec.initContainers.find((c: any) => c.name === name);
}

let migrationSeconds: number;

test("the rendered migration Job's command, with the pinned release, migrates the old database to the pinned schema; run again, it changes nothing", async () => {
  const t0 = Date.now();
  const migrate = pinned('update-synapse-database', container(job, 'migrate').command);
  expect(await migrate.exit(1_800_000)).toBe(0);
  migrationSeconds = (Date.now() - t0) / 1000;
  console.log(
    `migration 83 -> 94 (Synapse 1.98.0 -> ${execFileSync(programs().synapsePython, ['-c', 'import synapse; print(synapse.__version__)'], { encoding: 'utf8' }).trim()}): ${migrationSeconds.toFixed(1)} s`,
  );
  expect(migrate.output()).toContain('Applying schema deltas for v84');
  expect(migrate.output()).toContain('Schema now up to date');
  expect(schemaVersion()).toBe('94');
  expect(pg.psql('SELECT compat_version FROM schema_compat_version')).toBe('84');

  // What the next Argo CD sync (the hook runs again) or a re-created Job does: nothing to apply.
  const applied = pg.psql('SELECT count(*) FROM applied_schema_deltas');
  expect(migrate.output()).toMatch(/Applying schema \d+\//);
  const t1 = Date.now();
  const again = pinned('update-synapse-database-again', container(job, 'migrate').command);
  expect(await again.exit(600_000)).toBe(0);
  console.log(`the same Job again: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  expect(again.output()).not.toMatch(/Applying (engine-specific )?schema \d+\//);
  expect(pg.psql('SELECT count(*) FROM applied_schema_deltas')).toBe(applied);

  // The schema step of every Synapse pod lets the process start now.
  const wait = pinned('wait-for-schema-after', podInit('schema').command);
  expect(await wait.exit(60_000)).toBe(0);
  expect(wait.output()).toContain('schema version 94 is current');
}, 1_900_000);

test('the pinned release, main process and workers behind the router, serves the old data: the old user logs in, syncs the old messages, downloads the old file', async () => {
  processes = await startSynapseProcesses(manifests, config, secrets, pg, redis.port);
  router = await startRouter(manifests, configMapFile(manifests, 'synapse-router', 'haproxy.cfg'), processes.processes);
  // The media store moves with the volume: the old release's files, in the media worker's store.
  fs.cpSync(oldMedia, processes.mediaDir, { recursive: true });
  const base = `http://127.0.0.1:${router.port}`;
  const token = await login(base, 'alice', PASSWORD);
  const sync = await httpJson(`${base}/_matrix/client/v3/sync`, { headers: { Authorization: `Bearer ${token}` } });
  expect(sync.status).toBe(200);
  const timeline = sync.body.rooms.join[roomId].timeline.events.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
  expect(timeline).toEqual(MESSAGES);
  const [server, mediaId] = mediaUri.replace('mxc://', '').split('/');
  const download = await fetch(`${base}/_matrix/client/v1/media/download/${server}/${mediaId}`, { headers: { Authorization: `Bearer ${token}` } });
  expect(download.status).toBe(200);
  expect(Buffer.from(await download.arrayBuffer())).toEqual(MEDIA);
  // Every process runs the pinned release on the migrated schema.
  for (const p of processes.processes) expect([p.name, p.program.running]).toEqual([p.name, true]);
  await router.stop();
  await processes.stop();
}, 900_000);

test('a downgrade across the schema change: Synapse 1.98.0 refuses the migrated database', async () => {
  const old = await startOld('synapse-1.98.0-downgrade');
  expect(await old.program.exit(120_000)).not.toBe(0);
  expect(old.program.output()).toContain('Cannot use this database as it is too new for the server to understand');
  expect(schemaVersion()).toBe('94');
}, 300_000);

test("a fresh install: on the empty database PostgreSQL's init made, the Job's command builds the whole schema, and the schema step then lets the processes start", async () => {
  const fresh = await startPostgres(manifests, config, secrets);
  try {
    expect(fresh.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).toBe('0');
    const files = podFiles(fresh);
    const waiting = pinned('wait-for-schema-fresh', podInit('schema').command, files);
    await waiting.waitFor('its waiting line', () => waiting.output().includes('waiting for the migration Job: the database has no schema yet'), 60_000);
    await waiting.stop();
    const migrate = pinned('update-synapse-database-fresh', container(job, 'migrate').command, files);
    expect(await migrate.exit(600_000)).toBe(0);
    // Synapse builds a new database from its last full schema plus the deltas since: upgraded, at the pinned version.
    expect(fresh.psql('SELECT version, upgraded FROM schema_version')).toBe('94|t');
    const wait = pinned('wait-for-schema-fresh-after', podInit('schema').command, files);
    expect(await wait.exit(60_000)).toBe(0);
    expect(wait.output()).toContain('schema version 94 is current');
  } finally {
    await fresh.stop();
  }
}, 900_000);
