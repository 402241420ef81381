/** The configs the capacity benchmark renders (scripts/capacity/run.ts), checked by test/capacity-configs.test.ts. */
export type Profile = 'small' | 'production';
/**
 * How LiveKit is deployed in the calls part: `host` is livekit.hostNetwork true (the default: the node's network, its
 * UDP range); `pod` is livekit.hostNetwork false (the StatefulSet's replica 0 in a network namespace of its own behind a
 * node namespace that translates its NodePort Service livekit-rtc-0, as in test/e2e/livekit-pod-network.e2e.test.ts).
 */
export type LiveKitMode = 'host' | 'pod';

/** livekit.hostNetwork false: the NodePorts of replica 0's Service (those of test/e2e/livekit-pod-network.e2e.test.ts). */
export const POD_MODE_RTC = { udpPort: 31000, tcpPort: 31100 };

/**
 * The profile's config, with LiveKit on the host network or off it. Production's off-site backup copy is waived
 * (backups are not measured here), and so is its closed Redis where there is something to waive: off the host network
 * Redis admits LiveKit by its labels, and the config refuses the waiver.
 */
export function benchConfig(profile: Profile, mode: LiveKitMode = 'host'): object {
  const livekit = mode === 'pod' ? { livekit: { hostNetwork: false, rtc: POD_MODE_RTC } } : {};
  if (profile === 'small') return { profile, ...livekit };
  return {
    profile,
    backup: { offsite: { waived: 'capacity benchmark: backups are not measured' } },
    ...(mode === 'host' ? { networkPolicies: { redisClosed: { waived: 'capacity benchmark: NetworkPolicies are not measured' } } } : {}),
    ...livekit,
  };
}
