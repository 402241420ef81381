/**
 * The config schema, assembled from each component's fragment (charts/config/schema/<component>.ts) and the shared ones
 * (shared.ts), in the order the config listing (docs/configuration.md) follows.
 */
import type { z as Z } from 'zod';
import { stackFragment } from './stack';
import { routingFragment } from './routing';
import { postgresFragment, POSTGRES_PRODUCTION } from './postgres';
import { synapseFragment, SYNAPSE_PRODUCTION } from './synapse';
import { wellKnownFragment } from './well-known';
import { redisFragment, REDIS_PRODUCTION } from './redis';
import { livekitFragment, LIVEKIT_PRODUCTION } from './livekit';
import { coturnFragment, COTURN_PRODUCTION } from './coturn';
import { monitoringFragment } from './monitoring';
import { appFragment } from './app';
import { argocdFragment } from './argocd';
import { networkPoliciesFragment } from './network-policies';
import { backupFragment, BACKUP_PRODUCTION } from './backup';
import { podsFragment } from './pods';
import { secretsFragment } from './secrets';
import { sharedFragments } from './shared';

/**
 * The schema, built on first use: zod is loaded only when a config file has
 * to be checked (the embedded defaults are resolved when the bundle is built;
 * see defaultConfig()). A precompiled plan of this schema once spared a
 * config file's render loading zod; it saved 20-76 ms a render and was a
 * second validator to keep equal to this one, so it went (issue 29).
 */
function makeSchema() {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { z } = require('zod') as typeof import('zod');
  // The schema is used once per run: compiling it to a fast parser costs more than it saves.
  z.config({ jitless: true });
  const f = sharedFragments(z);
  return z.strictObject({
    ...stackFragment(f),
    ...routingFragment(f),
    ...postgresFragment(f),
    ...synapseFragment(f),
    ...wellKnownFragment(f),
    ...redisFragment(f),
    ...livekitFragment(f),
    ...coturnFragment(f),
    ...monitoringFragment(f),
    ...appFragment(f),
    ...argocdFragment(f),
    ...networkPoliciesFragment(f),
    ...backupFragment(f),
    ...podsFragment(f),
    ...secretsFragment(f),
  });
}

let builtSchema: ReturnType<typeof makeSchema> | undefined;
/** The config schema (built once). */
export function configSchema(): ReturnType<typeof makeSchema> {
  return (builtSchema ??= makeSchema());
}

/**
 * Drops the built schema: the next configSchema() builds it again. For mutation testing (test/mutation/setup.js):
 * Stryker counts a line as covered by the tests that run it, so with the schema built once only the first test of
 * each file would cover the schema's lines, and a mutant there would be tested by that test alone.
 */
export function forgetConfigSchema(): void {
  builtSchema = undefined;
}

export type RawConfig = Z.infer<ReturnType<typeof makeSchema>>;
/** A config as written (YAML or TypeScript): every key optional, defaults filled in by resolveConfig. */
export type KudoConfigInput = Z.input<ReturnType<typeof makeSchema>>;

/** What the `production` profile changes; everything else keeps the small defaults. Each component's part is beside its schema. */
export const PRODUCTION_PROFILE = {
  postgres: POSTGRES_PRODUCTION,
  synapse: SYNAPSE_PRODUCTION,
  redis: REDIS_PRODUCTION,
  livekit: LIVEKIT_PRODUCTION,
  coturn: COTURN_PRODUCTION,
  backup: BACKUP_PRODUCTION,
} as const;
