/**
 * Redis as its rendered StatefulSet starts it: the rendered redis.conf and
 * start command, the password from the generated Secret as a file.
 */
import * as fs from 'fs';
import * as path from 'path';
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
  replaceLine,
  rewriteScriptPaths,
  secretVolumeFiles,
  tcpOpen,
  tempDir,
  writeSecretFiles,
} from './harness';
import { ImageSandbox, shareWithPod } from './image';

const LOOPBACK = '127.0.0.1';

export interface RunningRedis {
  program: Program;
  port: number;
  password: string;
  mounts: Record<string, string>;
}

/** Redis as its StatefulSet starts it, on loopback, or (for LiveKit's node) inside a PodNetwork. */
export async function startRedis(manifests: Manifest[], config: KudoConfig, secrets: Record<string, string>, network?: PodNetwork): Promise<RunningRedis> {
  const sts = find(manifests, 'StatefulSet', 'redis');
  const c = container(sts, 'redis');
  const dir = tempDir('redis');
  const host = network?.podAddress ?? LOOPBACK;
  const mounts = mountDirs(c, dir);
  const port = await freePort();

  // The Secret volume, as the kubelet writes it (mode 0440).
  const passwordFiles = secretVolumeFiles(sts, 'password', config, secrets);
  writeSecretFiles(mounts['/secrets'], passwordFiles);

  // redis.conf from the ConfigMap.
  let conf = configMapFile(manifests, 'redis-config', 'redis.conf');
  conf = replaceLine(conf, 'port 6379', `port ${port}`); // LOOPBACK_REWRITES.ports
  // In a PodNetwork 0.0.0.0 reaches only this host's end of the link, as rendered.
  if (!network) conf = replaceLine(conf, 'bind 0.0.0.0', `bind ${LOOPBACK}`); // LOOPBACK_REWRITES.bind
  conf = replaceLine(conf, 'dir /data', `dir ${mounts['/data']}`); // LOOPBACK_REWRITES.paths
  conf = replaceLine(conf, 'include /run/redis/auth.conf', `include ${hostPath(mounts, '/run/redis/auth.conf')}`); // LOOPBACK_REWRITES.paths
  fs.writeFileSync(path.join(mounts['/etc/redis'], 'redis.conf'), conf);

  // The container command: sh -c REDIS_START.
  if (c.command[0] !== 'sh' || c.command[1] !== '-c') throw new Error(`unexpected Redis command ${JSON.stringify(c.command)}`);
  // LOOPBACK_REWRITES.paths: the Secret, run and config mounts.
  const script = rewriteScriptPaths(c.command[2], mounts, ['/secrets/password', '/run/redis/auth.conf', '/etc/redis/redis.conf']);
  // In its image as the pod's user: `redis-server` in the script is the build under test, where the image has it.
  shareWithPod(path.join(dir, 'vol'), podSpec(sts).securityContext.fsGroup);
  const sandbox = new ImageSandbox(sts, 'redis', { '/usr/local/bin/redis-server': programs().redisServer });
  const [command, args] = sandbox.wrap('sh', ['-c', script], {}, dir, network ? (cmd, a) => network.wrap(cmd, a) : undefined);
  const program = new Program(network ? 'redis-node' : 'redis', command, args, { logDir: dir, cwd: dir, env: { PATH: process.env.PATH } });
  await program.waitFor('TCP port', () => tcpOpen(port, host), 30_000);
  return { program, port, password: passwordFiles.password, mounts };
}
