// npm run bench: how long rendering takes next to its floor, a Node.js
// process that only loads cdk8s and cdk8s-plus-28.
//
//   floor         node -e "require('cdk8s'); require('cdk8s-plus-28')"
//   render        node .build/main.js    (the bundle, in one process)
//   npm run synth what users run (npm + bundle check + render)
//   cdk8s synth   the cdk8s CLI with cdk8s.yaml's app
//   npm test      type-check and unit tests (once; BENCH_TESTS=0 skips)
//
// The runs are interleaved so that a noisy neighbour slows all alike; the
// median of BENCH_RUNS (default 25) is reported with the peak resident
// memory (GNU time, where installed). Figures, not assertions: nothing fails.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fileURLToPath } from 'url';
import { ensureBundle } from './build.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const runs = Number(process.env.BENCH_RUNS ?? 25);
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-bench-'));
const gnuTime = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const env = { ...process.env, CDK8S_OUTDIR: path.join(out, 'dist'), CDK8S_CHECK_UPGRADE: 'false' };

const commands = {
  'floor': [process.execPath, '-e', "require('cdk8s'); require('cdk8s-plus-28')"],
  'render': [process.execPath, '.build/main.js'],
  'npm run synth': ['npm', 'run', '-s', 'synth'],
  'cdk8s synth': [path.join(root, 'node_modules', '.bin', 'cdk8s'), 'synth', '--output', path.join(out, 'cli')],
};

/** Wall seconds and peak RSS (MiB, or undefined) of one run. */
function measure(argv) {
  const full = gnuTime ? [gnuTime, '-f', '%M', ...argv] : argv;
  const start = process.hrtime.bigint();
  const r = spawnSync(full[0], full.slice(1), { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed:\n${r.stderr}`);
  const kb = gnuTime ? Number(r.stderr.trim().split('\n').pop()) : NaN;
  return { seconds, mib: Number.isFinite(kb) ? kb / 1024 : undefined };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

await ensureBundle();
const samples = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
for (let i = 0; i < runs; i++) {
  for (const [name, argv] of Object.entries(commands)) samples[name].push(measure(argv));
}

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
const widths = [14, 10, 8, 10];
const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ');
console.log(line(['', 'median', 'x floor', 'peak RSS']));
for (const r of rows) console.log(line(r));
fs.rmSync(out, { recursive: true, force: true });
