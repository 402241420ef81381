// npm run test:mutation:sample [-- --lines N --seed S --files a.ts,b.ts]: the mutation score of files too large to
// measure whole on this machine, estimated from a random sample of their lines; see
// docs/mutation-testing.md, "The rest, estimated from a sample".
//
// Every line of the files that can hold a mutant (not blank, not a comment, not an import) is equally likely to be
// drawn; Stryker then mutates exactly the drawn lines. Each mutant is in the sample as likely as any other, so the
// sample's share of detected mutants estimates the files' score; the 95 % interval treats each line as one draw
// (a line's mutants are not independent: one test often kills them all). Static mutants are tested as Stryker
// tests them, with every test and the mutant active from the start: code that runs when a module loads (a table
// of constants) is often also covered by tests, and with "ignoreStatic" Stryker would test such a mutant with
// those tests only, switched on after the module loaded, so it would survive though the tests check its value.
//
// The default files are the charts the committed baseline does not hold (test/mutation/stryker-incremental.json).
// main.ts is sampled on its own (--files main.ts): its tests (test/main.test.ts) run it as the bundle in a child
// process, where Stryker's per-test coverage cannot see it (nor jest's related-test search: it imports no
// main.ts), so each of its mutants is tested with that file's tests, the mutant switched on in the child through
// the environment.
//
// Nothing is reused or written outside .build/mutation/sample-<seed>/. Run it in a clean clone of a commit: its
// figures are that commit's. Bad options end it with a message and exit 2, before Stryker starts.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { fileURLToPath } from 'url';
import { survivedUntested } from './mutation-report.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

/** This script's options; the others are Stryker's (e.g. --concurrency 2). */
const OWN = ['--lines', '--seed', '--files'];

function fail(message) {
  console.error(`test:mutation:sample: ${message}`);
  process.exit(2);
}

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = process.argv[i + 1];
  if (value === undefined || value.startsWith('--')) fail(`--${name} needs a value`);
  return value;
}

const lineCount = Number(option('lines', '150'));
const seed = Number(option('seed', '1'));
if (!Number.isInteger(lineCount) || lineCount < 2) fail(`--lines: "${option('lines')}" is not a whole number of at least 2`);
if (!Number.isInteger(seed)) fail(`--seed: "${option('seed')}" is not a whole number`);

function defaultFiles() {
  const baseline = path.join(root, 'test', 'mutation', 'stryker-incremental.json');
  const measured = new Set(fs.existsSync(baseline) ? Object.keys(JSON.parse(fs.readFileSync(baseline, 'utf8')).files) : []);
  const charts = fs
    .readdirSync(path.join(root, 'charts'), { recursive: true })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join('charts', f));
  return charts.filter((f) => !measured.has(f)).sort();
}

const files = option('files', undefined)?.split(',') ?? defaultFiles();
for (const f of files) if (!fs.existsSync(path.join(root, f))) fail(`--files: ${f} does not exist`);
const cli = files.includes('main.ts');
if (cli && files.length > 1) fail('--files: sample main.ts on its own (--files main.ts): its tests run it in a child process');

/** The lines of a file that can hold a mutant, 1-based. */
function candidateLines(file) {
  const lines = fs.readFileSync(path.join(root, file), 'utf8').split('\n');
  let inComment = false;
  const out = [];
  lines.forEach((text, i) => {
    const t = text.trim();
    if (inComment) {
      if (t.includes('*/')) inComment = false;
      return;
    }
    if (t.startsWith('/*')) {
      inComment = !t.includes('*/');
      return;
    }
    if (t === '' || t.startsWith('//') || /^import\b/.test(t) || /^[{}()[\];,]*$/.test(t)) return;
    out.push(i + 1);
  });
  return out;
}

// A small seeded generator (mulberry32), so a sample can be drawn again.
function random(s) {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const population = files.flatMap((file) => candidateLines(file).map((line) => ({ file, line })));
if (population.length < lineCount) fail(`--lines ${lineCount}: the files have only ${population.length} lines that can hold a mutant`);
const next = random(seed);
const pool = [...population];
for (let i = 0; i < lineCount; i++) {
  const j = i + Math.floor(next() * (pool.length - i));
  [pool[i], pool[j]] = [pool[j], pool[i]];
}
const sample = pool.slice(0, lineCount).sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);

const out = path.join(root, '.build', 'mutation', `sample-${seed}`);
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const report = path.join(out, 'report.json');
// The project's Stryker config with the drawn lines and the result kept in `out`; a sample has no threshold to
// break.
const config = path.join(out, 'stryker.config.mjs');
fs.writeFileSync(
  config,
  `import base from ${JSON.stringify(path.join(root, 'stryker.config.mjs'))};
export default {
  ...base,
  mutate: ${JSON.stringify(sample.map((s) => `${s.file}:${s.line}-${s.line}`))},${
    cli
      ? `
  coverageAnalysis: 'off',
  jest: { ...base.jest, enableFindRelatedTests: false, config: { ...base.jest.config, testMatch: ['<rootDir>/test/main.test.ts'] } },`
      : ''
  }
  incrementalFile: ${JSON.stringify(path.join(out, 'incremental.json'))},
  reporters: ['json', 'progress-append-only'],
  jsonReporter: { fileName: ${JSON.stringify(report)} },
  thresholds: { ...base.thresholds, break: null },
};
`,
);
console.error(`test:mutation:sample: ${lineCount} of ${population.length} lines of ${files.length} files, seed ${seed}`);
const stryker = path.join(root, 'node_modules', '.bin', 'stryker');
const passThrough = process.argv.slice(2).filter((a, i, all) => !OWN.includes(a) && !OWN.includes(all[i - 1]));
const started = Date.now();
const r = spawnSync(stryker, ['run', config, ...passThrough], { cwd: root, stdio: 'inherit' });
if (r.error) throw r.error;
if (!fs.existsSync(report)) throw new Error(`Stryker wrote no report (exit ${r.status})`);

const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);
const byLine = new Map(sample.map((s) => [`${s.file}:${s.line}`, { detected: 0, undetected: 0 }]));
const counts = {};
const survivors = [];
for (const [file, { mutants }] of Object.entries(JSON.parse(fs.readFileSync(report, 'utf8')).files)) {
  for (const m of mutants) {
    counts[m.status] = (counts[m.status] ?? 0) + 1;
    const entry = byLine.get(`${file}:${m.location.start.line}`);
    if (!entry) continue;
    if (DETECTED.has(m.status)) entry.detected++;
    if (UNDETECTED.has(m.status)) {
      entry.undetected++;
      survivors.push(`${file}:${m.location.start.line} ${m.mutatorName} ${m.status}: ${JSON.stringify(m.replacement ?? '')}`);
    }
  }
}

// A survivor that no test ran is no result (see scripts/mutation.mjs): stop rather than print an estimate of nothing.
const untested = survivedUntested(JSON.parse(fs.readFileSync(report, 'utf8')));
if (untested.length > 0) {
  console.error(`test:mutation:sample: ${untested.length} mutants "survived" with no test run, so the run measured nothing there:\n  ${untested.slice(0, 10).join('\n  ')}`);
  process.exit(2);
}

// The ratio estimator over lines and its standard error (each line one draw of a cluster of mutants).
const lines = [...byLine.values()];
const k = lines.map((l) => l.detected);
const m = lines.map((l) => l.detected + l.undetected);
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const score = sum(k) / sum(m);
const meanM = sum(m) / lines.length;
const variance = sum(lines.map((_, i) => (k[i] - score * m[i]) ** 2)) / (lines.length * (lines.length - 1) * meanM ** 2);
const half = 1.96 * Math.sqrt(variance);
const pct = (x) => `${(100 * x).toFixed(1)} %`;

console.log(`\nsample of ${lineCount} lines (seed ${seed}) out of ${population.length} in ${files.length} files, ${((Date.now() - started) / 60000).toFixed(1)} min`);
console.log(
  `mutants by status: ${Object.entries(counts)
    .map(([s, n]) => `${s} ${n}`)
    .join(', ')}`,
);
console.log(`estimated score ${pct(score)} (95 % interval ${pct(Math.max(0, score - half))} to ${pct(Math.min(1, score + half))}), from ${sum(k)} detected of ${sum(m)}`);
console.log(`survivors and mutants without coverage (${survivors.length}):`);
for (const s of survivors) console.log(`  ${s}`);
