/**
 * Placement on the production topology (three nodes in three zones, two of
 * them labelled kudo/turn=true), with three LiveKit replicas: where the real
 * scheduler puts each pod given the node selectors, affinities, host ports
 * and volume topology the manifests carry.
 */
import { Manifest } from '../e2e/harness';
import { apply, convergedCluster, failedScheduling, objects, podsOf, unschedulablePods, waitConverged } from './checks';
import { Cluster, renderConfig, TOPOLOGIES, waitUntil } from './cluster';
import { productionPerNode } from './configs';

const NODES = TOPOLOGIES.production;
const BASE = productionPerNode(NODES.length);
const name = (app: string) => ({ 'app.kubernetes.io/name': app });

let c: Cluster;
let manifests: Manifest[];
let namespaces: string[];

beforeAll(async () => {
  ({ c, manifests, namespaces } = await convergedCluster('placement', BASE, 'production'));
}, 300_000);

afterAll(async () => {
  await c?.stop();
});

const nodesOf = (pods: any[]) => pods.map((p) => p.spec.nodeName as string).sort();

test('coturn runs on exactly the kudo/turn=true nodes, one pod each', () => {
  expect(nodesOf(podsOf(c, 'kudo-media', name('coturn')))).toEqual(
    NODES.filter((n) => n.turn)
      .map((n) => n.name)
      .sort(),
  );
});

test('LiveKit replicas run on distinct nodes', () => {
  const pods = podsOf(c, 'kudo-media', name('livekit'));
  expect(pods).toHaveLength(NODES.length);
  expect(new Set(nodesOf(pods)).size).toBe(NODES.length);
});

test("the well-known server's replicas are spread over nodes", () => {
  const nodes = nodesOf(podsOf(c, 'kudo', name('matrix-well-known')));
  expect(nodes).toHaveLength(2);
  expect(new Set(nodes).size).toBe(2);
});

test('backup Jobs made from the CronJobs run on the node of the Synapse process that holds the media volume', async () => {
  // The media volume is ReadWriteOnce: whoever mounts it (Synapse itself, or
  // its media worker when workers run) fixes the node the backups must use.
  const holders = manifests.filter(
    (m) => ['Deployment', 'StatefulSet'].includes(m.kind) && (m.spec.template.spec.volumes ?? []).some((v: any) => v.persistentVolumeClaim?.claimName === 'synapse-media'),
  );
  expect(holders.map((m) => m.metadata.name)).toEqual([expect.stringMatching(/^synapse/)]);
  const holder = podsOf(c, holders[0].metadata.namespace!, holders[0].spec.selector.matchLabels);
  expect(holder.map((p) => `${p.metadata.name} ${p.status.phase}`)).toEqual([expect.stringMatching(/ Running$/)]);
  const node = holder[0].spec.nodeName as string;
  for (const cron of ['postgres-backup', 'media-backup']) c.kubectl(['create', 'job', `${cron}-now`, `--from=cronjob/${cron}`, '-n', 'kudo']);
  await waitUntil(
    'the backup Jobs to complete',
    () => {
      const jobs = objects(c, 'jobs', ['kudo']).filter((j) => j.metadata.name.endsWith('-backup-now'));
      const pending = jobs.filter((j) => !(j.status.conditions ?? []).some((x: any) => x.type === 'Complete' && x.status === 'True'));
      return jobs.length === 2 && pending.length === 0
        ? null
        : `jobs: ${jobs.map((j) => `${j.metadata.name} ${JSON.stringify(j.status)}`).join('; ') || 'none'}` + `\nunschedulable: ${JSON.stringify(unschedulablePods(c, ['kudo']))}`;
    },
    120_000,
  );

  const pods = objects(c, 'pods', ['kudo']).filter((p) => /-backup-now-/.test(p.metadata.name));
  expect(pods.map((p) => `${p.metadata.labels['batch.kubernetes.io/job-name']} on ${p.spec.nodeName}: ${p.status.phase}`).sort()).toEqual([
    `media-backup-now on ${node}: Succeeded`,
    `postgres-backup-now on ${node}: Succeeded`,
  ]);
  // Both ReadWriteOnce claims are bound to volumes on that node.
  const pvNode = (claim: string) => {
    const pvc = c.get(['pvc', claim, '-n', 'kudo']);
    const pv = c.get(['pv', pvc.spec.volumeName]);
    return pv.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0];
  };
  expect({ media: pvNode('synapse-media'), backups: pvNode('kudo-backups') }).toEqual({ media: node, backups: node });
});

test('the restore runbook with workers: every homeserver process stops by its label, the restores and the nightly backups run meanwhile, and one apply brings every process back', async () => {
  const processes = manifests
    .filter(
      (m) => ['Deployment', 'StatefulSet'].includes(m.kind) && m.metadata.namespace === 'kudo' && m.spec.template.metadata.labels['app.kubernetes.io/component'] === 'homeserver',
    )
    .map((m) => m.metadata.name)
    .sort();
  // Synapse's main process and every worker family of the production profile: all of them hold database sessions.
  expect(processes.length).toBeGreaterThanOrEqual(10);
  expect(processes).toContain('synapse');
  // docs/operations.md, "Backups and restore", step 1, as written.
  c.kubectl(['-n', 'kudo', 'scale', 'deployment,statefulset', '-l', 'app.kubernetes.io/component=homeserver', '--replicas=0']);
  c.kubectl(['-n', 'kudo', 'wait', '--for=delete', 'pod', '-l', 'app.kubernetes.io/component=homeserver', '--timeout=2m']);
  const stillRunning = objects(c, 'pods', ['kudo']).filter((p) => p.metadata.labels?.['app.kubernetes.io/component'] === 'homeserver');
  expect(stillRunning.map((p) => p.metadata.name)).toEqual([]);
  const scaled = [...objects(c, 'deployments', ['kudo']), ...objects(c, 'statefulsets', ['kudo'])]
    .filter((w) => w.spec.replicas === 0)
    .map((w) => w.metadata.name)
    .sort();
  expect(scaled).toEqual(processes);

  // The restores, and a night's backups while Synapse is stopped (their affinity to it is only preferred).
  const jobs: Record<string, string> = {
    'restore-db': 'postgres-restore',
    'restore-media': 'media-restore',
    'backup-db-stopped': 'postgres-backup',
    'backup-media-stopped': 'media-backup',
  };
  for (const [job, cron] of Object.entries(jobs)) c.kubectl(['-n', 'kudo', 'create', 'job', job, `--from=cronjob/${cron}`]);
  await waitUntil(
    'the restore and backup Jobs to complete',
    () => {
      const states = Object.keys(jobs).map((j) => {
        const job = objects(c, 'jobs', ['kudo']).find((x) => x.metadata.name === j);
        return { j, done: (job?.status.conditions ?? []).some((x: any) => x.type === 'Complete' && x.status === 'True') };
      });
      return states.every((x) => x.done)
        ? null
        : `not complete: ${states
            .filter((x) => !x.done)
            .map((x) => x.j)
            .join(', ')}; unschedulable: ${JSON.stringify(unschedulablePods(c, ['kudo']))}`;
    },
    120_000,
  );
  // The media restore runs where the media volume is (ReadWriteOnce, node-local).
  const mediaNode = c.get(['pv', c.get(['pvc', 'synapse-media', '-n', 'kudo']).spec.volumeName]).spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0];
  const restorePod = objects(c, 'pods', ['kudo']).find((p) => p.metadata.labels?.['batch.kubernetes.io/job-name'] === 'restore-media');
  expect(restorePod?.spec.nodeName).toBe(mediaNode);

  // Step 2: one apply puts every process back.
  apply(c, renderConfig('placement', BASE));
  await waitConverged(c, namespaces);
  const back = [...objects(c, 'deployments', ['kudo']), ...objects(c, 'statefulsets', ['kudo'])].filter((w) => processes.includes(w.metadata.name));
  expect(back.filter((w) => !(w.spec.replicas > 0 && w.status.readyReplicas === w.spec.replicas)).map((w) => w.metadata.name)).toEqual([]);
});

test('more LiveKit replicas than nodes: the excess pod stays Pending and the scheduler says why', async () => {
  apply(c, renderConfig('placement-excess', { ...BASE, livekit: { replicas: NODES.length + 1 } }));
  await waitUntil(
    'a LiveKit pod to be marked unschedulable',
    () => {
      const u = unschedulablePods(c, ['kudo-media']);
      return u.length > 0
        ? null
        : `pods: ${podsOf(c, 'kudo-media', name('livekit'))
            .map((p) => `${p.metadata.name} ${p.status.phase}`)
            .join(', ')}`;
    },
    120_000,
  );

  const pods = podsOf(c, 'kudo-media', name('livekit'));
  expect(pods).toHaveLength(NODES.length + 1);
  const running = pods.filter((p) => p.status.phase === 'Running');
  expect(new Set(nodesOf(running)).size).toBe(NODES.length);
  const unschedulable = unschedulablePods(c, ['kudo-media']);
  expect(unschedulable).toHaveLength(1);
  // Every node refuses it: one LiveKit per node (anti-affinity, and the host ports it binds).
  expect(unschedulable[0].message).toMatch(
    new RegExp(`^0/${NODES.length} nodes are available: .*${NODES.length} node\\(s\\) didn't (match pod anti-affinity rules|have free ports)`),
  );
  expect(failedScheduling(c, ['kudo-media'], 'livekit-').map((e) => e.pod)).toContain(unschedulable[0].pod);
});
