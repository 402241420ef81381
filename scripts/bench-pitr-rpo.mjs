// How much a lost CloudNativePG primary can lose (its RPO) with the rendered
// archive_timeout, measured with the real programs test/e2e/pitr.e2e.test.ts
// runs: PostgreSQL 17 archiving through barman-cloud-wal-archive into MinIO.
//
//   upload       a segment ended by pg_switch_wal() -> its object in the bucket
//   commit       a commit on an otherwise idle server -> the object of the WAL
//                segment holding it in the bucket: what is lost if the primary
//                and its volume go at the moment of the commit
//   after start  the same for a commit just after the server started
//
// A busy server fills its 16 MB segments sooner; an idle one waits for
// archive_timeout, so "commit" is the worst case of the two. Each commit
// lands at a random point of the archive_timeout cycle.
//
// "after start" is apart because PostgreSQL (15 and later) starts its
// checkpointer while the startup process still runs; the checkpointer's first
// sleep, taken while recovery is in progress, ignores archive_timeout and
// lasts checkpoint_timeout (5 min by default) unless something wakes it (a
// checkpoint request, a configuration reload). Commits in that first window
// wait for it.
//
// Figures, not assertions: nothing fails. Needs test/e2e/install-programs.sh
// and test/e2e/install-pitr.sh first. BENCH_PITR_SAMPLES (default 5) samples
// of upload and commit; about checkpoint_timeout plus one archive_timeout per
// commit sample in all.
import { build } from 'esbuild';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as os from 'os';
import * as path from 'path';
import { fileURLToPath } from 'url';

const root = fileURLToPath(new URL('..', import.meta.url));
const samples = Number(process.env.BENCH_PITR_SAMPLES ?? 5);

// The test's own helpers, bundled beside the app's bundle (charts read charts/files relative to it).
const bundle = path.join(root, '.build', 'bench-pitr.js');
await build({
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  entryPoints: ['test/e2e/pitr.ts'],
  outfile: bundle,
  external: ['cdk8s', 'cdk8s-plus-28', 'constructs'],
});
const pitr = createRequire(import.meta.url)(bundle);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-bench-pitr-'));
process.env.KUDO_E2E_TMP = tmp;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;

/** Wall-clock ms from `start` until the object of `wal` is in the bucket (within `timeoutMs`). */
async function untilArchived(store, s, wal, start, timeoutMs) {
  const watch = pitr.watchObject(store, s, pitr.walKey(s, wal), timeoutMs);
  await watch.ready;
  const t0 = await start();
  return (await watch.seen) - t0;
}

let store;
let primary;
try {
  store = await pitr.startMinio(tmp);
  const cluster = pitr.renderedCluster(store.endpoint);
  const s = cluster.archive;
  const timeout = cluster.parameters.archive_timeout;
  const m = /^(\d+)s$/.exec(timeout ?? '');
  if (!m) throw new Error(`the rendered Cluster's archive_timeout is ${timeout}, not <n>s`);
  const timeoutMs = Number(m[1]) * 1000;
  pitr.createBucket(store, s);
  primary = await pitr.initPrimary(cluster, store, tmp);
  primary.psql('CREATE TABLE rpo_probe (id serial PRIMARY KEY)');
  const checkpointTimeoutMs = Number(primary.psql("SELECT setting FROM pg_settings WHERE name = 'checkpoint_timeout'")) * 1000;
  // The longest wait the server should cause, with room for a slow upload.
  const watchMs = checkpointTimeoutMs + timeoutMs + 120_000;
  // The first archive_command runs start cold (Python, boto3); keep them out of the figures.
  // (pg_switch_wal() does not wake the checkpointer.)
  await pitr.switchAndArchive(primary);

  const commitOnce = async () => {
    // The server's clock just before the commit (one machine, one clock): the figure errs long by a few ms.
    const at = Number(primary.psql('INSERT INTO rpo_probe DEFAULT VALUES RETURNING extract(epoch FROM clock_timestamp())')) * 1000;
    const wal = primary.psql('SELECT pg_walfile_name(pg_current_wal_lsn())');
    const ms = await untilArchived(store, s, wal, async () => at, watchMs);
    process.stderr.write(`${wal} in the bucket ${seconds(ms)} after its commit\n`);
    return ms;
  };
  const afterStart = await commitOnce();

  const upload = [];
  for (let i = 0; i < samples; i++) {
    primary.psql('INSERT INTO rpo_probe DEFAULT VALUES');
    const wal = primary.psql('SELECT pg_walfile_name(pg_current_wal_lsn())');
    upload.push(
      await untilArchived(
        store,
        s,
        wal,
        async () => {
          const t = Date.now();
          primary.psql('SELECT pg_switch_wal()');
          return t;
        },
        watchMs,
      ),
    );
  }

  const commit = [];
  for (let i = 0; i < samples; i++) {
    await sleep(Math.random() * timeoutMs);
    commit.push(await commitOnce());
  }

  console.log(`archive_timeout ${timeout} (rendered), checkpoint_timeout ${checkpointTimeoutMs / 1000}s; ` + `${os.cpus().length} cores, ${os.cpus()[0].model.trim()}`);
  const line = (cells) => cells.map((c, i) => String(c).padEnd(i === 0 ? 14 : 10)).join('  ');
  console.log(line(['', 'samples', 'min', 'median', 'max']));
  for (const [name, xs] of [
    ['upload', upload],
    ['commit', commit],
    ['after start', [afterStart]],
  ]) {
    console.log(line([name, xs.length, seconds(Math.min(...xs)), seconds(median(xs)), seconds(Math.max(...xs))]));
  }
  console.log(`RPO bound once running: archive_timeout + upload = ${seconds(timeoutMs + Math.max(...upload))}`);
  // A failed archive_command is retried (three times, then after a minute): it shows in the figures, and here.
  const failed = primary.psql('SELECT failed_count FROM pg_stat_archiver');
  console.log(`archive_command failures: ${failed}`);
  if (failed !== '0')
    console.log(
      primary.server
        .output()
        .split('\n')
        .filter((l) => /archive|barman|ERROR|FATAL/i.test(l))
        .slice(-20)
        .join('\n'),
    );
} finally {
  await primary?.stop();
  await store?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(bundle, { force: true });
}
