import { charts, config } from './util';

test('the default stack: numbered files, namespaces first, secrets before workloads', () => {
  // cdk8s names each file after its chart id, and kubectl applies a folder in name order.
  expect([...charts().keys()].sort()).toEqual([
    '00-namespaces',
    '01-cert-manager',
    '05-secrets',
    '06-network-policies',
    '10-postgres',
    '11-redis',
    '20-synapse',
    '21-well-known',
    '30-livekit',
    '31-coturn',
    '40-bootstrap',
    '45-smoke',
    '50-backup',
  ]);
});

test('optional parts follow the config', () => {
  const ids = [
    ...charts(
      config({
        routing: 'gateway-api',
        gatewayApi: { gatewayClassName: 'cilium' },
        monitoring: { enabled: true },
        argocd: { enabled: true, repoURL: 'https://git.example.com/x.git' },
        secrets: { mode: 'existing' },
        backup: { enabled: false },
        networkPolicies: { enabled: false },
        wellKnown: { enabled: false },
      }),
    ).keys(),
  ];
  expect(ids).toEqual(expect.arrayContaining(['02-gateway', '60-monitoring', '90-argocd']));
  for (const gone of ['05-secrets', '50-backup', '06-network-policies', '21-well-known']) expect(ids).not.toContain(gone);
  // The Gateway comes before the routes that attach to it, the Argo CD Application last.
  const sorted = [...ids].sort();
  expect(sorted.indexOf('02-gateway')).toBeLessThan(sorted.indexOf('20-synapse'));
  expect(sorted[sorted.length - 1]).toBe('90-argocd');
});
