/**
 * Synapse's homeserver.yaml: the stack's own settings, each worker type's file, and the rules for the operator's
 * settings on top (synapse.extraConfig). Apart from the chart (synapse.ts) so the config's checks can use the rules
 * without importing a chart: this module imports no chart and nothing of the config.
 */
import { DB_CA_FILE, DatabaseConnection } from './database';
import { TURN_PORT, TURN_TLS_PORT } from './ports';
import { MediaRetention, MessageRetention, retentionSettings } from './synapse-retention';
import { WORKER_TYPE_NAMES, WORKER_TYPES, WorkerType, WorkerTypeName } from './synapse-workers';

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
export const EXTRA_SECRETS_FOLDER = 'extra';
export const SYNAPSE_EXTRA_SECRETS_DIR = `${SYNAPSE_SECRETS_DIR}/${EXTRA_SECRETS_FOLDER}`;
export const SYNAPSE_MEDIA_DIR = '/media';
/** In-memory; holds the libpq password file the init container writes. */
export const SYNAPSE_RUN_DIR = '/run/synapse';

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

/**
 * coturn for Synapse's legacy 1:1 VoIP calls, with REST credentials from the shared secret. LiveKit's built-in TURN
 * (coturn.enabled false) cannot take its place: it relays only to LiveKit and accepts only LiveKit's credentials.
 */
function turnSettings(t: SynapseTurn, secret: (name: string) => string): Record<string, unknown> {
  return {
    turn_uris: [`turns:${t.host}:${TURN_TLS_PORT}?transport=tcp`, `turn:${t.host}:${TURN_PORT}?transport=udp`, `turn:${t.host}:${TURN_PORT}?transport=tcp`],
    turn_shared_secret_path: secret('turn_shared_secret'),
    turn_user_lifetime: `${t.ttlSeconds}s`,
    turn_allow_guests: false,
  };
}

/** What the stack's homeserver.yaml settings are made of. */
export interface HomeserverInputs {
  readonly namespace: string;
  /** The Matrix server name (the domain part of user IDs). */
  readonly serverName: string;
  /** The host clients and federation reach Synapse on (behind the Ingress, on 443). */
  readonly publicHost: string;
  readonly reportStats: boolean;
  /** Largest upload, in Synapse's syntax ("100M"). */
  readonly maxUploadSize: string;
  readonly enableRegistration: boolean;
  readonly database: SynapseDatabase;
  /** @default - no TURN servers for Synapse's own 1:1 calls (coturn.enabled false) */
  readonly turn?: SynapseTurn;
  /** @default - one process */
  readonly workers?: HomeserverWorkers;
  /** @default - media is kept */
  readonly mediaRetention?: MediaRetention;
  /** @default - off */
  readonly retention?: MessageRetention;
}

/** What homeserver.yaml says of the workers (SynapseWorkers in synapse.ts has the rest). */
export interface HomeserverWorkers {
  /** How many of each type run; 0 leaves its work to the main process. */
  readonly replicas: Readonly<Record<WorkerTypeName, number>>;
  /** Redis, which carries replication between the processes. */
  readonly redis: { readonly host: string; readonly port: number };
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

export function homeserverSettings(p: HomeserverInputs): Record<string, unknown> {
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
    ...(p.turn !== undefined ? turnSettings(p.turn, secret) : {}),
    ...(p.workers ? sharedWorkerConfig(p, p.workers, secret) : {}),
  };
  if (p.workers) {
    // The main process also listens for replication from the workers.
    homeserver.listeners.push(replicationListener());
  }
  return homeserver;
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
function sharedWorkerConfig(p: HomeserverInputs, w: HomeserverWorkers, secret: (f: string) => string): Record<string, unknown> {
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
export function workerConfig(type: WorkerTypeName): Record<string, unknown> {
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
  const everyWorker: HomeserverWorkers = {
    replicas: Object.fromEntries(WORKER_TYPE_NAMES.map((t) => [t, 1])) as Record<WorkerTypeName, number>,
    redis: { host: 'x', port: 6379 },
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
