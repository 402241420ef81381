import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { ImageConfig, ResourcesConfig, StorageConfig } from './config';
import {
  bundledFile, ComponentLabels, CONFIG_HASH_ANNOTATION, contentHash, imageRef, labels, memoryVolume, NEVER, resourceRequirements, restrictedContainer, restrictedPod,
  SCRIPTS_DIR, secretFilesVolume, selectorLabels, UID,
} from './common';
import { syncHook, WAVE } from './argocd';
import { PodScheduling, withScheduling } from './pods';
import { databaseCaVolume, DatabaseConnection, DB_CA_DIR, libpqTlsEnv } from './database';

/** The backup pods' identity (NetworkPolicies select them by it). */
export const BACKUP = { name: 'backup', component: 'backup' } as const;
export const BACKUP_DIR = '/backups';

const SCRIPTS = [
  'pgpass.sh', 'backup-lib.sh', 'backup-prune.sh', 'backup-postgres.sh', 'backup-media.sh', 'backup-restic.sh', 'restore-postgres.sh', 'restore-media.sh',
];

export interface BackupProps extends ChartProps {
  readonly namespace: string;
  /** The PostgreSQL image: its pg_dump and pg_restore match the server's major version. */
  readonly image: ImageConfig;
  readonly resources: ResourcesConfig;
  readonly schedule: { readonly postgres: string; readonly media: string };
  readonly retention: { readonly daily: number; readonly weekly: number; readonly monthly: number };
  readonly storage: StorageConfig;
  readonly postgres: DatabaseConnection;
  /** Synapse's media claim, and the labels of Synapse's pod (the backups run on its node to share the ReadWriteOnce volume). */
  readonly media: { readonly claimName: string; readonly synapseSelector: Record<string, string> };
  /** Copy backups to an S3 bucket with restic. @default - backups stay on the backup volume */
  readonly s3?: { readonly repository: string; readonly secretName: string; readonly image: ImageConfig };
  /** Where its pods may run, beyond what the chart sets. @default - anywhere the chart allows */
  readonly scheduling?: PodScheduling;
}

/**
 * The upload's scratch space, on the node's disk: restic's temporary pack files (up to 16 MiB each, a few at a time)
 * and its cache (the repository's index and trees, a small fraction of the data). A memory volume of a few MiB
 * failed every upload over about 12 MiB.
 */
const RESTIC_SCRATCH = { path: '/scratch', size: '2Gi', request: '512Mi' } as const;

const MOUNTS = {
  scripts: { name: 'scripts', mountPath: SCRIPTS_DIR, readOnly: true },
  backups: { name: 'backups', mountPath: BACKUP_DIR },
  password: { name: 'password', mountPath: '/secrets', readOnly: true },
  tmp: { name: 'tmp', mountPath: '/tmp' },
};

/**
 * The containers of the backup and restore Jobs: a step running one of the
 * bundled scripts with the PostgreSQL image, and the restic upload.
 */
function backupContainers(props: BackupProps, keep: k8s.EnvVar[]) {
  const mounts = MOUNTS;
  const step = (name: string, script: string, env: k8s.EnvVar[], extra: k8s.VolumeMount[]): k8s.Container => ({
    name,
    image: imageRef(props.image),
    command: ['bash', `${SCRIPTS_DIR}/${script}`],
    env,
    resources: resourceRequirements(props.resources),
    securityContext: restrictedContainer(),
    volumeMounts: [mounts.scripts, mounts.backups, mounts.tmp, ...extra],
  });
  const upload = (tag: string, path: string, extra: k8s.VolumeMount[]): k8s.Container | undefined => props.s3 && {
    name: 'upload',
    image: imageRef(props.s3.image),
    command: ['sh', `${SCRIPTS_DIR}/backup-restic.sh`, tag, path],
    env: [
      { name: 'RESTIC_REPOSITORY', value: props.s3.repository },
      { name: 'TMPDIR', value: RESTIC_SCRATCH.path },
      { name: 'RESTIC_CACHE_DIR', value: `${RESTIC_SCRATCH.path}/cache` },
      // restic reads its password from a file; the script exports the S3 keys from theirs.
      { name: 'RESTIC_PASSWORD_FILE', value: '/secrets/restic/RESTIC_PASSWORD' },
      { name: 'S3_CREDENTIALS_DIR', value: '/secrets/restic' },
      ...keep,
    ],
    resources: resourceRequirements(props.resources, { request: RESTIC_SCRATCH.request, limit: RESTIC_SCRATCH.size }),
    securityContext: restrictedContainer(),
    volumeMounts: [
      mounts.scripts, { ...mounts.backups, readOnly: true }, { name: 'tmp', mountPath: '/tmp' }, { name: 'scratch', mountPath: RESTIC_SCRATCH.path },
      { name: 'restic', mountPath: '/secrets/restic', readOnly: true }, ...extra,
    ],
  };
  return { step, upload };
}

/**
 * The backup claim is used only by the CronJobs, so on a WaitForFirstConsumer
 * class it would stay Pending until the first night's backup, and an Argo CD
 * sync would wait for it. This Job binds it during the sync, on Synapse's node
 * where the backups run, and checks that the backup uid can write to it.
 * (For kubectl apply it simply runs once.)
 */
function backupVolumeCheck(scope: Construct, p: {
  image: ImageConfig; meta: { namespace: string; labels: Record<string, string> }; component: ComponentLabels;
  claimName: string; onSynapseNode: k8s.Affinity; volume: k8s.Volume; scheduling?: PodScheduling;
}): void {
  const template: k8s.PodTemplateSpec = {
    metadata: { labels: labels(p.component) },
    spec: withScheduling({
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: restrictedPod(UID.synapse),
      affinity: p.onSynapseNode,
      containers: [{
        name: 'check',
        image: imageRef(p.image),
        command: ['sh', '-c', `test -w ${BACKUP_DIR} && echo "backup volume ${p.claimName} is bound and writable"`],
        resources: resourceRequirements({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } }),
        securityContext: restrictedContainer(),
        volumeMounts: [MOUNTS.backups],
      }],
      volumes: [p.volume],
    }, p.scheduling, selectorLabels(p.component)),
  };
  new k8s.KubeJob(scope, 'volume-check', {
    metadata: { name: `backup-volume-${contentHash(template).slice(0, 8)}`, ...p.meta, annotations: syncHook(WAVE.edge) },
    spec: { backoffLimit: 6, activeDeadlineSeconds: 1800, ttlSecondsAfterFinished: 7 * 24 * 3600, template },
  });
}

/**
 * Scheduled backups of Synapse's database and media store onto a backup
 * volume (and, optionally, to S3 with restic), plus suspended "restore"
 * CronJobs to start a restore from. Redis is not backed up: it holds only
 * LiveKit's routing state, which rebuilds itself.
 */
export class BackupChart extends Chart {
  constructor(scope: Construct, id: string, props: BackupProps) {
    super(scope, id, props);
    const component = { ...BACKUP, version: props.image.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    const files = Object.fromEntries(SCRIPTS.map((f) => [f, bundledFile(f)]));
    const scripts = new k8s.KubeConfigMap(this, 'scripts', { metadata: { name: 'backup-scripts', ...meta }, data: files });
    const claim = new k8s.KubePersistentVolumeClaim(this, 'volume', {
      metadata: { name: 'kudo-backups', ...meta },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: props.storage.className,
        resources: { requests: { storage: k8s.Quantity.fromString(props.storage.size) } },
      },
    });

    const keep: k8s.EnvVar[] = [
      { name: 'KEEP_DAILY', value: String(props.retention.daily) },
      { name: 'KEEP_WEEKLY', value: String(props.retention.weekly) },
      { name: 'KEEP_MONTHLY', value: String(props.retention.monthly) },
    ];
    const pg = props.postgres;
    const postgresEnv: k8s.EnvVar[] = [
      { name: 'BACKUP_DIR', value: BACKUP_DIR },
      { name: 'PGHOST', value: pg.host },
      { name: 'PGPORT', value: String(pg.port) },
      { name: 'PGUSER', value: pg.user },
      { name: 'PGDATABASE', value: pg.name },
      { name: 'PASSWORD_FILE', value: '/secrets/password' },
      ...libpqTlsEnv(pg),
      ...keep,
    ];
    // A database outside the cluster: the CA its certificate is checked against.
    const ca = databaseCaVolume(pg);
    const dbMounts = [MOUNTS.password, ...(ca !== undefined ? [{ name: ca.name, mountPath: DB_CA_DIR, readOnly: true }] : [])];
    const mediaEnv: k8s.EnvVar[] = [{ name: 'BACKUP_DIR', value: BACKUP_DIR }, { name: 'MEDIA_DIR', value: '/media' }, ...keep];

    const volumes: Record<string, k8s.Volume> = {
      scripts: { name: 'scripts', configMap: { name: scripts.name, defaultMode: 0o555 } },
      backups: { name: 'backups', persistentVolumeClaim: { claimName: claim.name } },
      password: secretFilesVolume('password', { password: pg.password }),
      media: { name: 'media', persistentVolumeClaim: { claimName: props.media.claimName } },
      tmp: memoryVolume('tmp', '16Mi'),
      scratch: { name: 'scratch', emptyDir: { sizeLimit: k8s.Quantity.fromString(RESTIC_SCRATCH.size) } },
      restic: secretFilesVolume('restic', Object.fromEntries(['RESTIC_PASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']
        .map((key) => [key, { name: props.s3?.secretName ?? '', key }]))),
    };
    const { step, upload } = backupContainers(props, keep);

    // Both backups run on Synapse's node: the media volume is ReadWriteOnce, and
    // keeping the backup volume on the same node lets both jobs share it.
    const onSynapseNode: k8s.Affinity = {
      podAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: props.media.synapseSelector }, topologyKey: 'kubernetes.io/hostname' }],
      },
    };
    const hash = contentHash(files);
    /** One backup or restore CronJob. With an upload, the local step runs first (an init container) and the upload only after it succeeded. */
    const cronJob = (name: string, o: {
      schedule: string; step: k8s.Container; upload?: k8s.Container; volumes: k8s.Volume[]; suspend?: boolean; affinity?: k8s.Affinity;
    }) => new k8s.KubeCronJob(this, name, {
      metadata: { name, ...meta },
      spec: {
        schedule: o.schedule,
        timeZone: 'Etc/UTC',
        suspend: o.suspend,
        concurrencyPolicy: 'Forbid',
        startingDeadlineSeconds: 3600,
        successfulJobsHistoryLimit: 3,
        failedJobsHistoryLimit: 3,
        jobTemplate: {
          metadata: { labels: labels(component) },
          spec: {
            backoffLimit: 2,
            activeDeadlineSeconds: 6 * 3600,
            template: {
              metadata: { labels: labels(component), annotations: { [CONFIG_HASH_ANNOTATION]: hash } },
              spec: withScheduling({
                restartPolicy: 'Never',
                automountServiceAccountToken: false,
                enableServiceLinks: false,
                securityContext: restrictedPod(UID.synapse),
                affinity: o.affinity,
                initContainers: o.upload ? [o.step] : undefined,
                containers: [o.upload ?? o.step],
                volumes: [volumes.scripts, volumes.backups, volumes.tmp, ...o.volumes, ...(o.upload ? [volumes.restic, volumes.scratch] : [])],
              }, props.scheduling, selectorLabels(component)),
            },
          },
        },
      },
    });

    backupVolumeCheck(this, { image: props.image, meta, component, claimName: claim.name, onSynapseNode, volume: volumes.backups, scheduling: props.scheduling });

    const mediaRo = { name: 'media', mountPath: '/media', readOnly: true };
    const dbVolumes = [volumes.password, ...(ca !== undefined ? [ca] : [])];
    cronJob('postgres-backup', {
      schedule: props.schedule.postgres, affinity: onSynapseNode, volumes: dbVolumes,
      step: step('dump', 'backup-postgres.sh', postgresEnv, dbMounts),
      upload: upload('postgres', `${BACKUP_DIR}/postgres`, []),
    });
    cronJob('media-backup', {
      schedule: props.schedule.media, affinity: onSynapseNode, volumes: [volumes.media],
      step: step('archive', 'backup-media.sh', mediaEnv, [mediaRo]),
      // restic deduplicates the live store itself, so it reads /media rather than the archives.
      upload: upload('media', '/media', [mediaRo]),
    });
    cronJob('postgres-restore', {
      schedule: NEVER, suspend: true, volumes: dbVolumes,
      step: step('restore', 'restore-postgres.sh', postgresEnv, dbMounts),
    });
    cronJob('media-restore', {
      schedule: NEVER, suspend: true, volumes: [volumes.media],
      step: step('restore', 'restore-media.sh', mediaEnv, [{ name: 'media', mountPath: '/media' }]),
    });
  }
}
