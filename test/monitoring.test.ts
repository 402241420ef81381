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

test('exporters beside PostgreSQL and Redis; the PostgreSQL one reads its password from the file', () => {
  const pg = container(find(all, 'StatefulSet', 'postgres'), 'exporter');
  expect(pg.image).toBe('quay.io/prometheuscommunity/postgres-exporter:v0.18.1');
  expect(pg.env).toContainEqual({ name: 'DATA_SOURCE_PASS_FILE', value: '/secrets/password' });
  expect(pg.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
  const redis = container(find(all, 'StatefulSet', 'redis'), 'exporter');
  expect(redis.env).toContainEqual({ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'kudo-redis', key: 'password' } } });
  expect(find(all, 'Service', 'coturn-metrics').spec).toMatchObject({ clusterIP: 'None', ports: [{ name: 'metrics', port: 9641 }] });
});

test('NetworkPolicies let Prometheus scrape, and only the metrics ports', () => {
  const synapse = find(all, 'NetworkPolicy', 'synapse');
  const scrape = synapse.spec.ingress.find((r: any) => r.from[0].namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring');
  expect(scrape.ports).toEqual([{ protocol: 'TCP', port: 9000 }]);
  expect(find(all, 'NetworkPolicy', 'postgres').spec.ingress[1].ports).toEqual([{ protocol: 'TCP', port: 9187 }]);
  expect(find(all, 'NetworkPolicy', 'redis').spec.ingress[1].ports).toEqual([{ protocol: 'TCP', port: 9121 }]);
});
