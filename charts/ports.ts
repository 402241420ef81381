/** Fixed ports (not configurable: clients and firewalls expect them). */
export const LIVEKIT_API_PORT = 7880;
export const LIVEKIT_METRICS_PORT = 6789;
export const TURN_PORT = 3478;
export const TURN_TLS_PORT = 5349;
export const TURN_METRICS_PORT = 9641;

/** Kubernetes' default NodePort range (kube-apiserver --service-node-port-range). */
export const NODE_PORT_RANGE = { min: 30000, max: 32767 } as const;

/** UDP ports a LiveKit participant takes per node address: one per PeerConnection (publisher, subscriber). */
export const LIVEKIT_PORTS_PER_PARTICIPANT = 2;

/**
 * How many allocations coturn's relay range can always serve: the even/odd pairs
 * in it. An Allocate with EVEN-PORT and the R bit takes an even port and the one
 * above it; a plain one takes one port, and so spoils at most one pair.
 */
export function relayPortPairs(min: number, max: number): number {
  const first = min + (min % 2);
  return max < first ? 0 : Math.floor((max - first + 1) / 2);
}

/** Whether two port ranges (first and last, both included) share a port. */
export function rangesOverlap(a1: number, a2: number, b1: number, b2: number): boolean {
  return a1 <= b2 && b1 <= a2;
}
