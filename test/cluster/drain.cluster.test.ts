/**
 * Node drains, as an operator (or a cluster upgrade) runs them:
 * `kubectl drain --ignore-daemonsets --delete-emptydir-data --timeout=...`.
 *
 * Production topology: draining each node in turn completes; pods that can
 * move do, and a single-replica workload whose local volume pins it to the
 * drained node waits Pending for its node instead of holding the drain (no
 * PodDisruptionBudget makes a drain hang on a single replica). After
 * uncordon everything converges again.
 *
 * Small topology, one node: the drain is blocked exactly where a
 * PodDisruptionBudget should block it (the well-known server keeps one of its
 * two replicas) and nowhere else.
 */
import { PRODUCTION } from '../util';
import { apply, convergedCluster, DIST, namespacesOf, objects, readManifests, waitConverged } from './checks';
import { Cluster, startCluster, TOPOLOGIES, waitUntil } from './cluster';

const DRAIN = ['--ignore-daemonsets', '--delete-emptydir-data'];

/** "StatefulSet/postgres", "ReplicaSet/synapse-<hash>" shortened to the Deployment: what owns a pod, stable across replacements. */
function workloadOf(p: any): string {
  const owner = (p.metadata.ownerReferences ?? [])[0];
  if (!owner) return `Pod/${p.metadata.name}`;
  return owner.kind === 'ReplicaSet' ? `Deployment/${owner.name.replace(/-[a-z0-9]+$/, '')}` : `${owner.kind}/${owner.name}`;
}

/** Pods still on the node that a drain should have moved: not DaemonSet pods, not finished, not already going. */
function undrained(c: Cluster, namespaces: string[], node: string): string[] {
  return objects(c, 'pods', namespaces)
    .filter((p) => p.spec.nodeName === node && !p.metadata.deletionTimestamp && !['Succeeded', 'Failed'].includes(p.status.phase))
    .filter((p) => !(p.metadata.ownerReferences ?? []).some((o: any) => o.kind === 'DaemonSet'))
    .map((p) => `${p.metadata.namespace}/${p.metadata.name}`)
    .sort();
}

describe('production topology: each node in turn', () => {
  let c: Cluster;
  let namespaces: string[];

  beforeAll(async () => {
    ({ c, namespaces } = await convergedCluster('drain-production', { ...PRODUCTION }, 'production'));
  }, 300_000);

  afterAll(async () => {
    await c?.stop();
  });

  test.each(TOPOLOGIES.production.map((n) => n.name))('drain %s completes, then uncordon and converge', async (node) => {
    // The long-running pods here that a local volume ties to this node.
    const pinned = objects(c, 'pods', namespaces)
      .filter((p) => p.spec.nodeName === node && p.status.phase === 'Running' && (p.spec.volumes ?? []).some((v: any) => v.persistentVolumeClaim))
      .map((p) => workloadOf(p))
      .sort();

    try {
      const r = c.kubectl(['drain', node, ...DRAIN, '--timeout=90s'], { allowFail: true });
      if (r.code !== 0) throw new Error(`kubectl drain ${node} exited ${r.code}:\n${r.stderr}${r.stdout}`);
      expect(undrained(c, namespaces, node)).toEqual([]);

      // Their replacements wait for the node (every other node has the wrong volume), and only they.
      const waiting = () =>
        objects(c, 'pods', namespaces).filter(
          (p) =>
            !p.metadata.deletionTimestamp &&
            p.status.phase === 'Pending' &&
            (p.status.conditions ?? []).some((x: any) => x.type === 'PodScheduled' && x.reason === 'Unschedulable'),
        );
      await waitUntil(
        `the pods pinned to ${node} (${pinned.join(', ') || 'none'}) to wait for it`,
        () => {
          const w = waiting().map(workloadOf).sort();
          return JSON.stringify(w) === JSON.stringify(pinned) ? null : `unschedulable: ${JSON.stringify(w)}`;
        },
        60_000,
      );
      for (const p of waiting()) {
        const scheduled = p.status.conditions.find((x: any) => x.type === 'PodScheduled');
        expect(`${p.metadata.name}: ${scheduled.message}`).toMatch(/node\(s\) didn't match PersistentVolume's node affinity/);
      }
    } finally {
      c.kubectl(['uncordon', node]);
    }
    await waitConverged(c, namespaces);
    // Back on their node, with their data.
    const back = objects(c, 'pods', namespaces).filter((p) => p.status.phase === 'Running' && pinned.includes(workloadOf(p)));
    expect(back.map((p) => `${workloadOf(p)} on ${p.spec.nodeName}`).sort()).toEqual(pinned.map((w) => `${w} on ${node}`));
  });
});

describe('small topology: the only node', () => {
  let c: Cluster;
  let namespaces: string[];

  beforeAll(async () => {
    namespaces = namespacesOf(readManifests(DIST));
    c = await startCluster('small');
    apply(c, DIST);
    await waitConverged(c, namespaces);
  }, 300_000);

  afterAll(async () => {
    await c?.stop();
  });

  test("the drain is blocked by the well-known server's PodDisruptionBudget, and by nothing else", async () => {
    const [node] = TOPOLOGIES.small.map((n) => n.name);
    try {
      const r = c.kubectl(['drain', node, ...DRAIN, '--timeout=30s'], { allowFail: true });
      expect(r.code).not.toBe(0);
      // kubectl retries the eviction the budget refuses until its timeout.
      expect(r.stderr).toMatch(
        /error when evicting pods\/"matrix-well-known-[a-z0-9]+-[a-z0-9]+" -n "kudo" \(will retry after 5s\): Cannot evict pod as it would violate the pod's disruption budget/,
      );
      const refused = [...r.stderr.matchAll(/error when evicting pods\/"([^"]+)"/g)].map((m) => m[1]);
      expect(refused.every((p) => p.startsWith('matrix-well-known-'))).toBe(true);
      // Everything else left; one well-known replica stays, as its budget (minAvailable 1) demands.
      expect(undrained(c, namespaces, node)).toEqual([expect.stringMatching(/^kudo\/matrix-well-known-/)]);
      const pdb = c.get(['pdb', 'matrix-well-known', '-n', 'kudo']);
      expect({ allowed: pdb.status.disruptionsAllowed, healthy: pdb.status.currentHealthy }).toEqual({ allowed: 0, healthy: 1 });
    } finally {
      c.kubectl(['uncordon', node]);
    }
    await waitConverged(c, namespaces);
  });
});
