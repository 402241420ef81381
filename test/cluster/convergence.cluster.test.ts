/**
 * Convergence: the rendered manifests, applied with kubectl as a user applies
 * them, become running workloads on machines of the size each profile is
 * made for: the `small` profile (dist/) on one 2 vCPU / 4 GiB node, the
 * `production` profile on three 8 vCPU / 32 GiB nodes. Every Deployment,
 * StatefulSet and DaemonSet gets its ready replicas, every claim binds (on a
 * WaitForFirstConsumer class, so only once its pod is placed), the secret
 * generator's and the admin bootstrap's Jobs run to completion, and no pod is
 * left Pending.
 *
 * Negative control: a config asking for more CPU than a node has leaves its
 * pod Pending, and the scheduler says why (FailedScheduling, Insufficient cpu).
 */
import { Manifest } from '../e2e/harness';
import { PRODUCTION } from '../util';
import { apply, DIST, failedScheduling, namespacesOf, notConverged, objects, readManifests, unschedulablePods, waitConverged } from './checks';
import { Cluster, renderConfig, startCluster, Topology, TOPOLOGIES, waitUntil } from './cluster';

const CASES: { topology: Topology; profile: 'small' | 'production'; render: () => string }[] = [
  { topology: 'small', profile: 'small', render: () => DIST },
  { topology: 'production', profile: 'production', render: () => renderConfig('production', { ...PRODUCTION }) },
];

describe.each(CASES)('profile $profile on the $topology topology', ({ topology, profile, render }) => {
  let c: Cluster;
  let dir: string;
  let manifests: Manifest[];
  let namespaces: string[];

  beforeAll(async () => {
    dir = render();
    manifests = readManifests(dir);
    namespaces = namespacesOf(manifests);
    c = await startCluster(topology);
  }, 180_000);

  afterAll(async () => {
    await c?.stop();
  });

  test('kubectl apply -f: every workload is ready, every claim bound, every Job complete, no pod Pending', async () => {
    apply(c, dir);
    await waitConverged(c, namespaces);

    const live = objects(c, 'deployments,statefulsets,daemonsets,persistentvolumeclaims,jobs,pods', namespaces);
    const find = (kind: string, m: Manifest) => live.find((o) => o.kind === kind && o.metadata.namespace === m.metadata.namespace && o.metadata.name === m.metadata.name);

    // Each workload of the render, by name, with its ready count.
    const workloads = manifests.filter((m) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(m.kind));
    expect(workloads.length).toBeGreaterThanOrEqual(6);
    const readiness = workloads.map((m) => {
      const o = find(m.kind, m);
      const ready = m.kind === 'DaemonSet' ? o?.status.numberReady : o?.status.readyReplicas;
      const want = m.kind === 'DaemonSet' ? o?.status.desiredNumberScheduled : (m.spec.replicas ?? 1);
      return `${m.kind}/${m.metadata.name} ${ready}/${want}`;
    });
    const turnNodes = TOPOLOGIES[topology].filter((n) => n.turn).length;
    expect(readiness).toEqual(
      workloads.map((m) => {
        const want = m.kind === 'DaemonSet' ? turnNodes : (m.spec.replicas ?? 1);
        return `${m.kind}/${m.metadata.name} ${want}/${want}`;
      }),
    );

    // Every claim: the render's own and those of the StatefulSets' templates.
    const claims = [
      ...manifests.filter((m) => m.kind === 'PersistentVolumeClaim').map((m) => `${m.metadata.namespace}/${m.metadata.name}`),
      ...manifests
        .filter((m) => m.kind === 'StatefulSet')
        .flatMap((m) =>
          (m.spec.volumeClaimTemplates ?? []).flatMap((t: Manifest) =>
            Array.from({ length: m.spec.replicas ?? 1 }, (_, i) => `${m.metadata.namespace}/${t.metadata.name}-${m.metadata.name}-${i}`),
          ),
        ),
    ].sort();
    expect(claims.length).toBeGreaterThanOrEqual(3);
    const phases = live
      .filter((o) => o.kind === 'PersistentVolumeClaim')
      .map((o) => `${o.metadata.namespace}/${o.metadata.name} ${o.status.phase}`)
      .sort();
    expect(phases).toEqual(claims.map((n) => `${n} Bound`));

    // The Jobs of the render (the secret generator, the admin bootstrap, ...): each made a pod that succeeded.
    const jobs = manifests.filter((m) => m.kind === 'Job');
    expect(jobs.map((j) => j.metadata.name)).toEqual(expect.arrayContaining([expect.stringMatching(/^generate-secrets-/), expect.stringMatching(/^bootstrap-admin-/)]));
    const outcome = jobs.map((j) => {
      const pods = live.filter((p) => p.kind === 'Pod' && p.metadata.labels?.['batch.kubernetes.io/job-name'] === j.metadata.name);
      return `${j.metadata.name}: ${find('Job', j)?.status.succeeded ?? 0} succeeded, pods ${pods.map((p) => p.status.phase).join(',')}`;
    });
    expect(outcome).toEqual(jobs.map((j) => `${j.metadata.name}: 1 succeeded, pods Succeeded`));

    expect(live.filter((o) => o.kind === 'Pod' && o.status.phase === 'Pending').map((o) => o.metadata.name)).toEqual([]);
    expect(unschedulablePods(c, namespaces)).toEqual([]);
  });

  test('negative control: PostgreSQL asking for more CPU than any node has stays Pending, and the scheduler says so', async () => {
    const biggest = Math.max(...TOPOLOGIES[topology].map((n) => n.cpu));
    const greedy = renderConfig(`${profile}-greedy`, {
      ...(profile === 'production' ? PRODUCTION : { profile }),
      postgres: { resources: { requests: { cpu: String(biggest + 1) }, limits: { cpu: String(biggest + 2) } } },
    });
    apply(c, greedy);
    // The StatefulSet replaces postgres-0 with a pod that fits nowhere.
    const pod = `${namespaces.includes('kudo') ? 'kudo' : namespaces[0]}/postgres-0`;
    await waitUntil(
      'postgres-0 to be marked unschedulable',
      () => {
        const u = unschedulablePods(c, namespaces).find((p) => p.pod === pod);
        return u
          ? null
          : `not yet; pods: ${objects(c, 'pods', namespaces)
              .map((p) => `${p.metadata.name} ${p.status.phase}`)
              .join(', ')}`;
      },
      120_000,
    );

    const nodes = TOPOLOGIES[topology].length;
    expect(unschedulablePods(c, namespaces)).toEqual([{ pod, message: expect.stringMatching(new RegExp(`^0/${nodes} nodes are available: ${nodes} Insufficient cpu`)) }]);
    expect(failedScheduling(c, namespaces, 'postgres-0')).toEqual(expect.arrayContaining([{ pod, message: expect.stringContaining('Insufficient cpu') }]));
    // And the convergence check above reports it.
    expect(notConverged(c, namespaces)).toContain(`Pod ${pod}: Pending (Unschedulable: 0/${nodes} nodes are available`);
  });
});
