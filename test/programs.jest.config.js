/** The unit-test files that start programs (test/program-tests.js): npm run test:programs. */
const unit = require('../jest.config.js');

module.exports = { ...unit, rootDir: '..', testPathIgnorePatterns: ['/node_modules/'], testMatch: require('./program-tests.js') };
