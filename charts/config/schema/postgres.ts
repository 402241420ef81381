/** PostgreSQL: the StatefulSet, a CloudNativePG Cluster, or a database outside the cluster. */
import type { Fragments } from './shared';

/** The config keys postgres: schema, defaults and documentation. */
export function postgresFragment({ z, dnsLabel, resources, image, storage, dnsName, port, secretKey }: Fragments) {
  return {
    postgres: z
      .strictObject({
        /**
         * statefulset: one PostgreSQL pod on one volume, nightly dumps.
         * cloudnative-pg: a CloudNativePG Cluster (install the operator and its barman-cloud plugin first):
         * replicas with automated failover, continuous WAL archiving, point-in-time recovery.
         * external: a database you run elsewhere (RDS, Cloud SQL, Azure): nothing rendered for it.
         */
        mode: z.enum(['statefulset', 'cloudnative-pg', 'external']).default('statefulset'),
        image: image('docker.io/library/postgres', '17.11-bookworm'),
        storage: storage('10Gi'),
        resources: resources('250m', '512Mi', '2', '1Gi'),
        /** max_connections; unset means Synapse's pool plus room for backups and administration. */
        maxConnections: z.number().int().min(10).max(10000).optional(),
        cloudnativePg: z
          .strictObject({
            /** PostgreSQL instances: one primary, the rest streaming replicas. */
            instances: z.number().int().min(1).max(9).default(1),
            /** CloudNativePG's PostgreSQL image (its own builds carry barman-cloud's needs). */
            image: image('ghcr.io/cloudnative-pg/postgresql', '17.11-standard-bookworm'),
            /** Commit only once a replica has the WAL: no committed transaction is lost on failover (writes wait while no replica is up). */
            synchronous: z.boolean().default(false),
            /** Instances on different nodes: preferred, or required (an instance with no free node stays Pending). */
            podAntiAffinity: z.enum(['preferred', 'required']).default('preferred'),
            /** Where the operator runs (its instance manager calls reach the pods from there). */
            operatorNamespace: dnsLabel.default('cnpg-system'),
            /** Continuous WAL archiving and base backups to S3-compatible storage, through the barman-cloud plugin. */
            backup: z
              .strictObject({
                enabled: z.boolean().default(true),
                /** e.g. "s3://kudo-backups/postgres". */
                destinationPath: z
                  .string()
                  .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/\S*)?$/, 'must be an S3 URL such as "s3://bucket/postgres"')
                  .optional(),
                /** For S3-compatible stores other than AWS (MinIO, Ceph, ...). @default AWS */
                endpointURL: z
                  .string()
                  .regex(/^https?:\/\/\S+$/, 'must be an http(s) URL')
                  .optional(),
                /** Secret (namespaces.stack) with the S3 keys. */
                s3Credentials: z
                  .strictObject({
                    secretName: dnsLabel.default('kudo-postgres-s3'),
                    accessKeyIdKey: secretKey.default('ACCESS_KEY_ID'),
                    secretAccessKeyKey: secretKey.default('ACCESS_SECRET_KEY'),
                  })
                  .prefault({}),
                /** How long base backups and WAL are kept (barman's d/w/m). */
                retention: z
                  .string()
                  .regex(/^[1-9][0-9]*[dwm]$/, 'must be like "30d", "4w" or "6m"')
                  .default('30d'),
                /** Base backups, in CloudNativePG's six-field cron (seconds first). */
                schedule: z
                  .string()
                  .regex(/^(\S+\s+){5}\S+$/, 'must be a six-field schedule with seconds first, such as "0 0 2 * * *"')
                  .default('0 0 2 * * *'),
                /** A WAL segment is archived at least this often (archive_timeout): the most a lost primary can lose. */
                archiveTimeoutSeconds: z.number().int().min(10).max(3600).default(60),
                /** The folder under destinationPath this Cluster archives to; a Cluster recovered from it archives under a new one. */
                serverName: dnsLabel.default('postgres'),
              })
              .prefault({}),
            /**
             * Create the Cluster from the archive instead of an empty database (point-in-time recovery):
             * the serverName it was archived under, and the moment to stop at (RFC 3339 with an offset).
             * @default - a new, empty database (initdb)
             */
            recovery: z
              .strictObject({
                serverName: dnsLabel,
                // RFC 3339 only: CloudNativePG turns its "Z" into the "+00:00" PostgreSQL needs, but passes other forms through.
                targetTime: z
                  .string()
                  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/, 'must be a time with its offset, such as "2026-11-26T14:00:00Z"')
                  .optional(),
              })
              .optional(),
          })
          .prefault({}),
        /** For mode external. */
        external: z
          .strictObject({
            host: dnsName.optional(),
            port: port.default(5432),
            database: z
              .string()
              .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a PostgreSQL name')
              .default('synapse'),
            user: z
              .string()
              .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a PostgreSQL name')
              .default('synapse'),
            /** libpq sslmode: verify-full checks the certificate and the host name. */
            sslmode: z.enum(['verify-full', 'verify-ca', 'require', 'disable']).default('verify-full'),
            /** The CA that signed the server's certificate, from a Secret or a ConfigMap (namespaces.stack). */
            ca: z
              .strictObject({
                kind: z.enum(['Secret', 'ConfigMap']).default('ConfigMap'),
                name: dnsLabel.optional(),
                key: secretKey.default('ca.crt'),
              })
              .prefault({}),
          })
          .prefault({}),
      })
      .prefault({}),
  };
}

/** Profile production's values for postgres (PRODUCTION_PROFILE in index.ts). */
export const POSTGRES_PRODUCTION = {
  storage: { size: '100Gi' },
  resources: { requests: { cpu: '1', memory: '4Gi' }, limits: { cpu: '4', memory: '8Gi' } },
  // A lost node must lose no committed transaction, nor take two instances with it.
  cloudnativePg: { instances: 3, synchronous: true, podAntiAffinity: 'required' },
} as const;
