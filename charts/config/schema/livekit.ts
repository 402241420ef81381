/** LiveKit: the SFU, its media ports and the address it advertises. */
import type { z as Z } from 'zod';
import { isIP } from 'net';
import { LIVEKIT_API_PORT, LIVEKIT_METRICS_PORT, LIVEKIT_PORTS_PER_PARTICIPANT, NODE_PORT_RANGE, rangesOverlap } from '../../ports';
import type { Fragments } from './shared';

/**
 * LiveKit's node_ip: one address, or one of each family as "<IPv4>,<IPv6>". LiveKit 1.13.11 does not refuse more: it
 * keeps the first of two IPv6 addresses and ignores a list of three, advertising an address of its own (seen with the
 * binary), so the config refuses them.
 */
function isNodeIp(v: string): boolean {
  const families = v.split(',').map((a) => isIP(a));
  return families.length <= 2 && !families.includes(0) && new Set(families).size === families.length;
}

/** The config keys livekit: schema, defaults and documentation. */
export function livekitFragment({ z, port, labelMap, resources, image }: Fragments) {
  return {
    livekit: z
      .strictObject({
        image: image('docker.io/livekit/livekit-server', 'v1.13.11'),
        replicas: z.number().int().min(1).max(100).default(1),
        resources: resources('500m', '512Mi', '2', '1Gi'),
        /** Nodes that may run LiveKit (on the host network: one pod per node). */
        nodeSelector: labelMap.default({}),
        /**
         * true: LiveKit on the node's network, one pod per node (Pod Security `privileged`).
         * false: an ordinary pod that meets `restricted`, in a StatefulSet, each replica behind a NodePort Service
         * of its own: replica i takes media on UDP livekit.rtc.udpPort + i and TCP livekit.rtc.tcpPort + i, which
         * are also its Service's NodePorts (docs/livekit-without-host-network.md).
         */
        hostNetwork: z.boolean().default(true),
        /**
         * The most participants one LiveKit node is planned to hold at once. LiveKit
         * does not enforce it: it sizes the UDP port range, which must hold two
         * ports per participant (publisher and subscriber PeerConnection) for each
         * node address LiveKit gathers candidates on.
         */
        participantsPerNode: z.number().int().min(1).max(30000).default(250),
        rtc: z
          .strictObject({
            /** ICE over TCP, for clients whose UDP is blocked. */
            tcpPort: port.default(7881),
            /**
             * One UDP port (UDP mux) for all media instead of the port range; LiveKit
             * uses one or the other, never both. @default - unset: the port range is used
             */
            udpPort: port.optional(),
            /**
             * UDP media ports, one per PeerConnection and node address: room for
             * participantsPerNode on two addresses. Below Linux's ephemeral ports
             * (32768-60999), which the kernel hands to outgoing connections, and
             * Kubernetes' NodePorts (30000-32767).
             */
            portRangeStart: port.default(20000),
            portRangeEnd: port.default(20999),
            /**
             * The address LiveKit advertises to clients (its ICE candidates):
             * node-external-ip: each node's ExternalIP, read from the Kubernetes API at start (no internet needed);
             * host-ip: the node's own address (status.hostIP), for nodes whose NIC holds the public address, or LANs;
             * stun: asked of `stunServers` at every start (needs UDP to them);
             * load-balancer (livekit.hostNetwork false): each replica's Service becomes a LoadBalancer, and the replica
             * advertises that load balancer's address, read from the Service at start (docs/livekit-without-host-network.md).
             */
            nodeAddress: z.enum(['node-external-ip', 'host-ip', 'stun', 'load-balancer']).default('node-external-ip'),
            /**
             * One public address for every LiveKit node (a single node, or a shared address); skips the lookup. An IPv4,
             * an IPv6, or one of each as "<IPv4>,<IPv6>": LiveKit advertises each family's host candidates at that family's.
             */
            publicIp: z
              .string()
              .refine(isNodeIp, {
                message: 'must be an IPv4 address, an IPv6 address, or one of each as "<IPv4>,<IPv6>" (LiveKit\'s node_ip takes at most one address of each family)',
              })
              .optional(),
            /** STUN servers ("host:port") for nodeAddress stun; none is assumed, public ones only if listed. */
            stunServers: z.array(z.string().regex(/^[a-z0-9.-]+:[0-9]{1,5}$/, 'must be "host:port", e.g. "stun.example.com:3478"')).default([]),
          })
          .prefault({}),
        /**
         * LiveKit's built-in TURN, instead of coturn (coturn.enabled false; needs livekit.hostNetwork false): for clients
         * whose UDP is blocked or that only get out through TLS. Its host name is hosts.turn, with a certificate from
         * cert-manager (docs/livekit-without-host-network.md).
         */
        turn: z
          .strictObject({
            enabled: z.boolean().default(false),
            /**
             * TURN over UDP, at each node's address like the media: replica i takes udpPort + i, also its NodePort, so
             * the operator picks it in the NodePort range (required with enabled).
             */
            udpPort: port.optional(),
            /** TURN over TLS in the pod; clients reach it on 443 through the LoadBalancer Service livekit-turn. */
            tlsPort: port.default(5349),
          })
          .prefault({}),
      })
      .prefault({}),
  };
}

/**
 * Profile production's values for livekit (PRODUCTION_PROFILE in index.ts).
 * Four times small's CPU, four times the people: the UDP range holds them on two node addresses.
 * Two nodes (one pod per node): a lost node ends its rooms, not every call.
 */
export const LIVEKIT_PRODUCTION = {
  replicas: 2,
  resources: { requests: { cpu: '2', memory: '2Gi' }, limits: { cpu: '8', memory: '8Gi' } },
  participantsPerNode: 1000,
  rtc: { portRangeStart: 20000, portRangeEnd: 23999 },
} as const;

/** LiveKit's settings as the schema gives them. */
export type LivekitConfig = Z.output<ReturnType<typeof livekitFragment>['livekit']>;

/** LiveKit's settings together, and the Redis its nodes share rooms through. */
export function livekitProblems(c: { readonly livekit: LivekitConfig; readonly redis: { readonly enabled: boolean } }): string[] {
  const problems: string[] = [];
  if (!c.redis.enabled && c.livekit.replicas > 1) problems.push(`livekit.replicas ${c.livekit.replicas} needs redis.enabled: LiveKit nodes share rooms through Redis`);
  const rtc = c.livekit.rtc;
  if (rtc.nodeAddress === 'stun' && rtc.stunServers.length === 0) {
    problems.push('livekit.rtc.stunServers must list the STUN servers to ask when livekit.rtc.nodeAddress is "stun" (LiveKit would otherwise ask Google\'s)');
  }
  if (rtc.nodeAddress !== 'stun' && rtc.stunServers.length > 0) problems.push('livekit.rtc.stunServers is used only when livekit.rtc.nodeAddress is "stun"');
  if (rtc.nodeAddress === 'load-balancer' && c.livekit.hostNetwork) {
    problems.push(
      'livekit.rtc.nodeAddress load-balancer needs livekit.hostNetwork false: on the host network no Service stands in front of LiveKit ' +
        "(it advertises its node's address); off it, each replica's Service is a LoadBalancer whose address it advertises",
    );
  }
  if (rtc.publicIp !== undefined && rtc.nodeAddress !== 'node-external-ip') {
    problems.push('livekit.rtc.publicIp is used only when livekit.rtc.nodeAddress is "node-external-ip" (the default)');
  }
  if (rtc.portRangeStart > rtc.portRangeEnd) {
    problems.push(`livekit.rtc.portRangeStart (${rtc.portRangeStart}) is larger than livekit.rtc.portRangeEnd (${rtc.portRangeEnd})`);
  } else if (rtc.udpPort === undefined) {
    // Out of ports, LiveKit cannot create a PeerConnection: the participant gets no media at all.
    const ports = rtc.portRangeEnd - rtc.portRangeStart + 1;
    const needed = LIVEKIT_PORTS_PER_PARTICIPANT * c.livekit.participantsPerNode;
    if (ports < needed) {
      problems.push(
        `livekit.rtc.portRangeStart-portRangeEnd ${rtc.portRangeStart}-${rtc.portRangeEnd} has ${ports} ports, fewer than the ${needed} that ` +
          `livekit.participantsPerNode (${c.livekit.participantsPerNode}) needs: each participant holds two PeerConnections, each with a UDP port ` +
          `(per node address LiveKit gathers on); widen the range to at least ${rtc.portRangeStart}-${rtc.portRangeStart + needed - 1}, ` +
          'or set livekit.rtc.udpPort to share one port',
      );
    }
  }
  return problems;
}

/**
 * livekit.hostNetwork false: each replica i listens on udpPort + i and tcpPort + i, which are also its NodePorts
 * (a client reaches the port LiveKit puts in its candidates), so both spans must lie in the NodePort range, apart.
 */
export function livekitPodNetworkProblems(c: {
  readonly livekit: LivekitConfig;
  readonly coturn: { readonly enabled: boolean; readonly relayPorts: { readonly min: number; readonly max: number } };
}): string[] {
  const lk = c.livekit;
  if (lk.hostNetwork) return [];
  const problems: string[] = [];
  const { min, max } = NODE_PORT_RANGE;
  const last = lk.replicas - 1;
  const span = (first: number) => (last === 0 ? `${first}` : `${first}-${first + last}`);
  const take = last === 0 ? 'the replica takes' : `replicas 0-${last} take`;
  const { udpPort, tcpPort } = lk.rtc;
  if (udpPort === undefined) {
    problems.push(
      `livekit.hostNetwork false takes media on one UDP port per replica: set livekit.rtc.udpPort to the first replica's NodePort (${min}-${max}; replica i uses udpPort + i)`,
    );
  }
  // LiveKit's TURN over UDP is reached at each replica's node address, like its media (TLS goes through one Service on 443).
  const turnUdp = lk.turn.enabled ? lk.turn.udpPort : undefined;
  if (lk.turn.enabled && turnUdp === undefined) {
    problems.push(
      `livekit.turn.enabled takes TURN over UDP on one NodePort per replica: set livekit.turn.udpPort to the first replica's (${min}-${max}; replica i uses udpPort + i)`,
    );
  }
  const turn: [string, number][] = turnUdp !== undefined ? [['livekit.turn.udpPort', turnUdp]] : [];
  const spans: [string, number][] = [['livekit.rtc.tcpPort', tcpPort], ...(udpPort !== undefined ? [['livekit.rtc.udpPort', udpPort] as [string, number]] : []), ...turn];
  for (const [key, first] of spans) {
    if (first < min || first + last > max) {
      problems.push(`${key} ${first}: with livekit.hostNetwork false it is the first replica's NodePort, and ${take} ${span(first)}; ` + `NodePorts are ${min}-${max}`);
    }
  }
  // Pairs in the order udpPort, tcpPort, then the TURN ports: a NodePort is given to one Service port only.
  const ordered = [...spans.filter(([k]) => k === 'livekit.rtc.udpPort'), ...spans.filter(([k]) => k !== 'livekit.rtc.udpPort')];
  for (const [i, [keyA, a]] of ordered.entries()) {
    for (const [keyB, b] of ordered.slice(i + 1)) {
      if (rangesOverlap(a, a + last, b, b + last)) {
        problems.push(`${keyA} ${span(a)} and ${keyB} ${span(b)} overlap: each replica's Service takes its ports as NodePorts, ` + 'and a NodePort is given to one Service only');
      }
    }
  }
  const relay = c.coturn.relayPorts;
  for (const [key, first] of c.coturn.enabled ? spans : []) {
    if (rangesOverlap(first, first + last, relay.min, relay.max)) {
      problems.push(`coturn.relayPorts ${relay.min}-${relay.max} include LiveKit's NodePorts ${span(first)} (${key}); kube-proxy takes those ports on every node`);
    }
  }
  return problems;
}

/**
 * One TURN server: coturn, or LiveKit's own (livekit.turn). LiveKit tells clients `turns:<turn.domain>:443` whatever
 * turn.tls_port is (roommanager.go, iceServersForParticipant), so its TLS port must be reached on 443: a Service maps
 * it, which the node's network cannot (LiveKit there has no capability to bind 443).
 */
export function livekitTurnProblems(c: { readonly livekit: LivekitConfig; readonly coturn: { readonly enabled: boolean } }): string[] {
  const lk = c.livekit;
  const problems: string[] = [];
  if (!c.coturn.enabled && !lk.turn.enabled) {
    problems.push(
      'coturn.enabled false leaves calls without a TURN server (clients behind strict NATs and firewalls could not join): ' +
        "set livekit.turn.enabled true for LiveKit's built-in TURN, or coturn.enabled true",
    );
  }
  if (c.coturn.enabled && lk.turn.enabled) {
    problems.push("livekit.turn.enabled and coturn.enabled are both true: the stack runs one TURN server; set coturn.enabled false to use LiveKit's");
  }
  if (!lk.turn.enabled) return problems;
  if (lk.hostNetwork) {
    problems.push(
      'livekit.turn.enabled needs livekit.hostNetwork false: LiveKit sends clients to TURN over TLS on port 443 whatever livekit.turn.tlsPort is, ' +
        "and on the node's network it cannot bind 443 (no capabilities); off it, a LoadBalancer Service takes 443 to livekit.turn.tlsPort",
    );
    return problems;
  }
  const tls = lk.turn.tlsPort;
  const last = lk.replicas - 1;
  // The pod's own TCP ports: the TLS port is the same in every replica, beside its API, metrics and TCP media ports.
  if (tls < 1024) problems.push(`livekit.turn.tlsPort ${tls}: LiveKit (non-root, no capabilities) can bind ports from 1024 only; the Service takes 443 to it`);
  for (const [p, name] of [
    [LIVEKIT_API_PORT, `LiveKit's API port ${LIVEKIT_API_PORT}`],
    [LIVEKIT_METRICS_PORT, `LiveKit's metrics port ${LIVEKIT_METRICS_PORT}`],
  ] as const) {
    if (tls === p) problems.push(`livekit.turn.tlsPort ${tls} collides with ${name}`);
  }
  const tcp = lk.rtc.tcpPort;
  if (rangesOverlap(tls, tls, tcp, tcp + last)) problems.push(`livekit.turn.tlsPort ${tls} collides with livekit.rtc.tcpPort, which replicas take from ${tcp} to ${tcp + last}`);
  return problems;
}
