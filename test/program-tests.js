/**
 * The unit-test files that start the project's own programs as processes: the render command (the bundle, about
 * 30 runs), the secret generator against an API stand-in, and the smoke test (both Python). They are a third of the
 * unit tests' time, so `npm test` leaves them out and `npm run test:programs` runs them (jest.config.js,
 * test/programs.jest.config.js); CI runs both, and mutation testing (stryker.config.mjs) runs them with the others.
 */
module.exports = ['main', 'generate-secrets', 'smoke'].map((name) => `<rootDir>/test/${name}.test.ts`);
