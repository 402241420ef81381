/**
 * The building blocks every chart shares: labels, hardened container
 * defaults, image references, resources and content hashes.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { ImageConfig, ResourcesConfig, SecretRef } from './config';
import { PodScheduling, withScheduling } from './pods';

export const PART_OF = 'kudo';

/**
 * The uid (and gid, and fsGroup) each program runs as: above 10000, clear of
 * host users, and never the image's own (999 for postgres and redis).
 */
export const UID = {
  /** ess-helm's uid for Synapse. Also the tool pods' (they run the Synapse image's Python), the well-known
   * server's (same image) and the backups' (they mount Synapse's media volume: another fsGroup would re-own every file). */
  synapse: 10091,
  /** PostgreSQL and Redis: neither needs a passwd entry. */
  database: 10999,
  livekit: 10880,
  coturn: 10478,
  /** HAProxy, in front of Synapse's workers. */
  router: 10808,
} as const;

/** Where the bundled scripts of a tool or backup pod are mounted. */
export const SCRIPTS_DIR = '/opt/kudo';

/** A schedule that never comes (31 February): suspended CronJobs that are only templates for `kubectl create job --from`. */
export const NEVER = '0 0 31 2 *';
export const MANAGED_BY = 'cdk8s';

/** The recommended app.kubernetes.io labels of one component. */
export interface ComponentLabels {
  /** app.kubernetes.io/name: the program, e.g. "postgres". */
  readonly name: string;
  /** app.kubernetes.io/component: its role in the stack, e.g. "database". */
  readonly component: string;
  /** app.kubernetes.io/version: the image tag it runs. @default - no version label */
  readonly version?: string;
}

/**
 * Labels for metadata and pod templates. `selectorLabels` is the immutable
 * subset used in selectors: never add a key to it, or every StatefulSet and
 * Deployment becomes impossible to upgrade in place.
 */
export function labels(c: ComponentLabels): Record<string, string> {
  return {
    ...selectorLabels(c),
    'app.kubernetes.io/component': c.component,
    'app.kubernetes.io/part-of': PART_OF,
    'app.kubernetes.io/managed-by': MANAGED_BY,
    ...(c.version !== undefined ? { 'app.kubernetes.io/version': versionLabel(c.version) } : {}),
  };
}

export function selectorLabels(c: ComponentLabels): Record<string, string> {
  return { 'app.kubernetes.io/name': c.name, 'app.kubernetes.io/instance': `${PART_OF}-${c.name}` };
}

/** A label value may not hold everything a tag may ("+" for example). */
function versionLabel(tag: string): string {
  return tag.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 63);
}

export function imageRef(i: ImageConfig): string {
  return i.digest !== undefined ? `${i.repository}:${i.tag}@${i.digest}` : `${i.repository}:${i.tag}`;
}

/** Local disk a container may use (its writable layer, logs, disk-backed emptyDirs). */
export interface EphemeralStorage {
  readonly request: string;
  readonly limit: string;
}

export const DEFAULT_EPHEMERAL_STORAGE: EphemeralStorage = { request: '64Mi', limit: '1Gi' };

export function resourceRequirements(r: ResourcesConfig, ephemeral: EphemeralStorage = DEFAULT_EPHEMERAL_STORAGE): k8s.ResourceRequirements {
  const q = (v: string) => k8s.Quantity.fromString(v);
  return {
    requests: { cpu: q(r.requests.cpu), memory: q(r.requests.memory), 'ephemeral-storage': q(ephemeral.request) },
    limits: { cpu: q(r.limits.cpu), memory: q(r.limits.memory), 'ephemeral-storage': q(ephemeral.limit) },
  };
}

// The config's quantities, read as it reads them (charts/config/index.ts): re-exported for the charts.
export { cpuCores, memoryBytes } from './config';

/** The Pod Security `restricted` container context, with a read-only root filesystem. */
export function restrictedContainer(): k8s.SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    runAsNonRoot: true,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Pod-level context for a non-root workload; `fsGroup` makes volumes writable by `uid`. */
export function restrictedPod(uid: number): k8s.PodSecurityContext {
  return {
    runAsUser: uid,
    runAsGroup: uid,
    fsGroup: uid,
    fsGroupChangePolicy: 'OnRootMismatch',
    runAsNonRoot: true,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/**
 * A volume of Secret values as files, read-only for the pod's group (0440):
 * `files` maps each file name to the Secret and key it comes from. One file
 * is a plain Secret volume; several are projected, so they may come from
 * several Secrets. `optional` files are there only when their Secret holds
 * the key (the kubelet leaves out what an optional source lacks); the
 * others must exist, or the pod does not start.
 */
export function secretFilesVolume(name: string, files: Record<string, SecretRef>, optional: Record<string, SecretRef> = {}): k8s.Volume {
  const entries = Object.entries(files);
  const extra = Object.entries(optional);
  if (entries.length === 1 && extra.length === 0) {
    const [[file, ref]] = entries;
    return { name, secret: { secretName: ref.name, items: [{ key: ref.key, path: file }], defaultMode: 0o440 } };
  }
  const source = ([file, ref]: [string, SecretRef], opt: boolean): k8s.VolumeProjection => ({
    secret: { name: ref.name, items: [{ key: ref.key, path: file }], ...(opt ? { optional: true } : {}) },
  });
  return { name, projected: { defaultMode: 0o440, sources: [...entries.map((e) => source(e, false)), ...extra.map((e) => source(e, true))] } };
}

/**
 * The headless Service of a one-pod StatefulSet: its main port, and its
 * exporter's metrics port when there is one.
 */
export function headlessService(
  scope: Construct,
  p: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    selector: Record<string, string>;
    port: { name: string; number: number };
    metricsPort?: number;
  },
): k8s.KubeService {
  return new k8s.KubeService(scope, 'service', {
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
    spec: {
      clusterIp: 'None',
      selector: p.selector,
      ports: [
        { name: p.port.name, port: p.port.number, targetPort: k8s.IntOrString.fromString(p.port.name) },
        ...(p.metricsPort !== undefined ? [{ name: 'metrics', port: p.metricsPort, targetPort: k8s.IntOrString.fromString('metrics') }] : []),
      ],
    },
  });
}

/** A Prometheus exporter sidecar: small, hardened, ready when it serves `readinessPath`, alive while its port answers. */
export function exporterContainer(p: {
  image: ImageConfig;
  port: number;
  args?: string[];
  env: k8s.EnvVar[];
  readinessPath: string;
  readinessTimeoutSeconds?: number;
  resources: ResourcesConfig;
  volumeMounts?: k8s.VolumeMount[];
}): k8s.Container {
  return {
    name: 'exporter',
    image: imageRef(p.image),
    args: p.args,
    env: p.env,
    ports: [tcpPort('metrics', p.port)],
    resources: resourceRequirements(p.resources),
    securityContext: restrictedContainer(),
    readinessProbe: {
      httpGet: { path: p.readinessPath, port: k8s.IntOrString.fromString('metrics') },
      periodSeconds: 30,
      timeoutSeconds: p.readinessTimeoutSeconds,
    },
    livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 30 },
    volumeMounts: p.volumeMounts,
  };
}

/** A short, stable digest of rendered content, for pod-template annotations that roll pods on change. */
export function contentHash(...parts: unknown[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? p : JSON.stringify(p)).update('\0');
  return h.digest('hex').slice(0, 16);
}

/** The pod-template annotation that carries a config hash. */
export const CONFIG_HASH_ANNOTATION = 'checksum/config';

/** An in-memory scratch volume; programs write here instead of the read-only root. */
export function memoryVolume(name: string, sizeLimit = '64Mi'): k8s.Volume {
  return { name, emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString(sizeLimit) } };
}

export function tcpPort(name: string, port: number): k8s.ContainerPort {
  return { name, containerPort: port, protocol: 'TCP' };
}

/*
 * Scripts shipped to pods through ConfigMaps live in charts/files. The path
 * is spelled from the repository root so it resolves the same from charts/
 * (tests) and from the .build/ bundle (synth).
 */
const FILES_DIR = path.resolve(__dirname, '..', 'charts', 'files');

/** The text of a file in charts/files. */
export function bundledFile(name: string): string {
  return fs.readFileSync(path.join(FILES_DIR, name), 'utf8');
}

export interface ToolPodProps {
  readonly name: string;
  readonly image: ImageConfig;
  /** The ConfigMap holding the scripts, mounted at SCRIPTS_DIR. */
  readonly configMap: string;
  readonly command: string[];
  /** The pod's identity; without one it gets no API token. @default - none */
  readonly serviceAccount?: string;
  readonly env?: k8s.EnvVar[];
  readonly extraVolumes?: k8s.Volume[];
  readonly extraMounts?: k8s.VolumeMount[];
  /** Steps that run before the tool, in order. @default - none */
  readonly initContainers?: k8s.Container[];
  readonly labels: Record<string, string>;
  /** Where the pod may run. @default - anywhere */
  readonly scheduling?: PodScheduling;
}

/** Where kube.py reads an API token and CA: the projected `api-token` volume. */
export const API_TOKEN_DIR = '/var/run/secrets/kudo/serviceaccount';

/**
 * A short-lived token of the pod's ServiceAccount and the cluster CA, as a
 * volume mounted only where the API is called, instead of the token every
 * container gets when the pod automounts one.
 */
export function apiTokenVolume(): k8s.Volume {
  return {
    name: 'api-token',
    projected: {
      defaultMode: 0o440,
      sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3600 } }, { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }],
    },
  };
}

/** The pod of a run-to-completion tool: one hardened Python container running a bundled script. */
export function toolPodTemplate(p: ToolPodProps): k8s.PodTemplateSpec {
  const api = p.serviceAccount !== undefined;
  return {
    metadata: { labels: p.labels },
    spec: withScheduling(
      {
        serviceAccountName: p.serviceAccount,
        automountServiceAccountToken: false,
        restartPolicy: 'Never',
        enableServiceLinks: false,
        securityContext: restrictedPod(UID.synapse),
        initContainers: p.initContainers,
        containers: [
          {
            name: p.name,
            image: imageRef(p.image),
            command: p.command,
            env: [
              { name: 'PYTHONPATH', value: SCRIPTS_DIR },
              { name: 'PYTHONDONTWRITEBYTECODE', value: '1' },
              ...(api ? [{ name: 'SA_DIR', value: API_TOKEN_DIR }] : []),
              ...(p.env ?? []),
            ],
            resources: resourceRequirements({ requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } }),
            securityContext: restrictedContainer(),
            volumeMounts: [
              { name: 'scripts', mountPath: SCRIPTS_DIR, readOnly: true },
              { name: 'tmp', mountPath: '/tmp' },
              ...(api ? [{ name: 'api-token', mountPath: API_TOKEN_DIR, readOnly: true }] : []),
              ...(p.extraMounts ?? []),
            ],
          },
        ],
        volumes: [{ name: 'scripts', configMap: { name: p.configMap } }, memoryVolume('tmp', '16Mi'), ...(api ? [apiTokenVolume()] : []), ...(p.extraVolumes ?? [])],
      },
      p.scheduling,
      p.labels,
    ),
  };
}

/** Where a host-network pod's init step gets its node's public address from, and writes it. */
export interface NodeAddressLookupProps {
  /** Names the ServiceAccount and ClusterRole (`<namespace>-<name>-node-reader`). */
  readonly name: string;
  readonly namespace: string;
  readonly labels: Record<string, string>;
  /** An image with Python 3 (the Synapse image). */
  readonly toolsImage: ImageConfig;
  /** The volume (a ConfigMap) holding node_address.py and kube.py, and where the step mounts it. */
  readonly scripts: { readonly volume: string; readonly path: string };
  /** The in-memory volume the address is written to, where the step mounts it, and the file. */
  readonly output: { readonly volume: string; readonly path: string; readonly file: string };
  /** A fixed address for every node: no lookup, no token. @default - the Node's ExternalIP */
  readonly publicIp?: string;
  /**
   * Write the node's public IPv6 too, after the IPv4 ("<IPv4>,<IPv6>", the form LiveKit's --node-ip takes), where the
   * node has one and no fixed address is given. @default false - one address
   */
  readonly bothFamilies?: boolean;
  /**
   * Each pod advertises its own Service's load-balancer address instead of its node's: the Service is `<prefix><i>`
   * for the pod `<name>-<i>` (a StatefulSet's), one of `names`, which alone the step may read. @default - the node's
   */
  readonly loadBalancers?: { readonly prefix: string; readonly names: readonly string[] };
}

/** What a pod needs for the lookup: its ServiceAccount (when it reads the API), the init step and its volumes. */
export interface NodeAddressLookup {
  readonly serviceAccountName?: string;
  readonly initContainer: k8s.Container;
  readonly volumes: k8s.Volume[];
}

/**
 * The init step that writes a pod's public address (charts/files/node_address.py): the configured one, else the
 * Node's ExternalIP read from the API with a token of its own, mounted in this step only and allowed to `get` nodes
 * and nothing else, else the node's IP; or, with `loadBalancers`, its own Service's load-balancer address
 * (charts/files/load_balancer_address.py), the token allowed to `get` those Services alone.
 */
export function nodeAddressLookup(scope: Construct, p: NodeAddressLookupProps): NodeAddressLookup {
  const lookUp = p.publicIp === undefined;
  const saDir = API_TOKEN_DIR;
  let serviceAccountName: string | undefined;
  const lbs = p.loadBalancers;
  if (lookUp) {
    const sa = new k8s.KubeServiceAccount(scope, 'service-account', {
      metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
      automountServiceAccountToken: false,
    });
    serviceAccountName = sa.name;
    if (lbs !== undefined) {
      readsServices(scope, p, sa.name, lbs.names);
    } else {
      readsNodes(scope, p, sa.name);
    }
  }
  const fromField = (name: string, fieldPath: string): k8s.EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  const env: k8s.EnvVar[] =
    lbs !== undefined
      ? [
          fromField('POD_NAME', 'metadata.name'),
          fromField('POD_NAMESPACE', 'metadata.namespace'),
          { name: 'LOAD_BALANCER_SERVICE_PREFIX', value: lbs.prefix },
          { name: 'SA_DIR', value: saDir },
        ]
      : [fromField('NODE_NAME', 'spec.nodeName'), fromField('NODE_IP', 'status.hostIP'), { name: 'SA_DIR', value: saDir }];
  if (p.publicIp !== undefined) env.push({ name: 'PUBLIC_IP', value: p.publicIp });
  if (p.bothFamilies ?? false) env.push({ name: 'ADDRESS_FAMILIES', value: 'both' });
  return {
    serviceAccountName,
    initContainer: {
      name: 'node-address',
      image: imageRef(p.toolsImage),
      command: ['python3', `${p.scripts.path}/${nodeAddressScript(p)}`, `${p.output.path}/${p.output.file}`],
      env: [{ name: 'PYTHONDONTWRITEBYTECODE', value: '1' }, ...env],
      resources: resourceRequirements({ requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '64Mi' } }),
      securityContext: restrictedContainer(),
      volumeMounts: [
        { name: p.scripts.volume, mountPath: p.scripts.path, readOnly: true },
        { name: p.output.volume, mountPath: p.output.path },
        ...(lookUp ? [{ name: 'api-token', mountPath: saDir, readOnly: true }] : []),
      ],
    },
    volumes: lookUp ? [apiTokenVolume()] : [],
  };
}

/** The script the lookup runs, which the scripts volume must hold beside kube.py. */
export function nodeAddressScript(p: Pick<NodeAddressLookupProps, 'loadBalancers'>): string {
  return p.loadBalancers !== undefined ? 'load_balancer_address.py' : 'node_address.py';
}

/** The lookup's ServiceAccount may `get` nodes, and nothing else (a Node is cluster-wide: a ClusterRole). */
function readsNodes(scope: Construct, p: NodeAddressLookupProps, serviceAccount: string): void {
  const role = new k8s.KubeClusterRole(scope, 'node-reader', {
    metadata: { name: `${p.namespace}-${p.name}-node-reader`, labels: p.labels },
    rules: [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }],
  });
  new k8s.KubeClusterRoleBinding(scope, 'node-reader-binding', {
    metadata: { name: role.name, labels: p.labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.name },
    subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace: p.namespace }],
  });
}

/** The lookup's ServiceAccount may `get` the named Services of its namespace, and nothing else. */
function readsServices(scope: Construct, p: NodeAddressLookupProps, serviceAccount: string, names: readonly string[]): void {
  const role = new k8s.KubeRole(scope, 'load-balancer-reader', {
    metadata: { name: `${p.name}-load-balancer-reader`, namespace: p.namespace, labels: p.labels },
    rules: [{ apiGroups: [''], resources: ['services'], resourceNames: [...names], verbs: ['get'] }],
  });
  new k8s.KubeRoleBinding(scope, 'load-balancer-reader-binding', {
    metadata: { name: role.name, namespace: p.namespace, labels: p.labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.name },
    subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace: p.namespace }],
  });
}
