/**
 * Config transitions on a running stack, on the production topology: small
 * defaults, then off-site backups, then monitoring, then profile production,
 * then statefulset -> cloudnative-pg by its runbook (docs/scaling.md). The chain runs
 * twice, each on a cluster of its own: under plain kubectl with the prune
 * command of docs/operations.md, and under Argo CD's sync engine with prune on. After each
 * step it checks from the cluster's objects what the step must achieve: every
 * rendered object there and every workload ready, what the render dropped
 * gone, the generated Secrets and the claims (with their volumes) untouched,
 * and the secret generator run again exactly when its plan changed.
 *
 * Nothing runs in a kwok pod, so the generator's container never runs by
 * itself: a stand-in (runGenerators) runs the Job's own script, from the
 * ConfigMap the pod mounts, with a token of the pod's ServiceAccount, once for
 * every generator pod the Job controller makes, as the container would. A
 * finished Job that keeps its name makes no pod, so the stand-in runs nothing
 * for it, as a real cluster would.
 *
 * Not covered here: CloudNativePG's operator does not run (its Cluster is
 * admitted with its CRD, never Ready, and argosync has no health check for it
 * where Argo CD waits for it); the dump and restore Jobs of the runbook
 * "complete" without running (test:e2e runs their scripts against a real
 * PostgreSQL); nothing in a pod reads a Secret, so a restart after a changed
 * Secret is docs/operations.md's command, not tested here.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Manifest, Program, ROOT, sleep, tempDir } from '../e2e/harness';
import { apiGet, argoSync, namespacesOf, objects, readManifests, SyncRun, waitConverged, writeManifests } from './checks';
import { Cluster, renderConfig, startCluster, waitUntil } from './cluster';
import { TRANSITIONS } from './configs';

const CONFIGS = TRANSITIONS;
type Step = keyof typeof CONFIGS;

/** The PRUNE line of docs/operations.md ("Pruning with plain kubectl"), as the shell expands it: the flags of `kubectl apply -f dist/ $PRUNE`. */
const PRUNE_LINE = /^ *(PRUNE=.*)$/m.exec(fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8'))?.[1];
const PRUNE =
  PRUNE_LINE === undefined
    ? []
    : execFileSync('bash', ['-c', `${PRUNE_LINE}\nprintf '%s\\n' $PRUNE`], { encoding: 'utf8' })
        .trim()
        .split('\n');
/** What kubectl prunes without an allow-list: its own default kinds, claims and Namespaces among them. */
const DEFAULT_PRUNE = ['--prune', '-l', 'app.kubernetes.io/part-of=kudo'];
const HOOK = 'argocd.argoproj.io/hook';
const STACK = 'kudo';
/** The Jobs the cloudnative-pg runbook makes from the CronJobs: never applied, so not kubectl's to prune. */
const runbookJobs = (k: string) => ['Job kudo/dump-now', 'Job kudo/restore-db'].includes(k);

const renders = new Map<Step, string>();
const render = (step: Step) => {
  if (!renders.has(step)) renders.set(step, renderConfig(`transition-${step}`, CONFIGS[step]));
  return renders.get(step)!;
};
const manifests = (step: Step) => readManifests(render(step));
const id = (kind: string, ns: string | undefined, name: string) => `${kind} ${ns ? `${ns}/` : ''}${name}`;

/** kubectl's name for a kind (kind.group), for `kubectl get`. */
const resource = (m: { apiVersion: string; kind: string }) => {
  const group = m.apiVersion.includes('/') ? m.apiVersion.split('/')[0] : '';
  return group ? `${m.kind.toLowerCase()}.${group}` : m.kind.toLowerCase();
};

/** Every kind any step renders. */
let kinds: string[] | undefined;
const allKinds = () => (kinds ??= [...new Set((Object.keys(CONFIGS) as Step[]).flatMap((s) => manifests(s).map(resource)))].sort());

/** The objects labelled part of the stack that the cluster holds, of every kind any step renders. */
function live(c: Cluster): Set<string> {
  const items = c.get([allKinds().join(','), '-A', '-l', 'app.kubernetes.io/part-of=kudo']).items as any[];
  // Objects a controller made (a CronJob's Jobs, on its schedule) are not the render's: only those without an owner.
  return new Set(items.filter((o) => !o.metadata.deletionTimestamp && !o.metadata.ownerReferences?.length).map((o) => id(o.kind, o.metadata.namespace, o.metadata.name)));
}

/** What the render has that the cluster lacks, and what the cluster still has that the render dropped. */
function compare(c: Cluster, ms: Manifest[], skip: (key: string) => boolean = () => false) {
  const want = new Set(ms.map((m) => id(m.kind, m.metadata.namespace, m.metadata.name)));
  const have = live(c);
  return {
    missing: [...want].filter((k) => !have.has(k) && !skip(k)).sort(),
    // A StatefulSet's claims are not rendered (its volumeClaimTemplates make them) and stay by design: claims() checks them.
    leftover: [...have].filter((k) => !want.has(k) && !skip(k) && !k.startsWith('PersistentVolumeClaim ')).sort(),
  };
}

/** The keys of a Secret, with their values. */
function secretData(c: Cluster, ns: string, name: string): Record<string, string> {
  return c.get(['secret', name, '-n', ns]).data ?? {};
}

/** The claims of the namespaces: name -> uid, phase and volume. */
function claims(c: Cluster, namespaces: string[]): Record<string, string> {
  return Object.fromEntries(
    objects(c, 'persistentvolumeclaims', namespaces).map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, `${p.metadata.uid} ${p.status.phase} ${p.spec.volumeName}`]),
  );
}

interface GeneratorRun {
  job: string;
  code: number | null;
  output: string;
}

/**
 * The secret generator's container, for each pod of a generate-secrets Job:
 * its script and plan from the ConfigMap the pod mounts, a token of the pod's
 * ServiceAccount, the API server as the pod would reach it.
 */
function runGenerators(c: Cluster, ns: string) {
  const runs = new Map<string, Promise<GeneratorRun>>();
  let stopped = false;
  const run = async (pod: any): Promise<GeneratorRun> => {
    const job = pod.metadata.labels['job-name'] as string;
    const dir = tempDir(`generator-${pod.metadata.name}`);
    const configMap = (pod.spec.volumes as any[]).find((v) => v.configMap)!.configMap.name;
    const cm = await apiGet(c, `/api/v1/namespaces/${ns}/configmaps/${configMap}`);
    for (const [f, text] of Object.entries<string>(cm.data)) fs.writeFileSync(path.join(dir, f), text);
    const token = c.kubectl(['create', 'token', pod.spec.serviceAccountName, '-n', ns]).stdout.trim();
    fs.writeFileSync(path.join(dir, 'token'), token);
    const p = new Program('generator', 'python3', [path.join(dir, 'generate_secrets.py'), path.join(dir, 'plan.json')], {
      logDir: dir,
      env: { PATH: process.env.PATH, KUBE_API_URL: c.api.url, KUBE_TOKEN_FILE: path.join(dir, 'token'), KUBE_CA_FILE: c.api.caFile },
    });
    return { job, code: await p.exit(60_000), output: p.output() };
  };
  const poll = async () => {
    while (!stopped) {
      try {
        const pods = await apiGet(c, `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent('app.kubernetes.io/name=secret-generator')}`);
        for (const pod of pods.items as any[]) {
          if (pod.spec.nodeName && !runs.has(pod.metadata.uid)) runs.set(pod.metadata.uid, run(pod));
        }
      } catch {
        // the API server is busy; the next poll sees the pod
      }
      await sleep(300);
    }
  };
  const loop = poll();
  return {
    /** Every run so far, once each generator pod in the cluster has had its run. */
    async settled(): Promise<GeneratorRun[]> {
      const pods = () => (c.get(['pods', '-n', ns, '-l', 'app.kubernetes.io/name=secret-generator']).items as any[]).filter((p) => p.spec.nodeName);
      await waitUntil('a run for every generator pod', () => (pods().every((p) => runs.has(p.metadata.uid)) ? null : 'pods without a run'), 30_000, 300);
      return Promise.all(runs.values());
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** What the first step of a chain leaves: kudo-synapse's values and the claims. */
interface FirstStep {
  synapse: Record<string, string>;
  claims: Record<string, string>;
}

/** A chain's bookkeeping between its steps, over the state its describe block holds. */
function bookkeeping(state: () => { c: Cluster; gen: ReturnType<typeof runGenerators>; namespaces: string[]; first: FirstStep }) {
  let runsBefore = 0;
  return {
    /** The generator runs since the last call. */
    newRuns: async (): Promise<GeneratorRun[]> => {
      const all = await state().gen.settled();
      const fresh = all.slice(runsBefore);
      runsBefore = all.length;
      return fresh;
    },
    /** The generated Secrets and the claims are the ones the first step made; old values unchanged. */
    expectDataKept: (): void => {
      const { c, namespaces, first } = state();
      const now = secretData(c, STACK, 'kudo-synapse');
      expect(Object.fromEntries(Object.keys(first.synapse).map((k) => [k, now[k]]))).toEqual(first.synapse);
      const claimsNow = claims(c, namespaces);
      expect(Object.fromEntries(Object.keys(first.claims).map((k) => [k, claimsNow[k]]))).toEqual(first.claims);
    },
  };
}

test("docs/operations.md's prune command is the one this file runs: the label and an allow-list of kinds that hold no data", () => {
  expect(fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8')).toContain('kubectl apply -f dist/ $PRUNE');
  expect(PRUNE.slice(0, 3)).toEqual(DEFAULT_PRUNE);
  const kinds = PRUNE.slice(3).map((f) => f.replace(/^--prune-allowlist=/, ''));
  expect(kinds.length).toBeGreaterThan(10);
  expect(kinds.filter((k) => /\/(PersistentVolumeClaim|PersistentVolume|Namespace|Secret|Cluster)$/.test(k))).toEqual([]);
});

describe('under plain kubectl apply with the prune command of docs/operations.md', () => {
  let c: Cluster;
  let gen: ReturnType<typeof runGenerators>;
  let namespaces: string[];
  let first: FirstStep;

  const podsOf = (cl: Cluster, selector: string) =>
    (cl.get(['pods', '-n', STACK, '-l', selector]).items as any[]).filter((p) => !p.metadata.deletionTimestamp).map((p) => p.metadata.name as string);
  const applyStep = (dir: string) => {
    const r = c.kubectl(['apply', '-f', dir, ...PRUNE], { allowFail: true });
    if (r.code !== 0) throw new Error(`kubectl apply -f ${dir} --prune failed (${r.code}):\n${r.stderr}`);
    return r.stdout;
  };
  const { newRuns, expectDataKept } = bookkeeping(() => ({ c, gen, namespaces, first }));

  beforeAll(async () => {
    c = await startCluster('production');
    gen = runGenerators(c, STACK);
  }, 120_000);

  afterAll(async () => {
    await gen?.stop();
    await c?.stop();
  });

  test('small defaults: converged, the generator ran once, no replication secret', async () => {
    const ms = manifests('small');
    namespaces = namespacesOf(ms);
    applyStep(render('small'));
    await waitConverged(c, namespaces);
    const runs = await newRuns();
    expect(runs.map((r) => [r.code, r.output.includes('all secret values present')])).toEqual([[0, true]]);
    expect(compare(c, ms)).toEqual({ missing: [], leftover: [] });
    const synapse = secretData(c, STACK, 'kudo-synapse');
    expect(Object.keys(synapse)).not.toContain('worker_replication_secret');
    first = { synapse, claims: claims(c, namespaces) };
    expect(Object.values(first.claims).every((v) => v.includes(' Bound '))).toBe(true);
  });

  test('off-site backups on: the backup CronJobs and their NetworkPolicy carry the S3 repository; nothing else runs again', async () => {
    const ms = manifests('offsite');
    applyStep(render('offsite'));
    await waitConverged(c, namespaces);
    const env = (name: string) => c.get(['cronjob', name, '-n', STACK]).spec.jobTemplate.spec.template.spec.containers.flatMap((x: any) => x.env ?? []);
    for (const name of ['postgres-backup', 'media-backup']) expect(env(name)).toContainEqual({ name: 'OFFSITE_REPOSITORY', value: 's3:https://s3.example.com/kudo-backups/kudo' });
    const egress = c.get(['networkpolicy', 'backup', '-n', STACK]).spec.egress as any[];
    expect(egress.some((e) => (e.ports ?? []).some((p: any) => p.port === 443) && (e.to ?? []).some((t: any) => t.ipBlock?.cidr === '0.0.0.0/0'))).toBe(true);
    // The plan is the same (the S3 keys are the operator's): the same Job, no new run.
    expect(await newRuns()).toEqual([]);
    expect(compare(c, ms)).toEqual({ missing: [], leftover: [] });
    expectDataKept();
  });

  test('monitoring on: ServiceMonitors, rules and dashboards admitted, the exporters rolled out', async () => {
    const ms = manifests('monitoring');
    applyStep(render('monitoring'));
    await waitConverged(c, namespaces);
    expect(objects(c, 'servicemonitors.monitoring.coreos.com', namespaces).length).toBe(ms.filter((m) => m.kind === 'ServiceMonitor').length);
    expect(objects(c, 'prometheusrules.monitoring.coreos.com', namespaces).length).toBe(ms.filter((m) => m.kind === 'PrometheusRule').length);
    const postgres = (c.get(['pods', '-n', STACK, '-l', 'app.kubernetes.io/name=postgres']).items as any[]).filter((p) => !p.metadata.deletionTimestamp);
    expect(postgres.map((p) => p.spec.containers.map((x: any) => x.name))).toEqual([expect.arrayContaining(['postgres', 'exporter'])]);
    expect(await newRuns()).toEqual([]);
    expect(compare(c, ms)).toEqual({ missing: [], leftover: [] });
    expectDataKept();
  });

  test("profile production without the small install's sizes: refused by the API server (StatefulSet claim template, claims that cannot grow)", () => {
    const r = c.kubectl(['apply', '--dry-run=server', '-f', render('productionUnpinned')], { allowFail: true });
    expect(r.code).toBe(1);
    const refusals = r.stderr
      .split('\n')
      .map(
        (l) => /(StatefulSet\.apps "\w+" is invalid: spec: Forbidden|persistentvolumeclaims "[\w-]+" is forbidden: only dynamically provisioned pvc can be resized)/.exec(l)?.[1],
      )
      .filter(Boolean)
      .map((s) => s!.replace(/ is (invalid|forbidden).*/, ''))
      .sort();
    expect(refusals).toEqual(['StatefulSet.apps "postgres"', 'persistentvolumeclaims "kudo-backups"', 'persistentvolumeclaims "synapse-media"']);
  });

  test('negative control: production with the generator Job under its old name runs no generator, and kudo-synapse lacks the replication secret', async () => {
    const ms = manifests('production');
    const job = ms.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('generate-secrets-'))!;
    const old = objects(c, 'jobs', [STACK]).find((j) => j.metadata.name.startsWith('generate-secrets-'));
    expect(job.metadata.name).not.toBe(old.metadata.name);
    // The bug's premise: the plan (in the ConfigMap) changed, the pod template did not; a changed template
    // under an existing Job's name would be refused (immutable), so the apply below succeeding shows it.
    const renamed = ms.map((m) => (m === job ? { ...m, metadata: { ...m.metadata, name: old.metadata.name } } : m));
    applyStep(writeManifests('transition-production-old-job', renamed));
    await waitConverged(c, namespaces, 240_000);
    expect(await newRuns()).toEqual([]);
    expect(Object.keys(secretData(c, STACK, 'kudo-synapse'))).not.toContain('worker_replication_secret');
  });

  test('profile production (sizes kept): the generator runs again and adds the replication secret; every worker ready; old Jobs pruned; Secrets and claims kept', async () => {
    const ms = manifests('production');
    applyStep(render('production'));
    await waitConverged(c, namespaces, 240_000);
    const runs = await newRuns();
    const job = ms.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('generate-secrets-'))!.metadata.name;
    expect(runs.map((r) => `${r.job} ${r.code}`)).toEqual([`${job} 0`]);
    expect(Object.keys(secretData(c, STACK, 'kudo-synapse'))).toContain('worker_replication_secret');
    // Every worker type's workload exists (and waitConverged saw them ready); the Jobs of the earlier render are gone.
    const workloads = ms.filter((m) => ['Deployment', 'StatefulSet'].includes(m.kind) && m.metadata.name.startsWith('synapse-')).map((m) => m.metadata.name);
    expect(workloads.length).toBeGreaterThan(10);
    expect(compare(c, ms)).toEqual({ missing: [], leftover: [] });
    expectDataKept();
  });

  test('statefulset -> cloudnative-pg by the runbook: Synapse stays stopped until the restore, the Cluster is admitted, the StatefulSet pruned, its claim kept', async () => {
    const ms = manifests('cnpg');
    const dir = render('cnpg');
    const homeserver = 'app.kubernetes.io/component=homeserver';
    const sh = (args: string[]) => c.kubectl(args);
    // 1. A fresh dump; Synapse's workloads to 0.
    sh(['-n', STACK, 'create', 'job', 'dump-now', '--from=cronjob/postgres-backup']);
    sh(['-n', STACK, 'wait', '--for=condition=complete', 'job/dump-now', '--timeout=60s']);
    sh(['-n', STACK, 'scale', 'deployment,statefulset', '-l', homeserver, '--replicas=0']);
    sh(['-n', STACK, 'wait', '--for=delete', 'pod', '-l', homeserver, '--timeout=120s']);
    // 2. Only the database, its NetworkPolicies and the backup Jobs (docs/scaling.md: these files start no Synapse process).
    const files = ['06-network-policies', '10-postgres', '50-backup'];
    sh(['apply', ...files.flatMap((f) => ['-f', path.join(dir, `${f}.k8s.yaml`)])]);
    const cluster = c.get(['cluster.postgresql.cnpg.io', 'postgres', '-n', STACK]);
    expect(cluster.spec.instances).toBe(3);
    await sleep(3_000);
    expect(podsOf(c, homeserver)).toEqual([]);
    // The whole render would start them: its homeserver workloads ask for replicas.
    expect(ms.filter((m) => m.metadata.labels?.['app.kubernetes.io/component'] === 'homeserver' && (m.spec?.replicas ?? 1) > 0).length).toBeGreaterThan(0);
    // 3. The restore (no operator here, so the Cluster never becomes Ready: nothing to wait for).
    sh(['-n', STACK, 'create', 'job', 'restore-db', '--from=cronjob/postgres-restore']);
    sh(['-n', STACK, 'wait', '--for=condition=complete', 'job/restore-db', '--timeout=60s']);
    // 4. Everything, with prune.
    applyStep(dir);
    await waitConverged(c, namespaces, 240_000);
    expect((await newRuns()).map((r) => r.code)).toEqual([0]);
    const pg = objects(c, 'statefulsets,services,configmaps', [STACK]).filter((o) => o.metadata.name.startsWith('postgres'));
    expect(pg.map((o) => `${o.kind} ${o.metadata.name}`).sort()).toEqual([]);
    const kept = claims(c, [STACK])['kudo/data-postgres-0'];
    expect(kept).toBe(first.claims['kudo/data-postgres-0']);
    expectDataKept();
    // The allow-list has cert-manager's kinds but no monitoring kind (its CRDs are optional): the runbook's line deletes it.
    const { leftover } = compare(c, ms, runbookJobs);
    expect(leftover).toEqual(['ServiceMonitor kudo/postgres']);
    sh(['-n', STACK, 'delete', 'servicemonitor', 'postgres']);
    expect(compare(c, ms, runbookJobs)).toEqual({ missing: [], leftover: [] });
  });

  test("backups off: their CronJobs and NetworkPolicy are pruned, their claim and its volume kept (kubectl's default kinds would delete it)", async () => {
    const ms = manifests('noBackups');
    const dir = render('noBackups');
    expect(ms.some((m) => m.metadata.name === 'kudo-backups')).toBe(false);
    // The control: without the allow-list, kubectl would delete the claim (a server-side dry run changes nothing).
    const control = c.kubectl(['apply', '-f', dir, ...DEFAULT_PRUNE, '--dry-run=server']).stdout;
    expect(control).toMatch(/^persistentvolumeclaim\/kudo-backups pruned/m);
    // Why the list has no optional CRD's kinds: kubectl refuses the whole apply for a kind the cluster lacks.
    const lacking = c.kubectl(['apply', '-f', dir, ...PRUNE, '--prune-allowlist=example.org/v1/Nothing', '--dry-run=server'], { allowFail: true });
    expect(lacking.code).not.toBe(0);
    expect(lacking.stderr).toMatch(/example\.org\/v1\/Nothing|Nothing/);
    applyStep(dir);
    await waitConverged(c, namespaces, 240_000);
    expect(objects(c, 'cronjobs', [STACK]).filter((j) => /backup|restore/.test(j.metadata.name))).toEqual([]);
    expect(objects(c, 'networkpolicies', [STACK]).map((n) => n.metadata.name)).not.toContain('backup');
    // With monitoring on, the backups' alerts are a kind the list leaves alone: docs/operations.md's line deletes them.
    expect(compare(c, ms, runbookJobs)).toEqual({ missing: [], leftover: ['PrometheusRule kudo/backup'] });
    c.kubectl(['-n', STACK, 'delete', 'prometheusrule', 'backup']);
    expect(compare(c, ms, runbookJobs)).toEqual({ missing: [], leftover: [] });
    expect(claims(c, [STACK])['kudo/kudo-backups']).toBe(first.claims['kudo/kudo-backups']);
  });
});

describe("under Argo CD's sync engine with prune", () => {
  let c: Cluster;
  let gen: ReturnType<typeof runGenerators>;
  let namespaces: string[];
  let first: FirstStep;
  // Argo CD tracks no hook: the generator's create Roles go when the sync ends, old hook Jobs stay until their TTL.
  const hooks = (step: Step) =>
    new Set(
      manifests(step)
        .filter((m) => m.metadata.annotations?.[HOOK])
        .map((m) => id(m.kind, m.metadata.namespace, m.metadata.name)),
    );
  const notTracked = (step: Step) => (k: string) => hooks(step).has(k) || k.startsWith('Job ');

  const sync = async (step: Step, timeoutSeconds = 180): Promise<SyncRun> => {
    // Argo CD's ARGOCD_SYNC_WAVE_DELAY at 0.5 s instead of 2 s: ten syncs of about eight waves would spend
    // 2.5 minutes pausing (argocd.cluster.test.ts syncs with the default).
    const run = await argoSync(c, render(step), { timeoutSeconds, prune: true, waveDelaySeconds: 0.5 });
    return run;
  };
  const succeeded = (run: SyncRun) => {
    const done = run.events.find((e) => e.event === 'done');
    if (run.code !== 0 || done?.phase !== 'Succeeded') throw new Error(`the sync did not succeed (${run.code}): ${JSON.stringify(done ?? run.events.slice(-5))}\n${run.log}`);
    return done.results as any[];
  };
  const { newRuns, expectDataKept } = bookkeeping(() => ({ c, gen, namespaces, first }));

  beforeAll(async () => {
    c = await startCluster('production');
    gen = runGenerators(c, STACK);
  }, 120_000);

  afterAll(async () => {
    await gen?.stop();
    await c?.stop();
  });

  test.each<Step>(['small', 'offsite', 'monitoring', 'production'])(
    '%s: the sync succeeds, the generator runs in it, nothing dropped stays, Secrets and claims kept',
    async (step) => {
      const ms = manifests(step);
      namespaces ??= namespacesOf(ms);
      succeeded(await sync(step));
      await waitConverged(c, namespaces);
      // A Sync hook with BeforeHookCreation: every sync runs the generator again, with the plan of the render.
      expect((await newRuns()).map((r) => r.code)).toEqual([0]);
      expect(compare(c, ms, notTracked(step))).toEqual({ missing: [], leftover: [] });
      const synapse = secretData(c, STACK, 'kudo-synapse');
      expect('worker_replication_secret' in synapse).toBe(step === 'production');
      if (step === 'small') first = { synapse, claims: claims(c, namespaces) };
      expectDataKept();
    },
  );

  test('cloudnative-pg: the sync prunes the StatefulSet and its TLS objects, keeps its claim, admits the Cluster', async () => {
    const ms = manifests('cnpg');
    const results = succeeded(await sync('cnpg'));
    await waitConverged(c, namespaces);
    expect((await newRuns()).map((r) => r.code)).toEqual([0]);
    const pruned = results.filter((r) => r.status === 'Pruned').map((r) => `${r.kind} ${r.name}`);
    expect(pruned).toEqual(expect.arrayContaining(['StatefulSet postgres', 'Issuer postgres-ca', 'Certificate postgres-tls', 'ServiceMonitor postgres']));
    expect(c.get(['cluster.postgresql.cnpg.io', 'postgres', '-n', STACK]).spec.instances).toBe(3);
    expect(compare(c, ms, notTracked('cnpg'))).toEqual({ missing: [], leftover: [] });
    expect(claims(c, [STACK])['kudo/data-postgres-0']).toBe(first.claims['kudo/data-postgres-0']);
    expectDataKept();
  });
});
