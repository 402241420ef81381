import { resolveConfig } from '../charts/config';
import { config, find, Manifest, synthAll, synthChart } from './util';

const wave = (m: Manifest) => m.metadata.annotations?.['argocd.argoproj.io/sync-wave'];
const hook = (m: Manifest) => m.metadata.annotations?.['argocd.argoproj.io/hook'];

test('every object has a sync wave or is a hook', () => {
  for (const m of synthAll()) expect([m.kind, m.metadata.name, wave(m) ?? hook(m)]).toEqual([m.kind, m.metadata.name, expect.any(String)]);
});

test('waves order the rollout: namespaces, RBAC and config, secrets, databases, workloads, backups', () => {
  const all = synthAll();
  const w = (kind: string, name: string) => Number(wave(find(all, kind, name)));
  expect(w('Namespace', 'kudo')).toBeLessThan(w('ServiceAccount', 'secret-generator'));
  const generator = all.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('generate-secrets'))!;
  expect(hook(generator)).toBe('Sync');
  const generatorWave = Number(wave(generator));
  expect(w('ServiceAccount', 'secret-generator')).toBeLessThan(generatorWave);
  expect(w('ConfigMap', 'secret-generator')).toBeLessThan(generatorWave);
  expect(generatorWave).toBeLessThan(w('StatefulSet', 'postgres'));
  expect(w('StatefulSet', 'postgres')).toBeLessThan(w('Deployment', 'synapse'));
  expect(w('StatefulSet', 'redis')).toBeLessThan(w('Deployment', 'livekit'));
  expect(w('Deployment', 'synapse')).toBeLessThan(w('CronJob', 'postgres-backup'));
  const bootstrap = all.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('bootstrap-admin'))!;
  expect(hook(bootstrap)).toBe('PostSync');
});

test('the recommended labels on every object and pod template', () => {
  const keys = ['name', 'instance', 'component', 'part-of', 'managed-by'].map((k) => `app.kubernetes.io/${k}`);
  const everything = synthAll(config({ argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git' }, livekit: { replicas: 2 } }));
  for (const m of everything) {
    expect([m.kind, m.metadata.name, keys.filter((k) => !m.metadata.labels?.[k])]).toEqual([m.kind, m.metadata.name, []]);
    const template = m.spec?.template ?? m.spec?.jobTemplate?.spec?.template;
    if (template) expect([m.kind, m.metadata.name, keys.filter((k) => !template.metadata.labels?.[k])]).toEqual([m.kind, m.metadata.name, []]);
    expect(m.metadata.labels!['app.kubernetes.io/part-of']).toBe('kudo');
  }
});

describe('Argo CD Application', () => {
  const c = config({ argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git', targetRevision: 'release' } });

  test('one Application syncing the rendered folder, pruning and self-healing', () => {
    const appObj = find(synthChart('90-argocd', c), 'Application', 'kudo');
    expect(appObj.metadata.namespace).toBe('argocd');
    expect(appObj.spec.source).toEqual({ repoURL: 'https://git.example.com/kudo/infra.git', targetRevision: 'release', path: 'dist' });
    expect(appObj.spec.syncPolicy.automated).toEqual({ prune: true, selfHeal: true });
    expect(appObj.spec.ignoreDifferences).toBeUndefined();
  });

  test('off by default; a repository is required', () => {
    expect(() => synthChart('90-argocd')).toThrow('no chart');
    expect(() => resolveConfig({ argocd: { enabled: true } })).toThrow('argocd.repoURL is required');
  });
});
