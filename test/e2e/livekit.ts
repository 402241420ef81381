/**
 * LiveKit as its rendered Deployment starts it, natively in a PodNetwork: the
 * rendered config files, init steps, start script, env and Secret volumes,
 * changed only by the LOOPBACK_REWRITES named next to each change. Shared by
 * test/e2e/livekit.e2e.test.ts and the capacity benchmark.
 *
 * The `config` step and LiveKit itself run as their image and pod would run
 * them (test/e2e/image.ts): the image's PATH, the binary under test at
 * /livekit-server only, the pod's uid, fsGroup, no_new_privs and an empty
 * capability bounding set.
 */
import { execFile, execFileSync } from 'child_process';
import * as dgram from 'dgram';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';
import * as yaml from 'js-yaml';
import { memoryBytes } from '../../charts/common';
import type { KudoConfig } from '../../charts/config';
import {
  configMapFile,
  container,
  find,
  freePort,
  hostPath,
  Manifest,
  mountDirs,
  PodNetwork,
  podSpec,
  Program,
  programs,
  rewriteScriptPaths,
  secretVolumeFiles,
  tempDir,
  writeSecretFiles,
} from './harness';
import { ImageSandbox, shareWithPod } from './image';

const LOOPBACK = '127.0.0.1';

export interface LiveKitRun {
  dir: string;
  network: PodNetwork;
  mounts: Record<string, string>;
  /** The rendered config.yaml, parsed. */
  rendered: any;
  /** What LiveKit reads: the config the `config` step wrote from the ConfigMap (with the loopback rewrites) and the Secret. */
  config: any;
  /** What the `node-address` step wrote. */
  nodeIp: string;
  /** The main container's start script, paths rewritten. */
  script: string;
  /** The main container's env as rendered (the image gives PATH). */
  env: Record<string, string>;
  /** The main container's image and security settings. */
  sandbox: ImageSandbox;
  port: number;
  prometheusPort: number;
}

/** `count` consecutive UDP ports that are free right now on loopback, below Linux's ephemeral range. */
export async function freeUdpRange(count: number): Promise<[number, number]> {
  const bindable = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, LOOPBACK, () => s.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const start = 20_000 + Math.floor(Math.random() * 10_000);
    let ok = true;
    for (let p = start; p < start + count && ok; p++) ok = await bindable(p);
    if (ok) return [start, start + count - 1];
  }
  throw new Error('no free UDP port range');
}

/**
 * Everything the Deployment gives LiveKit, in a fresh temp dir: the Secret
 * volumes, the ConfigMap (config.yaml with the loopback rewrites), and both
 * init steps run as rendered (`nodeName` is the Node the lookup asks `api`
 * about). Starts nothing.
 */
export async function prepareLiveKit(
  manifests: Manifest[],
  config: KudoConfig,
  secrets: Record<string, string>,
  network: PodNetwork,
  redisPort: number,
  api: string,
  nodeName: string,
  tweak: (cfg: any) => void = () => undefined,
  /**
   * livekit.hostNetwork false: the StatefulSet's pod of this name, in a network namespace of its own, where the
   * rendered ports are free and kept (its Services name them). @default - the Deployment on the host network
   */
  replica?: { podName: string },
  /** The certificate cert-manager would write for LiveKit's own TURN (livekit.turn): tls.crt and tls.key. @default - none */
  turnTls?: Record<string, string>,
): Promise<LiveKitRun> {
  const deploy = replica === undefined ? find(manifests, 'Deployment', 'livekit') : find(manifests, 'StatefulSet', 'livekit');
  const lookup = container(deploy, 'node-address');
  const step = container(deploy, 'config');
  const main = container(deploy, 'livekit');
  const dir = tempDir('livekit');
  const mounts = { ...mountDirs(lookup, dir), ...mountDirs(step, dir), ...mountDirs(main, dir) };

  // Secret volumes as the kubelet writes them (mode 0440).
  writeSecretFiles(mounts['/keys'], secretVolumeFiles(deploy, 'secrets', config, secrets));
  // coturn's shared secret, or (coturn off) LiveKit's own TURN's certificate.
  if (mounts['/secrets/turn'] !== undefined) writeSecretFiles(mounts['/secrets/turn'], secretVolumeFiles(deploy, 'turn-secret', config, secrets));
  if (mounts['/tls/turn'] !== undefined) {
    if (turnTls === undefined) throw new Error("LiveKit's own TURN needs its certificate (turnTls)");
    writeSecretFiles(mounts['/tls/turn'], turnTls);
  }

  // The ConfigMap: config.yaml with the loopback rewrites, and the lookup's scripts.
  const renderedYaml = configMapFile(manifests, 'livekit-config', 'config.yaml');
  const cfg: any = yaml.load(renderedYaml);
  const port = replica === undefined ? await freePort() : cfg.port;
  const prometheusPort = replica === undefined ? await freePort() : cfg.prometheus.port;
  if (replica === undefined) {
    const [udpStart, udpEnd] = await freeUdpRange(10);
    cfg.port = port; // LOOPBACK_REWRITES.ports
    cfg.rtc.tcp_port = await freePort(); // LOOPBACK_REWRITES.ports
    cfg.rtc.port_range_start = udpStart; // LOOPBACK_REWRITES.ports
    cfg.rtc.port_range_end = udpEnd; // LOOPBACK_REWRITES.ports
    cfg.prometheus.port = prometheusPort; // LOOPBACK_REWRITES.ports
  }
  cfg.redis.address = `${LOOPBACK}:${redisPort}`; // LOOPBACK_REWRITES.hosts: this node's Redis, in the same namespace
  cfg.key_file = hostPath(mounts, cfg.key_file); // LOOPBACK_REWRITES.paths
  for (const t of cfg.rtc.turn_servers ?? []) t.secret_file = hostPath(mounts, t.secret_file); // LOOPBACK_REWRITES.paths
  if (cfg.turn.enabled) {
    cfg.turn.cert_file = hostPath(mounts, cfg.turn.cert_file); // LOOPBACK_REWRITES.paths
    cfg.turn.key_file = hostPath(mounts, cfg.turn.key_file); // LOOPBACK_REWRITES.paths
  }
  tweak(cfg);
  // Dumped in the same key order: the config step appends the password to the last mapping (redis).
  fs.writeFileSync(path.join(mounts['/etc/livekit'], 'config.yaml'), yaml.dump(cfg, { lineWidth: -1, noRefs: true }));
  for (const f of ['node_address.py', 'kube.py']) fs.writeFileSync(path.join(mounts['/etc/livekit'], f), configMapFile(manifests, 'livekit-config', f));

  // Init step 1, `node-address`: the rendered command and env, against an API that knows this node.
  const lookupEnv: Record<string, string> = { PATH: process.env.PATH!, KUBE_API_URL: api, KUBE_TOKEN_FILE: '/nonexistent', KUBE_CA_FILE: '/nonexistent' };
  for (const e of lookup.env) {
    if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') lookupEnv[e.name] = nodeName;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'status.hostIP') lookupEnv[e.name] = network.podAddress;
    else if (e.value !== undefined) lookupEnv[e.name] = e.value;
    else throw new Error(`unexpected env ${JSON.stringify(e)}`);
  }
  // The Synapse image's python3 (the tools image) runs it; not synchronously, or an API in this process could not answer.
  await promisify(execFile)(
    programs().synapsePython,
    lookup.command.slice(1).map((a: string) => hostPath(mounts, a)),
    { env: lookupEnv },
  ); // LOOPBACK_REWRITES.paths

  // Init step 2, `config`: sh -c livekitWriteConfig(...).
  if (step.command[0] !== 'sh' || step.command[1] !== '-c') throw new Error(`unexpected config step command ${JSON.stringify(step.command)}`);
  const stepScript = rewriteScriptPaths(step.command[2], mounts, [
    // LOOPBACK_REWRITES.paths
    '/keys/api_key',
    '/keys/api_secret',
    '/keys/redis_password',
    '/keys/second_api_key',
    '/keys/second_api_secret',
    '/etc/livekit/config.yaml',
    '/run/livekit/keys.yaml',
    '/run/livekit/config.yaml',
  ]);
  // The volumes as the kubelet makes them for a pod with fsGroup, then the step in its image as the pod's user.
  shareWithPod(path.join(dir, 'vol'), podSpec(deploy).securityContext.fsGroup);
  const [stepCommand, stepArgs] = new ImageSandbox(deploy, 'config', {}).wrap(step.command[0], [step.command[1], stepScript], {}, dir);
  execFileSync(stepCommand, stepArgs, { stdio: 'pipe' });

  // The main container: sh -c LIVEKIT_START, with the binary under test where the image has LiveKit.
  if (main.command[0] !== 'sh' || main.command[1] !== '-c') throw new Error(`unexpected LiveKit command ${JSON.stringify(main.command)}`);
  const script = rewriteScriptPaths(main.command[2], mounts, ['/run/livekit/config.yaml', '/run/livekit/node-ip']); // LOOPBACK_REWRITES.paths
  const sandbox = new ImageSandbox(deploy, 'livekit', { '/livekit-server': programs().livekitServer });
  const env: Record<string, string> = {};
  for (const e of main.env) {
    // The node's address on the cluster network is this namespace's.
    if (e.valueFrom?.fieldRef?.fieldPath === 'status.hostIP') env[e.name] = network.podAddress;
    // The StatefulSet's pod name, which says the replica's ordinal.
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name' && replica !== undefined) env[e.name] = replica.podName;
    // The container's own memory limit, as the kubelet gives it: in units of the divisor, rounded up.
    else if (e.valueFrom?.resourceFieldRef?.resource === 'limits.memory' && e.valueFrom.resourceFieldRef.containerName === main.name) {
      env[e.name] = String(Math.ceil(memoryBytes(main.resources.limits.memory) / memoryBytes(e.valueFrom.resourceFieldRef.divisor)));
    } else if (e.value !== undefined) env[e.name] = e.value;
    else throw new Error(`unexpected env ${JSON.stringify(e)}`);
  }
  return {
    dir,
    network,
    mounts,
    rendered: yaml.load(renderedYaml),
    config: yaml.load(fs.readFileSync(hostPath(mounts, '/run/livekit/config.yaml'), 'utf8')),
    nodeIp: fs.readFileSync(hostPath(mounts, '/run/livekit/node-ip'), 'utf8').trim(),
    script,
    env,
    sandbox,
    port,
    prometheusPort,
  };
}

export function startLiveKit(run: LiveKitRun, name = 'livekit'): Program {
  if (run.script.includes('disable-strict-config')) throw new Error('LiveKit must run in strict config mode');
  const [command, args] = run.sandbox.wrap('sh', ['-c', run.script], run.env, run.dir, (c, a) => run.network.wrap(c, a));
  return new Program(name, command, args, { logDir: run.dir, cwd: run.dir, env: { PATH: process.env.PATH } });
}
