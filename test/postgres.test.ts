import { postgresSettings } from '../charts/postgres';
import { config, container, find, podSpec, synthAll, synthChart } from './util';

const manifests = () => synthChart('10-postgres');

test('a StatefulSet with a volume claim template behind a headless Service', () => {
  const ms = manifests();
  const sts = find(ms, 'StatefulSet', 'postgres');
  const svc = find(ms, 'Service', 'postgres');
  expect(svc.spec.clusterIP).toBe('None');
  expect(sts.spec.serviceName).toBe(svc.metadata.name);
  expect(svc.spec.selector).toEqual(sts.spec.selector.matchLabels);
  expect(sts.spec.volumeClaimTemplates).toHaveLength(1);
  expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } });
  expect(sts.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: 'Retain', whenScaled: 'Retain' });
  // Claim templates are immutable: nothing in them may follow the image version.
  expect(sts.spec.volumeClaimTemplates[0].metadata.labels['app.kubernetes.io/version']).toBeUndefined();
});

test('storage class and size come from config', () => {
  const sts = find(
    synthChart('10-postgres', config({ postgres: { storage: { size: '100Gi', className: 'fast' } }, backup: { storage: { size: '200Gi' } } })),
    'StatefulSet',
    'postgres',
  );
  expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({ storageClassName: 'fast', resources: { requests: { storage: '100Gi' } } });
});

test('the image is pinned to a major version, by digest when given', () => {
  const c = container(find(manifests(), 'StatefulSet', 'postgres'), 'postgres');
  expect(c.image).toMatch(/^docker\.io\/library\/postgres:17\.\d+-bookworm$/);
  const digest = `sha256:${'a'.repeat(64)}`;
  const pinned = container(find(synthChart('10-postgres', config({ postgres: { image: { digest } } })), 'StatefulSet', 'postgres'), 'postgres');
  expect(pinned.image).toBe(`docker.io/library/postgres:17.11-bookworm@${digest}`);
});

test('the database is initialised UTF8 with C collation and ctype, owned by a role of its own', () => {
  const ms = manifests();
  const sts = find(ms, 'StatefulSet', 'postgres');
  const env = Object.fromEntries(container(sts, 'postgres').env.map((e: any) => [e.name, e.value]));
  expect(env.POSTGRES_INITDB_ARGS).toBe('--encoding=UTF8 --locale=C');
  expect(env.POSTGRES_USER).toBe('postgres');
  expect(env.POSTGRES_PASSWORD_FILE).toBe('/secrets/superuser_password');
  expect(env.POSTGRES_PASSWORD).toBeUndefined();
  expect(env).toMatchObject({ SYNAPSE_DB_USER: 'synapse', SYNAPSE_DB_NAME: 'synapse', SYNAPSE_DB_PASSWORD_FILE: '/secrets/password' });
  const script = find(ms, 'ConfigMap', 'postgres-init').data['10-synapse.sh'];
  expect(script).toContain("LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
  expect(script).toContain("PASSWORD :'pw'");
  // The password never reaches psql's command line (/proc/<pid>/cmdline is readable by every process of the user):
  // psql reads the file itself, through a backquoted \set.
  expect(script).not.toMatch(/-v pw=|\$\(cat/);
  expect(script).toContain('\\set pw `cat "$SYNAPSE_DB_PASSWORD_FILE"`');
  const init = podSpec(sts).volumes.find((v: any) => v.name === 'init');
  expect(init.configMap).toEqual({ name: 'postgres-init', defaultMode: 0o555 });
  expect(container(sts, 'postgres').volumeMounts).toContainEqual({ name: 'init', mountPath: '/docker-entrypoint-initdb.d', readOnly: true });
  // PGDATA below the mount point, so the server can own it with mode 0700.
  expect(env.PGDATA).toBe('/var/lib/postgresql/data/pgdata');
});

test('pg_isready probes, a fast shutdown and resources', () => {
  const sts = find(manifests(), 'StatefulSet', 'postgres');
  const c = container(sts, 'postgres');
  for (const probe of [c.startupProbe, c.readinessProbe]) {
    expect(probe.exec.command[0]).toBe('pg_isready');
  }
  expect(c.livenessProbe.tcpSocket).toEqual({ port: 'postgres' });
  expect(c.lifecycle.preStop.exec.command.join(' ')).toContain('--mode=fast');
  expect(podSpec(sts).terminationGracePeriodSeconds).toBeGreaterThan(80);
  expect(c.resources).toEqual({
    requests: { cpu: '250m', memory: '512Mi', 'ephemeral-storage': '64Mi' },
    limits: { cpu: '2', memory: '1Gi', 'ephemeral-storage': '1Gi' },
  });
});

test('server settings are sized from the memory limit', () => {
  const args: string[] = container(find(manifests(), 'StatefulSet', 'postgres'), 'postgres').args;
  const settings = Object.fromEntries(args.filter((_, i) => args[i - 1] === '-c').map((a) => a.split('=')));
  expect(settings).toMatchObject({ shared_buffers: '256MB', effective_cache_size: '768MB', max_connections: '20' });
  expect(postgresSettings('4Gi', 100)).toMatchObject({ shared_buffers: '1024MB', effective_cache_size: '3072MB', maintenance_work_mem: '256MB', work_mem: '10MB' });
  expect(() => postgresSettings('128Mi', 20)).toThrow('postgres memory limit 128Mi is below the 256Mi');
});

test('max_connections covers the Synapse pool plus reserve, or the configured value', () => {
  const maxConn = (c: object) => {
    const args: string[] = container(find(synthChart('10-postgres', config(c)), 'StatefulSet', 'postgres'), 'postgres').args;
    return args.find((a) => a.startsWith('max_connections='));
  };
  expect(maxConn({ synapse: { databasePool: { max: 30 } } })).toBe('max_connections=40');
  expect(maxConn({ postgres: { maxConnections: 200 } })).toBe('max_connections=200');
});

test('runs as a uid above 10000 with a read-only root and restricted context', () => {
  const sts = find(manifests(), 'StatefulSet', 'postgres');
  expect(podSpec(sts).securityContext).toMatchObject({ runAsUser: 10999, fsGroup: 10999, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  const c = container(sts, 'postgres');
  expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  expect(c.volumeMounts.map((m: any) => m.mountPath)).toEqual(expect.arrayContaining(['/var/run/postgresql', '/tmp']));
  expect(podSpec(sts).automountServiceAccountToken).toBe(false);
});

test("no statement text in the server log: Synapse's driver inlines values (access tokens) into the SQL it sends", () => {
  // psycopg2 interpolates parameters client-side, so a logged slow statement would carry them.
  for (const c of [config(), config({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } } })]) {
    const text = JSON.stringify(synthAll(c).filter((m) => ['ConfigMap', 'StatefulSet', 'Cluster'].includes(m.kind)));
    expect(text).not.toContain('log_min_duration_statement');
    expect(text).not.toContain('log_statement');
  }
});

describe('TLS: the stack CA of its own, the server certificate for the Service, TLS-only network logins', () => {
  test('cert-manager makes a CA from a self-signed Issuer, an Issuer from that CA, and the server certificate for the Service names', () => {
    const ms = manifests();
    const pick = (kind: string, name: string) => find(ms, kind, name).spec;
    expect(pick('Issuer', 'postgres-selfsigned')).toEqual({ selfSigned: {} });
    expect(pick('Certificate', 'postgres-ca')).toMatchObject({
      isCA: true,
      secretName: 'postgres-ca',
      issuerRef: { kind: 'Issuer', name: 'postgres-selfsigned' },
      privateKey: { algorithm: 'ECDSA', size: 256 },
    });
    expect(pick('Issuer', 'postgres-ca')).toEqual({ ca: { secretName: 'postgres-ca' } });
    expect(pick('Certificate', 'postgres-tls')).toMatchObject({
      secretName: 'postgres-tls',
      dnsNames: ['postgres.kudo.svc', 'postgres.kudo.svc.cluster.local', 'postgres.kudo', 'postgres'],
      usages: ['server auth'],
      issuerRef: { kind: 'Issuer', name: 'postgres-ca' },
    });
  });

  test('the server runs with the certificate and the rendered pg_hba.conf, which admits network clients over TLS only', () => {
    const ms = manifests();
    const sts = find(ms, 'StatefulSet', 'postgres');
    const args: string[] = container(sts, 'postgres').args;
    expect(args.filter((a, i) => args[i - 1] === '-c' && /^(ssl|ssl_cert_file|ssl_key_file|hba_file)=/.test(a))).toEqual([
      'ssl=on',
      'ssl_cert_file=/etc/postgresql/tls/tls.crt',
      'ssl_key_file=/etc/postgresql/tls/tls.key',
      'hba_file=/etc/postgresql/kudo/pg_hba.conf',
    ]);
    // Readable by the pod's group and root only: PostgreSQL refuses a key others can read.
    expect(podSpec(sts).volumes.find((v: any) => v.name === 'tls')).toEqual({ name: 'tls', secret: { secretName: 'postgres-tls', defaultMode: 0o440 } });
    const hba = (find(ms, 'ConfigMap', 'postgres-config').data['pg_hba.conf'] as string)
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'))
      .map((l) => l.split(/\s+/).join(' '));
    expect(hba).toEqual([
      'local all all trust',
      'host all all 127.0.0.1/32 scram-sha-256',
      'host all all ::1/128 scram-sha-256',
      'hostssl all all 0.0.0.0/0 scram-sha-256',
      'hostssl all all ::/0 scram-sha-256',
    ]);
  });

  test('every client checks the server with verify-full against the CA in postgres-tls', () => {
    const ms = synthAll();
    const hs = JSON.stringify(find(ms, 'ConfigMap', 'synapse-config').data['homeserver.yaml']);
    expect(hs).toContain('sslmode: verify-full');
    expect(hs).toContain('sslrootcert: /db-ca/ca.crt');
    for (const name of ['postgres-backup', 'postgres-restore']) {
      const cj = find(ms, 'CronJob', name);
      const env = container(cj, name === 'postgres-backup' ? 'dump' : 'restore').env;
      expect([name, env.filter((e: any) => e.name.startsWith('PGSSL'))]).toEqual([
        name,
        [
          { name: 'PGSSLMODE', value: 'verify-full' },
          { name: 'PGSSLROOTCERT', value: '/db-ca/ca.crt' },
        ],
      ]);
      expect(podSpec(cj).volumes.find((v: any) => v.name === 'db-ca')).toEqual({
        name: 'db-ca',
        secret: { secretName: 'postgres-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }], defaultMode: 0o444 },
      });
    }
  });

  test('a step beside the server reloads it when the certificate changes, within a small memory limit', () => {
    const sts = find(manifests(), 'StatefulSet', 'postgres');
    const step = container(sts, 'tls-reload');
    expect(step.command).toEqual(['sh', '/etc/postgresql/kudo/tls-reload.sh', '/etc/postgresql/tls']);
    expect(step.env).toEqual([
      { name: 'PGHOST', value: '/var/run/postgresql' },
      { name: 'PGUSER', value: 'postgres' },
      { name: 'HEARTBEAT_FILE', value: '/var/run/postgresql/tls-reload.alive' },
    ]);
    // Restarted alone when its loop stops going round; never unready (that would take the database out of its Service).
    expect(step.livenessProbe.exec.command).toEqual(['sh', '-c', 'test $(( $(date +%s) - $(stat -c %Y /var/run/postgresql/tls-reload.alive) )) -lt 300']);
    expect(step.readinessProbe).toBeUndefined();
    expect(step.resources.limits).toMatchObject({ memory: '16Mi' });
    expect(step.volumeMounts.map((m: any) => `${m.name} ${m.mountPath}`)).toEqual(['tls /etc/postgresql/tls', 'config /etc/postgresql/kudo', 'run /var/run/postgresql']);
    expect(find(manifests(), 'ConfigMap', 'postgres-config').data['tls-reload.sh']).toContain('SELECT pg_reload_conf()');
  });
});

describe('a major version upgrade (docs/operations.md, "PostgreSQL 17 → 18") never starts a new major on the old data directory', () => {
  const pgdata = (tag: string) =>
    Object.fromEntries(
      container(find(synthChart('10-postgres', config({ postgres: { image: { tag } } })), 'StatefulSet', 'postgres'), 'postgres').env.map((e: any) => [e.name, e.value]),
    ).PGDATA;

  test('17 keeps the data directory of existing installs; 18 and later initialise one of their own beside it on the same volume', () => {
    expect(pgdata('17.11-bookworm')).toBe('/var/lib/postgresql/data/pgdata');
    expect(pgdata('17.9-trixie')).toBe('/var/lib/postgresql/data/pgdata');
    expect(pgdata('18.6-bookworm')).toBe('/var/lib/postgresql/data/pgdata-18');
    expect(pgdata('18-trixie')).toBe('/var/lib/postgresql/data/pgdata-18');
    expect(pgdata('19.0')).toBe('/var/lib/postgresql/data/pgdata-19');
  });

  test("the volume and its claim stay the same (the old major's directory is on it, for a rollback)", () => {
    const claim = (tag: string) => find(synthChart('10-postgres', config({ postgres: { image: { tag } } })), 'StatefulSet', 'postgres').spec.volumeClaimTemplates;
    expect(claim('18.6-bookworm')).toEqual(claim('17.11-bookworm'));
  });

  test('a tag that does not begin with the major version is refused: the data directory depends on it', () => {
    expect(() => pgdata('latest')).toThrow(
      'postgres.image.tag "latest" must begin with PostgreSQL\'s major version (e.g. "17.11-bookworm"): the data directory is chosen by it (docs/operations.md, "PostgreSQL 17 → 18")',
    );
    expect(() => pgdata('bookworm-17')).toThrow('postgres.image.tag "bookworm-17" must begin');
    // Majors before 17 were never pinned by this stack, and 9.6-style tags would read as major 9.
    expect(() => pgdata('16.4-bookworm')).toThrow('postgres.image.tag "16.4-bookworm" is PostgreSQL 16; this stack runs 17 or later');
  });
});
