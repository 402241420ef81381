/**
 * What differs between the Ingress controllers Kudo renders for: the class
 * name and namespace their charts install with, and their own annotations
 * for what the Ingress API cannot say (upload size, WebSocket timeouts,
 * source-address allowlists). One table, read by the config's defaults, the
 * Ingresses, the NetworkPolicies and the checklist.
 *
 * The community ingress-nginx controller was retired in March 2026 (no
 * releases or security fixes since); it stays here for clusters that still
 * run it. The default is Traefik: maintained, installed by default on k3s,
 * and it needs no annotation for Kudo (no request-body limit unless one is
 * configured, upgraded WebSockets are not timed out).
 */

export const INGRESS_CONTROLLERS = ['traefik', 'haproxy', 'nginx-inc', 'ingress-nginx'] as const;
export type IngressController = (typeof INGRESS_CONTROLLERS)[number];

export interface IngressControllerFacts {
  /** What people call it, for messages and the checklist. */
  readonly title: string;
  /** The IngressClass its chart creates. */
  readonly className: string;
  /** The namespace its install guide uses (its pods reach ours; NetworkPolicies admit it). */
  readonly namespace: string;
  /** Annotations that let a request body of `size` (nginx-style, e.g. "100m") through. */
  bodySize(size: string): Record<string, string>;
  /** Annotations that keep idle WebSockets to `service` open for `seconds`. */
  webSocket(seconds: number, service: string): Record<string, string>;
  /** The annotation that limits clients to a comma-separated list of CIDRs, if it has one. */
  readonly sourceRangeAnnotation?: string;
}

export const INGRESS_CONTROLLER: Record<IngressController, IngressControllerFacts> = {
  traefik: {
    title: 'Traefik',
    className: 'traefik',
    // Traefik's own chart's; k3s installs it into kube-system (the README's k3s example and the checklist say so).
    namespace: 'traefik',
    // No body limit unless a buffering middleware sets one; upgraded connections are not timed out.
    bodySize: () => ({}),
    webSocket: () => ({}),
  },
  haproxy: {
    title: 'HAProxy Ingress',
    className: 'haproxy',
    namespace: 'ingress-controller',
    bodySize: (size) => ({ 'haproxy-ingress.github.io/proxy-body-size': size }),
    // An upgraded connection is a tunnel to HAProxy.
    webSocket: (seconds) => ({ 'haproxy-ingress.github.io/timeout-tunnel': `${seconds}s` }),
    sourceRangeAnnotation: 'haproxy-ingress.github.io/allowlist-source-range',
  },
  'nginx-inc': {
    title: 'F5 NGINX Ingress Controller',
    className: 'nginx',
    namespace: 'nginx-ingress',
    bodySize: (size) => ({ 'nginx.org/client-max-body-size': size }),
    // It proxies WebSockets only for the Services named here.
    webSocket: (seconds, service) => ({
      'nginx.org/proxy-read-timeout': `${seconds}s`,
      'nginx.org/proxy-send-timeout': `${seconds}s`,
      'nginx.org/websocket-services': service,
    }),
  },
  'ingress-nginx': {
    title: 'ingress-nginx (retired in March 2026)',
    className: 'nginx',
    namespace: 'ingress-nginx',
    bodySize: (size) => ({ 'nginx.ingress.kubernetes.io/proxy-body-size': size }),
    webSocket: (seconds) => ({
      'nginx.ingress.kubernetes.io/proxy-read-timeout': String(seconds),
      'nginx.ingress.kubernetes.io/proxy-send-timeout': String(seconds),
    }),
    sourceRangeAnnotation: 'nginx.ingress.kubernetes.io/whitelist-source-range',
  },
};
