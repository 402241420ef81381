/**
 * The cross-checks after checkCombinations in charts/config/index.ts (databaseProblems, closest): each refusal's whole
 * message, and the cases at their edges. Each test kills a mutant the other tests let through (mutation testing:
 * docs/mutation-testing.md, "`config.ts`'s cross-checks, measured apart").
 */
import { resolveConfig } from '../charts/config';
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
        'set postgres.image.tag to a 18 tag (e.g. "18.x-bookworm") with it (',
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
