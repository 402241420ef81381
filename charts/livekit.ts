import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ImageConfig, LIVEKIT_API_PORT, LIVEKIT_METRICS_PORT, ResourcesConfig, SecretRef, TURN_PORT, TURN_TLS_PORT } from './config';
import {
  bundledFile,
  CONFIG_HASH_ANNOTATION,
  contentHash,
  imageRef,
  labels,
  memoryVolume,
  NodeAddressLookup,
  nodeAddressLookup,
  nodeAddressScript,
  resourceRequirements,
  restrictedContainer,
  restrictedPod,
  secretFilesVolume,
  selectorLabels,
  tcpPort,
  UID,
} from './common';
import { PodScheduling, withScheduling } from './pods';
import { setSyncWave, WAVE } from './argocd';
import { exposeHttp, hostCertificate, IngressSettings, IssuerRef } from './tls';
import { toYaml } from './render/yaml-out';

/** LiveKit's identity. */
export const LIVEKIT = { name: 'livekit', component: 'sfu' } as const;
export const LIVEKIT_TLS_SECRET = 'livekit-tls';
export const LIVEKIT_CONFIG_DIR = '/etc/livekit';
/** In memory: what the init steps write (key file, config with the Redis password, node address). */
export const LIVEKIT_RUN_DIR = '/run/livekit';
export const LIVEKIT_KEY_FILE = `${LIVEKIT_RUN_DIR}/keys.yaml`;
export const LIVEKIT_RUN_CONFIG = `${LIVEKIT_RUN_DIR}/config.yaml`;
export const LIVEKIT_NODE_IP_FILE = `${LIVEKIT_RUN_DIR}/node-ip`;
export const LIVEKIT_TURN_SECRET_FILE = '/secrets/turn/shared_secret';
/** The built-in TURN's certificate (livekit.turn): cert-manager's Secret, and where LiveKit reads it. */
export const LIVEKIT_TURN_TLS_SECRET = 'livekit-turn-tls';
export const LIVEKIT_TURN_TLS_DIR = '/tls/turn';
/** The port LiveKit tells clients to reach its TURN over TLS on, whatever turn.tls_port is (roommanager.go). */
export const LIVEKIT_TURN_ADVERTISED_TLS_PORT = 443;
/** The Service clients reach the built-in TURN over TLS through. */
export const LIVEKIT_TURN_SERVICE = 'livekit-turn';
/**
 * Optional keys beside the API key and secret in their Secrets: a second pair LiveKit accepts too, for rotating the
 * main pair with an overlap (docs/operations.md, "Rotating secrets"). Tokens are signed with the main pair only (the bootstrap
 * hands the app that one).
 */
export const LIVEKIT_SECOND_PAIR = { key: 'second_api_key', secret: 'second_api_secret' } as const;
/** Rooms drain on SIGTERM: LiveKit waits for the last participant. Calls rarely outlast this. */
export const LIVEKIT_DRAIN_SECONDS = 5 * 60 * 60;

export interface LiveKitRtc {
  readonly tcpPort: number;
  /** UDP mux port; when unset the port range is used. */
  readonly udpPort?: number;
  readonly portRangeStart: number;
  readonly portRangeEnd: number;
  /**
   * What LiveKit advertises: the Node's ExternalIP (looked up at start), the node's own IP, what STUN says, or (hostNetwork
   * false) its own Service's load-balancer address, each replica's Service then a LoadBalancer.
   */
  readonly nodeAddress: 'node-external-ip' | 'host-ip' | 'stun' | 'load-balancer';
  /** A fixed address instead of the lookup. @default - the Node's ExternalIP */
  readonly publicIp?: string;
  /** For nodeAddress stun. */
  readonly stunServers: readonly string[];
}

export interface LiveKitProps extends ChartProps {
  readonly namespace: string;
  readonly image: ImageConfig;
  readonly resources: ResourcesConfig;
  readonly replicas: number;
  /** Public host of the API/WebSocket endpoint (behind the Ingress). */
  readonly host: string;
  /** host:port of Redis. @default - no Redis: one LiveKit node, rooms in its memory */
  readonly redisAddress?: string;
  readonly rtc: LiveKitRtc;
  /** coturn: the TURN host clients are sent to, and the credential lifetime in seconds. @default - no coturn (builtInTurn) */
  readonly turn?: { readonly host: string; readonly ttlSeconds: number };
  /**
   * LiveKit's own TURN (hostNetwork false only): UDP at each replica's node address on udpPort + i, TLS in the pod on
   * tlsPort behind a LoadBalancer Service on 443, with a certificate for `domain` from the issuer. @default - off
   */
  readonly builtInTurn?: {
    readonly domain: string;
    readonly udpPort: number;
    readonly tlsPort: number;
    readonly issuer: IssuerRef;
  };
  readonly secrets: {
    readonly apiKey: SecretRef;
    readonly apiSecret: SecretRef;
    readonly redisPassword: SecretRef;
    readonly turnSharedSecret: SecretRef;
  };
  readonly ingress: IngressSettings;
  /** @default - any node */
  readonly nodeSelector?: Record<string, string>;
  /** An image with Python 3 (the Synapse image), for the node-address lookup. */
  readonly toolsImage: ImageConfig;
  /** Where its pods may run, beyond what the chart sets. @default - anywhere the chart allows */
  readonly scheduling?: PodScheduling;
  /**
   * false: an ordinary pod (Pod Security `restricted`) in a StatefulSet, each replica behind a NodePort Service of
   * its own on rtc.udpPort + i and rtc.tcpPort + i, which config validation requires. @default true - the node's network
   */
  readonly hostNetwork?: boolean;
}

/**
 * LiveKit's config.yaml. Only keys LiveKit knows (it refuses unknown keys)
 * and no secrets: the API keys come from `key_file`, the TURN secret from
 * `secret_file`, and the Redis password is appended at start (livekitWriteConfig),
 * which is why `redis` must stay the last mapping.
 */
export function livekitConfigFile(p: LiveKitProps): string {
  const rtc: Record<string, unknown> = {
    tcp_port: p.rtc.tcpPort,
    // Only STUN needs the internet; otherwise the address comes with --node-ip.
    use_external_ip: p.rtc.nodeAddress === 'stun',
  };
  if (p.rtc.nodeAddress === 'stun') rtc.stun_servers = [...p.rtc.stunServers];
  if (p.rtc.udpPort !== undefined) {
    rtc.udp_port = p.rtc.udpPort;
  } else {
    rtc.port_range_start = p.rtc.portRangeStart;
    rtc.port_range_end = p.rtc.portRangeEnd;
  }
  // LiveKit mints short-lived TURN REST credentials for coturn from the shared secret.
  if (p.turn !== undefined) {
    rtc.turn_servers = [
      { host: p.turn.host, port: TURN_PORT, protocol: 'udp', secret_file: LIVEKIT_TURN_SECRET_FILE, ttl: p.turn.ttlSeconds },
      { host: p.turn.host, port: TURN_TLS_PORT, protocol: 'tls', secret_file: LIVEKIT_TURN_SECRET_FILE, ttl: p.turn.ttlSeconds },
    ];
  }
  const own = p.builtInTurn;
  const config = {
    port: LIVEKIT_API_PORT,
    log_level: 'info',
    key_file: LIVEKIT_KEY_FILE,
    rtc,
    // coturn is the TURN server, or LiveKit's own: over UDP at the node's address (the start script sets each replica's
    // port), over TLS with cert-manager's certificate, read once at start.
    turn:
      own !== undefined
        ? {
            enabled: true,
            domain: own.domain,
            udp_port: own.udpPort,
            tls_port: own.tlsPort,
            cert_file: `${LIVEKIT_TURN_TLS_DIR}/tls.crt`,
            key_file: `${LIVEKIT_TURN_TLS_DIR}/tls.key`,
            external_tls: false,
          }
        : { enabled: false },
    prometheus: { port: LIVEKIT_METRICS_PORT },
    // Last: the start step appends "  password: ..." to this mapping.
    ...(p.redisAddress !== undefined ? { redis: { address: p.redisAddress } } : {}),
  };
  return toYaml(config);
}

/**
 * The init step that turns the mounted Secrets into LiveKit's files, in
 * memory and readable by LiveKit only: the key file (`key: secret`, as
 * LiveKit requires; with the second pair when the Secrets hold one) and the
 * config with the Redis password (LiveKit reads it from its config or an
 * environment variable only), quoted for YAML. `secrets` names the Secrets
 * of the API key and secret, for its messages.
 */
export function livekitWriteConfig(withRedis: boolean, secrets: { readonly key: string; readonly secret: string }): string {
  const [key, secret] = [`/keys/${LIVEKIT_SECOND_PAIR.key}`, `/keys/${LIVEKIT_SECOND_PAIR.secret}`];
  const [keyName, secretName] = [`${secrets.key}[${LIVEKIT_SECOND_PAIR.key}]`, `${secrets.secret}[${LIVEKIT_SECOND_PAIR.secret}]`];
  return [
    'set -eu',
    'umask 077',
    `printf '"%s": "%s"\\n' "$(cat /keys/api_key)" "$(cat /keys/api_secret)" > ${LIVEKIT_KEY_FILE}`,
    // Refused rather than left out: a half-written pair would leave LiveKit refusing the tokens the procedure is about
    // to hand out, with nothing to say why; and one key ID twice is a YAML error LiveKit reports less plainly.
    `if [ -s ${key} ] || [ -s ${secret} ]; then`,
    `  if [ ! -s ${key} ] || [ ! -s ${secret} ]; then echo '${keyName} and ${secretName}: set both or neither' >&2; exit 1; fi`,
    `  if [ "$(cat ${key})" = "$(cat /keys/api_key)" ]; then echo '${keyName}: must differ from ${secrets.key}[api_key]' >&2; exit 1; fi`,
    `  printf '"%s": "%s"\\n' "$(cat ${key})" "$(cat ${secret})" >> ${LIVEKIT_KEY_FILE}`,
    'fi',
    ...(withRedis
      ? [
          `pw=$(sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g' /keys/redis_password)`,
          `{ cat ${LIVEKIT_CONFIG_DIR}/config.yaml; printf '  password: "%s"\\n' "$pw"; } > ${LIVEKIT_RUN_CONFIG}`,
        ]
      : [`cp ${LIVEKIT_CONFIG_DIR}/config.yaml ${LIVEKIT_RUN_CONFIG}`]),
  ].join('\n');
}

const LIVEKIT_CONTAINER = 'livekit';
const MEMORY_LIMIT_ENV = 'MEMORY_LIMIT_MIB';

/** The main container: the written config, the node's address when one was looked up, API bound to the node's cluster address. */
/**
 * LiveKit's start script: `args` are its options (the config file and the listening ones), after the lines in
 * `before`; the node's address from the lookup step, when there is one.
 */
function livekitStartScript(args: string, before: readonly string[] = []): string {
  return [
    'set -eu',
    // Go's collector does not know the container's memory limit: without a soft limit below it, the heap of a busy
    // node grows to twice what it holds and the kernel kills LiveKit (npm run bench:capacity saw it at 1 GiB).
    `export GOMEMLIMIT="$((${MEMORY_LIMIT_ENV} * 9 / 10))MiB"`,
    ...before,
    `set -- ${args}`,
    `if [ -s ${LIVEKIT_NODE_IP_FILE} ]; then set -- "$@" --node-ip "$(cat ${LIVEKIT_NODE_IP_FILE})"; fi`,
    // The image keeps its binary at /livekit-server (its ENTRYPOINT), and / is not on Alpine's PATH: by name, sh
    // answers "not found" (docs/image-contract.yaml).
    'exec /livekit-server "$@"',
  ].join('\n');
}

/** On the host network: listen on the node's cluster address only, not on every address the node has. */
export const LIVEKIT_START = livekitStartScript(`--config ${LIVEKIT_RUN_CONFIG} --bind "$HOST_IP"`);

/** Where a StatefulSet replica's ordinal comes from: its pod name, livekit-<i>. */
const POD_NAME_ENV = 'POD_NAME';

/**
 * The main container with livekit.hostNetwork false: replica i listens on the UDP mux port and the TCP port its own
 * Service exposes (the first replica's plus i), on every address of its pod, and advertises the node's address.
 */
export function livekitPodStart(rtc: { readonly udpPort: number; readonly tcpPort: number }, turnUdpPort?: number): string {
  // The candidates carry the port LiveKit listens on, and clients reach the NodePort: so the two are one number.
  // So does the UDP TURN URL LiveKit hands out (turn:<node address>:<turn.udp_port>).
  const turn = turnUdpPort !== undefined ? ` --turn.udp_port "$((${turnUdpPort} + i))"` : '';
  return livekitStartScript(`--config ${LIVEKIT_RUN_CONFIG} --udp-port "$((${rtc.udpPort} + i))" --rtc.tcp_port "$((${rtc.tcpPort} + i))"${turn}`, [`i=\${${POD_NAME_ENV}##*-}`]);
}

const LIVEKIT_REPLICA_SERVICE_PREFIX = 'livekit-rtc-';

/** The Service replica i of the StatefulSet is reached by from outside: its own NodePorts (or load balancer), the client's address kept. */
export function livekitReplicaServiceName(i: number): string {
  return `${LIVEKIT_REPLICA_SERVICE_PREFIX}${i}`;
}

/** The LiveKit pod: the address lookup and config steps, then LiveKit on the node's network (or its own, hostNetwork false). */
function livekitPodSpec(props: LiveKitProps, v: { configMap: string; address?: NodeAddressLookup }): k8s.PodSpec {
  const s = props.secrets;
  const component = LIVEKIT;
  const address = v.address;
  const hostNetwork = props.hostNetwork ?? true;
  const memoryLimit: k8s.EnvVar = {
    name: MEMORY_LIMIT_ENV,
    valueFrom: { resourceFieldRef: { containerName: LIVEKIT_CONTAINER, resource: 'limits.memory', divisor: k8s.Quantity.fromString('1Mi') } },
  };
  const env: k8s.EnvVar[] = hostNetwork
    ? [
        // For `--bind`: on the host network, listen on the node's cluster address
        // only, not on every address the node has (public ones included).
        { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
        // For GOMEMLIMIT (the start script): the container's memory limit in MiB.
        memoryLimit,
      ]
    : [{ name: POD_NAME_ENV, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }, memoryLimit];
  // host-ip: advertise the node's own address (LiveKit reads NODE_IP itself).
  if (props.rtc.nodeAddress === 'host-ip') env.push({ name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
  // Off the host network each replica has ports of its own (the start script), which one template cannot list.
  const ports = hostNetwork
    ? [tcpPort('http', LIVEKIT_API_PORT), tcpPort('rtc-tcp', props.rtc.tcpPort), tcpPort('metrics', LIVEKIT_METRICS_PORT)]
    : [tcpPort('http', LIVEKIT_API_PORT), tcpPort('metrics', LIVEKIT_METRICS_PORT)];
  const own = props.builtInTurn;
  if (own !== undefined) ports.push(tcpPort('turns', own.tlsPort));
  if (hostNetwork && props.rtc.udpPort !== undefined) ports.push({ name: 'rtc-udp', containerPort: props.rtc.udpPort, protocol: 'UDP' });
  const spread = { labelSelector: { matchLabels: selectorLabels(component) }, topologyKey: 'kubernetes.io/hostname' };
  let command = LIVEKIT_START;
  if (!hostNetwork) {
    if (props.rtc.udpPort === undefined) throw new Error("livekit: hostNetwork false needs rtc.udpPort (the first replica's NodePort)");
    command = livekitPodStart({ udpPort: props.rtc.udpPort, tcpPort: props.rtc.tcpPort }, own?.udpPort);
  } else if (own !== undefined) {
    throw new Error('livekit: builtInTurn needs hostNetwork false (clients are sent to its TLS port on 443, which a Service maps)');
  }

  return {
    ...(hostNetwork ? { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' } : {}),
    serviceAccountName: address?.serviceAccountName,
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    nodeSelector: props.nodeSelector,
    affinity: {
      // Host ports allow one LiveKit per node; its own ports do not, but a node lost should end few rooms.
      podAntiAffinity: hostNetwork
        ? { requiredDuringSchedulingIgnoredDuringExecution: [spread] }
        : { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: spread }] },
    },
    securityContext: restrictedPod(UID.livekit),
    terminationGracePeriodSeconds: LIVEKIT_DRAIN_SECONDS,
    initContainers: [
      ...(address ? [address.initContainer] : []),
      {
        name: 'config',
        image: imageRef(props.image),
        command: ['sh', '-c', livekitWriteConfig(props.redisAddress !== undefined, { key: s.apiKey.name, secret: s.apiSecret.name })],
        resources: resourceRequirements({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } }),
        securityContext: restrictedContainer(),
        volumeMounts: [
          { name: 'config', mountPath: LIVEKIT_CONFIG_DIR, readOnly: true },
          { name: 'secrets', mountPath: '/keys', readOnly: true },
          { name: 'run', mountPath: LIVEKIT_RUN_DIR },
        ],
      },
    ],
    containers: [
      {
        name: LIVEKIT_CONTAINER,
        image: imageRef(props.image),
        command: ['sh', '-c', command],
        env,
        ports,
        resources: resourceRequirements(props.resources),
        securityContext: restrictedContainer(),
        startupProbe: { tcpSocket: { port: k8s.IntOrString.fromString('http') }, periodSeconds: 2, failureThreshold: 30 },
        readinessProbe: { httpGet: { path: '/', port: k8s.IntOrString.fromString('http') }, periodSeconds: 5, failureThreshold: 3 },
        // TCP, not HTTP: a Redis outage makes `/` answer 406 on every node at
        // once, and an HTTP liveness probe would then restart the whole fleet.
        livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('http') }, periodSeconds: 10, failureThreshold: 6 },
        volumeMounts: [
          ...(props.turn !== undefined ? [{ name: 'turn-secret', mountPath: '/secrets/turn', readOnly: true }] : []),
          ...(own !== undefined ? [{ name: 'turn-tls', mountPath: LIVEKIT_TURN_TLS_DIR, readOnly: true }] : []),
          { name: 'run', mountPath: LIVEKIT_RUN_DIR, readOnly: true },
          { name: 'tmp', mountPath: '/tmp' },
        ],
      },
    ],
    volumes: [
      { name: 'config', configMap: { name: v.configMap } },
      // For the config step only.
      secretFilesVolume(
        'secrets',
        {
          api_key: s.apiKey,
          api_secret: s.apiSecret,
          ...(props.redisAddress !== undefined ? { redis_password: s.redisPassword } : {}),
        },
        {
          [LIVEKIT_SECOND_PAIR.key]: { name: s.apiKey.name, key: LIVEKIT_SECOND_PAIR.key },
          [LIVEKIT_SECOND_PAIR.secret]: { name: s.apiSecret.name, key: LIVEKIT_SECOND_PAIR.secret },
        },
      ),
      // LiveKit checks that others cannot read it; group-readable (for fsGroup) is fine.
      ...(props.turn !== undefined ? [secretFilesVolume('turn-secret', { shared_secret: s.turnSharedSecret })] : []),
      // Not optional: LiveKit refuses to start without it, and the pod waits for cert-manager instead of crash-looping.
      ...(own !== undefined ? [{ name: 'turn-tls', secret: { secretName: LIVEKIT_TURN_TLS_SECRET, defaultMode: 0o440 } }] : []),
      memoryVolume('run', '1Mi'),
      memoryVolume('tmp', '16Mi'),
      ...(address?.volumes ?? []),
    ],
  };
}

/**
 * LiveKit SFU on the node's network.
 *
 * Host networking (as livekit-helm does) rather than a UDP Service: WebRTC
 * needs each node's own public address and ports in its ICE candidates, a
 * Service would put a NAT in between and a LoadBalancer for a UDP range is
 * rarely offered. So one pod per node, a rolling update that frees a node
 * before reusing it, and the API reached through an Ingress.
 *
 * With `hostNetwork: false`, for clusters that forbid host networking: one UDP
 * mux port and one TCP port per replica, each replica behind a NodePort
 * Service of its own (replicasOwnNetwork).
 */
export class LiveKitChart extends Chart {
  constructor(scope: Construct, id: string, props: LiveKitProps) {
    // No chart namespace: cdk8s would put it on the node-reader ClusterRole too.
    super(scope, id, { ...props, namespace: undefined });
    const component = { ...LIVEKIT, version: props.image.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    const lookUp = props.rtc.nodeAddress === 'node-external-ip' || props.rtc.nodeAddress === 'load-balancer';
    const loadBalancers =
      props.rtc.nodeAddress === 'load-balancer'
        ? { prefix: LIVEKIT_REPLICA_SERVICE_PREFIX, names: Array.from({ length: props.replicas }, (_, i) => livekitReplicaServiceName(i)) }
        : undefined;
    const files: Record<string, string> = { 'config.yaml': livekitConfigFile(props) };
    const script = nodeAddressScript({ loadBalancers });
    if (lookUp) Object.assign(files, { [script]: bundledFile(script), 'kube.py': bundledFile('kube.py') });
    const config = new k8s.KubeConfigMap(this, 'config', { metadata: { name: 'livekit-config', ...meta }, data: files });

    const address = lookUp
      ? nodeAddressLookup(this, {
          name: 'livekit',
          namespace: props.namespace,
          labels: labels(component),
          toolsImage: props.toolsImage,
          publicIp: props.rtc.publicIp,
          // LiveKit gathers host candidates of both families and maps each to the node's address of its family.
          bothFamilies: true,
          loadBalancers,
          scripts: { volume: 'config', path: LIVEKIT_CONFIG_DIR },
          output: { volume: 'run', path: LIVEKIT_RUN_DIR, file: 'node-ip' },
        })
      : undefined;

    const template = {
      metadata: { labels: labels(component), annotations: { [CONFIG_HASH_ANNOTATION]: contentHash(files) } },
      spec: withScheduling(livekitPodSpec(props, { configMap: config.name, address }), props.scheduling, selectorLabels(component)),
    };
    const workload =
      (props.hostNetwork ?? true)
        ? new k8s.KubeDeployment(this, 'deployment', {
            metadata: { name: 'livekit', ...meta },
            spec: {
              replicas: props.replicas,
              selector: { matchLabels: selectorLabels(component) },
              // Host ports: a new pod cannot start on a node until the old one is gone.
              strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: k8s.IntOrString.fromNumber(0), maxUnavailable: k8s.IntOrString.fromNumber(1) } },
              template,
            },
          })
        : this.replicasOwnNetwork(props, meta, template);

    // Last, with the routes: a LiveKit short of nodes must not hold up Synapse or the app's credentials.
    setSyncWave(workload, WAVE.edge);

    if (props.replicas > 1) {
      // Drains take one node's LiveKit at a time, so the others keep rooms going.
      // (With one replica a budget would block every drain, so there is none.)
      new k8s.KubePodDisruptionBudget(this, 'disruption-budget', {
        metadata: { name: 'livekit', ...meta },
        spec: { maxUnavailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: selectorLabels(component) } },
      });
    }

    const service = new k8s.KubeService(this, 'service', {
      metadata: { name: 'livekit', ...meta },
      spec: {
        selector: selectorLabels(component),
        ports: [
          { name: 'http', port: LIVEKIT_API_PORT, targetPort: k8s.IntOrString.fromString('http') },
          { name: 'metrics', port: LIVEKIT_METRICS_PORT, targetPort: k8s.IntOrString.fromString('metrics') },
        ],
      },
    });

    exposeHttp(this, 'ingress', {
      name: 'livekit',
      namespace: props.namespace,
      labels: labels(component),
      host: props.host,
      tlsSecret: LIVEKIT_TLS_SECRET,
      backends: [{ path: '/', service: service.name, port: LIVEKIT_API_PORT }],
      settings: props.ingress,
      // Signalling is one long-lived WebSocket per participant: an hour before an idle one is cut.
      options: { websocketTimeoutSeconds: 3600 },
    });
  }

  /**
   * hostNetwork false: a StatefulSet, for pod names that say which replica a pod is (livekit-<i>), and per replica a
   * NodePort Service that selects that pod alone. A client must reach each replica at the address and port that
   * replica advertises, so one Service in front of all of them would not do; `externalTrafficPolicy: Local` keeps
   * the client's address (no SNAT) and sends a node's NodePort only to a pod on that node, the one advertising it.
   */
  private replicasOwnNetwork(props: LiveKitProps, meta: { namespace: string; labels: Record<string, string> }, template: k8s.PodTemplateSpec): k8s.KubeStatefulSet {
    const component = { ...LIVEKIT, version: props.image.tag };
    const udpPort = props.rtc.udpPort!;
    const own = props.builtInTurn;
    if (own !== undefined) this.builtInTurn(meta, own);
    for (let i = 0; i < props.replicas; i++) {
      new k8s.KubeService(this, `rtc-${i}`, {
        metadata: { name: livekitReplicaServiceName(i), ...meta },
        spec: {
          // A load balancer's address, or (the default) each node's own: what the replica advertises.
          type: props.rtc.nodeAddress === 'load-balancer' ? 'LoadBalancer' : 'NodePort',
          // Clients reach it: on a dual-stack cluster kube-proxy serves the NodePort on the nodes' IPv6 addresses too
          // only when the Service has that family. The families and their order are the cluster's (no ipFamilies).
          ipFamilyPolicy: 'PreferDualStack',
          externalTrafficPolicy: 'Local',
          // Readiness is LiveKit's GET /, which a Redis outage fails on every replica at once: ongoing calls keep
          // their route to the replica while it is unready (the API Service still sends new participants elsewhere).
          publishNotReadyAddresses: true,
          selector: { ...selectorLabels(component), 'statefulset.kubernetes.io/pod-name': `livekit-${i}` },
          ports: [
            { name: 'rtc-udp', protocol: 'UDP', port: udpPort + i, targetPort: k8s.IntOrString.fromNumber(udpPort + i), nodePort: udpPort + i },
            { name: 'rtc-tcp', protocol: 'TCP', port: props.rtc.tcpPort + i, targetPort: k8s.IntOrString.fromNumber(props.rtc.tcpPort + i), nodePort: props.rtc.tcpPort + i },
            ...(own !== undefined
              ? [{ name: 'turn-udp', protocol: 'UDP', port: own.udpPort + i, targetPort: k8s.IntOrString.fromNumber(own.udpPort + i), nodePort: own.udpPort + i }]
              : []),
          ],
        },
      });
    }
    // The StatefulSet's governing Service: headless, it gives each replica a DNS name (livekit-<i>.livekit-pods).
    const pods = new k8s.KubeService(this, 'pods', {
      metadata: { name: 'livekit-pods', ...meta },
      spec: {
        clusterIp: 'None',
        selector: selectorLabels(component),
        ports: [{ name: 'http', port: LIVEKIT_API_PORT, targetPort: k8s.IntOrString.fromString('http') }],
      },
    });
    return new k8s.KubeStatefulSet(this, 'statefulset', {
      metadata: { name: 'livekit', ...meta },
      spec: {
        serviceName: pods.name,
        replicas: props.replicas,
        // Each replica is independent (rooms are shared through Redis): no need to start them one by one.
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: selectorLabels(component) },
        updateStrategy: { type: 'RollingUpdate' },
        template,
      },
    });
  }
  /**
   * The built-in TURN's certificate and the Service clients reach its TLS port through on 443. One Service for every
   * replica: a replica's TURN relays to the media port of any replica at a public address, so the connection may land
   * on any of them (not on another replica of the same node: LiveKit relays to its own media ports only on its own
   * addresses). LiveKit reads the certificate at start only (docs/livekit-without-host-network.md, "TURN's certificate").
   */
  private builtInTurn(meta: { namespace: string; labels: Record<string, string> }, own: NonNullable<LiveKitProps['builtInTurn']>): void {
    hostCertificate(this, 'turn-certificate', { name: LIVEKIT_TURN_TLS_SECRET, ...meta, host: own.domain, issuer: own.issuer });
    new k8s.KubeService(this, 'turn', {
      metadata: { name: LIVEKIT_TURN_SERVICE, ...meta },
      spec: {
        type: 'LoadBalancer',
        // An IPv6 load-balancer address too, where the cluster and its provider have both families.
        ipFamilyPolicy: 'PreferDualStack',
        selector: selectorLabels(LIVEKIT),
        ports: [{ name: 'turns', protocol: 'TCP', port: LIVEKIT_TURN_ADVERTISED_TLS_PORT, targetPort: k8s.IntOrString.fromString('turns') }],
      },
    });
  }
}
