/**
 * The render command as users run it (the bundled main.ts in a child
 * process): deterministic output, env-file secrets kept out of dist/, and
 * bad input rejected without touching dist/.
 */
import { execFile, execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Testing } from 'cdk8s';
import * as yaml from 'js-yaml';
import { loadConfig } from '../charts/config';
import { charts } from './util';

const ROOT = path.resolve(__dirname, '..');
const MAIN = path.join(ROOT, '.build', 'main.js');
/**
 * The environment of every render: PATH only, plus Stryker's active mutant when one is set (mutation testing of
 * main.ts, which runs here in the child: docs/mutation-testing.md, "The rest, estimated from a sample").
 */
const CHILD_ENV: Record<string, string | undefined> = {
  PATH: process.env.PATH,
  ...(process.env.__STRYKER_ACTIVE_MUTANT__ === undefined ? {} : { __STRYKER_ACTIVE_MUTANT__: process.env.__STRYKER_ACTIVE_MUTANT__ }),
};

type Render = { status: number | null; stderr: string; outdir: string; cwd: string };
/** Two renders of the defaults, made side by side before the tests; the tests only read them (or copy them). */
let first: Render;
let second: Render;

// A bundle and two renders: about a second here, more than jest's 5 s on a loaded machine or under Stryker.
beforeAll(async () => {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')]);
  [first, second] = await Promise.all([renderInBackground(), renderInBackground()]);
}, 60_000);

function render(env: Record<string, string> = {}, cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-render-'))) {
  const outdir = path.join(cwd, 'dist');
  const r = spawnSync(process.execPath, [MAIN], {
    cwd,
    env: { ...CHILD_ENV, CDK8S_OUTDIR: outdir, ...env },
    encoding: 'utf8',
  });
  return { status: r.status, stderr: r.stderr, outdir, cwd };
}

/** The same as render(), without blocking. */
function renderInBackground(env: Record<string, string> = {}, cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-render-'))): Promise<Render> {
  return renderAsync(env, cwd).then((r) => ({ ...r, outdir: path.join(cwd, 'dist'), cwd }));
}

/** A folder as a render of the defaults leaves it (a copy of the first one), for a test to change. */
function earlierRender(): { outdir: string; cwd: string } {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-render-'));
  fs.cpSync(first.outdir, path.join(cwd, 'dist'), { recursive: true });
  return { outdir: path.join(cwd, 'dist'), cwd };
}

/** The same as render(), without blocking: the bad-input cases run side by side. */
function renderAsync(env: Record<string, string>, cwd: string): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN], { cwd, env: { ...CHILD_ENV, CDK8S_OUTDIR: path.join(cwd, 'dist'), ...env } }, (err, _out, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
    });
  });
}

function readTree(dir: string): Record<string, string> {
  return Object.fromEntries(
    fs
      .readdirSync(dir)
      .sort()
      .map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]),
  );
}

function write(content: string, name = 'kudo.yaml'): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-input-')), name);
  fs.writeFileSync(file, content);
  return file;
}

test('two renders are byte-identical', () => {
  const [a, b] = [first, second];
  expect(b.status).toBe(0);
  expect(a.status).toBe(0);
  expect(readTree(a.outdir)).toEqual(readTree(b.outdir));
  expect(Object.keys(readTree(a.outdir))).toContain('00-namespaces.k8s.yaml');
});

test('the committed dist/ is what the code renders (it is the default shape, reviewed in every diff)', () => {
  const r = first;
  expect(r.status).toBe(0);
  expect(readTree(r.outdir)).toEqual(readTree(path.join(ROOT, 'dist')));
});

test('a render into an existing dist/ replaces it in place: files no longer rendered are removed, nothing else is left', () => {
  const earlier = earlierRender();
  fs.writeFileSync(path.join(earlier.outdir, '99-dropped.k8s.yaml'), 'kind: ConfigMap\n');
  const again = render({}, earlier.cwd);
  expect(again.status).toBe(0);
  expect(fs.existsSync(path.join(again.outdir, '99-dropped.k8s.yaml'))).toBe(false);
  expect(readTree(again.outdir)).toEqual(readTree(path.join(ROOT, 'dist')));
  expect(fs.readdirSync(earlier.cwd).sort()).toEqual(['dist']);
});

describe('an output folder holding anything a render did not write is refused: exit 2, the first such name, nothing removed', () => {
  /** Every path under dir (folders end in /) with its content. */
  const snapshot = (dir: string): Record<string, string> =>
    Object.fromEntries(
      (fs.readdirSync(dir, { recursive: true }) as string[]).sort().map((f) => {
        const p = path.join(dir, f);
        return [fs.statSync(p).isDirectory() ? `${f}/` : f, fs.statSync(p).isDirectory() ? '' : fs.readFileSync(p, 'utf8')];
      }),
    );
  const cases: [string, (dir: string) => void, string][] = [
    ['a notes file', (d) => fs.writeFileSync(path.join(d, 'notes.txt'), "the operator's notes\n"), 'notes.txt'],
    [
      'a sub-folder',
      (d) => {
        fs.mkdirSync(path.join(d, 'drafts'));
        fs.writeFileSync(path.join(d, 'drafts', 'a.yaml'), 'kind: ConfigMap\n');
      },
      'drafts',
    ],
    [
      'a .git',
      (d) => {
        fs.mkdirSync(path.join(d, '.git'));
        fs.writeFileSync(path.join(d, '.git', 'HEAD'), 'ref: refs/heads/main\n');
      },
      '.git',
    ],
  ];
  test.each(cases)('%s beside an earlier render', (_, add, name) => {
    const earlier = earlierRender();
    add(earlier.outdir);
    const before = snapshot(earlier.outdir);
    const again = render({}, earlier.cwd);
    expect([again.status, again.stderr]).toEqual([2, expect.stringContaining(`"${name}"`)]);
    expect(again.stderr).toMatch(/^kudo: /);
    expect(snapshot(earlier.outdir)).toEqual(before);
    expect(fs.readdirSync(earlier.cwd)).toEqual(['dist']);
  });

  test("a folder of the operator's own, never rendered into", () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-render-'));
    fs.mkdirSync(path.join(cwd, 'dist'));
    fs.writeFileSync(path.join(cwd, 'dist', 'notes.txt'), 'mine\n');
    const r = render({}, cwd);
    expect([r.status, r.stderr]).toEqual([2, expect.stringContaining('"notes.txt"')]);
    expect(snapshot(r.outdir)).toEqual({ 'notes.txt': 'mine\n' });
  });

  test('an empty folder is rendered into', () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-render-'));
    fs.mkdirSync(path.join(cwd, 'dist'));
    const r = render({}, cwd);
    expect(r.status).toBe(0);
    expect(readTree(r.outdir)).toEqual(readTree(first.outdir));
  });
});

test('an output folder whose parent does not exist: a clear error (exit 2), nothing created', () => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-render-'));
  const outdir = path.join(cwd, 'no-such-folder', 'dist');
  const r = render({ CDK8S_OUTDIR: outdir }, cwd);
  expect([r.status, r.stderr]).toEqual([2, `kudo: CDK8S_OUTDIR=${outdir}: its parent folder ${path.dirname(outdir)} does not exist\n`]);
  expect(fs.readdirSync(cwd)).toEqual([]);
});

test('a render says on stderr what it wrote, in one line', () => {
  const r = first;
  const files = fs.readdirSync(r.outdir).filter((f) => f.endsWith('.k8s.yaml')).length;
  expect(r.stderr).toBe(
    `kudo: wrote ${files} manifest files to ${r.outdir} for example.com (Matrix matrix.example.com, LiveKit livekit.example.com, TURN turn.example.com; profile small)\n`,
  );
});

test('the bundle (defaults resolved when it was built) renders what the charts render in-process', () => {
  const r = first;
  for (const [id, chart] of charts()) {
    const file = path.join(r.outdir, `${id}.k8s.yaml`);
    expect([id, yaml.loadAll(fs.readFileSync(file, 'utf8'))]).toEqual([id, Testing.synth(chart)]);
  }
});

test("with a config file, checked by zod (the bundle's copy, loaded only for a config file), the bundle renders what the charts render in-process", () => {
  // Production (workers, router) with monitoring: the benchmark's config (npm run bench).
  const file = path.join(ROOT, 'test', 'fixtures', 'company.yaml');
  const loaded = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-loaded-')), 'modules');
  const preload = path.join(path.dirname(loaded), 'preload.js');
  fs.writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(loaded)}, Object.keys(require.cache).join('\\n')));\n`);
  const r = render({ KUDO_CONFIG: file, NODE_OPTIONS: `--require ${preload}` });
  expect([r.status, r.stderr]).toEqual([0, expect.stringContaining('profile production')]);
  for (const [id, chart] of charts(loadConfig(file))) {
    const rendered = path.join(r.outdir, `${id}.k8s.yaml`);
    expect([id, yaml.loadAll(fs.readFileSync(rendered, 'utf8'))]).toEqual([id, Testing.synth(chart)]);
  }
  const modules = fs.readFileSync(loaded, 'utf8').split('\n');
  expect(modules).toContain(MAIN);
  expect(modules.filter((m) => /zod/.test(m))).toEqual([path.join(ROOT, '.build', 'zod.js')]);
});

test('a Kustomization lists every rendered file, so `kubectl apply -k` applies what `-f` does', () => {
  const r = first;
  const files = fs
    .readdirSync(r.outdir)
    .filter((f) => f.endsWith('.k8s.yaml'))
    .sort();
  // No .yaml extension: `kubectl apply -f dist/` must not pick it up.
  const k = fs.readFileSync(path.join(r.outdir, 'Kustomization'), 'utf8');
  expect(fs.readdirSync(r.outdir).filter((f) => /\.(ya?ml|json)$/.test(f))).toEqual(files);
  expect(k).toContain('kind: Kustomization');
  expect(
    k
      .split('\n')
      .filter((l) => l.startsWith('  - '))
      .map((l) => l.slice(4)),
  ).toEqual(files);
});

test('an env file adds git-ignored Secrets and leaves dist/ byte-identical', () => {
  const plain = first;
  const env = write('MATRIX_DB_PASSWORD=from-compose\nTURN_SECRET=turn-from-compose\n', '.env');
  const withEnv = render({ KUDO_ENV_FILE: env, SOME_OTHER_VAR: 'x' });
  expect(withEnv.status).toBe(0);
  expect(readTree(withEnv.outdir)).toEqual(readTree(plain.outdir));
  const secrets = fs.readFileSync(path.join(withEnv.cwd, 'secrets.local', 'kudo-secrets.yaml'), 'utf8');
  expect(secrets).toContain('password: from-compose');
  expect(secrets).toContain('Never commit this file');
  expect(fs.statSync(path.join(withEnv.cwd, 'secrets.local', 'kudo-secrets.yaml')).mode & 0o077).toBe(0);
  for (const text of Object.values(readTree(withEnv.outdir))) expect(text).not.toContain('from-compose');
  expect(fs.readFileSync(path.join(ROOT, '.gitignore'), 'utf8')).toMatch(/^secrets\.local\/$/m);
});

describe('bad input: clear error, non-zero exit, dist/ untouched', () => {
  const cases: [string, () => Record<string, string>, RegExp][] = [
    ['malformed YAML', () => ({ KUDO_CONFIG: write('domain: [x\n') }), /malformed YAML at line 2/],
    ['unknown key', () => ({ KUDO_CONFIG: write('domian: example.org\n') }), /domian: unknown key \(did you mean "domain"\?\)/],
    ['wrong type', () => ({ KUDO_CONFIG: write('livekit:\n  replicas: two\n') }), /livekit\.replicas: expected number, found string "two"/],
    ['invalid DNS name', () => ({ KUDO_CONFIG: write('domain: exa_mple.org\n') }), /domain: must be a lowercase DNS name/],
    ['missing file', () => ({ KUDO_CONFIG: '/nonexistent/kudo.yaml' }), /cannot read the config file \(no such file\)/],
    ['bad env file', () => ({ KUDO_ENV_FILE: write('not an assignment\n', '.env') }), /\.env:1: expected KEY=VALUE/],
    ['env value no program could read', () => ({ KUDO_ENV_FILE: write('LIVEKIT_API_KEY=APIx\n', '.env') }), /LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be given together/],
    ['unterminated quote in the env file', () => ({ KUDO_ENV_FILE: write('MATRIX_DB_PASSWORD="s3cret\n', '.env') }), /\.env:1: unterminated "-quoted value of MATRIX_DB_PASSWORD/],
    ['empty config file', () => ({ KUDO_CONFIG: write('# only a comment\n') }), /kudo\.yaml is empty/],
    ['missing env file', () => ({ KUDO_ENV_FILE: '/nonexistent/.env' }), /KUDO_ENV_FILE=\/nonexistent\/\.env: cannot read it/],
  ];

  let rendered: Record<string, string>;
  beforeAll(() => {
    rendered = readTree(first.outdir);
  });

  test.concurrent.each(cases)('%s', async (_, env, message) => {
    // Each case gets its own copy of a good render to spoil.
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-render-'));
    fs.cpSync(first.outdir, path.join(cwd, 'dist'), { recursive: true });
    const good = { cwd, outdir: path.join(cwd, 'dist') };
    const before = rendered;
    const bad = await renderAsync(env(), good.cwd);
    // One exit code for every kind of bad input.
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(message);
    expect(bad.stderr).toMatch(/^kudo: /);
    expect(bad.stderr).not.toMatch(/^\s+at /m);
    expect(readTree(good.outdir)).toEqual(before);
    expect(fs.existsSync(path.join(good.cwd, 'secrets.local'))).toBe(false);
    // No staging folder left behind.
    expect(fs.readdirSync(good.cwd).filter((f) => f.startsWith('.dist-render-'))).toEqual([]);
  });
});

describe('environments: every environments/<name>.yaml rendered to rendered/<name>, and checked for freshness', () => {
  const STAGING = 'domain: staging.chat.example.org\n';
  const PRODUCTION = [
    'domain: chat.example.org',
    'profile: production',
    'networkPolicies:',
    '  nodeCidrs: [10.0.0.0/16]',
    'backup:',
    '  s3: { enabled: true, repository: "s3:https://s3.example.org/kudo-backups/production" }',
    'argocd:',
    '  enabled: true',
    '  repoURL: https://git.example.org/ops/kudo-ops.git',
    '  path: rendered/production',
    '',
  ].join('\n');

  /** An operator's repository: environments/ with the given configs. */
  function repo(configs: Record<string, string>): string {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-envs-'));
    fs.mkdirSync(path.join(cwd, 'environments'));
    for (const [name, text] of Object.entries(configs)) fs.writeFileSync(path.join(cwd, 'environments', name), text);
    return cwd;
  }
  const run = (cwd: string, ...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { cwd, env: CHILD_ENV, encoding: 'utf8' });

  test('each environment renders what a single render of its config makes, into its own folder', () => {
    const cwd = repo({ 'staging.yaml': STAGING, 'production.yaml': PRODUCTION });
    const r = run(cwd, '--environments', 'environments');
    expect([r.status, r.stderr]).toEqual([0, expect.stringContaining('kudo: production: environments/production.yaml -> rendered/production')]);
    expect(fs.readdirSync(path.join(cwd, 'rendered')).sort()).toEqual(['production', 'staging']);
    for (const name of ['staging', 'production']) {
      const single = render({ KUDO_CONFIG: path.join(cwd, 'environments', `${name}.yaml`) });
      expect([name, readTree(path.join(cwd, 'rendered', name))]).toEqual([name, readTree(single.outdir)]);
    }
    // Production's Application syncs production's folder.
    const app = yaml.load(fs.readFileSync(path.join(cwd, 'rendered', 'production', '90-argocd.k8s.yaml'), 'utf8')) as any;
    expect(app.spec.source).toMatchObject({ repoURL: 'https://git.example.org/ops/kudo-ops.git', path: 'rendered/production' });
    expect(fs.readdirSync(cwd).sort()).toEqual(['environments', 'rendered']);
  });

  test('--check passes on fresh renders, and names a stale one and a folder without a config (exit 1, nothing written)', () => {
    const cwd = repo({ 'staging.yaml': STAGING, 'production.yaml': PRODUCTION });
    expect(run(cwd, '--environments', 'environments').status).toBe(0);
    const fresh = run(cwd, '--environments', 'environments', '--check');
    expect([fresh.status, fresh.stderr]).toEqual([0, 'kudo: 2 environment render(s) in rendered are fresh (production, staging)\n']);
    // The operator edits staging's config and forgets to render; an old environment's folder lingers.
    fs.writeFileSync(path.join(cwd, 'environments', 'staging.yaml'), `${STAGING}livekit:\n  replicas: 2\n`);
    fs.mkdirSync(path.join(cwd, 'rendered', 'qa'));
    const before = readTree(path.join(cwd, 'rendered', 'staging'));
    const stale = run(cwd, '--environments', 'environments', '--check');
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain('  - staging (rendered/staging): render it again');
    expect(stale.stderr).toContain('  - rendered/qa has no environments/qa.yaml');
    expect(stale.stderr).not.toContain('production (');
    expect(readTree(path.join(cwd, 'rendered', 'staging'))).toEqual(before);
  });

  test.each([
    [
      "an Application that would sync another environment's folder",
      { 'staging.yaml': STAGING, 'production.yaml': PRODUCTION.replace('path: rendered/production', 'path: rendered/staging') },
      'environments/production.yaml: argocd.path is "rendered/staging"; this environment renders to "rendered/production", which its Application must sync',
    ],
    [
      'two Applications of one name (each sync would overwrite the other)',
      {
        'staging.yaml': PRODUCTION.replace('domain: chat.example.org', 'domain: staging.chat.example.org').replace('rendered/production', 'rendered/staging'),
        'production.yaml': PRODUCTION,
      },
      "environments/staging.yaml: its Argo CD Application argocd/kudo is also environments/production.yaml's; give each environment its own argocd.applicationName",
    ],
    [
      'two Applications deploying into the same namespaces',
      {
        'staging.yaml': PRODUCTION.replace('domain: chat.example.org', 'domain: staging.chat.example.org')
          .replace('rendered/production', 'rendered/staging')
          .replace('  enabled: true', '  enabled: true\n  applicationName: kudo-staging'),
        'production.yaml': PRODUCTION,
      },
      'environments/staging.yaml: namespace "kudo" (namespaces.stack) is also environments/production.yaml\'s; environments synced by Argo CD need namespaces of their own (or, on separate clusters, separate --environments folders)',
    ],
    [
      'two Applications that both render one cluster-wide object (the ClusterIssuer: each sync would take it over)',
      {
        'staging.yaml': PRODUCTION.replace('domain: chat.example.org', 'domain: staging.chat.example.org')
          .replace('rendered/production', 'rendered/staging')
          .replace('  enabled: true', '  enabled: true\n  applicationName: kudo-staging')
          .concat('namespaces: { stack: kudo-staging, hostNetwork: kudo-staging-media, app: kudo-staging-app }\n'),
        'production.yaml': PRODUCTION,
      },
      'environments/staging.yaml: ClusterIssuer kudo-letsencrypt is also rendered by environments/production.yaml; give each environment its own tls.issuer.name, or set tls.letsEncrypt.create: false in all but one',
    ],
    ['one bad config among good ones', { 'staging.yaml': STAGING, 'production.yaml': 'domian: chat.example.org\n' }, 'domian: unknown key'],
    ['a file name that cannot be a folder name', { 'Prod_1.yaml': STAGING }, "environments/Prod_1.yaml: the file name is the environment's name and folder"],
    ['no configs at all', {}, '--environments environments: no environment configs (<name>.yaml) in it'],
  ])('refused: %s (exit 2, every folder as it was)', (_, configs, message) => {
    const cwd = repo(configs);
    fs.mkdirSync(path.join(cwd, 'rendered', 'staging'), { recursive: true });
    fs.writeFileSync(path.join(cwd, 'rendered', 'staging', 'old.k8s.yaml'), 'kind: ConfigMap\n');
    const r = run(cwd, '--environments', 'environments');
    expect([r.status, r.stderr]).toEqual([2, expect.stringContaining(message)]);
    expect(readTree(path.join(cwd, 'rendered', 'staging'))).toEqual({ 'old.k8s.yaml': 'kind: ConfigMap\n' });
    expect(fs.readdirSync(path.join(cwd, 'rendered'))).toEqual(['staging']);
  });

  test("an environment's folder holding anything a render did not write is refused (exit 2, naming it, nothing written or removed)", () => {
    const cwd = repo({ 'staging.yaml': STAGING, 'production.yaml': PRODUCTION });
    expect(run(cwd, '--environments', 'environments').status).toBe(0);
    fs.writeFileSync(path.join(cwd, 'rendered', 'production', 'notes.txt'), 'mine\n');
    fs.writeFileSync(path.join(cwd, 'environments', 'staging.yaml'), `${STAGING}livekit:\n  replicas: 2\n`);
    const before = { staging: readTree(path.join(cwd, 'rendered', 'staging')), production: readTree(path.join(cwd, 'rendered', 'production')) };
    const r = run(cwd, '--environments', 'environments');
    expect([r.status, r.stderr]).toEqual([2, expect.stringContaining('rendered/production holds "notes.txt", which no render wrote')]);
    expect({ staging: readTree(path.join(cwd, 'rendered', 'staging')), production: readTree(path.join(cwd, 'rendered', 'production')) }).toEqual(before);
  });

  test('unknown arguments get the usage (exit 2)', () => {
    const r = run(repo({}), '--environment', 'environments');
    expect([r.status, r.stderr]).toEqual([2, expect.stringContaining('unknown argument "--environment"\nusage: kudo-render')]);
  });
});

describe("inputs the other tests do not reach (a sample of main.ts's mutants survived them)", () => {
  test('without CDK8S_OUTDIR a render goes to dist/ in the working folder', () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-render-'));
    const r = spawnSync(process.execPath, [MAIN], { cwd, env: CHILD_ENV, encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([0, expect.stringContaining(`kudo: wrote 13 manifest files to ${path.join(fs.realpathSync(cwd), 'dist')} for example.com`)]);
    expect(readTree(path.join(cwd, 'dist'))).toEqual(readTree(path.join(ROOT, 'dist')));
  });

  test('an output path that is a file is refused (exit 2), the file untouched', () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-render-'));
    fs.writeFileSync(path.join(cwd, 'dist'), 'not a folder\n');
    const r = render({}, cwd);
    expect([r.status, r.stderr.trim()]).toEqual([2, `kudo: CDK8S_OUTDIR=${path.join(cwd, 'dist')}: is not a folder`]);
    expect(fs.readFileSync(path.join(cwd, 'dist'), 'utf8')).toBe('not a folder\n');
  });

  test('the Secrets file begins with its warning, in a folder only its owner can open', () => {
    const r = render({ KUDO_ENV_FILE: write('TURN_SECRET=turn-from-compose\n', '.env') });
    expect(r.status).toBe(0);
    const secrets = fs.readFileSync(path.join(r.cwd, 'secrets.local', 'kudo-secrets.yaml'), 'utf8');
    expect(secrets.split('\n').slice(0, 3)).toEqual([
      '# SECRET VALUES. Generated by `npm run synth` from KUDO_ENV_FILE / KUDO_SIGNING_KEY_FILE.',
      '# Never commit this file. Apply it after dist/00-namespaces.k8s.yaml and before the rest of dist/.',
      'apiVersion: v1',
    ]);
    expect(fs.statSync(path.join(r.cwd, 'secrets.local')).mode & 0o777).toBe(0o700);
  });

  test.each([
    [
      'a signing key file that does not exist',
      () => ({ KUDO_SIGNING_KEY_FILE: '/nonexistent/signing.key' }),
      'kudo: KUDO_SIGNING_KEY_FILE=/nonexistent/signing.key: cannot read it (no such file)',
    ],
    [
      'an env file that is a folder',
      () => ({ KUDO_ENV_FILE: fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-env-dir-')) }),
      (env: Record<string, string>) => `kudo: KUDO_ENV_FILE=${env.KUDO_ENV_FILE}: cannot read it (EISDIR)`,
    ],
    [
      'an env file with none of the variables kudo reads',
      () => ({ KUDO_ENV_FILE: write('UNRELATED=1\n', '.env') }),
      (env: Record<string, string>) => `kudo: ${env.KUDO_ENV_FILE}: holds none of the variables kudo reads (see docs/operations.md, "Moving from docker-compose")`,
    ],
  ])('%s is refused by name (exit 2, nothing written)', (_, makeEnv, message) => {
    const env = makeEnv() as Record<string, string>;
    const r = render(env);
    expect([r.status, r.stderr.trim()]).toEqual([2, typeof message === 'string' ? message : message(env)]);
    expect(fs.readdirSync(r.cwd)).toEqual([]);
  });

  test('environments: a .yml config counts as one, and --out may come before --environments', () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-envs-'));
    fs.mkdirSync(path.join(cwd, 'configs'));
    fs.writeFileSync(path.join(cwd, 'configs', 'qa.yml'), 'domain: qa.example.org\n');
    const r = spawnSync(process.execPath, [MAIN, '--out', 'manifests', '--environments', 'configs'], { cwd, env: CHILD_ENV, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(fs.readdirSync(cwd).sort()).toEqual(['configs', 'manifests']);
    expect(fs.readdirSync(path.join(cwd, 'manifests'))).toEqual(['qa']);
    expect(fs.readFileSync(path.join(cwd, 'manifests', 'qa', '20-synapse.k8s.yaml'), 'utf8')).toContain('matrix.qa.example.org');
  });
});
