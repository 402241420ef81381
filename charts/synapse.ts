import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ImageConfig, ResourcesConfig, SecretRef, StorageConfig, TURN_PORT, TURN_TLS_PORT } from './config';
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
import { MediaRetention, MessageRetention, retentionSettings } from './synapse-retention';
import { setSyncWave, syncHook, WAVE } from './argocd';
import { databaseCaVolume, DatabaseConnection, DB_CA_DIR, DB_CA_FILE } from './database';
import { PodScheduling, withScheduling } from './pods';
import { exposeHttp, HttpBackend, IngressSettings } from './tls';
import { WELL_KNOWN_PATH } from './well-known';
import { toYaml } from './yaml-out';

/** Synapse's identity (NetworkPolicies and the backups' affinity select it by it). */
export const SYNAPSE = { name: 'synapse', component: 'homeserver' } as const;
/**
 * The schema migration Job's. Not SYNAPSE's component, although it runs Synapse's code: the restore runbook waits for
 * every pod of that component to be gone, and a finished Job's pod stays (its own NetworkPolicy admits it).
 */
export const SYNAPSE_MIGRATION = { name: 'synapse-migrate', component: 'schema-migration' } as const;
/**
 * Client address and X-Forwarded-For: Synapse counts an address per request (rate limits, the sessions'
 * IPs an admin sees). On SYNAPSE_HTTP_PORT it is the connection's, whatever the caller writes in the header:
 * the port for callers inside the cluster (the app, the Jobs). On SYNAPSE_PROXIED_PORT (x_forwarded) it is
 * the one the header names, so only the public proxy, or the router in front of the workers, may reach it.
 */
export const SYNAPSE_HTTP_PORT = 8008;
export const SYNAPSE_PROXIED_PORT = 8009;
export const SYNAPSE_METRICS_PORT = 9000;
/** HTTP replication between Synapse's processes (never public). */
export const SYNAPSE_REPLICATION_PORT = 9093;
export const SYNAPSE_CONFIG_DIR = '/config';
export const SYNAPSE_SECRETS_DIR = '/secrets';
/**
 * The operator's own Secret files (synapse.extraSecretFiles), for extraConfig's *_path
 * settings: in the same volume as the stack's, one folder down, so no name collides and
 * no second mount sits inside a read-only one.
 */
const EXTRA_SECRETS_FOLDER = 'extra';
export const SYNAPSE_EXTRA_SECRETS_DIR = `${SYNAPSE_SECRETS_DIR}/${EXTRA_SECRETS_FOLDER}`;
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
  /** With workers: Redis, and the secret the processes authenticate replication with. */
  readonly redisPassword: SecretRef;
  readonly workerReplicationSecret: SecretRef;
}

/** Synapse's workers (synapse-workers.ts has the types and their paths). */
export interface SynapseWorkers {
  /** How many of each type run; 0 leaves its work to the main process. */
  readonly replicas: Readonly<Record<WorkerTypeName, number>>;
  /** Each worker process's resources and database pool. */
  readonly resources: ResourcesConfig;
  readonly poolMin: number;
  readonly poolMax: number;
  /** Redis, which carries replication between the processes. */
  readonly redis: { readonly host: string; readonly port: number };
  /**
   * The Service clients and the app reach Synapse through: the router in front of the processes, on the port
   * for callers inside the cluster and on the public proxy's (see SYNAPSE_PROXIED_PORT).
   */
  readonly router: { readonly service: string; readonly port: number; readonly proxiedPort: number };
  /** Where the worker processes may run. @default - anywhere */
  readonly scheduling?: PodScheduling;
}

/** The database connection and the main process's pool. */
export interface SynapseDatabase extends DatabaseConnection {
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

/** The identity of a worker type's pods: name synapse-<type>, component homeserver like the main process. */
export function workerComponent(type: WorkerTypeName): { name: string; component: string } {
  return { name: `synapse-${type}`, component: SYNAPSE.component };
}

/** Labels every Synapse process carries, main or worker (NetworkPolicies select them all by it). */
export const ALL_SYNAPSE_PROCESSES: Record<string, string> = { 'app.kubernetes.io/component': SYNAPSE.component, 'app.kubernetes.io/part-of': 'kudo' };

/** The worker names the shared config lists, for the types that run. */
function workerNames(type: WorkerTypeName, replicas: number): string[] {
  const t = WORKER_TYPES[type] as WorkerType;
  const base = workerComponent(type).name;
  if (t.workload === 'statefulset') return Array.from({ length: replicas }, (_, i) => `${base}-${i}`);
  return replicas > 0 ? [base] : [];
}

/** What the stack's homeserver.yaml settings are made of. */
type HomeserverInputs = Pick<
  SynapseProps,
  'namespace' | 'serverName' | 'publicHost' | 'reportStats' | 'maxUploadSize' | 'enableRegistration' | 'database' | 'turn' | 'workers' | 'mediaRetention' | 'retention'
>;

/** The stack's own homeserver.yaml settings; the operator's extraConfig goes on top. */
function homeserverSettings(p: HomeserverInputs): Record<string, unknown> {
  const secret = (file: string) => `${SYNAPSE_SECRETS_DIR}/${file}`;
  const homeserver: Record<string, unknown> & { listeners: Record<string, unknown>[] } = {
    server_name: p.serverName,
    public_baseurl: `https://${p.publicHost}/`,
    report_stats: p.reportStats,
    listeners: [
      httpListener(SYNAPSE_HTTP_PORT, false, ['client', 'federation']),
      httpListener(SYNAPSE_PROXIED_PORT, true, ['client', 'federation']),
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
        ...(p.database.tls !== undefined ? { sslmode: p.database.tls.sslmode } : {}),
        ...(p.database.tls?.ca !== undefined ? { sslrootcert: DB_CA_FILE } : {}),
      },
    },
    log_config: `${SYNAPSE_CONFIG_DIR}/log.yaml`,
    media_store_path: SYNAPSE_MEDIA_DIR,
    max_upload_size: p.maxUploadSize,
    ...retentionSettings(p.mediaRetention, p.retention),
    enable_registration: p.enableRegistration,
    signing_key_path: secret('signing.key'),
    macaroon_secret_key_path: secret('macaroon_secret_key'),
    form_secret_path: secret('form_secret'),
    registration_shared_secret_path: secret('registration_shared_secret'),
    trusted_key_servers: [{ server_name: 'matrix.org' }],
    suppress_key_server_warning: true,
    turn_uris: [`turns:${p.turn.host}:${TURN_TLS_PORT}?transport=tcp`, `turn:${p.turn.host}:${TURN_PORT}?transport=udp`, `turn:${p.turn.host}:${TURN_PORT}?transport=tcp`],
    turn_shared_secret_path: secret('turn_shared_secret'),
    turn_user_lifetime: `${p.turn.ttlSeconds}s`,
    turn_allow_guests: false,
    ...(p.workers ? sharedWorkerConfig(p, p.workers, secret) : {}),
  };
  if (p.workers) {
    // The main process also listens for replication from the workers.
    homeserver.listeners.push(replicationListener());
  }
  return homeserver;
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

/** An HTTP listener; `forwarded`: the client address is the one X-Forwarded-For names (x_forwarded). */
const httpListener = (port: number, forwarded: boolean, names: string[]) => ({
  port,
  type: 'http',
  tls: false,
  x_forwarded: forwarded,
  bind_addresses: ['0.0.0.0'],
  resources: [{ names, compress: false }],
});

const replicationListener = () => ({
  port: SYNAPSE_REPLICATION_PORT,
  type: 'http',
  tls: false,
  bind_addresses: ['0.0.0.0'],
  resources: [{ names: ['replication'], compress: false }],
});

/** What the shared homeserver.yaml says about the workers: who writes which stream, who sends federation, where everyone is. */
function sharedWorkerConfig(p: HomeserverInputs, w: SynapseWorkers, secret: (f: string) => string): Record<string, unknown> {
  const names = (t: WorkerTypeName) => workerNames(t, w.replicas[t]);
  const instanceMap: Record<string, { host: string; port: number }> = {
    main: { host: `synapse.${p.namespace}.svc`, port: SYNAPSE_REPLICATION_PORT },
  };
  for (const t of WORKER_TYPE_NAMES.filter((x) => (WORKER_TYPES[x] as WorkerType).replication)) {
    const service = workerComponent(t).name;
    for (const n of names(t)) instanceMap[n] = { host: `${n}.${service}.${p.namespace}.svc`, port: SYNAPSE_REPLICATION_PORT };
  }
  const streamWriters: Record<string, string | string[]> = {};
  for (const t of WORKER_TYPE_NAMES) {
    for (const stream of (WORKER_TYPES[t] as WorkerType).streams ?? []) {
      // events may have several writers (sharded by room); every other stream has one.
      if (names(t).length > 0) streamWriters[stream] = stream === 'events' ? names(t) : names(t)[0];
    }
  }
  const out: Record<string, unknown> = {
    redis: { enabled: true, host: w.redis.host, port: w.redis.port, password_path: secret('redis_password'), dbid: 1 },
    worker_replication_secret_path: secret('worker_replication_secret'),
    instance_map: instanceMap,
  };
  if (Object.keys(streamWriters).length > 0) out.stream_writers = streamWriters;
  const senders = names('federation-sender');
  if (senders.length > 0) {
    out.federation_sender_instances = senders;
    // Only the senders reach other servers; the rest send through them (NetworkPolicies hold them to it).
    out.outbound_federation_restricted_to = senders;
  }
  const [background] = names('background');
  if (background !== undefined) {
    out.run_background_tasks_on = background;
    out.update_user_directory_from_worker = background;
    out.notify_appservices_from_worker = background;
  }
  const [media] = names('media-repository');
  if (media !== undefined) {
    // Only the media worker serves media and runs its background jobs (it turns this back on).
    out.enable_media_repo = false;
    out.media_instance_running_background_jobs = media;
  }
  return out;
}

/** One worker type's own config file, read after homeserver.yaml (and before the file with its name). */
function workerConfig(type: WorkerTypeName): Record<string, unknown> {
  const t = WORKER_TYPES[type] as WorkerType;
  // Every worker gets the HTTP listener: for its routed paths, or only for /health (the probes).
  let names = ['health'];
  if (t.app === 'synapse.app.media_repository') names = ['media', 'client', 'federation'];
  else if (t.http) names = ['client', 'federation'];
  // Only the router reaches a worker, and it sets X-Forwarded-For on every request (see SYNAPSE_PROXIED_PORT).
  const listeners: Record<string, unknown>[] = [httpListener(SYNAPSE_PROXIED_PORT, true, names), { port: SYNAPSE_METRICS_PORT, type: 'metrics', bind_addresses: ['0.0.0.0'] }];
  if (t.replication) listeners.push(replicationListener());
  return {
    worker_app: t.app,
    worker_listeners: listeners,
    worker_log_config: `${SYNAPSE_CONFIG_DIR}/log.yaml`,
    ...(t.app === 'synapse.app.media_repository' ? { enable_media_repo: true } : {}),
  };
}

/**
 * Keys the stack writes that the operator may replace through extraConfig: the
 * notary servers (an isolated homeserver lists none, or its own).
 */
const OPERATOR_MAY_REPLACE = new Set(['trusted_key_servers', 'suppress_key_server_warning']);

/** Why the stack keeps a homeserver.yaml key, for the keys whose reason is not one of the families below. */
const MANAGED_WHY: Record<string, string> = {
  server_name: 'set serverName',
  public_baseurl: 'set hosts.matrix',
  report_stats: 'set synapse.reportStats',
  enable_registration: 'set synapse.enableRegistration',
  max_upload_size: 'set synapse.maxUploadSize; the Ingress body-size limit follows it',
  log_config: 'set synapse.logLevel',
  listeners: "the Services, probes, router and NetworkPolicies are built around the stack's listeners",
  enable_metrics: 'the metrics listener is always on; monitoring.enabled scrapes it',
  database: 'set postgres.*; the password comes from a Secret file, and the pool from synapse.databasePool',
  media_store_path: 'it is where the media volume (synapse.media) is mounted',
  media_retention: 'set synapse.mediaRetention',
  retention: 'set synapse.retention',
  // Written by each worker's init step, not by synapseConfigFiles.
  worker_name: 'each worker process is named after its pod',
};

/** Families of keys, by prefix: the stack owns the whole family. */
const MANAGED_FAMILIES: Record<string, string> = {
  turn_: "TURN is the stack's coturn (hosts.turn, coturn.credentialTtlSeconds, the shared secret from secrets.refs.turnSharedSecret)",
  worker_: "each worker process's settings follow synapse.workers",
};

/**
 * The top-level keys the stack writes and why, found by rendering the settings
 * with every option that adds keys (workers of every type, a database CA), so
 * the refused set is what synapseConfigFiles writes and cannot fall behind it.
 * The inline forms of the secret files are refused with them.
 */
let managedKeyTable: Map<string, string> | undefined;
function managedKeys(): Map<string, string> {
  if (managedKeyTable !== undefined) return managedKeyTable;
  const ref = { name: 'x', key: 'x' };
  const base: HomeserverInputs = {
    namespace: 'x',
    serverName: 'x.example',
    publicHost: 'x.example',
    reportStats: false,
    maxUploadSize: '1M',
    enableRegistration: false,
    database: { host: 'x', port: 5432, name: 'x', user: 'x', password: ref, tls: { sslmode: 'verify-full', ca: { kind: 'Secret', name: 'x', key: 'x' } }, poolMin: 1, poolMax: 1 },
    turn: { host: 'x.example', ttlSeconds: 60 },
  };
  const everyWorker: SynapseWorkers = {
    replicas: Object.fromEntries(WORKER_TYPE_NAMES.map((t) => [t, 1])) as Record<WorkerTypeName, number>,
    resources: { requests: { cpu: '1', memory: '1Mi' }, limits: { cpu: '1', memory: '1Mi' } },
    poolMin: 1,
    poolMax: 1,
    redis: { host: 'x', port: 6379 },
    router: { service: 'x', port: 8008, proxiedPort: 8009 },
  };
  const alone = homeserverSettings(base);
  const withWorkers = homeserverSettings({ ...base, workers: everyWorker });
  const table = new Map<string, string>();
  const workersWhy = 'it follows synapse.workers (the worker processes, their streams and replication)';
  for (const [key, value] of Object.entries(withWorkers)) {
    const family = Object.keys(MANAGED_FAMILIES).find((f) => key.startsWith(f));
    const secretFile = typeof value === 'string' && value.startsWith(`${SYNAPSE_SECRETS_DIR}/`);
    const why =
      MANAGED_WHY[key] ??
      (family !== undefined ? MANAGED_FAMILIES[family] : undefined) ??
      (secretFile ? 'it names a Secret file of secrets.refs' : undefined) ??
      (!(key in alone) ? workersWhy : 'the stack writes it (charts/synapse.ts)');
    if (!OPERATOR_MAY_REPLACE.has(key)) table.set(key, why);
    // Synapse refuses a secret and its file together; the inline form would also put the secret in the ConfigMap.
    if (secretFile && key.endsWith('_path')) table.set(key.slice(0, -'_path'.length), `the stack sets ${key} to a Secret file of secrets.refs, and Synapse refuses both`);
  }
  for (const t of WORKER_TYPE_NAMES) for (const key of Object.keys(workerConfig(t))) if (!table.has(key)) table.set(key, workersWhy);
  for (const [key, why] of Object.entries(MANAGED_WHY)) if (!table.has(key)) table.set(key, why);
  return (managedKeyTable = table);
}

/**
 * Settings that carry a secret inline, with the file form Synapse reads instead
 * (a sibling key), or, where it has none, what to do. `[]` stands for any list
 * item. Other keys named like a secret (…secret, …password, …pass, …token,
 * …secret_key, …private_key) with a string value are refused too, pointing
 * at their `_path` form.
 */
const INLINE_SECRETS: Record<string, { readonly file?: string; readonly instead?: string; readonly allow?: (v: unknown) => boolean }> = {
  'email.smtp_pass': { instead: "use an SMTP relay that accepts Synapse without a password (one inside the cluster can hold the provider's credentials)" },
  'oidc_providers[].client_secret': { file: 'client_secret_path' },
  'oidc_providers[].client_secret_jwt_key.key': { file: 'key_file' },
  recaptcha_private_key: { file: 'recaptcha_private_key_path' },
  // Not secret, but Synapse refuses it inline under --no-secrets-in-config.
  recaptcha_public_key: { file: 'recaptcha_public_key_path' },
  'matrix_authentication_service.secret': { file: 'secret_path' },
  'experimental_features.msc3861.client_secret': { file: 'client_secret_path' },
  'experimental_features.msc3861.admin_token': { file: 'admin_token_path' },
  // With RS256/ES256 it is the provider's public key, which may stay inline.
  'jwt_config.secret': {
    instead: 'use an asymmetric algorithm (RS256, ES256) and put its PEM public key here',
    allow: (v) => typeof v === 'string' && /^-----BEGIN PUBLIC KEY-----/.test(v.trim()),
  },
  'manhole_settings.password': { instead: 'leave the manhole off: it is a Python shell into Synapse' },
};
const SECRET_NAME = /(^|_)(secret|password|pass|token)$|(^|_)(secret|private)_key$/;

/**
 * What is wrong with the operator's homeserver.yaml settings (synapse.extraConfig):
 * keys the stack writes, secrets written inline (homeserver.yaml is a ConfigMap,
 * and in Git with dist/), and references to files in SYNAPSE_EXTRA_SECRETS_DIR
 * that `files` (synapse.extraSecretFiles) does not mount.
 */
export function extraConfigProblems(extra: Readonly<Record<string, unknown>>, files: readonly string[]): string[] {
  const problems: string[] = [];
  const managed = managedKeys();
  const where = (path: string) => `synapse.extraConfig.${path}`;
  const plaintext = 'a secret here would sit in plain text in the synapse-config ConfigMap (and in Git with the rendered files)';
  const walk = (value: unknown, path: string, key: string | undefined): void => {
    if (key !== undefined && value !== null && value !== undefined) {
      const known = INLINE_SECRETS[path.replace(/\[[0-9]+\]/g, '[]')];
      if (known !== undefined && !known.allow?.(value)) {
        problems.push(
          known.file !== undefined
            ? `${where(path)}: ${plaintext}; set ${known.file} beside it to a file of synapse.extraSecretFiles (${SYNAPSE_EXTRA_SECRETS_DIR}/<file>) instead`
            : `${where(path)}: ${plaintext}, and Synapse reads it from nowhere else; ${known.instead}`,
        );
      } else if (known === undefined && typeof value === 'string' && SECRET_NAME.test(key)) {
        problems.push(
          `${where(path)}: looks like a secret, and ${plaintext}; set its file form (${key}_path, where Synapse has one) ` +
            `to a file of synapse.extraSecretFiles (${SYNAPSE_EXTRA_SECRETS_DIR}/<file>) instead`,
        );
      }
    }
    if (typeof value === 'string' && value.startsWith(`${SYNAPSE_EXTRA_SECRETS_DIR}/`)) {
      const file = value.slice(SYNAPSE_EXTRA_SECRETS_DIR.length + 1);
      if (!files.includes(file)) {
        problems.push(
          `${where(path)}: ${value} is not mounted; synapse.extraSecretFiles ` +
            `${files.length > 0 ? `mounts only ${files.map((f) => `"${f}"`).join(', ')}` : 'is empty'} (add { secret, key, file: "${file}" })`,
        );
      }
    } else if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${path}[${i}]`, undefined));
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walk(v, `${path}.${k}`, k);
    } else if (typeof value === 'number' && !Number.isFinite(value)) {
      problems.push(`${where(path)}: ${value} is not a number homeserver.yaml can hold`);
    }
  };
  for (const [key, value] of Object.entries(extra)) {
    const family = Object.keys(MANAGED_FAMILIES).find((f) => key.startsWith(f));
    const why = managed.get(key) ?? (family !== undefined ? MANAGED_FAMILIES[family] : undefined);
    if (why !== undefined) problems.push(`${where(key)}: kept by the stack: ${why}`);
    else walk(value, key, key);
  }
  return problems;
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
    turn_shared_secret: s.turnSharedSecret,
  };
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
