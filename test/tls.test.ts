import { ingressAnnotations } from '../charts/tls';
import { config, find, synthChart } from './util';

test('default shape', () => {
  expect(synthChart('01-cert-manager')).toMatchSnapshot();
});

test('a Let\'s Encrypt ClusterIssuer solving HTTP-01 through the ingress class', () => {
  const issuer = find(synthChart('01-cert-manager'), 'ClusterIssuer', 'kudo-letsencrypt');
  expect(issuer.spec.acme.server).toBe('https://acme-v02.api.letsencrypt.org/directory');
  expect(issuer.spec.acme.solvers).toEqual([{ http01: { ingress: { ingressClassName: 'nginx' } } }]);
  const staging = find(synthChart('01-cert-manager', config({ tls: { letsEncrypt: { environment: 'staging', email: 'ops@example.com' } } })), 'ClusterIssuer', 'kudo-letsencrypt');
  expect(staging.spec.acme).toMatchObject({ server: 'https://acme-staging-v02.api.letsencrypt.org/directory', email: 'ops@example.com' });
});

test('no issuer is rendered when the cluster brings its own', () => {
  expect(() => synthChart('01-cert-manager', config({ tls: { letsEncrypt: { create: false } } }))).toThrow('no chart "01-cert-manager"');
  expect(() => synthChart('01-cert-manager', config({ tls: { issuer: { kind: 'Issuer' } } }))).toThrow('no chart');
});

test('user annotations win over ours', () => {
  const a = ingressAnnotations({ className: 'nginx', issuerKind: 'ClusterIssuer', issuerName: 'x', annotations: { 'nginx.ingress.kubernetes.io/proxy-body-size': '5m' } }, { maxBodySize: '100M' });
  expect(a['nginx.ingress.kubernetes.io/proxy-body-size']).toBe('5m');
});
