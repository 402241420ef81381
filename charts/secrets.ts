/**
 * Every secret value of the stack, where each one must live, and the two
 * Jobs that replace the old manual runbook: the generator (creates missing
 * values once, never overwrites) and the admin bootstrap (registers the
 * admin, hands the app its credentials).
 */
import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { HOOK_DELETE, syncHook, WAVE } from './argocd';
import type { ImageConfig, KudoConfig, PostgresMode, SecretRef, SecretRefs } from './config';
import { bundledFile, CONFIG_HASH_ANNOTATION, contentHash, labels, SCRIPTS_DIR, secretFilesVolume, toolPodTemplate, ToolPodProps } from './common';
import type { PodScheduling } from './pods';

export type SecretValueName = keyof SecretRefs;
export type SecretKind = 'token' | 'livekit-api-key' | 'synapse-signing-key';
export type NamespaceRole = 'stack' | 'hostNetwork';

/** The two Jobs' identities (NetworkPolicies select them by them). */
export const SECRET_GENERATOR = { name: 'secret-generator', component: 'secrets' } as const;
export const ADMIN_BOOTSTRAP = { name: 'admin-bootstrap', component: 'bootstrap' } as const;

export interface SecretValue {
  readonly name: SecretValueName;
  readonly kind: SecretKind;
  /** The namespaces whose pods read it: a pod can mount only Secrets of its own namespace. */
  readonly namespaces: readonly NamespaceRole[];
  /** Its name in the docker-compose era's .env file, if it had one. */
  readonly envVar?: string;
  /** Needed only when this holds for the features that are on. @default - always */
  readonly only?: (f: SecretFeatures) => boolean;
  /** Someone outside the stack holds the value (a managed database's password): never generated. @default - never */
  readonly provided?: (f: SecretFeatures) => boolean;
}

export const SECRET_VALUES: readonly SecretValue[] = [
  {
    // Synapse's PostgreSQL password. CloudNativePG makes the owner's password itself; a managed database's comes from its provider.
    name: 'postgresPassword',
    kind: 'token',
    namespaces: ['stack'],
    envVar: 'MATRIX_DB_PASSWORD',
    only: (f) => f.postgres !== 'cloudnative-pg',
    provided: (f) => f.postgres === 'external',
  },
  {
    // PostgreSQL's superuser password (only local administration uses it)
    name: 'postgresSuperuserPassword',
    kind: 'token',
    namespaces: ['stack'],
    only: (f) => f.postgres === 'statefulset',
  },
  // Synapse macaroon_secret_key
  { name: 'macaroonSecretKey', kind: 'token', namespaces: ['stack'], envVar: 'MATRIX_MACAROON_SECRET_KEY' },
  // Synapse form_secret
  { name: 'formSecret', kind: 'token', namespaces: ['stack'], envVar: 'MATRIX_FORM_SECRET' },
  {
    // Synapse registration_shared_secret (admin bootstrap)
    name: 'registrationSharedSecret',
    kind: 'token',
    namespaces: ['stack'],
    envVar: 'MATRIX_REGISTRATION_SHARED_SECRET',
  },
  // Synapse's federation signing key
  { name: 'signingKey', kind: 'synapse-signing-key', namespaces: ['stack'] },
  // password of the Synapse admin account
  { name: 'adminPassword', kind: 'token', namespaces: ['stack'] },
  {
    // TURN REST shared secret (coturn, Synapse, LiveKit); LiveKit's built-in TURN makes credentials of its own
    name: 'turnSharedSecret',
    kind: 'token',
    namespaces: ['stack', 'hostNetwork'],
    envVar: 'TURN_SECRET',
    only: (f) => f.coturn,
  },
  // Redis password (Redis, LiveKit)
  { name: 'redisPassword', kind: 'token', namespaces: ['stack', 'hostNetwork'] },
  // LiveKit API key
  { name: 'livekitApiKey', kind: 'livekit-api-key', namespaces: ['hostNetwork'], envVar: 'LIVEKIT_API_KEY' },
  // LiveKit API secret
  { name: 'livekitApiSecret', kind: 'token', namespaces: ['hostNetwork'], envVar: 'LIVEKIT_API_SECRET' },
  {
    // password of the backup volume's restic repository (the off-site one has the operator's own, in backup.s3.secretName)
    name: 'backupPassword',
    kind: 'token',
    namespaces: ['stack'],
    only: (f) => f.backup,
  },
  {
    // Synapse's worker_replication_secret (replication between its processes)
    name: 'workerReplicationSecret',
    kind: 'token',
    namespaces: ['stack'],
    only: (f) => f.workers,
  },
];

/** What decides which values the stack needs and which it may generate. */
export interface SecretFeatures {
  /** Synapse's workers run. */
  readonly workers: boolean;
  /** Who runs PostgreSQL. */
  readonly postgres: PostgresMode;
  /** The backups run (their local restic repository has a password). */
  readonly backup: boolean;
  /** coturn runs (the TURN shared secret is its, and Synapse's and LiveKit's for it). */
  readonly coturn: boolean;
}

/** The features of a configuration. */
export function secretFeatures(c: KudoConfig): SecretFeatures {
  return { workers: c.synapse.workers.enabled, postgres: c.postgres.mode, backup: c.backup.enabled, coturn: c.coturn.enabled };
}

/** The single-process StatefulSet stack with coturn: the features when no option is on. */
export const BASIC_FEATURES: SecretFeatures = { workers: false, postgres: 'statefulset', backup: false, coturn: true };

export interface Destination {
  readonly namespace: string;
  readonly secret: string;
  readonly key: string;
}

export interface PlannedValue {
  readonly name: SecretValueName;
  readonly kind: SecretKind;
  readonly destinations: readonly Destination[];
  /** Someone outside the stack holds it: the generator leaves it alone, the checklist asks for it. */
  readonly provided: boolean;
}

/** Where every needed value goes, given the Secret references, the namespaces and the features. */
export function secretPlan(refs: SecretRefs, namespaces: Record<NamespaceRole, string>, features: SecretFeatures): PlannedValue[] {
  return SECRET_VALUES.filter((v) => v.only === undefined || v.only(features)).map((v) => ({
    name: v.name,
    kind: v.kind,
    destinations: v.namespaces.map((role) => ({ namespace: namespaces[role], secret: refs[v.name].name, key: refs[v.name].key })),
    provided: v.provided?.(features) ?? false,
  }));
}

/** The plan as the bundled scripts read it (generate_secrets.py, export_secrets.py). */
export function secretPlanFile(plan: readonly PlannedValue[]): string {
  return `${JSON.stringify({ values: plan.map(({ provided: _provided, ...v }) => v) }, null, 2)}\n`;
}

/** The Secret names each namespace holds, for RBAC rules scoped to them. */
export function secretNamesByNamespace(plan: readonly PlannedValue[]): Map<string, string[]> {
  const byNs = new Map<string, Set<string>>();
  for (const v of plan) {
    for (const d of v.destinations) {
      if (!byNs.has(d.namespace)) byNs.set(d.namespace, new Set());
      byNs.get(d.namespace)!.add(d.secret);
    }
  }
  return new Map([...byNs].map(([ns, names]) => [ns, [...names].sort()]));
}

export interface ScopedAccessProps {
  readonly serviceAccount: string;
  readonly serviceAccountNamespace: string;
  /** Per namespace: Secret names it may read and patch, and whether it may create Secrets there. */
  readonly access: Map<string, { readonly names: string[]; readonly create: boolean; readonly patch: boolean }>;
  readonly labels: Record<string, string>;
  /** The sync wave before the Job's: the `create` Role is an Argo CD hook there. */
  readonly createWave: number;
}

/**
 * A Role and RoleBinding per namespace. `get` and `patch` are limited to the
 * named Secrets; `create` cannot be (Kubernetes authorizes a create before the
 * object has a name), so it is granted only where a Secret must be made, by a
 * Role and binding of its own (`<account>-create`) that are Argo CD Sync hooks:
 * Argo CD creates them in the wave before the Job's and deletes them when the
 * sync operation ends, whether it succeeded or failed (gitops-engine deletes
 * hooks by policy only then, not when the hook itself is done). Applied with
 * kubectl, they stay until deleted (docs/design.md, "Security and resilience").
 */
export function scopedSecretAccess(scope: Construct, p: ScopedAccessProps): void {
  const subjects = [{ kind: 'ServiceAccount', name: p.serviceAccount, namespace: p.serviceAccountNamespace }];
  const roleRef = (name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name });
  for (const [namespace, a] of p.access) {
    const role = new k8s.KubeRole(scope, `role-${namespace}`, {
      metadata: { name: p.serviceAccount, namespace, labels: p.labels },
      rules: [{ apiGroups: [''], resources: ['secrets'], resourceNames: a.names, verbs: a.patch ? ['get', 'patch'] : ['get'] }],
    });
    new k8s.KubeRoleBinding(scope, `binding-${namespace}`, { metadata: { name: p.serviceAccount, namespace, labels: p.labels }, roleRef: roleRef(role.name), subjects });
    if (!a.create) continue;
    const hook = { ...syncHook(p.createWave), [HOOK_DELETE]: 'BeforeHookCreation,HookSucceeded,HookFailed' };
    const meta = { name: `${p.serviceAccount}-create`, namespace, labels: p.labels, annotations: hook };
    const create = new k8s.KubeRole(scope, `create-role-${namespace}`, { metadata: meta, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }] });
    new k8s.KubeRoleBinding(scope, `create-binding-${namespace}`, { metadata: meta, roleRef: roleRef(create.name), subjects });
  }
}

interface ToolJobProps extends ToolPodProps {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly annotations: Record<string, string>;
  readonly backoffLimit: number;
  /** What the pod reads from its ConfigMap (scripts, plan): part of what the Job does. */
  readonly files: Record<string, string>;
}

/**
 * A Job running one of the bundled Python scripts. Its name carries a hash of
 * its pod template and of the ConfigMap it reads: Job templates are immutable,
 * and a finished Job (kept 7 days) under the same name is taken as done, so a
 * changed Job, or a changed plan or script, must be a new Job.
 */
function toolJob(scope: Construct, id: string, p: ToolJobProps): k8s.KubeJob {
  const template = toolPodTemplate(p);
  return new k8s.KubeJob(scope, id, {
    metadata: {
      name: `${p.name}-${contentHash(template, p.backoffLimit, p.files).slice(0, 8)}`,
      namespace: p.namespace,
      labels: p.labels,
      annotations: p.annotations,
    },
    spec: { backoffLimit: p.backoffLimit, activeDeadlineSeconds: 1800, ttlSecondsAfterFinished: 7 * 24 * 3600, template },
  });
}

export interface SecretGeneratorProps extends ChartProps {
  readonly namespaces: Record<NamespaceRole, string>;
  readonly refs: SecretRefs;
  /** Which values the stack needs and may generate. @default BASIC_FEATURES */
  readonly features?: SecretFeatures;
  /** An image with Python 3 (the Synapse image). */
  readonly toolsImage: ImageConfig;
  /**
   * Take each missing value from a backup instead of making a new one: steps that fetch the backup's export (an
   * export_secrets.py file) to `file`, in a volume the generator mounts, and the scripts they run.
   * @default - missing values are made
   */
  readonly restore?: SecretsRestore;
  /** Where the Job's pod may run. @default - anywhere */
  readonly scheduling?: PodScheduling;
}

/** How the generator gets the values of a backup (see BackupChart's secretsFetch). */
export interface SecretsRestore {
  readonly steps: k8s.Container[];
  readonly volumes: k8s.Volume[];
  /** The volume holding `file`, and where the generator mounts it. */
  readonly mount: k8s.VolumeMount;
  /** The export's path in the generator's container. */
  readonly file: string;
  /** Scripts the steps run, added to the generator's ConfigMap. */
  readonly files: Record<string, string>;
}

/**
 * The generator Job and its RBAC. Applied before the workloads (file order
 * for kubectl, a sync hook in wave -1 for Argo CD); pods that start before
 * it finishes wait in CreateContainerConfigError and start once it has.
 */
export class SecretGeneratorChart extends Chart {
  constructor(scope: Construct, id: string, props: SecretGeneratorProps) {
    super(scope, id, props);
    const component = SECRET_GENERATOR;
    const lbls = labels(component);
    const ns = props.namespaces.stack;
    // Values held outside the stack are the operator's to create; the Job neither makes nor reads them.
    const plan = secretPlan(props.refs, props.namespaces, props.features ?? BASIC_FEATURES).filter((v) => !v.provided);
    const restore = props.restore;
    const files = {
      'plan.json': secretPlanFile(plan),
      'kube.py': bundledFile('kube.py'),
      'generate_secrets.py': bundledFile('generate_secrets.py'),
      ...restore?.files,
    };
    const config = new k8s.KubeConfigMap(this, 'scripts', { metadata: { name: 'secret-generator', namespace: ns, labels: lbls }, data: files });
    const sa = new k8s.KubeServiceAccount(this, 'service-account', { metadata: { name: 'secret-generator', namespace: ns, labels: lbls } });
    const access = new Map([...secretNamesByNamespace(plan)].map(([n, names]) => [n, { names, create: true, patch: true }]));
    scopedSecretAccess(this, { serviceAccount: sa.name, serviceAccountNamespace: ns, access, labels: lbls, createWave: WAVE.secrets - 1 });

    toolJob(this, 'job', {
      name: 'generate-secrets',
      namespace: ns,
      image: props.toolsImage,
      serviceAccount: sa.name,
      configMap: config.name,
      files,
      command: ['python3', `${SCRIPTS_DIR}/generate_secrets.py`, `${SCRIPTS_DIR}/plan.json`, ...(restore ? ['--restore', restore.file] : [])],
      initContainers: restore?.steps,
      extraVolumes: restore?.volumes,
      extraMounts: restore ? [restore.mount] : undefined,
      labels: { ...lbls },
      annotations: { [CONFIG_HASH_ANNOTATION]: contentHash(files), ...syncHook(WAVE.secrets) },
      backoffLimit: 6,
      scheduling: props.scheduling,
    });
  }
}

export interface BootstrapProps extends ChartProps {
  readonly namespaces: Record<NamespaceRole | 'app', string>;
  readonly refs: SecretRefs;
  readonly appSecretName: string;
  readonly toolsImage: ImageConfig;
  readonly serverName: string;
  readonly adminUser: string;
  /** In-cluster Synapse URL (the admin API is not exposed publicly). */
  readonly synapseUrl: string;
  readonly publicHomeserverUrl: string;
  readonly publicLivekitUrl: string;
  /** The admin API's URL the app is given. @default - synapseUrl (the app runs in the cluster) */
  readonly appAdminUrl?: string;
  /** Where the Job's pod may run. @default - anywhere */
  readonly scheduling?: PodScheduling;
}

/**
 * The admin bootstrap Job, run once Synapse is up: for Argo CD a Sync hook in
 * the wave after Synapse's, so the app's credentials never wait for LiveKit,
 * TURN, routes or certificates; for plain kubectl it waits for Synapse itself.
 */
export class BootstrapChart extends Chart {
  constructor(scope: Construct, id: string, props: BootstrapProps) {
    super(scope, id, props);
    const component = ADMIN_BOOTSTRAP;
    const lbls = labels(component);
    const ns = props.namespaces.stack;
    const r = props.refs;
    const files = { 'kube.py': bundledFile('kube.py'), 'bootstrap_admin.py': bundledFile('bootstrap_admin.py') };
    const config = new k8s.KubeConfigMap(this, 'scripts', { metadata: { name: 'admin-bootstrap', namespace: ns, labels: lbls }, data: files });
    const sa = new k8s.KubeServiceAccount(this, 'service-account', { metadata: { name: 'admin-bootstrap', namespace: ns, labels: lbls } });

    const ref = (role: NamespaceRole, s: SecretRef) => `${props.namespaces[role]}/${s.name}/${s.key}`;
    const livekitNames = [...new Set([r.livekitApiKey.name, r.livekitApiSecret.name])].sort();
    scopedSecretAccess(this, {
      serviceAccount: sa.name,
      serviceAccountNamespace: ns,
      access: new Map([
        [props.namespaces.hostNetwork, { names: livekitNames, create: false, patch: false }],
        [props.namespaces.app, { names: [props.appSecretName], create: true, patch: true }],
      ]),
      labels: lbls,
      createWave: WAVE.appCredentials - 1,
    });

    toolJob(this, 'job', {
      name: 'bootstrap-admin',
      namespace: ns,
      image: props.toolsImage,
      serviceAccount: sa.name,
      configMap: config.name,
      files,
      command: ['python3', `${SCRIPTS_DIR}/bootstrap_admin.py`],
      env: [
        { name: 'SYNAPSE_URL', value: props.synapseUrl },
        { name: 'SERVER_NAME', value: props.serverName },
        { name: 'ADMIN_USER', value: props.adminUser },
        { name: 'ADMIN_PASSWORD_FILE', value: '/secrets/admin_password' },
        { name: 'REGISTRATION_SECRET_FILE', value: '/secrets/registration_shared_secret' },
        { name: 'PUBLIC_HOMESERVER_URL', value: props.publicHomeserverUrl },
        { name: 'PUBLIC_LIVEKIT_URL', value: props.publicLivekitUrl },
        ...(props.appAdminUrl !== undefined ? [{ name: 'APP_ADMIN_URL', value: props.appAdminUrl }] : []),
        { name: 'LIVEKIT_API_KEY_REF', value: ref('hostNetwork', r.livekitApiKey) },
        { name: 'LIVEKIT_API_SECRET_REF', value: ref('hostNetwork', r.livekitApiSecret) },
        { name: 'APP_SECRET_REF', value: `${props.namespaces.app}/${props.appSecretName}` },
      ],
      extraVolumes: [secretFilesVolume('secrets', { admin_password: r.adminPassword, registration_shared_secret: r.registrationSharedSecret })],
      extraMounts: [{ name: 'secrets', mountPath: '/secrets', readOnly: true }],
      labels: { ...lbls },
      annotations: { [CONFIG_HASH_ANNOTATION]: contentHash(files), ...syncHook(WAVE.appCredentials) },
      backoffLimit: 10,
      scheduling: props.scheduling,
    });
  }
}
