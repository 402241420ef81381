/**
 * A PostgreSQL initialised and started the way the rendered StatefulSet
 * does it: the official image's entrypoint runs initdb with POSTGRES_USER
 * (the superuser), its password file and POSTGRES_INITDB_ARGS, allows
 * password logins over TCP, runs the scripts in /docker-entrypoint-initdb.d
 * (ours creates Synapse's role and database), then the container's args.
 *
 * The server runs in a PodNetwork: initdb trusts 127.0.0.1 (as inside the
 * pod), so clients must come from another address, like other pods do, for
 * the password to be asked for and checked. PostgreSQL refuses to run as
 * root, so server-side commands run in a user namespace as uid 1000.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { KudoConfig } from '../../charts/config';
import { container, find, freePort, Manifest, PodNetwork, Program, programs, secretVolumeFiles, sleep, tempDir, writeSecretFiles } from './harness';

export interface RunningPostgres {
  /** The pod's address: where Synapse and other clients connect. */
  readonly host: string;
  readonly port: number;
  /** Synapse's role, database and password. */
  readonly user: string;
  readonly database: string;
  readonly password: string;
  readonly superuser: string;
  readonly version: string;
  readonly dataDir: string;
  /** The local socket's folder (/var/run/postgresql in the pod): `psql -U ...` there is what `kubectl exec` into the pod runs. */
  readonly socketDir: string;
  readonly network: PodNetwork;
  /** Runs SQL as Synapse's role over TCP with its password; returns psql's unaligned output. */
  psql(sql: string, database?: string): string;
  /** Runs SQL as the superuser through the local socket, as an administrator in the pod would. */
  adminPsql(sql: string): string;
  stop(): Promise<void>;
}

/** A command run as uid 1000 in a user namespace: PostgreSQL refuses to run as root. */
export const unprivileged = (command: string, args: string[]) => ['unshare', '--user', '--map-user=1000', '--map-group=1000', '--', command, ...args];

export function postgresVersion(): string {
  return execFileSync(path.join(programs().pgBin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
}

export async function startPostgres(ms: Manifest[], config: KudoConfig, values: Record<string, string>): Promise<RunningPostgres> {
  const bin = programs().pgBin;
  const sts = find(ms, 'StatefulSet', 'postgres');
  const c = container(sts, 'postgres');
  const env: Record<string, string> = Object.fromEntries(c.env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value]));
  const dir = tempDir('postgres');
  // paths: PGDATA's volume and the socket directory move into the temp dir.
  const dataDir = path.join(dir, 'data', path.basename(env.PGDATA));
  const socketDir = path.join(dir, 'run');
  fs.mkdirSync(socketDir, { recursive: true });
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  // paths: the Secret volume, filled as the manifest maps it.
  const secretsDir = path.join(dir, 'secrets');
  writeSecretFiles(secretsDir, secretVolumeFiles(sts, 'password', config, values));
  const fromSecrets = (p: string) => path.join(secretsDir, path.relative('/secrets', p));
  const password = fs.readFileSync(fromSecrets(env.SYNAPSE_DB_PASSWORD_FILE), 'utf8');
  const childEnv = { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' };

  // 1. initdb exactly as the entrypoint calls it (it adds a newline to the password file's content).
  const pwfile = path.join(dir, 'pwfile');
  fs.writeFileSync(pwfile, `${fs.readFileSync(fromSecrets(env.POSTGRES_PASSWORD_FILE), 'utf8')}\n`, { mode: 0o644 });
  const [init, ...initArgs] = unprivileged(path.join(bin, 'initdb'), [
    `--username=${env.POSTGRES_USER}`,
    `--pwfile=${pwfile}`,
    ...env.POSTGRES_INITDB_ARGS.split(' '),
    '-D',
    dataDir,
  ]);
  execFileSync(init, initArgs, { env: childEnv, stdio: 'pipe' });
  // 2. The entrypoint's pg_hba.conf addition: password logins from anywhere.
  fs.appendFileSync(path.join(dataDir, 'pg_hba.conf'), '\nhost all all all scram-sha-256\n');

  // 3. The container's args as rendered (listen_addresses=* included), in the pod's network.
  const args: string[] = c.args;
  if (args[0] !== 'postgres') throw new Error(`unexpected postgres args ${JSON.stringify(args)}`);
  const port = await freePort();
  const network = new PodNetwork();
  const [cmd, full] = network.wrap(
    'unshare',
    unprivileged(path.join(bin, 'postgres'), [
      '-D',
      dataDir,
      ...args.slice(1),
      '-c',
      `port=${port}`, // ports
      '-c',
      `unix_socket_directories=${socketDir}`, // paths
    ]).slice(1),
  );
  const server = new Program('postgres', cmd, full, { logDir: dir, env: childEnv });

  const user = env.SYNAPSE_DB_USER;
  const psql = (sql: string, database = env.SYNAPSE_DB_NAME) =>
    execFileSync(path.join(bin, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', network.podAddress, '-p', String(port), '-U', user, '-d', database, '-c', sql], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, PGPASSWORD: password },
      stdio: 'pipe',
    }).trim();
  // A unix socket is a file: reachable from outside the pod's network namespace, as from inside the pod.
  const socketEnv = { ...childEnv, PGHOST: socketDir, PGPORT: String(port) };
  const adminPsql = (sql: string) =>
    execFileSync(path.join(bin, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-U', env.POSTGRES_USER, '-d', 'postgres', '-c', sql], {
      encoding: 'utf8',
      env: socketEnv,
      stdio: 'pipe',
    }).trim();

  try {
    await server.waitFor('the local socket', () => adminPsql('SELECT 1') === '1', 60_000);
    // 4. The init scripts, as the entrypoint runs executable ones (paths rewritten).
    const scripts = find(ms, 'ConfigMap', 'postgres-init').data as Record<string, string>;
    for (const name of Object.keys(scripts).sort()) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, scripts[name], { mode: 0o755 });
      const scriptEnv = { ...socketEnv, ...env, SYNAPSE_DB_PASSWORD_FILE: fromSecrets(env.SYNAPSE_DB_PASSWORD_FILE), PATH: `${bin}:${process.env.PATH}` };
      execFileSync(file, [], { env: scriptEnv, stdio: 'pipe' });
    }
    await server.waitFor('a login over the pod network', () => psql('SELECT 1') === '1', 10_000);
  } catch (e) {
    await server.stop();
    network.remove();
    throw e;
  }

  return {
    host: network.podAddress,
    port,
    user,
    database: env.SYNAPSE_DB_NAME,
    password,
    superuser: env.POSTGRES_USER,
    version: postgresVersion(),
    dataDir,
    socketDir,
    network,
    psql,
    adminPsql,
    stop: async () => {
      // SIGINT: a fast shutdown, as the preStop hook asks for.
      await server.stop('SIGINT');
      await sleep(50);
      network.remove();
    },
  };
}
