/**
 * A PostgreSQL initialised and started the way the rendered StatefulSet
 * does it: the official image's entrypoint runs initdb with POSTGRES_USER,
 * the password file and POSTGRES_INITDB_ARGS, allows password logins over
 * TCP, creates POSTGRES_DB, then runs the container's args.
 *
 * The server runs in a PodNetwork: initdb trusts 127.0.0.1 (as inside the
 * pod), so clients must come from another address, like other pods do, for
 * the password to be asked for and checked. PostgreSQL refuses to run as
 * root, so server-side commands run in a user namespace as uid 1000.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { container, find, freePort, Manifest, PodNetwork, Program, programs, sleep, tempDir } from './harness';

export interface RunningPostgres {
  /** The pod's address: where Synapse and other clients connect. */
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly password: string;
  readonly version: string;
  readonly dataDir: string;
  readonly network: PodNetwork;
  /** Runs SQL as the database owner over TCP with the password; returns psql's unaligned output. */
  psql(sql: string, database?: string): string;
  stop(): Promise<void>;
}

const unprivileged = (command: string, args: string[]) => ['unshare', '--user', '--map-user=1000', '--map-group=1000', '--', command, ...args];

export function postgresVersion(): string {
  return execFileSync(path.join(programs().pgBin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
}

export async function startPostgres(ms: Manifest[], password: string): Promise<RunningPostgres> {
  const bin = programs().pgBin;
  const c = container(find(ms, 'StatefulSet', 'postgres'), 'postgres');
  const env: Record<string, string> = Object.fromEntries(c.env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value]));
  const dir = tempDir('postgres');
  // paths: PGDATA's volume and the socket directory move into the temp dir.
  const dataDir = path.join(dir, 'data', path.basename(env.PGDATA));
  const socketDir = path.join(dir, 'run');
  fs.mkdirSync(socketDir, { recursive: true });
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  const pwfile = path.join(dir, 'password');
  fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  const childEnv = { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' };

  // 1. initdb exactly as the entrypoint calls it.
  const [init, ...initArgs] = unprivileged(path.join(bin, 'initdb'), [
    `--username=${env.POSTGRES_USER}`, `--pwfile=${pwfile}`, ...env.POSTGRES_INITDB_ARGS.split(' '), '-D', dataDir,
  ]);
  execFileSync(init, initArgs, { env: childEnv, stdio: 'pipe' });
  // 2. The entrypoint's pg_hba.conf addition: password logins from anywhere.
  fs.appendFileSync(path.join(dataDir, 'pg_hba.conf'), '\nhost all all all scram-sha-256\n');

  // 3. The container's args as rendered (listen_addresses=* included), in the pod's network.
  const args: string[] = c.args;
  if (args[0] !== 'postgres') throw new Error(`unexpected postgres args ${JSON.stringify(args)}`);
  const port = await freePort();
  const network = new PodNetwork();
  const [cmd, full] = network.wrap('unshare', unprivileged(path.join(bin, 'postgres'), [
    '-D', dataDir, ...args.slice(1),
    '-c', `port=${port}`, // ports
    '-c', `unix_socket_directories=${socketDir}`, // paths
  ]).slice(1));
  const server = new Program('postgres', cmd, full, { logDir: dir, env: childEnv });

  const psql = (sql: string, database = 'postgres') => execFileSync(path.join(bin, 'psql'), [
    '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', network.podAddress, '-p', String(port), '-U', env.POSTGRES_USER, '-d', database, '-c', sql,
  ], { encoding: 'utf8', env: { PATH: process.env.PATH, PGPASSWORD: password }, stdio: 'pipe' }).trim();

  try {
    await server.waitFor('a login over the pod network', async () => psql('SELECT 1') === '1', 60_000);
    // 4. The entrypoint creates POSTGRES_DB when it is not "postgres".
    if (env.POSTGRES_DB !== 'postgres') psql(`CREATE DATABASE "${env.POSTGRES_DB}"`);
  } catch (e) {
    await server.stop();
    network.remove();
    throw e;
  }

  return {
    host: network.podAddress,
    port,
    user: env.POSTGRES_USER,
    database: env.POSTGRES_DB,
    password,
    version: postgresVersion(),
    dataDir,
    network,
    psql,
    stop: async () => {
      // SIGINT: a fast shutdown, as the preStop hook asks for.
      await server.stop('SIGINT');
      await sleep(50);
      network.remove();
    },
  };
}
