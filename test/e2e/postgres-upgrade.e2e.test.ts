/**
 * docs/operations.md, "PostgreSQL 17 → 18", with the real programs: PostgreSQL 17 as the rendered StatefulSet starts it, on a
 * folder standing for its volume, filled by Synapse; the rendered nightly dump step (pg_dump 17, the 17 image's); then
 * the render with the tag bumped to 18, whose PGDATA is a new directory on the same volume, started by PostgreSQL 18;
 * the rendered restore step (pg_restore 18, the 18 image's) into it; Synapse on it serving the old messages; and the
 * 17 directory untouched, so going back is setting the old tag again.
 *
 * Between the dump and the restore the jobs' restic steps store and fetch the dump (`store`, `fetch`): this test moves
 * the file where the fetch step puts it; backup.e2e.test.ts runs those steps in restic's image.
 */
import { spawnSync, SpawnSyncReturns } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { configMapFile, container, find, generatedSecrets, httpJson, Manifest, Program, programs, rendered, secretVolumeFiles, tempDir, writeSecretFiles } from './harness';
import { libpqClientEnv, pointDatabaseArgs, postgresVersion, RunningPostgres, startPostgres, unprivileged } from './postgres';
import { login, registerUser, startSynapse } from './synapse';

const old = rendered();
const next = rendered({ postgres: { image: { tag: '18.6-bookworm' } } });
const MiB = 2 ** 20;
/** About 64 MiB of events: messages near Synapse's 64 KiB event limit, of hex digits (one word: no search index entries). */
const MESSAGES = 1100;
const BODY_CHARS = 60_000;

/** The next major's programs (install-programs.sh installs them beside 17). */
function nextPgBin(): string {
  const envFile = path.join(path.dirname(programs().pgBin), '..', 'env.sh');
  const bin = /^export KUDO_E2E_PG_NEXT_BIN='([^']*)'$/m.exec(fs.readFileSync(envFile, 'utf8'))?.[1];
  if (bin === undefined || !fs.existsSync(path.join(bin, 'postgres'))) throw new Error(`PostgreSQL 18 is not installed (${envFile}): run test/e2e/install-programs.sh`);
  return bin;
}

let secrets: Record<string, string>;
let dir: string;
let volume: string;
let scripts: string;
let staging: string;
let passwordDir: string;
const timings: Record<string, number> = {};
const before: { roomId?: string; bodies: string[]; digests?: Record<string, string>; databaseBytes?: number; dumpBytes?: number } = { bodies: [] };
const running: { stop(): Promise<void> }[] = [];

async function timed<T>(name: string, f: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  const r = await f();
  timings[name] = Math.round(performance.now() - t0) / 1000;
  return r;
}

/** One PostgreSQL step of a rendered CronJob, with the tools of the render's major, as backup.e2e.test.ts runs them. */
function step(ms: Manifest[], cronJob: string, name: string, pg: RunningPostgres, bin: string): SpawnSyncReturns<string> {
  const c = container(find(ms, 'CronJob', cronJob), name);
  const env: Record<string, string> = {};
  for (const e of c.env) if (e.value !== undefined) env[e.name] = e.value;
  env.STAGING_DIR = staging; // paths
  env.PASSWORD_FILE = path.join(passwordDir, 'password'); // paths
  Object.assign(env, libpqClientEnv(pg, env)); // hosts, ports, paths
  const [shell, script] = c.command as string[];
  return spawnSync(shell, [path.join(scripts, path.basename(script))], { encoding: 'utf8', env: { ...env, PATH: `${bin}:${process.env.PATH}`, HOME: dir } });
}
const out = (r: SpawnSyncReturns<string>) => `${r.stdout}${r.stderr}`;

/** The comment on Synapse's database: where a new major's init script marks it as waiting for the restore. */
const databaseComment = (pg: RunningPostgres) => pg.psql("SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = current_database()");

/**
 * A rendered init step that waits on the database (wait_for_schema.py) run by the pinned Synapse's Python against `pg`:
 * the schema migration Job's `restore` step, or a Synapse pod's `schema` step. homeserver.yaml is the rendered one with
 * the database's address (hosts, ports, paths: pointDatabaseArgs); the password comes from the environment instead of
 * the pod's password file (paths).
 */
function waitStep(ms: Manifest[], workload: Manifest, name: string, pg: RunningPostgres): Program {
  const d = tempDir(`wait-step-${name}`);
  const [python, ...args] = container(workload, name).command as string[];
  expect(python).toBe('python');
  const hs = yaml.load(configMapFile(ms, 'synapse-config', 'homeserver.yaml')) as any;
  pointDatabaseArgs(hs.database.args, pg);
  fs.writeFileSync(path.join(d, 'homeserver.yaml'), yaml.dump(hs));
  fs.writeFileSync(path.join(d, 'wait_for_schema.py'), configMapFile(ms, 'synapse-config', 'wait_for_schema.py'));
  const mapped = args.map((a) => (a.startsWith('/') ? path.join(d, path.basename(a)) : a)); // paths: the ConfigMap's mount
  return new Program(`wait-step-${name}`, programs().synapsePython, mapped, { logDir: d, env: { PATH: process.env.PATH, PGPASSWORD: pg.password } });
}

/** Every public table and a digest of all its rows. */
function tableDigests(pg: RunningPostgres): Record<string, string> {
  const tables = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").split('\n');
  return Object.fromEntries(tables.map((t) => [t, pg.psql(`SELECT count(*) || ':' || md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM public."${t}" r`)]));
}

async function messages(base: string, token: string, roomId: string): Promise<string[]> {
  const bodies: string[] = [];
  let from: string | undefined;
  for (;;) {
    const q = new URLSearchParams({ dir: 'b', limit: '1000', filter: JSON.stringify({ types: ['m.room.message'] }), ...(from ? { from } : {}) });
    const r = await httpJson(`${base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?${q.toString()}`, { headers: { Authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    bodies.push(...r.body.chunk.map((e: any) => e.content.body));
    if (r.body.end === undefined || r.body.chunk.length === 0) return bodies.reverse();
    from = r.body.end;
  }
}

beforeAll(async () => {
  dir = tempDir('pg-upgrade');
  volume = path.join(dir, 'volume');
  scripts = path.join(dir, 'scripts');
  staging = path.join(dir, 'backups', 'staging');
  passwordDir = path.join(dir, 'secret-password');
  for (const d of [volume, scripts, staging]) fs.mkdirSync(d, { recursive: true });
  for (const f of Object.keys(find(old.manifests, 'ConfigMap', 'backup-scripts').data)) {
    fs.writeFileSync(path.join(scripts, f), configMapFile(old.manifests, 'backup-scripts', f), { mode: 0o555 });
  }
  secrets = await generatedSecrets(old.manifests);
  writeSecretFiles(passwordDir, secretVolumeFiles(find(old.manifests, 'CronJob', 'postgres-backup'), 'password', old.config, secrets));
}, 60_000);

afterAll(async () => {
  for (const r of running.reverse()) await r.stop();
});

describe(`PostgreSQL 17 → 18 by dump and restore (${postgresVersion()} → ${postgresVersion(nextPgBin())}), as docs/operations.md says`, () => {
  test('the render with the 18 tag keeps the volume and points PGDATA at a directory of its own on it', () => {
    const env = (ms: Manifest[]) => Object.fromEntries(container(find(ms, 'StatefulSet', 'postgres'), 'postgres').env.map((e: any) => [e.name, e.value]));
    expect(container(find(next.manifests, 'StatefulSet', 'postgres'), 'postgres').image).toBe('docker.io/library/postgres:18.6-bookworm');
    expect([env(old.manifests).PGDATA, env(next.manifests).PGDATA]).toEqual(['/var/lib/postgresql/data/pgdata', '/var/lib/postgresql/data/pgdata-18']);
    // The backup and restore jobs run the same image, so their pg_dump and pg_restore are 18's after the bump.
    expect(container(find(next.manifests, 'CronJob', 'postgres-restore'), 'restore').image).toBe('docker.io/library/postgres:18.6-bookworm');
    expect(find(next.manifests, 'StatefulSet', 'postgres').spec.volumeClaimTemplates).toEqual(find(old.manifests, 'StatefulSet', 'postgres').spec.volumeClaimTemplates);
  });

  test('17, filled by Synapse (a user, a room, about 64 MiB of messages), dumped by the rendered dump step', async () => {
    const pg17 = await startPostgres(old.manifests, old.config, secrets, { volume });
    running.push(pg17);
    expect(pg17.dataDir).toBe(path.join(volume, 'pgdata'));
    // A first install: nothing to restore, nothing marked.
    expect(databaseComment(pg17)).toBe('');
    const synapse = await startSynapse(old.manifests, old.config, secrets, pg17);
    try {
      expect((await registerUser(synapse.base, secrets.registrationSharedSecret, 'alice', 'alice-password-e2e')).status).toBe(200);
      // No message rate limit for her (Synapse's ratelimit_override), so the messages go in as fast as Synapse takes them.
      const userId = `@alice:${old.config.serverName}`;
      pg17.psql(`INSERT INTO ratelimit_override (user_id, messages_per_second, burst_count) VALUES ('${userId}', 0, 0)`);
      const token = await login(synapse.base, 'alice', 'alice-password-e2e');
      const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
      const room = await httpJson(`${synapse.base}/_matrix/client/v3/createRoom`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'before 18' }) });
      expect(room.status).toBe(200);
      before.roomId = room.body.room_id;
      await timed('fill', async () => {
        for (let i = 0; i < MESSAGES; i += 4) {
          const batch = Array.from({ length: Math.min(4, MESSAGES - i) }, (_, k) => {
            const body = `${i + k} ${crypto.randomBytes(BODY_CHARS / 2).toString('hex')}`;
            before.bodies.push(body);
            return httpJson(`${synapse.base}/_matrix/client/v3/rooms/${encodeURIComponent(before.roomId!)}/send/m.room.message/m${i + k}`, {
              method: 'PUT',
              headers: auth,
              body: JSON.stringify({ msgtype: 'm.text', body }),
            });
          });
          for (const r of await Promise.all(batch)) expect(r.status).toBe(200);
        }
      });
      // In the room's order (four were sent at a time), as a client reads them.
      const read = await messages(synapse.base, token, room.body.room_id);
      expect([...read].sort()).toEqual([...before.bodies].sort());
      before.bodies = read;
    } finally {
      // Step 1 of the procedure: Synapse stopped, so nothing is written after the dump.
      await synapse.stop();
    }
    before.databaseBytes = Number(pg17.psql('SELECT pg_database_size(current_database())'));
    expect(before.databaseBytes).toBeGreaterThan(64 * MiB);
    before.digests = tableDigests(pg17);
    const dump = await timed('dump', () => step(old.manifests, 'postgres-backup', 'dump', pg17, programs().pgBin));
    expect(out(dump)).toContain('with pg_dump (PostgreSQL) 17.');
    expect(out(dump)).toMatch(/dumped .* \(\d+ tables\) to .*synapse\.dump/);
    expect(dump.status).toBe(0);
    before.dumpBytes = fs.statSync(path.join(staging, 'postgres', 'synapse.dump')).size;
    await pg17.stop();
    running.splice(running.indexOf(pg17), 1);
  }, 600_000);

  test('PostgreSQL 18 refuses the 17 directory, and changes nothing in it', () => {
    const oldDir = path.join(volume, 'pgdata');
    const versionFile = () => fs.readFileSync(path.join(oldDir, 'PG_VERSION'), 'utf8');
    expect(versionFile()).toBe('17\n');
    const [cmd, ...args] = unprivileged(path.join(nextPgBin(), 'postgres'), ['-D', oldDir, '-c', 'listen_addresses=', '-c', `unix_socket_directories=${dir}`]);
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' } });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/database files are incompatible with server.*\n.*initialized by PostgreSQL version 17, which is not compatible with this version 18\.\d+/);
    expect(versionFile()).toBe('17\n');
  });

  test('18 starts on a new directory beside it, the rendered restore step loads the dump, and Synapse serves the old messages', async () => {
    const bin = nextPgBin();
    const pg18 = await timed('start18', () => startPostgres(next.manifests, next.config, secrets, { volume, bin }));
    running.push(pg18);
    expect(pg18.dataDir).toBe(path.join(volume, 'pgdata-18'));
    expect(pg18.psql('SHOW server_version')).toMatch(/^18\./);
    // TLS as before: the client checks the server's certificate against the stack's CA.
    expect(pg18.clientEnv.PGSSLMODE).toBe('verify-full');
    expect(pg18.psql('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toBe('t');
    // Initialised beside 17's directory, the database is marked as waiting for the restore. Applied in full before the
    // restore (the runbook's step 3 skipped), the schema migration Job's first step and every Synapse pod's schema step
    // wait on that mark, saying why, instead of migrating an empty database for Synapse to serve.
    expect(databaseComment(pg18)).toMatch(/^kudo: awaiting restore: initialised beside pgdata \(PostgreSQL 17\)/);
    const migration = next.manifests.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('synapse-migrate-'))!;
    const waiting = [waitStep(next.manifests, migration, 'restore', pg18), waitStep(next.manifests, find(next.manifests, 'Deployment', 'synapse'), 'schema', pg18)];
    running.push(...waiting.map((p) => ({ stop: () => p.stop() })));
    for (const p of waiting) await p.waitFor('its word on the restore', () => /the database awaits its restore: kudo: awaiting restore/.test(p.output()), 60_000);
    expect(pg18.psql("SELECT to_regclass('schema_version') IS NULL")).toBe('t');
    // The fetch step's place for the dump (restic restores it there).
    fs.mkdirSync(path.join(staging, 'restore'));
    fs.renameSync(path.join(staging, 'postgres', 'synapse.dump'), path.join(staging, 'restore', 'synapse.dump'));
    // The waiting steps poll meanwhile: the restore counts their sessions as no Synapse process.
    const restore = await timed('restore', () => step(next.manifests, 'postgres-restore', 'restore', pg18, bin));
    expect(out(restore)).toContain('restored');
    expect(restore.status).toBe(0);
    // The restore step clears the mark, and both steps go on: the migration, then Synapse.
    expect(databaseComment(pg18)).toBe('');
    for (const p of waiting) expect(await p.exit(30_000)).toBe(0);
    // Every row, but the one-time keys' (left out of every dump: Synapse's backup guide).
    const { e2e_one_time_keys_json: _keys, ...others } = before.digests!;
    const { e2e_one_time_keys_json: _restoredKeys, ...restored } = tableDigests(pg18);
    expect(restored).toEqual(others);
    const synapse = await timed('synapse18', () => startSynapse(next.manifests, next.config, secrets, pg18));
    try {
      const token = await login(synapse.base, 'alice', 'alice-password-e2e');
      expect(await messages(synapse.base, token, before.roomId!)).toEqual(before.bodies);
      const send = await httpJson(`${synapse.base}/_matrix/client/v3/rooms/${encodeURIComponent(before.roomId!)}/send/m.room.message/after`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ msgtype: 'm.text', body: 'on 18' }),
      });
      expect(send.status).toBe(200);
    } finally {
      await synapse.stop();
    }
    await pg18.stop();
    running.splice(running.indexOf(pg18), 1);
    console.log(
      `PostgreSQL 17 → 18, ${Math.round(before.databaseBytes! / MiB)} MiB database (${MESSAGES} messages): ` +
        `dump ${timings.dump} s (${Math.round(before.dumpBytes! / MiB)} MiB), ` +
        `18 initialised and started ${timings.start18} s, restore ${timings.restore} s, Synapse started on 18 ${timings.synapse18} s (filling took ${timings.fill} s)`,
    );
  }, 600_000);

  test('rolling back is setting the 17 tag again: its directory starts as it was, with the data of before the upgrade', async () => {
    expect(fs.readdirSync(volume).sort()).toEqual(['pgdata', 'pgdata-18']);
    const pg17 = await startPostgres(old.manifests, old.config, secrets, { volume });
    running.push(pg17);
    expect(pg17.psql('SHOW server_version')).toMatch(/^17\./);
    expect(tableDigests(pg17)).toEqual(before.digests);
    await pg17.stop();
    running.splice(running.indexOf(pg17), 1);
  });
});
