/**
 * Upgrades: a "previous release" (every component on an older image, Synapse
 * logging at WARNING) applied and converged on the production topology with
 * one LiveKit per node, then the current release applied over it with
 * kubectl, as a user upgrades. Every workload rolls to the new pod template
 * and converges; each rolls the way its strategy promises, watched while it
 * happens (through a watch: every change, not samples):
 *
 * - Synapse (Recreate: its media volume is ReadWriteOnce), and every other
 *   Recreate Deployment, never has an old pod still running while a new one
 *   exists;
 * - LiveKit (maxSurge 0: host ports, one per node) never has more pods than
 *   replicas, and a new pod lands on a node only once the old one there has
 *   stopped;
 * - the StatefulSets roll to their new revision;
 * - the Jobs, whose names carry a hash of their spec, run again.
 */
import { Manifest } from '../e2e/harness';
import { apply, namespacesOf, objects, readManifests, waitConverged, watchPods } from './checks';
import { Cluster, renderConfig, startCluster, TOPOLOGIES } from './cluster';
import { productionPerNode, upgradePrevious } from './configs';

const NODES = TOPOLOGIES.production;
const CURRENT = productionPerNode(NODES.length);
const PREVIOUS = upgradePrevious(NODES.length);

let c: Cluster;
let previous: Manifest[];
let current: Manifest[];
let currentDir: string;
let namespaces: string[];
let before: { jobs: string[]; stsRevisions: Record<string, string> };

const find = (ms: Manifest[], kind: string, name: string) => ms.find((m) => m.kind === kind && m.metadata.name === name)!;
const images = (m: Manifest) => m.spec.template.spec.containers.map((x: any) => x.image as string);

beforeAll(async () => {
  const previousDir = renderConfig('upgrade-previous', PREVIOUS);
  currentDir = renderConfig('upgrade-current', CURRENT);
  previous = readManifests(previousDir);
  current = readManifests(currentDir);
  namespaces = namespacesOf(current);
  c = await startCluster('production');
  apply(c, previousDir);
  await waitConverged(c, namespaces);
  before = {
    jobs: objects(c, 'jobs', namespaces).map((j) => j.metadata.name),
    stsRevisions: Object.fromEntries(objects(c, 'statefulsets', namespaces).map((s) => [s.metadata.name, s.status.currentRevision])),
  };
}, 300_000);

afterAll(async () => {
  await c?.stop();
});

test("the two releases differ in every workload's images and in Synapse's config", () => {
  for (const [kind, name] of [
    ['StatefulSet', 'postgres'],
    ['StatefulSet', 'redis'],
    ['Deployment', 'synapse'],
    ['Deployment', 'livekit'],
    ['DaemonSet', 'coturn'],
  ]) {
    expect(images(find(previous, kind, name))).not.toEqual(images(find(current, kind, name)));
  }
  expect(find(previous, 'ConfigMap', 'synapse-config').data['log.yaml']).toMatch(/\nroot:\n +level: WARNING\n/);
  expect(find(current, 'ConfigMap', 'synapse-config').data['log.yaml']).toMatch(/\nroot:\n +level: INFO\n/);
});

test('kubectl apply of the current release: every workload rolls as its strategy says and converges, and the Jobs run again', async () => {
  // Every change to the pods of the Recreate Deployments (Synapse, and with
  // workers its media and background workers) and of LiveKit while the upgrade runs.
  const selector = (m: Manifest) =>
    Object.entries<string>(m.spec.selector.matchLabels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
  const recreated = current.filter((m) => m.kind === 'Deployment' && m.spec.strategy?.type === 'Recreate');
  expect(recreated.map((m) => m.metadata.name)).toContain('synapse');
  const recreateWatches = await Promise.all(recreated.map((m) => watchPods(c, m.metadata.namespace!, selector(m))));
  const livekitWatch = await watchPods(c, 'kudo-media', selector(find(current, 'Deployment', 'livekit')));
  apply(c, currentDir);
  await waitConverged(c, namespaces, 240_000);
  const recreateStates = await Promise.all(recreateWatches.map((w) => w.stop()));
  const livekitStates = await livekitWatch.stop();

  // Every workload's pods run the current template.
  for (const m of current.filter((x) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(x.kind))) {
    const sel = Object.entries<string>(m.spec.selector.matchLabels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const live = (c.get(['pods', '-n', m.metadata.namespace!, '-l', sel]).items as any[]).filter((p) => !p.metadata.deletionTimestamp);
    const want = m.kind === 'DaemonSet' ? NODES.filter((n) => n.turn).length : (m.spec.replicas ?? 1);
    expect({ [`${m.kind}/${m.metadata.name}`]: live.map((p) => p.spec.containers.map((x: any) => x.image)) }).toEqual({
      [`${m.kind}/${m.metadata.name}`]: Array.from({ length: want }, () => images(m)),
    });
  }
  const configMap = c.get(['configmap', 'synapse-config', '-n', 'kudo']);
  expect(configMap.data).toEqual(find(current, 'ConfigMap', 'synapse-config').data);

  // Recreate (Synapse: its media volume is ReadWriteOnce): the pods that had
  // not stopped belonged to the old ReplicaSet, then to the new, never to both
  // at once. The old pod reaches a terminal phase (its containers stopped)
  // before the new one is created, which is the deployment controller's rule
  // (a stopped pod's object may linger until it is removed).
  const stopped = (p: any) => ['Succeeded', 'Failed'].includes(p.status.phase);
  const hashes = (state: Map<string, any>) => [...new Set([...state.values()].filter((p) => !stopped(p)).map((p) => p.metadata.labels['pod-template-hash']))].sort().join();
  recreated.forEach((m, i) => {
    const seen = recreateStates[i].map(hashes);
    expect({ [m.metadata.name]: seen.filter((h) => h.includes(',')) }).toEqual({ [m.metadata.name]: [] });
    // The watch saw the rollout: the old ReplicaSet's pods, then the new one's.
    expect({
      [m.metadata.name]: seen.filter(
        (h, j) =>
          h !== '' &&
          h !==
            seen
              .slice(0, j)
              .filter((x) => x !== '')
              .pop(),
      ).length,
    }).toEqual({ [m.metadata.name]: 2 });
  });

  // LiveKit: never more pods (not on their way out) than replicas: a surge
  // pod could not be placed anyway, every node has one.
  const running = livekitStates.map((state) => [...state.values()].filter((p) => !p.metadata.deletionTimestamp).length);
  expect(livekitStates.length).toBeGreaterThan(NODES.length * 3);
  expect(Math.max(...running)).toBe(NODES.length);
  // And a node is freed (the old pod stopped, its host ports released) before a new pod is placed on it.
  const shared = livekitStates.flatMap((state) => {
    const perNode = new Map<string, string[]>();
    for (const p of state.values()) {
      if (p.spec.nodeName && !stopped(p)) perNode.set(p.spec.nodeName, [...(perNode.get(p.spec.nodeName) ?? []), p.metadata.name]);
    }
    return [...perNode.entries()].filter(([, names]) => names.length > 1).map(([node, names]) => `${node}: ${names.join(', ')}`);
  });
  expect(shared).toEqual([]);
  const livekitNodes = (c.get(['pods', '-n', 'kudo-media', '-l', 'app.kubernetes.io/name=livekit']).items as any[]).map((p) => p.spec.nodeName);
  expect(new Set(livekitNodes).size).toBe(NODES.length);

  // StatefulSets: a new revision, rolled out.
  for (const s of objects(c, 'statefulsets', namespaces)) {
    expect({
      name: s.metadata.name,
      rolled: s.status.currentRevision !== before.stsRevisions[s.metadata.name],
      current: s.status.currentRevision === s.status.updateRevision,
    }).toEqual({ name: s.metadata.name, rolled: true, current: true });
  }

  // Jobs: new names (their spec changed with the images), each ran to completion.
  const jobs = current.filter((m) => m.kind === 'Job').map((m) => m.metadata.name);
  expect(jobs).toEqual(expect.arrayContaining([expect.stringMatching(/^generate-secrets-/), expect.stringMatching(/^bootstrap-admin-/)]));
  expect(jobs.filter((j) => before.jobs.includes(j))).toEqual([]);
  const live = objects(c, 'jobs', namespaces);
  expect(jobs.map((j) => `${j}: ${live.find((x) => x.metadata.name === j)?.status.succeeded ?? 0} succeeded`)).toEqual(jobs.map((j) => `${j}: 1 succeeded`));
});
