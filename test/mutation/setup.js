// Mutation testing only (stryker.config.mjs runs it before each test file).
const fs = require('fs');
const path = require('path');

// test/util.ts: configs and renders made outside a test are made again in each test that reads them.
process.env.KUDO_MUTATION = '1';

const mutant = process.env.__STRYKER_ACTIVE_MUTANT__;
if (!mutant) {
  // Stryker's first run (no mutant active): note which file each test is in, so that
  // test/mutation/sequencer.js loads only the files of the tests that cover a mutant.
  const file = path.join(__dirname, '..', '..', '.build', 'mutation-tests.jsonl');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  beforeEach(() => {
    const { currentTestName, testPath } = expect.getState();
    fs.appendFileSync(file, `${JSON.stringify([currentTestName, testPath])}\n`);
  });
  // The config schema is built once per test file (charts/config/index.ts): build it again in each test that uses it,
  // so that each such test covers the schema's lines, not only the file's first.
  beforeEach(() => require('../../charts/config').forgetConfigSchema());
} else {
  // A mutant is killed by its first failing test: the file's later tests fail at once, without running, instead
  // of rendering for nothing (jest-circus has no way to skip a test once the file runs). Their failure says so.
  let killed = false;
  afterEach(() => {
    const running = globalThis[Symbol.for('JEST_STATE_SYMBOL')]?.currentlyRunningTest;
    if (running && running.errors.length > 0) killed = true;
  });
  beforeEach(() => {
    if (killed) throw new Error(`not run: mutant ${mutant} was already killed by an earlier test in this file`);
  });
}
