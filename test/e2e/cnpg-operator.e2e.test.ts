/**
 * The real CloudNativePG operator (v1.30.0, built by test/e2e/install-cnpg.sh)
 * against a real API server: the Cluster that postgres.mode 'cloudnative-pg'
 * renders goes through the operator's admission webhooks, called by the API
 * server over TLS, and the operator reconciles it into the Services, the
 * owner's Secret, the volume claim and the initdb Job that Synapse, the
 * backups and the NetworkPolicies are written against.
 *
 * The operator runs as its release manifest deploys it: the same arguments
 * and environment as its Deployment, and the credentials of its
 * ServiceAccount, bound by the release's own ClusterRole, so a missing
 * permission fails here as it would in a cluster. What differs, and why:
 * - It runs as a process beside the API server, not in a pod (no kubelet).
 *   Its webhook configurations are the release's, with each webhook's
 *   Service reference replaced by a URL on loopback (no cluster network).
 * - WEBHOOK_CERT_DIR hands it a serving certificate signed by a CA this test
 *   makes. That is the operator's own switch for externally managed webhook
 *   certificates (OLM's): with it, it neither makes its cnpg-ca-secret and
 *   cnpg-webhook-cert Secrets nor patches the webhook configurations' CA.
 *   Without it, it would write the certificate to /run/secrets/cnpg.io/webhook
 *   and sign it for cnpg-webhook-service.cnpg-system.svc, a name the API
 *   server could only reach through a Service routed to a pod.
 * - Its webhook server listens on every address of this machine, on a free
 *   port, for the test's duration: the operator has no flag for the host.
 *
 * No kubelet, scheduler or controller-manager runs, so the Job never makes a
 * pod and PostgreSQL never starts: the test stops where the operator waits for
 * its first instance. PostgreSQL itself is tested in postgres.e2e.test.ts.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { waitUntil } from '../cluster/cluster';
import { ApiServer, installCrds, startApiServer } from './apiserver';
import { configMapFile, container, find, freePort, Manifest, podSpec, Program, programs, rendered, tempDir } from './harness';
import { CRDS_DIR } from '../k8s-schema';
import { unprivileged } from './postgres';

/** The CRDs pinned beside the charts, which the rendered manifests are written against. */
const PINNED_CRDS = ['clusters.yaml', 'backups.yaml', 'scheduledbackups.yaml', 'poolers.yaml', 'barman-cloud-objectstores.yaml'].map((f) => `cloudnative-pg/${f}`);

/** Without WAL archiving: nothing but the operator is needed to reconcile it. */
const NO_BACKUP = { postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } } };
/** The default (backups on): needs the barman-cloud plugin, which does not run here. */
const WITH_BACKUP = {
  namespaces: { stack: 'kudo-b', hostNetwork: 'kudo-b-media', app: 'kudo-b-app' },
  postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres' } } },
};

/** The rendered Cluster with one thing wrong that only the operator's validating webhook catches. */
const BAD_CLUSTERS: Record<string, { change: (c: any) => void; message: RegExp }> = {
  // The chart leaves it out for this reason.
  listen: {
    change: (c) => (c.spec.postgresql.parameters.listen_addresses = '*'),
    message: /spec\.postgresql\.parameters\.listen_addresses: Invalid value: "\*": Can't set fixed configuration parameter/,
  },
  // The CRD's schema types storage.size as any string.
  storage: {
    change: (c) => (c.spec.storage.size = 'ten gigabytes'),
    message: /spec\.storage\.size: Invalid value: "ten gigabytes": Size value isn't valid/,
  },
};

interface CnpgInstall {
  manager: string;
  /** The operator's release manifest (releases/cnpg-X.yaml of its module). */
  manifest: string;
}

/** Paths test/e2e/install-cnpg.sh writes, read as apiserver.ts reads its own. */
function cnpgInstall(): CnpgInstall {
  const cache = process.env.KUDO_E2E_CACHE ?? path.join(os.homedir(), '.cache', 'kudo-e2e');
  const envFile = path.join(cache, 'cnpg-env.sh');
  if (!fs.existsSync(envFile)) throw new Error(`${envFile} is missing: run test/e2e/install-cnpg.sh first`);
  const vars: Record<string, string> = {};
  for (const m of fs.readFileSync(envFile, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)) vars[m[1]] = m[2];
  const p = { manager: vars.KUDO_E2E_CNPG_MANAGER, manifest: vars.KUDO_E2E_CNPG_MANIFEST };
  for (const [name, file] of Object.entries(p)) {
    if (!file || !fs.existsSync(file)) throw new Error(`${name} not found at "${file}" (from ${envFile})`);
  }
  return p;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, and a serving certificate for 127.0.0.1 signed by it, named as the operator reads them with WEBHOOK_CERT_DIR. */
function webhookCertificate(dir: string): { caFile: string } {
  fs.mkdirSync(dir, { recursive: true });
  const key = (name: string) => openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name], dir);
  key('ca.key');
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-subj',
      '/CN=kudo-e2e-cnpg-webhook-ca',
      '-days',
      '7',
      '-sha256',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  key('apiserver.key');
  openssl(['req', '-new', '-key', 'apiserver.key', '-subj', '/CN=cnpg-webhook', '-out', 'apiserver.csr'], dir);
  fs.writeFileSync(
    path.join(dir, 'apiserver.ext'),
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', 'subjectAltName=IP:127.0.0.1', ''].join('\n'),
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'apiserver.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-CAserial',
      'ca.srl',
      '-days',
      '7',
      '-sha256',
      '-extfile',
      'apiserver.ext',
      '-out',
      'apiserver.crt',
    ],
    dir,
  );
  return { caFile: path.join(dir, 'ca.crt') };
}

/** GET https://127.0.0.1:port/readyz of the operator's webhook server (its readiness probe), checking its certificate. */
function webhookReady(port: number, ca: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/readyz', ca, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 && body === 'OK'));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x' };

const noBackup = rendered(NO_BACKUP);
const badCluster = (name: string): Manifest => {
  const c = JSON.parse(JSON.stringify(find(noBackup.manifests, 'Cluster', 'postgres')));
  c.metadata.name = name;
  BAD_CLUSTERS[name].change(c);
  return c;
};

let api: ApiServer;
let operator: Program;
/** What the API server alone (the CRD's schema, no webhooks) says to each of BAD_CLUSTERS. */
const withoutWebhooks = new Map<string, { code: number; stderr: string }>();
let dir: string;
let release: Manifest[];
let deployment: Manifest;
const onExit = () => operator?.kill();

const releaseObject = (kind: string, name: string) => find(release, kind, name);
const writeAll = (name: string, ms: object[]) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, ms.map((m) => yaml.dump(m, { lineWidth: -1 })).join('---\n'));
  return file;
};
const apply = (ms: object[], name: string) => api.kubectl(['apply', '--server-side', '--validate=strict', '-f', writeAll(name, ms)], { allowFail: true });
const getJson = (kind: string, name: string, ns: string): any => {
  const r = api.kubectl(['get', kind, name, '-n', ns, '-o', 'json'], { allowFail: true });
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
};
/** The manifests of a rendering that a Cluster needs in an empty API server: its namespace, and the CloudNativePG objects. */
const cnpgObjects = (ms: Manifest[], ns: string) => ms.filter((m) => (m.kind === 'Namespace' && m.metadata.name === ns) || m.apiVersion.includes('cnpg.io/'));

beforeAll(async () => {
  const install = cnpgInstall();
  release = (yaml.loadAll(fs.readFileSync(install.manifest, 'utf8')) as Manifest[]).filter((m) => m);
  deployment = release.find((m) => m.kind === 'Deployment')!;
  dir = tempDir('cnpg-operator');
  api = await startApiServer({ logDir: dir });

  // The pinned CRDs, then the release's others: the operator watches every kind it defines.
  installCrds(api, PINNED_CRDS);
  const pinned = new Set(PINNED_CRDS.flatMap((f) => (yaml.loadAll(fs.readFileSync(path.join(CRDS_DIR, f), 'utf8')) as Manifest[]).map((c) => c.metadata.name)));
  const ns = deployment.metadata.namespace!;
  const setup = release.filter(
    (m) =>
      (m.kind === 'CustomResourceDefinition' && !pinned.has(m.metadata.name)) || ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap'].includes(m.kind),
  );
  api.kubectl(['apply', '--server-side', '-f', writeAll('operator-setup.yaml', setup)]);
  api.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);

  const certDir = path.join(dir, 'webhook-certs');
  const { caFile } = webhookCertificate(certDir);
  const ca = fs.readFileSync(caFile);
  const port = await freePort();
  const pod = deployment.spec.template.spec;
  const c = pod.containers[0];
  const sa = pod.serviceAccountName as string;
  const kubeconfig = api.userKubeconfig(`system:serviceaccount:${ns}:${sa}`, ['system:serviceaccounts', `system:serviceaccounts:${ns}`]);
  // The Deployment's environment; the namespace from the Downward API, as the kubelet would fill it.
  const env: Record<string, string> = {};
  for (const e of c.env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = ns;
    else throw new Error(`cannot fill the operator's env ${e.name}: ${JSON.stringify(e)}`);
  }
  // The operator looks for its manager binaries per architecture in ./operator/manager_<goarch>
  // (/operator in its image), hashes them, and refuses to reconcile a Cluster without its own.
  const root = path.join(dir, 'operator-root');
  fs.mkdirSync(path.join(root, 'operator'), { recursive: true });
  fs.mkdirSync(path.join(root, 'plugins'));
  fs.symlinkSync(install.manager, path.join(root, 'operator', `manager_${GOARCH[process.arch] ?? process.arch}`));
  // One operator, so no leader election: controller-runtime reads the Lease's namespace only from
  // a pod's ServiceAccount mount ("not running in-cluster, please specify LeaderElectionNamespace").
  const args = (c.args as string[]).filter((a) => a !== '--leader-elect').map((a) => (a.startsWith('--webhook-port=') ? `--webhook-port=${port}` : a));
  expect(args).toContain(`--webhook-port=${port}`);
  process.on('exit', onExit);
  operator = new Program(
    'cnpg-operator',
    install.manager,
    [
      ...args,
      // Metrics are not tested; its default :8080 may be taken.
      '--metrics-bind-address=0',
    ],
    {
      logDir: dir,
      cwd: root,
      env: {
        PATH: process.env.PATH,
        HOME: root,
        ...env,
        KUBECONFIG: kubeconfig,
        WEBHOOK_CERT_DIR: certDir,
        // No CNPG-i plugins run beside it (its image has none either): an empty folder, not the default /plugins.
        PLUGIN_SOCKET_DIR: path.join(root, 'plugins'),
      },
    },
  );
  await operator.waitFor('its webhook server ready', () => webhookReady(port, ca), 120_000);

  // The control for the webhook tests: before the webhooks are registered, the API server admits each bad Cluster.
  const stack = noBackup.config.namespaces.stack;
  api.kubectl(['apply', '--server-side', '-f', writeAll('namespace.yaml', [find(noBackup.manifests, 'Namespace', stack)])]);
  for (const name of Object.keys(BAD_CLUSTERS)) {
    const r = api.kubectl(['create', '--dry-run=server', '-f', writeAll(`bad-${name}.yaml`, [badCluster(name)])], { allowFail: true });
    withoutWebhooks.set(name, { code: r.code, stderr: r.stderr });
  }

  // The release's webhook configurations, called at the operator's loopback port.
  const caBundle = ca.toString('base64');
  const webhooks = release
    .filter((m) => m.kind === 'MutatingWebhookConfiguration' || m.kind === 'ValidatingWebhookConfiguration')
    .map((w) => ({
      ...w,
      webhooks: w.webhooks.map((h: any) => ({ ...h, clientConfig: { url: `https://127.0.0.1:${port}${h.clientConfig.service.path}`, caBundle } })),
    }));
  expect(webhooks.flatMap((w) => w.webhooks.map((h: any) => h.name))).toEqual(expect.arrayContaining(['mcluster.cnpg.io', 'vcluster.cnpg.io', 'vscheduledbackup.cnpg.io']));
  api.kubectl(['apply', '--server-side', '-f', writeAll('webhooks.yaml', webhooks)]);
}, 300_000);

afterAll(async () => {
  process.off('exit', onExit);
  await operator?.stop();
  await api?.stop();
});

describe('the operator is the one the pinned CRDs come from', () => {
  test("each pinned CloudNativePG CRD is the release manifest's, byte for byte in its spec", () => {
    const crds = ['clusters.yaml', 'backups.yaml', 'scheduledbackups.yaml', 'poolers.yaml'].map(
      (f) => yaml.load(fs.readFileSync(path.join(CRDS_DIR, 'cloudnative-pg', f), 'utf8')) as Manifest,
    );
    for (const crd of crds) expect([crd.metadata.name, crd.spec]).toEqual([crd.metadata.name, releaseObject('CustomResourceDefinition', crd.metadata.name).spec]);
  });
});

describe('postgres.mode cloudnative-pg without WAL archiving', () => {
  const { manifests: ms, config } = noBackup;
  const ns = config.namespaces.stack;
  const cluster = find(ms, 'Cluster', 'postgres');
  const homeserver = yaml.load(configMapFile(ms, 'synapse-config', 'homeserver.yaml')) as any;
  const db = homeserver.database.args as { host: string; port: number; user: string; dbname: string };
  // host is <service>.<namespace>.svc
  const [serviceName, serviceNs] = db.host.split('.');

  test.each(Object.keys(BAD_CLUSTERS))("the validating webhook refuses the Cluster changed so: %s (the CRD's schema alone admits it)", (name) => {
    expect(withoutWebhooks.get(name)).toEqual({ code: 0, stderr: '' });
    const r = apply([badCluster(name)], `bad-${name}.yaml`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`The Cluster "${name}" is invalid: ${BAD_CLUSTERS[name].message.source}`));
    expect(getJson('cluster', name, ns)).toBeUndefined();
  });

  test("the rendered Cluster is admitted, and the webhook's defaulting keeps every parameter we set", () => {
    const r = apply(cnpgObjects(ms, ns), 'cluster.yaml');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const stored = getJson('cluster', 'postgres', ns);
    // The mutating webhook ran: it fills in the operator's own settings beside ours...
    expect(stored.spec.postgresql.parameters).toHaveProperty('wal_level');
    expect(stored.spec.monitoring.customQueriesConfigMap).toEqual([{ name: 'cnpg-default-monitoring', key: 'queries' }]);
    // ...and overrides none of ours.
    expect(stored.spec.postgresql.parameters).toMatchObject(cluster.spec.postgresql.parameters);
    expect(stored.spec.bootstrap.initdb).toMatchObject(cluster.spec.bootstrap.initdb);
  });

  test("reconciled: the Services, the owner's Secret, the claim and the initdb Job of instance 1", async () => {
    const want = [
      ['service', `${cluster.metadata.name}-rw`],
      ['service', `${cluster.metadata.name}-ro`],
      ['service', `${cluster.metadata.name}-r`],
      ['secret', `${cluster.metadata.name}-app`],
      ['pvc', `${cluster.metadata.name}-1`],
      ['job', `${cluster.metadata.name}-1-initdb`],
    ];
    await waitUntil(
      "the operator's objects",
      () => {
        const missing = want.filter(([kind, name]) => getJson(kind, name, ns) === undefined);
        return missing.length === 0 ? null : `missing: ${missing.map((w) => w.join('/')).join(', ')}\n${operator.output().split('\n').slice(-15).join('\n')}`;
      },
      90_000,
    );
    const status = getJson('cluster', 'postgres', ns).status;
    expect(status.phase).toBe('Setting up primary');
    const pvc = getJson('pvc', `${cluster.metadata.name}-1`, ns);
    expect(pvc.spec.resources.requests.storage).toBe(cluster.spec.storage.size);
    const job = getJson('job', `${cluster.metadata.name}-1-initdb`, ns);
    expect(job.spec.template.spec.containers[0].image).toBe(cluster.spec.imageName);
    // initdb makes Synapse's database, owned by its role, with the C collation Synapse insists on.
    const initdb = cluster.spec.bootstrap.initdb;
    const cmd = job.spec.template.spec.containers[0].command.join(' ');
    expect(cmd).toContain(`--app-db-name ${initdb.database} --app-user ${initdb.owner}`);
    expect(cmd).toContain(`--encoding=${initdb.encoding} --lc-collate=${initdb.localeCollate} --lc-ctype=${initdb.localeCType}`);
  });

  test("a PostgreSQL serving the operator's certificate passes libpq's verify-full for the host Synapse connects to, with the CA Synapse mounts", async () => {
    // The CA volume and file Synapse reads, as rendered.
    const caVolume = podSpec(find(ms, 'Deployment', 'synapse')).volumes.find((v: any) => v.name === 'db-ca');
    const caMount = container(find(ms, 'Deployment', 'synapse'), 'synapse').volumeMounts.find((m: any) => m.name === 'db-ca');
    expect(path.join(caMount.mountPath, caVolume.secret.items[0].path)).toBe(homeserver.database.args.sslrootcert);
    let ca: any;
    let server: any;
    await waitUntil(
      "the operator's CA and server certificate",
      () => {
        ca = getJson('secret', caVolume.secret.secretName, ns);
        server = getJson('secret', `${cluster.metadata.name}-server`, ns);
        return ca && server ? null : 'not yet';
      },
      60_000,
    );
    const tls = tempDir('cnpg-tls');
    const write = (file: string, b64: string) => fs.writeFileSync(path.join(tls, file), Buffer.from(b64, 'base64'), { mode: 0o600 });
    write('ca.crt', ca.data[caVolume.secret.items[0].key]);
    write('server.crt', server.data['tls.crt']);
    write('server.key', server.data['tls.key']);

    // The server as an instance runs it: TLS on, with the operator's certificate; only TLS connections.
    const bin = programs().pgBin;
    const data = path.join(tls, 'data');
    fs.mkdirSync(path.join(tls, 'run'));
    const [init, ...initArgs] = unprivileged(path.join(bin, 'initdb'), ['-U', 'postgres', '-D', data]);
    execFileSync(init, initArgs, { stdio: 'pipe', env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' } });
    fs.writeFileSync(path.join(data, 'pg_hba.conf'), ['local all postgres trust', 'hostssl all all 127.0.0.1/32 trust', 'hostnossl all all all reject', ''].join('\n'));
    const port = await freePort();
    const settings = [`port=${port}`, 'listen_addresses=127.0.0.1', `unix_socket_directories=${path.join(tls, 'run')}`, 'ssl=on'];
    settings.push(`ssl_cert_file=${path.join(tls, 'server.crt')}`, `ssl_key_file=${path.join(tls, 'server.key')}`);
    const [cmd, ...args] = unprivileged(path.join(bin, 'postgres'), ['-D', data, ...settings.flatMap((x) => ['-c', x])]);
    const pg = new Program('postgres-cnpg-tls', cmd, args, { logDir: tls, env: { PATH: process.env.PATH, LC_ALL: 'C.UTF-8' } });
    try {
      // libpq as Synapse and pg_dump use it: the rendered host name and sslmode, the mounted CA; the address is loopback's.
      const connect = (host: string) =>
        spawnSync(path.join(bin, 'psql'), ['-X', '-A', '-t', '-c', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'], {
          encoding: 'utf8',
          env: {
            PATH: process.env.PATH,
            PGHOST: host,
            PGHOSTADDR: '127.0.0.1',
            PGPORT: String(port),
            PGUSER: 'postgres',
            PGSSLMODE: homeserver.database.args.sslmode,
            PGSSLROOTCERT: path.join(tls, 'ca.crt'),
          },
        });
      await pg.waitFor('a TLS connection', () => connect(db.host).status === 0, 60_000);
      const ok = connect(db.host);
      expect({ status: ok.status, stdout: ok.stdout.trim(), stderr: ok.stderr }).toEqual({ status: 0, stdout: 't', stderr: '' });
      // Control: the same server under a name its certificate does not carry is refused by the same check.
      const other = connect(`elsewhere.${ns}.svc`);
      expect(other.status).not.toBe(0);
      expect(other.stderr).toMatch(/server certificate for "[^"]+"( \(and \d+ other names?\))? does not match host name "elsewhere\./);
    } finally {
      await pg.stop('SIGINT');
    }
  });

  test("Synapse's homeserver.yaml names the operator's primary Service, its port, the owner and the database", () => {
    expect(serviceNs).toBe(ns);
    expect(db.host).toBe(`${serviceName}.${serviceNs}.svc`);
    const svc = getJson('service', serviceName, ns);
    expect(svc).toBeDefined();
    expect(svc.spec.ports.map((p: any) => p.port)).toContain(db.port);
    // -rw is the primary: the Service selects the instance with the primary role.
    expect(svc.spec.selector).toMatchObject({ 'cnpg.io/cluster': cluster.metadata.name, 'cnpg.io/instanceRole': 'primary' });
    const secret = getJson('secret', `${cluster.metadata.name}-app`, ns);
    const data = (k: string) => Buffer.from(secret.data[k], 'base64').toString();
    expect({ user: data('username'), dbname: data('dbname') }).toEqual({ user: db.user, dbname: db.dbname });
    // The operator writes the same host and port into the Secret it hands to clients.
    expect(data('host')).toBe(serviceName);
    expect(Number(data('port'))).toBe(db.port);
  });

  test("every reference to the owner's Secret (Synapse's volume, the backup Jobs) names a key the operator writes", () => {
    const refs: { from: string; name: string; key: string }[] = [];
    const walk = (from: string, o: any) => {
      if (Array.isArray(o)) return o.forEach((x) => walk(from, x));
      if (o === null || typeof o !== 'object') return;
      if (o.secret?.secretName) for (const i of o.secret.items ?? []) refs.push({ from, name: o.secret.secretName, key: i.key });
      if (o.secretKeyRef) refs.push({ from, name: o.secretKeyRef.name, key: o.secretKeyRef.key });
      Object.values(o).forEach((v) => walk(from, v));
    };
    for (const m of ms.filter((x) => x.metadata.namespace === ns)) walk(`${m.kind}/${m.metadata.name}`, m.spec);
    const ours = refs.filter((r) => r.name === `${cluster.metadata.name}-app`);
    // Synapse mounts the password; drop this line only if that ever changes.
    expect(ours).toContainEqual({ from: 'Deployment/synapse', name: `${cluster.metadata.name}-app`, key: 'password' });
    const secret = getJson('secret', `${cluster.metadata.name}-app`, ns);
    for (const r of ours) expect([r.from, r.key, r.key in secret.data]).toEqual([r.from, r.key, true]);
    expect(Buffer.from(secret.data.password, 'base64').toString()).toMatch(/^\S{16,}$/);
  });

  test("the NetworkPolicy for PostgreSQL selects the operator's pods and lets the operator in", () => {
    const policy = find(ms, 'NetworkPolicy', 'postgres');
    const selects = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    const job = getJson('job', `${cluster.metadata.name}-1-initdb`, ns);
    const rw = getJson('service', `${cluster.metadata.name}-rw`, ns);
    expect(selects(policy.spec.podSelector.matchLabels, job.spec.template.metadata.labels)).toBe(true);
    // Every pod the -rw Service sends to is one the policy covers.
    expect(selects(policy.spec.podSelector.matchLabels, rw.spec.selector)).toBe(true);
    // The operator calls each instance's manager: the policy admits its namespace and pod labels, as the release deploys it.
    const fromOperator = policy.spec.ingress.flatMap((i: any) => i.from).filter((f: any) => f.namespaceSelector);
    expect(fromOperator).toContainEqual({
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': deployment.metadata.namespace } },
      podSelector: { matchLabels: deployment.spec.template.metadata.labels },
    });
  });
});

describe('postgres.mode cloudnative-pg with WAL archiving (the default)', () => {
  const { manifests: ms, config } = rendered(WITH_BACKUP);
  const ns = config.namespaces.stack;

  test('the Cluster, its ObjectStore and the plugin ScheduledBackup are admitted by the webhooks', () => {
    const objects = cnpgObjects(ms, ns);
    expect(objects.map((m) => m.kind).sort()).toEqual(['Cluster', 'Namespace', 'ObjectStore', 'ScheduledBackup']);
    const r = apply(objects, 'with-backup.yaml');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  test('without the barman-cloud plugin the operator does not reconcile it, and says which plugin is missing', async () => {
    const plugin = find(ms, 'Cluster', 'postgres').spec.plugins[0].name as string;
    let phase: any;
    await waitUntil(
      "the Cluster's phase",
      () => {
        phase = getJson('cluster', 'postgres', ns)?.status;
        return phase?.phaseReason ? null : `status: ${JSON.stringify(phase)}`;
      },
      60_000,
    );
    expect(phase.phase).toBe('Cluster cannot proceed to reconciliation due to an unknown plugin being required');
    expect(phase.phaseReason).toContain(`Unknown plugin: '${plugin}'`);
    expect(getJson('secret', 'postgres-app', ns)).toBeUndefined();
    expect(getJson('pvc', 'postgres-1', ns)).toBeUndefined();
  });

  test('the ScheduledBackup asks for a first backup at once, through the plugin, owned by itself', async () => {
    const scheduled = find(ms, 'ScheduledBackup', 'postgres-daily');
    let backups: any[] = [];
    await waitUntil(
      'the immediate Backup',
      () => {
        backups = JSON.parse(api.kubectl(['get', 'backups', '-n', ns, '-o', 'json']).stdout).items;
        return backups.length > 0 ? null : 'no Backup yet';
      },
      60_000,
    );
    expect(backups).toHaveLength(1);
    const b = backups[0];
    expect(b.spec).toMatchObject({ cluster: scheduled.spec.cluster, method: scheduled.spec.method, pluginConfiguration: scheduled.spec.pluginConfiguration });
    expect(b.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'ScheduledBackup', name: scheduled.metadata.name })]);
  });
});

describe('postgres.mode cloudnative-pg recovered from its archive (postgres.cloudnativePg.recovery)', () => {
  const recovered = {
    namespaces: { stack: 'kudo-r', hostNetwork: 'kudo-r-media', app: 'kudo-r-app' },
    postgres: {
      mode: 'cloudnative-pg',
      cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres', serverName: 'postgres-r2' }, recovery: { serverName: 'postgres' } },
    },
  };
  const { manifests: ms, config } = rendered(recovered);
  const ns = config.namespaces.stack;
  /** The Cluster as the API server would store it, after the operator's mutating webhook (a server-side dry run). */
  const admitted = (cluster: Manifest) => JSON.parse(api.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', writeAll('recovered.yaml', [cluster])]).stdout);

  test("the webhook keeps Synapse's database and owner in bootstrap.recovery; left out, it makes both 'app', a role Synapse's Secret does not name", () => {
    api.kubectl(['apply', '--server-side', '-f', writeAll('recovered-ns.yaml', [find(ms, 'Namespace', ns)])]);
    const cluster = find(ms, 'Cluster', 'postgres');
    const homeserver = yaml.load(configMapFile(ms, 'synapse-config', 'homeserver.yaml')) as any;
    expect(homeserver.database.args).toMatchObject({ user: 'synapse', dbname: 'synapse' });
    expect(admitted(cluster).spec.bootstrap.recovery).toMatchObject({ source: expect.any(String), database: 'synapse', owner: 'synapse' });
    // The control: the same Cluster as rendered before the fix, without the two fields.
    const bare = structuredClone(cluster);
    delete bare.spec.bootstrap.recovery.database;
    delete bare.spec.bootstrap.recovery.owner;
    expect(admitted(bare).spec.bootstrap.recovery).toMatchObject({ database: 'app', owner: 'app' });
  });
});

/**
 * docs/operations.md, "PostgreSQL 17 → 18", with CloudNativePG: a major upgrade is the Cluster's image tag (the operator's offline
 * in-place upgrade, pg_upgrade in a Job). The operator records the major the data directory was made by
 * (status.pgDataImageInfo) when it first reconciles; its validating webhook then admits a newer major and refuses an
 * older one.
 */
describe('postgres.mode cloudnative-pg: a major upgrade is the image tag', () => {
  const namespaces = { stack: 'kudo-u', hostNetwork: 'kudo-u-media', app: 'kudo-u-app' };
  const at = (server: string, tools: string) =>
    rendered({
      ...NO_BACKUP,
      namespaces,
      postgres: { ...NO_BACKUP.postgres, image: { tag: tools }, cloudnativePg: { ...NO_BACKUP.postgres.cloudnativePg, image: { tag: server } } },
    });
  const v17 = rendered({ ...NO_BACKUP, namespaces });
  const ns = namespaces.stack;
  const v18 = at('18.1-standard-bookworm', '18.6-bookworm');
  const v16 = at('16.10-standard-bookworm', '16.10-bookworm');

  test('the operator records the major of the data directory it made (17), then the webhook admits 18 and refuses a downgrade to 16', async () => {
    const cluster17 = find(v17.manifests, 'Cluster', 'postgres');
    expect(cluster17.spec.imageName).toMatch(/:17\./);
    let r = apply(cnpgObjects(v17.manifests, ns), 'upgrade-17.yaml');
    expect([r.code, r.stderr]).toEqual([0, '']);
    let info: any;
    await waitUntil(
      'the recorded major',
      () => {
        info = getJson('cluster', 'postgres', ns)?.status?.pgDataImageInfo;
        return info === undefined ? 'no status.pgDataImageInfo yet' : null;
      },
      60_000,
    );
    expect(info).toMatchObject({ image: cluster17.spec.imageName, majorVersion: 17 });

    // A downgrade, refused before anything changes.
    r = apply([find(v16.manifests, 'Cluster', 'postgres')], 'upgrade-16.yaml');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/The Cluster "postgres" is invalid: spec.imageName: Invalid value: "16": can't downgrade from major 17 to 16/);
    expect(getJson('cluster', 'postgres', ns).spec.imageName).toBe(cluster17.spec.imageName);

    // The upgrade: admitted; the operator keeps the data directory's major (17) until its upgrade Job has run.
    const cluster18 = find(v18.manifests, 'Cluster', 'postgres');
    r = apply([cluster18], 'upgrade-18.yaml');
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(getJson('cluster', 'postgres', ns).spec.imageName).toBe('ghcr.io/cloudnative-pg/postgresql:18.1-standard-bookworm');
    await waitUntil(
      "the operator's view of the request",
      () => {
        const status = getJson('cluster', 'postgres', ns).status;
        return status.image === cluster18.spec.imageName ? null : `status.image ${status.image}`;
      },
      60_000,
    );
    expect(getJson('cluster', 'postgres', ns).status.pgDataImageInfo.majorVersion).toBe(17);
  });
});
