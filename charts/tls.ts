import { Chart, ChartProps } from 'cdk8s';
import { Construct } from 'constructs';
import { ClusterIssuer } from '../imports/cert-manager.io';
import { labels } from './common';

/** What every Ingress needs to know about the cluster's ingress controller and cert-manager. */
export interface IngressSettings {
  readonly className: string;
  readonly issuerKind: 'ClusterIssuer' | 'Issuer';
  readonly issuerName: string;
  /** Extra annotations, added last so they can override ours. */
  readonly annotations: Record<string, string>;
}

export interface IngressOptions {
  /** Largest request body, in Synapse's size syntax ("100M"). @default - the controller's default */
  readonly maxBodySize?: string;
  /** Keep idle WebSocket connections open this long, in seconds. @default - the controller's default */
  readonly websocketTimeoutSeconds?: number;
}

/**
 * Annotations for cert-manager's ingress-shim (which then requests a
 * certificate for the Ingress's TLS hosts) and for ingress-nginx. Other
 * controllers ignore the nginx ones; set their equivalents in
 * `ingress.annotations`.
 */
export function ingressAnnotations(s: IngressSettings, o: IngressOptions): Record<string, string> {
  const a: Record<string, string> = {
    [s.issuerKind === 'ClusterIssuer' ? 'cert-manager.io/cluster-issuer' : 'cert-manager.io/issuer']: s.issuerName,
  };
  if (o.maxBodySize !== undefined) {
    // Synapse counts in binary units (M = MiB); nginx's "m" is also MiB.
    a['nginx.ingress.kubernetes.io/proxy-body-size'] = o.maxBodySize.toLowerCase();
  }
  if (o.websocketTimeoutSeconds !== undefined) {
    a['nginx.ingress.kubernetes.io/proxy-read-timeout'] = String(o.websocketTimeoutSeconds);
    a['nginx.ingress.kubernetes.io/proxy-send-timeout'] = String(o.websocketTimeoutSeconds);
  }
  return { ...a, ...s.annotations };
}

const ACME_SERVERS = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
};

export interface LetsEncryptIssuerProps extends ChartProps {
  /** Name of the ClusterIssuer (and of the Secret holding its ACME account key). */
  readonly name: string;
  readonly environment: 'production' | 'staging';
  /** ACME contact address. @default - no contact address */
  readonly email?: string;
  /** Ingress class that serves the HTTP-01 challenges. */
  readonly ingressClassName: string;
}

/** A Let's Encrypt ClusterIssuer that solves HTTP-01 challenges through the cluster's ingress controller. */
export class LetsEncryptIssuerChart extends Chart {
  constructor(scope: Construct, id: string, props: LetsEncryptIssuerProps) {
    super(scope, id, props);
    new ClusterIssuer(this, 'issuer', {
      metadata: { name: props.name, labels: labels({ name: 'cert-manager-issuer', component: 'tls' }) },
      spec: {
        acme: {
          server: ACME_SERVERS[props.environment],
          email: props.email,
          privateKeySecretRef: { name: `${props.name}-account-key` },
          solvers: [{ http01: { ingress: { ingressClassName: props.ingressClassName } } }],
        },
      },
    });
  }
}
