import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ImageConfig, ResourcesConfig, SecretRef, StorageConfig, TURN_PORT, TURN_TLS_PORT } from './config';
import {
  bundledFile, CONFIG_HASH_ANNOTATION, contentHash, imageRef, labels, memoryVolume, resourceRequirements, restrictedContainer, restrictedPod,
  secretFilesVolume, selectorLabels, tcpPort, UID,
} from './common';
import { exposeHttp, HttpBackend, IngressSettings } from './tls';
import { WELL_KNOWN_PATH } from './well-known';
import { toYaml } from './yaml-out';

/** Synapse's identity (NetworkPolicies and the backups' affinity select it by it). */
export const SYNAPSE = { name: 'synapse', component: 'homeserver' } as const;
export const SYNAPSE_HTTP_PORT = 8008;
export const SYNAPSE_METRICS_PORT = 9000;
export const SYNAPSE_CONFIG_DIR = '/config';
export const SYNAPSE_SECRETS_DIR = '/secrets';
export const SYNAPSE_MEDIA_DIR = '/media';
/** In-memory; holds the libpq password file the init container writes. */
export const SYNAPSE_RUN_DIR = '/run/synapse';
export const SYNAPSE_TLS_SECRET = 'synapse-tls';

export interface SynapseSecrets {
  readonly macaroonSecretKey: SecretRef;
  readonly formSecret: SecretRef;
  readonly registrationSharedSecret: SecretRef;
  readonly signingKey: SecretRef;
  readonly turnSharedSecret: SecretRef;
  readonly postgresPassword: SecretRef;
}

export interface SynapseDatabase {
  readonly host: string;
  readonly port: number;
  readonly name: string;
  readonly user: string;
  readonly poolMin: number;
  readonly poolMax: number;
}

export interface SynapseTurn {
  /** The TURN host name clients connect to. */
  readonly host: string;
  /** Credential lifetime in seconds. */
  readonly ttlSeconds: number;
}

export interface SynapseProps extends ChartProps {
  readonly namespace: string;
  /** The Matrix server name (the domain part of user IDs). */
  readonly serverName: string;
  /** The host clients and federation reach Synapse on (behind the Ingress, on 443). */
  readonly publicHost: string;
  readonly image: ImageConfig;
  readonly resources: ResourcesConfig;
  readonly media: StorageConfig;
  /** Largest upload, in Synapse's syntax ("100M"). */
  readonly maxUploadSize: string;
  readonly reportStats: boolean;
  readonly enableRegistration: boolean;
  readonly logLevel: string;
  readonly database: SynapseDatabase;
  readonly turn: SynapseTurn;
  readonly secrets: SynapseSecrets;
  readonly ingress: IngressSettings;
  /**
   * The Service that serves /.well-known/matrix when the server name is the
   * Matrix host: the path joins Synapse's route (one host, one route, one
   * certificate). For another server name the delegation chart routes it.
   * @default - no delegation path on Synapse's host
   */
  readonly wellKnownService?: { readonly name: string; readonly port: number };
  /**
   * Route /_synapse/admin publicly, from these client addresses (CIDRs) only.
   * @default - the admin API is reachable inside the cluster only
   */
  readonly adminApiSourceRanges?: readonly string[];
}

/** The files of the synapse-config ConfigMap. Holds no secret: every secret is a `*_path` to a mounted file. */
export function synapseConfigFiles(p: SynapseProps): Record<string, string> {
  const secret = (file: string) => `${SYNAPSE_SECRETS_DIR}/${file}`;
  const homeserver = {
    server_name: p.serverName,
    public_baseurl: `https://${p.publicHost}/`,
    report_stats: p.reportStats,
    listeners: [
      {
        port: SYNAPSE_HTTP_PORT,
        type: 'http',
        tls: false,
        x_forwarded: true,
        bind_addresses: ['0.0.0.0'],
        resources: [{ names: ['client', 'federation'], compress: false }],
      },
      { port: SYNAPSE_METRICS_PORT, type: 'metrics', bind_addresses: ['0.0.0.0'] },
    ],
    enable_metrics: true,
    database: {
      name: 'psycopg2',
      // No password here: libpq reads it from PGPASSFILE, which the init container writes.
      args: {
        user: p.database.user,
        dbname: p.database.name,
        host: p.database.host,
        port: p.database.port,
        cp_min: p.database.poolMin,
        cp_max: p.database.poolMax,
        keepalives_idle: 10,
        keepalives_interval: 10,
        keepalives_count: 3,
      },
    },
    log_config: `${SYNAPSE_CONFIG_DIR}/log.yaml`,
    media_store_path: SYNAPSE_MEDIA_DIR,
    max_upload_size: p.maxUploadSize,
    enable_registration: p.enableRegistration,
    signing_key_path: secret('signing.key'),
    macaroon_secret_key_path: secret('macaroon_secret_key'),
    form_secret_path: secret('form_secret'),
    registration_shared_secret_path: secret('registration_shared_secret'),
    trusted_key_servers: [{ server_name: 'matrix.org' }],
    suppress_key_server_warning: true,
    turn_uris: [
      `turns:${p.turn.host}:${TURN_TLS_PORT}?transport=tcp`,
      `turn:${p.turn.host}:${TURN_PORT}?transport=udp`,
      `turn:${p.turn.host}:${TURN_PORT}?transport=tcp`,
    ],
    turn_shared_secret_path: secret('turn_shared_secret'),
    turn_user_lifetime: `${p.turn.ttlSeconds}s`,
    turn_allow_guests: false,
  };
  const logging = {
    version: 1,
    formatters: { precise: { format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s' } },
    handlers: { console: { class: 'logging.StreamHandler', formatter: 'precise' } },
    loggers: { 'synapse.storage.SQL': { level: 'WARNING' } },
    root: { level: p.logLevel, handlers: ['console'] },
    disable_existing_loggers: false,
  };
  return { 'homeserver.yaml': toYaml(homeserver), 'log.yaml': toYaml(logging), 'pgpass.sh': bundledFile('pgpass.sh') };
}

/** The Synapse pod: the pgpass init step, then Synapse with its config, secrets and media. */
function synapsePodSpec(props: SynapseProps, v: { configMap: string; mediaClaim: string }): k8s.PodSpec {
  const s = props.secrets;
  const healthProbe = (periodSeconds: number, failureThreshold: number): k8s.Probe => ({
    httpGet: { path: '/health', port: k8s.IntOrString.fromString('http') },
    periodSeconds,
    timeoutSeconds: 5,
    failureThreshold,
  });

  return {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: restrictedPod(UID.synapse),
    terminationGracePeriodSeconds: 60,
    initContainers: [{
      name: 'pgpass',
      image: imageRef(props.image),
      // libpq's password file, from the Secret into memory (Synapse has no password_path for its database).
      command: ['sh', `${SYNAPSE_CONFIG_DIR}/pgpass.sh`, '/db/password', props.database.user, `${SYNAPSE_RUN_DIR}/pgpass`],
      resources: resourceRequirements({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } }),
      securityContext: restrictedContainer(),
      volumeMounts: [
        { name: 'config', mountPath: SYNAPSE_CONFIG_DIR, readOnly: true },
        { name: 'db-password', mountPath: '/db', readOnly: true },
        { name: 'run', mountPath: SYNAPSE_RUN_DIR },
      ],
    }],
    containers: [{
      name: 'synapse',
      image: imageRef(props.image),
      command: [
        'python', '-m', 'synapse.app.homeserver',
        '--config-path', `${SYNAPSE_CONFIG_DIR}/homeserver.yaml`,
        '--no-secrets-in-config',
      ],
      env: [{ name: 'PGPASSFILE', value: `${SYNAPSE_RUN_DIR}/pgpass` }],
      ports: [tcpPort('http', SYNAPSE_HTTP_PORT), tcpPort('metrics', SYNAPSE_METRICS_PORT)],
      // /tmp (1Gi, on disk) holds uploads in flight.
      resources: resourceRequirements(props.resources, { request: '256Mi', limit: '2Gi' }),
      securityContext: restrictedContainer(),
      // The first start creates the schema; give it five minutes before liveness counts.
      startupProbe: healthProbe(5, 60),
      readinessProbe: healthProbe(10, 3),
      livenessProbe: healthProbe(15, 4),
      volumeMounts: [
        { name: 'config', mountPath: SYNAPSE_CONFIG_DIR, readOnly: true },
        { name: 'secrets', mountPath: SYNAPSE_SECRETS_DIR, readOnly: true },
        { name: 'media', mountPath: SYNAPSE_MEDIA_DIR },
        { name: 'run', mountPath: SYNAPSE_RUN_DIR, readOnly: true },
        { name: 'tmp', mountPath: '/tmp' },
      ],
    }],
    volumes: [
      { name: 'config', configMap: { name: v.configMap } },
      secretFilesVolume('secrets', {
        'signing.key': s.signingKey,
        'macaroon_secret_key': s.macaroonSecretKey,
        'form_secret': s.formSecret,
        'registration_shared_secret': s.registrationSharedSecret,
        'turn_shared_secret': s.turnSharedSecret,
      }),
      secretFilesVolume('db-password', { password: s.postgresPassword }),
      { name: 'media', persistentVolumeClaim: { claimName: v.mediaClaim } },
      memoryVolume('run', '1Mi'),
      { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('1Gi') } },
    ],
  };
}

/**
 * Synapse, a single process with its media store on a ReadWriteOnce volume.
 *
 * A Deployment with the `Recreate` strategy, not RollingUpdate: a rolling
 * update starts the new pod before the old one stops, and when the new pod
 * lands on another node the volume cannot attach there (Multi-Attach) and
 * the rollout hangs. A single-replica StatefulSet would also avoid that, but
 * would make the media claim part of an immutable volumeClaimTemplate.
 */
export class SynapseChart extends Chart {
  /** In-cluster URL of the client/federation listener. */
  public readonly internalUrl: string;
  /** The media store's claim, and the labels that select Synapse's pod. */
  public readonly mediaClaimName: string;
  public readonly podSelector: Record<string, string>;

  constructor(scope: Construct, id: string, props: SynapseProps) {
    super(scope, id, props);
    const component = { ...SYNAPSE, version: props.image.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    const files = synapseConfigFiles(props);

    const config = new k8s.KubeConfigMap(this, 'config', { metadata: { name: 'synapse-config', ...meta }, data: files });

    this.podSelector = selectorLabels(component);
    const media = new k8s.KubePersistentVolumeClaim(this, 'media', {
      metadata: { name: 'synapse-media', ...meta },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: props.media.className,
        resources: { requests: { storage: k8s.Quantity.fromString(props.media.size) } },
      },
    });

    this.mediaClaimName = media.name;

    new k8s.KubeDeployment(this, 'deployment', {
      metadata: { name: 'synapse', ...meta },
      spec: {
        replicas: 1,
        strategy: { type: 'Recreate' },
        selector: { matchLabels: selectorLabels(component) },
        template: {
          metadata: {
            labels: labels(component),
            annotations: { [CONFIG_HASH_ANNOTATION]: contentHash(files) },
          },
          spec: synapsePodSpec(props, { configMap: config.name, mediaClaim: media.name }),
        },
      },
    });

    const service = new k8s.KubeService(this, 'service', {
      metadata: { name: 'synapse', ...meta },
      spec: {
        selector: selectorLabels(component),
        ports: [
          { name: 'http', port: SYNAPSE_HTTP_PORT, targetPort: k8s.IntOrString.fromString('http') },
          { name: 'metrics', port: SYNAPSE_METRICS_PORT, targetPort: k8s.IntOrString.fromString('metrics') },
        ],
      },
    });
    this.internalUrl = `http://${service.name}.${props.namespace}.svc:${SYNAPSE_HTTP_PORT}`;

    // Only the client/federation API and Synapse's client pages are public;
    // the admin API (/_synapse/admin) stays reachable from inside the cluster only.
    const backends: HttpBackend[] = [
      { path: '/_matrix', service: service.name, port: SYNAPSE_HTTP_PORT },
      { path: '/_synapse/client', service: service.name, port: SYNAPSE_HTTP_PORT },
    ];
    // When the server name is the Matrix host, the delegation path joins Synapse's route.
    const wellKnown = props.wellKnownService;
    if (wellKnown !== undefined) backends.push({ path: WELL_KNOWN_PATH, service: wellKnown.name, port: wellKnown.port });
    exposeHttp(this, 'ingress', {
      name: 'synapse', namespace: props.namespace, labels: labels(component), host: props.publicHost, tlsSecret: SYNAPSE_TLS_SECRET,
      backends, settings: props.ingress, options: { maxBodySize: props.maxUploadSize },
    });
    if (props.adminApiSourceRanges !== undefined) {
      // Its own Ingress: the source-address limit must not reach the client API.
      exposeHttp(this, 'admin-ingress', {
        name: 'synapse-admin', namespace: props.namespace, labels: labels(component), host: props.publicHost, tlsSecret: SYNAPSE_TLS_SECRET,
        backends: [{ path: '/_synapse/admin', service: service.name, port: SYNAPSE_HTTP_PORT }],
        settings: props.ingress, options: { sourceRanges: props.adminApiSourceRanges },
      });
    }
  }
}
