/**
 * Every container's command resolves in its image. The facts of each image (entrypoint, PATH, where its programs are,
 * which shells and interpreters it has, its base's standard programs) are in docs/image-contract.yaml, read from each
 * image's published build file at the pinned tag; this test holds every rendered container to them: the program it
 * starts (on the image's PATH or by absolute path), and every program a shell script it runs calls by name or with
 * `exec` (parsed with mvdan/sh, not by pattern), scripts from its ConfigMaps included.
 *
 * LiveKit's `exec livekit-server` (its image has /livekit-server, off PATH) is the defect this was written for.
 */
import * as path from 'path';
import * as sh from 'mvdan-sh';
import { config, Manifest, podSpec, PRODUCTION, synthAll } from './util';
import { KudoConfig } from '../charts/config';
import { ImageFacts as Facts, imageContract, imageRepository } from './image-contract';

const contract = imageContract();

/** Shell builtins of dash, bash and BusyBox ash that the stack's scripts use: no program needed. */
const BUILTINS = new Set([
  ':',
  '.',
  '[',
  'break',
  'cd',
  'command',
  'continue',
  'echo',
  'eval',
  'exec',
  'exit',
  'export',
  'false',
  'kill',
  'local',
  'printf',
  'pwd',
  'read',
  'readonly',
  'return',
  'set',
  'shift',
  'test',
  'trap',
  'true',
  'type',
  'umask',
  'unset',
  'wait',
]);

/** Where a program name resolves in an image: its absolute path, or undefined. */
export function resolve(facts: Facts, name: string): string | undefined {
  const base = contract.bases[facts.base_programs];
  if (!base && facts.base_programs !== 'none') throw new Error(`unknown base_programs "${facts.base_programs}"`);
  const inImage = (p: string) => p in facts.programs || (base !== undefined && base.programs.includes(p));
  if (name.startsWith('/')) return inImage(name) ? name : undefined;
  return facts.path
    .split(':')
    .map((dir) => `${dir}/${name}`)
    .find(inImage);
}

/** A call in a shell script: the program (by name or path), its literal arguments ('' where not literal), its line. */
interface Call {
  program: string;
  args: string[];
  line: number;
}

/**
 * What a shell script runs: the programs it calls by name or path (builtins and its own functions left out), the
 * files it sources with `.`, and the functions it defines (for the scripts that source it).
 */
export function parseScript(script: string, known: Set<string> = new Set()): Parsed {
  // mvdan/sh (compiled from Go) takes milliseconds a script, and each render's containers run the same few scripts.
  const key = `${[...known].sort().join(' ')}\n${script}`;
  let parsed = PARSED.get(key);
  if (!parsed) PARSED.set(key, (parsed = parseAnew(script, known)));
  return parsed;
}

type Parsed = { readonly calls: readonly Call[]; readonly sources: readonly string[]; readonly functions: ReadonlySet<string> };
const PARSED = new Map<string, Parsed>();

function parseAnew(script: string, known: Set<string>): Parsed {
  const syntax = sh.syntax;
  const file = syntax.NewParser().Parse(script, 'script');
  const functions = new Set<string>();
  syntax.Walk(file, (n: any) => {
    if (syntax.NodeType(n) === 'FuncDecl') functions.add(n.Name.Value);
    return true;
  });
  const calls: Call[] = [];
  const sources: string[] = [];
  syntax.Walk(file, (n: any) => {
    if (syntax.NodeType(n) !== 'CallExpr' || n.Args.length === 0) return true;
    let words: string[] = n.Args.map((w: any) => w.Lit());
    // `exec prog ...` runs prog; `command -v x` only looks.
    if (words[0] === 'exec' && words.length > 1) words = words.slice(1);
    if (words[0] === 'command') return true;
    const [program, ...args] = words;
    const line = n.Pos().Line();
    if (program === '') throw new Error(`line ${line}: a command whose name is not a literal cannot be checked`);
    if (program === '.' || program === 'source') {
      // A literal path, or the script's own folder: . "$(dirname "$0")/lib.sh".
      const text = script.slice(n.Args[1].Pos().Offset(), n.Args[1].End().Offset());
      const beside = /^"?\$\(dirname "\$0"\)\/([\w.-]+)"?$/.exec(text);
      if (!args[0] && !beside) throw new Error(`line ${line}: sources ${text}, which cannot be followed`);
      sources.push(args[0] || `$0/${beside![1]}`);
    } else if (!BUILTINS.has(program) && !functions.has(program) && !known.has(program)) calls.push({ program, args, line });
    return true;
  });
  return { calls, sources, functions };
}

/** The programs a shell script runs by name or path. */
export function scriptCalls(script: string): readonly Call[] {
  return parseScript(script).calls;
}

/** The files a container sees from ConfigMaps, by path. */
function configMapFiles(ms: Manifest[], pod: any, c: any): Map<string, string> {
  const files = new Map<string, string>();
  for (const m of c.volumeMounts ?? []) {
    const vol = pod.volumes.find((v: any) => v.name === m.name);
    const name = vol?.configMap?.name;
    if (!name) continue;
    const cm = ms.find((x) => x.kind === 'ConfigMap' && x.metadata.name === name);
    if (!cm) throw new Error(`ConfigMap ${name} is not rendered`);
    const items: { key: string; path: string }[] = vol.configMap.items ?? Object.keys(cm.data).map((k) => ({ key: k, path: k }));
    for (const i of items) files.set(m.subPath ? m.mountPath : `${m.mountPath}/${i.path}`, cm.data[i.key]);
  }
  return files;
}

/** What is wrong with how one container starts in its image (empty: nothing). */
function problems(ms: Manifest[], w: Manifest, c: any): string[] {
  const where = `${w.kind}/${w.metadata.name} container ${c.name}`;
  const repository = imageRepository(c.image);
  const facts = contract.images[repository];
  if (!facts) return [`${where}: ${repository} has no entry in docs/image-contract.yaml`];
  const tag = c.image.slice(repository.length + 1);
  if (tag !== facts.tag) {
    return [`${where}: image tag ${tag}, but docs/image-contract.yaml was read at ${facts.tag}: read the new build file and update the entry`];
  }
  // Kubernetes: command replaces the entrypoint (and drops the image's cmd); args alone replace cmd.
  const argv: string[] = c.command ? [...c.command, ...(c.args ?? [])] : [...facts.entrypoint, ...(c.args ?? facts.cmd)];
  if (argv.length === 0) return [`${where}: no command and no entrypoint`];
  const out: string[] = [];
  const files = configMapFiles(ms, podSpec(w), c);
  const seen = new Set<string>();
  const check = (context: string, words: string[]): void => {
    const [program, ...args] = words;
    const at = resolve(facts, program);
    if (!at) {
      out.push(`${where}: ${context}${program} is not in ${repository}:${facts.tag} (PATH ${facts.path})`);
      return;
    }
    // A file capability the bounding set lacks makes the kernel refuse the exec (EPERM).
    const kept = (c.securityContext?.capabilities?.drop ?? []).includes('ALL') ? (c.securityContext?.capabilities?.add ?? []) : undefined;
    for (const cap of facts.file_capabilities?.[at] ?? []) {
      const name = cap.toUpperCase().replace(/^CAP_/, '');
      if (kept && !kept.includes(name)) out.push(`${where}: ${context}${at} has the file capability ${cap}, which the container drops: exec fails (EPERM)`);
    }
    const name = path.basename(at);
    if (['sh', 'bash', 'dash', 'ash'].includes(name)) {
      if (args[0] === '-c') {
        shellScript(`${context}${name} -c: `, args[1]);
        return;
      }
      if (args[0] && !args[0].startsWith('-')) {
        const script = files.get(args[0]);
        if (script === undefined) out.push(`${where}: ${context}${name} runs ${args[0]}, which no ConfigMap mounts`);
        else shellScript(`${context}${args[0]}: `, script, args[0]);
      }
    }
  };
  // A script's calls, after those of the files it sources (whose functions it may then call); returns its functions.
  const shellScript = (context: string, script: string, self?: string): Set<string> => {
    const { sources } = parseScript(script);
    const known = new Set<string>();
    for (const source of sources) {
      const f = source.startsWith('$0/') && self ? `${path.posix.dirname(self)}/${source.slice(3)}` : source;
      const lib = files.get(f);
      if (lib === undefined) out.push(`${where}: ${context}sources ${f}, which no ConfigMap mounts`);
      else for (const fn of shellScript(`${context}${f}: `, lib)) known.add(fn);
    }
    const parsed = parseScript(script, known);
    if (!seen.has(script)) {
      seen.add(script);
      for (const call of parsed.calls) check(`${context}line ${call.line}: `, [call.program, ...call.args]);
    }
    return new Set([...known, ...parsed.functions]);
  };
  check('', argv);
  return out;
}

function containerProblems(c: KudoConfig): string[] {
  return manifestProblems(synthAll(c));
}

function manifestProblems(ms: Manifest[]): string[] {
  return ms.flatMap((w) => {
    const pod = w.kind === 'CronJob' ? w.spec.jobTemplate.spec.template.spec : w.spec?.template?.spec;
    if (!pod) return [];
    return [...(pod.initContainers ?? []), ...pod.containers].flatMap((ct: any) => problems(ms, w, ct));
  });
}

const RENDERS: [string, KudoConfig][] = [
  ['the default config', config()],
  [
    'production with monitoring, off-site backups and Argo CD',
    config({
      profile: 'production',
      monitoring: { enabled: true },
      argocd: { enabled: true, repoURL: 'https://git.example.com/kudo.git' },
      backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } },
      networkPolicies: { nodeCidrs: ['10.0.0.0/16'] },
    }),
  ],
  [
    // The secret generator's fetch step, restic in its image (docs/operations.md, "Disaster recovery").
    'a rebuild that restores the Secrets from the off-site backup',
    config({ backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } }, secrets: { restoreFromBackup: 'latest' } }),
  ],
  [
    'CloudNativePG',
    config({
      ...PRODUCTION,
      monitoring: { enabled: true },
      postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo/pg', endpointURL: 'https://s3.example.com' } } },
    }),
  ],
  [
    'an external database',
    config({
      postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'verify-full', ca: { kind: 'Secret', name: 'db-ca', key: 'ca.pem' } } },
    }),
  ],
  [
    'existing Secrets, a public IP, STUN',
    config({
      secrets: { mode: 'existing' },
      coturn: { publicIp: '203.0.113.10' },
      livekit: { rtc: { nodeAddress: 'stun', stunServers: ['stun.example.org:3478'] } },
    }),
  ],
  // Its own start script: the ports from the pod's name, then /livekit-server.
  ['LiveKit off the host network', config({ livekit: { hostNetwork: false, replicas: 2, rtc: { udpPort: 31000, tcpPort: 31100 } } })],
];

describe('every container starts in its image', () => {
  test.each(RENDERS)('%s', (_, c) => {
    expect(containerProblems(c)).toEqual([]);
  });
});

describe('the check can fail', () => {
  const lk = contract.images['docker.io/livekit/livekit-server'];

  test('LiveKit by name, as rendered before the fix, does not resolve in its image; by its path it does', () => {
    expect(resolve(lk, 'livekit-server')).toBeUndefined();
    expect(resolve(lk, '/livekit-server')).toBe('/livekit-server');
    const calls = scriptCalls('set -eu\nset -- --config /run/livekit/config.yaml\nexec livekit-server "$@"');
    expect(calls).toEqual([{ program: 'livekit-server', args: [''], line: 3 }]);
  });

  test('a program called in a pipeline, a command substitution and a trap-free function body is found', () => {
    const calls = scriptCalls('f() { gzip -c; }\npw=$(sed -e s/a/b/ /x | tr -d x)\nf\nif [ -s /y ]; then exec pg_dump -Fc; fi');
    expect(calls.map((c) => c.program)).toEqual(['gzip', 'sed', 'tr', 'pg_dump']);
  });

  test('coturn with every capability dropped, as rendered before the fix, cannot exec its turnserver', () => {
    const ms = synthAll(config());
    const ds = ms.find((m) => m.kind === 'DaemonSet' && m.metadata.name === 'coturn')!;
    const coturn = podSpec(ds).containers.find((x: any) => x.name === 'coturn');
    coturn.securityContext.capabilities = { drop: ['ALL'] };
    expect(manifestProblems(ms)).toEqual([
      'DaemonSet/coturn container coturn: /etc/coturn/start.sh: line 39: /usr/bin/turnserver has the file capability cap_net_bind_service, ' +
        'which the container drops: exec fails (EPERM)',
    ]);
  });

  test('a tag that is not the one the facts were read at is refused', () => {
    const c = config({ livekit: { image: { tag: 'v1.99.0' } } });
    expect(containerProblems(c)).toContain(
      'Deployment/livekit container livekit: image tag v1.99.0, but docs/image-contract.yaml was read at v1.13.11: read the new build file and update the entry',
    );
  });
});
