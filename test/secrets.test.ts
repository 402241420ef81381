import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Chart, Testing } from 'cdk8s';
import { config, container, find, Manifest, podSpec, PRODUCTION, synthAll, synthChart } from './util';

const generator = () => synthChart('05-secrets');
const bootstrap = () => synthChart('40-bootstrap');

describe('generator RBAC', () => {
  test('the standing Roles get and patch only the named Secrets; create (which RBAC cannot limit by name) is a Role that lives only during an Argo CD sync', () => {
    const ms = generator();
    const roles = ms.filter((m) => m.kind === 'Role' && m.metadata.name === 'secret-generator');
    expect(roles.map((r) => r.metadata.namespace).sort()).toEqual(['kudo', 'kudo-media']);
    const stack = roles.find((r) => r.metadata.namespace === 'kudo')!;
    expect(stack.rules).toEqual([
      {
        apiGroups: [''],
        resources: ['secrets'],
        resourceNames: ['kudo-backup', 'kudo-postgres', 'kudo-redis', 'kudo-synapse', 'kudo-synapse-admin', 'kudo-turn'],
        verbs: ['get', 'patch'],
      },
    ]);
    expect(stack.metadata.annotations?.['argocd.argoproj.io/hook']).toBeUndefined();
    // A hook in the wave before the Job's (-1), removed when the sync ends either way.
    const hook = {
      'argocd.argoproj.io/hook': 'Sync',
      'argocd.argoproj.io/sync-wave': '-2',
      'argocd.argoproj.io/hook-delete-policy': 'BeforeHookCreation,HookSucceeded,HookFailed',
    };
    for (const namespace of ['kudo', 'kudo-media']) {
      const create = ms.filter((m) => m.kind === 'Role' && m.metadata.name === 'secret-generator-create' && m.metadata.namespace === namespace);
      expect(create.map((r) => [r.rules, r.metadata.annotations])).toEqual([[[{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }], hook]]);
      const binding = find(
        ms.filter((m) => m.metadata.namespace === namespace),
        'RoleBinding',
        'secret-generator-create',
      );
      expect([binding.roleRef, binding.metadata.annotations]).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'secret-generator-create' }, hook]);
    }
    const media = roles.find((r) => r.metadata.namespace === 'kudo-media')!;
    expect(media.rules[0].resourceNames).toEqual(['kudo-livekit', 'kudo-redis', 'kudo-turn']);
    for (const r of roles) for (const rule of r.rules) expect(rule.verbs).not.toEqual(expect.arrayContaining(['list']));
    for (const b of ms.filter((m) => m.kind === 'RoleBinding')) {
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: 'secret-generator', namespace: 'kudo' }]);
    }
  });

  test('the Job runs the bundled script with the rendered plan, ordered before the workloads', () => {
    const ms = generator();
    const job = ms.find((m) => m.kind === 'Job')!;
    expect(job.metadata.name).toMatch(/^generate-secrets-[0-9a-f]{8}$/);
    expect(job.metadata.annotations).toMatchObject({ 'argocd.argoproj.io/sync-wave': '-1', 'argocd.argoproj.io/hook': 'Sync' });
    expect(container(job, 'generate-secrets').command).toEqual(['python3', '/opt/kudo/generate_secrets.py', '/opt/kudo/plan.json']);
    expect(podSpec(job).serviceAccountName).toBe('secret-generator');
    const plan = JSON.parse(find(ms, 'ConfigMap', 'secret-generator').data['plan.json']);
    const dest = (namespace: string, secret: string, key: string) => ({ namespace, secret, key });
    expect(plan.values).toEqual([
      { name: 'postgresPassword', kind: 'token', destinations: [dest('kudo', 'kudo-postgres', 'password')] },
      { name: 'postgresSuperuserPassword', kind: 'token', destinations: [dest('kudo', 'kudo-postgres', 'superuser_password')] },
      { name: 'macaroonSecretKey', kind: 'token', destinations: [dest('kudo', 'kudo-synapse', 'macaroon_secret_key')] },
      { name: 'formSecret', kind: 'token', destinations: [dest('kudo', 'kudo-synapse', 'form_secret')] },
      { name: 'registrationSharedSecret', kind: 'token', destinations: [dest('kudo', 'kudo-synapse', 'registration_shared_secret')] },
      { name: 'signingKey', kind: 'synapse-signing-key', destinations: [dest('kudo', 'kudo-synapse', 'signing.key')] },
      { name: 'adminPassword', kind: 'token', destinations: [dest('kudo', 'kudo-synapse-admin', 'password')] },
      { name: 'turnSharedSecret', kind: 'token', destinations: [dest('kudo', 'kudo-turn', 'shared_secret'), dest('kudo-media', 'kudo-turn', 'shared_secret')] },
      { name: 'redisPassword', kind: 'token', destinations: [dest('kudo', 'kudo-redis', 'password'), dest('kudo-media', 'kudo-redis', 'password')] },
      { name: 'livekitApiKey', kind: 'livekit-api-key', destinations: [dest('kudo-media', 'kudo-livekit', 'api_key')] },
      { name: 'livekitApiSecret', kind: 'token', destinations: [dest('kudo-media', 'kudo-livekit', 'api_secret')] },
      { name: 'backupPassword', kind: 'token', destinations: [dest('kudo', 'kudo-backup', 'restic_password')] },
    ]);
  });

  test('a changed Job gets a new name (Job templates are immutable)', () => {
    const name = (c: object) => synthChart('05-secrets', config(c)).find((m) => m.kind === 'Job')!.metadata.name;
    expect(name({})).toBe(name({}));
    expect(name({ synapse: { image: { tag: 'v1.164.0' } } })).not.toBe(name({}));
  });

  test('a changed plan gets a new Job: small then production runs the generator again for worker_replication_secret', () => {
    const job = (c: object) => synthChart('05-secrets', config(c)).find((m) => m.kind === 'Job')!;
    const small = job({});
    const production = job({ ...PRODUCTION });
    // The pod template alone is the same: only the plan (a ConfigMap) differs.
    expect(production.spec.template).toEqual(small.spec.template);
    expect(production.metadata.name).not.toBe(small.metadata.name);
    expect(job({ ...PRODUCTION }).metadata.name).toBe(production.metadata.name);
  });
});

describe('existing mode', () => {
  const existing = config({
    secrets: { mode: 'existing', refs: { postgresPassword: { name: 'vault-db', key: 'pw' }, turnSharedSecret: { name: 'vault-turn', key: 'secret' } } },
  });

  test('no generator; workloads read the named Secrets', () => {
    const all = synthAll(existing);
    expect(all.filter((m) => m.metadata.name?.startsWith('generate-secrets'))).toEqual([]);
    const pg = find(all, 'StatefulSet', 'postgres');
    expect(podSpec(pg).volumes.find((v: any) => v.name === 'password').projected.sources[0].secret).toEqual({ name: 'vault-db', items: [{ key: 'pw', path: 'password' }] });
    const synapseTurn = podSpec(find(all, 'Deployment', 'synapse'))
      .volumes.find((v: any) => v.name === 'secrets')
      .projected.sources.find((s: any) => s.secret.items[0].path === 'turn_shared_secret');
    expect(synapseTurn.secret).toEqual({ name: 'vault-turn', items: [{ key: 'secret', path: 'turn_shared_secret' }] });
    expect(
      podSpec(find(all, 'DaemonSet', 'coturn'))
        .volumes.find((v: any) => v.name === 'turn-secret')
        .projected.sources.map((x: any) => x.secret.name),
    ).toEqual(['vault-turn', 'vault-turn']);
  });
});

describe('admin bootstrap', () => {
  test('registers through the in-cluster URL and writes the app Secret', () => {
    const ms = bootstrap();
    const job = ms.find((m) => m.kind === 'Job')!;
    const env = Object.fromEntries(container(job, 'bootstrap-admin').env.map((e: any) => [e.name, e.value]));
    expect(env).toMatchObject({
      SYNAPSE_URL: 'http://synapse.kudo.svc:8008',
      SERVER_NAME: 'example.com',
      ADMIN_USER: 'admin',
      PUBLIC_HOMESERVER_URL: 'https://matrix.example.com',
      PUBLIC_LIVEKIT_URL: 'wss://livekit.example.com',
      APP_SECRET_REF: 'kudo-app/kudo-app',
      LIVEKIT_API_KEY_REF: 'kudo-media/kudo-livekit/api_key',
    });
    // A Sync hook in the wave after Synapse's (3): the app's credentials wait for nothing else.
    expect(job.metadata.annotations).toMatchObject({ 'argocd.argoproj.io/hook': 'Sync', 'argocd.argoproj.io/sync-wave': '3' });
    const appRole = ms.find((m) => m.kind === 'Role' && m.metadata.namespace === 'kudo-app' && m.metadata.name === 'admin-bootstrap')!;
    expect(appRole.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['kudo-app'], verbs: ['get', 'patch'] }]);
    // create kudo-app: a hook in the wave before the Job's (3), gone when the sync ends.
    const appCreate = find(
      ms.filter((m) => m.metadata.namespace === 'kudo-app'),
      'Role',
      'admin-bootstrap-create',
    );
    expect([appCreate.rules, appCreate.metadata.annotations]).toEqual([
      [{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }],
      { 'argocd.argoproj.io/hook': 'Sync', 'argocd.argoproj.io/sync-wave': '2', 'argocd.argoproj.io/hook-delete-policy': 'BeforeHookCreation,HookSucceeded,HookFailed' },
    ]);
    expect(ms.filter((m) => m.kind === 'Role' && m.metadata.name === 'admin-bootstrap-create').map((m) => m.metadata.namespace)).toEqual(['kudo-app']);
    const mediaRole = ms.find((m) => m.kind === 'Role' && m.metadata.namespace === 'kudo-media')!;
    expect(mediaRole.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['kudo-livekit'], verbs: ['get'] }]);
  });

  test("LiveKit's key and secret in two Secrets of the operator's: the bootstrap may read both, named once each, in order", () => {
    const refs = { livekitApiKey: { name: 'z-livekit-key', key: 'k' }, livekitApiSecret: { name: 'a-livekit-secret', key: 's' } };
    const ms = synthChart('40-bootstrap', config({ secrets: { refs } }));
    const mediaRole = ms.find((m) => m.kind === 'Role' && m.metadata.namespace === 'kudo-media')!;
    expect(mediaRole.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['a-livekit-secret', 'z-livekit-key'], verbs: ['get'] }]);
  });

  test('a changed script gets a new Job: a finished Job of the old script does not stand for the new one', () => {
    const jobName = (changeScript: boolean): string => {
      let name = '';
      jest.isolateModules(() => {
        if (changeScript) {
          const real = jest.requireActual<typeof import('fs')>('fs');
          jest.doMock('fs', () => ({
            ...real,
            readFileSync: (f: string, o?: any) => (String(f).endsWith('bootstrap_admin.py') ? `${real.readFileSync(f, 'utf8')}\n# changed\n` : real.readFileSync(f, o)),
          }));
        }
        // Loaded after jest.doMock, inside isolateModules: an import would load them before the mock.
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded after jest.doMock
        const { buildApp } = require('../charts/app');
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded after jest.doMock
        const { resolveConfig } = require('../charts/config');
        const chart = buildApp(resolveConfig({}, 'test config'), { outdir: Testing.app().outdir }).charts.find((c: Chart) => c.node.id === '40-bootstrap');
        name = (Testing.synth(chart) as Manifest[]).find((m) => m.kind === 'Job')!.metadata.name;
      });
      jest.dontMock('fs');
      return name;
    };
    expect(jobName(false)).toBe(bootstrap().find((m) => m.kind === 'Job')!.metadata.name);
    expect(jobName(true)).not.toBe(jobName(false));
  });
});

describe('no secret values anywhere in the rendered output', () => {
  const all = synthAll();
  test('no Secret objects are rendered at all', () => {
    expect(all.filter((m: Manifest) => m.kind === 'Secret')).toEqual([]);
  });
  test('no env var carries a literal secret-looking value', () => {
    for (const m of all) {
      const spec = m.spec?.template?.spec ?? m.spec?.jobTemplate?.spec?.template?.spec;
      if (!spec) continue;
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
        for (const e of c.env ?? []) {
          if (/PASSWORD|SECRET|TOKEN|KEY/.test(e.name) && !/_FILE$|_REF$/.test(e.name)) expect(e.value).toBeUndefined();
        }
      }
    }
  });
});

test('the Jobs that call the API get a short-lived token as a volume in their container, not an automounted one', () => {
  for (const ms of [generator(), bootstrap()]) {
    const job = ms.find((m) => m.kind === 'Job')!;
    const spec = podSpec(job);
    expect(spec.automountServiceAccountToken).toBe(false);
    const token = spec.volumes.find((v: any) => v.name === 'api-token');
    expect(token.projected.sources[0]).toEqual({ serviceAccountToken: { path: 'token', expirationSeconds: 3600 } });
    const c = spec.containers[0];
    const mount = c.volumeMounts.find((m: any) => m.name === 'api-token');
    expect(mount).toEqual({ name: 'api-token', mountPath: '/var/run/secrets/kudo/serviceaccount', readOnly: true });
    // kube.py looks there.
    expect(c.env).toContainEqual({ name: 'SA_DIR', value: mount.mountPath });
  }
  // The smoke test calls no API: no token at all.
  const smoke = podSpec(find(synthAll(), 'CronJob', 'smoke-test'));
  expect(smoke.serviceAccountName).toBeUndefined();
  expect(smoke.volumes.map((v: any) => v.name)).not.toContain('api-token');
});

describe('the app outside the cluster (app.outsideCluster)', () => {
  /**
   * The kudo-app values bootstrap_admin.py writes, from the rendered Job's env and ConfigMap, with
   * Synapse and the API server stood in for (the e2e runs it against both for real).
   */
  function appValues(c = config()): Record<string, string> {
    const ms = synthChart('40-bootstrap', c);
    const job = ms.find((m) => m.kind === 'Job')!;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-bootstrap-'));
    for (const [f, text] of Object.entries<string>(find(ms, 'ConfigMap', 'admin-bootstrap').data)) fs.writeFileSync(path.join(dir, f), text);
    const stub = [
      'import base64, json, sys',
      'import bootstrap_admin as b',
      'written = {}',
      'class Kube:',
      '    @staticmethod',
      '    def from_env(): return Kube()',
      '    def get_secret(self, ns, name): return None',
      '    def create_secret(self, ns, name, data, labels): written.update({k: base64.b64decode(v).decode() for k, v in data.items()})',
      'class Synapse:',
      '    def __init__(self, url): pass',
      '    def wait_healthy(self, seconds): pass',
      'b.Kube, b.Synapse = Kube, Synapse',
      "b.read_file = lambda f: 'x'",
      "b.secret_value = lambda kube, ref: 'v'",
      "b.ensure_token = lambda *a, **k: 'token'",
      'b.main()',
      'sys.stderr.write(json.dumps(written))',
    ].join('\n');
    const env = Object.fromEntries(
      container(job, 'bootstrap-admin')
        .env.filter((e: any) => e.value !== undefined)
        .map((e: any) => [e.name, e.value]),
    );
    const r = spawnSync('python3', ['-c', stub], { cwd: dir, env: { ...env, PATH: process.env.PATH!, PYTHONPATH: dir }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stderr);
  }

  test("inside the cluster (the default) the app gets Synapse's in-cluster URL for the admin API", () => {
    expect(appValues()).toMatchObject({ MATRIX_ADMIN_URL: 'http://synapse.kudo.svc:8008', MATRIX_HOMESERVER_URL: 'https://matrix.example.com' });
  });

  test('outside, it gets the public one the allow-listed Ingress serves; the Job itself still talks to Synapse inside', () => {
    const outside = config({ app: { outsideCluster: true }, ingress: { controller: 'haproxy' }, synapse: { adminApi: { expose: true, sourceRanges: ['203.0.113.10/32'] } } });
    expect(appValues(outside)).toMatchObject({ MATRIX_ADMIN_URL: 'https://matrix.example.com', MATRIX_HOMESERVER_URL: 'https://matrix.example.com' });
    const job = synthChart('40-bootstrap', outside).find((m) => m.kind === 'Job')!;
    expect(container(job, 'bootstrap-admin').env.find((e: any) => e.name === 'SYNAPSE_URL').value).toBe('http://synapse.kudo.svc:8008');
  });

  test('app.outsideCluster without the admin API exposed is refused, naming both keys', () => {
    expect(() => config({ app: { outsideCluster: true } })).toThrow(
      'app.outsideCluster: the app reaches the admin API and shared-secret registration at https://matrix.example.com/_synapse/admin, which needs synapse.adminApi.expose: true',
    );
  });
});
