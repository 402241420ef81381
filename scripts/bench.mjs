// npm run bench: how long rendering takes next to its floor, a Node.js
// process that only loads cdk8s and cdk8s-plus-28.
//
//   floor                  node -e "require('cdk8s'); require('cdk8s-plus-28')"
//   render                 node .build/main.js, with a config file (the bundle, in one process)
//   npm run synth          what users run (npm + bundle check + render), with the config file
//   render, defaults       node .build/main.js with no config (the embedded defaults, resolved at build time)
//   cdk8s synth            the cdk8s CLI with cdk8s.yaml's app, with the config file
//   npm test               type-check and unit tests (once; BENCH_TESTS=0 skips)
//
// The config file is test/fixtures/company.yaml: a company's domain, a
// separate server name, the production profile (Synapse workers and their
// router) and monitoring (ServiceMonitors, alerts, dashboards), so a render
// parses YAML, checks the config and builds the larger stack, as operators'
// renders do. BENCH_CONFIG names another.
//
// The runs are interleaved so that a noisy neighbour slows all alike; the
// median of BENCH_RUNS (default 25) is reported with the peak resident
// memory (GNU time, where installed), and the load average before and after,
// to tell a quiet machine from a busy one. Figures, not assertions: nothing fails.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fileURLToPath } from 'url';
import { ensureBundle } from './build.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const runs = Number(process.env.BENCH_RUNS ?? 25);
const config = path.resolve(root, process.env.BENCH_CONFIG ?? 'test/fixtures/company.yaml');
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-bench-'));
const gnuTime = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const base = { ...process.env, CDK8S_OUTDIR: path.join(out, 'dist'), CDK8S_CHECK_UPGRADE: 'false' };
delete base.KUDO_CONFIG;
const withConfig = { ...base, KUDO_CONFIG: config };

const commands = {
  floor: [base, process.execPath, '-e', "require('cdk8s'); require('cdk8s-plus-28')"],
  render: [withConfig, process.execPath, '.build/main.js'],
  'npm run synth': [withConfig, 'npm', 'run', '-s', 'synth'],
  'render, defaults': [base, process.execPath, '.build/main.js'],
  'cdk8s synth': [withConfig, path.join(root, 'node_modules', '.bin', 'cdk8s'), 'synth', '--output', path.join(out, 'cli')],
};

/** Wall seconds and peak RSS (MiB, or undefined) of one run. */
function measure([env, ...argv]) {
  const full = gnuTime ? [gnuTime, '-f', '%M', ...argv] : argv;
  const start = process.hrtime.bigint();
  const r = spawnSync(full[0], full.slice(1), { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed:\n${r.stderr}`);
  const kb = gnuTime ? Number(r.stderr.trim().split('\n').pop()) : NaN;
  return { seconds, mib: Number.isFinite(kb) ? kb / 1024 : undefined };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

await ensureBundle();
const loadBefore = load();
const samples = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
for (let i = 0; i < runs; i++) {
  for (const [name, command] of Object.entries(commands)) samples[name].push(measure(command));
}
const loadAfter = load();

const floor = median(samples.floor.map((s) => s.seconds));
const rows = Object.entries(samples).map(([name, s]) => {
  const t = median(s.map((x) => x.seconds));
  const mib = s[0].mib === undefined ? 'n/a' : `${Math.max(...s.map((x) => x.mib)).toFixed(0)} MiB`;
  return [name, `${(t * 1000).toFixed(0)} ms`, `${(t / floor).toFixed(2)}x`, mib];
});
if (process.env.BENCH_TESTS !== '0') {
  const start = process.hrtime.bigint();
  execFileSync('npm', ['test', '--silent'], { cwd: root, stdio: 'ignore' });
  const t = Number(process.hrtime.bigint() - start) / 1e9;
  rows.push(['npm test', `${(t * 1000).toFixed(0)} ms`, `${(t / floor).toFixed(2)}x`, 'n/a']);
}

console.log(`median of ${runs} interleaved runs on ${os.cpus().length} cores, ${os.cpus()[0].model.trim()}, Node.js ${process.version}`);
console.log(`config file ${path.relative(root, config)}; load average (1, 5, 15 min) ${loadBefore} before, ${loadAfter} after`);
const widths = [16, 10, 8, 10];
const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ');
console.log(line(['', 'median', 'x floor', 'peak RSS']));
for (const r of rows) console.log(line(r));
fs.rmSync(out, { recursive: true, force: true });
