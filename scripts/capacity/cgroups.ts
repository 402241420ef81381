/**
 * cgroup v1 groups that hold a program to its container's limits, as the
 * kubelet would: cpu.cfs_quota_us/cfs_period_us from the CPU limit,
 * memory.limit_in_bytes from the memory limit, and cpuacct to count what it
 * used. Every group lives under kudo-bench-<pid> in each controller and is
 * removed at the end.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Launcher } from '../../test/e2e/harness';

const ROOT = '/sys/fs/cgroup';
const CONTROLLERS = ['cpu', 'cpuacct', 'memory'] as const;
const PERIOD_US = 100_000;

export interface Limits {
  /** CPU limit in cores (undefined: none). */
  readonly cpu?: number;
  /** Memory limit in bytes (undefined: none). */
  readonly memory?: number;
}

export interface GroupStats {
  readonly cpuSeconds: number;
  readonly periods: number;
  readonly throttledPeriods: number;
  readonly throttledSeconds: number;
  readonly memoryBytes: number;
  readonly memoryMaxBytes: number;
  readonly memoryFailcnt: number;
  readonly oomKills: number;
}

export function cgroupsAvailable(): string | undefined {
  for (const c of CONTROLLERS) {
    if (!fs.existsSync(path.join(ROOT, c, 'cgroup.procs'))) return `cgroup v1 controller "${c}" is not mounted at ${ROOT}/${c}`;
  }
  if (process.getuid?.() !== 0) return 'creating cgroups needs root';
  return undefined;
}

export class Cgroups {
  readonly base = `kudo-bench-${process.pid}`;
  /** Group name -> the limits it holds and the program it was made for. */
  readonly groups = new Map<string, { limits: Limits; program: string }>();

  constructor() {
    for (const c of CONTROLLERS) fs.mkdirSync(path.join(ROOT, c, this.base), { recursive: true });
    // The whole benchmark is one scheduling entity beside every other process of the machine: with the default
    // weight (1024, one process's) any other busy process would take a share from all of it. The largest weight
    // makes other load yield, as on a node given to these pods (its CPU is still reported, as "outside the groups").
    fs.writeFileSync(path.join(ROOT, 'cpu', this.base, 'cpu.shares'), '262144');
  }

  private dir(controller: string, group: string): string {
    return path.join(ROOT, controller, this.base, group);
  }

  /** A new group holding `limits`, named after the program (made unique). */
  make(program: string, limits: Limits): string {
    let name = program.replace(/[^A-Za-z0-9_.-]/g, '_');
    const base = name;
    for (let i = 2; this.groups.has(name) || CONTROLLERS.some((c) => fs.existsSync(this.dir(c, name))); i++) name = `${base}-${i}`;
    for (const c of CONTROLLERS) fs.mkdirSync(this.dir(c, name));
    if (limits.cpu !== undefined) {
      fs.writeFileSync(path.join(this.dir('cpu', name), 'cpu.cfs_period_us'), String(PERIOD_US));
      fs.writeFileSync(path.join(this.dir('cpu', name), 'cpu.cfs_quota_us'), String(Math.round(limits.cpu * PERIOD_US)));
    }
    if (limits.memory !== undefined) fs.writeFileSync(path.join(this.dir('memory', name), 'memory.limit_in_bytes'), String(limits.memory));
    this.groups.set(name, { limits, program });
    return name;
  }

  /** The command line that joins the group and then execs the program (same pid: what it forks stays inside). */
  wrap(group: string, command: string, args: string[]): [string, string[]] {
    const script = 'for d in "$1" "$2" "$3"; do echo $$ > "$d/cgroup.procs" || exit 125; done; shift 3; exec "$@"';
    return ['sh', ['-c', script, 'kudo-cgroup', ...CONTROLLERS.map((c) => this.dir(c, group)), command, ...args]];
  }

  /** A Launcher for the harness: each program whose limits `limitsOf` knows goes into a group of its own. */
  launcher(limitsOf: (program: string) => Limits | undefined): Launcher {
    return (name, command, args) => {
      const limits = limitsOf(name);
      if (limits === undefined) return [command, args];
      return this.wrap(this.make(name, limits), command, args);
    };
  }

  stats(group: string): GroupStats {
    const read = (c: string, f: string) => fs.readFileSync(path.join(this.dir(c, group), f), 'utf8');
    const cpuStat = Object.fromEntries(
      read('cpu', 'cpu.stat')
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map(([k, v]) => [k, Number(v)]),
    );
    const oom = /oom_kill (\d+)/.exec(read('memory', 'memory.oom_control'));
    return {
      cpuSeconds: Number(read('cpuacct', 'cpuacct.usage')) / 1e9,
      periods: cpuStat.nr_periods ?? 0,
      throttledPeriods: cpuStat.nr_throttled ?? 0,
      throttledSeconds: (cpuStat.throttled_time ?? 0) / 1e9,
      memoryBytes: Number(read('memory', 'memory.usage_in_bytes')),
      memoryMaxBytes: Number(read('memory', 'memory.max_usage_in_bytes')),
      memoryFailcnt: Number(read('memory', 'memory.failcnt')),
      oomKills: oom ? Number(oom[1]) : 0,
    };
  }

  /** Every group's stats, by group name. */
  snapshot(): Map<string, GroupStats> {
    return new Map([...this.groups.keys()].filter((g) => fs.existsSync(this.dir('cpu', g))).map((g) => [g, this.stats(g)]));
  }

  /** Removes the groups of programs that have exited (all of them at the end). */
  remove(): string[] {
    const left: string[] = [];
    for (const g of this.groups.keys()) {
      for (const c of CONTROLLERS) {
        try {
          if (fs.existsSync(this.dir(c, g))) fs.rmdirSync(this.dir(c, g));
        } catch {
          left.push(`${c}/${this.base}/${g}`);
        }
      }
    }
    this.groups.clear();
    return left;
  }

  removeAll(): string[] {
    const left = this.remove();
    for (const c of CONTROLLERS) {
      try {
        fs.rmdirSync(path.join(ROOT, c, this.base));
      } catch {
        left.push(`${c}/${this.base}`);
      }
    }
    return left;
  }
}

/** The difference of two snapshots: what each group used in between. */
export function usage(
  before: Map<string, GroupStats>,
  after: Map<string, GroupStats>,
  seconds: number,
): Map<
  string,
  {
    cores: number;
    throttledPercent: number;
    throttledSeconds: number;
    memoryMaxBytes: number;
    memoryFailcnt: number;
    oomKills: number;
  }
> {
  const out = new Map();
  for (const [g, a] of after) {
    const b = before.get(g);
    if (!b) continue;
    const periods = a.periods - b.periods;
    out.set(g, {
      cores: (a.cpuSeconds - b.cpuSeconds) / seconds,
      throttledPercent: periods > 0 ? (100 * (a.throttledPeriods - b.throttledPeriods)) / periods : 0,
      throttledSeconds: a.throttledSeconds - b.throttledSeconds,
      memoryMaxBytes: a.memoryMaxBytes,
      memoryFailcnt: a.memoryFailcnt - b.memoryFailcnt,
      oomKills: a.oomKills - b.oomKills,
    });
  }
  return out;
}
