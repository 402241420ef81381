/**
 * coturn started natively on loopback the way the rendered DaemonSet starts
 * it: ConfigMap coturn-config (turnserver.conf, start.sh), the container's
 * command and env, the TURN Secret volume, changed only by the
 * LOOPBACK_REWRITES named next to each change. The init container (which
 * looks up the node's public address) does not run: its output file is
 * written instead. Shared by test/e2e/coturn.e2e.test.ts and the capacity
 * benchmark.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as dgram from 'dgram';
import * as fs from 'fs';
import * as path from 'path';
import type { KudoConfig } from '../../charts/config';
import { configMapFile, container, find, freePort, hostPath, Manifest, mountDirs, Program, programs, secretVolumeFiles, tcpOpen, tempDir, writeSecretFiles } from './harness';
import { ImageSandbox, shareWithPod } from './image';

const LOOPBACK = '127.0.0.1';
// The turnutils_* clients come from the same package and folder as turnserver.
export const TURNSERVER = programs().turnserver;
export const TURN_VERSION = execFileSync(TURNSERVER, ['--version'], { encoding: 'utf8' }).trim();
export const TURNUTILS = path.dirname(TURNSERVER);
// Builds without Prometheus support (Debian's: no libmicrohttpd) do not know the `prometheus` options and say so in the
// log; the official image has it. Such a build's -h lists none of them.
export const HELP = spawnSync(TURNSERVER, ['-h'], { encoding: 'utf8' }).stdout;
export const HAS_PROMETHEUS = HELP.includes('--prometheus');

/** The value of `name=` in a turnserver.conf; the option must be set exactly once. */
export function option(conf: string, name: string): string {
  const hits = conf.split('\n').filter((l) => l.startsWith(`${name}=`));
  if (hits.length !== 1) throw new Error(`expected one "${name}=" line in turnserver.conf, found ${hits.length}`);
  return hits[0].slice(name.length + 1);
}

/** Replaces the value of `name=` (set exactly once) with `value`. */
export function setOption(conf: string, name: string, value: string | number): string {
  option(conf, name);
  return conf
    .split('\n')
    .map((l) => (l.startsWith(`${name}=`) ? `${name}=${value}` : l))
    .join('\n');
}

/**
 * LOOPBACK_REWRITES.paths: every path under a mount in `text` moved to its folder, in one pass
 * (so a new path can never be rewritten twice).
 */
function rewriteMountPaths(text: string, mounts: Record<string, string>): string {
  const roots = Object.keys(mounts)
    .sort((a, b) => b.length - a.length)
    .map((m) => m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return text.replace(new RegExp(`(?<![\\w./-])(?:${roots.join('|')})(?:/[\\w.-]+)*`, 'g'), (p) => hostPath(mounts, p));
}

/** A TCP port that is also free for UDP (coturn listens on both). */
async function freeTcpUdpPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort();
    if (await udpBindable(port)) return port;
  }
  throw new Error('no port free for both TCP and UDP');
}

function udpBindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, LOOPBACK, () => s.close(() => resolve(true)));
  });
}

/**
 * `count` consecutive UDP ports that are free right now on loopback, below Linux's ephemeral range, starting on a
 * port of the same parity as `like` (coturn pairs an even port with the odd one above it).
 */
async function freeUdpRange(count: number, like: number): Promise<[number, number]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const random = 20_000 + Math.floor(Math.random() * Math.max(1, 12_768 - count));
    const start = random - (random % 2) + (like % 2);
    let ok = true;
    for (let p = start; p < start + count && ok; p++) ok = await udpBindable(p);
    if (ok) return [start, start + count - 1];
  }
  throw new Error('no free UDP port range');
}

export interface RunningCoturn {
  program: Program;
  port: number;
  tlsPort: number;
  relayPorts: [number, number];
  secret: string;
  mounts: Record<string, string>;
  /** The files written to the config volume (rendered + rewrites), and the config start.sh made from them. */
  writtenConf: string;
  writtenScript: string;
  runtimeConf: string;
  pidFile: string;
  /** Where the certificate Secret's files appear (empty at start: not issued yet). */
  certFile: string;
  keyFile: string;
  /** The log as soon as coturn accepted TCP connections: everything it said about its config. */
  startupLog: string;
  /** The lines added after the rendered ones (none when the build has no Prometheus support). */
  metricsLines: string[];
  /** Where the metrics are served: the rewritten port, on loopback. */
  metricsPort: number;
  /** The pod's fsGroup: files a Secret volume shows belong to it. */
  fsGroup: number;
}

/**
 * coturn as the DaemonSet of `manifests` starts it.
 * `relaySize`: how many relay ports (LOOPBACK_REWRITES.ports moves the rendered range to free ones of that many).
 * `renderedConf`: the turnserver.conf of another render (another profile's); the DaemonSet and start.sh are those of `manifests`.
 * `extraLines`: lines appended to turnserver.conf after the metrics ones (the capacity benchmark's; tests add none).
 */
export async function startCoturn(
  manifests: Manifest[],
  config: KudoConfig,
  secrets: Record<string, string>,
  relaySize = 20,
  renderedConf = configMapFile(manifests, 'coturn-config', 'turnserver.conf'),
  extraLines: string[] = [],
  /** What the address lookup would write: the node's public address, or "<IPv4>,<IPv6>" for a node with both. */
  nodePublic = LOOPBACK,
): Promise<RunningCoturn> {
  const ds = find(manifests, 'DaemonSet', 'coturn');
  const c = container(ds, 'coturn');
  const init = container(ds, 'node-address');
  const volumes: any[] = ds.spec.template.spec.volumes;
  const dir = tempDir('coturn');
  const mounts = mountDirs(c, dir);
  const initMounts = mountDirs(init, dir);

  // LOOPBACK_REWRITES.ports: the TURN port (UDP and TCP), the TLS port (TLS and DTLS) and the relay range become free ones.
  const port = await freeTcpUdpPort();
  const tlsPort = await freeTcpUdpPort();
  const relayPorts = await freeUdpRange(relaySize, Number(option(renderedConf, 'min-port')));
  let conf = renderedConf;
  conf = setOption(conf, 'listening-port', port); // LOOPBACK_REWRITES.ports
  conf = setOption(conf, 'tls-listening-port', tlsPort); // LOOPBACK_REWRITES.ports
  conf = setOption(conf, 'min-port', relayPorts[0]); // LOOPBACK_REWRITES.ports
  conf = setOption(conf, 'max-port', relayPorts[1]); // LOOPBACK_REWRITES.ports
  conf = rewriteMountPaths(conf, mounts); // LOOPBACK_REWRITES.paths: cert, pkey, pidfile
  // The metrics listener: the rendered port moved to a free one, and bound to loopback (the rendered file leaves the
  // address at coturn's default, every address), by a line only a build with Prometheus support reads.
  const metricsPort = await freePort();
  conf = setOption(conf, 'prometheus-port', metricsPort); // LOOPBACK_REWRITES.ports
  const metricsLines = HAS_PROMETHEUS ? [`prometheus-address=${LOOPBACK}`] : []; // LOOPBACK_REWRITES.bind
  conf += [...metricsLines, ...extraLines].map((l) => `${l}\n`).join('');

  // The config volume: the two ConfigMap files the coturn container uses (node_address.py is the init container's).
  const configVolume = volumes.find((v) => v.name === 'config');
  if (configVolume?.configMap?.name !== 'coturn-config') throw new Error('the config volume is no longer ConfigMap coturn-config');
  const configDir = path.join(dir, 'vol', 'config');
  fs.writeFileSync(path.join(configDir, 'turnserver.conf'), conf);
  const script = rewriteMountPaths(configMapFile(manifests, 'coturn-config', 'start.sh'), mounts); // LOOPBACK_REWRITES.paths
  fs.writeFileSync(path.join(configDir, 'start.sh'), script);

  // The TURN Secret volume, as the kubelet projects its items (the second secret only when `secrets` has one).
  const secretFiles = secretVolumeFiles(ds, 'turn-secret', config, secrets);
  if (secretFiles.shared_secret === undefined) throw new Error(`no shared_secret in the TURN Secret volume, only ${Object.keys(secretFiles).join(', ')}`);
  writeSecretFiles(path.join(dir, 'vol', 'turn-secret'), secretFiles);
  const secret = secretFiles.shared_secret;

  // Where cert-manager's Secret would put the certificate: start.sh names the files, the tls volume is the Secret.
  const certPath = /^cert=(\S+)$/m.exec(configMapFile(manifests, 'coturn-config', 'start.sh'))![1];
  const keyPath = /^key=(\S+)$/m.exec(configMapFile(manifests, 'coturn-config', 'start.sh'))![1];
  const certFile = hostPath(mounts, certPath);
  const keyFile = hostPath(mounts, keyPath);
  if (!fs.existsSync(path.dirname(certFile))) throw new Error(`${certPath} is not on a mounted volume`);

  // LOOPBACK_REWRITES.externalIp: what the init container would write (the node's public IPv4); here the node is 127.0.0.1.
  const publicIpFile = hostPath(initMounts, init.command[init.command.length - 1]);
  if (!init.command.join(' ').includes('node_address.py')) throw new Error(`unexpected init command ${JSON.stringify(init.command)}`);
  fs.writeFileSync(publicIpFile, `${nodePublic}\n`);

  // The container's env; LOOPBACK_REWRITES.bind: NODE_IP (status.hostIP) is 127.0.0.1. PATH is the image's, where
  // turnserver is /usr/bin/turnserver with the image's file capability (test/e2e/image.ts).
  const env: Record<string, string> = {};
  for (const e of c.env) {
    if (e.valueFrom?.fieldRef?.fieldPath === 'status.hostIP') env[e.name] = LOOPBACK;
    else if (e.name === 'CERT_CHECK_SECONDS')
      env[e.name] = '1'; // LOOPBACK_REWRITES.timing
    else if (e.value !== undefined) env[e.name] = e.value;
    else throw new Error(`unhandled env ${JSON.stringify(e)}`);
  }

  // The container's command, its script path moved (LOOPBACK_REWRITES.paths). Its own process group, so anything it leaves behind can be found.
  // In its image, as the pod's user with the container's bounding set.
  const [shell, ...args] = c.command as string[];
  shareWithPod(path.join(dir, 'vol'), ds.spec.template.spec.securityContext.fsGroup);
  const sandbox = new ImageSandbox(ds, 'coturn', { '/usr/bin/turnserver': TURNSERVER });
  const [command, argv] = sandbox.wrap(
    shell,
    args.map((a) => (a.startsWith('/') ? hostPath(mounts, a) : a)),
    env,
    dir,
  );
  const program = new Program('coturn', command, argv, { logDir: dir, env: { PATH: process.env.PATH }, cwd: dir, detached: true });
  try {
    // The rendered startup probe: a TCP connect to the TURN port (LOOPBACK_REWRITES.ports: the rewritten one).
    if (c.startupProbe.tcpSocket.port !== Number(option(renderedConf, 'listening-port'))) throw new Error('the startup probe is not the TURN port');
    await program.waitFor('the TURN port', () => tcpOpen(port), 30_000);
  } catch (e) {
    await program.stop();
    throw e;
  }
  const runtimeConfFile = path.join(mounts['/run/coturn'], 'turnserver.conf');
  return {
    program,
    port,
    tlsPort,
    relayPorts,
    secret,
    mounts,
    writtenConf: conf,
    writtenScript: script,
    runtimeConf: fs.readFileSync(runtimeConfFile, 'utf8'),
    pidFile: hostPath(mounts, option(renderedConf, 'pidfile')),
    certFile,
    keyFile,
    startupLog: program.output(),
    metricsLines,
    metricsPort,
    fsGroup: ds.spec.template.spec.securityContext.fsGroup,
  };
}
