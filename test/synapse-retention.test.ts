/**
 * synapse.mediaRetention and synapse.retention (charts/synapse-retention.ts): opt-in, rendered into
 * homeserver.yaml as Synapse's media_retention and retention, refused in extraConfig.
 */
import * as yaml from 'js-yaml';
import { durationMs, retentionSettings } from '../charts/synapse-retention';
import { synapseConfigErrors } from './synapse-schema';
import { config, find, Manifest, synthChart } from './util';

const homeserver = (ms: Manifest[]) => yaml.load(find(ms, 'ConfigMap', 'synapse-config').data['homeserver.yaml']) as any;
const render = (synapse: object) => homeserver(synthChart('20-synapse', config({ synapse })));

test('off by default: homeserver.yaml has neither media_retention nor retention', () => {
  const hs = homeserver(synthChart('20-synapse'));
  expect(hs.media_retention).toBeUndefined();
  expect(hs.retention).toBeUndefined();
});

test('media retention: the lifetimes given, and only those', () => {
  expect(render({ mediaRetention: { localMediaLifetime: '90d', remoteMediaLifetime: '14d' } }).media_retention).toEqual({
    local_media_lifetime: '90d',
    remote_media_lifetime: '14d',
  });
  expect(render({ mediaRetention: { remoteMediaLifetime: '2w' } }).media_retention).toEqual({ remote_media_lifetime: '2w' });
  expect(synapseConfigErrors(render({ mediaRetention: { localMediaLifetime: '90d', remoteMediaLifetime: '14d' } }))).toEqual([]);
});

test('message retention: enabled, the default policy, the bounds and the purge jobs in Synapse’s names', () => {
  const hs = render({
    retention: {
      enabled: true,
      defaultPolicy: { minLifetime: '1d', maxLifetime: '1y' },
      allowedLifetimeMin: '1d',
      allowedLifetimeMax: '1y',
      purgeJobs: [
        { interval: '12h', longestMaxLifetime: '3d' },
        { interval: '1d', shortestMaxLifetime: '3d' },
      ],
    },
  });
  expect(hs.retention).toEqual({
    enabled: true,
    default_policy: { min_lifetime: '1d', max_lifetime: '1y' },
    allowed_lifetime_min: '1d',
    allowed_lifetime_max: '1y',
    purge_jobs: [
      { interval: '12h', longest_max_lifetime: '3d' },
      { interval: '1d', shortest_max_lifetime: '3d' },
    ],
  });
  expect(render({ retention: { enabled: true } }).retention).toEqual({ enabled: true });
  // What Synapse's own config schema says of it.
  expect(synapseConfigErrors(hs)).toEqual([]);
});

test.each([
  [{ mediaRetention: { localMediaLifetime: '90 days' } }, 'synapse.mediaRetention.localMediaLifetime'],
  [{ mediaRetention: { remoteMediaLifetime: '90' } }, 'synapse.mediaRetention.remoteMediaLifetime'],
  [{ mediaRetention: { localMediaLifetime: '0d' } }, 'synapse.mediaRetention.localMediaLifetime'],
  [{ mediaRetention: { localMediaLifetime: '1.5d' } }, 'must be a duration such as "90d"'],
  [{ mediaRetention: { localLifetime: '1d' } }, 'synapse.mediaRetention'],
  [{ retention: { enabled: true, defaultPolicy: { maxLifetime: '1 year' } } }, 'synapse.retention.defaultPolicy.maxLifetime'],
  [{ retention: { enabled: true, purgeJobs: [{ shortestMaxLifetime: '1d' }] } }, 'synapse.retention.purgeJobs.0.interval'],
  [
    { retention: { enabled: true, defaultPolicy: { minLifetime: '2d', maxLifetime: '1d' } } },
    'synapse.retention.defaultPolicy.minLifetime (2d) is longer than synapse.retention.defaultPolicy.maxLifetime (1d); Synapse refuses to start',
  ],
  [
    { retention: { enabled: true, allowedLifetimeMin: '1w', allowedLifetimeMax: '6d' } },
    'synapse.retention.allowedLifetimeMin (1w) is longer than synapse.retention.allowedLifetimeMax (6d)',
  ],
  [
    { retention: { enabled: true, purgeJobs: [{ interval: '1h', shortestMaxLifetime: '25h', longestMaxLifetime: '1d' }] } },
    'synapse.retention.purgeJobs[0].shortestMaxLifetime (25h) is longer than synapse.retention.purgeJobs[0].longestMaxLifetime (1d)',
  ],
  [{ retention: { defaultPolicy: { maxLifetime: '1y' } } }, 'synapse.retention.defaultPolicy: does nothing unless synapse.retention.enabled is true'],
])('refused: %j', (synapse, message) => {
  expect(() => config({ synapse })).toThrow(message);
});

test.each([
  ['media_retention', { local_media_lifetime: '1d' }, 'synapse.extraConfig.media_retention: kept by the stack: set synapse.mediaRetention'],
  ['retention', { enabled: true }, 'synapse.extraConfig.retention: kept by the stack: set synapse.retention'],
])('extraConfig may not write %s', (key, value, message) => {
  expect(() => config({ synapse: { extraConfig: { [key]: value } } })).toThrow(message);
});

test('a lower bound equal to its upper bound is accepted (Synapse refuses only a longer one)', () => {
  expect(render({ retention: { enabled: true, allowedLifetimeMin: '1d', allowedLifetimeMax: '1d' } }).retention).toEqual({
    enabled: true,
    allowed_lifetime_min: '1d',
    allowed_lifetime_max: '1d',
  });
  expect(render({ retention: { enabled: true, purgeJobs: [{ interval: '1d', shortestMaxLifetime: '3d', longestMaxLifetime: '3d' }] } }).retention.purge_jobs).toEqual([
    { interval: '1d', shortest_max_lifetime: '3d', longest_max_lifetime: '3d' },
  ]);
});

test.each(['interval', 'shortestMaxLifetime', 'longestMaxLifetime'])("a chart built without the config check refuses a purge job's %s that is no duration, by its key", (key) => {
  const job = { interval: '1d', [key]: '3 days' };
  expect(() => retentionSettings(undefined, { enabled: true, purgeJobs: [job] })).toThrow(`retention.purgeJobs[0].${key}: "3 days" must be a duration`);
});

test("durations in milliseconds, as Synapse's parse_duration reads them", () => {
  expect(durationMs('5s')).toBe(5000);
  expect(durationMs('2m')).toBe(120000);
  expect(durationMs('1h')).toBe(3600000);
  expect(durationMs('1d')).toBe(86400000);
  expect(durationMs('1w')).toBe(604800000);
  expect(durationMs('1y')).toBe(31536000000);
  expect(() => durationMs('90')).toThrow('"90" must be a duration');
});
