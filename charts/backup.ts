import { Chart, ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { ImageConfig, ResourcesConfig, SecretRef, StorageConfig } from './config';
import {
  API_TOKEN_DIR,
  apiTokenVolume,
  bundledFile,
  ComponentLabels,
  CONFIG_HASH_ANNOTATION,
  contentHash,
  imageRef,
  labels,
  memoryVolume,
  NEVER,
  resourceRequirements,
  restrictedContainer,
  restrictedPod,
  SCRIPTS_DIR,
  secretFilesVolume,
  selectorLabels,
  UID,
} from './common';
import { syncHook, WAVE } from './argocd';
import { PodScheduling, withScheduling } from './pods';
import { databaseCaVolume, DatabaseConnection, DB_CA_DIR, libpqTlsEnv } from './database';
import { PlannedValue, scopedSecretAccess, secretNamesByNamespace, secretPlanFile, SecretsRestore } from './secrets';

/** The backup pods' identity (NetworkPolicies select them by it). */
export const BACKUP = { name: 'backup', component: 'backup' } as const;
export const BACKUP_DIR = '/backups';

const SCRIPTS = ['pgpass.sh', 'backup-common.sh', 'backup-lib.sh', 'backup-postgres.sh', 'backup-restic.sh', 'restic-fetch.sh', 'restore-postgres.sh'];

export interface BackupProps extends ChartProps {
  readonly namespace: string;
  /** The PostgreSQL image: its pg_dump and pg_restore match the server's major version. */
  readonly image: ImageConfig;
  /** restic's image: it stores and restores every backup. */
  readonly resticImage: ImageConfig;
  readonly resources: ResourcesConfig;
  readonly schedule: { readonly postgres: string; readonly media: string };
  readonly retention: { readonly daily: number; readonly weekly: number; readonly monthly: number };
  readonly storage: StorageConfig;
  readonly postgres: DatabaseConnection;
  /** The password of the backup volume's restic repository. */
  readonly repositoryPassword: SecretRef;
  /** Synapse's media claim, and the labels of the pod that holds it (the media backup prefers its node: the volume is ReadWriteOnce). */
  readonly media: { readonly claimName: string; readonly synapseSelector: Record<string, string> };
  /** Also store every backup in an S3 bucket with restic. @default - backups stay on the backup volume */
  readonly s3?: { readonly repository: string; readonly secretName: string };
  /**
   * Back up the values of the generated Secrets too (the signing key, every password): each night, after the
   * database, a step reads them (`get` on the named Secrets, nothing else) into an in-memory volume and restic stores
   * them, encrypted, as a "secrets" snapshot. The secret generator puts them back (secretsFetch).
   * @default - not backed up (secrets.mode "existing": the operator's own secret store holds them)
   */
  readonly secrets?: { readonly plan: readonly PlannedValue[]; readonly toolsImage: ImageConfig };
  /** Where its pods may run, beyond what the chart sets. @default - anywhere the chart allows */
  readonly scheduling?: PodScheduling;
}

/** The local restic repository, on the backup volume; the staged dumps beside it. */
const REPOSITORY = `${BACKUP_DIR}/restic`;
const STAGING = `${BACKUP_DIR}/staging`;
/** The Secrets' values between the export step and restic, in memory only; also the folder inside their snapshots. */
const SECRETS_EXPORT = { path: '/secrets-export', file: 'secrets.json', size: '1Mi' } as const;
/** The ServiceAccount of the nightly database backup, which reads the Secrets it exports. */
const SECRETS_READER = 'backup';

/**
 * restic's scratch space, on the node's disk: its temporary pack files (up to 16 MiB each, a few at a time) and its
 * cache (the repository's index and trees, a small fraction of the data). A memory volume of a few MiB failed every
 * upload over about 12 MiB.
 */
const RESTIC_SCRATCH = { path: '/scratch', size: '2Gi', request: '512Mi' } as const;

const MOUNTS = {
  scripts: { name: 'scripts', mountPath: SCRIPTS_DIR, readOnly: true },
  backups: { name: 'backups', mountPath: BACKUP_DIR },
  password: { name: 'password', mountPath: '/secrets/postgres', readOnly: true },
  repositoryPassword: { name: 'repository-password', mountPath: '/secrets/backup', readOnly: true },
  offsite: { name: 'offsite', mountPath: '/secrets/offsite', readOnly: true },
  tmp: { name: 'tmp', mountPath: '/tmp' },
  scratch: { name: 'scratch', mountPath: RESTIC_SCRATCH.path },
  secretsExport: { name: 'secrets-export', mountPath: SECRETS_EXPORT.path },
  apiToken: { name: 'api-token', mountPath: API_TOKEN_DIR, readOnly: true },
};

/** restic's environment for its repositories: the backup volume's, and the off-site one when there is one. */
function resticEnv(s3: BackupProps['s3']): k8s.EnvVar[] {
  return [
    { name: 'LOCAL_REPOSITORY', value: REPOSITORY },
    { name: 'RESTIC_PASSWORD_FILE', value: `${MOUNTS.repositoryPassword.mountPath}/restic_password` },
    { name: 'TMPDIR', value: RESTIC_SCRATCH.path },
    { name: 'RESTIC_CACHE_DIR', value: `${RESTIC_SCRATCH.path}/cache` },
    // The off-site repository: its password and the S3 keys are files of the operator's Secret (the script exports the keys).
    ...(s3
      ? [
          { name: 'OFFSITE_REPOSITORY', value: s3.repository },
          { name: 'OFFSITE_PASSWORD_FILE', value: `${MOUNTS.offsite.mountPath}/RESTIC_PASSWORD` },
          { name: 'S3_CREDENTIALS_DIR', value: MOUNTS.offsite.mountPath },
        ]
      : []),
  ];
}

/** The operator's off-site Secret as files: restic's password for the bucket's repository and the S3 keys. */
function offsiteVolume(secretName: string): k8s.Volume {
  return secretFilesVolume('offsite', Object.fromEntries(['RESTIC_PASSWORD', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'].map((key) => [key, { name: secretName, key }])));
}

const scratchVolume = (): k8s.Volume => ({ name: 'scratch', emptyDir: { sizeLimit: k8s.Quantity.fromString(RESTIC_SCRATCH.size) } });

/**
 * What the secret generator needs to put a backup's Secrets back instead of making new values: a step in restic's
 * image that restores a "secrets" snapshot of the off-site repository (`snapshot`: "latest" or an ID) into memory.
 * Used to rebuild a lost cluster, where the backup volume is gone with it; the runbook:
 * docs/operations.md, "Disaster recovery".
 */
export function secretsFetch(p: {
  readonly resticImage: ImageConfig;
  readonly s3: { readonly repository: string; readonly secretName: string };
  readonly snapshot: string;
}): SecretsRestore {
  const restored = { name: 'restored-secrets', mountPath: '/restored-secrets' };
  return {
    files: { 'backup-common.sh': bundledFile('backup-common.sh'), 'restic-fetch.sh': bundledFile('restic-fetch.sh') },
    steps: [
      {
        name: 'fetch',
        image: imageRef(p.resticImage),
        command: ['sh', `${SCRIPTS_DIR}/restic-fetch.sh`, 'secrets', SECRETS_EXPORT.path, restored.mountPath],
        env: [
          ...resticEnv(p.s3).filter((e) => !['LOCAL_REPOSITORY', 'RESTIC_PASSWORD_FILE'].includes(e.name)),
          { name: 'FROM', value: 'offsite' },
          { name: 'SNAPSHOT', value: p.snapshot },
        ],
        resources: resourceRequirements({ requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '512Mi' } }, { request: '64Mi', limit: RESTIC_SCRATCH.size }),
        securityContext: restrictedContainer(),
        volumeMounts: [{ name: 'scripts', mountPath: SCRIPTS_DIR, readOnly: true }, MOUNTS.tmp, MOUNTS.scratch, MOUNTS.offsite, restored],
      },
    ],
    volumes: [scratchVolume(), offsiteVolume(p.s3.secretName), memoryVolume(restored.name, SECRETS_EXPORT.size)],
    mount: { ...restored, readOnly: true },
    file: `${restored.mountPath}/${SECRETS_EXPORT.file}`,
  };
}

/**
 * The containers of the backup and restore Jobs: steps running the bundled scripts with the PostgreSQL image
 * (pg_dump, pg_restore), and restic's, which store into and restore from the repositories.
 */
function backupContainers(props: BackupProps, keep: k8s.EnvVar[]) {
  const postgres = (name: string, script: string, env: k8s.EnvVar[], extra: k8s.VolumeMount[]): k8s.Container => ({
    name,
    image: imageRef(props.image),
    command: ['bash', `${SCRIPTS_DIR}/${script}`],
    env: [{ name: 'STAGING_DIR', value: STAGING }, ...env],
    resources: resourceRequirements(props.resources),
    securityContext: restrictedContainer(),
    volumeMounts: [MOUNTS.scripts, MOUNTS.backups, MOUNTS.tmp, ...extra],
  });
  const restic = (name: string, args: string[], extra: { env?: k8s.EnvVar[]; mounts?: k8s.VolumeMount[] } = {}): k8s.Container => ({
    name,
    image: imageRef(props.resticImage),
    command: ['sh', ...args.map((a, i) => (i === 0 ? `${SCRIPTS_DIR}/${a}` : a))],
    env: [...resticEnv(props.s3), ...keep, ...(extra.env ?? [])],
    resources: resourceRequirements(props.resources, { request: RESTIC_SCRATCH.request, limit: RESTIC_SCRATCH.size }),
    securityContext: restrictedContainer(),
    volumeMounts: [MOUNTS.scripts, MOUNTS.backups, MOUNTS.tmp, MOUNTS.scratch, MOUNTS.repositoryPassword, ...(props.s3 ? [MOUNTS.offsite] : []), ...(extra.mounts ?? [])],
  });
  // Reads the generated Secrets' values into memory (export_secrets.py, with the tools image's Python).
  const exportSecrets = (toolsImage: ImageConfig): k8s.Container => ({
    name: 'export-secrets',
    image: imageRef(toolsImage),
    command: ['python3', `${SCRIPTS_DIR}/export_secrets.py`, `${SCRIPTS_DIR}/secrets-plan.json`, `${SECRETS_EXPORT.path}/${SECRETS_EXPORT.file}`],
    env: [
      { name: 'PYTHONPATH', value: SCRIPTS_DIR },
      { name: 'PYTHONDONTWRITEBYTECODE', value: '1' },
      { name: 'SA_DIR', value: API_TOKEN_DIR },
    ],
    resources: resourceRequirements({ requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } }),
    securityContext: restrictedContainer(),
    volumeMounts: [MOUNTS.scripts, MOUNTS.tmp, MOUNTS.apiToken, MOUNTS.secretsExport],
  });
  return { postgres, restic, exportSecrets };
}

/**
 * The backup claim is used only by the CronJobs, so on a WaitForFirstConsumer
 * class it would stay Pending until the first night's backup, and an Argo CD
 * sync would wait for it. This Job binds it during the sync, on the node of the
 * media (with node-local storage the media Jobs need both volumes on one node),
 * and checks that the backup uid can write to it.
 * (For kubectl apply it simply runs once.)
 */
function backupVolumeCheck(
  scope: Construct,
  p: {
    image: ImageConfig;
    meta: { namespace: string; labels: Record<string, string> };
    component: ComponentLabels;
    claimName: string;
    onMediaNode: k8s.Affinity;
    volume: k8s.Volume;
    scheduling?: PodScheduling;
  },
): void {
  const template: k8s.PodTemplateSpec = {
    metadata: { labels: labels(p.component) },
    spec: withScheduling(
      {
        restartPolicy: 'Never',
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        securityContext: restrictedPod(UID.synapse),
        affinity: p.onMediaNode,
        containers: [
          {
            name: 'check',
            image: imageRef(p.image),
            command: ['sh', '-c', `test -w ${BACKUP_DIR} && echo "backup volume ${p.claimName} is bound and writable"`],
            resources: resourceRequirements({ requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } }),
            securityContext: restrictedContainer(),
            volumeMounts: [MOUNTS.backups],
          },
        ],
        volumes: [p.volume],
      },
      p.scheduling,
      selectorLabels(p.component),
    ),
  };
  new k8s.KubeJob(scope, 'volume-check', {
    metadata: { name: `backup-volume-${contentHash(template).slice(0, 8)}`, ...p.meta, annotations: syncHook(WAVE.edge) },
    spec: { backoffLimit: 6, activeDeadlineSeconds: 1800, ttlSecondsAfterFinished: 7 * 24 * 3600, template },
  });
}

/** A backup or restore CronJob's own settings. */
interface CronJobOptions {
  schedule: string;
  steps: k8s.Container[];
  volumes: k8s.Volume[];
  suspend?: boolean;
  affinity?: k8s.Affinity;
  serviceAccount?: string;
}

/** What the backup and restore CronJobs share: labels, the scripts' hash, the volumes of every step, the scheduling. */
interface CronJobCommon {
  readonly meta: { namespace: string; labels: Record<string, string> };
  readonly component: Parameters<typeof labels>[0];
  readonly hash: string;
  readonly base: k8s.Volume[];
  readonly scheduling: BackupProps['scheduling'];
}

/** One backup or restore CronJob: its steps run in order (init containers), the last as the main container. */
function backupCronJob(scope: Construct, name: string, common: CronJobCommon, o: CronJobOptions): k8s.KubeCronJob {
  const { meta, component, hash, base, scheduling } = common;
  return new k8s.KubeCronJob(scope, name, {
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
            spec: withScheduling(
              {
                restartPolicy: 'Never',
                serviceAccountName: o.serviceAccount,
                // A token only where a step calls the API: the api-token volume, mounted by that step alone.
                automountServiceAccountToken: false,
                enableServiceLinks: false,
                securityContext: restrictedPod(UID.synapse),
                affinity: o.affinity,
                initContainers: o.steps.length > 1 ? o.steps.slice(0, -1) : undefined,
                containers: [o.steps[o.steps.length - 1]],
                volumes: [...base, ...o.volumes],
              },
              scheduling,
              selectorLabels(component),
            ),
          },
        },
      },
    },
  });
}

/**
 * Scheduled backups of Synapse's database and media store as restic snapshots in a repository on the backup volume
 * (and, optionally, in an off-site one on S3), plus suspended "restore" CronJobs to start a restore from. Redis is not
 * backed up: it holds only LiveKit's routing state, which rebuilds itself.
 */
export class BackupChart extends Chart {
  constructor(scope: Construct, id: string, props: BackupProps) {
    super(scope, id, props);
    const component = { ...BACKUP, version: props.resticImage.tag };
    const meta = { namespace: props.namespace, labels: labels(component) };
    const exported = props.secrets !== undefined ? props.secrets.plan.filter((v) => !v.provided) : undefined;
    const files: Record<string, string> = {
      ...Object.fromEntries(SCRIPTS.map((f) => [f, bundledFile(f)])),
      ...(exported !== undefined
        ? { 'kube.py': bundledFile('kube.py'), 'export_secrets.py': bundledFile('export_secrets.py'), 'secrets-plan.json': secretPlanFile(exported) }
        : {}),
    };
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
      { name: 'PGHOST', value: pg.host },
      { name: 'PGPORT', value: String(pg.port) },
      { name: 'PGUSER', value: pg.user },
      { name: 'PGDATABASE', value: pg.name },
      { name: 'PASSWORD_FILE', value: `${MOUNTS.password.mountPath}/password` },
      ...libpqTlsEnv(pg),
    ];
    // A database outside the cluster: the CA its certificate is checked against.
    const ca = databaseCaVolume(pg);
    const dbMounts = [MOUNTS.password, ...(ca !== undefined ? [{ name: ca.name, mountPath: DB_CA_DIR, readOnly: true }] : [])];

    const volumes: Record<string, k8s.Volume> = {
      scripts: { name: 'scripts', configMap: { name: scripts.name, defaultMode: 0o555 } },
      backups: { name: 'backups', persistentVolumeClaim: { claimName: claim.name } },
      password: secretFilesVolume('password', { password: pg.password }),
      repositoryPassword: secretFilesVolume('repository-password', { restic_password: props.repositoryPassword }),
      media: { name: 'media', persistentVolumeClaim: { claimName: props.media.claimName } },
      tmp: memoryVolume('tmp', '16Mi'),
      scratch: scratchVolume(),
      offsite: offsiteVolume(props.s3?.secretName ?? ''),
    };
    const base = [volumes.scripts, volumes.backups, volumes.tmp, volumes.scratch, volumes.repositoryPassword, ...(props.s3 ? [volumes.offsite] : [])];
    const { postgres, restic, exportSecrets } = backupContainers(props, keep);

    // The media volume is ReadWriteOnce: while a Synapse process holds it, the media Jobs must run on its node. Preferred,
    // not required, so that they still run while every Synapse process is stopped (a restore, an upgrade).
    const nearMedia: k8s.Affinity = {
      podAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            podAffinityTerm: { labelSelector: { matchLabels: props.media.synapseSelector }, topologyKey: 'kubernetes.io/hostname' },
          },
        ],
      },
    };
    const hash = contentHash(files);
    const cronJob = (name: string, o: CronJobOptions) => backupCronJob(this, name, { meta, component, hash, base, scheduling: props.scheduling }, o);

    // The backup volume is bound beside the media: with node-local storage the media Jobs need both on one node (the
    // copy away from the data is the off-site one, backup.s3).
    const onMediaNode: k8s.Affinity = {
      podAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: props.media.synapseSelector }, topologyKey: 'kubernetes.io/hostname' }],
      },
    };
    backupVolumeCheck(this, {
      image: props.image,
      meta,
      component,
      claimName: claim.name,
      onMediaNode,
      volume: volumes.backups,
      scheduling: props.scheduling,
    });

    const mediaRo = { name: 'media', mountPath: '/media', readOnly: true };
    const dbVolumes = [volumes.password, ...(ca !== undefined ? [ca] : [])];
    // The Secrets after the database, in a snapshot of their own: a failed export (an API that does not answer,
    // values that disagree) fails the Job but never costs the night's dump, stored by then.
    const secretsReader = exported !== undefined ? this.secretsReader(exported, meta) : undefined;
    cronJob('postgres-backup', {
      schedule: props.schedule.postgres,
      serviceAccount: secretsReader,
      volumes: [...dbVolumes, ...(exported !== undefined ? [apiTokenVolume(), memoryVolume(MOUNTS.secretsExport.name, SECRETS_EXPORT.size)] : [])],
      steps: [
        postgres('dump', 'backup-postgres.sh', postgresEnv, dbMounts),
        restic('store', ['backup-restic.sh', 'postgres', `${STAGING}/postgres`], { env: [{ name: 'REMOVE_AFTER_STORE', value: '1' }] }),
        ...(props.secrets !== undefined
          ? [
              exportSecrets(props.secrets.toolsImage),
              // Not removed after storing: a mount point cannot be, and the memory volume goes with the pod.
              restic('store-secrets', ['backup-restic.sh', 'secrets', SECRETS_EXPORT.path], { mounts: [MOUNTS.secretsExport] }),
            ]
          : []),
      ],
    });
    cronJob('media-backup', {
      schedule: props.schedule.media,
      affinity: nearMedia,
      volumes: [volumes.media],
      steps: [restic('store', ['backup-restic.sh', 'media', '/media'], { mounts: [mediaRo] })],
    });
    // FROM=offsite in a restore Job takes the snapshot from the off-site repository; SNAPSHOT=<id> an older one.
    cronJob('postgres-restore', {
      schedule: NEVER,
      suspend: true,
      volumes: dbVolumes,
      steps: [restic('fetch', ['restic-fetch.sh', 'postgres', `${STAGING}/postgres`, `${STAGING}/restore`]), postgres('restore', 'restore-postgres.sh', postgresEnv, dbMounts)],
    });
    cronJob('media-restore', {
      schedule: NEVER,
      suspend: true,
      affinity: nearMedia,
      volumes: [volumes.media],
      steps: [restic('restore', ['restic-fetch.sh', 'media', '/media', '/media'], { mounts: [{ name: 'media', mountPath: '/media' }] })],
    });
  }

  /** The nightly backup's ServiceAccount, allowed to `get` the Secrets the plan names, in each of their namespaces. */
  private secretsReader(plan: readonly PlannedValue[], meta: { namespace: string; labels: Record<string, string> }): string {
    const sa = new k8s.KubeServiceAccount(this, 'secrets-reader', { metadata: { name: SECRETS_READER, ...meta } });
    const access = new Map([...secretNamesByNamespace(plan)].map(([ns, names]) => [ns, { names, create: false, patch: false }]));
    scopedSecretAccess(this, { serviceAccount: sa.name, serviceAccountNamespace: meta.namespace, access, labels: meta.labels, createWave: WAVE.config });
    return sa.name;
  }
}
