// npm test: the type-check (tsc --noEmit) and the unit tests (jest --ci) side by side rather than one after the
// other. The type-check is one process on one core, about 3 s, mostly parsing imports/; jest keeps both cores busy
// until its last files, so run together they finish sooner (npm run bench:test measures it; CONTRIBUTING.md,
// "Performance"). Arguments go to jest, as they did when the script was `tsc --noEmit && jest --ci`.
//
// jest writes to the terminal as it runs; the type-check's messages are held and written after jest's, so the two
// never interleave. The exit status is jest's when jest fails, otherwise the type-check's: either failing fails the
// command, each with its own messages.
import { spawn } from 'child_process';
import { fileURLToPath } from 'url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => `${root}node_modules/.bin/${name}`;

/** Runs a command to its end; resolves to its exit status (a signal counts as a failure, named). */
function run(command, args, stdio) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio });
    const output = [];
    for (const stream of [child.stdout, child.stderr]) stream?.on('data', (chunk) => output.push(chunk));
    child.on('error', (err) => resolve({ status: 1, output: [Buffer.from(`${command}: ${err.message}\n`)] }));
    child.on('close', (status, signal) => resolve({ status: status ?? 1, signal, output }));
  });
}

const typeCheck = run(bin('tsc'), ['--noEmit'], ['ignore', 'pipe', 'pipe']);
const jest = await run(bin('jest'), ['--ci', ...process.argv.slice(2)], 'inherit');
const tsc = await typeCheck;

if (tsc.status !== 0) {
  process.stderr.write(Buffer.concat(tsc.output));
  process.stderr.write(`\nnpm test: the type-check (tsc --noEmit) failed${tsc.signal ? ` (${tsc.signal})` : ''}; its messages are above\n`);
}
process.exitCode = jest.status !== 0 ? jest.status : tsc.status;
