/**
 * A third-party policy checker (kube-score) over every rendered object:
 * security context, resources, probes, NetworkPolicies, disruption budgets,
 * deprecated APIs and more. Any finding that is not one of the documented
 * exceptions below fails, and so does an exception that no longer matches.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { programs, rendered, tempDir } from './harness';

const KUBE_SCORE_VERSION = fs.readFileSync(path.join(path.dirname(programs().kubeScore), '.kube-score-version'), 'utf8').trim();

/** Checks turned off entirely, and why. */
const IGNORED_TESTS: Record<string, string> = {
  'container-image-pull-policy':
    'It wants imagePullPolicy: Always. Every image is pinned to a tag (and optionally a digest), so IfNotPresent is right and keeps pods starting when the registry is down.',
};

/** Findings we accept, as [object pattern, message pattern, reason]. */
const EXCEPTIONS: [RegExp, RegExp, string][] = [
  [/^acme-http01-solver\/kudo NetworkPolicy$/, /selector doesn't match any pods/,
    "cert-manager creates the HTTP-01 solver pods it selects only while a certificate is being issued."],
  [/^(livekit|coturn)\/kudo-media (Deployment|DaemonSet)$/, /does not have a matching NetworkPolicy/,
    'Host-network pods: NetworkPolicies do not apply to them; the firewall decides (README, Networking).'],
  [/^coturn\/kudo-media DaemonSet$/, /same readiness and liveness probe/,
    'coturn has no health endpoint; both probes check its TCP listener. No Service routes to it, so readiness only paces rollouts.'],
  [/^synapse\/kudo Deployment$/, /same readiness and liveness probe/,
    "Synapse fails by hanging; /health answers from its event loop, so it is the right check for both (liveness waits 4 periods)."],
  [/^synapse\/kudo Deployment$/, /few replicas|update strategy/,
    'One Synapse process with a ReadWriteOnce media volume, so one replica and Recreate (README, Design notes).'],
  [/^livekit\/kudo-media Deployment$/, /few replicas/,
    'One node in the small profile; set livekit.replicas to the number of media nodes.'],
];

describe(`kube-score ${KUBE_SCORE_VERSION} over the rendered manifests`, () => {
  const dir = tempDir('policy');
  const { manifests } = rendered();
  const file = path.join(dir, 'all.yaml');
  fs.writeFileSync(file, manifests.map((m) => yaml.dump(m)).join('---\n'));
  const args = ['score', '--output-format', 'ci', '--enable-optional-test', 'container-seccomp-profile',
    ...Object.keys(IGNORED_TESTS).flatMap((t) => ['--ignore-test', t]), file];
  const run = spawnSync(programs().kubeScore, args, { encoding: 'utf8' });
  // "[CRITICAL] name/namespace group/version/Kind: (container) message"
  const findings = run.stdout.split('\n').filter((l) => /^\[(CRITICAL|WARNING)\]/.test(l)).map((l) => {
    const m = /^\[(\w+)\] ([^ ]+) (?:[^ ]+\/)?([A-Za-z]+): (.*)$/.exec(l);
    if (!m) throw new Error(`unexpected kube-score line: ${l}`);
    return { level: m[1], object: `${m[2]} ${m[3]}`, message: m[4] };
  });

  test('it ran and scored every object', () => {
    expect(run.stderr).toBe('');
    const okLines = run.stdout.split('\n').filter((l) => l.startsWith('[OK]')).length;
    expect(okLines).toBeGreaterThan(manifests.length);
  });

  test('every finding is a documented exception', () => {
    const unexplained = findings.filter((f) => !EXCEPTIONS.some(([o, msg]) => o.test(f.object) && msg.test(f.message)));
    expect(unexplained.map((f) => `[${f.level}] ${f.object}: ${f.message}`)).toEqual([]);
  });

  test('every exception is still needed', () => {
    const unused = EXCEPTIONS.filter(([o, msg]) => !findings.some((f) => o.test(f.object) && msg.test(f.message)));
    expect(unused.map(([o, msg]) => `${o} ${msg}`)).toEqual([]);
  });

  test('the checker can fail: a privileged container without limits is reported', () => {
    const bad = {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bad', namespace: 'kudo' },
      spec: { containers: [{ name: 'c', image: 'busybox:1.37', securityContext: { privileged: true } }] },
    };
    const badFile = path.join(dir, 'bad.yaml');
    fs.writeFileSync(badFile, yaml.dump(bad));
    const out = spawnSync(programs().kubeScore, ['score', '--output-format', 'ci', badFile], { encoding: 'utf8' }).stdout;
    expect(out).toMatch(/\[CRITICAL\] bad\/kudo .*privileged/i);
    expect(out).toMatch(/\[CRITICAL\] bad\/kudo .*(limit|resources)/i);
  });
});
