/**
 * Point-in-time recovery of the CloudNativePG Cluster, end to end with the
 * real programs (see pitr.ts): WAL archived to MinIO as the rendered
 * ObjectStore says, a base backup, rows before and after a target time, the
 * primary and its data directory lost, then Clusters rendered with
 * postgres.cloudnativePg.recovery made from the archive into empty data
 * directories: to the target, and to two control points.
 * Install the programs first: test/e2e/install-pitr.sh.
 */
import * as fs from 'fs';
import { sleep, tempDir } from './harness';
import {
  BarmanBackup,
  barman,
  barmanArgs,
  backupList,
  BarmanSettings,
  ClusterSettings,
  createBucket,
  firstBytes,
  initPrimary,
  listObjects,
  ObjectStoreServer,
  PgInstance,
  renderedCluster,
  restoreInstance,
  startMinio,
  switchAndArchive,
  walKey,
} from './pitr';

let dir: string;
let store: ObjectStoreServer;
/** The Cluster as first rendered (initdb, archiving under its default server name), and its archive. */
let origin: ClusterSettings;
let s: BarmanSettings;
let primary: PgInstance | undefined;
const restored: PgInstance[] = [];
let backup: BarmanBackup;
let lastWal: string;
/** The old archive as retention left it, before any recovery. */
let oldArchive: string[];
/** Server clock readings (RFC 3339, as recovery.targetTime takes them): after the base backup; between the later batches. */
let afterBackup: string;
let target: string;
/** Row ids by batch: before the base backup, after it up to the target, after the target. */
const BATCHES = { beforeBackup: [1, 2, 3], beforeTarget: [4, 5, 6], afterTarget: [7, 8, 9] };

/** One transaction per row, so each has its own commit record for recovery to stop at. */
function writeRows(ids: number[]): void {
  const { database, owner } = origin.initdb!;
  primary!.psql(
    ids.map((id) => `INSERT INTO pitr_rows (id) VALUES (${id})`),
    database,
    owner,
  );
}

function rowIds(pg: PgInstance): number[] {
  const { database, owner } = origin.initdb!;
  const out = pg.psql('SELECT id FROM pitr_rows ORDER BY id', database, owner);
  return out === '' ? [] : out.split('\n').map(Number);
}

const serverNow = () => primary!.psql(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`);

// A margin on each side of a clock reading, so no commit lands on it.
const MARGIN_MS = 1100;

beforeAll(async () => {
  dir = tempDir('pitr');
  store = await startMinio(dir);
  origin = renderedCluster(store.endpoint);
  s = origin.archive;
  createBucket(store, s);
  primary = await initPrimary(origin, store, dir);
  const { database, owner } = origin.initdb!;
  primary.psql('CREATE TABLE pitr_rows (id int PRIMARY KEY)', database, owner);
  writeRows(BATCHES.beforeBackup);

  // The plugin's barman-cloud-backup asks for a spread checkpoint (the ObjectStore sets no immediateCheckpoint):
  // what initdb and CREATE DATABASE left dirty would be written over checkpoint_completion_target of
  // checkpoint_timeout, 90 s. Writing it now leaves that checkpoint next to nothing to spread.
  primary.psql('CHECKPOINT');
  // As the ScheduledBackup's Backup would run it, named as the operator names them.
  const name = `${origin.scheduledBackup}-${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}`;
  barman(store, dir, 'barman-cloud-backup', barmanArgs.backup(s, name), primary.clientEnv);
  const found = backupList(store, s, dir).filter((b) => b.backup_name === name);
  expect(found).toHaveLength(1);
  backup = found[0];

  afterBackup = serverNow();
  await sleep(MARGIN_MS);
  writeRows(BATCHES.beforeTarget);
  await sleep(MARGIN_MS);
  target = serverNow();
  await sleep(MARGIN_MS);
  writeRows(BATCHES.afterTarget);
  // The segment holding the last rows, archived now rather than when archive_timeout runs out.
  lastWal = await switchAndArchive(primary);

  // The primary is lost with its volume: an immediate shutdown (no checkpoint), then no data directory.
  await primary.stop('SIGQUIT');
  fs.rmSync(primary.dataDir, { recursive: true, force: true });
}, 300_000);

afterAll(async () => {
  for (const pg of restored) await pg.stop();
  await primary?.stop();
  await store?.stop();
});

/**
 * A Cluster rendered to recover from the old archive (to `targetTime`, or
 * its end) and archive its own history under `serverName`, made from the
 * base backup; returns it once promoted, with its first new segment archived.
 */
async function recover(name: string, serverName: string, targetTime?: string): Promise<PgInstance> {
  const c = renderedCluster(store.endpoint, { serverName, recovery: { serverName: s.serverName, targetTime } });
  expect(c.recovery?.source).toEqual(s);
  expect(c.recovery?.targetTime).toBe(targetTime);
  expect(c.archive.serverName).toBe(serverName);
  const pg = await restoreInstance(name, c, store, dir, backup.backup_id);
  restored.push(pg);
  await switchAndArchive(pg);
  return pg;
}

const recoveredNames = ['postgres-r1', 'postgres-r2', 'postgres-r3'];

describe("point-in-time recovery through the barman-cloud plugin's programs", () => {
  test("WAL and the base backup are in the bucket, gzip-compressed, under the Cluster's server name", () => {
    expect(s.serverName).toBe('postgres');
    expect(backup.status).toBe('DONE');
    const keys = listObjects(store, s);
    const wal = walKey(s, lastWal);
    expect(wal).toMatch(/^postgres\/postgres\/wals\/0{7}10{8}\/0{7}10{8}[0-9A-F]{8}\.gz$/);
    expect(keys).toContain(wal);
    // gzip's magic number: the data, not only the name, is compressed as wal.compression and data.compression say.
    expect(firstBytes(store, s, wal)).toBe('1f8b');
    const data = `${s.prefix}/${s.serverName}/base/${backup.backup_id}/data.tar.gz`;
    expect(keys).toContain(data);
    expect(firstBytes(store, s, data)).toBe('1f8b');
  });

  test('the retention policy (30d) runs against the store and keeps the backup and its WAL', () => {
    expect(s.retentionPolicy).toBe('RECOVERY WINDOW OF 30 DAYS');
    const before = listObjects(store, s);
    barman(store, dir, 'barman-cloud-backup-delete', barmanArgs.backupDelete(s));
    expect(backupList(store, s, dir).map((b) => b.backup_id)).toEqual([backup.backup_id]);
    oldArchive = listObjects(store, s);
    expect(oldArchive).toEqual(before);
  });

  // After the retention run: what it kept is enough to recover.
  test('recovery to the target time brings back every row written up to it and none after', async () => {
    const pg = await recover('at-target', recoveredNames[0], target);
    expect(rowIds(pg)).toEqual([...BATCHES.beforeBackup, ...BATCHES.beforeTarget]);
    // Stopped by the target, not by the end of the archive: the commit timestamps in the WAL put
    // the last replayed commit at or before the target and the first one left out after it.
    const log = pg.server.output();
    const stoppedBefore = /recovery stopping before commit of transaction \d+, time (.+)/.exec(log)?.[1];
    const lastReplayed = /last completed transaction was at log time (.+)/.exec(log)?.[1];
    expect(stoppedBefore).toBeDefined();
    expect(lastReplayed).toBeDefined();
    expect(pg.psql(`SELECT '${lastReplayed}'::timestamptz <= '${target}' AND '${target}' < '${stoppedBefore}'::timestamptz`)).toBe('t');
    await pg.stop();
  });

  test('control: a target before the rows written after the base backup leaves them out', async () => {
    const pg = await recover('before-rows', recoveredNames[1], afterBackup);
    expect(rowIds(pg)).toEqual(BATCHES.beforeBackup);
    await pg.stop();
  });

  test('control: recovery to the end of the archive has the rows after the target too', async () => {
    // So their absence at the target is the target's doing, not WAL missing from the store.
    const pg = await recover('end-of-archive', recoveredNames[2]);
    expect(rowIds(pg)).toEqual([...BATCHES.beforeBackup, ...BATCHES.beforeTarget, ...BATCHES.afterTarget]);
    await pg.stop();
  });

  test('each recovered Cluster archives its new history under its own server name; the old archive is untouched', () => {
    expect(listObjects(store, s)).toEqual(oldArchive);
    for (const serverName of recoveredNames) {
      const keys = listObjects(store, { ...s, serverName });
      expect(keys).toContain(`${s.prefix}/${serverName}/wals/00000002.history.gz`);
      expect(keys.some((k) => /\/wals\/0{7}20{8}\/0{7}20{8}[0-9A-F]{8}\.gz$/.test(k))).toBe(true);
    }
    // Why recovery.serverName must differ from backup.serverName: the plugin refuses to archive into a non-empty one.
    expect(() => barman(store, dir, 'barman-cloud-check-wal-archive', barmanArgs.checkWalArchive(s))).toThrow(/Expected empty archive/);
  });
});
