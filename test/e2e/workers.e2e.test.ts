/**
 * Synapse's workers with the real programs: PostgreSQL, Redis, the main
 * process and one process of every worker type from the rendered configs,
 * and HAProxy with the rendered haproxy.cfg in front. A client's journey
 * goes through the router, and every request must have been served by the
 * process the path table (charts/synapse-workers.ts) assigns it to, read
 * from the router's own log. A message sent through the event creator is
 * written by the event persister and seen by a sync on the synchrotron.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { routeFor, WORKER_TYPE_NAMES, WorkerTypeName } from '../../charts/synapse-workers';
import { configMapFile, generatedSecrets, httpJson, programs, rendered, tempDir } from './harness';
import { RunningPostgres, startPostgres } from './postgres';
import { RunningRedis, startRedis } from './redis';
import { registerUser } from './synapse';
import { RunningRouter, RunningSynapseProcesses, startRouter, startSynapseProcesses } from './synapse-workers';

// One process of every worker type, and two synchrotrons (sync is sticky per user).
const ONE_OF_EACH = {
  clientReader: 1,
  synchrotron: 2,
  initialSynchrotron: 1,
  federationInbound: 1,
  federationReader: 1,
  federationSender: 1,
  mediaRepository: 1,
  eventPersister: 1,
  eventCreator: 1,
  streamWriter: 1,
  background: 1,
};
const { config, manifests } = rendered({ synapse: { workers: { enabled: true, replicas: ONE_OF_EACH } } });
const REPLICAS = Object.fromEntries(WORKER_TYPE_NAMES.map((t) => [t, 1])) as Record<WorkerTypeName, number>;
const HAPROXY_VERSION = execFileSync(programs().haproxy, ['-v'], { encoding: 'utf8' }).split('\n')[0];
const renderedCfg = configMapFile(manifests, 'synapse-router', 'haproxy.cfg');

let secrets: Record<string, string>;
let pg: RunningPostgres;
let redis: RunningRedis;
let synapse: RunningSynapseProcesses;
let router: RunningRouter;
let base: string;
/** Alice's access token, from the journey's login. */
let aliceToken: string;

/** Each logged request whose backend is not the one the path table names. */
function misrouted(requests: ReturnType<RunningRouter['requests']>): string[] {
  return requests.filter((r) => r.backend !== routeFor(r.uri, REPLICAS)).map((r) => `${r.method} ${r.uri}: served by ${r.backend}, the table says ${routeFor(r.uri, REPLICAS)}`);
}

beforeAll(async () => {
  secrets = await generatedSecrets(manifests);
  pg = await startPostgres(manifests, config, secrets);
  redis = await startRedis(manifests, config, secrets);
  synapse = await startSynapseProcesses(manifests, config, secrets, pg, redis.port);
  router = await startRouter(manifests, renderedCfg, synapse.processes);
  base = `http://127.0.0.1:${router.port}`;
}, 600_000);

afterAll(async () => {
  await router?.stop();
  await synapse?.stop();
  await redis?.program.stop();
  await pg?.stop();
});

test(`the rendered haproxy.cfg is valid as it ships (${HAPROXY_VERSION})`, () => {
  const dir = tempDir('haproxy-check');
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), renderedCfg);
  const r = spawnSync(programs().haproxy, ['-c', '-f', path.join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
  expect([r.status, r.stdout + r.stderr]).toEqual([0, expect.not.stringMatching(/\[(ALERT|WARNING)\]/)]);
});

test('every worker type runs as its own process, each with the name the shared config gives it', () => {
  expect(synapse.processes.map((p) => p.type).sort()).toEqual(['main', 'synchrotron', ...WORKER_TYPE_NAMES].sort());
  for (const p of synapse.processes) expect([p.name, p.program.running]).toEqual([p.name, true]);
});

describe("a client's journey through the router", () => {
  const json = { 'Content-Type': 'application/json' };
  let auth: Record<string, string>;
  let userId: string;
  let roomId: string;
  let eventId: string;

  test('register (shared secret), log in, who am I', async () => {
    expect((await httpJson(`${base}/_matrix/client/versions`)).status).toBe(200);
    const password = 'correct horse battery staple';
    const reg = await registerUser(base, secrets.registrationSharedSecret, 'alice', password);
    expect(reg.status).toBe(200);
    const login = await httpJson(`${base}/_matrix/client/v3/login`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password }),
    });
    expect(login.status).toBe(200);
    aliceToken = login.body.access_token;
    auth = { Authorization: `Bearer ${aliceToken}`, ...json };
    userId = login.body.user_id;
    expect((await httpJson(`${base}/_matrix/client/v3/account/whoami`, { headers: auth })).body.user_id).toBe(userId);
  });

  test('create a room, send a message; a sync on the synchrotron sees it, written by the event persister', async () => {
    const room = await httpJson(`${base}/_matrix/client/v3/createRoom`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'workers' }) });
    expect(room.status).toBe(200);
    roomId = room.body.room_id;
    const initial = await httpJson(`${base}/_matrix/client/v3/sync`, { headers: auth });
    expect(initial.status).toBe(200);
    const sent = await httpJson(`${base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/w1`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({ msgtype: 'm.text', body: 'through the event creator' }),
    });
    expect(sent.status).toBe(200);
    eventId = sent.body.event_id;
    // Replication: the creator hands the event to the persister, whose stream position the synchrotron follows.
    const seen = await httpJson(`${base}/_matrix/client/v3/sync?since=${encodeURIComponent(initial.body.next_batch)}&timeout=20000`, { headers: auth });
    expect(seen.status).toBe(200);
    const events = seen.body.rooms?.join?.[roomId]?.timeline?.events ?? [];
    expect(events.map((e: any) => e.content?.body)).toContain('through the event creator');
    expect(pg.psql(`SELECT instance_name FROM events WHERE event_id = '${eventId}'`)).toBe('synapse-event-persister-0');
  });

  test('typing, device keys and push rules go to the stream writer; history to a client reader', async () => {
    const typing = await httpJson(`${base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/typing/${encodeURIComponent(userId)}`, {
      method: 'PUT',
      headers: auth,
      body: JSON.stringify({ typing: true, timeout: 5000 }),
    });
    expect(typing.status).toBe(200);
    const keys = await httpJson(`${base}/_matrix/client/v3/keys/upload`, { method: 'POST', headers: auth, body: JSON.stringify({ one_time_keys: {} }) });
    expect(keys.status).toBe(200);
    expect((await httpJson(`${base}/_matrix/client/v3/pushrules/`, { headers: auth })).status).toBe(200);
    const history = await httpJson(`${base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=5`, { headers: auth });
    expect(history.body.chunk.map((e: any) => e.event_id)).toContain(eventId);
  });

  test('media: upload and download through the media repository, the file on the shared media volume', async () => {
    const bytes = Buffer.from('kudo media through the media worker');
    const up = await httpJson(`${base}/_matrix/media/v3/upload?filename=note.txt`, {
      method: 'POST',
      headers: { Authorization: auth.Authorization, 'Content-Type': 'text/plain' },
      body: bytes,
    });
    expect(up.status).toBe(200);
    const [, serverName, mediaId] = /^mxc:\/\/([^/]+)\/(.+)$/.exec(up.body.content_uri)!;
    const down = await fetch(`${base}/_matrix/client/v1/media/download/${serverName}/${mediaId}`, { headers: { Authorization: auth.Authorization } });
    expect(down.status).toBe(200);
    expect(Buffer.from(await down.arrayBuffer())).toEqual(bytes);
    const stored = execFileSync('find', [synapse.mediaDir, '-type', 'f', '-path', '*local_content*'], { encoding: 'utf8' }).trim().split('\n');
    expect(stored.some((f) => fs.readFileSync(f).equals(bytes))).toBe(true);
  });

  test('federation: the reader answers queries, the inbound worker takes transactions (and checks their signature)', async () => {
    const version = await httpJson(`${base}/_matrix/federation/v1/version`);
    expect(version.body.server.name).toBe('Synapse');
    const unsigned = await httpJson(`${base}/_matrix/federation/v1/send/txn1`, { method: 'PUT', headers: json, body: JSON.stringify({ pdus: [] }) });
    expect([unsigned.status, unsigned.body.errcode]).toEqual([401, 'M_UNAUTHORIZED']);
  });

  test('sync sticks to one synchrotron per user, and the users spread over both', async () => {
    const servers = new Map<string, Set<string>>();
    for (const user of ['bob', 'carol', 'dave', 'erin', 'frank', 'grace']) {
      const password = `${user} password`;
      await registerUser(base, secrets.registrationSharedSecret, user, password);
      const login = await httpJson(`${base}/_matrix/client/v3/login`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user }, password }),
      });
      const headers = { Authorization: `Bearer ${login.body.access_token}` };
      let since = (await httpJson(`${base}/_matrix/client/v3/sync`, { headers })).body.next_batch;
      // The user's name in the query (Synapse ignores it) finds their requests in the router's log.
      for (let i = 0; i < 3; i++) since = (await httpJson(`${base}/_matrix/client/v3/sync?since=${since}&timeout=0&for=${user}`, { headers })).body.next_batch;
      const syncs = await router.logged(3, (r) => r.uri.endsWith(`&for=${user}`));
      expect(syncs.map((r) => r.backend)).toEqual(['synchrotron', 'synchrotron', 'synchrotron']);
      servers.set(user, new Set(syncs.map((r) => r.server)));
    }
    // Without the user's hash (an empty sample), HAProxy would fall back to round robin and split each user's syncs.
    expect([...servers].filter(([, s]) => s.size !== 1)).toEqual([]);
    expect(new Set([...servers.values()].flatMap((s) => [...s])).size).toBe(2);
  });

  test("each request was served by the process the path table assigns (the router's log)", () => {
    const logged = router.requests();
    // Every request of the journey above, as the router saw it (tests that ran sent 50 or so).
    expect(logged.length).toBeGreaterThan(40);
    // The journey above, as the router saw it: every family of the table met at least once.
    expect(new Set(logged.map((r) => r.backend))).toEqual(
      new Set(['main', 'client-reader', 'event-creator', 'initial-synchrotron', 'synchrotron', 'stream-writer', 'media-repository', 'federation-reader', 'federation-inbound']),
    );
    expect(misrouted(logged)).toEqual([]);
    // And the processes agree: the synchrotrons' own logs have the long-polls, the main process's has none.
    const log = (type: string) =>
      synapse.processes
        .filter((p) => p.type === type)
        .map((p) => p.program.output())
        .join('\n');
    expect(log('synchrotron')).toMatch(/GET \/_matrix\/client\/v3\/sync\?since=/);
    expect(log('main')).not.toMatch(/GET \/_matrix\/client\/v3\/sync/);
  });
});

test('negative control: a router without the synchrotron rule sends /sync to the main process, and the check says so', async () => {
  const withoutSync = renderedCfg
    .split('\n')
    .filter((l) => !/^ {2}use_backend synchrotron /.test(l))
    .join('\n');
  expect(withoutSync).not.toBe(renderedCfg);
  const wrong = await startRouter(manifests, withoutSync, synapse.processes, 'router-without-sync');
  try {
    const sync = await httpJson(`http://127.0.0.1:${wrong.port}/_matrix/client/v3/sync?since=s1_1&timeout=0`, { headers: { Authorization: `Bearer ${aliceToken}` } });
    expect(sync.status).toBe(200);
    expect(misrouted(await wrong.logged(1))).toEqual(['GET /_matrix/client/v3/sync?since=s1_1&timeout=0: served by main, the table says synchrotron']);
  } finally {
    await wrong.stop();
  }
});

test('the federation sender and the background worker run and stay up (they serve no routed paths)', async () => {
  for (const type of ['federation-sender', 'background', 'event-persister']) {
    const p = synapse.processes.find((x) => x.type === type)!;
    expect([type, p.program.running, (await fetch(`http://127.0.0.1:${p.ports.proxied}/health`)).status]).toEqual([type, true, 200]);
  }
});

describe('the client address the processes record (rate limits, the sessions the whois admin API lists)', () => {
  let token: string;
  const user = () => `@mallory:${config.serverName}`;
  const whoami = (port: number, headers: Record<string, string>) =>
    httpJson(`http://127.0.0.1:${port}/_matrix/client/v3/account/whoami`, { headers: { Authorization: `Bearer ${token}`, ...headers } });
  /** The addresses whois lists for the user once `expected` is among them (workers report theirs to the main process through Redis), or after 20 s. */
  const addresses = async (expected: string) => {
    let seen: string[] = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && !seen.includes(expected); await new Promise((r) => setTimeout(r, 500))) {
      const who = await httpJson(`${base}/_synapse/admin/v1/whois/${encodeURIComponent(user())}`, { headers: { Authorization: `Bearer ${token}` } });
      expect(who.status).toBe(200);
      seen = Object.values<any>(who.body.devices).flatMap((d) => d.sessions.flatMap((s: any) => s.connections.map((c: any) => c.ip as string)));
    }
    return seen;
  };

  beforeAll(async () => {
    const password = 'correct horse battery staple';
    expect((await registerUser(base, secrets.registrationSharedSecret, 'mallory', password)).status).toBe(200);
    // Through the public bind, from an address of its own: the journey's logins from 127.0.0.1 used up that address's login rate limit.
    const r = await httpJson(`http://127.0.0.1:${router.proxiedPort}/_matrix/client/v3/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': '192.0.2.44', 'X-Forwarded-Proto': 'https' },
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'mallory' }, password }),
    });
    expect(r.status).toBe(200);
    token = r.body.access_token;
  });

  test("rendered: the router's 8008 bind (the in-cluster URL) and its 8009 bind (the Ingress's backend)", () => {
    expect(renderedCfg).toContain('  bind :8008 name internal\n  bind :8009 name public\n  http-request set-header X-Forwarded-For %[src] if { so_name internal }\n');
    const ing = manifests.find((m) => m.kind === 'Ingress' && m.metadata.name === 'synapse')!;
    expect(ing.spec.rules[0].http.paths.map((p: any) => `${p.backend.service.name}:${p.backend.service.port.number}`)).toEqual(['synapse-router:8009', 'synapse-router:8009']);
  });

  test("on the in-cluster bind a forged X-Forwarded-For gives way to the caller's address; on the public bind the proxy's header is recorded", async () => {
    expect((await whoami(router.port, { 'X-Forwarded-For': '203.0.113.7' })).status).toBe(200);
    expect((await whoami(router.proxiedPort, { 'X-Forwarded-For': '198.51.100.23', 'X-Forwarded-Proto': 'https' })).status).toBe(200);
    const seen = await addresses('198.51.100.23');
    expect(seen).toContain('198.51.100.23');
    expect(seen).toContain('127.0.0.1');
    expect(seen).not.toContain('203.0.113.7');
  });

  test('negative control: a router without the set-header rule passes a forged header on, and the processes record it', async () => {
    const trusting = renderedCfg
      .split('\n')
      .filter((l) => !l.includes('X-Forwarded-For %[src]'))
      .join('\n');
    expect(trusting).not.toBe(renderedCfg);
    const wrong = await startRouter(manifests, trusting, synapse.processes, 'router-trusting');
    try {
      expect((await whoami(wrong.port, { 'X-Forwarded-For': '203.0.113.9' })).status).toBe(200);
      expect(await addresses('203.0.113.9')).toContain('203.0.113.9');
    } finally {
      await wrong.stop();
    }
  });
});
