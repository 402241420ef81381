import * as yaml from 'js-yaml';
import { resolveConfig, workerReplicas } from '../charts/config';
import { haproxyConfig } from '../charts/synapse-router';
import { routeFor, WORKER_TYPE_NAMES, WORKER_TYPES } from '../charts/synapse-workers';
import { PATH_CASES } from './synapse-requests.cases';
import { config, container, find, lazy, Manifest, podSpec, PRODUCTION, synthAll } from './util';

const production = config({ ...PRODUCTION });
const all = synthAll(production);
const homeserver = lazy(() => yaml.load(find(all, 'ConfigMap', 'synapse-config').data['homeserver.yaml']) as any);
const workerFile = (type: string) => yaml.load(find(all, 'ConfigMap', 'synapse-config').data[`worker-${type}.yaml`]) as any;

describe('the path table', () => {
  const requests = PATH_CASES;
  const replicas = lazy(() => workerReplicas(production));

  test.each(requests)('%s -> %s', (request, process) => {
    expect(routeFor(request, replicas())).toBe(process);
  });

  test('every worker type that serves HTTP is reached by some request above (the list covers the table)', () => {
    const reached = new Set(requests.map(([, p]) => p));
    for (const t of WORKER_TYPE_NAMES.filter((x) => WORKER_TYPES[x].http)) expect([t, reached.has(t)]).toEqual([t, true]);
  });

  test('a type that does not run leaves its requests to the main process', () => {
    const none = { ...replicas(), synchrotron: 0, 'initial-synchrotron': 0 };
    expect(routeFor('/_matrix/client/v3/sync?since=s1', none)).toBe('main');
    expect(routeFor('/_matrix/client/v3/sync', { ...replicas(), 'initial-synchrotron': 0 })).toBe('synchrotron');
    expect(routeFor('/_matrix/client/v3/sync', workerReplicas(config()))).toBe('main');
  });
});

describe('the router is rendered from the same table', () => {
  const cfg = lazy(() => find(all, 'ConfigMap', 'synapse-router').data['haproxy.cfg'] as string);

  test("each running type's paths appear once, as its ACL, and route to its backend", () => {
    for (const t of WORKER_TYPE_NAMES.filter((x) => WORKER_TYPES[x].paths.length > 0)) {
      const acl = cfg()
        .split('\n')
        .filter((l) => l.startsWith(`  acl ${t} path_reg `));
      expect(acl).toEqual([`  acl ${t} path_reg ${WORKER_TYPES[t].paths.join(' ')}`]);
      expect(cfg()).toContain(`\nbackend ${t}\n`);
    }
    // (The initial-sync rule reuses the synchrotron's /sync path, by reference.)
    const acls = cfg()
      .split('\n')
      .filter((l) => l.startsWith('  acl ') && !l.startsWith('  acl initial-sync '))
      .join('\n');
    for (const re of WORKER_TYPE_NAMES.flatMap((t) => WORKER_TYPES[t].paths)) expect([re, acls.split(re).length - 1]).toEqual([re, 1]);
  });

  test('sticky by user for sync, by origin server for federation transactions, by room for event sending', () => {
    const backend = (t: string) =>
      cfg()
        .slice(cfg().indexOf(`\nbackend ${t}\n`))
        .split('\n\n')[0];
    expect(backend('synchrotron')).toContain('balance hash var(txn.user)');
    expect(backend('initial-synchrotron')).toContain('balance hash var(txn.user)');
    expect(backend('federation-inbound')).toContain('balance hash var(txn.origin)');
    expect(backend('event-creator')).toContain('balance hash var(txn.room)');
    expect(backend('client-reader')).toContain('balance roundrobin');
    // Initial syncs (no since) go to their own pool.
    expect(cfg()).toContain('use_backend initial-synchrotron if initial-sync !since');
  });

  test('a pool with no replica up falls back to the main process; a stream writer or the media worker cannot', () => {
    expect(cfg()).toContain('use_backend synchrotron if synchrotron { nbsrv(synchrotron) gt 0 }');
    expect(cfg()).toContain('use_backend stream-writer if stream-writer\n');
    expect(cfg()).toContain('use_backend media-repository if media-repository\n');
    expect(cfg()).toContain('default_backend main');
  });

  test('types that do not run are not routed', () => {
    const few = haproxyConfig({ namespace: 'kudo', main: { service: 'synapse', port: 8008 }, workers: { ...workerReplicas(production), 'client-reader': 0 } });
    expect(few).not.toContain('client-reader');
  });
});

describe("the shared config and each worker's", () => {
  test('replication: the main process and the stream writers in instance_map, through Redis with a password file', () => {
    expect(homeserver().instance_map).toEqual({
      main: { host: 'synapse.kudo.svc', port: 9093 },
      'synapse-stream-writer-0': { host: 'synapse-stream-writer-0.synapse-stream-writer.kudo.svc', port: 9093 },
      'synapse-federation-sender-0': { host: 'synapse-federation-sender-0.synapse-federation-sender.kudo.svc', port: 9093 },
      'synapse-event-persister-0': { host: 'synapse-event-persister-0.synapse-event-persister.kudo.svc', port: 9093 },
      'synapse-event-persister-1': { host: 'synapse-event-persister-1.synapse-event-persister.kudo.svc', port: 9093 },
    });
    expect(homeserver().redis).toEqual({ enabled: true, host: 'redis.kudo.svc', port: 6379, password_path: '/secrets/redis_password', dbid: 1 });
    expect(homeserver().worker_replication_secret_path).toBe('/secrets/worker_replication_secret');
    expect(homeserver().listeners.map((l: any) => [l.port, l.resources?.[0].names])).toEqual([
      [8008, ['client', 'federation']],
      [8009, ['client', 'federation']],
      [9000, undefined],
      [9093, ['replication']],
    ]);
  });

  test('who writes what, who sends federation, who runs background and media jobs', () => {
    expect(homeserver().stream_writers).toEqual({
      typing: 'synapse-stream-writer-0',
      to_device: 'synapse-stream-writer-0',
      account_data: 'synapse-stream-writer-0',
      receipts: 'synapse-stream-writer-0',
      presence: 'synapse-stream-writer-0',
      push_rules: 'synapse-stream-writer-0',
      device_lists: 'synapse-stream-writer-0',
      events: ['synapse-event-persister-0', 'synapse-event-persister-1'],
    });
    expect(homeserver().federation_sender_instances).toEqual(['synapse-federation-sender-0']);
    expect(homeserver().outbound_federation_restricted_to).toEqual(['synapse-federation-sender-0']);
    expect(homeserver().run_background_tasks_on).toBe('synapse-background');
    expect(homeserver().update_user_directory_from_worker).toBe('synapse-background');
    expect(homeserver().media_instance_running_background_jobs).toBe('synapse-media-repository');
    expect(homeserver().enable_media_repo).toBe(false);
    expect(workerFile('media-repository')).toMatchObject({ worker_app: 'synapse.app.media_repository', enable_media_repo: true });
  });

  test('no secret in any config file: every secret is a *_path', () => {
    const cm = find(all, 'ConfigMap', 'synapse-config').data as Record<string, string>;
    for (const [file, text] of Object.entries(cm).filter(([f]) => f.endsWith('.yaml'))) {
      const doc = yaml.load(text) as any;
      const flat = JSON.stringify(doc);
      expect([file, /"(macaroon_secret_key|form_secret|registration_shared_secret|worker_replication_secret|turn_shared_secret|password)"/.test(flat)]).toEqual([file, false]);
    }
  });

  test.each(WORKER_TYPE_NAMES)('%s: its own Deployment or StatefulSet, run with --no-secrets-in-config and its worker file', (type) => {
    const t = WORKER_TYPES[type] as any;
    const workload = find(all, t.workload === 'statefulset' ? 'StatefulSet' : 'Deployment', `synapse-${type}`);
    expect(workload.spec.replicas).toBe(workerReplicas(production)[type]);
    const c = container(workload, 'synapse');
    expect(c.command).toEqual([
      'python',
      '-m',
      t.app,
      '--config-path',
      '/config/homeserver.yaml',
      '--config-path',
      `/config/worker-${type}.yaml`,
      '--config-path',
      '/run/synapse/worker-name.yaml',
      '--no-secrets-in-config',
    ]);
    // A worker listens for the router only (8009, where X-Forwarded-For is believed); its probes go there.
    expect(c.readinessProbe.httpGet).toEqual({ path: '/health', port: 'proxied' });
    expect(c.ports.map((p: any) => p.containerPort)).not.toContain(8008);
    expect(workerFile(type).worker_listeners[0]).toMatchObject({ port: 8009, type: 'http', x_forwarded: true });
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true, allowPrivilegeEscalation: false });
    expect(workerFile(type).worker_app).toBe(t.app);
    // The media volume is on the media worker only.
    expect([type, podSpec(workload).volumes.some((v: any) => v.persistentVolumeClaim)]).toEqual([type, type === 'media-repository']);
    const budget = all.find((m) => m.kind === 'PodDisruptionBudget' && m.metadata.name === `synapse-${type}`);
    expect([type, budget !== undefined]).toEqual([type, workload.spec.replicas > 1]);
  });

  test("a worker's name: its pod's, or for a single named one its Deployment's", () => {
    const init = (kind: string, name: string) => container(find(all, kind, name), 'pgpass');
    expect(init('Deployment', 'synapse-client-reader').env).toEqual([{ name: 'WORKER_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }]);
    expect(init('StatefulSet', 'synapse-event-persister').env).toEqual([{ name: 'WORKER_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }]);
    expect(init('Deployment', 'synapse-background').env).toEqual([{ name: 'WORKER_NAME', value: 'synapse-background' }]);
  });

  test('the main process no longer holds the media volume; backups follow the media worker', () => {
    expect(podSpec(find(all, 'Deployment', 'synapse')).volumes.map((v: any) => v.name)).not.toContain('media');
    const affinity = podSpec(find(all, 'CronJob', 'media-backup')).affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    expect(affinity.labelSelector.matchLabels['app.kubernetes.io/name']).toBe('synapse-media-repository');
  });

  test('clients, the app and the Jobs reach Synapse through the router', () => {
    const ing = find(all, 'Ingress', 'synapse');
    expect(ing.spec.rules[0].http.paths.map((p: any) => p.backend.service.name)).toEqual(['synapse-router', 'synapse-router']);
    const bootstrap = all.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('bootstrap-admin'))!;
    expect(container(bootstrap, 'bootstrap-admin').env.find((e: any) => e.name === 'SYNAPSE_URL').value).toBe('http://synapse-router.kudo.svc:8008');
  });

  test('network policies: only the router reaches the processes; only federation senders (and main) reach the internet', () => {
    const np = (name: string) => find(all, 'NetworkPolicy', name);
    expect(np('synapse-router').spec.egress[0].to[0].podSelector.matchLabels).toEqual({ 'app.kubernetes.io/component': 'homeserver', 'app.kubernetes.io/part-of': 'kudo' });
    const processes = np('synapse');
    expect(processes.spec.ingress[0].from[0].podSelector.matchLabels['app.kubernetes.io/name']).toBe('synapse-router');
    expect(JSON.stringify(processes.spec.egress)).not.toContain('0.0.0.0/0');
    expect(np('synapse-federation-sender').spec.egress[0].to[0]).toEqual({ ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'] } });
  });
});

describe('refused', () => {
  test('workers without Redis; more than one of a single-instance type', () => {
    expect(() => resolveConfig({ synapse: { workers: { enabled: true } }, redis: { enabled: false } })).toThrow(
      "synapse.workers.enabled needs redis.enabled: Synapse's processes replicate through Redis",
    );
    expect(() => resolveConfig({ synapse: { workers: { enabled: true, replicas: { mediaRepository: 2 } } } })).toThrow(
      'synapse.workers.replicas.mediaRepository is 2; at most 1 media-repository may run',
    );
    expect(() => resolveConfig({ synapse: { workers: { enabled: true, replicas: { streamWriter: 2 } } } })).toThrow(
      'synapse.workers.replicas.streamWriter is 2; at most 1 stream-writer may run',
    );
    expect(() => resolveConfig({ livekit: { replicas: 2 }, redis: { enabled: false } })).toThrow('livekit.replicas 2 needs redis.enabled');
  });

  test('profile small renders no worker and no router', () => {
    const small = synthAll();
    const workloads = small.filter((m: Manifest) => ['Deployment', 'StatefulSet', 'Service'].includes(m.kind) && m.metadata.name.startsWith('synapse-'));
    expect(workloads).toEqual([]);
    expect(small.filter((m) => m.kind === 'ConfigMap' && m.metadata.name === 'synapse-router')).toEqual([]);
  });
});
