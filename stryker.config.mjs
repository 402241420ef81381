// Mutation testing (npm run test:mutation): see docs/mutation-testing.md.
// Stryker 9.6.1, not 10.x: 10 requires Node 22 and this project (and its CI) runs on Node 20.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'jest',
  jest: {
    projectType: 'custom',
    configFile: 'jest.config.js',
    config: {
      // Every unit-test file, with those npm test leaves out for speed (test/program-tests.js), but
      // test/self-contained.test.ts: it lists the tree with `git ls-files`, which sees nothing in the sandbox
      // (it lives in the ignored .build/); it reads no chart code, so no mutant is lost without it.
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/e2e/', '<rootDir>/test/cluster/', '<rootDir>/test/self-contained.test.ts'],
      // Stryker runs jest with --findRelatedTests <the mutated file>; jest follows imports only through the files its
      // roots hold, so with test/ alone a file no test imports directly (charts/config/schema/*.ts) had no related
      // test file, and its every mutant "survived" with no test run.
      roots: ['<rootDir>/test', '<rootDir>/charts'],
      // Run only the test files that hold the tests covering the mutant (test/mutation/sequencer.js).
      setupFilesAfterEnv: ['<rootDir>/test/mutation/setup.js'],
      testSequencer: '<rootDir>/test/mutation/sequencer.js',
      // With a mutant active, stop at the first test file that kills it (test/mutation/runner.js).
      runner: '<rootDir>/test/mutation/runner.js',
    },
  },
  coverageAnalysis: 'perTest',
  mutate: ['main.ts', 'charts/**/*.ts'],
  // The sandbox is a copy of the project: leave out what no unit test reads.
  ignorePatterns: ['.build', 'lib', 'coverage', 'reports', 'secrets.local', '.dist-render-*', '*.tgz', 'test/e2e/.cache', 'test/mutation/stryker-incremental.json'],
  tempDirName: '.build/stryker-tmp',
  cleanTempDir: 'always',
  incremental: true,
  // npm run test:mutation copies the committed baseline (test/mutation/stryker-incremental.json) here first,
  // so a run never rewrites a tracked file; npm run test:mutation:baseline copies the result back.
  incrementalFile: '.build/mutation/incremental.json',
  reporters: ['clear-text', 'progress-append-only', 'json', 'html'],
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: false },
  jsonReporter: { fileName: '.build/mutation/report.json' },
  htmlReporter: { fileName: '.build/mutation/report.html' },
  thresholds: { high: 90, low: 85, break: 85 },
  concurrency: 1,
  timeoutMS: 10000,
};
