/**
 * PostgreSQL initialised and configured as the rendered StatefulSet does it.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as path from 'path';
import { container, find, generatedSecrets, Program, programs, rendered, rewritePaths, tempDir } from './harness';
import { makeCa } from './pki';
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

describe('TLS: the server has the certificate cert-manager issues for its Service, and admits no client without TLS', () => {
  /** psql as Synapse's role over the network, with libpq's environment `env` (the rendered clients': pg.clientEnv). */
  const psqlWith = (env: Record<string, string>, sql = 'SELECT 1') =>
    execFileSync(path.join(programs().pgBin, 'psql'), ['-X', '-q', '-A', '-t', '-U', pg.user, '-d', pg.database, '-c', sql], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, PGPASSWORD: pg.password, ...env },
      stdio: 'pipe',
    }).trim();
  /** The serial of the certificate the server presents to a new connection (openssl's PostgreSQL STARTTLS). */
  const servedSerial = () =>
    execFileSync('sh', ['-c', `openssl s_client -starttls postgres -connect ${pg.host}:${pg.port} </dev/null 2>/dev/null | openssl x509 -noout -serial`], { encoding: 'utf8' })
      .trim()
      .replace(/^serial=/, '');

  test("the rendered clients' settings (verify-full, the Service's name, the CA) connect over TLS", () => {
    expect(pg.clientEnv).toMatchObject({ PGHOST: 'postgres.kudo.svc', PGSSLMODE: 'verify-full' });
    expect(psqlWith(pg.clientEnv, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toBe('t');
  });

  test('a client without TLS matches no pg_hba.conf line and is refused', () => {
    expect(() => psqlWith({ ...pg.clientEnv, PGSSLMODE: 'disable' })).toThrow(/no pg_hba\.conf entry for host .*no encryption/);
  });

  test('verify-full refuses a certificate from another CA, and a host name the certificate does not name', () => {
    const dir = tempDir('postgres-other-ca');
    makeCa(dir, 'other');
    expect(() => psqlWith({ ...pg.clientEnv, PGSSLROOTCERT: path.join(dir, 'other.crt') })).toThrow(/certificate verify failed/);
    expect(() => psqlWith({ ...pg.clientEnv, PGHOST: 'db.example.org' })).toThrow(/server certificate for "postgres\.kudo\.svc".* does not match host name "db\.example\.org"/);
  });

  test('a renewed certificate is served once the reload step sees it, without a restart; the step stays under its memory limit', async () => {
    const sts = find(manifests, 'StatefulSet', 'postgres');
    const step = container(sts, 'tls-reload');
    const mounts = { ...pg.tls!.mounts, '/var/run/postgresql': pg.socketDir };
    const env = Object.fromEntries(step.env.map((e: any) => [e.name, rewritePaths(e.value, mounts)]));
    // ports: the socket's name carries the server's port. Checked every second instead of every minute.
    const reload = new Program(
      'tls-reload',
      step.command[0],
      step.command.slice(1).map((a: string) => rewritePaths(a, mounts)),
      {
        logDir: tempDir('postgres-tls-reload'),
        env: { PATH: `${programs().pgBin}:${process.env.PATH}`, ...env, PGPORT: String(pg.port), RELOAD_CHECK_SECONDS: '1' },
      },
    );
    try {
      const started = pg.adminPsql('SELECT pg_postmaster_start_time()');
      const before = servedSerial();
      const renewed = pg.renewCertificate();
      expect(renewed).not.toBe(before);
      const deadline = Date.now() + 20_000;
      while (servedSerial() !== renewed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      expect(servedSerial()).toBe(renewed);
      expect(reload.output()).toContain('the certificate changed; configuration reloaded');
      expect(pg.adminPsql('SELECT pg_postmaster_start_time()')).toBe(started);
      // Its liveness probe, as rendered (paths rewritten), passes while the loop goes round.
      const probe: string[] = step.livenessProbe.exec.command.map((a: string) => rewritePaths(a, mounts));
      expect(spawnSync(probe[0], probe.slice(1)).status).toBe(0);
      expect(psqlWith(pg.clientEnv, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toBe('t');
    } finally {
      await reload.stop();
    }
    // The step's largest resident set: psql's, when it asks for the reload (its limit: the rendered one).
    const peakKb = Number(
      execFileSync(
        'python3',
        [
          '-c',
          'import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)',
          path.join(programs().pgBin, 'psql'),
          '--no-psqlrc',
          '-X',
          '-q',
          '-A',
          '-t',
          '-d',
          'postgres',
          '-c',
          'SELECT pg_reload_conf()',
        ],
        { encoding: 'utf8', env: { PATH: process.env.PATH, PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: pg.superuser } },
      ).trim(),
    );
    expect(step.resources.limits.memory).toBe('16Mi');
    expect(peakKb * 1024).toBeLessThan(16 * 2 ** 20);
  });
});
