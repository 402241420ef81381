/**
 * One temporary folder per e2e run, holding every test's files and logs;
 * removed at the end unless KUDO_E2E_KEEP=1 (then its path is printed).
 */
const fs = require('fs');
const os = require('os');
const path = require('path');

module.exports.setup = async () => {
  process.env.KUDO_E2E_TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-e2e-'));
};

module.exports.teardown = async () => {
  const root = process.env.KUDO_E2E_TMP;
  if (!root) return;
  if (process.env.KUDO_E2E_KEEP === '1') {
    process.stderr.write(`kept e2e files in ${root}\n`);
    return;
  }
  fs.rmSync(root, { recursive: true, force: true });
};
