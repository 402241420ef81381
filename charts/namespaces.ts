import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { labels } from './common';

export interface NamespacesProps extends ChartProps {
  /** Namespace of the ordinary (non host-network) workloads; Pod Security `restricted`. */
  readonly stack: string;
  /** Namespace of the host-network workloads (LiveKit, coturn); Pod Security `privileged`. */
  readonly hostNetwork: string;
  /**
   * Whether a pod there uses the node's network. false (LiveKit off the host network, no coturn): the media namespace
   * is held to `restricted` like the stack's. @default true
   */
  readonly mediaOnHostNetwork?: boolean;
  /** The Kudo app's namespace, which receives its credentials Secret. */
  readonly app: string;
}

/**
 * The namespaces, with Pod Security Admission labels. `baseline` already
 * forbids hostNetwork and hostPort, so LiveKit and coturn need a namespace of
 * their own at `privileged`; everything else is held to `restricted`.
 */
export class NamespacesChart extends Chart {
  constructor(scope: Construct, id: string, props: NamespacesProps) {
    super(scope, id, props);
    namespace(this, props.stack, 'stack', 'restricted');
    namespace(this, props.hostNetwork, 'host-network', (props.mediaOnHostNetwork ?? true) ? 'privileged' : 'restricted');
    // The app's own pods are not ours to judge: held to `baseline`, audited at `restricted`.
    namespace(this, props.app, 'app', 'baseline');
  }
}

function namespace(scope: Construct, name: string, role: string, level: 'restricted' | 'baseline' | 'privileged'): void {
  // Audit at `restricted` even where we enforce less, so every exception is
  // on record; warn at the enforced level so `kubectl apply` stays quiet.
  new k8s.KubeNamespace(scope, name, {
    metadata: {
      name,
      labels: {
        ...labels({ name: 'namespace', component: role }),
        'pod-security.kubernetes.io/enforce': level,
        'pod-security.kubernetes.io/enforce-version': 'latest',
        'pod-security.kubernetes.io/warn': level,
        'pod-security.kubernetes.io/warn-version': 'latest',
        'pod-security.kubernetes.io/audit': 'restricted',
        'pod-security.kubernetes.io/audit-version': 'latest',
      },
    },
  });
}
