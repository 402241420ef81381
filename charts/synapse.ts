import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ImageConfig, ResourcesConfig, SecretRef, StorageConfig } from './config';
import {
  bundledFile,
  CONFIG_HASH_ANNOTATION,
  contentHash,
  imageRef,
  labels,
  memoryVolume,
  resourceRequirements,
  restrictedContainer,
  restrictedPod,
  secretFilesVolume,
  selectorLabels,
  tcpPort,
  UID,
} from './common';
import { WORKER_TYPE_NAMES, WORKER_TYPES, WorkerType, WorkerTypeName } from './synapse-workers';
import { MediaRetention, MessageRetention } from './synapse-retention';
import { setSyncWave, syncHook, WAVE } from './argocd';
import { databaseCaVolume, DB_CA_DIR } from './database';
import { PodScheduling, withScheduling } from './pods';
import { exposeHttp, HttpBackend, IngressSettings } from './tls';
import { WELL_KNOWN_PATH } from './well-known';
import { toYaml } from './render/yaml-out';
import {
  EXTRA_SECRETS_FOLDER,
  extraConfigProblems,
  homeserverSettings,
  SYNAPSE,
  SYNAPSE_CONFIG_DIR,
  SYNAPSE_HTTP_PORT,
  SYNAPSE_MEDIA_DIR,
  SYNAPSE_METRICS_PORT,
  SYNAPSE_MIGRATION,
  SYNAPSE_PROXIED_PORT,
  SYNAPSE_REPLICATION_PORT,
  SYNAPSE_RUN_DIR,
  SYNAPSE_SECRETS_DIR,
  workerComponent,
  workerConfig,
  HomeserverWorkers,
  SynapseDatabase,
  SynapseTurn,
} from './synapse-homeserver';

// Synapse's identity, ports and paths, and the extraConfig rules, live in synapse-homeserver.ts (the config reads them).
export {
  ALL_SYNAPSE_PROCESSES,
  extraConfigProblems,
  SYNAPSE,
  SYNAPSE_CONFIG_DIR,
  SYNAPSE_EXTRA_SECRETS_DIR,
  SYNAPSE_HTTP_PORT,
  SYNAPSE_MEDIA_DIR,
  SYNAPSE_METRICS_PORT,
  SYNAPSE_MIGRATION,
  SYNAPSE_PROXIED_PORT,
  SYNAPSE_REPLICATION_PORT,
  SYNAPSE_RUN_DIR,
  SYNAPSE_SECRETS_DIR,
  workerComponent,
} from './synapse-homeserver';
export type { SynapseDatabase, SynapseTurn } from './synapse-homeserver';
export const SYNAPSE_TLS_SECRET = 'synapse-tls';

export interface SynapseSecrets {
  readonly macaroonSecretKey: SecretRef;
  readonly formSecret: SecretRef;
  readonly registrationSharedSecret: SecretRef;
  readonly signingKey: SecretRef;
  readonly turnSharedSecret: SecretRef;
  /** With workers: Redis, and the secret the processes authenticate replication with. */
  readonly redisPassword: SecretRef;
  readonly workerReplicationSecret: SecretRef;
}

/** Synapse's workers (synapse-workers.ts has the types and their paths). */
export interface SynapseWorkers extends HomeserverWorkers {
  /** Each worker process's resources and database pool. */
  readonly resources: ResourcesConfig;
  readonly poolMin: number;
  readonly poolMax: number;
  /**
   * The Service clients and the app reach Synapse through: the router in front of the processes, on the port
   * for callers inside the cluster and on the public proxy's (see SYNAPSE_PROXIED_PORT).
   */
  readonly router: { readonly service: string; readonly port: number; readonly proxiedPort: number };
  /** Where the worker processes may run. @default - anywhere */
  readonly scheduling?: PodScheduling;
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
  /** @default - no TURN for Synapse's legacy 1:1 calls (coturn.enabled false) */
  readonly turn?: SynapseTurn;
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
  /** Delete media nobody has downloaded for a while (homeserver.yaml media_retention). @default - media is kept */
  readonly mediaRetention?: MediaRetention;
  /** Message retention policies (homeserver.yaml retention). @default - off */
  readonly retention?: MessageRetention;
  /** Run Synapse as a main process and workers. @default - one process */
  readonly workers?: SynapseWorkers;
  /**
   * The operator's homeserver.yaml settings, merged in at the top level; see
   * extraConfigProblems for what is refused. @default - none
   */
  readonly extraConfig?: Readonly<Record<string, unknown>>;
  /** Secret keys mounted at SYNAPSE_EXTRA_SECRETS_DIR/<file> in every process. @default - none */
  readonly extraSecretFiles?: readonly SynapseSecretFile[];
  /** Where the main process may run. @default - anywhere */
  readonly scheduling?: PodScheduling;
}

export interface SynapseSecretFile {
  /** A Secret in the Synapse namespace, and its key. */
  readonly secret: string;
  readonly key: string;
  /** The file name in SYNAPSE_EXTRA_SECRETS_DIR. */
  readonly file: string;
}

/** The files of the synapse-config ConfigMap. Holds no secret: every secret is a `*_path` to a mounted file. */
export function synapseConfigFiles(p: SynapseProps): Record<string, string> {
  const extra = p.extraConfig ?? {};
  // The config refuses these already; a chart built without it must not get past them either.
  const problems = extraConfigProblems(
    extra,
    (p.extraSecretFiles ?? []).map((f) => f.file),
  );
  if (problems.length > 0) throw new Error(`Synapse's extra settings are refused:\n${problems.map((l) => `  - ${l}`).join('\n')}`);
  const homeserver = Object.assign(homeserverSettings(p), extra);
  const logging = {
    version: 1,
    formatters: { precise: { format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s' } },
    handlers: { console: { class: 'logging.StreamHandler', formatter: 'precise' } },
    loggers: { 'synapse.storage.SQL': { level: 'WARNING' } },
    root: { level: p.logLevel, handlers: ['console'] },
    disable_existing_loggers: false,
  };
  const files: Record<string, string> = {
    'homeserver.yaml': toYaml(homeserver),
    'log.yaml': toYaml(logging),
    'pgpass.sh': bundledFile('pgpass.sh'),
    'wait_for_schema.py': bundledFile('wait_for_schema.py'),
  };
  if (p.workers) {
    for (const type of WORKER_TYPE_NAMES.filter((t) => p.workers!.replicas[t] > 0)) files[`worker-${type}.yaml`] = toYaml(workerConfig(type));
  }
  return files;
}

/** Which Synapse process a pod runs: the main one, or a worker of a type. */
type SynapseProcess = 'main' | WorkerTypeName;

/**
 * What every process that opens Synapse's database reads, the migration Job included: the config (homeserver.yaml
 * names the database and the Secret files), the Secret files (Synapse reads them all when it loads its config),
 * libpq's password file (written into `run` by the init step) and the database's CA.
 */
function databaseAccess(props: SynapseProps, configMap: string): { volumes: k8s.Volume[]; mounts: k8s.VolumeMount[]; pgpass: k8s.Container; env: k8s.EnvVar[] } {
  const s = props.secrets;
  const caVolume = databaseCaVolume(props.database);
  const secretFiles: Record<string, SecretRef> = {
    'signing.key': s.signingKey,
    macaroon_secret_key: s.macaroonSecretKey,
    form_secret: s.formSecret,
    registration_shared_secret: s.registrationSharedSecret,
  };
  if (props.turn !== undefined) secretFiles.turn_shared_secret = s.turnSharedSecret;
  if (props.workers !== undefined) Object.assign(secretFiles, { redis_password: s.redisPassword, worker_replication_secret: s.workerReplicationSecret });
  for (const f of props.extraSecretFiles ?? []) secretFiles[`${EXTRA_SECRETS_FOLDER}/${f.file}`] = { name: f.secret, key: f.key };
  return {
    volumes: [
      { name: 'config', configMap: { name: configMap } },
      secretFilesVolume('secrets', secretFiles),
      secretFilesVolume('db-password', { password: props.database.password }),
      ...(caVolume !== undefined ? [caVolume] : []),
      memoryVolume('run', '1Mi'),
    ],
    mounts: [
      { name: 'config', mountPath: SYNAPSE_CONFIG_DIR, readOnly: true },
      { name: 'secrets', mountPath: SYNAPSE_SECRETS_DIR, readOnly: true },
      { name: 'run', mountPath: SYNAPSE_RUN_DIR, readOnly: true },
      ...(caVolume !== undefined ? [{ name: caVolume.name, mountPath: DB_CA_DIR, readOnly: true }] : []),
    ],
    // libpq's password file, from the Secret into memory (Synapse has no password_path for its database).
    pgpass: {
      name: 'pgpass',
      image: imageRef(props.image),
      command: ['sh', `${SYNAPSE_CONFIG_DIR}/pgpass.sh`, '/db/password', props.database.user, `${SYNAPSE_RUN_DIR}/pgpass`],
      resources: resourceRequirements({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } }),
      securityContext: restrictedContainer(),
      volumeMounts: [
        { name: 'config', mountPath: SYNAPSE_CONFIG_DIR, readOnly: true },
        { name: 'db-password', mountPath: '/db', readOnly: true },
        { name: 'run', mountPath: SYNAPSE_RUN_DIR },
      ],
    },
    env: [{ name: 'PGPASSFILE', value: `${SYNAPSE_RUN_DIR}/pgpass` }],
  };
}

/**
 * A Synapse pod: the init steps (libpq's password file, and a worker's name; then the wait until the migration Job
 * has brought the database's schema to this version), then the process with its config, secrets, and the media
 * volume if it serves media.
 */
function synapsePodSpec(props: SynapseProps, v: { configMap: string; mediaClaim?: string; process: SynapseProcess }): k8s.PodSpec {
  const w = props.workers;
  const db = databaseAccess(props, v.configMap);
  const worker = v.process === 'main' ? undefined : (WORKER_TYPES[v.process] as WorkerType);
  // A worker has only the router's listener; the main process answers on its in-cluster one too.
  const healthPort = worker === undefined ? 'http' : 'proxied';
  const healthProbe = (periodSeconds: number, failureThreshold: number): k8s.Probe => ({
    httpGet: { path: '/health', port: k8s.IntOrString.fromString(healthPort) },
    periodSeconds,
    timeoutSeconds: 5,
    failureThreshold,
  });
  // A worker's name: its pod's (pools, StatefulSets) or, for a single one, its Deployment's.
  const workerNameFile = `${SYNAPSE_RUN_DIR}/worker-name.yaml`;
  const named = worker !== undefined && worker.workload === 'deployment' && worker.max === 1;
  const pgpass: k8s.Container =
    worker === undefined
      ? db.pgpass
      : {
          ...db.pgpass,
          command: ['sh', '-c', `${db.pgpass.command!.join(' ')} && printf 'worker_name: "%s"\\n' "$WORKER_NAME" > ${workerNameFile}`],
          env: [
            named
              ? { name: 'WORKER_NAME', value: workerComponent(v.process as WorkerTypeName).name }
              : { name: 'WORKER_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          ],
        };
  const command =
    worker === undefined
      ? ['python', '-m', 'synapse.app.homeserver', '--config-path', `${SYNAPSE_CONFIG_DIR}/homeserver.yaml`, '--no-secrets-in-config']
      : [
          'python',
          '-m',
          worker.app,
          '--config-path',
          `${SYNAPSE_CONFIG_DIR}/homeserver.yaml`,
          '--config-path',
          `${SYNAPSE_CONFIG_DIR}/worker-${v.process}.yaml`,
          '--config-path',
          workerNameFile,
          '--no-secrets-in-config',
        ];
  const ports = [...(worker === undefined ? [tcpPort('http', SYNAPSE_HTTP_PORT)] : []), tcpPort('proxied', SYNAPSE_PROXIED_PORT), tcpPort('metrics', SYNAPSE_METRICS_PORT)];
  if (w !== undefined && (worker === undefined || worker.replication)) ports.push(tcpPort('replication', SYNAPSE_REPLICATION_PORT));

  return {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: restrictedPod(UID.synapse),
    terminationGracePeriodSeconds: 60,
    initContainers: [
      pgpass,
      // Init containers have no probes: however long the migration takes, this waits, and the process starts after it.
      // Without the wait, the main process would migrate the schema itself (beside the Job, under its startup probe),
      // and a worker would exit on the old schema until its restarts' back-off let it try again.
      databaseWaitStep(props, db, 'schema'),
    ],
    containers: [
      {
        name: 'synapse',
        image: imageRef(props.image),
        command,
        env: db.env,
        ports,
        // /tmp (1Gi, on disk) holds uploads in flight.
        resources: resourceRequirements(worker === undefined ? props.resources : w!.resources, { request: '256Mi', limit: '2Gi' }),
        securityContext: restrictedContainer(),
        // Synapse's own start (the schema is current by then: the schema step waited for it); five minutes before liveness counts.
        startupProbe: healthProbe(5, 60),
        readinessProbe: healthProbe(10, 3),
        livenessProbe: healthProbe(15, 4),
        volumeMounts: [...db.mounts, ...(v.mediaClaim !== undefined ? [{ name: 'media', mountPath: SYNAPSE_MEDIA_DIR }] : []), { name: 'tmp', mountPath: '/tmp' }],
      },
    ],
    volumes: [
      ...db.volumes,
      ...(v.mediaClaim !== undefined ? [{ name: 'media', persistentVolumeClaim: { claimName: v.mediaClaim } }] : []),
      { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('1Gi') } },
    ],
  };
}

/** An init step that waits on the database (wait_for_schema.py: it polls, so it is small) with the process's database access. */
function databaseWaitStep(props: SynapseProps, db: ReturnType<typeof databaseAccess>, name: string, ...options: string[]): k8s.Container {
  return {
    name,
    image: imageRef(props.image),
    command: ['python', `${SYNAPSE_CONFIG_DIR}/wait_for_schema.py`, ...options, `${SYNAPSE_CONFIG_DIR}/homeserver.yaml`],
    env: db.env,
    resources: resourceRequirements({ requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '64Mi' } }),
    securityContext: restrictedContainer(),
    volumeMounts: db.mounts.filter((m) => m.name !== 'secrets'),
  };
}

/**
 * The schema migration: Synapse's update_synapse_database with the main process's homeserver.yaml, Secret files,
 * password file and CA. Its name carries the version and a hash of what it runs (image, config), so a new version
 * (or a new database) is a new Job, which `kubectl apply` creates and runs, while applying the same render again
 * leaves the finished one alone. For Argo CD it is a Sync hook in the wave before Synapse's. No deadline and no
 * probe: a long migration runs to its end; a failed one rolls back (one transaction) and the next attempt starts over.
 */
function migrationJob(scope: Construct, props: SynapseProps, configMap: string, files: Record<string, string>): k8s.KubeJob {
  const db = databaseAccess(props, configMap);
  const component = { ...SYNAPSE_MIGRATION, version: props.image.tag };
  const template: k8s.PodTemplateSpec = {
    metadata: { labels: labels(component) },
    spec: withScheduling(
      {
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        restartPolicy: 'Never',
        securityContext: restrictedPod(UID.synapse),
        initContainers: [
          db.pgpass,
          // A database marked as waiting for a restore (a new PostgreSQL major's: docs/operations.md, "PostgreSQL 17 → 18") is waited
          // on, not migrated: the restore step clears the mark. Without the wait, an apply of everything before the
          // restore would create an empty schema for Synapse to serve.
          databaseWaitStep(props, db, 'restore', '--restore-only'),
        ],
        containers: [
          {
            name: 'migrate',
            image: imageRef(props.image),
            command: ['python', '-m', 'synapse._scripts.update_synapse_database', '--database-config', `${SYNAPSE_CONFIG_DIR}/homeserver.yaml`],
            env: db.env,
            resources: resourceRequirements(props.resources),
            securityContext: restrictedContainer(),
            // Synapse's config loading creates the media folder if it is missing; the migration writes nothing there.
            volumeMounts: [...db.mounts, { name: 'media', mountPath: SYNAPSE_MEDIA_DIR }, { name: 'tmp', mountPath: '/tmp' }],
          },
        ],
        volumes: [...db.volumes, memoryVolume('media', '1Mi'), memoryVolume('tmp', '16Mi')],
      },
      props.scheduling,
      selectorLabels(component),
    ),
  };
  // The version as a DNS label's part (v1.163.2 → v1-163-2) in a name of at most 63 characters: the Job's name is a
  // label of its pods and their hostname, where the API server warns on dots.
  const version = props.image.tag
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 63 - `${SYNAPSE_MIGRATION.name}--12345678`.length)
    .replace(/-+$/, '');
  const hash = contentHash(template, files['homeserver.yaml'], files['pgpass.sh'], files['wait_for_schema.py']).slice(0, 8);
  return new k8s.KubeJob(scope, 'migration', {
    metadata: { name: `${SYNAPSE_MIGRATION.name}-${version}-${hash}`, namespace: props.namespace, labels: labels(component), annotations: syncHook(WAVE.schema) },
    spec: { backoffLimit: 10, ttlSecondsAfterFinished: 7 * 24 * 3600, template },
  });
}

/**
 * Synapse: its main process, and, with workers, a Deployment or StatefulSet
 * per worker type behind the router. The media store is a ReadWriteOnce
 * volume on whichever process serves media (the main process, or the one
 * media-repository worker).
 *
 * The process that holds the media volume is a Deployment with the
 * `Recreate` strategy, not RollingUpdate: a rolling update starts the new pod
 * before the old one stops, and when the new pod lands on another node the
 * volume cannot attach there (Multi-Attach) and the rollout hangs. A
 * single-replica StatefulSet would also avoid that, but would make the media
 * claim part of an immutable volumeClaimTemplate.
 */
export class SynapseChart extends Chart {
  /** In-cluster URL of the client/federation and admin API: the router with workers, else the main process (SYNAPSE_HTTP_PORT). */
  public readonly internalUrl: string;
  /** The media store's claim, and the labels that select the pod that mounts it. */
  public readonly mediaClaimName: string;
  public readonly podSelector: Record<string, string>;

  constructor(scope: Construct, id: string, props: SynapseProps) {
    super(scope, id, props);
    const component = { ...SYNAPSE, version: props.image.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    const files = synapseConfigFiles(props);
    const w = props.workers;
    const mediaWorker = w !== undefined && w.replicas['media-repository'] > 0;

    const config = new k8s.KubeConfigMap(this, 'config', { metadata: { name: 'synapse-config', ...meta }, data: files });
    migrationJob(this, props, config.name, files);
    const media = new k8s.KubePersistentVolumeClaim(this, 'media', {
      metadata: { name: 'synapse-media', ...meta },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: props.media.className,
        resources: { requests: { storage: k8s.Quantity.fromString(props.media.size) } },
      },
    });
    this.mediaClaimName = media.name;
    this.podSelector = selectorLabels(mediaWorker ? workerComponent('media-repository') : component);

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
          spec: withScheduling(
            synapsePodSpec(props, { configMap: config.name, mediaClaim: mediaWorker ? undefined : media.name, process: 'main' }),
            props.scheduling,
            selectorLabels(component),
          ),
        },
      },
    });

    const service = new k8s.KubeService(this, 'service', {
      metadata: { name: 'synapse', ...meta },
      spec: {
        selector: selectorLabels(component),
        ports: [
          { name: 'http', port: SYNAPSE_HTTP_PORT, targetPort: k8s.IntOrString.fromString('http') },
          { name: 'proxied', port: SYNAPSE_PROXIED_PORT, targetPort: k8s.IntOrString.fromString('proxied') },
          { name: 'metrics', port: SYNAPSE_METRICS_PORT, targetPort: k8s.IntOrString.fromString('metrics') },
          ...(w ? [{ name: 'replication', port: SYNAPSE_REPLICATION_PORT, targetPort: k8s.IntOrString.fromString('replication') }] : []),
        ],
      },
    });

    if (w !== undefined) {
      for (const type of WORKER_TYPE_NAMES.filter((t) => w.replicas[t] > 0)) {
        this.worker(props, type, w.replicas[type], { configMap: config.name, files, mediaClaim: type === 'media-repository' ? media.name : undefined });
      }
    }

    // Clients reach Synapse through the router when there are workers: callers inside the cluster on one
    // port, the public proxy, whose X-Forwarded-For is believed, on the other.
    const entry = w?.router ?? { service: service.name, port: SYNAPSE_HTTP_PORT, proxiedPort: SYNAPSE_PROXIED_PORT };
    this.internalUrl = `http://${entry.service}.${props.namespace}.svc:${entry.port}`;

    // Only the client/federation API and Synapse's client pages are public;
    // the admin API (/_synapse/admin) stays reachable from inside the cluster only.
    const backends: HttpBackend[] = [
      { path: '/_matrix', service: entry.service, port: entry.proxiedPort },
      { path: '/_synapse/client', service: entry.service, port: entry.proxiedPort },
    ];
    // When the server name is the Matrix host, the delegation path joins Synapse's route.
    const wellKnown = props.wellKnownService;
    if (wellKnown !== undefined) backends.push({ path: WELL_KNOWN_PATH, service: wellKnown.name, port: wellKnown.port });
    exposeHttp(this, 'ingress', {
      name: 'synapse',
      namespace: props.namespace,
      labels: labels(component),
      host: props.publicHost,
      tlsSecret: SYNAPSE_TLS_SECRET,
      backends,
      settings: props.ingress,
      options: { maxBodySize: props.maxUploadSize },
    });
    if (props.adminApiSourceRanges !== undefined) {
      // Its own Ingress: the source-address limit must not reach the client API.
      exposeHttp(this, 'admin-ingress', {
        name: 'synapse-admin',
        namespace: props.namespace,
        labels: labels(component),
        host: props.publicHost,
        tlsSecret: SYNAPSE_TLS_SECRET,
        backends: [{ path: '/_synapse/admin', service: entry.service, port: entry.proxiedPort }],
        settings: props.ingress,
        options: { sourceRanges: props.adminApiSourceRanges },
      });
    }
  }

  /** One worker type: its Deployment or StatefulSet, its headless Service (the router and replication find each pod by it) and a budget. */
  private worker(props: SynapseProps, type: WorkerTypeName, replicas: number, v: { configMap: string; files: Record<string, string>; mediaClaim?: string }): void {
    const t = WORKER_TYPES[type] as WorkerType;
    const component = { ...workerComponent(type), version: props.image.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    // A worker restarts when the shared config or its own file changes.
    const hash = contentHash(v.files['homeserver.yaml'], v.files['log.yaml'], v.files['pgpass.sh'], v.files['wait_for_schema.py'], v.files[`worker-${type}.yaml`]);
    // The replicas of one type on different nodes, and zones, where the cluster has them: a lost node or zone
    // takes one of them, not all. Preferences only, so a small cluster still runs every replica. An operator's
    // own zone constraint replaces ours (the API refuses two with the same key).
    const own = { matchLabels: selectorLabels(component) };
    const zone = 'topology.kubernetes.io/zone';
    const operatorZone = (props.workers?.scheduling?.topologySpreadConstraints ?? []).some((c) => c.topologyKey === zone);
    const spread: Pick<k8s.PodSpec, 'affinity' | 'topologySpreadConstraints'> = {
      affinity: {
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { labelSelector: own, topologyKey: 'kubernetes.io/hostname' } }],
        },
      },
      ...(operatorZone ? {} : { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: zone, whenUnsatisfiable: 'ScheduleAnyway', labelSelector: own }] }),
    };
    const template: k8s.PodTemplateSpec = {
      metadata: { labels: labels(component), annotations: { [CONFIG_HASH_ANNOTATION]: hash } },
      spec: withScheduling(
        { ...synapsePodSpec(props, { configMap: v.configMap, mediaClaim: v.mediaClaim, process: type }), ...spread },
        props.workers?.scheduling,
        selectorLabels(component),
      ),
    };
    const service = new k8s.KubeService(this, `${type}-service`, {
      metadata: { name: component.name, ...meta },
      spec: {
        clusterIp: 'None',
        // The router resolves every replica's address, ready or not, and checks them itself.
        publishNotReadyAddresses: t.workload === 'statefulset',
        selector: selectorLabels(component),
        ports: [
          { name: 'proxied', port: SYNAPSE_PROXIED_PORT, targetPort: k8s.IntOrString.fromString('proxied') },
          { name: 'metrics', port: SYNAPSE_METRICS_PORT, targetPort: k8s.IntOrString.fromString('metrics') },
          ...(t.replication ? [{ name: 'replication', port: SYNAPSE_REPLICATION_PORT, targetPort: k8s.IntOrString.fromString('replication') }] : []),
        ],
      },
    });
    if (t.workload === 'statefulset') {
      const sts = new k8s.KubeStatefulSet(this, type, {
        metadata: { name: component.name, ...meta },
        spec: {
          serviceName: service.name,
          replicas,
          // Writers start and stop together: the main process and the others wait for all of them anyway.
          podManagementPolicy: 'Parallel',
          selector: { matchLabels: selectorLabels(component) },
          template,
        },
      });
      // With the main process, not with the databases: a worker becomes ready only once the main process has the schema in place.
      setSyncWave(sts, WAVE.homeserver);
    } else {
      new k8s.KubeDeployment(this, type, {
        metadata: { name: component.name, ...meta },
        spec: {
          replicas,
          // The media worker holds the ReadWriteOnce media volume; a single named worker must never run twice.
          strategy: t.max === 1 ? { type: 'Recreate' } : undefined,
          selector: { matchLabels: selectorLabels(component) },
          template,
        },
      });
    }
    if (replicas > 1) {
      new k8s.KubePodDisruptionBudget(this, `${type}-disruption-budget`, {
        metadata: { name: component.name, ...meta },
        spec: { maxUnavailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: selectorLabels(component) } },
      });
    }
  }
}
