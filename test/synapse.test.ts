import * as yaml from 'js-yaml';
import { config, container, find, Manifest, podSpec, PRODUCTION, synthAll, synthChart } from './util';

const manifests = (c = config()) => synthChart('20-synapse', c);
const homeserver = (ms: Manifest[]) => yaml.load(find(ms, 'ConfigMap', 'synapse-config').data['homeserver.yaml']) as any;

test('a Recreate Deployment with the media store on a ReadWriteOnce claim', () => {
  const ms = manifests();
  const deploy = find(ms, 'Deployment', 'synapse');
  expect(deploy.spec.strategy).toEqual({ type: 'Recreate' });
  expect(deploy.spec.replicas).toBe(1);
  const pvc = find(ms, 'PersistentVolumeClaim', 'synapse-media');
  expect(pvc.spec.accessModes).toEqual(['ReadWriteOnce']);
  const media = podSpec(deploy).volumes.find((v: any) => v.name === 'media');
  expect(media.persistentVolumeClaim.claimName).toBe('synapse-media');
  expect(homeserver(ms).media_store_path).toBe(container(deploy, 'synapse').volumeMounts.find((m: any) => m.name === 'media').mountPath);
});

test('homeserver.yaml holds no secret, only paths to mounted secret files', () => {
  const ms = manifests();
  const hs = homeserver(ms);
  for (const key of ['macaroon_secret_key', 'form_secret', 'registration_shared_secret', 'turn_shared_secret']) {
    expect(hs[key]).toBeUndefined();
    expect(hs[`${key}_path`]).toMatch(/^\/secrets\//);
  }
  expect(hs.database.args.password).toBeUndefined();
  expect(hs.signing_key_path).toBe('/secrets/signing.key');
  expect(hs.report_stats).toBe(false);
  const deploy = find(ms, 'Deployment', 'synapse');
  const mount = container(deploy, 'synapse').volumeMounts.find((m: any) => m.name === 'secrets');
  expect(mount).toMatchObject({ mountPath: '/secrets', readOnly: true });
  const files = podSpec(deploy)
    .volumes.find((v: any) => v.name === 'secrets')
    .projected.sources.flatMap((s: any) => s.secret.items.map((i: any) => i.path));
  for (const key of ['macaroon_secret_key', 'form_secret', 'registration_shared_secret', 'turn_shared_secret', 'signing_key']) {
    const p = hs[`${key}_path`];
    expect(files).toContain(p.replace('/secrets/', ''));
  }
});

test('runs with --no-secrets-in-config and the DB password from an in-memory pgpass', () => {
  const deploy = find(manifests(), 'Deployment', 'synapse');
  const c = container(deploy, 'synapse');
  expect(c.command).toContain('--no-secrets-in-config');
  expect(c.env).toContainEqual({ name: 'PGPASSFILE', value: '/run/synapse/pgpass' });
  const init = container(deploy, 'pgpass');
  expect(init.command.join(' ')).toContain('/run/synapse/pgpass');
  const run = podSpec(deploy).volumes.find((v: any) => v.name === 'run');
  expect(run.emptyDir.medium).toBe('Memory');
  // The password Secret is mounted into the init container only.
  expect(init.volumeMounts.map((m: any) => m.name)).toContain('db-password');
  expect(c.volumeMounts.map((m: any) => m.name)).not.toContain('db-password');
});

test("listeners: client+federation on 8008, where the caller's own address counts, and on 8009, where the proxy's X-Forwarded-For does; metrics", () => {
  const hs = homeserver(manifests());
  expect(hs.listeners.map((l: any) => [l.port, l.type, l.x_forwarded, l.bind_addresses, l.resources?.[0].names])).toEqual([
    [8008, 'http', false, ['0.0.0.0'], ['client', 'federation']],
    [8009, 'http', true, ['0.0.0.0'], ['client', 'federation']],
    [9000, 'metrics', undefined, ['0.0.0.0'], undefined],
  ]);
  expect(hs.enable_metrics).toBe(true);
});

test('the public routes go to 8009, the in-cluster URL to 8008; the Service and the container name both', () => {
  const ms = manifests();
  const ing = find(ms, 'Ingress', 'synapse');
  expect(ing.spec.rules[0].http.paths.map((p: any) => [p.path, p.backend.service.port])).toEqual([
    ['/_matrix', { number: 8009 }],
    ['/_synapse/client', { number: 8009 }],
  ]);
  expect(find(ms, 'Service', 'synapse').spec.ports.map((p: any) => [p.name, p.port, p.targetPort])).toEqual([
    ['http', 8008, 'http'],
    ['proxied', 8009, 'proxied'],
    ['metrics', 9000, 'metrics'],
  ]);
  expect(container(find(ms, 'Deployment', 'synapse'), 'synapse').ports.map((p: any) => [p.name, p.containerPort])).toEqual([
    ['http', 8008],
    ['proxied', 8009],
    ['metrics', 9000],
  ]);
});

test('database settings point at the PostgreSQL Service with the configured pool', () => {
  const hs = homeserver(manifests(config({ synapse: { databasePool: { min: 3, max: 15 } } })));
  expect(hs.database).toMatchObject({ name: 'psycopg2', args: { host: 'postgres.kudo.svc', port: 5432, dbname: 'synapse', user: 'synapse', cp_min: 3, cp_max: 15 } });
});

test('probes hit /health on the http port', () => {
  const c = container(find(manifests(), 'Deployment', 'synapse'), 'synapse');
  for (const p of [c.startupProbe, c.readinessProbe, c.livenessProbe]) expect(p.httpGet).toEqual({ path: '/health', port: 'http' });
  expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).toBeGreaterThanOrEqual(300);
});

test('a config change changes the pod template hash; nothing else does', () => {
  const hash = (c: object) => find(manifests(config(c)), 'Deployment', 'synapse').spec.template.metadata.annotations['checksum/config'];
  expect(hash({})).toBe(hash({}));
  expect(hash({ synapse: { maxUploadSize: '200M' } })).not.toBe(hash({}));
  expect(hash({ synapse: { resources: { limits: { cpu: '3' } } } })).toBe(hash({}));
});

test('TURN: the shared coturn over udp, tcp and tls', () => {
  const hs = homeserver(manifests());
  expect(hs.turn_uris).toEqual(['turns:turn.example.com:5349?transport=tcp', 'turn:turn.example.com:3478?transport=udp', 'turn:turn.example.com:3478?transport=tcp']);
  expect(hs.turn_user_lifetime).toBe('3600s');
});

test('Ingress: TLS from cert-manager, public API paths only, body size = max upload', () => {
  const ing = find(manifests(), 'Ingress', 'synapse');
  expect(ing.metadata.annotations!['cert-manager.io/cluster-issuer']).toBe('kudo-letsencrypt');
  expect(ing.spec.tls).toEqual([{ hosts: ['matrix.example.com'], secretName: 'synapse-tls' }]);
  const paths = ing.spec.rules[0].http.paths.map((p: any) => p.path);
  expect(paths).toEqual(['/_matrix', '/_synapse/client']);
  expect(paths).not.toContain('/_synapse/admin');
  const custom = find(
    manifests(
      config({
        synapse: { maxUploadSize: '1G' },
        ingress: { controller: 'ingress-nginx', className: 'internet' },
        tls: { issuer: { kind: 'Issuer', name: 'mine' } },
      }),
    ),
    'Ingress',
    'synapse',
  );
  expect(custom.metadata.annotations).toMatchObject({ 'cert-manager.io/issuer': 'mine', 'nginx.ingress.kubernetes.io/proxy-body-size': '1g' });
  expect(custom.spec.ingressClassName).toBe('internet');
});

test("the server name's well-known path is routed to the delegation service, not Synapse", () => {
  const ms = manifests();
  expect(homeserver(ms).serve_server_wellknown).toBeUndefined();
  // The delegation chart routes its own host, with its own labels.
  expect(ms.filter((m) => m.kind === 'Ingress').map((m) => m.metadata.name)).toEqual(['synapse']);
  const wk = find(synthChart('21-well-known'), 'Ingress', 'matrix-well-known');
  expect(wk.metadata.labels!['app.kubernetes.io/name']).toBe('matrix-well-known');
  expect(wk.spec.rules).toEqual([
    {
      host: 'example.com',
      http: { paths: [{ path: '/.well-known/matrix', pathType: 'Prefix', backend: { service: { name: 'matrix-well-known', port: { number: 8080 } } } }] },
    },
  ]);
  expect(wk.spec.tls).toEqual([{ hosts: ['example.com'], secretName: 'matrix-well-known-tls' }]);
  expect(wk.metadata.annotations?.['cert-manager.io/cluster-issuer']).toBe('kudo-letsencrypt');
});

test('when the server name is the matrix host, one Ingress (one certificate) carries the well-known path', () => {
  const ms = manifests(config({ serverName: 'matrix.example.com' }));
  expect(ms.filter((m) => m.kind === 'Ingress')).toHaveLength(1);
  const paths = find(ms, 'Ingress', 'synapse').spec.rules[0].http.paths;
  expect(paths.find((p: any) => p.path === '/.well-known/matrix').backend.service.name).toBe('matrix-well-known');
});

test('well-known can be switched off', () => {
  const ms = manifests(config({ wellKnown: { enabled: false } }));
  expect(ms.filter((m) => m.kind === 'Ingress').map((m) => m.metadata.name)).toEqual(['synapse']);
  expect(() => synthChart('21-well-known', config({ wellKnown: { enabled: false } }))).toThrow('no chart');
});

test('restricted security context with a uid above 10000', () => {
  const deploy = find(manifests(), 'Deployment', 'synapse');
  expect(podSpec(deploy).securityContext).toMatchObject({ runAsUser: 10091, runAsNonRoot: true });
  for (const name of ['synapse', 'pgpass']) {
    expect(container(deploy, name).securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  }
});

describe('the admin API for an app outside the cluster (opt-in)', () => {
  const paths = (ms: Manifest[]) =>
    ms
      .filter((m) => m.kind === 'Ingress' || m.kind === 'HTTPRoute')
      .flatMap((r) => (r.kind === 'Ingress' ? r.spec.rules.flatMap((x: any) => x.http.paths.map((p: any) => p.path)) : r.spec.rules.map((x: any) => x.matches[0].path.value)));

  test('off by default: /_synapse/admin has no public route', () => {
    expect(paths(manifests())).not.toContain('/_synapse/admin');
  });

  test('on: an Ingress of its own for /_synapse/admin, limited to the configured source ranges', () => {
    const on = (controller: string) =>
      find(
        manifests(
          config({
            ingress: { controller },
            synapse: { adminApi: { expose: true, sourceRanges: ['203.0.113.0/24', '198.51.100.7/32'] } },
          }),
        ),
        'Ingress',
        'synapse-admin',
      );
    const nginx = on('ingress-nginx');
    expect(nginx.spec.rules).toEqual([
      {
        host: 'matrix.example.com',
        http: { paths: [{ path: '/_synapse/admin', pathType: 'Prefix', backend: { service: { name: 'synapse', port: { number: 8009 } } } }] },
      },
    ]);
    expect(nginx.spec.tls).toEqual([{ hosts: ['matrix.example.com'], secretName: 'synapse-tls' }]);
    expect(nginx.metadata.annotations!['nginx.ingress.kubernetes.io/whitelist-source-range']).toBe('203.0.113.0/24,198.51.100.7/32');
    expect(on('haproxy').metadata.annotations!['haproxy-ingress.github.io/allowlist-source-range']).toBe('203.0.113.0/24,198.51.100.7/32');
  });

  test('refused where the source ranges could not be enforced, or are missing', () => {
    const expose = (c: object) => () => config({ ...c, synapse: { adminApi: { expose: true, sourceRanges: ['203.0.113.0/24'] } } });
    expect(expose({ ingress: { controller: 'traefik' } })).toThrow('synapse.adminApi.expose: ingress.controller "traefik" has no Ingress annotation that limits source addresses');
    expect(expose({ ingress: { controller: 'nginx-inc' } })).toThrow('ingress.controller "nginx-inc" has no Ingress annotation that limits source addresses');
    expect(expose({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'eg' } })).toThrow(
      'synapse.adminApi.expose: Gateway API has no standard way to limit source addresses',
    );
    expect(() => config({ ingress: { controller: 'ingress-nginx' }, synapse: { adminApi: { expose: true } } })).toThrow(
      'synapse.adminApi.sourceRanges must list the addresses allowed to reach the admin API',
    );
  });
});

describe('production: the replicas of one worker type spread over nodes and zones', () => {
  const prod = manifests(config({ ...PRODUCTION }));
  test.each([
    ['Deployment', 'synapse-synchrotron'],
    ['StatefulSet', 'synapse-event-persister'],
  ])('%s/%s', (kind, name) => {
    const spec = podSpec(find(prod, kind, name));
    const own = { 'app.kubernetes.io/name': name, 'app.kubernetes.io/instance': `kudo-${name}` };
    expect(spec.affinity.podAntiAffinity).toEqual({
      preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { labelSelector: { matchLabels: own }, topologyKey: 'kubernetes.io/hostname' } }],
    });
    expect(spec.topologySpreadConstraints).toEqual([
      { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: own } },
    ]);
  });
  test('the main process (one replica) is not spread', () => {
    expect(podSpec(find(prod, 'Deployment', 'synapse')).affinity).toBeUndefined();
  });
});

describe('upgrades: the schema migration runs once per version, before any process of the version starts', () => {
  const EXTERNAL = { postgres: { mode: 'external', external: { host: 'db.example.org', sslmode: 'verify-full', ca: { kind: 'Secret', name: 'db-ca', key: 'ca.pem' } } } };
  const migration = (ms: Manifest[]) => {
    const jobs = ms.filter((m) => m.kind === 'Job' && m.metadata.labels?.['app.kubernetes.io/name'] === 'synapse-migrate');
    expect(jobs.length).toBe(1);
    return jobs[0];
  };
  const synapsePods = (ms: Manifest[]) =>
    ms.filter((m) => ['Deployment', 'StatefulSet'].includes(m.kind) && m.spec.template.metadata.labels['app.kubernetes.io/component'] === 'homeserver');

  test("its pods are not labelled as homeserver processes: the restore runbook waits for every pod with component=homeserver to be gone, and a finished Job's pod stays", () => {
    const ms = synthAll(config(PRODUCTION));
    const labelled = ms
      .filter((m) => (m.spec?.template ?? m.spec?.jobTemplate?.spec?.template)?.metadata?.labels?.['app.kubernetes.io/component'] === 'homeserver')
      .map((m) => m.kind);
    expect(new Set(labelled)).toEqual(new Set(['Deployment', 'StatefulSet']));
    expect(migration(ms).spec.template.metadata.labels['app.kubernetes.io/component']).toBe('schema-migration');
  });

  test("every Job name is a DNS label (no dots): the API server warns on a dotted one, as it names the Job's pods and their hostnames", () => {
    for (const ms of [manifests(), synthAll(config(PRODUCTION))]) {
      for (const job of ms.filter((m) => m.kind === 'Job')) expect(job.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    }
  });

  test("a Job named after the version runs Synapse's update_synapse_database with the main process's homeserver.yaml", () => {
    const job = migration(manifests());
    expect(job.metadata.name).toMatch(/^synapse-migrate-v1-163-2-[0-9a-f]{8}$/);
    const c = container(job, 'migrate');
    expect(c.image).toBe(container(find(manifests(), 'Deployment', 'synapse'), 'synapse').image);
    expect(c.command).toEqual(['python', '-m', 'synapse._scripts.update_synapse_database', '--database-config', '/config/homeserver.yaml']);
    expect(c.command).not.toContain('--run-background-updates');
    expect(job.metadata.labels).toMatchObject({ 'app.kubernetes.io/component': 'schema-migration', 'app.kubernetes.io/version': 'v1.163.2' });
  });

  test('another version, or another database, is another Job; the same render is the same Job (kubectl apply leaves a finished one alone)', () => {
    const name = (c: object) => migration(manifests(config(c))).metadata.name;
    expect(name({})).toBe(name({}));
    expect(name({ synapse: { image: { tag: 'v1.170.0' } } })).toMatch(/^synapse-migrate-v1-170-0-[0-9a-f]{8}$/);
    expect(name(EXTERNAL)).not.toBe(name({}));
    expect(name(EXTERNAL)).toMatch(/^synapse-migrate-v1-163-2-/);
    // A tag that is no label value still makes a valid name of at most 63 characters.
    const long = name({ synapse: { image: { tag: `V1.170.0_rc1.${'x'.repeat(60)}` } } });
    expect(long.length).toBe(63);
    expect(long).toMatch(/^synapse-migrate-v1-170-0-rc1-x+-[0-9a-f]{8}$/);
    // Cut where a dot or dash would end it: the name may not end in either before the hash.
    expect(name({ synapse: { image: { tag: `${'a'.repeat(37)}.b` } } })).toMatch(/^synapse-migrate-a{37}-[0-9a-f]{8}$/);
  });

  test.each([
    ['the StatefulSet database', {}],
    ['an external database with a CA', EXTERNAL],
    ['workers (their Secret files)', PRODUCTION],
  ])('with %s, the Job reads what the main process reads to reach the database: config, Secret files, password file, CA', (_, c) => {
    const ms = manifests(config(c));
    const job = migration(ms);
    const deploy = find(ms, 'Deployment', 'synapse');
    const dbMounts = (ct: any) => ct.volumeMounts.filter((m: any) => ['config', 'secrets', 'run', 'db-ca'].includes(m.name));
    const volumes = (w: Manifest, names: string[]) => podSpec(w).volumes.filter((v: any) => names.includes(v.name));
    const main = container(deploy, 'synapse');
    expect(dbMounts(container(job, 'migrate'))).toEqual(dbMounts(main));
    // The CA too: the StatefulSet's PostgreSQL and the external one are both checked with verify-full.
    expect(dbMounts(main).map((m: any) => m.name)).toEqual(['config', 'secrets', 'run', 'db-ca']);
    const names = ['config', 'secrets', 'db-password', 'run', 'db-ca'];
    expect(volumes(job, names)).toEqual(volumes(deploy, names));
    expect(container(job, 'pgpass')).toEqual(container(deploy, 'pgpass'));
    expect(container(job, 'migrate').env).toEqual(main.env);
    // Not the media claim: the main process holds it (ReadWriteOnce); the migration writes no media.
    expect(podSpec(job).volumes.find((v: any) => v.name === 'media')).toEqual({ name: 'media', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } });
  });

  test("Argo CD: a Sync hook between PostgreSQL's wave and Synapse's", () => {
    for (const ms of [synthAll(), synthAll(config({ ...PRODUCTION })), synthAll(config({ postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } } }))]) {
      const job = migration(ms);
      const wave = (m: Manifest) => Number(m.metadata.annotations?.['argocd.argoproj.io/sync-wave']);
      expect(job.metadata.annotations).toMatchObject({ 'argocd.argoproj.io/hook': 'Sync', 'argocd.argoproj.io/hook-delete-policy': 'BeforeHookCreation' });
      const database = ms.find((m) => (m.kind === 'StatefulSet' && m.metadata.name === 'postgres') || m.kind === 'Cluster')!;
      expect(wave(job)).toBeGreaterThan(wave(database));
      for (const w of synapsePods(ms)) expect([w.metadata.name, wave(job)]).toEqual([w.metadata.name, wave(w) - 1]);
    }
  });

  test('no probe or deadline bounds a migration: the Job has neither, and every Synapse pod waits in an init step until the schema is current', () => {
    const ms = synthAll(config({ ...PRODUCTION }));
    const job = migration(ms);
    expect(job.spec.activeDeadlineSeconds).toBeUndefined();
    for (const c of [...podSpec(job).initContainers, ...podSpec(job).containers]) {
      expect([c.name, c.startupProbe, c.livenessProbe, c.readinessProbe]).toEqual([c.name, undefined, undefined, undefined]);
    }
    const pods = synapsePods(ms);
    expect(pods.length).toBe(12);
    for (const w of pods) {
      const init = podSpec(w).initContainers;
      // After the password file (it needs it), before the process: init containers have no probes and no deadline.
      expect([w.metadata.name, init.map((c: any) => c.name)]).toEqual([w.metadata.name, ['pgpass', 'schema']]);
      const wait = init[1];
      expect(wait.command).toEqual(['python', '/config/wait_for_schema.py', '/config/homeserver.yaml']);
      expect(wait.env).toEqual(container(w, 'synapse').env);
      expect(wait.volumeMounts.map((m: any) => m.name)).toEqual(['config', 'run', 'db-ca']);
      expect([wait.startupProbe, wait.livenessProbe]).toEqual([undefined, undefined]);
    }
    expect(find(ms, 'ConfigMap', 'synapse-config').data['wait_for_schema.py']).toContain('SELECT file FROM applied_schema_deltas');
  });

  test('the migration waits first on a database marked as awaiting its restore (a new PostgreSQL major), as the pods do', () => {
    const ms = synthAll(config({ ...PRODUCTION }));
    const job = migration(ms);
    const init = podSpec(job).initContainers;
    expect(init.map((c: any) => c.name)).toEqual(['pgpass', 'restore']);
    expect(init[1].command).toEqual(['python', '/config/wait_for_schema.py', '--restore-only', '/config/homeserver.yaml']);
    expect(init[1].env).toEqual(container(job, 'migrate').env);
    expect(init[1].volumeMounts.map((m: any) => m.name)).toEqual(['config', 'run', 'db-ca']);
    // The mark postgres-init.sh writes is the one the wait step reads and the restore step clears.
    const wait = find(ms, 'ConfigMap', 'synapse-config').data['wait_for_schema.py'];
    expect(wait).toContain('RESTORE_MARK = "kudo: awaiting restore"');
    expect(find(ms, 'ConfigMap', 'postgres-init').data['10-synapse.sh']).toContain('note="kudo: awaiting restore: ');
    expect(find(ms, 'ConfigMap', 'backup-scripts').data['restore-postgres.sh']).toContain("LIKE 'kudo: awaiting restore%'");
  });
});
