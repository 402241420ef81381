/**
 * Argo CD: the rendered folder synced by Argo CD's own engine (argosync,
 * gitops-engine's sync and health packages driven as Argo CD's controller
 * drives them), on a cluster whose controllers really make the pods, whose
 * claims bind only when a pod using them is placed, and where a stand-in
 * ingress controller and cert-manager mark Ingresses and Certificates ready.
 *
 * Argo CD applies wave by wave and starts the next wave only when every
 * object of the last one is Healthy; PostSync hooks run once everything is.
 * So the sync completes only if no wave waits on something a later wave
 * provides: a claim whose only consumer comes later stays Pending forever
 * (argo-cd#12840), as would an object waiting on a CronJob that never runs.
 *
 * The negative control renders the same manifests with the claims put back
 * in wave 0 (where the first releases had them): the sync must stall there,
 * naming the Pending claims.
 */
import { Manifest, tail } from '../e2e/harness';
import { PRODUCTION } from '../util';
import { argoSync, DIST, namespacesOf, objects, readManifests, SyncEvent, SyncRun, writeManifests } from './checks';
import { Cluster, renderConfig, startCluster, Topology } from './cluster';

const WAVE = 'argocd.argoproj.io/sync-wave';
const HOOK = 'argocd.argoproj.io/hook';
/** Generous for ~7 waves of a few seconds each and Argo CD's 2 s pause between waves. */
const SYNC_TIMEOUT_S = 300;

const wave = (m: Manifest) => Number(m.metadata.annotations?.[WAVE] ?? '0');
const hookTypes = (m: Manifest) =>
  (m.metadata.annotations?.[HOOK] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const key = (e: { [k: string]: any }) => `${e.kind} ${e.namespace ? `${e.namespace}/` : ''}${e.name}`;

/** The sync's story for a failure message: waves, hooks, the engine's messages, and every health that was not Healthy. */
function context(run: SyncRun): string {
  const lines = run.events
    .filter((e) => ['wave', 'hook', 'operation', 'timeout', 'done', 'error'].includes(e.event) || (e.event === 'health' && e.status !== 'Healthy'))
    .slice(-40)
    .map((e) => JSON.stringify(e.event === 'done' ? { ...e, results: `(${e.results.length} results)` } : e));
  const log = run.log
    .split('\n')
    .filter((l) => !/"msg"="(Tasks|Syncing)"/.test(l))
    .join('\n');
  return `argosync exited ${run.code}; its events:\n${lines.join('\n')}\n--- engine log:\n${tail(log, 15)}`;
}

/** Everything that is wrong with a sync that should have completed, or [] (each line says what and where). */
function incompleteSync(run: SyncRun, manifests: Manifest[]): string[] {
  const problems: string[] = [];
  const done = run.events.find((e) => e.event === 'done');
  if (run.code !== 0 || done?.phase !== 'Succeeded') {
    const timeout = run.events.find((e) => e.event === 'timeout');
    problems.push(
      `the sync did not succeed: ${
        done
          ? `${done.phase}: ${done.message}`
          : timeout
            ? `timed out after ${timeout.seconds} s, ${timeout.message}; not healthy: ${JSON.stringify(timeout.notHealthy)}`
            : 'no result'
      }`,
    );
    return problems;
  }

  // Every wave of the Sync phase was applied, in order; then the PostSync hooks.
  const resources = manifests.filter((m) => hookTypes(m).length === 0);
  const syncWaves = [...new Set([...resources, ...manifests.filter((m) => hookTypes(m).includes('Sync'))].map(wave))].sort((a, b) => a - b);
  const applied = run.events.filter((e) => e.event === 'wave').map((e) => `${e.phase} ${e.wave}`);
  const expected = [
    ...syncWaves.map((w) => `Sync ${w}`),
    ...[...new Set(manifests.filter((m) => hookTypes(m).includes('PostSync')).map(wave))].sort((a, b) => a - b).map((w) => `PostSync ${w}`),
  ];
  if (JSON.stringify(applied) !== JSON.stringify(expected)) problems.push(`waves applied ${JSON.stringify(applied)}, expected ${JSON.stringify(expected)}`);

  // Every object synced and, where Argo CD assesses health, Healthy. (The
  // engine files cluster-scoped objects under the Application's namespace.)
  const resultOf = (m: Manifest) =>
    (done.results as SyncEvent[]).find(
      (r) => r.syncPhase === 'Sync' && r.kind === m.kind && r.name === m.metadata.name && (m.metadata.namespace === undefined || r.namespace === m.metadata.namespace),
    );
  for (const m of resources) {
    const r = resultOf(m);
    if (r?.status !== 'Synced' || r.phase !== 'Succeeded')
      problems.push(
        `${key({ kind: m.kind, namespace: m.metadata.namespace, name: m.metadata.name })} (wave ${wave(m)}): ${r ? `${r.status}/${r.phase}: ${r.message}` : 'never synced'}`,
      );
  }
  const lastHealth = new Map<string, SyncEvent>();
  for (const e of run.events.filter((x) => x.event === 'health')) lastHealth.set(key(e), e);
  for (const [k, h] of lastHealth) if (h.status !== 'Healthy' && !h.hook) problems.push(`${k} (wave ${h.wave}) last assessed ${h.status}: ${h.message} ${h.detail ?? ''}`);

  // Every hook ran: started, then finished successfully.
  for (const m of manifests.filter((x) => hookTypes(x).length > 0)) {
    for (const type of hookTypes(m)) {
      const k = key({ kind: m.kind, namespace: m.metadata.namespace, name: m.metadata.name });
      const phases = run.events.filter((e) => e.event === 'hook' && e.hookType === type && key(e) === k).map((e) => e.phase);
      if (phases[0] !== 'Running' || phases[phases.length - 1] !== 'Succeeded') problems.push(`${type} hook ${k}: phases ${JSON.stringify(phases)}`);
    }
  }

  // Nothing ever waited on a CronJob (they are scheduled later, not run by the sync).
  for (const e of run.events.filter((x) => x.event === 'operation' && /CronJob/.test(x.message))) problems.push(`the sync waited on a CronJob: ${e.message}`);
  for (const [k, h] of lastHealth) if (h.kind === 'CronJob' && h.status !== 'Healthy') problems.push(`${k}: ${h.status}`);
  return problems;
}

describe.each<{ topology: Topology; render: () => string }>([
  { topology: 'small', render: () => DIST },
  { topology: 'production', render: () => renderConfig('argocd-production', { ...PRODUCTION }) },
])('Argo CD syncs the $topology profile on the $topology topology', ({ topology, render }) => {
  let c: Cluster;

  beforeAll(async () => {
    c = await startCluster(topology);
  }, 180_000);

  afterAll(async () => {
    await c?.stop();
  });

  test('wave by wave, every wave Healthy, every hook run, the sync Succeeded', async () => {
    const dir = render();
    const manifests = readManifests(dir);
    // The render has the hooks this test is about: the secret generator (a Sync hook in wave -1) and the admin bootstrap.
    const hooks = manifests.filter((m) => hookTypes(m).length > 0).map((m) => `${hookTypes(m).join(',')} ${m.metadata.name} wave ${wave(m)}`);
    expect(hooks).toEqual(expect.arrayContaining([expect.stringMatching(/^Sync generate-secrets-\w+ wave -1$/), expect.stringMatching(/bootstrap-admin-\w+/)]));

    const run = await argoSync(c, dir, { timeoutSeconds: SYNC_TIMEOUT_S });
    const problems = incompleteSync(run, manifests);
    if (problems.length > 0) throw new Error(`${problems.join('\n')}\n\n${context(run)}`);
  });

  if (topology !== 'small') return;

  test('negative control: with the claims back in wave 0, the sync stalls there, naming the Pending claims', async () => {
    // Own namespaces, so this sync starts from nothing like the first one did.
    const names = { stack: 'argo-neg', hostNetwork: 'argo-neg-media', app: 'argo-neg-app' };
    const manifests = readManifests(renderConfig('argocd-wave0', { namespaces: names })).map((m) => {
      if (m.kind !== 'PersistentVolumeClaim') return m;
      return { ...m, metadata: { ...m.metadata, annotations: { ...m.metadata.annotations, [WAVE]: '0' } } };
    });
    const claims = manifests
      .filter((m) => m.kind === 'PersistentVolumeClaim')
      .map((m) => m.metadata.name)
      .sort();
    expect(claims).toEqual(['kudo-backups', 'synapse-media']);
    expect(namespacesOf(manifests)).toEqual(['argo-neg', 'argo-neg-app', 'argo-neg-media']);

    const run = await argoSync(c, writeManifests('argocd-wave0', manifests), { timeoutSeconds: 45, app: 'kudo-wave0' });
    const timeout = run.events.find((e) => e.event === 'timeout');
    if (run.code !== 2 || !timeout) throw new Error(`expected a stall (exit 2 with a timeout report)\n\n${context(run)}`);
    expect(timeout.message).toMatch(/^waiting for healthy state of \/PersistentVolumeClaim\//);
    const stalled = (timeout.notHealthy as SyncEvent[]).map((w) => `${w.kind} ${w.namespace}/${w.name} wave ${w.wave}: ${w.health} (${w.detail})`).sort();
    expect(stalled).toEqual(claims.map((n) => `PersistentVolumeClaim argo-neg/${n} wave 0: Progressing (phase Pending, storageClassName "local")`));
    // Nothing after wave 0 was applied: the workloads that would consume the claims never came.
    expect(run.events.filter((e) => e.event === 'wave').map((e) => e.wave)).toEqual([-3, -2, -1, 0]);
  });

  test('a later sync with prune, after backup.enabled is turned off, deletes the backup jobs but keeps the backup claim and its volume', async () => {
    // The first test synced DIST (backups on) as the Application "kudo"; this render drops every backup object.
    const dir = renderConfig('argocd-no-backup', { backup: { enabled: false } });
    const manifests = readManifests(dir);
    expect(manifests.filter((m) => m.metadata.name === 'kudo-backups')).toEqual([]);
    const claimBefore = objects(c, 'persistentvolumeclaims', ['kudo']).find((p) => p.metadata.name === 'kudo-backups');
    expect(claimBefore?.status.phase).toBe('Bound');

    const run = await argoSync(c, dir, { timeoutSeconds: SYNC_TIMEOUT_S, prune: true });
    // A re-sync: the engine's own verdict (the wave-by-wave checks above are for a first sync).
    const done = run.events.find((e) => e.event === 'done');
    if (run.code !== 0 || done?.phase !== 'Succeeded') throw new Error(`the sync did not succeed\n\n${context(run)}`);
    const results = done.results as SyncEvent[];
    const result = (kind: string, name: string) => results.filter((r) => r.kind === kind && r.name === name).map((r) => `${r.status}: ${r.message}`);
    // Prune is on: what the render dropped is deleted (the control)...
    expect(result('CronJob', 'postgres-backup')).toEqual([expect.stringMatching(/^Pruned: /)]);
    expect(objects(c, 'cronjobs', ['kudo']).map((j) => j.metadata.name)).toEqual(['smoke-test']);
    // ...but the claim says Prune=false, and the engine leaves it (its own words).
    expect(result('PersistentVolumeClaim', 'kudo-backups')).toEqual(['PruneSkipped: ignored (no prune)']);
    const claimAfter = objects(c, 'persistentvolumeclaims', ['kudo']).find((p) => p.metadata.name === 'kudo-backups');
    expect({ uid: claimAfter?.metadata.uid, phase: claimAfter?.status.phase, deleting: claimAfter?.metadata.deletionTimestamp !== undefined }).toEqual({
      uid: claimBefore.metadata.uid,
      phase: 'Bound',
      deleting: false,
    });
    const volume = (c.get(['persistentvolumes']).items as any[]).find((v) => v.metadata.name === claimBefore.spec.volumeName);
    expect(volume?.status.phase).toBe('Bound');
  });
});
