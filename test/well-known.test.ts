import { wellKnownDocuments } from '../charts/well-known';
import { config, container, find, podSpec, synthChart } from './util';

const manifests = (c = config()) => synthChart('21-well-known', c);

test('the documents delegate to the Matrix host on 443', () => {
  const cm = find(manifests(config({ domain: 'kudo.chat' })), 'ConfigMap', 'matrix-well-known');
  expect(JSON.parse(cm.data['server.json'])).toEqual({ 'm.server': 'matrix.kudo.chat:443' });
  expect(JSON.parse(cm.data['client.json'])).toEqual({ 'm.homeserver': { base_url: 'https://matrix.kudo.chat' } });
  expect(wellKnownDocuments('m.example.org').server).toEqual({ 'm.server': 'm.example.org:443' });
});

test('a small hardened server with probes, two replicas', () => {
  const deploy = find(manifests(), 'Deployment', 'matrix-well-known');
  expect(deploy.spec.replicas).toBe(2);
  const c = container(deploy, 'well-known');
  expect(c.command).toEqual(['python3', '/srv/well-known/well_known.py', '/srv/well-known', '8080']);
  expect(c.readinessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
  expect(c.livenessProbe.tcpSocket).toEqual({ port: 'http' });
  expect(podSpec(deploy).affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
  expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
  expect(podSpec(deploy).securityContext.runAsUser).toBeGreaterThanOrEqual(10000);
  expect(find(manifests(), 'Service', 'matrix-well-known').spec.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http' }]);
});

test('a disruption budget keeps one replica through drains', () => {
  const pdb = find(manifests(), 'PodDisruptionBudget', 'matrix-well-known');
  expect(pdb.spec).toEqual({ minAvailable: 1, selector: { matchLabels: find(manifests(), 'Deployment', 'matrix-well-known').spec.selector.matchLabels } });
});
