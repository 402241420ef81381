/**
 * Two third-party policy checkers over every rendered object. kube-score:
 * security context, resources, probes, NetworkPolicies, disruption budgets,
 * deprecated APIs and more. checkov: its Kubernetes checks (Pod Security
 * Standards, service account tokens, secrets in environment variables, RBAC
 * escalation, image pinning, ...), all of them. Both read dist/, a render with
 * every option on, and every render of the configuration matrix (test/matrix.ts),
 * each render alone. For each checker, any finding that is not one of the
 * documented exceptions fails, named by render, object and check; so does an
 * exception that no render needs any more. Every render of the matrix is also
 * validated strictly against the oldest and newest Kubernetes we support and
 * the pinned CRDs, as test/schema.test.ts does for a few chosen renders.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { WORKER_TYPE_NAMES, WORKER_TYPES, WorkerType } from '../../charts/synapse-workers';
import { KUBERNETES_VERSIONS, kubernetesValidator, RENDERED_CRDS } from '../k8s-schema';
import { matrix } from '../matrix';
import { Manifest, programs, rendered, ROOT, tempDir } from './harness';

const KUBE_SCORE_VERSION = fs.readFileSync(path.join(path.dirname(programs().kubeScore), '.kube-score-version'), 'utf8').trim();

const DIGEST = `sha256:${'c'.repeat(64)}`;
/** Every option on (the list test/schema.test.ts renders), and a digest on every image. */
const EVERY_OPTION = {
  domain: 'kudo.example.org',
  serverName: 'example.org',
  tls: { letsEncrypt: { environment: 'staging', email: 'ops@example.org' } },
  postgres: { storage: { className: 'fast' }, maxConnections: 200, image: { digest: DIGEST } },
  synapse: { media: { className: 'fast' }, image: { digest: DIGEST }, workers: { router: { digest: DIGEST } } },
  redis: { image: { digest: DIGEST } },
  livekit: {
    replicas: 3,
    nodeSelector: { 'kudo/media': 'true' },
    image: { digest: DIGEST },
    rtc: { udpPort: 7882, nodeAddress: 'stun', stunServers: ['stun.example.org:3478'] },
  },
  coturn: { publicIp: '203.0.113.10', image: { digest: DIGEST } },
  profile: 'production',
  networkPolicies: { nodeCidrs: ['10.0.0.0/16'] },
  backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' }, resticImage: { digest: DIGEST } },
  argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git' },
  routing: 'gateway-api',
  gatewayApi: { gatewayClassName: 'cilium' },
  monitoring: { enabled: true, postgresExporter: { digest: DIGEST }, redisExporter: { digest: DIGEST } },
};

/** One set of manifests the checkers read. */
interface Render {
  name: string;
  /** The name as a file name. */
  key: string;
  /** The files the checkers read it from. */
  files: string[];
  manifests: Manifest[];
}

const dumpAll = (ms: Manifest[]) => ms.map((m) => yaml.dump(m, { lineWidth: -1 })).join('---\n');

/**
 * Every render in one folder, one file per render named after it (dist/ keeps its files, in a subfolder). Each checker
 * reads each render alone (both relate objects to each other: a NetworkPolicy to the pods it selects), so a finding
 * belongs to the render whose files were read.
 */
const RENDERS_DIR = tempDir('policy-renders');
const RENDERS: Render[] = (() => {
  const distDir = path.join(ROOT, 'dist');
  const distCopy = path.join(RENDERS_DIR, 'dist');
  fs.mkdirSync(distCopy);
  const distFiles = fs.readdirSync(distDir).filter((f) => f.endsWith('.yaml'));
  for (const f of distFiles) fs.copyFileSync(path.join(distDir, f), path.join(distCopy, f));
  const dist = distFiles.flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(distDir, f), 'utf8')) as Manifest[]);
  const one = (name: string, manifests: Manifest[]): Render => {
    const key = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
    const file = path.join(RENDERS_DIR, `${key}.yaml`);
    if (fs.existsSync(file)) throw new Error(`two renders are named ${key}`);
    fs.writeFileSync(file, dumpAll(manifests));
    return { name, key, files: [file], manifests };
  };
  return [
    { name: 'dist/', key: 'dist', files: distFiles.map((f) => path.join(distCopy, f)), manifests: dist },
    one('every option', rendered(EVERY_OPTION).manifests),
    ...matrix().map((r) => one(`matrix: ${r.name}`, rendered(r.config).manifests)),
  ];
})();
const MATRIX_RENDERS = RENDERS.filter((r) => r.name.startsWith('matrix: '));

/** Checks turned off entirely, and why. */
const IGNORED_TESTS: Record<string, string> = {
  'container-image-pull-policy':
    'It wants imagePullPolicy: Always. Every image is pinned to a tag (and optionally a digest), so IfNotPresent is right and keeps pods starting when the registry is down.',
};

/** Worker types of which Synapse allows one process (max 1), and those the main process stands in for when they are down. */
const singleWorkers = WORKER_TYPE_NAMES.filter((t) => (WORKER_TYPES[t] as WorkerType).max === 1);
const standInWorkers = WORKER_TYPE_NAMES.filter((t) => WORKER_TYPES[t].mainCanServe);
const anyOf = (names: readonly string[]) => `(${names.join('|')})`;
/** Renders where PostgreSQL is a CloudNativePG Cluster: its operator makes the pods, from no template the render holds. */
const cloudnativePg = (ms: Manifest[]) => ms.some((m) => m.kind === 'Cluster');

/** Findings we accept: which check (ids joined by |), on which objects ("name/namespace Kind"), in which renders (every one unless said), and why. */
const EXCEPTIONS: { check: string; object: RegExp; renders?: (ms: Manifest[]) => boolean; reason: string }[] = [
  {
    check: 'networkpolicy-targets-pod',
    object: /^acme-http01-solver\/kudo NetworkPolicy$/,
    reason: 'cert-manager creates the HTTP-01 solver pods it selects only while a certificate is being issued.',
  },
  {
    check: 'networkpolicy-targets-pod',
    object: /^gateway-proxy\/kudo NetworkPolicy$/,
    reason: "With the Gateway in the stack's namespace, the Gateway controller creates there the proxy pods this policy selects; no render holds them.",
  },
  {
    check: 'networkpolicy-targets-pod',
    object: /^postgres\/kudo NetworkPolicy$/,
    renders: cloudnativePg,
    reason:
      "In postgres.mode cloudnative-pg the operator creates the instance pods from the Cluster, which kube-score does not understand. Only there: the statefulset mode's policy must select the StatefulSet's pods.",
  },
  {
    check: 'pod-networkpolicy',
    object: /^(livekit|coturn)\/kudo-media (Deployment|DaemonSet)$/,
    reason: 'Host-network pods: NetworkPolicies do not apply to them; the firewall decides (docs/networking.md, "Networking").',
  },
  {
    check: 'pod-probes-identical',
    object: /^coturn\/kudo-media DaemonSet$/,
    reason: 'coturn has no health endpoint; both probes check its TCP listener. No Service routes to it, so readiness only paces rollouts.',
  },
  {
    check: 'pod-probes-identical',
    object: new RegExp(`^synapse(-${anyOf(WORKER_TYPE_NAMES)})?/kudo (Deployment|StatefulSet)$`),
    reason: 'Synapse (main process and workers) fails by hanging; /health answers from its event loop, so it is the right check for both (liveness waits 4 periods).',
  },
  {
    check: 'deployment-replicas|deployment-strategy',
    object: new RegExp(`^synapse(-${anyOf(singleWorkers)})?/kudo Deployment$`),
    reason:
      'One main process, one media repository (the ReadWriteOnce media volume) and one background worker: Synapse runs no second of them, so one replica and Recreate (docs/design.md, "Design notes").',
  },
  {
    check: 'deployment-replicas',
    object: new RegExp(`^synapse-${anyOf(standInWorkers)}/kudo Deployment$`),
    reason: 'The production profile runs one of some worker types (synapse.workers.replicas sets more); while it is down the router sends its paths to the main process.',
  },
  { check: 'deployment-replicas', object: /^livekit\/kudo-media Deployment$/, reason: 'One node in the small profile; set livekit.replicas to the number of media nodes.' },
  {
    check: 'service-type',
    object: /^livekit-rtc-\d+\/kudo-media Service$/,
    reason:
      'livekit.hostNetwork false: each replica is reached on NodePorts of its own, equal to the ports it advertises in its ICE candidates (docs/livekit-without-host-network.md).',
  },
  {
    check: 'service-targets-pod',
    object: /^livekit-rtc-\d+\/kudo-media Service$/,
    reason:
      "Each selects one replica by statefulset.kubernetes.io/pod-name, which the StatefulSet controller adds to its pods; kube-score reads the template's labels only (test/matrix.test.ts checks the ordinal against the replicas).",
  },
  {
    check: 'pod-networkpolicy',
    object: /^livekit\/kudo-media StatefulSet$/,
    reason:
      "livekit.hostNetwork false: the policy livekit limits what reaches LiveKit; its egress stays open, as media goes to any client's address and port (docs/livekit-without-host-network.md).",
  },
];

interface KubeScoreFinding {
  level: 'CRITICAL' | 'WARNING';
  /** "name/namespace Kind", as kube-score's ci output names it. */
  object: string;
  check: string;
  /** "(container) summary", or the summary alone. */
  message: string;
}

/** kube-score's grades (scorecard.Grade): anything below "all OK" that was not skipped is a finding. */
const GRADE_WARNING = 5;
const GRADE_ALL_OK = 10;

/**
 * kube-score over the files of one render. One run per render, never over several at once: its checks relate objects
 * to each other (a NetworkPolicy to the pods it selects, a Service to its pods), and would cross renders.
 */
function kubeScore(files: string[]): { scored: Set<string>; findings: KubeScoreFinding[]; stderr: string } {
  const args = [
    'score',
    '--output-format',
    'json',
    '--enable-optional-test',
    'container-seccomp-profile',
    ...Object.keys(IGNORED_TESTS).flatMap((t) => ['--ignore-test', t]),
    ...files,
  ];
  const run = spawnSync(programs().kubeScore, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  // Exit 1 means "something is critical"; anything else is kube-score's own trouble.
  if (![0, 1].includes(run.status!)) throw new Error(`kube-score exited ${run.status}: ${run.stderr}`);
  const objects = JSON.parse(run.stdout) as {
    type_meta: { kind: string };
    object_meta: { name: string; namespace?: string };
    checks: { check: { id: string; name: string }; grade: number; skipped: boolean; comments: { path: string; summary: string }[] | null }[];
  }[];
  const scored = new Set(objects.map((o) => `${o.type_meta.kind}.${o.object_meta.namespace}.${o.object_meta.name}`));
  const findings = objects.flatMap((o) =>
    o.checks
      .filter((c) => !c.skipped && c.grade < GRADE_ALL_OK)
      .flatMap((c) =>
        (c.comments ?? [{ path: '', summary: c.check.name }]).map((comment): KubeScoreFinding => ({
          level: c.grade >= GRADE_WARNING ? 'WARNING' : 'CRITICAL',
          object: `${o.object_meta.name}/${o.object_meta.namespace} ${o.type_meta.kind}`,
          check: c.check.id,
          message: `${comment.path ? `(${comment.path}) ` : ''}${comment.summary}`,
        })),
      ),
  );
  return { scored, findings, stderr: run.stderr };
}

/** The kinds kube-score scores (it reads others and says nothing of them), among those the charts render. */
const KUBE_SCORE_KINDS = ['CronJob', 'DaemonSet', 'Deployment', 'Job', 'StatefulSet', 'Service', 'NetworkPolicy', 'Ingress', 'PodDisruptionBudget'];

describe(`kube-score ${KUBE_SCORE_VERSION} over dist/, a render with every option on and every render of the matrix`, () => {
  const runs = RENDERS.map((r) => ({ render: r, ...kubeScore(r.files) }));
  const findings = runs.flatMap((r) => r.findings.map((f) => ({ render: r.render, ...f })));
  const covers = (e: (typeof EXCEPTIONS)[0], f: (typeof findings)[0]) =>
    new RegExp(`^(${e.check})$`).test(f.check) && e.object.test(f.object) && (e.renders?.(f.render.manifests) ?? true);

  test.each(runs.map((r) => [r.render.name, r] as const))('%s: it scored every object', (_, r) => {
    expect(r.stderr).toBe('');
    const objects = r.render.manifests.filter((m) => KUBE_SCORE_KINDS.includes(m.kind)).map((m) => `${m.kind}.${m.metadata.namespace}.${m.metadata.name}`);
    expect(objects.length).toBeGreaterThan(10);
    expect(objects.filter((o) => !r.scored.has(o))).toEqual([]);
  });

  test('every finding is a documented exception', () => {
    const unexplained = findings.filter((f) => !EXCEPTIONS.some((e) => covers(e, f)));
    expect(unexplained.map((f) => `${f.render.name}: ${f.object} ${f.check} [${f.level}] ${f.message}`)).toEqual([]);
  });

  test('every exception is still needed (by some render)', () => {
    const unused = EXCEPTIONS.filter((e) => !findings.some((f) => covers(e, f)));
    expect(unused.map((e) => `${e.check} ${e.object}`)).toEqual([]);
  });

  test('the checker can fail: a privileged container without limits is reported', () => {
    const bad = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'bad', namespace: 'kudo' },
      spec: { containers: [{ name: 'c', image: 'busybox:1.37', securityContext: { privileged: true } }] },
    };
    const badFile = path.join(tempDir('kube-score-bad'), 'bad.yaml');
    fs.writeFileSync(badFile, yaml.dump(bad));
    const checks = kubeScore([badFile]).findings.filter((f) => f.object === 'bad/kudo Pod' && f.level === 'CRITICAL');
    expect(checks).toContainEqual(expect.objectContaining({ check: 'container-security-context-privileged', message: expect.stringMatching(/\(c\) .*privileged/i) }));
    expect(checks).toContainEqual(expect.objectContaining({ check: 'container-resources', message: expect.stringMatching(/\(c\) .*limit/i) }));
  });
});

// ---------------------------------------------------------------------------
// checkov (PyPI), the second checker. kube-linter, which the review used, is
// not served by the Go module proxy here; checkov covers the same ground (Pod
// Security, service account tokens, Secrets in the environment, RBAC). Unlike
// kube-linter's env-var-secret it looks at where a variable's value comes from
// (a secretKeyRef), not at its name.
// ---------------------------------------------------------------------------

const CHECKOV = programs().checkov;
const CHECKOV_PYTHON = path.join(path.dirname(CHECKOV), 'python3');
// What `checkov --version` says (install-programs.sh holds them equal), without its 3 s of imports.
const CHECKOV_VERSION = spawnSync(CHECKOV_PYTHON, ['-c', 'from importlib.metadata import version; print(version("checkov"))'], { encoding: 'utf8' }).stdout.trim();

/** Checks turned off entirely, and why. */
const CHECKOV_SKIPPED: Record<string, string> = {
  CKV_K8S_15: IGNORED_TESTS['container-image-pull-policy'],
};

/** Findings we accept: which check, on which objects ("Kind.namespace.name"), in which renders, and why. */
const CHECKOV_EXCEPTIONS: { check: string; resource: RegExp; renders: RegExp; reason: string }[] = [
  {
    check: 'CKV_K8S_19',
    resource: /^(Deployment\.kudo-media\.livekit|DaemonSet\.kudo-media\.coturn)$/,
    renders: /./,
    reason: 'LiveKit and coturn run on the host network (media ports, real client addresses), in the privileged namespace kudo-media (docs/networking.md, "Networking").',
  },
  {
    check: 'CKV_K8S_25',
    resource: /^DaemonSet\.kudo-media\.coturn$/,
    renders: /./,
    reason:
      "coturn keeps exactly NET_BIND_SERVICE in its bounding set: its image's turnserver carries that file capability and the " +
      'kernel refuses to exec it otherwise. Under no_new_privs it is never raised (charts/coturn.ts coturnSecurityContext; test/e2e/coturn).',
  },
  {
    check: 'CKV_K8S_9',
    resource: /^StatefulSet\.kudo\.postgres$/,
    renders: /./,
    reason:
      "The tls-reload step beside PostgreSQL has a liveness probe and no readiness probe: a step that is not ready would take the database's address " +
      'out of its Service, though the database serves (charts/postgres.ts tlsReloadContainer). The server container has its readiness probe (postgres.test).',
  },
  {
    check: 'CKV_K8S_43',
    resource: /^(CronJob|DaemonSet|Deployment|Job|StatefulSet)\./,
    renders: /^(dist\/|matrix: )/,
    reason:
      'Images are pinned by tag by default, and the matrix leaves them so; `image.digest` pins one by digest. The every-option render sets a digest on every image and has no such finding.',
  },
];

interface CheckovResult {
  check_id: string;
  check_name: string;
  resource: string;
  file_abs_path: string;
}

interface CheckovReport {
  passed: CheckovResult[];
  failed: CheckovResult[];
  parsingErrors: number;
  stderr: string;
}

/**
 * checkov over each of several renders, each scanned alone (its graph checks join the objects of what it reads),
 * by test/e2e/checkov-each.py: one start of checkov, forked once per render, as many at a time as there are cores.
 * With no network: it would ask its vendor's API and PyPI otherwise.
 */
function checkovEach(renders: { key: string; files: string[] }[]): Map<string, CheckovReport> {
  const out = tempDir('checkov-reports');
  const args = ['--framework', 'kubernetes', '--skip-download', '--compact', '-o', 'json', ...Object.keys(CHECKOV_SKIPPED).flatMap((c) => ['--skip-check', c])];
  const run = spawnSync(
    'unshare',
    [
      '--net',
      CHECKOV_PYTHON,
      path.join(__dirname, 'checkov-each.py'),
      String(os.availableParallelism()),
      out,
      '--',
      ...args,
      '--',
      ...renders.map((r) => `${r.key}=${r.files.join(',')}`),
    ],
    { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: tempDir('checkov-home') } },
  );
  if (run.status !== 0) throw new Error(`checkov-each.py exited ${run.status}: ${run.stderr}`);
  const status: Record<string, number> = JSON.parse(run.stdout);
  return new Map(
    renders.map((r) => {
      // Exit 1 means "something failed"; anything else is checkov's own trouble.
      const stderr = fs.readFileSync(path.join(out, `${r.key}.stderr`), 'utf8');
      if (![0, 1].includes(status[r.key])) throw new Error(`checkov on ${r.key} exited ${status[r.key]}: ${stderr}`);
      const report = JSON.parse(fs.readFileSync(path.join(out, `${r.key}.json`), 'utf8'));
      return [r.key, { passed: report.results.passed_checks, failed: report.results.failed_checks, parsingErrors: report.summary.parsing_errors, stderr }];
    }),
  );
}

const WORKLOAD_KINDS = ['CronJob', 'DaemonSet', 'Deployment', 'Job', 'StatefulSet'];

/** The checker can fail: a root, host-network Job with a token and a secret in its environment, scanned with the renders. */
const CHECKOV_CANARY = (() => {
  const file = path.join(tempDir('checkov-bad'), 'bad.yaml');
  const bad = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'bad', namespace: 'kudo' },
    spec: {
      template: {
        spec: {
          hostNetwork: true,
          restartPolicy: 'Never',
          containers: [
            {
              name: 'c',
              image: 'busybox:1.37',
              securityContext: { privileged: true },
              env: [{ name: 'ADMIN_PASSWORD', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }],
            },
          ],
        },
      },
    },
  };
  fs.writeFileSync(file, yaml.dump(bad));
  return { key: 'canary', files: [file] };
})();

describe(`checkov ${CHECKOV_VERSION} (all its Kubernetes checks) over dist/, a render with every option on and every render of the matrix`, () => {
  const reports = checkovEach([...RENDERS, CHECKOV_CANARY]);
  const findings = RENDERS.flatMap((r) => reports.get(r.key)!.failed.map((f) => ({ render: r.name, check: f.check_id, name: f.check_name, resource: f.resource })));
  const excepted = (f: (typeof findings)[0]) => CHECKOV_EXCEPTIONS.some((e) => e.check === f.check && e.resource.test(f.resource) && e.renders.test(f.render));

  test.each(RENDERS.map((r) => [r.name, r] as const))('%s: it read every file and checked every workload', (_, r) => {
    const report = reports.get(r.key)!;
    expect(report.stderr).toBe('');
    expect(report.parsingErrors).toBe(0);
    const results = [...report.passed, ...report.failed];
    expect(results.filter((c) => !r.files.includes(c.file_abs_path)).map((c) => c.file_abs_path)).toEqual([]);
    const checked = new Set(results.map((c) => c.resource));
    const workloads = r.manifests.filter((m) => WORKLOAD_KINDS.includes(m.kind)).map((m) => `${m.kind}.${m.metadata.namespace}.${m.metadata.name}`);
    expect(workloads.length).toBeGreaterThan(5);
    expect(workloads.filter((w) => !checked.has(w))).toEqual([]);
    // The Pod Security and practice checks the review asked about ran (pass or fail) on every workload.
    const ran = (id: string) => new Set(results.filter((c) => c.check_id === id).map((c) => c.resource));
    for (const id of ['CKV_K8S_16', 'CKV_K8S_19', 'CKV_K8S_20', 'CKV_K8S_23', 'CKV_K8S_28', 'CKV_K8S_31', 'CKV_K8S_35', 'CKV_K8S_38']) {
      expect([id, workloads.filter((w) => !ran(id).has(w))]).toEqual([id, []]);
    }
  });

  test('every finding is a documented exception', () => {
    expect(findings.filter((f) => !excepted(f)).map((f) => `${f.render}: ${f.resource} ${f.check}: ${f.name}`)).toEqual([]);
  });

  test('every exception is still needed (by some render)', () => {
    const unused = CHECKOV_EXCEPTIONS.filter((e) => !findings.some((f) => e.check === f.check && e.resource.test(f.resource) && e.renders.test(f.render)));
    expect(unused.map((e) => `${e.check} ${e.resource} (${e.renders})`)).toEqual([]);
  });

  test('the every-option render really sets a digest on every container image', () => {
    const every = RENDERS.find((r) => r.name === 'every option')!.manifests;
    const images = every
      .filter((m) => WORKLOAD_KINDS.includes(m.kind))
      .flatMap((m) => {
        const spec = m.kind === 'CronJob' ? m.spec.jobTemplate.spec.template.spec : m.spec.template.spec;
        return [...spec.containers, ...(spec.initContainers ?? [])].map((c: any) => c.image as string);
      });
    expect(images.length).toBeGreaterThan(10);
    expect(images.filter((i) => !i.endsWith(`@${DIGEST}`))).toEqual([]);
  });

  test('the checker can fail: a root, host-network Job with a token and a secret in its environment is reported', () => {
    const failed = new Set(
      reports
        .get(CHECKOV_CANARY.key)!
        .failed.filter((f) => f.resource === 'Job.kudo.bad')
        .map((f) => f.check_id),
    );
    for (const id of ['CKV_K8S_16', 'CKV_K8S_19', 'CKV_K8S_35', 'CKV_K8S_38', 'CKV_K8S_43']) expect([id, failed.has(id)]).toEqual([id, true]);
  });
});

// ---------------------------------------------------------------------------
// Strict schema validation of every render of the matrix, as test/schema.test.ts does for a few chosen renders: the
// same validator (like `kubectl apply --validate=strict`), Kubernetes versions and pinned CRDs. It starts no program;
// it is here because it reads the renders above, and 2 versions × 40-odd renders are too slow for the unit tier.
// ---------------------------------------------------------------------------

describe.each(KUBERNETES_VERSIONS)('Kubernetes %s: every render of the matrix validates strictly', (version) => {
  const validator = kubernetesValidator(version, RENDERED_CRDS);
  test.each(MATRIX_RENDERS.map((r) => [r.name, r] as const))('%s', (_, r) => {
    const problems = r.manifests.flatMap((m) => validator.errors(m).map((e) => `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}: ${e}`));
    expect(problems).toEqual([]);
  });
});
