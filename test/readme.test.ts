/**
 * The documents stay true as the code grows: the config listing of
 * docs/configuration.md is compared with the schema, in both directions (a key
 * added without a line, or a line left for a key that no longer exists, fails);
 * the examples and runbooks are checked against the render; every pointer from
 * the code to a section, and every link between the documents, resolves.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { configSchema, resolveConfig } from '../charts/config';
import { SECRET_VALUES } from '../charts/secrets';
import { checklist, renderedManifests } from '../scripts/inspect';
import { kubernetesValidator } from './k8s-schema';
import { config, container, find, Manifest, podSpec, synthAll, synthChart } from './util';

const ROOT = path.resolve(__dirname, '..');
/** The documents, by path from the repository's root: the README, CONTRIBUTING.md and docs/*.md. */
const DOCS = [
  'README.md',
  'CONTRIBUTING.md',
  ...fs
    .readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

/** The keys of docs/configuration.md's config listing, as dotted paths (mappings only; a list's items are not keys). */
function readmeKeys(): Set<string> {
  const block = /<!-- config-reference:start -->\n```yaml\n([\s\S]*?)```\n<!-- config-reference:end -->/.exec(read('docs/configuration.md'));
  if (!block) throw new Error('docs/configuration.md has no config-reference block');
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
 * image's digest (the listing says so at postgres.image), and Kubernetes' own node affinity fields.
 */
const SUMMARISED =
  /^scheduling\.(redis|synapse|synapseWorkers|synapseRouter|wellKnown|livekit|coturn|backup|tools)(\.|$)|^scheduling\.postgres\.|\.digest$|^scheduling\.all\.nodeAffinity\./;

test('the config listing has every config key, and no key the schema does not have', () => {
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

/** The YAML of an example marked <!-- example:NAME --> just before its code block, in whichever document holds it (one). */
function readmeExample(name: string): unknown {
  const blocks = DOCS.flatMap((f) => [...read(f).matchAll(new RegExp(`<!-- example:${name} -->\\n\`\`\`yaml\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1]));
  if (blocks.length !== 1) throw new Error(`${blocks.length} example:${name} blocks in ${DOCS.join(', ')}`);
  return yaml.load(blocks[0]);
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

test("docs/networking.md's shared-Gateway example attaches each route to its host's HTTPS listener of infra/shared and admits the proxies' namespace", () => {
  const c = resolveConfig(readmeExample('shared-gateway'), 'shared-gateway example');
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

test("docs/operations.md's app-outside example: an allow-listed admin Ingress for the app's addresses, and a public MATRIX_ADMIN_URL", () => {
  const c = resolveConfig(readmeExample('app-outside'), 'app-outside example');
  const ms = renderedManifests(c);
  const admin = ms.filter((m) => m.kind === 'Ingress' && m.metadata.annotations?.['haproxy-ingress.github.io/allowlist-source-range'] !== undefined);
  expect(admin.map((i) => [i.metadata.annotations!['haproxy-ingress.github.io/allowlist-source-range'], i.spec.rules[0].http.paths.map((p: any) => p.path)])).toEqual([
    ['203.0.113.10/32', ['/_synapse/admin']],
  ]);
  // bootstrap_admin.py writes APP_ADMIN_URL into kudo-app as MATRIX_ADMIN_URL (test/secrets.test.ts runs it).
  const env = ms.filter((m) => m.kind === 'Job').flatMap((j) => j.spec.template.spec.containers.flatMap((c: any) => c.env ?? []));
  expect(env.filter((e: any) => e.name === 'APP_ADMIN_URL')).toEqual([{ name: 'APP_ADMIN_URL', value: 'https://matrix.example.com' }]);
});

test("docs/operations.md's app pod reads kudo-app as read-only files, not environment variables, and is a valid pod spec", () => {
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
  for (const f of DOCS) expect([f, read(f)]).not.toEqual([f, expect.stringMatching(/ready for `envFrom`|\(`envFrom`, see/)]);
});

/** GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}_ -]/gu, '')
    .replace(/ /g, '-');
}

/** A document's lines outside fenced code blocks. */
function prose(text: string): string[] {
  let fenced = false;
  return text.split('\n').filter((l) => {
    if (l.startsWith('```')) fenced = !fenced;
    return !fenced && !l.startsWith('```');
  });
}

/** A document's headings with their anchors (a repeated anchor gets -1, -2, ... as on GitHub). */
function headings(text: string): { title: string; anchor: string }[] {
  const seen = new Map<string, number>();
  return prose(text).flatMap((l) => {
    const m = /^#{1,6} (.+)$/.exec(l);
    if (!m) return [];
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return [{ title: m[1].trim(), anchor: n === 0 ? base : `${base}-${n}` }];
  });
}

/** The repository's file at a path from its root: its text, '' for a folder or other file, undefined if absent. */
function repoFile(file: string): string | undefined {
  const p = path.join(ROOT, file);
  if (!fs.existsSync(p)) return undefined;
  return file.endsWith('.md') ? fs.readFileSync(p, 'utf8') : '';
}

/** The relative links of a document (outside code) to a file that does not exist, or to an anchor no heading of its target has. */
function brokenLinks(file: string, text: string, fileAt: (f: string) => string | undefined = repoFile): string[] {
  const links = prose(text).flatMap((l) => [...l.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]));
  return links.flatMap((target) => {
    if (/^[a-z]+:/.test(target)) return [];
    const [p, anchor] = target.split('#');
    const to = p === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), p));
    const content = to === file ? text : fileAt(to);
    if (content === undefined) return [`${file}: ${target} (no ${to})`];
    if (anchor !== undefined && to.endsWith('.md') && !headings(content).some((h) => h.anchor === anchor)) return [`${file}: ${target} (no such heading in ${to})`];
    return [];
  });
}

test('every relative link and anchor of the README, CONTRIBUTING.md and docs/*.md leads to a file and a heading that exist', () => {
  expect(DOCS).toEqual(
    expect.arrayContaining(['README.md', 'CONTRIBUTING.md', 'docs/configuration.md', 'docs/operations.md', 'docs/networking.md', 'docs/scaling.md', 'docs/design.md']),
  );
  expect(DOCS.flatMap((f) => brokenLinks(f, read(f)))).toEqual([]);
});

test("the link check can fail: a missing file, a missing heading, and GitHub's anchors for punctuation", () => {
  const doc = [
    '[ok](docs/operations.md#postgresql-17--18) [ok](docs/operations.md#the-apps-credentials) [ok](#documentation)',
    '[gone](docs/nothing.md) [moved](#applying) [typo](docs/operations.md#disaster-recovey)',
    '```sh',
    '[in code](docs/nothing-either.md)',
    '```',
  ].join('\n');
  expect(brokenLinks('README.md', `## Documentation\n${doc}`)).toEqual([
    'README.md: docs/nothing.md (no docs/nothing.md)',
    'README.md: #applying (no such heading in README.md)',
    'README.md: docs/operations.md#disaster-recovey (no such heading in docs/operations.md)',
  ]);
  expect(brokenLinks('docs/scaling.md', '[up](../README.md#prerequisites) [beside](capacity.md) [wrong](README.md)')).toEqual(['docs/scaling.md: README.md (no docs/README.md)']);
});

/**
 * The sections code and tests point to, written `docs/operations.md, "Disaster recovery"` (or `README, "..."`): the
 * named document's headings; the README's also count the sections its index names with a link to them.
 */
const POINTER = /\b(README|CONTRIBUTING\.md|docs\/[\w-]+\.md), \\?"([^"\\]+)\\?"/g;
function unresolvedPointers(from: string, text: string): string[] {
  return [...text.matchAll(POINTER)].flatMap(([, name, title]) => {
    const doc = name === 'README' ? 'README.md' : name;
    const content = repoFile(doc);
    if (content === undefined) return [`${from}: ${doc} does not exist`];
    const titles = new Set(headings(content).map((h) => h.title));
    if (doc === 'README.md')
      for (const [, text, target] of content.matchAll(/\[([^\]]+)\]\(([^)\s]+#[^)\s]+)\)/g))
        if (target.endsWith(`#${slug(text)}`) && brokenLinks(doc, `[${text}](${target})`).length === 0) titles.add(text);
    return titles.has(title) ? [] : [`${from}: ${name}, "${title}"`];
  });
}

test('every section the code, the scripts in pods, the tests and CI point to is a heading of the document they name', () => {
  const sources = [
    'main.ts',
    '.ci/run',
    ...['charts', 'charts/files', 'scripts', 'test', 'test/e2e', 'test/cluster'].flatMap((d) =>
      fs
        .readdirSync(path.join(ROOT, d))
        .filter((f) => /\.(ts|mjs|sh|py)$/.test(f) && `${d}/${f}` !== 'test/readme.test.ts')
        .map((f) => `${d}/${f}`),
    ),
  ];
  const pointers = sources.flatMap((f) => [...read(f).matchAll(POINTER)]);
  expect(pointers.length).toBeGreaterThan(20);
  expect(sources.flatMap((f) => unresolvedPointers(f, read(f)))).toEqual([]);
});

test('the pointer check can fail: a section its document lacks, or a document that does not exist', () => {
  const quote = (doc: string, title: string) => `${doc}, "${title}"`;
  expect(unresolvedPointers('x', `(${quote('docs/operations.md', 'Disaster recovery')}) and ${quote('README', 'Rotating secrets')}`)).toEqual([]);
  expect(unresolvedPointers('x', `${quote('docs/operations.md', 'Sizing')}; ${quote('README', 'Restore')}; ${quote('docs/nothing.md', 'Sizing')}`)).toEqual([
    'x: docs/operations.md, "Sizing"',
    'x: README, "Restore"',
    'x: docs/nothing.md does not exist',
  ]);
  // In a shell string, the quotes are escaped.
  expect(unresolvedPointers('x', 'die "... (docs/scaling.md, \\"Nothing\\") ..."')).toEqual(['x: docs/scaling.md, "Nothing"']);
});

/** A document's section under `## title` (or `### title`), up to the next `## ` heading. */
function docSection(file: string, heading: string): string {
  const text = read(file);
  const start = text.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`${file} has no "${heading}" section`);
  const end = text.indexOf('\n## ', start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

test('"Rotating secrets" adds and removes exactly the optional Secret keys the rendered pods read, and covers every secret value', () => {
  const section = docSection('docs/operations.md', '## Rotating secrets');
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
  const section = docSection('docs/operations.md', '### PostgreSQL 17 → 18');
  // The partial apply, in the commands and again in the rollback.
  const partial = [...section.matchAll(/apply -f `?dist\/(\S+)\.k8s\.yaml`? -f `?dist\/(\S+)\.k8s\.yaml|apply\s+`dist\/(\S+)\.k8s\.yaml` and `dist\/(\S+)\.k8s\.yaml`/g)].map((m) =>
    m.slice(1).filter((g) => g !== undefined),
  );
  expect(partial).toEqual([
    ['10-postgres', '50-backup'],
    ['10-postgres', '50-backup'],
  ]);
  expect(section).toContain('scale deployment,statefulset -l app.kubernetes.io/component=homeserver --replicas=0');
  const production = { profile: 'production', backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } }, networkPolicies: { nodeCidrs: ['10.0.0.0/16'] } };
  for (const overrides of [{}, production]) {
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
