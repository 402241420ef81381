/**
 * synapse.extraConfig (the operator's homeserver.yaml settings) and
 * synapse.extraSecretFiles (the files their *_path settings read).
 */
import * as yaml from 'js-yaml';
import { extraConfigProblems, synapseConfigFiles } from '../charts/synapse';
import { synapseConfigErrors, synapseSchemaKeys } from './synapse-schema';
import { config, container, find, Manifest, podSpec, PRODUCTION, synthAll, synthChart } from './util';

const homeserver = (ms: Manifest[]) => yaml.load(find(ms, 'ConfigMap', 'synapse-config').data['homeserver.yaml']) as any;
const configMap = (ms: Manifest[]) => find(ms, 'ConfigMap', 'synapse-config').data as Record<string, string>;

const oidc = {
  idp_id: 'kudo',
  idp_name: 'Kudo SSO',
  issuer: 'https://sso.example.org/',
  client_id: 'synapse',
  client_secret_path: '/secrets/extra/oidc_client_secret',
  scopes: ['openid', 'profile'],
  user_mapping_provider: { config: { localpart_template: '{{ user.preferred_username }}' } },
};
const extra = {
  email: { smtp_host: 'smtp-relay.mail.svc', smtp_port: 25, notif_from: 'Kudo <noreply@example.org>', enable_notifs: true },
  oidc_providers: [oidc],
  rc_message: { per_second: 0.5, burst_count: 15 },
  rc_login: { address: { per_second: 0.1, burst_count: 5 } },
  app_service_config_files: ['/secrets/extra/bridge.yaml'],
};
const files = [
  { secret: 'kudo-sso', key: 'client_secret', file: 'oidc_client_secret' },
  { secret: 'kudo-bridge', key: 'registration.yaml', file: 'bridge.yaml' },
];
const withExtra = (more: object = {}) => config({ ...more, synapse: { extraConfig: extra, extraSecretFiles: files, ...(more as any).synapse } });

test("the settings are merged into homeserver.yaml at the top level; the stack's own stay", () => {
  const hs = homeserver(synthChart('20-synapse', withExtra()));
  expect(hs).toMatchObject(extra);
  const plain = homeserver(synthChart('20-synapse'));
  for (const [key, value] of Object.entries(plain)) expect(hs[key]).toEqual(value);
  // Nothing else changed: the stack's keys first, in their order, then the operator's.
  expect(Object.keys(hs)).toEqual([...Object.keys(plain), ...Object.keys(extra)]);
});

test('the defaults add nothing: no extra keys, no extra files', () => {
  expect(config().synapse.extraConfig).toEqual({});
  expect(config().synapse.extraSecretFiles).toEqual([]);
  const secrets = podSpec(find(synthChart('20-synapse'), 'Deployment', 'synapse')).volumes.find((v: any) => v.name === 'secrets');
  expect(secrets.projected.sources.flatMap((s: any) => s.secret.items.map((i: any) => i.path)).filter((p: string) => p.startsWith('extra/'))).toEqual([]);
});

test('the Secret files are mounted read-only at /secrets/extra/<file> in the main process and every worker', () => {
  const ms = synthAll(withExtra({ ...PRODUCTION }));
  const synapsePods = ms.filter((m) => ['Deployment', 'StatefulSet'].includes(m.kind) && m.metadata.name.startsWith('synapse') && m.metadata.name !== 'synapse-router');
  expect(synapsePods.length).toBeGreaterThan(5);
  for (const w of synapsePods) {
    const volume = podSpec(w).volumes.find((v: any) => v.name === 'secrets');
    const sources = volume.projected.sources.map((s: any) => s.secret);
    expect(sources).toEqual(
      expect.arrayContaining([
        { name: 'kudo-sso', items: [{ key: 'client_secret', path: 'extra/oidc_client_secret' }] },
        { name: 'kudo-bridge', items: [{ key: 'registration.yaml', path: 'extra/bridge.yaml' }] },
      ]),
    );
    expect(volume.projected.defaultMode).toBe(0o440);
    expect(container(w, 'synapse').volumeMounts).toContainEqual({ name: 'secrets', mountPath: '/secrets', readOnly: true });
  }
  // Every process reads the one homeserver.yaml.
  expect(homeserver(ms).oidc_providers).toEqual([oidc]);
});

test('a change of the settings rolls every Synapse pod (config hash)', () => {
  const hash = (c = config()) => find(synthChart('20-synapse', c), 'Deployment', 'synapse').spec.template.metadata.annotations['checksum/config'];
  expect(hash(withExtra())).not.toBe(hash());
});

describe('keys the stack writes are refused, with the reason', () => {
  test.each<[string, unknown, string]>([
    ['listeners', [], 'synapse.extraConfig.listeners: kept by the stack: the Services, probes, router and NetworkPolicies are built around'],
    ['database', { name: 'sqlite3' }, 'synapse.extraConfig.database: kept by the stack: set postgres.*'],
    ['server_name', 'other.org', 'synapse.extraConfig.server_name: kept by the stack: set serverName'],
    ['public_baseurl', 'https://x/', 'synapse.extraConfig.public_baseurl: kept by the stack: set hosts.matrix'],
    ['signing_key_path', '/data/key', 'synapse.extraConfig.signing_key_path: kept by the stack: it names a Secret file of secrets.refs'],
    [
      'macaroon_secret_key',
      'x',
      'synapse.extraConfig.macaroon_secret_key: kept by the stack: the stack sets macaroon_secret_key_path to a Secret file of secrets.refs, and Synapse refuses both',
    ],
    ['form_secret_path', '/x', 'synapse.extraConfig.form_secret_path: kept by the stack'],
    ['registration_shared_secret', 'x', 'synapse.extraConfig.registration_shared_secret: kept by the stack: the stack sets registration_shared_secret_path'],
    ['media_store_path', '/data', 'synapse.extraConfig.media_store_path: kept by the stack: it is where the media volume'],
    ['redis', { enabled: true }, 'synapse.extraConfig.redis: kept by the stack: it follows synapse.workers'],
    ['instance_map', {}, 'synapse.extraConfig.instance_map: kept by the stack: it follows synapse.workers'],
    ['stream_writers', {}, 'synapse.extraConfig.stream_writers: kept by the stack: it follows synapse.workers'],
    ['worker_replication_secret', 'x', 'synapse.extraConfig.worker_replication_secret: kept by the stack'],
    ['worker_app', 'x', 'synapse.extraConfig.worker_app: kept by the stack'],
    ['worker_name', 'x', 'synapse.extraConfig.worker_name: kept by the stack: each worker process is named after its pod'],
    ['worker_daemonize', true, "synapse.extraConfig.worker_daemonize: kept by the stack: each worker process's settings follow synapse.workers"],
    ['log_config', '/x', 'synapse.extraConfig.log_config: kept by the stack: set synapse.logLevel'],
    ['turn_uris', [], "synapse.extraConfig.turn_uris: kept by the stack: TURN is the stack's coturn"],
    ['turn_password', 'x', "synapse.extraConfig.turn_password: kept by the stack: TURN is the stack's coturn"],
    ['max_upload_size', '1G', 'synapse.extraConfig.max_upload_size: kept by the stack: set synapse.maxUploadSize'],
    ['enable_registration', true, 'synapse.extraConfig.enable_registration: kept by the stack: set synapse.enableRegistration'],
  ])('%s', (key, value, message) => {
    expect(() => config({ synapse: { extraConfig: { [key]: value } } })).toThrow(message);
  });

  test('the refused set is what synapseConfigFiles writes, with workers and without: every top-level key of every file', () => {
    for (const c of [config(), config({ ...PRODUCTION }), config({ postgres: { mode: 'external', external: { host: 'db.example.org', ca: { name: 'ca' } } } })]) {
      const data = configMap(synthChart('20-synapse', c));
      const written = new Set(
        Object.entries(data)
          .filter(([f]) => f.endsWith('.yaml') && f !== 'log.yaml')
          .flatMap(([, text]) => Object.keys(yaml.load(text) as object)),
      );
      expect(written.size).toBeGreaterThan(10);
      const refused = [...written].filter((k) => extraConfigProblems({ [k]: 'x' }, []).some((p) => p.startsWith(`synapse.extraConfig.${k}: kept by the stack`)));
      // The notary servers are the one setting the operator may replace.
      expect([...written].filter((k) => !refused.includes(k)).sort()).toEqual(['suppress_key_server_warning', 'trusted_key_servers']);
    }
  });

  test('the notary servers may be replaced (an isolated homeserver lists none)', () => {
    const hs = homeserver(synthChart('20-synapse', config({ synapse: { extraConfig: { trusted_key_servers: [] } } })));
    expect(hs.trusted_key_servers).toEqual([]);
    expect(Object.keys(hs).filter((k) => k === 'trusted_key_servers')).toHaveLength(1);
  });

  test('the chart refuses them too when built without the config', () => {
    const props = { extraConfig: { listeners: [] } } as any;
    expect(() => synapseConfigFiles(props)).toThrow(/synapse.extraConfig.listeners: kept by the stack/);
  });
});

describe('secrets written inline are refused; their file forms are offered', () => {
  test.each<[string, object, string]>([
    [
      'email.smtp_pass',
      { email: { smtp_host: 'smtp.example.org', smtp_user: 'kudo', smtp_pass: 'hunter2' } },
      'synapse.extraConfig.email.smtp_pass: a secret here would sit in plain text in the synapse-config ConfigMap (and in Git with the rendered files), ' +
        'and Synapse reads it from nowhere else; use an SMTP relay that accepts Synapse without a password',
    ],
    [
      'oidc client_secret',
      { oidc_providers: [{ ...oidc, client_secret_path: undefined, client_secret: 'hunter2' }] },
      'synapse.extraConfig.oidc_providers[0].client_secret: a secret here would sit in plain text in the synapse-config ConfigMap (and in Git with the rendered files); ' +
        'set client_secret_path beside it to a file of synapse.extraSecretFiles (/secrets/extra/<file>) instead',
    ],
    [
      'oidc jwt key',
      { oidc_providers: [{ idp_id: 'a', client_secret_jwt_key: { key: '-----BEGIN PRIVATE KEY-----', jwt_header: { alg: 'ES256' } } }] },
      'synapse.extraConfig.oidc_providers[0].client_secret_jwt_key.key: a secret here would sit in plain text in the synapse-config ConfigMap (and in Git with the rendered files); set key_file beside it',
    ],
    [
      'recaptcha',
      { recaptcha_private_key: 'x' },
      'synapse.extraConfig.recaptcha_private_key: a secret here would sit in plain text in the synapse-config ConfigMap (and in Git with the rendered files); set recaptcha_private_key_path',
    ],
    [
      // Not a secret, but Synapse refuses it inline under --no-secrets-in-config, so it must be a file too.
      'recaptcha public key',
      { recaptcha_public_key: 'x' },
      'synapse.extraConfig.recaptcha_public_key: a secret here would sit in plain text in the synapse-config ConfigMap (and in Git with the rendered files); set recaptcha_public_key_path beside it to a file of synapse.extraSecretFiles (/secrets/extra/<file>) instead',
    ],
    ['MAS', { matrix_authentication_service: { enabled: true, secret: 'x' } }, 'synapse.extraConfig.matrix_authentication_service.secret: a secret here'],
    ['JWT with a shared secret', { jwt_config: { enabled: true, algorithm: 'HS256', secret: 'x' } }, 'synapse.extraConfig.jwt_config.secret: a secret here'],
    ['JWT with a secret that is no text', { jwt_config: { enabled: true, algorithm: 'HS256', secret: 12345 } }, 'synapse.extraConfig.jwt_config.secret: a secret here'],
    [
      // A PEM file pasted whole: the public key follows the private one, which must not sit in a ConfigMap.
      'JWT with a private key before the public one',
      {
        jwt_config: {
          enabled: true,
          algorithm: 'RS256',
          secret: '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n',
        },
      },
      'synapse.extraConfig.jwt_config.secret: a secret here',
    ],
    [
      "a module's token",
      { modules: [{ module: 'm.M', config: { api_token: 'x' } }] },
      'synapse.extraConfig.modules[0].config.api_token: looks like a secret, and a secret here would sit in plain text in the synapse-config ConfigMap (and in Git with the rendered files); set its file form (api_token_path, where Synapse has one)',
    ],
    [
      'a file that is not mounted',
      { oidc_providers: [oidc] },
      'synapse.extraConfig.oidc_providers[0].client_secret_path: /secrets/extra/oidc_client_secret is not mounted; synapse.extraSecretFiles is empty (add { secret, key, file: "oidc_client_secret" })',
    ],
  ])('%s', (_, extraConfig, message) => {
    expect(() => config({ synapse: { extraConfig } })).toThrow(message);
  });

  test('allowed: JWT with a public key, and settings merely named like secrets that hold no string', () => {
    const hs = homeserver(
      synthChart(
        '20-synapse',
        config({
          synapse: {
            extraConfig: {
              // A public key pasted after a line break is a public key still.
              jwt_config: { enabled: true, algorithm: 'RS256', secret: '\n-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n' },
              registration_requires_token: false,
              // A setting left empty (YAML's null) holds no secret and no file reference.
              default_identity_server: null,
            },
          },
        }),
      ),
    );
    expect(hs.jwt_config.algorithm).toBe('RS256');
    expect(hs.registration_requires_token).toBe(false);
    expect(hs.default_identity_server).toBeNull();
  });

  test("every secret setting of Synapse's schema that has a *_path form is refused inline, pointing at that form (or kept by the stack)", () => {
    const keys = synapseSchemaKeys();
    const pairs = keys.filter((k) => keys.includes(`${k}_path`) && /(secret|password|pass|key|token)$/.test(k));
    expect(pairs).toEqual(expect.arrayContaining(['oidc_providers[].client_secret', 'recaptcha_private_key', 'matrix_authentication_service.secret', 'form_secret']));
    for (const key of pairs) {
      // { a: { b: [ { c: 'x' } ] } } for "a.b[].c".
      const value = key
        .split('.')
        .reverse()
        .reduce<unknown>((inner, part) => (part.endsWith('[]') ? { [part.slice(0, -2)]: [inner] } : { [part]: inner }), 'inline-secret');
      const problems = extraConfigProblems(value as Record<string, unknown>, []);
      const field = key.split('.').pop()!;
      expect({ key, problems }).toEqual({ key, problems: [expect.stringMatching(new RegExp(`(set ${field}_path beside it|kept by the stack)`))] });
    }
  });

  test('the table\'s "no file form" entries really have none in Synapse\'s schema', () => {
    const keys = synapseSchemaKeys();
    for (const key of ['email.smtp_pass', 'jwt_config.secret', 'manhole_settings.password']) {
      expect(keys).toContain(key);
      expect(keys).not.toContain(`${key}_path`);
    }
  });
});

describe('synapse.extraSecretFiles', () => {
  test('refused: a file name that is not a plain name, one used twice, a Secret name Kubernetes refuses', () => {
    const bad = (extraSecretFiles: object[]) => () => config({ synapse: { extraSecretFiles } });
    expect(bad([{ secret: 'a', key: 'k', file: '../escape' }])).toThrow('synapse.extraSecretFiles.0.file: must be a file name');
    expect(bad([{ secret: 'a', key: 'k', file: '.hidden' }])).toThrow('synapse.extraSecretFiles.0.file: must be a file name');
    expect(
      bad([
        { secret: 'a', key: 'k', file: 'x' },
        { secret: 'b', key: 'k', file: 'x' },
      ]),
    ).toThrow('synapse.extraSecretFiles[1].file: "x" is already the file of synapse.extraSecretFiles[0]');
    expect(bad([{ secret: 'Kudo_SSO', key: 'k', file: 'x' }])).toThrow('synapse.extraSecretFiles.0.secret: must be a Kubernetes object name');
    expect(bad([{ secret: 'a', key: 'k' }])).toThrow('synapse.extraSecretFiles.0.file: expected string, found nothing');
  });
});

describe("Synapse's config schema accepts the rendered homeserver.yaml", () => {
  test.each<[string, object]>([
    ['default', {}],
    ['with workers', { ...PRODUCTION }],
    ["with the operator's settings", { synapse: { extraConfig: extra, extraSecretFiles: files } }],
  ])('%s', (_, c) => {
    expect(synapseConfigErrors(homeserver(synthChart('20-synapse', config(c))))).toEqual([]);
  });

  test('and refuses a setting of the wrong type (the check can fail)', () => {
    const hs = homeserver(synthChart('20-synapse', config({ synapse: { extraConfig: { rc_message: { per_second: 'fast' } } } })));
    expect(synapseConfigErrors(hs)).toEqual(['/rc_message/per_second must be number']);
  });
});
