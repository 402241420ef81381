/**
 * The operator's own Synapse settings (synapse.extraConfig) reach a real
 * Synapse: started from the rendered homeserver.yaml, with a Secret file
 * from synapse.extraSecretFiles mounted where the pod mounts it, Synapse
 * uses the login rate limit, the SMTP server and the OIDC provider the
 * settings name, and sends the OIDC client secret it read from that file.
 */
import * as http from 'http';
import * as net from 'net';
import * as yaml from 'js-yaml';
import { configMapFile, container, find, freePort, generatedSecrets, httpJson, podSpec, rendered } from './harness';
import { RunningPostgres, startPostgres } from './postgres';
import { registerUser, RunningSynapse, startSynapse } from './synapse';

const CLIENT_SECRET = 'oidc-client-secret-from-a-kubernetes-secret';

/** An SMTP server that accepts every message and keeps it (Synapse sends without TLS or a password to a relay). */
class FakeSmtp {
  readonly messages: { from: string; to: string[]; data: string }[] = [];
  private readonly server = net.createServer((socket) => {
    let buffer = '';
    let inData = false;
    let mail = { from: '', to: [] as string[], data: '' };
    const reply = (line: string) => socket.write(`${line}\r\n`);
    reply('220 fake-smtp ESMTP');
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            this.messages.push(mail);
            mail = { from: '', to: [], data: '' };
            reply('250 queued');
          } else mail.data += `${line.startsWith('..') ? line.slice(1) : line}\n`;
          continue;
        }
        const verb = line.split(' ')[0].toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') reply('250 fake-smtp');
        else if (verb === 'MAIL') {
          mail.from = line.slice(10);
          reply('250 ok');
        } else if (verb === 'RCPT') {
          mail.to.push(line.slice(8));
          reply('250 ok');
        } else if (verb === 'DATA') {
          inData = true;
          reply('354 go on');
        } else if (verb === 'QUIT') {
          reply('221 bye');
          socket.end();
        } else reply('250 ok');
      }
    });
  });

  async start(): Promise<number> {
    const port = await freePort();
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    return port;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The OIDC provider's token endpoint: records how Synapse authenticates, then refuses the code. */
class FakeTokenEndpoint {
  readonly authorizations: string[] = [];
  private readonly server = http.createServer((req, res) => {
    this.authorizations.push(req.headers.authorization ?? '');
    req.resume();
    res.writeHead(400, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant' }));
  });

  async start(): Promise<string> {
    const port = await freePort();
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    return `http://127.0.0.1:${port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A GET with the headers as given (fetch replaces Host), not following redirects. */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
      })
      .on('error', reject);
  });
}

const smtp = new FakeSmtp();
const idp = new FakeTokenEndpoint();
let pg: RunningPostgres;
let synapse: RunningSynapse;
let setup: ReturnType<typeof rendered>;
let secrets: Record<string, string>;

beforeAll(async () => {
  const smtpPort = await smtp.start();
  const idpUrl = await idp.start();
  // The settings an operator writes in kudo.yaml; only the SMTP and IdP addresses are the test's.
  setup = rendered({
    synapse: {
      extraConfig: {
        rc_login: { address: { per_second: 0.001, burst_count: 2 } },
        email: {
          smtp_host: '127.0.0.1',
          smtp_port: smtpPort,
          enable_tls: false,
          require_transport_security: false,
          notif_from: 'Kudo <noreply@example.com>',
          app_name: 'Kudo',
        },
        oidc_providers: [
          {
            idp_id: 'kudo',
            idp_name: 'Kudo SSO',
            issuer: `${idpUrl}/`,
            discover: false,
            skip_verification: true,
            authorization_endpoint: `${idpUrl}/authorize`,
            token_endpoint: `${idpUrl}/token`,
            userinfo_endpoint: `${idpUrl}/userinfo`,
            client_id: 'synapse',
            client_secret_path: '/secrets/extra/oidc_client_secret',
            scopes: ['profile'],
            user_profile_method: 'userinfo_endpoint',
            user_mapping_provider: { config: { localpart_template: '{{ user.preferred_username }}' } },
          },
        ],
      },
      extraSecretFiles: [{ secret: 'kudo-sso', key: 'client_secret', file: 'oidc_client_secret' }],
    },
  });
  secrets = await generatedSecrets(setup.manifests);
  pg = await startPostgres(setup.manifests, setup.config, secrets);
  synapse = await startSynapse(setup.manifests, setup.config, { ...secrets, 'kudo-sso/client_secret': `${CLIENT_SECRET}\n` }, pg);
}, 300_000);

afterAll(async () => {
  await synapse?.stop();
  await pg?.stop();
  await smtp.stop();
  await idp.stop();
});

test("the rendered pod mounts the operator's Secret where the setting points", () => {
  const deploy = find(setup.manifests, 'Deployment', 'synapse');
  const source = podSpec(deploy)
    .volumes.find((v: any) => v.name === 'secrets')
    .projected.sources.find((s: any) => s.secret.name === 'kudo-sso');
  expect(source.secret.items).toEqual([{ key: 'client_secret', path: 'extra/oidc_client_secret' }]);
  expect(container(deploy, 'synapse').volumeMounts).toContainEqual({ name: 'secrets', mountPath: '/secrets', readOnly: true });
  const hs = yaml.load(configMapFile(setup.manifests, 'synapse-config', 'homeserver.yaml')) as any;
  expect(hs.oidc_providers[0].client_secret_path).toBe('/secrets/extra/oidc_client_secret');
});

test("the login rate limit is the configured one: the third attempt from one address is refused (Synapse's default allows five)", async () => {
  const attempt = () =>
    httpJson(`${synapse.base}/_matrix/client/v3/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'nobody' }, password: 'wrong' }),
    });
  expect((await attempt()).status).toBe(403);
  expect((await attempt()).status).toBe(403);
  const third = await attempt();
  expect(third.status).toBe(429);
  expect(third.body.errcode).toBe('M_LIMIT_EXCEEDED');
});

test('SSO: the provider is offered, and its token endpoint gets the client secret from the mounted file', async () => {
  const login = await httpJson(`${synapse.base}/_matrix/client/v3/login`);
  const sso = login.body.flows.find((f: any) => f.type === 'm.login.sso');
  expect(sso.identity_providers).toEqual([{ id: 'oidc-kudo', name: 'Kudo SSO' }]);

  // As the Ingress forwards a request for the public host (to the x_forwarded listener): Synapse sends anyone
  // else to public_baseurl first, so the session cookie is set for the host the callback comes back to.
  const viaIngress = { Host: setup.config.hosts.matrix, 'X-Forwarded-For': '203.0.113.7', 'X-Forwarded-Proto': 'https' };
  const start = await get(`${synapse.proxiedBase}/_matrix/client/v3/login/sso/redirect/oidc-kudo?redirectUrl=${encodeURIComponent('http://localhost/done')}`, viaIngress);
  expect(start.status).toBe(302);
  const authorize = new URL(start.headers.location!);
  expect(authorize.pathname).toBe('/authorize');
  expect(authorize.searchParams.get('client_id')).toBe('synapse');
  const cookies = (start.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).join('; ');
  await get(`${synapse.proxiedBase}/_synapse/client/oidc/callback?code=the-code&state=${authorize.searchParams.get('state')}`, { ...viaIngress, Cookie: cookies });
  expect(idp.authorizations).toHaveLength(1);
  // client_secret_basic: Basic base64(client_id:client_secret), the file's content without its newline.
  expect(Buffer.from(idp.authorizations[0].replace(/^Basic /, ''), 'base64').toString()).toBe(`synapse:${CLIENT_SECRET}`);
});

test('email: a validation mail goes through the configured SMTP server, from the configured sender', async () => {
  // A user, by the shared-secret registration the admin bootstrap uses.
  const registered = await registerUser(synapse.base, secrets.registrationSharedSecret, 'mailuser', 'correct horse');
  expect(registered.status).toBe(200);
  const request = await httpJson(`${synapse.base}/_matrix/client/v3/account/3pid/email/requestToken`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${registered.body.access_token}` },
    body: JSON.stringify({ client_secret: 'abc123', email: 'mailuser@example.org', send_attempt: 1 }),
  });
  expect(request.status).toBe(200);
  for (let i = 0; i < 100 && smtp.messages.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  expect(smtp.messages).toHaveLength(1);
  expect(smtp.messages[0].to).toEqual(['<mailuser@example.org>']);
  expect(smtp.messages[0].data).toMatch(/^From: Kudo <noreply@example\.com>$/m);
});
