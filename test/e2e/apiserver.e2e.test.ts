/**
 * The rendered manifests against a real Kubernetes API server (with etcd,
 * no kubelet): admission with strict field validation, Pod Security
 * enforcement, idempotent re-apply, upgrade without immutable-field errors,
 * and the secret generator's RBAC used for real.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { cronProblem } from '../../charts/config/k8s-names';
import { CRON_CASES } from '../cron.cases';
import { ApiServer, CRD_FILES, startApiServer } from './apiserver';
import { Manifest, Program, rendered, ROOT, tempDir } from './harness';
import { CRDS_DIR } from '../k8s-schema';

let api: ApiServer;
let dir: string;

const writeAll = (name: string, ms: Manifest[]) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, ms.map((m) => yaml.dump(m, { lineWidth: -1 })).join('---\n'));
  return file;
};
const apply = (target: string, allowFail = false) => api.kubectl(['apply', '--server-side', '--validate=strict', '--force-conflicts', '-f', target], { allowFail });

beforeAll(async () => {
  dir = tempDir('apiserver');
  api = await startApiServer({ logDir: dir });
  for (const crd of CRD_FILES) api.kubectl(['apply', '--server-side', '-f', path.join(CRDS_DIR, crd)]);
  api.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
}, 120_000);

afterAll(async () => {
  await api?.stop();
});

describe('kube-apiserver', () => {
  test('names its version', () => {
    expect(api.version).toMatch(/^v1\.36\./);
  });

  test('admits every object of dist/ with strict field validation and no warnings', () => {
    const r = apply(path.join(ROOT, 'dist'));
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(50);
  });

  test('re-applying is a no-op: kubectl diff is empty', () => {
    const r = api.kubectl(['diff', '--server-side', '--force-conflicts', '-f', path.join(ROOT, 'dist')], { allowFail: true });
    // Exit 1 is a difference (stdout shows it); above 1 an error of kubectl or of its diff program (stderr says which).
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  test('Pod Security: the enforce labels admit every pod we render, and refuse a privileged one', () => {
    const { manifests } = rendered();
    // No controllers run here, so ask admission about each pod template as a Pod (server-side dry run).
    for (const ns of ['kudo', 'kudo-media']) {
      api.kubectl(['create', 'serviceaccount', 'default', '-n', ns], { allowFail: true });
    }
    const pods = manifests
      .filter((m) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob'].includes(m.kind))
      .map((m) => {
        const template = m.kind === 'CronJob' ? m.spec.jobTemplate.spec.template : m.spec.template;
        // The StatefulSet controller adds a volume per claim template; so does this stand-in.
        const claims = (m.spec.volumeClaimTemplates ?? []).map((c: any) => ({ name: c.metadata.name, persistentVolumeClaim: { claimName: `${c.metadata.name}-0` } }));
        const spec = { ...template.spec, volumes: [...(template.spec.volumes ?? []), ...claims] };
        return { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${m.kind.toLowerCase()}-${m.metadata.name}`.slice(0, 63), namespace: m.metadata.namespace }, spec };
      });
    expect(pods.length).toBeGreaterThanOrEqual(10);
    const r = api.kubectl(['create', '--dry-run=server', '-f', writeAll('pods.yaml', pods)], { allowFail: true });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const privileged = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'privileged', namespace: 'kudo' },
      spec: { containers: [{ name: 'c', image: 'busybox:1.37', securityContext: { privileged: true } }] },
    };
    const bad = api.kubectl(['create', '--dry-run=server', '-f', writeAll('privileged.yaml', [privileged])], { allowFail: true });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/violates PodSecurity "restricted:latest"/);
    // The host-network namespace admits LiveKit's and coturn's host networking, and says so.
    const media = api.kubectl(['get', 'namespace', 'kudo-media', '-o', 'jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}']);
    expect(media.stdout).toBe('privileged');
  });

  test('upgrade from a config that touches every component: no immutable-field errors', () => {
    // A fresh namespace set, so this upgrade does not depend on the other tests.
    const names = { stack: 'up', hostNetwork: 'up-media', app: 'up-app' };
    const before = rendered({
      namespaces: names,
      postgres: { image: { tag: '17.10-bookworm' }, resources: { limits: { memory: '2Gi' } } },
      synapse: { image: { tag: 'v1.162.0' }, maxUploadSize: '50M', databasePool: { max: 20 } },
      redis: { image: { tag: '7.4.9-bookworm' } },
      livekit: { image: { tag: 'v1.13.10' }, rtc: { portRangeEnd: 50050 } },
      coturn: { image: { tag: '4.17.1' }, userQuota: 5 },
      backup: { schedule: { postgres: '0 2 * * *' } },
    }).manifests;
    const after = rendered({ namespaces: names }).manifests;
    expect(apply(writeAll('before.yaml', before)).stderr).toBe('');
    const r = apply(writeAll('after.yaml', after), true);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const sts = JSON.parse(api.kubectl(['get', 'statefulset', 'postgres', '-n', 'up', '-o', 'json']).stdout);
    expect(sts.spec.template.spec.containers[0].image).toBe(after.find((m) => m.kind === 'StatefulSet' && m.metadata.name === 'postgres')!.spec.template.spec.containers[0].image);
  });

  test('the upgrade test can fail: a changed StatefulSet selector is refused as immutable', () => {
    const { manifests } = rendered({ namespaces: { stack: 'imm', hostNetwork: 'imm-media', app: 'imm-app' } });
    const sts = manifests.filter((m) => m.kind === 'StatefulSet' || m.kind === 'Namespace');
    apply(writeAll('imm-before.yaml', sts));
    const changed = JSON.parse(JSON.stringify(sts));
    for (const m of changed.filter((x: Manifest) => x.kind === 'StatefulSet')) {
      m.spec.selector.matchLabels.extra = 'x';
      m.spec.template.metadata.labels.extra = 'x';
    }
    const r = apply(writeAll('imm-after.yaml', changed), true);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/field is immutable|Forbidden: updates to statefulset spec/);
  });
});

describe('what the config refuses, the API server refuses: CronJob schedules', () => {
  // Our validator (charts/config/k8s-names.ts) is unit-tested against this table; here the table meets the real thing.
  test.each(CRON_CASES)('schedule %j: accepted = %s', (schedule, ok) => {
    const cj = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'schedule-check', namespace: 'default' },
      spec: { schedule, jobTemplate: { spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox:1.37' }] } } } } },
    };
    const r = api.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(cj), allowFail: true });
    expect([schedule, r.code === 0, r.code === 0 ? '' : r.stderr]).toEqual([schedule, ok, ok ? '' : expect.stringMatching(/schedule/)]);
    expect(cronProblem(schedule) === undefined).toBe(ok);
  });
});

describe('the secret generator with its own ServiceAccount', () => {
  const sa = 'system:serviceaccount:kudo:secret-generator';
  const can = (verb: string, resource: string, ns: string) => api.kubectl(['auth', 'can-i', verb, resource, '-n', ns], { asUser: sa, allowFail: true }).stdout.trim();

  test('may create Secrets and read or patch its own, nothing else', () => {
    expect(can('create', 'secrets', 'kudo')).toBe('yes');
    expect(can('get', 'secrets/kudo-synapse', 'kudo')).toBe('yes');
    expect(can('patch', 'secrets/kudo-turn', 'kudo-media')).toBe('yes');
    expect(can('get', 'secrets/someone-elses', 'kudo')).toBe('no');
    expect(can('list', 'secrets', 'kudo')).toBe('no');
    expect(can('delete', 'secrets/kudo-synapse', 'kudo')).toBe('no');
    expect(can('create', 'secrets', 'kube-system')).toBe('no');
    expect(can('get', 'configmaps', 'kudo')).toBe('no');
    expect(can('get', 'secrets/kudo-app', 'kudo-app')).toBe('no');
  });

  test('runs for real with its token: creates every value once and never overwrites', async () => {
    const { manifests } = rendered();
    const scripts = path.join(dir, 'generator');
    fs.mkdirSync(scripts, { recursive: true });
    const cm = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'secret-generator')!;
    for (const [f, text] of Object.entries<string>(cm.data)) fs.writeFileSync(path.join(scripts, f), text);
    const token = api.kubectl(['create', 'token', 'secret-generator', '-n', 'kudo']).stdout.trim();
    fs.writeFileSync(path.join(scripts, 'token'), token);
    // A value that exists already (e.g. from a docker-compose .env) must survive.
    api.kubectl(['create', 'secret', 'generic', 'kudo-postgres', '-n', 'kudo', '--from-literal=password=from-compose']);
    const run = async () => {
      const p = new Program('generator', 'python3', [path.join(scripts, 'generate_secrets.py'), path.join(scripts, 'plan.json')], {
        logDir: dir,
        env: { PATH: process.env.PATH, KUBE_API_URL: api.url, KUBE_TOKEN_FILE: path.join(scripts, 'token'), KUBE_CA_FILE: api.caFile },
      });
      return { code: await p.exit(60_000), output: p.output() };
    };
    const first = await run();
    expect(first.output).toContain('all secret values present');
    expect(first.code).toBe(0);
    const value = (ns: string, name: string, key: string) =>
      Buffer.from(api.kubectl(['get', 'secret', name, '-n', ns, '-o', `jsonpath={.data.${key.replace(/\./g, '\\.')}}`]).stdout, 'base64').toString();
    expect(value('kudo', 'kudo-postgres', 'password')).toBe('from-compose');
    const turn = value('kudo', 'kudo-turn', 'shared_secret');
    expect(turn).toHaveLength(43);
    expect(value('kudo-media', 'kudo-turn', 'shared_secret')).toBe(turn);
    const key = value('kudo', 'kudo-synapse', 'signing.key');
    const second = await run();
    expect(second.code).toBe(0);
    expect(value('kudo', 'kudo-synapse', 'signing.key')).toBe(key);
    expect(value('kudo', 'kudo-turn', 'shared_secret')).toBe(turn);
  });

  test('create comes only from the sync-time Roles: once Argo CD has deleted them, it may create no Secret', () => {
    for (const ns of ['kudo', 'kudo-media']) api.kubectl(['delete', 'role,rolebinding', 'secret-generator-create', '-n', ns]);
    expect([can('create', 'secrets', 'kudo'), can('create', 'secrets', 'kudo-media')]).toEqual(['no', 'no']);
    expect(can('patch', 'secrets/kudo-turn', 'kudo-media')).toBe('yes');
  });
});
