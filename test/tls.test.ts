import { resolveConfig } from '../charts/config';
import { config, find, synthAll, synthChart } from './util';

test("a Let's Encrypt ClusterIssuer solving HTTP-01 through the ingress class", () => {
  const issuer = find(synthChart('01-cert-manager'), 'ClusterIssuer', 'kudo-letsencrypt');
  expect(issuer.spec.acme.server).toBe('https://acme-v02.api.letsencrypt.org/directory');
  expect(issuer.spec.acme.solvers).toEqual([{ http01: { ingress: { ingressClassName: 'traefik' } } }]);
  const staging = find(synthChart('01-cert-manager', config({ tls: { letsEncrypt: { environment: 'staging', email: 'ops@example.com' } } })), 'ClusterIssuer', 'kudo-letsencrypt');
  expect(staging.spec.acme).toMatchObject({ server: 'https://acme-staging-v02.api.letsencrypt.org/directory', email: 'ops@example.com' });
});

test('no issuer is rendered when the cluster brings its own', () => {
  expect(() => synthChart('01-cert-manager', config({ tls: { letsEncrypt: { create: false } } }))).toThrow('no chart "01-cert-manager"');
  expect(() => synthChart('01-cert-manager', config({ tls: { issuer: { kind: 'Issuer' } } }))).toThrow('no chart');
});

test('user annotations win over ours', () => {
  const ing = find(synthAll(config({ ingress: { controller: 'ingress-nginx', annotations: { 'nginx.ingress.kubernetes.io/proxy-body-size': '5m' } } })), 'Ingress', 'synapse');
  expect(ing.metadata.annotations!['nginx.ingress.kubernetes.io/proxy-body-size']).toBe('5m');
});

describe('Ingress for each controller family: its own annotations for uploads and WebSockets', () => {
  // Upload size = synapse.maxUploadSize (100M); LiveKit's signalling WebSockets stay open an hour.
  const cases: [string, string, Record<string, string>, Record<string, string>][] = [
    // Traefik has no per-Ingress body limit (none by default) and does not time out upgraded WebSockets.
    ['traefik', 'traefik', {}, {}],
    [
      'ingress-nginx',
      'nginx',
      { 'nginx.ingress.kubernetes.io/proxy-body-size': '100m' },
      { 'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600', 'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600' },
    ],
    ['haproxy', 'haproxy', { 'haproxy-ingress.github.io/proxy-body-size': '100m' }, { 'haproxy-ingress.github.io/timeout-tunnel': '3600s' }],
    [
      'nginx-inc',
      'nginx',
      { 'nginx.org/client-max-body-size': '100m' },
      { 'nginx.org/proxy-read-timeout': '3600s', 'nginx.org/proxy-send-timeout': '3600s', 'nginx.org/websocket-services': 'livekit' },
    ],
  ];
  test.each(cases)('%s', (controller, className, synapse, livekit) => {
    const all = synthAll(config({ ingress: { controller } }));
    const issuer = { 'cert-manager.io/cluster-issuer': 'kudo-letsencrypt', 'argocd.argoproj.io/sync-wave': '4' };
    expect(find(all, 'Ingress', 'synapse').metadata.annotations).toEqual({ ...issuer, ...synapse });
    expect(find(all, 'Ingress', 'livekit').metadata.annotations).toEqual({ ...issuer, ...livekit });
    expect(find(all, 'Ingress', 'matrix-well-known').metadata.annotations).toEqual(issuer);
    for (const i of all.filter((m) => m.kind === 'Ingress')) expect(i.spec.ingressClassName).toBe(className);
    expect(find(all, 'ClusterIssuer', 'kudo-letsencrypt').spec.acme.solvers[0].http01.ingress.ingressClassName).toBe(className);
  });

  test('no retired ingress-nginx annotation unless it was chosen', () => {
    for (const m of synthAll()) expect(JSON.stringify(m.metadata.annotations ?? {})).not.toContain('nginx.ingress.kubernetes.io');
  });
});

describe('Gateway API instead of Ingress', () => {
  const gw = config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'cilium' } });
  const all = synthAll(gw);

  test('HTTPRoutes replace every Ingress, attached to the Gateway', () => {
    expect(all.filter((m) => m.kind === 'Ingress')).toEqual([]);
    const routes = all.filter((m) => m.kind === 'HTTPRoute' && m.metadata.name !== 'https-redirect');
    expect(routes.map((r) => `${r.metadata.namespace}/${r.metadata.name} ${r.spec.hostnames}`).sort()).toEqual([
      'kudo-media/livekit livekit.example.com',
      'kudo/matrix-well-known example.com',
      'kudo/synapse matrix.example.com',
    ]);
    for (const r of routes) {
      // Bound to the HTTPS listener of its host by sectionName: without it a route attaches to the plain HTTP listener too.
      expect(r.spec.parentRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kudo', namespace: 'kudo', sectionName: `https-${r.spec.hostnames[0]}` }]);
    }
    const synapse = find(all, 'HTTPRoute', 'synapse');
    expect(synapse.spec.rules.map((r: any) => [r.matches[0].path.value, r.backendRefs[0]])).toEqual([
      ['/_matrix', { name: 'synapse', port: 8009 }],
      ['/_synapse/client', { name: 'synapse', port: 8009 }],
    ]);
    // LiveKit's WebSockets get no request timeout.
    expect(find(all, 'HTTPRoute', 'livekit').spec.rules[0].timeouts).toEqual({ request: '0s' });
  });

  test('a Gateway with an HTTPS listener and certificate per host, routes allowed from our namespaces only', () => {
    const g = find(all, 'Gateway', 'kudo');
    expect(g.metadata.annotations).toMatchObject({ 'cert-manager.io/cluster-issuer': 'kudo-letsencrypt' });
    expect(g.spec.gatewayClassName).toBe('cilium');
    const https = g.spec.listeners.filter((l: any) => l.protocol === 'HTTPS');
    expect(https.map((l: any) => [l.hostname, l.tls.certificateRefs[0].name])).toEqual([
      ['matrix.example.com', 'synapse-tls'],
      ['livekit.example.com', 'livekit-tls'],
      ['example.com', 'matrix-well-known-tls'],
    ]);
    expect(g.spec.listeners[0]).toMatchObject({ name: 'http', port: 80, protocol: 'HTTP' });
    expect(https[0].allowedRoutes.namespaces.selector.matchExpressions[0].values).toEqual(['kudo', 'kudo-media']);
  });

  test('listener names are unique and valid for any hosts (dots and dashes kept apart, long hosts shortened)', () => {
    const names = (c: object) =>
      find(synthAll(config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'eg' }, ...c })), 'Gateway', 'kudo').spec.listeners.map((l: any) => l.name as string);
    // matrix.a-b.example.org and matrix-a.b.example.org once both became "https-matrix-a-b-example-org".
    const twins = names({ domain: 'example.org', serverName: 'example.org', hosts: { matrix: 'matrix.a-b.example.org', livekit: 'matrix-a.b.example.org' } });
    expect(new Set(twins).size).toBe(twins.length);
    const label = 'l'.repeat(63);
    const long = names({ domain: [label, label, label, 'example'].join('.') });
    expect(new Set(long).size).toBe(long.length);
    for (const n of [...twins, ...long]) {
      expect(n.length).toBeLessThanOrEqual(253);
      expect(n).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
    }
  });

  test("ACME HTTP-01 challenges go through the Gateway's HTTP listener", () => {
    const issuer = find(all, 'ClusterIssuer', 'kudo-letsencrypt');
    expect(issuer.spec.acme.solvers[0].http01).toEqual({
      gatewayHTTPRoute: { parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kudo', namespace: 'kudo', sectionName: 'http' }] },
    });
  });

  test('the HTTP listener serves only a redirect to HTTPS (301) for the routed hosts; ACME challenges win by their exact path', () => {
    const onHttp = all.filter((m) => m.kind === 'HTTPRoute' && m.spec.parentRefs.some((r: any) => r.sectionName === undefined || r.sectionName === 'http'));
    expect(onHttp.map((r) => r.metadata.name)).toEqual(['https-redirect']);
    const redirect = onHttp[0];
    expect(redirect.metadata.namespace).toBe('kudo');
    expect(redirect.spec.parentRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'kudo', namespace: 'kudo', sectionName: 'http' }]);
    expect(redirect.spec.hostnames).toEqual(['matrix.example.com', 'livekit.example.com', 'example.com']);
    expect(redirect.spec.rules).toEqual([{ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', statusCode: 301 } }] }]);
  });

  test("a Gateway in a namespace of its own lets its own namespace's routes (the redirect, the listeners' ACME solvers) onto the HTTP listener only", () => {
    const g = find(synthAll(config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'eg', gatewayNamespace: 'gateways' } })), 'Gateway', 'kudo');
    const allowed = (l: any) => l.allowedRoutes.namespaces.selector.matchExpressions[0].values;
    expect(allowed(g.spec.listeners[0])).toEqual(['kudo', 'kudo-media', 'gateways']);
    for (const l of g.spec.listeners.slice(1)) expect(allowed(l)).toEqual(['kudo', 'kudo-media']);
  });

  test('an existing Gateway can be used; a rendered one needs its class', () => {
    const existing = synthAll(config({ routing: 'gateway-api', gatewayApi: { createGateway: false, gatewayName: 'shared', gatewayNamespace: 'gateways' } }));
    expect(existing.filter((m) => m.kind === 'Gateway')).toEqual([]);
    expect(find(existing, 'HTTPRoute', 'synapse').spec.parentRefs[0]).toEqual({
      group: 'gateway.networking.k8s.io',
      kind: 'Gateway',
      name: 'shared',
      namespace: 'gateways',
      sectionName: 'https-matrix.example.com',
    });
    // Its HTTP listener is not ours: no redirect route is rendered for it.
    expect(
      existing
        .filter((m) => m.kind === 'HTTPRoute')
        .map((r) => r.metadata.name)
        .sort(),
    ).toEqual(['livekit', 'matrix-well-known', 'synapse']);
    expect(() => resolveConfig({ routing: 'gateway-api' })).toThrow('gatewayApi.gatewayClassName is required');
  });
});
