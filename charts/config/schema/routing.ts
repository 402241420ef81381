/** How public traffic reaches the stack: an Ingress controller or Gateway API, and the certificates (cert-manager). */
import type { z as Z } from 'zod';
import type { Fragments } from './shared';
import { INGRESS_CONTROLLERS } from '../../ingress-controllers';

/** The config keys routing, gatewayApi, ingress, tls: schema, defaults and documentation. */
export function routingFragment({ z, dnsLabel, port, annotationMap, objectName }: Fragments) {
  return {
    /** How the public hosts are reached: an Ingress controller, or Gateway API HTTPRoutes. */
    routing: z.enum(['ingress', 'gateway-api']).default('ingress'),
    gatewayApi: z
      .strictObject({
        /** The Gateway the HTTPRoutes attach to. */
        gatewayName: dnsLabel.default('kudo'),
        /** @default namespaces.stack */
        gatewayNamespace: dnsLabel.optional(),
        /** Render that Gateway (HTTPS listener per host, certificates from cert-manager) rather than use an existing one. */
        createGateway: z.boolean().default(true),
        /** GatewayClass of the rendered Gateway; required when it is rendered. */
        gatewayClassName: objectName.optional(),
        /**
         * Where the Gateway's proxy pods run: the NetworkPolicies admit public traffic
         * from there. Istio and NGINX Gateway Fabric run them in the Gateway's namespace,
         * Envoy Gateway in its own (envoy-gateway-system). @default gatewayNamespace
         */
        proxyNamespace: dnsLabel.optional(),
        /**
         * Where the proxies' control plane listens, when the proxies run in the stack namespace
         * (its default-deny would cut them off): istiod is istio-system 15012, Envoy Gateway
         * envoy-gateway-system 18000. @default - no egress to a control plane
         */
        controlPlane: z
          .strictObject({
            namespace: dnsLabel.optional(),
            ports: z.array(port).default([]),
          })
          .prefault({}),
      })
      .prefault({}),
    ingress: z
      .strictObject({
        /** The Ingress controller family, for its annotations (upload size, WebSocket timeouts) and its namespace. */
        controller: z.enum(INGRESS_CONTROLLERS).default('traefik'),
        /** @default the IngressClass the controller's chart creates */
        className: objectName.optional(),
        /** Where the controller's pods run; the NetworkPolicies admit public traffic from there. @default its install guide's */
        namespace: dnsLabel.optional(),
        /** Extra annotations for every Ingress, added last (they win over ours). */
        annotations: annotationMap.default({}),
      })
      .prefault({}),
    tls: z
      .strictObject({
        /** The cert-manager issuer that signs every certificate. */
        issuer: z
          .strictObject({
            kind: z.enum(['ClusterIssuer', 'Issuer']).default('ClusterIssuer'),
            name: dnsLabel.default('kudo-letsencrypt'),
          })
          .prefault({}),
        /** Render a Let's Encrypt ClusterIssuer named `issuer.name` (HTTP-01 through `ingress.className`). */
        letsEncrypt: z
          .strictObject({
            create: z.boolean().default(true),
            environment: z.enum(['production', 'staging']).default('production'),
            /** Contact address for expiry and account notices; optional for Let's Encrypt. */
            email: z.string().email().optional(),
          })
          .prefault({}),
      })
      .prefault({}),
  };
}

/** The routing settings as the schema gives them. */
type RoutingConfig = Z.output<Z.ZodObject<ReturnType<typeof routingFragment>>>;

/** A Gateway the stack renders needs its class; a control plane needs its namespace and ports together. */
export function gatewayApiProblems(c: Pick<RoutingConfig, 'routing' | 'gatewayApi'>): string[] {
  const problems: string[] = [];
  if (c.routing === 'gateway-api' && c.gatewayApi.createGateway && c.gatewayApi.gatewayClassName === undefined) {
    problems.push('gatewayApi.gatewayClassName is required when routing is "gateway-api" and gatewayApi.createGateway is true');
  }
  const cp = c.gatewayApi.controlPlane;
  if (cp.namespace !== undefined && cp.ports.length === 0) {
    problems.push(
      'gatewayApi.controlPlane.ports must list the ports the proxies reach their control plane on (e.g. 15012 for istiod) when gatewayApi.controlPlane.namespace is set',
    );
  }
  if (cp.namespace === undefined && cp.ports.length > 0) problems.push('gatewayApi.controlPlane.namespace is required when gatewayApi.controlPlane.ports is set');
  return problems;
}
