/** The NetworkPolicies: default-deny, then the flows the stack needs. */
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
         * The nodes' addresses. LiveKit runs on the host network, so Redis sees it
         * as a node address; unset, Redis accepts any address (it still needs its password).
         */
        nodeCidrs: z.array(cidr).default([]),
        /**
         * The cluster's pod and Service ranges (k3s: 10.42.0.0/16, 10.43.0.0/16). Federation and push
         * gateways, whose addresses others choose, never reach them; unset, only the nodes' are left out.
         */
        clusterCidrs: z.array(cidr).default([]),
      })
      .prefault({}),
  };
}
