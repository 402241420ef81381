import { ApiObject, Chart, Testing } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { addSyncOptions, applySyncWaves, ArgoApplicationChart, HOOK, keepState, setSyncWave, SYNC_OPTIONS, SYNC_WAVE, syncHook } from '../charts/argocd';
import { resolveConfig } from '../charts/config';
import { config, find, Manifest, PRODUCTION, synthAll, synthChart } from './util';

const wave = (m: Manifest) => m.metadata.annotations?.['argocd.argoproj.io/sync-wave'];
const hook = (m: Manifest) => m.metadata.annotations?.['argocd.argoproj.io/hook'];

test('every object has a sync wave or is a hook', () => {
  for (const m of synthAll()) expect([m.kind, m.metadata.name, wave(m) ?? hook(m)]).toEqual([m.kind, m.metadata.name, expect.any(String)]);
});

/** `Kind namespace/name` (hashed Job names without their hash) -> "wave" or "Hook@wave". */
function waveTable(ms: Manifest[]): Record<string, string> {
  return Object.fromEntries(
    ms.map((m) => {
      const name = m.kind === 'Job' ? m.metadata.name.replace(/-[0-9a-f]{8}$/, '') : m.metadata.name;
      const where = m.metadata.namespace !== undefined ? `${m.metadata.namespace}/${name}` : name;
      return [`${m.kind} ${where}`, hook(m) !== undefined ? `${hook(m)}@${wave(m)}` : String(wave(m))];
    }),
  );
}

test('the intended wave of every object: a sync that can finish on a WaitForFirstConsumer StorageClass', () => {
  // -3 namespaces; -2 RBAC, policies, issuer, ConfigMaps; -1 the secret generator (hook);
  // 0 Services, budgets and the databases; 1 Synapse's schema migration (hook: before any process of a new
  // version starts, after PostgreSQL); 2 Synapse with its media claim, the delegation server;
  // 3 the admin bootstrap (hook: the app's credentials need only Synapse); 4 media, TURN, routes,
  // certificates, backups (with the hook that binds the backup claim) and the rest.
  expect(waveTable(synthAll())).toEqual({
    'Namespace kudo': '-3',
    'Namespace kudo-media': '-3',
    'Namespace kudo-app': '-3',
    'ClusterIssuer kudo-letsencrypt': '-2',
    'ConfigMap kudo/secret-generator': '-2',
    'ServiceAccount kudo/secret-generator': '-2',
    'Role kudo/secret-generator': '-2',
    'RoleBinding kudo/secret-generator': '-2',
    'Role kudo-media/secret-generator': '-2',
    'RoleBinding kudo-media/secret-generator': '-2',
    // The nightly backup's reader of the Secrets it stores.
    'ServiceAccount kudo/backup': '-2',
    'Role kudo/backup': '-2',
    'RoleBinding kudo/backup': '-2',
    'Role kudo-media/backup': '-2',
    'RoleBinding kudo-media/backup': '-2',
    'Job kudo/generate-secrets': 'Sync@-1',
    'NetworkPolicy kudo/default-deny': '-2',
    'NetworkPolicy kudo/allow-dns': '-2',
    'NetworkPolicy kudo/postgres': '-2',
    'NetworkPolicy kudo/redis': '-2',
    'NetworkPolicy kudo/synapse': '-2',
    'NetworkPolicy kudo/synapse-migrate': '-2',
    'NetworkPolicy kudo/matrix-well-known': '-2',
    'NetworkPolicy kudo/acme-http01-solver': '-2',
    'NetworkPolicy kudo/kubernetes-api': '-2',
    'NetworkPolicy kudo/admin-bootstrap': '-2',
    'NetworkPolicy kudo/smoke-test': '-2',
    'NetworkPolicy kudo/backup': '-2',
    'ConfigMap kudo/postgres-init': '-2',
    // PostgreSQL's own CA and certificate: issued with the configuration, as the server mounts the certificate.
    'ConfigMap kudo/postgres-config': '-2',
    'Issuer kudo/postgres-selfsigned': '-2',
    'Certificate kudo/postgres-ca': '-2',
    'Issuer kudo/postgres-ca': '-2',
    'Certificate kudo/postgres-tls': '-2',
    'Service kudo/postgres': '0',
    'StatefulSet kudo/postgres': '0',
    'ConfigMap kudo/redis-config': '-2',
    'Service kudo/redis': '0',
    'StatefulSet kudo/redis': '0',
    'ConfigMap kudo/synapse-config': '-2',
    'Job kudo/synapse-migrate-v1-163-2': 'Sync@1',
    'PersistentVolumeClaim kudo/synapse-media': '2',
    'Deployment kudo/synapse': '2',
    'Service kudo/synapse': '0',
    'Ingress kudo/synapse': '4',
    'Ingress kudo/matrix-well-known': '4',
    'ConfigMap kudo/matrix-well-known': '-2',
    'Deployment kudo/matrix-well-known': '2',
    'PodDisruptionBudget kudo/matrix-well-known': '0',
    'Service kudo/matrix-well-known': '0',
    'ConfigMap kudo-media/livekit-config': '-2',
    'Deployment kudo-media/livekit': '4',
    'Service kudo-media/livekit': '0',
    'Ingress kudo-media/livekit': '4',
    'ConfigMap kudo-media/coturn-config': '-2',
    'Certificate kudo-media/coturn-tls': '4',
    'ServiceAccount kudo-media/coturn': '-2',
    'ClusterRole kudo-media-coturn-node-reader': '-2',
    'ClusterRoleBinding kudo-media-coturn-node-reader': '-2',
    'DaemonSet kudo-media/coturn': '4',
    'ServiceAccount kudo-media/livekit': '-2',
    'ClusterRole kudo-media-livekit-node-reader': '-2',
    'ClusterRoleBinding kudo-media-livekit-node-reader': '-2',
    'ConfigMap kudo/admin-bootstrap': '-2',
    'ServiceAccount kudo/admin-bootstrap': '-2',
    'Role kudo-media/admin-bootstrap': '-2',
    'RoleBinding kudo-media/admin-bootstrap': '-2',
    'Role kudo-app/admin-bootstrap': '-2',
    'RoleBinding kudo-app/admin-bootstrap': '-2',
    // create secrets, which RBAC cannot limit by name: granted for the sync only, in the wave before each Job.
    'Role kudo/secret-generator-create': 'Sync@-2',
    'RoleBinding kudo/secret-generator-create': 'Sync@-2',
    'Role kudo-media/secret-generator-create': 'Sync@-2',
    'RoleBinding kudo-media/secret-generator-create': 'Sync@-2',
    'Role kudo-app/admin-bootstrap-create': 'Sync@2',
    'RoleBinding kudo-app/admin-bootstrap-create': 'Sync@2',
    'Job kudo/bootstrap-admin': 'Sync@3',
    'ConfigMap kudo/smoke-test': '-2',
    'CronJob kudo/smoke-test': '4',
    'ConfigMap kudo/backup-scripts': '-2',
    'PersistentVolumeClaim kudo/kudo-backups': '4',
    'Job kudo/backup-volume': 'Sync@4',
    'CronJob kudo/postgres-backup': '4',
    'CronJob kudo/media-backup': '4',
    'CronJob kudo/postgres-restore': '4',
    'CronJob kudo/media-restore': '4',
  });
});

test("with workers, every Synapse process and the router come in Synapse's wave (a worker needs the main process's schema)", () => {
  const prod = synthAll(config({ ...PRODUCTION }));
  const synapse = prod.filter(
    (m) =>
      ['Deployment', 'StatefulSet'].includes(m.kind) && (m.spec.template.metadata.labels['app.kubernetes.io/component'] === 'homeserver' || m.metadata.name === 'synapse-router'),
  );
  // The main process, eleven worker types and the router.
  expect(synapse.length).toBe(13);
  for (const m of synapse) expect([m.kind, m.metadata.name, wave(m)]).toEqual([m.kind, m.metadata.name, '2']);
});

describe('every claim binds within its own wave', () => {
  // On a WaitForFirstConsumer class a claim stays Pending (Argo CD: Progressing) until a pod
  // that mounts it is scheduled; Argo CD starts no later wave, and no PostSync hook, before then.
  const claimsOf = (spec: any): string[] => (spec?.volumes ?? []).map((v: any) => v.persistentVolumeClaim?.claimName).filter(Boolean);
  const configs: [string, object][] = [
    ['default', {}],
    ['production', { ...PRODUCTION }],
    [
      'gateway-api, monitoring, Argo CD',
      {
        routing: 'gateway-api',
        gatewayApi: { gatewayClassName: 'eg' },
        monitoring: { enabled: true },
        argocd: { enabled: true, repoURL: 'https://git.example.com/infra.git' },
      },
    ],
  ];
  test.each(configs)('%s', (_, c) => {
    const all = synthAll(config(c));
    const claims = all.filter((m) => m.kind === 'PersistentVolumeClaim');
    expect(claims.length).toBeGreaterThan(0);
    for (const claim of claims) {
      // Consumers that make a pod during the sync itself: workloads and hook Jobs, not CronJobs.
      const binders = all.filter(
        (m) =>
          ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(m.kind) &&
          m.metadata.namespace === claim.metadata.namespace &&
          claimsOf(m.spec.template.spec).includes(claim.metadata.name),
      );
      expect([claim.metadata.name, binders.map((b) => wave(b))]).toEqual([claim.metadata.name, expect.arrayContaining([wave(claim)])]);
    }
  });
});

describe('Argo CD never prunes or deletes state: every claim and Namespace says Prune=false,Delete=false', () => {
  // Turning a feature off, renaming a namespace or deleting the Application must not take data with it.
  const options = (m: Manifest) => (m.metadata.annotations?.['argocd.argoproj.io/sync-options'] ?? '').split(',');
  const configs: [string, object][] = [
    ['default', {}],
    [
      'production with restic to S3',
      { profile: 'production', backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo-backups' } }, networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } },
    ],
  ];
  test.each(configs)('%s', (_, c) => {
    const state = synthAll(config(c)).filter((m) => ['PersistentVolumeClaim', 'Namespace'].includes(m.kind));
    expect(state.filter((m) => m.kind === 'PersistentVolumeClaim').map((m) => m.metadata.name)).toEqual(expect.arrayContaining(['synapse-media', 'kudo-backups']));
    expect(
      state
        .filter((m) => m.kind === 'Namespace')
        .map((m) => m.metadata.name)
        .sort(),
    ).toEqual(['kudo', 'kudo-app', 'kudo-media']);
    for (const m of state) {
      expect([m.kind, m.metadata.name, options(m)]).toEqual([m.kind, m.metadata.name, expect.arrayContaining(['Prune=false', 'Delete=false'])]);
    }
  });

  test('a CloudNativePG Cluster too: its claims go with it', () => {
    const cnpg = synthAll(config({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres' } } } }));
    expect(find(cnpg, 'Cluster', 'postgres').metadata.annotations!['argocd.argoproj.io/sync-options']).toBe('Prune=false,Delete=false');
  });

  test('sync options an object already has are kept', () => {
    const chart = Testing.chart();
    const claim = new k8s.KubePersistentVolumeClaim(chart, 'claim', {
      metadata: { name: 'c', annotations: { 'argocd.argoproj.io/sync-options': 'Replace=true,Prune=false' } },
      spec: {},
    });
    keepState(chart);
    expect(claim.toJson().metadata.annotations['argocd.argoproj.io/sync-options']).toBe('Replace=true,Prune=false,Delete=false');
  });
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

  test('argocd.applicationName names the Application (two environments in one Argo CD need two names); a name Kubernetes refuses is refused', () => {
    const named = config({ argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git', applicationName: 'kudo-staging' } });
    expect(
      synthChart('90-argocd', named)
        .filter((m) => m.kind === 'Application')
        .map((m) => [m.metadata.namespace, m.metadata.name]),
    ).toEqual([['argocd', 'kudo-staging']]);
    expect(() => resolveConfig({ argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git', applicationName: 'Kudo_Staging' } })).toThrow(
      /argocd\.applicationName: must be a lowercase DNS label/,
    );
  });

  test('off by default; a repository is required', () => {
    expect(() => synthChart('90-argocd')).toThrow('no chart');
    expect(() => resolveConfig({ argocd: { enabled: true } })).toThrow('argocd.repoURL is required');
  });
});

describe('applySyncWaves on objects made for the test', () => {
  const volumes = (...claims: string[]) => [{ name: 'config', configMap: { name: 'x' } }, ...claims.map((c) => ({ name: c, persistentVolumeClaim: { claimName: c } }))];
  const podTemplate = (...claims: string[]) => ({ spec: { containers: [{ name: 'c', image: 'i' }], volumes: volumes(...claims) } });
  const claim = (ch: Chart, ns: string, name: string) => new k8s.KubePersistentVolumeClaim(ch, `${ns}-${name}`, { metadata: { name, namespace: ns }, spec: {} });
  const synthWaves = (ch: Chart) => {
    applySyncWaves(ch);
    return Object.fromEntries(Testing.synth(ch).map((m: any) => [`${m.kind} ${m.metadata.namespace ?? ''}/${m.metadata.name}`, m.metadata.annotations?.[SYNC_WAVE]]));
  };

  test("a claim takes the lowest wave of the workloads and hook Jobs that mount it in its namespace; other kinds and namespaces do not count, and a claim's own wave stays", () => {
    const ch = new Chart(Testing.app(), 'waves');
    claim(ch, 'a', 'data');
    claim(ch, 'a', 'scratch');
    setSyncWave(claim(ch, 'a', 'pinned'), 1);
    // Deployment (wave 2) and StatefulSet (wave 0) mount data: the claim goes with the StatefulSet.
    new k8s.KubeDeployment(ch, 'web', { metadata: { name: 'web', namespace: 'a' }, spec: { selector: {}, template: podTemplate('data', 'pinned') } });
    new k8s.KubeStatefulSet(ch, 'db', { metadata: { name: 'db', namespace: 'a' }, spec: { serviceName: 'db', selector: {}, template: podTemplate('data') } });
    // Earlier waves that must not count: a claim of the same name in another namespace, and a kind that makes no pod in the sync.
    const other = new k8s.KubeDeployment(ch, 'elsewhere', { metadata: { name: 'elsewhere', namespace: 'b' }, spec: { selector: {}, template: podTemplate('data') } });
    setSyncWave(other, -3);
    const rs = new k8s.KubeReplicaSet(ch, 'rs', { metadata: { name: 'rs', namespace: 'a' }, spec: { selector: {}, template: podTemplate('data', 'scratch') } });
    setSyncWave(rs, -2);
    // A hook Job in wave 3 is the only pod mounting scratch.
    new k8s.KubeJob(ch, 'job', { metadata: { name: 'fill', namespace: 'a', annotations: syncHook(3) }, spec: { template: podTemplate('scratch') } });
    claim(ch, 'b', 'data');
    expect(synthWaves(ch)).toEqual({
      'PersistentVolumeClaim a/data': '0',
      'PersistentVolumeClaim a/scratch': '3',
      'PersistentVolumeClaim a/pinned': '1',
      'PersistentVolumeClaim b/data': '-3',
      'Deployment a/web': '2',
      'StatefulSet a/db': '0',
      'Deployment b/elsewhere': '-3',
      'ReplicaSet a/rs': '-2',
      'Job a/fill': '3',
    });
  });

  test('refused, naming the object: a Job that is not a hook with a wave, a kind with no wave, a claim no pod of the sync mounts', () => {
    const refused = (make: (ch: Chart) => void) => {
      const ch = new Chart(Testing.app(), 'refused');
      make(ch);
      return () => applySyncWaves(ch);
    };
    const job = (annotations: Record<string, string>) => (ch: Chart) => new k8s.KubeJob(ch, 'job', { metadata: { name: 'once', annotations }, spec: { template: podTemplate() } });
    expect(refused(job({}))).toThrow('Job once must be an Argo CD hook with a wave (syncHook)');
    expect(refused(job({ [HOOK]: 'Sync' }))).toThrow('Job once must be an Argo CD hook with a wave (syncHook)');
    expect(refused(job({ [SYNC_WAVE]: '3' }))).toThrow('Job once must be an Argo CD hook with a wave (syncHook)');
    expect(refused(job(syncHook(3)))).not.toThrow();
    expect(refused((ch) => new ApiObject(ch, 'w', { apiVersion: 'example.org/v1', kind: 'Widget', metadata: { name: 'w' } }))).toThrow(
      'Widget w has no sync wave: add its kind to waveOfKind or call setSyncWave',
    );
    expect(
      refused((ch) => {
        claim(ch, 'a', 'orphan');
        new k8s.KubeCronJob(ch, 'nightly', {
          metadata: { name: 'nightly', namespace: 'a' },
          spec: { schedule: '0 3 * * *', jobTemplate: { spec: { template: podTemplate('orphan') } } },
        });
      }),
    ).toThrow('PersistentVolumeClaim orphan is mounted by no pod that the sync starts (only CronJobs?): it would stay Pending and stall an Argo CD sync');
  });

  test('keepState marks claims, Namespaces, Secrets and CloudNativePG Clusters, and nothing else; sync options already there are kept', () => {
    const ch = new Chart(Testing.app(), 'state');
    const kinds = ['PersistentVolumeClaim', 'Namespace', 'Secret', 'Cluster', 'ConfigMap', 'Deployment'];
    for (const kind of kinds) new ApiObject(ch, kind, { apiVersion: 'v1', kind, metadata: { name: kind.toLowerCase() } });
    const withOptions = new ApiObject(ch, 'held', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'held' } });
    addSyncOptions(withOptions, 'ServerSideApply=true', 'Prune=false');
    keepState(ch);
    expect(Object.fromEntries(Testing.synth(ch).map((m: any) => [m.metadata.name, m.metadata.annotations?.[SYNC_OPTIONS]]))).toEqual({
      persistentvolumeclaim: 'Prune=false,Delete=false',
      namespace: 'Prune=false,Delete=false',
      secret: 'Prune=false,Delete=false',
      cluster: 'Prune=false,Delete=false',
      configmap: undefined,
      deployment: undefined,
      held: 'ServerSideApply=true,Prune=false,Delete=false',
    });
  });

  test('the Application: where it syncs from and to, and how (the whole spec)', () => {
    const c = config({ argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git', targetRevision: 'release', path: 'rendered/prod' } });
    expect(find(synthChart('90-argocd', c), 'Application', 'kudo').spec).toEqual({
      project: 'default',
      source: { repoURL: 'https://git.example.com/kudo/infra.git', targetRevision: 'release', path: 'rendered/prod' },
      destination: { server: 'https://kubernetes.default.svc', namespace: 'default' },
      syncPolicy: { automated: { prune: true, selfHeal: true }, syncOptions: ['ServerSideApply=true', 'ApplyOutOfSyncOnly=true'] },
    });
  });
});

test('the Application chart on its own: named kudo when no name is given, and pruning only when asked', () => {
  const chart = new ArgoApplicationChart(Testing.app(), 'argocd', {
    namespace: 'gitops',
    project: 'infra',
    repoURL: 'https://git.example.org/ops.git',
    targetRevision: 'main',
    path: 'rendered/staging',
    prune: false,
  });
  const [app] = Testing.synth(chart);
  expect([app.metadata.namespace, app.metadata.name, app.spec.project, app.spec.syncPolicy.automated]).toEqual(['gitops', 'kudo', 'infra', { prune: false, selfHeal: true }]);
});

test('a DaemonSet the charts did not place goes in the homeserver wave, and a claim only it mounts goes with it', () => {
  const ch = new Chart(Testing.app(), 'daemons');
  new k8s.KubeDaemonSet(ch, 'agent', {
    metadata: { name: 'agent', namespace: 'a' },
    spec: { selector: {}, template: { spec: { containers: [{ name: 'c', image: 'i' }], volumes: [{ name: 'cache', persistentVolumeClaim: { claimName: 'cache' } }] } } },
  });
  new k8s.KubePersistentVolumeClaim(ch, 'cache', { metadata: { name: 'cache', namespace: 'a' }, spec: {} });
  applySyncWaves(ch);
  expect(Testing.synth(ch).map((m: any) => [m.kind, m.metadata.annotations?.[SYNC_WAVE]])).toEqual([
    ['DaemonSet', '2'],
    ['PersistentVolumeClaim', '2'],
  ]);
});
