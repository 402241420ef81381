/** The stack as a whole: its sizing profile, its names (domain, server name, public hosts) and its namespaces. */
import type { Fragments } from './shared';

/** The config keys profile, domain, serverName, hosts, namespaces: schema, defaults and documentation. */
export function stackFragment({ z, dnsName, dnsLabel }: Fragments) {
  return {
    /**
     * Sizing: `small` (the defaults below) fits a single 2 vCPU / 4 GiB node;
     * `production` raises resources, storage and Synapse's database pool
     * (PRODUCTION_PROFILE). Keys you set win over either.
     */
    profile: z.enum(['small', 'production']).default('small'),
    /** Base DNS domain; the public hosts default to matrix.<domain>, livekit.<domain> and turn.<domain>. */
    domain: dnsName.default('example.com'),
    /** The Matrix server name (the part after ":" in user IDs). Defaults to `domain`. */
    serverName: dnsName.optional(),
    hosts: z
      .strictObject({
        matrix: dnsName.optional(),
        livekit: dnsName.optional(),
        turn: dnsName.optional(),
      })
      .prefault({}),
    namespaces: z
      .strictObject({
        /** Everything that is not host-network: PostgreSQL, Synapse, Redis, Jobs. Pod Security `restricted`. */
        stack: dnsLabel.default('kudo'),
        /** LiveKit and coturn, which bind the node's network. Pod Security `privileged` (docs/networking.md, "Networking"). */
        hostNetwork: dnsLabel.default('kudo-media'),
        /** Where the Kudo application runs; receives the `kudo-app` credentials Secret. */
        app: dnsLabel.default('kudo-app'),
      })
      .prefault({}),
  };
}
