/**
 * Synapse's processes as the rendered workloads start them: the main
 * Deployment and every worker Deployment or StatefulSet, each with the shared
 * homeserver.yaml, its own worker file and the worker-name file its init step
 * writes, and the router (HAProxy) with its rendered haproxy.cfg in front.
 *
 * Loopback rewrites (LOOPBACK_REWRITES): every process gets its own free ports
 * for its HTTP, metrics and replication listeners; the instance map, the
 * router's servers and Redis's address point at them on 127.0.0.1.
 *
 * A process's HTTP listeners are of two kinds: `http` (the main process's
 * 8008, for callers inside the cluster: the connection's address counts) and
 * `proxied` (8009, x_forwarded: X-Forwarded-For names the client).
 */
import { execFileSync } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import type { KudoConfig } from '../../charts/config';
import { WORKER_TYPES, WorkerTypeName } from '../../charts/synapse-workers';
import { configMapFile, container, find, freePort, Manifest, podSpec, Program, programs, rewritePaths, secretVolumeFiles, tcpOpen, tempDir, writeSecretFiles } from './harness';
import { ImageSandbox, shareWithPod } from './image';
import { pointDatabaseArgs, RunningPostgres } from './postgres';

const LOOPBACK = '127.0.0.1';

type ListenerKind = 'http' | 'proxied' | 'metrics' | 'replication';

/** A rendered listener's kind. */
function listenerKind(l: any): ListenerKind {
  if (l.type === 'metrics') return 'metrics';
  if (l.resources?.[0]?.names?.[0] === 'replication') return 'replication';
  return l.x_forwarded ? 'proxied' : 'http';
}

/** Each listener of a rendered list on its kind's loopback port; `rendered` gets each kind's rendered port. */
function bindListeners(listeners: any[], ports: Record<ListenerKind, number>, rendered: Partial<Record<ListenerKind, number>>): void {
  const seen = new Set<ListenerKind>();
  for (const l of listeners) {
    const kind = listenerKind(l);
    if (seen.has(kind)) throw new Error(`two ${kind} listeners in ${JSON.stringify(listeners)}`);
    seen.add(kind);
    rendered[kind] = l.port;
    l.port = ports[kind];
    if (l.bind_addresses) l.bind_addresses = [LOOPBACK];
  }
}

export interface SynapseProcess {
  /** main, or the worker's name as the shared config knows it. */
  readonly name: string;
  readonly type: 'main' | WorkerTypeName;
  /** Loopback ports by listener kind; `http` is the main process's only (a worker listens for the router alone). */
  readonly ports: { readonly http: number; readonly proxied: number; readonly metrics: number; readonly replication: number };
  /** The rendered port of each listener kind the process has. */
  readonly rendered: Partial<Record<ListenerKind, number>>;
  readonly program: Program;
}

export interface RunningSynapseProcesses {
  readonly processes: readonly SynapseProcess[];
  /** The media store every media-serving process shares. */
  readonly mediaDir: string;
  stop(): Promise<void>;
}

interface PlannedProcess {
  readonly name: string;
  readonly type: 'main' | WorkerTypeName;
  readonly workload: Manifest;
  /** WORKER_NAME as the kubelet would set it: the Deployment's or StatefulSet's pod name, or the literal. */
  readonly podName: string;
  readonly ports: Record<ListenerKind, number>;
  readonly rendered: Partial<Record<ListenerKind, number>>;
}

/** The pod name Kubernetes would give a Deployment's or StatefulSet's first pod. */
function podNameOf(workload: Manifest): string {
  return workload.kind === 'StatefulSet' ? `${workload.metadata.name}-0` : `${workload.metadata.name}-7d9c8b6f5-${randomBytes(3).toString('hex').slice(0, 5)}`;
}

/** The name a worker goes by: the init step's WORKER_NAME (a literal, or the pod's name). */
function workerNameOf(workload: Manifest, podName: string): string {
  const init = podSpec(workload).initContainers.find((c: any) => c.name === 'pgpass');
  const env = (init.env ?? []).find((e: any) => e.name === 'WORKER_NAME');
  if (env === undefined) throw new Error(`${workload.metadata.name}: its init step sets no WORKER_NAME`);
  return env.value ?? podName;
}

/** The workloads of the rendered Synapse processes, main first. */
function plan(ms: Manifest[]): Omit<PlannedProcess, 'ports' | 'rendered'>[] {
  const main = find(ms, 'Deployment', 'synapse');
  const out: Omit<PlannedProcess, 'ports' | 'rendered'>[] = [{ name: 'main', type: 'main', workload: main, podName: podNameOf(main) }];
  for (const type of Object.keys(WORKER_TYPES) as WorkerTypeName[]) {
    const workload = ms.find((m) => (m.kind === 'Deployment' || m.kind === 'StatefulSet') && m.metadata.name === `synapse-${type}`);
    if (workload === undefined) continue;
    for (let i = 0; i < workload.spec.replicas; i++) {
      const podName = workload.kind === 'StatefulSet' ? `${workload.metadata.name}-${i}` : podNameOf(workload);
      out.push({ name: workerNameOf(workload, podName), type, workload, podName });
    }
  }
  return out;
}

/** The shared homeserver.yaml with the loopback rewrites, each marked with its LOOPBACK_REWRITES kind. */
function sharedHomeserver(ms: Manifest[], processes: PlannedProcess[], d: { config: string; secrets: string; media: string }, pg: RunningPostgres, redisPort: number): any {
  const hs = yaml.load(configMapFile(ms, 'synapse-config', 'homeserver.yaml')) as any;
  const main = processes[0];
  // hosts + ports + paths: PostgreSQL in its pod network (by its rendered name, for TLS), Redis on loopback.
  pointDatabaseArgs(hs.database.args, pg);
  hs.redis.host = LOOPBACK;
  hs.redis.port = redisPort;
  // ports + bind: the main process's listeners, each by its kind.
  bindListeners(hs.listeners, main.ports, main.rendered);
  // hosts + ports: the instance map names Services; here every process is on loopback with its own port.
  for (const [name, entry] of Object.entries<any>(hs.instance_map)) {
    const p = processes.find((x) => x.name === name);
    if (p === undefined) throw new Error(`instance_map names ${name}, which no rendered workload runs`);
    entry.host = LOOPBACK;
    entry.port = p.ports.replication;
  }
  // paths.
  hs.log_config = path.join(d.config, 'log.yaml');
  hs.media_store_path = d.media;
  for (const key of Object.keys(hs).filter((k) => k.endsWith('_path') && typeof hs[k] === 'string' && hs[k].startsWith('/secrets/'))) {
    hs[key] = path.join(d.secrets, path.basename(hs[key]));
  }
  if (typeof hs.redis.password_path === 'string') hs.redis.password_path = path.join(d.secrets, path.basename(hs.redis.password_path));
  return hs;
}

/** A worker's own file with its listeners on its ports (ports + bind) and its log config (paths). */
function workerFile(ms: Manifest[], p: PlannedProcess, configDir: string): any {
  const w = yaml.load(configMapFile(ms, 'synapse-config', `worker-${p.type}.yaml`)) as any;
  bindListeners(w.worker_listeners, p.ports, p.rendered);
  w.worker_log_config = path.join(configDir, 'log.yaml');
  return w;
}

/**
 * Starts every rendered Synapse process against `pg` and Redis on `redisPort`:
 * the main process first (it creates the schema), then the workers, each
 * waited for on its /health.
 */
export async function startSynapseProcesses(
  ms: Manifest[],
  config: KudoConfig,
  secrets: Record<string, string>,
  pg: RunningPostgres,
  redisPort: number,
): Promise<RunningSynapseProcesses> {
  const root = tempDir('synapse-workers');
  const mediaDir = path.join(root, 'media');
  fs.mkdirSync(mediaDir);
  const planned: PlannedProcess[] = [];
  for (const p of plan(ms)) {
    planned.push({ ...p, ports: { http: await freePort(), proxied: await freePort(), metrics: await freePort(), replication: await freePort() }, rendered: {} });
  }

  const started: SynapseProcess[] = [];
  const launch = (p: PlannedProcess): SynapseProcess => {
    const dir = path.join(root, p.podName);
    const d = { config: path.join(dir, 'config'), secrets: path.join(dir, 'secrets'), db: path.join(dir, 'db'), run: path.join(dir, 'run'), media: mediaDir };
    for (const x of [d.config, d.run]) fs.mkdirSync(x, { recursive: true });
    // paths: the Secret volumes as the pod sees them.
    writeSecretFiles(d.secrets, secretVolumeFiles(p.workload, 'secrets', config, secrets));
    writeSecretFiles(d.db, secretVolumeFiles(p.workload, 'db-password', config, secrets));
    // The ConfigMap as mounted, with the rewrites.
    for (const [file, text] of Object.entries<string>(find(ms, 'ConfigMap', 'synapse-config').data)) fs.writeFileSync(path.join(d.config, file), text);
    fs.writeFileSync(path.join(d.config, 'homeserver.yaml'), yaml.dump(sharedHomeserver(ms, planned, d, pg, redisPort)));
    if (p.type !== 'main') fs.writeFileSync(path.join(d.config, `worker-${p.type}.yaml`), yaml.dump(workerFile(ms, p, d.config)));

    const pathMap = { '/db': d.db, '/run/synapse': d.run, '/config': d.config };
    // The init step as rendered: libpq's password file, and a worker's name.
    const init = container(p.workload, 'pgpass');
    const [initCmd, ...initArgs] = (init.command as string[]).map((a) => rewritePaths(a, pathMap));
    execFileSync(initCmd, initArgs, {
      env: { PATH: process.env.PATH, WORKER_NAME: p.podName, ...Object.fromEntries((init.env ?? []).filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value])) },
    });

    const main = container(p.workload, 'synapse');
    const [, ...args] = main.command as string[];
    const env = Object.fromEntries(main.env.map((e: any) => [e.name, rewritePaths(e.value, pathMap)]));
    const program = new Program(
      p.podName,
      programs().synapsePython,
      args.map((a) => rewritePaths(a, pathMap)),
      {
        logDir: root,
        env: { PATH: process.env.PATH, ...env },
      },
    );
    const running = { name: p.name, type: p.type, ports: p.ports, rendered: p.rendered, program };
    started.push(running);
    return running;
  };
  // Every process has the proxied listener (the router's), and /health on it.
  const healthy = (p: SynapseProcess) => p.program.waitFor('/health', async () => (await fetch(`http://${LOOPBACK}:${p.ports.proxied}/health`)).status === 200, 180_000);
  const stop = async () => {
    await Promise.all(started.map((p) => p.program.stop()));
  };
  try {
    await healthy(launch(planned[0]));
    const workers = planned.slice(1).map(launch);
    await Promise.all(workers.map(healthy));
    // A worker with a replication listener serves it too (the others reach it there).
    await Promise.all(
      workers.filter((w) => WORKER_TYPES[w.type as WorkerTypeName].replication).map((w) => w.program.waitFor('the replication port', () => tcpOpen(w.ports.replication), 30_000)),
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { processes: started, mediaDir, stop };
}

export interface RouterLogEntry {
  backend: string;
  server: string;
  status: number;
  method: string;
  uri: string;
}

export interface RunningRouter {
  /** The bind for callers inside the cluster (the rendered 8008). */
  readonly port: number;
  /** The public proxy's bind (the rendered 8009). */
  readonly proxiedPort: number;
  readonly statusPort: number;
  readonly program: Program;
  /** Requests the router logged: backend, server, status, method and URI, in the order they finished. */
  requests(): RouterLogEntry[];
  /** The logged requests (those `filter` keeps) once there are at least `count`: a line is written just after its response. */
  logged(count: number, filter?: (r: RouterLogEntry) => boolean): Promise<RouterLogEntry[]>;
  stop(): Promise<void>;
}

/**
 * The router as its Deployment starts it, on `cfg` (the rendered haproxy.cfg,
 * or a variant): listeners on loopback, the Services' names replaced by the
 * processes' loopback addresses.
 */
export async function startRouter(ms: Manifest[], cfg: string, processes: readonly SynapseProcess[], name = 'synapse-router'): Promise<RunningRouter> {
  const dir = tempDir(name);
  const deploy = find(ms, 'Deployment', 'synapse-router');
  const c = container(deploy, 'haproxy');
  // ports: each container port (http, proxied, status) on a free loopback port.
  const loopback = new Map<number, number>();
  for (const p of c.ports) loopback.set(p.containerPort, await freePort());
  const named = (n: string) => loopback.get(c.ports.find((p: any) => p.name === n).containerPort)!;
  const [port, proxiedPort, statusPort] = [named('http'), named('proxied'), named('status')];
  const main = processes.find((p) => p.type === 'main')!;
  // hosts + ports: a process's listener by the rendered port the router names.
  const listener = (p: SynapseProcess, renderedPort: number) => {
    const kind = (Object.keys(p.rendered) as (keyof SynapseProcess['ports'])[]).find((k) => p.rendered[k] === renderedPort);
    if (kind === undefined) throw new Error(`the router sends to port ${renderedPort}, where ${p.name} does not listen`);
    return p.ports[kind];
  };
  const lines = cfg.split('\n').flatMap((line) => {
    // ports + bind: the bind's options (its name) stay.
    const bind = /^ {2}bind :(\d+)(.*)$/.exec(line);
    if (bind) {
      if (!loopback.has(Number(bind[1]))) throw new Error(`the router binds ${bind[1]}, which its container does not declare`);
      return [`  bind ${LOOPBACK}:${loopback.get(Number(bind[1]))}${bind[2]}`];
    }
    // hosts: the main process's Service.
    const server = /^ {2}server main \S+:(\d+)$/.exec(line);
    if (server) return [`  server main ${LOOPBACK}:${listener(main, Number(server[1]))}`];
    // hosts: a headless Service's addresses become one server per process of that type.
    const template = /^ {2}server-template (\S+) \d+ synapse-([a-z-]+)\.\S+:(\d+)$/.exec(line);
    if (template) {
      const members = processes.filter((p) => p.type === template[2]);
      if (members.length === 0) throw new Error(`the router routes to ${template[2]}, which no process runs`);
      return members.map((p, i) => `  server ${template[1]}${i + 1} ${LOOPBACK}:${listener(p, Number(template[3]))}`);
    }
    return [line];
  });
  const cfgDir = path.join(dir, 'etc');
  fs.mkdirSync(cfgDir);
  const mountPath = c.volumeMounts.find((m: any) => m.name === 'config').mountPath;
  fs.writeFileSync(path.join(cfgDir, 'haproxy.cfg'), lines.join('\n'));
  const [command, ...args] = (c.command as string[]).map((a) => rewritePaths(a, { [mountPath]: cfgDir })); // paths
  // In its image as the pod's user: `haproxy` is the build under test, where the image has it.
  shareWithPod(dir, podSpec(deploy).securityContext.fsGroup);
  const sandbox = new ImageSandbox(deploy, 'haproxy', { '/usr/local/sbin/haproxy': programs().haproxy });
  const program = new Program(name, ...sandbox.wrap(command, args, {}, dir), { logDir: dir, env: { PATH: process.env.PATH } });
  await program.waitFor('/health on the status port', async () => (await fetch(`http://${LOOPBACK}:${statusPort}/health`)).status === 200, 30_000);
  const logLine = / synapse (\S+)\/(\S+) \S+ (\d{3}) .*"(\S+) (\S+) HTTP\/1\.1"\s*$/;
  const requests = () =>
    program
      .output()
      .split('\n')
      .map((l) => logLine.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ backend: m[1], server: m[2], status: Number(m[3]), method: m[4], uri: m[5] }));
  return {
    port,
    proxiedPort,
    statusPort,
    program,
    requests,
    logged: async (count, filter = () => true) => {
      await program.waitFor(`${count} logged requests`, () => requests().filter(filter).length >= count, 5_000);
      return requests().filter(filter);
    },
    stop: () => program.stop(),
  };
}
