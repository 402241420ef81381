// `npm run render:matrix -- OUT`: renders the default config and every config of the test matrix (test/matrix.ts:
// the named set-ups and the all-pairs rows) into OUT/<name>/, each with the built bundle (.build/main.js) exactly as
// `npm run synth` and KUDO_CONFIG render it. A refactoring that must not change the output renders before and after
// and compares: `diff -r before after` prints nothing when every render is byte-identical. OUT/configs/ keeps the
// config file of each render, so a difference can be reproduced with KUDO_CONFIG.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as os from 'os';
import * as path from 'path';
import { fileURLToPath } from 'url';
import { BUNDLE, ensureBundle } from './build.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = process.argv[2];
if (out === undefined || process.argv.length > 3) {
  process.stderr.write('usage: npm run render:matrix -- OUT   (OUT must not exist yet, or be an earlier render of this script)\n');
  process.exit(2);
}
const outdir = path.resolve(out);
if (fs.existsSync(outdir)) {
  if (!fs.existsSync(path.join(outdir, 'configs'))) {
    process.stderr.write(`${outdir} exists and is not an earlier render of this script; choose another folder\n`);
    process.exit(2);
  }
  fs.rmSync(outdir, { recursive: true });
}

await ensureBundle();
// test/matrix.ts imports nothing: compiled on its own, it gives the very configs the unit tier renders.
const { build } = await import('esbuild');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-matrix-'));
try {
  const compiled = path.join(tmp, 'matrix.js');
  await build({ absWorkingDir: root, entryPoints: ['test/matrix.ts'], outfile: compiled, bundle: true, platform: 'node', format: 'cjs', logLevel: 'warning' });
  const renders = createRequire(import.meta.url)(compiled).matrix();

  // A folder name per render: its position (the matrix's order is fixed) and its name, in file-name letters.
  const slug = (s) =>
    s
      .toLowerCase()
      .replace(/[^a-z0-9=]+/g, '-')
      .replace(/^-|-$/g, '');
  const jobs = [{ dir: '00-embedded-defaults', config: undefined }];
  renders.forEach((r, i) => jobs.push({ dir: `${String(i + 1).padStart(2, '0')}-${slug(r.name)}`.slice(0, 120), config: r.config }));

  fs.mkdirSync(path.join(outdir, 'configs'), { recursive: true });
  for (const job of jobs) {
    const env = { ...process.env, CDK8S_OUTDIR: path.join(outdir, job.dir) };
    delete env.KUDO_CONFIG;
    delete env.KUDO_ENV_FILE;
    delete env.KUDO_SIGNING_KEY_FILE;
    if (job.config !== undefined) {
      // JSON is YAML: the config file says exactly what the matrix merged.
      env.KUDO_CONFIG = path.join(outdir, 'configs', `${job.dir}.yaml`);
      fs.writeFileSync(env.KUDO_CONFIG, `${JSON.stringify(job.config, null, 2)}\n`);
    }
    try {
      execFileSync(process.execPath, [BUNDLE], { cwd: tmp, env, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      process.stderr.write(`render-matrix: ${job.dir} failed:\n${e.stderr}`);
      process.exit(1);
    }
  }
  process.stderr.write(`render-matrix: ${jobs.length} renders (the embedded defaults and ${renders.length} of test/matrix.ts) in ${outdir}\n`);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
