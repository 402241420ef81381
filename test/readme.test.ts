/**
 * The README stays true as the config grows: its listing of every key is
 * compared with the schema, in both directions (a key added without a line in
 * the README, or a line left for a key that no longer exists, fails).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { configSchema, resolveConfig } from '../charts/config';
import { SECRET_VALUES } from '../charts/secrets';
import { checklist, renderedManifests } from '../scripts/inspect';
import { kubernetesValidator } from './k8s-schema';
import { config, container, find, Manifest, podSpec, synthAll, synthChart } from './util';

const README = fs.readFileSync(path.resolve(__dirname, '..', 'README.md'), 'utf8');

/** The keys of the README's config listing, as dotted paths (mappings only; a list's items are not keys). */
function readmeKeys(): Set<string> {
  const block = /<!-- config-reference:start -->\n```yaml\n([\s\S]*?)```\n<!-- config-reference:end -->/.exec(README);
  if (!block) throw new Error('README.md has no config-reference block');
  const out = new Set<string>();
  const walk = (v: unknown, at: string[]) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return;
    for (const [k, child] of Object.entries(v)) {
      out.add([...at, k].join('.'));
      walk(child, [...at, k]);
    }
  };
  walk(yaml.load(block[1]), []);
  return out;
}

/** The schema's keys as dotted paths, through its defaults, optionals and objects; maps and lists end a path. */
function schemaKeys(objects = new Set<string>()): Set<string> {
  const out = new Set<string>();
  const unwrap = (s: any): any => (s?.def?.innerType !== undefined ? unwrap(s.def.innerType) : s);
  const walk = (s: any, at: string[]) => {
    const shape = unwrap(s)?.shape;
    if (shape === undefined) return;
    objects.add(at.join('.'));
    for (const [k, child] of Object.entries(shape)) {
      out.add([...at, k].join('.'));
      walk(child, [...at, k]);
    }
  };
  walk(configSchema(), []);
  return out;
}

/**
 * Listed once for all of their kind: the scheduling of every workload but one (named in a comment), every
 * image's digest (the README says so at postgres.image), and Kubernetes' own node affinity fields.
 */
const SUMMARISED =
  /^scheduling\.(redis|synapse|synapseWorkers|synapseRouter|wellKnown|livekit|coturn|backup|tools)(\.|$)|^scheduling\.postgres\.|\.digest$|^scheduling\.all\.nodeAffinity\./;

test('the README lists every config key, and no key the schema does not have', () => {
  const readme = readmeKeys();
  const objects = new Set<string>();
  const schema = schemaKeys(objects);
  expect([...schema].filter((k) => !readme.has(k) && !SUMMARISED.test(k)).sort()).toEqual([]);
  // Keys inside a map the schema leaves open (labels, selectors) are examples, not config keys.
  const parent = (k: string) => k.split('.').slice(0, -1).join('.');
  expect([...readme].filter((k) => objects.has(parent(k)) && !schema.has(k)).sort()).toEqual([]);
});

test('the check can fail: a key the schema lacks is found', () => {
  expect(readmeKeys().has('postgres.storage.size')).toBe(true);
  expect(schemaKeys().has('postgres.storage.sise')).toBe(false);
});

/** The YAML of a README example marked <!-- example:NAME --> just before its code block. */
function readmeExample(name: string): unknown {
  const block = new RegExp(`<!-- example:${name} -->\\n\`\`\`yaml\\n([\\s\\S]*?)\`\`\``).exec(README);
  if (!block) throw new Error(`README.md has no example:${name} block`);
  return yaml.load(block[1]);
}

test("the README's k3s example admits Traefik from kube-system, where k3s runs it", () => {
  const c = resolveConfig(readmeExample('k3s'), 'README k3s example');
  const ms = renderedManifests(c);
  const from = (name: string) =>
    ms.find((m) => m.kind === 'NetworkPolicy' && m.metadata.name === name)!.spec.ingress[0].from.map((p: any) => p.namespaceSelector?.matchLabels['kubernetes.io/metadata.name']);
  expect(from('synapse')[0]).toBe('kube-system');
  expect(from('matrix-well-known')).toEqual(['kube-system']);
  expect(from('acme-http01-solver')).toEqual(['kube-system']);
  expect(ms.filter((m) => m.kind === 'Ingress').map((i) => i.spec.ingressClassName)).toEqual(['traefik', 'traefik', 'traefik']);
});

test('the checklist tells a Traefik user with the default namespace where k3s runs it', () => {
  const c = resolveConfig({}, 'defaults');
  expect(checklist(c, renderedManifests(c)).prerequisites).toContain(
    'On k3s, Traefik runs in kube-system, not traefik: set ingress.namespace: kube-system, or public traffic and ACME challenges are blocked',
  );
  const k3s = resolveConfig(readmeExample('k3s'), 'README k3s example');
  expect(checklist(k3s, renderedManifests(k3s)).prerequisites.join('\n')).not.toContain('On k3s');
});

test("the README's shared-Gateway example attaches each route to its host's HTTPS listener of infra/shared and admits the proxies' namespace", () => {
  const c = resolveConfig(readmeExample('shared-gateway'), 'README shared-gateway example');
  const ms = renderedManifests(c);
  expect(ms.filter((m) => m.kind === 'Gateway' || m.kind === 'Ingress')).toEqual([]);
  const refs = ms
    .filter((m) => m.kind === 'HTTPRoute')
    .map((r) => `${r.metadata.name} -> ${r.spec.parentRefs.map((p: any) => `${p.namespace}/${p.name}#${p.sectionName}`).join(', ')}`);
  expect(refs.sort()).toEqual([
    'livekit -> infra/shared#https-livekit.chat.example.org',
    'matrix-well-known -> infra/shared#https-chat.example.org',
    'synapse -> infra/shared#https-matrix.chat.example.org',
  ]);
  const synapse = ms.find((m) => m.kind === 'NetworkPolicy' && m.metadata.name === 'synapse')!;
  const proxied = synapse.spec.ingress.find((r: any) => r.ports.some((p: any) => p.port === 8009));
  expect(proxied.from.map((p: any) => p.namespaceSelector?.matchLabels['kubernetes.io/metadata.name'])).toEqual(['envoy-gateway-system']);
  expect(checklist(c, renderedManifests(c)).prerequisites.join('\n')).toContain(
    'https-matrix.chat.example.org (matrix.chat.example.org), https-livekit.chat.example.org (livekit.chat.example.org), https-chat.example.org (chat.example.org)',
  );
});

test("the README's app-outside example: an allow-listed admin Ingress for the app's addresses, and a public MATRIX_ADMIN_URL", () => {
  const c = resolveConfig(readmeExample('app-outside'), 'README app-outside example');
  const ms = renderedManifests(c);
  const admin = ms.filter((m) => m.kind === 'Ingress' && m.metadata.annotations?.['haproxy-ingress.github.io/allowlist-source-range'] !== undefined);
  expect(admin.map((i) => [i.metadata.annotations!['haproxy-ingress.github.io/allowlist-source-range'], i.spec.rules[0].http.paths.map((p: any) => p.path)])).toEqual([
    ['203.0.113.10/32', ['/_synapse/admin']],
  ]);
  // bootstrap_admin.py writes APP_ADMIN_URL into kudo-app as MATRIX_ADMIN_URL (test/secrets.test.ts runs it).
  const env = ms.filter((m) => m.kind === 'Job').flatMap((j) => j.spec.template.spec.containers.flatMap((c: any) => c.env ?? []));
  expect(env.filter((e: any) => e.name === 'APP_ADMIN_URL')).toEqual([{ name: 'APP_ADMIN_URL', value: 'https://matrix.example.com' }]);
});

test("the README's app pod reads kudo-app as read-only files, not environment variables, and is a valid pod spec", () => {
  const spec = readmeExample('app-pod') as any;
  const validator = kubernetesValidator('v1.28.0', []);
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'app', namespace: 'kudo-app' }, spec };
  expect(validator.errors(pod)).toEqual([]);
  expect(spec.volumes).toEqual([{ name: 'kudo', secret: { secretName: 'kudo-app', defaultMode: 0o440 } }]);
  expect(spec.containers[0].volumeMounts).toEqual([{ name: 'kudo', mountPath: '/var/run/secrets/kudo', readOnly: true }]);
  expect(JSON.stringify(spec)).not.toMatch(/envFrom|secretKeyRef/);
  // The Secret the bootstrap writes is the one mounted, in the namespace the example names.
  const c = resolveConfig({}, 'defaults');
  expect([c.secrets.appSecretName, c.namespaces.app]).toEqual(['kudo-app', 'kudo-app']);
  expect(README).not.toMatch(/ready for `envFrom`|\(`envFrom`, see/);
});

test('every README section the code points to ("README, \\"...\\"") is a heading of the README', () => {
  const headings = new Set(
    README.split('\n')
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) => l.replace(/^#+ /, '').trim()),
  );
  const root = path.resolve(__dirname, '..');
  const sources = [
    'main.ts',
    ...['charts', 'scripts'].flatMap((d) =>
      fs
        .readdirSync(path.join(root, d))
        .filter((f) => /\.(ts|mjs)$/.test(f))
        .map((f) => `${d}/${f}`),
    ),
  ];
  const refs = sources.flatMap((f) => [...fs.readFileSync(path.join(root, f), 'utf8').matchAll(/README, "([^"]+)"/g)].map((m) => [f, m[1]]));
  expect(refs.length).toBeGreaterThan(1);
  expect(refs.filter(([, h]) => !headings.has(h))).toEqual([]);
});

/** The README's section under `## title`, up to the next `## ` heading. */
function readmeSection(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README.md has no "## ${title}" section`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

test('"Rotating secrets" adds and removes exactly the optional Secret keys the rendered pods read, and covers every secret value', () => {
  const section = readmeSection('Rotating secrets');
  const c = resolveConfig({}, 'defaults');
  const optional: string[] = [];
  for (const m of renderedManifests(c)) {
    const spec = m.spec?.template?.spec ?? m.spec?.jobTemplate?.spec?.template?.spec;
    for (const v of spec?.volumes ?? [])
      for (const s of v.projected?.sources ?? []) if (s.secret?.optional === true) for (const i of s.secret.items) optional.push(`${s.secret.name}/${i.key}`);
  }
  expect(optional.sort()).toEqual(['kudo-livekit/second_api_key', 'kudo-livekit/second_api_secret', 'kudo-turn/second_shared_secret']);
  // Each is added by a patch of its Secret, and removed again.
  for (const k of optional) {
    const [secret, key] = k.split('/');
    const patches = section.split('\n').filter((l) => l.includes(`patch secret ${secret} --type merge -p "{\\"stringData\\":{`));
    expect([k, patches.some((l) => l.includes(`\\"${key}\\":`))]).toEqual([k, true]);
    expect([k, new RegExp(`patch secret ${secret} --type json -p '.*"/data/${key}"`).test(section)]).toEqual([k, true]);
  }
  // Every value the stack has is named by its Secret and key, with what changing it means.
  const refs = c.secrets.refs as Record<string, { name: string; key: string }>;
  const missing = SECRET_VALUES.map((v) => refs[v.name]).filter((r) => !section.includes(`\`${r.name}\``) || !section.includes(`\`${r.key}\``));
  expect(missing).toEqual([]);
});

test('"PostgreSQL 17 → 18" applies, before the restore, only files that start no Synapse process, and stops every one first', () => {
  const start = README.indexOf('\n### PostgreSQL 17 → 18\n');
  expect(start).toBeGreaterThan(0);
  const section = README.slice(start, README.indexOf('\n## ', start));
  // The partial apply, in the commands and again in the rollback.
  const partial = [...section.matchAll(/apply -f `?dist\/(\S+)\.k8s\.yaml`? -f `?dist\/(\S+)\.k8s\.yaml|apply\s+`dist\/(\S+)\.k8s\.yaml` and `dist\/(\S+)\.k8s\.yaml`/g)].map((m) =>
    m.slice(1).filter((g) => g !== undefined),
  );
  expect(partial).toEqual([
    ['10-postgres', '50-backup'],
    ['10-postgres', '50-backup'],
  ]);
  expect(section).toContain('scale deployment,statefulset -l app.kubernetes.io/component=homeserver --replicas=0');
  for (const overrides of [{}, { profile: 'production', backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } } }]) {
    const c = config({ ...overrides, postgres: { image: { tag: '18.6-bookworm' } } });
    const applied = partial[0].flatMap((id) => synthChart(id, c));
    const workloads = (ms: Manifest[]) => ms.filter((m) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(m.kind));
    // Nothing there runs Synapse: it would start on the empty 18 database.
    expect(workloads(applied).map((w) => `${w.kind}/${w.metadata.name}`)).toEqual(['StatefulSet/postgres']);
    expect(container(find(applied, 'StatefulSet', 'postgres'), 'postgres').image).toBe('docker.io/library/postgres:18.6-bookworm');
    // The Jobs it creates come from CronJobs in those files, with the 18 image's pg_restore.
    for (const m of section.matchAll(/--from=cronjob\/(\S+)/g)) expect(find(applied, 'CronJob', m[1]).kind).toBe('CronJob');
    expect(container(find(applied, 'CronJob', 'postgres-restore'), 'restore').image).toBe('docker.io/library/postgres:18.6-bookworm');
    // Every workload that connects to Synapse's database (the db-password volume) carries the label step 1 scales by.
    const clients = workloads(synthAll(c)).filter((w) => (podSpec(w).volumes ?? []).some((v: any) => v.name === 'db-password'));
    expect(clients.map((w) => w.metadata.name)).toContain('synapse');
    expect(clients.filter((w) => w.metadata.labels?.['app.kubernetes.io/component'] !== 'homeserver').map((w) => w.metadata.name)).toEqual([]);
  }
});
