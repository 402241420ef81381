/**
 * Moving from the docker-compose stack, step by step as docs/operations.md's
 * "Moving from docker-compose" says, with the real programs:
 *
 * - the old stack: a PostgreSQL 17 with Synapse's role and database, filled
 *   by a real Synapse (a user with a password, a room, messages, media), its
 *   media store and signing key where the old compose volume had them
 *   (/data/media_store, /data/<server name>.signing.key), its secrets in a
 *   compose .env file;
 * - the old runbook's dump (`pg_dump -U synapse synapse`, plain SQL, as the
 *   synapse user over the container's local socket) and `docker cp` of the media;
 * - `npm run synth` with KUDO_ENV_FILE and KUDO_SIGNING_KEY_FILE, the Secrets
 *   it writes applied before the secret generator runs;
 * - the new, rendered PostgreSQL (initialised as the StatefulSet does it: an
 *   empty database owned by synapse), the dump restored with the runbook's psql
 *   line, the media unpacked into the media volume with its tar line;
 * - Synapse from the new rendered config on the restored database and media.
 *
 * Then the old user logs in with the old password, the old access token still
 * works, the room, its messages and the media are there, and the server signs
 * with the old key (its federation identity).
 *
 * What runs in place of `docker exec` / `kubectl exec`: the same command, in
 * the container's place, with LOOPBACK_REWRITES.paths/ports (the socket folder
 * and port of the test's server, the media folder for /media).
 */
import { execFileSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { ENV_FILE_VARIABLES } from '../../charts/migrate/env-file';
import { SYNAPSE_MEDIA_DIR } from '../../charts/synapse';
import { container, find, generatedSecrets, httpJson, Manifest, programs, rendered, ROOT, sleep, tempDir } from './harness';
import { postgresVersion, RunningPostgres, startPostgres } from './postgres';
import { login, registerUser, RunningSynapse, startSynapse, synapseVersion } from './synapse';

/**
 * The commands of docs/operations.md, "Moving from docker-compose". `readme` is the line an operator types; `runs` is the
 * part that runs inside the old or new container, which is what this test runs.
 */
const RUNBOOK = {
  dump: { readme: 'docker exec <postgres container> pg_dump -U synapse synapse > matrix-backup.sql', runs: 'pg_dump -U synapse synapse' },
  media: { readme: 'docker cp <synapse container>:/data/media_store ./media_store' },
  signingKey: { readme: 'docker cp <synapse container>:/data/<server name>.signing.key .' },
  render: { readme: 'KUDO_ENV_FILE=.env KUDO_SIGNING_KEY_FILE=<server name>.signing.key npm run synth' },
  restore: {
    readme: 'kubectl -n kudo exec -i postgres-0 -c postgres -- psql -X -v ON_ERROR_STOP=1 --single-transaction -U synapse -d synapse < matrix-backup.sql',
    runs: 'psql -X -v ON_ERROR_STOP=1 --single-transaction -U synapse -d synapse',
  },
  /** When Synapse already started on the new, empty database (all of dist/ applied before the restore): the restore stops at its first table. */
  stopSynapse: { readme: 'kubectl -n kudo scale deployment,statefulset -l app.kubernetes.io/component=homeserver --replicas=0' },
  emptyDatabase: {
    readme: "kubectl -n kudo exec postgres-0 -c postgres -- psql -X -v ON_ERROR_STOP=1 -U synapse -d synapse -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;'",
    runs: "psql -X -v ON_ERROR_STOP=1 -U synapse -d synapse -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;'",
  },
  copyMedia: {
    readme: 'tar -C media_store -cf - . | kubectl -n kudo exec -i deploy/synapse -c synapse -- tar -xf - -C /media --no-same-owner',
    local: 'tar -C media_store -cf - .',
    runs: 'tar -xf - -C /media --no-same-owner',
  },
} as const;

test('every runbook line the test follows is in docs/operations.md, word for word', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
  expect(
    Object.entries(RUNBOOK)
      .filter(([, step]) => !readme.includes(step.readme))
      .map(([name]) => name),
  ).toEqual([]);
});

const { config } = rendered();
const SERVER = config.serverName;
const PASSWORD = 'correct horse battery staple';

/** The old stack's folder, and the operator's working folder (where the dump, the media copy and the render land). */
let oldRoot: string;
let work: string;
let oldSecrets: Record<string, string>;
let newSecrets: Record<string, string>;
let importedSecrets: Manifest[];
let newManifests: Manifest[];
let oldPg: RunningPostgres;
let newPg: RunningPostgres;
let oldSynapse: RunningSynapse | undefined;
let newSynapse: RunningSynapse | undefined;
let newMedia: string;

/** What the old server held, to be found again. */
const before: {
  token?: string;
  roomId?: string;
  messages: string[];
  media: { mxc: string; sha256: string }[];
  verifyKeys?: unknown;
  tables?: Record<string, string>;
} = { messages: [], media: [] };

/** A command line's words, as a shell splits this one (single quotes group words). */
const argv = (line: string) => line.match(/'[^']*'|\S+/g)!.map((w) => w.replace(/^'(.*)'$/, '$1'));

/** A command that runs in a PostgreSQL container, run against a test server: its local socket and port (paths, ports). */
function inPostgresContainer(pg: RunningPostgres, line: string, opts: { input?: Buffer; cwd?: string } = {}): Buffer {
  const [cmd, ...args] = argv(line);
  return execFileSync(path.join(programs().pgBin, cmd), args, {
    input: opts.input,
    cwd: opts.cwd,
    maxBuffer: 1 << 30,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, PGHOST: pg.socketDir, PGPORT: String(pg.port) },
  });
}

/** Every public table and a digest of all its rows, in a stable order. */
function tableDigests(pg: RunningPostgres): Record<string, string> {
  const tables = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").split('\n');
  return Object.fromEntries(tables.map((t) => [t, pg.psql(`SELECT count(*) || ':' || md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM public."${t}" r`)]));
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function fillOldServer(s: RunningSynapse): Promise<void> {
  const reg = await registerUser(s.base, oldSecrets.registrationSharedSecret, 'alice', PASSWORD);
  expect(reg.status).toBe(200);
  before.token = await login(s.base, 'alice', PASSWORD);
  const auth = { Authorization: `Bearer ${before.token}`, 'Content-Type': 'application/json' };
  const room = await httpJson(`${s.base}/_matrix/client/v3/createRoom`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'from compose' }) });
  expect(room.status).toBe(200);
  before.roomId = room.body.room_id;
  for (let i = 0; i < 12; i++) {
    const body = `before the move ${i}`;
    const send = () =>
      httpJson(`${s.base}/_matrix/client/v3/rooms/${encodeURIComponent(before.roomId!)}/send/m.room.message/m${i}`, {
        method: 'PUT',
        headers: auth,
        body: JSON.stringify({ msgtype: 'm.text', body }),
      });
    let sent = await send();
    // Synapse's message rate limit (rc_message) allows a burst of 10: wait as long as it says.
    while (sent.status === 429) {
      await sleep(sent.body.retry_after_ms ?? 1000);
      sent = await send();
    }
    expect(sent.status).toBe(200);
    before.messages.push(body);
  }
  for (const [name, content] of [
    ['notes.txt', Buffer.from('minutes of the old server\n'.repeat(200))],
    ['blob.bin', createHash('sha512').update('x').digest()],
  ] as const) {
    const up = await httpJson(`${s.base}/_matrix/media/v3/upload?filename=${name}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${before.token}`, 'Content-Type': 'application/octet-stream' },
      body: content,
    });
    expect(up.status).toBe(200);
    before.media.push({ mxc: up.body.content_uri, sha256: sha256(content) });
  }
  before.verifyKeys = (await httpJson(`${s.base}/_matrix/key/v2/server`)).body.verify_keys;
}

beforeAll(async () => {
  const { manifests } = rendered();
  oldRoot = tempDir('compose');
  work = tempDir('migration');
  const oldData = path.join(oldRoot, 'data');
  fs.mkdirSync(path.join(oldData, 'media_store'), { recursive: true });

  // The old stack: its secrets, its database, Synapse with the compose volume's layout.
  oldSecrets = await generatedSecrets(manifests);
  oldPg = await startPostgres(manifests, config, oldSecrets);
  oldSynapse = await startSynapse(manifests, config, oldSecrets, oldPg, path.join(oldData, 'media_store'));
  await fillOldServer(oldSynapse);
  fs.writeFileSync(path.join(oldData, `${SERVER}.signing.key`), oldSecrets.signingKey);
  // The compose .env: the variables the old stack read.
  const env = [...ENV_FILE_VARIABLES].map(([variable, name]) => `${variable}=${oldSecrets[name]}`);
  fs.writeFileSync(path.join(oldRoot, '.env'), `# the old compose file's variables\nCOMPOSE_PROJECT_NAME=matrix\n${env.join('\n')}\n`);
  // The runbook: Synapse stopped first, so nothing changes after the dump.
  await oldSynapse.stop();
  oldSynapse = undefined;
  before.tables = tableDigests(oldPg);

  // RUNBOOK.dump: plain SQL, as the synapse user, over the container's local socket.
  fs.writeFileSync(path.join(work, 'matrix-backup.sql'), inPostgresContainer(oldPg, RUNBOOK.dump.runs));
  // RUNBOOK.media and RUNBOOK.signingKey: docker cp copies the folder and the file out of the container's volume.
  fs.cpSync(path.join(oldData, 'media_store'), path.join(work, 'media_store'), { recursive: true });
  fs.copyFileSync(path.join(oldData, `${SERVER}.signing.key`), path.join(work, `${SERVER}.signing.key`));
  fs.copyFileSync(path.join(oldRoot, '.env'), path.join(work, '.env'));

  // RUNBOOK.render: npm run synth (scripts/synth.mjs) in the working folder, dist/ there too.
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'synth.mjs')], {
    cwd: work,
    stdio: 'pipe',
    env: { PATH: process.env.PATH, CDK8S_OUTDIR: path.join(work, 'dist'), KUDO_ENV_FILE: '.env', KUDO_SIGNING_KEY_FILE: `${SERVER}.signing.key` },
  });
  newManifests = fs
    .readdirSync(path.join(work, 'dist'))
    .filter((f) => f.endsWith('.k8s.yaml'))
    .sort()
    .flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(work, 'dist', f), 'utf8')) as Manifest[]);
  importedSecrets = yaml.loadAll(fs.readFileSync(path.join(work, 'secrets.local', 'kudo-secrets.yaml'), 'utf8')) as Manifest[];
  // kubectl apply -f secrets.local/, then the generator (dist/05-secrets) fills in what the .env did not have.
  newSecrets = await generatedSecrets(newManifests, importedSecrets);
  // kubectl apply -f dist/10-postgres.k8s.yaml: the rendered PostgreSQL, initialised by its init script.
  newPg = await startPostgres(newManifests, config, newSecrets);
}, 600_000);

afterAll(async () => {
  await oldSynapse?.stop();
  await newSynapse?.stop();
  await oldPg?.stop();
  await newPg?.stop();
});

describe(`from docker-compose to the rendered stack: ${postgresVersion()}, Synapse ${synapseVersion()}`, () => {
  test('the old secrets and signing key reach the new stack through secrets.local/; the generator makes only what the .env lacked', () => {
    for (const [variable, name] of ENV_FILE_VARIABLES) expect([variable, newSecrets[name]]).toEqual([variable, oldSecrets[name]]);
    expect(newSecrets.signingKey).toBe(oldSecrets.signingKey);
    // The generator's own: the superuser's password and the Redis password are new.
    expect(newSecrets.postgresSuperuserPassword).not.toBe(oldSecrets.postgresSuperuserPassword);
    expect(newSecrets.redisPassword).not.toBe(oldSecrets.redisPassword);
    // Nothing secret went into dist/.
    const dist = fs
      .readdirSync(path.join(work, 'dist'))
      .map((f) => fs.readFileSync(path.join(work, 'dist', f), 'utf8'))
      .join('\n');
    for (const v of [oldSecrets.postgresPassword, oldSecrets.macaroonSecretKey, oldSecrets.signingKey.split(' ')[2]]) expect(dist).not.toContain(v.trim());
  });

  test("the dump is the old runbook's: plain SQL, made by the synapse user", () => {
    const sql = fs.readFileSync(path.join(work, 'matrix-backup.sql'), 'utf8');
    expect(sql).toMatch(/^-- PostgreSQL database dump/m);
    expect(sql).toContain('ALTER TABLE public.events OWNER TO synapse;');
    expect(sql).toMatch(/^COPY public\.events /m);
  });

  test("the new PostgreSQL starts with an empty database owned by synapse (UTF8, C), and the runbook's psql line restores every row", () => {
    // What the StatefulSet's init script made: nothing in it yet, so the restore cannot collide with anything.
    expect(newPg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).toBe('0');
    expect(
      newPg.psql(
        "SELECT pg_get_userbyid(datdba) || ' ' || pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype FROM pg_database WHERE datname = current_database()",
      ),
    ).toBe('synapse UTF8 C C');
    // RUNBOOK.restore, inside the PostgreSQL container (its local socket; the image's psql is the server's version).
    const restore = find(newManifests, 'StatefulSet', 'postgres');
    expect(container(restore, 'postgres').image).toMatch(/postgres:17\./);
    inPostgresContainer(newPg, RUNBOOK.restore.runs, { input: fs.readFileSync(path.join(work, 'matrix-backup.sql')), cwd: work });
    expect(tableDigests(newPg)).toEqual(before.tables);
    // Everything belongs to synapse, as before.
    expect(newPg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'synapse'")).toBe('0');
  });

  test("restoring after Synapse already made its schema fails whole, and the runbook's lines empty the database for a second try", async () => {
    const pg = await startPostgres(newManifests, config, newSecrets);
    try {
      // All of dist/ applied at once: Synapse starts first and makes its (empty) schema.
      const early = await startSynapse(newManifests, config, newSecrets, pg);
      await early.stop(); // RUNBOOK.stopSynapse
      const fresh = tableDigests(pg);
      expect(Object.keys(fresh).length).toBeGreaterThan(100);
      const dump = fs.readFileSync(path.join(work, 'matrix-backup.sql'));
      let failure = '';
      try {
        inPostgresContainer(pg, RUNBOOK.restore.runs, { input: dump, cwd: work });
      } catch (e) {
        failure = String((e as { stderr?: Buffer }).stderr ?? e);
      }
      expect(failure).toMatch(/ERROR: {2}(relation|function) "[a-z_]+" already exists/);
      // One transaction: nothing of the dump went in.
      expect(tableDigests(pg)).toEqual(fresh);
      inPostgresContainer(pg, RUNBOOK.emptyDatabase.runs);
      expect(pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).toBe('0');
      inPostgresContainer(pg, RUNBOOK.restore.runs, { input: dump, cwd: work });
      expect(tableDigests(pg)).toEqual(before.tables);
    } finally {
      await pg.stop();
    }
  }, 300_000);

  test("the runbook's tar line puts the media store where the rendered Synapse reads it", () => {
    // RUNBOOK.copyMedia: packed in the working folder, unpacked inside the Synapse container into /media (its media volume).
    newMedia = tempDir('media-volume');
    const [tarCmd, ...packArgs] = argv(RUNBOOK.copyMedia.local);
    const archive = execFileSync(tarCmd, packArgs, { cwd: work, maxBuffer: 1 << 30 });
    const [, ...unpackArgs] = argv(RUNBOOK.copyMedia.runs);
    execFileSync(
      tarCmd,
      unpackArgs.map((a) => (a === SYNAPSE_MEDIA_DIR ? newMedia : a)),
      { input: archive },
    ); // paths
    // The rendered homeserver.yaml keeps media at the media volume's mount: the layout under it is the old one.
    const hs = yaml.load(find(newManifests, 'ConfigMap', 'synapse-config').data['homeserver.yaml']) as any;
    expect(hs.media_store_path).toBe(SYNAPSE_MEDIA_DIR);
    expect(fs.readdirSync(newMedia)).toContain('local_content');
  });

  test('Synapse from the new rendered config: the old user, password, session, room, messages and media, and the old signing key', async () => {
    newSynapse = await startSynapse(newManifests, config, newSecrets, newPg, newMedia);
    const base = newSynapse.base;
    // The old password logs in; the old access token (a row in the database) still works.
    const token = await login(base, 'alice', PASSWORD);
    const whoami = await httpJson(`${base}/_matrix/client/v3/account/whoami`, { headers: { Authorization: `Bearer ${before.token}` } });
    expect([whoami.status, whoami.body.user_id]).toEqual([200, `@alice:${SERVER}`]);
    const auth = { Authorization: `Bearer ${token}` };
    expect((await httpJson(`${base}/_matrix/client/v3/joined_rooms`, { headers: auth })).body.joined_rooms).toEqual([before.roomId]);
    const messages = await httpJson(`${base}/_matrix/client/v3/rooms/${encodeURIComponent(before.roomId!)}/messages?dir=b&limit=100`, { headers: auth });
    const bodies = messages.body.chunk
      .filter((e: any) => e.type === 'm.room.message')
      .map((e: any) => e.content.body)
      .reverse();
    expect(bodies).toEqual(before.messages);
    // The media, byte for byte, from the copied store.
    for (const m of before.media) {
      const [serverName, mediaId] = m.mxc.replace('mxc://', '').split('/');
      const r = await fetch(`${base}/_matrix/client/v1/media/download/${serverName}/${mediaId}`, { headers: auth, signal: AbortSignal.timeout(10_000) });
      expect([m.mxc, r.status]).toEqual([m.mxc, 200]);
      expect(sha256(Buffer.from(await r.arrayBuffer()))).toBe(m.sha256);
    }
    // The same federation identity: the key other servers have cached for this server name.
    const keys = await httpJson(`${base}/_matrix/key/v2/server`);
    expect(keys.body.server_name).toBe(SERVER);
    expect(keys.body.verify_keys).toEqual(before.verifyKeys);
    // And it keeps working: a new message in the old room.
    const sent = await httpJson(`${base}/_matrix/client/v3/rooms/${encodeURIComponent(before.roomId!)}/send/m.room.message/after`, {
      method: 'PUT',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ msgtype: 'm.text', body: 'after the move' }),
    });
    expect(sent.status).toBe(200);
  }, 300_000);
});
