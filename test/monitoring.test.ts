import { execFileSync } from 'child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { config, container, find, synthAll, synthChart } from './util';

const on = config({ monitoring: { enabled: true, serviceMonitorLabels: { release: 'prometheus' } } });
const all = synthAll(on);

// dist/ records the default shape; this optional chart is recorded here.
test('shape with monitoring on', () => {
  expect(synthChart('60-monitoring', on)).toMatchSnapshot();
});

test('off by default: no ServiceMonitors and no exporters', () => {
  const plain = synthAll();
  expect(plain.filter((m) => m.kind === 'ServiceMonitor')).toEqual([]);
  expect(find(plain, 'StatefulSet', 'postgres').spec.template.spec.containers).toHaveLength(1);
});

test('a ServiceMonitor for every metrics endpoint, with the labels Prometheus selects', () => {
  const monitors = all.filter((m) => m.kind === 'ServiceMonitor');
  expect(monitors.map((m) => `${m.metadata.namespace}/${m.metadata.name} ${m.spec.endpoints[0].path}`).sort()).toEqual([
    'kudo-media/coturn /metrics', 'kudo-media/livekit /metrics', 'kudo/postgres /metrics', 'kudo/redis /metrics', 'kudo/synapse /_synapse/metrics',
  ]);
  for (const m of monitors) {
    expect(m.metadata.labels!.release).toBe('prometheus');
    // Each selects a Service that exists and has the named port.
    const svc = all.find((s) => s.kind === 'Service' && s.metadata.namespace === m.metadata.namespace
      && s.metadata.labels?.['app.kubernetes.io/name'] === m.spec.selector.matchLabels['app.kubernetes.io/name']
      && s.spec.ports.some((p: any) => p.name === m.spec.endpoints[0].port));
    expect([m.metadata.name, svc?.metadata.name]).toEqual([m.metadata.name, expect.any(String)]);
  }
});

test('exporters beside PostgreSQL and Redis, each reading its password from a file', () => {
  const pg = container(find(all, 'StatefulSet', 'postgres'), 'exporter');
  expect(pg.image).toBe('quay.io/prometheuscommunity/postgres-exporter:v0.18.1');
  expect(pg.env).toContainEqual({ name: 'DATA_SOURCE_PASS_FILE', value: '/secrets/password' });
  expect(pg.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
  const redis = container(find(all, 'StatefulSet', 'redis'), 'exporter');
  // redis_exporter's password file maps the address it scrapes to the password, written by an init step from the Secret.
  expect(redis.env).toEqual([{ name: 'REDIS_ADDR', value: 'redis://127.0.0.1:6379' }]);
  expect(redis.args).toEqual(['--redis.password-file=/run/redis/exporter-passwords.json']);
  const init = container(find(all, 'StatefulSet', 'redis'), 'exporter-password');
  expect(init.command[2]).toContain('> /run/redis/exporter-passwords.json');
  expect(init.command[2]).toContain('{"redis://127.0.0.1:6379": "%s"}');
  expect(find(all, 'Service', 'coturn-metrics').spec).toMatchObject({ clusterIP: 'None', ports: [{ name: 'metrics', port: 9641 }] });
});

test('NetworkPolicies let Prometheus scrape, and only the metrics ports', () => {
  const synapse = find(all, 'NetworkPolicy', 'synapse');
  const scrape = synapse.spec.ingress.find((r: any) => r.from[0].namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring');
  expect(scrape.ports).toEqual([{ protocol: 'TCP', port: 9000 }]);
  expect(find(all, 'NetworkPolicy', 'postgres').spec.ingress[1].ports).toEqual([{ protocol: 'TCP', port: 9187 }]);
  expect(find(all, 'NetworkPolicy', 'redis').spec.ingress[1].ports).toEqual([{ protocol: 'TCP', port: 9121 }]);
});

test('the Redis exporter\'s password file is JSON for any password, written by the init step\'s own script under sh', () => {
  const script: string = container(find(all, 'StatefulSet', 'redis'), 'exporter-password').command[2];
  const dir = mkdtempSync(join(tmpdir(), 'kudo-exporter-'));
  try {
    const password = 'a"b\\c$d`e\'f';
    writeFileSync(join(dir, 'password'), password);
    // The same script, pointed at a scratch directory instead of the pod's mounts.
    execFileSync('sh', ['-c', script.replaceAll('/secrets/password', join(dir, 'password')).replaceAll('/run/redis/', `${dir}/`)]);
    expect(JSON.parse(readFileSync(join(dir, 'exporter-passwords.json'), 'utf8'))).toEqual({ 'redis://127.0.0.1:6379': password });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
