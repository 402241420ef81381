import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ImageConfig, ResourcesConfig, SecretRef, TURN_METRICS_PORT, TURN_PORT, TURN_TLS_PORT } from './config';
import {
  bundledFile,
  CONFIG_HASH_ANNOTATION,
  contentHash,
  imageRef,
  labels,
  memoryVolume,
  nodeAddressLookup,
  resourceRequirements,
  restrictedContainer,
  restrictedPod,
  secretFilesVolume,
  selectorLabels,
  tcpPort,
  UID,
} from './common';
import { PodScheduling, withScheduling } from './pods';
import { hostCertificate, IssuerRef } from './tls';
import { setSyncWave, WAVE } from './argocd';

/**
 * Optional key beside the shared secret in coturn's Secret: a second secret coturn accepts too, for rotating the
 * shared secret with an overlap (docs/operations.md, "Rotating secrets"). Synapse and LiveKit sign with the main one only.
 */
export const TURN_SECOND_SECRET = 'second_shared_secret';

/** The Secret cert-manager writes the TURN host's certificate to. */
export const COTURN_TLS_SECRET = 'coturn-tls';

/** TURNS's TLS 1.2 suites (ECDHE-ECDSA with AES-GCM or ChaCha20-Poly1305; no CBC) and TLS 1.3 suites, in OpenSSL's names. */
const TURN_TLS_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
];

/**
 * Peer addresses a TURN client must never reach through the relay: private,
 * shared, loopback, link-local, documentation, benchmark and reserved
 * ranges (the list Synapse's TURN guide recommends), as CIDRs.
 */
export const DENIED_PEER_CIDRS = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::1/128',
  '::ffff:0:0/96',
  '64:ff9b::/96',
  '100::/64',
  '2001::/23',
  '2002::/16',
  'fc00::/7',
  'fe80::/10',
  // Beyond that list, from IANA's IPv6 special-purpose registry and older prefixes a network may still route: NAT64's
  // local-use prefix (an IPv4 peer, as 64:ff9b::/96), the dummy prefix, both documentation prefixes, SRv6 SIDs,
  // site-local and multicast (denied here too, not only by no-multicast-peers). Not :: nor the IPv4-compatible ::/96,
  // seen with coturn 4.18: it compares an IPv4 peer with an IPv6 range as ::a.b.c.d, so ::/96 denies every IPv4 peer,
  // and a "::" line denies every IPv6 peer; coturn refuses the peer :: itself.

  '64:ff9b:1::/48',
  '100:0:0:1::/64',
  '2001:db8::/32',
  '3fff::/20',
  '5f00::/16',
  'fec0::/10',
  'ff00::/8',
];

/**
 * coturn takes ranges as "first-last", not CIDR. It does not refuse a
 * malformed line: it logs an error and skips it, leaving that range open to
 * relaying, so the ranges are computed and tested here rather than typed.
 */
export function cidrToRange(cidr: string): string {
  const [addr, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  const v6 = addr.includes(':');
  const width = v6 ? 128 : 32;
  if (!Number.isInteger(bits) || bits < 0 || bits > width) throw new Error(`invalid CIDR "${cidr}"`);
  const value = v6 ? parseIpv6(addr) : parseIpv4(addr);
  const hostMask = (1n << BigInt(width - bits)) - 1n;
  if ((value & hostMask) !== 0n) throw new Error(`CIDR "${cidr}" has host bits set`);
  const format = v6 ? formatIpv6 : formatIpv4;
  return bits === width ? format(value) : `${format(value)}-${format(value | hostMask)}`;
}

function parseIpv4(a: string): bigint {
  const parts = a.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`invalid IPv4 address "${a}"`);
  return parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n);
}

function formatIpv4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
}

function parseIpv6(a: string): bigint {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const left = head ? head.split(':') : [];
  const right = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/i.test(g))) throw new Error(`invalid IPv6 address "${a}"`);
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function formatIpv6(v: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((v >> BigInt((7 - i) * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups, as in RFC 5952.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}

export interface CoturnProps extends ChartProps {
  readonly namespace: string;
  readonly image: ImageConfig;
  /** Image with Python 3, for the step that looks up the node's public address. */
  readonly toolsImage: ImageConfig;
  readonly resources: ResourcesConfig;
  /** The TURN host name; also the realm and the certificate's name. */
  readonly host: string;
  readonly nodeSelector: Record<string, string>;
  /** Public IPv4 of every TURN node. @default - each node's ExternalIP, read from the API */
  readonly publicIp?: string;
  readonly relayPorts: { readonly min: number; readonly max: number };
  readonly userQuota: number;
  readonly totalQuota: number;
  /** Peer ranges denied besides DENIED_PEER_CIDRS, as CIDRs. @default - none */
  readonly extraDeniedPeerIps?: readonly string[];
  /** The lowest TLS version of the TURNS listener. @default '1.2' (coturn's own minimum with OpenSSL 3) */
  readonly tlsMinVersion?: '1.2' | '1.3';
  readonly turnSharedSecret: SecretRef;
  readonly issuer: IssuerRef;
  /** Where its pods may run, beyond what the chart sets. @default - anywhere the chart allows */
  readonly scheduling?: PodScheduling;
}

/** An extra denied range; a CIDR with host bits set is refused rather than widened or narrowed. */
function extraRange(cidr: string): string {
  try {
    return cidrToRange(cidr);
  } catch (e) {
    throw new Error(`coturn.extraDeniedPeerIps: ${(e as Error).message.replace(/^invalid /, 'not a ')}`, { cause: e });
  }
}

/** turnserver.conf without secrets or node addresses (the start script adds those). Comments on their own lines only. */
export function turnserverConf(p: CoturnProps): string {
  const lines = [
    '# Rendered by kudo; the start script appends static-auth-secret,',
    '# external-ip, listening-ip and relay-ip for the node it runs on, and',
    '# cert and pkey once cert-manager has issued the certificate.',
    '# First: whatever coturn says before this line would go to a log file of its own.',
    'log-file=stdout',
    `listening-port=${TURN_PORT}`,
    `tls-listening-port=${TURN_TLS_PORT}`,
    `min-port=${p.relayPorts.min}`,
    `max-port=${p.relayPorts.max}`,
    `realm=${p.host}`,
    `server-name=${p.host}`,
    '# TURN REST credentials: user names are expiry timestamps signed with the shared secret.',
    'use-auth-secret',
    'fingerprint',
    '# Relay UDP only, to public unicast peers only.',
    'no-tcp-relay',
    'no-multicast-peers',
    ...DENIED_PEER_CIDRS.map((c) => `denied-peer-ip=${cidrToRange(c)}`),
    ...(p.extraDeniedPeerIps ?? []).map((c) => `denied-peer-ip=${extraRange(c)}`),
    `user-quota=${p.userQuota}`,
    `total-quota=${p.totalQuota}`,
    'stale-nonce=600',
    '# STUN NAT-behaviour discovery (RFC 5780) can be used for amplification.',
    'no-rfc5780',
    // TLS 1.0 and 1.1 are off already: coturn enables them only with tlsv1/tlsv1_1, and OpenSSL 3 allows them only at security level 0.
    ...((p.tlsMinVersion ?? '1.2') === '1.3' ? ['# TURNS: TLS 1.3 only.', 'no-tlsv1_2'] : []),
    '# TURNS: TLS 1.2 with forward secrecy and an AEAD cipher only (the certificate is ECDSA), and the TLS 1.3 suites:',
    '# coturn gives this one list to OpenSSL for both versions.',
    `cipher-list=${TURN_TLS_CIPHERS.join(':')}`,
    'pidfile=/run/coturn/turnserver.pid',
    '# coturn opens its SQLite user database even with use-auth-secret; keep it off the read-only root.',
    'userdb=/run/coturn/turndb',
    '# Metrics, on the port the DaemonSet, its Service and the firewall list name.',
    'prometheus',
    `prometheus-port=${TURN_METRICS_PORT}`,
    '',
  ];
  return lines.join('\n');
}

/**
 * coturn on every node labelled for TURN, on the node's network. The
 * certificate for the TURN host comes from cert-manager and is reloaded
 * in place when it renews.
 */
/**
 * The coturn container's context: the restricted one, with NET_BIND_SERVICE kept in the capability bounding set.
 *
 * Why: the coturn image gives /usr/bin/turnserver the file capability cap_net_bind_service=+ep (so that it may bind
 * low ports as nobody). The kernel refuses to exec a binary whose file-permitted capabilities are not all in the
 * bounding set, and `drop: [ALL]` empties it: the container would crash-loop with "Operation not permitted"
 * (coturn/coturn#1126, #994).
 *
 * The trade-off, against the alternative of an image without the file capability (which users would have to build
 * and keep patched themselves): what is added is exactly one capability, the only one Pod Security's `restricted`
 * level allows adding. No privilege is gained by it: the pod runs as a non-root uid with no_new_privs
 * (allowPrivilegeEscalation: false), under which the kernel does not raise file capabilities at exec, and the ports
 * coturn binds (3478, 5349, the relay range, metrics) are all above 1024. On the host network a process holding it
 * could bind the node's ports below 1024; this one cannot acquire it.
 */
export function coturnSecurityContext(): k8s.SecurityContext {
  return { ...restrictedContainer(), capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } };
}

export class CoturnChart extends Chart {
  constructor(scope: Construct, id: string, props: CoturnProps) {
    // No chart namespace: cdk8s would put it on the ClusterRole and its binding too.
    // Every namespaced object below names its namespace itself.
    super(scope, id, { ...props, namespace: undefined });
    const component = { name: 'coturn', component: 'turn', version: props.image.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    const files = {
      'turnserver.conf': turnserverConf(props),
      'start.sh': bundledFile('coturn-start.sh'),
      'node_address.py': bundledFile('node_address.py'),
      'kube.py': bundledFile('kube.py'),
    };
    const config = new k8s.KubeConfigMap(this, 'config', { metadata: { name: 'coturn-config', ...meta }, data: files });

    hostCertificate(this, 'certificate', { name: COTURN_TLS_SECRET, ...meta, host: props.host, issuer: props.issuer });

    // The node's public address, looked up by an init step with a token of its own.
    const address = nodeAddressLookup(this, {
      name: 'coturn',
      namespace: props.namespace,
      labels: labels(component),
      toolsImage: props.toolsImage,
      publicIp: props.publicIp,
      // The node's public IPv6 too, where it has one: start.sh makes coturn listen and relay on it.
      bothFamilies: true,
      scripts: { volume: 'config', path: '/etc/coturn' },
      output: { volume: 'run', path: '/run/coturn', file: 'public-ip' },
    });
    const fromField = (name: string, fieldPath: string): k8s.EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });

    const turnProbe = { tcpSocket: { port: k8s.IntOrString.fromNumber(TURN_PORT) } };
    const daemonSet = new k8s.KubeDaemonSet(this, 'daemonset', {
      metadata: { name: 'coturn', ...meta },
      spec: {
        selector: { matchLabels: selectorLabels(component) },
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(1) } },
        template: {
          metadata: { labels: labels(component), annotations: { [CONFIG_HASH_ANNOTATION]: contentHash(files) } },
          spec: withScheduling(
            {
              hostNetwork: true,
              dnsPolicy: 'ClusterFirstWithHostNet',
              serviceAccountName: address.serviceAccountName,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              nodeSelector: props.nodeSelector,
              securityContext: restrictedPod(UID.coturn),
              terminationGracePeriodSeconds: 30,
              initContainers: [address.initContainer],
              containers: [
                {
                  name: 'coturn',
                  image: imageRef(props.image),
                  command: ['sh', '/etc/coturn/start.sh'],
                  // How often start.sh looks for a new or renewed certificate.
                  env: [fromField('NODE_IP', 'status.hostIP'), { name: 'CERT_CHECK_SECONDS', value: '60' }],
                  ports: [
                    { name: 'turn-udp', containerPort: TURN_PORT, protocol: 'UDP' },
                    tcpPort('turn-tcp', TURN_PORT),
                    tcpPort('turns', TURN_TLS_PORT),
                    tcpPort('metrics', TURN_METRICS_PORT),
                  ],
                  resources: resourceRequirements(props.resources),
                  securityContext: coturnSecurityContext(),
                  startupProbe: { ...turnProbe, periodSeconds: 2, failureThreshold: 30 },
                  readinessProbe: { ...turnProbe, periodSeconds: 10, failureThreshold: 3 },
                  livenessProbe: { ...turnProbe, periodSeconds: 20, failureThreshold: 3 },
                  volumeMounts: [
                    { name: 'config', mountPath: '/etc/coturn', readOnly: true },
                    { name: 'turn-secret', mountPath: '/secrets/turn', readOnly: true },
                    { name: 'tls', mountPath: '/tls', readOnly: true },
                    { name: 'run', mountPath: '/run/coturn' },
                    { name: 'tmp', mountPath: '/tmp' },
                  ],
                },
              ],
              volumes: [
                { name: 'config', configMap: { name: config.name } },
                secretFilesVolume(
                  'turn-secret',
                  { shared_secret: props.turnSharedSecret },
                  { [TURN_SECOND_SECRET]: { name: props.turnSharedSecret.name, key: TURN_SECOND_SECRET } },
                ),
                // Optional: coturn serves TURN over UDP and TCP before the certificate exists (start.sh).
                { name: 'tls', secret: { secretName: COTURN_TLS_SECRET, defaultMode: 0o440, optional: true } },
                memoryVolume('run', '1Mi'),
                memoryVolume('tmp', '16Mi'),
                ...address.volumes,
              ],
            },
            props.scheduling,
            selectorLabels(component),
          ),
        },
      },
    });
    // Last, with its certificate: no TURN node yet, or a failing ACME challenge for the
    // TURN host, must not hold up Synapse or the app's credentials.
    setSyncWave(daemonSet, WAVE.edge);
  }
}
