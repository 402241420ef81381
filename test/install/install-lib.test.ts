import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/**
 * test/e2e/install-lib.sh, sourced by every install script: the env file it writes must name
 * the script that wrote it however that script was started (a relative path, from another
 * folder) and after the script has changed directory, as every cold build does. A cold
 * `npm run test:cluster` once stopped here with "realpath: ... No such file or directory".
 */
const ROOT = path.resolve(__dirname, '../..');

describe('install-lib.sh write_env_file', () => {
  let tmp: string;
  let dir: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-install-lib-'));
    // In the repository's ignored build folder: tests running beside this one list the repository's other files.
    fs.mkdirSync(path.join(ROOT, '.build'), { recursive: true });
    dir = fs.mkdtempSync(path.join(ROOT, '.build', 'install-lib-test-'));
  });
  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A throwaway install script that sources install-lib.sh and changes to `cdTo` before it writes its env file. */
  const fakeScript = (cdTo: string): string => {
    const script = path.join(dir, 'fake-install.sh');
    fs.writeFileSync(
      script,
      [
        'set -euo pipefail',
        `CACHE=${JSON.stringify(path.join(tmp, 'cache'))}`,
        'LOG_PREFIX=fake',
        `. ${JSON.stringify(path.join(ROOT, 'test/e2e/install-lib.sh'))}`,
        'install_begin .fake.lock',
        `cd ${cdTo}`,
        'write_env_file fake-env.sh "a fake program" KUDO_FAKE=/opt/fake',
      ].join('\n'),
    );
    return script;
  };
  const envFile = () => fs.readFileSync(path.join(tmp, 'cache', 'fake-env.sh'), 'utf8');

  it('names its script after the script changed directory, started by a relative path from the repository root', () => {
    // Started the way npm starts install-cluster.sh: by a path relative to the repository root, from there.
    const relative = path.relative(ROOT, fakeScript('"$WORK"'));
    execFileSync('bash', [relative], { cwd: ROOT, stdio: 'pipe' });
    expect(envFile()).toBe(`# Written by ${relative}; source it to find a fake program.\nexport KUDO_FAKE='/opt/fake'\n`);
  });

  it('names its script when started from another folder', () => {
    const cwd = fs.mkdtempSync(path.join(tmp, 'elsewhere-'));
    const script = fakeScript('/');
    execFileSync('bash', [path.relative(cwd, script)], { cwd, stdio: 'pipe' });
    expect(envFile().split('\n')[0]).toBe(`# Written by ${path.relative(ROOT, script)}; source it to find a fake program.`);
  });
});

describe('every install script', () => {
  const scripts = ['test/e2e', 'test/cluster']
    .flatMap((d) =>
      fs
        .readdirSync(path.join(ROOT, d))
        .filter((f) => /^install-.*\.sh$/.test(f))
        .map((f) => `${d}/${f}`),
    )
    .filter((f) => !f.endsWith('-lib.sh'));

  it('finds the scripts', () => {
    expect(scripts).toEqual(expect.arrayContaining(['test/e2e/install-all.sh', 'test/e2e/install-programs.sh', 'test/cluster/install-cluster.sh']));
  });

  // Each script's lines up to where it sources install-lib.sh, run from the repository root by a relative path, as npm
  // runs them: sourcing must succeed there (install-all.sh once changed directory first, and then could not find itself).
  it.each(scripts)('%s sources install-lib.sh from the repository root by a relative path', (script) => {
    const lines = fs.readFileSync(path.join(ROOT, script), 'utf8').split('\n');
    const at = lines.findIndex((l) => /^\. .*install-lib\.sh"?$/.test(l));
    expect(at).toBeGreaterThan(0);
    const prologue = path.join(path.dirname(path.join(ROOT, script)), `.prologue-${process.pid}-${path.basename(script)}`);
    fs.writeFileSync(prologue, [...lines.slice(0, at + 1), 'printf "%s" "$INSTALL_SCRIPT"'].join('\n'));
    try {
      const out = execFileSync('bash', [path.relative(ROOT, prologue)], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe', env: { ...process.env, KUDO_E2E_CACHE: '/nonexistent' } });
      expect(out).toBe(path.relative(ROOT, prologue));
    } finally {
      fs.rmSync(prologue, { force: true });
    }
  });
});
