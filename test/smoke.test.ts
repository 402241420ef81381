/**
 * The smoke-test script (charts/files/smoke.py), run by the real Python
 * against local stand-ins for each endpoint: HTTP(S) with a test CA, a STUN
 * responder over UDP and a TLS listener.
 */
import { execFileSync, spawn, spawnSync } from 'child_process';
import * as dgram from 'dgram';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import * as tls from 'tls';
import { container, find, synthAll } from './util';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-smoke-'));
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost',
    '-keyout',
    path.join(dir, 'key.pem'),
    '-out',
    path.join(dir, 'cert.pem'),
  ],
  { stdio: 'ignore' },
);
const creds = { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) };

let matrixPort = 0;
const servers: { close: () => void }[] = [];
const listen = <T extends http.Server | tls.Server>(s: T) => new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));
let ports: Record<string, number> = {};
let stun: dgram.Socket;

beforeAll(async () => {
  const synapse = http.createServer((req, res) => res.writeHead(req.url === '/health' ? 200 : 404).end('OK'));
  const pub = https.createServer(creds, (req, res) => {
    const json = (o: object, h: Record<string, string> = {}) => res.writeHead(200, { 'Content-Type': 'application/json', ...h }).end(JSON.stringify(o));
    if (req.url === '/_matrix/client/versions') return json({ versions: ['v1.11'] });
    if (req.url === '/.well-known/matrix/server') return json({ 'm.server': 'localhost:443' });
    if (req.url === '/.well-known/matrix/client') return json({ 'm.homeserver': { base_url: `https://localhost:${matrixPort}` } }, { 'Access-Control-Allow-Origin': '*' });
    if (req.url === '/') return res.writeHead(200).end('OK');
    return res.writeHead(404).end();
  });
  const turns = tls.createServer(creds, (s) => s.end());
  stun = dgram.createSocket('udp4');
  stun.on('message', (msg, rinfo) => {
    // A Binding success response echoing the transaction id.
    const reply = Buffer.concat([Buffer.from([0x01, 0x01, 0x00, 0x00]), msg.subarray(4, 20)]);
    stun.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => stun.bind(0, '127.0.0.1', () => r()));
  ports = { synapse: await listen(synapse), pub: await listen(pub), turns: await listen(turns), stun: stun.address().port };
  matrixPort = ports.pub;
  servers.push(synapse, pub, turns);
});
afterAll(() => {
  servers.forEach((s) => s.close());
  stun?.close();
});

function smoke(overrides: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  const script = find(synthAll(), 'ConfigMap', 'smoke-test').data['smoke.py'];
  fs.writeFileSync(path.join(dir, 'smoke.py'), script);
  const env = {
    PATH: process.env.PATH!,
    SMOKE_CA_FILE: path.join(dir, 'cert.pem'),
    SMOKE_UDP_TIMEOUT: '0.3',
    SYNAPSE_URL: `http://127.0.0.1:${ports.synapse}`,
    MATRIX_URL: `https://localhost:${ports.pub}`,
    SERVER_NAME: `localhost:${ports.pub}`,
    LIVEKIT_URL: `https://localhost:${ports.pub}`,
    TURN_HOST: 'localhost',
    TURN_PORT: String(ports.stun),
    TURN_TLS_PORT: String(ports.turns),
    ...overrides,
  };
  return new Promise((resolve) => {
    const p = spawn('python3', [path.join(dir, 'smoke.py')], { env });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => resolve({ code, out }));
  });
}

test('the CronJob is a suspended template running the bundled script with the rendered endpoints', () => {
  const cj = find(synthAll(), 'CronJob', 'smoke-test');
  expect(cj.spec.suspend).toBe(true);
  const env = Object.fromEntries(container(cj, 'smoke-test').env.map((e: any) => [e.name, e.value]));
  expect(env).toMatchObject({
    SYNAPSE_URL: 'http://synapse.kudo.svc:8008',
    MATRIX_URL: 'https://matrix.example.com',
    SERVER_NAME: 'example.com',
    TURN_HOST: 'turn.example.com',
    TURN_PORT: '3478',
  });
});

test('every check passes against working endpoints', async () => {
  const r = await smoke();
  expect(r.out).toContain('7 passed, 0 failed');
  expect(r.out).toMatch(/PASS {2}STUN binding: response type 0x0101/);
  expect(r.code).toBe(0);
});

test('a broken endpoint is reported by name and fails the run', async () => {
  const r = await smoke({ TURN_PORT: '9', TURN_TLS_PORT: '1' });
  expect(r.out).toMatch(/FAIL {2}STUN binding/);
  expect(r.out).toMatch(/FAIL {2}TURN over TLS/);
  expect(r.out).toContain('5 passed, 2 failed');
  expect(r.code).toBe(1);
});

describe('npm run smoke without a usable cluster says so in one line', () => {
  const smokeCommand = (args: string[], env: Record<string, string | undefined> = {}) => {
    const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'smoke.mjs'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, KUBECONFIG: path.join(dir, 'no-such-kubeconfig'), ...env },
    });
    return { code: r.status, stderr: r.stderr, stdout: r.stdout };
  };

  test('an unknown context', () => {
    const r = smokeCommand(['--context', 'no-such-context']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^kudo: cannot start the smoke test in context "no-such-context": .*context.*no-such-context.*\n$/);
    expect(r.stderr.split('\n')).toHaveLength(2);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  test('no kubectl', () => {
    const r = smokeCommand(['--context', 'x'], { PATH: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('kudo: npm run smoke needs kubectl on the PATH\n');
  });

  test('no context given', () => {
    const r = smokeCommand([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('usage: npm run smoke -- --context KUBE_CONTEXT [--namespace kudo]\n');
  });
});
