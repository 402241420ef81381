/**
 * Assembles the whole stack from a validated config. Each chart receives
 * only the slice of config it needs; file names (the chart ids) are
 * numbered so `kubectl apply -f dist/` creates namespaces before their
 * contents and secrets before the workloads that read them.
 */
import { App, AppProps } from 'cdk8s';
import { Construct } from 'constructs';
import { applySyncWaves, ArgoApplicationChart, keepState } from './argocd';
import { BACKUP, BackupChart, secretsFetch } from './backup';
import { selectorLabels } from './common';
import {
  KudoConfig,
  LIVEKIT_API_PORT,
  LIVEKIT_METRICS_PORT,
  POSTGRES_RESERVED_CONNECTIONS,
  synapseConnections,
  TURN_METRICS_PORT,
  TURN_PORT,
  TURN_TLS_PORT,
  workerReplicas,
} from './config';
import { CloudNativePgChart, CNPG_CLUSTER, CNPG_METRICS_PORT, CNPG_OPERATOR_PODS, CNPG_POD_LABEL, CNPG_STATUS_PORT, objectStorePort } from './cloudnative-pg';
import { CoturnChart } from './coturn';
import type { DatabaseConnection } from './database';
import { LIVEKIT, LIVEKIT_TLS_SECRET, LIVEKIT_TURN_ADVERTISED_TLS_PORT, LiveKitChart } from './livekit';
import { MonitoringChart } from './monitoring';
import { NamespacesChart } from './namespaces';
import { mergeScheduling } from './pods';
import { DatabasePeers, NetworkPoliciesChart, NetworkPoliciesProps } from './network-policies';
import { POSTGRES, POSTGRES_EXPORTER_PORT, POSTGRES_PORT, PostgresChart } from './postgres';
import { REDIS, REDIS_EXPORTER_PORT, REDIS_PORT, RedisChart } from './redis';
import { ADMIN_BOOTSTRAP, BootstrapChart, SECRET_GENERATOR, secretFeatures, SecretGeneratorChart, secretPlan } from './secrets';
import { SMOKE_TEST, SmokeTestChart } from './smoke';
import {
  ALL_SYNAPSE_PROCESSES,
  SYNAPSE,
  SYNAPSE_HTTP_PORT,
  SYNAPSE_METRICS_PORT,
  SYNAPSE_MIGRATION,
  SYNAPSE_PROXIED_PORT,
  SYNAPSE_REPLICATION_PORT,
  SYNAPSE_TLS_SECRET,
  SynapseChart,
  SynapseWorkers,
  workerComponent,
} from './synapse';
import { ROUTER_PORT, ROUTER_PROXIED_PORT, ROUTER_STATUS_PORT, SYNAPSE_ROUTER, SynapseRouterChart } from './synapse-router';
import type { WorkerTypeName } from './synapse-workers';
import { GATEWAY_HTTP_LISTENER, GATEWAY_HTTP_PORT, GATEWAY_HTTPS_PORT, GATEWAY_NAME_LABEL, GatewayChart, IngressSettings, LetsEncryptIssuerChart } from './tls';
import { WELL_KNOWN, WELL_KNOWN_PORT, WELL_KNOWN_TLS_SECRET, WellKnownChart } from './well-known';

export interface KudoStackProps {
  /** The validated config: `resolveConfig({ domain: ... })` or `loadConfig(file)`. */
  readonly config: KudoConfig;
}

/**
 * The whole stack, for a cdk8s app of your own: one chart per rendered file
 * (namespaces, secrets, databases, Synapse, LiveKit, coturn, routes, backups,
 * monitoring, the Argo CD Application), ordered and annotated for Argo CD.
 *
 *     const app = new App();
 *     new KudoStack(app, 'kudo', { config: resolveConfig({ domain: 'chat.example.org' }) });
 *     app.synth();
 */
export class KudoStack extends Construct {
  public readonly config: KudoConfig;

  constructor(scope: Construct, id: string, props: KudoStackProps) {
    super(scope, id);
    const config = props.config;
    this.config = config;
    const ingress = platform(this, config);
    const { database, redis } = databases(this, config);
    const synapse = matrix(this, config, ingress, database, redis);
    media(this, config, ingress, redis?.address);
    operations(this, config, { synapseUrl: synapse.internalUrl, synapse, database });
    if (config.networkPolicies.enabled) networkPolicies(this, config);
    applySyncWaves(this);
    keepState(this);
  }
}

/** An app holding the stack and nothing else (what `npm run synth` renders). */
export function buildApp(config: KudoConfig, props: AppProps = {}): App {
  const app = new App(props);
  new KudoStack(app, 'kudo', { config });
  return app;
}

/** The Jobs, the well-known server and the address lookups need Python 3; the Synapse image has it. */
const toolsImage = (config: KudoConfig) => config.synapse.image;

/** Where a workload's pods may run (its settings and scheduling.all's), and the Secrets they pull images with. */
const scheduling = (config: KudoConfig, workload: Exclude<keyof KudoConfig['scheduling'], 'all'>) =>
  mergeScheduling(config.scheduling.all, config.scheduling[workload], config.imagePullSecrets);

/** Namespaces, the issuer, the Gateway and the secret generator; returns how hosts are exposed. */
function platform(app: Construct, config: KudoConfig): IngressSettings {
  const ns = config.namespaces;
  const gw = config.gatewayApi;
  const gateway = config.routing === 'gateway-api' ? { name: gw.gatewayName, namespace: gw.gatewayNamespace } : undefined;
  new NamespacesChart(app, '00-namespaces', {
    stack: ns.stack,
    hostNetwork: ns.hostNetwork,
    app: ns.app,
    mediaOnHostNetwork: config.livekit.hostNetwork || config.coturn.enabled,
  });
  if (config.tls.letsEncrypt.create && config.tls.issuer.kind === 'ClusterIssuer') {
    new LetsEncryptIssuerChart(app, '01-cert-manager', {
      name: config.tls.issuer.name,
      environment: config.tls.letsEncrypt.environment,
      email: config.tls.letsEncrypt.email,
      ingressClassName: config.ingress.className,
      // Our Gateway's HTTP listener; a shared Gateway's listener names are its owner's.
      gateway: gateway !== undefined && gw.createGateway ? { ...gateway, sectionName: GATEWAY_HTTP_LISTENER } : gateway,
    });
  }
  if (gateway !== undefined && gw.createGateway && gw.gatewayClassName !== undefined) {
    const hosts = [
      { host: config.hosts.matrix, tlsSecret: SYNAPSE_TLS_SECRET },
      { host: config.hosts.livekit, tlsSecret: LIVEKIT_TLS_SECRET },
    ];
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
    const b = config.backup;
    const restoreFrom = config.secrets.restoreFromBackup;
    new SecretGeneratorChart(app, '05-secrets', {
      namespaces: ns,
      refs: config.secrets.refs,
      toolsImage: toolsImage(config),
      features: secretFeatures(config),
      restore:
        restoreFrom !== undefined && b.s3.repository !== undefined
          ? secretsFetch({ resticImage: b.resticImage, s3: { repository: b.s3.repository, secretName: b.s3.secretName }, snapshot: restoreFrom })
          : undefined,
      scheduling: scheduling(config, 'tools'),
    });
  }
  return {
    mode: config.routing,
    controller: config.ingress.controller,
    gateway,
    className: config.ingress.className,
    issuerKind: config.tls.issuer.kind,
    issuerName: config.tls.issuer.name,
    annotations: config.ingress.annotations,
  };
}

/** PostgreSQL (as a StatefulSet, a CloudNativePG Cluster, or none: an external one) and Redis; returns how to reach them. */
function databases(app: Construct, config: KudoConfig): { database: DatabaseConnection; redis?: RedisChart } {
  const ns = config.namespaces;
  const refs = config.secrets.refs;
  const pg = config.postgres;
  const maxConnections = pg.maxConnections ?? synapseConnections(config).total + POSTGRES_RESERVED_CONNECTIONS;
  let database: DatabaseConnection;
  if (pg.mode === 'statefulset') {
    const postgres = new PostgresChart(app, '10-postgres', {
      namespace: ns.stack,
      image: pg.image,
      storage: pg.storage,
      resources: pg.resources,
      maxConnections,
      password: refs.postgresPassword,
      superuserPassword: refs.postgresSuperuserPassword,
      exporter: config.monitoring.enabled ? config.monitoring.postgresExporter : undefined,
      scheduling: scheduling(config, 'postgres'),
      tls: true,
    });
    database = { host: postgres.host, port: postgres.port, name: postgres.database, user: postgres.user, password: refs.postgresPassword, tls: postgres.tls };
  } else if (pg.mode === 'cloudnative-pg') {
    const c = pg.cloudnativePg;
    const b = c.backup;
    const cluster = new CloudNativePgChart(app, '10-postgres', {
      namespace: ns.stack,
      image: c.image,
      instances: c.instances,
      storage: pg.storage,
      resources: pg.resources,
      maxConnections,
      database: 'synapse',
      owner: 'synapse',
      synchronous: c.synchronous,
      podAntiAffinity: c.podAntiAffinity,
      backup:
        b.enabled && b.destinationPath !== undefined
          ? {
              destinationPath: b.destinationPath,
              endpointURL: b.endpointURL,
              s3Credentials: b.s3Credentials,
              retention: b.retention,
              schedule: b.schedule,
              archiveTimeoutSeconds: b.archiveTimeoutSeconds,
              serverName: b.serverName,
            }
          : undefined,
      recovery: c.recovery,
      podMonitorLabels: config.monitoring.enabled ? config.monitoring.serviceMonitorLabels : undefined,
      scheduling: scheduling(config, 'postgres'),
    });
    // The owner's credentials are in the Secret the operator makes.
    database = { host: cluster.host, port: cluster.port, name: 'synapse', user: 'synapse', password: cluster.passwordSecret, tls: cluster.tls };
  } else {
    const e = pg.external;
    database = {
      host: e.host!,
      port: e.port,
      name: e.database,
      user: e.user,
      password: refs.postgresPassword,
      tls: { sslmode: e.sslmode, ca: e.ca.name !== undefined ? { kind: e.ca.kind, name: e.ca.name, key: e.ca.key } : undefined },
    };
  }
  const redis = config.redis.enabled
    ? new RedisChart(app, '11-redis', {
        namespace: ns.stack,
        image: config.redis.image,
        resources: config.redis.resources,
        password: refs.redisPassword,
        exporter: config.monitoring.enabled ? config.monitoring.redisExporter : undefined,
        scheduling: scheduling(config, 'redis'),
      })
    : undefined;
  return { database, redis };
}

/** Synapse (its main process, and its workers behind their router) and the delegation server. */
function matrix(app: Construct, config: KudoConfig, ingress: IngressSettings, database: DatabaseConnection, redis?: RedisChart): SynapseChart {
  const ns = config.namespaces;
  // One host, one route, one certificate: the server name's delegation path joins Synapse's when they are one host.
  const sameHost = config.serverName === config.hosts.matrix;
  const wellKnown = config.wellKnown.enabled
    ? new WellKnownChart(app, '21-well-known', {
        namespace: ns.stack,
        matrixHost: config.hosts.matrix,
        image: toolsImage(config),
        route: sameHost ? undefined : { serverHost: config.serverName, ingress },
        scheduling: scheduling(config, 'wellKnown'),
      })
    : undefined;
  const pool = config.synapse.databasePool;
  return new SynapseChart(app, '20-synapse', {
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
    database: { ...database, poolMin: pool.min, poolMax: pool.max },
    turn: config.coturn.enabled ? turnSettings(config) : undefined,
    secrets: config.secrets.refs,
    ingress,
    wellKnownService: wellKnown && sameHost ? { name: wellKnown.serviceName, port: WELL_KNOWN_PORT } : undefined,
    adminApiSourceRanges: config.synapse.adminApi.expose ? config.synapse.adminApi.sourceRanges : undefined,
    workers: workers(app, config, redis),
    mediaRetention: config.synapse.mediaRetention,
    retention: config.synapse.retention,
    extraConfig: config.synapse.extraConfig,
    extraSecretFiles: config.synapse.extraSecretFiles,
    scheduling: scheduling(config, 'synapse'),
  });
}

/** With workers: the router in front of Synapse's processes, and what the Synapse chart needs to know of them. */
function workers(app: Construct, config: KudoConfig, redis?: RedisChart): SynapseWorkers | undefined {
  const w = config.synapse.workers;
  if (!w.enabled || redis === undefined) return undefined;
  const replicas = workerReplicas(config);
  const router = new SynapseRouterChart(app, '22-synapse-router', {
    namespace: config.namespaces.stack,
    image: w.router,
    replicas: w.routerReplicas,
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } },
    workers: replicas,
    main: { service: 'synapse', port: SYNAPSE_PROXIED_PORT },
    scheduling: scheduling(config, 'synapseRouter'),
  });
  return {
    replicas,
    resources: w.resources,
    poolMin: w.databasePool.min,
    poolMax: w.databasePool.max,
    redis: { host: redis.host, port: REDIS_PORT },
    router: { service: router.serviceName, port: ROUTER_PORT, proxiedPort: ROUTER_PROXIED_PORT },
    scheduling: scheduling(config, 'synapseWorkers'),
  };
}

const turnSettings = (config: KudoConfig) => ({ host: config.hosts.turn, ttlSeconds: config.coturn.credentialTtlSeconds });

/** LiveKit and coturn (or LiveKit with its own TURN), on the host network or LiveKit off it. */
function media(app: Construct, config: KudoConfig, ingress: IngressSettings, redisAddress: string | undefined): void {
  const ns = config.namespaces;
  const refs = config.secrets.refs;
  new LiveKitChart(app, '30-livekit', {
    namespace: ns.hostNetwork,
    image: config.livekit.image,
    resources: config.livekit.resources,
    replicas: config.livekit.replicas,
    nodeSelector: config.livekit.nodeSelector,
    host: config.hosts.livekit,
    redisAddress,
    rtc: config.livekit.rtc,
    turn: config.coturn.enabled ? turnSettings(config) : undefined,
    builtInTurn: config.livekit.turn.enabled
      ? // udpPort is required with turn.enabled (livekitPodNetworkProblems)
        { domain: config.hosts.turn, udpPort: config.livekit.turn.udpPort!, tlsPort: config.livekit.turn.tlsPort, issuer: config.tls.issuer }
      : undefined,
    secrets: {
      apiKey: refs.livekitApiKey,
      apiSecret: refs.livekitApiSecret,
      redisPassword: refs.redisPassword,
      turnSharedSecret: refs.turnSharedSecret,
    },
    ingress,
    toolsImage: toolsImage(config),
    scheduling: scheduling(config, 'livekit'),
    hostNetwork: config.livekit.hostNetwork,
  });
  if (!config.coturn.enabled) return;
  new CoturnChart(app, '31-coturn', {
    namespace: ns.hostNetwork,
    image: config.coturn.image,
    toolsImage: toolsImage(config),
    resources: config.coturn.resources,
    host: config.hosts.turn,
    nodeSelector: config.coturn.nodeSelector,
    publicIp: config.coturn.publicIp,
    relayPorts: config.coturn.relayPorts,
    userQuota: config.coturn.userQuota,
    totalQuota: config.coturn.totalQuota,
    extraDeniedPeerIps: config.coturn.extraDeniedPeerIps,
    tlsMinVersion: config.coturn.tls.minVersion,
    turnSharedSecret: refs.turnSharedSecret,
    issuer: config.tls.issuer,
    scheduling: scheduling(config, 'coturn'),
  });
}

/** What runs around the services: the admin bootstrap, the smoke test, backups, monitoring, the Argo CD Application. */
function operations(app: Construct, config: KudoConfig, s: { synapseUrl: string; synapse: SynapseChart; database: DatabaseConnection }): void {
  const ns = config.namespaces;
  const refs = config.secrets.refs;
  new BootstrapChart(app, '40-bootstrap', {
    namespaces: ns,
    refs,
    appSecretName: config.secrets.appSecretName,
    toolsImage: toolsImage(config),
    serverName: config.serverName,
    adminUser: config.synapse.adminUser,
    synapseUrl: s.synapseUrl,
    publicHomeserverUrl: `https://${config.hosts.matrix}`,
    publicLivekitUrl: `wss://${config.hosts.livekit}`,
    appAdminUrl: config.app.outsideCluster ? `https://${config.hosts.matrix}` : undefined,
    scheduling: scheduling(config, 'tools'),
  });
  new SmokeTestChart(app, '45-smoke', {
    namespace: ns.stack,
    image: toolsImage(config),
    synapseUrl: s.synapseUrl,
    matrixUrl: `https://${config.hosts.matrix}`,
    serverName: config.serverName,
    wellKnown: config.wellKnown.enabled,
    livekitUrl: `https://${config.hosts.livekit}`,
    turnHost: config.hosts.turn,
    // LiveKit's own TURN: TLS on 443 through its Service; its UDP is at each node's address, which the smoke test does not know.
    turnPort: config.coturn.enabled ? TURN_PORT : undefined,
    turnTlsPort: config.coturn.enabled ? TURN_TLS_PORT : LIVEKIT_TURN_ADVERTISED_TLS_PORT,
    scheduling: scheduling(config, 'tools'),
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
      postgres: s.database,
      media: { claimName: s.synapse.mediaClaimName, synapseSelector: s.synapse.podSelector },
      resticImage: b.resticImage,
      repositoryPassword: config.secrets.refs.backupPassword,
      s3: b.s3.enabled && b.s3.repository !== undefined ? { repository: b.s3.repository, secretName: b.s3.secretName } : undefined,
      secrets:
        config.secrets.mode === 'generated' ? { plan: secretPlan(config.secrets.refs, config.namespaces, secretFeatures(config)), toolsImage: toolsImage(config) } : undefined,
      scheduling: scheduling(config, 'backup'),
    });
  }
  if (config.monitoring.enabled) {
    const m = config.monitoring;
    // Each Synapse process's Service, main first (prometheus-operator names the job after it).
    const synapseServices = [
      'synapse',
      ...Object.entries(workerReplicas(config))
        .filter(([, n]) => n > 0)
        .map(([t]) => workerComponent(t as WorkerTypeName).name),
    ];
    const router = config.synapse.workers.enabled ? SYNAPSE_ROUTER.name : undefined;
    const pg = config.postgres;
    const gw = config.gatewayApi;
    new MonitoringChart(app, '60-monitoring', {
      targets: [
        ...synapseServices.map((name) => ({ name, namespace: ns.stack, port: 'metrics', path: '/_synapse/metrics' })),
        ...(router !== undefined ? [{ name: router, namespace: ns.stack, port: 'metrics', path: '/metrics' }] : []),
        // postgres_exporter beside the StatefulSet; CloudNativePG's instances have their PodMonitor, an external database nothing.
        ...(pg.mode === 'statefulset' ? [{ name: 'postgres', namespace: ns.stack, port: 'metrics', path: '/metrics' }] : []),
        ...(config.redis.enabled ? [{ name: 'redis', namespace: ns.stack, port: 'metrics', path: '/metrics' }] : []),
        { name: 'livekit', namespace: ns.hostNetwork, port: 'metrics', path: '/metrics' },
      ],
      serviceMonitorLabels: m.serviceMonitorLabels,
      interval: m.interval,
      coturn: config.coturn.enabled ? { namespace: ns.hostNetwork, port: TURN_METRICS_PORT } : undefined,
      alerts: m.alerts,
      dashboardLabels: m.dashboards ? m.dashboardLabels : undefined,
      stack: {
        synapse: { namespace: ns.stack, services: synapseServices, router },
        postgres:
          pg.mode === 'statefulset'
            ? { source: 'postgres-exporter', namespace: ns.stack, service: 'postgres', claim: 'data-postgres-0' }
            : pg.mode === 'cloudnative-pg'
              ? { source: 'cloudnative-pg', namespace: ns.stack, podMonitor: CNPG_CLUSTER, backup: pg.cloudnativePg.backup.enabled, claim: `${CNPG_CLUSTER}-[0-9]+` }
              : undefined,
        redis: config.redis.enabled ? { namespace: ns.stack, service: 'redis' } : undefined,
        livekit: { namespace: ns.hostNetwork, service: 'livekit', replicas: config.livekit.replicas, hostNetwork: config.livekit.hostNetwork },
        turn: { relayPorts: config.coturn.relayPorts, totalQuota: config.coturn.totalQuota },
        backups: config.backup.enabled ? { namespace: ns.stack, cronJobs: ['postgres-backup', 'media-backup'], claim: 'kudo-backups' } : undefined,
        // The media claim, and the database's: the StatefulSet's for its pod, or one per CloudNativePG instance.
        volumes: {
          namespace: ns.stack,
          claims: ['synapse-media', ...(pg.mode === 'statefulset' ? ['data-postgres-0'] : pg.mode === 'cloudnative-pg' ? [`${CNPG_CLUSTER}-[0-9]+`] : [])],
        },
        certificateNamespaces: [...new Set([ns.stack, ns.hostNetwork, ...(config.routing === 'gateway-api' && gw.createGateway ? [gw.gatewayNamespace] : [])])],
      },
    });
  }
  const a = config.argocd;
  if (a.enabled && a.repoURL !== undefined) {
    new ArgoApplicationChart(app, '90-argocd', {
      namespace: a.namespace,
      applicationName: a.applicationName,
      project: a.project,
      repoURL: a.repoURL,
      targetRevision: a.targetRevision,
      path: a.path,
      prune: a.prune,
    });
  }
}

/** Default-deny in the stack namespace, then the flows between the pods the charts label. */
function networkPolicies(app: Construct, config: KudoConfig): void {
  const np = config.networkPolicies;
  new NetworkPoliciesChart(app, '06-network-policies', {
    namespace: config.namespaces.stack,
    publicTrafficNamespace: config.publicTrafficNamespace,
    appNamespace: config.namespaces.app,
    dnsNamespace: np.dnsNamespace,
    nodeCidrs: np.nodeCidrs,
    clusterCidrs: np.clusterCidrs,
    ports: {
      redis: REDIS_PORT,
      synapse: SYNAPSE_HTTP_PORT,
      synapseProxied: SYNAPSE_PROXIED_PORT,
      wellKnown: WELL_KNOWN_PORT,
      synapseMetrics: SYNAPSE_METRICS_PORT,
      redisMetrics: REDIS_EXPORTER_PORT,
      // coturn's ports, or LiveKit's TURN: its first replica's UDP port (the smoke test does not check it), TLS on 443.
      turn: config.coturn.enabled ? TURN_PORT : config.livekit.turn.udpPort!,
      turnTls: config.coturn.enabled ? TURN_TLS_PORT : LIVEKIT_TURN_ADVERTISED_TLS_PORT,
    },
    database: databasePeers(config),
    pods: {
      redis: selectorLabels(REDIS),
      synapse: selectorLabels(SYNAPSE),
      synapseMigration: selectorLabels(SYNAPSE_MIGRATION),
      wellKnown: selectorLabels(WELL_KNOWN),
      backup: selectorLabels(BACKUP),
      bootstrap: selectorLabels(ADMIN_BOOTSTRAP),
      smoke: selectorLabels(SMOKE_TEST),
    },
    // The nightly database backup reads the generated Secrets it stores with the dump.
    apiClients: [SECRET_GENERATOR.name, ADMIN_BOOTSTRAP.name, ...(config.backup.enabled && config.secrets.mode === 'generated' ? [BACKUP.name] : [])],
    secretsRestore: config.secrets.restoreFromBackup !== undefined ? selectorLabels(SECRET_GENERATOR) : undefined,
    redis: config.redis.enabled,
    wellKnown: config.wellKnown.enabled,
    backup: config.backup.enabled,
    workers:
      config.synapse.workers.enabled && config.redis.enabled
        ? {
            router: selectorLabels(SYNAPSE_ROUTER),
            allProcesses: ALL_SYNAPSE_PROCESSES,
            federationSenders: workerReplicas(config)['federation-sender'] > 0 ? selectorLabels(workerComponent('federation-sender')) : undefined,
            replicationPort: SYNAPSE_REPLICATION_PORT,
            routerStatusPort: ROUTER_STATUS_PORT,
          }
        : undefined,
    // restic's "s3:<endpoint URL>/<bucket>": the endpoint's port, as the object store's.
    backupStorePort:
      config.backup.enabled && config.backup.s3.enabled && config.backup.s3.repository !== undefined ? objectStorePort(config.backup.s3.repository.replace(/^s3:/, '')) : undefined,
    monitoringNamespace: config.monitoring.enabled ? config.monitoring.namespace : undefined,
    gatewayProxies: gatewayProxies(config),
    livekitPods: livekitPods(config),
  });
}

/** LiveKit off the host network: its pods, and the ports its replicas take (config validation requires rtc.udpPort then). */
function livekitPods(config: KudoConfig): NetworkPoliciesProps['livekitPods'] {
  const lk = config.livekit;
  if (lk.hostNetwork) return undefined;
  const last = lk.replicas - 1;
  const udp = lk.rtc.udpPort!;
  return {
    namespace: config.namespaces.hostNetwork,
    pods: selectorLabels(LIVEKIT),
    apiPort: LIVEKIT_API_PORT,
    metricsPort: LIVEKIT_METRICS_PORT,
    udp: [udp, udp + last],
    tcp: [lk.rtc.tcpPort, lk.rtc.tcpPort + last],
    turn: lk.turn.enabled ? { udp: [lk.turn.udpPort!, lk.turn.udpPort! + last], tls: lk.turn.tlsPort } : undefined,
  };
}

/** The Gateway's proxies, when they run in the stack namespace and so under its NetworkPolicies. */
function gatewayProxies(config: KudoConfig): NetworkPoliciesProps['gatewayProxies'] {
  const gw = config.gatewayApi;
  if (config.routing !== 'gateway-api' || gw.proxyNamespace !== config.namespaces.stack) return undefined;
  return {
    labels: { [GATEWAY_NAME_LABEL]: gw.gatewayName },
    listenerPorts: [GATEWAY_HTTP_PORT, GATEWAY_HTTPS_PORT],
    livekitPort: LIVEKIT_API_PORT,
    mediaNamespace: config.namespaces.hostNetwork,
    controlPlane: gw.controlPlane.namespace !== undefined ? { namespace: gw.controlPlane.namespace, ports: gw.controlPlane.ports } : undefined,
  };
}

/** PostgreSQL's pods and ports (or a managed database's port), for the NetworkPolicies. */
function databasePeers(config: KudoConfig): DatabasePeers {
  const pg = config.postgres;
  if (pg.mode === 'external') return { mode: 'external', port: pg.external.port };
  if (pg.mode === 'statefulset') return { mode: 'statefulset', pods: selectorLabels(POSTGRES), port: POSTGRES_PORT, metricsPort: POSTGRES_EXPORTER_PORT };
  const b = pg.cloudnativePg.backup;
  return {
    mode: 'cloudnative-pg',
    pods: { [CNPG_POD_LABEL]: CNPG_CLUSTER },
    port: POSTGRES_PORT,
    metricsPort: CNPG_METRICS_PORT,
    statusPort: CNPG_STATUS_PORT,
    operator: { namespace: pg.cloudnativePg.operatorNamespace, pods: CNPG_OPERATOR_PODS },
    objectStorePort: b.enabled ? objectStorePort(b.endpointURL) : undefined,
  };
}
