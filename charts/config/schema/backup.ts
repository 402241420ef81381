/** The backups: schedules, retention, the backup volume and the off-site copy. */
import type { z as Z } from 'zod';
import type { Fragments } from './shared';

/** The config keys backup: schema, defaults and documentation. */
export function backupFragment({ z, cron, resources, storage, dnsLabel, image }: Fragments) {
  return {
    backup: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Cron schedules (UTC), one after the other: both store into the backup volume's restic repository. */
        schedule: z
          .strictObject({
            postgres: cron.default('15 3 * * *'),
            media: cron.default('45 3 * * *'),
          })
          .prefault({}),
        /** How many daily, weekly and monthly snapshots restic keeps (the newest of each day, week, month). */
        retention: z
          .strictObject({
            daily: z.number().int().min(1).max(366).default(7),
            weekly: z.number().int().min(0).max(520).default(4),
            monthly: z.number().int().min(0).max(240).default(12),
          })
          .prefault({}),
        /** The backup volume (ReadWriteOnce), holding a restic repository: at least 1.25 x (media + database) (refused otherwise). */
        storage: storage('50Gi'),
        resources: resources('100m', '128Mi', '1', '512Mi'),
        /** Also copy backups to an S3-compatible bucket with restic (encrypted, deduplicated). */
        s3: z
          .strictObject({
            enabled: z.boolean().default(false),
            /** restic repository, e.g. "s3:https://s3.example.com/bucket/kudo". */
            repository: z
              .string()
              .regex(/^s3:https?:\/\/\S+$/, 'must be a restic S3 repository such as "s3:https://s3.example.com/bucket/kudo"')
              .optional(),
            /** Secret (namespaces.stack) with RESTIC_PASSWORD, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. */
            secretName: dnsLabel.default('kudo-backup-s3'),
          })
          .prefault({}),
        /** restic, which stores every backup (the volume's repository and the off-site one) and restores them. */
        resticImage: image('docker.io/restic/restic', '0.18.1'),
        /**
         * `profile: production` refuses to run without backup.s3 (one lost node or cluster would take the data and
         * its backups together) unless this says why; `npm run checklist` prints the reason as a warning.
         */
        offsite: z
          .strictObject({
            waived: z.string().trim().min(1, 'must give the reason the backups stay in the cluster (e.g. "test cluster, rebuilt from scratch")').optional(),
          })
          .prefault({}),
      })
      .prefault({}),
  };
}

/** Profile production's values for backup (PRODUCTION_PROFILE in index.ts). */
export const BACKUP_PRODUCTION = { storage: { size: '500Gi' }, resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } } } as const;

/** The off-site copy needs its repository. */
export function backupS3Problems(c: { readonly backup: Z.output<ReturnType<typeof backupFragment>['backup']> }): string[] {
  const problems: string[] = [];
  if (c.backup.s3.enabled && c.backup.s3.repository === undefined) {
    problems.push('backup.s3.repository is required when backup.s3.enabled is true');
  }
  return problems;
}
