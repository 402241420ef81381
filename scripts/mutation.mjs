// npm run test:mutation [-- <stryker options>]: Stryker against the committed baseline (docs/mutation-testing.md).
//
// The committed baseline, test/mutation/stryker-incremental.json, is copied to .build/mutation/incremental.json
// (ignored) and Stryker runs incrementally from that copy: it tests only the mutants whose code or covering tests
// changed since the baseline, reuses the rest, and writes its result to the copy. The tree is left as it was.
//
// npm run test:mutation:baseline [-- <stryker options>] does the same, then copies the result over the committed
// baseline: run it after a change to charts/ or the tests and commit the file with the change.
//
// The exit code is Stryker's: 1 when the score is below thresholds.break in stryker.config.mjs.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { fileURLToPath } from 'url';
import { survivedUntested } from './mutation-report.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

const BASELINE = path.join(root, 'test', 'mutation', 'stryker-incremental.json');
const WORKING = path.join(root, '.build', 'mutation', 'incremental.json');

const args = process.argv.slice(2);
const update = args.includes('--update-baseline');
const strykerArgs = args.filter((a) => a !== '--update-baseline');

fs.mkdirSync(path.dirname(WORKING), { recursive: true });
if (fs.existsSync(BASELINE)) fs.copyFileSync(BASELINE, WORKING);
else fs.rmSync(WORKING, { force: true });
const started = Date.now();

const stryker = path.join(root, 'node_modules', '.bin', 'stryker');
const r = spawnSync(stryker, ['run', '--incrementalFile', WORKING, ...strykerArgs], { cwd: root, stdio: 'inherit' });
if (r.error) throw r.error;

// A survivor that no test ran is no result: the run could not find the tests that cover it (as when jest's
// --findRelatedTests could not follow imports outside its roots). Reused results count too: they are in the file.
const untested = fs.existsSync(WORKING) && fs.statSync(WORKING).mtimeMs >= started ? survivedUntested(JSON.parse(fs.readFileSync(WORKING, 'utf8'))) : [];
if (untested.length > 0) {
  console.error(`test:mutation: ${untested.length} mutants "survived" with no test run, so the run measured nothing there:\n  ${untested.slice(0, 10).join('\n  ')}`);
  process.exit(2);
}

if (update) {
  // Stryker writes the incremental file whenever it finishes a run, also below the threshold: that is a measurement too.
  if (fs.existsSync(WORKING) && fs.statSync(WORKING).mtimeMs >= started) {
    fs.copyFileSync(WORKING, BASELINE);
    console.error(`test:mutation: the baseline ${path.relative(root, BASELINE)} is updated: commit it with the change it measures`);
  } else {
    console.error('test:mutation: Stryker wrote no result: the baseline is unchanged');
  }
}
process.exit(r.status ?? 1);
