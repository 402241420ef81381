/**
 * The sizing profiles: `small` must fit one 2 vCPU / 4 GiB node with
 * everything on it; `production` must raise what it says.
 */
import { memoryBytes } from '../charts/common';
import { resolveConfig } from '../charts/config';
import { config, Manifest, PRODUCTION, synthAll } from './util';

function cpu(q: string): number {
  return q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q);
}

/** Containers of the long-running workloads (Jobs run briefly, one at a time). */
function longRunning(ms: Manifest[]): any[] {
  return ms
    .filter((m) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(m.kind))
    .flatMap((m) => Array.from({ length: m.spec.replicas ?? 1 }, () => m.spec.template.spec.containers).flat());
}

test('small: every request fits a 2 vCPU / 4 GiB node after the system reserve, with room for a Job', () => {
  const containers = longRunning(synthAll(config()));
  const requestedCpu = containers.reduce((a, c) => a + cpu(c.resources.requests.cpu), 0);
  const requestedMem = containers.reduce((a, c) => a + memoryBytes(c.resources.requests.memory), 0);
  // Typical allocatable on such a node: about 1.9 CPU and 3.3 GiB.
  expect(requestedCpu + 0.1).toBeLessThanOrEqual(1.9);
  expect(requestedMem + 128 * 2 ** 20).toBeLessThanOrEqual(3.3 * 2 ** 30);
  // Memory limits may not add up to more than the node has.
  const limitMem = containers.reduce((a, c) => a + memoryBytes(c.resources.limits.memory), 0);
  expect(limitMem).toBeLessThanOrEqual(4 * 2 ** 30);
});

test('production raises resources, storage and the database pool; keys you set still win', () => {
  const p = resolveConfig({ ...PRODUCTION, synapse: { databasePool: { max: 30 } } });
  expect(p.postgres.resources.limits.memory).toBe('8Gi');
  expect(p.postgres.storage.size).toBe('100Gi');
  expect(p.synapse.databasePool).toEqual({ min: 5, max: 30 });
  expect(p.synapse.workers.enabled).toBe(true);
  // Every Synapse process has a pool: main 20, 14 workers x 10, and 10 for backups and administration.
  const pg = synthAll(config({ ...PRODUCTION })).find((m) => m.kind === 'StatefulSet' && m.metadata.name === 'postgres')!;
  expect(pg.spec.template.spec.containers[0].args).toContain('max_connections=170');
});

test('an unknown profile is refused', () => {
  expect(() => resolveConfig({ profile: 'huge' })).toThrow('profile: found string "huge", allowed: "small", "production"');
});
