// Capacity per profile: the real programs started from the rendered manifests
// (the e2e harness), each held to its container's CPU and memory limits in
// cgroup v1 groups, under load from real clients (matrix-nio, LiveKit's Go
// SDK, turnutils_uclient). See scripts/capacity/run.ts. Not part of CI.
//
//   npm run bench:capacity                 # everything, about 20 minutes
//   npm run bench:capacity -- --quick      # two steps of each, a few minutes
//   options: --profiles small,production   --parts chat,turn,calls   --out docs/capacity.md
//            --livekit-modes host,pod   (calls: LiveKit on the host network, and off it behind its NodePort
//                                        Service's DNAT, livekit.hostNetwork false; both by default, side by side)
//
// Needs root (cgroups, network namespaces) and test/e2e/install-programs.sh
// first; installs its own clients (scripts/capacity/install.sh).
import { execFileSync } from 'child_process';
import { build } from 'esbuild';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as os from 'os';
import * as path from 'path';
import { fileURLToPath } from 'url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const value = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const quick = args.includes('--quick');
const profiles = value('--profiles', 'small,production').split(',');
const parts = value('--parts', 'chat,turn,calls').split(',');
const livekitModes = value('--livekit-modes', 'host,pod').split(',');
for (const [option, given, allowed] of [
  ['--profiles', profiles, ['small', 'production']],
  ['--parts', parts, ['chat', 'turn', 'calls']],
  ['--livekit-modes', livekitModes, ['host', 'pod']],
]) {
  const bad = given.filter((x) => !allowed.includes(x));
  if (bad.length || given.length === 0) {
    process.stderr.write(`bench:capacity: ${option} ${given.join(',')}: ${bad.join(', ') || 'empty'} is not one of ${allowed.join(', ')}\n`);
    process.exit(2);
  }
}
const out = path.resolve(root, value('--out', quick ? '.build/capacity-quick.md' : 'docs/capacity.md'));

const env = Object.fromEntries(
  execFileSync('bash', [path.join(root, 'scripts/capacity/install.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .map((l) => l.split('=')),
);

// The harness and the benchmark, bundled beside the app's bundle (charts read charts/files relative to it).
const bundle = path.join(root, '.build', 'bench-capacity.js');
await build({
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  entryPoints: ['scripts/capacity/run.ts'],
  outfile: bundle,
  external: ['cdk8s', 'cdk8s-plus-28', 'constructs'],
});
const { main } = createRequire(import.meta.url)(bundle);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-bench-capacity-'));
let failed = false;
try {
  const json = path.join(root, '.build', quick ? 'capacity-quick.json' : 'capacity.json');
  await main({ quick, profiles, parts, livekitModes, root: tmp, venvPython: env.KUDO_BENCH_PYTHON, livekitLoad: env.KUDO_BENCH_LIVEKIT_LOAD, out, json });
} catch (e) {
  failed = true;
  process.stderr.write(`${e.stack ?? e}\n`);
} finally {
  if (process.env.KUDO_E2E_KEEP === '1') process.stderr.write(`kept ${tmp}\n`);
  else fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
