// Bundles main.ts, charts/ and imports/ (with js-yaml) into .build/main.js,
// and the operator tools in scripts/*.ts beside it, for `node` to run
// without a TypeScript loader; zod goes to .build/zod.js (see ZOD).
// Type-checking is `npm test`'s job, not the render's. cdk8s, cdk8s-plus-28
// and constructs stay external: they must be the very modules the charts'
// base classes come from, and they are what the performance floor loads.
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';
import { fileURLToPath } from 'url';

const root = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE = path.join(root, '.build', 'main.js');
// zod is loaded only to check a config file: it is bundled on its own, so a render of the embedded
// defaults does not compile its megabyte.
const ZOD = path.join(root, '.build', 'zod.js');
const zodApart = { name: 'zod-apart', setup: (b) => b.onResolve({ filter: /^zod$/ }, () => ({ path: './zod.js', external: true })) };
// This file too: the bundle is what it makes of the sources.
const SOURCES = ['main.ts', 'charts', 'imports', 'scripts', 'scripts/build.mjs'];
const ENTRIES = { main: 'main.ts', checklist: 'scripts/checklist.ts', diagram: 'scripts/diagram.ts' };

function newestSource(p = root, names = SOURCES) {
  let newest = 0;
  for (const name of names) {
    const file = path.join(p, name);
    const st = fs.statSync(file);
    newest = Math.max(
      newest,
      st.isDirectory()
        ? newestSource(
            file,
            // charts/config/schema/ and the like: sub-folders count too.
            fs.readdirSync(file).filter((f) => f.endsWith('.ts') || fs.statSync(path.join(file, f)).isDirectory()),
          )
        : st.mtimeMs,
    );
  }
  return newest;
}

/** Rebuilds the bundle when a source is newer than it (the bundle is ~50 ms to make, but esbuild costs ~100 ms to start). */
export async function ensureBundle() {
  const built = fs.existsSync(BUNDLE) && fs.existsSync(ZOD) ? fs.statSync(BUNDLE).mtimeMs : 0;
  if (built > newestSource()) return;
  const { build } = await import('esbuild');
  const common = { absWorkingDir: root, bundle: true, platform: 'node', target: 'node20', logLevel: 'warning' };
  // The embedded defaults, resolved once here, so the default render loads no schema library.
  const probe = path.join(path.dirname(BUNDLE), 'config-probe.js');
  await build({ ...common, entryPoints: ['charts/config/index.ts'], outfile: probe });
  const config = createRequire(import.meta.url)(probe);
  const defaults = config.resolveConfig({}, 'embedded defaults');
  fs.rmSync(probe);
  await build({
    ...common,
    entryPoints: ENTRIES,
    outdir: path.dirname(BUNDLE),
    external: ['cdk8s', 'cdk8s-plus-28', 'constructs'],
    plugins: [zodApart],
    define: { __KUDO_DEFAULT_CONFIG__: JSON.stringify(defaults) },
    // Every render compiles the bundle: without blanks and comments that is a quarter less text for V8 to
    // scan (about 10 ms a render). Names are kept; `node --enable-source-maps` maps stack traces to the sources.
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: true,
  });
  await build({ ...common, entryPoints: ['zod'], outfile: ZOD });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await ensureBundle();
