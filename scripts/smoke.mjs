// npm run smoke -- --context NAME [--namespace kudo]: runs the smoke-test
// Job in the cluster, prints its report and exits with its outcome.
import { execFileSync, spawnSync } from 'child_process';

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
const kubectl = (...a) => ['--context', context, '--namespace', opt('namespace', 'kudo'), ...a];
const job = `smoke-test-${Date.now().toString(36)}`;
execFileSync('kubectl', kubectl('create', 'job', job, '--from=cronjob/smoke-test'), { stdio: 'inherit' });
// Done when it completes or fails, whichever comes first.
const wait = spawnSync('kubectl', kubectl('wait', `job/${job}`, '--for=jsonpath={.status.conditions[0].status}=True', '--timeout=300s'), { stdio: 'ignore' });
spawnSync('kubectl', kubectl('logs', `job/${job}`), { stdio: 'inherit' });
const succeeded = execFileSync('kubectl', kubectl('get', `job/${job}`, '-o', 'jsonpath={.status.succeeded}'), { encoding: 'utf8' }).trim();
process.exit(wait.status === 0 && succeeded === '1' ? 0 : 1);
