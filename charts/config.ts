/**
 * The one typed configuration of the Kudo stack.
 *
 * A YAML file (selected with KUDO_CONFIG) is parsed, checked against the
 * schema below and completed with the embedded defaults, once, before any
 * chart is built. Every rejection is a ConfigError whose message names the
 * key path, what was found and what is allowed.
 */
import * as fs from 'fs';
import { isIP } from 'net';
import type * as JsYaml from 'js-yaml';
import type { z } from 'zod';
import { INGRESS_CONTROLLER, INGRESS_CONTROLLERS } from './ingress-controllers';
import { LIVEKIT_API_PORT, LIVEKIT_METRICS_PORT, TURN_METRICS_PORT, TURN_PORT, TURN_TLS_PORT } from './ports';
import { cronProblem, isLabelValue, isObjectName, isQualifiedName } from './k8s-names';
import { withImagesFrom } from './pods';
import { extraConfigProblems } from './synapse-homeserver';
import { retentionProblems, retentionSchemas } from './synapse-retention';
import { WORKER_TYPE_NAMES, WORKER_TYPES, WorkerType, WorkerTypeName } from './synapse-workers';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

// RFC 1123 host names: lowercase labels of letters, digits and inner hyphens.
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Memory and storage sizes the config takes: whole bytes, a decimal or binary suffix (common.ts memoryBytes reads them). */
export const MEMORY_QUANTITY = /^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
/** CPU the config takes: cores, a decimal, millicores or another Kubernetes suffix (common.ts cpuCores reads it). */
export const CPU_QUANTITY = /^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/;

/** Kubernetes quantity suffixes (decimal and binary) as factors. */
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

/** What a refinement needs of zod's context: a way to report a problem. */
interface Problems {
  addIssue(issue: { code: 'custom'; message: string; path?: (string | number)[] }): void;
}

/**
 * The schema's checks beyond types, bounds and patterns, as named functions
 * outside the schema: refine takes the predicates, superRefine the reporters.
 */
const REFINEMENTS = {
  dnsName: (v: string) => v.length <= 253 && v.split('.').length >= 2 && v.split('.').every((l) => DNS_LABEL.test(l)),
  objectName: isObjectName,
  labelKey: isQualifiedName,
  labelValue: isLabelValue,
  /** Labels (node selectors, ServiceMonitor labels) as the API server checks them. */
  labelMap: (m: Record<string, string>, ctx: Problems) => {
    for (const [k, v] of Object.entries(m)) {
      if (!isQualifiedName(k))
        ctx.addIssue({ code: 'custom', message: `"${k}" is not a label key (an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_", ".")` });
      if (!isLabelValue(v))
        ctx.addIssue({ code: 'custom', message: `"${v}" is not a label value (at most 63 letters, digits, "-", "_", ".", starting and ending with a letter or digit)` });
    }
  },
  annotationMap: (m: Record<string, string>, ctx: Problems) => {
    for (const k of Object.keys(m)) {
      if (!isQualifiedName(k))
        ctx.addIssue({ code: 'custom', message: `"${k}" is not an annotation key (an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_", ".")` });
    }
  },
  cron: (v: string, ctx: Problems) => {
    const problem = cronProblem(v);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `not a schedule Kubernetes accepts: ${problem} (e.g. "15 3 * * *" or "@daily")` });
  },
  toleration: (t: { key?: string; operator?: string; value?: string; effect?: string; tolerationSeconds?: number }, ctx: Problems) => {
    const exists = t.operator === 'Exists';
    if (exists && t.value !== undefined && t.value !== '') ctx.addIssue({ code: 'custom', path: ['value'], message: 'must be empty when operator is "Exists"' });
    if ((t.key === undefined || t.key === '') && !exists)
      ctx.addIssue({ code: 'custom', path: ['operator'], message: 'must be "Exists" when key is empty (the toleration then matches every taint)' });
    if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute')
      ctx.addIssue({ code: 'custom', path: ['tolerationSeconds'], message: 'applies only with effect "NoExecute"' });
  },
  selectorRequirement: (r: { operator: string; values?: string[] }, ctx: Problems) => {
    const n = r.values?.length ?? 0;
    if ((r.operator === 'In' || r.operator === 'NotIn') && n === 0)
      ctx.addIssue({ code: 'custom', path: ['values'], message: `must list at least one value with operator "${r.operator}"` });
    if ((r.operator === 'Exists' || r.operator === 'DoesNotExist') && n > 0)
      ctx.addIssue({ code: 'custom', path: ['values'], message: `must be empty with operator "${r.operator}"` });
    if ((r.operator === 'Gt' || r.operator === 'Lt') && (n !== 1 || !/^-?[0-9]+$/.test(r.values![0]))) {
      ctx.addIssue({ code: 'custom', path: ['values'], message: `must be one integer with operator "${r.operator}"` });
    }
    if (r.operator === 'In' || r.operator === 'NotIn') {
      for (const [i, v] of (r.values ?? []).entries()) if (!isLabelValue(v)) ctx.addIssue({ code: 'custom', path: ['values', i], message: `"${v}" is not a label value` });
    }
  },
  topologySpreadConstraint: (c: { minDomains?: number; whenUnsatisfiable: string }, ctx: Problems) => {
    if (c.minDomains !== undefined && c.whenUnsatisfiable !== 'DoNotSchedule') {
      ctx.addIssue({ code: 'custom', path: ['minDomains'], message: 'applies only with whenUnsatisfiable "DoNotSchedule"' });
    }
  },
  notReservedLocalpart: (v: string) => !v.startsWith('_'),
  nonZero: (v: number) => v !== 0,
  startsWithRegistryHost: (v: string) => {
    const host = v.split('/')[0];
    return host.includes('.') || host.includes(':') || host === 'localhost';
  },
};
type RefinementName = keyof typeof REFINEMENTS;

/**
 * The schema, built on first use: zod is loaded only when a config file has
 * to be checked (the embedded defaults are resolved when the bundle is built;
 * see defaultConfig()). A precompiled plan of this schema once spared a
 * config file's render loading zod; it saved 20-76 ms a render and was a
 * second validator to keep equal to this one, so it went (issue 29).
 */
/** "address/bits" with an IPv4 or IPv6 address and a prefix length its family allows (host bits are the chart's to check). */
function isCidr(s: string): boolean {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(s);
  const family = m === null ? 0 : isIP(m[1]);
  return m !== null && family !== 0 && Number(m[2]) <= (family === 4 ? 32 : 128);
}

function makeSchema() {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { z } = require('zod') as typeof import('zod');
  // The schema is used once per run: compiling it to a fast parser costs more than it saves.
  z.config({ jitless: true });

  /** `schema.superRefine(REFINEMENTS[name])`. */
  const reported = <S extends z.ZodType>(schema: S, name: RefinementName): S => schema.check(z.superRefine(REFINEMENTS[name] as never));

  const dnsName = z.string().refine(REFINEMENTS.dnsName, {
    message: 'must be a lowercase DNS name such as "chat.example.com" (labels of a-z, 0-9 and inner "-", at least two labels)',
  });
  const dnsLabel = z.string().regex(DNS_LABEL, 'must be a lowercase DNS label (a-z, 0-9 and inner "-", at most 63 characters)');
  const quantity = z.string().regex(CPU_QUANTITY, 'must be a Kubernetes quantity such as "500m", "512Mi" or "2Gi"');
  const memory = z.string().regex(MEMORY_QUANTITY, 'must be a memory quantity such as "512Mi" or "2Gi"');
  const port = z.number().int().min(1).max(65535);
  const ipv4 = z.string().regex(/^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$/, 'must be an IPv4 address such as "203.0.113.10"');
  // Labels (node selectors, ServiceMonitor labels) and annotations as the API server checks them.
  const labelMap = reported(z.record(z.string(), z.string()), 'labelMap');
  const annotationMap = reported(z.record(z.string(), z.string()), 'annotationMap');
  const objectName = z.string().refine(REFINEMENTS.objectName, { message: 'must be a Kubernetes object name (lowercase letters, digits, "-" and ".", at most 253)' });
  const cidr = z
    .string()
    .regex(/^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\/([0-9]|[12][0-9]|3[0-2])$/, 'must be an IPv4 CIDR such as "10.0.0.0/16"');
  const cron = reported(z.string(), 'cron');

  const resources = (cpuReq: string, memReq: string, cpuLim: string, memLim: string) =>
    z
      .strictObject({
        requests: z.strictObject({ cpu: quantity.default(cpuReq), memory: memory.default(memReq) }).prefault({}),
        limits: z.strictObject({ cpu: quantity.default(cpuLim), memory: memory.default(memLim) }).prefault({}),
      })
      .prefault({});

  const image = (repository: string, tag: string) =>
    z
      .strictObject({
        repository: z
          .string()
          .regex(/^[a-z0-9.\-_/:]+$/, 'must be an image repository such as "docker.io/library/postgres"')
          .default(repository),
        tag: z
          .string()
          .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be an image tag')
          .default(tag),
        /** Optional digest; when set the image is pulled by digest and the tag is informational. */
        digest: z
          .string()
          .regex(/^sha256:[a-f0-9]{64}$/, 'must be "sha256:" followed by 64 hex digits')
          .optional(),
      })
      .prefault({});

  const storage = (size: string) =>
    z
      .strictObject({
        size: memory.default(size),
        /** StorageClass; unset means the cluster's default class. */
        className: objectName.optional(),
      })
      .prefault({});

  // Scheduling, in Kubernetes' own shapes (examples from its docs paste in), checked as the API server checks them.
  const labelKey = z.string().refine(REFINEMENTS.labelKey, { message: 'must be a label key (an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_", ".")' });
  const labelValue = z
    .string()
    .refine(REFINEMENTS.labelValue, { message: 'must be a label value (at most 63 letters, digits, "-", "_", ".", starting and ending with a letter or digit)' });
  const toleration = reported(
    z.strictObject({
      /** Empty (with operator Exists) tolerates every taint. */
      key: labelKey.optional(),
      operator: z.enum(['Exists', 'Equal']).optional(),
      value: labelValue.optional(),
      effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
      tolerationSeconds: z.number().int().optional(),
    }),
    'toleration',
  );
  const selectorRequirement = <O extends readonly [string, ...string[]]>(operators: O) =>
    reported(
      z.strictObject({
        key: labelKey,
        operator: z.enum(operators),
        values: z.array(z.string()).optional(),
      }),
      'selectorRequirement',
    );
  const nodeSelectorTerm = z.strictObject({ matchExpressions: z.array(selectorRequirement(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'] as const)).min(1) });
  const workloadScheduling = z
    .strictObject({
      tolerations: z.array(toleration).default([]),
      /** Kubernetes' NodeAffinity: requiredDuringSchedulingIgnoredDuringExecution and preferredDuringSchedulingIgnoredDuringExecution. */
      nodeAffinity: z
        .strictObject({
          requiredDuringSchedulingIgnoredDuringExecution: z.strictObject({ nodeSelectorTerms: z.array(nodeSelectorTerm).min(1) }).optional(),
          preferredDuringSchedulingIgnoredDuringExecution: z.array(z.strictObject({ weight: z.number().int().min(1).max(100), preference: nodeSelectorTerm })).optional(),
        })
        .optional(),
      priorityClassName: objectName.optional(),
      /** Without a labelSelector a constraint counts the workload's own pods. */
      topologySpreadConstraints: z
        .array(
          reported(
            z.strictObject({
              maxSkew: z.number().int().min(1),
              topologyKey: labelKey,
              whenUnsatisfiable: z.enum(['DoNotSchedule', 'ScheduleAnyway']),
              minDomains: z.number().int().min(1).optional(),
              labelSelector: z
                .strictObject({
                  matchLabels: labelMap.optional(),
                  matchExpressions: z.array(selectorRequirement(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const)).optional(),
                })
                .optional(),
              matchLabelKeys: z.array(labelKey).optional(),
              nodeAffinityPolicy: z.enum(['Honor', 'Ignore']).optional(),
              nodeTaintsPolicy: z.enum(['Honor', 'Ignore']).optional(),
            }),
            'topologySpreadConstraint',
          ),
        )
        .default([]),
    })
    .prefault({});

  const secretRef = (name: string, key: string) =>
    z
      .strictObject({
        name: dnsLabel.default(name),
        key: z
          .string()
          .regex(/^[-._a-zA-Z0-9]{1,253}$/, 'must be a Secret data key (at most 253 letters, digits, "-", "_", ".")')
          .default(key),
      })
      .prefault({});

  return z.strictObject({
    /**
     * Sizing: `small` (the defaults below) fits a single 2 vCPU / 4 GiB node;
     * `production` raises resources, storage and Synapse's database pool
     * (PRODUCTION_PROFILE). Keys you set win over either.
     */
    profile: z.enum(['small', 'production']).default('small'),
    /** Base DNS domain; the public hosts default to matrix.<domain>, livekit.<domain> and turn.<domain>. */
    domain: dnsName.default('example.com'),
    /** The Matrix server name (the part after ":" in user IDs). Defaults to `domain`. */
    serverName: dnsName.optional(),
    hosts: z
      .strictObject({
        matrix: dnsName.optional(),
        livekit: dnsName.optional(),
        turn: dnsName.optional(),
      })
      .prefault({}),
    namespaces: z
      .strictObject({
        /** Everything that is not host-network: PostgreSQL, Synapse, Redis, Jobs. Pod Security `restricted`. */
        stack: dnsLabel.default('kudo'),
        /** LiveKit and coturn, which bind the node's network. Pod Security `privileged` (docs/networking.md, "Networking"). */
        hostNetwork: dnsLabel.default('kudo-media'),
        /** Where the Kudo application runs; receives the `kudo-app` credentials Secret. */
        app: dnsLabel.default('kudo-app'),
      })
      .prefault({}),
    /** How the public hosts are reached: an Ingress controller, or Gateway API HTTPRoutes. */
    routing: z.enum(['ingress', 'gateway-api']).default('ingress'),
    gatewayApi: z
      .strictObject({
        /** The Gateway the HTTPRoutes attach to. */
        gatewayName: dnsLabel.default('kudo'),
        /** @default namespaces.stack */
        gatewayNamespace: dnsLabel.optional(),
        /** Render that Gateway (HTTPS listener per host, certificates from cert-manager) rather than use an existing one. */
        createGateway: z.boolean().default(true),
        /** GatewayClass of the rendered Gateway; required when it is rendered. */
        gatewayClassName: objectName.optional(),
        /**
         * Where the Gateway's proxy pods run: the NetworkPolicies admit public traffic
         * from there. Istio and NGINX Gateway Fabric run them in the Gateway's namespace,
         * Envoy Gateway in its own (envoy-gateway-system). @default gatewayNamespace
         */
        proxyNamespace: dnsLabel.optional(),
        /**
         * Where the proxies' control plane listens, when the proxies run in the stack namespace
         * (its default-deny would cut them off): istiod is istio-system 15012, Envoy Gateway
         * envoy-gateway-system 18000. @default - no egress to a control plane
         */
        controlPlane: z
          .strictObject({
            namespace: dnsLabel.optional(),
            ports: z.array(port).default([]),
          })
          .prefault({}),
      })
      .prefault({}),
    ingress: z
      .strictObject({
        /** The Ingress controller family, for its annotations (upload size, WebSocket timeouts) and its namespace. */
        controller: z.enum(INGRESS_CONTROLLERS).default('traefik'),
        /** @default the IngressClass the controller's chart creates */
        className: objectName.optional(),
        /** Where the controller's pods run; the NetworkPolicies admit public traffic from there. @default its install guide's */
        namespace: dnsLabel.optional(),
        /** Extra annotations for every Ingress, added last (they win over ours). */
        annotations: annotationMap.default({}),
      })
      .prefault({}),
    tls: z
      .strictObject({
        /** The cert-manager issuer that signs every certificate. */
        issuer: z
          .strictObject({
            kind: z.enum(['ClusterIssuer', 'Issuer']).default('ClusterIssuer'),
            name: dnsLabel.default('kudo-letsencrypt'),
          })
          .prefault({}),
        /** Render a Let's Encrypt ClusterIssuer named `issuer.name` (HTTP-01 through `ingress.className`). */
        letsEncrypt: z
          .strictObject({
            create: z.boolean().default(true),
            environment: z.enum(['production', 'staging']).default('production'),
            /** Contact address for expiry and account notices; optional for Let's Encrypt. */
            email: z.string().email().optional(),
          })
          .prefault({}),
      })
      .prefault({}),
    postgres: z
      .strictObject({
        /**
         * statefulset: one PostgreSQL pod on one volume, nightly dumps.
         * cloudnative-pg: a CloudNativePG Cluster (install the operator and its barman-cloud plugin first):
         * replicas with automated failover, continuous WAL archiving, point-in-time recovery.
         * external: a database you run elsewhere (RDS, Cloud SQL, Azure): nothing rendered for it.
         */
        mode: z.enum(['statefulset', 'cloudnative-pg', 'external']).default('statefulset'),
        image: image('docker.io/library/postgres', '17.11-bookworm'),
        storage: storage('10Gi'),
        resources: resources('250m', '512Mi', '2', '1Gi'),
        /** max_connections; unset means Synapse's pool plus room for backups and administration. */
        maxConnections: z.number().int().min(10).max(10000).optional(),
        cloudnativePg: z
          .strictObject({
            /** PostgreSQL instances: one primary, the rest streaming replicas. */
            instances: z.number().int().min(1).max(9).default(1),
            /** CloudNativePG's PostgreSQL image (its own builds carry barman-cloud's needs). */
            image: image('ghcr.io/cloudnative-pg/postgresql', '17.11-standard-bookworm'),
            /** Commit only once a replica has the WAL: no committed transaction is lost on failover (writes wait while no replica is up). */
            synchronous: z.boolean().default(false),
            /** Instances on different nodes: preferred, or required (an instance with no free node stays Pending). */
            podAntiAffinity: z.enum(['preferred', 'required']).default('preferred'),
            /** Where the operator runs (its instance manager calls reach the pods from there). */
            operatorNamespace: dnsLabel.default('cnpg-system'),
            /** Continuous WAL archiving and base backups to S3-compatible storage, through the barman-cloud plugin. */
            backup: z
              .strictObject({
                enabled: z.boolean().default(true),
                /** e.g. "s3://kudo-backups/postgres". */
                destinationPath: z
                  .string()
                  .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/\S*)?$/, 'must be an S3 URL such as "s3://bucket/postgres"')
                  .optional(),
                /** For S3-compatible stores other than AWS (MinIO, Ceph, ...). @default AWS */
                endpointURL: z
                  .string()
                  .regex(/^https?:\/\/\S+$/, 'must be an http(s) URL')
                  .optional(),
                /** Secret (namespaces.stack) with the S3 keys. */
                s3Credentials: z
                  .strictObject({
                    secretName: dnsLabel.default('kudo-postgres-s3'),
                    accessKeyIdKey: z
                      .string()
                      .regex(/^[-._a-zA-Z0-9]{1,253}$/)
                      .default('ACCESS_KEY_ID'),
                    secretAccessKeyKey: z
                      .string()
                      .regex(/^[-._a-zA-Z0-9]{1,253}$/)
                      .default('ACCESS_SECRET_KEY'),
                  })
                  .prefault({}),
                /** How long base backups and WAL are kept (barman's d/w/m). */
                retention: z
                  .string()
                  .regex(/^[1-9][0-9]*[dwm]$/, 'must be like "30d", "4w" or "6m"')
                  .default('30d'),
                /** Base backups, in CloudNativePG's six-field cron (seconds first). */
                schedule: z
                  .string()
                  .regex(/^(\S+\s+){5}\S+$/, 'must be a six-field schedule with seconds first, such as "0 0 2 * * *"')
                  .default('0 0 2 * * *'),
                /** A WAL segment is archived at least this often (archive_timeout): the most a lost primary can lose. */
                archiveTimeoutSeconds: z.number().int().min(10).max(3600).default(60),
                /** The folder under destinationPath this Cluster archives to; a Cluster recovered from it archives under a new one. */
                serverName: dnsLabel.default('postgres'),
              })
              .prefault({}),
            /**
             * Create the Cluster from the archive instead of an empty database (point-in-time recovery):
             * the serverName it was archived under, and the moment to stop at (RFC 3339 with an offset).
             * @default - a new, empty database (initdb)
             */
            recovery: z
              .strictObject({
                serverName: dnsLabel,
                // RFC 3339 only: CloudNativePG turns its "Z" into the "+00:00" PostgreSQL needs, but passes other forms through.
                targetTime: z
                  .string()
                  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/, 'must be a time with its offset, such as "2026-11-26T14:00:00Z"')
                  .optional(),
              })
              .optional(),
          })
          .prefault({}),
        /** For mode external. */
        external: z
          .strictObject({
            host: dnsName.optional(),
            port: port.default(5432),
            database: z
              .string()
              .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a PostgreSQL name')
              .default('synapse'),
            user: z
              .string()
              .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a PostgreSQL name')
              .default('synapse'),
            /** libpq sslmode: verify-full checks the certificate and the host name. */
            sslmode: z.enum(['verify-full', 'verify-ca', 'require', 'disable']).default('verify-full'),
            /** The CA that signed the server's certificate, from a Secret or a ConfigMap (namespaces.stack). */
            ca: z
              .strictObject({
                kind: z.enum(['Secret', 'ConfigMap']).default('ConfigMap'),
                name: dnsLabel.optional(),
                key: z
                  .string()
                  .regex(/^[-._a-zA-Z0-9]{1,253}$/)
                  .default('ca.crt'),
              })
              .prefault({}),
          })
          .prefault({}),
      })
      .prefault({}),
    synapse: z
      .strictObject({
        image: image('ghcr.io/element-hq/synapse', 'v1.163.2'),
        media: storage('20Gi'),
        resources: resources('250m', '512Mi', '2', '1536Mi'),
        /** Largest upload accepted; also the Ingress body-size limit. Synapse size syntax: K, M or G suffix. */
        maxUploadSize: z
          .string()
          .regex(/^[0-9]+[KMG]$/, 'must be a size such as "50M" or "1G"')
          .default('100M'),
        databasePool: z
          .strictObject({
            min: z.number().int().min(1).default(5),
            max: z.number().int().min(1).default(10),
          })
          .prefault({}),
        /**
         * Workers: Synapse's way to use more than one core. Each type runs as its own
         * Deployment or StatefulSet behind a router (HAProxy) that sends each request
         * to the process that serves it. Off in profile small, on in profile production.
         */
        workers: z
          .strictObject({
            enabled: z.boolean().default(false),
            /** Processes of each type; 0 leaves its work to the main process. */
            replicas: z
              .strictObject({
                clientReader: z.number().int().min(0).max(50).default(2),
                synchrotron: z.number().int().min(0).max(50).default(2),
                initialSynchrotron: z.number().int().min(0).max(50).default(1),
                federationInbound: z.number().int().min(0).max(50).default(1),
                federationReader: z.number().int().min(0).max(50).default(1),
                federationSender: z.number().int().min(0).max(50).default(1),
                mediaRepository: z.number().int().min(0).default(1),
                eventPersister: z.number().int().min(0).max(50).default(2),
                eventCreator: z.number().int().min(0).max(50).default(1),
                streamWriter: z.number().int().min(0).default(1),
                background: z.number().int().min(0).default(1),
              })
              .prefault({}),
            /** Each worker process's resources (a worker uses at most one core). */
            resources: resources('250m', '512Mi', '1', '1536Mi'),
            /** Each worker process's database pool. */
            databasePool: z
              .strictObject({
                min: z.number().int().min(1).default(2),
                max: z.number().int().min(1).default(5),
              })
              .prefault({}),
            /** Router replicas (HAProxy in front of Synapse's processes). */
            routerReplicas: z.number().int().min(1).max(20).default(2),
            router: image('docker.io/library/haproxy', '3.2.26'),
          })
          .prefault({}),
        /** Opt-in: how long media and messages are kept (charts/synapse-retention.ts; docs/scaling.md, "Growth: media and message retention"). */
        ...retentionSchemas(z),
        /** Whether Synapse reports anonymous usage statistics to matrix.org. */
        reportStats: z.boolean().default(false),
        /** Open self-service registration. Off: accounts are made by the admin. */
        enableRegistration: z.boolean().default(false),
        logLevel: z.enum(['DEBUG', 'INFO', 'WARNING', 'ERROR']).default('INFO'),
        /**
         * The admin API (/_synapse/admin) for an app outside the cluster. Inside the
         * cluster the app uses MATRIX_ADMIN_URL from its Secret and needs none of this.
         */
        adminApi: z
          .strictObject({
            /** Route https://<matrix host>/_synapse/admin, from `sourceRanges` only. */
            expose: z.boolean().default(false),
            /** The addresses (CIDRs) allowed to reach it. */
            sourceRanges: z.array(cidr).default([]),
          })
          .prefault({}),
        /**
         * More homeserver.yaml settings (email, oidc_providers, rc_*, app_service_config_files, ...), merged
         * in at the top level by every Synapse process. Keys the stack writes are refused, and so are secrets
         * written inline: point their *_path settings at files of extraSecretFiles.
         */
        extraConfig: z.record(z.string(), z.unknown()).default({}),
        /** Secret keys mounted read-only at /secrets/extra/<file> in every Synapse process. */
        extraSecretFiles: z
          .array(
            z.strictObject({
              /** A Secret in namespaces.stack. */
              secret: objectName,
              key: z.string().regex(/^[-._a-zA-Z0-9]{1,253}$/, 'must be a Secret data key (at most 253 letters, digits, "-", "_", ".")'),
              /** The file name under /secrets/extra. */
              file: z.string().regex(/^[A-Za-z0-9_-][-._A-Za-z0-9]{0,252}$/, 'must be a file name (letters, digits, "-", "_", ".", not starting with ".")'),
            }),
          )
          .default([]),
        /** The admin account the bootstrap Job registers. */
        adminUser: z
          .string()
          .regex(/^[a-z0-9._=\-/+]+$/, 'must be a Matrix localpart (a-z, 0-9, ".", "_", "=", "-", "/", "+")')
          .refine(REFINEMENTS.notReservedLocalpart, { message: 'Synapse refuses localparts starting with "_" (reserved for bridges)' })
          .default('admin'),
      })
      .prefault({}),
    wellKnown: z
      .strictObject({
        /** Serve https://<serverName>/.well-known/matrix/{server,client}, delegating to the Matrix host on 443. */
        enabled: z.boolean().default(true),
      })
      .prefault({}),
    redis: z
      .strictObject({
        /** LiveKit needs it for more than one node, Synapse for workers (replication over pub/sub). */
        enabled: z.boolean().default(true),
        image: image('docker.io/library/redis', '7.4.10-bookworm'),
        resources: resources('50m', '64Mi', '500m', '128Mi'),
      })
      .prefault({}),
    livekit: z
      .strictObject({
        image: image('docker.io/livekit/livekit-server', 'v1.13.11'),
        replicas: z.number().int().min(1).max(100).default(1),
        resources: resources('500m', '512Mi', '2', '1Gi'),
        /** Nodes that may run LiveKit (on the host network: one pod per node). */
        nodeSelector: labelMap.default({}),
        /**
         * true: LiveKit on the node's network, one pod per node (Pod Security `privileged`).
         * false: an ordinary pod that meets `restricted`, in a StatefulSet, each replica behind a NodePort Service
         * of its own: replica i takes media on UDP livekit.rtc.udpPort + i and TCP livekit.rtc.tcpPort + i, which
         * are also its Service's NodePorts (docs/livekit-without-host-network.md).
         */
        hostNetwork: z.boolean().default(true),
        /**
         * The most participants one LiveKit node is planned to hold at once. LiveKit
         * does not enforce it: it sizes the UDP port range, which must hold two
         * ports per participant (publisher and subscriber PeerConnection) for each
         * node address LiveKit gathers candidates on.
         */
        participantsPerNode: z.number().int().min(1).max(30000).default(250),
        rtc: z
          .strictObject({
            /** ICE over TCP, for clients whose UDP is blocked. */
            tcpPort: port.default(7881),
            /**
             * One UDP port (UDP mux) for all media instead of the port range; LiveKit
             * uses one or the other, never both. @default - unset: the port range is used
             */
            udpPort: port.optional(),
            /**
             * UDP media ports, one per PeerConnection and node address: room for
             * participantsPerNode on two addresses. Below Linux's ephemeral ports
             * (32768-60999), which the kernel hands to outgoing connections, and
             * Kubernetes' NodePorts (30000-32767).
             */
            portRangeStart: port.default(20000),
            portRangeEnd: port.default(20999),
            /**
             * The address LiveKit advertises to clients (its ICE candidates):
             * node-external-ip: each node's ExternalIP, read from the Kubernetes API at start (no internet needed);
             * host-ip: the node's own address (status.hostIP), for nodes whose NIC holds the public address, or LANs;
             * stun: asked of `stunServers` at every start (needs UDP to them).
             */
            nodeAddress: z.enum(['node-external-ip', 'host-ip', 'stun']).default('node-external-ip'),
            /** One public address for every LiveKit node (a single node, or a shared address); skips the lookup. */
            publicIp: ipv4.optional(),
            /** STUN servers ("host:port") for nodeAddress stun; none is assumed, public ones only if listed. */
            stunServers: z.array(z.string().regex(/^[a-z0-9.-]+:[0-9]{1,5}$/, 'must be "host:port", e.g. "stun.example.com:3478"')).default([]),
          })
          .prefault({}),
      })
      .prefault({}),
    coturn: z
      .strictObject({
        image: image('docker.io/coturn/coturn', '4.18.0'),
        resources: resources('100m', '64Mi', '1', '256Mi'),
        /** Nodes that run coturn. Label them: kubectl label node NAME kudo/turn=true */
        nodeSelector: labelMap.default({ 'kudo/turn': 'true' }),
        /** The node's public IP when it is not on the node's ExternalIP address; unset = read it from the Node. */
        publicIp: ipv4.optional(),
        /**
         * UDP relay ports: an even/odd pair for every allocation totalQuota allows
         * (an Allocate with EVEN-PORT takes both). Below the kernel's ephemeral ports
         * and Kubernetes' NodePorts, like LiveKit's range.
         */
        relayPorts: z.strictObject({ min: port.default(10000), max: port.default(12399) }).prefault({}),
        /**
         * Concurrent allocations per user name (LiveKit's credentials name the participant,
         * Synapse's the Matrix user) and on one TURN node in total. A LiveKit participant
         * holds up to four (two PeerConnections, each on the UDP and the TLS TURN URL).
         */
        userQuota: z.number().int().min(0).default(12),
        totalQuota: z
          .number()
          .int()
          .min(0)
          .refine(REFINEMENTS.nonZero, { message: '0 means no limit, which no relay range can serve: set the most allocations one TURN node may hold' })
          .default(1200),
        /** Lifetime of the TURN credentials LiveKit and Synapse hand out, in seconds. */
        credentialTtlSeconds: z.number().int().min(60).max(86400).default(3600),
        /** More peer ranges the relay must never reach (your nodes', pods' and services' public ranges, a VPN), as IPv4 or IPv6 CIDRs. */
        extraDeniedPeerIps: z.array(z.string().refine(isCidr, { message: 'must be an IPv4 or IPv6 CIDR such as "203.0.113.0/24" or "2001:db8::/32"' })).default([]),
        tls: z
          .strictObject({
            /** The lowest TLS version TURNS accepts: 1.2 (coturn's own minimum with OpenSSL 3) or 1.3 (coturn's no-tlsv1_2). */
            minVersion: z.enum(['1.2', '1.3']).default('1.2'),
          })
          .prefault({}),
      })
      .prefault({}),
    monitoring: z
      .strictObject({
        /** ServiceMonitors (prometheus-operator) for Synapse, LiveKit, coturn, and PostgreSQL and Redis exporters. */
        enabled: z.boolean().default(false),
        /** Where Prometheus runs; the NetworkPolicies let it scrape. */
        namespace: dnsLabel.default('monitoring'),
        /** Labels your Prometheus selects ServiceMonitors and PrometheusRules by (e.g. release: prometheus). */
        serviceMonitorLabels: labelMap.default({}),
        interval: z
          .string()
          .regex(/^[0-9]+(s|m)$/, 'must be a duration such as "30s" or "1m"')
          .default('30s'),
        postgresExporter: image('quay.io/prometheuscommunity/postgres-exporter', 'v0.18.1'),
        redisExporter: image('docker.io/oliver006/redis_exporter', 'v1.67.0'),
        /** PrometheusRules: alerts for each component, for backups (kube-state-metrics) and certificates (cert-manager's metrics). */
        alerts: z.boolean().default(true),
        /** Grafana dashboards, one per component, as ConfigMaps that Grafana's dashboard sidecar loads. */
        dashboards: z.boolean().default(true),
        /** The label the sidecar looks for (kube-prometheus-stack's default: grafana_dashboard: "1"). */
        dashboardLabels: labelMap.default({ grafana_dashboard: '1' }),
      })
      .prefault({}),
    app: z
      .strictObject({
        /**
         * The app runs outside the cluster (a hosted deployment): kudo-app's MATRIX_ADMIN_URL is the public
         * https://<matrix host>, served by the allow-listed admin Ingress (synapse.adminApi.expose).
         */
        outsideCluster: z.boolean().default(false),
      })
      .prefault({}),
    argocd: z
      .strictObject({
        /** Render an Argo CD Application (90-argocd.k8s.yaml) that syncs the rendered folder from Git. */
        enabled: z.boolean().default(false),
        namespace: dnsLabel.default('argocd'),
        /** The Application's name: environments synced by one Argo CD need one each (e.g. kudo-staging). */
        applicationName: dnsLabel.default('kudo'),
        project: z.string().default('default'),
        /** The Git repository that holds the rendered output; required when enabled. */
        repoURL: z
          .string()
          .regex(/^(https:\/\/|ssh:\/\/|git@)\S+$/, 'must be a Git URL such as "https://git.example.com/kudo/infra.git"')
          .optional(),
        targetRevision: z.string().default('main'),
        path: z.string().default('dist'),
        prune: z.boolean().default(true),
      })
      .prefault({}),
    networkPolicies: z
      .strictObject({
        /** Default-deny in the stack namespace, then only the flows the stack needs. */
        enabled: z.boolean().default(true),
        /** Where the cluster DNS pods run. */
        dnsNamespace: dnsLabel.default('kube-system'),
        /**
         * The nodes' addresses. LiveKit runs on the host network, so Redis sees it
         * as a node address; unset, Redis accepts any address (it still needs its password).
         */
        nodeCidrs: z.array(cidr).default([]),
        /**
         * The cluster's pod and Service ranges (k3s: 10.42.0.0/16, 10.43.0.0/16). Federation and push
         * gateways, whose addresses others choose, never reach them; unset, only the nodes' are left out.
         */
        clusterCidrs: z.array(cidr).default([]),
      })
      .prefault({}),
    backup: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Cron schedules (UTC), one after the other: both store into the backup volume's restic repository. */
        schedule: z
          .strictObject({
            postgres: cron.default('15 3 * * *'),
            media: cron.default('45 3 * * *'),
          })
          .prefault({}),
        /** How many daily, weekly and monthly snapshots restic keeps (the newest of each day, week, month). */
        retention: z
          .strictObject({
            daily: z.number().int().min(1).max(366).default(7),
            weekly: z.number().int().min(0).max(520).default(4),
            monthly: z.number().int().min(0).max(240).default(12),
          })
          .prefault({}),
        /** The backup volume (ReadWriteOnce), holding a restic repository: at least 1.25 x (media + database) (refused otherwise). */
        storage: storage('50Gi'),
        resources: resources('100m', '128Mi', '1', '512Mi'),
        /** Also copy backups to an S3-compatible bucket with restic (encrypted, deduplicated). */
        s3: z
          .strictObject({
            enabled: z.boolean().default(false),
            /** restic repository, e.g. "s3:https://s3.example.com/bucket/kudo". */
            repository: z
              .string()
              .regex(/^s3:https?:\/\/\S+$/, 'must be a restic S3 repository such as "s3:https://s3.example.com/bucket/kudo"')
              .optional(),
            /** Secret (namespaces.stack) with RESTIC_PASSWORD, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. */
            secretName: dnsLabel.default('kudo-backup-s3'),
          })
          .prefault({}),
        /** restic, which stores every backup (the volume's repository and the off-site one) and restores them. */
        resticImage: image('docker.io/restic/restic', '0.18.1'),
        /**
         * `profile: production` refuses to run without backup.s3 (one lost node or cluster would take the data and
         * its backups together) unless this says why; `npm run checklist` prints the reason as a warning.
         */
        offsite: z
          .strictObject({
            waived: z.string().trim().min(1, 'must give the reason the backups stay in the cluster (e.g. "test cluster, rebuilt from scratch")').optional(),
          })
          .prefault({}),
      })
      .prefault({}),
    /**
     * A registry mirror every image is pulled from, e.g. "mirror.example.com" or "harbor.local:8443/hub":
     * it replaces each image's registry host and keeps the path (docker.io/library/postgres becomes
     * mirror.example.com/library/postgres; an image without a registry is Docker Hub's). See charts/pods.ts.
     * @default - each image from its own registry
     */
    imageRegistry: z
      .string()
      .regex(
        /^([a-z0-9-]+\.)*[a-z0-9-]+(:[0-9]{1,5})?(\/[a-z0-9._-]+)*$/,
        'must be a registry host with an optional port and path, such as "mirror.example.com" or "registry.local:5000/hub"',
      )
      .refine(REFINEMENTS.startsWithRegistryHost, {
        message: 'must start with a registry host: a name with a "." or a port, or "localhost" (a bare name would be read as a Docker Hub path)',
      })
      .optional(),
    /** Secrets (type kubernetes.io/dockerconfigjson) every pod pulls its images with; each must exist in every namespace the stack runs pods in. */
    imagePullSecrets: z.array(objectName).default([]),
    /**
     * Where each workload's pods may run: tolerations, nodeAffinity, priorityClassName,
     * topologySpreadConstraints. `all` applies to every workload, together with the
     * workload's own; both are added to what the stack sets itself (node selectors, affinities).
     */
    scheduling: z
      .strictObject({
        all: workloadScheduling,
        /** The StatefulSet's pod, or the CloudNativePG Cluster's instances. */
        postgres: workloadScheduling,
        redis: workloadScheduling,
        /** Synapse's main process. */
        synapse: workloadScheduling,
        /** Every Synapse worker process. */
        synapseWorkers: workloadScheduling,
        synapseRouter: workloadScheduling,
        wellKnown: workloadScheduling,
        livekit: workloadScheduling,
        coturn: workloadScheduling,
        /** The backup and restore CronJobs and the backup volume check. */
        backup: workloadScheduling,
        /** The secret generator, the admin bootstrap and the smoke test. */
        tools: workloadScheduling,
      })
      .prefault({}),
    secrets: z
      .strictObject({
        /**
         * generated: a Job creates each missing value once and never overwrites one.
         * existing: every value comes from Secrets you manage; nothing is generated.
         */
        mode: z.enum(['generated', 'existing']).default('generated'),
        /**
         * Rebuilding a lost cluster: the generator takes each missing value from a Secrets snapshot of the off-site
         * backup (backup.s3), "latest" or a restic snapshot ID, instead of making a new one, and makes nothing when it
         * cannot read it. docs/operations.md, "Disaster recovery".
         * @default - missing values are made
         */
        restoreFromBackup: z
          .string()
          .regex(/^(latest|[0-9a-f]{8,64})$/, 'must be "latest" or a restic snapshot ID such as "4bba301e"')
          .optional(),
        refs: z
          .strictObject({
            postgresPassword: secretRef('kudo-postgres', 'password'),
            postgresSuperuserPassword: secretRef('kudo-postgres', 'superuser_password'),
            macaroonSecretKey: secretRef('kudo-synapse', 'macaroon_secret_key'),
            formSecret: secretRef('kudo-synapse', 'form_secret'),
            registrationSharedSecret: secretRef('kudo-synapse', 'registration_shared_secret'),
            signingKey: secretRef('kudo-synapse', 'signing.key'),
            turnSharedSecret: secretRef('kudo-turn', 'shared_secret'),
            redisPassword: secretRef('kudo-redis', 'password'),
            livekitApiKey: secretRef('kudo-livekit', 'api_key'),
            livekitApiSecret: secretRef('kudo-livekit', 'api_secret'),
            adminPassword: secretRef('kudo-synapse-admin', 'password'),
            /** With synapse.workers: authenticates HTTP replication between Synapse's processes. */
            workerReplicationSecret: secretRef('kudo-synapse', 'worker_replication_secret'),
            /** With backup.enabled: the password of the backup volume's restic repository. */
            backupPassword: secretRef('kudo-backup', 'restic_password'),
          })
          .prefault({}),
        /** The Secret (in namespaces.app) the bootstrap Job fills with the app's credentials. */
        appSecretName: dnsLabel.default('kudo-app'),
      })
      .prefault({}),
  });
}

let builtSchema: ReturnType<typeof makeSchema> | undefined;
/** The config schema (built once). */
export function configSchema(): ReturnType<typeof makeSchema> {
  return (builtSchema ??= makeSchema());
}

/**
 * Drops the built schema: the next configSchema() builds it again. For mutation testing (test/mutation/setup.js):
 * Stryker counts a line as covered by the tests that run it, so with the schema built once only the first test of
 * each file would cover the schema's lines, and a mutant there would be tested by that test alone.
 */
export function forgetConfigSchema(): void {
  builtSchema = undefined;
}

export type RawConfig = z.infer<ReturnType<typeof makeSchema>>;
export type ImageConfig = RawConfig['postgres']['image'];
export type ResourcesConfig = RawConfig['postgres']['resources'];
export type StorageConfig = RawConfig['postgres']['storage'];
export type SecretRefs = RawConfig['secrets']['refs'];
export type SecretRef = SecretRefs['postgresPassword'];
export type PostgresMode = RawConfig['postgres']['mode'];
/** A config as written (YAML or TypeScript): every key optional, defaults filled in by resolveConfig. */
export type KudoConfigInput = z.input<ReturnType<typeof makeSchema>>;

/** The validated config with every derived default filled in. */
export interface KudoConfig extends Omit<RawConfig, 'serverName' | 'hosts' | 'ingress' | 'gatewayApi'> {
  readonly serverName: string;
  readonly hosts: { readonly matrix: string; readonly livekit: string; readonly turn: string };
  readonly ingress: RawConfig['ingress'] & { readonly className: string; readonly namespace: string };
  readonly gatewayApi: RawConfig['gatewayApi'] & { readonly gatewayNamespace: string; readonly proxyNamespace: string };
  /** Where public traffic (and ACME HTTP-01 challenges) reaches the stack from: the ingress controller's or the Gateway proxies' namespace. */
  readonly publicTrafficNamespace: string;
}

/** Fixed ports (not configurable: clients and firewalls expect them); charts/ports.ts has them. */
export { LIVEKIT_API_PORT, LIVEKIT_METRICS_PORT, TURN_METRICS_PORT, TURN_PORT, TURN_TLS_PORT };

/** Kubernetes' default NodePort range (kube-apiserver --service-node-port-range). */
export const NODE_PORT_RANGE = { min: 30000, max: 32767 } as const;

/** UDP ports a LiveKit participant takes per node address: one per PeerConnection (publisher, subscriber). */
export const LIVEKIT_PORTS_PER_PARTICIPANT = 2;

/**
 * How many allocations coturn's relay range can always serve: the even/odd pairs
 * in it. An Allocate with EVEN-PORT and the R bit takes an even port and the one
 * above it; a plain one takes one port, and so spoils at most one pair.
 */
export function relayPortPairs(min: number, max: number): number {
  const first = min + (min % 2);
  return max < first ? 0 : Math.floor((max - first + 1) / 2);
}

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

/** What the `production` profile changes; everything else keeps the small defaults. */
export const PRODUCTION_PROFILE = {
  postgres: {
    storage: { size: '100Gi' },
    resources: { requests: { cpu: '1', memory: '4Gi' }, limits: { cpu: '4', memory: '8Gi' } },
    // A lost node must lose no committed transaction, nor take two instances with it.
    cloudnativePg: { instances: 3, synchronous: true, podAntiAffinity: 'required' },
  },
  synapse: {
    media: { size: '200Gi' },
    resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '4', memory: '8Gi' } },
    databasePool: { min: 5, max: 20 },
    workers: { enabled: true, databasePool: { min: 2, max: 10 } },
  },
  redis: { resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } } },
  // Four times small's CPU, four times the people: the UDP range holds them on two node addresses.
  // Two nodes (one pod per node): a lost node ends its rooms, not every call.
  livekit: {
    replicas: 2,
    resources: { requests: { cpu: '2', memory: '2Gi' }, limits: { cpu: '8', memory: '8Gi' } },
    participantsPerNode: 1000,
    rtc: { portRangeStart: 20000, portRangeEnd: 23999 },
  },
  // Four allocations for each of a LiveKit node's participants; an even/odd relay pair for each.
  coturn: {
    resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '4', memory: '1Gi' } },
    totalQuota: 4000,
    relayPorts: { min: 10000, max: 17999 },
  },
  backup: { storage: { size: '500Gi' }, resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } } },
} as const;

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

function checkCombinations(c: KudoConfig, source: string): void {
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
  if (!c.redis.enabled && c.livekit.replicas > 1) problems.push(`livekit.replicas ${c.livekit.replicas} needs redis.enabled: LiveKit nodes share rooms through Redis`);
  const rtc = c.livekit.rtc;
  if (rtc.nodeAddress === 'stun' && rtc.stunServers.length === 0) {
    problems.push('livekit.rtc.stunServers must list the STUN servers to ask when livekit.rtc.nodeAddress is "stun" (LiveKit would otherwise ask Google\'s)');
  }
  if (rtc.nodeAddress !== 'stun' && rtc.stunServers.length > 0) problems.push('livekit.rtc.stunServers is used only when livekit.rtc.nodeAddress is "stun"');
  if (rtc.publicIp !== undefined && rtc.nodeAddress !== 'node-external-ip') {
    problems.push('livekit.rtc.publicIp is used only when livekit.rtc.nodeAddress is "node-external-ip" (the default)');
  }
  if (rtc.portRangeStart > rtc.portRangeEnd) {
    problems.push(`livekit.rtc.portRangeStart (${rtc.portRangeStart}) is larger than livekit.rtc.portRangeEnd (${rtc.portRangeEnd})`);
  } else if (rtc.udpPort === undefined) {
    // Out of ports, LiveKit cannot create a PeerConnection: the participant gets no media at all.
    const ports = rtc.portRangeEnd - rtc.portRangeStart + 1;
    const needed = LIVEKIT_PORTS_PER_PARTICIPANT * c.livekit.participantsPerNode;
    if (ports < needed) {
      problems.push(
        `livekit.rtc.portRangeStart-portRangeEnd ${rtc.portRangeStart}-${rtc.portRangeEnd} has ${ports} ports, fewer than the ${needed} that ` +
          `livekit.participantsPerNode (${c.livekit.participantsPerNode}) needs: each participant holds two PeerConnections, each with a UDP port ` +
          `(per node address LiveKit gathers on); widen the range to at least ${rtc.portRangeStart}-${rtc.portRangeStart + needed - 1}, ` +
          'or set livekit.rtc.udpPort to share one port',
      );
    }
  }
  problems.push(...livekitPodNetworkProblems(c));
  const relay = c.coturn.relayPorts;
  if (relay.min > relay.max) {
    problems.push(`coturn.relayPorts.min (${relay.min}) is larger than coturn.relayPorts.max (${relay.max})`);
  } else {
    // Past the last free pair coturn answers 508 (Insufficient Capacity) whatever total-quota says.
    const pairs = relayPortPairs(relay.min, relay.max);
    const quota = c.coturn.totalQuota;
    if (pairs < quota) {
      const first = relay.min + (relay.min % 2);
      problems.push(
        `coturn.relayPorts ${relay.min}-${relay.max} hold ${pairs} even/odd port pairs, fewer than coturn.totalQuota (${quota}): ` +
          'an allocation may take a pair (EVEN-PORT, for RTP and RTCP), so coturn would run out of ports before the quota refuses anyone; ' +
          `widen coturn.relayPorts to ${first}-${first + 2 * quota - 1} or lower coturn.totalQuota`,
      );
    }
  }
  // LiveKit and coturn may share a node, and both bind the host's ports.
  const lk = new Map<number, string>([
    [LIVEKIT_API_PORT, `LiveKit API port ${LIVEKIT_API_PORT}`],
    [LIVEKIT_METRICS_PORT, `LiveKit metrics port ${LIVEKIT_METRICS_PORT}`],
  ]);
  lk.set(rtc.tcpPort, 'livekit.rtc.tcpPort');
  if (rtc.udpPort !== undefined) lk.set(rtc.udpPort, 'livekit.rtc.udpPort');
  const turnPorts = [
    [TURN_PORT, `coturn listening port ${TURN_PORT}`],
    [TURN_TLS_PORT, `coturn TLS port ${TURN_TLS_PORT}`],
    [TURN_METRICS_PORT, `coturn metrics port ${TURN_METRICS_PORT}`],
  ] as const;
  for (const [p, name] of turnPorts) {
    if (lk.has(p)) problems.push(`${lk.get(p)} collides with the ${name}`);
    if (rtc.udpPort === undefined && p >= rtc.portRangeStart && p <= rtc.portRangeEnd) {
      problems.push(`livekit.rtc.portRange ${rtc.portRangeStart}-${rtc.portRangeEnd} includes the ${name}`);
    }
    if (p >= relay.min && p <= relay.max) problems.push(`coturn.relayPorts ${relay.min}-${relay.max} include the ${name}`);
  }
  for (const [p, name] of lk) {
    if (rtc.udpPort === undefined && p >= rtc.portRangeStart && p <= rtc.portRangeEnd) {
      problems.push(`livekit.rtc.portRange ${rtc.portRangeStart}-${rtc.portRangeEnd} includes the ${name}`);
    }
    if (p >= relay.min && p <= relay.max) problems.push(`coturn.relayPorts ${relay.min}-${relay.max} include the ${name}`);
  }
  if (rtc.udpPort === undefined && rangesOverlap(rtc.portRangeStart, rtc.portRangeEnd, relay.min, relay.max)) {
    problems.push(`livekit.rtc.portRange ${rtc.portRangeStart}-${rtc.portRangeEnd} overlaps coturn.relayPorts ${relay.min}-${relay.max}; both bind host ports`);
  }
  if (c.routing === 'gateway-api' && c.gatewayApi.createGateway && c.gatewayApi.gatewayClassName === undefined) {
    problems.push('gatewayApi.gatewayClassName is required when routing is "gateway-api" and gatewayApi.createGateway is true');
  }
  const cp = c.gatewayApi.controlPlane;
  if (cp.namespace !== undefined && cp.ports.length === 0) {
    problems.push(
      'gatewayApi.controlPlane.ports must list the ports the proxies reach their control plane on (e.g. 15012 for istiod) when gatewayApi.controlPlane.namespace is set',
    );
  }
  if (cp.namespace === undefined && cp.ports.length > 0) problems.push('gatewayApi.controlPlane.namespace is required when gatewayApi.controlPlane.ports is set');
  if (c.argocd.enabled && c.argocd.repoURL === undefined) problems.push('argocd.repoURL is required when argocd.enabled is true');
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
  problems.push(...databaseProblems(c));
  if (c.backup.s3.enabled && c.backup.s3.repository === undefined) {
    problems.push('backup.s3.repository is required when backup.s3.enabled is true');
  }
  problems.push(...offsiteProblems(c));
  problems.push(...backupSizeProblems(c));
  if (c.secrets.restoreFromBackup !== undefined) {
    if (c.secrets.mode !== 'generated') problems.push('secrets.restoreFromBackup needs secrets.mode "generated": in "existing" mode your own secret store holds every value');
    if (!(c.backup.enabled && c.backup.s3.enabled)) {
      problems.push('secrets.restoreFromBackup reads the Secrets from the off-site backup: it needs backup.enabled and backup.s3.enabled with the repository they were stored in');
    }
  }
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
  problems.push(...synapseExtraProblems(c));
  problems.push(...retentionProblems(c.synapse.retention));
  const userId = `@${c.synapse.adminUser}:${c.serverName}`;
  if (userId.length > 255) problems.push(`synapse.adminUser: the user ID ${userId} is ${userId.length} characters; Matrix allows 255`);
  if (problems.length > 0) {
    throw new ConfigError(`${source} is invalid:\n${problems.map((l) => `  - ${l}`).join('\n')}`);
  }
}

/**
 * livekit.hostNetwork false: each replica i listens on udpPort + i and tcpPort + i, which are also its NodePorts
 * (a client reaches the port LiveKit puts in its candidates), so both spans must lie in the NodePort range, apart.
 */
function livekitPodNetworkProblems(c: KudoConfig): string[] {
  const lk = c.livekit;
  if (lk.hostNetwork) return [];
  const problems: string[] = [];
  const { min, max } = NODE_PORT_RANGE;
  const last = lk.replicas - 1;
  const span = (first: number) => (last === 0 ? `${first}` : `${first}-${first + last}`);
  const take = last === 0 ? 'the replica takes' : `replicas 0-${last} take`;
  const { udpPort, tcpPort } = lk.rtc;
  if (udpPort === undefined) {
    problems.push(
      `livekit.hostNetwork false takes media on one UDP port per replica: set livekit.rtc.udpPort to the first replica's NodePort (${min}-${max}; replica i uses udpPort + i)`,
    );
  }
  const spans: [string, number][] = [['livekit.rtc.tcpPort', tcpPort], ...(udpPort !== undefined ? [['livekit.rtc.udpPort', udpPort] as [string, number]] : [])];
  for (const [key, first] of spans) {
    if (first < min || first + last > max) {
      problems.push(`${key} ${first}: with livekit.hostNetwork false it is the first replica's NodePort, and ${take} ${span(first)}; ` + `NodePorts are ${min}-${max}`);
    }
  }
  if (udpPort !== undefined && rangesOverlap(udpPort, udpPort + last, tcpPort, tcpPort + last)) {
    problems.push(
      `livekit.rtc.udpPort ${span(udpPort)} and livekit.rtc.tcpPort ${span(tcpPort)} overlap: each replica's Service takes its ports as NodePorts, ` +
        'and a NodePort is given to one Service only',
    );
  }
  const relay = c.coturn.relayPorts;
  for (const [key, first] of spans) {
    if (rangesOverlap(first, first + last, relay.min, relay.max)) {
      problems.push(`coturn.relayPorts ${relay.min}-${relay.max} include LiveKit's NodePorts ${span(first)} (${key}); kube-proxy takes those ports on every node`);
    }
  }
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
          `set postgres.image.tag to a ${server} tag (e.g. "${server}.x-bookworm") with it (docs/operations.md, "PostgreSQL 17 → 18")`,
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

function rangesOverlap(a1: number, a2: number, b1: number, b2: number): boolean {
  return a1 <= b2 && b1 <= a2;
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
