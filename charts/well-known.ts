import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { ImageConfig } from './config';
import {
  bundledFile,
  CONFIG_HASH_ANNOTATION,
  contentHash,
  imageRef,
  labels,
  memoryVolume,
  resourceRequirements,
  restrictedContainer,
  restrictedPod,
  selectorLabels,
  tcpPort,
  UID,
} from './common';
import { PodScheduling, withScheduling } from './pods';
import { exposeHttp, IngressSettings } from './tls';

/** The delegation server's identity (NetworkPolicies select it by it). */
export const WELL_KNOWN = { name: 'matrix-well-known', component: 'delegation' } as const;
export const WELL_KNOWN_PORT = 8080;
export const WELL_KNOWN_PATH = '/.well-known/matrix';
/** The certificate of the server name's host, when it is not the Matrix host. */
export const WELL_KNOWN_TLS_SECRET = 'matrix-well-known-tls';

export interface WellKnownProps extends ChartProps {
  readonly namespace: string;
  /** The host clients and other servers should use (reached on 443). */
  readonly matrixHost: string;
  /** An image with Python 3 (the Synapse image). */
  readonly image: ImageConfig;
  /**
   * Route https://<serverHost>/.well-known/matrix here, with a certificate of
   * its own. @default - not routed here: the server name is the Matrix host,
   * and the path joins Synapse's route
   */
  readonly route?: { readonly serverHost: string; readonly ingress: IngressSettings };
  /** Where its pods may run, beyond what the chart sets. @default - anywhere the chart allows */
  readonly scheduling?: PodScheduling;
}

/** The delegation documents: where the Matrix server name's homeserver really is. */
export function wellKnownDocuments(matrixHost: string): { server: object; client: object } {
  return {
    server: { 'm.server': `${matrixHost}:443` },
    client: { 'm.homeserver': { base_url: `https://${matrixHost}` } },
  };
}

/**
 * Serves https://<serverName>/.well-known/matrix/{server,client} so other
 * servers federate with, and clients find, the homeserver at the Matrix host
 * on 443, and routes the server name's host here (unless that host is the
 * Matrix host, whose route is Synapse's).
 */
export class WellKnownChart extends Chart {
  public readonly serviceName: string;

  constructor(scope: Construct, id: string, props: WellKnownProps) {
    super(scope, id, props);
    const component = WELL_KNOWN;
    const meta = { namespace: props.namespace, labels: labels(component) };
    const docs = wellKnownDocuments(props.matrixHost);
    const files = {
      'server.json': `${JSON.stringify(docs.server)}\n`,
      'client.json': `${JSON.stringify(docs.client)}\n`,
      'well_known.py': bundledFile('well_known.py'),
    };
    const config = new k8s.KubeConfigMap(this, 'config', { metadata: { name: 'matrix-well-known', ...meta }, data: files });

    new k8s.KubeDeployment(this, 'deployment', {
      metadata: { name: 'matrix-well-known', ...meta },
      spec: {
        replicas: 2,
        selector: { matchLabels: selectorLabels(component) },
        template: {
          metadata: { labels: labels(component), annotations: { [CONFIG_HASH_ANNOTATION]: contentHash(files) } },
          spec: withScheduling(
            {
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: restrictedPod(UID.synapse),
              // The two replicas on different nodes where there are several.
              affinity: {
                podAntiAffinity: {
                  preferredDuringSchedulingIgnoredDuringExecution: [
                    {
                      weight: 100,
                      podAffinityTerm: { labelSelector: { matchLabels: selectorLabels(component) }, topologyKey: 'kubernetes.io/hostname' },
                    },
                  ],
                },
              },
              containers: [
                {
                  name: 'well-known',
                  image: imageRef(props.image),
                  command: ['python3', '/srv/well-known/well_known.py', '/srv/well-known', String(WELL_KNOWN_PORT)],
                  env: [{ name: 'PYTHONDONTWRITEBYTECODE', value: '1' }],
                  ports: [tcpPort('http', WELL_KNOWN_PORT)],
                  // Python's http.server with two small documents: about 15 MiB resident.
                  resources: resourceRequirements({ requests: { cpu: '5m', memory: '32Mi' }, limits: { cpu: '200m', memory: '48Mi' } }),
                  securityContext: restrictedContainer(),
                  readinessProbe: { httpGet: { path: '/health', port: k8s.IntOrString.fromString('http') }, periodSeconds: 10 },
                  livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('http') }, periodSeconds: 30 },
                  volumeMounts: [
                    { name: 'config', mountPath: '/srv/well-known', readOnly: true },
                    { name: 'tmp', mountPath: '/tmp' },
                  ],
                },
              ],
              volumes: [{ name: 'config', configMap: { name: config.name } }, memoryVolume('tmp', '8Mi')],
            },
            props.scheduling,
            selectorLabels(component),
          ),
        },
      },
    });

    // Two replicas, and a drain may take only one at a time.
    new k8s.KubePodDisruptionBudget(this, 'disruption-budget', {
      metadata: { name: 'matrix-well-known', ...meta },
      spec: { minAvailable: k8s.IntOrString.fromNumber(1), selector: { matchLabels: selectorLabels(component) } },
    });

    const service = new k8s.KubeService(this, 'service', {
      metadata: { name: 'matrix-well-known', ...meta },
      spec: {
        selector: selectorLabels(component),
        ports: [{ name: 'http', port: WELL_KNOWN_PORT, targetPort: k8s.IntOrString.fromString('http') }],
      },
    });
    this.serviceName = service.name;

    if (props.route !== undefined) {
      exposeHttp(this, 'ingress', {
        name: 'matrix-well-known',
        namespace: props.namespace,
        labels: labels(component),
        host: props.route.serverHost,
        tlsSecret: WELL_KNOWN_TLS_SECRET,
        backends: [{ path: WELL_KNOWN_PATH, service: service.name, port: WELL_KNOWN_PORT }],
        settings: props.route.ingress,
      });
    }
  }
}
