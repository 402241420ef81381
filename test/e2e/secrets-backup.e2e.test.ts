/**
 * The Secrets in the backup, with the real programs and the rendered steps: the secret generator fills a real API
 * server; the nightly job's export step reads the values with the backup's own ServiceAccount (its Roles, nothing
 * more) into a 1 MiB memory volume; restic, in its image as the pod's user, stores them in the off-site repository.
 * Then, in a second API server standing for a new cluster, the generator of a `secrets.restoreFromBackup` render
 * fetches the snapshot from that repository alone (its fetch step, in restic's image) and puts every value back.
 */
import { execFileSync, spawnSync, SpawnSyncReturns } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { ApiServer, startApiServer } from './apiserver';
import { container, find, Manifest, podSpec, Program, programs, rendered, secretVolumeFiles, tempDir, writeSecretFiles } from './harness';
import { ImageSandbox, podVolumes, shareWithPod } from './image';

const S3 = { backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } } };
const before = rendered(S3);
const after = rendered({ ...S3, secrets: { restoreFromBackup: 'latest' } });
const OFFSITE_PASSWORD = 'offsite-e2e-only';
const MiB = 2 ** 20;

let dir: string;
/** The off-site repository: a local folder stands in for the bucket. */
let offsite: string;
let offsiteSecret: string;
const servers: ApiServer[] = [];
const tmpfsMounts: string[] = [];

/** A folder that is a tmpfs of `bytes`: a memory emptyDir of that sizeLimit, shared by the pod's containers. */
function memoryFolder(prefix: string, bytes: number): string {
  const d = tempDir(prefix);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0777`, 'kudo-e2e-memory', d]);
  tmpfsMounts.push(d);
  return d;
}

/** The files of a rendered ConfigMap, as its volume shows them. */
function configMapFolder(ms: Manifest[], name: string): string {
  const d = tempDir(name);
  for (const [f, text] of Object.entries<string>(find(ms, 'ConfigMap', name).data)) fs.writeFileSync(path.join(d, f), text, { mode: 0o555 });
  return d;
}

/** A new "cluster": an API server with the render's namespaces, ServiceAccounts and RBAC applied. */
async function cluster(ms: Manifest[]): Promise<ApiServer> {
  const api = await startApiServer({ logDir: tempDir('apiserver') });
  servers.push(api);
  const rbac = ms.filter((m) => ['Namespace', 'ServiceAccount', 'Role', 'RoleBinding'].includes(m.kind));
  api.kubectl(['apply', '--server-side', '-f', '-'], { input: rbac.map((m) => yaml.dump(m)).join('---\n') });
  return api;
}

/** Runs a bundled Python step as its pod would reach the API: with a token of the step's ServiceAccount. */
async function python(api: ApiServer, serviceAccount: string, scripts: string, args: string[]): Promise<{ code: number; output: string }> {
  const token = path.join(tempDir('token'), 'token');
  fs.writeFileSync(token, api.kubectl(['create', 'token', serviceAccount, '-n', 'kudo']).stdout.trim());
  // In the scripts' folder: the plan is named as the pod names it, relative here.
  const p = new Program(serviceAccount, 'python3', args, {
    logDir: dir, cwd: scripts,
    env: { PATH: process.env.PATH, PYTHONPATH: scripts, PYTHONDONTWRITEBYTECODE: '1', KUBE_API_URL: api.url, KUBE_TOKEN_FILE: token, KUBE_CA_FILE: api.caFile },
  });
  return { code: await p.exit(60_000), output: p.output() };
}

/** One restic step in restic's image, as the pod's user, with the pod's volumes (the bucket is the local folder). */
function resticStep(workload: Manifest, name: string, folders: Record<string, string>, env: Record<string, string> = {}): SpawnSyncReturns<string> {
  const c = container(workload, name);
  const e: Record<string, string> = Object.fromEntries(c.env.map((x: any) => [x.name, x.value]));
  e.OFFSITE_REPOSITORY = '/offsite'; // paths: a local repository stands in for the bucket
  Object.assign(e, env);
  const volumes = { ...podVolumes(workload, name, { offsite: offsiteSecret, ...folders }), '/offsite': { host: offsite } };
  const [command, args] = new ImageSandbox(workload, name, { '/usr/bin/restic': programs().restic }).wrap(c.command[0], c.command.slice(1), e, '/', undefined, volumes);
  return spawnSync(command, args, { encoding: 'utf8', env: { PATH: process.env.PATH } });
}
const out = (r: SpawnSyncReturns<string>) => `${r.stdout}${r.stderr}`;

/** Every value of the generator's plan as the API server holds it, per destination. */
function held(api: ApiServer, ms: Manifest[]): Record<string, string> {
  const plan = JSON.parse(find(ms, 'ConfigMap', 'secret-generator').data['plan.json']) as { values: { name: string; destinations: { namespace: string; secret: string; key: string }[] }[] };
  const values: Record<string, string> = {};
  for (const v of plan.values) {
    for (const d of v.destinations) {
      const r = api.kubectl(['get', 'secret', d.secret, '-n', d.namespace, '-o', 'json'], { allowFail: true });
      const data = r.code === 0 ? JSON.parse(r.stdout).data ?? {} : {};
      values[`${v.name} ${d.namespace}/${d.secret}[${d.key}]`] = data[d.key] === undefined ? '<missing>' : Buffer.from(data[d.key], 'base64').toString();
    }
  }
  return values;
}

beforeAll(() => {
  dir = tempDir('secrets-backup');
  offsite = path.join(dir, 'offsite');
  fs.mkdirSync(offsite);
  const cj = find(before.manifests, 'CronJob', 'postgres-backup');
  offsiteSecret = path.join(dir, 'secret-offsite');
  writeSecretFiles(offsiteSecret, secretVolumeFiles(cj, 'offsite', before.config, {
    'kudo-backup-s3/RESTIC_PASSWORD': OFFSITE_PASSWORD, 'kudo-backup-s3/AWS_ACCESS_KEY_ID': 'e2e-key-id', 'kudo-backup-s3/AWS_SECRET_ACCESS_KEY': 'e2e-secret',
  }));
  shareWithPod(dir, podSpec(cj).securityContext.fsGroup);
});

afterAll(async () => {
  for (const api of servers) await api.stop();
  for (const d of tmpfsMounts) spawnSync('umount', [d]);
});

describe('the Secrets go with the backup and come back in a new cluster from the off-site repository alone', () => {
  let old: Record<string, string>;

  test('the nightly job exports the generated values with get-only rights and stores them off-site, encrypted', async () => {
    const api = await cluster(before.manifests);
    const generator = await python(api, 'secret-generator', configMapFolder(before.manifests, 'secret-generator'), ['generate_secrets.py', 'plan.json']);
    expect(generator.output).toContain('all secret values present');
    expect(generator.code).toBe(0);
    old = held(api, before.manifests);
    expect(Object.values(old)).not.toContain('<missing>');

    // The export step, with the backup's ServiceAccount: get on the named Secrets, nothing else.
    const can = (verb: string, what: string, ns = 'kudo') =>
      api.kubectl(['auth', 'can-i', verb, what, '-n', ns], { asUser: 'system:serviceaccount:kudo:backup', allowFail: true }).stdout.trim();
    expect([can('get', 'secrets/kudo-synapse'), can('get', 'secrets/kudo-livekit', 'kudo-media')]).toEqual(['yes', 'yes']);
    expect([can('list', 'secrets'), can('patch', 'secrets/kudo-synapse'), can('get', 'secrets/kudo-app', 'kudo-app')]).toEqual(['no', 'no', 'no']);
    const cj = find(before.manifests, 'CronJob', 'postgres-backup');
    const exportDir = memoryFolder('secrets-export', MiB); // the rendered volume's sizeLimit (1Mi)
    expect(podSpec(cj).volumes.find((v: any) => v.name === 'secrets-export').emptyDir.sizeLimit).toBe('1Mi');
    const exporter = container(cj, 'export-secrets');
    const file = path.join(exportDir, path.basename(exporter.command[3]));
    const exported = await python(api, 'backup', configMapFolder(before.manifests, 'backup-scripts'), ['export_secrets.py', 'secrets-plan.json', file]);
    expect(exported.output).toMatch(/exported 12 of 12 secret values: adminPassword, backupPassword, formSecret, livekitApiKey/);
    expect(exported.code).toBe(0);
    shareWithPod(exportDir, podSpec(cj).securityContext.fsGroup);
    fs.chmodSync(file, 0o640); // written 0600 by the pod's uid; here by root, so the pod's group may read it

    // restic in its image, with the pod's volumes: the export's memory volume shared with the step before.
    const scripts = configMapFolder(before.manifests, 'backup-scripts');
    const backups = tempDir('backups');
    for (const d of [scripts, backups]) shareWithPod(d, podSpec(cj).securityContext.fsGroup);
    const passwordDir = path.join(dir, 'secret-repository');
    writeSecretFiles(passwordDir, { restic_password: JSON.parse(fs.readFileSync(file, 'utf8')).values.backupPassword });
    shareWithPod(passwordDir, podSpec(cj).securityContext.fsGroup);
    const store = resticStep(cj, 'store-secrets', { scripts, backups, 'repository-password': passwordDir, 'secrets-export': exportDir });
    expect(out(store)).toContain('stored secrets');
    expect(store.status).toBe(0);
    const snapshots = JSON.parse(execFileSync(programs().restic, ['snapshots', '--json', '--tag', 'secrets'], {
      encoding: 'utf8', env: { PATH: process.env.PATH, RESTIC_REPOSITORY: offsite, RESTIC_PASSWORD: OFFSITE_PASSWORD, RESTIC_CACHE_DIR: path.join(dir, 'cache') },
    }));
    expect(snapshots.map((s: any) => s.paths)).toEqual([['/secrets-export']]);
    // Encrypted: neither repository holds the signing key's text (grep exits 1: no match).
    const seed = old['signingKey kudo/kudo-synapse[signing.key]'].split(' ')[2].trim();
    expect(spawnSync('grep', ['-rlF', seed, offsite, backups]).status).toBe(1);
  }, 180_000);

  test('a new cluster\'s generator fetches the snapshot and puts back every value; with a wrong password it restores nothing', async () => {
    expect(old).toBeDefined();
    const api = await cluster(after.manifests);
    const job = after.manifests.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('generate-secrets-'))!;
    const scripts = configMapFolder(after.manifests, 'secret-generator');
    const fsGroup = podSpec(job).securityContext.fsGroup;
    shareWithPod(scripts, fsGroup);

    // The wrong off-site password: the fetch step fails, so the generator (the next container) never runs.
    const wrongSecret = path.join(dir, 'secret-offsite-wrong');
    writeSecretFiles(wrongSecret, { ...Object.fromEntries(fs.readdirSync(offsiteSecret).map((f) => [f, fs.readFileSync(path.join(offsiteSecret, f), 'utf8')])), RESTIC_PASSWORD: 'not-it' });
    shareWithPod(wrongSecret, fsGroup);
    const wrongDir = memoryFolder('restored-wrong', MiB);
    const wrong = resticStep(job, 'fetch', { scripts, offsite: wrongSecret, 'restored-secrets': wrongDir });
    expect(out(wrong)).toMatch(/wrong password/);
    expect(wrong.status).not.toBe(0);
    expect(fs.readdirSync(wrongDir)).toEqual([]);

    const restoredDir = memoryFolder('restored-secrets', MiB);
    const fetch = resticStep(job, 'fetch', { scripts, 'restored-secrets': restoredDir });
    expect(out(fetch)).toContain('restoring latest (secrets) from /offsite');
    expect(out(fetch)).toContain('restored latest (secrets)');
    expect(fetch.status).toBe(0);
    const generator = container(job, 'generate-secrets');
    expect(generator.command.slice(-2)).toEqual(['--restore', '/restored-secrets/secrets.json']);
    const r = await python(api, 'secret-generator', scripts, ['generate_secrets.py', 'plan.json', '--restore', path.join(restoredDir, 'secrets.json')]);
    expect(r.output).toContain('signingKey: restored from the backup');
    expect(r.output).toContain('all secret values present');
    expect(r.code).toBe(0);
    expect(held(api, after.manifests)).toEqual(old);
  }, 180_000);
});
