/**
 * postgres.mode external: a managed database reached over TLS, its
 * certificate checked against a CA from a Secret or ConfigMap; nothing of
 * PostgreSQL rendered, the password the operator's to provide.
 */
import * as yaml from 'js-yaml';
import { resolveConfig } from '../charts/config';
import { checklist, renderedManifests } from '../scripts/inspect';
import { config, container, find, Manifest, podSpec, synthAll } from './util';

const EXTERNAL = { host: 'db.example.org', port: 6432, database: 'matrix', user: 'kudo', ca: { name: 'rds-ca' } };
const external = (overrides: object = {}) => config({ postgres: { mode: 'external', external: { ...EXTERNAL, ...overrides } } });
const ms = synthAll(external());
const homeserver = (m: Manifest[]) => yaml.load(find(m, 'ConfigMap', 'synapse-config').data['homeserver.yaml']) as any;

test('no PostgreSQL objects at all', () => {
  expect(ms.filter((m) => m.metadata.name === 'postgres' || m.kind === 'Cluster')).toEqual([]);
});

test('Synapse connects with verify-full and the CA mounted from the ConfigMap', () => {
  expect(homeserver(ms).database.args).toMatchObject({
    host: 'db.example.org',
    port: 6432,
    user: 'kudo',
    dbname: 'matrix',
    sslmode: 'verify-full',
    sslrootcert: '/db-ca/ca.crt',
  });
  const spec = podSpec(find(ms, 'Deployment', 'synapse'));
  expect(spec.volumes).toContainEqual({ name: 'db-ca', configMap: { name: 'rds-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
  expect(container(find(ms, 'Deployment', 'synapse'), 'synapse').volumeMounts).toContainEqual({ name: 'db-ca', mountPath: '/db-ca', readOnly: true });
  // The password is the one the operator stored (secrets.refs.postgresPassword).
  const password = spec.volumes.find((v: any) => v.name === 'db-password');
  expect(password.secret).toMatchObject({ secretName: 'kudo-postgres', items: [{ key: 'password', path: 'password' }] });
});

test('a CA from a Secret', () => {
  const s = synthAll(external({ ca: { kind: 'Secret', name: 'db-ca', key: 'bundle.pem' } }));
  expect(podSpec(find(s, 'Deployment', 'synapse')).volumes).toContainEqual({
    name: 'db-ca',
    secret: { secretName: 'db-ca', items: [{ key: 'bundle.pem', path: 'ca.crt' }], defaultMode: 0o444 },
  });
});

test('sslmode require needs no CA; then no CA is mounted and none is named', () => {
  const s = synthAll(config({ postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'require' } } }));
  const args = homeserver(s).database.args;
  expect(args.sslmode).toBe('require');
  expect(args.sslrootcert).toBeUndefined();
  expect(podSpec(find(s, 'Deployment', 'synapse')).volumes.map((v: any) => v.name)).not.toContain('db-ca');
});

test("the dump CronJob speaks TLS with the same CA (libpq's environment)", () => {
  const dump = find(ms, 'CronJob', 'postgres-backup');
  const env = container(dump.spec.jobTemplate, 'dump').env;
  expect(env).toEqual(
    expect.arrayContaining([
      { name: 'PGHOST', value: 'db.example.org' },
      { name: 'PGPORT', value: '6432' },
      { name: 'PGDATABASE', value: 'matrix' },
      { name: 'PGSSLMODE', value: 'verify-full' },
      { name: 'PGSSLROOTCERT', value: '/db-ca/ca.crt' },
    ]),
  );
});

test('the password is provided, never generated; the checklist asks for it', () => {
  const plan = JSON.parse(find(ms, 'ConfigMap', 'secret-generator').data['plan.json']);
  expect(plan.values.map((v: any) => v.name)).not.toContain('postgresPassword');
  const c = external();
  const list = checklist(c, renderedManifests(c));
  expect(list.secretsToCreate).toEqual([{ namespace: 'kudo', secret: 'kudo-postgres', keys: ['password'] }]);
  expect(list.prerequisites).toEqual(
    expect.arrayContaining([
      'PostgreSQL at db.example.org:6432: database matrix owned by kudo, encoding UTF8 with LC_COLLATE and LC_CTYPE C (Synapse refuses others)',
      "The ConfigMap kudo/rds-ca with the CA that signed the database's certificate, under key ca.crt",
    ]),
  );
});

test("NetworkPolicies: Synapse and the backups reach the database's port, wherever it is", () => {
  // Anywhere but the cloud metadata service.
  const anywhere = [{ ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'] } }, { ipBlock: { cidr: '::/0', except: ['fd00:ec2::254/128'] } }];
  const toDb = { to: anywhere, ports: [{ protocol: 'TCP', port: 6432 }] };
  expect(find(ms, 'NetworkPolicy', 'synapse').spec.egress).toContainEqual(toDb);
  expect(find(ms, 'NetworkPolicy', 'backup').spec.egress).toContainEqual(toDb);
  expect(ms.filter((m) => m.kind === 'NetworkPolicy' && m.metadata.name === 'postgres')).toEqual([]);
});

describe('bad combinations are refused, naming the key', () => {
  test.each([
    [{ postgres: { mode: 'external' } }, 'postgres.external.host is required when postgres.mode is "external"'],
    [{ postgres: { mode: 'external', external: { host: 'db.example.org' } } }, 'postgres.external.ca.name is required with sslmode verify-full'],
    [{ postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'prefer' } } }, 'postgres.external.sslmode'],
    [{ postgres: { mode: 'external', maxConnections: 100, external: EXTERNAL } }, "postgres.maxConnections is the provider's setting"],
    [{ postgres: { external: { host: 'db.example.org' } } }, 'postgres.external is read only when postgres.mode is "external"'],
    [
      { postgres: { mode: 'external', external: EXTERNAL }, secrets: { refs: { postgresSuperuserPassword: { name: 'x', key: 'y' } } } },
      "secrets.refs.postgresSuperuserPassword belongs to the StatefulSet's PostgreSQL",
    ],
  ])('%j', (input, message) => {
    expect(() => resolveConfig(input, 'kudo.yaml')).toThrow(message);
  });
});

test("the StatefulSet's PostgreSQL takes the superuser password from your Secret", () => {
  const c = resolveConfig({ secrets: { mode: 'existing', refs: { postgresSuperuserPassword: { name: 'pg', key: 'superuser' } } } });
  expect(c.secrets.refs.postgresSuperuserPassword).toEqual({ name: 'pg', key: 'superuser' });
});
