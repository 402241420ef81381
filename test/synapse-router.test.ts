/**
 * The rendered haproxy.cfg, evaluated: its `frontend synapse` section is
 * parsed and run on requests the way HAProxy 3.2 does (configuration manual,
 * doc/configuration.txt of v3.2.0), and the backend it picks is compared with
 * the table's model (routeFor) and with literal expectations.
 *
 * What is modelled, and from which section of the manual:
 * - `acl <name> <fetch> [-i] [-m found] <pattern>...` (7.1): an ACL matches when
 *   any of its patterns does; `path_reg` (7.3.6) is a regex search of `path`,
 *   the part of the URL from the first '/' to before the first '?', not decoded.
 * - `url_param(<name>)` (7.3.6): the query begins after the first '?'; a parameter
 *   ends before '&' or ';'; its name must be followed by '='.
 * - `req.hdr(<name>)` (7.3.6): the last comma-separated value of the header;
 *   `req.fhdr(<name>)` the whole value. In an ACL every value is tried.
 * - `use_backend <b> if <cond>` (4.2): rules in order, the first whose condition
 *   holds wins, `default_backend` otherwise; a condition is ACLs ANDed, `!`
 *   negates, `or`/`||` separates alternatives, `{ ... }` is an anonymous ACL.
 *   `nbsrv(<b>)` is the number of usable servers of a backend (given per test).
 * - `http-request set-var(txn.x) <fetch>,regsub(<re>,<subst>)` (4.2, 7.3.1):
 *   rules in order; regsub replaces the first match, `\N` is group N, a subject
 *   that does not match is returned unchanged; a fetch that finds nothing sets
 *   nothing. Converter arguments are parsed the way src/arg.c make_arg_list does.
 * - `bind :<port> [name <name>]` (5.1), `so_name` (7.3.3: the name of the bind
 *   the request arrived on), `src` (7.3.3: the caller's address), and
 *   `http-request set-header <name> %[<fetch>]|<text>` (4.2: replaces every
 *   occurrence of the header), in order with the set-var rules.
 *
 * Anything else in the section makes the parser throw, so a new kind of rule
 * fails here until it is modelled.
 *
 * Regular expressions: HAProxy compiles them with PCRE2, the test with JS
 * RegExp. Every pattern is first checked to use only a common subset where the
 * two agree (literals, '.', '*', '+', '^' first, '$' last, groups, '|', negated
 * classes of literals). In that subset they differ only where the subject holds
 * a line break ('.' in JS also refuses \r, and PCRE2's '$' also matches before a
 * final \n); HAProxy refuses control characters in a request line and header
 * values end at CR/LF, so no subject here can hold one.
 */
import { workerReplicas } from '../charts/config';
import { haproxyConfig } from '../charts/synapse-router';
import { routeFor, WORKER_TYPE_NAMES, WorkerTypeName } from '../charts/synapse-workers';
import { PATH_CASES } from './synapse-requests.cases';
import { config, find, lazy, PRODUCTION, synthAll } from './util';

const production = config({ ...PRODUCTION });
const replicas = lazy(() => workerReplicas(production));

interface Request {
  /** Path and query, as in the request line. */
  readonly url: string;
  /** Header name (lower case) to value. */
  readonly headers?: Readonly<Record<string, string>>;
  /** The port of the bind it arrived on, and the caller's address (src). */
  readonly port?: number;
  readonly src?: string;
  /** The name of the bind on that port (so_name): route() looks it up. */
  readonly bindName?: string;
}

// ---- Words of a config line (manual 2.2): unquoted whitespace separates words; '...' is kept
// verbatim; in "..." and outside quotes a backslash escapes the next character.
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unclosed ' in ${line}`);
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\') i++;
        cur += line[i++];
      }
      if (i >= line.length) throw new Error(`unclosed " in ${line}`);
      inWord = true;
    } else if (c === '\\') {
      cur += line[++i];
      inWord = true;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** `name(arg,...)` and its arguments, unquoted as src/arg.c make_arg_list does. */
function call(text: string): { name: string; args: string[] } {
  const open = text.indexOf('(');
  if (open < 0) return { name: text, args: [] };
  if (!text.endsWith(')')) throw new Error(`cannot parse ${text}`);
  const inner = text.slice(open + 1, -1);
  const args: string[] = [];
  let cur = '';
  let sq = false;
  let dq = false;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === '"' && !sq) dq = !dq;
    else if (c === "'" && !dq) sq = !sq;
    else if (c === '\\' && !sq && i + 1 < inner.length) {
      const n = inner[i + 1];
      if ('\\ "\''.includes(n)) {
        cur += n;
        i++;
      } else if (n === 'n' || n === 'r' || n === 't') throw new Error(`\\${n} in ${text}: not modelled`);
      else cur += c; // a lone backslash stays
    } else if (c === ',' && !sq && !dq) {
      args.push(cur);
      cur = '';
    } else cur += c;
  }
  if (sq || dq) throw new Error(`unclosed quote in ${text}`);
  args.push(cur);
  return { name: text.slice(0, open), args };
}

/** Splits `fetch,conv(...),conv(...)` at the commas outside parentheses and quotes. */
function chain(expr: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let sq = false;
  let dq = false;
  let cur = '';
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '\\' && !sq) {
      cur += c + expr[++i];
      continue;
    }
    if (c === '"' && !sq) dq = !dq;
    if (c === "'" && !dq) sq = !sq;
    if (!sq && !dq && c === '(') depth++;
    if (!sq && !dq && c === ')') depth--;
    if (c === ',' && depth === 0 && !sq && !dq) {
      parts.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  parts.push(cur);
  return parts;
}

/** PCRE2 and JS RegExp agree on these (see the top of the file). */
function commonSubset(re: string): boolean {
  const literal = '[A-Za-z0-9_/!:%@=" -]';
  const atom = `(?:${literal}|\\.|\\[\\^(?:${literal}|,)+\\])`;
  // Groups may nest; strip innermost groups of atoms and alternatives until none is left.
  let s = re.replace(/^\^/, '').replace(/\$$/, '');
  const group = new RegExp(`\\((?:(?:${atom}|\\$|#)[*+?]?|\\|)*\\)`, 'g');
  for (let before = ''; before !== s;) {
    before = s;
    s = s.replace(group, '#');
  }
  return new RegExp(`^(?:(?:${atom}|#)[*+?]?)*$`).test(s);
}

type Sample = string[] | undefined;
type Vars = Map<string, string>;

function fetch(spec: string, req: Request, vars: Vars): Sample {
  const { name, args } = call(spec);
  const [path, query] = ((i) => (i < 0 ? [req.url, undefined] : [req.url.slice(0, i), req.url.slice(i + 1)]))(req.url.indexOf('?'));
  switch (name) {
    case 'path':
      return [path];
    case 'url_param': {
      if (query === undefined) return undefined;
      const hit = query.split(/[&;]/).find((p) => p.startsWith(`${args[0]}=`));
      return hit === undefined ? undefined : [hit.slice(args[0].length + 1)];
    }
    case 'req.fhdr':
    case 'req.hdr': {
      const v = req.headers?.[args[0].toLowerCase()];
      if (v === undefined) return undefined;
      return name === 'req.fhdr' ? [v] : v.split(',').map((x) => x.trim());
    }
    case 'var':
      return vars.has(args[0]) ? [vars.get(args[0])!] : undefined;
    case 'src':
      if (req.src === undefined) throw new Error(`src: the request names no caller address`);
      return [req.src];
    case 'so_name':
      return req.bindName === undefined ? undefined : [req.bindName];
    case 'nbsrv':
      throw new Error('nbsrv is evaluated by the caller');
    default:
      throw new Error(`fetch ${name} is not modelled`);
  }
}

/** The value a sample expression gives a variable: the last value of the fetch, through its converters. */
function evaluate(expr: string, req: Request, vars: Vars): string | undefined {
  const [f, ...convs] = chain(expr);
  const values = fetch(f, req, vars);
  if (values === undefined) return undefined;
  let v = values[values.length - 1];
  for (const conv of convs) {
    const { name, args } = call(conv);
    if (name !== 'regsub' || args.length !== 2) throw new Error(`converter ${conv} is not modelled`);
    if (!commonSubset(args[0])) throw new Error(`regex ${args[0]} is outside the subset PCRE2 and JS agree on`);
    const m = new RegExp(args[0]).exec(v);
    if (m) v = v.slice(0, m.index) + args[1].replace(/\\(\d)/g, (_, n) => m[Number(n)] ?? '') + v.slice(m.index + m[0].length);
  }
  return v;
}

interface Acl {
  readonly fetch: string;
  readonly flags: readonly string[];
  readonly patterns: readonly string[];
}

function parseAcl(ws: string[]): Acl {
  let i = 0;
  const fetchSpec = ws[i++];
  const flags: string[] = [];
  while (ws[i]?.startsWith('-')) {
    if (ws[i] === '-m') {
      flags.push(`-m ${ws[i + 1]}`);
      i += 2;
    } else flags.push(ws[i++]);
  }
  for (const f of flags) if (!['-i', '-m found', '-m beg', '-m str'].includes(f)) throw new Error(`acl flag ${f} is not modelled`);
  return { fetch: fetchSpec, flags, patterns: ws.slice(i) };
}

function aclMatches(acl: Acl, req: Request, vars: Vars, up: (b: string) => number): boolean {
  const fn = call(acl.fetch);
  if (fn.name === 'nbsrv') {
    const [op, n] = acl.patterns;
    if (op !== 'gt') throw new Error(`nbsrv ${op} is not modelled`);
    return up(fn.args[0]) > Number(n);
  }
  let fetchSpec = acl.fetch;
  let method = acl.flags.find((f) => f.startsWith('-m '))?.slice(3);
  const derived: Record<string, [string, string]> = { path_reg: ['path', 'reg'], path_beg: ['path', 'beg'] };
  if (derived[fn.name]) [fetchSpec, method] = derived[fn.name];
  method ??= 'str';
  const values = fetch(fetchSpec, req, vars);
  if (values === undefined) return false;
  if (method === 'found') return true;
  const ci = acl.flags.includes('-i');
  const fold = (s: string) => (ci ? s.toLowerCase() : s);
  return values.some((v) =>
    acl.patterns.some((p) => {
      switch (method) {
        case 'reg':
          if (!commonSubset(p)) throw new Error(`regex ${p} is outside the subset PCRE2 and JS agree on`);
          return new RegExp(p, ci ? 'i' : '').test(v);
        case 'beg':
          return fold(v).startsWith(fold(p));
        case 'str':
          return fold(v) === fold(p);
        default:
          throw new Error(`match method ${method} is not modelled`);
      }
    }),
  );
}

/** Alternatives (or) of terms (and); a term holds when any ACL declared under its name matches. */
type Condition = readonly (readonly { readonly not: boolean; readonly acls: readonly Acl[] }[])[];

/** `if` words: named ACLs, `!`, `{ anonymous acl }`, alternatives split at `or`/`||`. */
function parseCondition(ws: string[], acls: Map<string, Acl[]>): Condition {
  if (ws.length === 0) return [[]];
  const [kw, ...rest] = ws;
  if (kw !== 'if') throw new Error(`condition ${ws.join(' ')} is not modelled`);
  const alternatives: { not: boolean; acls: Acl[] }[][] = [[]];
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i];
    if (w === 'or' || w === '||') {
      alternatives.push([]);
      continue;
    }
    const not = w.startsWith('!');
    const term = not ? w.slice(1) : w;
    const last = alternatives[alternatives.length - 1];
    if (term === '{' || (term === '' && rest[i + 1] === '{')) {
      if (term === '') i++;
      const close = rest.indexOf('}', i);
      last.push({ not, acls: [parseAcl(rest.slice(i + 1, close))] });
      i = close;
    } else {
      const named = acls.get(term);
      if (!named) throw new Error(`acl ${term} is used before it is declared`);
      last.push({ not, acls: named });
    }
  }
  return alternatives;
}

function holds(cond: Condition, req: Request, vars: Vars, up: (b: string) => number): boolean {
  return cond.some((all) => all.every(({ not, acls }) => acls.some((a) => aclMatches(a, req, vars, up)) !== not));
}

interface Bind {
  readonly port: number;
  readonly name?: string;
}

/** An http-request rule: set a variable to a sample expression, or a header to a `%[<fetch>]` format or a literal. */
type RequestRule =
  | { readonly kind: 'set-var'; readonly name: string; readonly expr: string; readonly cond: Condition }
  | { readonly kind: 'set-header'; readonly header: string; readonly fetch?: string; readonly literal?: string; readonly cond: Condition };

interface Frontend {
  readonly binds: readonly Bind[];
  /** The http-request rules, in order. */
  readonly requestRules: readonly RequestRule[];
  readonly setVars: readonly { readonly name: string; readonly expr: string; readonly cond: Condition }[];
  readonly rules: readonly { readonly backend: string; readonly cond: Condition }[];
  readonly defaultBackend: string;
  readonly regexes: readonly string[];
}

/** Parses a `frontend <name>` section of haproxy.cfg. */
function frontend(cfg: string, name: string): Frontend {
  const lines = cfg.split('\n');
  const start = lines.indexOf(`frontend ${name}`);
  if (start < 0) throw new Error(`no frontend ${name}`);
  const acls = new Map<string, Acl[]>();
  const binds: Bind[] = [];
  const requestRules: RequestRule[] = [];
  const rules: { backend: string; cond: Condition }[] = [];
  const regexes: string[] = [];
  let defaultBackend: string | undefined;
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith(' ')) break;
    const ws = words(line.trim());
    const ifAt = (from: number) => (ws.indexOf('if', from) < 0 ? ws.length : ws.indexOf('if', from));
    switch (ws[0]) {
      case 'bind': {
        // bind :<port> [name <name>]
        const port = /^:(\d+)$/.exec(ws[1]);
        const rest = ws.slice(2);
        if (!port || !(rest.length === 0 || (rest.length === 2 && rest[0] === 'name'))) throw new Error(`bind ${ws.slice(1).join(' ')} is not modelled`);
        binds.push({ port: Number(port[1]), name: rest[1] });
        break;
      }
      case 'acl': {
        const acl = parseAcl(ws.slice(2));
        if (acl.fetch.startsWith('path_reg')) regexes.push(...acl.patterns);
        acls.set(ws[1], [...(acls.get(ws[1]) ?? []), acl]);
        break;
      }
      case 'http-request': {
        if (ws[1] === 'set-header') {
          // set-header <name> <fmt>: a log-format string (manual 8.2.6), modelled as one %[<fetch>], or text without '%'.
          const fmt = /^%\[([a-z_.]+)\]$|^([^%]+)$/.exec(ws[3] ?? '');
          if (!fmt || ifAt(4) !== 4) throw new Error(`set-header format ${ws.slice(3).join(' ')} is not modelled`);
          requestRules.push({ kind: 'set-header', header: ws[2].toLowerCase(), fetch: fmt[1], literal: fmt[2], cond: parseCondition(ws.slice(4), acls) });
          break;
        }
        const m = /^set-var\((.+)\)$/.exec(ws[1]);
        if (!m) throw new Error(`http-request ${ws[1]} is not modelled`);
        const end = ifAt(2);
        if (end !== 3) throw new Error(`set-var expression of several words: ${line}`);
        for (const conv of chain(ws[2]).slice(1)) regexes.push(call(conv).args[0]);
        requestRules.push({ kind: 'set-var', name: m[1], expr: ws[2], cond: parseCondition(ws.slice(end), acls) });
        break;
      }
      case 'use_backend':
        rules.push({ backend: ws[1], cond: parseCondition(ws.slice(2), acls) });
        break;
      case 'default_backend':
        defaultBackend = ws[1];
        break;
      default:
        throw new Error(`"${ws[0]}" in frontend ${name} is not modelled`);
    }
  }
  if (!defaultBackend) throw new Error(`frontend ${name} has no default_backend`);
  const setVars = requestRules.flatMap((r) => (r.kind === 'set-var' ? [r] : []));
  return { binds, requestRules, setVars, rules, defaultBackend, regexes };
}

/**
 * What HAProxy does with a request: its http-request rules in order (variables, headers), then the first
 * use_backend whose condition holds. Returns the headers the backend receives.
 */
function route(fe: Frontend, request: Request, up: (b: string) => number = () => 1): { backend: string; vars: Vars; headers: Record<string, string> } {
  const bind = request.port === undefined ? undefined : fe.binds.find((b) => b.port === request.port);
  if (request.port !== undefined && bind === undefined) throw new Error(`the frontend has no bind on port ${request.port}`);
  const req: Request = { ...request, headers: { ...request.headers }, bindName: bind?.name };
  const headers = req.headers as Record<string, string>;
  const vars: Vars = new Map();
  for (const s of fe.requestRules) {
    if (!holds(s.cond, req, vars, up)) continue;
    if (s.kind === 'set-var') {
      const v = evaluate(s.expr, req, vars);
      if (v !== undefined) vars.set(s.name, v);
    } else {
      // set-header replaces every occurrence; a fetch that finds nothing gives an empty value.
      headers[s.header] = s.literal ?? fetch(s.fetch!, req, vars)?.join(',') ?? '';
    }
  }
  const rule = fe.rules.find((r) => holds(r.cond, req, vars, up));
  return { backend: rule?.backend ?? fe.defaultBackend, vars, headers };
}

const fe = lazy(() => frontend(find(synthAll(production), 'ConfigMap', 'synapse-router').data['haproxy.cfg'] as string, 'synapse'));

describe('the evaluator reads the whole frontend', () => {
  test('every regex of the router is in the subset PCRE2 and JS RegExp agree on', () => {
    expect(fe().regexes.length).toBeGreaterThan(90);
    expect(fe().regexes.filter((re) => !commonSubset(re))).toEqual([]);
  });

  test('the subset check refuses what the two engines read differently', () => {
    for (const re of ['^a\\d', '^(?i)a', '[[:alpha:]]', 'a{2}', '^a$b', '\\Qa\\E', '(?<x>a)']) expect([re, commonSubset(re)]).toEqual([re, false]);
    expect(commonSubset('^/_matrix/client/(api/v1|r0|v3|unstable/.*)/rooms/.*/aliases')).toBe(true);
  });

  test('the rules, in order', () => {
    expect(fe().rules.map((r) => r.backend)).toEqual([
      'initial-synchrotron',
      'stream-writer',
      'media-repository',
      'event-creator',
      'initial-synchrotron',
      'synchrotron',
      'federation-inbound',
      'federation-reader',
      'client-reader',
    ]);
    expect(fe().defaultBackend).toBe('main');
    expect(fe().setVars.map((s) => s.name)).toEqual(['txn.user', 'txn.user', 'txn.origin', 'txn.room']);
  });
});

describe('the rendered router sends each request where the table says', () => {
  test.each(PATH_CASES)('%s -> %s', (url, process) => {
    expect(route(fe(), { url }).backend).toBe(process);
    expect(routeFor(url, replicas())).toBe(process);
  });

  // Requests two families' patterns match: the order of the rules decides.
  const twoFamilies: [string, string, string[]][] = [
    // A message whose transaction ID is "messages": event sending and room pagination.
    ['/_matrix/client/v3/rooms/!r:example.com/send/m.room.message/messages', 'event-creator', ['event-creator', 'client-reader']],
    // A state event with the state key "members": event sending and the member list.
    ['/_matrix/client/v3/rooms/!r:example.com/state/org.example.team/members', 'event-creator', ['event-creator', 'client-reader']],
    // A transaction ID beginning with "typing": the stream writer's pattern has no end anchor.
    ['/_matrix/client/v3/rooms/!r:example.com/send/m.room.message/typing1', 'stream-writer', ['stream-writer', 'event-creator']],
    // A redaction whose transaction ID is "aliases".
    ['/_matrix/client/v3/rooms/!r:example.com/redact/$e/aliases', 'event-creator', ['event-creator', 'client-reader']],
    // A filter ID "tags" (Synapse issues numbers, so only a crafted request does this).
    ['/_matrix/client/v3/user/@a:example.com/filter/tags', 'stream-writer', ['stream-writer', 'client-reader']],
  ];

  test.each(twoFamilies)('%s -> %s (matched by %j)', (url, process, families) => {
    const matching = fe()
      .rules.filter((r) => holds(r.cond, { url }, new Map(), () => 1))
      .map((r) => r.backend);
    expect(matching).toEqual(families);
    expect(route(fe(), { url }).backend).toBe(process);
    expect(routeFor(url, replicas())).toBe(process);
  });

  test('with some types not running, the router of that config and routeFor agree on every request', () => {
    for (const off of [
      ['client-reader'],
      ['initial-synchrotron'],
      ['synchrotron', 'initial-synchrotron'],
      ['event-creator', 'federation-reader'],
      ['stream-writer', 'media-repository'],
    ] as WorkerTypeName[][]) {
      const few = { ...replicas(), ...Object.fromEntries(off.map((t) => [t, 0])) };
      const small = frontend(haproxyConfig({ namespace: 'kudo', main: { service: 'synapse', port: 8008 }, workers: few }), 'synapse');
      for (const url of [...PATH_CASES.map(([u]) => u), ...twoFamilies.map(([u]) => u)]) {
        expect([off, url, route(small, { url }).backend]).toEqual([off, url, routeFor(url, few)]);
      }
    }
  });

  test('a pool with no server up: the next rule that matches, else the main process; stream writer and media wait for theirs', () => {
    const down =
      (...pools: string[]) =>
      (b: string) =>
        pools.includes(b) ? 0 : 1;
    expect(route(fe(), { url: '/_matrix/client/v3/sync?since=s1' }, down('synchrotron')).backend).toBe('main');
    // An initial sync with its pool down is a /sync like any other.
    expect(route(fe(), { url: '/_matrix/client/v3/sync' }, down('initial-synchrotron')).backend).toBe('synchrotron');
    expect(route(fe(), { url: '/_matrix/client/v3/rooms/!r:example.com/send/m.room.message/messages' }, down('event-creator')).backend).toBe('client-reader');
    expect(route(fe(), { url: '/_matrix/client/v3/rooms/!r:example.com/send/m.room.message/t1' }, down('event-creator')).backend).toBe('main');
    expect(route(fe(), { url: '/_matrix/client/v3/keys/upload' }, down('stream-writer')).backend).toBe('stream-writer');
    expect(route(fe(), { url: '/_matrix/media/v3/upload' }, down('media-repository')).backend).toBe('media-repository');
    for (const t of WORKER_TYPE_NAMES) expect(route(fe(), { url: '/_matrix/client/v3/logout' }, down(t)).backend).toBe('main');
  });
});

describe('the variables the pools are balanced by', () => {
  const vars = (req: Request) => Object.fromEntries(route(fe(), req).vars);

  test('txn.user: the localpart in a Synapse access token, from the header, else from the query', () => {
    expect(vars({ url: '/_matrix/client/v3/sync', headers: { authorization: 'Bearer syt_YWxpY2U_hWgHeXXjNWsHHxSmvvbB_3SoDmG' } })['txn.user']).toBe('YWxpY2U');
    expect(vars({ url: '/_matrix/client/v3/sync?since=s1&access_token=syt_Ym9i_pGxZwQxJXnnWbVKhXNdQ_0y8Ez1' })['txn.user']).toBe('Ym9i');
    // The header wins over the query.
    expect(vars({ url: '/_matrix/client/v3/sync?access_token=syt_Ym9i_x_y', headers: { authorization: 'Bearer syt_YWxpY2U_x_y' } })['txn.user']).toBe('YWxpY2U');
    // A token of another shape: the whole header, the same for every request with it.
    expect(vars({ url: '/_matrix/client/v3/sync', headers: { authorization: 'Bearer opaque-token' } })['txn.user']).toBe('Bearer opaque-token');
    expect(vars({ url: '/_matrix/client/v3/sync' })['txn.user']).toBeUndefined();
  });

  test('txn.origin: the sending server of a federation request, as Synapse writes its X-Matrix header', () => {
    // synapse/http/matrixfederationclient.py: X-Matrix origin="%s",key="%s",sig="%s",destination="%s"
    const xMatrix = (origin: string, sig: string) => `X-Matrix origin="${origin}",key="ed25519:a_abcd",sig="${sig}",destination="example.com"`;
    expect(vars({ url: '/_matrix/federation/v1/send/1', headers: { authorization: xMatrix('other.org', 'c2lnMQ') } })['txn.origin']).toBe('other.org');
    expect(vars({ url: '/_matrix/federation/v1/send/2', headers: { authorization: xMatrix('third.net:8448', 'c2lnMg') } })['txn.origin']).toBe('third.net:8448');
    // The older form, with the origin unquoted and first.
    expect(vars({ url: '/_matrix/federation/v1/send/3', headers: { authorization: 'X-Matrix origin=other.org,key="ed25519:a",sig="c2ln"' } })['txn.origin']).toBe('other.org');
    expect(vars({ url: '/_matrix/client/v3/sync', headers: { authorization: 'Bearer syt_YWxpY2U_x_y' } })['txn.origin']).toBeUndefined();
  });

  test('txn.room: the room ID in the path; a path without one hashes as itself', () => {
    expect(vars({ url: '/_matrix/client/v3/rooms/!r:example.com/send/m.room.message/t1' })['txn.room']).toBe('!r:example.com');
    expect(vars({ url: '/_matrix/client/v3/rooms/%21r%3Aexample.com/state/m.room.name/' })['txn.room']).toBe('%21r%3Aexample.com');
    expect(vars({ url: '/_matrix/client/v3/user/@a:example.com/rooms/!r:example.com/tags/u.work' })['txn.room']).toBe('!r:example.com');
    expect(vars({ url: '/_matrix/client/v3/createRoom' })['txn.room']).toBe('/_matrix/client/v3/createRoom');
  });
});

describe('X-Forwarded-For: the client address Synapse counts (rate limits, the sessions an admin sees)', () => {
  // Every Synapse process believes the header (x_forwarded: true), and only the router reaches them;
  // the router believes only the public proxy, which alone reaches 8009 (the NetworkPolicies).
  const forged = { url: '/_matrix/client/v3/account/whoami', headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' } };

  test('the router listens on 8008 for callers inside the cluster and on 8009 for the public proxy', () => {
    expect(fe().binds).toEqual([
      { port: 8008, name: 'internal' },
      { port: 8009, name: 'public' },
    ]);
  });

  test("on 8008 the header is the caller's own address and plain HTTP, whatever it sent", () => {
    expect(route(fe(), { ...forged, port: 8008, src: '10.42.0.15' }).headers).toEqual({ 'x-forwarded-for': '10.42.0.15', 'x-forwarded-proto': 'http' });
    expect(route(fe(), { url: forged.url, port: 8008, src: '10.42.0.15' }).headers).toEqual({ 'x-forwarded-for': '10.42.0.15', 'x-forwarded-proto': 'http' });
  });

  test("on 8009 the public proxy's headers pass as it set them", () => {
    const proxied = { 'x-forwarded-for': '198.51.100.23', 'x-forwarded-proto': 'https' };
    expect(route(fe(), { url: forged.url, headers: proxied, port: 8009, src: '10.42.1.3' }).headers).toEqual(proxied);
  });

  test('both ports route by the same rules', () => {
    for (const [url] of PATH_CASES) {
      expect([url, route(fe(), { url, port: 8008, src: '10.42.0.15' }).backend]).toEqual([url, route(fe(), { url, port: 8009, src: '10.42.1.3' }).backend]);
    }
  });
});
