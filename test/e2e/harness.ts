/**
 * What the real-program tests share: the installed programs, the rendered
 * manifests, the loopback rewrites, and starting/stopping processes.
 *
 * Every config a test runs comes out of the rendered manifests. The only
 * changes are the loopback rewrites in LOOPBACK_REWRITES below: each says
 * what it changes and why it must.
 */
import { ChildProcess, execFileSync, spawn, SpawnOptions } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { KudoConfig, resolveConfig } from '../../charts/config';
import { FakeKubeApi } from '../fake-kube-api';
import { find, Manifest, podSpec, synthAll } from '../util';

export const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Every change made to a rendered config so it runs on this machine rather
 * than in a cluster. Tests refer to these by key, so the list is complete.
 */
export const LOOPBACK_REWRITES = {
  hosts:
    'Service DNS names (postgres.kudo.svc, redis.kudo.svc, ...) become loopback addresses, or the address of a PodNetwork ' +
    'namespace for PostgreSQL (which trusts 127.0.0.1, as inside its pod, so its clients must come from elsewhere): there is no cluster DNS. ' +
    "An external database keeps its rendered name, which verify-full checks its certificate against; libpq's hostaddr gives the address.",
  ports: 'Listening ports become free ephemeral ports, so tests never collide with each other or a system service.',
  bind: 'Bind addresses (0.0.0.0, the node IP) become 127.0.0.1: nothing here listens beyond loopback.',
  paths: 'Mount paths (/config, /secrets, /media, /run/..., /etc/...) become folders of a per-test temporary directory.',
  externalIp: "coturn's public address is 127.0.0.1, written where its address lookup would write the node's (LiveKit's lookup runs for real).",
  tls: "coturn's certificate is a self-signed one made by the test instead of cert-manager's.",
  timing: "coturn's certificate watch (CERT_CHECK_SECONDS) looks every second instead of every minute, so the test need not wait.",
} as const;

/** Paths of the installed programs (test/e2e/install-programs.sh writes them). A missing program fails the test. */
export interface Programs {
  readonly pgBin: string;
  readonly synapsePython: string;
  readonly livekitServer: string;
  /** redis-server; redis-cli is beside it (one build). */
  readonly redisServer: string;
  /** turnserver; the turnutils_* clients are beside it (one package). */
  readonly turnserver: string;
  /** HAProxy, at the Synapse router image's version. */
  readonly haproxy: string;
  readonly restic: string;
  readonly kubeScore: string;
  readonly checkov: string;
  /** Decides which flows a set of NetworkPolicies allows (test/e2e/flows.e2e.test.ts). */
  readonly cyclonus: string;
  /** compose-go's .env parser (test/e2e/compose-dotenv). */
  readonly composeDotenv: string;
}

export function programs(): Programs {
  const cache = process.env.KUDO_E2E_CACHE ?? path.join(os.homedir(), '.cache', 'kudo-e2e');
  const envFile = path.join(cache, 'env.sh');
  if (!fs.existsSync(envFile)) {
    throw new Error(`${envFile} is missing: run test/e2e/install-programs.sh first (npm run test:e2e does)`);
  }
  const vars: Record<string, string> = {};
  for (const m of fs.readFileSync(envFile, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)) vars[m[1]] = m[2];
  const p: Programs = {
    pgBin: vars.KUDO_E2E_PG_BIN,
    synapsePython: vars.KUDO_E2E_SYNAPSE_PYTHON,
    livekitServer: vars.KUDO_E2E_LIVEKIT_SERVER,
    redisServer: vars.KUDO_E2E_REDIS_SERVER,
    turnserver: vars.KUDO_E2E_TURNSERVER,
    haproxy: vars.KUDO_E2E_HAPROXY,
    restic: vars.KUDO_E2E_RESTIC,
    kubeScore: vars.KUDO_E2E_KUBE_SCORE,
    checkov: vars.KUDO_E2E_CHECKOV,
    cyclonus: vars.KUDO_E2E_CYCLONUS,
    composeDotenv: vars.KUDO_E2E_COMPOSE_DOTENV,
  };
  for (const [name, file] of Object.entries(p)) {
    if (!file || !fs.existsSync(file)) throw new Error(`program ${name} not found at "${file}" (from ${envFile})`);
  }
  return p;
}

/** The upgrade test's old Synapse release (install-programs.sh installs it beside the pinned one). */
export function oldSynapsePython(): string {
  programs();
  const envFile = path.join(process.env.KUDO_E2E_CACHE ?? path.join(os.homedir(), '.cache', 'kudo-e2e'), 'env.sh');
  const python = /^export KUDO_E2E_SYNAPSE_OLD_PYTHON='([^']*)'$/m.exec(fs.readFileSync(envFile, 'utf8'))?.[1];
  if (python === undefined || !fs.existsSync(python)) throw new Error(`the old Synapse release is not installed (${envFile}): run test/e2e/install-programs.sh`);
  return python;
}

// The unit tests' helpers, shared: the same rendering and lookups.
export { container, find, Manifest, podSpec } from '../util';

/** The manifests of the default config (or another), rendered in-process exactly as synth does. */
export function rendered(overrides: object = {}): { config: KudoConfig; manifests: Manifest[] } {
  const config = resolveConfig(overrides, 'e2e config');
  return { config, manifests: synthAll(config) };
}

/** A file of a rendered ConfigMap. */
export function configMapFile(ms: Manifest[], configMap: string, file: string): string {
  const data = find(ms, 'ConfigMap', configMap).data ?? {};
  if (!(file in data)) throw new Error(`ConfigMap ${configMap} has no "${file}"`);
  return data[file];
}

/** A fresh temporary directory inside the run's folder (removed after the run; KUDO_E2E_KEEP=1 keeps it). */
export function tempDir(prefix: string): string {
  const root = process.env.KUDO_E2E_TMP ?? os.tmpdir();
  return fs.mkdtempSync(path.join(root, `${prefix}-`));
}

/** A TCP port that is free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Wraps the command line of every Program started from now on (`undefined`: run it as it is). The capacity
 * benchmark (scripts/capacity/) puts each program into cgroups holding its container's CPU and memory limits.
 */
export type Launcher = (name: string, command: string, args: string[]) => [string, string[]];
let launcher: Launcher | undefined;
export function setLauncher(l: Launcher | undefined): void {
  launcher = l;
}

/** A running program whose output goes to a log file (shown when a test fails). */
export class Program {
  readonly log: string;
  private exited?: { code: number | null; signal: string | null };
  private readonly child: ChildProcess;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: SpawnOptions & { logDir: string },
  ) {
    this.log = path.join(options.logDir, `${name}.log`);
    const out = fs.openSync(this.log, 'a');
    const [cmd, argv] = launcher ? launcher(name, command, args) : [command, args];
    this.child = spawn(cmd, argv, { ...options, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    this.child.on('exit', (code, signal) => (this.exited = { code, signal }));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exited === undefined;
  }

  output(): string {
    return fs.existsSync(this.log) ? fs.readFileSync(this.log, 'utf8') : '';
  }

  /**
   * Waits until check() is true (a check that throws is false); fails with the program's log if it exits or the
   * time runs out. A program that runs out of time is stopped first: a start that failed must not leave a process
   * behind, whose handle would keep jest from ending.
   */
  async waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`${this.name} exited (${JSON.stringify(this.exited)}) before ${what}:\n${tail(this.output())}`);
      if (
        await Promise.resolve()
          .then(check)
          .catch(() => false)
      )
        return;
      if (Date.now() > deadline) {
        const log = tail(this.output());
        await this.stop();
        throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms:\n${log}`);
      }
      await sleep(200);
    }
  }

  /** Waits for the process to exit by itself; returns its exit code. */
  async exit(timeoutMs = 60_000): Promise<number | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.running) {
      if (Date.now() > deadline) throw new Error(`${this.name} still running after ${timeoutMs} ms:\n${tail(this.output())}`);
      await sleep(100);
    }
    return this.exited!.code;
  }

  /** SIGKILL at once, without waiting (for process-exit handlers). */
  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const deadline = Date.now() + timeoutMs;
    while (this.running && Date.now() < deadline) await sleep(100);
    if (this.running) this.child.kill('SIGKILL');
    while (this.running) await sleep(50);
  }
}

export function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function tcpOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** GET/POST JSON on loopback; returns status, headers and parsed body. */
export async function httpJson(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await r.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON; keep the text
  }
  return { status: r.status, headers: r.headers, body };
}

/**
 * Writes Secret values as a pod would see them: one file per key, mode 0440
 * (the defaultMode our Secret volumes use).
 */
export function writeSecretFiles(dir: string, files: Record<string, string>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, value] of Object.entries(files)) {
    // A projected item's path may name a folder (Synapse's extra/<file>).
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), value, { mode: 0o440 });
    fs.chmodSync(path.join(dir, name), 0o440);
  }
}

/** Replaces whole-word occurrences of each key with its value (for paths in scripts and config files). */
export function rewritePaths(text: string, mapping: Record<string, string>): string {
  // One pass, longest first at each place, so /run/synapse/pgpass is rewritten before /run/synapse and a rewritten
  // path is never rewritten again (/db-ca's folder may itself contain "/db").
  const keys = Object.keys(mapping).sort((a, b) => b.length - a.length);
  if (keys.length === 0) return text;
  const pattern = new RegExp(keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
  return text.replace(pattern, (from) => mapping[from]);
}

/**
 * Secret values made the way a cluster makes them: the rendered generator
 * script and plan (ConfigMap secret-generator) run against an in-memory
 * Secrets API. Returns each planned value by name.
 */
export async function generatedSecrets(ms: Manifest[], existing: Manifest[] = []): Promise<Record<string, string>> {
  const dir = tempDir('generator');
  for (const file of ['kube.py', 'generate_secrets.py', 'plan.json']) {
    fs.writeFileSync(path.join(dir, file), configMapFile(ms, 'secret-generator', file));
  }
  const api = new FakeKubeApi();
  // Secrets applied before the generator runs (e.g. secrets.local/ from an imported .env): it must keep their values.
  for (const s of existing) api.put(s.metadata.namespace!, s.metadata.name, s.stringData);
  const url = await api.start();
  try {
    const child = new Program('secret-generator', 'python3', [path.join(dir, 'generate_secrets.py'), path.join(dir, 'plan.json')], {
      logDir: dir,
      env: { PATH: process.env.PATH, KUBE_API_URL: url, KUBE_TOKEN_FILE: '/nonexistent', KUBE_CA_FILE: '/nonexistent' },
    });
    const code = await child.exit(30_000);
    if (code !== 0) throw new Error(`secret generator failed:\n${child.output()}`);
    const plan = JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8'));
    const values: Record<string, string> = {};
    for (const item of plan.values) {
      const d = item.destinations[0];
      values[item.name] = api.values(d.namespace, d.secret)![d.key];
    }
    return values;
  } finally {
    await api.stop();
  }
}

/**
 * A network namespace standing for a pod: its own loopback, and a veth link
 * to this host. Programs in it see connections from `hostAddress`, not from
 * 127.0.0.1, exactly as a server pod sees other pods. Needs root (CI is).
 */
export class PodNetwork {
  readonly name: string;
  readonly podAddress: string;
  readonly hostAddress: string;
  private readonly hostIf: string;
  private readonly podIf: string;

  constructor() {
    const n = PodNetwork.freeSubnet();
    this.name = `kudo-e2e-${process.pid}-${n}`;
    this.hostIf = `kudo${n}h${process.pid % 1000}`.slice(0, 15);
    const podIf = (this.podIf = `kudo${n}p${process.pid % 1000}`.slice(0, 15));
    // A /30 of the project's own, on a link that exists only between this host and the namespace.
    this.hostAddress = `10.254.${n}.1`;
    this.podAddress = `10.254.${n}.2`;
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
    // A namespace of this name was left by an earlier process that had this pid (one killed before its cleanup).
    if (fs.existsSync(`/run/netns/${this.name}`)) ip('netns', 'delete', this.name);
    ip('netns', 'add', this.name);
    try {
      ip('link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', podIf);
      ip('link', 'set', podIf, 'netns', this.name);
      ip('addr', 'add', `${this.hostAddress}/30`, 'dev', this.hostIf);
      ip('link', 'set', this.hostIf, 'up');
      ip('netns', 'exec', this.name, 'ip', 'addr', 'add', `${this.podAddress}/30`, 'dev', podIf);
      ip('netns', 'exec', this.name, 'ip', 'link', 'set', podIf, 'up');
      ip('netns', 'exec', this.name, 'ip', 'link', 'set', 'lo', 'up');
    } catch (e) {
      this.remove();
      throw e;
    }
  }

  private static readonly taken = new Set<number>();

  /**
   * A /30 in 10.254.n.0 that no link on this host has and this process has not handed out: a random n
   * collided within a run (a dozen networks out of 250) and with networks left by killed runs.
   */
  private static freeSubnet(): number {
    const onLinks = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' }).matchAll(/ inet 10\.254\.(\d+)\./g);
    const used = new Set([...PodNetwork.taken, ...[...onLinks].map((m) => Number(m[1]))]);
    const free = Array.from({ length: 250 }, (_, i) => i + 1).filter((n) => !used.has(n));
    if (free.length === 0) throw new Error('no free 10.254.n.0/30 for a pod network: remove stale ones (ip netns list | grep kudo-)');
    // Random among the free ones, so that two processes starting together rarely pick the same.
    const n = free[Math.floor(Math.random() * free.length)];
    PodNetwork.taken.add(n);
    return n;
  }

  /**
   * A further IPv4 address of the namespace's, on its interface, that this host routes to across the link: an address
   * outside the private ranges for programs that treat those differently (LiveKit's TURN). Gone with the namespace.
   */
  addRoutedAddress(address: string): void {
    execFileSync('ip', ['-n', this.name, 'addr', 'add', `${address}/32`, 'dev', this.podIf], { stdio: 'pipe' });
    execFileSync('ip', ['route', 'replace', `${address}/32`, 'via', this.podAddress, 'dev', this.hostIf], { stdio: 'pipe' });
  }

  /** The command and arguments that run `command` inside the namespace. */
  wrap(command: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.name, command, ...args]];
  }

  remove(): void {
    // Deleting the namespace deletes the veth pair with it.
    execFileSync('ip', ['netns', 'delete', this.name], { stdio: 'ignore' });
  }
}

/**
 * The files a rendered Secret (or projected Secrets) volume shows a pod,
 * filled with the generated values: which value lands in which file is
 * read from the manifest, so a wrong Secret name or key in a chart fails
 * the program that reads it.
 */
export function secretVolumeFiles(workload: Manifest, volumeName: string, config: KudoConfig, values: Record<string, string>): Record<string, string> {
  const vol = podSpec(workload).volumes.find((v: any) => v.name === volumeName);
  if (!vol) throw new Error(`${workload.metadata.name} has no volume ${volumeName}`);
  const sources = vol.secret ? [{ secret: { ...vol.secret, name: vol.secret.secretName } }] : vol.projected.sources;
  const files: Record<string, string> = {};
  for (const { secret } of sources) {
    for (const item of secret.items) {
      // The kubelet leaves out a key an optional source's Secret does not hold (values: "<secret>/<key>").
      if (secret.optional === true && values[`${secret.name}/${item.key}`] === undefined) continue;
      files[item.path] = secretRefValue(config, values, secret.name, item.key);
    }
  }
  return files;
}

/**
 * The generated value that Secret `name`, key `key` holds, by the config's secret refs;
 * for a Secret the operator makes (synapse.extraSecretFiles), the test's value under "<name>/<key>".
 */
export function secretRefValue(config: KudoConfig, values: Record<string, string>, name: string, key: string): string {
  const refs = config.secrets.refs as Record<string, { name: string; key: string }>;
  const hit = Object.entries(refs).find(([, r]) => r.name === name && r.key === key);
  if (!hit && values[`${name}/${key}`] !== undefined) return values[`${name}/${key}`];
  if (!hit) throw new Error(`no secret ref names ${name}/${key}, and the test gave no value for it`);
  const value = values[hit[0]];
  if (value === undefined) throw new Error(`the generator made no value "${hit[0]}"`);
  return value;
}

/**
 * LOOPBACK_REWRITES.paths: each volume of a container becomes the folder
 * <dir>/vol/<volume name>, so two containers mounting one volume (an init
 * container and the main one) share it. Returns mount path -> folder.
 */
export function mountDirs(c: { volumeMounts: { name: string; mountPath: string }[] }, dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of c.volumeMounts) {
    out[m.mountPath] = path.join(dir, 'vol', m.name);
    fs.mkdirSync(out[m.mountPath], { recursive: true });
  }
  return out;
}

/** LOOPBACK_REWRITES.paths: a path inside the container, moved to the folder of the mount that holds it. */
export function hostPath(mounts: Record<string, string>, p: string): string {
  const mount = Object.keys(mounts)
    .filter((m) => p === m || p.startsWith(`${m}/`))
    .sort((a, b) => b.length - a.length)[0];
  if (!mount) throw new Error(`${p} is not under any mount (${Object.keys(mounts).join(', ')})`);
  return path.join(mounts[mount], p.slice(mount.length));
}

// ---------------------------------------------------------------------------
// Point-in-time recovery (test/e2e/pitr.e2e.test.ts)
// ---------------------------------------------------------------------------

/** Paths of MinIO and barman-cloud (test/e2e/install-pitr.sh writes them). A missing program fails the test. */
export interface PitrPrograms {
  readonly minio: string;
  /** The venv's bin folder: barman-cloud-* and a python with boto3. */
  readonly barmanBin: string;
}

export function pitrPrograms(): PitrPrograms {
  const cache = process.env.KUDO_E2E_CACHE ?? path.join(os.homedir(), '.cache', 'kudo-e2e');
  const envFile = path.join(cache, 'pitr-env.sh');
  if (!fs.existsSync(envFile)) throw new Error(`${envFile} is missing: run test/e2e/install-pitr.sh first`);
  const vars: Record<string, string> = {};
  for (const m of fs.readFileSync(envFile, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)) vars[m[1]] = m[2];
  const p: PitrPrograms = { minio: vars.KUDO_E2E_MINIO, barmanBin: vars.KUDO_E2E_BARMAN_BIN };
  for (const [name, file] of Object.entries(p)) {
    if (!file || !fs.existsSync(file)) throw new Error(`program ${name} not found at "${file}" (from ${envFile})`);
  }
  return p;
}

/**
 * paths: rewrites the given container paths in a script (whole file paths,
 * so /keys cannot hit /run/livekit/keys.yaml) and checks they all occurred.
 */
export function rewriteScriptPaths(script: string, mounts: Record<string, string>, files: string[]): string {
  for (const f of files) if (!script.includes(f)) throw new Error(`the rendered script no longer uses ${f}:\n${script}`);
  return rewritePaths(script, Object.fromEntries(files.map((f) => [f, hostPath(mounts, f)])));
}

/** Replaces the line `from` (which must occur exactly once) with `to`. */
export function replaceLine(text: string, from: string, to: string): string {
  const lines = text.split('\n');
  const hits = lines.filter((l) => l === from).length;
  if (hits !== 1) throw new Error(`expected the line "${from}" once in the rendered text, found ${hits}:\n${text}`);
  return lines.map((l) => (l === from ? to : l)).join('\n');
}

/** Replaces `from` (which must occur exactly once) with `to`. */
export function replaceOnce(text: string, from: string, to: string): string {
  const n = text.split(from).length - 1;
  if (n !== 1) throw new Error(`expected "${from}" once in the rendered text, found ${n} times:\n${text}`);
  return text.replace(from, () => to);
}

// ---------------------------------------------------------------------------
// Alerting rules (test/e2e/alerts.e2e.test.ts)
// ---------------------------------------------------------------------------

/** A program test/e2e/install-promtool.sh installs, by its variable in promtool-env.sh. A missing program fails the test. */
function monitoringProgram(name: string, variable: string): string {
  const cache = process.env.KUDO_E2E_CACHE ?? path.join(os.homedir(), '.cache', 'kudo-e2e');
  const envFile = path.join(cache, 'promtool-env.sh');
  if (!fs.existsSync(envFile)) throw new Error(`${envFile} is missing: run test/e2e/install-promtool.sh first`);
  const file = new RegExp(`^export ${variable}='([^']*)'$`, 'm').exec(fs.readFileSync(envFile, 'utf8'))?.[1];
  if (!file || !fs.existsSync(file)) throw new Error(`${name} not found at "${file}" (from ${envFile}): run test/e2e/install-promtool.sh`);
  return file;
}

/** The path of promtool. */
export const promtoolPath = () => monitoringProgram('promtool', 'KUDO_E2E_PROMTOOL');

/** The path of postgres_exporter (the table-bloat alert's real-program test). */
export const postgresExporterPath = () => monitoringProgram('postgres_exporter', 'KUDO_E2E_POSTGRES_EXPORTER');
