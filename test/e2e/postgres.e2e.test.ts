/**
 * PostgreSQL initialised and configured as the rendered StatefulSet does it.
 */
import { execFileSync } from 'child_process';
import * as path from 'path';
import { container, find, generatedSecrets, programs, rendered } from './harness';
import { postgresVersion, RunningPostgres, startPostgres } from './postgres';

const { config, manifests } = rendered();
let pg: RunningPostgres;

beforeAll(async () => {
  const secrets = await generatedSecrets(manifests);
  pg = await startPostgres(manifests, config, secrets);
});
afterAll(() => pg?.stop());

describe(`${postgresVersion()}`, () => {
  test('the image major version matches the server under test', () => {
    const image = container(find(manifests, 'StatefulSet', 'postgres'), 'postgres').image as string;
    const major = /postgres:(\d+)\./.exec(image)![1];
    expect(pg.version).toMatch(new RegExp(`\\(PostgreSQL\\) ${major}\\.`));
  });

  test('the Synapse database is UTF8 with C collation and ctype', () => {
    const row = pg.psql(`SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = '${pg.database}'`);
    expect(row).toBe('UTF8|C|C');
  });

  test('the rendered settings are in force', () => {
    const args: string[] = container(find(manifests, 'StatefulSet', 'postgres'), 'postgres').args;
    const wanted = Object.fromEntries(args.filter((_, i) => args[i - 1] === '-c').map((a) => a.split('=')));
    expect(pg.psql('SHOW max_connections')).toBe(wanted.max_connections);
    expect(pg.psql('SHOW shared_buffers')).toBe(wanted.shared_buffers);
    expect(pg.psql('SHOW effective_cache_size')).toBe(wanted.effective_cache_size);
    expect(pg.psql('SHOW work_mem')).toBe(wanted.work_mem);
  });

  test('Synapse has its own role, not the superuser, owning its database', () => {
    expect(pg.psql('SELECT current_user')).toBe(pg.user);
    expect(pg.user).not.toBe(pg.superuser);
    expect(pg.adminPsql(`SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = '${pg.user}'`)).toBe('f|f|f');
    expect(pg.adminPsql(`SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${pg.database}'`)).toBe(pg.user);
    expect(() => pg.psql('CREATE ROLE intruder SUPERUSER')).toThrow(/permission denied/);
  });

  test('from another pod the role needs the generated password', () => {
    expect(pg.adminPsql(`SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = '${pg.user}'`)).toBe('SCRAM-SHA-256$');
    expect(() =>
      execFileSync(path.join(programs().pgBin, 'psql'), ['-h', pg.host, '-p', String(pg.port), '-U', pg.user, '-d', pg.database, '-c', 'SELECT 1'], {
        env: { PATH: process.env.PATH, PGPASSWORD: 'wrong' },
        stdio: 'pipe',
      }),
    ).toThrow(/password authentication failed/);
  });

  test('the rendered pg_isready probe passes against it', () => {
    const probe: string[] = container(find(manifests, 'StatefulSet', 'postgres'), 'postgres').readinessProbe.exec.command;
    // ports: the probe's --port follows the server's.
    const args = probe.slice(1).map((a) => (a.startsWith('--port=') ? `--port=${pg.port}` : a));
    // The kubelet runs exec probes inside the pod, so this runs in the pod's network.
    const [cmd, full] = pg.network.wrap(path.join(programs().pgBin, probe[0]), args);
    const out = execFileSync(cmd, full, { encoding: 'utf8' });
    expect(out).toContain('accepting connections');
  });
});
