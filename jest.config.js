/** Unit tests: fast, no programs started. The real-program tests are test/e2e (npm run test:e2e), the simulated cluster test/cluster (npm run test:cluster). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/e2e/', '<rootDir>/test/cluster/'],
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  // Jest's default leaves one core idle: on a 2-core machine that means one worker.
  maxWorkers: '100%',
};
