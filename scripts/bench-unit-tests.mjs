// npm run bench:test: how long `npm test` (type-check and unit tests) takes, the figure issue 29 holds at 20 s on
// a 2-core machine, and `npm run test:programs` (the unit tests that start the project's programs) beside it.
//
// One run of each first (it fills jest's transform cache and tsc's build info, as a developer's machine has them),
// then BENCH_RUNS (default 5) interleaved runs of each; the median, the fastest and the slowest are reported with the
// load average before and after, to tell a quiet machine from a busy one. Figures, not assertions: a run that fails
// stops the benchmark (a failing suite's time means nothing), nothing else does.
import { spawnSync } from 'child_process';
import * as os from 'os';
import { fileURLToPath } from 'url';

const root = fileURLToPath(new URL('..', import.meta.url));
const runs = Number(process.env.BENCH_RUNS ?? 5);
const commands = { 'npm test': ['test'], 'npm run test:programs': ['run', 'test:programs'] };

function seconds(args) {
  const start = process.hrtime.bigint();
  const r = spawnSync('npm', ['--silent', ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed:\n${r.stderr}`);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

for (const args of Object.values(commands)) seconds(args);
const loadBefore = load();
const samples = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
for (let i = 0; i < runs; i++) for (const [name, args] of Object.entries(commands)) samples[name].push(seconds(args));
const loadAfter = load();

console.log(`${runs} interleaved runs after a warm-up, on ${os.cpus().length} cores, ${os.cpus()[0].model.trim()}, Node.js ${process.version}`);
console.log(`load average (1, 5, 15 min) ${loadBefore} before, ${loadAfter} after`);
for (const [name, xs] of Object.entries(samples)) {
  const sorted = [...xs].sort((a, b) => a - b);
  const s = (x) => `${x.toFixed(1)} s`;
  console.log(`${name.padEnd(22)} median ${s(sorted[Math.floor(sorted.length / 2)])}  fastest ${s(sorted[0])}  slowest ${s(sorted.at(-1))}`);
}
