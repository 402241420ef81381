/**
 * Importing the docker-compose era's `.env` file: its secrets become Secret
 * manifests (in secrets.local/, never in dist/), so a migrated install keeps
 * its database password, macaroon key, LiveKit keys and TURN secret.
 *
 * The file is read the way docker compose reads it (compose-go's dotenv
 * rules, as Docker's "env file syntax" page describes them): `#` comment
 * lines, `export `, `=` or `:`, inline comments after a blank on unquoted
 * values, single quotes literal, double quotes with backslash escapes and
 * multi-line values, `${VAR}` interpolation. A value read differently would
 * silently invalidate every token signed with it, so what this reader cannot
 * reproduce exactly (a variable from your shell, a reference to something
 * the file does not define) is refused rather than guessed.
 */
import { ConfigError, SecretRefs } from '../config';
import { NamespaceRole, SECRET_VALUES, SecretFeatures, SecretValueName, secretPlan } from '../secrets';

/** The docker-compose .env variables this project reads, and the values they fill. */
export const ENV_FILE_VARIABLES: ReadonlyMap<string, SecretValueName> = new Map(SECRET_VALUES.filter((v) => v.envVar !== undefined).map((v) => [v.envVar!, v.name]));

// compose-go's "space": not a line break.
const BLANK = /[\t\v\f\r \u0085\u00a0]/;
const NAME_START = /[_A-Za-z]/;
const NAME_CHAR = /[_A-Za-z0-9]/;

/** Parses a docker-compose `.env` file into its variables, in file order. */
export function parseEnvFile(text: string, file: string): Map<string, string> {
  const src = text.startsWith('\ufeff') ? text.slice(1) : text;
  const values = new Map<string, string>();
  let i = 0;
  let line = 1;
  const fail = (at: number, message: string): never => {
    throw new ConfigError(`${file}:${at}: ${message}`);
  };
  const skipBlanks = () => {
    while (i < src.length && BLANK.test(src[i])) i++;
  };

  while (true) {
    // The next statement: skip blank lines and comment lines.
    while (i < src.length && (BLANK.test(src[i]) || src[i] === '\n')) {
      if (src[i] === '\n') line++;
      i++;
    }
    if (i >= src.length) break;
    if (src[i] === '#') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    const start = line;
    if (/^export[\t ]/.test(src.slice(i, i + 7))) {
      i += 6;
      skipBlanks();
    }

    // The name, up to "=" or ":" (compose accepts both).
    const nameStart = i;
    while (i < src.length && !'=:\n'.includes(src[i])) {
      if (!/[\p{L}\p{N}_.\-[\]\t\v\f\r \u0085\u00a0]/u.test(src[i])) fail(start, `unexpected character ${JSON.stringify(src[i])} in a variable name`);
      i++;
    }
    const name = src.slice(nameStart, i).replace(/[\s\u0085\u00a0]+$/, '');
    const noValue = i >= src.length || src[i] === '\n';
    if (noValue && /[\s\u0085\u00a0]/.test(name)) fail(start, `expected KEY=VALUE, found ${JSON.stringify(name.slice(0, 40))}`);
    if (/[\s\u0085\u00a0]/.test(name)) fail(start, 'a variable name cannot contain a space');
    if (noValue) {
      fail(start, `${name} has no "=": docker compose would take its value from your shell, which kudo does not read; write the value in the file`);
    }
    i++;
    skipBlanks();

    let value: string;
    const quote = src[i];
    if (quote === '"' || quote === "'") {
      // A quoted value runs to the closing quote, across lines; \<quote> does not close it.
      let raw = '';
      let escaped = false;
      let closed = false;
      for (i++; i < src.length; i++) {
        const c = src[i];
        if (c === '\n') line++;
        if (escaped) {
          raw += c === quote ? c : `\\${c}`;
          escaped = false;
        } else if (c === '\\') {
          escaped = true;
        } else if (c === quote) {
          closed = true;
          i++;
          break;
        } else {
          raw += c;
        }
      }
      if (!closed) fail(start, `unterminated ${quote}-quoted value of ${name}`);
      const failHere = (m: string) => fail(start, m);
      value = quote === '"' ? interpolate(unescape(raw, failHere), values, name, failHere) : raw;
      // After the closing quote only blanks or a comment.
      skipBlanks();
      if (i < src.length && src[i] !== '\n' && src[i] !== '#') fail(line, `unexpected text after the closing quote of ${name}`);
    } else {
      const end = src.indexOf('\n', i);
      let raw = src.slice(i, end < 0 ? src.length : end);
      i = end < 0 ? src.length : end;
      // An inline comment needs a blank before its "#".
      const comment = raw.indexOf(' #');
      if (comment >= 0) raw = raw.slice(0, comment);
      value = interpolate(raw.replace(/[\s\u0085\u00a0]+$/, ''), values, name, (m) => fail(start, m));
    }
    values.set(name, value);
  }
  return values;
}

/**
 * Double-quoted escapes: \n \r \t \a \b \f \v \\ \" and \$ (kept as "$$", a
 * literal "$"); any other backslash stays as it is. compose's octal escapes
 * (\0NNN) have corner cases of their own: refused.
 */
function unescape(raw: string, fail: (message: string) => never): string {
  const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b', f: '\f', v: '\v', '\\': '\\', '"': '"', $: '$$' };
  return raw.replace(/\\([\s\S])/g, (match, c: string) => {
    if (c === '0') fail('an octal escape (\\0...) in a double-quoted value is not read here; write the character itself');
    return simple[c] ?? match;
  });
}

/**
 * `$$`, `$NAME`, `${NAME}` and `${NAME<op>word}` (op one of :- - :? ? :+ +),
 * from the variables defined above in the same file. A `$` followed by
 * anything else is a literal `$`, as in compose.
 */
function interpolate(value: string, defined: ReadonlyMap<string, string>, name: string, fail: (message: string) => never): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    const next = value[i + 1];
    if (c !== '$' || next === undefined) {
      out += c;
    } else if (next === '$') {
      out += '$';
      i++;
    } else if (NAME_START.test(next)) {
      let j = i + 1;
      while (j < value.length && NAME_CHAR.test(value[j])) j++;
      const ref = value.slice(i + 1, j);
      if (!defined.has(ref)) fail(`${name} refers to $${ref}, which is not defined above it in the file`);
      out += defined.get(ref);
      i = j - 1;
    } else if (next === '{') {
      const close = value.indexOf('}', i + 2);
      if (close < 0) fail(`${name} has an unterminated \${`);
      const body = value.slice(i + 2, close);
      const m = /^([_A-Za-z][_A-Za-z0-9]*)(?:(:?[-?+])(.*))?$/s.exec(body);
      if (!m || m[3]?.includes('$')) fail(`${name}: \${${body}} is not an interpolation kudo can read the way docker compose does`);
      const [, ref, op, word] = m;
      const has = defined.has(ref);
      const v = defined.get(ref) ?? '';
      const present = op?.startsWith(':') ? v !== '' : has;
      if (op === undefined) {
        if (!has) fail(`${name} refers to \${${ref}}, which is not defined above it in the file`);
        out += v;
      } else if (op.endsWith('-')) {
        out += present ? v : word;
      } else if (op.endsWith('+')) {
        out += present ? word : '';
      } else {
        if (!present) fail(`${name}: ${ref}: ${word}`);
        out += v;
      }
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

const SIGNING_KEY = /^ed25519 [A-Za-z0-9_]+ [A-Za-z0-9+/]{43}=?$/;

/**
 * Secret manifests for the values a docker-compose .env file holds (and an
 * imported signing key). Each value goes to every namespace that reads it.
 * Values the file lacks are left to the generator.
 */
export function envFileSecrets(
  env: ReadonlyMap<string, string>,
  file: string,
  refs: SecretRefs,
  namespaces: Record<NamespaceRole, string>,
  features: SecretFeatures,
  signingKey?: string,
): { manifests: object[]; filled: SecretValueName[] } {
  const values = new Map<SecretValueName, string>();
  const fail = (message: string): never => {
    throw new ConfigError(`${file}: ${message}`);
  };
  for (const [variable, name] of ENV_FILE_VARIABLES) {
    const v = env.get(variable);
    if (v === undefined || v === '') continue;
    if (/[\r\n]/.test(v)) fail(`${variable} contains a line break`);
    // Every program strips or splits on surrounding blanks; coturn and Redis read values from config lines.
    if (v !== v.trim()) fail(`${variable} starts or ends with a blank`);
    if (name === 'turnSharedSecret' && /\s/.test(v)) fail(`${variable} contains a blank, which coturn's config cannot carry`);
    // LiveKit takes the secret as an opaque string; what limits it is the key file's double-quoted YAML line
    // (livekitWriteConfig), where a quote or backslash would end or escape it. base64's "+", "/", "=" are safe there.
    if ((name === 'livekitApiKey' || name === 'livekitApiSecret') && !/^[A-Za-z0-9_+/=-]+$/.test(v)) {
      fail(
        `${variable} may hold only letters, digits and "-", "_", "+", "/", "=" (base64 or base64url); ` +
          'make a new pair (LIVEKIT_API_SECRET=$(openssl rand -base64 32)) and give the app the same one',
      );
    }
    values.set(name, v);
  }
  if (values.has('livekitApiKey') !== values.has('livekitApiSecret')) {
    fail('LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be given together (the app signs tokens with the pair)');
  }
  if (signingKey !== undefined) {
    const key = signingKey.trim();
    if (!SIGNING_KEY.test(key)) throw new ConfigError('the signing key must be one line "ed25519 <key id> <base64 seed>", as Synapse writes it');
    values.set('signingKey', `${key}\n`);
  }
  const secrets = new Map<string, { namespace: string; name: string; stringData: Record<string, string> }>();
  const filled: SecretValueName[] = [];
  // Only values this stack reads: with CloudNativePG, for one, the database password is the operator's.
  for (const planned of secretPlan(refs, namespaces, features)) {
    const value = values.get(planned.name);
    if (value === undefined) continue;
    filled.push(planned.name);
    for (const d of planned.destinations) {
      const id = `${d.namespace}/${d.secret}`;
      if (!secrets.has(id)) secrets.set(id, { namespace: d.namespace, name: d.secret, stringData: {} });
      secrets.get(id)!.stringData[d.key] = value;
    }
  }
  const manifests = [...secrets.values()]
    .sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
    .map((s) => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: s.name, namespace: s.namespace, labels: { 'app.kubernetes.io/managed-by': 'kudo-env-file' } },
      type: 'Opaque',
      stringData: Object.fromEntries(Object.entries(s.stringData).sort(([a], [b]) => a.localeCompare(b))),
    }));
  return { manifests, filled };
}
