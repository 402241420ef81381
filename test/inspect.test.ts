import * as fs from 'fs';
import * as path from 'path';
import { architecture, checklist, formatText, renderedManifests, toSvg } from '../scripts/inspect';
import { config, lazy, PRODUCTION } from './util';

describe('production checklist', () => {
  const c = config();
  const list = lazy(() => checklist(c, renderedManifests(c)));

  test('DNS: every routed host to the ingress controller, the TURN host to the TURN nodes', () => {
    expect(list().dns.map((d) => [d.name, d.target])).toEqual([
      ['example.com', 'the external address of your Traefik ingress controller'],
      ['livekit.example.com', 'the external address of your Traefik ingress controller'],
      ['matrix.example.com', 'the external address of your Traefik ingress controller'],
      ['turn.example.com', 'the public IPv4 of every node labelled kudo/turn=true'],
      ['turn.example.com', 'the public IPv6 of every node labelled kudo/turn=true that has one'],
    ]);
    // coturn listens on both where a node has both (start.sh): an AAAA record to a node without IPv6 would strand IPv6 clients.
    expect(
      list()
        .dns.filter((d) => d.name === 'turn.example.com')
        .map((d) => d.type),
    ).toEqual(['A', 'AAAA']);
  });

  test('certificates: one per Ingress TLS host and the TURN Certificate, with their issuer', () => {
    expect(list().certificates.map((x) => `${x.namespace}/${x.secret} ${x.dnsNames.join(',')} ${x.issuer}`)).toEqual([
      'kudo/matrix-well-known-tls example.com kudo-letsencrypt',
      'kudo/synapse-tls matrix.example.com kudo-letsencrypt',
      'kudo-media/coturn-tls turn.example.com kudo-letsencrypt',
      'kudo-media/livekit-tls livekit.example.com kudo-letsencrypt',
    ]);
  });

  test('firewall: the ports the rendered host-network pods and configs open', () => {
    const role = (r: string) =>
      list()
        .firewall.find((f) => f.role === r)!
        .rules.map((x) => `${x.exposure} ${x.protocol} ${x.ports}`);
    expect(role('LiveKit')).toEqual(['cluster TCP 7880', 'internet TCP 7881', 'cluster TCP 6789', 'internet UDP 20000-20999']);
    expect(role('TURN')).toEqual(['internet UDP 3478', 'internet TCP 3478', 'internet TCP 5349', 'cluster TCP 9641', 'internet UDP 10000-12399', 'internet TCP 80']);
    // The ranges say what they hold.
    const purpose = (r: string, ports: string) =>
      list()
        .firewall.find((f) => f.role === r)!
        .rules.find((x) => x.ports === ports)!.purpose;
    expect(purpose('LiveKit', '20000-20999')).toBe('WebRTC media: 2 ports per participant and node address (livekit.participantsPerNode 250)');
    expect(purpose('TURN', '10000-12399')).toBe('TURN relay: up to 2 ports per allocation (coturn.totalQuota 1200)');
    // Port 80 is for the TURN host's own certificate (HTTP-01), and says how else to get one.
    expect(
      list()
        .firewall.find((f) => f.role === 'TURN')!
        .rules.at(-1)!.purpose,
    ).toBe('ACME HTTP-01 for turn.example.com: must reach your ingress controller (or use a DNS-01 issuer, tls.issuer)');
    // It follows the config, because it reads the rendered output.
    const other = config({ livekit: { rtc: { udpPort: 7882 } }, coturn: { relayPorts: { min: 40000, max: 40100 }, totalQuota: 50 } });
    const l2 = checklist(other, renderedManifests(other));
    expect(l2.firewall.find((f) => f.role === 'LiveKit')!.rules.map((x) => `${x.protocol} ${x.ports}`)).toContain('UDP 7882');
    expect(l2.firewall.find((f) => f.role === 'TURN')!.rules.map((x) => x.ports)).toContain('40000-40100');
  });

  test("nodes: the UDP ranges below the kernel's ephemeral ports say so; ranges inside them make reserving them a prerequisite, with the sysctl line", () => {
    expect(list().prerequisites).toContain(
      "LiveKit and TURN nodes: UDP 10000-12399,20000-20999 lie below the kernel's ephemeral ports " +
        '(net.ipv4.ip_local_port_range, 32768-60999 by default); if yours were widened to include them, reserve them: ' +
        'sysctl -w net.ipv4.ip_local_reserved_ports=10000-12399,20000-20999',
    );
    const inside = config({ livekit: { rtc: { portRangeStart: 50000, portRangeEnd: 50999 } }, coturn: { relayPorts: { min: 40000, max: 42399 } } });
    const l = checklist(inside, renderedManifests(inside));
    expect(l.prerequisites).toContain(
      "LiveKit and TURN nodes: UDP 40000-42399,50000-50999 lie in the kernel's ephemeral ports " +
        '(net.ipv4.ip_local_port_range, 32768-60999 by default), which it hands to outgoing connections; reserve them on every such node: ' +
        'sysctl -w net.ipv4.ip_local_reserved_ports=40000-42399,50000-50999 and, to keep it across reboots, the line ' +
        '"net.ipv4.ip_local_reserved_ports = 40000-42399,50000-50999" in /etc/sysctl.d/90-kudo-ports.conf',
    );
    expect(formatText(l)).toContain('sysctl -w net.ipv4.ip_local_reserved_ports=40000-42399,50000-50999');
    // Kubernetes' NodePorts (30000-32767 by default): kube-proxy takes those packets before any socket sees them.
    const nodePorts = config({ coturn: { relayPorts: { min: 30000, max: 32399 } } });
    expect(checklist(nodePorts, renderedManifests(nodePorts)).prerequisites.join('\n')).toContain(
      "UDP 30000-32399 overlap Kubernetes' NodePort range (30000-32767 by default): no UDP NodePort Service may use those ports",
    );
    // With LiveKit's UDP mux only coturn's range is left to mention.
    const mux = config({ livekit: { rtc: { udpPort: 7882 } } });
    expect(checklist(mux, renderedManifests(mux)).prerequisites.join('\n')).toContain('LiveKit and TURN nodes: UDP 10000-12399 lie below');
  });

  test('external IP: what LiveKit advertises is what livekit.rtc.nodeAddress renders', () => {
    const lk = (c: object) => {
      const k = config(c);
      return checklist(k, renderedManifests(k)).externalIp[0];
    };
    // The default reads each node's ExternalIP from the API: not status.hostIP.
    expect(list().externalIp[0]).toBe(
      "LiveKit nodes advertise their node's ExternalIP, read from the Kubernetes API at start (livekit.rtc.nodeAddress node-external-ip): " +
        'check `kubectl get nodes -o wide` shows one for every LiveKit node, reachable from clients (else set livekit.rtc.publicIp)',
    );
    expect(list().externalIp.join('\n')).not.toContain('status.hostIP');
    expect(lk({ livekit: { rtc: { nodeAddress: 'host-ip' } } })).toBe(
      "LiveKit nodes advertise the node's own IP (status.hostIP, livekit.rtc.nodeAddress host-ip): it must be reachable from clients.",
    );
    expect(lk({ livekit: { rtc: { publicIp: '203.0.113.7' } } })).toBe(
      'LiveKit advertises 203.0.113.7 (livekit.rtc.publicIp) on every node: only right for a single node or a shared address.',
    );
    expect(lk({ livekit: { rtc: { nodeAddress: 'stun', stunServers: ['stun.example.org:3478'] } } })).toContain('over STUN');
  });

  test('external IP and health checks name the real hosts', () => {
    expect(list().externalIp.join('\n')).toContain('kubectl get nodes -l kudo/turn=true -o wide');
    const commands = list().healthChecks.map((h) => h.command);
    expect(commands).toContain('curl -fsS https://matrix.example.com/_matrix/client/versions');
    expect(commands).toContain('curl -fsS https://example.com/.well-known/matrix/server');
    expect(commands).toContain('turnutils_stunclient -p 3478 turn.example.com');
    expect(formatText(list())).toContain('keep closed to the internet: TCP 6789');
  });

  test('Gateway API: the Gateway is the entry point and its listeners hold the certificates', () => {
    const gw = config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'cilium' } });
    const l = checklist(gw, renderedManifests(gw));
    expect(l.dns[0].target).toBe('the external address of Gateway kudo');
    expect(l.certificates.filter((x) => x.via.startsWith('Gateway'))).toHaveLength(3);
    expect(l.prerequisites).toEqual(
      expect.arrayContaining([
        'Gateway API CRDs (standard channel: Gateway, HTTPRoute) and a GatewayClass "cilium" from your Gateway implementation',
        "cert-manager with Gateway API support enabled (--enable-gateway-api, or config.enableGatewayAPI), for the Gateway listeners' certificates",
      ]),
    );
  });

  test('Gateway API, proxies in the stack namespace: the checklist says which policy admits them, and that their control plane needs gatewayApi.controlPlane', () => {
    const gw = config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'istio' } });
    const l = checklist(gw, renderedManifests(gw));
    expect(l.prerequisites).toEqual(
      expect.arrayContaining([
        "The Gateway's proxy pods in namespace kudo, labelled gateway.networking.k8s.io/gateway-name=kudo (GEP-1762): the NetworkPolicy gateway-proxy " +
          'lets anyone reach them on TCP 80 and 443 and them reach Synapse, the well-known server, LiveKit and the ACME solvers; ' +
          'an implementation that labels them otherwise needs a policy of its own (gatewayApi.proxyNamespace)',
        'WARNING: the proxies cannot reach their control plane from namespace kudo (default-deny): set gatewayApi.controlPlane ' +
          '(Istio: istio-system, [15012]; Envoy Gateway: envoy-gateway-system, [18000]) or they never get their configuration',
      ]),
    );
    expect(l.prerequisites.join('\n')).not.toContain('admit public traffic and ACME challenges from there only');
    const withCp = config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'istio', controlPlane: { namespace: 'istio-system', ports: [15012] } } });
    const l2 = checklist(withCp, renderedManifests(withCp));
    expect(l2.prerequisites).toContain('The proxies reach their control plane in namespace istio-system on TCP 15012 (gatewayApi.controlPlane)');
    expect(l2.prerequisites.join('\n')).not.toContain('WARNING: the proxies');
    // Proxies elsewhere: public traffic is admitted from their namespace.
    const elsewhere = config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'eg', proxyNamespace: 'envoy-gateway-system' } });
    expect(checklist(elsewhere, renderedManifests(elsewhere)).prerequisites).toContain(
      "The Gateway's proxy pods in namespace envoy-gateway-system: the NetworkPolicies admit public traffic and ACME challenges from there only (gatewayApi.proxyNamespace)",
    );
  });

  test('a shared Gateway (createGateway: false): its HTTPS listeners, certificates and names for the three hosts, and the redirect', () => {
    const shared = config({ routing: 'gateway-api', gatewayApi: { createGateway: false, gatewayName: 'shared', gatewayNamespace: 'gateways' } });
    const l = checklist(shared, renderedManifests(shared));
    expect(l.prerequisites).toContain(
      'Gateway API CRDs and the Gateway gateways/shared with, for each host, an HTTPS listener (port 443, TLS terminated with a ' +
        'certificate for the host) named as the routes attach to it by sectionName: https-matrix.example.com (matrix.example.com), ' +
        'https-livekit.example.com (livekit.example.com), https-example.com (example.com); each allowing routes from kudo and kudo-media. ' +
        'Its plain HTTP listener must serve only a redirect to HTTPS (and ACME challenges): no route of ours attaches to it',
    );
    // Our own Gateway: the HTTP listener's redirect is rendered.
    const own = config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'cilium' } });
    expect(
      checklist(own, renderedManifests(own))
        .firewall.find((f) => f.role === 'Gateway')!
        .rules.map((r) => r.purpose),
    ).toContain('ACME HTTP-01 challenges, and a 301 redirect to HTTPS for everything else');
  });

  test('Redis without node CIDRs: the checklist says loudly that it is open to every namespace, and why', () => {
    const warning =
      'WARNING: Redis (plain TCP, one shared password) accepts connections from every private address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, ' +
      '100.64.0.0/10, fc00::/7), every namespace among them: LiveKit reaches it ' +
      "from the host network, and only networkPolicies.nodeCidrs (the nodes' addresses) lets the policy tell its nodes from other pods; " +
      "set it to close Redis to all but LiveKit's nodes and Synapse's processes, or run LiveKit off the host network (livekit.hostNetwork: false, " +
      'with livekit.rtc.udpPort), where Redis admits it by its labels. profile production refuses this unless networkPolicies.redisClosed.waived gives the reason';
    expect(list().prerequisites).toContain(warning);
    // Production with the waiver: the same warning, ending with the reason written down.
    const waived = config({ ...PRODUCTION, networkPolicies: { redisClosed: { waived: 'one tenant, nothing else runs in the cluster' } } });
    expect(checklist(waived, renderedManifests(waived)).prerequisites).toContain(
      `${warning}; waived (networkPolicies.redisClosed.waived): "one tenant, nothing else runs in the cluster"`,
    );
    const closed = config({ networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } });
    expect(checklist(closed, renderedManifests(closed)).prerequisites).not.toContain(warning);
    const noRedis = config({ redis: { enabled: false } });
    expect(checklist(noRedis, renderedManifests(noRedis)).prerequisites.join('\n')).not.toContain('Redis');
  });

  test("without networkPolicies.clusterCidrs the checklist says federation may reach the cluster's pods and Services, and what to list", () => {
    const line =
      "networkPolicies.clusterCidrs: list the cluster's pod and Service ranges (k3s: 10.42.0.0/16, 10.43.0.0/16); unset, Synapse's egress to other servers " +
      '(443 and 8448, to addresses that server names and push gateway URLs choose) leaves out only the metadata service and networkPolicies.nodeCidrs';
    expect(list().prerequisites).toContain(line);
    for (const c of [config({ networkPolicies: { clusterCidrs: ['10.42.0.0/16'] } }), config({ networkPolicies: { enabled: false } })]) {
      expect(checklist(c, renderedManifests(c)).prerequisites.join('\n')).not.toContain('clusterCidrs');
    }
  });

  test('prerequisites name the ingress controller assumed and where its pods must run', () => {
    expect(list().prerequisites).toEqual(
      expect.arrayContaining([
        'Traefik, IngressClass traefik, its pods in namespace traefik: the NetworkPolicies admit public traffic and ACME challenges from there only (ingress.controller, ingress.className, ingress.namespace)',
        "cert-manager, with the issuer kudo-letsencrypt (rendered here: a Let's Encrypt ClusterIssuer)",
        'LiveKit: 1 node (one pod per node, host network), any node',
        'A node labelled kudo/turn=true for coturn: kubectl label node NODE kudo/turn=true',
      ]),
    );
    const three = config({ livekit: { replicas: 3, nodeSelector: { 'kudo/media': 'true' } } });
    expect(checklist(three, renderedManifests(three)).prerequisites).toContain('LiveKit: 3 nodes (one pod per node, host network), labelled kudo/media=true');
  });

  test('existing secrets: which Secrets and keys to create, in which namespace', () => {
    const existing = config({ secrets: { mode: 'existing', refs: { postgresPassword: { name: 'vault-db', key: 'pw' } } } });
    const l = checklist(existing, renderedManifests(existing));
    expect(l.secretsToCreate).toEqual([
      { namespace: 'kudo', secret: 'kudo-backup', keys: ['restic_password'] },
      { namespace: 'kudo', secret: 'kudo-postgres', keys: ['superuser_password'] },
      { namespace: 'kudo', secret: 'kudo-redis', keys: ['password'] },
      { namespace: 'kudo', secret: 'kudo-synapse', keys: ['form_secret', 'macaroon_secret_key', 'registration_shared_secret', 'signing.key'] },
      { namespace: 'kudo', secret: 'kudo-synapse-admin', keys: ['password'] },
      { namespace: 'kudo', secret: 'kudo-turn', keys: ['shared_secret'] },
      { namespace: 'kudo', secret: 'vault-db', keys: ['pw'] },
      { namespace: 'kudo-media', secret: 'kudo-livekit', keys: ['api_key', 'api_secret'] },
      { namespace: 'kudo-media', secret: 'kudo-redis', keys: ['password'] },
      { namespace: 'kudo-media', secret: 'kudo-turn', keys: ['shared_secret'] },
    ]);
    expect(formatText(l)).toContain('kubectl -n kudo create secret generic vault-db --from-literal=pw=...');
    // The signing key's format is Synapse's signing key file: one line, algorithm, key id, unpadded base64 seed.
    expect(l.secretFormats).toEqual([
      {
        namespace: 'kudo',
        secret: 'kudo-synapse',
        key: 'signing.key',
        format: 'one line "ed25519 a_XXXX <base64 seed>", Synapse\'s signing key file (an old server\'s keeps its identity: --from-file=signing.key=OLD.signing.key)',
      },
    ]);
    expect(formatText(l)).toContain('  kudo/kudo-synapse signing.key: one line "ed25519 a_XXXX <base64 seed>"');
    expect(list().secretFormats).toEqual([]);
    expect(list().secretsToCreate).toEqual([]);
  });

  test("the Secrets the operator's own settings name: an external database's CA held in a Secret, synapse.extraSecretFiles", () => {
    const c = config({
      postgres: { mode: 'external', external: { host: 'db.example.org', ca: { kind: 'Secret', name: 'db-ca', key: 'bundle.pem' } } },
      synapse: { extraSecretFiles: [{ secret: 'kudo-sso', key: 'client_secret', file: 'oidc_client_secret' }] },
    });
    expect(checklist(c, renderedManifests(c)).secretsToCreate).toEqual([
      { namespace: 'kudo', secret: 'db-ca', keys: ['bundle.pem'] },
      { namespace: 'kudo', secret: 'kudo-postgres', keys: ['password'] },
      { namespace: 'kudo', secret: 'kudo-sso', keys: ['client_secret'] },
    ]);
    // A CA in a ConfigMap is no Secret: the prerequisites name it.
    const cm = config({ postgres: { mode: 'external', external: { host: 'db.example.org', ca: { name: 'db-ca' } } } });
    expect(checklist(cm, renderedManifests(cm)).secretsToCreate).toEqual([{ namespace: 'kudo', secret: 'kudo-postgres', keys: ['password'] }]);
  });

  test('a server name that is an existing website: the two documents to publish from it instead', () => {
    // example.com (the server name) is not the Matrix host: its /.well-known/matrix must answer.
    expect(list().wellKnownDocuments).toEqual([
      { url: 'https://example.com/.well-known/matrix/server', body: '{"m.server":"matrix.example.com:443"}', headers: ['Content-Type: application/json'] },
      {
        url: 'https://example.com/.well-known/matrix/client',
        body: '{"m.homeserver":{"base_url":"https://matrix.example.com"}}',
        headers: ['Content-Type: application/json', 'Access-Control-Allow-Origin: *'],
      },
    ]);
    expect(formatText(list())).toContain('set wellKnown.enabled: false');
    const same = config({ serverName: 'matrix.example.com' });
    expect(checklist(same, renderedManifests(same)).wellKnownDocuments).toEqual([]);
  });
});

describe('checklist: backups', () => {
  const backups = (overrides: object) => {
    const c = config(overrides);
    return checklist(c, renderedManifests(c));
  };

  test('an off-site waiver is printed as a warning, with its reason', () => {
    const l = backups({ profile: 'production', backup: { offsite: { waived: 'a test cluster, rebuilt from Git' } }, networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } });
    const warning = 'WARNING: no copy of the backups leaves the cluster (backup.offsite.waived): "a test cluster, rebuilt from Git"';
    expect(l.backups).toContain(warning);
    expect(formatText(l)).toContain(`Backups\n  ${warning}`);
    const s3 = backups({ profile: 'production', backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } }, networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } });
    expect(s3.backups.join('\n')).not.toContain('WARNING: no copy');
  });

  test('a rebuild from the backup says what must exist before the apply, and to take the setting out afterwards', () => {
    const s3 = { enabled: true, repository: 's3:https://s3.example.com/kudo' };
    const l = backups({ backup: { s3 }, secrets: { restoreFromBackup: 'latest' } });
    expect(l.backups).toContain(
      'secrets.restoreFromBackup is set (latest): the secret generator takes every missing value from the Secrets snapshot in s3:https://s3.example.com/kudo, ' +
        'so create the Secret kudo-backup-s3 in kudo before applying, restore the database before Synapse starts (docs/operations.md, "Disaster recovery"), ' +
        'and remove the setting once the stack is back',
    );
    expect(backups({ backup: { s3 } }).backups.join('\n')).not.toContain('restoreFromBackup');
  });

  test('backups that stay in the cluster say they may share a node with the media and, in statefulset mode, the database', () => {
    const shared =
      'The backups are not copied off-site (backup.s3): the backup volume kudo-backups may sit on the same node as the media ' +
      '(synapse-media) and the database (data-postgres-0) with node-local storage such as k3s local-path: one lost node loses the data ' +
      'and its backups together. Set backup.s3.enabled: true with backup.s3.repository';
    expect(backups({}).backups).toEqual([shared]);
    expect(formatText(backups({}))).toContain(`Backups\n  ${shared}`);
    // CloudNativePG and an external database keep the database elsewhere: only the media shares the node.
    const media =
      'The backups are not copied off-site (backup.s3): the backup volume kudo-backups may sit on the same node as the media ' +
      '(synapse-media) with node-local storage such as k3s local-path: one lost node loses the data and its backups together. ' +
      'Set backup.s3.enabled: true with backup.s3.repository';
    expect(backups({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } } }).backups).toEqual([media]);
    expect(backups({ postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'require' } } }).backups).toEqual([media]);
    // Off-site: nothing to say.
    expect(backups({ backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } } }).backups).toEqual([]);
  });
});

describe('architecture picture', () => {
  const g = lazy(() => architecture(renderedManifests(config())));

  test('shows the routes, the flows between workloads and the volumes, from the manifests', () => {
    const edge = (from: string, to: string) => g().edges.find((e) => e.from.endsWith(from) && e.to.endsWith(to));
    expect(edge('h:matrix.example.com', 'kudo/synapse')).toBeDefined();
    expect(edge('kudo/synapse', 'kudo/synapse')).toEqual({ from: 'r:kudo/synapse', to: 'w:kudo/synapse', label: ':8009' });
    expect(edge('w:kudo/synapse', 'w:kudo/postgres')!.label).toBe(':5432');
    expect(edge('w:kudo/postgres-backup', 'w:kudo/postgres')).toBeDefined();
    expect(edge('w:kudo-media/livekit', 'w:kudo/redis')!.label).toBe(':6379');
    expect(edge('w:kudo/synapse', 'v:kudo/synapse-media')).toBeDefined();
    expect(edge('h:webrtc', 'w:kudo-media/livekit')!.label).toContain('udp 20000-20999');
  });

  test("a Gateway's redirect route draws no backend", () => {
    const gw = architecture(renderedManifests(config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'cilium' } })));
    expect(gw.columns[1].nodes.find((n) => n.id === 'r:kudo/https-redirect')!.lines).toEqual([]);
  });

  test('the committed docs/architecture.svg is what the manifests draw (npm run diagram)', () => {
    const committed = fs.readFileSync(path.join(__dirname, '..', 'docs', 'architecture.svg'), 'utf8');
    expect(committed).toBe(toSvg(g()));
  });
});

describe('production: the nodes the cluster must have', () => {
  const prod = config({ ...PRODUCTION });
  const list = lazy(() => checklist(prod, renderedManifests(prod)).prerequisites);
  test('at least three nodes, two of them TURN nodes, two LiveKit pods', () => {
    expect(list()).toEqual(
      expect.arrayContaining([
        "At least 3 nodes (profile production): a lost node's pods must find room on the others, and LiveKit's pods (and CloudNativePG's instances) each need a node of their own",
        'LiveKit: 2 nodes (one pod per node, host network), any node',
        'At least two nodes labelled kudo/turn=true for coturn (profile production: one lost TURN node must not end calls that need a relay): ' +
          'kubectl label node NODE kudo/turn=true',
      ]),
    );
  });
  test('small asks for one TURN node and no node count', () => {
    const small = checklist(config(), renderedManifests(config())).prerequisites;
    expect(small).toContain('A node labelled kudo/turn=true for coturn: kubectl label node NODE kudo/turn=true');
    expect(small.join('\n')).not.toContain('At least');
  });
});

test("the checklist names the ingress controller as its project does, a retired one's retirement too", () => {
  const prerequisites = (controller: string) => checklist(config({ ingress: { controller } }), renderedManifests(config({ ingress: { controller } }))).prerequisites.join('\n');
  expect(prerequisites('ingress-nginx')).toContain('ingress-nginx (retired in March 2026), IngressClass nginx');
  expect(prerequisites('haproxy')).toContain('HAProxy Ingress, IngressClass haproxy');
});

test('an app outside the cluster: the checklist asks for its fixed egress addresses in the allow-list and for real client addresses at the controller', () => {
  const outside = config({
    app: { outsideCluster: true },
    ingress: { controller: 'haproxy' },
    synapse: { adminApi: { expose: true, sourceRanges: ['203.0.113.10/32', '198.51.100.0/28'] } },
  });
  expect(checklist(outside, renderedManifests(outside)).prerequisites).toContain(
    'The admin API (https://matrix.example.com/_synapse/admin, with shared-secret registration) admits only 203.0.113.10/32, 198.51.100.0/28 (synapse.adminApi.sourceRanges): ' +
      'the app must leave from fixed egress addresses listed there, and the ingress controller must see real client addresses ' +
      "(its Service with externalTrafficPolicy: Local, or PROXY protocol from the load balancer), or the allow-list judges the balancer's or a node's address instead",
  );
  expect(checklist(config(), renderedManifests(config())).prerequisites.join('\n')).not.toContain('_synapse/admin');
});

test("livekit.hostNetwork false: the firewall opens the replicas' NodePorts, and Redis needs no node addresses", () => {
  const c = config({ livekit: { hostNetwork: false, replicas: 3, rtc: { udpPort: 31000, tcpPort: 31100 } } });
  const list = checklist(c, renderedManifests(c));
  expect(list.firewall.find((f) => f.role === 'LiveKit')!.rules.map((x) => `${x.exposure} ${x.protocol} ${x.ports}: ${x.purpose}`)).toEqual([
    'internet UDP 31000-31002: WebRTC media (UDP mux): NodePorts of Services livekit-rtc-<i>, one per replica, on the nodes it runs on',
    'internet TCP 31100-31102: WebRTC over TCP: NodePorts of Services livekit-rtc-<i>, one per replica, on the nodes it runs on',
  ]);
  expect(list.prerequisites).toContain(
    'LiveKit: 3 replicas off the host network, each reached through a NodePort Service of its own (livekit-rtc-<i>) on the node it runs on, any node; ' +
      'the NodePort range (kube-apiserver --service-node-port-range) must hold their ports',
  );
  expect(list.prerequisites.join('\n')).not.toContain('WARNING: Redis');
  // The host network's warning stays where it applies.
  expect(checklist(config(), renderedManifests(config())).prerequisites.join('\n')).toContain('WARNING: Redis');
});
