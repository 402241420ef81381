/**
 * livekit.hostNetwork false without a cluster: a pod's network namespace reached only through a "node" namespace
 * (a PodNetwork) whose nftables DNAT is built from the rendered NodePort Services, as kube-proxy would translate them
 * for externalTrafficPolicy: Local (no SNAT). Shared by test/e2e/livekit-pod-network.e2e.test.ts, test/e2e/livekit-turn.e2e.test.ts
 * and the capacity benchmark (scripts/capacity/run.ts, `--livekit-modes pod`).
 *
 *   this host (the client) ── 10.254.n.0/30 ── node namespace ── 10.253.i.0/30 ── pod namespace i
 */
import { execFileSync } from 'child_process';
import type { KudoConfig } from '../../charts/config';
import { FakeKubeApi } from '../fake-kube-api';
import { Manifest, PodNetwork } from './harness';
import { LiveKitRun, prepareLiveKit } from './livekit';
import { RunningRedis, startRedis } from './redis';

/** The link between the node and its pod i; only these two namespaces have it. */
export const podLink = (i: number) => ({ node: `10.253.${i}.1`, pod: `10.253.${i}.2` });

/** A pod's network namespace, reached only through the node namespace (a PodNetwork) that routes to it. */
export class PodBehindNode {
  readonly name: string;
  readonly podAddress: string;
  /** The node's address on the pod's link. */
  readonly gateway: string;

  constructor(
    readonly node: PodNetwork,
    i = 0,
  ) {
    this.name = `${node.name}-pod${i}`;
    ({ node: this.gateway, pod: this.podAddress } = podLink(i));
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
    ip('netns', 'add', this.name);
    try {
      ip('-n', node.name, 'link', 'add', `to-pod${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.name);
      ip('-n', node.name, 'addr', 'add', `${this.gateway}/30`, 'dev', `to-pod${i}`);
      ip('-n', node.name, 'link', 'set', `to-pod${i}`, 'up');
      ip('-n', this.name, 'addr', 'add', `${this.podAddress}/30`, 'dev', 'eth0');
      ip('-n', this.name, 'link', 'set', 'eth0', 'up');
      ip('-n', this.name, 'link', 'set', 'lo', 'up');
      // Replies go back through the node, which undoes the translation.
      ip('-n', this.name, 'route', 'add', 'default', 'via', this.gateway);
      // Per namespace: the host's own setting is left alone.
      execFileSync('ip', ['netns', 'exec', node.name, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    } catch (e) {
      this.remove();
      throw e;
    }
  }

  wrap(command: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.name, command, ...args]];
  }

  remove(): void {
    execFileSync('ip', ['netns', 'delete', this.name], { stdio: 'ignore' });
  }
}

/**
 * The nftables rules that stand for the Services and the Ingress on the node, each with a counter: every port of each
 * Service to the address of the pod it selects, and the API port to the first pod (the replica the Ingress picked).
 * A pod that reaches its own Service is masqueraded to the node's address on its link, as kube-proxy marks such
 * hairpin traffic for masquerade (iptables and nftables modes): its answer then goes back through the node, which
 * undoes both translations, instead of straight to itself from an address the sender did not write to. `extra` are
 * further translations of the node's (a LoadBalancer's, say), after the Services'.
 */
export function serviceRules(nodeAddress: string, backends: [service: any, podAddress: string][], apiPort: number, extra: string[] = []): string {
  const rules = backends.flatMap(([service, podAddress]) =>
    service.spec.ports.map(
      (p: any) =>
        `    ip daddr ${nodeAddress} ${p.protocol.toLowerCase()} dport ${p.nodePort} counter dnat to ${podAddress}:${p.targetPort} comment "${service.metadata.name} ${p.name}"`,
    ),
  );
  return [
    'table ip kudo_service {',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...rules,
    ...extra.map((rule) => `    ${rule}`),
    `    ip daddr ${nodeAddress} tcp dport ${apiPort} dnat to ${backends[0][1]}:${apiPort} comment "the Ingress"`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    ...[...new Set(backends.map(([, podAddress]) => podAddress))].map((a) => `    ip saddr ${a} ip daddr ${a} counter masquerade comment "hairpin ${a}"`),
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * Packets (or bytes) a commented nft rule has counted in a namespace (in a nat chain: connections, whose first packet
 * alone it sees).
 */
export function counted(namespace: string, comment: string, what: 'packets' | 'bytes' = 'packets'): number {
  const ruleset = JSON.parse(execFileSync('ip', ['netns', 'exec', namespace, 'nft', '-j', 'list', 'ruleset'], { encoding: 'utf8' })).nftables as any[];
  const rule = ruleset.find((x) => x.rule?.comment === comment)?.rule;
  if (rule === undefined) throw new Error(`no nft rule "${comment}" in ${namespace}`);
  return rule.expr.find((e: any) => e.counter !== undefined).counter[what];
}

/** A render and the values its generated Secrets hold. */
export interface RenderedStack {
  manifests: Manifest[];
  config: KudoConfig;
  secrets: Record<string, string>;
}

/** What runs on the node beside its pods: Redis, and the API server's stand-in, which knows the node by name. */
export interface NodeServices {
  redis: RunningRedis;
  api: FakeKubeApi;
  apiUrl: string;
  nodeName: string;
}

/**
 * Redis on the node, and the API server's stand-in holding the node as `nodeName`, the node namespace's address its
 * InternalIP and `externalIp` its ExternalIP (what LiveKit advertises, and what the clients on this host reach). The
 * caller stops both (`redis.program.stop()`, `api.stop()`).
 */
export async function startNodeServices(r: RenderedStack, node: PodNetwork, nodeName: string, externalIp = node.podAddress): Promise<NodeServices> {
  const redis = await startRedis(r.manifests, r.config, r.secrets, node);
  const api = new FakeKubeApi();
  const apiUrl = await api.start();
  api.putNode(nodeName, [
    { type: 'InternalIP', address: node.podAddress },
    { type: 'ExternalIP', address: externalIp },
  ]);
  return { redis, api, apiUrl, nodeName };
}

/**
 * LiveKit as the StatefulSet's pod `podName` (livekit.hostNetwork false) in `pod`'s namespace, with the rendered ports,
 * reaching Redis on the node's address of the pod's link (Redis's Service). Prepared, not started (`startLiveKit`).
 */
export function prepareLiveKitInPod(r: RenderedStack, pod: PodBehindNode, on: NodeServices, podName: string, turnTls?: Record<string, string>): Promise<LiveKitRun> {
  return prepareLiveKit(
    r.manifests,
    r.config,
    r.secrets,
    pod as unknown as PodNetwork,
    on.redis.port,
    on.apiUrl,
    on.nodeName,
    (cfg) => {
      cfg.redis.address = `${pod.gateway}:${on.redis.port}`; // LOOPBACK_REWRITES.hosts: Redis's Service is the node's address on the pod's link
    },
    { podName },
    turnTls,
  );
}
