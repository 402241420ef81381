import { ApiObject, App, Chart, ChartProps } from 'cdk8s';
import { Construct } from 'constructs';
import { Application } from '../imports/argoproj.io';
import { labels } from './common';

export const SYNC_WAVE = 'argocd.argoproj.io/sync-wave';
export const HOOK = 'argocd.argoproj.io/hook';

/**
 * Argo CD's rollout order: namespaces; then RBAC, NetworkPolicies, the
 * issuer and ConfigMaps; then the secret generator (a hook in wave -1); then
 * Services and claims;
 * then the databases; then Synapse, LiveKit, coturn and their routes; then
 * the backups. Argo CD waits for each wave to be healthy before the next,
 * and the admin bootstrap runs after all of it (a PostSync hook). For
 * `kubectl apply` the annotation means nothing; the file order does the job.
 */
export function syncWave(o: ApiObject): number {
  switch (o.kind) {
    case 'Namespace': return -3;
    case 'ServiceAccount': case 'Role': case 'RoleBinding': case 'ClusterRole': case 'ClusterRoleBinding':
    case 'NetworkPolicy': case 'ClusterIssuer':
    // ConfigMaps too: the hook Jobs of wave -1 mount their scripts.
    case 'ConfigMap': return -2;
    case 'StatefulSet': return 1;
    case 'Deployment': case 'DaemonSet': case 'Ingress': case 'HTTPRoute': case 'Gateway': case 'PodDisruptionBudget': return 2;
    case 'CronJob': case 'ServiceMonitor': return 3;
    default: return 0;
  }
}

/** Annotates every object of the app with its sync wave. Jobs are hooks and carry their own. */
export function applySyncWaves(app: App): void {
  for (const chart of app.charts) {
    for (const o of chart.node.findAll().filter((c): c is ApiObject => c instanceof ApiObject)) {
      if (o.kind === 'Application' || o.kind === 'Job') continue;
      o.metadata.addAnnotation(SYNC_WAVE, String(syncWave(o)));
    }
  }
}

export interface ArgoApplicationProps extends ChartProps {
  /** Argo CD's namespace. */
  readonly namespace: string;
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
      metadata: { name: 'kudo', namespace: props.namespace, labels: labels({ name: 'argocd-application', component: 'gitops' }) },
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
