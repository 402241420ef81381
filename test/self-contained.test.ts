/**
 * A clone of the repository alone builds and passes its tests: nothing reads
 * a folder beside it. The pinned CRDs (crds/) and schemas (schemas/) that
 * `npm run import`, the schema tests and the API-server tests read are in
 * the repository, each listed in its folder's README.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';

const ROOT = path.resolve(__dirname, '..');

/** Tracked files plus new ones not yet added (not the ignored ones), as a clone would have them once committed. */
const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
  .split('\0')
  .filter((f) => f !== '' && fs.existsSync(path.join(ROOT, f)));
const tracked = new Set(files);

/** A file's text, or '' for one that another test removed since the listing (jest runs test files side by side). */
function text(f: string): string {
  try {
    return fs.readFileSync(path.join(ROOT, f), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

// A path out of the repository into a sibling folder named shared: as text,
// or as path segments of path.resolve/join.
const SIBLING = /\.\.[/\\]shared\b|['"]\.\.['"],\s*(?:['"]\.\.['"],\s*)?['"]shared['"]/;

test('no file outside Markdown reads the folder beside the repository', () => {
  const offenders = files
    .filter((f) => !f.endsWith('.md'))
    .flatMap((f) =>
      text(f)
        .split('\n')
        .flatMap((line, i) => (SIBLING.test(line) ? [`${f}:${i + 1}: ${line.trim()}`] : [])),
    );
  expect(offenders).toEqual([]);
});

test('the pattern catches both spellings (it can fail)', () => {
  // Built from pieces, so this file holds no such path itself.
  const name = ['sha', 'red'].join('');
  expect(SIBLING.test(`  - ../${name}/crds/x.yaml`)).toBe(true);
  expect(SIBLING.test(`path.resolve(ROOT, '..', '${name}')`)).toBe(true);
  expect(SIBLING.test(`path.resolve(__dirname, '..', '..', '${name}')`)).toBe(true);
  expect(SIBLING.test('crds/cert-manager/certificates.yaml')).toBe(false);
});

test('every CRD file cdk8s.yaml imports is in the repository', () => {
  const imports = (yaml.load(fs.readFileSync(path.join(ROOT, 'cdk8s.yaml'), 'utf8')) as { imports: string[] }).imports.map((i) => i.replace(/^.*=/, ''));
  expect(imports.length).toBeGreaterThan(0);
  expect(imports.filter((f) => !f.startsWith('crds/') || !tracked.has(f))).toEqual([]);
});

test.each(['crds', 'schemas'])('every file in %s/ is listed in its README with where it comes from', (dir) => {
  const readme = fs.readFileSync(path.join(ROOT, dir, 'README.md'), 'utf8');
  const data = files.filter((f) => f.startsWith(`${dir}/`) && f !== `${dir}/README.md`);
  expect(data.length).toBeGreaterThan(0);
  expect(data.filter((f) => !readme.includes(`\`${f.slice(dir.length + 1)}\``))).toEqual([]);
});
