/** coturn: the TURN relay, its ports and quotas. */
import { isIP } from 'net';
import type { z as Z } from 'zod';
import { LIVEKIT_API_PORT, LIVEKIT_METRICS_PORT, rangesOverlap, relayPortPairs, TURN_METRICS_PORT, TURN_PORT, TURN_TLS_PORT } from '../../ports';
import type { LivekitConfig } from './livekit';
import type { Fragments } from './shared';
import { isCidr, REFINEMENTS } from './shared';

/**
 * coturn.publicIp: an IPv4, and an IPv6 refused with why rather than as "not an IPv4" (the schema's check, outside it:
 * a reporter, as shared.ts's REFINEMENTS are).
 */
export function coturnPublicIp(v: string, ctx: { addIssue(issue: { code: 'custom'; message: string }): void }): void {
  if (isIP(v) === 6) {
    ctx.addIssue({
      code: 'custom',
      message:
        "an IPv6 address cannot be given here: it is the public half of external-ip=PUBLIC/PRIVATE for the node's IPv4 (status.hostIP), " +
        "and coturn's IPv6 is the node's own, looked up at start and listened on as it is",
    });
  } else if (isIP(v) !== 4) {
    ctx.addIssue({ code: 'custom', message: 'must be an IPv4 address such as "203.0.113.10"' });
  }
}

/** The config keys coturn: schema, defaults and documentation. */
export function coturnFragment({ z, port, labelMap, resources, image }: Fragments) {
  return {
    coturn: z
      .strictObject({
        /**
         * false: no coturn; calls relay through LiveKit's built-in TURN (livekit.turn), and Synapse hands out no TURN
         * servers, so its legacy 1:1 VoIP calls have none (docs/calls.md).
         */
        enabled: z.boolean().default(true),
        image: image('docker.io/coturn/coturn', '4.18.0'),
        resources: resources('100m', '64Mi', '1', '256Mi'),
        /** Nodes that run coturn. Label them: kubectl label node NAME kudo/turn=true */
        nodeSelector: labelMap.default({ 'kudo/turn': 'true' }),
        /**
         * The node's public IPv4 when it is not on the node's ExternalIP address; unset = read it from the Node. An
         * IPv6 is refused with why: coturn listens on the node's IPv6 as it is, found by the lookup (start.sh).
         */
        publicIp: z.string().superRefine(coturnPublicIp).optional(),
        /**
         * UDP relay ports: an even/odd pair for every allocation totalQuota allows
         * (an Allocate with EVEN-PORT takes both). Below the kernel's ephemeral ports
         * and Kubernetes' NodePorts, like LiveKit's range.
         */
        relayPorts: z.strictObject({ min: port.default(10000), max: port.default(12399) }).prefault({}),
        /**
         * Concurrent allocations per user name (LiveKit's credentials name the participant,
         * Synapse's the Matrix user) and on one TURN node in total. A LiveKit participant
         * holds up to four (two PeerConnections, each on the UDP and the TLS TURN URL).
         */
        userQuota: z.number().int().min(0).default(12),
        totalQuota: z
          .number()
          .int()
          .min(0)
          .refine(REFINEMENTS.nonZero, { message: '0 means no limit, which no relay range can serve: set the most allocations one TURN node may hold' })
          .default(1200),
        /** Lifetime of the TURN credentials LiveKit and Synapse hand out, in seconds. */
        credentialTtlSeconds: z.number().int().min(60).max(86400).default(3600),
        /** More peer ranges the relay must never reach (your nodes', pods' and services' public ranges, a VPN), as IPv4 or IPv6 CIDRs. */
        extraDeniedPeerIps: z.array(z.string().refine(isCidr, { message: 'must be an IPv4 or IPv6 CIDR such as "203.0.113.0/24" or "2001:db8::/32"' })).default([]),
        tls: z
          .strictObject({
            /** The lowest TLS version TURNS accepts: 1.2 (coturn's own minimum with OpenSSL 3) or 1.3 (coturn's no-tlsv1_2). */
            minVersion: z.enum(['1.2', '1.3']).default('1.2'),
          })
          .prefault({}),
      })
      .prefault({}),
  };
}

/**
 * Profile production's values for coturn (PRODUCTION_PROFILE in index.ts).
 * Four allocations for each of a LiveKit node's participants; an even/odd relay pair for each.
 */
export const COTURN_PRODUCTION = {
  resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '4', memory: '1Gi' } },
  totalQuota: 4000,
  relayPorts: { min: 10000, max: 17999 },
} as const;

/** coturn's settings as the schema gives them. */
export type CoturnConfig = Z.output<ReturnType<typeof coturnFragment>['coturn']>;

/** The relay range holds an even/odd pair for every allocation the quota allows. */
export function coturnProblems(c: { readonly coturn: CoturnConfig }): string[] {
  const problems: string[] = [];
  const relay = c.coturn.relayPorts;
  if (relay.min > relay.max) {
    problems.push(`coturn.relayPorts.min (${relay.min}) is larger than coturn.relayPorts.max (${relay.max})`);
  } else {
    // Past the last free pair coturn answers 508 (Insufficient Capacity) whatever total-quota says.
    const pairs = relayPortPairs(relay.min, relay.max);
    const quota = c.coturn.totalQuota;
    if (pairs < quota) {
      const first = relay.min + (relay.min % 2);
      problems.push(
        `coturn.relayPorts ${relay.min}-${relay.max} hold ${pairs} even/odd port pairs, fewer than coturn.totalQuota (${quota}): ` +
          'an allocation may take a pair (EVEN-PORT, for RTP and RTCP), so coturn would run out of ports before the quota refuses anyone; ' +
          `widen coturn.relayPorts to ${first}-${first + 2 * quota - 1} or lower coturn.totalQuota`,
      );
    }
  }
  return problems;
}

/** LiveKit and coturn both bind host ports: none of theirs may collide. */
export function hostPortProblems(c: { readonly livekit: LivekitConfig; readonly coturn: CoturnConfig }): string[] {
  const problems: string[] = [];
  // Without coturn, LiveKit's own ports are livekitTurnProblems' to check.
  if (!c.coturn.enabled) return problems;
  const rtc = c.livekit.rtc;
  const relay = c.coturn.relayPorts;
  // LiveKit and coturn may share a node, and both bind the host's ports.
  const lk = new Map<number, string>([
    [LIVEKIT_API_PORT, `LiveKit API port ${LIVEKIT_API_PORT}`],
    [LIVEKIT_METRICS_PORT, `LiveKit metrics port ${LIVEKIT_METRICS_PORT}`],
  ]);
  lk.set(rtc.tcpPort, 'livekit.rtc.tcpPort');
  if (rtc.udpPort !== undefined) lk.set(rtc.udpPort, 'livekit.rtc.udpPort');
  const turnPorts = [
    [TURN_PORT, `coturn listening port ${TURN_PORT}`],
    [TURN_TLS_PORT, `coturn TLS port ${TURN_TLS_PORT}`],
    [TURN_METRICS_PORT, `coturn metrics port ${TURN_METRICS_PORT}`],
  ] as const;
  for (const [p, name] of turnPorts) {
    if (lk.has(p)) problems.push(`${lk.get(p)} collides with the ${name}`);
    if (rtc.udpPort === undefined && p >= rtc.portRangeStart && p <= rtc.portRangeEnd) {
      problems.push(`livekit.rtc.portRange ${rtc.portRangeStart}-${rtc.portRangeEnd} includes the ${name}`);
    }
    if (p >= relay.min && p <= relay.max) problems.push(`coturn.relayPorts ${relay.min}-${relay.max} include the ${name}`);
  }
  for (const [p, name] of lk) {
    if (rtc.udpPort === undefined && p >= rtc.portRangeStart && p <= rtc.portRangeEnd) {
      problems.push(`livekit.rtc.portRange ${rtc.portRangeStart}-${rtc.portRangeEnd} includes the ${name}`);
    }
    if (p >= relay.min && p <= relay.max) problems.push(`coturn.relayPorts ${relay.min}-${relay.max} include the ${name}`);
  }
  if (rtc.udpPort === undefined && rangesOverlap(rtc.portRangeStart, rtc.portRangeEnd, relay.min, relay.max)) {
    problems.push(`livekit.rtc.portRange ${rtc.portRangeStart}-${rtc.portRangeEnd} overlaps coturn.relayPorts ${relay.min}-${relay.max}; both bind host ports`);
  }
  return problems;
}
