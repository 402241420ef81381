/**
 * The plan the bundle checks config files with (charts/config-plan.ts) against
 * zod, which it stands in for: on every input the plan accepts, it must return
 * what zod returns, key for key and in the same order; it must accept every
 * input zod accepts (else the bundle loads zod after all); and it must never
 * accept one zod refuses. The inputs: the benchmark's config, a config that
 * sets every key, and thousands of single-key changes to it.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { z } from 'zod';
import { compilePlan, Plan } from '../charts/config-plan';
import { checkConfigWithPlan, configPlan, configSchema, PRODUCTION_PROFILE } from '../charts/config';

const plan: Plan = configPlan();

/** A value as JSON that keeps its key order and spells out undefined-valued keys, for a comparison that misses neither. */
function exact(v: unknown): string {
  return JSON.stringify(v, (_, x) => (x === undefined ? '<undefined>' : x), 1);
}

/** The plan's verdict next to zod's, in a form a failing expect() shows usefully. */
function verdicts(input: unknown): { zod: unknown; plan: unknown } {
  const byZod = configSchema().safeParse(input);
  const byPlan = checkConfigWithPlan(plan, input);
  return { zod: byZod.success ? exact(byZod.data) : 'refused', plan: byPlan !== undefined ? exact(byPlan.value) : 'refused' };
}

const image = (repository: string) => ({ repository, tag: '1.2.3', digest: `sha256:${'a'.repeat(64)}` });
const resources = { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '1Gi' } };
const toleration = { key: 'dedicated', operator: 'Equal', value: 'kudo', effect: 'NoExecute', tolerationSeconds: 60 };
const scheduling = {
  tolerations: [toleration, { operator: 'Exists' }],
  nodeAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: {
      nodeSelectorTerms: [{ matchExpressions: [{ key: 'topology.kubernetes.io/zone', operator: 'In', values: ['a', 'b'] }, { key: 'gpu', operator: 'DoesNotExist' }] }],
    },
    preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 10, preference: { matchExpressions: [{ key: 'cpus', operator: 'Gt', values: ['4'] }] } }],
  },
  priorityClassName: 'kudo-high',
  topologySpreadConstraints: [{
    maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule', minDomains: 2,
    labelSelector: { matchLabels: { tier: 'chat' }, matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['batch'] }] },
    matchLabelKeys: ['pod-template-hash'], nodeAffinityPolicy: 'Honor', nodeTaintsPolicy: 'Ignore',
  }],
};

/** Every key set (the combinations need not make sense: this is the schema's business, not checkCombinations'). */
const EVERYTHING = {
  profile: 'production', domain: 'chat.acme-corp.com', serverName: 'acme-corp.com',
  hosts: { matrix: 'matrix.acme-corp.com', livekit: 'meet.acme-corp.com', turn: 'turn.acme-corp.com' },
  namespaces: { stack: 'chat', hostNetwork: 'chat-media', app: 'chat-app' },
  routing: 'gateway-api',
  gatewayApi: { gatewayName: 'public', gatewayNamespace: 'gateways', createGateway: false, gatewayClassName: 'eg', proxyNamespace: 'envoy-gateway-system' },
  ingress: { controller: 'ingress-nginx', className: 'nginx', namespace: 'ingress-nginx', annotations: { 'example.com/team': 'chat' } },
  tls: { issuer: { kind: 'Issuer', name: 'letsencrypt' }, letsEncrypt: { create: false, environment: 'staging', email: 'ops@acme-corp.com' } },
  postgres: {
    mode: 'cloudnative-pg', image: image('registry.acme-corp.com/postgres'), storage: { size: '50Gi', className: 'fast-ssd' }, resources, maxConnections: 300,
    cloudnativePg: {
      instances: 3, image: image('ghcr.io/cloudnative-pg/postgresql'), synchronous: true, operatorNamespace: 'cnpg',
      backup: {
        enabled: true, destinationPath: 's3://acme-backups/postgres', endpointURL: 'https://minio.acme-corp.com',
        s3Credentials: { secretName: 'pg-s3', accessKeyIdKey: 'id', secretAccessKeyKey: 'secret' },
        retention: '4w', schedule: '0 0 3 * * *', archiveTimeoutSeconds: 120,
      },
    },
    external: { host: 'db.acme-corp.com', port: 5433, database: 'matrix', user: 'matrix', sslmode: 'require', ca: { kind: 'Secret', name: 'db-ca', key: 'ca.pem' } },
  },
  synapse: {
    image: image('ghcr.io/element-hq/synapse'), media: { size: '1Ti' }, resources, maxUploadSize: '1G', databasePool: { min: 2, max: 8 },
    workers: {
      enabled: true,
      replicas: {
        clientReader: 3, synchrotron: 3, initialSynchrotron: 1, federationInbound: 2, federationReader: 2, federationSender: 2,
        mediaRepository: 1, eventPersister: 2, eventCreator: 1, streamWriter: 1, background: 1,
      },
      resources, databasePool: { min: 1, max: 4 }, routerReplicas: 3, router: image('docker.io/library/haproxy'),
    },
    reportStats: true, enableRegistration: true, logLevel: 'DEBUG',
    adminApi: { expose: true, sourceRanges: ['10.0.0.0/8', '192.168.1.0/24'] },
    extraConfig: { email: { smtp_host: 'smtp.acme-corp.com', smtp_port: 587, require_transport_security: true }, rc_message: { per_second: 1, burst_count: 10 }, suppress_key_server_warning: true },
    extraSecretFiles: [{ secret: 'oidc', key: 'client-secret', file: 'oidc-client-secret' }],
    adminUser: 'ops.admin',
  },
  wellKnown: { enabled: false },
  redis: { enabled: true, image: image('docker.io/library/redis'), resources },
  livekit: {
    image: image('docker.io/livekit/livekit-server'), replicas: 2, resources, nodeSelector: { 'node-role.kubernetes.io/media': '' }, participantsPerNode: 100,
    rtc: { tcpPort: 7881, udpPort: 7882, portRangeStart: 20000, portRangeEnd: 20999, nodeAddress: 'stun', publicIp: '203.0.113.10', stunServers: ['stun.acme-corp.com:3478'] },
  },
  coturn: {
    image: image('docker.io/coturn/coturn'), resources, nodeSelector: { 'kudo/turn': 'true', zone: 'b' }, publicIp: '203.0.113.11',
    relayPorts: { min: 10000, max: 12399 }, userQuota: 10, totalQuota: 1000, credentialTtlSeconds: 600,
  },
  monitoring: {
    enabled: true, namespace: 'observability', serviceMonitorLabels: { release: 'prometheus' }, interval: '1m',
    postgresExporter: image('quay.io/prometheuscommunity/postgres-exporter'), redisExporter: image('docker.io/oliver006/redis_exporter'),
    alerts: false, dashboards: true, dashboardLabels: { grafana_dashboard: '1' },
  },
  argocd: { enabled: true, namespace: 'argocd', project: 'chat', repoURL: 'https://git.acme-corp.com/infra.git', targetRevision: 'v1', path: 'rendered/prod', prune: false },
  networkPolicies: { enabled: true, dnsNamespace: 'kube-system', nodeCidrs: ['10.0.0.0/16'] },
  backup: {
    enabled: true, schedule: { postgres: '@daily', media: '45 3 * * 1-5' }, retention: { daily: 3, weekly: 2, monthly: 1 },
    storage: { size: '200Gi', className: 'slow' }, resources,
    s3: { enabled: true, repository: 's3:https://s3.acme-corp.com/backups/kudo', secretName: 'backup-s3', image: image('docker.io/restic/restic') },
  },
  imageRegistry: 'mirror.acme-corp.com:8443/hub',
  imagePullSecrets: ['regcred'],
  scheduling: { all: scheduling, synapse: { tolerations: [toleration] }, coturn: { priorityClassName: 'system-node-critical' } },
  secrets: {
    mode: 'existing',
    refs: { postgresPassword: { name: 'pg', key: 'pw' }, signingKey: { name: 'synapse-keys', key: 'signing.key' }, workerReplicationSecret: { name: 'workers' } },
    appSecretName: 'chat-app',
  },
};

describe('the plan answers as zod does', () => {
  const fixture = yaml.load(fs.readFileSync(path.join(__dirname, 'fixtures', 'company.yaml'), 'utf8'), { schema: yaml.CORE_SCHEMA });
  const valid: [string, unknown][] = [
    ['no config', {}],
    ['the production profile, as resolveConfig merges it', { ...PRODUCTION_PROFILE, profile: 'production' }],
    ['the benchmark\'s company config', fixture],
    ['every key set', EVERYTHING],
    ['every key set, with every default zod fills in', configSchema().parse(EVERYTHING)],
  ];
  test.each(valid)('%s: accepted, with zod\'s result', (_, input) => {
    const v = verdicts(input);
    expect(v.plan).not.toBe('refused');
    expect(v.plan).toEqual(v.zod);
  });

  // Each problem that a refinement (a named function, run by both) reports, and the plain checks around them.
  const invalid: [string, unknown][] = [
    ['a DNS name with one label', { domain: 'localhost' }],
    ['a label key', { livekit: { nodeSelector: { 'bad key': 'x' } } }],
    ['a label value', { monitoring: { serviceMonitorLabels: { release: '-x' } } }],
    ['an annotation key', { ingress: { annotations: { '/x': 'y' } } }],
    ['an object name', { imagePullSecrets: ['Regcred'] }],
    ['a schedule', { backup: { schedule: { postgres: '61 * * * *' } } }],
    ['a toleration without key or Exists', { scheduling: { all: { tolerations: [{ value: 'x' }] } } }],
    ['tolerationSeconds without NoExecute', { scheduling: { redis: { tolerations: [{ key: 'a', tolerationSeconds: 5 }] } } }],
    ['In without values', { scheduling: { all: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'a', operator: 'In' }] }] } } } } }],
    ['Gt with a word', { scheduling: { all: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'a', operator: 'Gt', values: ['x'] }] }] } } } } }],
    ['no node selector terms', { scheduling: { all: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } } } } }],
    ['minDomains with ScheduleAnyway', { scheduling: { all: { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'ScheduleAnyway', minDomains: 2 }] } } }],
    ['a reserved localpart', { synapse: { adminUser: '_admin' } }],
    ['a total quota of 0', { coturn: { totalQuota: 0 } }],
    ['a registry without a host', { imageRegistry: 'hub/library' }],
    ['an e-mail address', { tls: { letsEncrypt: { email: 'ops' } } }],
    ['an unknown key', { domian: 'example.org' }],
    ['null for a mapping', { postgres: null }],
    ['NaN', { livekit: { replicas: NaN } }],
    ['Infinity', { livekit: { replicas: Infinity } }],
    ['a fraction', { livekit: { replicas: 1.5 } }],
    ['an unsafe integer', { coturn: { userQuota: 2 ** 60 } }],
  ];
  test.each(invalid)('%s: refused by both', (_, input) => {
    expect(verdicts(input)).toEqual({ zod: 'refused', plan: 'refused' });
  });

  test('a __proto__ key, which zod drops from a record, is left to zod', () => {
    const input = JSON.parse('{"livekit": {"nodeSelector": {"__proto__": {"a": "b"}}}}');
    expect(verdicts(input).plan).toBe('refused');
    expect(verdicts(input).zod).not.toBe('refused');
  });

  test('every single-key change to a config that sets every key: the same verdict and result', () => {
    const base = configSchema().parse(EVERYTHING) as Record<string, unknown>;
    // Absent, null, each other type, and the edges of numbers and strings; an unknown key in each mapping.
    const forValues: unknown[] = [undefined, null, true, -1, 0, 1.5, '', 'x', [], {}];
    const forCollections: unknown[] = [undefined, null, 'x', ['x']];
    const disagreements: unknown[] = [];
    let accepted = 0;
    let cases = 0;
    const visit = (v: unknown, at: (string | number)[]) => {
      if (v !== null && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) visit(x, [...at, Array.isArray(v) ? Number(k) : k]);
        if (!Array.isArray(v)) check(at, (o) => ({ ...o, zzz: 'unknown key' }));
        for (const r of forCollections) check(at, () => r);
      } else {
        for (const r of forValues) check(at, () => r);
      }
    };
    const check = (at: (string | number)[], change: (old: any) => unknown) => {
      const input = changed(base, at, change);
      const v = verdicts(input);
      cases++;
      if (v.zod !== 'refused') accepted++;
      if (v.plan !== v.zod) disagreements.push({ at: at.join('.'), input: JSON.stringify(valueAt(input, at)), ...v });
    };
    visit(base, []);
    expect(disagreements.slice(0, 3)).toEqual([]);
    // Enough of both kinds that the comparison means something.
    expect(cases).toBeGreaterThan(3000);
    expect(accepted).toBeGreaterThan(500);
    expect(cases - accepted).toBeGreaterThan(2000);
  });
});

function changed(v: any, at: (string | number)[], change: (old: any) => unknown): any {
  if (at.length === 0) return change(v);
  const copy = Array.isArray(v) ? [...v] : { ...v };
  const value = changed(v[at[0]], at.slice(1), change);
  if (value === undefined && !Array.isArray(copy)) delete copy[at[0]];
  else copy[at[0]] = value;
  return copy;
}

function valueAt(v: any, at: (string | number)[]): unknown {
  return at.reduce((x, k) => (x === null || typeof x !== 'object' ? undefined : x[k]), v);
}

describe('the plan is compiled only from what it understands', () => {
  const never = () => undefined;
  test.each([
    ['an object that drops unknown keys', z.object({ a: z.string() }), 'cannot express an object that drops unknown keys (use z.strictObject) at (top level)'],
    ['a union', z.strictObject({ a: z.union([z.string(), z.number()]) }), 'cannot express a union schema at a'],
    ['a transform', z.strictObject({ a: z.string().trim() }), 'cannot express the check overwrite at a'],
    ['an unnamed refinement', z.strictObject({ a: z.string().refine((v) => v !== '') }), 'cannot express a refinement that is not among the named refinements at a'],
    ['a default JSON cannot hold', z.strictObject({ a: z.number().default(Infinity) }), 'cannot express the value Infinity, which JSON cannot hold at a'],
  ])('%s is refused', (_, schema, message) => {
    expect(() => compilePlan(schema as z.ZodType, never)).toThrow(message);
  });

  test('a part the schema repeats is in the plan once', () => {
    // scheduling.<workload> is one schema, eleven times.
    const schedulingNodes = plan.nodes.filter((n) => n.t === 'object' && n.keys.some(([k]) => k === 'tolerations'));
    expect(schedulingNodes).toHaveLength(1);
  });
});
