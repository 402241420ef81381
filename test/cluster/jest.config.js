/**
 * Simulated-cluster tests: the rendered manifests applied to a real API
 * server, controller-manager and scheduler with kwok's fake nodes, and synced
 * by Argo CD's engine. Install the programs first: test/e2e/install-apiserver.sh
 * and test/cluster/install-cluster.sh (npm run test:cluster does both).
 */
module.exports = {
  rootDir: '../..',
  testEnvironment: 'node',
  roots: ['<rootDir>/test/cluster'],
  testMatch: ['**/*.cluster.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  testTimeout: 300_000,
  // One temporary folder per run for every cluster's files and logs (KUDO_E2E_KEEP=1 keeps it).
  globalSetup: '<rootDir>/test/e2e/global-setup.js',
  globalTeardown: '<rootDir>/test/e2e/global-teardown.js',
};
