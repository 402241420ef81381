/**
 * Synapse started the way its rendered Deployment starts it: the rendered
 * homeserver.yaml and log.yaml, the pgpass init container's script, the
 * main container's command and env, and the generated secrets as files.
 */
import { execFileSync } from 'child_process';
import { createHmac } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import type { KudoConfig } from '../../charts/config';
import { DB_CA_DIR } from '../../charts/database';
import { SYNAPSE_SECRETS_DIR } from '../../charts/synapse';
import { configMapFile, container, find, freePort, httpJson, Manifest, Program, programs, rewritePaths, secretVolumeFiles, tempDir, writeSecretFiles } from './harness';
import { RunningPostgres } from './postgres';

export interface RunningSynapse {
  /** The listener the in-cluster URL names (the app's and the Jobs'). */
  readonly base: string;
  /** The listener the public route (Ingress or HTTPRoute) sends to. */
  readonly proxiedBase: string;
  readonly dir: string;
  readonly mediaDir: string;
  readonly homeserverFile: string;
  readonly program: Program;
  stop(): Promise<void>;
}

export function synapseVersion(): string {
  return execFileSync(programs().synapsePython, ['-c', 'import synapse; print(synapse.__version__)'], { encoding: 'utf8' }).trim();
}

/**
 * Where Synapse finds PostgreSQL: a server of the tests (its address and port), or one
 * reached by its rendered name at another address (libpq's hostaddr: the name still
 * decides which certificate verify-full accepts).
 */
export type DatabaseTarget = Pick<RunningPostgres, 'host' | 'port'> | { readonly hostaddr: string; readonly port: number; readonly tls?: RunningPostgres['tls'] };

/** The rendered homeserver.yaml with the loopback rewrites; each change names its LOOPBACK_REWRITES kind. */
function loopbackHomeserver(
  rendered: any,
  pg: DatabaseTarget,
  d: { config: string; secrets: string; media: string; port: number; proxiedPort: number; metricsPort: number; renderedPorts: { inCluster: number; proxied: number } },
  pathMap: Record<string, string>,
): any {
  const hs = JSON.parse(JSON.stringify(rendered));
  // hosts + ports: PostgreSQL lives in its pod network namespace, or answers for its rendered name on loopback.
  if ('hostaddr' in pg) hs.database.args.hostaddr = pg.hostaddr;
  else hs.database.args.host = pg.host;
  hs.database.args.port = pg.port;
  // paths: the database's CA, from its volume.
  if (typeof hs.database.args.sslrootcert === 'string') hs.database.args.sslrootcert = rewritePaths(hs.database.args.sslrootcert, pathMap);
  // ports + bind: the HTTP listener the in-cluster URL names, the one the public route names, and metrics.
  const ports = new Map([
    [d.renderedPorts.inCluster, d.port],
    [d.renderedPorts.proxied, d.proxiedPort],
  ]);
  for (const l of hs.listeners) {
    const port = l.type === 'metrics' ? d.metricsPort : ports.get(l.port);
    if (port === undefined) throw new Error(`listener ${JSON.stringify(l)}: neither the in-cluster URL nor the public route names its port`);
    ports.delete(l.port);
    l.port = port;
    l.bind_addresses = ['127.0.0.1'];
  }
  if (ports.size > 0) throw new Error(`no listener on port ${[...ports.keys()].join(', ')}, which the rendered URLs name`);
  // paths.
  hs.log_config = path.join(d.config, 'log.yaml');
  hs.media_store_path = d.media;
  // paths: every Secret file named anywhere (the stack's, and the operator's in /secrets/extra).
  const secrets = (v: unknown): unknown => {
    if (typeof v === 'string') return v.startsWith(`${SYNAPSE_SECRETS_DIR}/`) ? path.join(d.secrets, v.slice(SYNAPSE_SECRETS_DIR.length + 1)) : v;
    if (Array.isArray(v)) return v.map(secrets);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, secrets(x)]));
    return v;
  };
  return secrets(hs);
}

/**
 * The rendered ports of Synapse's two HTTP listeners: the one the in-cluster URL names (the bootstrap Job's
 * SYNAPSE_URL, which the app gets too), and the one the public route's /_matrix backend names (Ingress or HTTPRoute).
 */
function renderedPorts(ms: Manifest[]): { inCluster: number; proxied: number } {
  const job = ms.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('bootstrap-admin'));
  const url = job?.spec.template.spec.containers[0].env.find((e: any) => e.name === 'SYNAPSE_URL')?.value;
  const route = ms.find((m) => (m.kind === 'Ingress' || m.kind === 'HTTPRoute') && m.metadata.name === 'synapse');
  const proxied =
    route?.kind === 'Ingress'
      ? route.spec.rules[0].http.paths.find((p: any) => p.path === '/_matrix')?.backend.service.port.number
      : route?.spec.rules.find((r: any) => r.matches[0].path.value === '/_matrix')?.backendRefs[0].port;
  if (url === undefined || proxied === undefined) throw new Error('the render has no bootstrap Job with SYNAPSE_URL, or no public route to /_matrix');
  return { inCluster: Number(new URL(url).port), proxied };
}

/**
 * Starts Synapse against `pg` and waits for /health. `mediaDir` reuses a media store (e.g. a restored one);
 * `mounts` maps further volumes' mount paths to folders (a database CA's, say).
 */
export async function startSynapse(
  ms: Manifest[],
  config: KudoConfig,
  secrets: Record<string, string>,
  pg: DatabaseTarget,
  mediaDir?: string,
  mounts: Record<string, string> = {},
): Promise<RunningSynapse> {
  const dir = tempDir('synapse');
  const d = {
    config: path.join(dir, 'config'),
    secrets: path.join(dir, 'secrets'),
    media: mediaDir ?? path.join(dir, 'media'),
    db: path.join(dir, 'db'),
    run: path.join(dir, 'run'),
    port: await freePort(),
    proxiedPort: await freePort(),
    metricsPort: await freePort(),
    renderedPorts: renderedPorts(ms),
  };
  for (const p of [d.config, d.media, d.run]) fs.mkdirSync(p, { recursive: true });
  // paths: the Secret volumes, as the pod sees them, filled as the manifest maps them.
  const deploy = find(ms, 'Deployment', 'synapse');
  writeSecretFiles(d.secrets, secretVolumeFiles(deploy, 'secrets', config, secrets));
  writeSecretFiles(d.db, secretVolumeFiles(deploy, 'db-password', config, secrets));

  // paths: the database's CA (the StatefulSet's, with TLS), where the db-ca volume puts it.
  const caMount: Record<string, string> = 'tls' in pg && pg.tls !== undefined ? { [DB_CA_DIR]: pg.tls.caDir } : {};
  const pathMap = { '/db': d.db, '/run/synapse': d.run, '/config': d.config, ...caMount, ...mounts };
  const renderedHs = yaml.load(configMapFile(ms, 'synapse-config', 'homeserver.yaml'));
  const homeserverFile = path.join(d.config, 'homeserver.yaml');
  fs.writeFileSync(homeserverFile, yaml.dump(loopbackHomeserver(renderedHs, pg, d, pathMap)));
  // The rest of the ConfigMap as rendered (log config, the pgpass script).
  for (const [file, text] of Object.entries<string>(find(ms, 'ConfigMap', 'synapse-config').data)) {
    if (file !== 'homeserver.yaml') fs.writeFileSync(path.join(d.config, file), text);
  }

  // The init container's script, run as written (paths rewritten).
  const init = container(deploy, 'pgpass');
  const [initCmd, ...initArgs] = (init.command as string[]).map((a) => rewritePaths(a, pathMap));
  execFileSync(initCmd, initArgs);

  const main = container(deploy, 'synapse');
  const [, ...args] = main.command as string[];
  const env = Object.fromEntries(main.env.map((e: any) => [e.name, rewritePaths(e.value, pathMap)]));
  const program = new Program(
    'synapse',
    programs().synapsePython,
    args.map((a) => rewritePaths(a, pathMap)),
    {
      logDir: dir,
      env: { PATH: process.env.PATH, ...env },
    },
  );
  const base = `http://127.0.0.1:${d.port}`;
  await program.waitFor('/health', async () => (await fetch(`${base}/health`)).status === 200, 120_000);
  return { base, proxiedBase: `http://127.0.0.1:${d.proxiedPort}`, dir, mediaDir: d.media, homeserverFile, program, stop: () => program.stop() };
}

/** An access token for a local user, by password login. */
/**
 * Registers a user who is not an admin through Synapse's shared-secret registration (what the admin bootstrap and the
 * app use): a nonce, then the HMAC-SHA1 of nonce, user, password and "notadmin". Returns Synapse's answer.
 */
export async function registerUser(base: string, sharedSecret: string, user: string, password: string): Promise<{ status: number; body: any }> {
  const nonce = (await httpJson(`${base}/_synapse/admin/v1/register`)).body.nonce;
  const mac = createHmac('sha1', sharedSecret).update(`${nonce}\0${user}\0${password}\0notadmin`).digest('hex');
  return httpJson(`${base}/_synapse/admin/v1/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ nonce, username: user, password, admin: false, mac }),
  });
}

export async function login(base: string, user: string, password: string): Promise<string> {
  const r = await fetch(`${base}/_matrix/client/v3/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user }, password }),
  });
  const body: any = await r.json();
  if (r.status !== 200) throw new Error(`login as ${user}: HTTP ${r.status} ${JSON.stringify(body)}`);
  return body.access_token;
}
