/**
 * What the config adds to every pod: scheduling per workload (merged with
 * what the charts set themselves), image pull Secrets, and the registry
 * mirror.
 */
import { andNodeAffinity, mergeScheduling, mirroredRepository, withScheduling } from '../charts/pods';
import { kubernetesValidator } from './k8s-schema';
import { config, find, Manifest, podSpec, PRODUCTION, synthAll } from './util';

/** Every pod template of a render, with what owns it. */
function pods(ms: Manifest[]): { owner: string; spec: any }[] {
  return ms.filter((m) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob'].includes(m.kind)).map((m) => ({ owner: `${m.kind}/${m.metadata.name}`, spec: podSpec(m) }));
}

const images = (spec: any): string[] => [...spec.containers, ...(spec.initContainers ?? [])].map((c: any) => c.image);

describe('the registry mirror rule', () => {
  test.each([
    ['docker.io/library/postgres', 'mirror.example.com/library/postgres'],
    ['postgres', 'mirror.example.com/library/postgres'],
    ['docker.io/postgres', 'mirror.example.com/library/postgres'],
    ['livekit/livekit-server', 'mirror.example.com/livekit/livekit-server'],
    ['docker.io/livekit/livekit-server', 'mirror.example.com/livekit/livekit-server'],
    ['ghcr.io/element-hq/synapse', 'mirror.example.com/element-hq/synapse'],
    ['quay.io/prometheuscommunity/postgres-exporter', 'mirror.example.com/prometheuscommunity/postgres-exporter'],
    ['localhost/tools/python', 'mirror.example.com/tools/python'],
    ['registry.local:5000/kudo/synapse', 'mirror.example.com/kudo/synapse'],
  ])('%s -> %s', (from, to) => {
    expect(mirroredRepository(from, 'mirror.example.com')).toBe(to);
  });

  test('a mirror with a port and a path keeps them in front', () => {
    expect(mirroredRepository('docker.io/library/redis', 'harbor.local:8443/hub')).toBe('harbor.local:8443/hub/library/redis');
  });

  test('imageRegistry: every image of every pod (init containers too) and the CloudNativePG image come from the mirror; tags and digests stay', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const everything = config({
      profile: 'production',
      networkPolicies: { nodeCidrs: ['10.0.0.0/16'] },
      imageRegistry: 'mirror.example.com',
      monitoring: { enabled: true },
      postgres: { image: { digest } },
      backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } },
    });
    const all = pods(synthAll(everything)).flatMap((p) => images(p.spec).map((i) => `${p.owner}: ${i}`));
    expect(all.length).toBeGreaterThan(20);
    expect(all.filter((i) => !i.includes(': mirror.example.com/'))).toEqual([]);
    expect(all).toContain(`StatefulSet/postgres: mirror.example.com/library/postgres:17.11-bookworm@${digest}`);
    expect(all).toContain('Deployment/synapse-router: mirror.example.com/library/haproxy:3.2.26');
    expect(all).toContain('Deployment/synapse: mirror.example.com/element-hq/synapse:v1.163.2');
    // The restic upload's repository is a bucket, not an image: untouched.
    expect(everything.backup.s3.repository).toBe('s3:https://s3.example.com/kudo');
    const cnpg = synthAll(config({ imageRegistry: 'mirror.example.com', postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } } }));
    expect(find(cnpg, 'Cluster', 'postgres').spec.imageName).toBe('mirror.example.com/cloudnative-pg/postgresql:17.11-standard-bookworm');
    // The version label is the tag, mirror or not.
    expect(find(synthAll(everything), 'Deployment', 'synapse').metadata.labels!['app.kubernetes.io/version']).toBe('v1.163.2');
  });

  test('refused: a bare name (Docker would read it as a Docker Hub path), a scheme, a trailing slash', () => {
    expect(() => config({ imageRegistry: 'mirror' })).toThrow('imageRegistry: must start with a registry host');
    expect(() => config({ imageRegistry: 'https://mirror.example.com' })).toThrow('imageRegistry: must be a registry host with an optional port and path');
    expect(() => config({ imageRegistry: 'mirror.example.com/' })).toThrow('imageRegistry: must be a registry host');
    expect(config({ imageRegistry: 'localhost:5000' }).redis.image.repository).toBe('localhost:5000/library/redis');
  });
});

test('imagePullSecrets: on every pod of the stack, and on the CloudNativePG Cluster', () => {
  const c = config({ ...PRODUCTION, imagePullSecrets: ['regcred', 'mirror-pull'] });
  const all = pods(synthAll(c));
  for (const p of all) expect({ owner: p.owner, secrets: p.spec.imagePullSecrets }).toEqual({ owner: p.owner, secrets: [{ name: 'regcred' }, { name: 'mirror-pull' }] });
  const cnpg = synthAll(config({ imagePullSecrets: ['regcred'], postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { enabled: false } } } }));
  expect(find(cnpg, 'Cluster', 'postgres').spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
  expect(() => config({ imagePullSecrets: ['Reg_Cred'] })).toThrow('imagePullSecrets.0: must be a Kubernetes object name');
});

describe('scheduling', () => {
  const dedicated = { key: 'dedicated', operator: 'Equal', value: 'kudo', effect: 'NoSchedule' };
  const pool = (name: string) => ({
    requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In', values: [name] }] }] },
  });
  const zoneSpread = { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' };

  /** Each workload, the config key that schedules it, and a pod template it owns. */
  const WORKLOADS: [string, string][] = [
    ['postgres', 'StatefulSet/postgres'],
    ['redis', 'StatefulSet/redis'],
    ['synapse', 'Deployment/synapse'],
    ['synapseWorkers', 'StatefulSet/synapse-event-persister'],
    ['synapseWorkers', 'Deployment/synapse-client-reader'],
    ['synapseRouter', 'Deployment/synapse-router'],
    ['wellKnown', 'Deployment/matrix-well-known'],
    ['livekit', 'Deployment/livekit'],
    ['coturn', 'DaemonSet/coturn'],
    ['backup', 'CronJob/postgres-backup'],
    ['backup', 'CronJob/media-restore'],
    ['tools', 'CronJob/smoke-test'],
  ];

  test("each workload gets its own settings and scheduling.all's, and no other workload's", () => {
    const own = Object.fromEntries(
      [...new Set(WORKLOADS.map(([w]) => w))].map((w) => [
        w,
        { priorityClassName: `kudo-${w.toLowerCase()}`, tolerations: [{ key: `only-${w.toLowerCase()}`, operator: 'Exists' }] },
      ]),
    );
    const ms = synthAll(config({ ...PRODUCTION, scheduling: { all: { tolerations: [dedicated] }, ...own } }));
    const byOwner = new Map(pods(ms).map((p) => [p.owner, p.spec]));
    for (const [w, owner] of WORKLOADS) {
      const spec = byOwner.get(owner);
      expect({ owner, priorityClassName: spec.priorityClassName, tolerations: spec.tolerations }).toEqual({
        owner,
        priorityClassName: `kudo-${w.toLowerCase()}`,
        tolerations: [dedicated, { key: `only-${w.toLowerCase()}`, operator: 'Exists' }],
      });
    }
    // The tool Jobs (generator, bootstrap) are tools too; Synapse's schema migration runs Synapse, where Synapse may run.
    const tools = ms.filter((m) => m.kind === 'Job' && !m.metadata.name.startsWith('backup-volume') && !m.metadata.name.startsWith('synapse-migrate'));
    expect(tools.length).toBe(2);
    for (const job of tools) expect(podSpec(job).priorityClassName).toBe('kudo-tools');
    expect(podSpec(ms.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('synapse-migrate'))!).priorityClassName).toBe('kudo-synapse');
    expect(podSpec(ms.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('backup-volume'))!).priorityClassName).toBe('kudo-backup');
  });

  test('unset, the pods are exactly as before: no empty lists or keys', () => {
    const spec = podSpec(find(synthAll(config({ scheduling: { all: {}, livekit: { tolerations: [] } } })), 'Deployment', 'livekit'));
    for (const key of ['tolerations', 'priorityClassName', 'topologySpreadConstraints', 'imagePullSecrets']) expect(spec[key]).toBeUndefined();
    expect(Object.keys(spec.affinity)).toEqual(['podAntiAffinity']);
  });

  test("LiveKit: its node selector and one-per-node anti-affinity stay, next to the operator's node affinity and tolerations", () => {
    const spec = podSpec(
      find(
        synthAll(
          config({
            livekit: { nodeSelector: { 'kudo/media': 'true' } },
            scheduling: { livekit: { nodeAffinity: pool('media'), tolerations: [dedicated] } },
          }),
        ),
        'Deployment',
        'livekit',
      ),
    );
    expect(spec.nodeSelector).toEqual({ 'kudo/media': 'true' });
    expect(spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
      {
        labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'livekit', 'app.kubernetes.io/instance': 'kudo-livekit' } },
        topologyKey: 'kubernetes.io/hostname',
      },
    ]);
    expect(spec.affinity.nodeAffinity).toEqual(pool('media'));
    expect(spec.tolerations).toEqual([dedicated]);
  });

  test('coturn: the TURN node selector stays', () => {
    const spec = podSpec(find(synthAll(config({ scheduling: { coturn: { tolerations: [dedicated], nodeAffinity: pool('edge') } } })), 'DaemonSet', 'coturn'));
    expect(spec.nodeSelector).toEqual({ 'kudo/turn': 'true' });
    expect(spec.affinity).toEqual({ nodeAffinity: pool('edge') });
    expect(spec.tolerations).toEqual([dedicated]);
  });

  test("backups: the volume bound and the media stored near Synapse (pod affinity), with the operator's node affinity beside it", () => {
    const ms = synthAll(config({ scheduling: { backup: { nodeAffinity: pool('storage') } } }));
    const check = podSpec(ms.find((m) => m.kind === 'Job' && m.metadata.name.startsWith('backup-volume'))!);
    expect(check.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]).toMatchObject({
      labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'synapse' } },
      topologyKey: 'kubernetes.io/hostname',
    });
    const media = podSpec(find(ms, 'CronJob', 'media-backup'));
    expect(media.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm).toMatchObject({
      labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'synapse' } },
      topologyKey: 'kubernetes.io/hostname',
    });
    for (const spec of [check, media, podSpec(find(ms, 'CronJob', 'postgres-backup'))]) expect(spec.affinity.nodeAffinity).toEqual(pool('storage'));
  });

  test('the router and the well-known server keep their spreading anti-affinity', () => {
    const ms = synthAll(config({ ...PRODUCTION, scheduling: { all: { nodeAffinity: pool('general') } } }));
    for (const name of ['synapse-router', 'matrix-well-known']) {
      const spec = podSpec(find(ms, 'Deployment', name));
      expect(spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.labelSelector.matchLabels['app.kubernetes.io/name']).toBe(name);
      expect(spec.affinity.nodeAffinity).toEqual(pool('general'));
    }
  });

  test("scheduling.all and a workload's required node affinities must both hold; preferences add up; the workload's priority class wins", () => {
    const prefer = { weight: 10, preference: { matchExpressions: [{ key: 'disk', operator: 'In', values: ['ssd'] }] } };
    const spec = podSpec(
      find(
        synthAll(
          config({
            scheduling: {
              all: {
                nodeAffinity: {
                  requiredDuringSchedulingIgnoredDuringExecution: {
                    nodeSelectorTerms: [
                      { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] },
                      { matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] },
                    ],
                  },
                },
                priorityClassName: 'low',
              },
              postgres: { nodeAffinity: { ...pool('db'), preferredDuringSchedulingIgnoredDuringExecution: [prefer] }, priorityClassName: 'high' },
            },
          }),
        ),
        'StatefulSet',
        'postgres',
      ),
    );
    // (zone a OR zone b) AND pool db = (a AND db) OR (b AND db).
    expect(spec.affinity.nodeAffinity).toEqual({
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [
          {
            matchExpressions: [
              { key: 'zone', operator: 'In', values: ['a'] },
              { key: 'pool', operator: 'In', values: ['db'] },
            ],
          },
          {
            matchExpressions: [
              { key: 'zone', operator: 'In', values: ['b'] },
              { key: 'pool', operator: 'In', values: ['db'] },
            ],
          },
        ],
      },
      preferredDuringSchedulingIgnoredDuringExecution: [prefer],
    });
    expect(spec.priorityClassName).toBe('high');
    expect(andNodeAffinity(undefined, undefined)).toBeUndefined();
  });

  test('a node name (matchFields) survives the AND with another affinity', () => {
    const byName = { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }] }] } };
    const zone = { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }] } };
    expect(andNodeAffinity(byName, zone)).toEqual({
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [
          {
            matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }],
            matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }],
          },
        ],
      },
    });
  });

  test("a topology spread constraint without a label selector counts the workload's own pods", () => {
    const ms = synthAll(
      config({
        ...PRODUCTION,
        scheduling: {
          synapseWorkers: { topologySpreadConstraints: [zoneSpread] },
          synapseRouter: { topologySpreadConstraints: [{ ...zoneSpread, labelSelector: { matchLabels: { team: 'chat' } } }] },
        },
      }),
    );
    expect(podSpec(find(ms, 'StatefulSet', 'synapse-event-persister')).topologySpreadConstraints).toEqual([
      {
        ...zoneSpread,
        labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'synapse-event-persister', 'app.kubernetes.io/instance': 'kudo-synapse-event-persister' } },
      },
    ]);
    expect(podSpec(find(ms, 'Deployment', 'synapse-router')).topologySpreadConstraints[0].labelSelector).toEqual({ matchLabels: { team: 'chat' } });
  });

  test("CloudNativePG: the settings go into the Cluster's own fields, beside its anti-affinity, and validate against its CRD", () => {
    const ms = synthAll(
      config({
        imagePullSecrets: ['regcred'],
        postgres: { mode: 'cloudnative-pg', cloudnativePg: { instances: 3, backup: { enabled: false } } },
        scheduling: { all: { tolerations: [dedicated] }, postgres: { nodeAffinity: pool('db'), priorityClassName: 'db-critical', topologySpreadConstraints: [zoneSpread] } },
      }),
    );
    const spec = find(ms, 'Cluster', 'postgres').spec;
    expect(spec.affinity).toEqual({
      enablePodAntiAffinity: true,
      topologyKey: 'kubernetes.io/hostname',
      podAntiAffinityType: 'preferred',
      nodeAffinity: pool('db'),
      tolerations: [dedicated],
    });
    expect(spec.priorityClassName).toBe('db-critical');
    expect(spec.topologySpreadConstraints).toEqual([{ ...zoneSpread, labelSelector: { matchLabels: { 'cnpg.io/cluster': 'postgres' } } }]);
    const validator = kubernetesValidator('v1.28.0', ['cloudnative-pg/clusters.yaml']);
    expect(validator.errors(find(ms, 'Cluster', 'postgres'))).toEqual([]);
  });

  test('mergeScheduling: nothing set is undefined (the charts then render what they always did)', () => {
    const none = { tolerations: [], topologySpreadConstraints: [] };
    expect(mergeScheduling(none, none, [])).toBeUndefined();
    expect(mergeScheduling(none, none, ['regcred'])).toMatchObject({ imagePullSecrets: ['regcred'] });
    const spec = { containers: [] };
    expect(withScheduling(spec, undefined, {})).toBe(spec);
  });

  describe('bad input is refused with the key path', () => {
    const bad = (s: object) => () => config({ scheduling: s });
    test.each<[string, object, string]>([
      ['operator', { redis: { tolerations: [{ key: 'a', operator: 'Maybe' }] } }, 'scheduling.redis.tolerations.0.operator: found string "Maybe", allowed: "Exists", "Equal"'],
      [
        'effect',
        { all: { tolerations: [{ key: 'a', operator: 'Exists', effect: 'NoRun' }] } },
        'scheduling.all.tolerations.0.effect: found string "NoRun", allowed: "NoSchedule", "PreferNoSchedule", "NoExecute"',
      ],
      ['toleration key', { livekit: { tolerations: [{ key: 'bad key!', operator: 'Exists' }] } }, 'scheduling.livekit.tolerations.0.key: must be a label key'],
      [
        'value with Exists',
        { coturn: { tolerations: [{ key: 'a', operator: 'Exists', value: 'x' }] } },
        'scheduling.coturn.tolerations.0.value: must be empty when operator is "Exists"',
      ],
      ['empty key without Exists', { coturn: { tolerations: [{ effect: 'NoSchedule' }] } }, 'scheduling.coturn.tolerations.0.operator: must be "Exists" when key is empty'],
      [
        'an empty string as key without Exists',
        { coturn: { tolerations: [{ key: '', operator: 'Equal', value: 'x', effect: 'NoSchedule' }] } },
        'scheduling.coturn.tolerations.0.operator: must be "Exists" when key is empty',
      ],
      [
        'tolerationSeconds',
        { tools: { tolerations: [{ key: 'a', operator: 'Exists', effect: 'NoSchedule', tolerationSeconds: 30 }] } },
        'scheduling.tools.tolerations.0.tolerationSeconds: applies only with effect "NoExecute"',
      ],
      [
        'unknown toleration field',
        { tools: { tolerations: [{ key: 'a', operater: 'Exists' }] } },
        'scheduling.tools.tolerations.0.operater: unknown key (did you mean "scheduling.tools.tolerations.0.operator"?); allowed here: key, operator, value, effect, tolerationSeconds',
      ],
      [
        'node affinity key',
        { postgres: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: '-x', operator: 'Exists' }] }] } } } },
        'scheduling.postgres.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0.matchExpressions.0.key: must be a label key',
      ],
      [
        'In without values',
        { postgres: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'In' }] }] } } } },
        'scheduling.postgres.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.0.matchExpressions.0.values: must list at least one value with operator "In"',
      ],
      [
        'Gt with a word',
        {
          redis: {
            nodeAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: 'cpus', operator: 'Gt', values: ['many'] }] } }],
            },
          },
        },
        'scheduling.redis.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.preference.matchExpressions.0.values: must be one integer with operator "Gt"',
      ],
      [
        'weight',
        { redis: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 0, preference: { matchExpressions: [{ key: 'a', operator: 'Exists' }] } }] } } },
        'scheduling.redis.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0.weight',
      ],
      ['priority class', { synapse: { priorityClassName: 'High Priority' } }, 'scheduling.synapse.priorityClassName: must be a Kubernetes object name'],
      [
        'spread whenUnsatisfiable',
        { wellKnown: { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'Never' }] } },
        'scheduling.wellKnown.topologySpreadConstraints.0.whenUnsatisfiable: found string "Never", allowed: "DoNotSchedule", "ScheduleAnyway"',
      ],
      [
        'minDomains',
        { wellKnown: { topologySpreadConstraints: [{ ...zoneSpread, minDomains: 2 }] } },
        'scheduling.wellKnown.topologySpreadConstraints.0.minDomains: applies only with whenUnsatisfiable "DoNotSchedule"',
      ],
      ['unknown workload', { postgress: {} }, 'scheduling.postgress: unknown key (did you mean "scheduling.postgres"?)'],
    ])('%s', (_, s, message) => {
      expect(bad(s)).toThrow(message);
    });
  });
});
