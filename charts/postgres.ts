import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { Certificate, CertificateSpecPrivateKeyAlgorithm, CertificateSpecPrivateKeyRotationPolicy, CertificateSpecUsages, Issuer } from '../imports/cert-manager.io';
import { setSyncWave, WAVE } from './argocd';
import type { DatabaseTls } from './database';
import { postgresTagMajor, type ImageConfig, type ResourcesConfig, type SecretRef, type StorageConfig } from './config';
import {
  bundledFile,
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

/** The PostgreSQL pod's identity (NetworkPolicies select it by it). */
export const POSTGRES = { name: 'postgres', component: 'database' } as const;
export const POSTGRES_PORT = 5432;
export const POSTGRES_DATA_MOUNT = '/var/lib/postgresql/data';
/** PGDATA is a subdirectory so the server creates it with the owner and 0700 mode it insists on. */
export const POSTGRES_PGDATA = `${POSTGRES_DATA_MOUNT}/pgdata`;
/** The oldest major the chart runs: its data directory is POSTGRES_PGDATA, where every install before 18 keeps its data. */
const FIRST_MAJOR = 17;

/** PostgreSQL's major version, read from the image tag (the official images' tags begin with it: "17.11-bookworm"). */
export function postgresMajor(tag: string): number {
  const major = postgresTagMajor(tag);
  if (major === undefined) {
    throw new Error(
      `postgres.image.tag "${tag}" must begin with PostgreSQL's major version (e.g. "17.11-bookworm"): the data directory is chosen by it (docs/operations.md, "PostgreSQL 17 → 18")`,
    );
  }
  if (major < FIRST_MAJOR) throw new Error(`postgres.image.tag "${tag}" is PostgreSQL ${major}; this stack runs ${FIRST_MAJOR} or later`);
  return major;
}

/**
 * The data directory of a major, on the one volume: 17 keeps the directory of existing installs, and each later major
 * has its own (pgdata-18, ...). A new major's pod therefore initialises an empty directory beside the old one instead
 * of meeting data it refuses ("database files are incompatible with server"); the old directory is never touched, so
 * setting the old tag again is the rollback. The data comes across by dump and restore (docs/operations.md, "PostgreSQL 17 → 18").
 */
export function postgresDataDir(major: number): string {
  return major === FIRST_MAJOR ? POSTGRES_PGDATA : `${POSTGRES_PGDATA}-${major}`;
}
/** The image's superuser: local administration only; Synapse connects as its own role. */
export const POSTGRES_SUPERUSER = 'postgres';
/** The server's certificate and key (and its CA's certificate, ca.crt), made by cert-manager. */
export const POSTGRES_TLS_SECRET = 'postgres-tls';
/** The CA of the stack's own that signs it: cert-manager makes it once, from a self-signed issuer. */
export const POSTGRES_CA_SECRET = 'postgres-ca';
const TLS_DIR = '/etc/postgresql/tls';
/** Touched by the reload step each round; its liveness probe reads the time. In the socket's memory volume. */
const TLS_RELOAD_HEARTBEAT = '/var/run/postgresql/tls-reload.alive';
const CONFIG_DIR = '/etc/postgresql/kudo';
/** initdb arguments: Synapse refuses a database whose collation or ctype is not C. */
export const POSTGRES_INITDB_ARGS = '--encoding=UTF8 --locale=C';

export interface PostgresProps extends ChartProps {
  readonly namespace: string;
  readonly image: ImageConfig;
  readonly storage: StorageConfig;
  readonly resources: ResourcesConfig;
  /** max_connections; must cover Synapse's pool plus backups and administration. */
  readonly maxConnections: number;
  /** The database Synapse uses. @default "synapse" */
  readonly database?: string;
  /** The role Synapse connects as, which owns the database. @default "synapse" */
  readonly user?: string;
  /** The Secret key holding the Synapse role's password. */
  readonly password: SecretRef;
  /** The Secret key holding the superuser's password. */
  readonly superuserPassword: SecretRef;
  /** Run a Prometheus exporter beside the server. @default - no exporter */
  readonly exporter?: ImageConfig;
  /** Where its pods may run, beyond what the chart sets. @default - anywhere the chart allows */
  readonly scheduling?: PodScheduling;
  /**
   * TLS on every connection from outside the pod. cert-manager makes a CA of the stack's own (a self-signed Issuer,
   * the CA's Certificate, an Issuer from it) and the server's certificate for the Service's names; PostgreSQL then
   * admits network clients over TLS only (postgres-hba.conf), and a step beside it reloads the server when
   * cert-manager renews the certificate. @default - plain TCP
   */
  readonly tls?: boolean;
}

export const POSTGRES_EXPORTER_PORT = 9187;

/**
 * Server settings sized from the container's memory limit (the usual
 * starting points: a quarter for shared buffers, three quarters assumed to
 * be page cache, and per-sort memory shared out among the connections).
 */
export function postgresSettings(memoryLimit: string, maxConnections: number): Record<string, string> {
  const mb = Math.floor(memoryBytes(memoryLimit) / 2 ** 20);
  if (mb < 256) throw new Error(`postgres memory limit ${memoryLimit} is below the 256Mi PostgreSQL needs to run Synapse`);
  const sharedBuffers = Math.floor(mb / 4);
  const workMem = Math.max(4, Math.floor((mb - sharedBuffers) / (maxConnections * 3)));
  return {
    listen_addresses: '*',
    max_connections: String(maxConnections),
    shared_buffers: `${sharedBuffers}MB`,
    effective_cache_size: `${Math.floor((mb * 3) / 4)}MB`,
    maintenance_work_mem: `${Math.min(1024, Math.max(16, Math.floor(mb / 16)))}MB`,
    work_mem: `${workMem}MB`,
    // Synapse writes many small transactions; spread checkpoints out.
    checkpoint_completion_target: '0.9',
    wal_compression: 'on',
    // No log_min_duration_statement: Synapse's driver (psycopg2) puts values into the SQL text it sends,
    // so a logged slow statement would carry access tokens and passwords. Slow queries show in Synapse's metrics.
  };
}

/** postgres_exporter beside the server: over loopback, the password from the same Secret file. */
function postgresExporter(image: ImageConfig, database: string, user: string): k8s.Container {
  return exporterContainer({
    image,
    port: POSTGRES_EXPORTER_PORT,
    env: [
      { name: 'DATA_SOURCE_URI', value: `127.0.0.1:${POSTGRES_PORT}/${database}?sslmode=disable` },
      { name: 'DATA_SOURCE_USER', value: user },
      { name: 'DATA_SOURCE_PASS_FILE', value: '/secrets/password' },
    ],
    readinessPath: '/metrics',
    readinessTimeoutSeconds: 10,
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '64Mi' } },
    volumeMounts: [{ name: 'password', mountPath: '/secrets', readOnly: true }],
  });
}

const tlsMount = { name: 'tls', mountPath: TLS_DIR, readOnly: true };
const configMount = { name: 'config', mountPath: CONFIG_DIR, readOnly: true };

/** Beside the server: reloads it when cert-manager renews its certificate (postgres-tls-reload.sh). */
function tlsReloadContainer(image: ImageConfig): k8s.Container {
  return {
    name: 'tls-reload',
    image: imageRef(image),
    command: ['sh', `${CONFIG_DIR}/tls-reload.sh`, TLS_DIR],
    env: [
      { name: 'PGHOST', value: '/var/run/postgresql' },
      { name: 'PGUSER', value: POSTGRES_SUPERUSER },
      { name: 'HEARTBEAT_FILE', value: TLS_RELOAD_HEARTBEAT },
    ],
    // Alive while its loop goes round (every 60 s). No readiness probe: a stuck step must not take the database's
    // address out of its Service; the liveness probe restarts the step alone.
    livenessProbe: {
      exec: { command: ['sh', '-c', `test $(( $(date +%s) - $(stat -c %Y ${TLS_RELOAD_HEARTBEAT}) )) -lt 300`] },
      periodSeconds: 60,
      timeoutSeconds: 5,
      failureThreshold: 3,
    },
    // A shell asleep, and psql for a moment on a renewal (about 10 MiB resident).
    resources: resourceRequirements({ requests: { cpu: '5m', memory: '8Mi' }, limits: { cpu: '50m', memory: '16Mi' } }, { request: '1Mi', limit: '16Mi' }),
    securityContext: restrictedContainer(),
    volumeMounts: [tlsMount, configMount, { name: 'run', mountPath: '/var/run/postgresql' }],
  };
}

/** PostgreSQL for Synapse: one replica with its own volume, behind a headless Service. */
export class PostgresChart extends Chart {
  /** Host name Synapse and backups connect to. */
  public readonly host: string;
  public readonly port = POSTGRES_PORT;
  public readonly database: string;
  /** The role Synapse connects as. */
  public readonly user: string;
  /** How clients check the server (verify-full against the stack's CA), when it has TLS. */
  public readonly tls?: DatabaseTls;

  constructor(scope: Construct, id: string, props: PostgresProps) {
    super(scope, id, props);
    const database = props.database ?? 'synapse';
    const user = props.user ?? 'synapse';
    this.database = database;
    this.user = user;
    const pgdata = postgresDataDir(postgresMajor(props.image.tag));
    const component = { ...POSTGRES, version: props.image.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    const settings = postgresSettings(props.resources.limits.memory, props.maxConnections);
    const init = new k8s.KubeConfigMap(this, 'init', {
      metadata: { name: 'postgres-init', ...meta },
      data: { '10-synapse.sh': bundledFile('postgres-init.sh') },
    });
    const isReady = ['pg_isready', '--host=127.0.0.1', `--port=${POSTGRES_PORT}`, `--username=${user}`, `--dbname=${database}`];

    const service = headlessService(this, {
      name: 'postgres',
      ...meta,
      selector: selectorLabels(component),
      port: { name: 'postgres', number: POSTGRES_PORT },
      metricsPort: props.exporter ? POSTGRES_EXPORTER_PORT : undefined,
    });
    this.host = `${service.name}.${props.namespace}.svc`;
    if (props.tls) {
      this.certificates(props.namespace, labels(component), [this.host, `${this.host}.cluster.local`, `${service.name}.${props.namespace}`, service.name]);
      this.tls = { sslmode: 'verify-full', ca: { kind: 'Secret', name: POSTGRES_TLS_SECRET, key: 'ca.crt' } };
    }
    const config = props.tls
      ? new k8s.KubeConfigMap(this, 'config', {
          metadata: { name: 'postgres-config', ...meta },
          data: { 'pg_hba.conf': bundledFile('postgres-hba.conf'), 'tls-reload.sh': bundledFile('postgres-tls-reload.sh') },
        })
      : undefined;
    const tlsSettings: Record<string, string> = props.tls
      ? { ssl: 'on', ssl_cert_file: `${TLS_DIR}/tls.crt`, ssl_key_file: `${TLS_DIR}/tls.key`, hba_file: `${CONFIG_DIR}/pg_hba.conf` }
      : {};

    new k8s.KubeStatefulSet(this, 'statefulset', {
      metadata: { name: 'postgres', ...meta },
      spec: {
        serviceName: service.name,
        replicas: 1,
        selector: { matchLabels: selectorLabels(component) },
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
        template: {
          metadata: { labels: labels(component) },
          spec: withScheduling(
            {
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: restrictedPod(UID.database),
              // A fast shutdown (preStop) plus a checkpoint can take a while on a busy server.
              terminationGracePeriodSeconds: 90,
              containers: [
                {
                  name: 'postgres',
                  image: imageRef(props.image),
                  args: ['postgres', ...Object.entries({ ...settings, ...tlsSettings }).flatMap(([k, v]) => ['-c', `${k}=${v}`])],
                  env: [
                    // The image's superuser; Synapse gets its own role (the init script).
                    { name: 'POSTGRES_USER', value: POSTGRES_SUPERUSER },
                    { name: 'POSTGRES_PASSWORD_FILE', value: '/secrets/superuser_password' },
                    { name: 'POSTGRES_INITDB_ARGS', value: POSTGRES_INITDB_ARGS },
                    { name: 'PGDATA', value: pgdata },
                    { name: 'SYNAPSE_DB_USER', value: user },
                    { name: 'SYNAPSE_DB_NAME', value: database },
                    { name: 'SYNAPSE_DB_PASSWORD_FILE', value: '/secrets/password' },
                  ],
                  ports: [tcpPort('postgres', POSTGRES_PORT)],
                  resources: resourceRequirements(props.resources),
                  securityContext: restrictedContainer(),
                  startupProbe: { exec: { command: isReady }, periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 120 },
                  readinessProbe: { exec: { command: isReady }, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
                  // Liveness asks only whether the server accepts TCP: pg_isready also fails while
                  // PostgreSQL is busy starting or shutting down, which is no reason to kill it.
                  livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('postgres') }, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 6 },
                  lifecycle: {
                    // SIGTERM means a "smart" shutdown that waits for Synapse's pooled
                    // connections to close, which they never do; ask for a fast one.
                    preStop: { exec: { command: ['sh', '-c', 'pg_ctl stop --pgdata="$PGDATA" --mode=fast --wait --timeout=80'] } },
                  },
                  volumeMounts: [
                    { name: 'data', mountPath: POSTGRES_DATA_MOUNT },
                    { name: 'password', mountPath: '/secrets', readOnly: true },
                    { name: 'init', mountPath: '/docker-entrypoint-initdb.d', readOnly: true },
                    { name: 'run', mountPath: '/var/run/postgresql' },
                    { name: 'tmp', mountPath: '/tmp' },
                    ...(props.tls ? [tlsMount, configMount] : []),
                  ],
                },
                ...(props.tls ? [tlsReloadContainer(props.image)] : []),
                ...(props.exporter ? [postgresExporter(props.exporter, database, user)] : []),
              ],
              volumes: [
                ...(config !== undefined
                  ? [
                      { name: 'tls', secret: { secretName: POSTGRES_TLS_SECRET, defaultMode: 0o440 } },
                      { name: 'config', configMap: { name: config.name } },
                    ]
                  : []),
                secretFilesVolume('password', { password: props.password, superuser_password: props.superuserPassword }),
                // Executable, so the entrypoint runs it in a shell of its own rather than sourcing it.
                { name: 'init', configMap: { name: init.name, defaultMode: 0o555 } },
                memoryVolume('run', '16Mi'),
                memoryVolume('tmp', '64Mi'),
              ],
            },
            props.scheduling,
            selectorLabels(component),
          ),
        },
        volumeClaimTemplates: [
          {
            // volumeClaimTemplates cannot change after creation: no version label here, or every image upgrade is refused.
            metadata: { name: 'data', labels: labels({ name: component.name, component: component.component }) },
            spec: {
              accessModes: ['ReadWriteOnce'],
              storageClassName: props.storage.className,
              resources: { requests: { storage: k8s.Quantity.fromString(props.storage.size) } },
            },
          },
        ],
      },
    });
  }

  /** The CA of the stack's own and the server's certificate, issued before PostgreSQL starts (it mounts the Secret). */
  private certificates(namespace: string, lbls: Record<string, string>, dnsNames: string[]): void {
    const meta = (name: string) => ({ name, namespace, labels: lbls });
    const ecdsa = { algorithm: CertificateSpecPrivateKeyAlgorithm.ECDSA, size: 256, rotationPolicy: CertificateSpecPrivateKeyRotationPolicy.ALWAYS };
    const selfSigned = new Issuer(this, 'selfsigned-issuer', { metadata: meta('postgres-selfsigned'), spec: { selfSigned: {} } });
    // Ten years, renewed after two thirds: a new CA is trusted by a client once the kubelet refreshes its copy of
    // ca.crt, so it should rarely change. The server's certificate is renewed every 60 of its 90 days.
    const ca = new Certificate(this, 'ca-certificate', {
      metadata: meta(POSTGRES_CA_SECRET),
      spec: {
        isCa: true,
        commonName: 'kudo-postgres-ca',
        secretName: POSTGRES_CA_SECRET,
        duration: '87600h',
        privateKey: ecdsa,
        issuerRef: { kind: 'Issuer', name: selfSigned.name },
      },
    });
    const caIssuer = new Issuer(this, 'ca-issuer', { metadata: meta('postgres-ca'), spec: { ca: { secretName: POSTGRES_CA_SECRET } } });
    const server = new Certificate(this, 'server-certificate', {
      metadata: meta(POSTGRES_TLS_SECRET),
      spec: {
        secretName: POSTGRES_TLS_SECRET,
        commonName: dnsNames[0],
        dnsNames,
        duration: '2160h',
        renewBefore: '720h',
        usages: [CertificateSpecUsages.SERVER_AUTH],
        privateKey: ecdsa,
        issuerRef: { kind: 'Issuer', name: caIssuer.name },
      },
    });
    // Issued with the configuration, before the databases' wave: PostgreSQL cannot start without them.
    for (const o of [selfSigned, ca, caIssuer, server]) setSyncWave(o, WAVE.config);
  }
}
