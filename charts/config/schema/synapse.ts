/** Synapse: the homeserver, its workers and router, retention, the admin API and the operator's extra settings. */
import type { Fragments } from './shared';
import { REFINEMENTS } from './shared';
import { retentionSchemas } from '../../synapse-retention';

/** The config keys synapse: schema, defaults and documentation. */
export function synapseFragment({ z, objectName, cidr, resources, image, storage, secretKey }: Fragments) {
  return {
    synapse: z
      .strictObject({
        image: image('ghcr.io/element-hq/synapse', 'v1.163.2'),
        media: storage('20Gi'),
        resources: resources('250m', '512Mi', '2', '1536Mi'),
        /** Largest upload accepted; also the Ingress body-size limit. Synapse size syntax: K, M or G suffix. */
        maxUploadSize: z
          .string()
          .regex(/^[0-9]+[KMG]$/, 'must be a size such as "50M" or "1G"')
          .default('100M'),
        databasePool: z
          .strictObject({
            min: z.number().int().min(1).default(5),
            max: z.number().int().min(1).default(10),
          })
          .prefault({}),
        /**
         * Workers: Synapse's way to use more than one core. Each type runs as its own
         * Deployment or StatefulSet behind a router (HAProxy) that sends each request
         * to the process that serves it. Off in profile small, on in profile production.
         */
        workers: z
          .strictObject({
            enabled: z.boolean().default(false),
            /** Processes of each type; 0 leaves its work to the main process. */
            replicas: z
              .strictObject({
                clientReader: z.number().int().min(0).max(50).default(2),
                synchrotron: z.number().int().min(0).max(50).default(2),
                initialSynchrotron: z.number().int().min(0).max(50).default(1),
                federationInbound: z.number().int().min(0).max(50).default(1),
                federationReader: z.number().int().min(0).max(50).default(1),
                federationSender: z.number().int().min(0).max(50).default(1),
                mediaRepository: z.number().int().min(0).default(1),
                eventPersister: z.number().int().min(0).max(50).default(2),
                eventCreator: z.number().int().min(0).max(50).default(1),
                streamWriter: z.number().int().min(0).default(1),
                background: z.number().int().min(0).default(1),
              })
              .prefault({}),
            /** Each worker process's resources (a worker uses at most one core). */
            resources: resources('250m', '512Mi', '1', '1536Mi'),
            /** Each worker process's database pool. */
            databasePool: z
              .strictObject({
                min: z.number().int().min(1).default(2),
                max: z.number().int().min(1).default(5),
              })
              .prefault({}),
            /** Router replicas (HAProxy in front of Synapse's processes). */
            routerReplicas: z.number().int().min(1).max(20).default(2),
            router: image('docker.io/library/haproxy', '3.2.26'),
          })
          .prefault({}),
        /** Opt-in: how long media and messages are kept (charts/synapse-retention.ts; docs/scaling.md, "Growth: media and message retention"). */
        ...retentionSchemas(z),
        /** Whether Synapse reports anonymous usage statistics to matrix.org. */
        reportStats: z.boolean().default(false),
        /** Open self-service registration. Off: accounts are made by the admin. */
        enableRegistration: z.boolean().default(false),
        logLevel: z.enum(['DEBUG', 'INFO', 'WARNING', 'ERROR']).default('INFO'),
        /**
         * The admin API (/_synapse/admin) for an app outside the cluster. Inside the
         * cluster the app uses MATRIX_ADMIN_URL from its Secret and needs none of this.
         */
        adminApi: z
          .strictObject({
            /** Route https://<matrix host>/_synapse/admin, from `sourceRanges` only. */
            expose: z.boolean().default(false),
            /** The addresses (CIDRs) allowed to reach it. */
            sourceRanges: z.array(cidr).default([]),
          })
          .prefault({}),
        /**
         * More homeserver.yaml settings (email, oidc_providers, rc_*, app_service_config_files, ...), merged
         * in at the top level by every Synapse process. Keys the stack writes are refused, and so are secrets
         * written inline: point their *_path settings at files of extraSecretFiles.
         */
        extraConfig: z.record(z.string(), z.unknown()).default({}),
        /** Secret keys mounted read-only at /secrets/extra/<file> in every Synapse process. */
        extraSecretFiles: z
          .array(
            z.strictObject({
              /** A Secret in namespaces.stack. */
              secret: objectName,
              key: secretKey,
              /** The file name under /secrets/extra. */
              file: z.string().regex(/^[A-Za-z0-9_-][-._A-Za-z0-9]{0,252}$/, 'must be a file name (letters, digits, "-", "_", ".", not starting with ".")'),
            }),
          )
          .default([]),
        /** The admin account the bootstrap Job registers. */
        adminUser: z
          .string()
          .regex(/^[a-z0-9._=\-/+]+$/, 'must be a Matrix localpart (a-z, 0-9, ".", "_", "=", "-", "/", "+")')
          .refine(REFINEMENTS.notReservedLocalpart, { message: 'Synapse refuses localparts starting with "_" (reserved for bridges)' })
          .default('admin'),
      })
      .prefault({}),
  };
}

/** Profile production's values for synapse (PRODUCTION_PROFILE in index.ts). */
export const SYNAPSE_PRODUCTION = {
  media: { size: '200Gi' },
  resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '4', memory: '8Gi' } },
  databasePool: { min: 5, max: 20 },
  workers: { enabled: true, databasePool: { min: 2, max: 10 } },
} as const;
