/**
 * The router in front of Synapse's processes: HAProxy, whose configuration
 * is rendered from the worker table (synapse-workers.ts), so the paths each
 * worker type serves are written down once. Ingress path rules cannot do
 * this: /sync must stick to a user, federation transactions to their origin
 * server and event sending to its room, and a pool with no replica up must
 * fall back to the main process where it can.
 */
import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { ImageConfig, ResourcesConfig } from './config';
import {
  CONFIG_HASH_ANNOTATION,
  contentHash,
  imageRef,
  labels,
  memoryVolume,
  resourceRequirements,
  restrictedContainer,
  restrictedPod,
  selectorLabels,
  tcpPort,
  UID,
} from './common';
import { PodScheduling, withScheduling } from './pods';
import { SYNAPSE_HTTP_PORT, SYNAPSE_PROXIED_PORT, workerComponent } from './synapse';
import { Balance, INITIAL_SYNC_PATH, WORKER_TYPE_NAMES, WORKER_TYPES, WorkerType, WorkerTypeName } from './synapse-workers';

/** The router's identity (NetworkPolicies select it by it). */
export const SYNAPSE_ROUTER = { name: 'synapse-router', component: 'router' } as const;
/** Callers inside the cluster; the public proxy on ROUTER_PROXIED_PORT (see SYNAPSE_PROXIED_PORT). */
export const ROUTER_PORT = SYNAPSE_HTTP_PORT;
export const ROUTER_PROXIED_PORT = SYNAPSE_PROXIED_PORT;
/** Health (monitor-uri) and Prometheus metrics, never routed. */
export const ROUTER_STATUS_PORT = 8405;
const CONFIG_DIR = '/usr/local/etc/haproxy';

export interface SynapseRouterProps extends ChartProps {
  readonly namespace: string;
  readonly image: ImageConfig;
  readonly replicas: number;
  readonly resources: ResourcesConfig;
  /** How many of each worker type run (types with none are not routed). */
  readonly workers: Readonly<Record<WorkerTypeName, number>>;
  /** The main process's Service, on its port that believes X-Forwarded-For. */
  readonly main: { readonly service: string; readonly port: number };
  /** Where its pods may run, beyond what the chart sets. @default - anywhere the chart allows */
  readonly scheduling?: PodScheduling;
}

/** How HAProxy picks a replica for each kind of balance (the variables are set in the frontend). */
const BALANCE: Record<Balance, string> = {
  roundrobin: 'balance roundrobin',
  user: 'balance hash var(txn.user)',
  source: 'balance hash var(txn.origin)',
  room: 'balance hash var(txn.room)',
};

/** haproxy.cfg: one backend per worker type that runs, its paths as ACLs, the main process for the rest. */
export function haproxyConfig(p: Pick<SynapseRouterProps, 'namespace' | 'workers' | 'main'>): string {
  const running = WORKER_TYPE_NAMES.filter((t) => p.workers[t] > 0);
  const addr = (service: string) => `${service}.${p.namespace}.svc:${SYNAPSE_PROXIED_PORT}`;
  const lines = [
    '# Rendered by kudo from the worker table (charts/synapse-workers.ts).',
    'global',
    '  log stdout format raw local0 info',
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  option dontlognull',
    '  timeout connect 5s',
    // /sync long-polls for up to the client's timeout (30 s in Element); uploads may be slow.
    '  timeout client 180s',
    '  timeout server 180s',
    '  timeout http-request 60s',
    '  timeout tunnel 1h',
    '  default-server init-addr none resolvers kube check inter 5s fall 3 rise 2',
    '',
    '# Cluster DNS: every replica of a worker type is an address of its headless Service.',
    'resolvers kube',
    '  parse-resolv-conf',
    '  hold valid 10s',
    '  hold nx 5s',
    '',
    'frontend status',
    `  bind :${ROUTER_STATUS_PORT}`,
    '  monitor-uri /health',
    '  http-request use-service prometheus-exporter if { path /metrics }',
    '',
    'frontend synapse',
    // One frontend, so both ports route by the same rules. Every process believes X-Forwarded-For (and
    // X-Forwarded-Proto): on the public proxy's port the proxy has set them; a caller inside the cluster has
    // no proxy in front, so whatever it sent is replaced by its own address (a forged one would pass for
    // the client's) and its plain HTTP.
    `  bind :${ROUTER_PORT} name internal`,
    `  bind :${ROUTER_PROXIED_PORT} name public`,
    '  http-request set-header X-Forwarded-For %[src] if { so_name internal }',
    '  http-request set-header X-Forwarded-Proto http if { so_name internal }',
    // Each regsub in single quotes (HAProxy expands "$..." inside double quotes as environment variables),
    // its arguments in double quotes within (so a pattern's parentheses do not end the argument list).
    // The user, for sticky sync: the localpart in a Synapse access token (syt_<localpart>_...).
    `  http-request set-var(txn.user) req.hdr(authorization),'regsub("^Bearer syt_([^_]*)_.*$","\\1")' if { req.hdr(authorization) -m beg 'Bearer ' }`,
    `  http-request set-var(txn.user) url_param(access_token),'regsub("^syt_([^_]*)_.*$","\\1")' if !{ var(txn.user) -m found }`,
    // The sending server of a federation request: the origin in its X-Matrix authorization, read whole
    // (req.fhdr: req.hdr is the last comma-separated part, which Synapse makes destination="...").
    `  http-request set-var(txn.origin) req.fhdr(authorization),'regsub("^X-Matrix .*origin=\\"?([^\\",]+).*$","\\1")' if { req.fhdr(authorization) -m beg 'X-Matrix ' }`,
    `  http-request set-var(txn.room) path,'regsub("^.*/rooms/([^/]+)/.*$","\\1")'`,
  ];
  for (const t of running) {
    const w = WORKER_TYPES[t] as WorkerType;
    if (w.paths.length > 0) lines.push(`  acl ${t} path_reg ${w.paths.join(' ')}`);
  }
  if (running.includes('initial-synchrotron')) {
    lines.push(`  acl initial-sync path_reg ${INITIAL_SYNC_PATH}`, '  acl since url_param(since) -m found');
  }
  // In table order; a pool with no replica up leaves its paths to the main process where it can serve them.
  const up = (t: WorkerTypeName) => ((WORKER_TYPES[t] as WorkerType).mainCanServe ? ` { nbsrv(${t}) gt 0 }` : '');
  if (running.includes('initial-synchrotron')) lines.push(`  use_backend initial-synchrotron if initial-sync !since${up('initial-synchrotron')}`);
  for (const t of running) {
    if ((WORKER_TYPES[t] as WorkerType).paths.length > 0) lines.push(`  use_backend ${t} if ${t}${up(t)}`);
  }
  lines.push('  default_backend main', '', 'backend main', '  option httpchk GET /health', `  server main ${p.main.service}.${p.namespace}.svc:${p.main.port}`);
  for (const t of running) {
    const w = WORKER_TYPES[t] as WorkerType;
    if (w.paths.length === 0) continue;
    lines.push('', `backend ${t}`, `  ${BALANCE[w.balance ?? 'roundrobin']}`, '  hash-type consistent', '  option httpchk GET /health');
    // Room for the replicas there are and a few more, so scaling up needs no new config.
    lines.push(`  server-template ${t} ${Math.max(p.workers[t] + 2, 4)} ${addr(workerComponent(t).name)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** HAProxy in front of Synapse's main process and workers. */
export class SynapseRouterChart extends Chart {
  public readonly serviceName: string;

  constructor(scope: Construct, id: string, props: SynapseRouterProps) {
    super(scope, id, props);
    const component = { ...SYNAPSE_ROUTER, version: props.image.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    const files = { 'haproxy.cfg': haproxyConfig(props) };
    const config = new k8s.KubeConfigMap(this, 'config', { metadata: { name: 'synapse-router', ...meta }, data: files });
    const status = (path: string): k8s.Probe => ({ httpGet: { path, port: k8s.IntOrString.fromString('status') }, periodSeconds: 10 });

    new k8s.KubeDeployment(this, 'deployment', {
      metadata: { name: 'synapse-router', ...meta },
      spec: {
        replicas: props.replicas,
        selector: { matchLabels: selectorLabels(component) },
        template: {
          metadata: { labels: labels(component), annotations: { [CONFIG_HASH_ANNOTATION]: contentHash(files) } },
          spec: withScheduling(
            {
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: restrictedPod(UID.router),
              affinity: {
                podAntiAffinity: {
                  preferredDuringSchedulingIgnoredDuringExecution: [
                    {
                      weight: 100,
                      podAffinityTerm: { labelSelector: { matchLabels: selectorLabels(component) }, topologyKey: 'kubernetes.io/hostname' },
                    },
                  ],
                },
              },
              containers: [
                {
                  name: 'haproxy',
                  image: imageRef(props.image),
                  // Foreground, master-worker (a reload keeps connections), no pid file.
                  command: ['haproxy', '-W', '-db', '-f', `${CONFIG_DIR}/haproxy.cfg`],
                  ports: [tcpPort('http', ROUTER_PORT), tcpPort('proxied', ROUTER_PROXIED_PORT), tcpPort('status', ROUTER_STATUS_PORT)],
                  resources: resourceRequirements(props.resources),
                  securityContext: restrictedContainer(),
                  readinessProbe: status('/health'),
                  livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('http') }, periodSeconds: 10, failureThreshold: 3 },
                  volumeMounts: [
                    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                    { name: 'tmp', mountPath: '/tmp' },
                  ],
                },
              ],
              volumes: [{ name: 'config', configMap: { name: config.name } }, memoryVolume('tmp', '8Mi')],
            },
            props.scheduling,
            selectorLabels(component),
          ),
        },
      },
    });
    if (props.replicas > 1) {
      new k8s.KubePodDisruptionBudget(this, 'disruption-budget', {
        metadata: { name: 'synapse-router', ...meta },
        spec: { maxUnavailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: selectorLabels(component) } },
      });
    }
    const service = new k8s.KubeService(this, 'service', {
      metadata: { name: 'synapse-router', ...meta },
      spec: {
        selector: selectorLabels(component),
        ports: [
          { name: 'http', port: ROUTER_PORT, targetPort: k8s.IntOrString.fromString('http') },
          { name: 'proxied', port: ROUTER_PROXIED_PORT, targetPort: k8s.IntOrString.fromString('proxied') },
          { name: 'metrics', port: ROUTER_STATUS_PORT, targetPort: k8s.IntOrString.fromString('status') },
        ],
      },
    });
    this.serviceName = service.name;
  }
}
