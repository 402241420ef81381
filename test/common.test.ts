import { contentHash, cpuCores, imageRef, labels, memoryBytes, resourceRequirements, selectorLabels } from '../charts/common';
import { resolveConfig } from '../charts/config';

test('selector labels are a fixed subset of the labels (never the version)', () => {
  const c = { name: 'postgres', component: 'database', version: '17.11' };
  expect(selectorLabels(c)).toEqual({ 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': 'kudo-postgres' });
  expect(labels(c)).toMatchObject({ ...selectorLabels(c), 'app.kubernetes.io/version': '17.11', 'app.kubernetes.io/part-of': 'kudo' });
  expect(labels({ name: 'x', component: 'y', version: 'v1+build' })['app.kubernetes.io/version']).toBe('v1_build');
});

test('image references, with and without a digest', () => {
  expect(imageRef({ repository: 'r/x', tag: '1' })).toBe('r/x:1');
  expect(imageRef({ repository: 'r/x', tag: '1', digest: `sha256:${'0'.repeat(64)}` })).toBe(`r/x:1@sha256:${'0'.repeat(64)}`);
});

test('memory quantities in bytes', () => {
  expect(memoryBytes('512Mi')).toBe(512 * 2 ** 20);
  expect(memoryBytes('2G')).toBe(2e9);
  expect(() => memoryBytes('lots')).toThrow('not a memory quantity: "lots"');
});

test('CPU quantities in cores, for every form the config takes', () => {
  expect(cpuCores('2')).toBe(2);
  expect(cpuCores(4)).toBe(4);
  expect(cpuCores('0.5')).toBe(0.5);
  expect(cpuCores('500m')).toBe(0.5);
  expect(cpuCores('250m')).toBe(0.25);
  expect(cpuCores('1k')).toBe(1000);
  expect(() => cpuCores('lots')).toThrow('not a CPU quantity: lots');
  expect(() => cpuCores('-1')).toThrow('not a CPU quantity: -1');
  // What the config accepts as a CPU, cpuCores reads; what it refuses, cpuCores refuses too.
  for (const [cpu, ok] of [
    ['1.5', true],
    ['100m', true],
    ['2Ki', true],
    ['.5', false],
    ['1e3', false],
    ['1 m', false],
  ] as const) {
    const accepted = (() => {
      try {
        resolveConfig({ livekit: { resources: { limits: { cpu } } } });
        return true;
      } catch {
        return false;
      }
    })();
    const read = (() => {
      try {
        cpuCores(cpu);
        return true;
      } catch {
        return false;
      }
    })();
    expect([cpu, accepted, read]).toEqual([cpu, ok, ok]);
  }
});

test('content hashes are stable and change with the content', () => {
  expect(contentHash({ a: 1 })).toBe(contentHash({ a: 1 }));
  expect(contentHash({ a: 1 })).not.toBe(contentHash({ a: 2 }));
  expect(contentHash('ab', 'c')).not.toBe(contentHash('a', 'bc'));
});

test('resources carry ephemeral storage too', () => {
  const r = resourceRequirements({ requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } });
  expect(JSON.parse(JSON.stringify(r.limits))).toEqual(expect.objectContaining({ 'ephemeral-storage': expect.anything() }));
});
