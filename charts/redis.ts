import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { ImageConfig, ResourcesConfig, SecretRef } from './config';
import {
  CONFIG_HASH_ANNOTATION,
  contentHash,
  exporterContainer,
  headlessService,
  imageRef,
  labels,
  memoryBytes,
  memoryVolume,
  resourceRequirements,
  restrictedContainer,
  restrictedPod,
  secretFilesVolume,
  selectorLabels,
  tcpPort,
  UID,
} from './common';
import { PodScheduling, withScheduling } from './pods';
/** The Redis pod's identity (NetworkPolicies select it by it). */
export const REDIS = { name: 'redis', component: 'livekit-state' } as const;
export const REDIS_PORT = 6379;
/** Written at start from the password Secret; redis.conf includes it. */
export const REDIS_AUTH_FILE = '/run/redis/auth.conf';

export interface RedisProps extends ChartProps {
  readonly namespace: string;
  readonly image: ImageConfig;
  readonly resources: ResourcesConfig;
  readonly password: SecretRef;
  /** Run a Prometheus exporter beside Redis. @default - no exporter */
  readonly exporter?: ImageConfig;
  /** Where its pods may run, beyond what the chart sets. @default - anywhere the chart allows */
  readonly scheduling?: PodScheduling;
}

export const REDIS_EXPORTER_PORT = 9121;

/**
 * redis.conf. No persistence: Redis holds only LiveKit's routing state (which
 * node hosts which room, node stats), all rebuilt by the LiveKit nodes within
 * seconds of a restart. A restart can drop signalling for rooms in progress,
 * whose clients then reconnect; no chat data or media lives here.
 */
export function redisConf(memoryLimit: string): string {
  // Leave a fifth of the limit for Redis's own overhead and buffers.
  const maxMemory = Math.floor((memoryBytes(memoryLimit) * 0.8) / 2 ** 20);
  return [
    `port ${REDIS_PORT}`,
    'bind 0.0.0.0',
    'protected-mode yes',
    'save ""',
    'appendonly no',
    `maxmemory ${maxMemory}mb`,
    // Evicting LiveKit's keys would silently break routing; refuse writes instead.
    'maxmemory-policy noeviction',
    'dir /data',
    'tcp-keepalive 60',
    `include ${REDIS_AUTH_FILE}`,
    '',
  ].join('\n');
}

/** Writes `requirepass` from the mounted Secret, quoted for Redis's config parser, then starts Redis. */
export const REDIS_START = [
  'set -eu',
  'umask 077',
  `pw=$(sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g' /secrets/password)`,
  `printf 'requirepass "%s"\\n' "$pw" > ${REDIS_AUTH_FILE}`,
  'exec redis-server /etc/redis/redis.conf',
].join('\n');

/** The exporter's view of Redis, and the password file it reads (a JSON map of address to password). */
const EXPORTER_REDIS_ADDR = `redis://127.0.0.1:${REDIS_PORT}`;
const EXPORTER_PASSWORD_FILE = '/run/redis/exporter-passwords.json';
export const EXPORTER_WRITE_PASSWORD = [
  'set -eu',
  'umask 077',
  `pw=$(sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g' /secrets/password)`,
  `printf '{"${EXPORTER_REDIS_ADDR}": "%s"}\\n' "$pw" > ${EXPORTER_PASSWORD_FILE}`,
].join('\n');

/** Redis for LiveKit's multi-node routing, password-protected and without persistence. */
export class RedisChart extends Chart {
  /** host:port, and the host alone. */
  public readonly address: string;
  public readonly host: string;

  constructor(scope: Construct, id: string, props: RedisProps) {
    super(scope, id, props);
    const component = { ...REDIS, version: props.image.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    const files = { 'redis.conf': redisConf(props.resources.limits.memory) };
    const config = new k8s.KubeConfigMap(this, 'config', { metadata: { name: 'redis-config', ...meta }, data: files });

    const service = headlessService(this, {
      name: 'redis',
      ...meta,
      selector: selectorLabels(component),
      port: { name: 'redis', number: REDIS_PORT },
      metricsPort: props.exporter ? REDIS_EXPORTER_PORT : undefined,
    });
    this.host = `${service.name}.${props.namespace}.svc`;
    this.address = `${this.host}:${REDIS_PORT}`;

    const ping = ['sh', '-c', `REDISCLI_AUTH="$(cat /secrets/password)" redis-cli -h 127.0.0.1 -p ${REDIS_PORT} ping | grep -qx PONG`];
    new k8s.KubeStatefulSet(this, 'statefulset', {
      metadata: { name: 'redis', ...meta },
      spec: {
        serviceName: service.name,
        replicas: 1,
        selector: { matchLabels: selectorLabels(component) },
        template: {
          metadata: { labels: labels(component), annotations: { [CONFIG_HASH_ANNOTATION]: contentHash(files) } },
          spec: withScheduling(
            {
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: restrictedPod(UID.database),
              terminationGracePeriodSeconds: 30,
              containers: [
                {
                  name: 'redis',
                  image: imageRef(props.image),
                  command: ['sh', '-c', REDIS_START],
                  ports: [tcpPort('redis', REDIS_PORT)],
                  resources: resourceRequirements(props.resources),
                  securityContext: restrictedContainer(),
                  readinessProbe: { exec: { command: ping }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
                  // Liveness only asks whether the port answers: a slow command must not restart Redis.
                  livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('redis') }, periodSeconds: 20, timeoutSeconds: 3, failureThreshold: 3 },
                  volumeMounts: [
                    { name: 'config', mountPath: '/etc/redis', readOnly: true },
                    { name: 'password', mountPath: '/secrets', readOnly: true },
                    { name: 'run', mountPath: '/run/redis' },
                    { name: 'data', mountPath: '/data' },
                  ],
                },
                ...(props.exporter
                  ? [
                      exporterContainer({
                        // redis_exporter's password file maps each server's address to its password;
                        // the init step writes it (the exporter's image has no shell).
                        image: props.exporter,
                        port: REDIS_EXPORTER_PORT,
                        args: [`--redis.password-file=${EXPORTER_PASSWORD_FILE}`],
                        env: [{ name: 'REDIS_ADDR', value: EXPORTER_REDIS_ADDR }],
                        readinessPath: '/health',
                        resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
                        volumeMounts: [{ name: 'run', mountPath: '/run/redis', readOnly: true }],
                      }),
                    ]
                  : []),
              ],
              initContainers: props.exporter
                ? [
                    {
                      name: 'exporter-password',
                      image: imageRef(props.image),
                      command: ['sh', '-c', EXPORTER_WRITE_PASSWORD],
                      resources: resourceRequirements({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } }),
                      securityContext: restrictedContainer(),
                      volumeMounts: [
                        { name: 'password', mountPath: '/secrets', readOnly: true },
                        { name: 'run', mountPath: '/run/redis' },
                      ],
                    },
                  ]
                : undefined,
              volumes: [
                { name: 'config', configMap: { name: config.name } },
                secretFilesVolume('password', { password: props.password }),
                memoryVolume('run', '1Mi'),
                { name: 'data', emptyDir: { sizeLimit: k8s.Quantity.fromString('64Mi') } },
              ],
            },
            props.scheduling,
            selectorLabels(component),
          ),
        },
      },
    });
  }
}
