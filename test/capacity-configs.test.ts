/**
 * The capacity benchmark (npm run bench:capacity) renders each profile, and for calls each LiveKit mode: every config it
 * renders is one the config accepts. Not part of CI otherwise; a refusal would show only when someone runs it.
 */
import { resolveConfig } from '../charts/config';
import { benchConfig } from '../scripts/capacity/configs';

test.each([
  ['small', 'host'],
  ['small', 'pod'],
  ['production', 'host'],
  ['production', 'pod'],
] as const)('profile %s, LiveKit mode %s: the config is accepted', (profile, mode) => {
  const c = resolveConfig(benchConfig(profile, mode), 'benchmark');
  expect([c.profile, c.livekit.hostNetwork]).toEqual([profile, mode === 'host']);
});
