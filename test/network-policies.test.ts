import { Testing } from 'cdk8s';
import { NetworkPoliciesChart, NetworkPoliciesProps } from '../charts/network-policies';
import { config, find, Manifest, PRODUCTION, synthAll, synthChart } from './util';

const manifests = (c = config()) => synthChart('06-network-policies', c);
const policy = (ms: Manifest[], name: string) => find(ms, 'NetworkPolicy', name);
const names = (peers: any[]) =>
  peers.map((p) => p.podSelector?.matchLabels?.['app.kubernetes.io/name'] ?? p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] ?? p.ipBlock?.cidr);
const ports = (rule: any) => rule.ports.map((p: any) => `${p.protocol}/${p.port}`);

test('everything in the stack namespace is denied unless allowed', () => {
  const deny = policy(manifests(), 'default-deny');
  expect(deny.metadata.namespace).toBe('kudo');
  expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
  for (const m of manifests()) expect(m.metadata.namespace).toBe('kudo');
});

test('DNS for every pod, to the DNS namespace only', () => {
  const dns = policy(manifests(), 'allow-dns');
  expect(dns.spec.podSelector).toEqual({});
  expect(names(dns.spec.egress[0].to)).toEqual(['kube-system']);
  expect(ports(dns.spec.egress[0])).toEqual(['UDP/53', 'TCP/53']);
});

test('only Synapse, its schema migration and the backups reach PostgreSQL', () => {
  const pg = policy(manifests(), 'postgres');
  expect(pg.spec.ingress).toHaveLength(1);
  expect(names(pg.spec.ingress[0].from)).toEqual(['synapse', 'synapse-migrate', 'backup']);
  expect(ports(pg.spec.ingress[0])).toEqual(['TCP/5432']);
});

test('the schema migration Job reaches PostgreSQL and nothing else, in every database mode', () => {
  const statefulset = policy(manifests(), 'synapse-migrate');
  expect(statefulset.spec.podSelector.matchLabels['app.kubernetes.io/name']).toBe('synapse-migrate');
  expect(statefulset.spec.policyTypes).toEqual(['Egress']);
  expect(statefulset.spec.egress.map((r: any) => `${names(r.to).join(',')} ${ports(r).join(',')}`)).toEqual(['postgres TCP/5432']);
  const external = policy(manifests(config({ postgres: { mode: 'external', external: { host: 'db.example.org', ca: { name: 'db-ca' } } } })), 'synapse-migrate');
  expect(external.spec.egress.map((r: any) => `${names(r.to).join(',')} ${ports(r).join(',')}`)).toEqual(['0.0.0.0/0,::/0 TCP/5432']);
});

test('the ingress controller reaches Synapse, the well-known server and ACME solvers; Synapse reaches PostgreSQL and federation', () => {
  // Traefik by default, in the namespace its chart installs into.
  const ms = manifests();
  const syn = policy(ms, 'synapse');
  expect(syn.spec.ingress.map((r: any) => `${names(r.from).join(',')} ${ports(r).join(',')}`)).toEqual(['traefik TCP/8009', 'kudo-app,admin-bootstrap,smoke-test TCP/8008']);
  expect(names(syn.spec.egress[0].to)).toEqual(['postgres']);
  expect(ports(syn.spec.egress[1])).toEqual(['TCP/443', 'TCP/8448']);
  expect(names(policy(ms, 'matrix-well-known').spec.ingress[0].from)).toEqual(['traefik']);
  expect(names(policy(ms, 'acme-http01-solver').spec.ingress[0].from)).toEqual(['traefik']);
  expect(ports(policy(ms, 'acme-http01-solver').spec.ingress[0])).toEqual(['TCP/8089']);
});

describe('X-Forwarded-For: only the public proxy reaches a listener that believes it', () => {
  // Synapse takes the client address (rate limits, the sessions' IPs) from the header on 8009 (x_forwarded: true) and from
  // the connection on 8008; with workers the router stands in front, and on 8008 it writes the caller's own address.
  const admitted = (p: Manifest, peer: string) => p.spec.ingress.filter((r: any) => names(r.from).includes(peer)).flatMap(ports);
  const inside = ['kudo-app', 'admin-bootstrap', 'smoke-test'];

  test('one process: the ingress controller on 8009; the app, the bootstrap Job and the smoke test on 8008 only', () => {
    const syn = policy(manifests(), 'synapse');
    expect(admitted(syn, 'traefik')).toEqual(['TCP/8009']);
    for (const peer of inside) expect([peer, admitted(syn, peer)]).toEqual([peer, ['TCP/8008']]);
  });

  test('workers: the same on the router, and the processes admit the router alone, on 8009', () => {
    const ms = manifests(config({ ...PRODUCTION }));
    const router = policy(ms, 'synapse-router');
    expect(admitted(router, 'traefik')).toEqual(['TCP/8009']);
    for (const peer of inside) expect([peer, admitted(router, peer)]).toEqual([peer, ['TCP/8008']]);
    expect(router.spec.egress.map(ports)).toEqual([['TCP/8009']]);
    const processes = policy(ms, 'synapse');
    expect(admitted(processes, 'synapse-router')).toEqual(['TCP/8009']);
    expect(processes.spec.ingress.filter((r: any) => ports(r).includes('TCP/8008') || ports(r).includes('TCP/8009')).flatMap((r: any) => names(r.from))).toEqual([
      'synapse-router',
    ]);
  });

  test("gateway-api: the Gateway's proxies are the public proxy, on 8009", () => {
    const ms = manifests(config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'istio' } }));
    const syn = policy(ms, 'synapse');
    expect(syn.spec.ingress.filter((r: any) => r.from.some((f: any) => f.podSelector?.matchLabels?.['gateway.networking.k8s.io/gateway-name'] === 'kudo')).flatMap(ports)).toEqual([
      'TCP/8009',
    ]);
    for (const peer of inside) expect([peer, admitted(syn, peer)]).toEqual([peer, ['TCP/8008']]);
  });

  test('the Jobs call Synapse on 8008', () => {
    const ms = manifests();
    expect(policy(ms, 'admin-bootstrap').spec.egress.map(ports)).toEqual([['TCP/8008']]);
    expect(ports(policy(ms, 'smoke-test').spec.egress[0])).toEqual(['TCP/8008']);
  });

  test("the Jobs call Synapse's main process without workers and the router with them, never a worker", () => {
    const to = (ms: Manifest[], name: string) => names(policy(ms, name).spec.egress[0].to);
    const one = manifests();
    expect([to(one, 'admin-bootstrap'), to(one, 'smoke-test')]).toEqual([['synapse'], ['synapse']]);
    const workers = manifests(config({ ...PRODUCTION }));
    expect([to(workers, 'admin-bootstrap'), to(workers, 'smoke-test')]).toEqual([['synapse-router'], ['synapse-router']]);
  });
});

test('the controller family decides the namespace admitted, unless ingress.namespace says otherwise', () => {
  const from = (c: object) => names(policy(manifests(config(c)), 'synapse').spec.ingress[0].from)[0];
  expect(from({ ingress: { controller: 'ingress-nginx' } })).toBe('ingress-nginx');
  expect(from({ ingress: { controller: 'haproxy' } })).toBe('ingress-controller');
  expect(from({ ingress: { controller: 'nginx-inc' } })).toBe('nginx-ingress');
  expect(from({ ingress: { controller: 'traefik', namespace: 'kube-system' } })).toBe('kube-system');
});

test("gateway-api: public traffic and ACME challenges come from the Gateway's proxies, not from an ingress controller", () => {
  const gw = { routing: 'gateway-api', gatewayApi: { gatewayClassName: 'eg', gatewayNamespace: 'gateways' } };
  for (const [c, ns] of [
    [gw, 'gateways'],
    [{ ...gw, gatewayApi: { ...gw.gatewayApi, proxyNamespace: 'envoy-gateway-system' } }, 'envoy-gateway-system'],
  ] as const) {
    const ms = manifests(config(c));
    expect(names(policy(ms, 'synapse').spec.ingress[0].from)[0]).toBe(ns);
    expect(names(policy(ms, 'matrix-well-known').spec.ingress[0].from)).toEqual([ns]);
    expect(names(policy(ms, 'acme-http01-solver').spec.ingress[0].from)).toEqual([ns]);
    for (const p of ms) expect(JSON.stringify(p.spec)).not.toMatch(/traefik|ingress-nginx/);
  }
});

describe('gateway-api with the Gateway in the stack namespace (the default): its proxy pods live under default-deny', () => {
  const proxy = { 'gateway.networking.k8s.io/gateway-name': 'kudo' };
  const gw = (more: object = {}) => config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'istio', ...more } });
  const anywhere = [{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0' } }];

  test('the proxies (GEP-1762 label) get in from anywhere on the listener ports and out to the backends the routes name', () => {
    const ms = manifests(gw({ controlPlane: { namespace: 'istio-system', ports: [15012] } }));
    const p = policy(ms, 'gateway-proxy');
    expect(p.spec.podSelector).toEqual({ matchLabels: proxy });
    expect(p.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    // Listener ports 80 and 443; Envoy Gateway's proxies listen 10000 above a privileged one.
    expect(p.spec.ingress).toEqual([{ from: anywhere, ports: ['80', '443', '10080', '10443'].map((x) => ({ protocol: 'TCP', port: Number(x) })) }]);
    const egress = p.spec.egress.map((r: any) => `${names(r.to).join(',')} ${ports(r).join(',')}`);
    expect(egress).toEqual([
      'synapse TCP/8009',
      'matrix-well-known TCP/8080',
      // LiveKit is on the host network: its Service's endpoints are node addresses.
      '0.0.0.0/0,::/0 TCP/7880',
      // cert-manager's HTTP-01 solvers: beside the Gateway's certificates, and beside coturn's in the media namespace.
      ',kudo-media TCP/8089',
      'istio-system TCP/15012',
    ]);
    expect(p.spec.egress[3].to).toEqual([
      { podSelector: { matchLabels: { 'acme.cert-manager.io/http01-solver': 'true' } } },
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kudo-media' } }, podSelector: { matchLabels: { 'acme.cert-manager.io/http01-solver': 'true' } } },
    ]);
  });

  test('Synapse, the well-known server and the ACME solvers admit the proxies, not every pod of the namespace', () => {
    const ms = manifests(gw());
    expect(policy(ms, 'synapse').spec.ingress[0].from[0]).toEqual({ podSelector: { matchLabels: proxy } });
    expect(policy(ms, 'matrix-well-known').spec.ingress[0].from).toEqual([{ podSelector: { matchLabels: proxy } }]);
    expect(policy(ms, 'acme-http01-solver').spec.ingress[0].from).toEqual([{ podSelector: { matchLabels: proxy } }]);
    // Without gatewayApi.controlPlane the proxies reach nothing else.
    expect(policy(ms, 'gateway-proxy').spec.egress).toHaveLength(4);
  });

  test('with node CIDRs the proxies reach LiveKit on the nodes only', () => {
    const p = policy(manifests(config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'istio' }, networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } })), 'gateway-proxy');
    expect(p.spec.egress[2].to).toEqual([{ ipBlock: { cidr: '10.0.0.0/16' } }]);
  });

  test('no such policy when the proxies run elsewhere, or with an Ingress controller', () => {
    const has = (c: object) => manifests(config(c)).some((m) => m.metadata.name === 'gateway-proxy');
    expect(has({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'eg', proxyNamespace: 'envoy-gateway-system' } })).toBe(false);
    expect(has({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'eg', gatewayNamespace: 'gateways' } })).toBe(false);
    expect(has({})).toBe(false);
  });

  test('gatewayApi.controlPlane needs both its namespace and its ports', () => {
    expect(() => gw({ controlPlane: { namespace: 'istio-system' } })).toThrow(
      'gatewayApi.controlPlane.ports must list the ports the proxies reach their control plane on (e.g. 15012 for istiod) when gatewayApi.controlPlane.namespace is set',
    );
    expect(() => gw({ controlPlane: { ports: [15012] } })).toThrow('gatewayApi.controlPlane.namespace is required when gatewayApi.controlPlane.ports is set');
  });
});

// Anywhere but the cloud metadata service.
const ANYWHERE = [{ ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'] } }, { ipBlock: { cidr: '::/0', except: ['fd00:ec2::254/128'] } }];

test("the Jobs that read or write Secrets reach the Kubernetes API on 443 and 6443 (kubeadm's and k3s's port), anywhere, and nothing else", () => {
  const api = policy(manifests(), 'kubernetes-api');
  expect(api.spec).toEqual({
    // The backups read the generated Secrets they store; with secrets.mode "existing" they do not (below).
    podSelector: { matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: ['secret-generator', 'admin-bootstrap', 'backup'] }] },
    policyTypes: ['Egress'],
    egress: [
      {
        to: ANYWHERE,
        ports: [
          { protocol: 'TCP', port: 443 },
          { protocol: 'TCP', port: 6443 },
        ],
      },
    ],
  });
});

test('the smoke test reaches Synapse inside, and outside HTTPS, TURN over TLS (5349/TCP) and STUN/TURN (3478/UDP)', () => {
  const smoke = policy(manifests(), 'smoke-test');
  expect(smoke.spec.podSelector.matchLabels['app.kubernetes.io/name']).toBe('smoke-test');
  expect(smoke.spec.policyTypes).toEqual(['Egress']);
  expect(smoke.spec.egress.map((r: any) => [names(r.to), ports(r)])).toEqual([
    [['synapse'], ['TCP/8008']],
    [
      ['0.0.0.0/0', '::/0'],
      ['TCP/443', 'TCP/5349', 'UDP/3478'],
    ],
  ]);
});

test('with workers, the main process alone (not every Synapse process) reaches the internet: federation and push gateways on 443 and 8448', () => {
  const ms = manifests(config({ ...PRODUCTION }));
  const internet = policy(ms, 'synapse-internet');
  expect(internet.spec).toEqual({
    podSelector: { matchLabels: { 'app.kubernetes.io/name': 'synapse', 'app.kubernetes.io/instance': 'kudo-synapse' } },
    policyTypes: ['Egress'],
    egress: [
      {
        to: ANYWHERE,
        ports: [
          { protocol: 'TCP', port: 443 },
          { protocol: 'TCP', port: 8448 },
        ],
      },
    ],
  });
  // Without workers the main process's own policy says so, and there is no second one.
  expect(manifests().map((m) => m.metadata.name)).not.toContain('synapse-internet');
});

test('the old networkPolicies.ingressControllerNamespace key is refused with where its setting went', () => {
  expect(() => config({ networkPolicies: { ingressControllerNamespace: 'traefik' } })).toThrow(
    'networkPolicies.ingressControllerNamespace: moved to ingress.namespace (or gatewayApi.proxyNamespace with routing: gateway-api)',
  );
});

test("Redis with node CIDRs: LiveKit's nodes and Synapse's processes (workers) only, nothing else", () => {
  const from = (c: object) => policy(manifests(config(c)), 'redis').spec.ingress[0].from;
  expect(from({ ...PRODUCTION, networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } })).toEqual([
    { ipBlock: { cidr: '10.0.0.0/16' } },
    { podSelector: { matchLabels: { 'app.kubernetes.io/part-of': 'kudo', 'app.kubernetes.io/component': 'homeserver' } } },
  ]);
});

test('Redis: from the nodes (LiveKit is on the host network) when their addresses are known', () => {
  // Unknown: the private and shared ranges nodes and pods use (RFC 1918, RFC 6598, RFC 4193), never the internet.
  expect(policy(manifests(), 'redis').spec.ingress[0].from).toEqual([
    { ipBlock: { cidr: '10.0.0.0/8' } },
    { ipBlock: { cidr: '172.16.0.0/12' } },
    { ipBlock: { cidr: '192.168.0.0/16' } },
    { ipBlock: { cidr: '100.64.0.0/10' } },
    { ipBlock: { cidr: 'fc00::/7' } },
  ]);
  const ms = manifests(config({ networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } }));
  expect(policy(ms, 'redis').spec.ingress[0].from).toEqual([{ ipBlock: { cidr: '10.0.0.0/16' } }]);
});

test('backups reach PostgreSQL, and HTTPS only when uploading to S3', () => {
  expect(policy(manifests(), 'backup').spec.egress).toHaveLength(1);
  const s3 = policy(manifests(config({ backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/b' } } })), 'backup');
  expect(ports(s3.spec.egress[1])).toEqual(['TCP/443']);
});

test('backups to an S3 endpoint on another port (MinIO, SeaweedFS) reach that port; plain http defaults to 80', () => {
  const port = (repository: string) => ports(policy(manifests(config({ backup: { s3: { enabled: true, repository } } })), 'backup').spec.egress[1]);
  expect(port('s3:https://minio.example.com:9000/kudo')).toEqual(['TCP/9000']);
  expect(port('s3:http://seaweed.example.com/kudo')).toEqual(['TCP/80']);
  expect(port('s3:http://seaweed.example.com:8333/kudo')).toEqual(['TCP/8333']);
});

test('every pod of the stack namespace is selected by some allowing policy', () => {
  const all = synthAll();
  const stackPods = all
    .filter((m) => m.metadata.namespace === 'kudo' && ['Deployment', 'StatefulSet', 'Job', 'CronJob'].includes(m.kind))
    .map((m) => (m.kind === 'CronJob' ? m.spec.jobTemplate.spec.template : m.spec.template).metadata.labels['app.kubernetes.io/name']);
  const selected = new Set(
    all
      .filter((m) => m.kind === 'NetworkPolicy')
      .flatMap((p) => {
        const sel = p.spec.podSelector;
        return [sel.matchLabels?.['app.kubernetes.io/name'], ...(sel.matchExpressions?.[0]?.values ?? [])];
      }),
  );
  // Every pod that talks to anything but DNS, or is talked to, has its own policy.
  expect(new Set(stackPods)).toEqual(
    new Set(['secret-generator', 'postgres', 'redis', 'synapse', 'synapse-migrate', 'matrix-well-known', 'admin-bootstrap', 'backup', 'smoke-test']),
  );
  for (const name of new Set(stackPods)) expect(selected).toContain(name);
});

test("no well-known policy (nor a route to it from the Gateway's proxies) when the well-known server is off", () => {
  expect(manifests(config({ wellKnown: { enabled: false } })).map((m) => m.metadata.name)).not.toContain('matrix-well-known');
  const gw = policy(manifests(config({ wellKnown: { enabled: false }, routing: 'gateway-api', gatewayApi: { gatewayClassName: 'istio' } })), 'gateway-proxy');
  expect(gw.spec.egress.map((r: any) => names(r.to)[0])).not.toContain('matrix-well-known');
});

test('egress to the internet never reaches the cloud metadata service, and federation not the nodes either', () => {
  const metadata = [{ ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'] } }, { ipBlock: { cidr: '::/0', except: ['fd00:ec2::254/128'] } }];
  const all = manifests(config({ networkPolicies: { nodeCidrs: ['10.0.0.0/16'] }, backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/b' } } }));
  // Every egress rule to an ipBlock leaves out the metadata address.
  for (const p of all) {
    for (const r of p.spec.egress ?? []) {
      for (const peer of (r.to ?? []).filter((x: any) => x.ipBlock?.cidr === '0.0.0.0/0' || x.ipBlock?.cidr === '::/0')) {
        expect(peer.ipBlock.except).toContain(peer.ipBlock.cidr === '::/0' ? 'fd00:ec2::254/128' : '169.254.169.254/32');
      }
    }
  }
  expect(policy(all, 'kubernetes-api').spec.egress[0].to).toEqual(metadata);
  expect(policy(all, 'backup').spec.egress[1].to).toEqual(metadata);
  // Federation goes to other servers, never to the cluster's own nodes.
  expect(policy(all, 'synapse').spec.egress[1].to).toEqual([
    { ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32', '10.0.0.0/16'] } },
    { ipBlock: { cidr: '::/0', except: ['fd00:ec2::254/128'] } },
  ]);
  // Without node CIDRs, federation may go anywhere but the metadata service.
  expect(policy(manifests(), 'synapse').spec.egress[1].to).toEqual(metadata);
});

test("networkPolicies.clusterCidrs: federation and push gateways never reach the cluster's own pods and Services; the API server and backups keep their rules", () => {
  const c = { networkPolicies: { nodeCidrs: ['10.0.0.0/16'], clusterCidrs: ['10.42.0.0/16', '10.43.0.0/16'] } };
  const toInternet = [
    { ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32', '10.0.0.0/16', '10.42.0.0/16', '10.43.0.0/16'] } },
    { ipBlock: { cidr: '::/0', except: ['fd00:ec2::254/128'] } },
  ];
  const one = manifests(config({ ...c, backup: { s3: { enabled: true, repository: 's3:https://minio.example.org:9000/b' } } }));
  expect(policy(one, 'synapse').spec.egress[1]).toEqual({
    to: toInternet,
    ports: [
      { protocol: 'TCP', port: 443 },
      { protocol: 'TCP', port: 8448 },
    ],
  });
  // With workers: the main process (push gateways) and the federation senders alike.
  const workers = manifests(config({ ...PRODUCTION, ...c }));
  expect([policy(workers, 'synapse-internet').spec.egress[0].to, policy(workers, 'synapse-federation-sender').spec.egress[0].to]).toEqual([toInternet, toInternet]);
  // The Jobs reach the API server by its Service address, and an S3 store may run in the cluster: only the metadata service is left out there.
  const metadataOnly = [{ ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'] } }, { ipBlock: { cidr: '::/0', except: ['fd00:ec2::254/128'] } }];
  expect([policy(one, 'kubernetes-api').spec.egress[0].to, policy(one, 'backup').spec.egress[1].to]).toEqual([metadataOnly, metadataOnly]);
  // A value that is no CIDR is refused by its key.
  expect(() => config({ networkPolicies: { clusterCidrs: ['10.42.0.0'] } })).toThrow(/networkPolicies\.clusterCidrs\.0/);
});

test("a dual-stack cluster: its IPv6 node and cluster ranges are left out of the IPv6 block, each family's in its own, and Redis admits the nodes by both", () => {
  const c = { networkPolicies: { nodeCidrs: ['10.0.0.0/16', '2001:db8:10::/64'], clusterCidrs: ['10.42.0.0/16', 'fd00:10:42::/56', '10.43.0.0/16', 'fd00:10:43::/112'] } };
  const ms = manifests(config(c));
  // The API server refuses an except outside its block's cidr: an IPv6 range under 0.0.0.0/0 would fail the whole sync.
  expect(policy(ms, 'synapse').spec.egress[1].to).toEqual([
    { ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32', '10.0.0.0/16', '10.42.0.0/16', '10.43.0.0/16'] } },
    { ipBlock: { cidr: '::/0', except: ['fd00:ec2::254/128', '2001:db8:10::/64', 'fd00:10:42::/56', 'fd00:10:43::/112'] } },
  ]);
  expect(policy(ms, 'redis').spec.ingress[0].from).toEqual(expect.arrayContaining([{ ipBlock: { cidr: '10.0.0.0/16' } }, { ipBlock: { cidr: '2001:db8:10::/64' } }]));
  // What is neither family's CIDR is still refused by its key.
  for (const bad of ['fd00:10:42::/129', 'fd00:10:42::', 'fd00::g/64', '10.42.0.0/33']) {
    expect(() => config({ networkPolicies: { clusterCidrs: [bad] } })).toThrow(/networkPolicies\.clusterCidrs\.0/);
  }
});

test('workers without a federation sender: the main process federates, and no policy is rendered for senders that do not run', () => {
  const noSender = config({ ...PRODUCTION, synapse: { workers: { replicas: { federationSender: 0 } } } });
  const ms = manifests(noSender);
  expect(ms.map((m) => m.metadata.name)).toContain('synapse-internet');
  expect(ms.map((m) => m.metadata.name)).not.toContain('synapse-federation-sender');
  expect(manifests(config(PRODUCTION)).map((m) => m.metadata.name)).toContain('synapse-federation-sender');
});

test("the Secrets' restore reaches the off-site store, egress only", () => {
  const ms = manifests(config({ backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/b' } }, secrets: { restoreFromBackup: 'latest' } }));
  const p = policy(ms, 'secrets-restore');
  expect(p.spec.policyTypes).toEqual(['Egress']);
  expect(p.spec.ingress).toBeUndefined();
  expect(p.spec.egress).toEqual([{ to: ANYWHERE, ports: [{ protocol: 'TCP', port: 443 }] }]);
});

test('can be switched off', () => {
  expect(() => synthChart('06-network-policies', config({ networkPolicies: { enabled: false } }))).toThrow('no chart');
});

test('no backup policy, and no backup pods among the database clients, when backup.enabled is false', () => {
  const ms = manifests(config({ backup: { enabled: false } }));
  expect(ms.filter((m) => m.metadata.name === 'backup')).toEqual([]);
  expect(names(policy(ms, 'postgres').spec.ingress[0].from)).toEqual(['synapse', 'synapse-migrate']);
  const cnpg = manifests(config({ backup: { enabled: false }, postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } } }));
  expect(cnpg.filter((m) => m.metadata.name === 'backup')).toEqual([]);
  expect(names(policy(cnpg, 'postgres').spec.ingress[0].from)).toEqual(['synapse', 'synapse-migrate']);
});

describe('livekit.hostNetwork false: LiveKit selected by its pod labels', () => {
  const podMode = (extra: object = {}) =>
    config({ ...extra, livekit: { hostNetwork: false, replicas: 2, rtc: { udpPort: 31000, tcpPort: 31100 }, ...((extra as any).livekit ?? {}) } });
  const LIVEKIT_PEER = {
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kudo-media' } },
    podSelector: { matchLabels: { 'app.kubernetes.io/name': 'livekit', 'app.kubernetes.io/instance': 'kudo-livekit' } },
  };

  test('Redis admits LiveKit by its labels and nothing else: no node or private ranges', () => {
    expect(policy(manifests(podMode()), 'redis').spec.ingress).toEqual([{ from: [LIVEKIT_PEER], ports: [{ protocol: 'TCP', port: 6379 }] }]);
    // Node CIDRs are not needed, and not used for Redis when given.
    expect(policy(manifests(podMode({ networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } })), 'redis').spec.ingress[0].from).toEqual([LIVEKIT_PEER]);
  });

  test("with Synapse's workers: LiveKit and Synapse's processes, and the exporter scraped from monitoring", () => {
    const redis = policy(manifests(podMode({ ...PRODUCTION, networkPolicies: {}, monitoring: { enabled: true } })), 'redis');
    expect(redis.spec.ingress).toEqual([
      {
        from: [LIVEKIT_PEER, { podSelector: { matchLabels: { 'app.kubernetes.io/part-of': 'kudo', 'app.kubernetes.io/component': 'homeserver' } } }],
        ports: [{ protocol: 'TCP', port: 6379 }],
      },
      { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 9121 }] },
    ]);
  });

  test("a policy in LiveKit's namespace: the API from the ingress controller, media from anywhere on the replicas' ports, metrics from monitoring", () => {
    const lk = policy(manifests(podMode({ monitoring: { enabled: true } })), 'livekit');
    expect(lk.metadata.namespace).toBe('kudo-media');
    expect(lk.spec).toEqual({
      podSelector: LIVEKIT_PEER.podSelector,
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'traefik' } } }], ports: [{ protocol: 'TCP', port: 7880 }] },
        {
          from: [{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0' } }],
          ports: [
            { protocol: 'UDP', port: 31000, endPort: 31001 },
            { protocol: 'TCP', port: 31100, endPort: 31101 },
          ],
        },
        { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 6789 }] },
      ],
    });
    // One replica: single ports, no endPort.
    const one = policy(manifests(config({ livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100 } } })), 'livekit');
    expect(one.spec.ingress[1].ports).toEqual([
      { protocol: 'UDP', port: 31000 },
      { protocol: 'TCP', port: 31100 },
    ]);
  });

  test("Gateway API: the proxies reach LiveKit's pods by their labels, and LiveKit admits the proxies by theirs", () => {
    const gw = { routing: 'gateway-api', gatewayApi: { gatewayClassName: 'eg' } };
    const ms = manifests(podMode(gw));
    const proxy = policy(ms, 'gateway-proxy');
    expect(proxy.spec.egress.find((r: any) => r.ports.some((p: any) => p.port === 7880)).to).toEqual([LIVEKIT_PEER]);
    expect(policy(ms, 'livekit').spec.ingress[0].from).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kudo' } }, podSelector: proxy.spec.podSelector },
    ]);
    // On the host network the proxies reach node addresses, and LiveKit has no policy.
    const host = manifests(config(gw));
    expect(names(policy(host, 'gateway-proxy').spec.egress.find((r: any) => r.ports.some((p: any) => p.port === 7880)).to)).toEqual(['0.0.0.0/0', '::/0']);
    expect(host.filter((m) => m.metadata.name === 'livekit')).toEqual([]);
  });
});

describe("NetworkPoliciesChart on its own: a library user's props, the optional ones left out", () => {
  // The app always passes every option; a program that builds the chart itself gets the documented defaults.
  const pods = <K extends string>(...names: K[]): Record<K, Record<string, string>> => {
    const out = {} as Record<K, Record<string, string>>;
    for (const n of names) out[n] = { 'app.kubernetes.io/name': n };
    return out;
  };
  const minimal: NetworkPoliciesProps = {
    namespace: 'chat',
    publicTrafficNamespace: 'edge',
    appNamespace: 'web',
    dnsNamespace: 'kube-system',
    ports: { redis: 6379, synapse: 8008, synapseProxied: 8009, wellKnown: 8080, synapseMetrics: 9000, redisMetrics: 9121, turn: 3478, turnTls: 5349 },
    database: { mode: 'statefulset', pods: { 'app.kubernetes.io/name': 'postgres' }, port: 5432, metricsPort: 9187 },
    pods: pods('redis', 'synapse', 'synapseMigration', 'wellKnown', 'backup', 'bootstrap', 'smoke'),
    apiClients: ['secret-generator'],
  };
  const render = (props: NetworkPoliciesProps) => Testing.synth(new NetworkPoliciesChart(Testing.app(), 'np', props)) as Manifest[];

  test('Redis, the well-known server and the backups are on; Redis admits the private ranges; nothing restores Secrets', () => {
    const ms = render(minimal);
    expect(ms.map((m) => m.metadata.name)).toEqual([
      'default-deny',
      'allow-dns',
      'postgres',
      'redis',
      'synapse-migrate',
      'synapse',
      'matrix-well-known',
      'acme-http01-solver',
      'kubernetes-api',
      'admin-bootstrap',
      'smoke-test',
      'backup',
    ]);
    expect(names(policy(ms, 'redis').spec.ingress[0].from)).toEqual(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7']);
    expect(names(policy(ms, 'postgres').spec.ingress[0].from)).toEqual(['synapse', 'synapseMigration', 'backup']);
    // Federation leaves out the metadata service only: no node or cluster ranges were given.
    expect(policy(ms, 'synapse').spec.egress[1].to).toEqual([
      { ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'] } },
      { ipBlock: { cidr: '::/0', except: ['fd00:ec2::254/128'] } },
    ]);
  });

  test('without backups PostgreSQL admits Synapse and its migration only', () => {
    const ms = render({ ...minimal, backup: false });
    expect(policy(ms, 'postgres').spec.ingress[0].from).toEqual([
      { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'synapse' } } },
      { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'synapseMigration' } } },
    ]);
    expect(ms.filter((m) => m.metadata.name === 'backup')).toEqual([]);
  });

  test('the Secrets restore needs both its labels and the store port', () => {
    const restore = (props: NetworkPoliciesProps) => render(props).filter((m) => m.metadata.name === 'secrets-restore');
    expect(restore({ ...minimal, secretsRestore: { 'app.kubernetes.io/name': 'secret-generator' } })).toEqual([]);
    expect(restore({ ...minimal, backupStorePort: 9000 })).toEqual([]);
    expect(restore({ ...minimal, secretsRestore: { 'app.kubernetes.io/name': 'secret-generator' }, backupStorePort: 9000 })[0].spec.egress[0].ports).toEqual([
      { protocol: 'TCP', port: 9000 },
    ]);
  });

  test("the Gateway's proxies: only privileged listener ports (below 1024) get Envoy's shifted twin", () => {
    const ms = render({
      ...minimal,
      gatewayProxies: { labels: { 'gateway.networking.k8s.io/gateway-name': 'kudo' }, listenerPorts: [80, 1023, 1024, 8443], livekitPort: 7880, mediaNamespace: 'media' },
    });
    expect(ports(policy(ms, 'gateway-proxy').spec.ingress[0])).toEqual(['TCP/80', 'TCP/1023', 'TCP/1024', 'TCP/8443', 'TCP/10080', 'TCP/11023']);
  });

  test("LiveKit's pods: Redis's policy selects Redis for ingress, and LiveKit's policy carries the stack's labels", () => {
    const ms = render({
      ...minimal,
      livekitPods: { namespace: 'media', pods: { 'app.kubernetes.io/name': 'livekit' }, apiPort: 7880, metricsPort: 6789, udp: [31000, 31000], tcp: [31100, 31100] },
    });
    const redis = policy(ms, 'redis');
    expect(redis.spec.podSelector).toEqual({ matchLabels: { 'app.kubernetes.io/name': 'redis' } });
    expect(redis.spec.policyTypes).toEqual(['Ingress']);
    expect(redis.spec.ingress[0].from).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'media' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'livekit' } } },
    ]);
    expect(policy(ms, 'livekit').metadata.labels).toEqual({
      'app.kubernetes.io/name': 'network-policy',
      'app.kubernetes.io/instance': 'kudo-network-policy',
      'app.kubernetes.io/component': 'security',
      'app.kubernetes.io/part-of': 'kudo',
      'app.kubernetes.io/managed-by': 'cdk8s',
    });
  });
});
