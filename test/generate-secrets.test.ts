/**
 * The secret generator's logic (charts/files/generate_secrets.py), run with
 * the real Python against an in-memory API, using the plan the chart renders.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BASIC_FEATURES, secretPlan } from '../charts/secrets';
import { FakeKubeApi } from './fake-kube-api';
import { config, lazy } from './util';

const FILES = path.resolve(__dirname, '..', 'charts', 'files');
const c = config();
// Made on first use inside a test (under Stryker, in each test), so mutants in the plan's code are covered per test.
const thePlan = lazy(() => secretPlan(c.secrets.refs, c.namespaces, BASIC_FEATURES));
const thePlanFile = lazy(() => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-plan-')), 'thePlan().json');
  fs.writeFileSync(file, JSON.stringify({ values: thePlan() }));
  return file;
});

let api: FakeKubeApi;
let url: string;
beforeEach(async () => {
  api = new FakeKubeApi();
  url = await api.start();
});
afterEach(() => api.stop());

function generate(): Promise<{ status: number; output: string }> {
  return runPython(['generate_secrets.py', thePlanFile()]);
}

/** Runs a bundled script asynchronously (a synchronous spawn would stall the fake API in this process). */
export function runPython(args: string[], env: Record<string, string> = {}): Promise<{ status: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', args, {
      cwd: FILES,
      // No __pycache__ in charts/files: tests leave the working tree as they found it.
      env: { PATH: process.env.PATH, PYTHONDONTWRITEBYTECODE: '1', KUBE_API_URL: url, KUBE_TOKEN_FILE: '/nonexistent', KUBE_CA_FILE: '/nonexistent', ...env },
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? -1, output }));
  });
}

test('sanity: the plan covers every value in both namespaces it is read in', () => {
  const turn = thePlan().find((p) => p.name === 'turnSharedSecret')!;
  expect(turn.destinations.map((d) => d.namespace)).toEqual(['kudo', 'kudo-media']);
  // Every value but the workers' replication secret and the backup repository's password (the basic features have
  // neither workers nor backups).
  expect(
    thePlan()
      .map((p) => p.name)
      .sort(),
  ).toEqual(
    Object.keys(c.secrets.refs)
      .filter((k) => !['workerReplicationSecret', 'backupPassword'].includes(k))
      .sort(),
  );
});

test('an empty cluster gets every value, shared ones identical in each namespace', async () => {
  const r = await generate();
  expect(r.output).toContain('all secret values present');
  expect(r.status).toBe(0);
  const turnStack = api.values('kudo', 'kudo-turn')!.shared_secret;
  expect(turnStack).toHaveLength(43);
  expect(api.values('kudo-media', 'kudo-turn')!.shared_secret).toBe(turnStack);
  expect(api.values('kudo-media', 'kudo-redis')!.password).toBe(api.values('kudo', 'kudo-redis')!.password);
  const synapse = api.values('kudo', 'kudo-synapse')!;
  expect(Object.keys(synapse).sort()).toEqual(['form_secret', 'macaroon_secret_key', 'registration_shared_secret', 'signing.key']);
  expect(synapse['signing.key']).toMatch(/^ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n$/);
  expect(api.values('kudo-media', 'kudo-livekit')!.api_key).toMatch(/^API[A-Za-z0-9]{12}$/);
  expect(api.values('kudo-media', 'kudo-livekit')!.api_secret.length).toBeGreaterThanOrEqual(32);
  // Distinct values, not one value reused.
  const all = thePlan().map((p) => api.values(p.destinations[0].namespace, p.destinations[0].secret)![p.destinations[0].key]);
  expect(new Set(all).size).toBe(all.length);
  expect(api.secrets.get('kudo/kudo-synapse')!.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'kudo-secrets-generator' });
});

test('two installs get different values (no fixed seed)', async () => {
  await generate();
  const first = api.values('kudo', 'kudo-synapse')!['signing.key'];
  const other = new FakeKubeApi();
  const saved = url;
  url = await other.start();
  await generate();
  expect(other.values('kudo', 'kudo-synapse')!['signing.key']).not.toBe(first);
  await other.stop();
  url = saved;
});

test('a second run changes nothing', async () => {
  await generate();
  const before = JSON.stringify([...api.secrets]);
  const firstRun = api.requests.length;
  const r = await generate();
  expect(r.status).toBe(0);
  expect(JSON.stringify([...api.secrets])).toBe(before);
  const secondRun = api.requests.slice(firstRun);
  expect(secondRun.length).toBeGreaterThan(0);
  expect(secondRun.filter((q) => !q.startsWith('GET '))).toEqual([]);
});

test('existing values are never overwritten, and are copied where missing', async () => {
  api.put('kudo', 'kudo-postgres', { password: 'from-compose' });
  api.put('kudo-media', 'kudo-turn', { shared_secret: 'old-turn-secret' });
  api.put('kudo', 'kudo-synapse', { 'signing.key': 'ed25519 a_old AAAA\n', unrelated: 'keep me' });
  const r = await generate();
  expect(r.status).toBe(0);
  expect(api.values('kudo', 'kudo-postgres')!.password).toBe('from-compose');
  expect(api.values('kudo', 'kudo-turn')!.shared_secret).toBe('old-turn-secret');
  const synapse = api.values('kudo', 'kudo-synapse')!;
  expect(synapse['signing.key']).toBe('ed25519 a_old AAAA\n');
  expect(synapse.unrelated).toBe('keep me');
  expect(synapse.macaroon_secret_key).toHaveLength(43);
});

test('values that disagree are reported and left alone', async () => {
  api.put('kudo', 'kudo-turn', { shared_secret: 'one' });
  api.put('kudo-media', 'kudo-turn', { shared_secret: 'two' });
  const r = await generate();
  expect(r.status).toBe(1);
  expect(r.output).toContain('CONFLICT turnSharedSecret');
  expect(api.values('kudo', 'kudo-turn')!.shared_secret).toBe('one');
  expect(api.values('kudo-media', 'kudo-turn')!.shared_secret).toBe('two');
  // Everything else was still created.
  expect(api.values('kudo', 'kudo-postgres')!.password).toHaveLength(43);
});

test('an unreachable API stops the run with a one-line reason, not a traceback', async () => {
  await api.stop();
  const r = await generate();
  expect(r.status).toBe(1);
  expect(r.output).toBe(`secret generator failed: cannot reach the Kubernetes API at ${url}: [Errno 111] Connection refused\n`);
  api = new FakeKubeApi();
  url = await api.start();
});

describe('the Secrets in the backup: export_secrets.py, then generate_secrets.py --restore in a new cluster', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-secrets-export-'));
  const exported = path.join(dir, 'secrets.json');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const exportValues = () => runPython(['export_secrets.py', thePlanFile(), exported]);
  const restore = (file = exported) => runPython(['generate_secrets.py', thePlanFile(), '--restore', file]);
  /** Every planned value as the API holds it, by name (first destination). */
  const held = (a: FakeKubeApi) => Object.fromEntries(thePlan().map((p) => [p.name, a.values(p.destinations[0].namespace, p.destinations[0].secret)?.[p.destinations[0].key]]));

  test('a new cluster restored from the export holds every value of the old one, in every namespace', async () => {
    expect((await generate()).status).toBe(0);
    const old = held(api);
    const e = await exportValues();
    expect(e.output).toMatch(/^exported 11 of 11 secret values: adminPassword, formSecret, livekitApiKey/);
    expect(e.status).toBe(0);
    // Only the owner may read it (the pod's user); nothing else was written beside it.
    expect(fs.statSync(exported).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir)).toEqual(['secrets.json']);
    const doc = JSON.parse(fs.readFileSync(exported, 'utf8'));
    expect(doc.format).toBe(1);
    expect(doc.values.signingKey).toBe(old.signingKey);

    const fresh = new FakeKubeApi();
    const saved = url;
    url = await fresh.start();
    try {
      const r = await restore();
      expect(r.output).toContain('signingKey: restored from the backup');
      expect(r.output).toContain('all secret values present');
      expect(r.status).toBe(0);
      expect(held(fresh)).toEqual(old);
      expect(fresh.values('kudo-media', 'kudo-turn')!.shared_secret).toBe(old.turnSharedSecret);
      // Without the export the new cluster would get a new signing key: the one thing the restore exists for.
      const other = new FakeKubeApi();
      url = await other.start();
      expect((await generate()).status).toBe(0);
      expect(held(other).signingKey).not.toBe(old.signingKey);
      await other.stop();
    } finally {
      await fresh.stop();
      url = saved;
    }
  });

  test('a value the export lacks is generated and named; one the cluster holds differently is left alone and fails the run', async () => {
    fs.writeFileSync(exported, JSON.stringify({ format: 1, values: { signingKey: 'ed25519 a_bkup AAAA\n', formSecret: 'from-backup' } }));
    api.put('kudo', 'kudo-synapse', { form_secret: 'already-here' });
    const r = await restore();
    expect(r.output).toContain('signingKey: restored from the backup');
    expect(r.output).toContain('macaroonSecretKey: not in the backup, generated');
    expect(r.output).toContain("CONFLICT formSecret: kudo/kudo-synapse[form_secret] already hold a value other than the backup's");
    expect(r.status).toBe(1);
    expect(api.values('kudo', 'kudo-synapse')).toMatchObject({ 'signing.key': 'ed25519 a_bkup AAAA\n', form_secret: 'already-here' });
    expect(api.values('kudo', 'kudo-synapse')!.macaroon_secret_key).toHaveLength(43);
  });

  test.each([
    ['not JSON', '{', /not JSON/],
    ['another format', '{"format": 2, "values": {}}', /not a secrets export of format 1/],
    ['a value that is not text', '{"format": 1, "values": {"signingKey": 7}}', /"values" must map each value's name to a string/],
  ])('an export that is %s changes nothing and says why', async (_what, text, message) => {
    fs.writeFileSync(exported, text);
    const r = await restore();
    expect(r.output).toMatch(/^secret generator: cannot restore from the backup, nothing changed: .*secrets\.json: /);
    expect(r.output).toMatch(message);
    expect(r.status).toBe(1);
    expect(api.secrets.size).toBe(0);
    const missing = await restore(path.join(dir, 'absent.json'));
    expect(missing.output).toMatch(/cannot restore from the backup, nothing changed: .*No such file/);
    expect(missing.status).toBe(1);
  });

  test('values that disagree are not exported: the export fails and writes nothing', async () => {
    fs.rmSync(exported, { force: true });
    api.put('kudo', 'kudo-turn', { shared_secret: 'one' });
    api.put('kudo-media', 'kudo-turn', { shared_secret: 'two' });
    const e = await exportValues();
    expect(e.output).toContain('CONFLICT turnSharedSecret: kudo-media/kudo-turn[shared_secret], kudo/kudo-turn[shared_secret] hold different values');
    expect(e.status).toBe(1);
    expect(fs.existsSync(exported)).toBe(false);
  });

  test('a value no Secret holds yet is left out and named', async () => {
    api.put('kudo', 'kudo-synapse', { 'signing.key': 'ed25519 a_only AAAA\n' });
    const e = await exportValues();
    expect(e.output).toContain('macaroonSecretKey: no Secret holds it yet, not exported');
    expect(e.output).toContain('exported 1 of 11 secret values: signingKey');
    expect(e.status).toBe(0);
    expect(JSON.parse(fs.readFileSync(exported, 'utf8')).values).toEqual({ signingKey: 'ed25519 a_only AAAA\n' });
  });
});

describe('coturn public address lookup', () => {
  const lookup = (env: Record<string, string>, node: object) =>
    runPython(
      [
        '-c',
        [
          'import json, os, node_address',
          `node = json.loads(${JSON.stringify(JSON.stringify(node))})`,
          'print(node_address.advertised_addresses(os.environ, lambda name: node)[0])',
        ].join('\n'),
      ],
      env,
    );

  test('configured address first, then the ExternalIP, then the node IP', async () => {
    const node = {
      status: {
        addresses: [
          { type: 'InternalIP', address: '10.0.0.5' },
          { type: 'ExternalIP', address: '203.0.113.9' },
        ],
      },
    };
    expect((await lookup({ PUBLIC_IP: '198.51.100.1', NODE_NAME: 'n', NODE_IP: '10.0.0.5' }, node)).output.trim()).toBe('198.51.100.1');
    expect((await lookup({ NODE_NAME: 'n', NODE_IP: '10.0.0.5' }, node)).output.trim()).toBe('203.0.113.9');
    const internalOnly = { status: { addresses: [{ type: 'InternalIP', address: '10.0.0.5' }] } };
    expect((await lookup({ NODE_NAME: 'n', NODE_IP: '10.0.0.5' }, internalOnly)).output.trim()).toBe('10.0.0.5');
  });

  // LiveKit takes --node-ip "<IPv4>,<IPv6>" (mediatransportutil's NodeIP, at most one of each family) and maps its host
  // candidates of each family to that family's address; coturn's start script takes one IPv4 and does not ask.
  test('ADDRESS_FAMILIES=both (LiveKit): the IPv6 too, an ExternalIP first, else a global InternalIP; never a second IPv6', async () => {
    const both = { NODE_NAME: 'n', NODE_IP: '10.0.0.5', ADDRESS_FAMILIES: 'both' };
    const node = (...addresses: [string, string][]) => ({ status: { addresses: addresses.map(([type, address]) => ({ type, address })) } });
    const dual = node(['InternalIP', '10.0.0.5'], ['InternalIP', '2600:1f18:4a3:6b00::5'], ['ExternalIP', '203.0.113.9'], ['ExternalIP', '2600:1f18:4a3:6b00::9']);
    expect((await lookup(both, dual)).output.trim()).toBe('203.0.113.9,2600:1f18:4a3:6b00::9');
    // Without the setting, the IPv4 alone, as before.
    expect((await lookup({ NODE_NAME: 'n', NODE_IP: '10.0.0.5' }, dual)).output.trim()).toBe('203.0.113.9');
    // No IPv6 ExternalIP: the node's own global IPv6 (kubelet's --node-ip with both families), not a unique local one.
    expect((await lookup(both, node(['InternalIP', '10.0.0.5'], ['InternalIP', '2600:1f18:4a3:6b00::5'], ['ExternalIP', '203.0.113.9']))).output.trim()).toBe(
      '203.0.113.9,2600:1f18:4a3:6b00::5',
    );
    expect((await lookup(both, node(['InternalIP', '10.0.0.5'], ['InternalIP', 'fd00:10::5'], ['ExternalIP', '203.0.113.9']))).output.trim()).toBe('203.0.113.9');
    // An IPv6-only node: its own address, once.
    expect((await lookup({ ...both, NODE_IP: '2600:1f18:4a3:6b00::5' }, node(['InternalIP', '2600:1f18:4a3:6b00::5']))).output.trim()).toBe('2600:1f18:4a3:6b00::5');
    // A configured address is used alone, as the operator gave it.
    expect((await lookup({ ...both, PUBLIC_IP: '198.51.100.1' }, dual)).output.trim()).toBe('198.51.100.1');
  });
});
