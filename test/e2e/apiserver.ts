/**
 * A real Kubernetes API server (with its etcd) on loopback, for admission
 * tests: like controller-runtime's envtest, manifests are validated,
 * defaulted, checked by RBAC and the admission plugins (PodSecurity among
 * them) exactly as a cluster would, and nothing ever runs. Install the
 * programs first: test/e2e/install-apiserver.sh.
 *
 * Only the API server and etcd run; no kube-controller-manager, scheduler or
 * kubelet. So:
 * - Deployments, StatefulSets, Jobs, ... are stored but never make Pods, and
 *   Pods never get scheduled or run.
 * - A new namespace gets neither its 'default' ServiceAccount nor its
 *   'kube-root-ca.crt' ConfigMap (controllers make both). Tests that need
 *   them create them.
 * - The ServiceAccount admission plugin stays on, as in every real cluster:
 *   it rejects a Pod (not a Deployment or other workload: only Pods) whose
 *   ServiceAccount does not exist, and a Pod that names none gets 'default'.
 *   envtest turns the plugin off for that reason; we keep it because a Pod
 *   whose ServiceAccount is missing fails in a real cluster too. A test that
 *   creates bare Pods creates their ServiceAccount first (or the 'default'
 *   one). Its token volume refers to 'kube-root-ca.crt', which admission does
 *   not check.
 * - Namespaces are never finalized (the namespace controller does that), so a
 *   deleted namespace stays Terminating: use a fresh name per test.
 *
 * Built-in namespaces (default, kube-system, kube-public, kube-node-lease) and
 * the default RBAC roles are made by the API server itself and exist as soon
 * as startApiServer() returns.
 *
 * kubectl() runs `kubectl` from PATH, or $KUDO_E2E_KUBECTL. Validation,
 * defaulting and admission all happen in the server, so an older kubectl (our
 * machines' is 1.32, past the supported +/-1 skew) only affects client-side
 * behaviour; `kubectl version` warns about the skew.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import { freePort, Program } from './harness';
import { CRDS_DIR } from '../k8s-schema';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubectlOptions {
  /** Standard input (e.g. manifests for `apply -f -`). */
  input?: string;
  /** Return a non-zero exit instead of throwing. */
  allowFail?: boolean;
  /** Impersonate this user (--as), e.g. 'system:serviceaccount:kudo:synapse'. */
  asUser?: string;
  /** Impersonate these groups (--as-group); needs asUser. */
  asGroups?: string[];
}

export interface ApiServer {
  /** https://127.0.0.1:PORT */
  url: string;
  /** Path of a kubeconfig for an admin (group system:masters, so RBAC allows everything). */
  kubeconfig: string;
  /** The server's gitVersion, e.g. 'v1.36.3'. */
  version: string;
  /** The CA that signed the server's certificate (for clients other than kubectl). */
  caFile: string;
  /**
   * The folder of this server's keys and certificates, for the components a
   * cluster runs beside it (test/cluster): ca.crt and ca.key (the CA, which
   * also signs client certificates), sa.key and sa.pub (ServiceAccount
   * tokens), apiserver.crt and .key, admin.crt and .key.
   */
  pkiDir: string;
  /**
   * Writes a kubeconfig for a user authenticated by a client certificate
   * signed by the CA (CN = user, O = groups), e.g. 'system:kube-scheduler',
   * whom the default RBAC roles already bind. Returns its path.
   */
  userKubeconfig(user: string, groups?: string[]): string;
  /** Runs kubectl against this server; throws on a non-zero exit unless allowFail. */
  kubectl(args: string[], opts?: KubectlOptions): KubectlResult;
  /** Stops the API server and etcd and removes their temporary directory (not logDir). */
  stop(): Promise<void>;
}

function cacheDir(): string {
  return process.env.KUDO_E2E_CACHE ?? path.join(os.homedir(), '.cache', 'kudo-e2e');
}

/**
 * The CRDs the rendered manifests use (cert-manager, Argo CD, Gateway API,
 * prometheus-operator), as files of the pinned set in CRDS_DIR.
 */
export const CRD_FILES = [
  'cert-manager/certificates.yaml',
  'cert-manager/clusterissuers.yaml',
  'cert-manager/issuers.yaml',
  'argo-cd/application.yaml',
  'gateway-api/gateways.yaml',
  'gateway-api/httproutes.yaml',
  'prometheus-operator/servicemonitors.yaml',
] as const;

/** Installs CRDs (files under CRDS_DIR; CRD_FILES unless told) and waits until every CRD is Established. */
export function installCrds(api: ApiServer, files: readonly string[] = CRD_FILES): void {
  for (const crd of files) api.kubectl(['apply', '--server-side', '-f', path.join(CRDS_DIR, crd)]);
  api.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
}

/** Paths of kube-apiserver and etcd (test/e2e/install-apiserver.sh writes them). */
export function apiServerPrograms(): { kubeApiserver: string; etcd: string } {
  const envFile = path.join(cacheDir(), 'apiserver-env.sh');
  if (!fs.existsSync(envFile)) throw new Error(`${envFile} is missing: run test/e2e/install-apiserver.sh first`);
  const vars: Record<string, string> = {};
  for (const m of fs.readFileSync(envFile, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)) vars[m[1]] = m[2];
  const p = { kubeApiserver: vars.KUDO_E2E_KUBE_APISERVER, etcd: vars.KUDO_E2E_ETCD };
  for (const [name, file] of Object.entries(p)) {
    if (!file || !fs.existsSync(file)) throw new Error(`program ${name} not found at "${file}" (from ${envFile})`);
  }
  return p;
}

/** Distinct free ports (the kernel may hand the same one out twice once each is closed). */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** An EC P-256 key (fast to make; the API server takes ECDSA for TLS, client certs and ServiceAccount tokens). */
function newKey(dir: string, name: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
}

/** A certificate for name.key signed by the CA, with the given extensions. */
function signCert(dir: string, name: string, subject: string, extensions: string[]): void {
  newKey(dir, name);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir);
  fs.writeFileSync(path.join(dir, `${name}.ext`), extensions.join('\n') + '\n');
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
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
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
}

/** The CA, the API server's serving cert, the admin's client cert and the ServiceAccount token key. */
function makePki(dir: string): void {
  newKey(dir, 'ca');
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-subj',
      '/CN=kudo-e2e-ca',
      '-days',
      '7',
      '-sha256',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  signCert(dir, 'apiserver', '/CN=kube-apiserver', [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  // Client certificates authenticate as CN (user) and O (groups).
  signCert(dir, 'admin', '/O=system:masters/CN=kudo-e2e-admin', [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=clientAuth',
  ]);
  newKey(dir, 'sa');
  openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

function writeKubeconfig(file: string, url: string, pki: string, client = 'admin'): void {
  const b64 = (f: string) => fs.readFileSync(path.join(pki, f)).toString('base64');
  fs.writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: kudo-e2e',
      '  cluster:',
      `    server: ${url}`,
      `    certificate-authority-data: ${b64('ca.crt')}`,
      'users:',
      '- name: kudo-e2e-admin',
      '  user:',
      `    client-certificate-data: ${b64(`${client}.crt`)}`,
      `    client-key-data: ${b64(`${client}.key`)}`,
      'contexts:',
      '- name: kudo-e2e',
      '  context:',
      '    cluster: kudo-e2e',
      '    user: kudo-e2e-admin',
      'current-context: kudo-e2e',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
}

/** GET over HTTPS as the admin; resolves with status and body. */
function adminGet(url: string, pki: string, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      `${url}${p}`,
      {
        ca: fs.readFileSync(path.join(pki, 'ca.crt')),
        cert: fs.readFileSync(path.join(pki, 'admin.crt')),
        key: fs.readFileSync(path.join(pki, 'admin.key')),
        timeout: 5_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/**
 * Starts etcd and kube-apiserver on free loopback ports, each with its own
 * CA, certificates and keys (made with openssl) in a fresh temporary
 * directory. Resolves once /readyz is ok and the 'default' namespace exists.
 * Logs (etcd.log, kube-apiserver.log) go to logDir, else to the temporary
 * directory (removed by stop(); kept with only the logs when starting fails).
 */
export async function startApiServer(
  opts: {
    logDir?: string;
    /** More kube-apiserver flags, after ours (a repeated flag takes the last value). */
    extraArgs?: string[];
  } = {},
): Promise<ApiServer> {
  const programs = apiServerPrograms();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-e2e-apiserver-'));
  const logDir = opts.logDir ?? dir;
  fs.mkdirSync(logDir, { recursive: true });
  const pki = path.join(dir, 'pki');
  fs.mkdirSync(pki);
  const procs: Program[] = [];
  // If the test process exits without stop(), take the servers with it.
  const onExit = () => procs.forEach((p) => p.kill());
  process.on('exit', onExit);

  const stopProcs = async () => {
    process.off('exit', onExit);
    // The API server first, so it does not log a storm of etcd errors.
    for (const p of [...procs].reverse()) await p.stop();
  };
  const stop = async () => {
    await stopProcs();
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    makePki(pki);
    const [etcdClient, etcdPeer, securePort] = await freePorts(3);
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcd = new Program(
      'etcd',
      programs.etcd,
      [
        '--name=kudo-e2e',
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=kudo-e2e=${peerUrl}`,
        '--initial-cluster-state=new',
        // Throwaway data: no need to wait for the disk (envtest does the same).
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
      { logDir, cwd: dir },
    );
    procs.push(etcd);
    await etcd.waitFor(
      'health',
      async () => {
        const r = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2_000) });
        return r.ok && ((await r.json()) as { health?: string }).health === 'true';
      },
      60_000,
    );

    const url = `https://127.0.0.1:${securePort}`;
    const apiserver = new Program(
      'kube-apiserver',
      programs.kubeApiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        `--secure-port=${securePort}`,
        '--bind-address=127.0.0.1',
        // The address the built-in 'kubernetes' Service's endpoints would
        // point at. Endpoints may not hold loopback addresses, so the
        // reconciler that writes them would fail every 10 s ("may not be in
        // the loopback range"): turn it off. The Service itself still exists.
        '--advertise-address=127.0.0.1',
        '--endpoint-reconciler-type=none',
        // Only used to make certificates when the two files below are missing;
        // set so that nothing is ever written to /var/run/kubernetes.
        `--cert-dir=${path.join(dir, 'cert-dir')}`,
        `--tls-cert-file=${path.join(pki, 'apiserver.crt')}`,
        `--tls-private-key-file=${path.join(pki, 'apiserver.key')}`,
        // Client certificates signed by our CA authenticate: CN is the user, O the groups.
        `--client-ca-file=${path.join(pki, 'ca.crt')}`,
        // Required since 1.20, with the two key files: kubeadm's issuer, this run's own key.
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${path.join(pki, 'sa.pub')}`,
        `--service-account-signing-key-file=${path.join(pki, 'sa.key')}`,
        // Only where ClusterIPs are allocated from: stored, never routed.
        '--service-cluster-ip-range=10.96.0.0/16',
        // As in a real cluster (kubeadm adds Node, which only matters to
        // kubelets). The admin is in system:masters, which RBAC never limits;
        // use kubectl()'s asUser/asGroups to test anyone else's rights.
        '--authorization-mode=RBAC',
        // All three are on by default in 1.36 already (and so are the other
        // default plugins, which stay on); named so that a change of defaults
        // cannot silently drop them. PodSecurity's defaults are upstream's
        // (privileged): namespaces opt in with pod-security.kubernetes.io labels.
        '--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity',
        // As kubeadm and managed clusters set it: without it validation rejects
        // every privileged container before PodSecurity gets to judge it.
        '--allow-privileged=true',
        '--profiling=false',
        '--v=1',
        ...(opts.extraArgs ?? []),
      ],
      { logDir, cwd: dir },
    );
    procs.push(apiserver);
    await apiserver.waitFor(
      '/readyz ok',
      async () => {
        const r = await adminGet(url, pki, '/readyz');
        return r.status === 200 && r.body.trim() === 'ok';
      },
      120_000,
    );
    // /readyz does not wait for the system namespaces to be made.
    await apiserver.waitFor("the 'default' namespace", async () => (await adminGet(url, pki, '/api/v1/namespaces/default')).status === 200, 30_000);
    const version = JSON.parse((await adminGet(url, pki, '/version')).body).gitVersion as string;

    const kubeconfig = path.join(dir, 'kubeconfig');
    writeKubeconfig(kubeconfig, url, pki);
    const kubectlBin = process.env.KUDO_E2E_KUBECTL ?? 'kubectl';

    const kubectl = (args: string[], o: KubectlOptions = {}): KubectlResult => {
      const as = [...(o.asUser !== undefined ? [`--as=${o.asUser}`] : []), ...(o.asGroups ?? []).map((g) => `--as-group=${g}`)];
      const full = [`--kubeconfig=${kubeconfig}`, ...as, ...args];
      const r = spawnSync(kubectlBin, full, {
        input: o.input,
        encoding: 'utf8',
        timeout: 120_000,
        maxBuffer: 64 * 1024 * 1024,
        // No ~/.kube cache shared between runs and servers.
        env: { ...process.env, KUBECACHEDIR: path.join(dir, 'kube-cache') },
      });
      if (r.error) throw r.error;
      const res = { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
      if (res.code !== 0 && !o.allowFail) {
        throw new Error(`kubectl ${args.join(' ')} exited ${res.code}${r.signal ? ` (${r.signal})` : ''}:\n${res.stderr}${res.stdout}`);
      }
      return res;
    };

    const userKubeconfig = (user: string, groups: string[] = []): string => {
      const name = `user-${user.replace(/[^a-zA-Z0-9-]/g, '_')}`;
      const subject = [...groups.map((g) => `/O=${g}`), `/CN=${user}`].join('');
      signCert(pki, name, subject, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=clientAuth']);
      const file = path.join(dir, `${name}.kubeconfig`);
      writeKubeconfig(file, url, pki, name);
      return file;
    };

    return { url, kubeconfig, version, caFile: path.join(pki, 'ca.crt'), pkiDir: pki, userKubeconfig, kubectl, stop };
  } catch (e) {
    // Keep the logs that the error names; remove the rest.
    await stopProcs();
    for (const f of fs.readdirSync(dir)) {
      if (!(logDir === dir && f.endsWith('.log'))) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
    }
    if (logDir !== dir) fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
