/**
 * What the cluster tests share: applying and reading manifests, the
 * convergence check, the scheduler's verdicts, watching pods, and running the
 * Argo CD sync tool.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as https from 'https';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { Manifest, ROOT, tail, tempDir } from '../e2e/harness';
import { Cluster, clusterPrograms, ClusterOptions, renderConfig, startCluster, Topology, waitUntil } from './cluster';

/** The committed render of the default config, as users apply it. */
export const DIST = path.join(ROOT, 'dist');

/** Every object in the .yaml files of a rendered folder (what `kubectl apply -f DIR` reads). */
export function readManifests(dir: string): Manifest[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .flatMap((f) => (yaml.loadAll(fs.readFileSync(path.join(dir, f), 'utf8')) as Manifest[]).filter(Boolean));
}

/** Writes manifests into a new folder (one file) and returns the folder. */
export function writeManifests(name: string, ms: Manifest[]): string {
  const dir = tempDir(name);
  fs.writeFileSync(path.join(dir, 'all.yaml'), ms.map((m) => yaml.dump(m, { lineWidth: -1 })).join('---\n'));
  return dir;
}

/** The namespaces the rendered objects live in. */
export function namespacesOf(ms: Manifest[]): string[] {
  return [...new Set(ms.filter((m) => m.kind === 'Namespace').map((m) => m.metadata.name))].sort();
}

/** `kubectl apply --server-side -f DIR`, as a user applies a render. */
export function apply(c: Cluster, dir: string): string {
  const r = c.kubectl(['apply', '--server-side', '--force-conflicts', '-f', dir], { allowFail: true });
  if (r.code !== 0) throw new Error(`kubectl apply -f ${dir} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

const ns = (o: any) => `${o.metadata.namespace}/${o.metadata.name}`;
const cond = (o: any, type: string) => (o.status?.conditions ?? []).find((x: any) => x.type === type);

/** A cluster of `topology` with the render of `config` (named `name`) applied and converged. The caller stops it. */
export async function convergedCluster(
  name: string,
  config: object,
  topology: Topology,
  opts: ClusterOptions = {},
): Promise<{ c: Cluster; dir: string; manifests: Manifest[]; namespaces: string[] }> {
  const dir = renderConfig(name, config);
  const manifests = readManifests(dir);
  const namespaces = namespacesOf(manifests);
  const c = await startCluster(topology, opts);
  try {
    apply(c, dir);
    await waitConverged(c, namespaces);
  } catch (e) {
    await c.stop();
    throw e;
  }
  return { c, dir, manifests, namespaces };
}

/** Objects of the given kinds (comma-separated, as kubectl takes them) in the namespaces. */
export function objects(c: Cluster, kinds: string, namespaces: string[]): any[] {
  return (c.get([kinds, '-A']).items as any[]).filter((o) => namespaces.includes(o.metadata.namespace));
}

/**
 * Why the workloads in `namespaces` have not converged, or null when they
 * have: every Deployment, StatefulSet and DaemonSet has its desired number of
 * ready, updated pods and no others; every claim is Bound; every Job has
 * completed; no pod is Pending (with the scheduler's reason when it said one).
 */
export function notConverged(c: Cluster, namespaces: string[]): string | null {
  const items = objects(c, 'deployments,statefulsets,daemonsets,persistentvolumeclaims,jobs,pods', namespaces);
  const problems: string[] = [];
  for (const o of items) {
    const s = o.status ?? {};
    const stale = (s.observedGeneration ?? 0) < o.metadata.generation;
    switch (o.kind) {
      case 'Deployment': {
        const want = o.spec.replicas ?? 1;
        if (stale || s.updatedReplicas !== want || s.readyReplicas !== want || s.availableReplicas !== want || s.replicas !== want) {
          problems.push(
            `Deployment ${ns(o)}: ${s.readyReplicas ?? 0}/${want} ready, ${s.updatedReplicas ?? 0} updated, ${s.replicas ?? 0} in all${stale ? ', not observed yet' : ''}`,
          );
        }
        break;
      }
      case 'StatefulSet': {
        const want = o.spec.replicas ?? 1;
        if (stale || s.readyReplicas !== want || s.updatedReplicas !== want || s.currentRevision !== s.updateRevision) {
          problems.push(`StatefulSet ${ns(o)}: ${s.readyReplicas ?? 0}/${want} ready, ${s.updatedReplicas ?? 0} updated, revision ${s.currentRevision} -> ${s.updateRevision}`);
        }
        break;
      }
      case 'DaemonSet': {
        const want = s.desiredNumberScheduled ?? 0;
        if (stale || want === 0 || s.numberReady !== want || s.updatedNumberScheduled !== want || s.numberAvailable !== want) {
          problems.push(`DaemonSet ${ns(o)}: ${s.numberReady ?? 0}/${want} ready, ${s.updatedNumberScheduled ?? 0} updated`);
        }
        break;
      }
      case 'PersistentVolumeClaim':
        if (s.phase !== 'Bound') problems.push(`PersistentVolumeClaim ${ns(o)}: ${s.phase}`);
        break;
      case 'Job':
        if (cond(o, 'Complete')?.status !== 'True') {
          problems.push(`Job ${ns(o)}: not complete (${s.succeeded ?? 0} succeeded, ${s.failed ?? 0} failed${cond(o, 'Failed') ? `, ${cond(o, 'Failed').message}` : ''})`);
        }
        break;
      case 'Pod':
        if (s.phase === 'Pending' && !o.metadata.deletionTimestamp) {
          const scheduled = cond(o, 'PodScheduled');
          problems.push(`Pod ${ns(o)}: Pending${scheduled?.status === 'False' ? ` (${scheduled.reason}: ${scheduled.message})` : ''}`);
        }
        break;
    }
  }
  return problems.length > 0 ? problems.sort().join('\n') : null;
}

/** Waits until notConverged() is null; on timeout fails with its report and the components' logs. */
export async function waitConverged(c: Cluster, namespaces: string[], timeoutMs = 180_000): Promise<void> {
  try {
    await waitUntil(`the workloads in ${namespaces.join(', ')} to converge`, () => notConverged(c, namespaces), timeoutMs);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n\nWarning events:\n${warnings(c, namespaces)}\n\n${c.logs(10)}`, { cause: e });
  }
}

/** Warning events in the namespaces, oldest first (for failure messages). */
export function warnings(c: Cluster, namespaces: string[]): string {
  return (
    objects(c, 'events', namespaces)
      .filter((e) => e.type === 'Warning')
      .map((e) => `${e.lastTimestamp ?? e.eventTime} ${e.involvedObject.kind}/${e.involvedObject.name} ${e.reason}: ${e.message}`)
      .sort()
      .slice(-30)
      .join('\n') || '(none)'
  );
}

/** Pods the scheduler has marked unschedulable, with its message. */
export function unschedulablePods(c: Cluster, namespaces: string[]): { pod: string; message: string }[] {
  return objects(c, 'pods', namespaces)
    .filter((p) => p.status.phase === 'Pending' && cond(p, 'PodScheduled')?.status === 'False' && cond(p, 'PodScheduled')?.reason === 'Unschedulable')
    .map((p) => ({ pod: ns(p), message: cond(p, 'PodScheduled').message as string }));
}

/** The scheduler's FailedScheduling events for pods whose name starts with `prefix`. */
export function failedScheduling(c: Cluster, namespaces: string[], prefix: string): { pod: string; message: string }[] {
  return objects(c, 'events', namespaces)
    .filter((e) => e.reason === 'FailedScheduling' && e.involvedObject.kind === 'Pod' && e.involvedObject.name.startsWith(prefix))
    .map((e) => ({ pod: `${e.involvedObject.namespace}/${e.involvedObject.name}`, message: e.message as string }));
}

/** Running (not terminating) pods of a workload, by its selector labels, with their nodes. */
export function podsOf(c: Cluster, namespace: string, selector: Record<string, string>): any[] {
  const sel = Object.entries(selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return (c.get(['pods', '-n', namespace, '-l', sel]).items as any[]).filter((p) => !p.metadata.deletionTimestamp);
}

/** The admin's TLS options for talking to the API server without kubectl. */
function adminTls(c: Cluster): https.RequestOptions {
  const pki = c.api.pkiDir;
  return { ca: fs.readFileSync(path.join(pki, 'ca.crt')), cert: fs.readFileSync(path.join(pki, 'admin.crt')), key: fs.readFileSync(path.join(pki, 'admin.key')) };
}

/** GET on the API server as the admin, parsed. */
export function apiGet(c: Cluster, p: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = https.get(`${c.api.url}${p}`, { ...adminTls(c), timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`GET ${p}: ${res.statusCode} ${body}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${p}: timeout`)));
    req.on('error', reject);
  });
}

/**
 * Watches the pods of a namespace that match a label selector, from now on.
 * stop() resolves with every state the set of pods went through (name ->
 * pod), the first being the state when the watch began: every change, not
 * samples, so "never two at once" can be checked exactly.
 */
export async function watchPods(c: Cluster, namespace: string, labelSelector: string): Promise<{ stop(): Promise<Map<string, any>[]> }> {
  const base = `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(labelSelector)}`;
  const list = await apiGet(c, base);
  const pods = new Map<string, any>((list.items as any[]).map((p) => [p.metadata.name, p]));
  const states = [new Map(pods)];
  let failure: Error | undefined;
  let buffer = '';
  const req = https.get(`${c.api.url}${base}&watch=1&resourceVersion=${list.metadata.resourceVersion}`, adminTls(c), (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (line.trim() === '') continue;
        const { type, object } = JSON.parse(line);
        if (type === 'ERROR') failure = new Error(`watch of ${base}: ${JSON.stringify(object)}`);
        else if (type === 'DELETED') pods.delete(object.metadata.name);
        else pods.set(object.metadata.name, object);
        states.push(new Map(pods));
      }
    });
  });
  req.on('error', (e) => (failure ??= e));
  return {
    stop: async () => {
      // Let what the server has sent be read (the event loop may have been busy with kubectl).
      await new Promise((r) => setTimeout(r, 1_000));
      req.destroy();
      if (failure) throw failure;
      return states;
    },
  };
}

/** One line of argosync's output. */
export interface SyncEvent {
  event: string;
  [key: string]: any;
}

export interface SyncRun {
  code: number | null;
  events: SyncEvent[];
  /** Its stderr (the engine's log), for failure messages. */
  log: string;
  /** The events, one per line, for failure messages. */
  stdout: string;
}

/**
 * Runs argosync (Argo CD's sync engine, test/cluster/argosync) on a folder
 * of manifests against the cluster, and waits for it to exit.
 */
export async function argoSync(
  c: Cluster,
  dir: string,
  opts: { timeoutSeconds: number; app?: string; prune?: boolean; /** Argo CD's ARGOCD_SYNC_WAVE_DELAY. @default 2 */ waveDelaySeconds?: number },
): Promise<SyncRun> {
  const out = tempDir(`argosync-${opts.app ?? 'kudo'}`);
  const stdoutFile = path.join(out, 'events.jsonl');
  const stderrFile = path.join(out, 'argosync.log');
  const [o, e] = [fs.openSync(stdoutFile, 'w'), fs.openSync(stderrFile, 'w')];
  const child = spawn(
    clusterPrograms().argosync,
    [
      `--manifests=${dir}`,
      `--kubeconfig=${c.kubeconfig}`,
      `--timeout=${opts.timeoutSeconds}s`,
      `--app=${opts.app ?? 'kudo'}`,
      ...(opts.prune ? ['--prune'] : []),
      ...(opts.waveDelaySeconds === undefined ? [] : [`--wave-delay=${opts.waveDelaySeconds}s`]),
    ],
    {
      stdio: ['ignore', o, e],
    },
  );
  fs.closeSync(o);
  fs.closeSync(e);
  // Its own --timeout ends it; this bound only catches a hung process.
  const code = await new Promise<number | null>((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), (opts.timeoutSeconds + 60) * 1000);
    child.on('exit', (status) => {
      clearTimeout(killer);
      resolve(status);
    });
  });
  const stdout = fs.readFileSync(stdoutFile, 'utf8');
  const events = stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as SyncEvent);
  return { code, events, stdout, log: tail(fs.readFileSync(stderrFile, 'utf8'), 60) };
}
