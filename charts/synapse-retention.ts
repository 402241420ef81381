/**
 * Growth: how long Synapse keeps media (homeserver.yaml `media_retention`) and messages (`retention`).
 * Both are opt-in and render nothing by default: what they delete is gone from this server.
 *
 * The config schema's fragments (synapse.mediaRetention, synapse.retention), their cross-checks and the
 * homeserver.yaml they become live here, beside the Synapse chart that writes them.
 */
import type { z as Z } from 'zod';

/**
 * Synapse's duration syntax (synapse/config/_base.py parse_duration) with its unit required: a bare number is
 * milliseconds to Synapse, which a person writing "90" means rarely.
 */
export const DURATION = /^[1-9][0-9]{0,8}[smhdwy]$/;
const DURATION_HINT = 'must be a duration such as "90d" or "12h": a whole number and one of s, m, h, d, w, y';
const UNIT_MS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3, y: 365 * 86400e3 };

/** A duration in milliseconds, as Synapse reads it. */
export function durationMs(d: string): number {
  if (!DURATION.test(d)) throw new Error(`"${d}" ${DURATION_HINT}`);
  return Number(d.slice(0, -1)) * UNIT_MS[d.slice(-1)];
}

/** synapse.mediaRetention: unset lifetimes keep that media for ever (Synapse's default). */
export interface MediaRetention {
  /** Media uploaded here and not downloaded for this long is deleted, for good. @default - kept */
  readonly localMediaLifetime?: string;
  /** Copies of other servers' media not accessed for this long are deleted; fetched again on demand. @default - kept */
  readonly remoteMediaLifetime?: string;
}

/** synapse.retention: message retention policies (rooms set theirs with m.room.retention). */
export interface MessageRetention {
  readonly enabled: boolean;
  /** The policy of rooms that set none. @default - none: such rooms keep their messages */
  readonly defaultPolicy?: { readonly minLifetime?: string; readonly maxLifetime?: string };
  /** Bounds on a room's own max_lifetime. @default - none */
  readonly allowedLifetimeMin?: string;
  readonly allowedLifetimeMax?: string;
  /** When the purge runs, for rooms whose max_lifetime is in a range. @default - one job a day for every room (Synapse's) */
  readonly purgeJobs?: readonly { readonly interval: string; readonly shortestMaxLifetime?: string; readonly longestMaxLifetime?: string }[];
}

/** The schema fragments, built with the config's zod (loaded only when a config file is checked). */
export function retentionSchemas(z: typeof Z) {
  const duration = z.string().regex(DURATION, DURATION_HINT);
  return {
    /**
     * Media retention (off by default): delete media nobody has downloaded for a while. Remote media is
     * fetched again when someone asks; local media deleted is gone (Synapse keeps avatars, quarantined
     * and protected media).
     */
    mediaRetention: z
      .strictObject({
        localMediaLifetime: duration.optional(),
        remoteMediaLifetime: duration.optional(),
      })
      .prefault({}),
    /** Message retention policies (off by default): Synapse's `retention`. */
    retention: z
      .strictObject({
        enabled: z.boolean().default(false),
        defaultPolicy: z.strictObject({ minLifetime: duration.optional(), maxLifetime: duration.optional() }).optional(),
        allowedLifetimeMin: duration.optional(),
        allowedLifetimeMax: duration.optional(),
        purgeJobs: z.array(z.strictObject({ interval: duration, shortestMaxLifetime: duration.optional(), longestMaxLifetime: duration.optional() })).optional(),
      })
      .prefault({}),
  };
}

/** What Synapse would refuse at start (min above max), and settings that would do nothing. */
export function retentionProblems(r: MessageRetention): string[] {
  const problems: string[] = [];
  const key = 'synapse.retention';
  const notAbove = (lowKey: string, low: string | undefined, highKey: string, high: string | undefined) => {
    if (low !== undefined && high !== undefined && durationMs(low) > durationMs(high)) {
      problems.push(`${key}.${lowKey} (${low}) is longer than ${key}.${highKey} (${high}); Synapse refuses to start`);
    }
  };
  notAbove('defaultPolicy.minLifetime', r.defaultPolicy?.minLifetime, 'defaultPolicy.maxLifetime', r.defaultPolicy?.maxLifetime);
  notAbove('allowedLifetimeMin', r.allowedLifetimeMin, 'allowedLifetimeMax', r.allowedLifetimeMax);
  (r.purgeJobs ?? []).forEach((j, i) => notAbove(`purgeJobs[${i}].shortestMaxLifetime`, j.shortestMaxLifetime, `purgeJobs[${i}].longestMaxLifetime`, j.longestMaxLifetime));
  const set = (['defaultPolicy', 'allowedLifetimeMin', 'allowedLifetimeMax', 'purgeJobs'] as const).filter((k) => r[k] !== undefined);
  if (!r.enabled && set.length > 0) problems.push(`${set.map((k) => `${key}.${k}`).join(', ')}: does nothing unless ${key}.enabled is true`);
  return problems;
}

/** The homeserver.yaml keys: none for what is off. */
export function retentionSettings(media: MediaRetention | undefined, r: MessageRetention | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  // The config refuses these already; a chart built without it must not pass nonsense to Synapse either.
  const check = (where: string, d: string | undefined) => {
    if (d !== undefined && !DURATION.test(d)) throw new Error(`${where}: "${d}" ${DURATION_HINT}`);
  };
  check('mediaRetention.localMediaLifetime', media?.localMediaLifetime);
  check('mediaRetention.remoteMediaLifetime', media?.remoteMediaLifetime);
  check('retention.defaultPolicy.minLifetime', r?.defaultPolicy?.minLifetime);
  check('retention.defaultPolicy.maxLifetime', r?.defaultPolicy?.maxLifetime);
  check('retention.allowedLifetimeMin', r?.allowedLifetimeMin);
  check('retention.allowedLifetimeMax', r?.allowedLifetimeMax);
  (r?.purgeJobs ?? []).forEach((j, i) => {
    check(`retention.purgeJobs[${i}].interval`, j.interval);
    check(`retention.purgeJobs[${i}].shortestMaxLifetime`, j.shortestMaxLifetime);
    check(`retention.purgeJobs[${i}].longestMaxLifetime`, j.longestMaxLifetime);
  });
  if (media?.localMediaLifetime !== undefined || media?.remoteMediaLifetime !== undefined) {
    out.media_retention = defined({ local_media_lifetime: media.localMediaLifetime, remote_media_lifetime: media.remoteMediaLifetime });
  }
  if (r?.enabled === true) {
    out.retention = defined({
      enabled: true,
      default_policy: r.defaultPolicy !== undefined ? defined({ min_lifetime: r.defaultPolicy.minLifetime, max_lifetime: r.defaultPolicy.maxLifetime }) : undefined,
      allowed_lifetime_min: r.allowedLifetimeMin,
      allowed_lifetime_max: r.allowedLifetimeMax,
      purge_jobs: r.purgeJobs?.map((j) => defined({ interval: j.interval, shortest_max_lifetime: j.shortestMaxLifetime, longest_max_lifetime: j.longestMaxLifetime })),
    });
  }
  return out;
}
