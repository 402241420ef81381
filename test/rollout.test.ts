/**
 * Pods restart when what they read changes: a pod reads its ConfigMap when it
 * starts, so every long-running workload that mounts a rendered ConfigMap
 * carries a hash of it in its pod template, and a changed value rolls it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { config, find, lazy, Manifest, PRODUCTION, synthAll } from './util';

const HASH = 'checksum/config';
const LONG_RUNNING = ['Deployment', 'StatefulSet', 'DaemonSet'];
/** PostgreSQL's entrypoint runs its init script only on an empty data directory: a restart would change nothing. */
const FIRST_START_ONLY = new Set(['StatefulSet/postgres']);

function mountedConfigMaps(w: Manifest): string[] {
  const volumes = w.spec.template.spec.volumes ?? [];
  return volumes.filter((v: any) => v.configMap !== undefined).map((v: any) => v.configMap.name);
}

const SMALL_READERS = ['DaemonSet/coturn', 'Deployment/livekit', 'Deployment/matrix-well-known', 'Deployment/synapse', 'StatefulSet/postgres', 'StatefulSet/redis'];
const WORKER_READERS = ['background', 'client-reader', 'event-creator', 'federation-inbound', 'federation-reader', 'initial-synchrotron', 'media-repository', 'synchrotron']
  .map((t) => `Deployment/synapse-${t}`)
  .concat(['event-persister', 'federation-sender', 'stream-writer'].map((t) => `StatefulSet/synapse-${t}`));

describe.each([
  ['small', {}, SMALL_READERS],
  ['production', { ...PRODUCTION }, [...SMALL_READERS, 'Deployment/synapse-router', ...WORKER_READERS]],
])('%s: every long-running workload that mounts a rendered ConfigMap carries its hash', (_name, c, expected) => {
  // Rendered on first use, in a test: the list of tests below is the expected list, which the first test holds the render to.
  const workloads = lazy(() => {
    const all = synthAll(config(c));
    const rendered = new Set(all.filter((m) => m.kind === 'ConfigMap').map((m) => m.metadata.name));
    return all.filter((m) => LONG_RUNNING.includes(m.kind) && mountedConfigMaps(m).some((n) => rendered.has(n)));
  });

  test('the workloads found are the ones that read rendered config', () => {
    expect(
      workloads()
        .map((w) => `${w.kind}/${w.metadata.name}`)
        .sort(),
    ).toEqual([...expected].sort());
  });
  test.each(expected)('%s', (id) => {
    const w = workloads().find((m) => `${m.kind}/${m.metadata.name}` === id)!;
    const hash = w.spec.template.metadata?.annotations?.[HASH];
    if (FIRST_START_ONLY.has(id)) expect(hash).toBeUndefined();
    else expect(hash).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('a value that lands in a ConfigMap rolls the workload that reads it', () => {
  const cases: [string, string, string, object, object][] = [
    ['StatefulSet', 'redis', 'redis-config', {}, { redis: { resources: { limits: { memory: '2Gi' } } } }],
    ['Deployment', 'livekit', 'livekit-config', {}, { livekit: { rtc: { portRangeEnd: 50100 } } }],
    ['DaemonSet', 'coturn', 'coturn-config', {}, { coturn: { userQuota: 20 } }],
    ['Deployment', 'matrix-well-known', 'matrix-well-known', {}, { hosts: { matrix: 'chat.example.com' } }],
    ['Deployment', 'synapse', 'synapse-config', {}, { synapse: { logLevel: 'DEBUG' } }],
    ['Deployment', 'synapse-router', 'synapse-router', PRODUCTION, { synapse: { workers: { replicas: { synchrotron: 3 } } } }],
    ['Deployment', 'synapse-synchrotron', 'synapse-config', PRODUCTION, { synapse: { logLevel: 'DEBUG' } }],
    ['StatefulSet', 'synapse-event-persister', 'synapse-config', PRODUCTION, { synapse: { logLevel: 'DEBUG' } }],
  ];
  test.each(cases)('%s/%s (%s)', (kind, name, configMap, base, change) => {
    const before = synthAll(config({ ...base }));
    const after = synthAll(config({ ...base, ...change }));
    expect(find(after, 'ConfigMap', configMap).data).not.toEqual(find(before, 'ConfigMap', configMap).data);
    const hash = (ms: Manifest[]) => find(ms, kind, name).spec.template.metadata.annotations[HASH];
    expect(hash(after)).toMatch(/^[0-9a-f]{16}$/);
    expect(hash(after)).not.toBe(hash(before));
    expect(hash(synthAll(config({ ...base, ...change })))).toBe(hash(after));
  });
});

/** The "Changing a Secret" commands of docs/operations.md: each restarts something, and together every workload that reads a Secret. */
describe('docs/operations.md says how to restart what reads a Secret', () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'docs', 'operations.md'), 'utf8');
  const paragraph = readme.slice(readme.indexOf('**Changing a Secret**'));
  const block = paragraph.slice(paragraph.indexOf('```sh'), paragraph.indexOf('```', paragraph.indexOf('```sh') + 5));
  const commands = [...block.matchAll(/^kubectl -n (\S+) rollout restart (\S+) -l (\S+)$/gm)].map(([, ns, kinds, selector]) => ({
    ns,
    kinds: kinds.split(','),
    selector: Object.fromEntries(selector.split(',').map((kv) => kv.split('='))),
  }));
  const workloads = lazy(() => synthAll(config({ ...PRODUCTION })).filter((m) => LONG_RUNNING.includes(m.kind)));
  const selects = (c: (typeof commands)[number], w: Manifest) =>
    w.metadata.namespace === c.ns && c.kinds.includes(w.kind.toLowerCase()) && Object.entries(c.selector).every(([k, v]) => w.metadata.labels?.[k] === v);
  const readsSecret = (w: Manifest) => {
    const spec = w.spec.template.spec;
    const volumes = (spec.volumes ?? []).some((v: any) => v.secret !== undefined || (v.projected?.sources ?? []).some((s: any) => s.secret !== undefined));
    const env = [...spec.containers, ...(spec.initContainers ?? [])].some((c: any) => (c.env ?? []).some((e: any) => e.valueFrom?.secretKeyRef !== undefined));
    return volumes || env;
  };

  test('four commands, each restarting something', () => {
    expect(commands).toHaveLength(4);
    for (const c of commands) expect(workloads().filter((w) => selects(c, w)).length).toBeGreaterThan(0);
  });
  test('every workload that reads a Secret is restarted by one (PostgreSQL reads its passwords only when it initialises)', () => {
    const readers = workloads()
      .filter(readsSecret)
      .map((w) => `${w.kind}/${w.metadata.name}`);
    expect(readers).toEqual(expect.arrayContaining(['DaemonSet/coturn', 'Deployment/livekit', 'StatefulSet/redis', 'Deployment/synapse', 'StatefulSet/synapse-event-persister']));
    const missed = workloads()
      .filter((w) => readsSecret(w) && !commands.some((c) => selects(c, w)))
      .map((w) => `${w.kind}/${w.metadata.name}`);
    expect(missed).toEqual(['StatefulSet/postgres']);
  });
});
