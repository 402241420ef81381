// Mutation testing only (stryker.config.mjs). For each mutant Stryker runs jest with the names of the tests that
// cover it (testNamePattern), but jest still loads every related test file to find them: each load imports cdk8s
// and the charts (about 0.3 s), ten seconds a mutant. This sequencer keeps only the files that hold one of those
// tests, by the list test/mutation/setup.js made during Stryker's first run. With no list, or no name
// pattern (a mutant no single test covers), it keeps every file.
const fs = require('fs');
const path = require('path');
const Sequencer = require('@jest/test-sequencer').default;

class CoveringFilesSequencer extends Sequencer {
  constructor(options) {
    super(options);
    this.pattern = options.globalConfig.testNamePattern;
    this.list = path.join(options.globalConfig.rootDir, '.build', 'mutation-tests.jsonl');
    // Stryker runs jest with --findRelatedTests <the mutated file>.
    this.mutated = options.globalConfig.findRelatedTests ? (options.globalConfig.nonFlagArgs ?? []) : [];
  }

  sort(tests) {
    const sorted = super.sort(tests);
    if (!this.pattern || !process.env.__STRYKER_ACTIVE_MUTANT__ || !fs.existsSync(this.list)) return sorted;
    const re = new RegExp(this.pattern, 'i');
    const files = new Set();
    for (const line of fs.readFileSync(this.list, 'utf8').split('\n')) {
      if (!line) continue;
      const [name, file] = JSON.parse(line);
      if (re.test(name)) files.add(file);
    }
    if (files.size === 0) return sorted;
    // The mutated file's own test file first (charts/coturn.ts: test/coturn.test.ts): the likeliest to kill it.
    const own = new Set(this.mutated.map((f) => `${path.basename(f, '.ts')}.test.ts`));
    const kept = sorted.filter((t) => files.has(t.path));
    return [...kept.filter((t) => own.has(path.basename(t.path))), ...kept.filter((t) => !own.has(path.basename(t.path)))];
  }
}

module.exports = CoveringFilesSequencer;
