/**
 * Redis and LiveKit started natively on loopback, each the way its rendered
 * workload starts it: the rendered config files, start scripts, init script,
 * args, env and Secret volumes, changed only by the LOOPBACK_REWRITES named
 * next to each change.
 *
 * Redis:   StatefulSet redis, ConfigMap redis-config, `sh -c REDIS_START`.
 * LiveKit: Deployment livekit, ConfigMap livekit-config, init containers
 *          `node-address` (against an API that knows the node) and `config`,
 *          the main container's start script, the Secret volumes.
 *
 * LiveKit and a Redis of its own run in a PodNetwork: a network namespace
 * whose only link goes to this host, so there is no route to the internet,
 * as on a cluster with restricted egress.
 */
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { SignalResponse } from '@livekit/protocol';
import * as yaml from 'js-yaml';
import { AccessToken, RoomServiceClient } from 'livekit-server-sdk';
import WebSocket from 'ws';
import { FakeKubeApi } from '../fake-kube-api';
import {
  configMapFile,
  container,
  find,
  generatedSecrets,
  httpJson,
  LOOPBACK_REWRITES,
  PodNetwork,
  podSpec,
  Program,
  programs,
  rendered,
  replaceOnce,
  rewritePaths,
  tail,
  tcpOpen,
  tempDir,
  writeSecretFiles,
  hostPath,
} from './harness';
import { LiveKitRun, prepareLiveKit as prepareLk, startLiveKit } from './livekit';
import { RunningRedis, startRedis } from './redis';

// The versions as the programs report themselves, read once at load for the titles.
const REDIS_VERSION = /^Redis server v=\S+/.exec(execFileSync(programs().redisServer, ['--version'], { encoding: 'utf8' }))![0];
const LIVEKIT_VERSION = execFileSync(programs().livekitServer, ['--version'], { encoding: 'utf8' }).trim();

const { config, manifests } = rendered();
const LOOPBACK = '127.0.0.1';

let secrets: Record<string, string>;
let redis: RunningRedis;

beforeAll(async () => {
  secrets = await generatedSecrets(manifests);
  redis = await startRedis(manifests, config, secrets);
});
afterAll(async () => {
  await redis?.program.stop();
});

// ---------------------------------------------------------------------------
// Helpers: Redis's protocol.
// ---------------------------------------------------------------------------

type Reply = string | number | null | Reply[];

/** One RESP reply from buf at pos: [reply, next pos], or undefined while incomplete. Status replies keep their "+", errors their "-". */
function parseReply(buf: Buffer, pos: number): [Reply, number] | undefined {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (String.fromCharCode(buf[pos])) {
    case '+':
      return [`+${line}`, next];
    case '-':
      return [`-${line}`, next];
    case ':':
      return [Number(line), next];
    case '$': {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return undefined;
      return [buf.toString('utf8', next, next + len), next + len + 2];
    }
    case '*': {
      const items: Reply[] = [];
      let at = next;
      for (let i = 0; i < Number(line); i++) {
        const r = parseReply(buf, at);
        if (!r) return undefined;
        items.push(r[0]);
        at = r[1];
      }
      return [items, at];
    }
    default:
      throw new Error(`unexpected RESP reply ${JSON.stringify(buf.toString('utf8', pos))}`);
  }
}

/** Sends commands to Redis over plain TCP (one connection, pipelined) and returns their replies. */
function redisCommands(port: number, commands: string[][], host = LOOPBACK): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    let buf = Buffer.alloc(0);
    sock.setTimeout(5_000, () => sock.destroy(new Error('redis: no reply within 5 s')));
    sock.on('error', reject);
    sock.on('connect', () => sock.write(commands.map((cmd) => `*${cmd.length}\r\n${cmd.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`).join('')));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const replies: Reply[] = [];
      let at = 0;
      while (replies.length < commands.length) {
        const r = parseReply(buf, at);
        if (!r) return;
        replies.push(r[0]);
        at = r[1];
      }
      sock.end();
      resolve(replies);
    });
  });
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

describe(`${REDIS_VERSION}`, () => {
  test('runs the rendered redis.conf through the rendered start command', async () => {
    // The start script wrote requirepass, not readable by others (umask 077).
    const authFile = hostPath(redis.mounts, '/run/redis/auth.conf');
    expect(fs.readFileSync(authFile, 'utf8')).toBe(`requirepass "${redis.password}"\n`);
    expect(fs.statSync(authFile).mode & 0o077).toBe(0);
    // `exec redis-server`: the shell became the Redis under test (which retitles itself "redis-server host:port").
    // It runs in its image: the build under test at the image's path (seen from here through the container's root).
    expect(fs.readlinkSync(`/proc/${redis.program.pid}/exe`)).toMatch(/\/root-[^/]+\/usr\/local\/bin\/redis-server$/);
    expect(fs.readFileSync(`/proc/${redis.program.pid}/cmdline`, 'utf8')).toMatch(new RegExp(`^redis-server ${LOOPBACK}:${redis.port}`));

    const conf = configMapFile(manifests, 'redis-config', 'redis.conf');
    const wanted = (k: string) => new RegExp(`^${k} (.*)$`, 'm').exec(conf)![1];
    const keys = ['maxmemory-policy', 'maxmemory', 'appendonly', 'save', 'protected-mode', 'tcp-keepalive', 'bind', 'port', 'dir'];
    const [auth, ...got] = await redisCommands(redis.port, [['AUTH', redis.password], ...keys.map((k) => ['CONFIG', 'GET', k])]);
    expect(auth).toBe('+OK');
    const values = Object.fromEntries(got.map((r) => r as string[]));
    expect(values['maxmemory-policy']).toBe(wanted('maxmemory-policy'));
    expect(values.maxmemory).toBe(String(Number(/^(\d+)mb$/.exec(wanted('maxmemory'))![1]) * 2 ** 20));
    expect(values.appendonly).toBe(wanted('appendonly'));
    expect(values.save).toBe('');
    expect(values['protected-mode']).toBe(wanted('protected-mode'));
    expect(values['tcp-keepalive']).toBe(wanted('tcp-keepalive'));
    expect(values.bind).toBe(LOOPBACK); // LOOPBACK_REWRITES.bind
    expect(values.port).toBe(String(redis.port)); // LOOPBACK_REWRITES.ports
    expect(fs.realpathSync(values.dir)).toBe(fs.realpathSync(redis.mounts['/data'])); // LOOPBACK_REWRITES.paths
  });

  test('refuses clients without the generated password', async () => {
    expect(await redisCommands(redis.port, [['PING']])).toEqual(['-NOAUTH Authentication required.']);
    expect(await redisCommands(redis.port, [['AUTH', `${redis.password}x`]])).toEqual(['-WRONGPASS invalid username-password pair or user is disabled.']);
    expect(await redisCommands(redis.port, [['AUTH', redis.password], ['PING']])).toEqual(['+OK', '+PONG']);
  });

  test('the rendered readiness probe passes, and fails with a wrong password', () => {
    const probe: string[] = container(find(manifests, 'StatefulSet', 'redis'), 'redis').readinessProbe.exec.command;
    expect(probe.slice(0, 2)).toEqual(['sh', '-c']);
    const run = (secretsDir: string) => {
      let script = rewritePaths(probe[2], { '/secrets/password': path.join(secretsDir, 'password') }); // LOOPBACK_REWRITES.paths
      script = replaceOnce(script, ' -p 6379 ', ` -p ${redis.port} `); // LOOPBACK_REWRITES.ports
      // The image's redis-cli is its server's: the one beside the redis-server under test.
      return execFileSync('sh', ['-c', script], { env: { PATH: `${path.dirname(programs().redisServer)}:${process.env.PATH}` }, stdio: 'pipe' });
    };
    expect(() => run(redis.mounts['/secrets'])).not.toThrow();
    const wrong = tempDir('redis-wrong');
    writeSecretFiles(wrong, { password: 'not-the-password' });
    expect(() => run(wrong)).toThrow();
  });

  test('the password rotates with an overlap (docs/operations.md, "Rotating secrets"): ACL SETUSER adds the new one beside the old, then removes the old', async () => {
    // A Redis of its own: the ACL changes would outlive this test in the shared one.
    const own = await startRedis(manifests, config, secrets);
    try {
      const old = own.password;
      const next = crypto.randomBytes(32).toString('base64url');
      const auth = async () => ({ old: (await redisCommands(own.port, [['AUTH', old]]))[0], next: (await redisCommands(own.port, [['AUTH', next]]))[0] });
      const wrong = '-WRONGPASS invalid username-password pair or user is disabled.';
      // The runbook's commands, less kubectl exec: redis-cli in the Redis container, authenticated by REDISCLI_AUTH.
      const cli = (password: string, ...args: string[]) =>
        execFileSync(path.join(path.dirname(programs().redisServer), 'redis-cli'), ['-h', LOOPBACK, '-p', String(own.port), ...args], {
          env: { REDISCLI_AUTH: password },
          encoding: 'utf8',
        }).trim();
      expect(await auth()).toEqual({ old: '+OK', next: wrong });
      // 1. Redis accepts the new password too.
      expect(cli(old, 'ACL', 'SETUSER', 'default', `>${next}`)).toBe('OK');
      expect(await auth()).toEqual({ old: '+OK', next: '+OK' });
      // 3. Once the clients have restarted with the new one: the old one goes, with no restart of Redis.
      expect(cli(next, 'ACL', 'SETUSER', 'default', `<${old}`)).toBe('OK');
      expect(await auth()).toEqual({ old: wrong, next: '+OK' });
    } finally {
      await own.program.stop();
    }
  });
});

// ---------------------------------------------------------------------------
// LiveKit
// ---------------------------------------------------------------------------

/** The Node the lookup finds: its ExternalIP (a documentation address) is what LiveKit must advertise. */
const NODE_NAME = 'kudo-node-1';
const NODE_EXTERNAL_IP = '203.0.113.7';

/** The rendered LiveKit, prepared for this test's Node (see ./livekit). */
const prepareLiveKit = (network: PodNetwork, redisPort: number, api: string, tweak?: (cfg: any) => void): Promise<LiveKitRun> =>
  prepareLk(manifests, config, secrets, network, redisPort, api, NODE_NAME, tweak);

/** The LiveKit process under a started Program (the wrappers exec down to it, so it is the Program's pid or a child). */
function livekitPid(p: Program): number {
  const children = (pid: number): number[] => {
    const f = `/proc/${pid}/task/${pid}/children`;
    const kids = fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) : [];
    return [pid, ...kids.flatMap(children)];
  };
  const hit = children(p.pid!).find((pid) => fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'livekit-server');
  if (hit === undefined) throw new Error('no livekit-server process under the started program');
  return hit;
}

/** Paths of the leaves that differ between two parsed YAML documents. */
function changedLeaves(a: any, b: any, at = ''): string[] {
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) => changedLeaves(a[k], b[k], at ? `${at}.${k}` : k));
  }
  return a === b ? [] : [at];
}

describe(`${LIVEKIT_VERSION} with ${REDIS_VERSION}, on a node with no route to the internet`, () => {
  let network: PodNetwork;
  let nodeRedis: RunningRedis;
  let api: FakeKubeApi;
  let apiUrl: string;
  let run: LiveKitRun;
  let livekit: Program;
  let url: string;
  let apiKey: string;
  let apiSecret: string;
  const room = `e2e-${process.pid}`;

  beforeAll(async () => {
    network = new PodNetwork();
    nodeRedis = await startRedis(manifests, config, secrets, network);
    api = new FakeKubeApi();
    apiUrl = await api.start();
    api.putNode(NODE_NAME, [
      { type: 'InternalIP', address: network.podAddress },
      { type: 'ExternalIP', address: NODE_EXTERNAL_IP },
    ]);
    run = await prepareLiveKit(network, nodeRedis.port, apiUrl);
    livekit = startLiveKit(run);
    url = `http://${network.podAddress}:${run.port}`;
    await livekit.waitFor('GET / 200', async () => (await httpJson(`${url}/`)).status === 200, 60_000);
    // The key file the config step wrote holds exactly one key: the generated pair.
    const keys = yaml.load(fs.readFileSync(run.config.key_file, 'utf8')) as Record<string, string>;
    [[apiKey, apiSecret]] = Object.entries(keys);
  });
  afterAll(async () => {
    // Rooms drain on SIGTERM until their last participant leaves; remove ours first.
    if (livekit?.running) await new RoomServiceClient(url, apiKey, apiSecret).deleteRoom(room).catch(() => undefined);
    await livekit?.stop();
    await nodeRedis?.program.stop();
    await api?.stop();
    network?.remove();
  });

  test('only the loopback rewrites and the config step separate what it reads from the rendered config', () => {
    const expected: Record<string, keyof typeof LOOPBACK_REWRITES | 'config step'> = {
      key_file: 'paths',
      port: 'ports',
      'prometheus.port': 'ports',
      'redis.address': 'hosts', // and its port
      'redis.password': 'config step',
      'rtc.port_range_end': 'ports',
      'rtc.port_range_start': 'ports',
      'rtc.tcp_port': 'ports',
      'rtc.turn_servers.0.secret_file': 'paths',
      'rtc.turn_servers.1.secret_file': 'paths',
    };
    expect(changedLeaves(run.rendered, run.config).sort()).toEqual(Object.keys(expected).sort());
    // The password came from the Redis Secret, through the mounted file, not the environment.
    expect(run.config.redis.password).toBe(secrets.redisPassword);
    expect(Object.values(run.env)).not.toContain(secrets.redisPassword);
    expect(fs.statSync(hostPath(run.mounts, '/run/livekit/config.yaml')).mode & 0o077).toBe(0);
  });

  test("the node has no route to the internet: LiveKit as rendered starts anyway and advertises the Node's ExternalIP", async () => {
    expect(execFileSync('ip', ['netns', 'exec', network.name, 'ip', 'route'], { encoding: 'utf8' })).not.toMatch(/^default/m);
    // The lookup step wrote the Node's ExternalIP, read from the API.
    expect(run.nodeIp).toBe(NODE_EXTERNAL_IP);
    expect(api.requests).toContain(`GET /api/v1/nodes/${NODE_NAME}`);
    expect((await httpJson(`${url}/`)).status).toBe(200);
    const log = livekit.output();
    expect(log).toContain(`"nodeIP": "${NODE_EXTERNAL_IP}"`);
    // use_external_ip false: no STUN lookup of an external address.
    expect(log).not.toMatch(/stun|external ip/i);
    // prometheus.port is in force.
    const metrics = await httpJson(`http://${network.podAddress}:${run.prometheusPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('livekit_');
    // It registered itself in its Redis, with the password from the config file.
    const [, nodes] = await redisCommands(
      nodeRedis.port,
      [
        ['AUTH', nodeRedis.password],
        ['HKEYS', 'nodes'],
      ],
      network.podAddress,
    );
    expect(nodes).toHaveLength(1);
    // Nothing to warn about in our config (a short API secret is logged as an ERROR, deprecated keys as WARN).
    const startup = log.slice(0, log.indexOf('starting LiveKit server'));
    expect(startup.split('\n').filter((l) => /\t(WARN|ERROR|FATAL)\t/.test(l))).toEqual([]);
  });

  test("Go's runtime holds the soft memory limit the start script sets: nine tenths of the container's 1Gi", async () => {
    const metrics = await httpJson(`http://${network.podAddress}:${run.prometheusPort}/metrics`);
    // 921 MiB, as Go reports it through LiveKit's Prometheus collector.
    expect(metrics.body).toMatch(/^go_gc_gomemlimit_bytes 9\.65738496e\+08$/m);
  });

  test('negative control: asking public STUN for its address (the old default) fails on the same node', async () => {
    const stun = await prepareLiveKit(network, nodeRedis.port, apiUrl, (cfg) => {
      cfg.rtc.use_external_ip = true;
    });
    const refused = startLiveKit(stun, 'livekit-public-stun');
    try {
      expect(await refused.exit(60_000)).not.toBe(0);
      expect(refused.output()).toMatch(/could not resolve external IP/);
    } finally {
      await refused.stop();
    }
  });

  test('the config step wrote the generated API key and secret, not readable by others', () => {
    expect(apiKey).toBe(secrets.livekitApiKey);
    expect(apiSecret).toBe(secrets.livekitApiSecret);
    expect(fs.statSync(run.config.key_file).mode & 0o077).toBe(0);
  });

  test('the server API creates a room with the generated key and secret, and refuses a wrong secret', async () => {
    const created = await new RoomServiceClient(url, apiKey, apiSecret).createRoom({ name: room });
    expect(created.name).toBe(room);
    const rooms = await new RoomServiceClient(url, apiKey, apiSecret).listRooms();
    expect(rooms.map((r) => r.name)).toContain(room);
    // The room lives in its Redis.
    const [, stored] = await redisCommands(
      nodeRedis.port,
      [
        ['AUTH', nodeRedis.password],
        ['HEXISTS', 'rooms', room],
      ],
      network.podAddress,
    );
    expect(stored).toBe(1);

    const wrongSecret = crypto.randomBytes(32).toString('base64url');
    await expect(new RoomServiceClient(url, apiKey, wrongSecret).createRoom({ name: `${room}-wrong` })).rejects.toMatchObject({
      status: 401,
      message: expect.stringMatching(/signature is invalid/),
    });
    await expect(new RoomServiceClient(url, `${apiKey}x`, apiSecret).listRooms()).rejects.toMatchObject({ status: 401, message: expect.stringMatching(/invalid API key/) });
  });

  test("a joining participant is handed our TURN servers with valid short-lived credentials, and ICE candidates on the Node's ExternalIP", async () => {
    const token = new AccessToken(apiKey, apiSecret, { identity: 'alice', ttl: '10m' });
    token.addGrant({ roomJoin: true, room });
    const jwt = await token.toJwt();

    const before = Math.floor(Date.now() / 1000);
    // Protocol 16: what current JS SDKs speak; the server is at 18 and accepts older ones.
    const ws = new WebSocket(`ws://${network.podAddress}:${run.port}/rtc?access_token=${jwt}&protocol=16&sdk=js&auto_subscribe=1`);
    const messages: SignalResponse[] = [];
    const first = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no signal message within 15 s:\n${tail(livekit.output())}`)), 15_000);
      ws.on('message', (data, isBinary) => {
        clearTimeout(timer);
        if (!isBinary) return reject(new Error(`message is text: ${(data as Buffer).toString()}`));
        messages.push(SignalResponse.fromBinary(new Uint8Array(data as Buffer)));
        resolve();
      });
      ws.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`join refused: HTTP ${res.statusCode}`));
      });
    });
    await first;
    const after = Math.ceil(Date.now() / 1000);
    // The server then offers its subscriber connection and trickles its candidates.
    const deadline = Date.now() + 10_000;
    const candidates = () => messages.filter((m) => m.message.case === 'trickle').map((m) => JSON.parse((m.message.value as any).candidateInit).candidate as string);
    while (Date.now() < deadline && !candidates().some((c) => / typ host/.test(c))) await new Promise((r) => setTimeout(r, 100));
    ws.close();

    const signal = messages[0];
    expect(signal.message.case).toBe('join');
    const join = signal.message.value as any;
    expect(join.room.name).toBe(room);
    const sid: string = join.participant.sid;
    expect(sid).toMatch(/^PA_/);

    // The address clients are told to send media to: the Node's ExternalIP, on the rendered UDP range.
    const hosts = candidates()
      .filter((c) => / typ host/.test(c))
      .map((c) => c.split(' '));
    expect(hosts.length).toBeGreaterThan(0);
    for (const c of hosts) expect(c[4]).toBe(NODE_EXTERNAL_IP);
    expect(hosts.some((c) => c[2].toLowerCase() === 'udp' && Number(c[5]) >= run.config.rtc.port_range_start && Number(c[5]) <= run.config.rtc.port_range_end)).toBe(true);

    // Exactly the rendered turn_servers, in LiveKit's URL format
    // (pkg/service/roommanager.go: "%s:%s:%d?transport=%s"; tls -> turns over tcp).
    expect(config.hosts.turn).toBe('turn.example.com');
    expect(join.iceServers.map((s: any) => s.urls)).toEqual([['turn:turn.example.com:3478?transport=udp'], ['turns:turn.example.com:5349?transport=tcp']]);
    for (const [i, s] of join.iceServers.entries()) {
      const ttl = run.rendered.rtc.turn_servers[i].ttl;
      expect(ttl).toBe(config.coturn.credentialTtlSeconds);
      expect(ttl).toBe(3600);
      // TURN REST credentials: username "<expiry>:<participant sid>", credential base64(HMAC-SHA1(secret, username)).
      const m = /^(\d+):(.+)$/.exec(s.username)!;
      expect(m).not.toBeNull();
      expect(Number(m[1])).toBeGreaterThanOrEqual(before + ttl);
      expect(Number(m[1])).toBeLessThanOrEqual(after + ttl);
      expect(m[2]).toBe(sid);
      const expected = crypto.createHmac('sha1', secrets.turnSharedSecret).update(s.username).digest('base64');
      expect(s.credential).toBe(expected);
    }
  });

  test("runs in its image as the pod's user: LiveKit by the image's path, no capability, no way up", () => {
    const pid = livekitPid(livekit);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    // 10880: the pod's runAsUser and fsGroup (charts/common.ts UID.livekit, as rendered).
    expect(podSpec(find(manifests, 'Deployment', 'livekit')).securityContext).toMatchObject({ runAsUser: 10880, fsGroup: 10880 });
    expect(status).toMatch(/^Uid:\t10880\t10880\t10880\t10880$/m);
    expect(status).toMatch(/^CapEff:\t0000000000000000$/m);
    expect(status).toMatch(/^CapBnd:\t0000000000000000$/m);
    expect(status).toMatch(/^NoNewPrivs:\t1$/m);
    expect(fs.readlinkSync(`/proc/${pid}/exe`)).toMatch(/\/livekit-server$/);
  });

  test('negative control: the start script as rendered before the fix (exec livekit-server, by name) is not found in the image', async () => {
    const old = { ...run, script: run.script.replace('exec /livekit-server "$@"', 'exec livekit-server "$@"') };
    expect(old.script).not.toBe(run.script);
    const refused = startLiveKit(old, 'livekit-by-name');
    try {
      expect(await refused.exit(30_000)).toBe(127);
      expect(refused.output()).toMatch(/livekit-server: not found/);
    } finally {
      await refused.stop();
    }
  });

  test('refuses to start when the config has an unknown key (misspelt prometheus)', async () => {
    // The same rewritten config with one key misspelt, in its place (redis stays last for the config step).
    const bad = await prepareLiveKit(network, nodeRedis.port, apiUrl, (cfg) => {
      for (const k of Object.keys(cfg)) {
        const v = cfg[k];
        delete cfg[k];
        cfg[k === 'prometheus' ? 'promethues' : k] = v;
      }
    });
    const refused = startLiveKit(bad, 'livekit-misspelt');
    try {
      expect(await refused.exit(30_000)).not.toBe(0);
      expect(refused.output()).toMatch(/field promethues not found/);
      expect(await tcpOpen(bad.port, network.podAddress)).toBe(false);
    } finally {
      await refused.stop();
    }
  });
});

/**
 * docs/operations.md, "Rotating secrets": LiveKit's key file takes several pairs, so the API key pair is rotated with an overlap.
 * Each phase is the state of the Secret kudo-livekit after one step of the procedure, and a LiveKit restarted on it
 * (the `config` step writes the key file from the Secret volume only when the pod starts). The app's side is a token
 * for RoomService ListRooms signed with each pair.
 */
describe(`${LIVEKIT_VERSION}: rotating the API key pair with an overlap (docs/operations.md, "Rotating secrets")`, () => {
  let network: PodNetwork;
  let nodeRedis: RunningRedis;
  let api: FakeKubeApi;
  let apiUrl: string;

  beforeAll(async () => {
    network = new PodNetwork();
    nodeRedis = await startRedis(manifests, config, secrets, network);
    api = new FakeKubeApi();
    apiUrl = await api.start();
    api.putNode(NODE_NAME, [{ type: 'InternalIP', address: network.podAddress }]);
  });
  afterAll(async () => {
    await nodeRedis?.program.stop();
    await api?.stop();
    network?.remove();
  });

  /** The optional second pair's keys, in the Secrets of the API key and secret (secrets.refs). */
  const SECOND_KEY = `${config.secrets.refs.livekitApiKey.name}/second_api_key`;
  const SECOND_SECRET = `${config.secrets.refs.livekitApiSecret.name}/second_api_secret`;

  /** LiveKit started on a Secret holding `main` as api_key/api_secret and, if given, `second`; what it answers each pair's token. */
  async function phase(main: Pair, second: Pair | undefined, pairs: Record<string, Pair>): Promise<{ keyFile: Record<string, string>; status: Record<string, number> }> {
    const values: Record<string, string> = { ...secrets, livekitApiKey: main.key, livekitApiSecret: main.secret };
    if (second) Object.assign(values, { [SECOND_KEY]: second.key, [SECOND_SECRET]: second.secret });
    const run = await prepareLk(manifests, config, values, network, nodeRedis.port, apiUrl, NODE_NAME);
    const livekit = startLiveKit(run, 'livekit-rotation');
    try {
      const url = `http://${network.podAddress}:${run.port}`;
      await livekit.waitFor('GET / 200', async () => (await httpJson(`${url}/`)).status === 200, 60_000);
      const status: Record<string, number> = {};
      for (const [name, p] of Object.entries(pairs)) {
        const token = new AccessToken(p.key, p.secret, { identity: 'kudo-app', ttl: '10m' });
        token.addGrant({ roomList: true });
        const r = await httpJson(`${url}/twirp/livekit.RoomService/ListRooms`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${await token.toJwt()}`, 'Content-Type': 'application/json' },
          body: '{}',
        });
        status[name] = r.status;
        if (r.status === 401) expect(JSON.stringify(r.body)).toMatch(/invalid API key/);
      }
      return { keyFile: yaml.load(fs.readFileSync(run.config.key_file, 'utf8')) as Record<string, string>, status };
    } finally {
      await livekit.stop();
    }
  }

  test('during the window tokens of the old and the new pair are both accepted (200); afterwards the old pair is refused (401)', async () => {
    const old: Pair = { key: secrets.livekitApiKey, secret: secrets.livekitApiSecret };
    // What the runbook's commands make: the generator's shapes (API and 12 letters or digits; 32 random bytes in URL-safe base64).
    const next: Pair = { key: `API${crypto.randomBytes(6).toString('hex')}`, secret: crypto.randomBytes(32).toString('base64url') };
    const pairs = { old, next };

    // Before: the generated pair only.
    expect(await phase(old, undefined, pairs)).toEqual({ keyFile: { [old.key]: old.secret }, status: { old: 200, next: 401 } });
    // 1. The new pair added as the second one; LiveKit restarted: both accepted.
    expect(await phase(old, next, pairs)).toEqual({ keyFile: { [old.key]: old.secret, [next.key]: next.secret }, status: { old: 200, next: 200 } });
    // 2. Swapped: the new pair is the main one (what the app is given), the old one the second: still both.
    expect(await phase(next, old, pairs)).toEqual({ keyFile: { [next.key]: next.secret, [old.key]: old.secret }, status: { old: 200, next: 200 } });
    // 3. The old pair removed; LiveKit restarted: only the new one.
    expect(await phase(next, undefined, pairs)).toEqual({ keyFile: { [next.key]: next.secret }, status: { old: 401, next: 200 } });
  }, 240_000);
});

interface Pair {
  key: string;
  secret: string;
}
