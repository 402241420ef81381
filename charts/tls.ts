import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { Certificate, CertificateSpecPrivateKeyAlgorithm, CertificateSpecPrivateKeyRotationPolicy, ClusterIssuer } from '../imports/cert-manager.io';
import {
  Gateway,
  GatewaySpecListenersAllowedRoutes,
  GatewaySpecListenersAllowedRoutesNamespacesFrom,
  GatewaySpecListenersTlsMode,
  HttpRoute,
  HttpRouteSpecRulesFiltersRequestRedirectScheme,
  HttpRouteSpecRulesFiltersRequestRedirectStatusCode,
  HttpRouteSpecRulesFiltersType,
  HttpRouteSpecRulesMatchesPathType,
} from '../imports/gateway.networking.k8s.io';
import { contentHash, labels } from './common';
import { INGRESS_CONTROLLER, IngressController } from './ingress-controllers';

/** How the public hosts are exposed: through an Ingress controller or a Gateway API Gateway. */
export interface IngressSettings {
  readonly mode: 'ingress' | 'gateway-api';
  /** The Ingress controller family, for its annotations (mode ingress). */
  readonly controller: IngressController;
  /** Ingress class (mode ingress). */
  readonly className: string;
  readonly issuerKind: 'ClusterIssuer' | 'Issuer';
  readonly issuerName: string;
  /** Extra annotations for every Ingress, added last so they can override ours. */
  readonly annotations: Record<string, string>;
  /** The Gateway the HTTPRoutes attach to (mode gateway-api). */
  readonly gateway?: { readonly name: string; readonly namespace: string };
}

export interface HttpBackend {
  /** Path prefix. */
  readonly path: string;
  readonly service: string;
  readonly port: number;
}

export interface ExposeProps {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Record<string, string>;
  readonly host: string;
  /** Secret for the host's certificate (in the Ingress's namespace, or the Gateway's). */
  readonly tlsSecret: string;
  readonly backends: readonly HttpBackend[];
  readonly settings: IngressSettings;
  readonly options?: IngressOptions;
}

/**
 * Makes https://<host><path> reach a Service: an Ingress with cert-manager's
 * annotation, or an HTTPRoute on the Gateway (whose listener for the host
 * carries the certificate; see GatewayChart).
 */
export function exposeHttp(scope: Construct, id: string, p: ExposeProps): void {
  const s = p.settings;
  if (s.mode === 'ingress') {
    new k8s.KubeIngress(scope, id, {
      metadata: { name: p.name, namespace: p.namespace, labels: p.labels, annotations: ingressAnnotations(s, p.options ?? {}, p.backends[0].service) },
      spec: {
        ingressClassName: s.className,
        tls: [{ hosts: [p.host], secretName: p.tlsSecret }],
        rules: [
          {
            host: p.host,
            http: {
              paths: p.backends.map((b) => ({
                path: b.path,
                pathType: 'Prefix',
                backend: { service: { name: b.service, port: { number: b.port } } },
              })),
            },
          },
        ],
      },
    });
    return;
  }
  if (s.gateway === undefined) throw new Error(`${p.name}: gateway-api routing needs a Gateway`);
  if (p.options?.sourceRanges !== undefined) throw new Error(`${p.name}: an HTTPRoute cannot limit source addresses`);
  const idle = p.options?.websocketTimeoutSeconds;
  new HttpRoute(scope, id, {
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
    spec: {
      // The host's HTTPS listener only: a route without sectionName attaches to the plain HTTP listener too.
      parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: s.gateway.name, namespace: s.gateway.namespace, sectionName: listenerName(p.host) }],
      hostnames: [p.host],
      rules: p.backends.map((b) => ({
        matches: [{ path: { type: HttpRouteSpecRulesMatchesPathType.PATH_PREFIX, value: b.path } }],
        backendRefs: [{ name: b.service, port: b.port }],
        // Long-lived WebSockets: no request timeout ("0s" turns it off).
        ...(idle !== undefined ? { timeouts: { request: '0s' } } : {}),
      })),
    },
  });
}

export interface IngressOptions {
  /** Largest request body, in Synapse's size syntax ("100M"). @default - the controller's default */
  readonly maxBodySize?: string;
  /** Keep idle WebSocket connections open this long, in seconds. @default - the controller's default */
  readonly websocketTimeoutSeconds?: number;
  /** Only these client addresses (CIDRs) may use the route. @default - anyone */
  readonly sourceRanges?: readonly string[];
}

/**
 * Annotations for cert-manager's ingress-shim (which then requests a
 * certificate for the Ingress's TLS hosts) and for the controller family:
 * what the Ingress API cannot say itself (see ingress-controllers.ts).
 * `ingress.annotations` from the config come last and win.
 */
export function ingressAnnotations(s: IngressSettings, o: IngressOptions, backendService: string): Record<string, string> {
  const controller = INGRESS_CONTROLLER[s.controller];
  const a: Record<string, string> = {
    [s.issuerKind === 'ClusterIssuer' ? 'cert-manager.io/cluster-issuer' : 'cert-manager.io/issuer']: s.issuerName,
  };
  // Synapse counts in binary units (M = MiB), as nginx and HAProxy do with "m".
  if (o.maxBodySize !== undefined) Object.assign(a, controller.bodySize(o.maxBodySize.toLowerCase()));
  if (o.websocketTimeoutSeconds !== undefined) Object.assign(a, controller.webSocket(o.websocketTimeoutSeconds, backendService));
  if (o.sourceRanges !== undefined) {
    // The config refuses an exposed route on a controller without such an annotation; this guards the construct.
    if (controller.sourceRangeAnnotation === undefined) throw new Error(`${controller.title} cannot limit an Ingress to source addresses`);
    a[controller.sourceRangeAnnotation] = o.sourceRanges.join(',');
  }
  return { ...a, ...s.annotations };
}

/** The Gateway's listener ports. */
export const GATEWAY_HTTP_PORT = 80;
export const GATEWAY_HTTPS_PORT = 443;
/** The label implementations that run a proxy per Gateway put on its pods (GEP-1762). */
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

/** The port of cert-manager's HTTP-01 solver pods. */
export const ACME_SOLVER_PORT = 8089;

const ACME_SERVERS = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
};

/** The issuer a certificate comes from: a ClusterIssuer, or an Issuer in the certificate's namespace. */
export interface IssuerRef {
  readonly kind: string;
  readonly name: string;
}

/**
 * The certificate of one host for a program that terminates TLS itself (coturn, LiveKit's TURN): cert-manager keeps it
 * in the Secret of the same name, an ECDSA P-256 key, a new one at every renewal.
 */
export function hostCertificate(scope: Construct, id: string, p: { name: string; namespace: string; labels: Record<string, string>; host: string; issuer: IssuerRef }): void {
  new Certificate(scope, id, {
    metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
    spec: {
      secretName: p.name,
      dnsNames: [p.host],
      issuerRef: { kind: p.issuer.kind, name: p.issuer.name },
      privateKey: { algorithm: CertificateSpecPrivateKeyAlgorithm.ECDSA, size: 256, rotationPolicy: CertificateSpecPrivateKeyRotationPolicy.ALWAYS },
    },
  });
}

export interface LetsEncryptIssuerProps extends ChartProps {
  /** Name of the ClusterIssuer (and of the Secret holding its ACME account key). */
  readonly name: string;
  readonly environment: 'production' | 'staging';
  /** ACME contact address. @default - no contact address */
  readonly email?: string;
  /** Ingress class that serves the HTTP-01 challenges (mode ingress). */
  readonly ingressClassName: string;
  /** The Gateway that serves them instead, and its HTTP listener when known. @default - the ingress class does */
  readonly gateway?: { readonly name: string; readonly namespace: string; readonly sectionName?: string };
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
          solvers: [
            {
              http01:
                props.gateway === undefined
                  ? { ingress: { ingressClassName: props.ingressClassName } }
                  : {
                      gatewayHttpRoute: {
                        parentRefs: [
                          {
                            group: 'gateway.networking.k8s.io',
                            kind: 'Gateway',
                            name: props.gateway.name,
                            namespace: props.gateway.namespace,
                            ...(props.gateway.sectionName !== undefined ? { sectionName: props.gateway.sectionName } : {}),
                          },
                        ],
                      },
                    },
            },
          ],
        },
      },
    });
  }
}

export interface GatewayProps extends ChartProps {
  readonly name: string;
  readonly namespace: string;
  readonly className: string;
  /** Each public host and the Secret its certificate goes into. */
  readonly hosts: readonly { readonly host: string; readonly tlsSecret: string }[];
  /** Namespaces whose HTTPRoutes may attach. */
  readonly routeNamespaces: readonly string[];
  readonly issuerKind: 'ClusterIssuer' | 'Issuer';
  readonly issuerName: string;
}

/**
 * A listener name for a host: the whole host, dots kept (listener names may
 * hold them, so two hosts never share one), shortened with a digest of the
 * host when it would pass the 253 characters a name may have.
 */
export function listenerName(host: string): string {
  const name = `https-${host}`;
  return name.length <= 253 ? name : `https-${contentHash(host)}-${host.slice(host.length - 220).replace(/^[-.]+/, '')}`;
}

/** The name of the rendered Gateway's plain HTTP listener. */
export const GATEWAY_HTTP_LISTENER = 'http';

/**
 * A Gateway with one HTTPS listener per public host (cert-manager's
 * gateway-shim requests each listener's certificate) and a plain HTTP
 * listener that serves ACME HTTP-01 challenges and otherwise only
 * redirects to HTTPS.
 */
export class GatewayChart extends Chart {
  constructor(scope: Construct, id: string, props: GatewayProps) {
    super(scope, id, props);
    const allowedFrom = (namespaces: readonly string[]): GatewaySpecListenersAllowedRoutes => ({
      namespaces: {
        from: GatewaySpecListenersAllowedRoutesNamespacesFrom.SELECTOR,
        selector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [...new Set(namespaces)] }] },
      },
    });
    const allowedRoutes = allowedFrom(props.routeNamespaces);
    // The redirect and the solvers of the listeners' own certificates live beside the Gateway.
    const httpRoutes = allowedFrom([...props.routeNamespaces, props.namespace]);
    new HttpRoute(this, 'https-redirect', {
      metadata: { name: 'https-redirect', namespace: props.namespace, labels: labels({ name: 'https-redirect', component: 'routing' }) },
      spec: {
        parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: props.name, namespace: props.namespace, sectionName: GATEWAY_HTTP_LISTENER }],
        hostnames: props.hosts.map((h) => h.host),
        // No match: every path; a solver's Exact path match for its token is more specific and wins.
        rules: [
          {
            filters: [
              {
                type: HttpRouteSpecRulesFiltersType.REQUEST_REDIRECT,
                requestRedirect: {
                  scheme: HttpRouteSpecRulesFiltersRequestRedirectScheme.HTTPS,
                  statusCode: HttpRouteSpecRulesFiltersRequestRedirectStatusCode.VALUE_301,
                },
              },
            ],
          },
        ],
      },
    });
    new Gateway(this, 'gateway', {
      metadata: {
        name: props.name,
        namespace: props.namespace,
        labels: labels({ name: 'gateway', component: 'routing' }),
        annotations: { [props.issuerKind === 'ClusterIssuer' ? 'cert-manager.io/cluster-issuer' : 'cert-manager.io/issuer']: props.issuerName },
      },
      spec: {
        gatewayClassName: props.className,
        listeners: [
          { name: GATEWAY_HTTP_LISTENER, port: GATEWAY_HTTP_PORT, protocol: 'HTTP', allowedRoutes: httpRoutes },
          ...props.hosts.map((h) => ({
            name: listenerName(h.host),
            hostname: h.host,
            port: GATEWAY_HTTPS_PORT,
            protocol: 'HTTPS',
            tls: { mode: GatewaySpecListenersTlsMode.TERMINATE, certificateRefs: [{ kind: 'Secret', name: h.tlsSecret }] },
            allowedRoutes,
          })),
        ],
      },
    });
  }
}
