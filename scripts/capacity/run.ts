/**
 * Capacity per profile (`npm run bench:capacity`): the real programs started
 * from the rendered manifests by the e2e harness, each held to its
 * container's CPU and memory limits in cgroups of its own, under load from
 * real clients:
 *
 *   chat   Synapse (profile small: one process; production: the workers
 *          behind the router) with PostgreSQL (and Redis): matrix-nio users
 *          syncing and sending, at a rising rate, until p95 send-to-sync
 *          latency passes 1 s.
 *   calls  LiveKit with its Redis: LiveKit's Go SDK participants publishing
 *          synthetic Opus and VP8 as real RTP in rooms of 2, 8 and 50, more
 *          rooms (or publishers) per step, until receivers see loss or
 *          LiveKit is throttled. Once per mode of --livekit-modes: on the host
 *          network, and off it (livekit.hostNetwork false) behind its
 *          NodePort Service's DNAT (test/e2e/pod-behind-node.ts).
 *   turn   coturn: turnutils_uclient sessions relayed through it to
 *          turnutils_peer, more per step, until loss.
 *
 * Figures, not assertions. Everything runs on this machine (loopback and
 * network namespaces it makes); the clients share its cores with the
 * servers, which the tables say.
 */
import { ChildProcess, ChildProcessByStdio, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import { createHmac } from 'crypto';
import type { Readable } from 'stream';
import * as yaml from 'js-yaml';
import { cpuCores, memoryBytes } from '../../charts/common';
import type { KudoConfig } from '../../charts/config';
import { HAS_PROMETHEUS, option, startCoturn, TURN_VERSION, TURNUTILS } from '../../test/e2e/coturn';
import { configMapFile, find, freePort, generatedSecrets, httpJson, Manifest, PodNetwork, programs, rendered, setLauncher, sleep } from '../../test/e2e/harness';
import { prepareLiveKit, startLiveKit } from '../../test/e2e/livekit';
import { PodBehindNode, prepareLiveKitInPod, serviceRules } from '../../test/e2e/pod-behind-node';
import { startPostgres } from '../../test/e2e/postgres';
import { startRedis } from '../../test/e2e/redis';
import { startSynapse } from '../../test/e2e/synapse';
import { startRouter, startSynapseProcesses } from '../../test/e2e/synapse-workers';
import { FakeKubeApi } from '../../test/fake-kube-api';
import { cgroupsAvailable, Cgroups, GroupStats, Limits, usage } from './cgroups';
import { benchConfig, LiveKitMode, POD_MODE_RTC, Profile } from './configs';

type Part = 'chat' | 'turn' | 'calls';

export interface Options {
  readonly quick: boolean;
  readonly profiles: Profile[];
  readonly parts: Part[];
  /** The calls part runs once per mode, in this order. */
  readonly livekitModes: LiveKitMode[];
  readonly root: string;
  readonly venvPython: string;
  readonly livekitLoad: string;
  /** Where the markdown report goes. */
  readonly out: string;
  /** Where every step's figures go, as JSON. */
  readonly json: string;
}

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
const mib = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;
const fmt = (x: number | null | undefined, digits = 0) => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits));

// ---------------------------------------------------------------------------
// Limits: each program's container in the rendered manifests
// ---------------------------------------------------------------------------

/** The workload a program stands for: its name, or the longest workload name it starts with (pod names). */
function workloadOf(ms: Manifest[]): (program: string) => Manifest | undefined {
  const workloads = ms.filter((m) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(m.kind));
  return (program) =>
    workloads.filter((m) => program === m.metadata.name || program.startsWith(`${m.metadata.name}-`)).sort((a, b) => b.metadata.name.length - a.metadata.name.length)[0];
}

/** The limits of the (first) container of the workload a program stands for. */
function limitsOf(ms: Manifest[]): (program: string) => Limits | undefined {
  const of = workloadOf(ms);
  return (program) => {
    const w = of(program);
    if (!w) return undefined;
    const limits = w.spec.template.spec.containers[0].resources?.limits ?? {};
    return {
      cpu: limits.cpu !== undefined ? cpuCores(limits.cpu) : undefined,
      memory: limits.memory !== undefined ? memoryBytes(String(limits.memory)) : undefined,
    };
  };
}

function describeLimits(l: Limits): string {
  return `${l.cpu ?? '∞'} CPU / ${l.memory !== undefined ? mib(l.memory) : '∞'}`;
}

/** The whole machine's busy share since `prev` (from /proc/stat). */
function machineCpu(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
const busyPercent = (a: ReturnType<typeof machineCpu>, b: ReturnType<typeof machineCpu>) => (100 * (b.busy - a.busy)) / Math.max(1, b.total - a.total);

interface Window {
  cg: Cgroups;
  before: Map<string, GroupStats>;
  cpu: ReturnType<typeof machineCpu>;
  t: number;
}
const openWindow = (cg: Cgroups): Window => ({ cg, before: cg.snapshot(), cpu: machineCpu(), t: Date.now() });
function closeWindow(w: Window) {
  const seconds = (Date.now() - w.t) / 1000;
  const groups = usage(w.before, w.cg.snapshot(), seconds);
  const machineBusyPercent = busyPercent(w.cpu, machineCpu());
  // What the machine did besides this benchmark's servers and clients (each in a group): other users' load.
  const ours = [...groups.values()].reduce((a, u) => a + u.cores, 0);
  const otherCores = Math.max(0, (machineBusyPercent / 100) * os.cpus().length - ours);
  return { seconds, groups, machineBusyPercent, otherCores };
}
type WindowResult = ReturnType<typeof closeWindow>;

/** Sum of the groups whose program name passes `pick`: cores used, worst throttling, largest memory peak. */
function sumGroups(cg: Cgroups, w: WindowResult, pick: (program: string) => boolean) {
  let cores = 0;
  let throttled = 0;
  let mem = 0;
  let oom = 0;
  let n = 0;
  for (const [g, u] of w.groups) {
    if (!pick(cg.groups.get(g)!.program)) continue;
    n++;
    cores += u.cores;
    throttled = Math.max(throttled, u.throttledPercent);
    mem = Math.max(mem, u.memoryMaxBytes);
    oom += u.oomKills;
  }
  return { processes: n, cores, throttledPercent: throttled, memoryMaxBytes: mem, oomKills: oom };
}

/** The UDP counters of /proc/net/snmp (this network namespace, or `netns`'s). */
function udpCounters(netns?: string): Record<string, number> {
  const text = netns ? execFileSync('ip', ['netns', 'exec', netns, 'cat', '/proc/net/snmp'], { encoding: 'utf8' }) : fs.readFileSync('/proc/net/snmp', 'utf8');
  const [names, values] = text
    .split('\n')
    .filter((l) => l.startsWith('Udp:'))
    .map((l) => l.split(/\s+/).slice(1));
  return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
}
const udpDrops = (a: Record<string, number>, b: Record<string, number>) => b.RcvbufErrors - a.RcvbufErrors + (b.SndbufErrors - a.SndbufErrors);

/** Dropped datagrams per UDP socket (the "drops" column of /proc/net/udp), by local port. */
function socketDrops(): Map<string, { port: number; drops: number }> {
  const out = new Map<string, { port: number; drops: number }>();
  for (const line of fs.readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    // local_address is HEXIP:HEXPORT; the inode (f[9]) tells sockets apart over time; drops is the last column.
    out.set(f[9], { port: parseInt(f[1].split(':')[1], 16), drops: Number(f[f.length - 1]) });
  }
  return out;
}

/** Lines of JSON from a child's stdout, each handed to `on`; resolves with its exit code. */
function jsonLines(child: ChildProcess, on: (o: any) => void): Promise<number | null> {
  const rl = readline.createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    if (!line.startsWith('{')) return;
    try {
      on(JSON.parse(line));
    } catch {
      // not ours
    }
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

// ---------------------------------------------------------------------------
// Chat
// ---------------------------------------------------------------------------

interface ChatUser {
  user_id: string;
  device_id: string;
  access_token: string;
  room_id: string;
}

async function registerUser(admin: string, secret: string, name: string, isAdmin: boolean): Promise<{ user_id: string; device_id: string; access_token: string }> {
  const nonce = (await httpJson(`${admin}/_synapse/admin/v1/register`)).body.nonce;
  const password = `pw-${name}-bench`;
  const mac = createHmac('sha1', secret)
    .update(`${nonce}\0${name}\0${password}\0${isAdmin ? 'admin' : 'notadmin'}`)
    .digest('hex');
  const r = await httpJson(`${admin}/_synapse/admin/v1/register`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ nonce, username: name, password, admin: isAdmin, mac }),
  });
  if (r.status !== 200) throw new Error(`register ${name}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function inBatches<T, R>(items: T[], size: number, f: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: size }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i], i);
      }
    }),
  );
  return out;
}

/** Users in rooms of `roomSize`, made through the client API of `base`; the admin API of `admin` registers them and lifts their message rate limit. */
async function chatPopulation(base: string, admin: string, secret: string, users: number, roomSize: number): Promise<{ users: ChatUser[]; rooms: Record<string, string[]> }> {
  const adminUser = await registerUser(admin, secret, 'bench-admin', true);
  const made = await inBatches(
    Array.from({ length: users }, (_, i) => `bench-u${i}`),
    6,
    (n) => registerUser(admin, secret, n, false),
  );
  const auth = (t: string) => ({ Authorization: `Bearer ${t}`, 'Content-Type': 'application/json' });
  // Synapse's default rc_message (0.2/s, burst 10 per user) would refuse the higher steps: each bench user is exempted
  // through the admin API (a per-user override), leaving the rendered config as it is.
  await inBatches(made, 6, async (u) => {
    const r = await httpJson(`${admin}/_synapse/admin/v1/users/${encodeURIComponent(u.user_id)}/override_ratelimit`, {
      method: 'POST',
      headers: auth(adminUser.access_token),
      body: JSON.stringify({ messages_per_second: 0, burst_count: 0 }),
    });
    if (r.status !== 200) throw new Error(`override_ratelimit: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  });
  const rooms: Record<string, string[]> = {};
  const out: ChatUser[] = [];
  for (let r = 0; r * roomSize < made.length; r++) {
    const members = made.slice(r * roomSize, (r + 1) * roomSize);
    const created = await httpJson(`${base}/_matrix/client/v3/createRoom`, {
      method: 'POST',
      headers: auth(members[0].access_token),
      body: JSON.stringify({ preset: 'public_chat', name: `bench ${r}` }),
    });
    if (created.status !== 200) throw new Error(`createRoom: HTTP ${created.status} ${JSON.stringify(created.body)}`);
    const roomId = created.body.room_id;
    await inBatches(members.slice(1), 4, async (m) => {
      const j = await httpJson(`${base}/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, { method: 'POST', headers: auth(m.access_token), body: '{}' });
      if (j.status !== 200) throw new Error(`join: HTTP ${j.status} ${JSON.stringify(j.body)}`);
    });
    rooms[roomId] = members.map((m) => m.user_id);
    for (const m of members) out.push({ user_id: m.user_id, device_id: m.device_id, access_token: m.access_token, room_id: roomId });
  }
  return { users: out, rooms };
}

async function chatBench(profile: Profile, o: Options, cg: Cgroups) {
  const { config, manifests } = rendered(benchConfig(profile));
  const secrets = await generatedSecrets(manifests);
  setLauncher(cg.launcher(limitsOf(manifests)));
  const stops: (() => Promise<void>)[] = [];
  const users = o.quick ? 40 : 100;
  const roomSize = 10;
  const rates = o.quick ? [5, 20] : [2, 5, 8, 12, 16, 20, 25, 30, 40, 50];
  try {
    const t0 = Date.now();
    const pg = await startPostgres(manifests, config, secrets);
    stops.push(() => pg.stop());
    let base: string;
    let admin: string;
    let processes = 1;
    if (profile === 'small') {
      const synapse = await startSynapse(manifests, config, secrets, pg);
      stops.push(() => synapse.stop());
      base = synapse.base;
      admin = synapse.base;
    } else {
      const redis = await startRedis(manifests, config, secrets);
      stops.push(() => redis.program.stop());
      const synapse = await startSynapseProcesses(manifests, config, secrets, pg, redis.port);
      stops.push(() => synapse.stop());
      const router = await startRouter(manifests, configMapFile(manifests, 'synapse-router', 'haproxy.cfg'), synapse.processes);
      stops.push(() => router.stop());
      base = `http://127.0.0.1:${router.port}`;
      admin = `http://127.0.0.1:${synapse.processes.find((p) => p.type === 'main')!.ports.http}`;
      processes = synapse.processes.length;
    }
    const cpuLimits = [...cg.groups.values()].reduce((a, g) => a + (g.limits.cpu ?? 0), 0);
    log(
      `chat ${profile}: ${processes} Synapse process(es) up in ${Math.round((Date.now() - t0) / 1000)} s (CPU limits add up to ${cpuLimits}); registering ${users} users in rooms of ${roomSize}`,
    );
    const population = await chatPopulation(base, admin, secrets.registrationSharedSecret, users, roomSize);
    const cfgFile = path.join(o.root, `chat-${profile}.json`);
    fs.writeFileSync(
      cfgFile,
      JSON.stringify({
        base,
        users: population.users,
        rooms: population.rooms,
        rates,
        step_seconds: o.quick ? 8 : 20,
        grace_seconds: 10,
        warmup_seconds: 3,
        stop_p95_ms: 1000,
      }),
    );
    // The client in a group of its own without limits, to count its CPU.
    const [cmd, argv] = cg.wrap(cg.make('chat-client', {}), o.venvPython, [path.join(__dirname, '..', 'scripts', 'capacity', 'chat_load.py'), cfgFile]);
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const steps: any[] = [];
    let w: Window | undefined;
    const code = await jsonLines(child, (e) => {
      if (e.event === 'ready') log(`chat ${profile}: ${e.users} users synced`);
      if (e.event === 'step-start') w = openWindow(cg);
      if (e.event === 'step-end' && w) {
        const win = closeWindow(w);
        const synapse = sumGroups(cg, win, (p) => p.startsWith('synapse') && p !== 'synapse-router');
        const postgres = sumGroups(cg, win, (p) => p === 'postgres');
        const router = sumGroups(cg, win, (p) => p === 'synapse-router');
        const redis = sumGroups(cg, win, (p) => p === 'redis');
        const client = sumGroups(cg, win, (p) => p === 'chat-client');
        // Per workload (each worker type, the main process, the router, PostgreSQL, Redis).
        const of = workloadOf(manifests);
        const byWorkload: Record<string, ReturnType<typeof sumGroups> & { requests: string; limits: string }> = {};
        for (const name of new Set([...win.groups.keys()].map((g) => of(cg.groups.get(g)!.program)?.metadata.name).filter((n): n is string => !!n))) {
          const res = find(manifests, of(name)!.kind, name).spec.template.spec.containers[0].resources;
          byWorkload[name] = {
            ...sumGroups(cg, win, (p) => of(p)?.metadata.name === name),
            requests: `${res.requests.cpu} / ${res.requests.memory}`,
            limits: `${res.limits.cpu} / ${res.limits.memory}`,
          };
        }
        const step = { ...e, synapse, postgres, router, redis, client, byWorkload, machineBusyPercent: win.machineBusyPercent, otherCores: win.otherCores };
        steps.push(step);
        log(
          `chat ${profile} ${e.rate}/s: accepted ${e.acceptedPerSecond}/s, p50/p95/p99 ${fmt(e.latencyMs.p50)}/${fmt(e.latencyMs.p95)}/${fmt(e.latencyMs.p99)} ms, ` +
            `Synapse ${fmt(synapse.cores, 2)} cores (throttled ${fmt(synapse.throttledPercent)}%), PostgreSQL ${fmt(postgres.cores, 2)}, client ${fmt(client.cores, 2)}, machine ${fmt(win.machineBusyPercent)}% busy, others ${fmt(win.otherCores, 2)} cores`,
        );
      }
    });
    if (code !== 0) throw new Error(`chat_load.py exited ${code}:\n${stderr.slice(-3000)}`);
    const shown = config.synapse.workers.enabled ? ['postgres', 'synapse', 'synapse-router', 'redis'] : ['postgres', 'synapse'];
    return { profile, users, roomSize, processes, steps, cpuLimits, limits: limitsSummary(manifests, shown, config) };
  } finally {
    setLauncher(undefined);
    for (const s of stops.reverse()) await s().catch(() => undefined);
  }
}

function limitsSummary(ms: Manifest[], names: string[], config: KudoConfig): Record<string, string> {
  const of = limitsOf(ms);
  const out: Record<string, string> = {};
  for (const n of names) {
    const l = of(n);
    if (l && ms.some((m) => m.metadata.name === n)) out[n] = describeLimits(l);
  }
  if (config.synapse.workers.enabled && names.includes('synapse')) {
    const w = ms.find((m) => m.kind === 'Deployment' && m.metadata.name === 'synapse-synchrotron');
    if (w) out['each worker'] = describeLimits(of('synapse-synchrotron')!);
  }
  return out;
}

// ---------------------------------------------------------------------------
// TURN
// ---------------------------------------------------------------------------

interface UclientResult {
  sessions: number;
  allocated: number;
  sent: number;
  received: number;
  lostPercent: number;
  rttMs: number | null;
  jitterMs: number | null;
  failed: number;
}

/** turnutils_uclient's summary lines, summed over its processes. */
function parseUclient(outputs: string[], sessionsPerProcess: number): UclientResult {
  let allocated = 0;
  let sent = 0;
  let received = 0;
  let failed = 0;
  const rtts: number[] = [];
  const jitters: number[] = [];
  for (const out of outputs) {
    allocated += [...out.matchAll(/Received relay addr/g)].length;
    const s = /start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/.exec(out);
    if (s) {
      sent += Number(s[1]);
      received += Number(s[2]);
    } else failed++;
    const rtt = /Average round trip delay ([\d.]+) ms/.exec(out);
    if (rtt) rtts.push(Number(rtt[1]));
    const j = /Average jitter ([\d.]+) ms/.exec(out);
    if (j) jitters.push(Number(j[1]));
  }
  const avg = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return {
    sessions: outputs.length * sessionsPerProcess,
    allocated,
    sent,
    received,
    failed,
    lostPercent: sent > 0 ? (100 * Math.max(0, sent - received)) / sent : 100,
    rttMs: avg(rtts),
    jitterMs: avg(jitters),
  };
}

/** One turnutils_uclient process of `perProcess` sessions through coturn to an echo peer; its output when it ends. */
function uclient(
  run: (command: string, args: string[]) => ChildProcessByStdio<null, Readable, Readable>,
  o: { perProcess: number; messages: number; peerPort: number; secret: string; user: string; port: number },
): Promise<string> {
  return new Promise<string>((resolve) => {
    // -c: no RTCP allocation; -m: sessions; -n: messages per session (-z 20 ms apart); -l: bytes each; -W: REST credentials from the shared secret.
    const c = run(path.join(TURNUTILS, 'turnutils_uclient'), [
      '-v',
      '-c',
      '-m',
      String(o.perProcess),
      '-n',
      String(o.messages),
      '-l',
      '1000',
      '-z',
      '20',
      '-e',
      '127.0.0.1',
      '-r',
      String(o.peerPort),
      '-W',
      o.secret,
      '-u',
      o.user,
      '-p',
      String(o.port),
      '127.0.0.1',
    ]);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), o.messages * 20 + 60_000);
    c.on('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

async function turnBench(profile: Profile, o: Options, cg: Cgroups) {
  const { config, manifests } = rendered(benchConfig(profile));
  const secrets = await generatedSecrets(manifests);
  const conf = configMapFile(manifests, 'coturn-config', 'turnserver.conf');
  const relaySize = Number(option(conf, 'max-port')) - Number(option(conf, 'min-port')) + 1;
  const quota = Number(option(conf, 'total-quota'));
  const userQuota = Number(option(conf, 'user-quota'));
  // The peer is on this machine: a benchmark-only addition lets coturn relay to loopback (the rendered config refuses
  // every private and loopback peer, as it must in a cluster). A fresh coturn for each step: uclient does not release
  // its allocations, which would count against total-quota until their lifetime (10 minutes) ends.
  const startTurn = async () => {
    setLauncher(cg.launcher(limitsOf(manifests)));
    try {
      return await startCoturn(manifests, config, secrets, relaySize, conf, ['allow-loopback-peers', 'allowed-peer-ip=127.0.0.1']);
    } finally {
      setLauncher(undefined);
    }
  };
  let turn = await startTurn();
  const peers: ChildProcess[] = [];
  const peerPorts: number[] = [];
  try {
    // The clients in a group of their own without limits, to count their CPU.
    const clients = cg.make('turn-clients', {});
    const run = (command: string, args: string[]) => {
      const [c, a] = cg.wrap(clients, command, args);
      return spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    };
    // Echo peers (coturn's turnutils_peer), one socket each: enough of them that no peer's socket buffer overflows
    // (with 4, the peers' sockets dropped datagrams at 600 clients while coturn used a fifth of a core).
    for (let i = 0; i < 32; i++) {
      const port = await freePort();
      peerPorts.push(port);
      peers.push(run(path.join(TURNUTILS, 'turnutils_peer'), ['-L', '127.0.0.1', '-p', String(port)]));
    }
    await sleep(500);
    // Each uclient client holds two relay allocations (one sends to the peer, the echo comes back through the other),
    // so a process of userQuota / 2 clients stays within the user quota (one REST user name per process).
    const perProcess = Math.max(1, Math.floor(userQuota / 2));
    // Up to the quota: each client holds two relays.
    const ladder = (o.quick ? [48, 198] : [48, 150, 300, 450, 600, 900, 1200, 1600, 2000]).filter((s) => 2 * s <= quota);
    const messages = o.quick ? 250 : 400; // one every 20 ms: 5 or 8 s per session
    const steps: any[] = [];
    for (const [index, sessions] of ladder.entries()) {
      if (index > 0) {
        await turn.program.stop();
        turn = await startTurn();
      }
      const procs = Math.ceil(sessions / perProcess);
      const w = openWindow(cg);
      const udp0 = udpCounters();
      // Which sockets dropped: sampled every second (a socket's counter goes when it closes), the largest count kept.
      const drops = new Map<string, { port: number; drops: number }>();
      const baseline = socketDrops(); // the peers' sockets live from step to step
      const sample = () => {
        for (const [inode, d] of socketDrops()) if (d.drops > (drops.get(inode)?.drops ?? 0)) drops.set(inode, d);
      };
      const sampler = setInterval(sample, 1000);
      const outputs = await Promise.all(
        Array.from({ length: procs }, (_, i) =>
          uclient(run, { perProcess, messages, peerPort: peerPorts[i % peerPorts.length], secret: turn.secret, user: `bench-${sessions}-${i}`, port: turn.port }),
        ),
      );
      clearInterval(sampler);
      const win = closeWindow(w);
      // Datagrams the kernel dropped for a full socket buffer (coturn's, the peers' or the clients': all on this namespace).
      const udpBufferDrops = udpDrops(udp0, udpCounters());
      const dropsBy = { coturnRelay: 0, coturnListener: 0, peers: 0, clients: 0 };
      for (const [inode, d0] of drops) {
        const d = { port: d0.port, drops: d0.drops - (baseline.get(inode)?.drops ?? 0) };
        if (d.port >= turn.relayPorts[0] && d.port <= turn.relayPorts[1]) dropsBy.coturnRelay += d.drops;
        else if (d.port === turn.port || d.port === turn.tlsPort) dropsBy.coturnListener += d.drops;
        else if (peerPorts.includes(d.port)) dropsBy.peers += d.drops;
        else dropsBy.clients += d.drops;
      }
      const coturn = sumGroups(cg, win, (p) => p === 'coturn');
      const r = parseUclient(outputs, perProcess);
      // Each message crosses coturn twice (to the peer and back), each crossing one packet in and one out.
      const relayedPerCpuSecond = coturn.cores > 0 ? (2 * (r.sent + r.received)) / (coturn.cores * win.seconds) : NaN;
      const client = sumGroups(cg, win, (p) => p === 'turn-clients');
      const step = {
        ...r,
        sessions,
        mbpsEachWay: (sessions * 1000 * 8 * 50) / 1e6,
        coturn,
        client,
        relayedPerCpuSecond,
        udpBufferDrops,
        dropsBy,
        machineBusyPercent: win.machineBusyPercent,
        otherCores: win.otherCores,
        seconds: win.seconds,
      };
      steps.push(step);
      log(
        `turn ${profile} ${sessions} sessions: ${r.allocated} relays, lost ${fmt(r.lostPercent, 2)}% (UDP buffer drops ${udpBufferDrops}: ${JSON.stringify(dropsBy)}), rtt ${fmt(r.rttMs, 1)} ms, coturn ${fmt(coturn.cores, 2)} cores ` +
          `(throttled ${fmt(coturn.throttledPercent)}%), ${mib(coturn.memoryMaxBytes)}, machine ${fmt(win.machineBusyPercent)}%`,
      );
      const short = outputs.find((out) => [...out.matchAll(/Received relay addr/g)].length < 2 * perProcess);
      if (short !== undefined)
        log(
          `a turnutils_uclient got fewer relays than it asked for; its error lines:\n${short
            .split('\n')
            .filter((l) => /error|ERROR|cannot|Cannot/.test(l))
            .slice(0, 20)
            .join('\n')}`,
        );
      if (fs.existsSync(path.join(o.root, 'keep-uclient'))) fs.writeFileSync(path.join(o.root, `uclient-${profile}-${sessions}.log`), outputs.join('\n----\n'));
      if (r.lostPercent > 1 || r.allocated < 0.98 * 2 * sessions) break;
    }
    return { profile, relaySize, quota, userQuota, steps, limits: limitsSummary(manifests, ['coturn'], config), version: TURN_VERSION, prometheus: HAS_PROMETHEUS };
  } finally {
    for (const p of peers) p.kill('SIGTERM');
    await turn.program.stop();
  }
}

// ---------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------

async function scrape(url: string): Promise<Record<string, number>> {
  const text = (await httpJson(url)).body as string;
  const sums: Record<string, number> = {};
  for (const line of String(text).split('\n')) {
    const m = /^(livekit_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (!m) continue;
    const labels = m[2] ?? '';
    const dir = /direction="(\w+)"/.exec(labels)?.[1];
    const key = dir ? `${m[1]}:${dir}` : m[1];
    sums[key] = (sums[key] ?? 0) + Number(m[3]);
  }
  return sums;
}

/** A calls step held: no join errors, loss ≤ 1%, LiveKit throttled in ≤ 5% of periods, ≥ 95% of the tracks received. */
const stepHeld = (s: any) => s.client.joinErrors === 0 && s.client.lossPercent <= 1 && s.livekit.throttledPercent <= 5 && s.client.receivingTracks >= 0.95 * s.forwardedTracks;

interface CallStep {
  size: number;
  rooms: number;
  videoPublishers: number;
  audioPublishers: number;
}

/** The steps of the calls benchmark: rooms of 2, of 8 and of 50, each ladder until a step fails. */
function callLadders(profile: Profile, o: Options): CallStep[][] {
  return o.quick
    ? [
        [
          { size: 2, rooms: 2, videoPublishers: 2, audioPublishers: 2 },
          { size: 2, rooms: 8, videoPublishers: 2, audioPublishers: 2 },
        ],
        [{ size: 8, rooms: 1, videoPublishers: 8, audioPublishers: 8 }],
        [{ size: 50, rooms: 1, videoPublishers: 2, audioPublishers: 2 }],
      ]
    : profile === 'small' || o.profiles.length === 1
      ? [
          [4, 16, 32, 64, 100].map((rooms) => ({ size: 2, rooms, videoPublishers: 2, audioPublishers: 2 })),
          [1, 2, 4, 6, 8].map((rooms) => ({ size: 8, rooms, videoPublishers: 8, audioPublishers: 8 })),
          [2, 5, 10, 15, 20].map((p) => ({ size: 50, rooms: 1, videoPublishers: p, audioPublishers: p })),
        ]
      : [
          // After small's full ladders: its LiveKit quota (2 CPUs) is already the whole of a 2-core machine, so production's
          // (8) cannot change the outcome there; the top steps again, to show it.
          [64, 100].map((rooms) => ({ size: 2, rooms, videoPublishers: 2, audioPublishers: 2 })),
          [6, 8].map((rooms) => ({ size: 8, rooms, videoPublishers: 8, audioPublishers: 8 })),
          [10, 15].map((p) => ({ size: 50, rooms: 1, videoPublishers: p, audioPublishers: p })),
        ];
}

/** The load client's arguments for one step. */
function loadClientArgs(s: CallStep, c: { url: string; key: string; secret: string; quick: boolean; prefix: string }): string[] {
  return [
    '-url',
    c.url,
    '-key',
    c.key,
    '-secret',
    c.secret,
    '-rooms',
    String(s.rooms),
    '-size',
    String(s.size),
    '-video-publishers',
    String(s.videoPublishers),
    '-audio-publishers',
    String(s.audioPublishers),
    '-duration',
    c.quick ? '8s' : '12s',
    '-warmup',
    '5s',
    '-prefix',
    c.prefix,
  ];
}

const MODE_NAMES: Record<LiveKitMode, string> = { host: 'host network', pod: 'NodePort (DNAT)' };

/**
 * LiveKit and its Redis for the calls benchmark, as `mode` runs them: host, LiveKit and Redis share a namespace that
 * stands for the node's network; pod, Redis on the node and LiveKit in its pod's namespace behind it, reached through
 * the node's DNAT of Service livekit-rtc-0 (and of the API and metrics ports, which stand for the Ingress and the
 * Prometheus scrape). Each thing started is added to `stops`.
 */
async function startCallsLiveKit(
  profile: Profile,
  mode: LiveKitMode,
  r: { manifests: Manifest[]; config: KudoConfig; secrets: Awaited<ReturnType<typeof generatedSecrets>> },
  network: PodNetwork,
  api: FakeKubeApi,
  stops: (() => void | Promise<void>)[],
) {
  const { manifests, config, secrets } = r;
  const renderedCfg: any = yaml.load(configMapFile(manifests, 'livekit-config', 'config.yaml'));
  const pod = mode === 'pod' ? new PodBehindNode(network, 0) : undefined;
  if (pod) stops.push(() => pod.remove());
  const redis = await startRedis(manifests, config, secrets, network);
  stops.push(() => redis.program.stop());
  const apiUrl = await api.start();
  // The Node's ExternalIP is the (node) namespace's address: LiveKit advertises it, and the clients on this host reach it.
  api.putNode('kudo-bench-node', [
    { type: 'InternalIP', address: network.podAddress },
    { type: 'ExternalIP', address: network.podAddress },
  ]);
  const run = pod
    ? await prepareLiveKitInPod(r, pod, { redis, api, apiUrl, nodeName: 'kudo-bench-node' }, 'livekit-0')
    : await prepareLiveKit(manifests, config, secrets, network, redis.port, apiUrl, 'kudo-bench-node', (cfg) => {
        // LiveKit has the namespace to itself: the rendered UDP range stays (only the listening ports move).
        cfg.rtc.port_range_start = renderedCfg.rtc.port_range_start;
        cfg.rtc.port_range_end = renderedCfg.rtc.port_range_end;
      });
  const service = pod ? find(manifests, 'Service', 'livekit-rtc-0') : undefined;
  if (pod) {
    execFileSync('ip', ['netns', 'exec', network.name, 'nft', '-f', '-'], { input: serviceRules(network.podAddress, [[service, pod.podAddress]], run.port) });
    execFileSync('ip', ['netns', 'exec', network.name, 'nft', '-f', '-'], {
      input: [
        'table ip kudo_bench {',
        '  chain prerouting {',
        '    type nat hook prerouting priority dstnat; policy accept;',
        `    ip daddr ${network.podAddress} tcp dport ${run.prometheusPort} dnat to ${pod.podAddress}:${run.prometheusPort} comment "the metrics scrape"`,
        '  }',
        '}',
        '',
      ].join('\n'),
    });
  }
  const livekit = startLiveKit(run);
  stops.push(async () => {
    // A first SIGTERM drains rooms: the clients have left; a second ends it.
    await livekit.stop('SIGTERM', 10_000);
  });
  const url = `http://${network.podAddress}:${run.port}`;
  await livekit.waitFor('GET / 200', async () => (await httpJson(`${url}/`).catch(() => ({ status: 0 }))).status === 200, 60_000);
  setLauncher(undefined);
  const metricsUrl = `http://${network.podAddress}:${run.prometheusPort}/metrics`;
  // Where LiveKit's sockets are, for their buffer drops.
  const livekitNs = pod ? pod.name : network.name;
  const media = service
    ? `UDP mux port ${service.spec.ports[0].nodePort} and TCP ${service.spec.ports[1].nodePort}, the NodePorts of Service livekit-rtc-0, through the node's DNAT to replica 0`
    : `UDP ${run.config.rtc.port_range_start}-${run.config.rtc.port_range_end} on the node's network`;
  log(`calls ${profile} (${MODE_NAMES[mode]}): LiveKit up at ${url}, ${media}`);

  return { run, livekit, url, metricsUrl, livekitNs, media };
}

async function callsBench(profile: Profile, mode: LiveKitMode, o: Options, cg: Cgroups) {
  const { config, manifests } = rendered(benchConfig(profile, mode));
  const secrets = await generatedSecrets(manifests);
  setLauncher(cg.launcher(limitsOf(manifests)));
  const network = new PodNetwork();
  const api = new FakeKubeApi();
  const stops: (() => void | Promise<void>)[] = [() => network.remove(), () => api.stop()];
  try {
    const { run, livekit, metricsUrl, livekitNs, media } = await startCallsLiveKit(profile, mode, { manifests, config, secrets }, network, api, stops);
    const ladders = callLadders(profile, o);
    const steps: any[] = [];
    let n = 0;
    let livekitKilled: string | undefined;
    ladders: for (const ladder of ladders) {
      for (const s of ladder) {
        const args = loadClientArgs(s, {
          url: `ws://${network.podAddress}:${run.port}`,
          key: secrets.livekitApiKey,
          secret: secrets.livekitApiSecret,
          quick: o.quick,
          prefix: `bench${n++}`,
        });
        const [cmd, argv] = cg.wrap(cg.make('calls-client', {}), o.livekitLoad, args);
        const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
        let w: Window | undefined;
        let m0: Promise<Record<string, number>> = Promise.resolve({});
        let result: any;
        let win: WindowResult | undefined;
        let m1: Promise<Record<string, number>> = Promise.resolve({});
        let udp0: Record<string, number>[] = [];
        let udp1: Record<string, number>[] = [];
        const done = jsonLines(child, (e) => {
          if (e.event === 'window-start') {
            w = openWindow(cg);
            udp0 = [udpCounters(), udpCounters(livekitNs)];
            m0 = scrape(metricsUrl).catch(() => ({}));
          }
          if (e.event === 'window-end') {
            result = e;
            if (w) win = closeWindow(w);
            udp1 = [udpCounters(), udpCounters(livekitNs)];
            m1 = scrape(metricsUrl).catch(() => ({}));
          }
        });
        const killer = setTimeout(() => child.kill('SIGKILL'), 240_000);
        const code = await done;
        clearTimeout(killer);
        await sleep(300);
        if (!result || !win) {
          log(`calls ${profile} (${MODE_NAMES[mode]}): the load client failed (exit ${code}):\n${stderr}`);
          break;
        }
        const lk = sumGroups(cg, win, (p) => p === 'livekit');
        const rd = sumGroups(cg, win, (p) => p === 'redis-node');
        const [before, after] = [await m0, await m1];
        // LiveKit's own counters, a cross-check (it updates them in batches, so short windows are rough).
        const delta = (k: string) => ((after[k] ?? 0) - (before[k] ?? 0)) / win!.seconds;
        const forwardedTracks = s.rooms * (s.videoPublishers + s.audioPublishers) * (s.size - 1);
        const step = {
          ...s,
          participants: s.rooms * s.size,
          forwardedTracks,
          client: result,
          livekit: lk,
          redis: rd,
          machineBusyPercent: win.machineBusyPercent,
          otherCores: win.otherCores,
          clientCores: sumGroups(cg, win, (p) => p.startsWith('calls-client')).cores,
          // Datagrams dropped for full socket buffers: the clients' (this namespace) and LiveKit's (its pod network).
          udpBufferDrops: { clients: udpDrops(udp0[0], udp1[0]), livekit: udpDrops(udp0[1], udp1[1]) },
          livekitPacketsInPerSecond: delta('livekit_packet_total:incoming'),
          livekitPacketsOutPerSecond: delta('livekit_packet_total:outgoing'),
          livekitNacksPerSecond: delta('livekit_nack_total:incoming') + delta('livekit_nack_total:outgoing'),
        };
        steps.push(step);
        log(
          `calls ${profile} (${MODE_NAMES[mode]}) rooms of ${s.size} x${s.rooms} (${s.videoPublishers} video): joined ${result.joined}/${s.rooms * s.size}, ` +
            `receiving ${result.receivingTracks}/${forwardedTracks} tracks, ${fmt(result.receivedPacketsPerSecond)} pkt/s received, loss ${fmt(result.lossPercent, 2)}%, ` +
            `UDP buffer drops ${step.udpBufferDrops.clients}+${step.udpBufferDrops.livekit}, audio p95 ${fmt(result.audioLatencyMs.p95, 1)} ms; LiveKit ${fmt(lk.cores, 2)} cores (throttled ${fmt(lk.throttledPercent)}%), out ${fmt(step.livekitPacketsOutPerSecond)} pkt/s; machine ${fmt(win.machineBusyPercent)}%`,
        );
        await sleep(2000);
        if (!livekit.running || lk.oomKills > 0) {
          // What the kubelet would see as a restart: every call on the node dropped. Later steps would measure a new process.
          livekitKilled = `LiveKit ${lk.oomKills > 0 ? 'was killed by the kernel at its memory limit (OOM)' : `exited`} during ${s.rooms} room(s) of ${s.size}`;
          log(`calls ${profile} (${MODE_NAMES[mode]}): ${livekitKilled}`);
          break ladders;
        }
        if (result.joinErrors > 0 || result.lossPercent > 1 || lk.throttledPercent > 5 || result.receivingTracks < forwardedTracks * 0.95) break;
      }
    }
    return {
      profile,
      mode,
      steps,
      livekitKilled,
      limits: limitsSummary(manifests, ['livekit', 'redis'], config),
      media,
    };
  } finally {
    setLauncher(undefined);
    for (const s of stops.reverse())
      await Promise.resolve()
        .then(s)
        .catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/** LiveKit's own figures, for comparison per core (its docs, "Benchmarking"). */
const LIVEKIT_BENCHMARK = {
  url: 'https://docs.livekit.io/transport/self-hosting/benchmark.md',
  rows: [
    { name: 'large audio rooms', pubs: 10, subs: 3000, pktOut: 959_156, cpu: 80 },
    { name: 'large meeting (720p video)', pubs: 150, subs: 150, pktOut: 762_749, cpu: 85 },
    { name: 'livestreaming (720p video)', pubs: 1, subs: 3000, pktOut: 560_962, cpu: 92 },
  ],
};

function machine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const mem = Number(/MemTotal:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
  return `${cpu}, ${os.cpus().length} cores, ${(mem / 2 ** 30).toFixed(1)} GiB RAM, Linux ${os.release()}`;
}

const loadavg = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

/** The chat section of one profile. */
function reportChat(L: string[], c: any): void {
  L.push(`## Chat, profile ${c.profile}: ${c.processes} Synapse process(es), ${c.users} users in rooms of ${c.roomSize} (matrix-nio)`, '');
  L.push(
    `Limits: ${Object.entries<string>(c.limits)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}: ${c.cpuLimits} CPUs in all, on a machine of ${os.cpus().length} cores` +
      `${c.cpuLimits > os.cpus().length ? ' (so the quotas cannot all be reached; what binds is the machine)' : ''}.`,
    '',
  );
  L.push(
    '| offered msg/s | accepted msg/s | send→sync p50 / p95 / p99 ms | missing | Synapse cores (most throttled process) | PostgreSQL cores | client cores | machine busy (outside the groups) |',
  );
  L.push('|---|---|---|---|---|---|---|---|');
  for (const s of c.steps) {
    L.push(
      `| ${s.rate} | ${s.acceptedPerSecond} | ${fmt(s.latencyMs.p50)} / ${s.latencyMs.p95 === null ? '> grace' : fmt(s.latencyMs.p95)} / ${s.latencyMs.p99 === null ? '> grace' : fmt(s.latencyMs.p99)} ` +
        `| ${s.missingDeliveries}/${s.deliveries} | ${fmt(s.synapse.cores, 2)} (${fmt(s.synapse.throttledPercent)}%) | ${fmt(s.postgres.cores, 2)} | ${fmt(s.client.cores, 2)} ` +
        `| ${fmt(s.machineBusyPercent)}% (${fmt(s.otherCores, 2)}) |`,
    );
  }
  const over = c.steps.find((s: any) => s.latencyMs.p95 === null || s.latencyMs.p95 > 1000);
  const ok = [...c.steps].reverse().find((s: any) => s.latencyMs.p95 !== null && s.latencyMs.p95 <= 1000);
  const perCore = ok
    ? ` That is ${fmt(ok.acceptedPerSecond / ok.synapse.cores, 1)} msg/s per core used by Synapse, ` +
      `${fmt(ok.acceptedPerSecond / (ok.synapse.cores + ok.postgres.cores + ok.router.cores + ok.redis.cores), 1)} per core used by all its server processes.`
    : '';
  L.push(
    '',
    ok ? `Sustained with p95 ≤ 1 s: ${ok.acceptedPerSecond} msg/s (${ok.rate} offered).${perCore} ` : 'No step kept p95 ≤ 1 s. ',
    over ? `p95 passed 1 s at ${over.rate} msg/s offered.` : 'p95 stayed under 1 s at every step run.',
    '',
  );
  for (const s of [ok, over].filter((x) => x !== undefined)) {
    L.push(`Per workload at ${s.rate} msg/s offered:`, '');
    L.push('| workload | processes | cores used | most throttled process | memory peak (largest process) | requests | limits |');
    L.push('|---|---|---|---|---|---|---|');
    for (const [name, u] of Object.entries<any>(s.byWorkload).sort(([, a], [, b]) => b.cores - a.cores)) {
      L.push(`| ${name} | ${u.processes} | ${fmt(u.cores, 2)} | ${fmt(u.throttledPercent)}% | ${mib(u.memoryMaxBytes)} | ${u.requests} | ${u.limits} |`);
    }
    L.push('');
  }
}

/** The TURN section of one profile. */
function reportTurn(L: string[], t: any): void {
  L.push(`## TURN, profile ${t.profile}: coturn ${t.version} (turnutils_uclient → coturn → turnutils_peer, 1000-byte packets every 20 ms, echoed)`, '');
  L.push(
    `Limits: ${Object.entries<string>(t.limits)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}; relay ports ${t.relaySize}, total-quota ${t.quota}, user-quota ${t.userQuota}.`,
    '',
  );
  L.push(
    '| clients | relays allocated | Mbit/s each way | lost (UDP buffer drops: coturn relay / coturn listener / peers / clients) | RTT ms | coturn cores (throttled) | packets in+out per coturn CPU-second | coturn memory peak | client cores | machine busy (outside the groups) |',
  );
  L.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const s of t.steps) {
    L.push(
      `| ${s.sessions} | ${s.allocated} | ${fmt(s.mbpsEachWay)} | ${fmt(s.lostPercent, 2)}% (${s.dropsBy.coturnRelay} / ${s.dropsBy.coturnListener} / ${s.dropsBy.peers} / ${s.dropsBy.clients}) | ${fmt(s.rttMs, 1)} | ${fmt(s.coturn.cores, 2)} (${fmt(s.coturn.throttledPercent)}%) | ${fmt(2 * s.relayedPerCpuSecond)} | ${mib(s.coturn.memoryMaxBytes)} | ${fmt(s.client.cores, 2)} | ${fmt(s.machineBusyPercent)}% (${fmt(s.otherCores, 2)}) |`,
    );
  }
  L.push('');
}

/** The calls section of one profile: its modes side by side. */
function reportCalls(L: string[], profile: string, byMode: any[]): void {
  L.push(`## Calls, profile ${profile}: LiveKit with its Redis (Go SDK participants, real RTP: Opus 32 kbit/s + VP8 500 kbit/s 30 fps)`, '');
  for (const c of byMode) {
    L.push(
      `- ${MODE_NAMES[c.mode as LiveKitMode]}: ${c.media}. Limits: ${Object.entries<string>(c.limits)
        .map(([k, v]) => `${k} ${v}`)
        .join('; ')}.`,
    );
  }
  L.push('');
  L.push(
    '| LiveKit | room size × rooms | publishers/room | participants | forwarded tracks (receiving) | pkt/s received (LiveKit counter) | loss (UDP buffer drops: clients + LiveKit) | audio latency p95 ms | LiveKit cores (throttled) | pkt/s forwarded per LiveKit core | LiveKit memory peak | client cores | machine busy (outside the groups) |',
  );
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const c of byMode) {
    for (const s of c.steps) {
      const perCore = s.livekit.cores > 0 ? s.client.receivedPacketsPerSecond / s.livekit.cores : NaN;
      L.push(
        `| ${MODE_NAMES[c.mode as LiveKitMode]} | ${s.size} × ${s.rooms} | ${s.videoPublishers} | ${s.participants} | ${s.forwardedTracks} (${s.client.receivingTracks}) | ${fmt(s.client.receivedPacketsPerSecond)} (${fmt(s.livekitPacketsOutPerSecond)}) | ${fmt(s.client.lossPercent, 2)}% (${s.udpBufferDrops.clients} + ${s.udpBufferDrops.livekit}) ` +
          `| ${fmt(s.client.audioLatencyMs.p95, 1)} | ${fmt(s.livekit.cores, 2)} (${fmt(s.livekit.throttledPercent)}%) | ${fmt(perCore)} | ${mib(s.livekit.memoryMaxBytes)} | ${fmt(s.clientCores, 2)} | ${fmt(s.machineBusyPercent)}% (${fmt(s.otherCores, 2)}) |`,
      );
    }
  }
  L.push('');
  for (const c of byMode) {
    const name = MODE_NAMES[c.mode as LiveKitMode];
    const calls: string[] = [];
    for (const size of [...new Set<number>(c.steps.map((s: any) => s.size))]) {
      const ok = c.steps.filter((s: any) => s.size === size && stepHeld(s));
      const best = ok[ok.length - 1];
      const bad = c.steps.find((s: any) => s.size === size && !ok.includes(s));
      calls.push(
        `- rooms of ${size}: ${
          best
            ? `${best.participants} participants, ${best.forwardedTracks} forwarded tracks, ${fmt(best.client.receivedPacketsPerSecond)} packets/s ` +
              `with ${fmt(best.client.lossPercent, 2)}% loss and no throttling (LiveKit ${fmt(best.livekit.cores, 2)} cores, the clients ${fmt(best.clientCores, 2)}, machine ${fmt(best.machineBusyPercent)}% busy)`
            : 'no step without loss'
        }` +
          `${
            bad
              ? `; the next step (${bad.participants} participants, ${bad.forwardedTracks} tracks) saw ${fmt(bad.client.lossPercent, 2)}% loss, LiveKit throttled ${fmt(bad.livekit.throttledPercent)}%, ` +
                `${bad.client.receivingTracks}/${bad.forwardedTracks} tracks receiving, machine ${fmt(bad.machineBusyPercent)}% busy`
              : '; the largest step run'
          }.`,
      );
    }
    if (c.livekitKilled) L.push(`**${name}: ${c.livekitKilled}**; the steps after it were not run.`, '');
    L.push(`${name}, before loss (> 1%) or throttling (> 5% of periods):`, '', ...calls, '');
    const perCore = c.steps.filter((s: any) => s.livekit.cores > 0.2).map((s: any) => s.client.receivedPacketsPerSecond / s.livekit.cores);
    if (perCore.length) L.push(`${name}: LiveKit forwarded ${fmt(Math.min(...perCore))}–${fmt(Math.max(...perCore))} packets/s per core it used (steps above 0.2 cores).`, '');
  }
  // What the NodePort path costs: the steps both modes ran, pod against host.
  const [host, pod] = (['host', 'pod'] as const).map((m) => byMode.find((c) => c.mode === m));
  if (host && pod) {
    const same = (a: any, b: any) => a.size === b.size && a.rooms === b.rooms && a.videoPublishers === b.videoPublishers && a.audioPublishers === b.audioPublishers;
    const pairs = host.steps.flatMap((h: any) => pod.steps.filter((p: any) => same(h, p)).map((p: any) => [h, p]));
    if (pairs.length) {
      const perCore = (x: any) => (x.livekit.cores > 0 ? x.client.receivedPacketsPerSecond / x.livekit.cores : NaN);
      L.push(
        `What the NodePort path costs, per step both modes ran (${MODE_NAMES.host} / ${MODE_NAMES.pod}). The node's forwarding and translation is kernel work ` +
          `that cgroups need not charge to LiveKit's group: the machine's busy share shows it too, when nothing else runs.`,
        '',
        '| room size × rooms | publishers/room | loss | audio latency p95 ms | LiveKit cores | pkt/s forwarded per LiveKit core | client cores | machine busy |',
        '|---|---|---|---|---|---|---|---|',
        ...pairs.map(
          ([h, p]: any[]) =>
            `| ${h.size} × ${h.rooms} | ${h.videoPublishers} | ${fmt(h.client.lossPercent, 2)}% / ${fmt(p.client.lossPercent, 2)}% | ${fmt(h.client.audioLatencyMs.p95, 1)} / ${fmt(p.client.audioLatencyMs.p95, 1)} ` +
            `| ${fmt(h.livekit.cores, 2)} / ${fmt(p.livekit.cores, 2)} | ${fmt(perCore(h))} / ${fmt(perCore(p))} | ${fmt(h.clientCores, 2)} / ${fmt(p.clientCores, 2)} | ${fmt(h.machineBusyPercent)}% / ${fmt(p.machineBusyPercent)}% |`,
        ),
        '',
      );
    }
  }
  L.push(
    `LiveKit's published benchmark (${LIVEKIT_BENCHMARK.url}; c2-standard-16, 16 vCPUs): ${LIVEKIT_BENCHMARK.rows
      .map(
        (r) => `${r.name} ${r.pubs} pubs / ${r.subs} subs, ` + `${r.pktOut.toLocaleString('en')} packets/s out at ${r.cpu}% CPU = ${fmt(r.pktOut / ((16 * r.cpu) / 100))} per core`,
      )
      .join('; ')}.`,
    '',
  );
}

function report(o: Options, started: Date, uptimeBefore: string, results: { chat: any[]; turn: any[]; calls: any[] }): string {
  const L: string[] = [];
  L.push(`# Capacity per profile (npm run bench:capacity${o.quick ? ' -- --quick' : ''})`, '');
  L.push(`Run ${started.toISOString()} on ${machine()}; load average before: ${uptimeBefore}, after: ${loadavg()}.`);
  L.push(
    `Each server process runs in cgroups holding its container's CPU limit (cfs quota) and memory limit; the load clients run beside them, unconfined, on the same ${os.cpus().length} cores.`,
    '',
  );
  if (results.calls.length) {
    L.push(
      `Calls run LiveKit in each mode of --livekit-modes (${o.livekitModes.join(',')}): ${MODE_NAMES.host} is livekit.hostNetwork true, LiveKit and Redis in a network namespace that stands for the node; ` +
        `${MODE_NAMES.pod} is livekit.hostNetwork false (rtc.udpPort ${POD_MODE_RTC.udpPort}, rtc.tcpPort ${POD_MODE_RTC.tcpPort}), the StatefulSet's replica 0 in a namespace of its own behind that node, ` +
        `whose nftables DNAT (no SNAT, as for externalTrafficPolicy: Local) is built from the rendered Service livekit-rtc-0; the clients and limits are the same.`,
      '',
    );
  }
  for (const c of results.chat) reportChat(L, c);
  for (const t of results.turn) reportTurn(L, t);
  // Calls: one section per profile, the modes side by side (one table, one row set per mode).
  for (const profile of [...new Set<string>(results.calls.map((c) => c.profile))]) {
    reportCalls(
      L,
      profile,
      results.calls.filter((c) => c.profile === profile),
    );
  }
  return L.join('\n');
}

export async function main(o: Options): Promise<void> {
  const problem = cgroupsAvailable();
  if (problem) throw new Error(problem);
  programs();
  const started = new Date();
  const uptimeBefore = loadavg();
  process.env.KUDO_E2E_TMP = o.root;
  const cg = new Cgroups();
  const results = { chat: [] as any[], turn: [] as any[], calls: [] as any[] };
  // Whatever happens, no empty groups stay behind.
  process.once('exit', () => cg.removeAll());
  const cleanup = () => {
    setLauncher(undefined);
    const left = cg.removeAll();
    if (left.length) log(`cgroups left behind (a process still in them): ${left.join(', ')}`);
  };
  try {
    for (const part of o.parts) {
      for (const profile of o.profiles) {
        const t = Date.now();
        if (part === 'chat') results.chat.push(await chatBench(profile, o, cg));
        if (part === 'turn') results.turn.push(await turnBench(profile, o, cg));
        if (part === 'calls') {
          for (const mode of o.livekitModes) {
            const tm = Date.now();
            results.calls.push(await callsBench(profile, mode, o, cg));
            cg.remove();
            log(`calls ${profile} (${MODE_NAMES[mode]}): ${Math.round((Date.now() - tm) / 1000)} s`);
          }
        }
        cg.remove();
        log(`${part} ${profile}: ${Math.round((Date.now() - t) / 1000)} s`);
      }
    }
  } finally {
    cleanup();
  }
  const text = report(o, started, uptimeBefore, results);
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  fs.writeFileSync(o.out, `${text}\n`);
  // Every figure of every step, for a closer look (not committed).
  fs.writeFileSync(o.json, `${JSON.stringify(results, null, 1)}\n`);
  process.stdout.write(`${text}\n`);
}
