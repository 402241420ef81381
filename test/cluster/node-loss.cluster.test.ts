/**
 * A node lost, as docs/operations.md, "When a node fails", describes it: the
 * production render on the production topology, one node's "kubelet" falls
 * silent, and we watch what Kubernetes' own controllers do about it.
 *
 * How a node is lost here. kwok renews each fake node's Lease in
 * kube-node-lease as a kubelet does, and stops only when it no longer holds
 * the Lease. Removing the node's kwok annotation does not stop it (kwok 0.8
 * filters the update event out and keeps renewing: only a deleted node
 * releases its Lease), so the test takes the Lease over for another holder
 * with an hour's duration, once: kwok then stops renewing it. kwok 0.8 is
 * meant to leave alone the node and pods of a Lease it does not hold, but its
 * pod controller only does so when kwok happened to start its Node Stages
 * before its Pod Stages (it starts them in Go's random map order, and the pod
 * controller copies the not-yet-set check): otherwise it keeps acting as the
 * lost node's kubelet and finishes its evicted pods, which would let a
 * StatefulSet replace its pod by itself. So the test also marks the node and
 * its pods with an annotation kwok is told to disregard
 * (--disregard-status-with-annotation-selector): no Lease renewals, no status
 * heartbeats, nothing done to its pods, which is what a powered-off machine
 * looks like to the control plane.
 *
 * Shortened timings (real clusters use the defaults, which docs/operations.md quotes):
 * the controller-manager's --node-monitor-grace-period is 20 s here (default
 * 50 s) and the API server's default tolerations for not-ready/unreachable
 * are 5 s (default 300 s), so a lost node's pods are evicted about 25 s after
 * it falls silent instead of about 6 minutes.
 */
import { PRODUCTION } from '../util';
import { apply, namespacesOf, objects, readManifests, waitConverged } from './checks';
import { Cluster, renderConfig, startCluster, TOPOLOGIES, waitUntil } from './cluster';

const GRACE_SECONDS = 20;
const TOLERATION_SECONDS = 5;
/** The worker types production runs more than once (spread by preferred anti-affinity). */
const MULTI_REPLICA_WORKERS = ['Deployment/synapse-client-reader', 'Deployment/synapse-synchrotron', 'StatefulSet/synapse-event-persister'];
/** Who holds a lost node's Lease: not kwok, so it stops acting as the node's kubelet. */
const DEAD_HOLDER = 'node-loss-test';
/** On a lost node and its pods: kwok disregards them (see the top of this file). */
const STOPPED = 'kudo.test/kubelet-stopped';

/** "StatefulSet/postgres", "ReplicaSet/synapse-<hash>" shortened to the Deployment: what owns a pod, stable across replacements. */
function workloadOf(p: any): string {
  const owner = (p.metadata.ownerReferences ?? [])[0];
  if (!owner) return `Pod/${p.metadata.name}`;
  return owner.kind === 'ReplicaSet' ? `Deployment/${owner.name.replace(/-[a-z0-9]+$/, '')}` : `${owner.kind}/${owner.name}`;
}

const ready = (p: any) => (p.status.conditions ?? []).some((x: any) => x.type === 'Ready' && x.status === 'True');
const hasClaim = (p: any) => (p.spec.volumes ?? []).some((v: any) => v.persistentVolumeClaim);
const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** The long-running pods on a node, DaemonSets' aside (they tolerate a lost node and stay). */
function podsOn(c: Cluster, namespaces: string[], node: string): any[] {
  return objects(c, 'pods', namespaces).filter(
    (p) =>
      p.spec.nodeName === node &&
      p.status.phase === 'Running' &&
      !p.metadata.deletionTimestamp &&
      !(p.metadata.ownerReferences ?? []).some((o: any) => o.kind === 'DaemonSet' || o.kind === 'Job'),
  );
}

describe('production topology: a node lost', () => {
  let c: Cluster;
  let namespaces: string[];
  const timings: string[] = [];

  beforeAll(async () => {
    const dir = renderConfig('node-loss-production', { ...PRODUCTION });
    namespaces = namespacesOf(readManifests(dir));
    c = await startCluster('production', {
      apiServerArgs: [`--default-not-ready-toleration-seconds=${TOLERATION_SECONDS}`, `--default-unreachable-toleration-seconds=${TOLERATION_SECONDS}`],
      controllerManagerArgs: [`--node-monitor-grace-period=${GRACE_SECONDS}s`],
      kwokArgs: [`--disregard-status-with-annotation-selector=${STOPPED}=true`],
    });
    apply(c, dir);
    await waitConverged(c, namespaces);
  }, 300_000);

  afterAll(async () => {
    if (timings.length > 0) console.log(`node loss (grace ${GRACE_SECONDS} s, tolerations ${TOLERATION_SECONDS} s):\n${timings.join('\n')}`);
    await c?.stop();
  });

  /** The node each workload's running pods are on. */
  const placement = () => {
    const m = new Map<string, string[]>();
    for (const p of objects(c, 'pods', namespaces).filter((x) => x.status.phase === 'Running' && !x.metadata.deletionTimestamp)) {
      m.set(workloadOf(p), [...(m.get(workloadOf(p)) ?? []), p.spec.nodeName]);
    }
    return m;
  };

  /**
   * Silences `node`, waits for what recovers by itself, checks what does not,
   * runs the operator's command (`kubectl delete node`, or force-deleting the
   * StatefulSet pods), checks what follows, then brings the node back and
   * waits for convergence. Returns the workloads that were on the node.
   */
  async function loseNode(node: string, operator: 'delete node' | 'force delete'): Promise<string[]> {
    const before = podsOn(c, namespaces, node);
    const byKind = (kind: string, claim: boolean) => [...new Set(before.filter((p) => workloadOf(p).startsWith(`${kind}/`) && hasClaim(p) === claim).map(workloadOf))].sort();
    const movable = byKind('Deployment', false);
    const deploymentsWithClaims = byKind('Deployment', true);
    const statefulPods = before.filter((p) => workloadOf(p).startsWith('StatefulSet/'));
    const savedNode = c.get(['node', node]);
    const replicas = new Map<string, number>(
      objects(c, 'deployments,statefulsets', namespaces).map((o) => [`${o.kind}/${o.metadata.name}`, o.spec.replicas ?? 1] as [string, number]),
    );

    // The kubelet stops: its Lease is held by someone who never renews it.
    const takenAt = Date.now();
    const renewTime = new Date(takenAt).toISOString().replace('Z', '000Z');
    // When the node fell silent: the takeover, or a status heartbeat kwok had already queued (up to 50 s later).
    let silentAt = takenAt;
    c.kubectl([
      '-n',
      'kube-node-lease',
      'patch',
      'lease',
      node,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { holderIdentity: DEAD_HOLDER, leaseDurationSeconds: 3600, renewTime } }),
    ]);

    c.kubectl(['annotate', 'node', node, `${STOPPED}=true`]);
    c.kubectl(['annotate', 'pods', '-A', '--field-selector', `spec.nodeName=${node}`, `${STOPPED}=true`]);

    let notReadyAt = 0;
    let evictedAt = 0;
    const replacedAt = new Map<string, number>();
    const gaps: string[] = [];
    await waitUntil(
      `the Deployments on ${node} (${movable.join(', ')}) to be replaced elsewhere`,
      () => {
        const now = Date.now();
        const n = c.get(['node', node]);
        const readyCondition = (n.status.conditions ?? []).find((x: any) => x.type === 'Ready');
        if (!notReadyAt && readyCondition?.status !== 'True') {
          notReadyAt = now;
          silentAt = Math.max(takenAt, Date.parse(readyCondition?.lastHeartbeatTime ?? '') || takenAt);
        }
        const pods = objects(c, 'pods', namespaces);
        if (!evictedAt && pods.some((p) => p.spec.nodeName === node && p.metadata.deletionTimestamp)) evictedAt = now;
        // Ready somewhere else: a pod on the silent node may still say Ready, but nothing runs there.
        const readyElsewhere = (w: string) => pods.filter((p) => workloadOf(p) === w && p.spec.nodeName !== node && !p.metadata.deletionTimestamp && ready(p)).length;
        for (const w of MULTI_REPLICA_WORKERS) if (readyElsewhere(w) === 0) gaps.push(`${w} had no ready replica ${seconds(now - takenAt)} s after ${node}'s Lease was taken`);
        for (const w of movable) if (!replacedAt.has(w) && readyElsewhere(w) === replicas.get(w)) replacedAt.set(w, now);
        const left = movable.filter((w) => !replacedAt.has(w));
        return left.length === 0 ? null : `not yet: ${left.join(', ')}; node NotReady: ${notReadyAt > 0}, evicted: ${evictedAt > 0}`;
      },
      150_000,
    );
    expect(notReadyAt).toBeGreaterThan(0);
    timings.push(
      `${node} silent (last heartbeat ${seconds(silentAt - takenAt)} s after the Lease was taken) -> NotReady ${seconds(notReadyAt - silentAt)} s, -> first eviction ${seconds(evictedAt - silentAt)} s; ` +
        `replaced and Ready: ${movable.map((w) => `${w} ${seconds(replacedAt.get(w)! - silentAt)} s`).join(', ')}`,
    );

    // What does not recover by itself: the StatefulSet pods stay Terminating on the
    // node, and nothing replaces them; a Deployment pod's local volume holds its replacement.
    const check = () => {
      const pods = objects(c, 'pods', namespaces);
      for (const s of statefulPods) {
        const same = pods.filter((p) => p.metadata.name === s.metadata.name && p.metadata.namespace === s.metadata.namespace);
        expect(same.map((p) => ({ uid: p.metadata.uid, node: p.spec.nodeName, terminating: !!p.metadata.deletionTimestamp }))).toEqual([
          { uid: s.metadata.uid, node, terminating: true },
        ]);
      }
      for (const w of deploymentsWithClaims) {
        const fresh = pods.filter((p) => workloadOf(p) === w && !p.metadata.deletionTimestamp);
        expect(fresh.map((p) => ({ phase: p.status.phase, ready: ready(p) }))).toEqual([{ phase: 'Pending', ready: false }]);
      }
    };
    await waitUntil(`the pods on ${node} to be evicted`, () => (podsOn(c, namespaces, node).length === 0 ? null : 'not yet'), 60_000);
    for (let i = 0; i < 10; i++) {
      check();
      await new Promise((r) => setTimeout(r, 1_000));
    }

    // The operator's command from docs/operations.md, "When a node fails".
    const operatorAt = Date.now();
    if (operator === 'delete node') {
      c.kubectl(['delete', 'node', node]);
    } else {
      for (const s of statefulPods) c.kubectl(['-n', s.metadata.namespace, 'delete', 'pod', s.metadata.name, '--force', '--grace-period=0']);
    }
    const recreatedAt = new Map<string, number>();
    const stranded = (p: any) =>
      p.status.phase === 'Pending' && (p.status.conditions ?? []).some((x: any) => x.type === 'PodScheduled' && x.status === 'False' && x.reason === 'Unschedulable');
    await waitUntil(
      `the StatefulSet pods from ${node} to be recreated`,
      () => {
        const pods = objects(c, 'pods', namespaces);
        const left: string[] = [];
        for (const s of statefulPods) {
          const now = pods.find((p) => p.metadata.name === s.metadata.name && p.metadata.namespace === s.metadata.namespace);
          const done = now && now.metadata.uid !== s.metadata.uid && (hasClaim(s) ? stranded(now) : ready(now));
          if (done && !recreatedAt.has(s.metadata.name)) recreatedAt.set(s.metadata.name, Date.now());
          if (!done) left.push(`${s.metadata.name}: ${now ? `${now.status.phase} on ${now.spec.nodeName ?? '-'}` : 'gone'}`);
        }
        return left.length === 0 ? null : left.join(', ');
      },
      150_000,
    );
    const pods = objects(c, 'pods', namespaces);
    const outcome = statefulPods
      .map((s) => {
        const p = pods.find((x) => x.metadata.name === s.metadata.name && x.metadata.namespace === s.metadata.namespace);
        const scheduled = (p.status.conditions ?? []).find((x: any) => x.type === 'PodScheduled');
        return {
          pod: s.metadata.name,
          claim: hasClaim(s),
          phase: p.status.phase,
          onLostNode: p.spec.nodeName === node,
          ready: ready(p),
          why: p.status.phase === 'Pending' ? scheduled?.message : undefined,
        };
      })
      .sort((a, b) => a.pod.localeCompare(b.pod));
    // Without a volume: running on another node. With a local volume: Pending, since the data is on the lost node.
    for (const o of outcome) {
      if (o.claim) {
        expect(o).toEqual({
          pod: o.pod,
          claim: true,
          phase: 'Pending',
          onLostNode: false,
          ready: false,
          why: expect.stringMatching(/didn't match PersistentVolume's node affinity/),
        });
      } else {
        expect(o).toEqual({ pod: o.pod, claim: false, phase: 'Running', onLostNode: false, ready: true, why: undefined });
      }
    }
    timings.push(
      `${node} after \`${operator === 'delete node' ? 'kubectl delete node' : 'kubectl delete pod --force --grace-period=0'}\`: ` +
        outcome
          .map((o) => `${o.pod} ${o.claim ? 'Pending (local volume on the lost node)' : 'Ready elsewhere'} after ${seconds(recreatedAt.get(o.pod)! - operatorAt)} s`)
          .join(', '),
    );
    expect(gaps).toEqual([]);

    // The machine comes back: its kubelet registers the node again (or renews its Lease), and the pods waiting for its volumes start there.
    const backAt = Date.now();
    if (operator === 'delete node') {
      c.kubectl(['-n', 'kube-node-lease', 'delete', 'lease', node, '--ignore-not-found']);
      const { metadata, spec, status } = savedNode;
      const fresh = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: metadata.name, labels: metadata.labels, annotations: metadata.annotations },
        spec: { podCIDR: spec.podCIDR, podCIDRs: spec.podCIDRs },
        status: { capacity: status.capacity, allocatable: status.allocatable, addresses: status.addresses, nodeInfo: status.nodeInfo },
      };
      c.kubectl(['create', '-f', '-'], { input: JSON.stringify(fresh) });
    } else {
      c.kubectl(['annotate', 'pods', '-A', '--field-selector', `spec.nodeName=${node}`, `${STOPPED}-`]);
      c.kubectl(['annotate', 'node', node, `${STOPPED}-`]);
      c.kubectl(['-n', 'kube-node-lease', 'delete', 'lease', node]);
    }
    await waitConverged(c, namespaces);
    const back = objects(c, 'pods', namespaces).filter((p) => p.status.phase === 'Running' && statefulPods.some((s) => hasClaim(s) && s.metadata.name === p.metadata.name));
    expect(back.map((p) => `${p.metadata.name} on ${p.spec.nodeName}`)).toEqual(statefulPods.filter(hasClaim).map((s) => `${s.metadata.name} on ${node}`));
    timings.push(`${node} back: converged after ${seconds(Date.now() - backAt)} s`);
    return before.map(workloadOf);
  }

  test('Deployments move by themselves; StatefulSets wait for the operator; a local volume waits for its node', async () => {
    // The node to lose: one with a LiveKit pod and a replica of a multi-replica worker,
    // preferably PostgreSQL's (else Redis's); PostgreSQL's node next if it was not that one.
    const where = placement();
    const on = (w: string) => where.get(w) ?? [];
    const nodes = TOPOLOGIES.production.map((n) => n.name);
    const candidates = nodes.filter(
      (n) => on('Deployment/livekit').includes(n) && ['Deployment/synapse-client-reader', 'Deployment/synapse-synchrotron'].some((w) => on(w).includes(n)),
    );
    expect(candidates.length).toBeGreaterThan(0);
    const first = candidates.find((n) => on('StatefulSet/postgres').includes(n)) ?? candidates.find((n) => on('StatefulSet/redis').includes(n)) ?? candidates[0];
    const lost = await loseNode(first, 'delete node');
    expect(lost).toEqual(expect.arrayContaining(['Deployment/livekit']));
    if (!lost.includes('StatefulSet/postgres')) {
      const second = on('StatefulSet/postgres')[0];
      const lost2 = await loseNode(second, 'force delete');
      expect(lost2).toContain('StatefulSet/postgres');
    }
  }, 600_000);
});
