// npm run smoke -- --context NAME [--namespace kudo]: runs the smoke-test
// Job in the cluster, prints its report and exits with its outcome (0 all
// passed, 1 a check failed, 2 the test could not be run at all).
import { spawnSync } from 'child_process';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const context = opt('context');
if (!context) {
  console.error('usage: npm run smoke -- --context KUBE_CONTEXT [--namespace kudo]');
  process.exit(2);
}
const namespace = opt('namespace', 'kudo');

/** Runs kubectl; a failure to start the test is one line on stderr and exit 2. */
function kubectl(a, { check = true, stdio = 'pipe' } = {}) {
  const r = spawnSync('kubectl', ['--context', context, '--namespace', namespace, ...a], { encoding: 'utf8', stdio });
  if (r.error?.code === 'ENOENT') fail('npm run smoke needs kubectl on the PATH');
  if (r.error) fail(`kubectl: ${r.error.message}`);
  if (check && r.status !== 0) {
    const reason =
      (r.stderr ?? '')
        .split('\n')
        .map((l) => l.replace(/^error: /, '').trim())
        .find((l) => l !== '') ?? `kubectl exited ${r.status}`;
    fail(`cannot start the smoke test in context "${context}": ${reason}`);
  }
  return r;
}

function fail(message) {
  process.stderr.write(`kudo: ${message}\n`);
  process.exit(2);
}

const job = `smoke-test-${Date.now().toString(36)}`;
kubectl(['create', 'job', job, '--from=cronjob/smoke-test']);
// Done when it completes or fails, whichever comes first.
const wait = kubectl(['wait', `job/${job}`, '--for=jsonpath={.status.conditions[0].status}=True', '--timeout=300s'], { check: false });
kubectl(['logs', `job/${job}`], { check: false, stdio: 'inherit' });
const succeeded = kubectl(['get', `job/${job}`, '-o', 'jsonpath={.status.succeeded}']).stdout.trim();
process.exit(wait.status === 0 && succeeded === '1' ? 0 : 1);
