/**
 * The configs the cluster tests render beyond the stock ones (the defaults, test/util.ts's PRODUCTION as it is): here so
 * that test/cluster-configs.test.ts can check in `npm test` that the config accepts each, where a refusal would
 * otherwise show only when the cluster tests run. `nodes` is the production topology's node count.
 */
import { PRODUCTION } from '../util';

/** LiveKit off the host network, one replica per node (livekit-pod-network). PRODUCTION without its waiver for Redis: with LiveKit off the host network Redis admits it by its labels, and the waiver is refused. */
export const livekitPodNetwork = (nodes: number) => ({
  ...PRODUCTION,
  networkPolicies: {},
  livekit: { hostNetwork: false, replicas: nodes, rtc: { udpPort: 31000, tcpPort: 31100 } },
});

/** LiveKit's own TURN with coturn off (livekit-own-turn): production as PRODUCTION has it, without a waiver for Redis (off the host network it is closed). */
export const livekitOwnTurn = (nodes: number) => ({
  profile: 'production',
  backup: { offsite: { waived: 'a test of something else' } },
  coturn: { enabled: false },
  livekit: { hostNetwork: false, replicas: nodes, rtc: { udpPort: 31000, tcpPort: 31100 }, turn: { enabled: true, udpPort: 31200 } },
});

/** Production with a LiveKit replica per node (placement, upgrade). */
export const productionPerNode = (nodes: number) => ({ ...PRODUCTION, livekit: { replicas: nodes } });

/** The release before the current one's images and a changed setting (upgrade). */
export const upgradePrevious = (nodes: number) => {
  const current = productionPerNode(nodes);
  return {
    ...current,
    postgres: { image: { tag: '17.10-bookworm' } },
    synapse: { image: { tag: 'v1.162.0' }, logLevel: 'WARNING' },
    redis: { image: { tag: '7.4.9-bookworm' } },
    livekit: { ...current.livekit, image: { tag: 'v1.13.10' } },
    coturn: { image: { tag: '4.17.1' } },
  };
};

const S3 = { enabled: true, repository: 's3:https://s3.example.com/kudo-backups/kudo' };
/**
 * Production over a small install keeps the claims' sizes: a StatefulSet's
 * volumeClaimTemplates cannot change and a bound claim grows only on a
 * StorageClass that allows expansion (docs/operations.md, "Changing the config of a running stack").
 */
const SMALL_SIZES = { postgres: { storage: { size: '10Gi' } }, synapse: { media: { size: '20Gi' } }, backup: { storage: { size: '50Gi' } } };
const CNPG = { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres', endpointURL: 'https://minio.example.org:9000' } } };
// Production refuses Redis open to every private address (issue 25): the nodes' addresses, as an operator lists them.
const NODES = { nodeCidrs: ['10.0.0.0/16'] };
/** Production over a small install's sizes, with off-site backups and monitoring: the transitions' production step. */
const PRODUCTION_STEP = {
  ...SMALL_SIZES,
  profile: 'production',
  networkPolicies: NODES,
  backup: { ...SMALL_SIZES.backup, s3: S3 },
  monitoring: { enabled: true },
};
/** The same with PostgreSQL moved to CloudNativePG. */
const CNPG_STEP = { ...PRODUCTION_STEP, postgres: { ...SMALL_SIZES.postgres, ...CNPG } };

/** The steps of the transitions test, each a config an installation moves between. */
export const TRANSITIONS = {
  small: {},
  offsite: { backup: { s3: S3 } },
  monitoring: { backup: { s3: S3 }, monitoring: { enabled: true } },
  production: PRODUCTION_STEP,
  productionUnpinned: { profile: 'production', networkPolicies: NODES, backup: { s3: S3 }, monitoring: { enabled: true } },
  cnpg: CNPG_STEP,
  noBackups: { ...CNPG_STEP, backup: { enabled: false, offsite: { waived: 'the transitions test turns backups off' } } },
};
