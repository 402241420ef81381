/**
 * Growth, with the real Synapse and PostgreSQL on a short timescale: started from the homeserver.yaml the
 * render writes for synapse.mediaRetention and synapse.retention.
 *
 * Message retention: a default policy of 15 seconds and a purge job every 5 seconds (Synapse accepts any
 * interval: its purge jobs are plain looping calls). Old messages vanish for the client and then from the
 * database; a recent one stays.
 *
 * Media retention: Synapse checks once an hour (MEDIA_RETENTION_CHECK_PERIOD, a constant, not a setting). The test
 * reads that constant from the installed Synapse, then starts Synapse with only that period shortened to 2 seconds
 * (the constant replaced before the module's first use, as a launcher around `-m synapse.app.homeserver`); the
 * rule that runs is Synapse's own _apply_media_retention_rules with the rendered lifetimes. An upload older than
 * the lifetime is deleted (file and row), a younger one stays; so with remote media, which the test puts into
 * Synapse's cache as a fetch from another server leaves it (a remote_media_cache row and its file), as no second
 * server federates here.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { configMapFile, generatedSecrets, httpJson, programs, rendered, setLauncher, sleep } from './harness';
import { RunningPostgres, startPostgres } from './postgres';
import { registerUser, RunningSynapse, startSynapse } from './synapse';

const MEDIA_LIFETIME_S = 20;
const CHECK_PERIOD_S = 2;

let pg: RunningPostgres;
let synapse: RunningSynapse;
let setup: ReturnType<typeof rendered>;
let token: string;

const auth = () => ({ Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' });

/** Synapse's installed MEDIA_RETENTION_CHECK_PERIOD, in seconds. */
function installedCheckPeriod(): number {
  const code = 'from synapse.media.media_repository import MEDIA_RETENTION_CHECK_PERIOD as p; print(p.as_secs())';
  return Number(execFileSync(programs().synapsePython, ['-c', code], { encoding: 'utf8' }).trim());
}

beforeAll(async () => {
  setup = rendered({
    synapse: {
      mediaRetention: { localMediaLifetime: `${MEDIA_LIFETIME_S}s`, remoteMediaLifetime: `${MEDIA_LIFETIME_S}s` },
      retention: { enabled: true, defaultPolicy: { maxLifetime: '15s' }, purgeJobs: [{ interval: '5s' }] },
    },
  });
  const secrets = await generatedSecrets(setup.manifests);
  pg = await startPostgres(setup.manifests, setup.config, secrets);
  // Only the media retention timer's period changes; everything else is `python -m synapse.app.homeserver ...` as rendered.
  setLauncher((name, command, args) => {
    if (name !== 'synapse' || args[0] !== '-m' || args[1] !== 'synapse.app.homeserver') return [command, args];
    const patch = [
      'import runpy, sys',
      'from synapse.util.duration import Duration',
      'import synapse.media.media_repository as m',
      `m.MEDIA_RETENTION_CHECK_PERIOD = Duration(seconds=${CHECK_PERIOD_S})`,
      "runpy.run_module('synapse.app.homeserver', run_name='__main__', alter_sys=True)",
    ].join('\n');
    return [command, ['-c', patch, ...args.slice(2)]];
  });
  try {
    synapse = await startSynapse(setup.manifests, setup.config, secrets, pg);
  } finally {
    setLauncher(undefined);
  }
  token = (await registerUser(synapse.base, secrets.registrationSharedSecret, 'keeper', 'correct horse')).body.access_token;
}, 300_000);

afterAll(async () => {
  await synapse?.stop();
  await pg?.stop();
});

test('the rendered homeserver.yaml holds both settings, as Synapse reads them', () => {
  const hs = yaml.load(configMapFile(setup.manifests, 'synapse-config', 'homeserver.yaml')) as any;
  expect(hs.media_retention).toEqual({ local_media_lifetime: '20s', remote_media_lifetime: '20s' });
  expect(hs.retention).toEqual({ enabled: true, default_policy: { max_lifetime: '15s' }, purge_jobs: [{ interval: '5s' }] });
  // Synapse's own parser, on the file the running process reads.
  const code = [
    'import sys',
    'from synapse.config.homeserver import HomeServerConfig',
    "c = HomeServerConfig.load_config('check', ['-c', sys.argv[1]])",
    'print(c.media.media_retention_local_media_lifetime_ms, c.media.media_retention_remote_media_lifetime_ms, c.retention.retention_enabled,',
    '      c.retention.retention_default_max_lifetime, [j.interval for j in c.retention.retention_purge_jobs])',
  ].join('\n');
  expect(execFileSync(programs().synapsePython, ['-c', code, synapse.homeserverFile], { encoding: 'utf8' }).trim()).toBe('20000 20000 True 15000 [5000]');
});

test('Synapse checks media retention once an hour (why the test shortens that timer)', () => {
  expect(installedCheckPeriod()).toBe(3600);
});

/** Sends a text message; returns its event ID. */
async function send(room: string, body: string): Promise<string> {
  const r = await httpJson(`${synapse.base}/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/${body}`, {
    method: 'PUT',
    headers: auth(),
    body: JSON.stringify({ msgtype: 'm.text', body }),
  });
  expect(r.status).toBe(200);
  return r.body.event_id;
}

/** The room's text messages, as a client sees them (newest first). */
async function visible(room: string): Promise<string[]> {
  const r = await httpJson(`${synapse.base}/_matrix/client/v3/rooms/${encodeURIComponent(room)}/messages?dir=b&limit=100`, { headers: auth() });
  expect(r.status).toBe(200);
  return r.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
}

/** The room's messages still in the database. */
const stored = (room: string) => pg.psql(`SELECT count(*) FROM events WHERE room_id = '${room}' AND type = 'm.room.message'`, pg.database).trim().split('\n').map(Number)[0];

test('message retention: messages past the default max_lifetime disappear for the client, then from the database; a recent one stays', async () => {
  const created = await httpJson(`${synapse.base}/_matrix/client/v3/createRoom`, { method: 'POST', headers: auth(), body: JSON.stringify({ preset: 'private_chat' }) });
  expect(created.status).toBe(200);
  const room: string = created.body.room_id;
  for (const body of ['old-1', 'old-2', 'old-3']) await send(room, body);
  expect(await visible(room)).toEqual(['old-3', 'old-2', 'old-1']);
  expect(stored(room)).toBe(3);

  await sleep(17_000);
  await send(room, 'new-1');
  // Hidden at once: Synapse filters events older than the room's max_lifetime when it serves them.
  expect(await visible(room)).toEqual(['new-1']);
  // Deleted by the next purge job (every 5 s).
  const t0 = Date.now();
  while (stored(room) > 1 && Date.now() - t0 < 30_000) await sleep(500);
  expect(stored(room)).toBe(1);
  expect(synapse.program.output()).toMatch(/\[purge\] Running retention purge job/);
  expect(await visible(room)).toEqual(['new-1']);
}, 90_000);

/** Uploads a small file; returns its media ID. */
async function upload(name: string): Promise<string> {
  const r = await fetch(`${synapse.base}/_matrix/media/v3/upload?filename=${name}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'text/plain' },
    body: `the content of ${name}`,
  });
  expect(r.status).toBe(200);
  return ((await r.json()) as any).content_uri.split('/').pop();
}

/** Where Synapse's media store keeps a local file (synapse/media/filepath.py local_media_filepath). */
const mediaFile = (id: string) => path.join(synapse.mediaDir, 'local_content', id.slice(0, 2), id.slice(2, 4), id.slice(4));
const mediaRow = (id: string) => Number(pg.psql(`SELECT count(*) FROM local_media_repository WHERE media_id = '${id}'`, pg.database).trim());

const REMOTE = 'other.example.org';
/** Where Synapse keeps a copy of another server's media (synapse/media/filepath.py remote_media_filepath). */
const remoteFile = (fileId: string) => path.join(synapse.mediaDir, 'remote_content', REMOTE, fileId.slice(0, 2), fileId.slice(2, 4), fileId.slice(4));
const remoteRow = (id: string) => Number(pg.psql(`SELECT count(*) FROM remote_media_cache WHERE media_origin = '${REMOTE}' AND media_id = '${id}'`, pg.database).trim());
/** A copy of another server's media as Synapse's fetch leaves it: the cache row (last accessed `ageMs` ago) and the file. */
function cacheRemote(id: string, ageMs: number): void {
  const fileId = `${id}file`;
  fs.mkdirSync(path.dirname(remoteFile(fileId)), { recursive: true });
  fs.writeFileSync(remoteFile(fileId), `remote ${id}`);
  const now = Date.now();
  pg.psql(
    'INSERT INTO remote_media_cache (media_origin, media_id, media_type, created_ts, upload_name, media_length, filesystem_id, last_access_ts) ' +
      `VALUES ('${REMOTE}', '${id}', 'text/plain', ${now - ageMs}, '${id}.txt', 8, '${fileId}', ${now - ageMs})`,
    pg.database,
  );
}

test(`media retention: an upload or a remote copy not downloaded for ${MEDIA_LIFETIME_S} s is deleted, file and record; younger ones stay`, async () => {
  const old = await upload('old.txt');
  expect(fs.existsSync(mediaFile(old))).toBe(true);
  expect(mediaRow(old)).toBe(1);
  cacheRemote('oldremote', 60_000);
  await sleep(12_000);
  const young = await upload('young.txt');
  cacheRemote('youngremote', 0);
  // The old ones go once they are older than the lifetime, at the next check.
  const t0 = Date.now();
  while ((fs.existsSync(mediaFile(old)) || fs.existsSync(remoteFile('oldremotefile'))) && Date.now() - t0 < 40_000) await sleep(250);
  expect([fs.existsSync(mediaFile(old)), mediaRow(old)]).toEqual([false, 0]);
  expect([fs.existsSync(remoteFile('oldremotefile')), remoteRow('oldremote')]).toEqual([false, 0]);
  // The young ones are about 10 s old, under the lifetime: kept.
  expect([fs.existsSync(mediaFile(young)), mediaRow(young)]).toEqual([true, 1]);
  expect([fs.existsSync(remoteFile('youngremotefile')), remoteRow('youngremote')]).toEqual([true, 1]);
  expect(synapse.program.output()).toMatch(/Purging remote media last accessed before/);
  const gone = await fetch(`${synapse.base}/_matrix/client/v1/media/download/${setup.config.serverName}/${old}`, { headers: { Authorization: `Bearer ${token}` } });
  expect(gone.status).toBe(404);
  const kept = await fetch(`${synapse.base}/_matrix/client/v1/media/download/${setup.config.serverName}/${young}`, { headers: { Authorization: `Bearer ${token}` } });
  expect(kept.status).toBe(200);
  expect(await kept.text()).toBe('the content of young.txt');
  expect(synapse.program.output()).toMatch(/Purging local media last accessed before/);
}, 90_000);
