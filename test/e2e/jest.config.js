/**
 * Real-program tests: PostgreSQL, Synapse, Redis, LiveKit and coturn started
 * natively on loopback with the configs taken from the rendered manifests.
 * Install the programs first: test/e2e/install-programs.sh (npm run test:e2e does).
 */
module.exports = {
  rootDir: '../..',
  testEnvironment: 'node',
  roots: ['<rootDir>/test/e2e'],
  testMatch: ['**/*.e2e.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  testTimeout: 180_000,
  globalSetup: '<rootDir>/test/e2e/global-setup.js',
  globalTeardown: '<rootDir>/test/e2e/global-teardown.js',
};
