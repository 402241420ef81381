/**
 * Every rendered object, for the default config and for a config that turns
 * on every option, is valid for the oldest and newest Kubernetes we support,
 * with no unknown fields.
 */
import { KUBERNETES_VERSIONS, kubernetesValidator, RENDERED_CRDS, Validator } from './k8s-schema';
import { config, Manifest, PRODUCTION, synthAll } from './util';

const everything = config({
  domain: 'kudo.example.org',
  serverName: 'example.org',
  tls: { letsEncrypt: { environment: 'staging', email: 'ops@example.org' } },
  postgres: { storage: { className: 'fast' }, maxConnections: 200, image: { digest: `sha256:${'b'.repeat(64)}` } },
  synapse: {
    media: { className: 'fast' },
    extraConfig: {
      email: { smtp_host: 'smtp-relay.mail.svc', smtp_port: 25, notif_from: 'Kudo <noreply@example.org>' },
      oidc_providers: [{ idp_id: 'kudo', issuer: 'https://sso.example.org/', client_id: 'synapse', client_secret_path: '/secrets/extra/oidc_client_secret' }],
      rc_message: { per_second: 1, burst_count: 20 },
    },
    extraSecretFiles: [{ secret: 'kudo-sso', key: 'client_secret', file: 'oidc_client_secret' }],
  },
  imageRegistry: 'mirror.example.org:5000/hub',
  imagePullSecrets: ['regcred'],
  scheduling: {
    all: {
      tolerations: [
        { key: 'dedicated', operator: 'Equal', value: 'kudo', effect: 'NoSchedule' },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 60 },
      ],
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['amd64', 'arm64'] }] }] },
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 50, preference: { matchExpressions: [{ key: 'example.org/cpus', operator: 'Gt', values: ['4'] }] } }],
      },
      priorityClassName: 'kudo',
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: 'topology.kubernetes.io/zone',
          whenUnsatisfiable: 'DoNotSchedule',
          minDomains: 2,
          matchLabelKeys: ['pod-template-hash'],
          nodeAffinityPolicy: 'Honor',
          nodeTaintsPolicy: 'Ignore',
        },
      ],
    },
    postgres: {
      priorityClassName: 'kudo-critical',
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: 'kubernetes.io/hostname',
          whenUnsatisfiable: 'ScheduleAnyway',
          labelSelector: { matchExpressions: [{ key: 'app.kubernetes.io/name', operator: 'In', values: ['postgres'] }] },
        },
      ],
    },
    redis: { tolerations: [{ operator: 'Exists' }] },
    synapse: {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'pool', operator: 'NotIn', values: ['media'] }] }] } },
    },
    synapseWorkers: { tolerations: [{ key: 'workers', operator: 'Exists', effect: 'PreferNoSchedule' }] },
    synapseRouter: { priorityClassName: 'kudo-edge' },
    wellKnown: { priorityClassName: 'kudo-edge' },
    livekit: { tolerations: [{ key: 'media', operator: 'Exists' }] },
    coturn: { tolerations: [{ key: 'media', operator: 'Exists' }] },
    backup: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: 'disk', operator: 'DoesNotExist' }] } }] } },
    tools: { priorityClassName: 'kudo-low' },
  },
  livekit: { replicas: 3, nodeSelector: { 'kudo/media': 'true' }, rtc: { udpPort: 7882, nodeAddress: 'stun', stunServers: ['stun.example.org:3478'] } },
  coturn: { publicIp: '203.0.113.10' },
  secrets: { mode: 'existing' },
  profile: 'production',
  networkPolicies: { nodeCidrs: ['10.0.0.0/16'] },
  backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo' } },
  argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git' },
  routing: 'gateway-api',
  gatewayApi: { gatewayClassName: 'cilium' },
  monitoring: { enabled: true },
});

// The other two ways to run PostgreSQL, with their options on.
const cloudnativePg = config({
  ...PRODUCTION,
  // Redis admits LiveKit's pods by their labels: nothing left to waive.
  networkPolicies: {},
  monitoring: { enabled: true },
  // And LiveKit's other mode (no render of its own: it changes only LiveKit's objects and policies).
  livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100 } },
  postgres: {
    mode: 'cloudnative-pg',
    cloudnativePg: {
      synchronous: true,
      backup: { destinationPath: 's3://kudo-backups/postgres', endpointURL: 'https://minio.example.org:9000', retention: '4w', archiveTimeoutSeconds: 300 },
      // Created from the archive (point-in-time recovery): bootstrap.recovery and an external cluster.
      recovery: { serverName: 'postgres-before', targetTime: '2026-11-26T14:00:00+01:00' },
    },
  },
});
const external = config({
  postgres: { mode: 'external', external: { host: 'db.example.org', port: 6432, sslmode: 'verify-full', ca: { kind: 'Secret', name: 'rds-ca', key: 'bundle.pem' } } },
});

const renders: [string, Manifest[]][] = [
  ['default config', synthAll()],
  ['every option', synthAll(everything)],
  ['CloudNativePG', synthAll(cloudnativePg)],
  ['an external database', synthAll(external)],
];

/** One validator per version for the whole file, made on first use: building one (ajv over the definitions) is much of its time. */
const validators = new Map<string, Validator>();
const validatorFor = (version: string): Validator => validators.get(version) ?? validators.set(version, kubernetesValidator(version, RENDERED_CRDS)).get(version)!;

describe.each(KUBERNETES_VERSIONS)('Kubernetes %s', (version) => {
  const validator: Validator = { errors: (obj) => validatorFor(version).errors(obj) };
  test.each(renders)('%s: every object validates strictly', (_, manifests) => {
    const problems = manifests.flatMap((m) => validator.errors(m).map((e) => `${m.kind}/${m.metadata.name}: ${e}`));
    expect(problems).toEqual([]);
  });
});

test('the validator catches an unknown field and a wrong type (it can fail)', () => {
  const validator = validatorFor('v1.28.0');
  const bad = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x' }, spec: { ports: [{ port: 'eighty' }], bogus: true } };
  const errors = validator.errors(bad);
  expect(errors.join('\n')).toContain('must NOT have additional properties "bogus"');
  expect(errors.join('\n')).toContain('/spec/ports/0/port must be integer');
  expect(validator.errors({ apiVersion: 'extensions/v1beta1', kind: 'Ingress', metadata: { name: 'x' } })[0]).toContain('is not served');
  // Custom resources too, against their pinned CRDs.
  const cluster = { apiVersion: 'postgresql.cnpg.io/v1', kind: 'Cluster', metadata: { name: 'x' }, spec: { instances: 'three', storage: { size: '1Gi' }, walArchiver: true } };
  const clusterErrors = validator.errors(cluster).join('\n');
  expect(clusterErrors).toContain('/spec/instances must be integer');
  expect(clusterErrors).toContain('must NOT have additional properties "walArchiver"');
});

test('cluster-scoped objects carry no namespace (Argo CD and kubectl diff would see a field the server drops)', () => {
  // Kubernetes' cluster-scoped kinds among those we render, and the CRDs with scope: Cluster.
  const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'ClusterIssuer']);
  for (const [, manifests] of renders) {
    const wrong = manifests.filter((m) => clusterScoped.has(m.kind) && m.metadata.namespace !== undefined);
    expect(wrong.map((m) => `${m.kind}/${m.metadata.name} in ${m.metadata.namespace}`)).toEqual([]);
  }
});
