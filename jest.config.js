/**
 * Unit tests: fast, no programs started but the pods' own shell scripts. The few files that start the project's
 * programs are npm run test:programs (test/program-tests.js); the real-program tests are test/e2e (npm run
 * test:e2e), the simulated cluster test/cluster (npm run test:cluster).
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/e2e/', '<rootDir>/test/cluster/', ...require('./test/program-tests.js')],
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  // Jest's default leaves one core idle: on a 2-core machine that means one worker.
  maxWorkers: '100%',
};
