// `npm run synth` and cdk8s.yaml's app: make sure the bundle is current,
// then render in this same process (one Node.js start, not two).
import { createRequire } from 'module';
import { BUNDLE, ensureBundle } from './build.mjs';

await ensureBundle();
createRequire(import.meta.url)(BUNDLE);
