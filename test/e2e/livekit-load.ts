/**
 * LiveKit's Go SDK as a real WebRTC client (scripts/capacity/livekit-load: pion, Opus and VP8 as RTP over ICE, DTLS
 * and SRTP). Shared by test/e2e/livekit-pod-network.e2e.test.ts, test/e2e/livekit-ipv6.e2e.test.ts and
 * test/e2e/livekit-turn.e2e.test.ts.
 */
import { execFile, execFileSync } from 'child_process';
import * as path from 'path';
import { promisify } from 'util';
import { Program, ROOT, tail } from './harness';

/** The client's binary, built on first use and cached (scripts/capacity/install.sh). */
export function installLoadClient(): string {
  const installed = execFileSync('bash', [path.join(ROOT, 'scripts/capacity/install.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return /^KUDO_BENCH_LIVEKIT_LOAD=(.*)$/m.exec(installed)![1];
}

/** How the client is started: a command that runs it (e.g. in a mount namespace of its own), and its environment. */
export interface ClientRun {
  wrap?: (command: string, args: string[]) => [string, string[]];
  env?: NodeJS.ProcessEnv;
}

/**
 * Two participants in room `<prefix>-0`, signalling at `url`, each publishing audio and video and subscribing to the
 * other's for 5 s: what the client measured. `extra` are further flags of the client (e.g. `-ipv6-only`).
 */
export async function callInRoom(
  client: string,
  url: string,
  key: string,
  secret: string,
  prefix: string,
  servers: Program[],
  extra: string[] = [],
  run: ClientRun = {},
): Promise<any> {
  const args = ['-url', url, '-key', key, '-secret', secret, '-rooms', '1', '-size', '2', '-warmup', '3s', '-duration', '5s', '-prefix', prefix, ...extra];
  const [command, commandArgs] = run.wrap?.(client, args) ?? [client, args];
  const { stdout } = await promisify(execFile)(command, commandArgs, { timeout: 120_000, env: run.env ?? process.env }).catch((e) => {
    throw new Error(`livekit-load failed: ${e.message}\n${e.stderr ?? ''}\n${servers.map((p) => tail(p.output())).join('\n')}`);
  });
  return stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .find((x) => x.event === 'window-end');
}
