// Bundles main.ts and charts/ into .build/main.js (dependencies stay in
// node_modules). Type-checking is `npm run typecheck`'s job, not the render's.
import { buildSync } from 'esbuild';
import { fileURLToPath } from 'url';

const root = fileURLToPath(new URL('..', import.meta.url));
buildSync({
  absWorkingDir: root,
  entryPoints: ['main.ts'],
  outfile: '.build/main.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'inline',
  logLevel: 'warning',
});
