import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ServiceMonitor } from '../imports/monitoring.coreos.com';
import { labels, selectorLabels } from './common';

export interface ScrapeTarget {
  /** app.kubernetes.io/name of the Service (and of what it selects). */
  readonly name: string;
  readonly namespace: string;
  /** The Service port's name. */
  readonly port: string;
  readonly path: string;
}

export interface MonitoringProps extends ChartProps {
  readonly targets: readonly ScrapeTarget[];
  /** Labels the cluster's Prometheus selects ServiceMonitors by. */
  readonly serviceMonitorLabels: Record<string, string>;
  readonly interval: string;
  /** coturn's metrics: it has no Service of its own, so one is made for scraping. */
  readonly coturn?: { readonly namespace: string; readonly port: number };
}

/** ServiceMonitors for every metrics endpoint of the stack (prometheus-operator). */
export class MonitoringChart extends Chart {
  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id, props);
    const targets = [...props.targets];
    if (props.coturn) {
      const component = { name: 'coturn', component: 'turn' };
      // Headless: its endpoints are the TURN nodes' addresses (host network).
      new k8s.KubeService(this, 'coturn-metrics', {
        metadata: { name: 'coturn-metrics', namespace: props.coturn.namespace, labels: labels(component) },
        spec: {
          clusterIp: 'None',
          selector: selectorLabels(component),
          ports: [{ name: 'metrics', port: props.coturn.port, targetPort: k8s.IntOrString.fromNumber(props.coturn.port) }],
        },
      });
      targets.push({ name: 'coturn', namespace: props.coturn.namespace, port: 'metrics', path: '/metrics' });
    }
    for (const t of targets) {
      new ServiceMonitor(this, `${t.namespace}-${t.name}`, {
        metadata: { name: t.name, namespace: t.namespace, labels: { ...labels({ name: t.name, component: 'monitoring' }), ...props.serviceMonitorLabels } },
        spec: {
          selector: { matchLabels: { 'app.kubernetes.io/name': t.name } },
          namespaceSelector: { matchNames: [t.namespace] },
          endpoints: [{ port: t.port, path: t.path, interval: props.interval }],
        },
      });
    }
  }
}
