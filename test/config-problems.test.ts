/**
 * The cross-checks after checkCombinations in charts/config/index.ts (databaseProblems, closest): each refusal's whole
 * message, and the cases at their edges. Each test kills a mutant the other tests let through (mutation testing:
 * docs/mutation-testing.md, "`config.ts`'s cross-checks, measured apart").
 */
import { ConfigError, KudoConfig, resolveConfig } from '../charts/config';
import { rejection } from './util';

const BACKUP = { destinationPath: 's3://kudo-backups/postgres' };
const cnpg = (cloudnativePg: object, more: object = {}) => ({ ...more, postgres: { mode: 'cloudnative-pg', cloudnativePg } });

describe('what each PostgreSQL mode needs: the whole message', () => {
  test('a WAL archive without its destinationPath; a recovery beside it is refused as well, not hidden by it', () => {
    expect(rejection(cnpg({ backup: { serverName: 'postgres-r1' }, recovery: { serverName: 'postgres' } }))).toBe(
      'kudo.yaml is invalid:\n' +
        '  - postgres.cloudnativePg.backup.destinationPath is required (an S3 URL such as "s3://kudo-backups/postgres") while ' +
        'postgres.cloudnativePg.backup.enabled is true; set enabled: false to run without WAL archiving and point-in-time recovery\n' +
        '  - postgres.cloudnativePg.recovery needs postgres.cloudnativePg.backup (enabled, with its destinationPath): the archive it recovers from',
    );
  });

  test('a recovery that would archive under the name it recovers from', () => {
    expect(rejection(cnpg({ backup: BACKUP, recovery: { serverName: 'postgres' } }))).toBe(
      'kudo.yaml is invalid:\n' +
        '  - postgres.cloudnativePg.recovery.serverName is "postgres", the name the Cluster archives under (postgres.cloudnativePg.backup.serverName): ' +
        'a recovered Cluster starts a new history and must archive under a new name (e.g. "postgres-r1"), or it would refuse the old, non-empty archive',
    );
  });

  test("the backup Jobs' tools of another major than the Cluster's server", () => {
    const message = rejection(cnpg({ backup: BACKUP, image: { tag: '18.1-standard-bookworm' } }));
    expect(message).toContain(
      'kudo.yaml is invalid:\n' +
        `  - postgres.image.tag "17.11-bookworm" is the backup Jobs' pg_dump and pg_restore, but postgres.cloudnativePg.image.tag ` +
        `"18.1-standard-bookworm" runs PostgreSQL 18: pg_dump refuses a server of a newer major, and another major's archive may not restore; ` +
        'set postgres.image.tag to a PostgreSQL 18 tag (e.g. "18.x-bookworm") with it (',
    );
    // The section that tells how: in the README, or in docs/operations.md since the docs were split.
    expect(message).toMatch(/ with it \((README|docs\/operations\.md), "PostgreSQL 17 → 18"\)$/);
  });

  test("a Cluster image tag that names no major is not compared with the tools' (there is nothing to compare)", () => {
    expect(resolveConfig(cnpg({ backup: BACKUP, image: { tag: 'standard-bookworm' } })).postgres.cloudnativePg.image.tag).toBe('standard-bookworm');
  });

  test("an external database verified without its CA's name", () => {
    expect(rejection({ postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'verify-ca', ca: { kind: 'Secret' } } } })).toBe(
      'kudo.yaml is invalid:\n' +
        "  - postgres.external.ca.name is required with sslmode verify-ca: the Secret holding the CA that signed the server's certificate " +
        '(your provider publishes it, e.g. the RDS global bundle)',
    );
  });
});

describe('the key suggested for an unknown one', () => {
  test('of two allowed keys equally near, the first in the schema is suggested', () => {
    // "mix" is one edit from both "min" and "max".
    expect(rejection({ synapse: { databasePool: { mix: 3 } } })).toBe(
      'kudo.yaml is invalid:\n  - synapse.databasePool.mix: unknown key (did you mean "synapse.databasePool.min"?); allowed here: min, max',
    );
  });
});

describe("the schema's own checks: the whole message, and values just past their edges", () => {
  // Survivors of a sample of config.ts's lines (docs/mutation-testing.md, "The config, estimated from a sample").
  test('a misspelt key in a nested mapping: the guess and the keys allowed there', () => {
    expect(rejection({ synapse: { maxUploadSise: '50M' } })).toBe(
      'kudo.yaml is invalid:\n' +
        '  - synapse.maxUploadSise: unknown key (did you mean "synapse.maxUploadSize"?); allowed here: image, media, resources, maxUploadSize, ' +
        'databasePool, workers, mediaRetention, retention, reportStats, enableRegistration, logLevel, adminApi, extraConfig, extraSecretFiles, adminUser',
    );
  });

  test('an unknown key in an item of a list: the keys of the list item', () => {
    expect(rejection({ synapse: { extraSecretFiles: [{ secret: 'kudo-sso', key: 'k', file: 'f', mode: 1 }] } })).toBe(
      'kudo.yaml is invalid:\n  - synapse.extraSecretFiles.0.mode: unknown key; allowed here: secret, key, file',
    );
  });

  test('memory quantities: digits and a unit, nothing before or after; plain bytes are one', () => {
    const memory = (v: string) => ({ redis: { resources: { limits: { memory: v } } } });
    for (const v of ['512Mix', 'x512Mi'])
      expect(rejection(memory(v))).toBe(`kudo.yaml is invalid:\n  - redis.resources.limits.memory: must be a memory quantity such as "512Mi" or "2Gi" (found string "${v}")`);
    expect(resolveConfig(memory('536870912'), 'kudo.yaml').redis.resources.limits.memory).toBe('536870912');
  });

  test('CPU quantities take decimals of more than one digit', () => {
    expect(resolveConfig({ redis: { resources: { limits: { cpu: '0.25' } } } }, 'kudo.yaml').redis.resources.limits.cpu).toBe('0.25');
  });

  test("synapse.maxUploadSize: Synapse's size syntax, nothing before or after", () => {
    for (const v of ['50Mb', 'x50M'])
      expect(rejection({ synapse: { maxUploadSize: v } })).toBe(`kudo.yaml is invalid:\n  - synapse.maxUploadSize: must be a size such as "50M" or "1G" (found string "${v}")`);
  });

  test('a node selector value the API server would refuse', () => {
    expect(rejection({ livekit: { nodeSelector: { pool: '-media' } } })).toBe(
      'kudo.yaml is invalid:\n  - livekit.nodeSelector: "-media" is not a label value (at most 63 letters, digits, "-", "_", ".", starting and ending with a letter or digit) (found a mapping)',
    );
  });

  test('tolerationSeconds without effect NoExecute', () => {
    expect(rejection({ scheduling: { all: { tolerations: [{ key: 'a', operator: 'Exists', effect: 'NoSchedule', tolerationSeconds: 5 }] } } })).toBe(
      'kudo.yaml is invalid:\n  - scheduling.all.tolerations.0.tolerationSeconds: applies only with effect "NoExecute" (found number 5)',
    );
  });
});

describe('patterns hold the whole value: something before or after what they allow is refused', () => {
  // Survivors of the config's second sample (docs/mutation-testing.md, "The config, estimated from a sample"):
  // each pattern's ^ and $, and the edges of its repeats.
  const invalid = (key: string, message: string, value: string) => `kudo.yaml is invalid:\n  - ${key}: ${message} (found string ${JSON.stringify(value)})`;
  const cnpg = (backup: object) => ({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres', ...backup } } } });
  const offsite = { backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } } };

  test('a STUN server is host:port and nothing else', () => {
    for (const v of [' stun.example.org:3478', 'stun.example.org:3478/udp'])
      expect(rejection({ livekit: { rtc: { nodeAddress: 'stun', stunServers: [v] } } })).toBe(
        invalid('livekit.rtc.stunServers.0', 'must be "host:port", e.g. "stun.example.com:3478"', v),
      );
  });

  test("the WAL archive's S3 URL: a bucket, then an optional path without blanks", () => {
    for (const v of ['xs3://kudo-backups/postgres', 's3://kudo-backups/post gres'])
      expect(rejection(cnpg({ destinationPath: v }))).toBe(invalid('postgres.cloudnativePg.backup.destinationPath', 'must be an S3 URL such as "s3://bucket/postgres"', v));
    expect(resolveConfig(cnpg({ destinationPath: 's3://kudo-backups' }), 'kudo.yaml').postgres.cloudnativePg.backup.destinationPath).toBe('s3://kudo-backups');
  });

  test("the object store's credential keys are Secret data keys, of any length from one", () => {
    for (const key of ['accessKeyIdKey', 'secretAccessKeyKey'])
      for (const v of [' ACCESS', 'ACCESS!'])
        expect(rejection(cnpg({ s3Credentials: { [key]: v } }))).toBe(
          invalid(`postgres.cloudnativePg.backup.s3Credentials.${key}`, 'must be a Secret data key (at most 253 letters, digits, "-", "_", ".")', v),
        );
    expect(resolveConfig(cnpg({ s3Credentials: { secretAccessKeyKey: 'SK' } }), 'kudo.yaml').postgres.cloudnativePg.backup.s3Credentials.secretAccessKeyKey).toBe('SK');
  });

  test("the external database's CA key is a Secret data key, of any length from one", () => {
    const external = (key: string) => ({ postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'verify-ca', ca: { name: 'db-ca', key } } } });
    for (const v of [' ca.crt', 'ca.crt!', ''])
      expect(rejection(external(v))).toBe(invalid('postgres.external.ca.key', 'must be a Secret data key (at most 253 letters, digits, "-", "_", ".")', v));
    expect(resolveConfig(external('c'), 'kudo.yaml').postgres.external.ca.key).toBe('c');
  });

  test('secrets.restoreFromBackup is "latest" or a snapshot ID, exactly', () => {
    for (const v of ['latest!', 'xlatest'])
      expect(rejection({ ...offsite, secrets: { restoreFromBackup: v } })).toBe(
        invalid('secrets.restoreFromBackup', 'must be "latest" or a restic snapshot ID such as "4bba301e"', v),
      );
  });

  test('a Gt or Lt node-affinity value is one integer of any number of digits', () => {
    const gt = (v: string) => ({
      scheduling: {
        all: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'cpus', operator: 'Gt', values: [v] }] }] } } },
      },
    });
    expect(() => resolveConfig(gt('42'), 'kudo.yaml')).not.toThrow();
    expect(rejection(gt('4x'))).toBe(
      'kudo.yaml is invalid:\n  - scheduling.all.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0.matchExpressions.0.values: must be one integer with operator "Gt" (found a list)',
    );
  });

  test("the admin user's localpart allows nothing after its characters", () => {
    expect(rejection({ synapse: { adminUser: 'admin!' } })).toBe(invalid('synapse.adminUser', 'must be a Matrix localpart (a-z, 0-9, ".", "_", "=", "-", "/", "+")', 'admin!'));
  });

  test('an image repository is lower-case letters, digits and ".-_/:" from its first character to its last', () => {
    const repository = (v: string) => ({ postgres: { image: { repository: v } } });
    const message = 'must be an image repository such as "docker.io/library/postgres"';
    for (const v of ['Docker.io/library/postgres', 'docker.io/library/postgres ', ' docker.io/library/postgres', 'postgres@sha256', ''])
      expect(rejection(repository(v))).toBe(invalid('postgres.image.repository', message, v));
    // Written out (not left to the default, which the schema does not check), a name of many characters.
    expect(resolveConfig(repository('mirror.example.org:5000/hub/library/postgres'), 'kudo.yaml').postgres.image.repository).toBe('mirror.example.org:5000/hub/library/postgres');
  });

  test("LiveKit's first NodePort may be the range's first", () => {
    expect(resolveConfig({ livekit: { hostNetwork: false, rtc: { udpPort: 30000, tcpPort: 30100 } } }, 'kudo.yaml').livekit.rtc.udpPort).toBe(30000);
  });
});

describe('a default written out is accepted: the schema checks what a user writes, not the default it fills in', () => {
  test.each([
    [{ routing: 'ingress' }, (c: KudoConfig) => c.routing, 'ingress'],
    [{ livekit: { rtc: { nodeAddress: 'node-external-ip' } } }, (c: KudoConfig) => c.livekit.rtc.nodeAddress, 'node-external-ip'],
  ])('%j', (input, read, value) => {
    expect(read(resolveConfig(input, 'kudo.yaml'))).toBe(value);
  });
});

describe('where a refusal says it comes from', () => {
  test('a config given without a source name is called "config"', () => {
    expect(() => resolveConfig(['domain'])).toThrow(new ConfigError('config: the top level must be a mapping of keys, found a list'));
  });

  test("a cron schedule's refusal names its field", () => {
    expect(rejection({ backup: { schedule: { postgres: '60 3 * * *' } } })).toBe(
      'kudo.yaml is invalid:\n  - backup.schedule.postgres: not a schedule Kubernetes accepts: minute "60": out of range 0-59 (e.g. "15 3 * * *" or "@daily") (found string "60 3 * * *")',
    );
  });
});
