// Mutation testing only (stryker.config.mjs). Jest's own runner, except that with a mutant active it stops at the
// first test file with a failing test: the mutant is killed, and the files after it would only cost time (each
// loads cdk8s and every chart). Jest's `bail` cannot do this under Stryker: it ends the process.
const TestRunner = require('jest-runner').default;

class StopAtFirstKill extends TestRunner {
  async runTests(tests, watcher, options) {
    if (!process.env.__STRYKER_ACTIVE_MUTANT__ || !options.serial) return super.runTests(tests, watcher, options);
    let killed = false;
    this.on('test-file-success', ([, result]) => {
      if (result.numFailingTests > 0) killed = true;
    });
    this.on('test-file-failure', () => {
      killed = true;
    });
    for (const test of tests) {
      if (killed) break;
      await super.runTests([test], watcher, options);
    }
  }
}

module.exports = StopAtFirstKill;
