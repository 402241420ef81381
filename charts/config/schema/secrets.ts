/** The Secrets: generated or existing, and where each value is. */
import type { Fragments } from './shared';

/** The config keys secrets: schema, defaults and documentation. */
export function secretsFragment({ z, dnsLabel, secretRef }: Fragments) {
  return {
    secrets: z
      .strictObject({
        /**
         * generated: a Job creates each missing value once and never overwrites one.
         * existing: every value comes from Secrets you manage; nothing is generated.
         */
        mode: z.enum(['generated', 'existing']).default('generated'),
        /**
         * Rebuilding a lost cluster: the generator takes each missing value from a Secrets snapshot of the off-site
         * backup (backup.s3), "latest" or a restic snapshot ID, instead of making a new one, and makes nothing when it
         * cannot read it. docs/operations.md, "Disaster recovery".
         * @default - missing values are made
         */
        restoreFromBackup: z
          .string()
          .regex(/^(latest|[0-9a-f]{8,64})$/, 'must be "latest" or a restic snapshot ID such as "4bba301e"')
          .optional(),
        refs: z
          .strictObject({
            postgresPassword: secretRef('kudo-postgres', 'password'),
            postgresSuperuserPassword: secretRef('kudo-postgres', 'superuser_password'),
            macaroonSecretKey: secretRef('kudo-synapse', 'macaroon_secret_key'),
            formSecret: secretRef('kudo-synapse', 'form_secret'),
            registrationSharedSecret: secretRef('kudo-synapse', 'registration_shared_secret'),
            signingKey: secretRef('kudo-synapse', 'signing.key'),
            turnSharedSecret: secretRef('kudo-turn', 'shared_secret'),
            redisPassword: secretRef('kudo-redis', 'password'),
            livekitApiKey: secretRef('kudo-livekit', 'api_key'),
            livekitApiSecret: secretRef('kudo-livekit', 'api_secret'),
            adminPassword: secretRef('kudo-synapse-admin', 'password'),
            /** With synapse.workers: authenticates HTTP replication between Synapse's processes. */
            workerReplicationSecret: secretRef('kudo-synapse', 'worker_replication_secret'),
            /** With backup.enabled: the password of the backup volume's restic repository. */
            backupPassword: secretRef('kudo-backup', 'restic_password'),
          })
          .prefault({}),
        /** The Secret (in namespaces.app) the bootstrap Job fills with the app's credentials. */
        appSecretName: dnsLabel.default('kudo-app'),
      })
      .prefault({}),
  };
}
