/**
 * coturn over IPv6, started as the rendered DaemonSet starts it (./coturn) on a node whose address lookup found an
 * IPv6 too: start.sh makes coturn listen and relay on it beside the IPv4. Here the node's addresses are 127.0.0.1 and
 * ::1 (LOOPBACK_REWRITES.externalIp). A client over IPv6 loopback allocates an IPv6 relay, and coturn refuses
 * permissions for the IPv6 peers the rendered denied-peer-ip lines name, IPv4-mapped ones included.
 */
import * as crypto from 'crypto';
import * as dgram from 'dgram';
import { RunningCoturn, startCoturn, TURN_VERSION } from './coturn';
import { configMapFile, generatedSecrets, rendered, sleep } from './harness';
import { ATTR, decodeStun, encodeStun, errorCode, MAGIC_COOKIE, METHOD, readXorAddress, StunMessage, UDP_TRANSPORT, xorAddress } from './stun';

const { config, manifests } = rendered();
const RENDERED_CONF = configMapFile(manifests, 'coturn-config', 'turnserver.conf');
const V4 = '127.0.0.1';
const V6 = '::1';

/** One UDP socket talking TURN to coturn at `server` (either family); REST credentials signed with the shared secret. */
class Client {
  private readonly socket: dgram.Socket;
  private readonly waiting = new Map<string, (m: StunMessage) => void>();
  private auth?: { attrs: [number, Buffer][]; key: Buffer };

  constructor(
    private readonly server: string,
    private readonly port: number,
  ) {
    this.socket = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
    this.socket.on('message', (buf) => {
      if (buf.length >= 20 && buf.readUInt32BE(4) === MAGIC_COOKIE) {
        const m = decodeStun(buf);
        this.waiting.get(m.txid.toString('hex'))?.(m);
      }
    });
  }

  open(): Promise<void> {
    return new Promise((resolve) => this.socket.bind(0, this.server, () => resolve()));
  }

  close(): void {
    this.socket.close();
  }

  /** Sends, resending every 500 ms, until the answer with its transaction ID comes. */
  request(type: number, attrs: (txid: Buffer) => [number, Buffer][], withAuth: boolean): Promise<StunMessage> {
    const txid = crypto.randomBytes(12);
    const message = encodeStun(type, txid, [...attrs(txid), ...(withAuth ? this.auth!.attrs : [])], withAuth ? this.auth!.key : undefined);
    return new Promise((resolve, reject) => {
      let tries = 0;
      let timer: NodeJS.Timeout;
      const send = () => {
        if (tries++ === 8) return reject(new Error(`no answer from [${this.server}]:${this.port}`));
        this.socket.send(message, this.port, this.server);
        timer = setTimeout(send, 500);
      };
      this.waiting.set(txid.toString('hex'), (m) => {
        clearTimeout(timer);
        this.waiting.delete(txid.toString('hex'));
        resolve(m);
      });
      send();
    });
  }

  /** An Allocate for a UDP relay; of the family `family` asks for with REQUESTED-ADDRESS-FAMILY (RFC 6156), else the server's default. */
  async allocate(secret: string, family?: 4 | 6): Promise<StunMessage> {
    const asked: [number, Buffer][] = family === undefined ? [] : [[ATTR.requestedAddressFamily, Buffer.from([family === 6 ? 0x02 : 0x01, 0, 0, 0])]];
    const udp = (): [number, Buffer][] => [[ATTR.requestedTransport, UDP_TRANSPORT], ...asked];
    const challenge = await this.request(METHOD.allocate, udp, false);
    if (errorCode(challenge) !== 401) throw new Error(`expected 401, got ${errorCode(challenge)}`);
    const realm = challenge.attrs.get(ATTR.realm)!.toString();
    const username = `${Math.floor(Date.now() / 1000) + 3600}:@alice:example.com`;
    const password = crypto.createHmac('sha1', secret).update(username).digest('base64');
    this.auth = {
      attrs: [
        [ATTR.username, Buffer.from(username)],
        [ATTR.realm, Buffer.from(realm)],
        [ATTR.nonce, challenge.attrs.get(ATTR.nonce)!],
      ],
      key: crypto.createHash('md5').update(`${username}:${realm}:${password}`).digest(),
    };
    return this.request(METHOD.allocate, udp, true);
  }

  createPermission(peer: string): Promise<StunMessage> {
    return this.request(METHOD.createPermission, (txid) => [[ATTR.xorPeerAddress, xorAddress(peer, 9, txid)]], true);
  }
}

async function withClient<T>(server: string, f: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client(server, turn.port);
  await c.open();
  try {
    return await f(c);
  } finally {
    c.close();
  }
}

let secrets: Record<string, string>;
let turn: RunningCoturn;

beforeAll(async () => {
  secrets = await generatedSecrets(manifests);
  turn = await startCoturn(manifests, config, secrets, 20, RENDERED_CONF, [], `${V4},${V6}`);
});

afterAll(async () => {
  await turn?.program.stop();
});

describe(`coturn ${TURN_VERSION} on a node with an IPv6 address too`, () => {
  test("start.sh hands coturn the node's IPv6 to listen and relay on, after the IPv4 and its public mapping", () => {
    expect(turn.runtimeConf.split('\n').filter((l) => /^(external-ip|listening-ip|relay-ip)=/.test(l))).toEqual([
      `external-ip=${V4}/${V4}`,
      `listening-ip=${V4}`,
      `relay-ip=${V4}`,
      `listening-ip=${V6}`,
      `relay-ip=${V6}`,
    ]);
  });

  test('a client reaches it over IPv6 and gets the relay family it asks for, IPv4 when it does not ask (RFC 6156); over IPv4 too', async () => {
    for (const [server, asked, family, ip] of [
      [V6, 6, 6, '::1'],
      [V6, undefined, 4, '127.0.0.1'],
      [V4, 6, 6, '::1'],
      [V4, undefined, 4, '127.0.0.1'],
    ] as const) {
      await withClient(server, async (c) => {
        const reply = await c.allocate(turn.secret, asked);
        expect([server, asked, reply.type, errorCode(reply)]).toEqual([server, asked, 0x0103, undefined]); // an Allocate success response
        const relay = readXorAddress(reply.attrs.get(ATTR.xorRelayedAddress)!, reply.txid);
        expect([server, asked, relay.family, relay.ip]).toEqual([server, asked, family, ip]);
        expect(relay.port).toBeGreaterThanOrEqual(turn.relayPorts[0]);
        expect(relay.port).toBeLessThanOrEqual(turn.relayPorts[1]);
      });
    }
  });

  test('refuses permissions (403) for IPv6 peers in the rendered denied ranges, IPv4-mapped and NAT64 ones included; a public IPv6 peer is allowed', async () => {
    // Refused by a rendered denied-peer-ip line, which coturn names: an IPv4 private address reached as IPv4-mapped
    // IPv6 (coturn compares it with IPv6 ranges only), NAT64's local-use prefix and both documentation prefixes.
    const byRange: Record<string, string> = {
      '::ffff:a00:1': '::ffff:0:0-::ffff:ffff:ffff',
      '64:ff9b:1::a00:1': '64:ff9b:1::-64:ff9b:1:ffff:ffff:ffff:ffff:ffff',
      '2001:db8::1': '2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
      '3fff::1': '3fff::-3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff',
    };
    // Refused by coturn 4.18 itself before it reads the lines (their rendered ranges are the second line of defence):
    // link-local, unique-local and site-local scopes, the embedded IPv4 of a mapped or NAT64 address included, and ::.
    const byCoturn = ['::ffff:a9fe:a9fe', '64:ff9b::a9fe:a9fe', 'fd00:ec2::254', 'fec0::1', '::'];
    const before = turn.program.output().length;
    await withClient(V6, async (c) => {
      expect(errorCode(await c.allocate(turn.secret, 6))).toBeUndefined();
      for (const peer of [...Object.keys(byRange), ...byCoturn]) expect([peer, errorCode(await c.createPermission(peer))]).toEqual([peer, 403]);
      // A public IPv6 peer is allowed (a permission sends nothing to it).
      expect(errorCode(await c.createPermission('2606:4700:4700::1111'))).toBeUndefined();
    });
    // And public IPv4 peers on an IPv4 relay: coturn compares an IPv4 peer with the IPv6 lines too, as ::a.b.c.d, so an
    // IPv6 line over ::/96 would refuse them all (a rendering had one: every one of these got 403).
    await withClient(V4, async (c) => {
      expect(errorCode(await c.allocate(turn.secret, 4))).toBeUndefined();
      for (const peer of ['8.8.8.8', '1.1.1.1', '93.184.216.34']) expect([peer, errorCode(await c.createPermission(peer))]).toEqual([peer, undefined]);
    });
    await sleep(200);
    const log = turn.program.output().slice(before);
    const said = Object.fromEntries([...log.matchAll(/A peer IP (\S+) denied in the range: (\S+)/g)].map((m) => [m[1], m[2]]));
    // coturn prints a mapped address with its IPv4 dotted.
    expect(said).toEqual({
      '::ffff:10.0.0.1': byRange['::ffff:a00:1'],
      '64:ff9b:1::a00:1': byRange['64:ff9b:1::a00:1'],
      '2001:db8::1': byRange['2001:db8::1'],
      '3fff::1': byRange['3fff::1'],
    });
    for (const range of Object.values(byRange)) expect(RENDERED_CONF.split('\n')).toContain(`denied-peer-ip=${range}`);
    expect(log.match(/denied: link-local\/unique-local\/site-local scope is not a permitted relay peer/g)).toHaveLength(4);
  });
});
