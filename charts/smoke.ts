import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { ImageConfig } from './config';
import { bundledFile, labels, NEVER, SCRIPTS_DIR, toolPodTemplate } from './common';
import type { PodScheduling } from './pods';

/** The smoke test's identity (NetworkPolicies select it by it). */
export const SMOKE_TEST = { name: 'smoke-test', component: 'operations' } as const;

export interface SmokeTestProps extends ChartProps {
  readonly namespace: string;
  /** An image with Python 3 (the Synapse image). */
  readonly image: ImageConfig;
  readonly synapseUrl: string;
  readonly matrixUrl: string;
  readonly serverName: string;
  readonly wellKnown: boolean;
  readonly livekitUrl: string;
  readonly turnHost: string;
  /** STUN over UDP at turnHost. @default - no STUN check (LiveKit's own TURN takes UDP at each node's address) */
  readonly turnPort?: number;
  readonly turnTlsPort: number;
  /** Where the Job's pod may run. @default - anywhere */
  readonly scheduling?: PodScheduling;
}

/**
 * A suspended CronJob: the template for `npm run smoke` (or
 * `kubectl create job --from=cronjob/smoke-test`), which checks from inside
 * the cluster the endpoints the production checklist lists.
 */
export class SmokeTestChart extends Chart {
  constructor(scope: Construct, id: string, props: SmokeTestProps) {
    super(scope, id, props);
    const component = SMOKE_TEST;
    const meta = { namespace: props.namespace, labels: labels(component) };
    const config = new k8s.KubeConfigMap(this, 'script', { metadata: { name: 'smoke-test', ...meta }, data: { 'smoke.py': bundledFile('smoke.py') } });
    const env: Record<string, string> = {
      SYNAPSE_URL: props.synapseUrl,
      MATRIX_URL: props.matrixUrl,
      SERVER_NAME: props.serverName,
      WELL_KNOWN: String(props.wellKnown),
      LIVEKIT_URL: props.livekitUrl,
      TURN_HOST: props.turnHost,
      ...(props.turnPort !== undefined ? { TURN_PORT: String(props.turnPort) } : {}),
      TURN_TLS_PORT: String(props.turnTlsPort),
    };
    new k8s.KubeCronJob(this, 'cronjob', {
      metadata: { name: 'smoke-test', ...meta },
      spec: {
        schedule: NEVER,
        suspend: true,
        startingDeadlineSeconds: 300,
        jobTemplate: {
          metadata: { labels: labels(component) },
          spec: {
            backoffLimit: 0,
            activeDeadlineSeconds: 300,
            ttlSecondsAfterFinished: 3600,
            template: toolPodTemplate({
              name: 'smoke-test',
              image: props.image,
              configMap: config.name,
              command: ['python3', `${SCRIPTS_DIR}/smoke.py`],
              env: Object.entries(env).map(([name, value]) => ({ name, value })),
              labels: labels(component),
              scheduling: props.scheduling,
            }),
          },
        },
      },
    });
  }
}
