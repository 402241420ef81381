// `npm run build:lib` (and `npm pack`, through prepack): compiles the charts,
// the imports and main.ts to lib/ with type declarations, for the package's
// users (charts/index.ts is its entry, main.ts its kudo-render command), and
// copies the files the charts read at render time (charts/files) beside them.
// The compiler options are tsconfig.json's, with emit on.
import * as fs from 'fs';
import * as path from 'path';
import { fileURLToPath } from 'url';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = path.join(root, 'lib');

const parsed = ts.getParsedCommandLineOfConfigFile(path.join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
const options = {
  ...parsed.options,
  noEmit: false,
  incremental: false,
  tsBuildInfoFile: undefined,
  declaration: true,
  outDir: out,
  rootDir: root,
  types: ['node'],
};
fs.rmSync(out, { recursive: true, force: true });
const program = ts.createProgram([path.join(root, 'charts', 'index.ts'), path.join(root, 'main.ts')], options);
const result = program.emit();
const problems = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics];
if (problems.length > 0) {
  process.stderr.write(ts.formatDiagnostics(problems, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' }));
  process.exit(1);
}
fs.cpSync(path.join(root, 'charts', 'files'), path.join(out, 'charts', 'files'), { recursive: true });
fs.chmodSync(path.join(out, 'main.js'), 0o755);
process.stderr.write(`kudo: built the package's lib/ (${path.relative(root, out)})\n`);
