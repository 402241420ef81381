/**
 * A simulated Kubernetes cluster on loopback, as close to a real one as this
 * machine allows without a container engine:
 *
 * - etcd and kube-apiserver (test/e2e/apiserver.ts), with the CRDs the
 *   manifests use;
 * - kube-controller-manager with every default controller (Deployments,
 *   ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, the PV binder,
 *   PodDisruptionBudgets, garbage collection, ServiceAccounts and their
 *   tokens, EndpointSlices, node lifecycle, ...), each controller with its own
 *   ServiceAccount's credentials, as kubeadm runs it;
 * - kube-scheduler with its default profile (resources, node selectors and
 *   affinity, pod anti-affinity, topology spread, host ports, volume binding);
 * - kwok, faking the kubelets of fake nodes that have the allocatable CPU,
 *   memory and pods of real machines, and moving pods through their lives
 *   (kwok-stages.yaml): scheduled, running, ready; Jobs' pods completing;
 *   deleted pods stopping and going away;
 * - a default StorageClass with no provisioner and WaitForFirstConsumer
 *   binding, and local PersistentVolumes pinned to each node, so a claim binds
 *   only when a pod that uses it is scheduled, and to that pod's node, as on
 *   EKS, GKE, AKS and k3s.
 *
 * kwok also stands in for the two controllers the manifests rely on that
 * cannot run here: an ingress controller (it writes the Ingress's
 * status.loadBalancer) and cert-manager (it marks ClusterIssuers, Issuers and
 * Certificates Ready). See kwok-stages.yaml.
 *
 * What this proves: the manifests, applied as a user or Argo CD applies
 * them, make the objects the real Kubernetes controllers turn into pods; the
 * real scheduler can place every pod on machines of the sizes we claim, honours
 * the node selectors, affinities, host ports and volume topology we render,
 * and refuses what does not fit; claims bind; Jobs run to completion; rollouts,
 * drains and PodDisruptionBudgets behave as the real controllers make them
 * behave; Argo CD's engine completes a sync wave by wave.
 *
 * What it cannot prove: nothing runs inside a pod. A pod is "ready" because a
 * Stage says so, not because a probe passed; a missing Secret, a bad command
 * or a crash-looping container would go unnoticed here (kwok does not mount
 * volumes or read Secrets). The real programs, fed the configs from the
 * rendered manifests, are tested in test/e2e. No network either: Services,
 * NetworkPolicies and host networking are stored and admitted but never
 * carry a packet. Certificates are never really issued, and the ingress
 * controller's and cert-manager's own behaviour is assumed, not tested.
 *
 * Argo CD is represented by its sync and health engine (argosync): gitops-
 * engine v0.7.3, with the Lua health checks Argo CD 3.6 adds for the kinds we
 * render restated in Go (argosync/health.go says why it cannot link Argo CD's).
 *
 * A test file starts a cluster in beforeAll (one per describe block when it
 * needs two topologies) and stops it in afterAll, which leaves no process
 * behind; files and logs go to the run's temporary folder, which the global
 * teardown removes (KUDO_E2E_KEEP=1 keeps it).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { ApiServer, CRD_FILES, installCrds, KubectlOptions, KubectlResult, startApiServer } from '../e2e/apiserver';
import { freePort, Program, ROOT, sleep, tail, tempDir } from '../e2e/harness';

/** A fake node, sized like a real machine. */
export interface NodeSpec {
  readonly name: string;
  /** vCPUs of the machine (capacity). */
  readonly cpu: number;
  /** Memory of the machine in GiB (capacity). */
  readonly memoryGi: number;
  readonly zone: string;
  /** Labelled kudo/turn=true (coturn runs only there). */
  readonly turn: boolean;
}

export type Topology = 'small' | 'production';

/**
 * small: the one 2 vCPU / 4 GiB machine the `small` profile is sized for.
 * production: three 8 vCPU / 32 GiB machines in three zones, two of them for
 * TURN, enough for the `production` profile with a node drained.
 */
export const TOPOLOGIES: Record<Topology, readonly NodeSpec[]> = {
  small: [{ name: 'small-1', cpu: 2, memoryGi: 4, zone: 'zone-a', turn: true }],
  production: [
    { name: 'prod-1', cpu: 8, memoryGi: 32, zone: 'zone-a', turn: true },
    { name: 'prod-2', cpu: 8, memoryGi: 32, zone: 'zone-b', turn: true },
    { name: 'prod-3', cpu: 8, memoryGi: 32, zone: 'zone-c', turn: false },
  ],
};

/** Local volumes made on every node: each claim binds the smallest that fits. */
const VOLUME_SIZES_GI = [600, 250, 120, 60, 25, 12, 12];
export const STORAGE_CLASS = 'local';

/** The annotation kwok selects the nodes it manages by. */
const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';

export interface ClusterPrograms {
  kubeControllerManager: string;
  kubeScheduler: string;
  kwok: string;
  argosync: string;
}

/** Paths of the programs test/cluster/install-cluster.sh builds. */
export function clusterPrograms(): ClusterPrograms {
  const cache = process.env.KUDO_E2E_CACHE ?? path.join(os.homedir(), '.cache', 'kudo-e2e');
  const envFile = path.join(cache, 'cluster-env.sh');
  if (!fs.existsSync(envFile)) throw new Error(`${envFile} is missing: run test/cluster/install-cluster.sh first (npm run test:cluster does)`);
  const vars: Record<string, string> = {};
  for (const m of fs.readFileSync(envFile, 'utf8').matchAll(/^export (\w+)='([^']*)'$/gm)) vars[m[1]] = m[2];
  const p: ClusterPrograms = {
    kubeControllerManager: vars.KUDO_CLUSTER_KUBE_CONTROLLER_MANAGER,
    kubeScheduler: vars.KUDO_CLUSTER_KUBE_SCHEDULER,
    kwok: vars.KUDO_CLUSTER_KWOK,
    argosync: vars.KUDO_CLUSTER_ARGOSYNC,
  };
  for (const [name, file] of Object.entries(p)) {
    if (!file || !fs.existsSync(file)) throw new Error(`program ${name} not found at "${file}" (from ${envFile})`);
  }
  return p;
}

export interface Cluster {
  readonly topology: Topology;
  readonly nodes: readonly NodeSpec[];
  readonly api: ApiServer;
  /** The admin's kubeconfig. */
  readonly kubeconfig: string;
  /** Where the components' logs go (inside the run's temporary folder). */
  readonly logDir: string;
  /** kubectl as the admin; throws on a non-zero exit unless allowFail. */
  kubectl(args: string[], opts?: KubectlOptions): KubectlResult;
  /** `kubectl get ARGS -o json`, parsed. */
  get(args: string[]): any;
  /** The last lines of every component's log, for failure messages. */
  logs(lines?: number): string;
  stop(): Promise<void>;
}

/**
 * Kubernetes' quantity of a number of bytes, in Mi.
 */
function mi(bytes: number): string {
  return `${Math.floor(bytes / 2 ** 20)}Mi`;
}

/**
 * What a managed cluster's kubelet leaves allocatable (GKE's documented
 * reservations, close to EKS's): CPU minus 6% of the first core, 1% of the
 * second, 0.5% of the next two and 0.25% of the rest; memory minus 25% of
 * the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the next 112,
 * and the 100 MiB eviction threshold. A 2 vCPU / 4 GiB machine keeps 1930m
 * CPU and 2972Mi; test/sizing.test.ts assumes the roomier 3.3 GiB of EKS, so
 * this is the stricter check.
 */
export function allocatable(n: NodeSpec): { cpu: string; memory: string } {
  const cores = n.cpu;
  const reservedMilli = 60 * Math.min(cores, 1) + 10 * Math.min(Math.max(cores - 1, 0), 1) + 5 * Math.min(Math.max(cores - 2, 0), 2) + 2.5 * Math.max(cores - 4, 0);
  const gi = n.memoryGi;
  const reservedGi =
    0.25 * Math.min(gi, 4) +
    0.2 * Math.min(Math.max(gi - 4, 0), 4) +
    0.1 * Math.min(Math.max(gi - 8, 0), 8) +
    0.06 * Math.min(Math.max(gi - 16, 0), 112) +
    0.02 * Math.max(gi - 128, 0);
  return {
    cpu: `${Math.round(cores * 1000 - reservedMilli)}m`,
    memory: mi((gi - reservedGi) * 2 ** 30 - 100 * 2 ** 20),
  };
}

function nodeObject(n: NodeSpec, i: number): object {
  const alloc = allocatable(n);
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/hostname': n.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': `fake-${n.cpu}cpu-${n.memoryGi}gi`,
        'topology.kubernetes.io/region': 'region-1',
        'topology.kubernetes.io/zone': n.zone,
        ...(n.turn ? { 'kudo/turn': 'true' } : {}),
      },
    },
    spec: { podCIDR: `10.244.${i}.0/24`, podCIDRs: [`10.244.${i}.0/24`] },
    // A kubelet registers its node with this status; the API server keeps it on create.
    status: {
      capacity: { cpu: String(n.cpu), memory: `${n.memoryGi}Gi`, pods: '110', 'ephemeral-storage': '100Gi' },
      allocatable: { cpu: alloc.cpu, memory: alloc.memory, pods: '110', 'ephemeral-storage': '85Gi' },
      addresses: [
        { type: 'InternalIP', address: `10.0.0.${10 + i}` },
        // 203.0.113.0/24 is for documentation (RFC 5737): the nodes' public addresses.
        { type: 'ExternalIP', address: `203.0.113.${20 + i}` },
        { type: 'Hostname', address: n.name },
      ],
      nodeInfo: {
        architecture: 'amd64',
        operatingSystem: 'linux',
        osImage: 'kwok fake node',
        kernelVersion: 'kwok',
        containerRuntimeVersion: 'kwok',
        kubeletVersion: 'v1.36.3',
        kubeProxyVersion: '',
        machineID: '',
        systemUUID: '',
        bootID: '',
      },
    },
  };
}

function storageObjects(nodes: readonly NodeSpec[]): object[] {
  const sc = {
    apiVersion: 'storage.k8s.io/v1',
    kind: 'StorageClass',
    metadata: { name: STORAGE_CLASS, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
    provisioner: 'kubernetes.io/no-provisioner',
    volumeBindingMode: 'WaitForFirstConsumer',
    reclaimPolicy: 'Retain',
  };
  const pvs = nodes.flatMap((n) =>
    VOLUME_SIZES_GI.map((size, j) => ({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: `${n.name}-disk${j}-${size}gi`, labels: { 'kudo.test/node': n.name } },
      spec: {
        capacity: { storage: `${size}Gi` },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: STORAGE_CLASS,
        volumeMode: 'Filesystem',
        local: { path: `/mnt/disks/disk${j}` },
        nodeAffinity: {
          required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [n.name] }] }] },
        },
      },
    })),
  );
  return [sc, ...pvs];
}

/**
 * The CRDs to install: those the e2e API-server test installs (CRD_FILES),
 * and every pinned CRD the charts are written against (cdk8s.yaml's
 * imports), so a chart that starts rendering a new kind finds it here.
 */
function crdFiles(): string[] {
  const cdk8s = yaml.load(fs.readFileSync(path.join(ROOT, 'cdk8s.yaml'), 'utf8')) as { imports?: string[] };
  const imported = (cdk8s.imports ?? [])
    .map((i) => i.replace(/^.*=/, ''))
    .filter((f) => f.startsWith('crds/'))
    .map((f) => f.slice('crds/'.length));
  return [...new Set([...CRD_FILES, ...imported])];
}

/** GET https://127.0.0.1:port/healthz of a component with a self-signed certificate. */
function healthz(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'ok'));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** Thrown by a waitUntil() check to stop waiting at once (e.g. a component died). */
export class GiveUp extends Error {}

/**
 * Waits until check() returns null (done), polling every intervalMs; after
 * timeoutMs fails with what the last check reported. Bounds, never timings:
 * a slow machine only waits longer. A check that throws counts as not done,
 * unless it throws GiveUp.
 */
export async function waitUntil(what: string, check: () => string | null | Promise<string | null>, timeoutMs: number, intervalMs = 1_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let report: string | null;
  for (;;) {
    try {
      report = await check();
    } catch (e) {
      if (e instanceof GiveUp) throw new Error(`${what}: ${e.message}`, { cause: e });
      report = `check failed: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (report === null) return;
    if (Date.now() > deadline) throw new Error(`${what}: still not done after ${Math.round(timeoutMs / 1000)} s:\n${report}`);
    await sleep(intervalMs);
  }
}

/** Flags for one cluster's components, after ours (a repeated flag takes the last value). */
export interface ClusterOptions {
  /** More kube-apiserver flags, e.g. shorter default tolerations. */
  readonly apiServerArgs?: readonly string[];
  /** More kube-controller-manager flags, e.g. a shorter --node-monitor-grace-period. */
  readonly controllerManagerArgs?: readonly string[];
  /** More kwok flags, e.g. --disregard-status-with-annotation-selector. */
  readonly kwokArgs?: readonly string[];
}

/** Starts a cluster of the given topology (see the top of this file). */
export async function startCluster(topology: Topology, opts: ClusterOptions = {}): Promise<Cluster> {
  const programs = clusterPrograms();
  const nodes = TOPOLOGIES[topology];
  const logDir = tempDir(`cluster-${topology}`);
  const procs: Program[] = [];
  const onExit = () => procs.forEach((p) => p.kill());
  process.on('exit', onExit);
  let api: ApiServer | undefined;

  const stop = async () => {
    process.off('exit', onExit);
    // Controllers first, so they do not log a storm of errors about a vanished API server.
    for (const p of [...procs].reverse()) await p.stop();
    await api?.stop();
  };

  try {
    api = await startApiServer({ logDir, extraArgs: [...(opts.apiServerArgs ?? [])] });
    const a = api;
    installCrds(a, crdFiles());
    const pki = a.pkiDir;

    // Each component authenticates as the user the default RBAC roles are
    // bound to (system:kube-controller-manager, system:kube-scheduler), as kubeadm sets them up.
    const kcmConfig = a.userKubeconfig('system:kube-controller-manager');
    const schedulerConfig = a.userKubeconfig('system:kube-scheduler');
    const [kcmPort, schedulerPort] = [await freePort(), await freePort()];
    // Their HTTPS endpoints serve only /healthz here, which needs no
    // authentication (--authorization-always-allow-paths), so they get no
    // authentication or authorization kubeconfig.
    const componentArgs = (kubeconfig: string, port: number, name: string) => [
      `--kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${path.join(logDir, `${name}-certs`)}`,
      // One instance, nothing to elect.
      '--leader-elect=false',
      '--v=1',
    ];
    const kcm = new Program(
      'kube-controller-manager',
      programs.kubeControllerManager,
      [
        ...componentArgs(kcmConfig, kcmPort, 'kube-controller-manager'),
        '--controllers=*',
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${path.join(pki, 'sa.key')}`,
        `--root-ca-file=${path.join(pki, 'ca.crt')}`,
        `--cluster-signing-cert-file=${path.join(pki, 'ca.crt')}`,
        `--cluster-signing-key-file=${path.join(pki, 'ca.key')}`,
        '--cluster-name=kudo-cluster',
        ...(opts.controllerManagerArgs ?? []),
      ],
      { logDir },
    );
    procs.push(kcm);
    const scheduler = new Program('kube-scheduler', programs.kubeScheduler, componentArgs(schedulerConfig, schedulerPort, 'kube-scheduler'), { logDir });
    procs.push(scheduler);

    // kwok manages only the nodes annotated for it. HOME is its own, so a
    // ~/.kwok/kwok.yaml on the machine is never read. It acts as the admin:
    // it renews Leases, writes the status of nodes, pods, Ingresses and
    // cert-manager objects, and deletes pods, for which kubeadm has no role.
    const kwokHome = path.join(logDir, 'kwok-home');
    fs.mkdirSync(kwokHome, { recursive: true });
    const kwok = new Program(
      'kwok',
      programs.kwok,
      [
        `--kubeconfig=${a.kubeconfig}`,
        `--config=${path.join(__dirname, 'kwok-stages.yaml')}`,
        `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
        '--manage-all-nodes=false',
        // Leases renewed as a kubelet renews them (its default duration).
        '--node-lease-duration-seconds=40',
        '--cidr=10.244.0.0/16',
        ...(opts.kwokArgs ?? []),
      ],
      { logDir, env: { ...process.env, HOME: kwokHome } },
    );
    procs.push(kwok);

    await kcm.waitFor('/healthz ok', () => healthz(kcmPort), 60_000);
    await scheduler.waitFor('/healthz ok', () => healthz(schedulerPort), 60_000);

    const objects = [...nodes.map(nodeObject), ...storageObjects(nodes)];
    const file = path.join(logDir, 'nodes-and-storage.json');
    fs.writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 1));
    a.kubectl(['create', '-f', file]);

    const cluster: Cluster = {
      topology,
      nodes,
      api: a,
      kubeconfig: a.kubeconfig,
      logDir,
      kubectl: (args, o) => a.kubectl(args, o),
      get: (args) => JSON.parse(a.kubectl(['get', ...args, '-o', 'json']).stdout),
      logs: (lines = 30) => procs.map((p) => `--- ${p.name} (${p.log}):\n${tail(p.output(), lines)}`).join('\n'),
      stop,
    };

    // Ready nodes (kwok's node-ready Stage), and the controllers at work:
    // a namespace gets its 'default' ServiceAccount and kube-root-ca.crt.
    await waitUntil(
      'the fake nodes and the controllers to be ready',
      () => {
        for (const p of procs) if (!p.running) throw new GiveUp(`${p.name} exited:\n${tail(p.output())}`);
        const list = cluster.get(['nodes']).items as any[];
        const notReady = list.filter((n) => !(n.status.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True'));
        const tainted = list.filter((n) => (n.spec.taints ?? []).length > 0);
        const sa = a.kubectl(['get', 'serviceaccount', 'default', '-n', 'default'], { allowFail: true }).code === 0;
        const ca = a.kubectl(['get', 'configmap', 'kube-root-ca.crt', '-n', 'default'], { allowFail: true }).code === 0;
        if (list.length === nodes.length && notReady.length === 0 && tainted.length === 0 && sa && ca) return null;
        return (
          `nodes: ${list.length}/${nodes.length}, not ready: ${notReady.map((n) => n.metadata.name).join(', ') || '-'}, ` +
          `tainted: ${tainted.map((n) => `${n.metadata.name} ${JSON.stringify(n.spec.taints)}`).join(', ') || '-'}, ` +
          `default ServiceAccount: ${sa}, kube-root-ca.crt: ${ca}\n${cluster.logs(15)}`
        );
      },
      90_000,
      500,
    );
    return cluster;
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Renders a config the way users do (`KUDO_CONFIG=file CDK8S_OUTDIR=dir npm
 * run synth`), into a new folder of the run's temporary directory. Returns
 * the folder. The working tree is left as it was (the render bundle in .build/
 * is git-ignored).
 */
export function renderConfig(name: string, config: object): string {
  const dir = tempDir(`render-${name}`);
  const configFile = path.join(dir, 'kudo.yaml');
  fs.writeFileSync(configFile, JSON.stringify(config, null, 1));
  const out = path.join(dir, 'dist');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'synth.mjs')], {
    cwd: ROOT,
    encoding: 'utf8',
    // No env-file Secrets: they would be written into the working tree (secrets.local/).
    env: { ...process.env, KUDO_CONFIG: configFile, CDK8S_OUTDIR: out, KUDO_ENV_FILE: '', KUDO_SIGNING_KEY_FILE: '' },
  });
  if (r.status !== 0) throw new Error(`render of ${JSON.stringify(config)} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return out;
}
