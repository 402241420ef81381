import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigError, configSchema, loadConfig, resolveConfig } from '../charts/config';
import { CRON_CASES } from './cron.cases';
import { PRODUCTION, rejection } from './util';

function tempFile(content: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-config-'));
  const file = path.join(dir, 'kudo.yaml');
  fs.writeFileSync(file, content);
  return file;
}

describe('defaults', () => {
  test('no config renders the example domain with derived hosts', () => {
    const c = loadConfig(undefined);
    expect(c.domain).toBe('example.com');
    expect(c.serverName).toBe('example.com');
    expect(c.hosts).toEqual({ matrix: 'matrix.example.com', livekit: 'livekit.example.com', turn: 'turn.example.com' });
    expect(c.secrets.mode).toBe('generated');
  });

  test('hosts follow the domain and each can be overridden', () => {
    const c = resolveConfig({ domain: 'kudo.chat', serverName: 'chat.kudo.chat', hosts: { turn: 'relay.kudo.chat' } });
    expect(c.hosts).toEqual({ matrix: 'matrix.kudo.chat', livekit: 'livekit.kudo.chat', turn: 'relay.kudo.chat' });
    expect(c.serverName).toBe('chat.kudo.chat');
  });

  test('an empty YAML file is refused: it would silently render example.com', () => {
    expect(() => loadConfig(tempFile(''))).toThrow(/kudo\.yaml is empty: write at least your domain/);
    expect(() => loadConfig(tempFile('# only a comment\n'))).toThrow(ConfigError);
    // `{}` says "the defaults" on purpose.
    expect(loadConfig(tempFile('{}\n')).domain).toBe('example.com');
  });

  test('a YAML file is read and merged onto the defaults', () => {
    const c = loadConfig(tempFile('domain: kudo.example.org\npostgres:\n  storage:\n    size: 50Gi\nbackup:\n  storage:\n    size: 100Gi\n'));
    expect(c.hosts.matrix).toBe('matrix.kudo.example.org');
    expect(c.postgres.storage.size).toBe('50Gi');
    expect(c.postgres.resources.limits.memory).toBe('1Gi');
  });

  test('YAML merge keys (<<) and anchors work, as in any YAML 1.1 config', () => {
    const c = loadConfig(
      tempFile(
        [
          'synapse:',
          '  resources: &res',
          '    requests: { cpu: 100m, memory: 256Mi }',
          '    limits: { cpu: "2", memory: 2Gi }',
          '  workers:',
          '    resources:',
          '      <<: *res',
          '      limits: { cpu: "1", memory: 1Gi }',
          '',
        ].join('\n'),
      ),
    );
    expect(c.synapse.workers.resources).toEqual({ requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } });
  });
});

describe('rejected input names the key path', () => {
  test('unknown top-level key, with a suggestion', () => {
    const msg = rejection({ domian: 'example.org' });
    expect(msg).toContain('domian: unknown key (did you mean "domain"?)');
  });

  test('unknown nested key, with a suggestion', () => {
    const msg = rejection({ postgres: { storage: { sise: '1Gi' } } });
    expect(msg).toContain('postgres.storage.sise: unknown key (did you mean "postgres.storage.size"?)');
    expect(msg).toContain('allowed here: size, className');
  });

  test("an unknown key in a list's eleventh item is checked against the item's keys", () => {
    const tolerations = [...Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, operator: 'Exists' })), { key: 'k10', operater: 'Exists' }];
    expect(rejection({ scheduling: { tools: { tolerations } } })).toContain(
      'scheduling.tools.tolerations.10.operater: unknown key (did you mean "scheduling.tools.tolerations.10.operator"?); allowed here: key, operator, value, effect, tolerationSeconds',
    );
  });

  test('an unknown key that resembles nothing gets no suggestion', () => {
    expect(rejection({ zzzzzzzz: 1 })).toMatch(/zzzzzzzz: unknown key; allowed here:/);
    // Three edits from "hosts" is too far for an 8-letter key (at most 2, or a third of its length).
    expect(rejection({ hostsxyz: {} })).toMatch(/hostsxyz: unknown key; allowed here:/);
  });

  test('wrong type', () => {
    expect(rejection({ synapse: { reportStats: 'yes' } })).toContain('synapse.reportStats: expected boolean, found string "yes"');
    expect(rejection({ livekit: { replicas: 1.5 } })).toContain('livekit.replicas');
  });

  test('invalid DNS names', () => {
    expect(rejection({ domain: 'Example.COM' })).toContain('domain: must be a lowercase DNS name');
    expect(rejection({ domain: 'localhost' })).toContain('domain: must be a lowercase DNS name');
    expect(rejection({ hosts: { matrix: 'bad_host.example.com' } })).toContain('hosts.matrix: must be a lowercase DNS name');
    expect(rejection({ serverName: '-x.example.com' })).toContain('serverName');
    expect(rejection({ namespaces: { stack: 'Kudo' } })).toContain('namespaces.stack: must be a lowercase DNS label');
  });

  test('enum values list what is allowed', () => {
    expect(rejection({ tls: { letsEncrypt: { environment: 'prod' } } })).toContain('tls.letsEncrypt.environment: found string "prod", allowed: "production", "staging"');
  });

  test('bad quantities and image references', () => {
    expect(rejection({ postgres: { resources: { limits: { memory: 'lots' } } } })).toContain('postgres.resources.limits.memory: must be a memory quantity');
    expect(rejection({ synapse: { image: { digest: 'sha256:abc' } } })).toContain('synapse.image.digest');
  });

  test('the top level must be a mapping', () => {
    expect(rejection(['domain'])).toContain('the top level must be a mapping');
    expect(rejection('domain: x')).toContain('the top level must be a mapping');
  });

  test('a database pool that PostgreSQL cannot serve', () => {
    expect(rejection({ synapse: { databasePool: { max: 50 } }, postgres: { maxConnections: 40 } })).toContain(
      'postgres.maxConnections (40) must be at least synapse.databasePool.max (50) + 10 for backups and administration (60)',
    );
    // With workers every process has a pool of its own.
    expect(rejection({ synapse: { workers: { enabled: true } }, postgres: { maxConnections: 60 } })).toContain(
      'postgres.maxConnections (60) must be at least synapse.databasePool.max (10) + 14 worker processes x synapse.workers.databasePool.max (5) + 10 for backups and administration (90)',
    );
    expect(rejection({ synapse: { databasePool: { min: 20, max: 10 } } })).toContain('synapse.databasePool.min (20) is larger');
  });

  test('host ports that collide', () => {
    expect(rejection({ livekit: { rtc: { portRangeStart: 11000, portRangeEnd: 12200 } } })).toContain('overlaps coturn.relayPorts');
    expect(rejection({ livekit: { rtc: { tcpPort: 3478 } } })).toContain('livekit.rtc.tcpPort collides with the coturn listening port 3478');
    expect(rejection({ coturn: { relayPorts: { min: 5000, max: 8000 } } })).toContain('include the LiveKit API port 7880');
    expect(rejection({ livekit: { rtc: { portRangeStart: 60000, portRangeEnd: 50000 } } })).toContain('portRangeStart (60000) is larger');
  });

  test('host-network pods need their own namespace, and no two namespaces may be one', () => {
    expect(rejection({ namespaces: { stack: 'kudo', hostNetwork: 'kudo' } })).toContain('host-network pods need their own privileged namespace');
    expect(rejection({ namespaces: { app: 'kudo' } })).toContain('namespaces.app and namespaces.stack are both "kudo"; each namespace is rendered with its own Pod Security level');
    expect(rejection({ namespaces: { app: 'kudo-media' } })).toContain('namespaces.app and namespaces.hostNetwork are both "kudo-media"');
  });

  test('public hosts must differ (each has its own route, certificate and DNS record)', () => {
    expect(rejection({ hosts: { livekit: 'matrix.example.com' } })).toContain('hosts.matrix and hosts.livekit are both "matrix.example.com"');
    expect(rejection({ hosts: { turn: 'livekit.example.com' } })).toContain('hosts.livekit and hosts.turn are both "livekit.example.com"');
    // The server name may be the Matrix host (one route and certificate then).
    expect(resolveConfig({ serverName: 'matrix.example.com' }).serverName).toBe('matrix.example.com');
  });

  test('names the API server would refuse are refused here', () => {
    expect(rejection({ ingress: { className: 'Traefik_Public' } })).toContain('ingress.className: must be a Kubernetes object name');
    expect(rejection({ gatewayApi: { gatewayClassName: 'a'.repeat(254) } })).toContain('gatewayApi.gatewayClassName: must be a Kubernetes object name');
    expect(rejection({ postgres: { storage: { className: 'fast ssd' } } })).toContain('postgres.storage.className: must be a Kubernetes object name');
    expect(rejection({ livekit: { nodeSelector: { 'kudo/media': 'yes please' } } })).toContain('livekit.nodeSelector: "yes please" is not a label value');
    expect(rejection({ coturn: { nodeSelector: { 'Bad Key': 'true' } } })).toContain('coturn.nodeSelector: "Bad Key" is not a label key');
    expect(rejection({ monitoring: { serviceMonitorLabels: { release: 'x'.repeat(64) } } })).toContain('is not a label value (at most 63 letters');
    expect(rejection({ ingress: { annotations: { 'not/a/key': 'v' } } })).toContain('ingress.annotations: "not/a/key" is not an annotation key');
    expect(rejection({ secrets: { refs: { formSecret: { key: 'k'.repeat(254) } } } })).toContain('secrets.refs.formSecret.key');
    // Valid shapes pass.
    const ok = resolveConfig({ ingress: { className: 'public.traefik' }, livekit: { nodeSelector: { 'node-role.kubernetes.io/media': '' } } });
    expect(ok.ingress.className).toBe('public.traefik');
  });

  test('a Matrix admin user ID Synapse can register', () => {
    expect(rejection({ synapse: { adminUser: 'Admin' } })).toContain('synapse.adminUser: must be a Matrix localpart');
    expect(rejection({ synapse: { adminUser: '_admin' } })).toContain('synapse.adminUser: Synapse refuses localparts starting with "_"');
    const long = 'a'.repeat(250);
    expect(rejection({ synapse: { adminUser: long } })).toContain(`synapse.adminUser: the user ID @${long}:example.com is 263 characters; Matrix allows 255`);
    expect(resolveConfig({ synapse: { adminUser: 'ops.admin+kudo' } }).synapse.adminUser).toBe('ops.admin+kudo');
  });

  test.each(CRON_CASES)('backup schedule %j is accepted: %s (as Kubernetes decides)', (schedule, ok) => {
    const run = () => resolveConfig({ backup: { schedule: { postgres: schedule } } });
    if (ok) expect(run().backup.schedule.postgres).toBe(schedule);
    else expect(run).toThrow(/backup\.schedule\.postgres: /);
  });

  test.each(['TZ=Europe/Berlin 15 3 * * *', 'CRON_TZ=UTC 15 3 * * *'])('a time zone in backup schedule %j is refused with the reason', (schedule) => {
    expect(() => resolveConfig({ backup: { schedule: { postgres: schedule } } })).toThrow(
      'backup.schedule.postgres: not a schedule Kubernetes accepts: a time zone in the schedule is refused by Kubernetes (backups run in UTC)',
    );
  });

  test.each(['database', 'user'])('postgres.external.%s must be a PostgreSQL name, all of it', (key) => {
    const external = (name: string) => resolveConfig({ postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'require', [key]: name } } });
    expect(external('kudo_db2').postgres.external[key as 'database' | 'user']).toBe('kudo_db2');
    // A name PostgreSQL would take only quoted: a dash after a valid start, a digit first.
    for (const name of ['kudo-db', '2kudo']) expect(() => external(name)).toThrow(`postgres.external.${key}: must be a PostgreSQL name`);
  });

  test('all problems are reported at once', () => {
    const msg = rejection({ domian: 'x', synapse: { reportStats: 1 } });
    expect(msg).toContain('domian');
    expect(msg).toContain('synapse.reportStats');
  });
});

describe('files', () => {
  test('a missing file', () => {
    expect(() => loadConfig('/nonexistent/kudo.yaml')).toThrow('/nonexistent/kudo.yaml: cannot read the config file (no such file)');
  });

  test('malformed YAML names the line', () => {
    const file = tempFile('domain: example.org\npostgres:\n  storage: [unclosed\n');
    expect(() => loadConfig(file)).toThrow(/malformed YAML at line \d+, column \d+/);
    // The whole message: the parser's reason, without its own position and the quoted source lines after it.
    expect(() => loadConfig(file)).toThrow(new Error(`${file}: malformed YAML at line 4, column 1: unexpected end of the stream within a flow collection`));
  });

  test('an empty KUDO_CONFIG names no file: the embedded defaults', () => {
    expect(loadConfig('')).toEqual(loadConfig(undefined));
    expect(loadConfig('').domain).toBe('example.com');
  });

  test('YAML that is not a mapping', () => {
    expect(() => loadConfig(tempFile('- a\n- b\n'))).toThrow('the top level must be a mapping of keys, found a list');
  });
});

describe("host port ranges: sized from the quotas, clear of the kernel's ephemeral ports", () => {
  const size = (a: number, b: number) => b - a + 1;
  const LINUX_EPHEMERAL = [32768, 60999];
  const NODE_PORTS = [30000, 32767];
  const outside = (a: number, b: number, [lo, hi]: number[]) => b < lo || a > hi;

  test.each(['small', 'production'] as const)("profile %s: coturn's relay range holds an even/odd pair for every allocation its quota allows", (profile) => {
    const c = resolveConfig(profile === 'production' ? PRODUCTION : {});
    const { min, max } = c.coturn.relayPorts;
    // An Allocate with EVEN-PORT (R bit) takes an even port and the odd one above it (coturn's turnports_allocate_even).
    expect(min % 2).toBe(0);
    expect(Math.floor(size(min, max) / 2)).toBeGreaterThanOrEqual(c.coturn.totalQuota);
    expect(c.coturn.totalQuota).toBeGreaterThan(0);
  });

  test.each(['small', 'production'] as const)("profile %s: LiveKit's UDP range holds two ports per participant, with room for a second node address", (profile) => {
    const c = resolveConfig(profile === 'production' ? PRODUCTION : {});
    const { portRangeStart, portRangeEnd } = c.livekit.rtc;
    expect(size(portRangeStart, portRangeEnd)).toBeGreaterThanOrEqual(4 * c.livekit.participantsPerNode);
    // The incident: 60 participants joined one node at once.
    expect(c.livekit.participantsPerNode).toBeGreaterThanOrEqual(60);
  });

  test.each(['small', 'production'] as const)("profile %s: both ranges lie below Linux's ephemeral ports and outside the NodePort range", (profile) => {
    const c = resolveConfig(profile === 'production' ? PRODUCTION : {});
    for (const [a, b] of [
      [c.coturn.relayPorts.min, c.coturn.relayPorts.max],
      [c.livekit.rtc.portRangeStart, c.livekit.rtc.portRangeEnd],
    ]) {
      expect([a, b, outside(a, b, LINUX_EPHEMERAL)]).toEqual([a, b, true]);
      expect([a, b, outside(a, b, NODE_PORTS)]).toEqual([a, b, true]);
    }
  });

  test('production holds more than small: quota, participants and the ranges with them', () => {
    const small = resolveConfig({});
    const prod = resolveConfig(PRODUCTION);
    expect(prod.coturn.totalQuota).toBeGreaterThan(small.coturn.totalQuota);
    expect(prod.livekit.participantsPerNode).toBeGreaterThan(small.livekit.participantsPerNode);
    // Keys you set win over the profile.
    expect(resolveConfig({ ...PRODUCTION, coturn: { totalQuota: 100 } }).coturn.totalQuota).toBe(100);
  });

  test('a total quota the relay range cannot serve is refused, naming both keys and a range that would', () => {
    expect(rejection({ coturn: { relayPorts: { min: 49152, max: 49252 }, totalQuota: 1200 } })).toContain(
      'coturn.relayPorts 49152-49252 hold 50 even/odd port pairs, fewer than coturn.totalQuota (1200)',
    );
    expect(rejection({ coturn: { relayPorts: { min: 49152, max: 49252 }, totalQuota: 1200 } })).toContain('widen coturn.relayPorts to 49152-51551 or lower coturn.totalQuota');
    // An odd first port starts no pair.
    expect(rejection({ coturn: { relayPorts: { min: 10001, max: 10200 }, totalQuota: 100 } })).toContain('hold 99 even/odd port pairs');
    expect(resolveConfig({ coturn: { relayPorts: { min: 10000, max: 10199 }, totalQuota: 100 } }).coturn.totalQuota).toBe(100);
    // No quota at all: every range runs out first.
    expect(rejection({ coturn: { totalQuota: 0 } })).toContain('coturn.totalQuota: 0 means no limit, which no relay range can serve');
  });

  test('a LiveKit range too small for the participants per node is refused; the UDP mux serves any number', () => {
    expect(rejection({ livekit: { rtc: { portRangeStart: 50000, portRangeEnd: 50100 }, participantsPerNode: 60 } })).toContain(
      'livekit.rtc.portRangeStart-portRangeEnd 50000-50100 has 101 ports, fewer than the 120 that livekit.participantsPerNode (60) needs',
    );
    expect(rejection({ livekit: { participantsPerNode: 5000 } })).toContain('livekit.participantsPerNode (5000)');
    expect(resolveConfig({ livekit: { participantsPerNode: 5000, rtc: { udpPort: 7882 } } }).livekit.rtc.udpPort).toBe(7882);
  });
});

describe('every numeric bound of the schema, at its edges (the validator the render uses: there is no other)', () => {
  const SAFE = Number.MAX_SAFE_INTEGER;
  // [key path, lowest, highest]; "*" stands for every scheduling section, "0" for an array's first element.
  const BOUNDS: [string, number, number][] = [
    ['gatewayApi.controlPlane.ports.0', 1, 65535],
    ['postgres.maxConnections', 10, 10000],
    ['postgres.cloudnativePg.instances', 1, 9],
    ['postgres.cloudnativePg.backup.archiveTimeoutSeconds', 10, 3600],
    ['postgres.external.port', 1, 65535],
    ['synapse.databasePool.min', 1, SAFE],
    ['synapse.databasePool.max', 1, SAFE],
    ['synapse.workers.replicas.clientReader', 0, 50],
    ['synapse.workers.replicas.synchrotron', 0, 50],
    ['synapse.workers.replicas.initialSynchrotron', 0, 50],
    ['synapse.workers.replicas.federationInbound', 0, 50],
    ['synapse.workers.replicas.federationReader', 0, 50],
    ['synapse.workers.replicas.federationSender', 0, 50],
    // At most one of these may run: a cross-check says so, with its own message (see 'refused' in synapse-workers.test.ts).
    ['synapse.workers.replicas.mediaRepository', 0, SAFE],
    ['synapse.workers.replicas.eventPersister', 0, 50],
    ['synapse.workers.replicas.eventCreator', 0, 50],
    ['synapse.workers.replicas.streamWriter', 0, SAFE],
    ['synapse.workers.replicas.background', 0, SAFE],
    ['synapse.workers.databasePool.min', 1, SAFE],
    ['synapse.workers.databasePool.max', 1, SAFE],
    ['synapse.workers.routerReplicas', 1, 20],
    ['livekit.replicas', 1, 100],
    ['livekit.participantsPerNode', 1, 30000],
    ['livekit.rtc.tcpPort', 1, 65535],
    ['livekit.rtc.udpPort', 1, 65535],
    ['livekit.rtc.portRangeStart', 1, 65535],
    ['livekit.rtc.portRangeEnd', 1, 65535],
    ['livekit.turn.udpPort', 1, 65535],
    ['livekit.turn.tlsPort', 1, 65535],
    ['coturn.relayPorts.min', 1, 65535],
    ['coturn.relayPorts.max', 1, 65535],
    ['coturn.userQuota', 0, SAFE],
    ['coturn.totalQuota', 0, SAFE],
    ['coturn.credentialTtlSeconds', 60, 86400],
    ['backup.retention.daily', 1, 366],
    ['backup.retention.weekly', 0, 520],
    ['backup.retention.monthly', 0, 240],
    ['scheduling.*.tolerations.0.tolerationSeconds', -SAFE, SAFE],
    ['scheduling.*.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.weight', 1, 100],
    ['scheduling.*.topologySpreadConstraints.0.maxSkew', 1, SAFE],
    ['scheduling.*.topologySpreadConstraints.0.minDomains', 1, SAFE],
  ];

  /** Every number in the schema with its bounds, found by walking it (zod's public def, minValue, maxValue). */
  function numbers(s: any, at: string, out: Map<string, [number, number]>) {
    const def = s.def;
    const key = (k: string) => (at === '' ? k : `${at}.${k}`);
    if (def.type === 'object') for (const [k, v] of Object.entries(s.shape)) numbers(v, /^scheduling\.[^.]+$/.test(key(k)) ? 'scheduling.*' : key(k), out);
    else if (['optional', 'default', 'prefault', 'nullable'].includes(def.type)) numbers(def.innerType, at, out);
    else if (def.type === 'array') numbers(def.element, key('0'), out);
    else if (def.type === 'record') numbers(def.valueType, key('*'), out);
    else if (def.type === 'union') for (const o of def.options) numbers(o, at, out);
    else if (def.type === 'number') out.set(at, [s.minValue, s.maxValue]);
  }

  test('the schema has exactly these bounds: one added, dropped or moved shows here', () => {
    const found = new Map<string, [number, number]>();
    numbers(configSchema(), '', found);
    expect([...found].sort()).toEqual(BOUNDS.map(([p, lo, hi]) => [p, [lo, hi]]).sort());
  });

  /** A config with `value` at `keyPath` and what the element around it needs. */
  function withValue(keyPath: string, value: number): object {
    const surroundings: Record<string, object> = {
      'gatewayApi.controlPlane.ports.0': { gatewayApi: { controlPlane: { namespace: 'istio-system', ports: [value] } } },
      'postgres.external.port': { postgres: { mode: 'external', external: { host: 'db.example.com', port: value } } },
      'scheduling.*.tolerations.0.tolerationSeconds': {
        scheduling: { coturn: { tolerations: [{ key: 'a', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: value }] } },
      },
      'scheduling.*.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.weight': {
        scheduling: {
          livekit: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: value, preference: { matchExpressions: [{ key: 'a', operator: 'Exists' }] } }] } },
        },
      },
      'scheduling.*.topologySpreadConstraints.0.maxSkew': {
        scheduling: { all: { topologySpreadConstraints: [{ maxSkew: value, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway' }] } },
      },
      'scheduling.*.topologySpreadConstraints.0.minDomains': {
        scheduling: { redis: { topologySpreadConstraints: [{ maxSkew: 1, minDomains: value, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' }] } },
      },
    };
    if (surroundings[keyPath]) return surroundings[keyPath];
    return keyPath.split('.').reduceRight<unknown>((inner, k) => ({ [k]: inner }), value) as object;
  }
  const shown = (p: string) => p.replace('*', /tolerations/.test(p) ? 'coturn' : /weight/.test(p) ? 'livekit' : /minDomains/.test(p) ? 'redis' : 'all');

  // Values within the bounds that a refinement refuses, with its message.
  const REFINED: Record<string, [number, string]> = { 'coturn.totalQuota': [0, 'coturn.totalQuota: 0 means no limit, which no relay range can serve'] };

  test.each(BOUNDS)('%s: %d and %d accepted, one beyond each refused with the key path', (keyPath, lo, hi) => {
    const refined = REFINED[keyPath];
    if (refined) expect(() => resolveConfig(withValue(keyPath, refined[0]))).toThrow(refined[1]);
    for (const v of [lo === refined?.[0] ? lo + 1 : lo, hi]) {
      expect([keyPath, v, configSchema().safeParse(withValue(keyPath, v)).error?.issues]).toEqual([keyPath, v, undefined]);
    }
    // One beyond: an unbounded integer's neighbour is no longer a safe integer, and is refused as such.
    expect(() => resolveConfig(withValue(keyPath, hi + 1))).toThrow(`${shown(keyPath)}: Too big: expected`);
    expect(() => resolveConfig(withValue(keyPath, lo - 1))).toThrow(`${shown(keyPath)}: Too small: expected`);
  });
});

describe('production keeps a copy of the backups off-site, or says why not', () => {
  const S3 = { enabled: true, repository: 's3:https://s3.example.com/kudo-backups' };
  // Production also wants Redis closed (tested below): the nodes' addresses, as an operator would list them.
  const NODES = { nodeCidrs: ['10.0.0.0/16'] };

  test('production without backup.s3 is refused, saying what to set', () => {
    const message = rejection({ profile: 'production' });
    expect(message).toContain(
      'profile "production" keeps no backup off-site: set backup.s3.enabled: true with backup.s3.repository (restic to S3), ' +
        'or waive it with backup.offsite.waived: "<the reason>" (npm run checklist prints it)',
    );
    // Also with backups off altogether, and then it says to turn them on.
    expect(rejection({ profile: 'production', backup: { enabled: false } })).toContain(
      'profile "production" keeps no backup off-site: set backup.enabled: true, ' + 'backup.s3.enabled: true with backup.s3.repository',
    );
  });

  test("CloudNativePG's WAL archive puts the database off-site, not the media and Secrets: still refused, and the message says so", () => {
    const cnpg = { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres' } } };
    expect(rejection({ profile: 'production', postgres: cnpg })).toContain(
      'postgres.cloudnativePg.backup archives the database to S3, but the media and the Secrets stay on the kudo-backups volume in the cluster',
    );
    expect(resolveConfig({ profile: 'production', postgres: cnpg, backup: { s3: S3 }, networkPolicies: NODES }).backup.s3.enabled).toBe(true);
    // Without a WAL archive (the StatefulSet, or CloudNativePG's archive turned off) the message does not speak of one.
    expect(rejection({ profile: 'production' })).toMatch(/or cluster loses the data and its backups together$/m);
    expect(rejection({ profile: 'production', postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } } })).toMatch(
      /or cluster loses the data and its backups together$/m,
    );
  });

  test('backup.s3 with the backups turned off copies nothing off-site: still refused', () => {
    expect(rejection({ profile: 'production', backup: { enabled: false, s3: S3 } })).toContain(
      'profile "production" keeps no backup off-site: set backup.enabled: true, backup.s3.enabled: true',
    );
  });

  test('backup.s3, or a waiver with a reason, is accepted', () => {
    expect(resolveConfig({ profile: 'production', backup: { s3: S3 }, networkPolicies: NODES }).backup.offsite.waived).toBeUndefined();
    expect(resolveConfig({ profile: 'production', backup: { offsite: { waived: 'staging cluster, rebuilt from scratch' } }, networkPolicies: NODES }).backup.offsite.waived).toBe(
      'staging cluster, rebuilt from scratch',
    );
    // small needs neither.
    expect(resolveConfig({}).backup.offsite.waived).toBeUndefined();
  });

  test('a waiver must give a reason, and is refused beside backup.s3 (it would print a warning that is not true)', () => {
    expect(rejection({ profile: 'production', backup: { offsite: { waived: '' } } })).toContain('backup.offsite.waived: must give the reason');
    expect(rejection({ profile: 'production', backup: { offsite: { waived: '   ' } } })).toContain('backup.offsite.waived: must give the reason');
    expect(rejection({ backup: { offsite: { waived: true } } })).toContain('backup.offsite.waived: expected string, found boolean true');
    expect(rejection({ backup: { offsite: { waived: 'no budget' }, s3: S3 } })).toContain(
      'backup.offsite.waived is set, but backup.s3.enabled is true: the backups are copied off-site; remove the waiver',
    );
    expect(rejection({ backup: { offsite: { reason: 'x' } } })).toContain('backup.offsite.reason: unknown key');
  });
});

describe('production keeps Redis closed to other namespaces, or says why not (issue 25, finding 5)', () => {
  // The off-site waiver alone: PRODUCTION (test/util.ts) also waives what is tested here.
  const PROD = { profile: 'production', backup: { offsite: { waived: 'a test of something else' } } };
  const OPEN =
    'profile "production" leaves Redis open to every namespace: LiveKit runs on the host network (livekit.hostNetwork: true) and networkPolicies.nodeCidrs ' +
    'is empty, so the redis NetworkPolicy admits every private address, every pod of every namespace among them, to a Redis that speaks plain TCP with ' +
    "one shared password. Close it by listing the nodes' addresses in networkPolicies.nodeCidrs, or by running LiveKit off the host network " +
    '(livekit.hostNetwork: false, which needs livekit.rtc.udpPort; docs/livekit-without-host-network.md), or waive it with ' +
    'networkPolicies.redisClosed.waived: "<the reason>" (npm run checklist prints it)';

  test('production with LiveKit on the host network and no node addresses is refused, naming the three ways out', () => {
    expect(rejection(PROD)).toBe(`kudo.yaml is invalid:\n  - ${OPEN}`);
    // Said once, beside the off-site refusal when that one applies too.
    expect(
      rejection({ profile: 'production' })
        .split('\n')
        .filter((l) => l.includes('leaves Redis open')),
    ).toHaveLength(1);
  });

  test('each way out is accepted: the nodes listed, LiveKit off the host network, a waiver with its reason', () => {
    expect(resolveConfig({ ...PROD, networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } }).networkPolicies.nodeCidrs).toEqual(['10.0.0.0/16']);
    expect(resolveConfig({ ...PROD, livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100 } } }).livekit.hostNetwork).toBe(false);
    expect(resolveConfig({ ...PROD, networkPolicies: { redisClosed: { waived: 'single-tenant cluster, nothing else runs' } } }).networkPolicies.redisClosed.waived).toBe(
      'single-tenant cluster, nothing else runs',
    );
    // The small profile keeps rendering (the checklist warns), and has nothing to waive.
    expect(resolveConfig({}).networkPolicies.redisClosed.waived).toBeUndefined();
    // With the NetworkPolicies off there is no redis policy for this check to judge: the operator's own policies decide.
    expect(resolveConfig({ ...PROD, networkPolicies: { enabled: false } }).networkPolicies.enabled).toBe(false);
  });

  test('a waiver must give a reason, and is refused where Redis is closed already (its warning would not be true)', () => {
    expect(rejection({ ...PROD, networkPolicies: { redisClosed: { waived: ' ' } } })).toContain(
      'networkPolicies.redisClosed.waived: must give the reason Redis may admit every private address (e.g. "single-tenant test cluster")',
    );
    expect(rejection({ networkPolicies: { redisClosed: { waived: 'x', open: true } } })).toContain('networkPolicies.redisClosed.open: unknown key');
    expect(rejection({ networkPolicies: { nodeCidrs: ['10.0.0.0/16'], redisClosed: { waived: 'x' } } })).toBe(
      'kudo.yaml is invalid:\n' +
        "  - networkPolicies.redisClosed.waived is set, but networkPolicies.nodeCidrs lists the nodes' addresses: Redis admits only them " +
        "and Synapse's processes; remove the waiver",
    );
    expect(rejection({ livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100 } }, networkPolicies: { redisClosed: { waived: 'x' } } })).toBe(
      'kudo.yaml is invalid:\n' +
        '  - networkPolicies.redisClosed.waived is set, but LiveKit is off the host network (livekit.hostNetwork: false): Redis admits it by its labels; remove the waiver',
    );
  });
});

describe('cross-checks at their edges: the last value accepted, the first refused', () => {
  test('a pool whose min equals its max is accepted; one larger than its max is refused', () => {
    expect(resolveConfig({ synapse: { databasePool: { min: 10, max: 10 } } }).synapse.databasePool).toEqual({ min: 10, max: 10 });
    expect(resolveConfig({ synapse: { workers: { enabled: true, databasePool: { min: 5, max: 5 } } } }).synapse.workers.databasePool).toEqual({ min: 5, max: 5 });
    expect(rejection({ synapse: { workers: { enabled: true, databasePool: { min: 6, max: 5 } } } })).toContain(
      'synapse.workers.databasePool.min (6) is larger than synapse.workers.databasePool.max (5)',
    );
  });

  test('postgres.maxConnections of exactly the pools plus the 10 reserved is accepted', () => {
    // synapse.databasePool.max 10 by default, no workers.
    expect(resolveConfig({ postgres: { maxConnections: 20 } }).postgres.maxConnections).toBe(20);
    expect(rejection({ postgres: { maxConnections: 19 } })).toContain('postgres.maxConnections (19) must be at least synapse.databasePool.max (10) + 10');
  });

  test('a LiveKit range of exactly two ports per participant is accepted; one port fewer names the range that would do', () => {
    expect(resolveConfig({ livekit: { participantsPerNode: 60, rtc: { portRangeStart: 50000, portRangeEnd: 50119 } } }).livekit.rtc.portRangeEnd).toBe(50119);
    expect(rejection({ livekit: { participantsPerNode: 60, rtc: { portRangeStart: 50000, portRangeEnd: 50118 } } })).toContain(
      'has 119 ports, fewer than the 120 that livekit.participantsPerNode (60) needs',
    );
    expect(rejection({ livekit: { participantsPerNode: 60, rtc: { portRangeStart: 50000, portRangeEnd: 50118 } } })).toContain(
      'widen the range to at least 50000-50119, or set livekit.rtc.udpPort to share one port',
    );
    // With the UDP mux the range is not used for media: one port is a range.
    expect(resolveConfig({ livekit: { rtc: { udpPort: 7882, portRangeStart: 50000, portRangeEnd: 50000 } } }).livekit.rtc.portRangeStart).toBe(50000);
  });

  test('relay ports: min above max, a one-port range (no pair), an odd first port (the suggested range starts at the next even one)', () => {
    expect(rejection({ coturn: { relayPorts: { min: 50000, max: 50000 } } })).toContain('coturn.relayPorts 50000-50000 hold 0 even/odd port pairs');
    expect(rejection({ coturn: { relayPorts: { min: 20000, max: 10000 } } })).toContain('coturn.relayPorts.min (20000) is larger than coturn.relayPorts.max (10000)');
    expect(rejection({ coturn: { relayPorts: { min: 49152, max: 49252 }, totalQuota: 1200 } })).toContain(
      'an allocation may take a pair (EVEN-PORT, for RTP and RTCP), so coturn would run out of ports before the quota refuses anyone',
    );
    expect(rejection({ coturn: { relayPorts: { min: 10001, max: 10200 }, totalQuota: 100 } })).toContain('widen coturn.relayPorts to 10002-10201 or lower coturn.totalQuota');
  });

  test('STUN servers and a public IP are refused beside the node address that would ignore them', () => {
    expect(rejection({ livekit: { rtc: { stunServers: ['stun.example.org:3478'] } } })).toContain('livekit.rtc.stunServers is used only when livekit.rtc.nodeAddress is "stun"');
    expect(rejection({ livekit: { rtc: { nodeAddress: 'host-ip', publicIp: '203.0.113.9' } } })).toContain(
      'livekit.rtc.publicIp is used only when livekit.rtc.nodeAddress is "node-external-ip" (the default)',
    );
    expect(resolveConfig({ livekit: { rtc: { publicIp: '203.0.113.9' } } }).livekit.rtc.publicIp).toBe('203.0.113.9');
  });

  test('host ports: a range that starts or ends on a fixed port includes it', () => {
    expect(rejection({ livekit: { rtc: { udpPort: 5349 } } })).toContain('livekit.rtc.udpPort collides with the coturn TLS port 5349');
    expect(rejection({ coturn: { relayPorts: { min: 9641, max: 12399 } } })).toContain('coturn.relayPorts 9641-12399 include the coturn metrics port 9641');
    expect(rejection({ coturn: { relayPorts: { min: 1000, max: 3478 } } })).toContain('coturn.relayPorts 1000-3478 include the coturn listening port 3478');
    expect(rejection({ coturn: { relayPorts: { min: 7881, max: 12399 } } })).toContain('coturn.relayPorts 7881-12399 include the livekit.rtc.tcpPort');
    expect(rejection({ coturn: { relayPorts: { min: 4000, max: 6789 } } })).toContain('coturn.relayPorts 4000-6789 include the LiveKit metrics port 6789');
    const lk = rejection({ livekit: { rtc: { portRangeStart: 6789, portRangeEnd: 7880 } } });
    expect(lk).toContain('livekit.rtc.portRange 6789-7880 includes the LiveKit metrics port 6789');
    expect(lk).toContain('livekit.rtc.portRange 6789-7880 includes the LiveKit API port 7880');
    expect(rejection({ livekit: { rtc: { portRangeStart: 8000, portRangeEnd: 10000 } } })).toContain('livekit.rtc.portRange 8000-10000 overlaps coturn.relayPorts 10000-12399');
    expect(rejection({ livekit: { rtc: { portRangeStart: 12399, portRangeEnd: 13000 } } })).toContain('livekit.rtc.portRange 12399-13000 overlaps coturn.relayPorts 10000-12399');
    // coturn listens on the host too (hostNetwork), on UDP as well.
    const turn = rejection({ livekit: { rtc: { portRangeStart: 3478, portRangeEnd: 5349 } } });
    expect(turn).toContain('livekit.rtc.portRange 3478-5349 includes the coturn listening port 3478');
    expect(turn).toContain('livekit.rtc.portRange 3478-5349 includes the coturn TLS port 5349');
    // Ranges below the fixed ports include none of them.
    expect(resolveConfig({ coturn: { relayPorts: { min: 1024, max: 3423 } } }).coturn.relayPorts).toEqual({ min: 1024, max: 3423 });
    expect(resolveConfig({ livekit: { rtc: { portRangeStart: 5400, portRangeEnd: 6399 } } }).livekit.rtc.portRangeStart).toBe(5400);
    // With the UDP mux (udpPort) LiveKit binds no range: it may hold anything.
    expect(resolveConfig({ livekit: { rtc: { udpPort: 7882, portRangeStart: 6789, portRangeEnd: 12399 } } }).livekit.rtc.udpPort).toBe(7882);
  });

  test('every problem is a line of its own: three hosts that are one', () => {
    const dns = 'each needs a DNS record, route and certificate of its own';
    expect(rejection({ hosts: { livekit: 'matrix.example.com', turn: 'matrix.example.com' } })).toBe(
      'kudo.yaml is invalid:\n' +
        `  - hosts.matrix and hosts.livekit are both "matrix.example.com"; ${dns}\n` +
        `  - hosts.matrix and hosts.turn are both "matrix.example.com"; ${dns}\n` +
        `  - hosts.livekit and hosts.turn are both "matrix.example.com"; ${dns}`,
    );
  });

  test("the admin API's refusals say what to do instead", () => {
    expect(rejection({ app: { outsideCluster: true } })).toContain(
      "which needs synapse.adminApi.expose: true with synapse.adminApi.sourceRanges listing the app's fixed egress addresses",
    );
    expect(rejection({ ingress: { controller: 'traefik' }, synapse: { adminApi: { expose: true, sourceRanges: ['203.0.113.0/24'] } } })).toContain(
      'ingress.controller "traefik" has no Ingress annotation that limits source addresses (ingress-nginx and haproxy have one); let the app use MATRIX_ADMIN_URL inside the cluster instead',
    );
  });

  test('a Matrix user ID of exactly 255 characters is accepted', () => {
    // "@" + 242 + ":example.com" (12) = 255.
    expect(resolveConfig({ synapse: { adminUser: 'a'.repeat(242) } }).synapse.adminUser).toHaveLength(242);
    expect(rejection({ synapse: { adminUser: 'a'.repeat(243) } })).toContain('is 256 characters; Matrix allows 255');
  });
});

describe('a refusal says what it found, and guesses the key whatever its case', () => {
  test('null and a mapping are named as such', () => {
    expect(rejection({ synapse: { reportStats: null } })).toContain('synapse.reportStats: expected boolean, found null');
    expect(rejection({ synapse: { reportStats: { on: true } } })).toContain('synapse.reportStats: expected boolean, found a mapping');
  });

  test("production: a section that is not a mapping is refused as it is, not merged into the profile's", () => {
    expect(rejection({ profile: 'production', livekit: null })).toContain('livekit: expected object, found null');
    expect(rejection({ profile: 'production', livekit: ['big'] })).toContain('livekit: expected object, found a list');
    expect(rejection({ profile: 'production', livekit: 'big' })).toContain('livekit: expected object, found string "big"');
    expect(rejection({ profile: 'production', livekit: 5 })).toContain('livekit: expected object, found number 5');
  });

  test('a short key two edits away still gets a suggestion; each unknown key is a line of its own', () => {
    expect(rejection({ tsl: {} })).toContain('tsl: unknown key (did you mean "tls"?)');
    expect(rejection({ tsl: {}, zzzzzzzz: 1 })).toMatch(/\n {2}- zzzzzzzz: unknown key; allowed here: /);
  });

  test('a key in the wrong case gets the right one suggested', () => {
    expect(rejection({ DOMAIN: 'example.org' })).toContain('DOMAIN: unknown key (did you mean "domain"?)');
    // A typo beside a key in capitals: "URL" against "url" would cost three more edits, too many for a 10-letter key.
    expect(rejection({ postgres: { cloudnativePg: { backup: { endpoinURL: 'https://s3.example.com' } } } })).toContain(
      'postgres.cloudnativePg.backup.endpoinURL: unknown key (did you mean "postgres.cloudnativePg.backup.endpointURL"?)',
    );
  });
});

describe('livekit.hostNetwork false: each replica on its own NodePorts', () => {
  const podMode = (livekit: Record<string, unknown>, rest: Record<string, unknown> = {}) => ({ ...rest, livekit: { hostNetwork: false, ...livekit } });

  test('ports in the NodePort range, apart from each other, are accepted', () => {
    const c = resolveConfig(podMode({ replicas: 3, rtc: { udpPort: 31000, tcpPort: 31100 } }));
    expect(c.livekit.hostNetwork).toBe(false);
    expect(c.livekit.rtc).toMatchObject({ udpPort: 31000, tcpPort: 31100 });
    // The last ports of the range.
    expect(resolveConfig(podMode({ replicas: 2, rtc: { udpPort: 32764, tcpPort: 32766 } })).livekit.rtc.tcpPort).toBe(32766);
    // The default keeps LiveKit on the host network.
    expect(resolveConfig({}).livekit.hostNetwork).toBe(true);
  });

  test('the UDP mux port is required: the port range cannot be a NodePort Service', () => {
    expect(rejection(podMode({ rtc: { tcpPort: 31100 } }))).toContain(
      "livekit.hostNetwork false takes media on one UDP port per replica: set livekit.rtc.udpPort to the first replica's NodePort (30000-32767; replica i uses udpPort + i)",
    );
  });

  test('ports outside the NodePort range are refused, for the first replica and the last', () => {
    // The defaults (tcpPort 7881) are host ports, not NodePorts.
    expect(rejection(podMode({ rtc: { udpPort: 31000 } }))).toContain(
      "livekit.rtc.tcpPort 7881: with livekit.hostNetwork false it is the first replica's NodePort, and the replica takes 7881; NodePorts are 30000-32767",
    );
    expect(rejection(podMode({ replicas: 3, rtc: { udpPort: 32766, tcpPort: 31100 } }))).toContain(
      "livekit.rtc.udpPort 32766: with livekit.hostNetwork false it is the first replica's NodePort, and replicas 0-2 take 32766-32768; NodePorts are 30000-32767",
    );
    expect(rejection(podMode({ rtc: { udpPort: 29999, tcpPort: 31100 } }))).toContain('livekit.rtc.udpPort 29999: with livekit.hostNetwork false');
  });

  test("the UDP and TCP ports of the replicas may not overlap: a NodePort is one Service's", () => {
    expect(rejection(podMode({ replicas: 3, rtc: { udpPort: 31000, tcpPort: 31002 } }))).toContain(
      "livekit.rtc.udpPort 31000-31002 and livekit.rtc.tcpPort 31002-31004 overlap: each replica's Service takes its ports as NodePorts, and a NodePort is given to one Service only",
    );
    expect(resolveConfig(podMode({ replicas: 3, rtc: { udpPort: 31000, tcpPort: 31003 } })).livekit.replicas).toBe(3);
  });

  test("coturn's relay ports may not reach into LiveKit's NodePorts, which kube-proxy takes on every node", () => {
    expect(rejection(podMode({ rtc: { udpPort: 31000, tcpPort: 31100 } }, { coturn: { relayPorts: { min: 30000, max: 32399 } } }))).toContain(
      "coturn.relayPorts 30000-32399 include LiveKit's NodePorts 31000 (livekit.rtc.udpPort); kube-proxy takes those ports on every node",
    );
  });
});
