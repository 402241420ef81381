/**
 * The configs the cluster tests render (test/cluster/configs.ts) are accepted by the config: a cluster test whose config
 * a new refusal rejects fails here, in `npm test`, and not only in the cluster step. 3 is the production topology's
 * node count (test/cluster/cluster.ts, TOPOLOGIES.production).
 */
import { resolveConfig } from '../charts/config';
import { livekitOwnTurn, livekitPodNetwork, productionPerNode, TRANSITIONS, upgradePrevious } from './cluster/configs';

const CONFIGS: [string, object][] = [
  ['livekit-pod-network', livekitPodNetwork(3)],
  ['livekit-own-turn', livekitOwnTurn(3)],
  ['placement and upgrade (current)', productionPerNode(3)],
  ['placement, one LiveKit replica more than nodes', { ...productionPerNode(3), livekit: { replicas: 4 } }],
  ['upgrade (previous)', upgradePrevious(3)],
  ...Object.entries(TRANSITIONS).map(([step, c]): [string, object] => [`transitions: ${step}`, c]),
];

test.each(CONFIGS)('%s: accepted', (_, c) => {
  expect(() => resolveConfig(c, 'cluster test')).not.toThrow();
});

test('the check can fail: the waiver for Redis with LiveKit off the host network is refused', () => {
  expect(() => resolveConfig({ ...livekitPodNetwork(3), networkPolicies: { redisClosed: { waived: 'x' } } }, 'cluster test')).toThrow(
    'networkPolicies.redisClosed.waived is set, but LiveKit is off the host network',
  );
});
