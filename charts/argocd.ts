import { ApiObject, Chart, ChartProps, Lazy } from 'cdk8s';
import { Construct } from 'constructs';
import { Application } from '../imports/argoproj.io';
import { labels } from './common';

export const SYNC_WAVE = 'argocd.argoproj.io/sync-wave';
export const HOOK = 'argocd.argoproj.io/hook';
export const HOOK_DELETE = 'argocd.argoproj.io/hook-delete-policy';
export const SYNC_OPTIONS = 'argocd.argoproj.io/sync-options';

/**
 * Argo CD's rollout order. Argo CD applies one wave, waits until every
 * object in it is Healthy, then applies the next; a sync that meets an
 * object that never becomes Healthy stops there. So each wave holds only
 * what can become Healthy with the waves before it, and what depends on
 * things outside the cluster's control (DNS, an ACME challenge, enough
 * nodes for LiveKit, a TURN node) comes last, after the app's credentials.
 * For `kubectl apply` the annotations mean nothing; the file order does the job.
 */
export const WAVE = {
  namespaces: -3,
  /** RBAC, NetworkPolicies, the issuer, ConfigMaps: the hook Jobs of wave -1 mount their scripts. */
  config: -2,
  /** The secret generator (a Sync hook). */
  secrets: -1,
  /** Services and disruption budgets: always Healthy. */
  services: 0,
  /**
   * PostgreSQL and Redis (their claims come from volumeClaimTemplates, bound with the pods), in the Services' wave
   * (Services are Healthy at once, and Argo CD applies them before workloads within a wave), so that the schema's
   * wave fits between them and Synapse without renumbering the later waves.
   */
  databases: 0,
  /** Synapse's schema migration (a Sync hook): it needs PostgreSQL, and no process of a new version may start before it. */
  schema: 1,
  /** Synapse with its media claim, the delegation server. */
  homeserver: 2,
  /** The admin bootstrap (a Sync hook): the app's credentials need Synapse and nothing after it. */
  appCredentials: 3,
  /** LiveKit, coturn, routes, certificates, backups, monitoring. */
  edge: 4,
} as const;

/** The wave of an object by its kind; charts set another with `setSyncWave`. */
function waveOfKind(o: ApiObject): number | undefined {
  switch (o.kind) {
    case 'Namespace':
      return WAVE.namespaces;
    case 'ServiceAccount':
    case 'Role':
    case 'RoleBinding':
    case 'ClusterRole':
    case 'ClusterRoleBinding':
    case 'NetworkPolicy':
    case 'ClusterIssuer':
    case 'ConfigMap':
    case 'ObjectStore': // Where CloudNativePG's Cluster archives WAL to: it must exist when the first instance starts.
      return WAVE.config;
    case 'Service':
    case 'PodDisruptionBudget':
      return WAVE.services;
    case 'StatefulSet':
      return WAVE.databases;
    case 'Deployment':
    case 'DaemonSet':
      return WAVE.homeserver;
    // Routes are Healthy only once a controller publishes an address, and certificates once
    // issued: neither may hold up the workloads or the app's credentials.
    case 'Ingress':
    case 'HTTPRoute':
    case 'Gateway':
    case 'Certificate':
    case 'CronJob':
    case 'ScheduledBackup':
    case 'ServiceMonitor':
    case 'PodMonitor':
    case 'PrometheusRule':
      return WAVE.edge;
    default:
      return undefined;
  }
}

/** Puts an object in a wave other than its kind's. */
export function setSyncWave(o: ApiObject, wave: number): void {
  o.metadata.addAnnotation(SYNC_WAVE, String(wave));
}

/** The annotations of a Job that Argo CD runs as a Sync hook in `wave`, replacing the previous run's Job. */
export function syncHook(wave: number): Record<string, string> {
  return { [HOOK]: 'Sync', [SYNC_WAVE]: String(wave), [HOOK_DELETE]: 'BeforeHookCreation' };
}

const annotationOf = (o: ApiObject, key: string): string | undefined => (o.metadata.toJson() as { annotations?: Record<string, string> }).annotations?.[key];

/** A value as cdk8s resolves it at the top (a Lazy produces it), without resolving what it holds. */
const produced = (v: unknown): unknown => (v instanceof Lazy ? produced(v.produce()) : v);

/**
 * The claims a workload's pods mount. They are read from the props the object
 * was made with, which cdk8s keeps on it, following only the path to the
 * claim names, rather than from its toJson(): that renders the whole object,
 * and these are the render's largest, rendered again when written (this
 * alone once took a tenth of a render).
 */
const claimsOf = (o: ApiObject): string[] => {
  const at = (v: unknown, path: string[]) => path.reduce((x, key) => produced((x as Record<string, unknown> | undefined)?.[key]), v);
  const props = (o as unknown as { props?: object }).props;
  const volumes = (at(props ?? o.toJson(), ['spec', 'template', 'spec', 'volumes']) ?? []) as unknown[];
  return volumes.map((v) => at(produced(v), ['persistentVolumeClaim', 'claimName'])).filter((c): c is string => typeof c === 'string');
};

/**
 * Annotates every object of the stack with its sync wave. A claim goes in the
 * wave of the first pod that mounts it during the sync (a workload, or a hook
 * Job): on a WaitForFirstConsumer StorageClass, the default on EKS, GKE, AKS
 * and k3s, a claim stays Pending (Progressing to Argo CD) until such a pod
 * is scheduled, so a claim in an earlier wave would stall the sync for good.
 */
export function applySyncWaves(scope: Construct): void {
  const objects = scope.node
    .findAll()
    .filter((x): x is ApiObject => x instanceof ApiObject)
    .filter((o) => o.kind !== 'Application');
  const explicit = (o: ApiObject) => annotationOf(o, SYNC_WAVE);
  for (const o of objects) {
    if (o.kind === 'Job') {
      if (annotationOf(o, HOOK) === undefined || explicit(o) === undefined) {
        throw new Error(`Job ${o.name} must be an Argo CD hook with a wave (syncHook)`);
      }
      continue;
    }
    if (explicit(o) !== undefined || o.kind === 'PersistentVolumeClaim') continue;
    const w = waveOfKind(o);
    if (w === undefined) throw new Error(`${o.kind} ${o.name} has no sync wave: add its kind to waveOfKind or call setSyncWave`);
    setSyncWave(o, w);
  }
  for (const claim of objects.filter((o) => o.kind === 'PersistentVolumeClaim' && explicit(o) === undefined)) {
    const binders = objects.filter(
      (o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind) && o.metadata.namespace === claim.metadata.namespace && claimsOf(o).includes(claim.name),
    );
    if (binders.length === 0) {
      throw new Error(`PersistentVolumeClaim ${claim.name} is mounted by no pod that the sync starts (only CronJobs?): it would stay Pending and stall an Argo CD sync`);
    }
    setSyncWave(claim, Math.min(...binders.map((b) => Number(explicit(b)))));
  }
}

/** Adds Argo CD sync options to an object, keeping those it already has (Argo CD reads one comma-separated list). */
export function addSyncOptions(o: ApiObject, ...options: string[]): void {
  const held = (annotationOf(o, SYNC_OPTIONS) ?? '').split(',').filter((x) => x !== '');
  o.metadata.addAnnotation(SYNC_OPTIONS, [...held, ...options.filter((x) => !held.includes(x))].join(','));
}

/**
 * What holds data: claims, Namespaces (with the generated Secrets in them,
 * which Argo CD does not track) and CloudNativePG Clusters (their claims are
 * owned by them). Argo CD keeps these when they leave the render (Prune=false:
 * backups switched off, a namespace renamed) and when the Application is
 * deleted (Delete=false); removing them is the operator's decision.
 */
const STATEFUL_KINDS = ['PersistentVolumeClaim', 'Namespace', 'Secret', 'Cluster'];

/** Marks every object of the stack that holds state so that Argo CD never deletes it. */
export function keepState(scope: Construct): void {
  for (const o of scope.node.findAll()) {
    if (o instanceof ApiObject && STATEFUL_KINDS.includes(o.kind)) addSyncOptions(o, 'Prune=false', 'Delete=false');
  }
}

export interface ArgoApplicationProps extends ChartProps {
  /** Argo CD's namespace. */
  readonly namespace: string;
  /** The Application's name. @default 'kudo' */
  readonly applicationName?: string;
  readonly project: string;
  /** The Git repository holding the rendered output, the revision and the folder to sync. */
  readonly repoURL: string;
  readonly targetRevision: string;
  readonly path: string;
  /** Delete what the rendered output no longer has. */
  readonly prune: boolean;
}

/**
 * One Argo CD Application for the whole stack, not one per component: the
 * sync waves above then order everything within a single sync, where
 * separate Applications could only be ordered by an app-of-apps that waits
 * on each child's health. No ignoreDifferences: no controller rewrites a
 * field of these objects that Argo CD compares.
 */
export class ArgoApplicationChart extends Chart {
  constructor(scope: Construct, id: string, props: ArgoApplicationProps) {
    super(scope, id, props);
    new Application(this, 'application', {
      metadata: { name: props.applicationName ?? 'kudo', namespace: props.namespace, labels: labels({ name: 'argocd-application', component: 'gitops' }) },
      spec: {
        project: props.project,
        // The folder holds a Kustomization, so Argo CD renders it with Kustomize: the same objects as the plain files.
        source: { repoUrl: props.repoURL, targetRevision: props.targetRevision, path: props.path },
        // Every object names its own namespace; this is only the fallback Argo CD requires.
        destination: { server: 'https://kubernetes.default.svc', namespace: 'default' },
        syncPolicy: {
          automated: { prune: props.prune, selfHeal: true },
          syncOptions: ['ServerSideApply=true', 'ApplyOutOfSyncOnly=true'],
        },
      },
    });
  }
}
