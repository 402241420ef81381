import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { labels } from './common';
import { ACME_SOLVER_PORT } from './tls';

/** Private and shared address ranges (RFC 1918, RFC 6598's carrier-grade NAT, RFC 4193's unique local IPv6): where nodes and pods live. */
export const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'] as const;

export interface NetworkPoliciesProps extends ChartProps {
  /** The stack namespace, whose pods these policies govern. */
  readonly namespace: string;
  /** Where public traffic comes from: the ingress controller's pods, or the Gateway's proxies. */
  readonly publicTrafficNamespace: string;
  /** The Kudo app's namespace: it calls Synapse's admin API and shared-secret registration. */
  readonly appNamespace: string;
  readonly dnsNamespace: string;
  /** Node addresses (LiveKit reaches Redis from the host network). @default - any address */
  readonly nodeCidrs?: readonly string[];
  /** The cluster's pod and Service ranges, which federation never reaches. @default - none left out */
  readonly clusterCidrs?: readonly string[];
  /**
   * Ports of the Redis, Synapse and well-known pods, their metrics ports, and TURN's (the smoke test checks it).
   * Synapse (or its router) has two: `synapse` for callers inside the cluster, and `synapseProxied`, where it
   * takes the client address from X-Forwarded-For, for the public proxy alone.
   */
  readonly ports: {
    readonly redis: number;
    readonly synapse: number;
    readonly synapseProxied: number;
    readonly wellKnown: number;
    readonly synapseMetrics: number;
    readonly redisMetrics: number;
    readonly turn: number;
    readonly turnTls: number;
  };
  /** PostgreSQL: whose pods it runs in, or where it is outside the cluster. */
  readonly database: DatabasePeers;
  /** The pods' selector labels, as their charts label them. */
  readonly pods: Record<'redis' | 'synapse' | 'synapseMigration' | 'wellKnown' | 'backup' | 'bootstrap' | 'smoke', Record<string, string>>;
  /** app.kubernetes.io/name of the Jobs that call the Kubernetes API. */
  readonly apiClients: readonly string[];
  /** Whether the well-known server runs. @default true */
  readonly wellKnown?: boolean;
  /** Whether Redis runs. @default true */
  readonly redis?: boolean;
  /** Whether the backup jobs run. @default true */
  readonly backup?: boolean;
  /**
   * With Synapse's workers: the router's and the federation senders' pod
   * labels, the labels every Synapse process carries, and the replication and
   * router status ports. @default - one Synapse process
   */
  readonly workers?: {
    readonly router: Record<string, string>;
    readonly allProcesses: Record<string, string>;
    readonly federationSenders?: Record<string, string>;
    readonly replicationPort: number;
    readonly routerStatusPort: number;
  };
  /** The port of the S3 store the backup jobs upload to (443 for AWS, 9000 for a MinIO). @default - no upload */
  readonly backupStorePort?: number;
  /** The secret generator's labels, when it restores the Secrets from that store (secrets.restoreFromBackup). @default - it does not */
  readonly secretsRestore?: Record<string, string>;
  /**
   * The Gateway's proxy pods, when they run in the stack namespace (GEP-1762 labels them with the
   * Gateway's name): the internet reaches them on the listener ports, they reach the routes' backends.
   * @default - the public traffic comes from publicTrafficNamespace, whose pods are not ours
   */
  readonly gatewayProxies?: {
    /** The label that selects them: gateway.networking.k8s.io/gateway-name: <Gateway>. */
    readonly labels: Record<string, string>;
    readonly listenerPorts: readonly number[];
    /** LiveKit's API port; LiveKit is on the host network, so its endpoints are node addresses. */
    readonly livekitPort: number;
    /** The host-network namespace, where coturn's certificate has its ACME solver. */
    readonly mediaNamespace: string;
    /** Their implementation's control plane. @default - not reached */
    readonly controlPlane?: { readonly namespace: string; readonly ports: readonly number[] };
  };
  /** Prometheus's namespace, allowed to scrape the metrics ports. @default - no scraping */
  readonly monitoringNamespace?: string;
  /**
   * LiveKit as an ordinary pod (livekit.hostNetwork false), selected by its labels: Redis admits it by them, the
   * Gateway's proxies reach it by them, and a policy in its namespace admits its API, media and metrics ports only.
   * @default - LiveKit is on the host network, where policies do not select it and it arrives from node addresses
   */
  readonly livekitPods?: {
    readonly namespace: string;
    readonly pods: Record<string, string>;
    readonly apiPort: number;
    readonly metricsPort: number;
    /** The first and last port its replicas take media on. */
    readonly udp: readonly [number, number];
    readonly tcp: readonly [number, number];
    /** Its own TURN (coturn off): the UDP ports its replicas take, and the TLS port in the pod. @default - none */
    readonly turn?: { readonly udp: readonly [number, number]; readonly tls: number };
  };
}

/** PostgreSQL as the NetworkPolicies see it. */
export type DatabasePeers =
  /** The StatefulSet's pod. */
  | { readonly mode: 'statefulset'; readonly pods: Record<string, string>; readonly port: number; readonly metricsPort: number }
  /**
   * CloudNativePG's instances: the operator reaches them on the instance manager's port and PostgreSQL's,
   * they replicate among themselves, report to the Kubernetes API and archive WAL to object storage.
   */
  | {
      readonly mode: 'cloudnative-pg';
      readonly pods: Record<string, string>;
      readonly port: number;
      readonly metricsPort: number;
      readonly statusPort: number;
      readonly operator: { readonly namespace: string; readonly pods: Record<string, string> };
      /** The object store's port (HTTPS 443 for AWS). @default - no WAL archiving */
      readonly objectStorePort?: number;
    }
  /** A managed database: its address is the provider's, only the port is known. */
  | { readonly mode: 'external'; readonly port: number };

const inNamespace = (ns: string): k8s.LabelSelector => ({ matchLabels: { 'kubernetes.io/metadata.name': ns } });
const tcp = (...ports: number[]): k8s.NetworkPolicyPort[] => ports.map((p) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(p) }));
const ANYWHERE: k8s.NetworkPolicyPeer[] = [{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0' } }];
/** The cloud metadata service (AWS, GCP, Azure, OpenStack; AWS's IPv6 one): credentials of the node's role, never a destination of ours. */
const METADATA = { v4: '169.254.169.254/32', v6: 'fd00:ec2::254/128' };
/**
 * Any address but the metadata service's, and but `also` (ranges of the cluster's own), each range in the block of
 * its family: the API server refuses an `except` outside its block's cidr.
 */
const outside = (also: readonly string[] = []): k8s.NetworkPolicyPeer[] => [
  { ipBlock: { cidr: '0.0.0.0/0', except: [METADATA.v4, ...also.filter((c) => !c.includes(':'))] } },
  { ipBlock: { cidr: '::/0', except: [METADATA.v6, ...also.filter((c) => c.includes(':'))] } },
];

/**
 * Default-deny for the stack namespace, then only the flows the stack needs.
 * The host-network namespace has none: NetworkPolicies do not apply to pods
 * on the node's network, whose exposure the firewall decides (see README).
 */
export class NetworkPoliciesChart extends Chart {
  constructor(scope: Construct, id: string, props: NetworkPoliciesProps) {
    super(scope, id, props);
    const f = flows(this, props);
    this.basePolicies(f);
    this.databasePolicies(f);
    this.redisPolicy(f);
    this.synapsePolicies(f);
    this.edgePolicies(f);
    this.jobPolicies(f);
  }

  /** Default-deny, and DNS for every pod. */
  private basePolicies({ props, policy }: Flows): void {
    policy('default-deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    policy('allow-dns', {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [{ to: [{ namespaceSelector: inNamespace(props.dnsNamespace) }], ports: [{ protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) }, ...tcp(53)] }],
    });
  }

  /** PostgreSQL's clients, and a CloudNativePG Cluster's own flows. */
  private databasePolicies({ pod, policy, OUTSIDE, scrape, backup, synapseProcesses, db }: Flows): void {
    if (db.mode !== 'external') {
      const clientsOfDb = [{ podSelector: synapseProcesses }, { podSelector: pod('synapseMigration') }, ...(backup ? [{ podSelector: pod('backup') }] : [])];
      if (db.mode === 'statefulset') {
        policy('postgres', {
          podSelector: { matchLabels: db.pods },
          policyTypes: ['Ingress'],
          ingress: [{ from: clientsOfDb, ports: tcp(db.port) }, ...scrape(db.metricsPort)],
        });
      } else {
        const instances = { podSelector: { matchLabels: db.pods } };
        const operator = { namespaceSelector: inNamespace(db.operator.namespace), podSelector: { matchLabels: db.operator.pods } };
        policy('postgres', {
          podSelector: { matchLabels: db.pods },
          policyTypes: ['Ingress', 'Egress'],
          ingress: [{ from: clientsOfDb, ports: tcp(db.port) }, { from: [operator, instances], ports: tcp(db.port, db.statusPort) }, ...scrape(db.metricsPort)],
          egress: [
            { to: [instances], ports: tcp(db.port, db.statusPort) },
            // The instance manager keeps the Cluster's status in the API; the API server's address differs per cluster.
            { to: OUTSIDE, ports: tcp(443, 6443) },
            ...(db.objectStorePort !== undefined && db.objectStorePort !== 443 ? [{ to: OUTSIDE, ports: tcp(db.objectStorePort) }] : []),
          ],
        });
      }
    }
  }

  /** Redis's clients: LiveKit, and Synapse's processes with workers. */
  private redisPolicy({ props, p, pod, policy, nodes, scrape, w, synapseProcesses, livekit }: Flows): void {
    if ((props.redis ?? true) && livekit !== undefined) {
      // LiveKit and Synapse's processes (with workers) are Redis's only clients, each known by its labels.
      policy('redis', {
        podSelector: pod('redis'),
        policyTypes: ['Ingress'],
        ingress: [{ from: w ? [livekit, { podSelector: synapseProcesses }] : [livekit], ports: tcp(p.redis) }, ...scrape(p.redisMetrics)],
      });
    } else if (props.redis ?? true) {
      // LiveKit is on the host network: it arrives from a node address, not from a pod. Without the nodes' addresses,
      // the ranges clusters give nodes and pods: LiveKit still gets in, the internet does not.
      const fromNodes = nodes ?? PRIVATE_RANGES.map((cidr) => ({ ipBlock: { cidr } }));
      policy('redis', {
        podSelector: pod('redis'),
        policyTypes: ['Ingress'],
        ingress: [{ from: nodes && w ? [...fromNodes, { podSelector: synapseProcesses }] : fromNodes, ports: tcp(p.redis) }, ...scrape(p.redisMetrics)],
      });
    }
  }

  /** Synapse's processes, the router in front of them and the schema migration. */
  private synapsePolicies({ p, pod, policy, fromPublic, federation, fromApp, scrape, w, synapseProcesses, toDatabase }: Flows): void {
    // Whoever reaches the proxied port decides the client address Synapse counts (rate limits, sessions): the public
    // proxy only. The app and the Jobs call the other, where their own address counts.
    policy('synapse-migrate', {
      // The schema migration Job (one per Synapse version) talks to the database alone.
      podSelector: pod('synapseMigration'),
      policyTypes: ['Egress'],
      egress: [toDatabase],
    });
    const clients: k8s.NetworkPolicyIngressRule[] = [
      { from: [fromPublic], ports: tcp(p.synapseProxied) },
      { from: [fromApp, { podSelector: pod('bootstrap') }, { podSelector: pod('smoke') }], ports: tcp(p.synapse) },
    ];
    if (w === undefined) {
      policy('synapse', {
        podSelector: pod('synapse'),
        policyTypes: ['Ingress', 'Egress'],
        ingress: [...clients, ...scrape(p.synapseMetrics)],
        egress: [
          toDatabase,
          // Federation: other homeservers on 443 or 8448, anywhere.
          { to: federation, ports: tcp(443, 8448) },
        ],
      });
    } else {
      policy('synapse-router', {
        podSelector: { matchLabels: w.router },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [...clients, ...scrape(w.routerStatusPort)],
        egress: [{ to: [{ podSelector: synapseProcesses }], ports: tcp(p.synapseProxied) }],
      });
      policy('synapse', {
        // Every process, main and workers: requests from the router, replication among themselves, the databases.
        podSelector: synapseProcesses,
        policyTypes: ['Ingress', 'Egress'],
        ingress: [
          { from: [{ podSelector: { matchLabels: w.router } }], ports: tcp(p.synapseProxied) },
          { from: [{ podSelector: synapseProcesses }], ports: tcp(w.replicationPort) },
          ...scrape(p.synapseMetrics),
        ],
        egress: [toDatabase, { to: [{ podSelector: pod('redis') }], ports: tcp(p.redis) }, { to: [{ podSelector: synapseProcesses }], ports: tcp(w.replicationPort) }],
      });
      // Only the federation senders reach other servers (outbound_federation_restricted_to), and the
      // main process, which sends push notifications to push gateways (and federates when no sender runs).
      policy('synapse-internet', {
        podSelector: pod('synapse'),
        policyTypes: ['Egress'],
        egress: [{ to: federation, ports: tcp(443, 8448) }],
      });
      if (w.federationSenders !== undefined) {
        policy('synapse-federation-sender', {
          podSelector: { matchLabels: w.federationSenders },
          policyTypes: ['Egress'],
          egress: [{ to: federation, ports: tcp(443, 8448) }],
        });
      }
    }
  }

  /** What public traffic reaches: the delegation, the Gateway's proxies, LiveKit. */
  private edgePolicies({ props, p, pod, policy, gp, fromPublic, nodes, OUTSIDE, scrape, synapseEntry, lkp, livekit, wellKnown }: Flows): void {
    if (wellKnown) {
      policy('matrix-well-known', {
        podSelector: pod('wellKnown'),
        policyTypes: ['Ingress'],
        ingress: [{ from: [fromPublic], ports: tcp(p.wellKnown) }],
      });
    }
    if (gp !== undefined) {
      const solvers = { matchLabels: { 'acme.cert-manager.io/http01-solver': 'true' } };
      policy('gateway-proxy', {
        podSelector: { matchLabels: gp.labels },
        policyTypes: ['Ingress', 'Egress'],
        // Envoy Gateway's proxies listen 10000 above a privileged listener port (80 on 10080).
        ingress: [{ from: ANYWHERE, ports: tcp(...gp.listenerPorts, ...gp.listenerPorts.filter((x) => x < 1024).map((x) => x + 10000)) }],
        egress: [
          { to: [{ podSelector: synapseEntry }], ports: tcp(p.synapseProxied) },
          ...(wellKnown ? [{ to: [{ podSelector: pod('wellKnown') }], ports: tcp(p.wellKnown) }] : []),
          { to: livekit !== undefined ? [livekit] : (nodes ?? OUTSIDE), ports: tcp(gp.livekitPort) },
          { to: [{ podSelector: solvers }, { namespaceSelector: inNamespace(gp.mediaNamespace), podSelector: solvers }], ports: tcp(ACME_SOLVER_PORT) },
          ...(gp.controlPlane !== undefined ? [{ to: [{ namespaceSelector: inNamespace(gp.controlPlane.namespace) }], ports: tcp(...gp.controlPlane.ports) }] : []),
        ],
      });
    }
    if (lkp !== undefined) {
      // In LiveKit's namespace, which also holds coturn: on the host network, coturn is not selected by it.
      const range = (protocol: string, [first, last]: readonly [number, number]): k8s.NetworkPolicyPort => ({
        protocol,
        port: k8s.IntOrString.fromNumber(first),
        ...(last > first ? { endPort: last } : {}),
      });
      const fromProxies: k8s.NetworkPolicyPeer = gp !== undefined ? { namespaceSelector: inNamespace(props.namespace), podSelector: { matchLabels: gp.labels } } : fromPublic;
      new k8s.KubeNetworkPolicy(this, 'livekit', {
        metadata: { name: 'livekit', namespace: lkp.namespace, labels: labels({ name: 'network-policy', component: 'security' }) },
        spec: {
          podSelector: { matchLabels: lkp.pods },
          // Egress stays open: media goes to any client or TURN relay, on any port.
          policyTypes: ['Ingress'],
          ingress: [
            { from: [fromProxies], ports: tcp(lkp.apiPort) },
            // Clients' media, through the NodePort Services that keep their addresses.
            { from: ANYWHERE, ports: [range('UDP', lkp.udp), range('TCP', lkp.tcp), ...(lkp.turn ? [range('UDP', lkp.turn.udp), ...tcp(lkp.turn.tls)] : [])] },
            ...scrape(lkp.metricsPort),
          ],
        },
      });
    }
  }

  /** cert-manager's solvers and the Jobs: API clients, bootstrap, smoke test, backups, the Secrets' restore. */
  private jobPolicies({ props, p, pod, policy, fromPublic, OUTSIDE, backup, synapseEntry, toDatabase }: Flows): void {
    policy('acme-http01-solver', {
      // cert-manager's temporary challenge pods, created next to our Ingresses.
      podSelector: { matchLabels: { 'acme.cert-manager.io/http01-solver': 'true' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [fromPublic], ports: tcp(ACME_SOLVER_PORT) }],
    });
    policy('kubernetes-api', {
      // The Jobs that read and write Secrets. The API server's address differs per cluster.
      podSelector: { matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: [...props.apiClients] }] },
      policyTypes: ['Egress'],
      egress: [{ to: OUTSIDE, ports: tcp(443, 6443) }],
    });
    policy('admin-bootstrap', {
      podSelector: pod('bootstrap'),
      policyTypes: ['Egress'],
      egress: [{ to: [{ podSelector: synapseEntry }], ports: tcp(p.synapse) }],
    });
    policy('smoke-test', {
      // It checks what users reach: Synapse inside, and the public endpoints (HTTPS, LiveKit, STUN/TURN) outside.
      podSelector: pod('smoke'),
      policyTypes: ['Egress'],
      egress: [
        { to: [{ podSelector: synapseEntry }], ports: tcp(p.synapse) },
        { to: OUTSIDE, ports: [...tcp(...new Set([443, p.turnTls])), { protocol: 'UDP', port: k8s.IntOrString.fromNumber(p.turn) }] },
      ],
    });
    if (backup) {
      policy('backup', {
        podSelector: pod('backup'),
        policyTypes: ['Egress'],
        egress: [toDatabase, ...(props.backupStorePort !== undefined ? [{ to: OUTSIDE, ports: tcp(props.backupStorePort) }] : [])],
      });
    }
    if (props.secretsRestore !== undefined && props.backupStorePort !== undefined) {
      policy('secrets-restore', {
        // The generator's fetch step reads the Secrets' snapshot from the off-site store.
        podSelector: { matchLabels: props.secretsRestore },
        policyTypes: ['Egress'],
        egress: [{ to: OUTSIDE, ports: tcp(props.backupStorePort) }],
      });
    }
  }
}

/** The peers, selectors and rules the NetworkPolicies share, and a maker of one policy in `chart`. */
function flows(chart: Construct, props: NetworkPoliciesProps) {
  const p = props.ports;
  const pod = (name: keyof NetworkPoliciesProps['pods']): k8s.LabelSelector => ({ matchLabels: props.pods[name] });
  const policy = (name: string, spec: k8s.NetworkPolicySpec) =>
    new k8s.KubeNetworkPolicy(chart, name, {
      metadata: { name, namespace: props.namespace, labels: labels({ name: 'network-policy', component: 'security' }) },
      spec,
    });
  const gp = props.gatewayProxies;
  // Proxies in our namespace are picked out by their label: the namespace holds every other pod of the stack too.
  const fromPublic: k8s.NetworkPolicyPeer = gp !== undefined ? { podSelector: { matchLabels: gp.labels } } : { namespaceSelector: inNamespace(props.publicTrafficNamespace) };
  const nodes = props.nodeCidrs?.length ? props.nodeCidrs.map((cidr) => ({ ipBlock: { cidr } })) : undefined;
  const OUTSIDE = outside();
  // Other homeservers and push gateways are never the cluster's own nodes.
  const federation = outside([...(props.nodeCidrs ?? []), ...(props.clusterCidrs ?? [])]);
  const fromApp: k8s.NetworkPolicyPeer = { namespaceSelector: inNamespace(props.appNamespace) };
  const scrape = (port: number): k8s.NetworkPolicyIngressRule[] =>
    props.monitoringNamespace === undefined ? [] : [{ from: [{ namespaceSelector: inNamespace(props.monitoringNamespace) }], ports: tcp(port) }];
  const w = props.workers;
  const backup = props.backup ?? true;
  // Who talks to Synapse from outside its processes, and where they go: the router with workers, else the one process.
  const synapseEntry = w === undefined ? pod('synapse') : { matchLabels: w.router };
  const synapseProcesses = w === undefined ? pod('synapse') : { matchLabels: w.allProcesses };
  const db = props.database;
  // Where the database's clients may connect.
  const toDatabase: k8s.NetworkPolicyEgressRule =
    db.mode === 'external' ? { to: OUTSIDE, ports: tcp(db.port) } : { to: [{ podSelector: { matchLabels: db.pods } }], ports: tcp(db.port) };
  const lkp = props.livekitPods;
  const livekit: k8s.NetworkPolicyPeer | undefined = lkp && { namespaceSelector: inNamespace(lkp.namespace), podSelector: { matchLabels: lkp.pods } };
  const wellKnown = props.wellKnown ?? true;
  return { props, p, pod, policy, gp, fromPublic, nodes, OUTSIDE, federation, fromApp, scrape, w, backup, synapseEntry, synapseProcesses, db, toDatabase, lkp, livekit, wellKnown };
}
type Flows = ReturnType<typeof flows>;
