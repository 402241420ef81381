/**
 * PostgreSQL as a CloudNativePG Cluster: N instances with automated
 * failover behind `-rw`/`-ro` Services, the owner's credentials in a Secret
 * the operator makes, continuous WAL archiving and base backups to S3
 * through the barman-cloud plugin (ObjectStore, ScheduledBackup), so any
 * point in time since the oldest kept backup can be restored.
 *
 * The operator and the plugin are installed first (docs/scaling.md, "PostgreSQL: one pod, CloudNativePG or a managed database"); this
 * chart only declares what Synapse needs.
 */
import { Chart, ChartProps } from 'cdk8s';
import { Construct } from 'constructs';
import { ObjectStore, ObjectStoreSpecConfigurationDataCompression, ObjectStoreSpecConfigurationWalCompression } from '../imports/barmancloud.cnpg.io';
import { PodMonitor } from '../imports/monitoring.coreos.com';
import {
  Cluster,
  ClusterSpecPostgresqlSynchronousDataDurability,
  ClusterSpecPostgresqlSynchronousMethod,
  ClusterSpecResourcesLimits,
  ClusterSpecResourcesRequests,
  ScheduledBackup,
  ScheduledBackupSpecBackupOwnerReference,
  ScheduledBackupSpecMethod,
} from '../imports/postgresql.cnpg.io';
import { setSyncWave, WAVE } from './argocd';
import { imageRef, labels } from './common';
import type { ImageConfig, ResourcesConfig, StorageConfig } from './config';
import type { DatabaseTls } from './database';
import type { PodScheduling } from './pods';
import { POSTGRES_PORT, postgresSettings } from './postgres';

/** The Cluster's name: its Services are <name>-rw, -ro and -r, the owner's Secret <name>-app. */
export const CNPG_CLUSTER = 'postgres';
/** The barman-cloud plugin's name, as the Cluster and ScheduledBackup refer to it. */
export const BARMAN_CLOUD_PLUGIN = 'barman-cloud.cloudnative-pg.io';
/** The ObjectStore WAL and base backups go to, and the external cluster a recovery reads from. */
const OBJECT_STORE = `${CNPG_CLUSTER}-backups`;
const RECOVERY_SOURCE = 'origin';
/** The port of CloudNativePG's instance manager (the operator calls it) and of its metrics exporter. */
export const CNPG_STATUS_PORT = 8000;
export const CNPG_METRICS_PORT = 9187;
/** The label CloudNativePG puts on every instance pod. */
export const CNPG_POD_LABEL = 'cnpg.io/cluster';
/** The operator's pods, as its release manifest and Helm chart label them. */
export const CNPG_OPERATOR_PODS = { 'app.kubernetes.io/name': 'cloudnative-pg' } as const;

/** The port WAL archiving reaches object storage on: the endpoint's, else AWS's HTTPS. */
export function objectStorePort(endpointURL: string | undefined): number {
  if (endpointURL === undefined) return 443;
  const url = new URL(endpointURL);
  return url.port !== '' ? Number(url.port) : url.protocol === 'http:' ? 80 : 443;
}

export interface CloudNativePgBackup {
  /** e.g. s3://bucket/postgres */
  readonly destinationPath: string;
  readonly endpointURL?: string;
  readonly s3Credentials: { readonly secretName: string; readonly accessKeyIdKey: string; readonly secretAccessKeyKey: string };
  /** barman retention, e.g. "30d". */
  readonly retention: string;
  /** Six-field cron (seconds first). */
  readonly schedule: string;
  readonly archiveTimeoutSeconds: number;
  /** The folder under destinationPath this Cluster archives to. */
  readonly serverName: string;
}

/** Where a Cluster created from the archive comes from, and when to stop replaying it. */
export interface CloudNativePgRecovery {
  /** The serverName the old Cluster archived under. */
  readonly serverName: string;
  /** @default - the end of the archive */
  readonly targetTime?: string;
}

export interface CloudNativePgProps extends ChartProps {
  readonly namespace: string;
  readonly image: ImageConfig;
  readonly instances: number;
  readonly storage: StorageConfig;
  readonly resources: ResourcesConfig;
  readonly maxConnections: number;
  /** The database Synapse uses and its owner. */
  readonly database: string;
  readonly owner: string;
  /** Wait for one replica to have the WAL before a commit returns. */
  readonly synchronous: boolean;
  /** Whether instances on different nodes is a preference or a rule. @default 'preferred' */
  readonly podAntiAffinity?: 'preferred' | 'required';
  /** @default - no WAL archiving, no base backups */
  readonly backup?: CloudNativePgBackup;
  /** Create the Cluster from the backup's archive (needs `backup`). @default - an empty database (initdb) */
  readonly recovery?: CloudNativePgRecovery;
  /** A PodMonitor for the instances' metrics. @default - none */
  readonly podMonitorLabels?: Record<string, string>;
  /** Where the instances may run, beyond the operator's own anti-affinity. @default - anywhere */
  readonly scheduling?: PodScheduling;
}

/**
 * The scheduling settings in the Cluster's own fields (the operator builds the
 * pods): tolerations and node affinity beside its anti-affinity settings, the
 * rest at the top of the spec. A spread constraint without a label selector
 * counts the Cluster's instances.
 */
function clusterScheduling(s: PodScheduling | undefined) {
  if (s === undefined) return { affinity: {}, spec: {} };
  return {
    affinity: {
      ...(s.nodeAffinity !== undefined ? { nodeAffinity: s.nodeAffinity } : {}),
      ...(s.tolerations.length > 0 ? { tolerations: [...s.tolerations] } : {}),
    },
    spec: {
      ...(s.priorityClassName !== undefined ? { priorityClassName: s.priorityClassName } : {}),
      ...(s.topologySpreadConstraints.length > 0
        ? {
            topologySpreadConstraints: s.topologySpreadConstraints.map((c) => ({ ...c, labelSelector: c.labelSelector ?? { matchLabels: { [CNPG_POD_LABEL]: CNPG_CLUSTER } } })),
          }
        : {}),
      ...(s.imagePullSecrets.length > 0 ? { imagePullSecrets: s.imagePullSecrets.map((name) => ({ name })) } : {}),
    },
  };
}

/** The Cluster, its ObjectStore and ScheduledBackup, and a PodMonitor. */
export class CloudNativePgChart extends Chart {
  /** What Synapse connects to: the primary's Service and the owner's Secret. */
  public readonly host: string;
  public readonly port = POSTGRES_PORT;
  public readonly passwordSecret: { readonly name: string; readonly key: string };
  /**
   * The operator serves TLS with a certificate for its Services, signed by the CA in <name>-ca (which also holds
   * the CA's key: clients mount only ca.crt), so clients verify the certificate and the host name.
   */
  public readonly tls: DatabaseTls = { sslmode: 'verify-full', ca: { kind: 'Secret', name: `${CNPG_CLUSTER}-ca`, key: 'ca.crt' } };

  constructor(scope: Construct, id: string, props: CloudNativePgProps) {
    super(scope, id, props);
    const meta = { namespace: props.namespace, labels: labels({ name: 'postgres', component: 'database', version: props.image.tag }) };
    const backup = props.backup;
    const recovery = props.recovery;
    if (recovery !== undefined && backup === undefined) throw new Error(`${id}: recovery needs backup (its ObjectStore is where the archive is read from)`);
    if (backup !== undefined) {
      const creds = backup.s3Credentials;
      new ObjectStore(this, 'object-store', {
        metadata: { name: OBJECT_STORE, ...meta },
        spec: {
          configuration: {
            destinationPath: backup.destinationPath,
            endpointUrl: backup.endpointURL,
            s3Credentials: {
              accessKeyId: { name: creds.secretName, key: creds.accessKeyIdKey },
              secretAccessKey: { name: creds.secretName, key: creds.secretAccessKeyKey },
            },
            wal: { compression: ObjectStoreSpecConfigurationWalCompression.GZIP, maxParallel: 2 },
            data: { compression: ObjectStoreSpecConfigurationDataCompression.GZIP },
          },
          retentionPolicy: backup.retention,
        },
      });
    }

    // The same sizing as the StatefulSet's; CloudNativePG sets listen_addresses itself.
    const { listen_addresses: _listen, ...parameters } = postgresSettings(props.resources.limits.memory, props.maxConnections);
    if (backup !== undefined) parameters.archive_timeout = `${backup.archiveTimeoutSeconds}s`;

    const r = props.resources;
    const scheduling = clusterScheduling(props.scheduling);
    const cluster = new Cluster(this, 'cluster', {
      metadata: { name: CNPG_CLUSTER, ...meta },
      spec: {
        instances: props.instances,
        imageName: imageRef(props.image),
        // Synapse refuses a database whose collation or ctype is not C (a recovered one keeps the archived database's).
        // A recovery names the database and owner too: without them the operator writes <name>-app for a role "app".
        bootstrap:
          recovery !== undefined
            ? {
                recovery: {
                  source: RECOVERY_SOURCE,
                  database: props.database,
                  owner: props.owner,
                  ...(recovery.targetTime !== undefined ? { recoveryTarget: { targetTime: recovery.targetTime } } : {}),
                },
              }
            : { initdb: { database: props.database, owner: props.owner, encoding: 'UTF8', localeCollate: 'C', localeCType: 'C' } },
        ...(recovery !== undefined
          ? {
              externalClusters: [{ name: RECOVERY_SOURCE, plugin: { name: BARMAN_CLOUD_PLUGIN, parameters: { barmanObjectName: OBJECT_STORE, serverName: recovery.serverName } } }],
            }
          : {}),
        postgresql: {
          parameters,
          ...(props.synchronous
            ? {
                synchronous: {
                  method: ClusterSpecPostgresqlSynchronousMethod.ANY,
                  number: 1,
                  // Required: a commit waits for a replica rather than go on alone.
                  dataDurability: ClusterSpecPostgresqlSynchronousDataDurability.REQUIRED,
                },
              }
            : {}),
        },
        storage: { size: props.storage.size, storageClass: props.storage.className },
        resources: {
          requests: { cpu: ClusterSpecResourcesRequests.fromString(r.requests.cpu), memory: ClusterSpecResourcesRequests.fromString(r.requests.memory) },
          limits: { cpu: ClusterSpecResourcesLimits.fromString(r.limits.cpu), memory: ClusterSpecResourcesLimits.fromString(r.limits.memory) },
        },
        affinity: { enablePodAntiAffinity: true, topologyKey: 'kubernetes.io/hostname', podAntiAffinityType: props.podAntiAffinity ?? 'preferred', ...scheduling.affinity },
        enablePdb: true,
        enableSuperuserAccess: false,
        ...(backup !== undefined
          ? {
              plugins: [{ name: BARMAN_CLOUD_PLUGIN, isWalArchiver: true, parameters: { barmanObjectName: OBJECT_STORE, serverName: backup.serverName } }],
            }
          : {}),
        ...scheduling.spec,
      },
    });
    // With the databases: Argo CD's health check for a Cluster waits for its instances.
    setSyncWave(cluster, WAVE.databases);

    if (backup !== undefined) {
      new ScheduledBackup(this, 'scheduled-backup', {
        metadata: { name: `${CNPG_CLUSTER}-daily`, ...meta },
        spec: {
          cluster: { name: CNPG_CLUSTER },
          schedule: backup.schedule,
          method: ScheduledBackupSpecMethod.PLUGIN,
          pluginConfiguration: { name: BARMAN_CLOUD_PLUGIN },
          // A first base backup right away: point-in-time recovery starts from one.
          immediate: true,
          backupOwnerReference: ScheduledBackupSpecBackupOwnerReference.SELF,
        },
      });
    }

    if (props.podMonitorLabels !== undefined) {
      new PodMonitor(this, 'pod-monitor', {
        metadata: { name: CNPG_CLUSTER, namespace: props.namespace, labels: { ...meta.labels, ...props.podMonitorLabels } },
        spec: {
          selector: { matchLabels: { [CNPG_POD_LABEL]: CNPG_CLUSTER } },
          podMetricsEndpoints: [{ port: 'metrics' }],
        },
      });
    }

    this.host = `${CNPG_CLUSTER}-rw.${props.namespace}.svc`;
    this.passwordSecret = { name: `${CNPG_CLUSTER}-app`, key: 'password' };
  }
}
