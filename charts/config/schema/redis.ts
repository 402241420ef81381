/** Redis, which LiveKit nodes and Synapse's workers share. */
import type { Fragments } from './shared';

/** The config keys redis: schema, defaults and documentation. */
export function redisFragment({ z, resources, image }: Fragments) {
  return {
    redis: z
      .strictObject({
        /** LiveKit needs it for more than one node, Synapse for workers (replication over pub/sub). */
        enabled: z.boolean().default(true),
        image: image('docker.io/library/redis', '7.4.10-bookworm'),
        resources: resources('50m', '64Mi', '500m', '128Mi'),
      })
      .prefault({}),
  };
}

/** Profile production's values for redis (PRODUCTION_PROFILE in index.ts). */
export const REDIS_PRODUCTION = { resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } } } as const;
