/**
 * coturn started natively on loopback the way the rendered DaemonSet starts
 * it: ConfigMap coturn-config (turnserver.conf, start.sh), the container's
 * command and env, the TURN Secret volume and a TLS certificate, changed only
 * by the LOOPBACK_REWRITES named next to each change. The init container
 * (which looks up the node's public address) does not run: the test writes
 * its output file instead.
 *
 * Clients: turnutils_stunclient and turnutils_uclient from coturn itself, and
 * a small STUN/TURN client below for what they do not show (exact error
 * codes, CreatePermission on its own).
 *
 * Network rule: every packet goes to 127.0.0.1. Denied peers are only named
 * in CreatePermission requests to the server, which refuses them without
 * sending anything; no test asks coturn to relay data anywhere.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as dgram from 'dgram';
import * as fs from 'fs';
import { AddressInfo } from 'net';
import * as path from 'path';
import * as tls from 'tls';
import { HAS_PROMETHEUS, HELP, option, RunningCoturn, startCoturn as startCoturnOf, TURN_VERSION, TURNUTILS } from './coturn';
import { asSecretFile } from './image';
import { ATTR, CLASS, decodeStun, describeReply, encodeStun, errorCode, MAGIC_COOKIE, METHOD, readXorAddress, StunMessage, UDP_TRANSPORT, xorAddress } from './stun';
import { PRODUCTION } from '../util';
import { configMapFile, container, find, generatedSecrets, LOOPBACK_REWRITES, rendered, sleep, tcpOpen } from './harness';

const { config, manifests } = rendered();
const LOOPBACK = '127.0.0.1';
const RENDERED_CONF = configMapFile(manifests, 'coturn-config', 'turnserver.conf');

let secrets: Record<string, string>;
let turn: RunningCoturn;

beforeAll(async () => {
  secrets = await generatedSecrets(manifests);
  turn = await startCoturn();
});
afterAll(async () => {
  await turn?.program.stop();
  // If a test failed before the last one, end whatever the script left running.
  if (turn?.program.pid) for (const p of processGroup(turn.program.pid)) killQuietly(p.pid);
});

// ---------------------------------------------------------------------------
// Helpers: the rendered files, mount paths, processes.
// ---------------------------------------------------------------------------

/** Processes of a process group, from /proc. */
function processGroup(pgid: number): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  for (const entry of fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its closing parenthesis.
    const close = stat.lastIndexOf(')');
    const [state, , pgrp] = stat.slice(close + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') out.push({ pid: Number(entry), comm: stat.slice(stat.indexOf('(') + 1, close) });
  }
  return out;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function ipv4ToNumber(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

/** The rendered denied-peer-ip range ("first-last" or a single address) that holds `ip`. */
function deniedRangeOf(conf: string, ip: string): string | undefined {
  const n = ipv4ToNumber(ip);
  return conf
    .split('\n')
    .filter((l) => l.startsWith('denied-peer-ip=') && !l.includes(':'))
    .map((l) => l.slice('denied-peer-ip='.length))
    .find((range) => {
      const [first, last = first] = range.split('-');
      return ipv4ToNumber(first) <= n && n <= ipv4ToNumber(last);
    });
}

/**
 * The ERROR lines of a coturn log, less the expected ones: the CLI one (without a cli-password the telnet admin
 * interface stays off, which is what we want) and, while start.sh runs it without the certificate that cert-manager has
 * not issued yet, the one that says TLS is off although tls-listening-port is set (4.18 says so; 4.6 did not).
 */
function unexpectedErrors(log: string, { certificate }: { certificate: boolean }): string[] {
  return log
    .replace(/ERROR: \n/g, 'ERROR: ')
    .split('\n')
    .filter((l) => /ERROR/.test(l))
    .filter((l) => !/CONFIG ERROR: Empty cli-password, and so telnet cli interface is disabled!/.test(l))
    .filter((l) => certificate || !/ERROR tls-listening-port \d+ is configured, but the TLS and DTLS listeners are disabled/.test(l));
}

/** TURN REST credentials as Synapse makes them: "<expiry>:<user>", password base64(HMAC-SHA1(secret, user name)). */
function restCredentials(secret: string, user: string, expiresAt = Math.floor(Date.now() / 1000) + 3600): { username: string; password: string } {
  const username = `${expiresAt}:${user}`;
  return { username, password: crypto.createHmac('sha1', secret).update(username).digest('base64') };
}

// ---------------------------------------------------------------------------
// A minimal STUN/TURN client over UDP (RFC 8489, RFC 8656): enough to see the
// server's exact answers, which turnutils_uclient does not print.
// ---------------------------------------------------------------------------

/** One UDP socket on loopback talking to the TURN server: one 5-tuple, so at most one allocation. */
class TurnClient {
  private readonly socket = dgram.createSocket('udp4');
  private readonly pending = new Map<string, (m: StunMessage) => void>();
  private credentials?: { username: string; realm: string; nonce: string; key: Buffer };
  /** The server's first answer to an Allocate without credentials. */
  challenge?: StunMessage;

  constructor(private readonly port: number) {
    this.socket.on('message', (buf) => {
      if (buf.length < 20 || buf.readUInt32BE(4) !== MAGIC_COOKIE) return;
      const m = decodeStun(buf);
      this.pending.get(m.txid.toString('hex'))?.(m);
    });
  }

  open(): Promise<AddressInfo> {
    return new Promise((resolve) => this.socket.bind(0, LOOPBACK, () => resolve(this.socket.address())));
  }

  close(): void {
    this.socket.close();
  }

  /** Sends a request, resending it every 500 ms (UDP may drop it), and resolves with the matching response. */
  request(method: number, attrs: [number, Buffer][] | ((txid: Buffer) => [number, Buffer][]), integrityKey?: Buffer): Promise<StunMessage> {
    const txid = crypto.randomBytes(12);
    const msg = encodeStun(method, txid, typeof attrs === 'function' ? attrs(txid) : attrs, integrityKey);
    return new Promise((resolve, reject) => {
      let sent = 0;
      const send = () => {
        if (sent++ === 8) {
          this.pending.delete(txid.toString('hex'));
          reject(new Error(`no answer from the TURN server on ${LOOPBACK}:${this.port} to method 0x${method.toString(16)}`));
          return;
        }
        this.socket.send(msg, this.port, LOOPBACK);
        timer = setTimeout(send, 500);
      };
      let timer: NodeJS.Timeout;
      this.pending.set(txid.toString('hex'), (m) => {
        clearTimeout(timer);
        this.pending.delete(txid.toString('hex'));
        resolve(m);
      });
      send();
    });
  }

  /**
   * Allocate: first without credentials (the server answers 401 with REALM and NONCE), then with them. Returns the second answer.
   * `evenPort`: ask for an even relay port and the odd one above it (EVEN-PORT with the R bit, as an RTP/RTCP client does).
   */
  async allocate(username: string, password: string, { evenPort = false } = {}): Promise<StunMessage> {
    const udp = UDP_TRANSPORT;
    const extra: [number, Buffer][] = evenPort ? [[ATTR.evenPort, Buffer.from([0x80])]] : [];
    this.challenge = await this.request(METHOD.allocate, [[ATTR.requestedTransport, udp], ...extra]);
    const realm = this.challenge.attrs.get(ATTR.realm)?.toString();
    const nonce = this.challenge.attrs.get(ATTR.nonce)?.toString();
    if (errorCode(this.challenge) !== 401 || !realm || !nonce) throw new Error(`expected a 401 challenge, got ${describeReply(this.challenge)}`);
    // The long-term credential key: MD5(username:realm:password).
    const key = crypto.createHash('md5').update(`${username}:${realm}:${password}`).digest();
    this.credentials = { username, realm, nonce, key };
    return this.request(METHOD.allocate, [[ATTR.requestedTransport, udp], ...extra, ...this.auth()], key);
  }

  createPermission(peer: string): Promise<StunMessage> {
    // The port in XOR-PEER-ADDRESS means nothing to a permission; no packet goes to the peer.
    return this.request(METHOD.createPermission, (txid) => [[ATTR.xorPeerAddress, xorAddress(peer, 9, txid)], ...this.auth()], this.credentials!.key);
  }

  /** Refresh with LIFETIME 0: gives the relay port and the user's quota back at once. */
  release(): Promise<StunMessage> {
    return this.request(METHOD.refresh, [[ATTR.lifetime, Buffer.alloc(4)], ...this.auth()], this.credentials!.key);
  }

  private auth(): [number, Buffer][] {
    const c = this.credentials!;
    return [
      [ATTR.username, Buffer.from(c.username)],
      [ATTR.realm, Buffer.from(c.realm)],
      [ATTR.nonce, Buffer.from(c.nonce)],
    ];
  }
}

async function withClient<T>(port: number, f: (c: TurnClient, local: AddressInfo) => Promise<T>): Promise<T> {
  const c = new TurnClient(port);
  try {
    return await f(c, await c.open());
  } finally {
    c.close();
  }
}

/** turnutils_uclient against the server; its output with -v tells how far it got. */
function uclient(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(path.join(TURNUTILS, 'turnutils_uclient'), ['-v', ...args, '-p', String(turn.port), LOOPBACK], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** openssl s_client's word on one handshake with TURNS: "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256", or the alert the server sent. */
function tlsHandshake(port: number, ...args: string[]): string {
  const r = spawnSync('openssl', ['s_client', '-connect', `${LOOPBACK}:${port}`, '-servername', option(RENDERED_CONF, 'realm'), ...args], {
    input: '',
    encoding: 'utf8',
    timeout: 10_000,
  });
  const done = /^New, (TLSv1\.\d), Cipher is (\S+)$/m.exec(r.stdout);
  if (done) return `${done[1]} ${done[2]}`;
  return /alert (protocol version|handshake failure)/.exec(r.stderr)?.[0] ?? `no answer: ${r.stdout}${r.stderr}`;
}

// ---------------------------------------------------------------------------
// Starting coturn as the DaemonSet does (./coturn)
// ---------------------------------------------------------------------------

/** coturn as the default render's DaemonSet starts it, with `relaySize` relay ports, on `renderedConf` (another profile's, say). */
const startCoturn = (relaySize = 20, renderedConf = RENDERED_CONF): Promise<RunningCoturn> => startCoturnOf(manifests, config, secrets, relaySize, renderedConf);

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

describe(`coturn turnserver ${TURN_VERSION}, with turnutils_stunclient and turnutils_uclient from ${TURNUTILS}`, () => {
  test('only the loopback rewrites separate its turnserver.conf and start.sh from the rendered ones', () => {
    // Folders back to mount paths: what remains different must be a listed option.
    const unmount = (text: string) =>
      Object.entries(turn.mounts)
        .sort(([, a], [, b]) => b.length - a.length)
        .reduce((t, [mountPath, folder]) => t.split(folder).join(mountPath), text);
    expect(unmount(turn.writtenScript)).toBe(configMapFile(manifests, 'coturn-config', 'start.sh'));
    expect(turn.writtenScript).not.toBe(configMapFile(manifests, 'coturn-config', 'start.sh'));

    const rendered = RENDERED_CONF.split('\n');
    const all = unmount(turn.writtenConf).split('\n');
    // The metrics lines come last (before the final newline), each a listed rewrite; the rest is line for line the rendered file.
    expect(all.slice(rendered.length - 1, -1)).toEqual(turn.metricsLines);
    expect(turn.metricsLines.map((l) => l.split('=')[0])).toEqual(HAS_PROMETHEUS ? ['prometheus-address'] : []);
    const written = [...all.slice(0, rendered.length - 1), ''];
    expect(written.length).toBe(rendered.length);
    const changed = rendered.filter((l, i) => l !== written[i]).map((l) => l.split('=')[0]);
    const expected: Record<string, keyof typeof LOOPBACK_REWRITES> = {
      'listening-port': 'ports',
      'tls-listening-port': 'ports',
      'min-port': 'ports',
      'max-port': 'ports',
      'prometheus-port': 'ports',
    };
    expect(changed.sort()).toEqual(Object.keys(expected).sort());
    // And the paths did move (pidfile in the config; the certificate in start.sh), so nothing touches the host's /tls or /run.
    expect(option(turn.writtenConf, 'pidfile').startsWith(turn.mounts[path.dirname(option(RENDERED_CONF, 'pidfile'))])).toBe(true);
    expect(turn.writtenScript).toContain(`cert=${turn.certFile}`);
  });

  test('runs the rendered turnserver.conf through the rendered start.sh, and rejects none of its lines', async () => {
    const log = turn.startupLog;
    // The program started by the script's `turnserver` is the one named in the title.
    expect(log).toContain(`Version Coturn-${TURN_VERSION} `);

    // start.sh copied the config and appended the secret and the node's addresses (all 127.0.0.1 here: bind, externalIp).
    expect(turn.runtimeConf).toBe(
      `${turn.writtenConf}static-auth-secret=${turn.secret}\nexternal-ip=${LOOPBACK}/${LOOPBACK}\n` + `listening-ip=${LOOPBACK}\nrelay-ip=${LOOPBACK}\n`,
    );
    const pid = Number(fs.readFileSync(turn.pidFile, 'utf8').trim());
    expect(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('turnserver');
    expect(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]).toBe(String(turn.program.pid)); // a child of start.sh

    // coturn ignores an unknown option with "Bad configuration format: <line>" and carries on, so the log is the only sign.
    // The lines a build without Prometheus support does not know are the two metrics ones: then metrics are off here (on in the
    // image). A build with it must know every line.
    const unknown = [...new Set([...log.matchAll(/Bad configuration format: (.*)/g)].map((m) => m[1]))];
    expect(unknown).toEqual(HAS_PROMETHEUS ? [] : ['prometheus', 'prometheus-port']);
    // Said after the relays are up, which can be after the TURN port answers (the startup log's end).
    const saysNoMetrics = /prometheus collector disabled|compiled without prometheus/;
    if (HAS_PROMETHEUS) expect(saysNoMetrics.test(turn.program.output())).toBe(false);
    else await turn.program.waitFor('its word on metrics', () => saysNoMetrics.test(turn.program.output()), 10_000);
    // All of it to stdout: a warning logged before `log-file=stdout` is read makes coturn open a file of its own
    // (/var/log/turn_<pid>_<date>.log, or /tmp in the read-only container) for what it says first.
    expect(log).not.toMatch(/log file opened/);
    // A bad value (a CIDR in denied-peer-ip, say) is an ERROR line, and the server starts anyway.
    expect(log).toContain(`no certificate at ${turn.certFile} yet`);
    expect(unexpectedErrors(log, { certificate: false })).toEqual([]);
    // Every rendered denied-peer-ip range was taken.
    const denied = RENDERED_CONF.split('\n')
      .filter((l) => l.startsWith('denied-peer-ip='))
      .map((l) => l.slice('denied-peer-ip='.length));
    expect([...log.matchAll(/Black listing: (.*)/g)].map((m) => m[1])).toEqual(denied);
    expect(log).toContain(`Default realm: ${option(RENDERED_CONF, 'realm')}`);
  });

  test('answers a STUN binding request', async () => {
    // turnutils_stunclient waits forever for an answer that does not come: the timeout turns that into a failure.
    const out = execFileSync(path.join(TURNUTILS, 'turnutils_stunclient'), ['-p', String(turn.port), LOOPBACK], { encoding: 'utf8', timeout: 10_000 });
    expect(out).toMatch(/UDP reflexive addr: 127\.0\.0\.1:\d+/);

    // The exact answer: our own address, and a FINGERPRINT (rendered `fingerprint`).
    await withClient(turn.port, async (client, local) => {
      const reply = await client.request(METHOD.binding, []);
      expect(reply.type).toBe(METHOD.binding | CLASS.success);
      expect(readXorAddress(reply.attrs.get(ATTR.xorMappedAddress)!, reply.txid)).toEqual({ family: 4, ip: LOOPBACK, port: local.port });
      expect(reply.attrs.has(ATTR.fingerprint)).toBe(true);
    });
  });

  test('turnutils_uclient gets relay allocations with REST credentials made from the shared secret (-W)', () => {
    const { status, output } = uclient(['-c', '-n', '0', '-e', LOOPBACK, '-W', turn.secret, '-u', '@uclient:example.com']);
    const relays = [...output.matchAll(/Received relay addr: 127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    expect(relays.length).toBeGreaterThan(0);
    for (const p of relays) {
      expect(p).toBeGreaterThanOrEqual(turn.relayPorts[0]);
      expect(p).toBeLessThanOrEqual(turn.relayPorts[1]);
    }
    // uclient cannot finish a session on one machine: its peer must be a loopback address, and the server refuses
    // every loopback peer (denied-peer-ip 127.0.0.0/8, and coturn's own default). So it stops there, after allocating.
    // (The reason phrase is for people and changes between releases: 4.6 said "Forbidden IP", 4.18 says nothing.)
    const errors = output.split('\n').filter((l) => /error/i.test(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/channel bind: error 403\b/);
    expect(status).not.toBe(0);
  });

  test('a Synapse-style REST user name ("<expiry>:@user:server") gets a relay in the rendered realm', async () => {
    await withClient(turn.port, async (client) => {
      const { username, password } = restCredentials(turn.secret, '@alice:example.com');
      const reply = await client.allocate(username, password);
      expect(client.challenge!.attrs.get(ATTR.realm)!.toString()).toBe(option(RENDERED_CONF, 'realm'));
      expect(describeReply(reply)).toBe(`type 0x${(METHOD.allocate | CLASS.success).toString(16)}`);
      const relay = readXorAddress(reply.attrs.get(ATTR.xorRelayedAddress)!, reply.txid);
      expect(relay.ip).toBe(LOOPBACK);
      expect(relay.port).toBeGreaterThanOrEqual(turn.relayPorts[0]);
      expect(relay.port).toBeLessThanOrEqual(turn.relayPorts[1]);
      expect(errorCode(await client.release())).toBeUndefined();
    });
  });

  test('refuses an allocation whose password was made with a wrong secret (uclient; 401 to our client)', async () => {
    const wrong = `${turn.secret}x`;
    const { status, output } = uclient(['-c', '-n', '0', '-e', LOOPBACK, '-W', wrong, '-u', '@mallory:example.com']);
    expect(output).toContain('Cannot complete Allocation');
    expect(output).not.toContain('Received relay addr');
    expect(status).not.toBe(0);

    await withClient(turn.port, async (client) => {
      const { username, password } = restCredentials(wrong, '@mallory:example.com');
      expect(describeReply(await client.allocate(username, password))).toMatch(/^error 401 /);
    });
  });

  test('refuses a REST user name whose expiry has passed (401), though the password matches the secret', async () => {
    await withClient(turn.port, async (client) => {
      const { username, password } = restCredentials(turn.secret, '@alice:example.com', Math.floor(Date.now() / 1000) - 60);
      expect(describeReply(await client.allocate(username, password))).toMatch(/^error 401 /);
    });
  });

  test('refuses permissions for private and reserved peers with 403, by the rendered denied-peer-ip ranges', async () => {
    // CreatePermission goes to the server only; a refused permission sends nothing to the peer, and no data is sent at all.
    const peers = ['10.0.0.1', '172.16.0.1', '192.168.1.1', '100.64.0.1', '169.254.169.254'];
    await withClient(turn.port, async (client) => {
      const { username, password } = restCredentials(turn.secret, '@alice:example.com');
      expect(errorCode(await client.allocate(username, password))).toBeUndefined();
      for (const peer of peers) {
        const reply = await client.createPermission(peer);
        // The code only: the reason phrase is for people ("Forbidden IP" in 4.6, empty in 4.18); the log below names the cause.
        expect([peer, errorCode(reply)]).toEqual([peer, 403]);
      }
      await client.release();
    });
    // The refusals came from the rendered lines, not from some default: coturn names the range each time. Except for
    // link-local peers (the cloud metadata address): coturn 4.18 refuses those by their scope before it reads any
    // denied-peer-ip line (4.6 named the rendered range), so the rendered range is the second line of defence there.
    await sleep(200);
    const log = turn.program.output();
    for (const peer of peers) {
      const range = deniedRangeOf(RENDERED_CONF, peer);
      expect(range).toBeDefined();
      const said = log
        .split('\n')
        .filter((l) => l.includes(`A peer IP ${peer} denied`))
        .map((l) => l.replace(/^.*(A peer IP)/, '$1'));
      expect([peer, said.length]).toEqual([peer, 1]);
      if (peer.startsWith('169.254.')) expect(said[0]).toMatch(/ denied: link-local\/unique-local\/site-local scope is not a permitted relay peer/);
      else expect(said[0]).toContain(`A peer IP ${peer} denied in the range: ${range}`);
    }
  });

  // Only a build with Prometheus support can serve metrics (Debian's cannot: the test above then sees its `prometheus` line refused).
  (HAS_PROMETHEUS ? test : test.skip)('serves metrics where the DaemonSet, the monitoring Service and the firewall list expect them, and counts an allocation', async () => {
    // The rendered port, and coturn's default path as this build states it (the rendered file does not set one).
    const defaultPort = Number(option(RENDERED_CONF, 'prometheus-port'));
    const defaultPath = /--prometheus-path\s+<path>\s+[^\n]*\(Default: (\S+)\)/.exec(HELP)![1];
    expect(RENDERED_CONF.split('\n').filter((l) => l.startsWith('prometheus'))).toEqual(['prometheus', `prometheus-port=${defaultPort}`]);
    // The DaemonSet's metrics port (which `npm run checklist` lists for the firewall) and, with monitoring on, the headless
    // Service and the ServiceMonitor that scrape it.
    expect(container(find(manifests, 'DaemonSet', 'coturn'), 'coturn').ports.find((p: any) => p.name === 'metrics')).toEqual({
      name: 'metrics',
      containerPort: defaultPort,
      protocol: 'TCP',
    });
    const monitoring = rendered({ monitoring: { enabled: true } }).manifests;
    expect(find(monitoring, 'Service', 'coturn-metrics').spec.ports).toEqual([{ name: 'metrics', port: defaultPort, targetPort: defaultPort }]);
    const endpoints = find(monitoring, 'ServiceMonitor', 'coturn').spec.endpoints;
    expect(endpoints.map((e: any) => [e.port, e.path])).toEqual([['metrics', defaultPath]]);

    // LOOPBACK_REWRITES.ports/bind: the same listener on a free port of loopback.
    const scrape = async (): Promise<string> => {
      const r = await fetch(`http://${LOOPBACK}:${turn.metricsPort}${defaultPath}`, { signal: AbortSignal.timeout(10_000) });
      expect(r.status).toBe(200);
      return r.text();
    };
    // A labelled gauge has no sample until first set: none is 0.
    const udpAllocations = (text: string) => Number(/^turn_total_allocations\{type="UDP"\} (\S+)$/m.exec(text)?.[1] ?? 0);
    const before = await scrape();
    expect(before).toMatch(/^# TYPE turn_total_allocations gauge$/m);
    // (Earlier tests' allocations may still count: coturn counts one down only when it deletes the session, well after a
    // release. So the check is the step up.)
    await withClient(turn.port, async (client) => {
      const { username, password } = restCredentials(turn.secret, '@metrics:example.com');
      expect(errorCode(await client.allocate(username, password))).toBeUndefined();
      expect(udpAllocations(await scrape())).toBe(udpAllocations(before) + 1);
      expect(errorCode(await client.release())).toBeUndefined();
    });
  });

  test('without its certificate it relays over UDP and TCP with TLS off; once issued, start.sh restarts it with TLS', async () => {
    // Started before cert-manager issued anything: the TURN port answers (above), the TLS port does not.
    expect(turn.startupLog).toContain(`no certificate at ${turn.certFile} yet`);
    expect(turn.startupLog).not.toContain('cannot open');
    expect(await tcpOpen(turn.tlsPort)).toBe(false);
    const firstPid = Number(fs.readFileSync(turn.pidFile, 'utf8').trim());

    // LOOPBACK_REWRITES.tls: a self-signed certificate for the TURN host, written where the Secret's files appear.
    const realm = option(RENDERED_CONF, 'realm');
    const staged = path.join(path.dirname(turn.certFile), '..', 'cert-staging');
    fs.mkdirSync(staged, { recursive: true });
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${realm}`,
        '-keyout',
        path.join(staged, 'tls.key'),
        '-out',
        path.join(staged, 'tls.crt'),
      ],
      { stdio: 'pipe' },
    );
    // As the Secret volume shows them: defaultMode 0440, group fsGroup (the pod's user reads them through it).
    for (const f of ['tls.key', 'tls.crt']) asSecretFile(path.join(staged, f), turn.fsGroup);
    // Key first, then the certificate, each by rename (the kubelet also swaps the whole folder at once).
    fs.renameSync(path.join(staged, 'tls.key'), turn.keyFile);
    fs.renameSync(path.join(staged, 'tls.crt'), turn.certFile);

    await turn.program.waitFor('the TLS port', () => tcpOpen(turn.tlsPort), 30_000);
    const restart = turn.program.output().split('certificate issued; restarting with TLS\n');
    expect(restart).toHaveLength(2);
    // With its certificate it has nothing to complain about (the restart's log only).
    expect(restart[1]).toContain(`Certificate file found: ${turn.certFile}`);
    expect(unexpectedErrors(restart[1], { certificate: true })).toEqual([]);
    const secondPid = Number(fs.readFileSync(turn.pidFile, 'utf8').trim());
    expect(secondPid).not.toBe(firstPid);
    expect(fs.readFileSync(path.join(turn.mounts['/run/coturn'], 'turnserver.conf'), 'utf8')).toContain(`cert=${turn.certFile}\npkey=${turn.keyFile}\n`);

    const want = new crypto.X509Certificate(fs.readFileSync(turn.certFile)).fingerprint256;
    const got = await new Promise<string>((resolve, reject) => {
      // Self-signed (tls rewrite), so not verified: the point is which certificate coturn serves.
      const s = tls.connect({ host: LOOPBACK, port: turn.tlsPort, servername: realm, rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate().fingerprint256);
        s.end();
      });
      s.setTimeout(10_000, () => s.destroy(new Error('no TLS handshake within 10 s')));
      s.on('error', reject);
    });
    expect(got).toBe(want);
    // And plain STUN still answers after the restart.
    expect(execFileSync(path.join(TURNUTILS, 'turnutils_stunclient'), ['-p', String(turn.port), LOOPBACK], { encoding: 'utf8', timeout: 10_000 })).toMatch(/UDP reflexive addr/);
  });

  // After the previous test: TLS is on.
  test('TURNS: TLS 1.0 and 1.1 refused; TLS 1.2 only with ECDHE-ECDSA and an AEAD cipher (CBC suites refused); TLS 1.3 with each of its suites', () => {
    const handshake = (...args: string[]) => tlsHandshake(turn.tlsPort, ...args);
    // The client offers the old versions at OpenSSL's security level 0, so a refusal is the server's (its alert).
    expect(['-tls1', '-tls1_1'].map((v) => handshake(v, '-cipher', 'DEFAULT@SECLEVEL=0'))).toEqual(['alert protocol version', 'alert protocol version']);
    const tls12 = [
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-CHACHA20-POLY1305',
      'ECDHE-ECDSA-AES128-SHA',
      'ECDHE-ECDSA-AES256-SHA',
      'ECDHE-ECDSA-AES128-SHA256',
      'ECDHE-ECDSA-AES256-SHA384',
    ];
    expect(Object.fromEntries(tls12.map((c) => [c, handshake('-tls1_2', '-cipher', c)]))).toEqual({
      'ECDHE-ECDSA-AES128-GCM-SHA256': 'TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384': 'TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-CHACHA20-POLY1305': 'TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305',
      'ECDHE-ECDSA-AES128-SHA': 'alert handshake failure',
      'ECDHE-ECDSA-AES256-SHA': 'alert handshake failure',
      'ECDHE-ECDSA-AES128-SHA256': 'alert handshake failure',
      'ECDHE-ECDSA-AES256-SHA384': 'alert handshake failure',
    });
    const tls13 = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
    expect(tls13.map((c) => handshake('-tls1_3', '-ciphersuites', c))).toEqual(tls13.map((c) => `TLSv1.3 ${c}`));
  });

  // Last: it stops the server.
  test("runs in its image as the pod's user: /usr/bin/turnserver with the image's file capability execs, and gains nothing by it", () => {
    const pid = Number(fs.readFileSync(turn.pidFile, 'utf8').trim());
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    // 10478: the pod's runAsUser (charts/common.ts UID.coturn, as rendered).
    expect(find(manifests, 'DaemonSet', 'coturn').spec.template.spec.securityContext.runAsUser).toBe(10478);
    expect(status).toMatch(/^Uid:\t10478\t10478\t10478\t10478$/m);
    expect(status).toMatch(/^NoNewPrivs:\t1$/m);
    // The bounding set holds NET_BIND_SERVICE (bit 10) only; under no_new_privs the file capability is not raised.
    expect(status).toMatch(/^CapBnd:\t0000000000000400$/m);
    expect(status).toMatch(/^CapPrm:\t0000000000000000$/m);
    expect(status).toMatch(/^CapEff:\t0000000000000000$/m);
    // The binary it runs is the image's path, and carries the capability as the image's build file gives it.
    // (Seen from here through the container's root: <root>/usr/bin/turnserver.)
    expect(fs.readlinkSync(`/proc/${pid}/exe`)).toMatch(/\/root-[^/]+\/usr\/bin\/turnserver$/);
    expect(execFileSync('getcap', [`/proc/${pid}/root/usr/bin/turnserver`], { encoding: 'utf8' })).toMatch(/cap_net_bind_service=ep/);
  });

  test('negative control: with every capability dropped, as rendered before the fix, the kernel refuses to exec turnserver', async () => {
    const dropped = structuredClone(manifests);
    const c = find(dropped, 'DaemonSet', 'coturn').spec.template.spec.containers.find((x: any) => x.name === 'coturn');
    c.securityContext.capabilities = { drop: ['ALL'] };
    const error = await startCoturnOf(dropped, config, secrets).then(
      async (t) => {
        await t.program.stop();
        return undefined;
      },
      (e: Error) => e,
    );
    expect(error?.message).toMatch(/Operation not permitted/);
  });

  test("SIGTERM to start.sh (the container's PID 1, what the kubelet signals) stops turnserver within 10 s, well inside the grace period", async () => {
    // coturn 4.18 joins its worker threads before it exits, which takes up to one 5 s event-loop tick (about 4.9 s here;
    // 4.6 stayed under the 5 s this test used to allow). The kubelet waits terminationGracePeriodSeconds before it kills.
    expect(find(manifests, 'DaemonSet', 'coturn').spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(20);
    const turnPid = Number(fs.readFileSync(turn.pidFile, 'utf8').trim());
    process.kill(turn.program.pid!, 'SIGTERM');
    const code = await turn.program.exit(10_000);
    // 143 = turnserver's TERM status, which the script's `wait` passes on.
    expect([0, 143]).toContain(code);
    expect(fs.existsSync(`/proc/${turnPid}`)).toBe(false);
    // Nothing is left behind, not even the watch loop's `sleep` (the trap ends it too).
    expect(processGroup(turn.program.pid!).map((p) => p.comm)).toEqual([]);
  });
});

/**
 * The rendered relay range against the rendered quotas, with the worst client: every allocation asks for EVEN-PORT
 * with the R bit (an even relay port and the odd one above it, as an RTP/RTCP client does), so each takes two ports.
 * coturn's own quota must be what refuses the next one (486), never a lack of ports (508).
 */
describe.each(['small', 'production'] as const)('profile %s: the rendered relay range serves every allocation the rendered quota allows', (profile) => {
  const CONF = configMapFile(rendered(profile === 'production' ? PRODUCTION : {}).manifests, 'coturn-config', 'turnserver.conf');
  const QUOTA = Number(option(CONF, 'total-quota'));
  const USER_QUOTA = Number(option(CONF, 'user-quota'));
  const RANGE = [Number(option(CONF, 'min-port')), Number(option(CONF, 'max-port'))];

  /** Opens one client per user name (in parallel, a batch at a time) and allocates; the clients stay open, holding their allocations. */
  async function allocateAll(server: RunningCoturn, users: string[]): Promise<{ clients: TurnClient[]; replies: StunMessage[] }> {
    const clients: TurnClient[] = [];
    const replies: StunMessage[] = [];
    for (let i = 0; i < users.length; i += 200) {
      const batch = users.slice(i, i + 200);
      const opened = batch.map(() => new TurnClient(server.port));
      clients.push(...opened);
      await Promise.all(opened.map((c) => c.open()));
      replies.push(
        ...(await Promise.all(
          opened.map((c, j) => {
            const { username, password } = restCredentials(server.secret, batch[j]);
            return c.allocate(username, password, { evenPort: true });
          }),
        )),
      );
    }
    return { clients, replies };
  }

  const success = `type 0x${(METHOD.allocate | CLASS.success).toString(16)}`;

  /**
   * What coturn logs when it has no relay port for an allocation, read from its messages only: every line starts
   * with a timestamp whose milliseconds can be 508 too ("14.508+0000"), which a pattern over the whole log matched.
   */
  const PORT_TROUBLE = /no available ports|Cannot create socket|\b508\b/;
  const messages = (log: string) => log.replace(/^\d{4}-\d\d-\d\dT[\d:.]+[+-]\d{4} /gm, '');

  test(`total-quota ${QUOTA}, user-quota ${USER_QUOTA}: all ${QUOTA} pair allocations succeed, the next is refused by the quota (486), not for ports`, async () => {
    // The range is moved to free ports (LOOPBACK_REWRITES.ports), keeping its size and the parity of its first port.
    const server = await startCoturn(RANGE[1] - RANGE[0] + 1, CONF);
    let clients: TurnClient[] = [];
    try {
      // Users of user-quota allocations each, as many as the total quota takes (the last may have fewer).
      const users = Array.from({ length: QUOTA }, (_, i) => `@u${Math.floor(i / USER_QUOTA)}:example.com`);
      const started = Date.now();
      const all = await allocateAll(server, users);
      clients = all.clients;
      expect(all.replies.map(describeReply).filter((r) => r !== success)).toEqual([]);
      const ports = all.replies.map((r) => readXorAddress(r.attrs.get(ATTR.xorRelayedAddress)!, r.txid).port);
      expect(new Set(ports).size).toBe(QUOTA);
      expect(ports.filter((p) => p % 2 !== 0 || p < server.relayPorts[0] || p + 1 > server.relayPorts[1])).toEqual([]);
      // The default is sized exactly: every pair of the range is in use now.
      expect(QUOTA).toBe((server.relayPorts[1] - server.relayPorts[0] + 1) / 2);

      // One more, from a user with nothing allocated: the total quota refuses it. One more for a full user: the user quota.
      const more = await allocateAll(server, ['@latecomer:example.com', users[0]]);
      clients.push(...more.clients);
      expect(more.replies.map(describeReply)).toEqual([expect.stringMatching(/^error 486 /), expect.stringMatching(/^error 486 /)]);
      await sleep(200);
      const log = server.program.output();
      expect(messages(log)).not.toMatch(PORT_TROUBLE);
      process.stderr.write(`coturn, profile ${profile}: ${QUOTA} pair allocations in ${Date.now() - started} ms\n`);
    } finally {
      for (const c of clients) c.close();
      await server.program.stop();
    }
  }, 120_000);

  (profile === 'small' ? test : test.skip)(
    'the same quota with the old 101-port range (49152-49252): coturn runs out of ports at 50 pairs and answers 508',
    async () => {
      const server = await startCoturn(101, CONF);
      let clients: TurnClient[] = [];
      try {
        const users = Array.from({ length: 60 }, (_, i) => `@old${i}:example.com`);
        const all = await allocateAll(server, users);
        clients = all.clients;
        const codes = all.replies.map((r) => errorCode(r) ?? 200);
        expect(codes.filter((c) => c === 200)).toHaveLength(50);
        expect(codes.filter((c) => c !== 200)).toEqual(Array(10).fill(508));
        // The control of the check above: coturn says so in its messages.
        await sleep(200);
        expect(messages(server.program.output())).toMatch(PORT_TROUBLE);
      } finally {
        for (const c of clients) c.close();
        await server.program.stop();
      }
    },
    60_000,
  );
});

/**
 * docs/operations.md, "Rotating secrets": coturn takes several static-auth-secret lines and accepts credentials made with any of
 * them, so the TURN shared secret is rotated with an overlap. Each phase is the state of the Secret kudo-turn in
 * kudo-media after one step of the procedure, and coturn restarted on it (start.sh reads the Secret volume when it
 * starts). Clients hold credentials made with the old and with the new secret, unexpired: our client reports the
 * exact answer to its Allocate, turnutils_uclient (-W: it makes REST credentials from the secret itself) whether it
 * got a relay.
 */
describe(`coturn ${TURN_VERSION}: rotating the TURN shared secret with an overlap (docs/operations.md, "Rotating secrets")`, () => {
  /** The optional second secret's key, in the Secret coturn reads (secrets.refs.turnSharedSecret). */
  const SECOND = `${config.secrets.refs.turnSharedSecret.name}/second_shared_secret`;

  async function phase(
    main: string,
    second: string | undefined,
    held: Record<string, string>,
  ): Promise<{ lines: string[]; allocate: Record<string, string>; uclient: Record<string, boolean> }> {
    const server = await startCoturnOf(manifests, config, { ...secrets, turnSharedSecret: main, ...(second !== undefined ? { [SECOND]: second } : {}) });
    try {
      const allocate: Record<string, string> = {};
      const relayed: Record<string, boolean> = {};
      for (const [name, secret] of Object.entries(held)) {
        allocate[name] = await withClient(server.port, async (client) => {
          const { username, password } = restCredentials(secret, `@${name}:example.com`);
          const reply = await client.allocate(username, password);
          if (errorCode(reply) === undefined) await client.release();
          return errorCode(reply) === undefined ? 'relay' : `error ${errorCode(reply)}`;
        });
        const r = spawnSync(
          path.join(TURNUTILS, 'turnutils_uclient'),
          ['-v', '-c', '-n', '0', '-e', LOOPBACK, '-W', secret, '-u', `@${name}-uclient:example.com`, '-p', String(server.port), LOOPBACK],
          {
            encoding: 'utf8',
            timeout: 30_000,
          },
        );
        relayed[name] = /Received relay addr: /.test(`${r.stdout}${r.stderr}`);
      }
      return { lines: server.runtimeConf.split('\n').filter((l) => l.startsWith('static-auth-secret=')), allocate, uclient: relayed };
    } finally {
      await server.program.stop();
    }
  }

  test('during the window credentials made with the old and the new secret both get relays; afterwards the old ones are refused (401)', async () => {
    const old = secrets.turnSharedSecret;
    // What the runbook's command makes: the generator's shape (32 random bytes in URL-safe base64).
    const next = crypto.randomBytes(32).toString('base64url');
    const held = { old, next };
    const both = { allocate: { old: 'relay', next: 'relay' }, uclient: { old: true, next: true } };

    // Before: the generated secret only.
    expect(await phase(old, undefined, held)).toEqual({ lines: [`static-auth-secret=${old}`], allocate: { old: 'relay', next: 'error 401' }, uclient: { old: true, next: false } });
    // 1. The new secret added as the second one; coturn restarted: both.
    expect(await phase(old, next, held)).toEqual({ lines: [`static-auth-secret=${old}`, `static-auth-secret=${next}`], ...both });
    // 2. Swapped: the new secret is the main one (what Synapse and LiveKit sign with), the old one the second: still both.
    expect(await phase(next, old, held)).toEqual({ lines: [`static-auth-secret=${next}`, `static-auth-secret=${old}`], ...both });
    // 3. After credentialTtlSeconds the old secret is removed; coturn restarted: credentials made with it are refused.
    expect(await phase(next, undefined, held)).toEqual({
      lines: [`static-auth-secret=${next}`],
      allocate: { old: 'error 401', next: 'relay' },
      uclient: { old: false, next: true },
    });
  }, 240_000);
});

describe(`coturn ${TURN_VERSION} with coturn.tls.minVersion "1.3"`, () => {
  test('TURNS refuses TLS 1.2 (the protocol-version alert) and speaks TLS 1.3', async () => {
    const conf = configMapFile(rendered({ coturn: { tls: { minVersion: '1.3' } } }).manifests, 'coturn-config', 'turnserver.conf');
    expect(conf).toContain('\nno-tlsv1_2\n');
    const server = await startCoturn(20, conf);
    try {
      // A self-signed certificate where the Secret's files appear (as the default render's test issues one), key first.
      const staged = path.join(path.dirname(server.certFile), '..', 'cert-staging');
      fs.mkdirSync(staged, { recursive: true });
      const [key, cert] = [path.join(staged, 'tls.key'), path.join(staged, 'tls.crt')];
      const subject = `/CN=${option(conf, 'realm')}`;
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', subject, '-keyout', key, '-out', cert],
        {
          stdio: 'pipe',
        },
      );
      for (const f of [key, cert]) asSecretFile(f, server.fsGroup);
      fs.renameSync(key, server.keyFile);
      fs.renameSync(cert, server.certFile);
      await server.program.waitFor('the TLS port', () => tcpOpen(server.tlsPort), 30_000);
      expect(tlsHandshake(server.tlsPort, '-tls1_2')).toBe('alert protocol version');
      expect(tlsHandshake(server.tlsPort, '-tls1_3', '-ciphersuites', 'TLS_AES_128_GCM_SHA256')).toBe('TLSv1.3 TLS_AES_128_GCM_SHA256');
    } finally {
      await server.program.stop();
      if (server.program.pid) for (const p of processGroup(server.program.pid)) killQuietly(p.pid);
    }
  }, 60_000);
});
