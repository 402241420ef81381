// Disaster recovery at a realistic size: test/e2e/disaster-recovery.e2e.test.ts,
// the runbook of docs/operations.md, "Disaster recovery", with the real programs, run with 1 GiB of database and
// 5 GiB of media (512 KiB files) instead of its CI size, and its figures
// printed: the backup's cost (first night, then an unchanged night: time and
// bytes sent off-site), and the recovery time (RTO) with its phases.
//
//   npm run bench:dr                       1024 MiB database, 5120 MiB media
//   KUDO_DR_DB_MIB=256 KUDO_DR_MEDIA_MIB=1024 npm run bench:dr
//
// Figures, not assertions (the test's own checks still run: a wrong restore
// fails it). Needs root and test/e2e/install-all.sh's programs, about 4 x the
// media size free under /tmp, and 30-60 minutes on a 2-core machine.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { fileURLToPath } from 'url';

const root = fileURLToPath(new URL('..', import.meta.url));
const report = path.join(root, '.build', 'bench-dr.json');
fs.mkdirSync(path.dirname(report), { recursive: true });
fs.rmSync(report, { force: true });
const env = { ...process.env, KUDO_DR_DB_MIB: process.env.KUDO_DR_DB_MIB ?? '1024', KUDO_DR_MEDIA_MIB: process.env.KUDO_DR_MEDIA_MIB ?? '5120', KUDO_DR_REPORT: report };
const run = spawnSync('npx', ['jest', '--ci', '--config', 'test/e2e/jest.config.js', '--runInBand', 'test/e2e/disaster-recovery.e2e.test.ts'], {
  cwd: root,
  env,
  stdio: 'inherit',
});
if (!fs.existsSync(report)) {
  console.error('bench:dr: the test wrote no figures (see its output above)');
  process.exit(1);
}
const r = JSON.parse(fs.readFileSync(report, 'utf8'));
const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const s = (x) => `${Math.round(x)} s`;
console.log(`\nkudo disaster recovery: ${r.databaseMiB} MiB database, ${r.mediaMiB} MiB media in ${r.mediaFiles} files`);
if (r.firstBackup) {
  const b = r.firstBackup;
  console.log(
    `  first night      ${s(b.seconds)} (dump ${s(b.dumpSeconds)}, store dump ${s(b.storeDumpSeconds)}, store media ${s(b.storeMediaSeconds)}); off-site ${mib(b.offsiteBytes)}; restic's largest resident set ${b.maxRssMiB.toFixed(0)} MiB of its ${b.memoryLimitMiB} MiB limit`,
  );
}
if (r.unchangedNight) {
  const u = r.unchangedNight;
  console.log(`  unchanged night  ${s(u.seconds)} (store dump ${s(u.storeDumpSeconds)}, store media ${s(u.storeMediaSeconds)}); sent off-site ${mib(u.offsiteBytesAdded)}`);
}
if (r.recovery) {
  const v = r.recovery;
  console.log(
    `  recovery (RTO)   ${s(v.rtoSeconds)}: chat back after ${s(v.chatBackSeconds)} (${Object.entries(v.phases)
      .map(([k, x]) => `${k} ${s(x)}`)
      .join(', ')}); restic's largest resident set ${v.maxRssMiB.toFixed(0)} MiB`,
  );
}
process.exit(run.status ?? 1);
