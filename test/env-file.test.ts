import * as yaml from 'js-yaml';
import { execFileSync } from 'child_process';
import { ConfigError } from '../charts/config';
import { envFileSecrets, parseEnvFile } from '../charts/migrate/env-file';
import { BASIC_FEATURES } from '../charts/secrets';
import { COMPOSE_LINES } from './env-file.cases';
import { config } from './util';

describe('docker compose .env syntax', () => {
  test.each(COMPOSE_LINES)('%j: %s is %j', (text, variable, value) => {
    expect(parseEnvFile(text, '.env').get(variable)).toBe(value);
  });

  test('what it cannot read the way docker compose does is refused, naming the file and line', () => {
    const refused: [string, string][] = [
      ['OK=1\nA="unterminated\n', '.env:2: unterminated "-quoted value of A'],
      ["A='unterminated", ".env:1: unterminated '-quoted value of A"],
      ['A=${NOT_DEFINED}', '.env:1: A refers to ${NOT_DEFINED}, which is not defined above it in the file'],
      ['A=$NOT_DEFINED', '.env:1: A refers to $NOT_DEFINED, which is not defined above it in the file'],
      ['A=${NOT_DEFINED:?is required}', '.env:1: A: NOT_DEFINED: is required'],
      ['OK=1\nINHERITED\n', '.env:2: INHERITED has no "=": docker compose would take its value from your shell'],
      ['A="x" trailing', '.env:1: unexpected text after the closing quote of A'],
      ['BAD KEY=1', '.env:1: a variable name cannot contain a space'],
      ['A-B!=1', '.env:1: unexpected character "!" in a variable name'],
      ['A=${B', '.env:1: A has an unterminated ${'],
    ];
    for (const [text, message] of refused) {
      expect(() => parseEnvFile(text, '.env')).toThrow(message);
      expect(() => parseEnvFile(text, '.env')).toThrow(ConfigError);
    }
  });
});

describe('compose variables to Secrets', () => {
  const file = [
    'MATRIX_DB_PASSWORD="db-pw" # quoted, with a comment',
    'MATRIX_MACAROON_SECRET_KEY=macaroon',
    'MATRIX_FORM_SECRET=form',
    'MATRIX_REGISTRATION_SHARED_SECRET=registration',
    'LIVEKIT_API_KEY=APIkey',
    "LIVEKIT_API_SECRET='lk-secret' # quoted",
    'TURN_SECRET=turn',
    'UNRELATED=ignored',
  ].join('\n');

  test('each variable lands in the Secret and key that the workloads read (a literal table)', () => {
    const { manifests } = envFileSecrets(parseEnvFile(file, '.env'), '.env', config().secrets.refs, config().namespaces, BASIC_FEATURES);
    const byName = Object.fromEntries(manifests.map((m: any) => [`${m.metadata.namespace}/${m.metadata.name}`, m.stringData]));
    expect(byName).toEqual({
      'kudo/kudo-postgres': { password: 'db-pw' },
      'kudo/kudo-synapse': { form_secret: 'form', macaroon_secret_key: 'macaroon', registration_shared_secret: 'registration' },
      'kudo/kudo-turn': { shared_secret: 'turn' },
      'kudo-media/kudo-livekit': { api_key: 'APIkey', api_secret: 'lk-secret' },
      'kudo-media/kudo-turn': { shared_secret: 'turn' },
    });
  });

  test("with CloudNativePG the database password is the operator's: MATRIX_DB_PASSWORD is not written (nor reported as filled)", () => {
    const { manifests, filled } = envFileSecrets(parseEnvFile(file, '.env'), '.env', config().secrets.refs, config().namespaces, {
      workers: false,
      postgres: 'cloudnative-pg',
      backup: false,
      coturn: true,
    });
    expect(manifests.map((m: any) => `${m.metadata.namespace}/${m.metadata.name}`)).not.toContain('kudo/kudo-postgres');
    expect(filled).not.toContain('postgresPassword');
    expect(filled).toContain('formSecret');
  });

  test('an imported signing key keeps the server identity', () => {
    const key = `ed25519 a_AbCd ${'A'.repeat(43)}`;
    const { manifests } = envFileSecrets(new Map(), '.env', config().secrets.refs, config().namespaces, BASIC_FEATURES, `${key}\n`);
    expect(manifests).toEqual([
      {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: { name: 'kudo-synapse', namespace: 'kudo', labels: { 'app.kubernetes.io/managed-by': 'kudo-env-file' } },
        stringData: { 'signing.key': `${key}\n` },
      },
    ]);
  });

  test("a base64 LiveKit secret (openssl rand -base64 32, as compose set-ups made it) is kept as it is, and LiveKit's key file reads it back", () => {
    const secret = 'k3Jd+9/QaZ0xWv7yT2bN4mLp8sR1cE6gH5uI0oP/Yt8=';
    const { manifests } = envFileSecrets(
      parseEnvFile(`LIVEKIT_API_KEY=APIkudo\nLIVEKIT_API_SECRET=${secret}\n`, '.env'),
      '.env',
      config().secrets.refs,
      config().namespaces,
      BASIC_FEATURES,
    );
    const livekit = (manifests as any[]).find((m) => m.metadata.name === 'kudo-livekit' && m.metadata.namespace === 'kudo-media');
    expect(livekit.stringData).toEqual({ api_key: 'APIkudo', api_secret: secret });
    // The start step writes the pair as one double-quoted YAML line; "+", "/" and "=" need no escape there.
    const line = execFileSync('sh', ['-c', 'printf \'"%s": "%s"\\n\' "$1" "$2"', 'sh', 'APIkudo', secret], { encoding: 'utf8' });
    expect(yaml.load(line)).toEqual({ APIkudo: secret });
  });

  test('values no program could read are refused, as ConfigErrors naming the variable', () => {
    const refs = config().secrets.refs;
    const ns = config().namespaces;
    const check = (text: string, message: string) => {
      const run = () => envFileSecrets(parseEnvFile(text, '.env'), '.env', refs, ns, BASIC_FEATURES);
      expect(run).toThrow(message);
      expect(run).toThrow(ConfigError);
    };
    check('LIVEKIT_API_KEY=APIx\n', 'LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be given together');
    check('TURN_SECRET="a b"\n', 'TURN_SECRET contains a blank');
    check('LIVEKIT_API_KEY=AP:I\nLIVEKIT_API_SECRET=x\n', 'LIVEKIT_API_KEY may hold only');
    // A quote or backslash would break the YAML line LiveKit reads its keys from: the refusal says what to do.
    check(
      'LIVEKIT_API_KEY=APIx\nLIVEKIT_API_SECRET=a"b\n',
      'LIVEKIT_API_SECRET may hold only letters, digits and "-", "_", "+", "/", "=" (base64 or base64url); ' +
        'make a new pair (LIVEKIT_API_SECRET=$(openssl rand -base64 32)) and give the app the same one',
    );
    check('MATRIX_DB_PASSWORD="two\nlines"\n', 'MATRIX_DB_PASSWORD contains a line break');
    check('MATRIX_FORM_SECRET=" padded"\n', 'MATRIX_FORM_SECRET starts or ends with a blank');
    expect(() => envFileSecrets(new Map(), '.env', refs, ns, BASIC_FEATURES, 'not a key')).toThrow('the signing key must be one line');
  });
});
