/**
 * Assembles the whole stack from a validated config. Each chart receives
 * only the slice of config it needs; file names (the chart ids) are
 * numbered so `kubectl apply -f dist/` creates namespaces before their
 * contents and secrets before the workloads that read them.
 */
import { App, AppProps } from 'cdk8s';
import { applySyncWaves, ArgoApplicationChart } from './argocd';
import { BackupChart } from './backup';
import { KudoConfig, POSTGRES_RESERVED_CONNECTIONS, TURN_METRICS_PORT, TURN_PORT, TURN_TLS_PORT } from './config';
import { CoturnChart } from './coturn';
import { LIVEKIT_TLS_SECRET, LiveKitChart } from './livekit';
import { MonitoringChart } from './monitoring';
import { NamespacesChart } from './namespaces';
import { NetworkPoliciesChart } from './network-policies';
import { POSTGRES_EXPORTER_PORT, POSTGRES_PORT, PostgresChart } from './postgres';
import { REDIS_EXPORTER_PORT, REDIS_PORT, RedisChart } from './redis';
import { BootstrapChart, SecretGeneratorChart } from './secrets';
import { SmokeTestChart } from './smoke';
import { SYNAPSE_HTTP_PORT, SYNAPSE_METRICS_PORT, SYNAPSE_TLS_SECRET, SynapseChart, WELL_KNOWN_TLS_SECRET } from './synapse';
import { GatewayChart, IngressSettings, LetsEncryptIssuerChart } from './tls';
import { WELL_KNOWN_PORT, WellKnownChart } from './well-known';

export function buildApp(config: KudoConfig, props: AppProps = {}): App {
  const app = new App(props);
  const ns = config.namespaces;
  const refs = config.secrets.refs;
  // The Jobs, the well-known server and coturn's address lookup need Python 3; the Synapse image has it.
  const toolsImage = config.synapse.image;
  const gw = config.gatewayApi;
  const gateway = config.routing === 'gateway-api' ? { name: gw.gatewayName, namespace: gw.gatewayNamespace } : undefined;
  const ingress: IngressSettings = {
    mode: config.routing,
    controller: config.ingress.controller,
    gateway,
    className: config.ingress.className,
    issuerKind: config.tls.issuer.kind,
    issuerName: config.tls.issuer.name,
    annotations: config.ingress.annotations,
  };

  new NamespacesChart(app, '00-namespaces', { stack: ns.stack, hostNetwork: ns.hostNetwork, app: ns.app });
  if (config.tls.letsEncrypt.create && config.tls.issuer.kind === 'ClusterIssuer') {
    new LetsEncryptIssuerChart(app, '01-cert-manager', {
      name: config.tls.issuer.name,
      environment: config.tls.letsEncrypt.environment,
      email: config.tls.letsEncrypt.email,
      ingressClassName: config.ingress.className,
      gateway,
    });
  }
  if (gateway !== undefined && gw.createGateway && gw.gatewayClassName !== undefined) {
    const hosts = [{ host: config.hosts.matrix, tlsSecret: SYNAPSE_TLS_SECRET }, { host: config.hosts.livekit, tlsSecret: LIVEKIT_TLS_SECRET }];
    if (config.wellKnown.enabled && config.serverName !== config.hosts.matrix) hosts.push({ host: config.serverName, tlsSecret: WELL_KNOWN_TLS_SECRET });
    new GatewayChart(app, '02-gateway', {
      name: gateway.name,
      namespace: gateway.namespace,
      className: gw.gatewayClassName,
      hosts,
      routeNamespaces: [ns.stack, ns.hostNetwork],
      issuerKind: config.tls.issuer.kind,
      issuerName: config.tls.issuer.name,
    });
  }
  if (config.secrets.mode === 'generated') {
    new SecretGeneratorChart(app, '05-secrets', { namespaces: ns, refs, toolsImage });
  }

  if (config.networkPolicies.enabled) {
    const np = config.networkPolicies;
    new NetworkPoliciesChart(app, '06-network-policies', {
      namespace: ns.stack,
      publicTrafficNamespace: config.publicTrafficNamespace,
      appNamespace: ns.app,
      dnsNamespace: np.dnsNamespace,
      nodeCidrs: np.nodeCidrs,
      ports: {
        postgres: POSTGRES_PORT, redis: REDIS_PORT, synapse: SYNAPSE_HTTP_PORT, wellKnown: WELL_KNOWN_PORT,
        synapseMetrics: SYNAPSE_METRICS_PORT, postgresMetrics: POSTGRES_EXPORTER_PORT, redisMetrics: REDIS_EXPORTER_PORT,
      },
      backupToS3: config.backup.enabled && config.backup.s3.enabled,
      monitoringNamespace: config.monitoring.enabled ? config.monitoring.namespace : undefined,
    });
  }

  const pool = config.synapse.databasePool;
  const postgres = new PostgresChart(app, '10-postgres', {
    namespace: ns.stack,
    image: config.postgres.image,
    storage: config.postgres.storage,
    resources: config.postgres.resources,
    maxConnections: config.postgres.maxConnections ?? pool.max + POSTGRES_RESERVED_CONNECTIONS,
    password: refs.postgresPassword,
    superuserPassword: refs.postgresSuperuserPassword,
    exporter: config.monitoring.enabled ? config.monitoring.postgresExporter : undefined,
  });

  const redis = new RedisChart(app, '11-redis', {
    namespace: ns.stack,
    image: config.redis.image,
    resources: config.redis.resources,
    password: refs.redisPassword,
    exporter: config.monitoring.enabled ? config.monitoring.redisExporter : undefined,
  });

  const wellKnown = config.wellKnown.enabled
    ? new WellKnownChart(app, '21-well-known', { namespace: ns.stack, matrixHost: config.hosts.matrix, image: toolsImage })
    : undefined;

  const turn = { host: config.hosts.turn, ttlSeconds: config.coturn.credentialTtlSeconds };
  const synapse = new SynapseChart(app, '20-synapse', {
    namespace: ns.stack,
    serverName: config.serverName,
    publicHost: config.hosts.matrix,
    image: config.synapse.image,
    resources: config.synapse.resources,
    media: config.synapse.media,
    maxUploadSize: config.synapse.maxUploadSize,
    reportStats: config.synapse.reportStats,
    enableRegistration: config.synapse.enableRegistration,
    logLevel: config.synapse.logLevel,
    database: {
      host: postgres.host, port: postgres.port, name: postgres.database, user: postgres.user, poolMin: pool.min, poolMax: pool.max,
    },
    turn,
    secrets: refs,
    ingress,
    wellKnownService: wellKnown && { name: wellKnown.serviceName, port: WELL_KNOWN_PORT },
    adminApiSourceRanges: config.synapse.adminApi.expose ? config.synapse.adminApi.sourceRanges : undefined,
  });

  new LiveKitChart(app, '30-livekit', {
    namespace: ns.hostNetwork,
    image: config.livekit.image,
    resources: config.livekit.resources,
    replicas: config.livekit.replicas,
    nodeSelector: config.livekit.nodeSelector,
    host: config.hosts.livekit,
    redisAddress: redis.address,
    rtc: config.livekit.rtc,
    turn,
    secrets: {
      apiKey: refs.livekitApiKey,
      apiSecret: refs.livekitApiSecret,
      redisPassword: refs.redisPassword,
      turnSharedSecret: refs.turnSharedSecret,
    },
    ingress,
    toolsImage,
  });

  new CoturnChart(app, '31-coturn', {
    namespace: ns.hostNetwork,
    image: config.coturn.image,
    toolsImage,
    resources: config.coturn.resources,
    host: config.hosts.turn,
    nodeSelector: config.coturn.nodeSelector,
    publicIp: config.coturn.publicIp,
    relayPorts: config.coturn.relayPorts,
    userQuota: config.coturn.userQuota,
    totalQuota: config.coturn.totalQuota,
    turnSharedSecret: refs.turnSharedSecret,
    issuer: config.tls.issuer,
  });

  new SmokeTestChart(app, '45-smoke', {
    namespace: ns.stack,
    image: toolsImage,
    synapseUrl: synapse.internalUrl,
    matrixUrl: `https://${config.hosts.matrix}`,
    serverName: config.serverName,
    wellKnown: config.wellKnown.enabled,
    livekitUrl: `https://${config.hosts.livekit}`,
    turnHost: config.hosts.turn,
    turnPort: TURN_PORT,
    turnTlsPort: TURN_TLS_PORT,
  });

  if (config.backup.enabled) {
    const b = config.backup;
    new BackupChart(app, '50-backup', {
      namespace: ns.stack,
      image: config.postgres.image,
      resources: b.resources,
      schedule: b.schedule,
      retention: b.retention,
      storage: b.storage,
      postgres: { host: postgres.host, port: postgres.port, database: postgres.database, user: postgres.user, password: refs.postgresPassword },
      media: { claimName: synapse.mediaClaimName, synapseSelector: synapse.podSelector },
      s3: b.s3.enabled && b.s3.repository !== undefined ? { repository: b.s3.repository, secretName: b.s3.secretName, image: b.s3.image } : undefined,
    });
  }

  new BootstrapChart(app, '40-bootstrap', {
    namespaces: ns,
    refs,
    appSecretName: config.secrets.appSecretName,
    toolsImage,
    serverName: config.serverName,
    adminUser: config.synapse.adminUser,
    synapseUrl: synapse.internalUrl,
    publicHomeserverUrl: `https://${config.hosts.matrix}`,
    publicLivekitUrl: `wss://${config.hosts.livekit}`,
  });
  if (config.monitoring.enabled) {
    new MonitoringChart(app, '60-monitoring', {
      targets: [
        { name: 'synapse', namespace: ns.stack, port: 'metrics', path: '/_synapse/metrics' },
        { name: 'postgres', namespace: ns.stack, port: 'metrics', path: '/metrics' },
        { name: 'redis', namespace: ns.stack, port: 'metrics', path: '/metrics' },
        { name: 'livekit', namespace: ns.hostNetwork, port: 'metrics', path: '/metrics' },
      ],
      serviceMonitorLabels: config.monitoring.serviceMonitorLabels,
      interval: config.monitoring.interval,
      coturn: { namespace: ns.hostNetwork, port: TURN_METRICS_PORT },
    });
  }

  const a = config.argocd;
  if (a.enabled && a.repoURL !== undefined) {
    new ArgoApplicationChart(app, '90-argocd', {
      namespace: a.namespace, project: a.project, repoURL: a.repoURL, targetRevision: a.targetRevision, path: a.path, prune: a.prune,
    });
  }
  applySyncWaves(app);
  return app;
}
