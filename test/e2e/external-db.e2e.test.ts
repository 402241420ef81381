/**
 * postgres.mode external: Synapse and the dump CronJob against a real
 * PostgreSQL 17 that accepts only TLS, with a certificate from a test CA for
 * the name the config gives. verify-full succeeds with that CA and name, and
 * fails with another CA or another name (the negative controls).
 *
 * The server answers on loopback; the clients keep the rendered host name and
 * reach it through libpq's hostaddr (LOOPBACK_REWRITES.hosts), so the name
 * check is the one a cluster would make.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import type { KudoConfig } from '../../charts/config';
import { configMapFile, container, find, freePort, generatedSecrets, Manifest, Program, programs, rendered, secretVolumeFiles, tempDir, writeSecretFiles } from './harness';
import { issueServerCert, makeCa } from './pki';
import { unprivileged } from './postgres';
import { startSynapse } from './synapse';

const DB_HOST = 'db.kudo.test';
const CA_SECRET = { name: 'kudo-db-ca', key: 'ca.crt' };

let dir: string;
let server: Program;
let port: number;
let secrets: Record<string, string>;
/** The mount path of the CA volume -> folders holding the right CA and an unrelated one. */
let rightCa: string;
let wrongCa: string;

const render = (host = DB_HOST): { config: KudoConfig; manifests: Manifest[] } =>
  rendered({
    postgres: { mode: 'external', external: { host, database: 'matrix', user: 'kudo', sslmode: 'verify-full', ca: { kind: 'Secret', ...CA_SECRET } } },
  });
const { config, manifests } = render();

/** The CA file as the Synapse pod's volume shows it: the volume's item path, from the rendered Deployment. */
function caFolder(ca: string): string {
  const volume = find(manifests, 'Deployment', 'synapse').spec.template.spec.volumes.find((v: any) => v.name === 'db-ca');
  expect(volume.secret.secretName).toBe(CA_SECRET.name);
  const folder = path.join(dir, `database-ca-${ca}`);
  fs.mkdirSync(folder);
  fs.copyFileSync(path.join(dir, `${ca}.crt`), path.join(folder, volume.secret.items[0].path));
  return folder;
}

/** SQL as the provider's administrator, through the local socket. */
const sql = (query: string, database = 'postgres') =>
  execFileSync(
    path.join(programs().pgBin, 'psql'),
    ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', path.join(dir, 'run'), '-p', String(port), '-U', 'postgres', '-d', database, '-c', query],
    { encoding: 'utf8', stdio: 'pipe' },
  ).trim();

/** The mount path of the CA in Synapse's container (from the manifest). */
const caMountPath = () => container(find(manifests, 'Deployment', 'synapse'), 'synapse').volumeMounts.find((m: any) => m.name === 'db-ca').mountPath;

beforeAll(async () => {
  dir = tempDir('external-db');
  const bin = programs().pgBin;
  makeCa(dir, 'test-ca');
  makeCa(dir, 'other-ca');
  // The server's certificate: signed by test-ca for the rendered host name.
  const serverTls = path.join(dir, 'server-tls');
  issueServerCert(dir, 'test-ca', [DB_HOST], serverTls);
  rightCa = caFolder('test-ca');
  wrongCa = caFolder('other-ca');

  // A provider's database: created UTF8 with C collation, as the checklist asks; only TLS logins.
  const data = path.join(dir, 'data');
  fs.mkdirSync(path.join(dir, 'run'));
  const [init, ...initArgs] = unprivileged(path.join(bin, 'initdb'), ['-U', 'postgres', '-E', 'UTF8', '--locale=C', '-D', data]);
  execFileSync(init, initArgs, { stdio: 'pipe', env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' } });
  fs.writeFileSync(path.join(data, 'pg_hba.conf'), ['local all postgres trust', 'hostssl all all 127.0.0.1/32 scram-sha-256', 'hostnossl all all all reject', ''].join('\n'));
  port = await freePort();
  const [cmd, ...args] = unprivileged(path.join(bin, 'postgres'), [
    '-D',
    data,
    '-c',
    `port=${port}`,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `unix_socket_directories=${path.join(dir, 'run')}`,
    '-c',
    'ssl=on',
    '-c',
    `ssl_cert_file=${path.join(serverTls, 'tls.crt')}`,
    '-c',
    `ssl_key_file=${path.join(serverTls, 'tls.key')}`,
  ]);
  server = new Program('postgres', cmd, args, { logDir: dir, env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' } });
  await server.waitFor('the local socket', () => sql('SELECT 1') === '1');

  // The password the operator stores in secrets.refs.postgresPassword (the generator leaves it alone).
  secrets = { ...(await generatedSecrets(manifests)), postgresPassword: 'provider-password:with\\odd chars' };
  const pw = secrets.postgresPassword.replace(/'/g, "''");
  sql(`CREATE ROLE kudo LOGIN PASSWORD '${pw}'`);
  sql("CREATE DATABASE matrix OWNER kudo ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
}, 120_000);

afterAll(async () => {
  await server?.stop('SIGINT');
});

test("the generator made no database password: the provider's is the only one", async () => {
  expect(Object.keys(await generatedSecrets(manifests))).not.toContain('postgresPassword');
});

test('the server refuses logins without TLS (so a success below went over TLS)', () => {
  const r = spawnSync(path.join(programs().pgBin, 'psql'), ['-X', '-h', '127.0.0.1', '-p', String(port), '-U', 'kudo', '-d', 'matrix', '-c', 'SELECT 1'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, PGSSLMODE: 'disable', PGPASSWORD: secrets.postgresPassword },
  });
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain('no encryption');
});

test('verify-full with the right CA and host name: Synapse sets up its schema over TLS', async () => {
  const synapse = await startSynapse(manifests, config, secrets, { hostaddr: '127.0.0.1', port }, undefined, { [caMountPath()]: rightCa });
  try {
    // Synapse's connections are its role's, and every one is encrypted.
    const sessions = sql("SELECT count(*), bool_and(s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'kudo'");
    const [count, allTls] = sessions.split('|');
    expect(Number(count)).toBeGreaterThan(0);
    expect(allTls).toBe('t');
    expect(Number(sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = 'kudo'", 'matrix'))).toBeGreaterThan(100);
    const hs = yaml.load(fs.readFileSync(synapse.homeserverFile, 'utf8')) as any;
    expect(hs.database.args).toMatchObject({ host: DB_HOST, sslmode: 'verify-full' });
  } finally {
    await synapse.stop();
  }
});

test('negative control: another CA is refused (certificate verify failed)', async () => {
  const start = startSynapse(manifests, config, secrets, { hostaddr: '127.0.0.1', port }, undefined, { [caMountPath()]: wrongCa });
  await expect(start).rejects.toThrow(/certificate verify failed/);
});

test('negative control: the right CA for another name is refused (host name mismatch)', async () => {
  const other = render('other.kudo.test');
  const start = startSynapse(other.manifests, other.config, secrets, { hostaddr: '127.0.0.1', port }, undefined, { [caMountPath()]: rightCa });
  await expect(start).rejects.toThrow(/does not match host name "other\.kudo\.test"/);
});

test("the dump CronJob's rendered script dumps the database over verify-full", () => {
  const scripts = path.join(dir, 'scripts');
  const backups = path.join(dir, 'backups');
  const passwordDir = path.join(dir, 'dump-secrets');
  fs.mkdirSync(scripts);
  fs.mkdirSync(backups);
  for (const f of Object.keys(find(manifests, 'ConfigMap', 'backup-scripts').data)) {
    fs.writeFileSync(path.join(scripts, f), configMapFile(manifests, 'backup-scripts', f), { mode: 0o555 });
  }
  const cron = find(manifests, 'CronJob', 'postgres-backup');
  writeSecretFiles(passwordDir, secretVolumeFiles(cron, 'password', config, secrets));
  const dump = container(cron.spec.jobTemplate, 'dump');
  const env: Record<string, string> = { PATH: `${programs().pgBin}:${process.env.PATH}`, HOME: dir };
  for (const e of dump.env) if (e.value !== undefined) env[e.name] = e.value;
  expect(env).toMatchObject({ PGHOST: DB_HOST, PGSSLMODE: 'verify-full', PGUSER: 'kudo', PGDATABASE: 'matrix' });
  const caMount = dump.volumeMounts.find((m: any) => m.name === 'db-ca').mountPath;
  env.PGSSLROOTCERT = env.PGSSLROOTCERT.replace(caMount, rightCa); // paths
  env.PGHOSTADDR = '127.0.0.1'; // hosts
  env.PGPORT = String(port); // ports
  env.STAGING_DIR = backups; // paths
  env.PASSWORD_FILE = path.join(passwordDir, 'password'); // paths
  const [shell, script] = dump.command as string[];
  const r = spawnSync(shell, [path.join(scripts, path.basename(script))], { env, encoding: 'utf8' });
  expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
  const files = fs.readdirSync(path.join(backups, 'postgres'));
  expect(files).toEqual(['synapse.dump']);
  // And with the other CA the script fails, leaving no dump behind.
  const bad = spawnSync(shell, [path.join(scripts, path.basename(script))], {
    env: { ...env, PGSSLROOTCERT: env.PGSSLROOTCERT.replace(rightCa, wrongCa), STAGING_DIR: path.join(dir, 'backups-bad') },
    encoding: 'utf8',
  });
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toContain('certificate verify failed');
  expect(fs.readdirSync(path.join(dir, 'backups-bad', 'postgres'))).toEqual([]);
});
