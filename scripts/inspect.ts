/**
 * What the operator tools read out of the rendered manifests: the
 * production checklist (DNS records, certificates, firewall ports per node
 * role, external-IP settings, health checks) and the architecture picture.
 * No side effects; scripts/checklist.ts and scripts/diagram.ts are the commands.
 */
import { Testing } from 'cdk8s';
import * as yaml from 'js-yaml';
import { buildApp } from '../charts/app';
import { KudoConfig, LIVEKIT_PORTS_PER_PARTICIPANT, TURN_PORT, TURN_TLS_PORT } from '../charts/config';
import { INGRESS_CONTROLLER } from '../charts/ingress-controllers';
import { secretFeatures, secretPlan } from '../charts/secrets';
import { wellKnownDocuments } from '../charts/well-known';

type Manifest = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

export interface PortRule {
  readonly protocol: 'TCP' | 'UDP';
  readonly ports: string;
  readonly purpose: string;
  /** open to the internet, or only to the cluster (e.g. the ingress controller, Prometheus) */
  readonly exposure: 'internet' | 'cluster';
}

export interface Checklist {
  /** What the rendered manifests assume the cluster already has. */
  readonly prerequisites: string[];
  readonly dns: { readonly name: string; readonly type: string; readonly target: string; readonly why: string }[];
  readonly certificates: { readonly secret: string; readonly namespace: string; readonly dnsNames: string[]; readonly issuer: string; readonly via: string }[];
  readonly firewall: { readonly role: string; readonly nodes: string; readonly rules: PortRule[] }[];
  readonly externalIp: string[];
  readonly healthChecks: { readonly what: string; readonly command: string }[];
  /** Secrets you create yourself (secrets.mode existing, the S3 credentials): namespace, name, keys. */
  readonly secretsToCreate: { readonly namespace: string; readonly secret: string; readonly keys: string[] }[];
  /** Keys among those whose value has a format of its own (the signing key). */
  readonly secretFormats: { readonly namespace: string; readonly secret: string; readonly key: string; readonly format: string }[];
  /**
   * The delegation documents, when the server name is not the Matrix host: served by
   * the stack, or (a server name that is already a website) published from that site.
   */
  readonly wellKnownDocuments: { readonly url: string; readonly body: string; readonly headers: string[] }[];
  /** Where the backups are kept, and what that risks. */
  readonly backups: string[];
}

/** The manifests the config renders, as plain objects. */
export function renderedManifests(config: KudoConfig): Manifest[] {
  const app = buildApp(config, { outdir: Testing.app().outdir });
  return app.charts.flatMap((c) => c.toJson() as Manifest[]);
}

const configMapFile = (ms: Manifest[], name: string, file: string): string | undefined => ms.find((m) => m.kind === 'ConfigMap' && m.metadata.name === name)?.data?.[file];

/** LiveKit's pods: a Deployment on the host network, or a StatefulSet (livekit.hostNetwork false). */
function liveKitWorkload(ms: Manifest[]): Manifest | undefined {
  return ms.find((m) => (m.kind === 'Deployment' || m.kind === 'StatefulSet') && m.metadata.name === 'livekit');
}

/** livekit.hostNetwork false: the replicas' own Services, livekit-rtc-<i> (NodePort, or LoadBalancer with nodeAddress load-balancer). */
function replicaServices(ms: Manifest[]): Manifest[] {
  return ms.filter((m) => m.kind === 'Service' && (m.spec.type === 'NodePort' || m.spec.type === 'LoadBalancer') && m.metadata.name.startsWith('livekit-rtc-'));
}

/** Whether the replicas advertise load balancers of their own rather than their nodes. */
function behindLoadBalancers(ms: Manifest[]): boolean {
  return replicaServices(ms).some((s) => s.spec.type === 'LoadBalancer');
}

/** livekit.hostNetwork false: the ports of the replicas' Services (NodePorts, and their load balancers' too), by protocol, as first-last. */
function nodePortRules(ms: Manifest[]): PortRule[] {
  const ports = replicaServices(ms).flatMap((s) => s.spec.ports);
  const where = behindLoadBalancers(ms)
    ? "Services livekit-rtc-<i>, one per replica, at each one's load balancer (also their NodePorts)"
    : 'NodePorts of Services livekit-rtc-<i>, one per replica, on the nodes it runs on';
  const purposes = [
    ['rtc-udp', 'UDP', 'WebRTC media (UDP mux)'],
    ['rtc-tcp', 'TCP', 'WebRTC over TCP'],
    ['turn-udp', 'UDP', "LiveKit's TURN over UDP"],
  ] as const;
  return purposes.flatMap(([name, protocol, purpose]) => {
    const numbers = ports.filter((p: any) => p.name === name).map((p: any) => p.nodePort as number);
    if (numbers.length === 0) return [];
    const [lo, hi] = [Math.min(...numbers), Math.max(...numbers)];
    return [
      {
        protocol,
        ports: lo === hi ? String(lo) : `${lo}-${hi}`,
        purpose: `${purpose}: ${where}`,
        exposure: 'internet' as const,
      },
    ];
  });
}

/** LiveKit's own TURN over TLS (coturn.enabled false): the LoadBalancer Service clients reach on 443. */
const LIVEKIT_TURN_SERVICE = 'livekit-turn';

function hostNetworkPorts(ms: Manifest[], kind: string, name: string): { name: string; port: number; protocol: 'TCP' | 'UDP' }[] {
  const w = ms.find((m) => m.kind === kind && m.metadata.name === name);
  if (!w || !w.spec.template.spec.hostNetwork) return [];
  return w.spec.template.spec.containers.flatMap((c: any) => (c.ports ?? []).map((p: any) => ({ name: p.name, port: p.containerPort, protocol: p.protocol ?? 'TCP' })));
}

/** Ports named for in-cluster use only; everything else a host-network pod opens is for clients. */
const CLUSTER_ONLY = new Set(['http', 'metrics']);

export function checklist(config: KudoConfig, ms: Manifest[]): Checklist {
  const routes = ms.filter((m) => m.kind === 'Ingress' || m.kind === 'HTTPRoute');
  const routedHosts = [...new Set(routes.flatMap((r) => (r.kind === 'Ingress' ? r.spec.rules.map((x: any) => x.host) : r.spec.hostnames)))];
  const controller = INGRESS_CONTROLLER[config.ingress.controller];
  const entry =
    config.routing === 'gateway-api' ? `the external address of Gateway ${config.gatewayApi.gatewayName}` : `the external address of your ${controller.title} ingress controller`;
  const coturn = ms.find((m) => m.kind === 'DaemonSet' && m.metadata.name === 'coturn');
  const turnSelector = Object.entries<string>(coturn?.spec.template.spec.nodeSelector ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const livekit = liveKitWorkload(ms);
  const livekitSelector =
    Object.entries<string>(livekit?.spec.template.spec.nodeSelector ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || 'any node';

  const dns = routedHosts.sort().map((host) => ({
    name: host,
    type: 'A/AAAA',
    target: entry,
    why: host === config.serverName && host !== config.hosts.matrix ? 'Matrix server name: serves /.well-known/matrix (delegation to the Matrix host)' : 'HTTPS',
  }));
  if (coturn) {
    dns.push({ name: config.hosts.turn, type: 'A', target: `the public IPv4 of every node labelled ${turnSelector}`, why: 'TURN/STUN (clients connect to it directly)' });
    // coturn listens and relays on a node's public IPv6 too, where the node has one (coturn-start.sh): only those nodes.
    dns.push({
      name: config.hosts.turn,
      type: 'AAAA',
      target: `the public IPv6 of every node labelled ${turnSelector} that has one`,
      why: 'TURN/STUN over IPv6 (coturn listens on the IPv6 the node reports as ExternalIP, else a global InternalIP)',
    });
  }
  const ownTurn = ms.find((m) => m.kind === 'Service' && m.metadata.name === LIVEKIT_TURN_SERVICE);
  if (ownTurn) {
    dns.push({
      name: config.hosts.turn,
      type: 'A/AAAA',
      target: `the external address of Service ${LIVEKIT_TURN_SERVICE} (a LoadBalancer)`,
      why: "LiveKit's TURN over TLS: LiveKit sends clients to port 443 of this host",
    });
  }

  const certificates = certificatesToRequest(ms);

  const lkConfig = yaml.load(configMapFile(ms, 'livekit-config', 'config.yaml') ?? '{}') as any;
  const firewall = firewallRules(config, ms, { routes, routedHosts, livekit, livekitSelector, coturn, turnSelector, lkConfig });
  const externalIp = externalIpNotes(config, { livekit, coturn, turnSelector, lkConfig });
  if (ownTurn) {
    externalIp.push(
      `LiveKit's own TURN (coturn.enabled false) relays calls only: Synapse hands out no TURN servers, so its legacy 1:1 VoIP calls get none.`,
      `LiveKit reads its TURN certificate (Secret livekit-turn-tls) at start only: after cert-manager renews it, restart LiveKit before the old one expires ` +
        `(kubectl -n ${ownTurn.metadata.namespace} rollout restart statefulset/livekit: each replica drains its rooms, up to 5 hours, before it restarts).`,
    );
  }

  const healthChecks = healthCheckCommands(config, { livekit, coturn });
  return {
    prerequisites: prerequisites(config, ms),
    dns,
    certificates,
    firewall,
    externalIp,
    healthChecks,
    secretsToCreate: secretsToCreate(config),
    secretFormats: secretFormats(config),
    wellKnownDocuments: delegationDocuments(config),
    backups: backupNotes(config, ms),
  };
}

/** The certificates the render asks cert-manager for, by namespace and Secret (those of an Issuer it renders itself aside). */
function certificatesToRequest(ms: Manifest[]): Checklist['certificates'] {
  const issuerOf = (a: Record<string, string> = {}) => a['cert-manager.io/cluster-issuer'] ?? a['cert-manager.io/issuer'] ?? '(none)';
  const byPlace = (x: { namespace: string; secret: string }, y: { namespace: string; secret: string }) =>
    x.namespace === y.namespace ? (x.secret < y.secret ? -1 : 1) : x.namespace < y.namespace ? -1 : 1;
  return [
    ...ms
      .filter((m) => m.kind === 'Ingress')
      .flatMap((i) =>
        i.spec.tls.map((t: any) => ({
          secret: t.secretName,
          namespace: i.metadata.namespace!,
          dnsNames: t.hosts,
          issuer: issuerOf(i.metadata.annotations),
          via: `Ingress ${i.metadata.name}`,
        })),
      ),
    ...ms
      .filter((m) => m.kind === 'Gateway')
      .flatMap((g) =>
        g.spec.listeners
          .filter((l: any) => l.tls)
          .map((l: any) => ({
            secret: l.tls.certificateRefs[0].name,
            namespace: g.metadata.namespace!,
            dnsNames: [l.hostname],
            issuer: issuerOf(g.metadata.annotations),
            via: `Gateway ${g.metadata.name} listener ${l.name}`,
          })),
      ),
    // Not those of an Issuer the stack renders itself (PostgreSQL's CA): they need nothing from the operator.
    ...ms
      .filter((m) => m.kind === 'Certificate' && !ms.some((i) => i.kind === 'Issuer' && i.metadata.name === m.spec.issuerRef.name && i.metadata.namespace === m.metadata.namespace))
      .map((c) => ({
        secret: c.spec.secretName,
        namespace: c.metadata.namespace!,
        dnsNames: c.spec.dnsNames,
        issuer: c.spec.issuerRef.name,
        via: `Certificate ${c.metadata.name}`,
      })),
  ].sort(byPlace);
}

/** What the render found that the firewall rules follow from. */
interface Found {
  routes: Manifest[];
  routedHosts: string[];
  livekit: Manifest | undefined;
  livekitSelector: string;
  coturn: Manifest | undefined;
  turnSelector: string;
  lkConfig: any;
}

/** The ports each role's nodes must open, and to whom. */
function firewallRules(config: KudoConfig, ms: Manifest[], { routes, routedHosts, livekit, livekitSelector, coturn, turnSelector, lkConfig }: Found): Checklist['firewall'] {
  const firewall: Checklist['firewall'] = [];
  if (routes.length > 0) {
    firewall.push({
      role: config.routing === 'gateway-api' ? 'Gateway' : 'ingress controller',
      nodes: 'where its external address leads',
      rules: [
        { protocol: 'TCP', ports: '443', purpose: `HTTPS for ${routedHosts.join(', ')}`, exposure: 'internet' },
        {
          protocol: 'TCP',
          ports: '80',
          exposure: 'internet',
          purpose: ms.some((m) => m.kind === 'HTTPRoute' && m.metadata.name === 'https-redirect')
            ? 'ACME HTTP-01 challenges, and a 301 redirect to HTTPS for everything else'
            : 'ACME HTTP-01 challenges, redirects',
        },
      ],
    });
  }
  if (livekit) {
    const rules: PortRule[] = hostNetworkPorts(ms, 'Deployment', 'livekit').map((p) => ({
      protocol: p.protocol,
      ports: String(p.port),
      purpose:
        { http: 'LiveKit API/WebSocket, for the ingress controller', 'rtc-tcp': 'WebRTC over TCP', metrics: 'LiveKit metrics', 'rtc-udp': 'WebRTC media (UDP mux)' }[p.name] ??
        p.name,
      exposure: CLUSTER_ONLY.has(p.name) ? 'cluster' : 'internet',
    }));
    if (lkConfig.rtc?.port_range_start !== undefined) {
      rules.push({
        protocol: 'UDP',
        ports: `${lkConfig.rtc.port_range_start}-${lkConfig.rtc.port_range_end}`,
        purpose: `WebRTC media: ${LIVEKIT_PORTS_PER_PARTICIPANT} ports per participant and node address (livekit.participantsPerNode ${config.livekit.participantsPerNode})`,
        exposure: 'internet',
      });
    }
    rules.push(...nodePortRules(ms));
    firewall.push({ role: 'LiveKit', nodes: livekitSelector, rules });
  }
  if (ms.some((m) => m.kind === 'Service' && m.metadata.name === LIVEKIT_TURN_SERVICE)) {
    firewall.push({
      role: `LiveKit's TURN (Service ${LIVEKIT_TURN_SERVICE})`,
      nodes: 'its load balancer',
      rules: [
        { protocol: 'TCP', ports: '443', purpose: `TURN over TLS for ${config.hosts.turn}`, exposure: 'internet' },
        // The ACME server asks http://<TURN host>/ for the challenge, and the TURN host's address is this load balancer's.
        {
          protocol: 'TCP',
          ports: '80',
          purpose:
            `ACME HTTP-01 for ${config.hosts.turn}: must reach ${config.routing === 'gateway-api' ? 'the Gateway' : 'your ingress controller'}, ` +
            `which Service ${LIVEKIT_TURN_SERVICE} does not do (or use a DNS-01 issuer, tls.issuer)`,
          exposure: 'internet',
        },
      ],
    });
  }
  const turnConf = configMapFile(ms, 'coturn-config', 'turnserver.conf') ?? '';
  const opt = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(turnConf)?.[1];
  if (coturn) {
    const rules: PortRule[] = hostNetworkPorts(ms, 'DaemonSet', 'coturn').map((p) => ({
      protocol: p.protocol,
      ports: String(p.port),
      purpose: { 'turn-udp': 'STUN/TURN', 'turn-tcp': 'STUN/TURN over TCP', turns: 'TURN over TLS', metrics: 'coturn metrics' }[p.name] ?? p.name,
      exposure: CLUSTER_ONLY.has(p.name) ? 'cluster' : 'internet',
    }));
    rules.push({
      protocol: 'UDP',
      ports: `${opt('min-port')}-${opt('max-port')}`,
      purpose: `TURN relay: up to 2 ports per allocation (coturn.totalQuota ${opt('total-quota')})`,
      exposure: 'internet',
    });
    // The ACME server asks http://<TURN host>/ for the challenge, and the TURN host's address is the TURN nodes'.
    const through = config.routing === 'gateway-api' ? 'the Gateway' : 'your ingress controller';
    rules.push({
      protocol: 'TCP',
      ports: '80',
      purpose: `ACME HTTP-01 for ${config.hosts.turn}: must reach ${through} (or use a DNS-01 issuer, tls.issuer)`,
      exposure: 'internet',
    });
    firewall.push({ role: 'TURN', nodes: turnSelector, rules });
  }
  return firewall;
}

/** How LiveKit and coturn learn the public address they advertise, and what to check for it. */
function externalIpNotes(config: KudoConfig, { livekit, coturn, turnSelector, lkConfig }: Pick<Found, 'livekit' | 'coturn' | 'turnSelector' | 'lkConfig'>): string[] {
  const externalIp: string[] = [];
  if (livekit) {
    const rtc = config.livekit.rtc;
    externalIp.push(
      rtc.publicIp !== undefined
        ? `LiveKit advertises ${rtc.publicIp} (livekit.rtc.publicIp) on every node: only right for a single node or a shared address.`
        : rtc.nodeAddress === 'stun' || lkConfig.rtc?.use_external_ip
          ? 'LiveKit nodes learn their public IP over STUN (use_external_ip): allow them outbound UDP to the STUN servers, and give each a 1:1 public address.'
          : rtc.nodeAddress === 'host-ip'
            ? "LiveKit nodes advertise the node's own IP (status.hostIP, livekit.rtc.nodeAddress host-ip): it must be reachable from clients."
            : "LiveKit nodes advertise their node's ExternalIP, read from the Kubernetes API at start (livekit.rtc.nodeAddress node-external-ip): " +
              'check `kubectl get nodes -o wide` shows one for every LiveKit node, reachable from clients (else set livekit.rtc.publicIp)',
    );
  }
  if (coturn) {
    externalIp.push(
      config.coturn.publicIp !== undefined
        ? `coturn advertises ${config.coturn.publicIp} (coturn.publicIp) on every TURN node: only right for a single TURN node or a shared address.`
        : "coturn advertises each TURN node's ExternalIP: check `kubectl get nodes -l " + turnSelector + ' -o wide` shows one (else set coturn.publicIp).',
    );
    externalIp.push(`Label the TURN nodes: kubectl label node NODE ${turnSelector.replace(',', ' ')}`);
  }
  return externalIp;
}

/** Commands that check each public endpoint from outside. */
function healthCheckCommands(config: KudoConfig, { livekit, coturn }: Pick<Found, 'livekit' | 'coturn'>): Checklist['healthChecks'] {
  const m = config.hosts.matrix;
  const healthChecks = [
    { what: 'Synapse client API', command: `curl -fsS https://${m}/_matrix/client/versions` },
    { what: 'Synapse federation API', command: `curl -fsS https://${m}/_matrix/key/v2/server` },
  ];
  if (config.wellKnown.enabled) {
    healthChecks.push(
      { what: 'delegation for servers', command: `curl -fsS https://${config.serverName}/.well-known/matrix/server` },
      { what: 'delegation for clients (with CORS)', command: `curl -fsSi https://${config.serverName}/.well-known/matrix/client` },
    );
  }
  if (livekit) healthChecks.push({ what: 'LiveKit', command: `curl -fsS https://${config.hosts.livekit}/` });
  if (coturn) {
    healthChecks.push(
      { what: 'STUN (coturn package)', command: `turnutils_stunclient -p ${TURN_PORT} ${config.hosts.turn}` },
      { what: 'TURN over TLS certificate', command: `openssl s_client -connect ${config.hosts.turn}:${TURN_TLS_PORT} -servername ${config.hosts.turn} -brief </dev/null` },
    );
  }
  healthChecks.push({ what: 'everything, from inside the cluster', command: 'npm run smoke -- --context YOUR_CONTEXT' });
  return healthChecks;
}

/** The listener each of our HTTPRoutes names (sectionName), with its host: the Matrix host, LiveKit's, then the server name. */
function sharedListeners(config: KudoConfig, ms: Manifest[]): string {
  const order = [config.hosts.matrix, config.hosts.livekit, config.serverName];
  return ms
    .filter((m) => m.kind === 'HTTPRoute')
    .map((r) => ({ host: r.spec.hostnames[0] as string, listener: r.spec.parentRefs[0].sectionName as string }))
    .sort((a, b) => order.indexOf(a.host) - order.indexOf(b.host))
    .map((x) => `${x.listener} (${x.host})`)
    .filter((x, i, all) => all.indexOf(x) === i)
    .join(', ');
}

function prerequisites(config: KudoConfig, ms: Manifest[]): string[] {
  const out: string[] = [];
  const policies = config.networkPolicies.enabled ? ': the NetworkPolicies admit public traffic and ACME challenges from there only' : '';
  if (config.routing === 'gateway-api') {
    const gw = config.gatewayApi;
    out.push(
      gw.createGateway
        ? `Gateway API CRDs (standard channel: Gateway, HTTPRoute) and a GatewayClass "${gw.gatewayClassName}" from your Gateway implementation`
        : `Gateway API CRDs and the Gateway ${gw.gatewayNamespace}/${gw.gatewayName} with, for each host, an HTTPS listener (port 443, TLS terminated with a ` +
            `certificate for the host) named as the routes attach to it by sectionName: ${sharedListeners(config, ms)}; ` +
            `each allowing routes from ${config.namespaces.stack} and ${config.namespaces.hostNetwork}. ` +
            'Its plain HTTP listener must serve only a redirect to HTTPS (and ACME challenges): no route of ours attaches to it',
    );
    out.push("cert-manager with Gateway API support enabled (--enable-gateway-api, or config.enableGatewayAPI), for the Gateway listeners' certificates");
    const proxyPolicy = ms.find((m) => m.kind === 'NetworkPolicy' && m.metadata.name === 'gateway-proxy');
    if (proxyPolicy === undefined) {
      out.push(`The Gateway's proxy pods in namespace ${gw.proxyNamespace}${policies} (gatewayApi.proxyNamespace)`);
    } else {
      // They share the stack's namespace and its default-deny: the policy that admits them says by which label and on which ports.
      const [label, value] = Object.entries(proxyPolicy.spec.podSelector.matchLabels)[0] as [string, string];
      const listening = proxyPolicy.spec.ingress[0].ports.map((x: any) => x.port).filter((x: number) => x < 1024);
      out.push(
        `The Gateway's proxy pods in namespace ${gw.proxyNamespace}, labelled ${label}=${value} (GEP-1762): the NetworkPolicy gateway-proxy ` +
          `lets anyone reach them on TCP ${listening.join(' and ')} and them reach Synapse, the well-known server, LiveKit and the ACME solvers; ` +
          'an implementation that labels them otherwise needs a policy of its own (gatewayApi.proxyNamespace)',
      );
      const cp = gw.controlPlane;
      out.push(
        cp.namespace !== undefined
          ? `The proxies reach their control plane in namespace ${cp.namespace} on TCP ${cp.ports.join(', ')} (gatewayApi.controlPlane)`
          : `WARNING: the proxies cannot reach their control plane from namespace ${gw.proxyNamespace} (default-deny): set gatewayApi.controlPlane ` +
              '(Istio: istio-system, [15012]; Envoy Gateway: envoy-gateway-system, [18000]) or they never get their configuration',
      );
    }
  } else {
    const i = config.ingress;
    out.push(
      `${INGRESS_CONTROLLER[i.controller].title}, IngressClass ${i.className}, its pods in namespace ${i.namespace}${policies} (ingress.controller, ingress.className, ingress.namespace)`,
    );
    if (i.controller === 'traefik' && i.namespace === 'traefik' && config.networkPolicies.enabled) {
      out.push('On k3s, Traefik runs in kube-system, not traefik: set ingress.namespace: kube-system, or public traffic and ACME challenges are blocked');
    }
  }
  const admin = config.synapse.adminApi;
  if (admin.expose) {
    // The allow-list is judged on the address the controller sees: a balancer that replaces it makes the list admit the wrong hosts.
    out.push(
      `The admin API (https://${config.hosts.matrix}/_synapse/admin, with shared-secret registration) admits only ${admin.sourceRanges.join(', ')} (synapse.adminApi.sourceRanges): ` +
        'the app must leave from fixed egress addresses listed there, and the ingress controller must see real client addresses ' +
        "(its Service with externalTrafficPolicy: Local, or PROXY protocol from the load balancer), or the allow-list judges the balancer's or a node's address instead",
    );
  }
  const redisPolicy = ms.find((m) => m.kind === 'NetworkPolicy' && m.metadata.name === 'redis');
  // Off the host network LiveKit is admitted by its labels, and no address range is.
  const ranges = (redisPolicy?.spec.ingress[0].from ?? [])
    .filter((p: any) => p.ipBlock !== undefined)
    .map((p: any) => p.ipBlock.cidr)
    .join(', ');
  if (ranges !== '' && config.networkPolicies.nodeCidrs.length === 0) {
    // The config refuses this in production unless the waiver says why; the reason is printed with the warning.
    const waived = config.networkPolicies.redisClosed.waived;
    out.push(
      `WARNING: Redis (plain TCP, one shared password) accepts connections from every private address (${ranges}), every namespace among them: LiveKit reaches it ` +
        "from the host network, and only networkPolicies.nodeCidrs (the nodes' addresses) lets the policy tell its nodes from other pods; " +
        "set it to close Redis to all but LiveKit's nodes and Synapse's processes, or run LiveKit off the host network (livekit.hostNetwork: false, " +
        'with livekit.rtc.udpPort), where Redis admits it by its labels. profile production refuses this unless networkPolicies.redisClosed.waived gives the reason' +
        (waived !== undefined ? `; waived (networkPolicies.redisClosed.waived): ${JSON.stringify(waived)}` : ''),
    );
  }
  if (config.networkPolicies.enabled && config.networkPolicies.clusterCidrs.length === 0) {
    out.push(
      "networkPolicies.clusterCidrs: list the cluster's pod and Service ranges (k3s: 10.42.0.0/16, 10.43.0.0/16); unset, Synapse's egress to other servers " +
        '(443 and 8448, to addresses that server names and push gateway URLs choose) leaves out only the metadata service and networkPolicies.nodeCidrs',
    );
  }
  const issuer = config.tls.issuer;
  const ours = ms.some((m) => m.kind === 'ClusterIssuer' && m.metadata.name === issuer.name);
  out.push(`cert-manager, with the issuer ${issuer.name} (${ours ? "rendered here: a Let's Encrypt ClusterIssuer" : `yours: a ${issuer.kind}`})`);
  out.push('A default StorageClass (or storage.className per claim); WaitForFirstConsumer classes work');
  const pg = config.postgres;
  if (pg.mode === 'cloudnative-pg') {
    const c = pg.cloudnativePg;
    out.push(
      `The CloudNativePG operator (1.30) in namespace ${c.operatorNamespace}${c.backup.enabled ? ', and its barman-cloud plugin (0.14) with cert-manager' : ''} (postgres.cloudnativePg.operatorNamespace)`,
    );
  } else if (pg.mode === 'external') {
    const e = pg.external;
    out.push(`PostgreSQL at ${e.host}:${e.port}: database ${e.database} owned by ${e.user}, encoding UTF8 with LC_COLLATE and LC_CTYPE C (Synapse refuses others)`);
    if (e.ca.name !== undefined) out.push(`The ${e.ca.kind} ${config.namespaces.stack}/${e.ca.name} with the CA that signed the database's certificate, under key ${e.ca.key}`);
  }
  const production = config.profile === 'production';
  if (production) {
    out.push(
      "At least 3 nodes (profile production): a lost node's pods must find room on the others, and LiveKit's pods (and CloudNativePG's instances) " +
        'each need a node of their own',
    );
  }
  const livekit = liveKitWorkload(ms);
  if (livekit) {
    const n = livekit.spec.replicas as number;
    const sel = Object.entries<string>(livekit.spec.template.spec.nodeSelector ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const replicas = `LiveKit: ${n} replica${n === 1 ? '' : 's'} off the host network`;
    out.push(
      livekit.kind === 'Deployment'
        ? `LiveKit: ${n} node${n === 1 ? '' : 's'} (one pod per node, host network), ${sel ? `labelled ${sel}` : 'any node'}`
        : behindLoadBalancers(ms)
          ? `${replicas}, each reached through a LoadBalancer Service of its own (livekit-rtc-<i>): your provider must give each one address that carries ` +
            'UDP and TCP (mixed protocols) and keeps client addresses (externalTrafficPolicy Local); ' +
            `a replica's pod waits in its node-address step until its Service has that address; ${sel ? `nodes labelled ${sel}` : 'any node'}`
          : `${replicas}, each reached through a NodePort Service of its own (livekit-rtc-<i>) ` +
            `on the node it runs on, ${sel ? `labelled ${sel}` : 'any node'}; the NodePort range (kube-apiserver --service-node-port-range) must hold their ports`,
    );
  }
  const coturn = ms.find((m) => m.kind === 'DaemonSet' && m.metadata.name === 'coturn');
  if (coturn) {
    const sel = Object.entries<string>(coturn.spec.template.spec.nodeSelector ?? {}).map(([k, v]) => `${k}=${v}`);
    out.push(
      production
        ? `At least two nodes labelled ${sel.join(',')} for coturn (profile production: one lost TURN node must not end calls that need a relay): ` +
            `kubectl label node NODE ${sel.join(' ')}`
        : `A node labelled ${sel.join(',')} for coturn: kubectl label node NODE ${sel.join(' ')}`,
    );
  }
  out.push(...hostPortRangeNotes(ms));
  return out;
}

/** Linux's default net.ipv4.ip_local_port_range, and Kubernetes' default --service-node-port-range. */
const LINUX_EPHEMERAL_PORTS = [32768, 60999] as const;
const NODE_PORTS = [30000, 32767] as const;

/**
 * The UDP ranges the host-network pods bind, against what else on a node hands out
 * ports: the kernel gives ephemeral ports to outgoing sockets (a relay or media port
 * taken that way fails to bind), and kube-proxy takes NodePort packets before any socket.
 */
function hostPortRangeNotes(ms: Manifest[]): string[] {
  const ranges: [number, number][] = [];
  const lk = yaml.load(configMapFile(ms, 'livekit-config', 'config.yaml') ?? '{}') as any;
  if (lk.rtc?.port_range_start !== undefined) ranges.push([lk.rtc.port_range_start, lk.rtc.port_range_end]);
  const turn = configMapFile(ms, 'coturn-config', 'turnserver.conf');
  const opt = (k: string) => Number(new RegExp(`^${k}=(.*)$`, 'm').exec(turn ?? '')?.[1]);
  if (turn !== undefined) ranges.push([opt('min-port'), opt('max-port')]);
  if (ranges.length === 0) return [];
  ranges.sort((a, b) => a[0] - b[0]);
  const within = ([lo, hi]: readonly [number, number]) =>
    ranges
      .filter(([a, b]) => a <= hi && lo <= b)
      .map(([a, b]) => `${a}-${b}`)
      .join(',');
  const [elo, ehi] = LINUX_EPHEMERAL_PORTS;
  const where = `the kernel's ephemeral ports (net.ipv4.ip_local_port_range, ${elo}-${ehi} by default)`;
  const ephemeral = within(LINUX_EPHEMERAL_PORTS);
  const all = ranges.map(([a, b]) => `${a}-${b}`).join(',');
  const notes = [
    ephemeral !== ''
      ? `LiveKit and TURN nodes: UDP ${ephemeral} lie in ${where}, which it hands to outgoing connections; reserve them on every such node: ` +
        `sysctl -w net.ipv4.ip_local_reserved_ports=${ephemeral} and, to keep it across reboots, the line ` +
        `"net.ipv4.ip_local_reserved_ports = ${ephemeral}" in /etc/sysctl.d/90-kudo-ports.conf`
      : `LiveKit and TURN nodes: UDP ${all} lie below ${where}; if yours were widened to include them, reserve them: ` + `sysctl -w net.ipv4.ip_local_reserved_ports=${all}`,
  ];
  const nodePorts = within(NODE_PORTS);
  if (nodePorts !== '') {
    notes.push(
      `UDP ${nodePorts} overlap Kubernetes' NodePort range (${NODE_PORTS[0]}-${NODE_PORTS[1]} by default): no UDP NodePort Service may use those ports, ` +
        'or kube-proxy takes their packets',
    );
  }
  return notes;
}

function secretsToCreate(config: KudoConfig): Checklist['secretsToCreate'] {
  const keys = new Map<string, Set<string>>();
  const add = (namespace: string, secret: string, key: string) => {
    const id = `${namespace}/${secret}`;
    if (!keys.has(id)) keys.set(id, new Set());
    keys.get(id)!.add(key);
  };
  // In existing mode every value; otherwise those held outside the stack (a managed database's password).
  for (const v of secretPlan(config.secrets.refs, config.namespaces, secretFeatures(config))) {
    if (config.secrets.mode === 'existing' || v.provided) for (const d of v.destinations) add(d.namespace, d.secret, d.key);
  }
  const s3 = config.backup.s3;
  if (config.backup.enabled && s3.enabled) for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'RESTIC_PASSWORD']) add(config.namespaces.stack, s3.secretName, k);
  const wal = config.postgres.cloudnativePg.backup;
  if (config.postgres.mode === 'cloudnative-pg' && wal.enabled) {
    for (const k of [wal.s3Credentials.accessKeyIdKey, wal.s3Credentials.secretAccessKeyKey]) add(config.namespaces.stack, wal.s3Credentials.secretName, k);
  }
  // The operator's own: an external database's CA, when it is in a Secret, and the files of synapse.extraSecretFiles.
  const ca = config.postgres.external.ca;
  if (config.postgres.mode === 'external' && ca.kind === 'Secret' && ca.name !== undefined) add(config.namespaces.stack, ca.name, ca.key);
  for (const f of config.synapse.extraSecretFiles) add(config.namespaces.stack, f.secret, f.key);
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...keys]
    .map(([id, k]) => {
      const [namespace, secret] = id.split('/');
      return { namespace, secret, keys: [...k].sort() };
    })
    .sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.secret, b.secret));
}

/** Where the backups are kept: off-site, or on a volume that may share a node with the data (claim names from the manifests). */
function backupNotes(config: KudoConfig, ms: Manifest[]): string[] {
  const out: string[] = [];
  const waived = config.backup.offsite.waived;
  if (waived !== undefined) out.push(`WARNING: no copy of the backups leaves the cluster (backup.offsite.waived): ${JSON.stringify(waived)}`);
  const restoreFrom = config.secrets.restoreFromBackup;
  if (restoreFrom !== undefined) {
    const s3 = config.backup.s3;
    out.push(
      `secrets.restoreFromBackup is set (${restoreFrom}): the secret generator takes every missing value from the Secrets snapshot in ${s3.repository ?? ''}, ` +
        `so create the Secret ${s3.secretName} in ${config.namespaces.stack} before applying, restore the database before Synapse starts (docs/operations.md, "Disaster recovery"), ` +
        'and remove the setting once the stack is back',
    );
  }
  const claim = (name: string) => ms.find((m) => m.kind === 'PersistentVolumeClaim' && m.metadata.labels?.['app.kubernetes.io/name'] === name)?.metadata.name;
  const backups = claim('backup');
  if (!config.backup.s3.enabled && backups !== undefined) {
    // The StatefulSet's PostgreSQL keeps its data on a claim of its own; CloudNativePG's and an external one are elsewhere.
    const pg = ms.find((m) => m.kind === 'StatefulSet' && m.metadata.name === 'postgres');
    const data = [`the media (${claim('synapse')})`, ...(pg ? [`the database (${pg.spec.volumeClaimTemplates[0].metadata.name}-${pg.metadata.name}-0)`] : [])];
    out.push(
      `The backups are not copied off-site (backup.s3): the backup volume ${backups} may sit on the same node as ${data.join(' and ')} ` +
        'with node-local storage such as k3s local-path: one lost node loses the data and its backups together. ' +
        'Set backup.s3.enabled: true with backup.s3.repository',
    );
  }
  return out;
}

/** What Synapse reads from its signing key file (synapse/config/key.py, read_signing_keys): one key per line. */
const SIGNING_KEY_FORMAT =
  'one line "ed25519 a_XXXX <base64 seed>", Synapse\'s signing key file ' + "(an old server's keeps its identity: --from-file=signing.key=OLD.signing.key)";

function secretFormats(config: KudoConfig): Checklist['secretFormats'] {
  if (config.secrets.mode !== 'existing') return [];
  return secretPlan(config.secrets.refs, config.namespaces, secretFeatures(config))
    .filter((v) => v.name === 'signingKey')
    .flatMap((v) => v.destinations.map((d) => ({ namespace: d.namespace, secret: d.secret, key: d.key, format: SIGNING_KEY_FORMAT })));
}

function delegationDocuments(config: KudoConfig): Checklist['wellKnownDocuments'] {
  if (config.serverName === config.hosts.matrix) return [];
  const docs = wellKnownDocuments(config.hosts.matrix);
  const base = `https://${config.serverName}/.well-known/matrix`;
  return [
    { url: `${base}/server`, body: JSON.stringify(docs.server), headers: ['Content-Type: application/json'] },
    { url: `${base}/client`, body: JSON.stringify(docs.client), headers: ['Content-Type: application/json', 'Access-Control-Allow-Origin: *'] },
  ];
}

export function formatText(c: Checklist): string {
  const out: string[] = [];
  out.push('Prerequisites in the cluster');
  for (const p of c.prerequisites) out.push(`  ${p}`);
  out.push('', 'DNS records');
  for (const d of c.dns) out.push(`  ${d.name}  ${d.type}  -> ${d.target}   (${d.why})`);
  out.push('', 'Certificates (cert-manager requests them)');
  for (const x of c.certificates) out.push(`  ${x.namespace}/${x.secret}: ${x.dnsNames.join(', ')}  issuer ${x.issuer}  (${x.via})`);
  out.push('', 'Firewall, per node role');
  for (const f of c.firewall) {
    out.push(`  ${f.role} (${f.nodes}):`);
    for (const r of f.rules) out.push(`    ${r.exposure === 'internet' ? 'open ' : 'keep closed to the internet:'} ${r.protocol} ${r.ports}  ${r.purpose}`);
  }
  out.push('', 'External IP');
  for (const e of c.externalIp) out.push(`  ${e}`);
  if (c.secretsToCreate.length > 0) {
    out.push('', 'Secrets to create yourself (nothing generates these)');
    for (const s of c.secretsToCreate) out.push(`  kubectl -n ${s.namespace} create secret generic ${s.secret} ${s.keys.map((k) => `--from-literal=${k}=...`).join(' ')}`);
    if (c.secretFormats.length > 0) out.push('  Formats:');
    for (const f of c.secretFormats) out.push(`  ${f.namespace}/${f.secret} ${f.key}: ${f.format}`);
  }
  if (c.wellKnownDocuments.length > 0) {
    out.push(
      '',
      'Delegation: the server name must answer these (the stack serves them when wellKnown.enabled).',
      "  If the server name is already a website (a company's apex domain), publish them from that site instead and set wellKnown.enabled: false:",
    );
    for (const d of c.wellKnownDocuments) out.push(`  ${d.url}`, `    ${d.headers.join('; ')}`, `    ${d.body}`);
  }
  if (c.backups.length > 0) {
    out.push('', 'Backups');
    for (const b of c.backups) out.push(`  ${b}`);
  }
  out.push('', 'Health checks');
  for (const h of c.healthChecks) out.push(`  # ${h.what}`, `  ${h.command}`);
  return `${out.join('\n')}\n`;
}

// The architecture picture.

export interface Graph {
  readonly columns: { readonly title: string; readonly nodes: { readonly id: string; readonly title: string; readonly lines: string[]; readonly tone: string }[] }[];
  readonly edges: { readonly from: string; readonly to: string; readonly label: string }[];
}

const WORKLOADS = ['Deployment', 'StatefulSet', 'DaemonSet', 'CronJob'];
const podTemplate = (w: Manifest) => (w.kind === 'CronJob' ? w.spec.jobTemplate.spec.template : w.spec.template);
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The picture's content: what is drawn, taken from the manifests alone. */
export function architecture(ms: Manifest[]): Graph {
  const workloads = ms.filter((m) => WORKLOADS.includes(m.kind) && !m.spec.suspend);
  const services = ms.filter((m) => m.kind === 'Service' && m.spec.selector);
  const wid = (w: Manifest) => `w:${w.metadata.namespace}/${w.metadata.name}`;
  const serviceOwner = (s: Manifest) => workloads.find((w) => w.metadata.namespace === s.metadata.namespace && matches(s.spec.selector, podTemplate(w).metadata.labels));
  const edges: Graph['edges'] = [];

  // Public hosts and the routes to them.
  const hosts = new Map<string, string>();
  const routes = ms.filter((m) => m.kind === 'Ingress' || m.kind === 'HTTPRoute');
  const routeNodes = routes.map((r) => {
    const rid = `r:${r.metadata.namespace}/${r.metadata.name}`;
    const rHosts: string[] = r.kind === 'Ingress' ? r.spec.rules.map((x: any) => x.host) : r.spec.hostnames;
    const backends: { path: string; service: string; port: number }[] =
      r.kind === 'Ingress'
        ? r.spec.rules.flatMap((x: any) => x.http.paths.map((p: any) => ({ path: p.path, service: p.backend.service.name, port: p.backend.service.port.number })))
        : // A redirect rule has no backend.
          r.spec.rules
            .filter((x: any) => x.backendRefs !== undefined)
            .map((x: any) => ({ path: x.matches[0].path.value, service: x.backendRefs[0].name, port: x.backendRefs[0].port }));
    for (const h of rHosts) {
      hosts.set(`h:${h}`, `https://${h}`);
      edges.push({ from: `h:${h}`, to: rid, label: '443' });
    }
    for (const b of backends) {
      const svc = services.find((s) => s.metadata.name === b.service && s.metadata.namespace === r.metadata.namespace);
      const owner = svc && serviceOwner(svc);
      if (owner && !edges.some((e) => e.from === rid && e.to === wid(owner))) edges.push({ from: rid, to: wid(owner), label: `:${b.port}` });
    }
    return { id: rid, title: `${r.kind} ${r.metadata.name}`, lines: [...new Set(backends.map((b) => b.path))], tone: 'route' };
  });

  // Clients that reach host-network workloads directly (media, TURN), with LiveKit's UDP range from its config.
  const lkRtc = (yaml.load(ms.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'livekit-config')?.data['config.yaml'] ?? '{}') as any).rtc ?? {};
  for (const w of workloads.filter((x) => podTemplate(x).spec.hostNetwork)) {
    const ports = podTemplate(w)
      .spec.containers.flatMap((c: any) => c.ports ?? [])
      .filter((p: any) => !['http', 'metrics'].includes(p.name))
      .map((p: any) => `${p.protocol.toLowerCase()} ${p.containerPort}`);
    if (w.metadata.name === 'livekit' && lkRtc.port_range_start !== undefined) ports.push(`udp ${lkRtc.port_range_start}-${lkRtc.port_range_end}`);
    edges.push({ from: 'h:webrtc', to: wid(w), label: ports.join(', ') });
  }
  hosts.set('h:webrtc', 'call clients (WebRTC, TURN)');

  // Flows between workloads: who may reach whom, by the NetworkPolicies.
  for (const np of ms.filter((m) => m.kind === 'NetworkPolicy')) {
    const target = workloads.find(
      (w) => w.metadata.namespace === np.metadata.namespace && np.spec.podSelector.matchLabels && matches(np.spec.podSelector.matchLabels, podTemplate(w).metadata.labels),
    );
    if (!target) continue;
    for (const rule of np.spec.ingress ?? []) {
      for (const peer of rule.from ?? []) {
        const src =
          peer.podSelector && workloads.find((w) => w.metadata.namespace === np.metadata.namespace && matches(peer.podSelector.matchLabels, podTemplate(w).metadata.labels));
        for (const s of src ? [src] : []) edges.push({ from: wid(s), to: wid(target), label: `:${rule.ports.map((p: any) => p.port).join(',')}` });
      }
    }
  }
  // LiveKit (host network, outside the policies) reaches Redis by its address.
  const lk = ms.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'livekit-config');
  const redisAddress: string | undefined = lk && (yaml.load(lk.data['config.yaml']) as any).redis?.address;
  const redisSvc = redisAddress && services.find((s) => redisAddress.startsWith(`${s.metadata.name}.${s.metadata.namespace}.`));
  const lkWorkload = workloads.find((w) => w.metadata.name === 'livekit');
  if (redisSvc && lkWorkload && serviceOwner(redisSvc)) edges.push({ from: wid(lkWorkload), to: wid(serviceOwner(redisSvc)!), label: `:${redisAddress.split(':').pop()}` });

  // Volumes.
  const volumeNodes: Graph['columns'][number]['nodes'] = [];
  for (const w of workloads) {
    const claims: string[] = [
      ...(podTemplate(w).spec.volumes ?? []).filter((v: any) => v.persistentVolumeClaim).map((v: any) => v.persistentVolumeClaim.claimName),
      ...(w.spec.volumeClaimTemplates ?? []).map((t: any) => `${t.metadata.name}-${w.metadata.name}-0`),
    ];
    for (const c of claims) {
      const id = `v:${w.metadata.namespace}/${c}`;
      if (!volumeNodes.some((n) => n.id === id)) {
        const pvc = ms.find((m) => m.kind === 'PersistentVolumeClaim' && m.metadata.name === c);
        const tpl = (w.spec.volumeClaimTemplates ?? []).find((t: any) => c.startsWith(`${t.metadata.name}-`));
        const size = (pvc ?? tpl)?.spec.resources.requests.storage;
        volumeNodes.push({ id, title: c, lines: [`${size ?? ''} ReadWriteOnce`], tone: 'volume' });
      }
      edges.push({ from: wid(w), to: id, label: '' });
    }
  }

  // An order that keeps most edges short: the web path first, then media, then jobs.
  const ORDER = ['synapse', 'matrix-well-known', 'postgres', 'livekit', 'redis', 'coturn', 'postgres-backup', 'media-backup'];
  const rank = (w: Manifest) => (ORDER.includes(w.metadata.name) ? ORDER.indexOf(w.metadata.name) : ORDER.length);
  workloads.sort((a, b) => rank(a) - rank(b) || a.metadata.name.localeCompare(b.metadata.name));
  const workloadNodes = workloads.map((w) => {
    const svcPorts = services.filter((s) => serviceOwner(s) === w).flatMap((s) => s.spec.ports.map((p: any) => `${p.name} ${p.port}`));
    const hostNet = podTemplate(w).spec.hostNetwork ? ' (host network)' : '';
    return {
      id: wid(w),
      title: `${w.metadata.name}`,
      lines: [`${w.kind}${hostNet}`, ...(svcPorts.length ? [svcPorts.join(', ')] : []), `ns ${w.metadata.namespace}`],
      tone: hostNet ? 'host' : 'workload',
    };
  });
  return {
    columns: [
      { title: 'Clients', nodes: [...hosts].map(([id, title]) => ({ id, title, lines: [], tone: 'client' })) },
      { title: 'Routes', nodes: routeNodes },
      { title: 'Workloads and Services', nodes: workloadNodes },
      { title: 'Volumes', nodes: volumeNodes },
    ],
    edges,
  };
}

const TONES: Record<string, string> = { client: '#eef3fb', route: '#f3eefb', workload: '#eefbf1', host: '#fbf3ee', volume: '#f6f6f6' };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A deterministic SVG of the graph: columns left to right, edges as curves with their ports. */
export function toSvg(g: Graph): string {
  const colWidth = [230, 220, 300, 200];
  const gap = 90;
  const lineHeight = 15;
  const pos = new Map<string, { x: number; y: number; w: number; h: number }>();
  let x = 20;
  let height = 0;
  const parts: string[] = [];
  g.columns.forEach((col, ci) => {
    let y = 60;
    parts.push(`<text x="${x}" y="36" class="col">${esc(col.title)}</text>`);
    for (const n of col.nodes) {
      const h = 24 + lineHeight * n.lines.length + 8;
      pos.set(n.id, { x, y, w: colWidth[ci], h });
      parts.push(`<rect x="${x}" y="${y}" width="${colWidth[ci]}" height="${h}" rx="6" fill="${TONES[n.tone]}" stroke="#8a8f98"/>`);
      parts.push(`<text x="${x + 10}" y="${y + 19}" class="title">${esc(n.title)}</text>`);
      n.lines.forEach((l, i) => parts.push(`<text x="${x + 10}" y="${y + 38 + i * lineHeight}" class="line">${esc(l)}</text>`));
      y += h + 14;
    }
    height = Math.max(height, y);
    x += colWidth[ci] + gap;
  });
  const edgeParts: string[] = [];
  for (const e of g.edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) continue;
    let d: string;
    let lx: number;
    let ly: number;
    let cls = 'label';
    if (a.x === b.x) {
      // Within a column: an arc on its right side.
      const x1 = a.x + a.w;
      const y1 = a.y + a.h / 2;
      const y2 = b.y + b.h / 2;
      const bulge = x1 + 40 + Math.min(40, Math.abs(y2 - y1) / 6);
      d = `M${x1},${y1} C${bulge},${y1} ${bulge},${y2} ${x1},${y2}`;
      lx = bulge - 16;
      ly = (y1 + y2) / 2;
    } else {
      const x1 = a.x + a.w;
      const y1 = a.y + a.h / 2;
      const x2 = b.x;
      const y2 = b.y + b.h / 2;
      const mid = (x1 + x2) / 2;
      d = `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
      // Labels sit just before the arrowhead, where edges no longer overlap.
      lx = x2 - 8;
      ly = y2 - 6;
      cls = 'label end';
    }
    edgeParts.push(`<path d="${d}" class="edge" marker-end="url(#arrow)"/>`);
    if (e.label) edgeParts.push(`<text x="${lx.toFixed(1)}" y="${ly.toFixed(1)}" class="${cls}">${esc(e.label)}</text>`);
  }
  const width = x - gap + 60;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 20}" viewBox="0 0 ${width} ${height + 20}">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5b6270"/></marker></defs>',
    '<style>text{font-family:Helvetica,Arial,sans-serif}.col{font-size:15px;font-weight:bold;fill:#333}.title{font-size:13px;font-weight:bold;fill:#222}.line{font-size:11px;fill:#444}.label{font-size:10px;fill:#5b3d99;text-anchor:middle}.end{text-anchor:end}.edge{fill:none;stroke:#5b6270;stroke-width:1.2}</style>',
    `<rect width="${width}" height="${height + 20}" fill="#ffffff"/>`,
    ...edgeParts,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
