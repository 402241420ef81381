/**
 * Synapse started with the rendered homeserver.yaml, the rendered pgpass
 * init step and the generated secrets, against a PostgreSQL initialised as
 * the StatefulSet does it; then the rendered admin bootstrap run against it.
 */
import { execFileSync } from 'child_process';
import { createHmac } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { FakeKubeApi } from '../fake-kube-api';
import { configMapFile, container, find, freePort, generatedSecrets, httpJson, Program, programs, rendered, rewritePaths, writeSecretFiles } from './harness';
import { RunningPostgres, startPostgres } from './postgres';
import { login, registerUser, RunningSynapse, startSynapse, synapseVersion } from './synapse';

const { config, manifests } = rendered();
const python = programs().synapsePython;
const SYNAPSE_VERSION = synapseVersion();

let secrets: Record<string, string>;
let pg: RunningPostgres;
let running: RunningSynapse;
let synapse: Program;
let base: string;
let dir: string;
let homeserverFile: string;

beforeAll(async () => {
  secrets = await generatedSecrets(manifests);
  pg = await startPostgres(manifests, config, secrets);
  running = await startSynapse(manifests, config, secrets, pg);
  ({ program: synapse, base, dir, homeserverFile } = running);
}, 300_000);

afterAll(async () => {
  await running?.stop();
  await pg?.stop();
});

describe(`Synapse ${SYNAPSE_VERSION} with the rendered homeserver.yaml`, () => {
  test('python -m synapse.config accepts the config', () => {
    const out = execFileSync(python, ['-m', 'synapse.config', '-c', homeserverFile], { encoding: 'utf8' });
    expect(out).toContain('Config parses OK');
  });

  test('started with --no-secrets-in-config, password from the pgpass file, schema created', () => {
    expect(container(find(manifests, 'Deployment', 'synapse'), 'synapse').command).toContain('--no-secrets-in-config');
    expect(synapse.running).toBe(true);
    expect(Number(pg.psql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'", pg.database))).toBeGreaterThan(100);
  });

  test('/health and /_matrix/client/versions answer', async () => {
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const v = await httpJson(`${base}/_matrix/client/versions`);
    expect(v.status).toBe(200);
    expect(v.body.versions).toEqual(expect.arrayContaining(['v1.11']));
  });

  test('the rendered well-known server tells servers and clients where the homeserver is, with CORS', async () => {
    const wkDir = path.join(dir, 'well-known');
    fs.mkdirSync(wkDir, { recursive: true });
    for (const f of ['server.json', 'client.json', 'well_known.py']) fs.writeFileSync(path.join(wkDir, f), configMapFile(manifests, 'matrix-well-known', f));
    const c = container(find(manifests, 'Deployment', 'matrix-well-known'), 'well-known');
    const port = await freePort();
    // paths + ports + bind.
    const args = (c.command as string[])
      .slice(1)
      .map((a) => rewritePaths(a, { '/srv/well-known': wkDir }))
      .map((a) => (a === '8080' ? String(port) : a));
    const wk = new Program('well-known', python, args, { logDir: dir, env: { PATH: process.env.PATH, BIND_ADDRESS: '127.0.0.1' } });
    try {
      const url = `http://127.0.0.1:${port}`;
      await wk.waitFor('/health', async () => (await fetch(`${url}/health`)).status === 200, 20_000);
      const server = await httpJson(`${url}/.well-known/matrix/server`);
      expect(server.body).toEqual({ 'm.server': `${config.hosts.matrix}:443` });
      const client = await httpJson(`${url}/.well-known/matrix/client`);
      expect(client.headers.get('access-control-allow-origin')).toBe('*');
      expect(client.headers.get('content-type')).toBe('application/json');
      // The client document's base URL is this very homeserver: its versions endpoint answers.
      expect(client.body['m.homeserver'].base_url).toBe(`https://${config.hosts.matrix}`);
      const hs = yaml.load(configMapFile(manifests, 'synapse-config', 'homeserver.yaml')) as any;
      expect(new URL(client.body['m.homeserver'].base_url).host).toBe(new URL(hs.public_baseurl).host);
      expect((await httpJson(`${url}/.well-known/matrix/other`)).status).toBe(404);
    } finally {
      await wk.stop();
    }
  });

  test('an inline secret is refused under --no-secrets-in-config (the flag is enforced)', async () => {
    const hs = yaml.load(fs.readFileSync(homeserverFile, 'utf8')) as any;
    delete hs.macaroon_secret_key_path;
    hs.macaroon_secret_key = 'inline-secret';
    const bad = path.join(dir, 'inline-secret.yaml');
    fs.writeFileSync(bad, yaml.dump(hs));
    const p = new Program('synapse-inline-secret', python, ['-m', 'synapse.app.homeserver', '--config-path', bad, '--no-secrets-in-config'], { logDir: dir });
    expect(await p.exit(60_000)).not.toBe(0);
    expect(p.output()).toMatch(/macaroon_secret_key/);
  });

  describe('admin bootstrap (the rendered Job script)', () => {
    let api: FakeKubeApi;
    let apiUrl: string;
    const run = async () => {
      const job = manifests.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('bootstrap-admin'))!;
      const c = job.spec.template.spec.containers[0];
      const scripts = path.join(dir, 'bootstrap');
      fs.mkdirSync(scripts, { recursive: true });
      for (const f of ['kube.py', 'bootstrap_admin.py']) fs.writeFileSync(path.join(scripts, f), configMapFile(manifests, 'admin-bootstrap', f));
      writeSecretFiles(path.join(dir, 'bootstrap-secrets'), {
        admin_password: secrets.adminPassword,
        registration_shared_secret: secrets.registrationSharedSecret,
      });
      const env: Record<string, string> = Object.fromEntries(c.env.map((e: any) => [e.name, e.value]));
      const p = new Program('bootstrap', python, [path.join(scripts, 'bootstrap_admin.py')], {
        logDir: dir,
        env: {
          ...env,
          PATH: process.env.PATH!,
          PYTHONPATH: scripts, // paths
          SYNAPSE_URL: base, // hosts + ports
          ADMIN_PASSWORD_FILE: path.join(dir, 'bootstrap-secrets', 'admin_password'), // paths
          REGISTRATION_SECRET_FILE: path.join(dir, 'bootstrap-secrets', 'registration_shared_secret'), // paths
          KUBE_API_URL: apiUrl,
          KUBE_TOKEN_FILE: '/nonexistent',
          KUBE_CA_FILE: '/nonexistent',
        },
      });
      const code = await p.exit(120_000);
      return { code, output: p.output() };
    };
    const app = () => api.values(config.namespaces.app, config.secrets.appSecretName)!;

    beforeAll(async () => {
      api = new FakeKubeApi();
      apiUrl = await api.start();
      api.put(config.namespaces.hostNetwork, 'kudo-livekit', { api_key: secrets.livekitApiKey, api_secret: secrets.livekitApiSecret });
    });
    afterAll(() => api.stop());

    test('registers the admin through the shared secret and hands the app its credentials', async () => {
      const r = await run();
      expect(r.output).toContain(`registered @admin:${config.serverName}`);
      expect(r.code).toBe(0);
      expect(app()).toMatchObject({
        MATRIX_HOMESERVER_URL: `https://${config.hosts.matrix}`,
        MATRIX_REGISTRATION_SHARED_SECRET: secrets.registrationSharedSecret,
        MATRIX_ADMIN_USER: `@admin:${config.serverName}`,
        LIVEKIT_URL: `wss://${config.hosts.livekit}`,
        LIVEKIT_API_KEY: secrets.livekitApiKey,
        LIVEKIT_API_SECRET: secrets.livekitApiSecret,
      });
      const token = app().MATRIX_ADMIN_TOKEN;
      const who = await httpJson(`${base}/_matrix/client/v3/account/whoami`, { headers: { Authorization: `Bearer ${token}` } });
      expect(who.body.user_id).toBe(`@admin:${config.serverName}`);
      const admin = await httpJson(`${base}/_synapse/admin/v2/users/${encodeURIComponent(`@admin:${config.serverName}`)}`, { headers: { Authorization: `Bearer ${token}` } });
      expect(admin.status).toBe(200);
      expect(admin.body.admin).toBe(true);
    });

    test('the app, with only the kudo-app Secret, provisions a user by shared-secret registration and sets up a room through the admin API', async () => {
      // Exactly what the Kudo app does at runtime: everything comes from its Secret (envFrom).
      const env = app();
      // The in-cluster URL the Job was given (rendered: http://synapse.kudo.svc:8008; here the loopback rewrite of it).
      expect(env.MATRIX_ADMIN_URL).toBe(base);
      const job = manifests.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('bootstrap-admin'))!;
      expect(job.spec.template.spec.containers[0].env.find((e: any) => e.name === 'SYNAPSE_URL').value).toBe(`http://synapse.${config.namespaces.stack}.svc:8008`);
      const adminUrl = env.MATRIX_ADMIN_URL;
      const json = { 'Content-Type': 'application/json' };
      const asAdmin = { ...json, Authorization: `Bearer ${env.MATRIX_ADMIN_TOKEN}` };

      // 1. Shared-secret registration of a new (non-admin) user, as the app does for each of its users.
      const nonce = (await httpJson(`${adminUrl}/_synapse/admin/v1/register`)).body.nonce;
      const localpart = `kudo-user-${Date.now()}`;
      const password = 'correct horse battery staple';
      const mac = createHmac('sha1', env.MATRIX_REGISTRATION_SHARED_SECRET).update(`${nonce}\0${localpart}\0${password}\0notadmin`).digest('hex');
      const registered = await httpJson(`${adminUrl}/_synapse/admin/v1/register`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ nonce, username: localpart, password, admin: false, mac }),
      });
      expect(registered.status).toBe(200);
      const userId = registered.body.user_id;
      expect(userId).toBe(`@${localpart}:${config.serverName}`);

      // 2. A room made with the admin token, the user put into it through the admin API, and checked there.
      const room = await httpJson(`${adminUrl}/_matrix/client/v3/createRoom`, {
        method: 'POST',
        headers: asAdmin,
        body: JSON.stringify({ name: 'provisioned by the app', preset: 'private_chat' }),
      });
      expect(room.status).toBe(200);
      const roomId = encodeURIComponent(room.body.room_id);
      const join = await httpJson(`${adminUrl}/_synapse/admin/v1/join/${roomId}`, { method: 'POST', headers: asAdmin, body: JSON.stringify({ user_id: userId }) });
      expect(join.status).toBe(200);
      const members = await httpJson(`${adminUrl}/_synapse/admin/v1/rooms/${roomId}/members`, { headers: asAdmin });
      expect(members.status).toBe(200);
      expect(members.body.members).toEqual(expect.arrayContaining([userId, `@admin:${config.serverName}`]));

      // 3. The new user can log in with the password the app chose.
      const login = await httpJson(`${base}/_matrix/client/v3/login`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: localpart }, password }),
      });
      expect(login.status).toBe(200);
    });

    test('is idempotent: a valid stored token is kept', async () => {
      const before = app().MATRIX_ADMIN_TOKEN;
      const r = await run();
      expect(r.code).toBe(0);
      expect(r.output).toContain('stored token for @admin');
      expect(app().MATRIX_ADMIN_TOKEN).toBe(before);
    });

    test('recovers a lost token by logging in to the existing account', async () => {
      api.put(config.namespaces.app, config.secrets.appSecretName, { MATRIX_ADMIN_TOKEN: 'revoked-or-lost' });
      const r = await run();
      expect(r.code).toBe(0);
      expect(r.output).toContain('exists; logging in');
      const who = await httpJson(`${base}/_matrix/client/v3/account/whoami`, { headers: { Authorization: `Bearer ${app().MATRIX_ADMIN_TOKEN}` } });
      expect(who.status).toBe(200);
    });
  });

  describe('a user', () => {
    let token: string;
    beforeAll(async () => {
      const login = await httpJson(`${base}/_matrix/client/v3/login`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'admin' }, password: secrets.adminPassword }),
      });
      expect(login.status).toBe(200);
      token = login.body.access_token;
    });
    const auth = () => ({ Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' });

    test('logs in and creates an encrypted room', async () => {
      const room = await httpJson(`${base}/_matrix/client/v3/createRoom`, {
        method: 'POST',
        headers: auth(),
        body: JSON.stringify({ name: 'e2e', initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }] }),
      });
      expect(room.status).toBe(200);
      // Room version 12 IDs no longer carry the server name.
      expect(room.body.room_id).toMatch(/^!/);
      const enc = await httpJson(`${base}/_matrix/client/v3/rooms/${encodeURIComponent(room.body.room_id)}/state/m.room.encryption/`, { headers: auth() });
      expect(enc.body.algorithm).toBe('m.megolm.v1.aes-sha2');
    });

    test('uploads media into the media store', async () => {
      const up = await httpJson(`${base}/_matrix/media/v3/upload?filename=hello.txt`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'text/plain' },
        body: 'hello from the e2e test',
      });
      expect(up.status).toBe(200);
      const mediaId = up.body.content_uri.split('/').pop();
      const stored = execFileSync('find', [running.mediaDir, '-type', 'f'], { encoding: 'utf8' });
      expect(stored).toContain(mediaId.slice(4));
      expect(stored.startsWith(running.mediaDir)).toBe(true);
    });

    test('gets TURN credentials signed with the shared secret for our coturn', async () => {
      const turn = await httpJson(`${base}/_matrix/client/v3/voip/turnServer`, { headers: auth() });
      expect(turn.status).toBe(200);
      const renderedHs = yaml.load(configMapFile(manifests, 'synapse-config', 'homeserver.yaml')) as any;
      expect(turn.body.uris).toEqual(renderedHs.turn_uris);
      const expiry = Number(String(turn.body.username).split(':')[0]);
      expect(expiry - Date.now() / 1000).toBeGreaterThan(config.coturn.credentialTtlSeconds - 120);
      expect(expiry - Date.now() / 1000).toBeLessThanOrEqual(config.coturn.credentialTtlSeconds);
      expect(turn.body.password).toBe(createHmac('sha1', secrets.turnSharedSecret).update(turn.body.username).digest('base64'));
    });
  });

  describe('the client address Synapse records (rate limits, the sessions the whois admin API lists)', () => {
    test("rendered: 8008 (the in-cluster URL) takes the connection's address, 8009 (the Ingress's backend) the one X-Forwarded-For names", () => {
      const hs = yaml.load(configMapFile(manifests, 'synapse-config', 'homeserver.yaml')) as any;
      expect(hs.listeners.filter((l: any) => l.type === 'http').map((l: any) => [l.port, l.x_forwarded])).toEqual([
        [8008, false],
        [8009, true],
      ]);
      expect(find(manifests, 'Ingress', 'synapse').spec.rules[0].http.paths.map((p: any) => p.backend.service.port.number)).toEqual([8009, 8009]);
    });

    test('a forged X-Forwarded-For on the in-cluster port is not recorded; the one the proxy sets on its port is', async () => {
      const password = 'correct horse battery staple';
      expect((await registerUser(base, secrets.registrationSharedSecret, 'mallory', password)).status).toBe(200);
      const token = await login(base, 'mallory', password);
      const auth = { Authorization: `Bearer ${token}` };
      // A pod of the app's namespace claiming to be someone else; then the public proxy, which sets the header.
      expect((await httpJson(`${base}/_matrix/client/v3/account/whoami`, { headers: { ...auth, 'X-Forwarded-For': '203.0.113.7' } })).status).toBe(200);
      expect(
        (await httpJson(`${running.proxiedBase}/_matrix/client/v3/account/whoami`, { headers: { ...auth, 'X-Forwarded-For': '198.51.100.23', 'X-Forwarded-Proto': 'https' } }))
          .status,
      ).toBe(200);
      // A user may ask whois about themselves; Synapse records addresses in batches, so ask until the proxied one is there.
      const addresses = async () => {
        const who = await httpJson(`${base}/_synapse/admin/v1/whois/${encodeURIComponent(`@mallory:${config.serverName}`)}`, { headers: auth });
        expect(who.status).toBe(200);
        return Object.values<any>(who.body.devices).flatMap((d) => d.sessions.flatMap((s: any) => s.connections.map((c: any) => c.ip as string)));
      };
      let seen: string[] = [];
      for (const deadline = Date.now() + 20_000; Date.now() < deadline && !seen.includes('198.51.100.23'); await new Promise((r) => setTimeout(r, 500))) seen = await addresses();
      expect(seen).toContain('198.51.100.23');
      expect(seen).toContain('127.0.0.1');
      expect(seen).not.toContain('203.0.113.7');
    });
  });
});
