/** The NetworkPolicies: default-deny, then the flows the stack needs. */
import type { z as Z } from 'zod';
import type { Fragments } from './shared';

/** The config keys networkPolicies: schema, defaults and documentation. */
export function networkPoliciesFragment({ z, dnsLabel, cidr }: Fragments) {
  return {
    networkPolicies: z
      .strictObject({
        /** Default-deny in the stack namespace, then only the flows the stack needs. */
        enabled: z.boolean().default(true),
        /** Where the cluster DNS pods run. */
        dnsNamespace: dnsLabel.default('kube-system'),
        /**
         * The nodes' addresses. LiveKit runs on the host network, so Redis sees it as the address its node's traffic
         * leaves from (on an overlay such as flannel's VXLAN, the node's tunnel or bridge address in its pod range);
         * unset, Redis accepts every private address (it still needs its password), which profile production refuses
         * without redisClosed.waived.
         */
        nodeCidrs: z.array(cidr).default([]),
        /**
         * The cluster's pod and Service ranges (k3s: 10.42.0.0/16, 10.43.0.0/16). Federation and push
         * gateways, whose addresses others choose, never reach them; unset, only the nodes' are left out.
         */
        clusterCidrs: z.array(cidr).default([]),
        /**
         * `profile: production` refuses to leave Redis open to every private address (LiveKit on the host network
         * without nodeCidrs) unless this says why; `npm run checklist` prints the reason with its warning.
         */
        redisClosed: z
          .strictObject({
            waived: z.string().trim().min(1, 'must give the reason Redis may admit every private address (e.g. "single-tenant test cluster")').optional(),
          })
          .prefault({}),
      })
      .prefault({}),
  };
}

/** The NetworkPolicies' settings as the schema gives them. */
export type NetworkPoliciesConfig = Z.output<ReturnType<typeof networkPoliciesFragment>['networkPolicies']>;

/**
 * Redis speaks plain TCP with one shared password. LiveKit on the host network reaches it from a node address, which
 * no selector matches: without nodeCidrs its policy admits every private address, so every pod of every namespace.
 * Production closes it, or says why not; a waiver where Redis is closed already would print a warning that is not true.
 */
export function redisClosedProblems(c: {
  readonly profile: string;
  readonly networkPolicies: NetworkPoliciesConfig;
  readonly redis: { readonly enabled: boolean };
  readonly livekit: { readonly hostNetwork: boolean };
}): string[] {
  const np = c.networkPolicies;
  const waived = np.redisClosed.waived !== undefined;
  if (waived && np.nodeCidrs.length > 0) {
    return [
      "networkPolicies.redisClosed.waived is set, but networkPolicies.nodeCidrs lists the nodes' addresses: Redis admits only them and Synapse's processes; remove the waiver",
    ];
  }
  if (waived && !c.livekit.hostNetwork) {
    return ['networkPolicies.redisClosed.waived is set, but LiveKit is off the host network (livekit.hostNetwork: false): Redis admits it by its labels; remove the waiver'];
  }
  const open = np.enabled && c.redis.enabled && c.livekit.hostNetwork && np.nodeCidrs.length === 0;
  if (c.profile !== 'production' || !open || waived) return [];
  return [
    'profile "production" leaves Redis open to every namespace: LiveKit runs on the host network (livekit.hostNetwork: true) and networkPolicies.nodeCidrs ' +
      'is empty, so the redis NetworkPolicy admits every private address, every pod of every namespace among them, to a Redis that speaks plain TCP with ' +
      "one shared password. Close it by listing the nodes' addresses in networkPolicies.nodeCidrs, or by running LiveKit off the host network " +
      '(livekit.hostNetwork: false, which needs livekit.rtc.udpPort; docs/livekit-without-host-network.md), or waive it with ' +
      'networkPolicies.redisClosed.waived: "<the reason>" (npm run checklist prints it)',
  ];
}
