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
import { container, find, freePort, Manifest, PodNetwork, Program, programs, rewritePaths, secretVolumeFiles, sleep, tempDir, writeSecretFiles } from './harness';
import { issueServerCert, makeCa } from './pki';

export interface RunningPostgres {
  /** The pod's address: where Synapse and other clients connect. */
  readonly host: string;
  /**
   * The same address, for libpq's hostaddr: clients keep the rendered host name (postgres.kudo.svc), which
   * verify-full checks the certificate against, and connect here.
   */
  readonly hostaddr: string;
  /**
   * With TLS (the rendered StatefulSet's default): the folder that holds ca.crt, as the db-ca volume of every client
   * shows it, and the PKI folder whose CA signed the server's certificate (renewCertificate signs another).
   */
  readonly tls?: {
    readonly caDir: string;
    readonly pkiDir: string;
    readonly serverDir: string;
    readonly dnsNames: string[];
    /** Mount path -> folder, for the pod's tls and config volumes. */
    readonly mounts: Record<string, string>;
  };
  /** libpq's environment for a client over the network, as the rendered clients connect (TLS verified, when on). */
  readonly clientEnv: Record<string, string>;
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
  /** A new server certificate from the same CA, as cert-manager's renewal writes it; returns its serial. */
  renewCertificate(): string;
  /** Runs SQL as Synapse's role over TCP with its password; returns psql's unaligned output. */
  psql(sql: string, database?: string): string;
  /** Runs SQL as the superuser through the local socket, as an administrator in the pod would. */
  adminPsql(sql: string): string;
  stop(): Promise<void>;
}

/** A command run as uid 1000 in a user namespace: PostgreSQL refuses to run as root. */
export const unprivileged = (command: string, args: string[]) => ['unshare', '--user', '--map-user=1000', '--map-group=1000', '--', command, ...args];

export function postgresVersion(bin = programs().pgBin): string {
  return execFileSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
}

export interface StartPostgresOptions {
  /** The folder of the server and client programs: another major's (the image's tag bumped). @default programs().pgBin */
  readonly bin?: string;
  /**
   * The folder standing for the data volume, kept across starts: PGDATA is where the rendered path puts it on the
   * volume, and a data directory already there is started as it is, without initdb or the init scripts, as the
   * image's entrypoint does. @default - a new, empty volume
   */
  readonly volume?: string;
}

export async function startPostgres(ms: Manifest[], config: KudoConfig, values: Record<string, string>, o: StartPostgresOptions = {}): Promise<RunningPostgres> {
  const bin = o.bin ?? programs().pgBin;
  const sts = find(ms, 'StatefulSet', 'postgres');
  const c = container(sts, 'postgres');
  const env: Record<string, string> = Object.fromEntries(c.env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value]));
  const dir = tempDir('postgres');
  // paths: PGDATA's volume (at the rendered path below the volume's mount) and the socket directory move into the temp dir.
  const dataMount = c.volumeMounts.find((m: any) => m.name === 'data').mountPath as string;
  const dataDir = path.join(o.volume ?? path.join(dir, 'data'), path.relative(dataMount, env.PGDATA));
  // The entrypoint's test: a PG_VERSION file means a database that is there already.
  const existing = fs.existsSync(path.join(dataDir, 'PG_VERSION'));
  const socketDir = path.join(dir, 'run');
  fs.mkdirSync(socketDir, { recursive: true });
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });
  // paths: the Secret volume, filled as the manifest maps it.
  const secretsDir = path.join(dir, 'secrets');
  writeSecretFiles(secretsDir, secretVolumeFiles(sts, 'password', config, values));
  const fromSecrets = (p: string) => path.join(secretsDir, path.relative('/secrets', p));
  const password = fs.readFileSync(fromSecrets(env.SYNAPSE_DB_PASSWORD_FILE), 'utf8');
  const childEnv = { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' };

  if (!existing) {
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
    // 2. The entrypoint's pg_hba.conf addition: password logins from anywhere (with TLS, hba_file names the rendered one instead).
    fs.appendFileSync(path.join(dataDir, 'pg_hba.conf'), '\nhost all all all scram-sha-256\n');
  }

  // paths: with TLS, the certificate cert-manager would issue for the rendered Certificate's names (its CA's too),
  // and the ConfigMap of pg_hba.conf and the reload script, each where the pod mounts it.
  const tlsVolume = sts.spec.template.spec.volumes.find((v: any) => v.name === 'tls');
  let tls: RunningPostgres['tls'];
  const mounts: Record<string, string> = {};
  if (tlsVolume !== undefined) {
    const cert = find(ms, 'Certificate', tlsVolume.secret.secretName);
    const pkiDir = path.join(dir, 'pki');
    const serverDir = path.join(dir, 'tls');
    fs.mkdirSync(pkiDir);
    makeCa(pkiDir, 'ca');
    issueServerCert(pkiDir, 'ca', cert.spec.dnsNames, serverDir);
    const caDir = path.join(dir, 'db-ca');
    fs.mkdirSync(caDir);
    fs.copyFileSync(path.join(pkiDir, 'ca.crt'), path.join(caDir, 'ca.crt'));
    const configDir = path.join(dir, 'config');
    fs.mkdirSync(configDir);
    for (const [file, text] of Object.entries<string>(find(ms, 'ConfigMap', 'postgres-config').data)) fs.writeFileSync(path.join(configDir, file), text);
    for (const m of c.volumeMounts) if (m.name === 'tls' || m.name === 'config') mounts[m.mountPath] = m.name === 'tls' ? serverDir : configDir;
    tls = { caDir, pkiDir, serverDir, dnsNames: cert.spec.dnsNames, mounts };
  }

  // 3. The container's args as rendered (listen_addresses=* included), in the pod's network.
  const args: string[] = c.args.map((a: string) => rewritePaths(a, mounts));
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
  // As the rendered clients connect: the Service's name (verify-full checks it) at the pod's address.
  const clientEnv: Record<string, string> =
    tls === undefined
      ? { PGHOST: network.podAddress, PGPORT: String(port) }
      : { PGHOST: tls.dnsNames[0], PGHOSTADDR: network.podAddress, PGPORT: String(port), PGSSLMODE: 'verify-full', PGSSLROOTCERT: path.join(tls.caDir, 'ca.crt') };
  const psql = (sql: string, database = env.SYNAPSE_DB_NAME) =>
    execFileSync(path.join(bin, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-U', user, '-d', database, '-c', sql], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, PGPASSWORD: password, ...clientEnv },
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
    // 4. The init scripts, as the entrypoint runs executable ones (paths rewritten): on a new database only.
    const scripts = existing ? {} : (find(ms, 'ConfigMap', 'postgres-init').data as Record<string, string>);
    for (const name of Object.keys(scripts).sort()) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, scripts[name], { mode: 0o755 });
      // paths: PGDATA and the password file where this run keeps them.
      const scriptEnv = { ...socketEnv, ...env, PGDATA: dataDir, SYNAPSE_DB_PASSWORD_FILE: fromSecrets(env.SYNAPSE_DB_PASSWORD_FILE), PATH: `${bin}:${process.env.PATH}` };
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
    hostaddr: network.podAddress,
    tls,
    clientEnv,
    renewCertificate: () => {
      if (tls === undefined) throw new Error('this PostgreSQL has no TLS');
      return issueServerCert(tls.pkiDir, 'ca', tls.dnsNames, tls.serverDir);
    },
    port,
    user,
    database: env.SYNAPSE_DB_NAME,
    password,
    superuser: env.POSTGRES_USER,
    version: postgresVersion(bin),
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

/**
 * A rendered libpq client's environment (the dump and restore steps'), pointed at `pg`: the rendered host name stays,
 * as verify-full checks the certificate against it (hosts: PGHOSTADDR is the server's address), the port is the
 * server's (ports), and the CA file the one its db-ca volume would hold (paths).
 */
export function libpqClientEnv(pg: RunningPostgres, rendered: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { ...rendered, PGHOSTADDR: pg.hostaddr, PGPORT: String(pg.port) };
  if (rendered.PGSSLROOTCERT !== undefined) {
    if (pg.tls === undefined) throw new Error(`the client checks the server against ${rendered.PGSSLROOTCERT}, but this PostgreSQL has no TLS`);
    env.PGSSLROOTCERT = path.join(pg.tls.caDir, path.basename(rendered.PGSSLROOTCERT));
  }
  return env;
}

/**
 * A rendered homeserver.yaml's database args, pointed at `pg` the same way: the rendered host name stays (verify-full
 * checks it) and libpq's hostaddr is the server's address (hosts), the port its (ports), the CA file its (paths).
 */
export function pointDatabaseArgs(args: Record<string, unknown>, pg: RunningPostgres): void {
  args.hostaddr = pg.hostaddr;
  args.port = pg.port;
  if (typeof args.sslrootcert === 'string') {
    if (pg.tls === undefined) throw new Error(`Synapse checks the server against ${args.sslrootcert}, but this PostgreSQL has no TLS`);
    args.sslrootcert = path.join(pg.tls.caDir, path.basename(args.sslrootcert));
  }
}
