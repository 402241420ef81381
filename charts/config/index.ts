/**
 * The one typed configuration of the Kudo stack.
 *
 * A YAML file (selected with KUDO_CONFIG) is parsed, checked against the
 * schema (charts/config/schema/: a fragment per component, assembled in index.ts)
 * and completed with the embedded defaults, once, before any chart is built. Every rejection is a ConfigError whose message names the
 * key path, what was found and what is allowed.
 */
import * as fs from 'fs';
import type * as JsYaml from 'js-yaml';
import type { z } from 'zod';
import { INGRESS_CONTROLLER } from '../ingress-controllers';
import { withImagesFrom } from '../pods';
import { extraConfigProblems } from '../synapse-homeserver';
import { configSchema, PRODUCTION_PROFILE, RawConfig } from './schema';
import { argocdProblems } from './schema/argocd';
import { backupS3Problems } from './schema/backup';
import { coturnProblems, hostPortProblems } from './schema/coturn';
import { livekitPodNetworkProblems, livekitProblems, livekitTurnProblems } from './schema/livekit';
import { redisClosedProblems } from './schema/network-policies';
import { gatewayApiProblems } from './schema/routing';
import { CPU_QUANTITY, MEMORY_QUANTITY } from './schema/shared';
import { retentionProblems } from '../synapse-retention';
import { WORKER_TYPE_NAMES, WORKER_TYPES, WorkerType, WorkerTypeName } from '../synapse-workers';

export { configSchema, forgetConfigSchema, KudoConfigInput, PRODUCTION_PROFILE, RawConfig } from './schema';
export { CPU_QUANTITY, MEMORY_QUANTITY } from './schema/shared';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const QUANTITY_UNIT: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** Bytes in a memory quantity such as "512Mi" or "2G". */
/** PostgreSQL's major version at the start of an image tag ("17.11-bookworm", "18.1-standard-bookworm", "18"). */
const POSTGRES_TAG_MAJOR = /^(\d+)(?:[.-]|$)/;

/** The major version a PostgreSQL image tag begins with, or undefined when it does not begin with one. */
export function postgresTagMajor(tag: string): number | undefined {
  const m = POSTGRES_TAG_MAJOR.exec(tag);
  return m === null ? undefined : Number(m[1]);
}

export function memoryBytes(quantity: string): number {
  const m = MEMORY_QUANTITY.exec(quantity);
  if (!m) throw new Error(`not a memory quantity: "${quantity}"`);
  return Number(m[1]) * QUANTITY_UNIT[m[2] ?? ''];
}

/** Cores in a CPU quantity such as "2", "0.5" or "500m". */
export function cpuCores(quantity: string | number): number {
  const m = CPU_QUANTITY.exec(String(quantity));
  if (!m) throw new Error(`not a CPU quantity: ${quantity}`);
  return m[2] === 'm' ? Number(m[1]) / 1000 : Number(m[1]) * QUANTITY_UNIT[m[2] ?? ''];
}

export type ImageConfig = RawConfig['postgres']['image'];
export type ResourcesConfig = RawConfig['postgres']['resources'];
export type StorageConfig = RawConfig['postgres']['storage'];
export type SecretRefs = RawConfig['secrets']['refs'];
export type SecretRef = SecretRefs['postgresPassword'];
export type PostgresMode = RawConfig['postgres']['mode'];

/** The validated config with every derived default filled in. */
export interface KudoConfig extends Omit<RawConfig, 'serverName' | 'hosts' | 'ingress' | 'gatewayApi'> {
  readonly serverName: string;
  readonly hosts: { readonly matrix: string; readonly livekit: string; readonly turn: string };
  readonly ingress: RawConfig['ingress'] & { readonly className: string; readonly namespace: string };
  readonly gatewayApi: RawConfig['gatewayApi'] & { readonly gatewayNamespace: string; readonly proxyNamespace: string };
  /** Where public traffic (and ACME HTTP-01 challenges) reaches the stack from: the ingress controller's or the Gateway proxies' namespace. */
  readonly publicTrafficNamespace: string;
}

/** Fixed ports and the port arithmetic the charts share (charts/ports.ts). */
export { LIVEKIT_API_PORT, LIVEKIT_METRICS_PORT, LIVEKIT_PORTS_PER_PARTICIPANT, NODE_PORT_RANGE, relayPortPairs, TURN_METRICS_PORT, TURN_PORT, TURN_TLS_PORT } from '../ports';

/** Connections kept free for backups and for an administrator's psql. */
export const POSTGRES_RESERVED_CONNECTIONS = 10;

/** A worker type's key under synapse.workers.replicas: its name camel-cased (client-reader: clientReader). */
function replicasKey(t: WorkerTypeName): keyof KudoConfig['synapse']['workers']['replicas'] {
  return t.replace(/-([a-z])/g, (_, l: string) => l.toUpperCase()) as keyof KudoConfig['synapse']['workers']['replicas'];
}

/** How many of each worker type run (none when workers are off). */
export function workerReplicas(c: KudoConfig): Record<WorkerTypeName, number> {
  const w = c.synapse.workers;
  return Object.fromEntries(WORKER_TYPE_NAMES.map((t) => [t, w.enabled ? w.replicas[replicasKey(t)] : 0])) as Record<WorkerTypeName, number>;
}

/** Connections Synapse may open at once: every process has a pool of its own. */
export function synapseConnections(c: KudoConfig): { total: number; explained: string } {
  const main = c.synapse.databasePool.max;
  const processes = Object.values(workerReplicas(c)).reduce((a, b) => a + b, 0);
  if (processes === 0) return { total: main, explained: `synapse.databasePool.max (${main})` };
  const per = c.synapse.workers.databasePool.max;
  return {
    total: main + processes * per,
    explained: `synapse.databasePool.max (${main}) + ${processes} worker processes x synapse.workers.databasePool.max (${per})`,
  };
}

/** Validates an already-parsed config object (e.g. from YAML) and applies the defaults. */
export function resolveConfig(input: unknown, source = 'config'): KudoConfig {
  if (input === null || input === undefined) input = {};
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new ConfigError(`${source}: the top level must be a mapping of keys, found ${describe(input)}`);
  }
  const moved = movedKeys(input as Record<string, unknown>);
  if (moved.length > 0) throw new ConfigError(`${source} is invalid:\n${moved.map((l) => `  - ${l}`).join('\n')}`);
  // The profile supplies defaults underneath the user's keys; the schema checks the profile value itself.
  const profile = (input as Record<string, unknown>).profile;
  const withProfile = profile === 'production' ? deepMerge(PRODUCTION_PROFILE, input as Record<string, unknown>) : input;
  const result = configSchema().safeParse(withProfile);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => formatIssue(issue, input));
    throw new ConfigError(`${source} is invalid:\n${lines.map((l) => `  - ${l}`).join('\n')}`);
  }
  // One place for the mirror: every image setting, so every image reference, names it.
  const raw = result.data.imageRegistry !== undefined ? withImagesFrom(result.data, result.data.imageRegistry) : result.data;
  const controller = INGRESS_CONTROLLER[raw.ingress.controller];
  const ingress = { ...raw.ingress, className: raw.ingress.className ?? controller.className, namespace: raw.ingress.namespace ?? controller.namespace };
  const gatewayNamespace = raw.gatewayApi.gatewayNamespace ?? raw.namespaces.stack;
  const gatewayApi = { ...raw.gatewayApi, gatewayNamespace, proxyNamespace: raw.gatewayApi.proxyNamespace ?? gatewayNamespace };
  const config: KudoConfig = {
    ...raw,
    serverName: raw.serverName ?? raw.domain,
    hosts: {
      matrix: raw.hosts.matrix ?? `matrix.${raw.domain}`,
      livekit: raw.hosts.livekit ?? `livekit.${raw.domain}`,
      turn: raw.hosts.turn ?? `turn.${raw.domain}`,
    },
    ingress,
    gatewayApi,
    publicTrafficNamespace: raw.routing === 'gateway-api' ? gatewayApi.proxyNamespace : ingress.namespace,
  };
  const unused = unusedDatabaseKeys(input as Record<string, unknown>, config);
  if (unused.length > 0) throw new ConfigError(`${source} is invalid:\n${unused.map((l) => `  - ${l}`).join('\n')}`);
  checkCombinations(config, source);
  return config;
}

/** Set by scripts/build.mjs to the resolved defaults, so rendering them needs no schema at run time. */
declare const __KUDO_DEFAULT_CONFIG__: KudoConfig | undefined;
/** The embedded defaults, resolved (at build time in the bundle, else now). */
export function defaultConfig(): KudoConfig {
  return typeof __KUDO_DEFAULT_CONFIG__ !== 'undefined' ? __KUDO_DEFAULT_CONFIG__ : resolveConfig({}, 'embedded defaults');
}

/** Reads and validates a YAML config file; `undefined` selects the embedded defaults. */
export function loadConfig(file: string | undefined): KudoConfig {
  if (file === undefined || file === '') return defaultConfig();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`${file}: cannot read the config file (${code === 'ENOENT' ? 'no such file' : (code ?? String(e))})`);
  }
  // Loaded here, not at the top: rendering the embedded defaults never parses YAML.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const yaml = require('js-yaml') as typeof JsYaml;
  let parsed: unknown;
  try {
    // YAML 1.2's core types ("no" stays a string), plus 1.1's merge key (<<), which configs use with anchors.
    // js-yaml exports its merge type (types.merge); its type definitions do not declare it.
    const { merge } = (yaml as unknown as { types: { merge: JsYaml.Type } }).types;
    parsed = yaml.load(text, { filename: file, schema: yaml.CORE_SCHEMA.extend({ implicit: [merge] }) });
  } catch (e) {
    const err = e as JsYaml.YAMLException;
    const where = err.mark ? ` at line ${err.mark.line + 1}, column ${err.mark.column + 1}` : '';
    throw new ConfigError(`${file}: malformed YAML${where}: ${err.reason ?? err.message}`);
  }
  if (parsed === null || parsed === undefined) {
    // Most likely a file not saved yet, or the wrong path: rendering example.com instead would go unnoticed.
    throw new ConfigError(`${file} is empty: write at least your domain (domain: chat.example.org), or unset KUDO_CONFIG to render the embedded example.com defaults`);
  }
  return resolveConfig(parsed, file);
}

/**
 * The checks that span keys, each component's in its turn (the order of the lines of a refusal): those of one component
 * beside its schema fragment (charts/config/schema/), those that read the resolved names here.
 */
function checkCombinations(c: KudoConfig, source: string): void {
  const problems: string[] = [
    ...synapseDatabaseProblems(c),
    ...livekitProblems(c),
    ...livekitPodNetworkProblems(c),
    ...livekitTurnProblems(c),
    ...coturnProblems(c),
    ...hostPortProblems(c),
    ...gatewayApiProblems(c),
    ...argocdProblems(c),
    ...adminApiProblems(c),
    ...databaseProblems(c),
    ...redisClosedProblems(c),
    ...backupS3Problems(c),
    ...offsiteProblems(c),
    ...backupSizeProblems(c),
    ...secretsRestoreProblems(c),
    ...namespaceAndHostProblems(c),
    ...synapseExtraProblems(c),
    ...retentionProblems(c.synapse.retention),
    ...adminUserProblems(c),
  ];
  if (problems.length > 0) {
    throw new ConfigError(`${source} is invalid:\n${problems.map((l) => `  - ${l}`).join('\n')}`);
  }
}

/** Synapse's database pools and workers, and the connections PostgreSQL must allow them. */
function synapseDatabaseProblems(c: KudoConfig): string[] {
  const problems: string[] = [];
  const pool = c.synapse.databasePool;
  if (pool.min > pool.max) {
    problems.push(`synapse.databasePool.min (${pool.min}) is larger than synapse.databasePool.max (${pool.max})`);
  }
  const connections = synapseConnections(c);
  if (c.postgres.maxConnections !== undefined && c.postgres.maxConnections < connections.total + POSTGRES_RESERVED_CONNECTIONS) {
    problems.push(
      `postgres.maxConnections (${c.postgres.maxConnections}) must be at least ${connections.explained} + ${POSTGRES_RESERVED_CONNECTIONS} ` +
        `for backups and administration (${connections.total + POSTGRES_RESERVED_CONNECTIONS})`,
    );
  }
  const w = c.synapse.workers;
  if (w.enabled) {
    if (!c.redis.enabled) problems.push("synapse.workers.enabled needs redis.enabled: Synapse's processes replicate through Redis");
    if (w.databasePool.min > w.databasePool.max) {
      problems.push(`synapse.workers.databasePool.min (${w.databasePool.min}) is larger than synapse.workers.databasePool.max (${w.databasePool.max})`);
    }
    const replicas = workerReplicas(c);
    for (const t of WORKER_TYPE_NAMES) {
      const max = (WORKER_TYPES[t] as WorkerType).max;
      if (max !== undefined && replicas[t] > max) {
        problems.push(`synapse.workers.replicas.${replicasKey(t)} is ${replicas[t]}; ` + `at most ${max} ${t} may run (${WORKER_TYPES[t].description})`);
      }
    }
  }
  return problems;
}

/** The admin API, public only where the route can limit source addresses; the app outside the cluster needs it public. */
function adminApiProblems(c: KudoConfig): string[] {
  const problems: string[] = [];
  const admin = c.synapse.adminApi;
  if (c.app.outsideCluster && !admin.expose) {
    problems.push(
      `app.outsideCluster: the app reaches the admin API and shared-secret registration at https://${c.hosts.matrix}/_synapse/admin, which needs synapse.adminApi.expose: true ` +
        "with synapse.adminApi.sourceRanges listing the app's fixed egress addresses",
    );
  }
  if (admin.expose) {
    if (c.routing === 'gateway-api') {
      problems.push(
        "synapse.adminApi.expose: Gateway API has no standard way to limit source addresses; let the app use MATRIX_ADMIN_URL inside the cluster, or add your implementation's policy yourself",
      );
    } else if (INGRESS_CONTROLLER[c.ingress.controller].sourceRangeAnnotation === undefined) {
      problems.push(
        `synapse.adminApi.expose: ingress.controller "${c.ingress.controller}" has no Ingress annotation that limits source addresses ` +
          '(ingress-nginx and haproxy have one); let the app use MATRIX_ADMIN_URL inside the cluster instead',
      );
    }
    if (admin.sourceRanges.length === 0) problems.push('synapse.adminApi.sourceRanges must list the addresses allowed to reach the admin API when synapse.adminApi.expose is true');
  }
  return problems;
}

/** secrets.restoreFromBackup reads the off-site backup of the Secrets. */
function secretsRestoreProblems(c: KudoConfig): string[] {
  const problems: string[] = [];
  if (c.secrets.restoreFromBackup !== undefined) {
    if (c.secrets.mode !== 'generated') problems.push('secrets.restoreFromBackup needs secrets.mode "generated": in "existing" mode your own secret store holds every value');
    if (!(c.backup.enabled && c.backup.s3.enabled)) {
      problems.push('secrets.restoreFromBackup reads the Secrets from the off-site backup: it needs backup.enabled and backup.s3.enabled with the repository they were stored in');
    }
  }
  return problems;
}

/** Namespaces and public hosts: each one of its own. */
function namespaceAndHostProblems(c: KudoConfig): string[] {
  const problems: string[] = [];
  const ns = c.namespaces;
  if (ns.stack === ns.hostNetwork) {
    problems.push(`namespaces.stack and namespaces.hostNetwork are both "${ns.stack}"; host-network pods need their own privileged namespace`);
  }
  for (const other of ['stack', 'hostNetwork'] as const) {
    if (ns.app === ns[other]) problems.push(`namespaces.app and namespaces.${other} are both "${ns.app}"; each namespace is rendered with its own Pod Security level`);
  }
  const hostKeys = ['matrix', 'livekit', 'turn'] as const;
  for (const [i, a] of hostKeys.entries()) {
    for (const b of hostKeys.slice(i + 1)) {
      if (c.hosts[a] === c.hosts[b]) problems.push(`hosts.${a} and hosts.${b} are both "${c.hosts[a]}"; each needs a DNS record, route and certificate of its own`);
    }
  }
  return problems;
}

/** The admin's Matrix user ID fits Matrix's limit. */
function adminUserProblems(c: KudoConfig): string[] {
  const problems: string[] = [];
  const userId = `@${c.synapse.adminUser}:${c.serverName}`;
  if (userId.length > 255) problems.push(`synapse.adminUser: the user ID ${userId} is ${userId.length} characters; Matrix allows 255`);
  return problems;
}

/** synapse.extraConfig and synapse.extraSecretFiles: nothing the stack writes, no inline secret, every file reference declared. */
function synapseExtraProblems(c: KudoConfig): string[] {
  const problems: string[] = [];
  const files = c.synapse.extraSecretFiles.map((f) => f.file);
  for (const [i, f] of files.entries()) {
    if (files.indexOf(f) !== i) problems.push(`synapse.extraSecretFiles[${i}].file: "${f}" is already the file of synapse.extraSecretFiles[${files.indexOf(f)}]`);
  }
  if (Object.keys(c.synapse.extraConfig).length > 0) {
    // The rules come from what the Synapse chart writes (synapse-homeserver.ts).
    problems.push(...extraConfigProblems(c.synapse.extraConfig, files));
  }
  return problems;
}

/**
 * The backup volume holds a restic repository: one copy of the media store and of the database's dump (compressed
 * and deduplicated, so usually less), plus what the retention keeps of what changed. 1.25 x (media + database) is
 * the least that can work; an external database's size is unknown here (its dump job checks free space itself).
 */
function backupSizeProblems(c: KudoConfig): string[] {
  if (!c.backup.enabled) return [];
  const parts = [['synapse.media.size', c.synapse.media.size], ...(c.postgres.mode !== 'external' ? [['postgres.storage.size', c.postgres.storage.size]] : [])];
  const need = 1.25 * parts.reduce((sum, [, size]) => sum + memoryBytes(size), 0);
  if (memoryBytes(c.backup.storage.size) >= need) return [];
  const gi = (bytes: number) => `${Number((bytes / 2 ** 30).toFixed(2))}Gi`;
  return [
    `backup.storage.size is ${c.backup.storage.size}, less than 1.25 x (${parts.map(([k, v]) => `${k} ${v}`).join(' + ')}) = ${gi(need)} ` +
      "that the backup volume's restic repository needs for one copy of each and what the retention keeps: enlarge backup.storage.size",
  ];
}

/** Production keeps a copy of the backups outside the cluster (backup.s3), or the config says why not. */
function offsiteProblems(c: KudoConfig): string[] {
  const offsite = c.backup.enabled && c.backup.s3.enabled;
  const waived = c.backup.offsite.waived;
  if (offsite && waived !== undefined) {
    return ['backup.offsite.waived is set, but backup.s3.enabled is true: the backups are copied off-site; remove the waiver'];
  }
  if (c.profile !== 'production' || offsite || waived !== undefined) return [];
  const set = c.backup.enabled ? 'backup.s3.enabled: true' : 'backup.enabled: true, backup.s3.enabled: true';
  const walArchive =
    c.postgres.mode === 'cloudnative-pg' && c.postgres.cloudnativePg.backup.enabled
      ? '; postgres.cloudnativePg.backup archives the database to S3, but the media and the Secrets stay on the kudo-backups volume in the cluster'
      : '';
  return [
    `profile "production" keeps no backup off-site: set ${set} with backup.s3.repository (restic to S3), ` +
      'or waive it with backup.offsite.waived: "<the reason>" (npm run checklist prints it). Without either, one lost node ' +
      `(node-local storage) or cluster loses the data and its backups together${walArchive}`,
  ];
}

/** What each PostgreSQL mode needs. */
function databaseProblems(c: KudoConfig): string[] {
  const problems: string[] = [];
  const pg = c.postgres;
  if (pg.mode === 'cloudnative-pg') {
    const b = pg.cloudnativePg.backup;
    if (b.enabled && b.destinationPath === undefined) {
      problems.push(
        'postgres.cloudnativePg.backup.destinationPath is required (an S3 URL such as "s3://kudo-backups/postgres") while ' +
          'postgres.cloudnativePg.backup.enabled is true; set enabled: false to run without WAL archiving and point-in-time recovery',
      );
    }
    const recovery = pg.cloudnativePg.recovery;
    if (recovery !== undefined && !(b.enabled && b.destinationPath !== undefined)) {
      problems.push('postgres.cloudnativePg.recovery needs postgres.cloudnativePg.backup (enabled, with its destinationPath): the archive it recovers from');
    } else if (recovery !== undefined && recovery.serverName === b.serverName) {
      problems.push(
        `postgres.cloudnativePg.recovery.serverName is "${recovery.serverName}", the name the Cluster archives under (postgres.cloudnativePg.backup.serverName): ` +
          'a recovered Cluster starts a new history and must archive under a new name (e.g. "postgres-r1"), or it would refuse the old, non-empty archive',
      );
    }
    // The backup Jobs dump and restore with postgres.image's tools: pg_dump refuses a server of a newer major, and a
    // newer pg_dump's archive may be one an older pg_restore cannot read.
    const server = postgresTagMajor(pg.cloudnativePg.image.tag);
    const tools = postgresTagMajor(pg.image.tag);
    if (c.backup.enabled && server !== undefined && server !== tools) {
      problems.push(
        `postgres.image.tag "${pg.image.tag}" is the backup Jobs' pg_dump and pg_restore, but postgres.cloudnativePg.image.tag ` +
          `"${pg.cloudnativePg.image.tag}" runs PostgreSQL ${server}: pg_dump refuses a server of a newer major, and another major's archive may not restore; ` +
          `set postgres.image.tag to a PostgreSQL ${server} tag (e.g. "${server}.x-bookworm") with it (docs/operations.md, "PostgreSQL 17 → 18")`,
      );
    }
    if (pg.cloudnativePg.synchronous && pg.cloudnativePg.instances < 2) {
      problems.push(
        `postgres.cloudnativePg.synchronous needs at least 2 instances (has ${pg.cloudnativePg.instances}): a commit waits for a replica; ` +
          'set synchronous: false to run one instance (profile production turns it on)',
      );
    }
  }
  if (pg.mode === 'external') {
    const e = pg.external;
    if (e.host === undefined) problems.push('postgres.external.host is required when postgres.mode is "external"');
    if (e.sslmode.startsWith('verify-') && e.ca.name === undefined) {
      problems.push(
        `postgres.external.ca.name is required with sslmode ${e.sslmode}: the ${e.ca.kind} holding the CA that signed the server's certificate ` +
          '(your provider publishes it, e.g. the RDS global bundle)',
      );
    }
  }
  return problems;
}

/** Keys that only one PostgreSQL mode reads: set under another mode they would do nothing. */
function unusedDatabaseKeys(input: Record<string, unknown>, c: KudoConfig): string[] {
  const mode = c.postgres.mode;
  const ignored: [string, boolean, string][] = [
    ['postgres.cloudnativePg', mode !== 'cloudnative-pg', 'is read only when postgres.mode is "cloudnative-pg"'],
    ['postgres.external', mode !== 'external', 'is read only when postgres.mode is "external"'],
    ['postgres.maxConnections', mode === 'external', 'is the provider\'s setting when postgres.mode is "external"'],
    [
      'secrets.refs.postgresPassword',
      mode === 'cloudnative-pg',
      'is not read with postgres.mode "cloudnative-pg": Synapse uses the owner\'s password from the Secret CloudNativePG makes (postgres-app)',
    ],
    ['secrets.refs.postgresSuperuserPassword', mode !== 'statefulset', 'belongs to the StatefulSet\'s PostgreSQL (postgres.mode "statefulset")'],
  ];
  return ignored.filter(([key, unused]) => unused && valueAt(input, key.split('.')) !== undefined).map(([key, , why]) => `${key} ${why}`);
}

/** Keys an earlier release had, and where their setting went. */
const MOVED_KEYS: Record<string, string> = {
  'networkPolicies.ingressControllerNamespace': 'moved to ingress.namespace (or gatewayApi.proxyNamespace with routing: gateway-api)',
  'livekit.rtc.useExternalIp':
    'replaced by livekit.rtc.nodeAddress (node-external-ip, the default, needs no internet; stun with livekit.rtc.stunServers is the old true; host-ip the old false)',
};

function movedKeys(input: Record<string, unknown>): string[] {
  return Object.entries(MOVED_KEYS)
    .filter(([key]) => valueAt(input, key.split('.')) !== undefined)
    .map(([key, where]) => `${key}: ${where}`);
}

/** `over` merged onto `base`, mappings merged key by key; neither is changed. */
function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    const mergeable = (x: unknown) => x !== null && typeof x === 'object' && !Array.isArray(x);
    out[k] = mergeable(b) && mergeable(v) ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

function formatIssue(issue: z.core.$ZodIssue, input: unknown): string {
  const path = issue.path.map(String);
  const where = path.length > 0 ? path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeys(path);
    return issue.keys
      .map((key) => {
        const full = [...path, key].join('.');
        const guess = closest(key, allowed);
        const hint = guess ? ` (did you mean "${[...path, guess].join('.')}"?)` : '';
        return `${full}: unknown key${hint}; allowed here: ${allowed.join(', ')}`;
      })
      .join('\n  - ');
  }
  const found = describe(valueAt(input, path));
  if (issue.code === 'invalid_type') return `${where}: expected ${issue.expected}, found ${found}`;
  if (issue.code === 'invalid_value') return `${where}: found ${found}, allowed: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  const message = issue.message.replace(/^Invalid input: /, '');
  return `${where}: ${message} (found ${found})`;
}

function valueAt(input: unknown, path: string[]): unknown {
  let v: unknown = input;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
  return v;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** What allowedKeys reads of a zod 4 schema: a wrapper's inner type, a list's element, an object's keys. */
interface SchemaNode {
  readonly def?: { readonly innerType?: SchemaNode; readonly element?: SchemaNode };
  readonly shape?: Record<string, SchemaNode>;
}

/** The keys the schema allows in the object at `path`. */
function allowedKeys(path: string[]): string[] {
  let s: SchemaNode | undefined = configSchema() as unknown as SchemaNode;
  const unwrap = () => {
    while (s?.def?.innerType) s = s.def.innerType;
  };
  unwrap();
  for (const p of path) {
    // A list item's keys are its element's.
    s = /^[0-9]+$/.test(p) && s?.def?.element !== undefined ? s.def.element : s?.shape?.[p];
    unwrap();
  }
  return s?.shape ? Object.keys(s.shape) : [];
}

/** The allowed key nearest to a misspelt one, if it is near enough to be a typo. */
function closest(key: string, allowed: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}
