/**
 * Containers started as their images and pods would start them, not as this machine would: a command that works here
 * but not in the image must fail here too (LiveKit's `exec livekit-server` did, in its image, for months).
 *
 * For one container of a rendered workload, an ImageSandbox runs a command
 *
 * - in a root of its own (a mount namespace and chroot): this machine's folders, plus the image's own programs at
 *   the paths the image has them (docs/image-contract.yaml), each the build this machine tests, copied with the
 *   image's file capabilities. Programs the image has at a top-level path (/livekit-server) exist only there; a
 *   program in a folder the host also has (/usr/bin/turnserver) is laid over it read-only (overlayfs);
 * - with the image's PATH and the container's rendered env only;
 * - as the container's uid and gid, with fsGroup as a supplementary group, no_new_privs when the container forbids
 *   privilege escalation, and a capability bounding set of exactly what the container keeps (drop ALL, add ...);
 * - where the test gives them (podVolumes), with the pod's volumes at their mount paths: its folders for Secrets and
 *   claims, and each emptyDir a tmpfs of its sizeLimit, so what does not fit in the pod does not fit here.
 *
 * With `memoryLimit`, the command also runs in a cgroup (v1) holding the container's memory limit, swap included, as
 * the kubelet sets it: a memory emptyDir (tmpfs) it writes counts against it, as in the pod; podVolumes then gives
 * disk-backed emptyDirs a folder on disk (the kubelet evicts a pod over their sizeLimit instead of failing writes:
 * diskEmptyDirUsage says whether it would have).
 *
 * What it does not reproduce: the image's other files (its base's programs are this machine's Debian ones; the unit
 * test test/image-contract.test.ts checks every command against the image's own list), seccomp, and CPU limits (the
 * capacity benchmark applies those with cgroups). Needs root, as the pod networks do.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { memoryBytes } from '../../charts/common';
import { ImageFacts, imageContract, imageRepository } from '../image-contract';
import { Manifest, podSpec, tempDir } from './harness';

const CAPABILITY = /^[A-Z_]+$/;

export class ImageSandbox {
  readonly repository: string;
  readonly facts: ImageFacts;
  readonly uid: number;
  readonly gid: number;
  readonly groups: number[];
  readonly noNewPrivs: boolean;
  /** The capabilities the bounding set keeps, lower case without CAP_ (setpriv's spelling). */
  readonly bounding: string[];
  /** The container's memory limit in bytes, when the sandbox holds the command to it. */
  readonly memoryLimit?: number;
  private readonly layer: string;
  private readonly containerName: string;
  /** The cgroup of the last command wrapped, when memoryLimit is set. */
  private group?: string;

  /**
   * `programs`: for each path in the image that the test provides, the file on this machine that is the build under
   * test. Only paths the contract lists for the image are accepted.
   */
  constructor(workload: Manifest, containerName: string, programs: Record<string, string>, opts: { memoryLimit?: boolean } = {}) {
    const pod = podSpec(workload);
    const c = [...(pod.initContainers ?? []), ...pod.containers].find((x: any) => x.name === containerName);
    if (!c) throw new Error(`${workload.kind}/${workload.metadata.name} has no container ${containerName}`);
    this.containerName = containerName;
    if (opts.memoryLimit) {
      const limit = c.resources?.limits?.memory;
      if (limit === undefined) throw new Error(`${containerName}: no memory limit to hold it to`);
      if (!fs.existsSync(path.join(MEMORY_CGROUP, 'cgroup.procs'))) throw new Error(`the cgroup v1 memory controller is not mounted at ${MEMORY_CGROUP}`);
      this.memoryLimit = memoryBytes(limit);
    }
    this.repository = imageRepository(c.image);
    const facts = imageContract().images[this.repository];
    if (!facts) throw new Error(`docs/image-contract.yaml has no entry for ${this.repository}`);
    this.facts = facts;
    const sc = c.securityContext ?? {};
    const psc = pod.securityContext ?? {};
    this.uid = sc.runAsUser ?? psc.runAsUser ?? facts.user;
    this.gid = sc.runAsGroup ?? psc.runAsGroup ?? this.uid;
    this.groups = [...new Set([...(psc.fsGroup !== undefined ? [psc.fsGroup] : []), ...(psc.supplementalGroups ?? [])])];
    this.noNewPrivs = sc.allowPrivilegeEscalation === false;
    const drop: string[] = sc.capabilities?.drop ?? [];
    const add: string[] = sc.capabilities?.add ?? [];
    if (!drop.includes('ALL')) throw new Error(`${containerName}: the sandbox models only containers that drop ALL capabilities`);
    for (const cap of add) if (!CAPABILITY.test(cap)) throw new Error(`${containerName}: odd capability ${cap}`);
    this.bounding = add.map((cap) => cap.toLowerCase().replace(/^cap_/, ''));

    // The image's programs: copies of this machine's builds, at the image's paths, with the image's file capabilities.
    this.layer = tempDir(`image-${containerName}`);
    for (const [imagePath, hostFile] of Object.entries(programs)) {
      if (!(imagePath in facts.programs)) throw new Error(`${this.repository} has no ${imagePath} (docs/image-contract.yaml)`);
      const copy = path.join(this.layer, imagePath);
      fs.mkdirSync(path.dirname(copy), { recursive: true });
      fs.copyFileSync(hostFile, copy);
      fs.chmodSync(copy, 0o755);
      // A build that finds its libraries relative to itself ($ORIGIN) finds them where it was installed, not at the image path.
      // (A static build has no dynamic section, and patchelf says so.)
      const runpath = spawnSync('patchelf', ['--print-rpath', copy], { encoding: 'utf8' }).stdout?.trim() ?? '';
      if (runpath.includes('$ORIGIN')) execFileSync('patchelf', ['--set-rpath', runpath.split('$ORIGIN').join(path.dirname(hostFile)), copy]);
      const caps = facts.file_capabilities?.[imagePath];
      if (caps?.length) execFileSync('setcap', [`${caps.join(',')}+ep`, copy]);
      // Builds from Debian's packages load their libraries from beside them, under this machine's cache.
      openPath(path.dirname(hostFile));
    }
    openPath(this.layer);
  }

  /**
   * The command line that runs `command args` in the container, in `cwd`, with exactly `env` plus the image's PATH.
   * `wrapOuter` puts the whole in a network namespace (PodNetwork.wrap) or leaves it as is.
   */
  wrap(
    command: string,
    args: string[],
    env: Record<string, string>,
    cwd: string,
    wrapOuter: (c: string, a: string[]) => [string, string[]] = (c, a) => [c, a],
    volumes: Record<string, Volume> = {},
  ): [string, string[]] {
    if (env.PATH !== undefined) throw new Error("PATH is the image's; the container's env must not set it here");
    const root = tempDir('root');
    // One line per volume: container path, then "bind <host folder> <rw|ro>" or "tmpfs <bytes>".
    const specs = Object.entries(volumes).map(([at, v]) => {
      if (!at.startsWith('/') || /\s/.test(at)) throw new Error(`odd mount path ${at}`);
      if ('tmpfsBytes' in v) return `${at} tmpfs ${v.tmpfsBytes}`;
      if (/\s/.test(v.host)) throw new Error(`odd host folder ${v.host}`);
      return `${at} bind ${v.host} ${v.readOnly ? 'ro' : 'rw'}`;
    });
    const setpriv = [
      '/usr/bin/setpriv',
      `--reuid=${this.uid}`,
      `--regid=${this.gid}`,
      ...(this.groups.length ? [`--groups=${this.groups.join(',')}`] : ['--clear-groups']),
      ...(this.noNewPrivs ? ['--no-new-privs'] : []),
      `--bounding-set=${['-all', ...this.bounding.map((b) => `+${b}`)].join(',')}`,
      '--inh-caps=-all',
    ];
    // HOME as the runtime sets it for a uid the image's /etc/passwd does not name.
    const envArgs = Object.entries({ HOME: '/', ...env, PATH: this.facts.path }).map(([k, v]) => `${k}=${v}`);
    const sandboxed: [string, string[]] = [
      '/usr/bin/unshare',
      [
        '--mount',
        '--propagation',
        'private',
        '--',
        '/bin/sh',
        '-c',
        SETUP,
        'setup',
        root,
        this.layer,
        cwd,
        specs.join('\n'),
        ...setpriv,
        '--',
        '/usr/bin/env',
        '-i',
        ...envArgs,
        command,
        ...args,
      ],
    ];
    if (this.memoryLimit === undefined) return wrapOuter(...sandboxed);
    this.group = memoryGroup(this.containerName, this.memoryLimit);
    // Joins the group, then execs (same pid: all it starts stays inside).
    return wrapOuter('/bin/sh', ['-c', 'echo $$ > "$1/cgroup.procs" || exit 125; shift; exec "$@"', 'kudo-memory', this.group, sandboxed[0], ...sandboxed[1]]);
  }

  /** What the last command wrapped used of its memory limit: the peak, and whether the kernel killed it for memory. */
  memoryUsage(): { peakBytes: number; limitBytes: number; oomKills: number } {
    if (this.group === undefined || this.memoryLimit === undefined) throw new Error('no command ran under a memory limit');
    const read = (f: string) => fs.readFileSync(path.join(this.group!, f), 'utf8');
    const oom = /^oom_kill (\d+)$/m.exec(read('memory.oom_control'));
    return { peakBytes: Number(read('memory.max_usage_in_bytes').trim()), limitBytes: this.memoryLimit, oomKills: oom ? Number(oom[1]) : 0 };
  }
}

const MEMORY_CGROUP = '/sys/fs/cgroup/memory';
const memoryGroups: string[] = [];
/** A new memory cgroup holding `bytes` (swap included), under one group per test process; removed when it exits. */
function memoryGroup(name: string, bytes: number): string {
  const base = path.join(MEMORY_CGROUP, `kudo-e2e-${process.pid}`);
  if (memoryGroups.length === 0) {
    fs.mkdirSync(base, { recursive: true });
    process.on('exit', () => {
      for (const g of [...memoryGroups.reverse(), base]) spawnSync('rmdir', [g]);
    });
  }
  const group = path.join(base, `${name}-${memoryGroups.length + 1}`);
  fs.mkdirSync(group);
  memoryGroups.push(group);
  fs.writeFileSync(path.join(group, 'memory.limit_in_bytes'), String(bytes));
  // No swap beyond the limit, as a node without swap (the kubelet's default).
  if (fs.existsSync(path.join(group, 'memory.memsw.limit_in_bytes'))) fs.writeFileSync(path.join(group, 'memory.memsw.limit_in_bytes'), String(bytes));
  return group;
}

/**
 * Run as root in the new mount namespace: $1 the new root, $2 the image's layer, $3 the working folder, then the
 * command. The root is a tmpfs with this machine's top-level folders bound in; the layer's top-level files are bound
 * onto empty files, its deeper folders laid over the host's read-only.
 */
const SETUP = `set -eu
root=$1 layer=$2 cwd=$3 volumes=$4
shift 4
mount -t tmpfs -o mode=0755 image-root "$root"
for e in /*; do
  n=\${e#/}
  if [ -L "$e" ]; then ln -s "$(readlink "$e")" "$root/$n"
  elif [ -d "$e" ]; then mkdir "$root/$n"; mount --rbind "$e" "$root/$n"
  fi
done
for f in "$layer"/*; do
  [ -e "$f" ] || continue
  n=\${f#"$layer"/}
  if [ -f "$f" ]; then
    [ -L "$root/$n" ] && { echo "image path /$n is a symlink on this machine" >&2; exit 1; }
    : > "$root/$n"; mount --bind "$f" "$root/$n"
  fi
done
for d in $(cd "$layer" && find . -mindepth 2 -type f -exec dirname {} + | cut -c2- | sort -u); do
  mkdir -p "$root$d"
  mount -t overlay image-layer -o "lowerdir=$layer$d:$root$d" "$root$d"
done
# The pod's volumes at their mount paths. A mount point this machine lacks under one of its folders is made in an
# empty folder laid over the nearest one that exists, so nothing is created on this machine.
printf '%s\n' "$volumes" | while read -r at kind a b; do
  [ -n "$at" ] || continue
  if [ ! -d "$root$at" ]; then
    up=$at
    while [ ! -d "$root$(dirname "$up")" ]; do up=$(dirname "$up"); done
    parent=$(dirname "$up")
    top=$(printf '%s' "$at" | cut -d/ -f2)
    # Under a top-level folder this machine does not have, the root's own tmpfs: made there.
    if [ "$parent" = / ] || [ ! -e "/$top" ]; then mkdir -p "$root$at"
    else
      over=$(mktemp -d); chmod 0755 "$over"
      mkdir -p "$over\${at#"$parent"}"
      mount -t overlay image-mount -o "lowerdir=$over:$root$parent" "$root$parent"
    fi
  fi
  case $kind in
    tmpfs) mount -t tmpfs -o "size=$a,mode=1777" pod-volume "$root$at" ;;
    bind)
      mount --bind "$a" "$root$at"
      if [ "$b" = ro ]; then mount -o remount,bind,ro "$root$at"; fi ;;
  esac
done
exec /usr/sbin/chroot "$root" /bin/sh -c 'cd "$1"; shift; exec "$@"' sh "$cwd" "$@"
`;

/** A volume as a container sees it: a folder of this machine's (a Secret, a claim) or a size-limited tmpfs (an emptyDir). */
export type Volume = { host: string; readOnly?: boolean } | { tmpfsBytes: number };

/**
 * A container's volumes at their mount paths: each emptyDir a tmpfs of its sizeLimit (memory ones as the kubelet
 * makes them; disk ones standing for the ephemeral storage the kubelet would let them use), every other volume the
 * test's folder for it (`folders`, by volume name), read-only where the mount is.
 */
export function podVolumes(workload: Manifest, containerName: string, folders: Record<string, string>, opts: { diskEmptyDirsOnDisk?: boolean } = {}): Record<string, Volume> {
  const pod = podSpec(workload);
  const c = [...(pod.initContainers ?? []), ...pod.containers].find((x: any) => x.name === containerName);
  if (!c) throw new Error(`${workload.metadata.name} has no container ${containerName}`);
  const out: Record<string, Volume> = {};
  for (const m of c.volumeMounts ?? []) {
    const v = pod.volumes.find((x: any) => x.name === m.name);
    // An emptyDir the test gives a folder for is one the pod's containers share (the test sizes that folder itself).
    if (v?.emptyDir && !folders[m.name]) {
      if (!v.emptyDir.sizeLimit) throw new Error(`${containerName}: emptyDir ${m.name} has no sizeLimit`);
      if (opts.diskEmptyDirsOnDisk && v.emptyDir.medium !== 'Memory') {
        const dir = tempDir(`emptydir-${m.name}`);
        fs.chmodSync(dir, 0o1777);
        diskEmptyDirs.push({ container: containerName, volume: m.name, dir, limitBytes: memoryBytes(v.emptyDir.sizeLimit) });
        out[m.mountPath] = { host: dir };
        continue;
      }
      out[m.mountPath] = { tmpfsBytes: memoryBytes(v.emptyDir.sizeLimit) };
    } else {
      if (!folders[m.name]) throw new Error(`${containerName}: the test gave no folder for volume ${m.name}`);
      out[m.mountPath] = { host: folders[m.name], readOnly: m.readOnly === true };
    }
  }
  return out;
}
const diskEmptyDirs: { container: string; volume: string; dir: string; limitBytes: number }[] = [];
/**
 * The disk-backed emptyDirs podVolumes made on disk, with what is in them now: the kubelet evicts a pod whose
 * emptyDir holds more than its sizeLimit. Check it before the folder is emptied (restic removes its temporary packs).
 */
export function diskEmptyDirUsage(): { container: string; volume: string; usedBytes: number; limitBytes: number }[] {
  return diskEmptyDirs.map((d) => ({
    container: d.container,
    volume: d.volume,
    limitBytes: d.limitBytes,
    usedBytes: Number(execFileSync('du', ['-sb', d.dir], { encoding: 'utf8' }).split('\t')[0]),
  }));
}

/**
 * Gives the container's uid access to a folder the test made as root, the way the kubelet prepares volumes for a pod
 * with fsGroup: group-owned by fsGroup, folders group-writable with setgid, files group-readable (Secrets keep 0440).
 * The folders above it become traversable.
 */
export function shareWithPod(dir: string, fsGroup: number): void {
  openPath(dir);
  execFileSync('chgrp', ['-R', String(fsGroup), dir]);
  execFileSync('find', [dir, '-type', 'd', '-exec', 'chmod', 'g+rwxs', '{}', '+']);
  execFileSync('find', [dir, '-type', 'f', '-exec', 'chmod', 'g+r', '{}', '+']);
}

/** A file as a Secret volume shows it to a pod with fsGroup: mode 0440, group fsGroup. */
export function asSecretFile(file: string, fsGroup: number): void {
  fs.chownSync(file, 0, fsGroup);
  fs.chmodSync(file, 0o440);
}

/** Makes every folder from `/` down to `dir` traversable (mkdtemp makes them 0700). */
function openPath(dir: string): void {
  for (let d = path.resolve(dir); d !== path.dirname(d); d = path.dirname(d)) {
    const mode = fs.statSync(d).mode;
    if ((mode & 0o001) === 0) fs.chmodSync(d, (mode & 0o7777) | 0o011);
  }
}
