/**
 * Disaster recovery, as the runbook (docs/operations.md, "Disaster recovery") does it, with the real programs: a cluster (an API server, the secret
 * generator, PostgreSQL, Synapse filled by real clients, the admin bootstrap) is backed up by the rendered nightly
 * steps, then lost whole; a new one is rebuilt from the off-site repository and its password alone: the Secrets
 * (secrets.restoreFromBackup), the database, the media. Afterwards the server has its old identity, users their
 * rooms and media, the app working credentials, and LiveKit (the new render's Deployment on the restored Secret)
 * accepts the tokens the app minted before the loss.
 *
 * restic's steps run in restic's image as the pod's user, each held to its container's memory limit (a cgroup), with
 * its memory emptyDirs as tmpfs of their size and its disk emptyDirs on disk (checked against their sizeLimit, as the
 * kubelet evicts); PostgreSQL's and Python's steps run natively with the rendered commands and environment.
 *
 * Size: KUDO_DR_DB_MIB of database and KUDO_DR_MEDIA_MIB of media in files of 512 KiB (defaults 64 and 192 here;
 * `npm run bench:dr` runs 1024 and 5120 and reports the figures KUDO_DR_REPORT receives: RTO, backup cost).
 */
import { execFileSync, spawnSync, SpawnSyncReturns } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { AccessToken } from 'livekit-server-sdk';
import { FakeKubeApi } from '../fake-kube-api';
import { ApiServer, startApiServer } from './apiserver';
import { configMapFile, container, find, httpJson, Manifest, PodNetwork, podSpec, Program, programs, rendered, secretVolumeFiles, tempDir, writeSecretFiles } from './harness';
import { diskEmptyDirUsage, ImageSandbox, podVolumes, shareWithPod } from './image';
import { prepareLiveKit, startLiveKit } from './livekit';
import { libpqClientEnv, RunningPostgres, startPostgres } from './postgres';
import { startRedis } from './redis';
import { login, registerUser, RunningSynapse, startSynapse } from './synapse';

const sizeFromEnv = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a whole number of MiB, not ${process.env[name]}`);
  return v;
};
const DB_MIB = sizeFromEnv('KUDO_DR_DB_MIB', 64);
const MEDIA_MIB = sizeFromEnv('KUDO_DR_MEDIA_MIB', 192);
const MEDIA_FILE_KIB = 512;
const MiB = 2 ** 20;
/** Per step: generous, and proportional to the data (this machine moves well over 10 MiB/s). */
const STEP_TIMEOUT = 300_000 + ((DB_MIB + MEDIA_MIB) / 10) * 1000;

const S3 = { backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } } };
/** The cluster that is lost, and the render its rebuild is applied from (docs/operations.md, "Disaster recovery"). */
const before = rendered(S3);
const after = rendered({ ...S3, secrets: { restoreFromBackup: 'latest' } });
/** What the operator kept outside the cluster: the off-site Secret's values. */
const OFFSITE = { RESTIC_PASSWORD: 'offsite-e2e-only', AWS_ACCESS_KEY_ID: 'e2e-key-id', AWS_SECRET_ACCESS_KEY: 'e2e-secret' };

let dir: string;
/** The bucket: a local folder stands in for it, and is all that survives the old cluster. */
let offsite: string;
let offsiteSecret: string;
const servers: ApiServer[] = [];
const stops: (() => Promise<void>)[] = [];
const tmpfsMounts: string[] = [];
const report: Record<string, unknown> = { databaseMiB: DB_MIB, mediaMiB: MEDIA_MIB, mediaFiles: 0 };

/** A folder that is a tmpfs of `bytes`: a memory emptyDir the pod's containers share. */
function memoryFolder(prefix: string, bytes: number): string {
  const d = tempDir(prefix);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0777`, 'kudo-e2e-memory', d]);
  tmpfsMounts.push(d);
  return d;
}

/** A rendered ConfigMap's files, as its volume shows them to the pod's user. */
function configMapFolder(ms: Manifest[], name: string, fsGroup: number): string {
  const d = tempDir(name);
  for (const [f, text] of Object.entries<string>(find(ms, 'ConfigMap', name).data)) fs.writeFileSync(path.join(d, f), text, { mode: 0o555 });
  shareWithPod(d, fsGroup);
  return d;
}

/** A cluster's API: an API server with the render's namespaces, ServiceAccounts and RBAC. */
async function cluster(ms: Manifest[]): Promise<ApiServer> {
  const api = await startApiServer({ logDir: tempDir('apiserver') });
  servers.push(api);
  const rbac = ms.filter((m) => ['Namespace', 'ServiceAccount', 'Role', 'RoleBinding'].includes(m.kind));
  api.kubectl(['apply', '--server-side', '-f', '-'], { input: rbac.map((m) => yaml.dump(m)).join('---\n') });
  return api;
}

/** A bundled Python step with the Synapse image's Python, reaching the API with a token of the step's ServiceAccount. */
async function python(api: ApiServer, serviceAccount: string, scripts: string, args: string[], env: Record<string, string> = {}) {
  const token = path.join(tempDir('token'), 'token');
  fs.writeFileSync(token, api.kubectl(['create', 'token', serviceAccount, '-n', 'kudo']).stdout.trim());
  const p = new Program(serviceAccount, programs().synapsePython, args, {
    logDir: dir,
    cwd: scripts, // the plan is named as the pod names it, relative to the scripts here
    env: { ...env, PATH: process.env.PATH, PYTHONPATH: scripts, PYTHONDONTWRITEBYTECODE: '1', KUBE_API_URL: api.url, KUBE_TOKEN_FILE: token, KUBE_CA_FILE: api.caFile },
  });
  return { code: (await p.exit(STEP_TIMEOUT)) ?? -1, output: p.output() };
}

interface StepRun {
  r: SpawnSyncReturns<string>;
  seconds: number;
  /** The cgroup's peak (page cache included, which the kernel reclaims at the limit) and its OOM kills. */
  memory: { peakBytes: number; limitBytes: number; oomKills: number };
  /** The largest resident set of its processes (restic's), in bytes. */
  maxRssBytes: number;
}

/** One restic step in its image, as the pod's user, under its memory limit, with the pod's volumes. */
function resticStep(workload: Manifest, name: string, folders: Record<string, string>, env: Record<string, string> = {}): StepRun {
  const c = container(workload, name);
  const e: Record<string, string> = Object.fromEntries(c.env.map((x: any) => [x.name, x.value]));
  e.OFFSITE_REPOSITORY = '/offsite'; // paths: a local repository stands in for the bucket
  Object.assign(e, env);
  const volumes = { ...podVolumes(workload, name, { offsite: offsiteSecret, ...folders }, { diskEmptyDirsOnDisk: true }), '/offsite': { host: offsite } };
  const sandbox = new ImageSandbox(workload, name, { '/usr/bin/restic': programs().restic }, { memoryLimit: true });
  const [command, args] = sandbox.wrap(c.command[0], c.command.slice(1), e, '/', undefined, volumes);
  const started = Date.now();
  const rss = path.join(tempDir('rss'), 'kib');
  const r = spawnSync('/usr/bin/time', ['-o', rss, '-f', '%M', command, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH },
    maxBuffer: 64 * MiB,
    timeout: STEP_TIMEOUT,
  });
  const maxRssBytes = 1024 * Number(fs.readFileSync(rss, 'utf8').trim().split('\n').pop());
  return { r, seconds: (Date.now() - started) / 1000, memory: sandbox.memoryUsage(), maxRssBytes };
}

/** One PostgreSQL-image step (dump, restore), natively with this machine's PostgreSQL 17 tools. */
function postgresStep(workload: Manifest, name: string, pg: RunningPostgres, backups: string, passwordDir: string): { r: SpawnSyncReturns<string>; seconds: number } {
  const c = container(workload, name);
  const env: Record<string, string> = Object.fromEntries(c.env.filter((x: any) => x.value !== undefined).map((x: any) => [x.name, x.value]));
  Object.assign(env, libpqClientEnv(pg, env), {
    STAGING_DIR: path.join(backups, 'staging'),
    PASSWORD_FILE: path.join(passwordDir, 'password'), // paths
  });
  const scripts = path.join(dir, 'backup-scripts-native');
  if (!fs.existsSync(scripts)) {
    fs.mkdirSync(scripts);
    for (const f of Object.keys(find(before.manifests, 'ConfigMap', 'backup-scripts').data)) {
      fs.writeFileSync(path.join(scripts, f), configMapFile(before.manifests, 'backup-scripts', f), { mode: 0o555 });
    }
  }
  const started = Date.now();
  const r = spawnSync(c.command[0], [path.join(scripts, path.basename(c.command[1]))], {
    encoding: 'utf8',
    env: { ...env, PATH: `${programs().pgBin}:${process.env.PATH}`, HOME: dir },
    maxBuffer: 64 * MiB,
    timeout: STEP_TIMEOUT,
  });
  // What it wrote, as the pod's user would own it: restic's steps come next.
  shareWithPod(backups, podSpec(workload).securityContext.fsGroup);
  return { r, seconds: (Date.now() - started) / 1000 };
}
const out = (r: SpawnSyncReturns<string>) => `${r.stdout}${r.stderr}`;

/** Every value of the generator's plan as an API server holds it (first destination), by name. */
function heldValues(api: ApiServer, ms: Manifest[]): Record<string, string> {
  const plan = JSON.parse(find(ms, 'ConfigMap', 'secret-generator').data['plan.json']) as {
    values: { name: string; destinations: { namespace: string; secret: string; key: string }[] }[];
  };
  const values: Record<string, string> = {};
  for (const v of plan.values) {
    const d = v.destinations[0];
    const r = api.kubectl(['get', 'secret', d.secret, '-n', d.namespace, '-o', 'json'], { allowFail: true });
    const data = r.code === 0 ? (JSON.parse(r.stdout).data ?? {}) : {};
    if (data[d.key] !== undefined) values[v.name] = Buffer.from(data[d.key], 'base64').toString();
  }
  return values;
}

/** The rendered admin bootstrap against a Synapse and an API server: registers or logs in the admin, fills kudo-app. */
async function bootstrap(api: ApiServer, synapse: RunningSynapse, values: Record<string, string>, ms: Manifest[]) {
  const job = ms.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('bootstrap-admin'))!;
  const secrets = tempDir('bootstrap-secrets');
  writeSecretFiles(secrets, { admin_password: values.adminPassword, registration_shared_secret: values.registrationSharedSecret });
  const env: Record<string, string> = Object.fromEntries(job.spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]));
  const scripts = tempDir('bootstrap');
  for (const f of ['kube.py', 'bootstrap_admin.py']) fs.writeFileSync(path.join(scripts, f), configMapFile(ms, 'admin-bootstrap', f));
  return python(api, 'admin-bootstrap', scripts, ['bootstrap_admin.py'], {
    ...env,
    SYNAPSE_URL: synapse.base, // hosts + ports
    ADMIN_PASSWORD_FILE: path.join(secrets, 'admin_password'),
    REGISTRATION_SECRET_FILE: path.join(secrets, 'registration_shared_secret'), // paths
  });
}

const appSecret = (api: ApiServer) => {
  const data = JSON.parse(api.kubectl(['get', 'secret', 'kudo-app', '-n', 'kudo-app', '-o', 'json']).stdout).data;
  return Object.fromEntries(Object.entries<string>(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
};
const serverKeys = async (base: string) => (await httpJson(`${base}/_matrix/key/v2/server`)).body.verify_keys as Record<string, { key: string }>;

/** What the old cluster held, to compare the rebuilt one with. */
const old = {
  values: {} as Record<string, string>,
  keys: {} as Record<string, { key: string }>,
  room: '',
  messages: [] as string[],
  media: new Map<string, string>(),
  tables: 0,
  /** A LiveKit token the app minted with the old cluster's key (room listing, valid for hours, as an app caches one). */
  livekitToken: '',
};
/** The Secret values the rebuilt cluster holds after the runbook's Secrets step. */
let rebuiltValues: Record<string, string> | undefined;
let backupsOld: string;
/** The old cluster was stopped and removed (the loss). */
let oldLost = false;

beforeAll(async () => {
  dir = tempDir('disaster-recovery');
  offsite = path.join(dir, 'offsite');
  fs.mkdirSync(offsite);
  const cj = find(before.manifests, 'CronJob', 'postgres-backup');
  offsiteSecret = path.join(dir, 'secret-offsite');
  writeSecretFiles(offsiteSecret, secretVolumeFiles(cj, 'offsite', before.config, Object.fromEntries(Object.entries(OFFSITE).map(([k, v]) => [`kudo-backup-s3/${k}`, v]))));
  shareWithPod(dir, podSpec(cj).securityContext.fsGroup);

  // The old cluster: its Secrets from the real generator, then PostgreSQL and Synapse on them.
  const api = await cluster(before.manifests);
  const generatorJob = before.manifests.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('generate-secrets-'))!;
  const gen = await python(api, 'secret-generator', configMapFolder(before.manifests, 'secret-generator', podSpec(generatorJob).securityContext.fsGroup), [
    'generate_secrets.py',
    'plan.json',
  ]);
  if (gen.code !== 0) throw new Error(`generator failed:\n${gen.output}`);
  old.values = heldValues(api, before.manifests);
  const pg = await startPostgres(before.manifests, before.config, old.values);
  stops.push(() => (oldLost ? Promise.resolve() : pg.stop()));
  const synapse = await startSynapse(before.manifests, before.config, old.values, pg);
  stops.push(() => (oldLost ? Promise.resolve() : synapse.stop()));

  // A user, a room with messages, media: through Synapse's own APIs, as clients make them.
  const reg = await registerUser(synapse.base, old.values.registrationSharedSecret, 'alice', 'alice-password');
  if (reg.status !== 200) throw new Error(`register: ${JSON.stringify(reg.body)}`);
  const token = await login(synapse.base, 'alice', 'alice-password');
  const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  old.room = (await httpJson(`${synapse.base}/_matrix/client/v3/createRoom`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'before the fire' }) })).body.room_id;
  for (let i = 0; i < 12; i++) {
    // Synapse's rate limit answers 429 with the wait; a client waits and sends again (same transaction ID).
    for (;;) {
      const sent = await httpJson(`${synapse.base}/_matrix/client/v3/rooms/${encodeURIComponent(old.room)}/send/m.room.message/t${i}`, {
        method: 'PUT',
        headers: auth,
        body: JSON.stringify({ msgtype: 'm.text', body: `message ${i}` }),
      });
      if (sent.status === 200) break;
      if (sent.status !== 429) throw new Error(`send: HTTP ${sent.status} ${JSON.stringify(sent.body)}`);
      await new Promise((resolve) => setTimeout(resolve, sent.body.retry_after_ms ?? 1000));
    }
    old.messages.push(`message ${i}`);
  }
  const files = Math.ceil((MEDIA_MIB * 1024) / MEDIA_FILE_KIB);
  for (let i = 0; i < files; i++) {
    const bytes = crypto.randomBytes(MEDIA_FILE_KIB * 1024);
    const up = await httpJson(`${synapse.base}/_matrix/media/v3/upload?filename=f${i}.bin`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/octet-stream' },
      body: bytes,
    });
    if (up.status !== 200) throw new Error(`upload ${i}: HTTP ${up.status} ${JSON.stringify(up.body)}`);
    old.media.set(up.body.content_uri, crypto.createHash('sha256').update(bytes).digest('hex'));
  }
  report.mediaFiles = files;
  // The app's credentials, as the bootstrap Job hands them over.
  const boot = await bootstrap(api, synapse, old.values, before.manifests);
  if (boot.code !== 0) throw new Error(`bootstrap failed:\n${boot.output}`);
  const livekitToken = new AccessToken(old.values.livekitApiKey, old.values.livekitApiSecret, { identity: 'kudo-app', ttl: '6h' });
  livekitToken.addGrant({ roomList: true });
  old.livekitToken = await livekitToken.toJwt();
  // The database's bulk: rows in a table Synapse has (event JSON of a room no one is in), up to DB_MIB.
  const server = before.config.serverName;
  for (let batch = 0; Number(pg.psql('SELECT pg_database_size(current_database())')) < DB_MIB * MiB; batch++) {
    pg.psql(`INSERT INTO event_json (event_id, room_id, internal_metadata, json, format_version)
      SELECT '$filler-${batch}-' || g || ':${server}', '!filler:${server}', '{}', array_to_string(ARRAY(SELECT md5(random()::text || g) FROM generate_series(1, 24)), ''), 3
      FROM generate_series(1, 20000) g`);
  }
  old.tables = Number(pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"));
  old.keys = await serverKeys(synapse.base);

  // The backup volume of the old cluster, and the local repository's password (the generated Secret kudo-backup).
  backupsOld = tempDir('backups');
  shareWithPod(backupsOld, podSpec(cj).securityContext.fsGroup);
  shareWithPod(synapse.mediaDir, podSpec(cj).securityContext.fsGroup);
  (globalThis as any).drOld = { api, pg, synapse };
}, 3_600_000);

afterAll(async () => {
  if (process.env.KUDO_DR_REPORT) fs.writeFileSync(process.env.KUDO_DR_REPORT, `${JSON.stringify(report, null, 2)}\n`);
  for (const d of tmpfsMounts) spawnSync('umount', [d]);
  // Every program is stopped even when one stop fails (a failed test can leave a half-started one): the first error is
  // reported after all of them.
  const errors: unknown[] = [];
  for (const stop of [...stops.reverse(), ...servers.map((api) => () => api.stop())]) {
    try {
      await stop();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length > 0) throw errors[0];
});

const oldCluster = () => (globalThis as any).drOld as { api: ApiServer; pg: RunningPostgres; synapse: RunningSynapse };
const bytesIn = (folder: string) => Number(execFileSync('du', ['-sb', folder], { encoding: 'utf8' }).split('\t')[0]);

/**
 * Every restic step ran inside its memory limit (the kernel killed nothing: page cache counts against the cgroup, so
 * its peak reaches the limit on big files and is reclaimed there, as in the pod), and its disk emptyDirs stayed inside
 * their sizeLimit.
 */
function expectWithinLimits(runs: Record<string, StepRun>) {
  for (const [name, run] of Object.entries(runs)) {
    expect({ name, oomKills: run.memory.oomKills, rssUnderLimit: run.maxRssBytes < run.memory.limitBytes }).toEqual({ name, oomKills: 0, rssUnderLimit: true });
  }
  for (const u of diskEmptyDirUsage()) expect({ ...u, over: u.usedBytes > u.limitBytes }).toMatchObject({ over: false });
}

describe(`disaster recovery of ${DB_MIB} MiB of database and ${MEDIA_MIB} MiB of media from the off-site repository alone`, () => {
  interface Night {
    dumpSeconds: number;
    store: StepRun;
    exportDir: string;
    folders: Record<string, string>;
  }

  /** A night's database backup, as the postgres-backup job's first two steps: the dump, then restic storing it. */
  function databaseNight(): Night {
    const { pg } = oldCluster();
    const cj = find(before.manifests, 'CronJob', 'postgres-backup');
    const fsGroup = podSpec(cj).securityContext.fsGroup;
    const scripts = configMapFolder(before.manifests, 'backup-scripts', fsGroup);
    const passwordDir = tempDir('secret-password');
    writeSecretFiles(passwordDir, secretVolumeFiles(cj, 'password', before.config, old.values));
    const repositoryPassword = tempDir('secret-repository');
    writeSecretFiles(repositoryPassword, secretVolumeFiles(cj, 'repository-password', before.config, old.values));
    shareWithPod(repositoryPassword, fsGroup);
    const folders = { scripts, backups: backupsOld, 'repository-password': repositoryPassword };
    const dump = postgresStep(cj, 'dump', pg, backupsOld, passwordDir);
    expect(out(dump.r)).toMatch(/dumped .* to .*synapse\.dump/);
    expect(dump.r.status).toBe(0);
    const store = resticStep(cj, 'store', folders);
    expect(out(store.r)).toContain('stored postgres');
    expect(store.r.status).toBe(0);
    const exportDir = memoryFolder('secrets-export', MiB); // the rendered volume's sizeLimit, 1Mi
    shareWithPod(exportDir, fsGroup);
    return { dumpSeconds: dump.seconds, store, exportDir, folders };
  }

  test(
    'the nightly jobs store the database, the Secrets and the media off-site, each restic step inside its memory limit',
    async () => {
      const { api, synapse } = oldCluster();
      const cj = find(before.manifests, 'CronJob', 'postgres-backup');
      expect(podSpec(cj).volumes.find((v: any) => v.name === 'secrets-export').emptyDir).toEqual({ medium: 'Memory', sizeLimit: '1Mi' });
      const started = Date.now();
      const n = databaseNight();
      // The Secrets: exported with the backup's own ServiceAccount (get on the named Secrets only), then stored.
      const exportFile = path.join(n.exportDir, 'secrets.json');
      const exported = await python(api, 'backup', n.folders.scripts, ['export_secrets.py', 'secrets-plan.json', exportFile]);
      expect(exported.output).toMatch(/exported 12 of 12 secret values/);
      expect(exported.code).toBe(0);
      fs.chmodSync(exportFile, 0o640); // the pod's uid wrote it 0600 in the pod; root did here, so its group may read it
      const storeSecrets = resticStep(cj, 'store-secrets', { ...n.folders, 'secrets-export': n.exportDir });
      expect(out(storeSecrets.r)).toContain('stored secrets');
      expect(storeSecrets.r.status).toBe(0);
      const media = find(before.manifests, 'CronJob', 'media-backup');
      const storeMedia = resticStep(media, 'store', { ...n.folders, media: synapse.mediaDir });
      expect(out(storeMedia.r)).toContain('stored media');
      expect(storeMedia.r.status).toBe(0);
      expectWithinLimits({ store: n.store, storeSecrets, storeMedia });
      report.firstBackup = {
        seconds: (Date.now() - started) / 1000,
        dumpSeconds: n.dumpSeconds,
        storeDumpSeconds: n.store.seconds,
        storeMediaSeconds: storeMedia.seconds,
        offsiteBytes: bytesIn(offsite),
        maxRssMiB: Math.max(n.store.maxRssBytes, storeSecrets.maxRssBytes, storeMedia.maxRssBytes) / MiB,
        memoryLimitMiB: storeMedia.memory.limitBytes / MiB,
      };

      // An unchanged night: its cost follows what changed, not the size (Synapse keeps running and writing a little).
      const offsiteBefore = bytesIn(offsite);
      const again = Date.now();
      const n2 = databaseNight();
      const media2 = resticStep(media, 'store', { ...n2.folders, media: synapse.mediaDir });
      expect(out(media2.r)).toMatch(/Files:\s+0 new,\s+0 changed,\s+\d+ unmodified/);
      expect(media2.r.status).toBe(0);
      const added = bytesIn(offsite) - offsiteBefore;
      report.unchangedNight = { seconds: (Date.now() - again) / 1000, offsiteBytesAdded: added, storeDumpSeconds: n2.store.seconds, storeMediaSeconds: media2.seconds };
      expect(added).toBeLessThan(0.05 * (DB_MIB + MEDIA_MIB) * MiB);
    },
    4 * STEP_TIMEOUT,
  );

  test('the old cluster is lost with its backup volume; the off-site repository is all that is left', async () => {
    const { api, pg, synapse } = oldCluster();
    oldLost = true;
    await synapse.stop();
    await pg.stop();
    await api.stop();
    servers.splice(servers.indexOf(api), 1);
    for (const d of [synapse.dir, synapse.mediaDir, pg.dataDir, backupsOld]) fs.rmSync(d, { recursive: true, force: true });
    expect(fs.existsSync(synapse.mediaDir)).toBe(false);
    expect(bytesIn(offsite)).toBeGreaterThan(0.5 * MEDIA_MIB * MiB);
  }, 120_000);

  test(
    "rebuilt by the runbook: same server identity, users log in to their rooms, media byte for byte, the app's credentials work",
    async () => {
      const started = Date.now();
      const phases: Record<string, number> = {};
      const mark = (name: string, since: number) => (phases[name] = (Date.now() - since) / 1000);

      // Step 2: the Secrets. A wrong off-site password fetches nothing (and the generator, the next step, never runs).
      let t = Date.now();
      const api = await cluster(after.manifests);
      const job = after.manifests.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('generate-secrets-'))!;
      const fsGroup = podSpec(job).securityContext.fsGroup;
      const generatorScripts = configMapFolder(after.manifests, 'secret-generator', fsGroup);
      const wrongSecret = tempDir('secret-offsite-wrong');
      writeSecretFiles(wrongSecret, { ...OFFSITE, RESTIC_PASSWORD: 'not-it' });
      shareWithPod(wrongSecret, fsGroup);
      const wrongDir = memoryFolder('restored-wrong', MiB);
      const wrong = resticStep(job, 'fetch', { scripts: generatorScripts, offsite: wrongSecret, 'restored-secrets': wrongDir });
      expect(out(wrong.r)).toMatch(/wrong password/);
      expect(wrong.r.status).not.toBe(0);
      expect(fs.readdirSync(wrongDir)).toEqual([]);
      const restoredDir = memoryFolder('restored-secrets', MiB);
      const secretsFetch = resticStep(job, 'fetch', { scripts: generatorScripts, 'restored-secrets': restoredDir });
      expect(out(secretsFetch.r)).toContain('restoring latest (secrets) from /offsite');
      expect(secretsFetch.r.status).toBe(0);
      expect(container(job, 'generate-secrets').command.slice(-2)).toEqual(['--restore', '/restored-secrets/secrets.json']);
      const gen = await python(api, 'secret-generator', generatorScripts, ['generate_secrets.py', 'plan.json', '--restore', path.join(restoredDir, 'secrets.json')]);
      expect(gen.output).toContain('signingKey: restored from the backup');
      expect(gen.code).toBe(0);
      const values = heldValues(api, after.manifests);
      // Every value, the LiveKit key and secret among them: tokens the app mints with the old key stay valid.
      expect(values).toEqual(old.values);
      rebuiltValues = values;
      mark('secrets', t);

      // Step 3: PostgreSQL, then the database from the off-site repository.
      t = Date.now();
      const pg = await startPostgres(after.manifests, after.config, values);
      stops.push(() => pg.stop());
      const backups = tempDir('backups-new');
      const restoreJob = find(after.manifests, 'CronJob', 'postgres-restore');
      shareWithPod(backups, podSpec(restoreJob).securityContext.fsGroup);
      const scripts = configMapFolder(after.manifests, 'backup-scripts', fsGroup);
      // The local repository's password volume is mounted in every restic step (the new volume's repository is empty).
      const repositoryPassword = tempDir('secret-repository');
      writeSecretFiles(repositoryPassword, secretVolumeFiles(restoreJob, 'repository-password', after.config, values));
      shareWithPod(repositoryPassword, fsGroup);
      const folders = { scripts, backups, 'repository-password': repositoryPassword };
      const dbFetch = resticStep(restoreJob, 'fetch', folders, { FROM: 'offsite' });
      expect(dbFetch.r.status).toBe(0);
      const passwordDir = tempDir('secret-password');
      writeSecretFiles(passwordDir, secretVolumeFiles(restoreJob, 'password', after.config, values));
      const dbRestore = postgresStep(restoreJob, 'restore', pg, backups, passwordDir);
      expect(out(dbRestore.r)).toContain('restored');
      expect(dbRestore.r.status).toBe(0);
      expect(Number(pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))).toBe(old.tables);
      mark('database', t);

      // Step 4: Synapse on the restored database; the bootstrap logs the admin in with the restored password.
      t = Date.now();
      const mediaDir = tempDir('media-new');
      shareWithPod(mediaDir, fsGroup);
      const synapse = await startSynapse(after.manifests, after.config, values, pg, mediaDir);
      stops.push(() => synapse.stop());
      const boot = await bootstrap(api, synapse, values, after.manifests);
      expect(boot.code).toBe(0);
      mark('synapse', t);
      const chatBack = (Date.now() - started) / 1000;

      // Step 5: the media, while Synapse serves.
      t = Date.now();
      const mediaRestore = resticStep(find(after.manifests, 'CronJob', 'media-restore'), 'restore', { ...folders, media: mediaDir }, { FROM: 'offsite' });
      expect(out(mediaRestore.r)).toContain('restored latest (media)');
      expect(mediaRestore.r.status).toBe(0);
      mark('media', t);
      expectWithinLimits({ secretsFetch, dbFetch, mediaRestore });
      report.recovery = {
        rtoSeconds: (Date.now() - started) / 1000,
        chatBackSeconds: chatBack,
        phases,
        maxRssMiB: Math.max(secretsFetch.maxRssBytes, dbFetch.maxRssBytes, mediaRestore.maxRssBytes) / MiB,
      };

      // The same server: key ID and public key unchanged (other servers keep trusting it).
      expect(await serverKeys(synapse.base)).toEqual(old.keys);
      // alice, with her old password, syncs her room and its messages.
      const token = await login(synapse.base, 'alice', 'alice-password');
      const auth = { Authorization: `Bearer ${token}` };
      expect((await httpJson(`${synapse.base}/_matrix/client/v3/joined_rooms`, { headers: auth })).body.joined_rooms).toEqual([old.room]);
      const messages = await httpJson(`${synapse.base}/_matrix/client/v3/rooms/${encodeURIComponent(old.room)}/messages?dir=b&limit=100`, { headers: auth });
      const bodies = messages.body.chunk
        .filter((e: any) => e.type === 'm.room.message')
        .map((e: any) => e.content.body)
        .reverse();
      expect(bodies).toEqual(old.messages);
      // Every file downloads byte for byte.
      let different = 0;
      for (const [uri, digest] of old.media) {
        const [server, id] = uri.replace('mxc://', '').split('/');
        const r = await fetch(`${synapse.base}/_matrix/client/v1/media/download/${server}/${id}`, { headers: auth });
        const got = crypto
          .createHash('sha256')
          .update(Buffer.from(await r.arrayBuffer()))
          .digest('hex');
        if (r.status !== 200 || got !== digest) different++;
      }
      expect({ files: old.media.size, different }).toEqual({ files: Math.ceil((MEDIA_MIB * 1024) / MEDIA_FILE_KIB), different: 0 });
      // The app's admin token: the new cluster's kudo-app was empty, so the bootstrap logged the admin in with the restored password.
      const app = appSecret(api);
      const who = await httpJson(`${synapse.base}/_matrix/client/v3/account/whoami`, { headers: { Authorization: `Bearer ${app.MATRIX_ADMIN_TOKEN}` } });
      expect(who.body.user_id).toBe(`@admin:${after.config.serverName}`);
      expect(app.LIVEKIT_API_SECRET).toBe(old.values.livekitApiSecret);
    },
    6 * STEP_TIMEOUT,
  );

  test('LiveKit, started from the rebuilt Secrets, accepts the token the app minted before the loss', async () => {
    if (rebuiltValues === undefined) throw new Error('the rebuild did not get past its Secrets step');
    // The rendered LiveKit Deployment of the new cluster (its Redis too), on a node the address lookup finds.
    const network = new PodNetwork();
    stops.push(() => Promise.resolve(network.remove()));
    const redis = await startRedis(after.manifests, after.config, rebuiltValues, network);
    stops.push(() => redis.program.stop());
    const nodes = new FakeKubeApi();
    const nodesUrl = await nodes.start();
    stops.push(() => nodes.stop());
    nodes.putNode('kudo-node-new', [{ type: 'InternalIP', address: network.podAddress }]);
    const run = await prepareLiveKit(after.manifests, after.config, rebuiltValues, network, redis.port, nodesUrl, 'kudo-node-new');
    const livekit = startLiveKit(run);
    stops.push(() => livekit.stop());
    const url = `http://${network.podAddress}:${run.port}`;
    await livekit.waitFor('GET / 200', async () => (await httpJson(`${url}/`)).status === 200, 60_000);

    const listRooms = (jwt: string) =>
      httpJson(`${url}/twirp/livekit.RoomService/ListRooms`, { method: 'POST', headers: { Authorization: `Bearer ${jwt}`, 'Content-Type': 'application/json' }, body: '{}' });
    const accepted = await listRooms(old.livekitToken);
    expect({ status: accepted.status, body: accepted.body }).toEqual({ status: 200, body: { rooms: [] } });
    // Control: the same key ID signed with any other secret (what a freshly generated pair would be) is refused.
    const other = new AccessToken(old.values.livekitApiKey, crypto.randomBytes(32).toString('base64url'), { identity: 'kudo-app', ttl: '6h' });
    other.addGrant({ roomList: true });
    expect((await listRooms(await other.toJwt())).status).toBe(401);
  }, 180_000);
});
