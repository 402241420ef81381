// Bundles main.ts, charts/ and imports/ (with zod and js-yaml) into
// .build/main.js, and the operator tools in scripts/*.ts beside it, for
// `node` to run without a TypeScript loader.
// Type-checking is `npm test`'s job, not the render's. cdk8s, cdk8s-plus-28
// and constructs stay external: they must be the very modules the charts'
// base classes come from, and they are what the performance floor loads.
import * as fs from 'fs';
import * as path from 'path';
import { fileURLToPath } from 'url';

const root = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE = path.join(root, '.build', 'main.js');
const SOURCES = ['main.ts', 'charts', 'imports', 'scripts'];
const ENTRIES = { main: 'main.ts', checklist: 'scripts/checklist.ts', diagram: 'scripts/diagram.ts' };

function newestSource(p = root, names = SOURCES) {
  let newest = 0;
  for (const name of names) {
    const file = path.join(p, name);
    const st = fs.statSync(file);
    newest = Math.max(newest, st.isDirectory() ? newestSource(file, fs.readdirSync(file).filter((f) => f.endsWith('.ts'))) : st.mtimeMs);
  }
  return newest;
}

/** Rebuilds the bundle when a source is newer than it (the bundle is ~50 ms to make, but esbuild costs ~100 ms to start). */
export async function ensureBundle() {
  const built = fs.existsSync(BUNDLE) ? fs.statSync(BUNDLE).mtimeMs : 0;
  if (built > newestSource()) return;
  const { build } = await import('esbuild');
  await build({
    absWorkingDir: root,
    entryPoints: ENTRIES,
    outdir: path.dirname(BUNDLE),
    bundle: true,
    platform: 'node',
    target: 'node20',
    external: ['cdk8s', 'cdk8s-plus-28', 'constructs'],
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await ensureBundle();
