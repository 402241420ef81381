#!/usr/bin/env node
/**
 * Renders the manifests: `npm run synth` (or `cdk8s synth`), and the
 * package's `kudo-render` command.
 *
 * KUDO_CONFIG selects a YAML config file; without it the embedded defaults
 * render a complete stack. The render goes to a temporary folder beside the
 * output and is moved in only when everything succeeded, so a bad config
 * never leaves a half-written or emptied dist/.
 *
 * KUDO_ENV_FILE (a docker-compose .env) and KUDO_SIGNING_KEY_FILE (an
 * existing Synapse signing key) add Secret manifests in secrets.local/,
 * which git ignores; dist/ is the same with or without them.
 *
 * `--environments DIR [--out DIR] [--check]` renders every DIR/<name>.yaml
 * to <out>/<name>/ (out defaults to "rendered"): all configs are checked
 * before anything is written. With --check nothing is written: it exits 1
 * naming each environment whose committed render differs from a fresh one.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { App } from 'cdk8s';
import { buildApp } from './charts/app';
import { ConfigError, KudoConfig, loadConfig } from './charts/config';
import { envFileSecrets, parseEnvFile } from './charts/migrate/env-file';
import { secretFeatures } from './charts/secrets';
import { toYaml } from './charts/render/yaml-out';

const SECRETS_DIR = 'secrets.local';

const USAGE = 'usage: kudo-render                                  (KUDO_CONFIG, CDK8S_OUTDIR: one render)\n' + '       kudo-render --environments DIR [--out DIR] [--check]';

function main(argv: string[]): void {
  if (argv.length > 0) {
    const args = parseArgs(argv);
    renderEnvironments(args.environments, args.out, args.check);
    return;
  }
  const outdir = path.resolve(process.env.CDK8S_OUTDIR ?? 'dist');
  const config = loadConfig(process.env.KUDO_CONFIG);
  // Read the env file before rendering anything, so a bad one changes nothing.
  const secrets = envSecretsDocument(config, process.env.KUDO_ENV_FILE, process.env.KUDO_SIGNING_KEY_FILE);
  if (!fs.existsSync(path.dirname(outdir))) throw new ConfigError(`CDK8S_OUTDIR=${outdir}: its parent folder ${path.dirname(outdir)} does not exist`);
  checkOutdir(outdir, `CDK8S_OUTDIR=${outdir}`);

  const staging = fs.mkdtempSync(path.join(path.dirname(outdir), `.${path.basename(outdir)}-render-`));
  let files: number;
  try {
    files = renderInto(config, staging);
    swapIn(staging, outdir);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  const h = config.hosts;
  process.stderr.write(
    `kudo: wrote ${files} manifest files to ${outdir} for ${config.serverName} ` + `(Matrix ${h.matrix}, LiveKit ${h.livekit}, TURN ${h.turn}; profile ${config.profile})\n`,
  );
  if (secrets !== undefined) {
    fs.mkdirSync(SECRETS_DIR, { recursive: true, mode: 0o700 });
    const file = path.join(SECRETS_DIR, 'kudo-secrets.yaml');
    fs.writeFileSync(`${file}.tmp`, secrets.text, { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
    process.stderr.write(`kudo: wrote ${secrets.count} Secret(s) with ${secrets.filled.join(', ')} to ${file} (git-ignored; never commit it)\n`);
  }
}

function parseArgs(argv: string[]): { environments: string; out: string; check: boolean } {
  let environments: string | undefined;
  let out = 'rendered';
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--check') check = true;
    else if ((a === '--environments' || a === '--out') && argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) {
      if (a === '--environments') environments = argv[++i];
      else out = argv[++i];
    } else {
      throw new ConfigError(`${a === '--environments' || a === '--out' ? `${a} needs a folder` : `unknown argument "${a}"`}\n${USAGE}`);
    }
  }
  if (environments === undefined) throw new ConfigError(`--environments is required with other arguments\n${USAGE}`);
  return { environments, out, check };
}

/** An environment's name: its config file's, which is also its output folder's and part of its Argo CD path. */
const ENVIRONMENT_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Every environment config of `dir`, rendered to `out`/<name>. Every config is
 * loaded and checked first, so one bad file leaves every folder as it was.
 */
function renderEnvironments(dir: string, out: string, check: boolean): void {
  let files: string[];
  try {
    files = fs
      .readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
  } catch (e) {
    throw new ConfigError(`--environments ${dir}: cannot read the folder (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (files.length === 0) throw new ConfigError(`--environments ${dir}: no environment configs (<name>.yaml) in it`);
  const outRel = path.relative(process.cwd(), path.resolve(out)) || '.';
  const envs = files.map((f) => {
    const name = f.replace(/\.ya?ml$/, '');
    const file = path.join(dir, f);
    if (!ENVIRONMENT_NAME.test(name)) throw new ConfigError(`${file}: the file name is the environment's name and folder; use lowercase letters, digits and "-"`);
    const config = loadConfig(file);
    // An Application that syncs another environment's folder would deploy the wrong config there.
    const folder = path.posix.join(outRel.split(path.sep).join('/'), name);
    if (config.argocd.enabled && config.argocd.path !== folder) {
      throw new ConfigError(`${file}: argocd.path is "${config.argocd.path}"; this environment renders to "${folder}", which its Application must sync`);
    }
    return { name, file, config, dir: path.resolve(out, name) };
  });
  const seen = new Map<string, string>();
  for (const e of envs) {
    if (seen.has(e.name)) throw new ConfigError(`${e.file} and ${seen.get(e.name)} are both environment "${e.name}"`);
    seen.set(e.name, e.file);
  }
  checkArgoApplications(envs);
  if (!check) for (const e of envs) checkOutdir(e.dir, path.join(outRel, e.name));

  fs.mkdirSync(out, { recursive: true });
  const staging = fs.mkdtempSync(path.join(path.dirname(path.resolve(out)), `.${path.basename(path.resolve(out))}-render-`));
  try {
    for (const e of envs) {
      fs.mkdirSync(path.join(staging, e.name));
      renderInto(e.config, path.join(staging, e.name));
    }
    if (check) {
      const stale = envs.filter((e) => !sameTree(path.join(staging, e.name), e.dir)).map((e) => `${e.name} (${path.join(outRel, e.name)})`);
      const orphans = fs
        .readdirSync(out)
        .filter((f) => !seen.has(f) && fs.statSync(path.join(out, f)).isDirectory())
        .map((f) => `${path.join(outRel, f)} has no environments/${f}.yaml`);
      if (stale.length + orphans.length > 0) {
        process.stderr.write(
          `kudo: the committed renders are not what the configs make:\n${[...stale.map((x) => `  - ${x}: render it again`), ...orphans.map((x) => `  - ${x}`)].join('\n')}\n` +
            `  run: kudo-render --environments ${dir} --out ${out}\n`,
        );
        process.exitCode = 1;
        return;
      }
      process.stderr.write(`kudo: ${envs.length} environment render(s) in ${outRel} are fresh (${envs.map((e) => e.name).join(', ')})\n`);
      return;
    }
    for (const e of envs) swapIn(path.join(staging, e.name), e.dir);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  for (const e of envs) {
    process.stderr.write(`kudo: ${e.name}: ${e.file} -> ${path.join(outRel, e.name)} (${e.config.serverName}, profile ${e.config.profile})\n`);
  }
}

/**
 * The environments of one folder that Argo CD syncs are taken to share an Argo CD
 * and a cluster (their Applications all target the one Argo CD runs in): two
 * Applications of one name, two that deploy into one namespace, or two that
 * render one cluster-wide object (the ClusterIssuer), would each overwrite
 * what the other syncs. Environments on separate clusters go in
 * separate folders.
 */
function checkArgoApplications(envs: readonly { file: string; config: KudoConfig }[]): void {
  const applications = new Map<string, string>();
  const namespaces = new Map<string, string>();
  for (const e of envs.filter((x) => x.config.argocd.enabled)) {
    const a = e.config.argocd;
    const application = `${a.namespace}/${a.applicationName}`;
    const other = applications.get(application);
    if (other !== undefined) {
      throw new ConfigError(`${e.file}: its Argo CD Application ${application} is also ${other}'s; give each environment its own argocd.applicationName`);
    }
    applications.set(application, e.file);
    for (const [key, ns] of Object.entries(e.config.namespaces)) {
      const holder = namespaces.get(ns);
      if (holder !== undefined) {
        throw new ConfigError(
          `${e.file}: namespace "${ns}" (namespaces.${key}) is also ${holder}'s; environments synced by Argo CD need namespaces of their own ` +
            '(or, on separate clusters, separate --environments folders)',
        );
      }
    }
    for (const ns of Object.values(e.config.namespaces)) namespaces.set(ns, e.file);
  }
  // A cluster-wide object that two Applications render would be taken over by each one's sync in turn.
  const clusterWide = new Map<string, string>();
  for (const e of envs.filter((x) => x.config.argocd.enabled)) {
    for (const o of buildApp(e.config).charts.flatMap((c) => c.toJson() as { kind: string; metadata: { name: string; namespace?: string } }[])) {
      if (o.metadata.namespace !== undefined || o.kind === 'Namespace') continue;
      const id = `${o.kind} ${o.metadata.name}`;
      const holder = clusterWide.get(id);
      if (holder !== undefined) {
        const fix =
          o.kind === 'ClusterIssuer'
            ? 'give each environment its own tls.issuer.name, or set tls.letsEncrypt.create: false in all but one'
            : 'give each environment namespaces of its own';
        throw new ConfigError(`${e.file}: ${id} is also rendered by ${holder}; ${fix}`);
      }
      clusterWide.set(id, e.file);
    }
  }
}

/** Whether two folders hold the same files with the same bytes. */
function sameTree(a: string, b: string): boolean {
  if (!fs.existsSync(b)) return false;
  const fa = fs.readdirSync(a).sort();
  const fb = fs.readdirSync(b).sort();
  return fa.length === fb.length && fa.every((f, i) => f === fb[i] && fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))));
}

/** The manifests and their Kustomization, written into `dir`; returns how many manifest files. */
function renderInto(config: KudoConfig, dir: string): number {
  const files = writeManifests(buildApp(config), dir);
  writeKustomization(dir);
  return files;
}

function envSecretsDocument(config: KudoConfig, envFile: string | undefined, signingKeyFile: string | undefined) {
  if (!envFile && !signingKeyFile) return undefined;
  if (config.secrets.mode !== 'generated') {
    throw new ConfigError('KUDO_ENV_FILE and KUDO_SIGNING_KEY_FILE need secrets.mode "generated"; in "existing" mode you provide every Secret yourself');
  }
  const env = envFile ? parseEnvFile(readInput(envFile, 'KUDO_ENV_FILE'), envFile) : new Map<string, string>();
  const signingKey = signingKeyFile ? readInput(signingKeyFile, 'KUDO_SIGNING_KEY_FILE') : undefined;
  const { manifests, filled } = envFileSecrets(env, envFile ?? '', config.secrets.refs, config.namespaces, secretFeatures(config), signingKey);
  if (filled.length === 0) throw new ConfigError(`${envFile}: holds none of the variables kudo reads (see docs/operations.md, "Moving from docker-compose")`);
  const header = [
    '# SECRET VALUES. Generated by `npm run synth` from KUDO_ENV_FILE / KUDO_SIGNING_KEY_FILE.',
    '# Never commit this file. Apply it after dist/00-namespaces.k8s.yaml and before the rest of dist/.',
    '',
  ].join('\n');
  const text = header + manifests.map((m) => toYaml(m as Record<string, unknown>)).join('---\n');
  return { text, filled, count: manifests.length };
}

function readInput(file: string, variable: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`${variable}=${file}: cannot read it (${code === 'ENOENT' ? 'no such file' : (code ?? String(e))})`);
  }
}

/**
 * One file per chart, as `App.synth()` writes them, but serialized by our
 * own small YAML writer: a general YAML library took a third of the render
 * time (CONTRIBUTING.md, "Performance").
 */
function writeManifests(app: App, dir: string): number {
  const errors = app.node.findAll().flatMap((c) => c.node.validate().map((e) => `${c.node.path}: ${e}`));
  if (errors.length > 0) throw new Error(`validation failed:\n${errors.join('\n')}`);
  for (const chart of app.charts) {
    fs.writeFileSync(path.join(dir, `${chart.node.id}.k8s.yaml`), chart.toJson().map(toYaml).join('---\n'));
  }
  return app.charts.length;
}

/**
 * A Kustomization listing the rendered files, so `kubectl apply -k` works like
 * `kubectl apply -f`. Named `Kustomization` (a name Kustomize and Argo CD
 * look for) without an extension, so `kubectl apply -f dist/`, which reads
 * only .yaml, .yml and .json files, does not try to apply it.
 */
function writeKustomization(dir: string): void {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.k8s.yaml'))
    .sort();
  const doc = { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: files };
  fs.writeFileSync(path.join(dir, 'Kustomization'), `# Generated by npm run synth.\n${toYaml(doc)}`);
}

/** What a render writes: one `NN-name.k8s.yaml` per chart and the Kustomization. */
const RENDERED_FILE = /^(?:[0-9]{2}-[a-z0-9-]+\.k8s\.yaml|Kustomization)$/;

/**
 * Refuses an output folder holding anything a render did not write (notes,
 * a sub-folder, a .git): swapIn removes what the new render does not have,
 * and that must only ever be an earlier render's files.
 */
function checkOutdir(outdir: string, what: string): void {
  let names: string[];
  try {
    if (!fs.statSync(outdir).isDirectory()) throw new ConfigError(`${what}: is not a folder`);
    names = fs.readdirSync(outdir).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const foreign = names.find((f) => !RENDERED_FILE.test(f) || !fs.lstatSync(path.join(outdir, f)).isFile());
  if (foreign !== undefined) {
    throw new ConfigError(
      `${what} holds "${foreign}", which no render wrote: a render replaces the folder's contents, ` +
        'so render into a folder of its own (or an empty one); nothing was written or removed',
    );
  }
}

/**
 * Moves the render into `outdir` file by file. Each file is replaced by a
 * rename, so a reader sees the old file or the new one, never half of one;
 * files the new render no longer has go last; `outdir` itself never goes
 * away. (Swapping whole folders would leave a moment with no `outdir` at
 * all: Linux cannot rename a folder over a non-empty one.)
 */
function swapIn(staging: string, outdir: string): void {
  fs.mkdirSync(outdir, { recursive: true });
  const rendered = new Set(fs.readdirSync(staging));
  for (const f of rendered) fs.renameSync(path.join(staging, f), path.join(outdir, f));
  for (const f of fs.readdirSync(outdir)) {
    if (!rendered.has(f)) fs.rmSync(path.join(outdir, f), { recursive: true, force: true });
  }
}

try {
  main(process.argv.slice(2));
} catch (e) {
  // Config and construct validation errors are for people: the message, not a stack trace.
  process.stderr.write(`kudo: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(e instanceof ConfigError ? 2 : 1);
}
