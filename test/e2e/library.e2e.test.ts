/**
 * The project as a package, the way an operator's repository uses it: the
 * tarball `npm pack` makes (only the built library and its files in it),
 * installed into a repository built from nothing with docs/operations.md's own
 * commands, rendering each environment exactly as `npm run synth` renders the
 * same config here; and the construct library in a cdk8s app of its own,
 * type-checked against the package's declarations.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { ROOT, tempDir } from './harness';

const MAIN = path.join(ROOT, '.build', 'main.js');

let work: string;
let tarball: string;
let repo: string;

/** The operator-repository commands of docs/operations.md, as written there. */
function readmeCommands(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
  const block = /<!-- operator-repository:start -->\n```sh\n([\s\S]*?)```\n<!-- operator-repository:end -->/.exec(readme);
  if (!block) throw new Error('docs/operations.md has no operator-repository block');
  return block[1];
}

function readTree(dir: string): Record<string, string> {
  return Object.fromEntries(
    fs
      .readdirSync(dir)
      .sort()
      .map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]),
  );
}

beforeAll(() => {
  work = tempDir('library');
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')]);
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  tarball = path.join(work, packed[0].filename);
  // The lines of docs/operations.md, run by bash from an empty folder, with the package from the tarball.
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', readmeCommands()], {
    cwd: work,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, KUDO_PACKAGE: tarball, npm_config_fund: 'false', npm_config_audit: 'false' },
  });
  if (r.status !== 0) throw new Error(`the operator-repository commands of docs/operations.md failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  repo = path.join(work, 'kudo-ops');
}, 300_000);

test('the tarball holds the built library, its declarations and the files the charts read; no sources, tests or build state', () => {
  const files: string[] = JSON.parse(
    execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
  )[0].files.map((f: any) => f.path);
  expect(files).toEqual(
    expect.arrayContaining([
      'package.json',
      'README.md',
      'lib/charts/index.js',
      'lib/charts/index.d.ts',
      'lib/main.js',
      'lib/charts/files/generate_secrets.py',
      'lib/imports/argoproj.io.js',
    ]),
  );
  expect(files.filter((f) => !(f.startsWith('lib/') || ['package.json', 'README.md'].includes(f)))).toEqual([]);
  expect(files.filter((f) => /\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
  expect(files.filter((f) => /(^|\/)test\/|tsbuildinfo|\.build\//.test(f))).toEqual([]);
});

test('the operator repository: each environment renders what `npm run synth` renders for the same config', () => {
  expect(fs.readdirSync(path.join(repo, 'rendered')).sort()).toEqual(['production', 'staging']);
  for (const name of ['staging', 'production']) {
    const out = path.join(work, `synth-${name}`);
    execFileSync(process.execPath, [MAIN], { env: { PATH: process.env.PATH, KUDO_CONFIG: path.join(repo, 'environments', `${name}.yaml`), CDK8S_OUTDIR: out }, stdio: 'pipe' });
    expect([name, readTree(path.join(repo, 'rendered', name))]).toEqual([name, readTree(out)]);
  }
  // Both environments are synced by one Argo CD into one cluster: no object of one is also the other's.
  const ids = (name: string) =>
    fs
      .readdirSync(path.join(repo, 'rendered', name))
      .filter((f) => f.endsWith('.yaml'))
      .flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(repo, 'rendered', name, f), 'utf8')) as any[])
      .map((o) => `${o.kind} ${o.metadata.namespace ?? '-'}/${o.metadata.name}`);
  const [staging, production] = [ids('staging'), ids('production')];
  expect(staging.filter((o) => o.startsWith('Application '))).toEqual(['Application argocd/kudo-staging']);
  expect(production.filter((o) => o.startsWith('Application '))).toEqual(['Application argocd/kudo-production']);
  expect(staging.filter((o) => production.includes(o))).toEqual([]);
  // The commands committed the render, and their last line (the CI check) passed on it.
  expect(execFileSync('git', ['status', '--porcelain'], { cwd: repo, encoding: 'utf8' })).toBe('');
  // ...and nothing npm installed: the .gitignore came before the first commit.
  const committed = execFileSync('git', ['ls-files'], { cwd: repo, encoding: 'utf8' })
    .split('\n')
    .filter((f) => f !== '');
  expect(committed.filter((f) => !/^(rendered|environments)\//.test(f))).toEqual(['.gitignore', 'package-lock.json', 'package.json']);
  const manifest = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
  expect(manifest.dependencies['kudo-infra']).toMatch(/^file:/);
});

test('a cdk8s app of its own composes KudoStack from the package and gets the same objects', () => {
  const app = [
    "const fs = require('fs');",
    "const { App } = require('cdk8s');",
    "const yaml = require('js-yaml');",
    "const { KudoStack, resolveConfig } = require('kudo-infra');",
    "const app = new App({ outdir: 'cdk8s.out' });",
    "new KudoStack(app, 'kudo', { config: resolveConfig(yaml.load(fs.readFileSync('environments/production.yaml', 'utf8'))) });",
    'app.synth();',
  ].join('\n');
  fs.writeFileSync(path.join(repo, 'app.js'), app);
  execFileSync(process.execPath, ['app.js'], { cwd: repo, stdio: 'pipe' });
  const objects = (dir: string) =>
    fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.yaml'))
      .flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(dir, f), 'utf8')))
      .map((o) => JSON.stringify(o))
      .sort();
  const ours = objects(path.join(repo, 'rendered', 'production'));
  expect(ours.length).toBeGreaterThan(50);
  expect(objects(path.join(repo, 'cdk8s.out'))).toEqual(ours);
});

test('the declarations type-check an app written in TypeScript, and reject a misspelt config key', () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const check = (source: string) => {
    fs.writeFileSync(path.join(repo, 'main.ts'), source);
    return spawnSync(
      process.execPath,
      [
        tsc,
        '--noEmit',
        '--strict',
        '--module',
        'commonjs',
        '--target',
        'ES2022',
        '--moduleResolution',
        'node',
        '--esModuleInterop',
        '--skipLibCheck',
        '--types',
        'node',
        '--typeRoots',
        path.join(ROOT, 'node_modules', '@types'),
        'main.ts',
      ],
      { cwd: repo, encoding: 'utf8' },
    );
  };
  const good = [
    "import { App } from 'cdk8s';",
    "import { KudoConfigInput, KudoStack, PostgresChart, resolveConfig } from 'kudo-infra';",
    'const app = new App();',
    "const stack = new KudoStack(app, 'kudo', { config: resolveConfig({ domain: 'chat.example.org', profile: 'production', backup: { s3: { enabled: true, repository: 's3:https://s3.example.org/kudo-backups' } }, networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } } satisfies KudoConfigInput) });",
    'const postgres: typeof PostgresChart = PostgresChart;',
    'console.log(stack.config.hosts.matrix, postgres.name);',
  ].join('\n');
  const ok = check(good);
  expect([ok.status, ok.stdout]).toEqual([0, '']);
  const bad = check(good.replace("domain: 'chat.example.org'", "domian: 'chat.example.org'"));
  expect(bad.status).not.toBe(0);
  expect(bad.stdout).toContain("'domian' does not exist in type");
});
