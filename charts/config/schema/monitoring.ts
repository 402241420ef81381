/** Monitoring: ServiceMonitors, alerts and dashboards. */
import type { Fragments } from './shared';

/** The config keys monitoring: schema, defaults and documentation. */
export function monitoringFragment({ z, dnsLabel, labelMap, image }: Fragments) {
  return {
    monitoring: z
      .strictObject({
        /** ServiceMonitors (prometheus-operator) for Synapse, LiveKit, coturn, and PostgreSQL and Redis exporters. */
        enabled: z.boolean().default(false),
        /** Where Prometheus runs; the NetworkPolicies let it scrape. */
        namespace: dnsLabel.default('monitoring'),
        /** Labels your Prometheus selects ServiceMonitors and PrometheusRules by (e.g. release: prometheus). */
        serviceMonitorLabels: labelMap.default({}),
        interval: z
          .string()
          .regex(/^[0-9]+(s|m)$/, 'must be a duration such as "30s" or "1m"')
          .default('30s'),
        postgresExporter: image('quay.io/prometheuscommunity/postgres-exporter', 'v0.18.1'),
        redisExporter: image('docker.io/oliver006/redis_exporter', 'v1.67.0'),
        /** PrometheusRules: alerts for each component, for backups (kube-state-metrics) and certificates (cert-manager's metrics). */
        alerts: z.boolean().default(true),
        /** Grafana dashboards, one per component, as ConfigMaps that Grafana's dashboard sidecar loads. */
        dashboards: z.boolean().default(true),
        /** The label the sidecar looks for (kube-prometheus-stack's default: grafana_dashboard: "1"). */
        dashboardLabels: labelMap.default({ grafana_dashboard: '1' }),
      })
      .prefault({}),
  };
}
