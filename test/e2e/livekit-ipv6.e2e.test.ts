/**
 * LiveKit on a node with an IPv6 address too, started as the rendered Deployment starts it (./livekit): the address
 * lookup runs for real against an API whose Node has an IPv4 and an IPv6 ExternalIP, and LiveKit runs in a
 * PodNetwork given an IPv6 address beside its IPv4 one. A participant joining is offered host candidates of both
 * families, each at the Node's ExternalIP of that family.
 *
 * The Node's IPv6 is the namespace's own too, as on a host-network node whose public IPv6 is on its interface, and
 * this host routes to it across the namespace's link. Two participants of LiveKit's Go SDK
 * (scripts/capacity/livekit-load) restricted to IPv6 signal through an IPv6 stand-in for the Ingress (LiveKit's API
 * listens on the node's cluster address only, --bind "$HOST_IP", so the Ingress is where an IPv6 client's signal
 * arrives) and exchange audio and video with LiveKit at the Node's IPv6.
 */
import { execFileSync } from 'child_process';
import { SignalResponse } from '@livekit/protocol';
import * as fs from 'fs';
import * as net from 'net';
import * as yaml from 'js-yaml';
import { AccessToken, RoomServiceClient } from 'livekit-server-sdk';
import WebSocket from 'ws';
import { FakeKubeApi } from '../fake-kube-api';
import { generatedSecrets, httpJson, PodNetwork, Program, programs, rendered, tail } from './harness';
import { LiveKitRun, prepareLiveKit, startLiveKit } from './livekit';
import { callInRoom, installLoadClient } from './livekit-load';
import { counted } from './pod-behind-node';
import { RunningRedis, startRedis } from './redis';

const LIVEKIT_VERSION = execFileSync(programs().livekitServer, ['--version'], { encoding: 'utf8' }).trim();
const { config, manifests } = rendered();
const NODE_NAME = 'kudo-node-6';
const EXTERNAL_V4 = '203.0.113.7';
const EXTERNAL_V6 = '2001:db8:6b75::7';
// The pod's own IPv6, on its link to this host (a unique-local address; no DAD, so it is usable at once).
const POD_V6 = 'fd6b:7564:6f00::2';
// This host's, on the same link.
const HOST_V6 = 'fd6b:7564:6f00::1';

let secrets: Record<string, string>;
let network: PodNetwork;
let redis: RunningRedis;
let api: FakeKubeApi;
let run: LiveKitRun;
let livekit: Program;
let url: string;
let keys: [string, string];
let loadClient: string;
/** The Ingress's stand-in: a TCP relay on this host's IPv6 to LiveKit's API port, and the addresses it was reached from. */
let ingress: net.Server;
const ingressFrom: string[] = [];
const room = `e2e-v6-${process.pid}`;

beforeAll(async () => {
  secrets = await generatedSecrets(manifests);
  network = new PodNetwork();
  const podIf = /^\d+: ([^@:]+)/m.exec(
    execFileSync('ip', ['netns', 'exec', network.name, 'ip', '-o', 'link', 'show'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => !/: lo:/.test(l))
      .join('\n'),
  )![1];
  execFileSync('ip', ['netns', 'exec', network.name, 'ip', '-6', 'addr', 'add', `${POD_V6}/64`, 'dev', podIf, 'nodad']);
  // The Node's IPv6 on the namespace's interface, and this host's route to it: what a client on the Internet reaches.
  execFileSync('ip', ['netns', 'exec', network.name, 'ip', '-6', 'addr', 'add', `${EXTERNAL_V6}/128`, 'dev', podIf, 'nodad']);
  const hostIf = /^\d+: (\S+)/.exec(execFileSync('ip', ['-o', '-4', 'addr', 'show', 'to', `${network.hostAddress}/32`], { encoding: 'utf8' }))![1];
  execFileSync('ip', ['-6', 'addr', 'add', `${HOST_V6}/64`, 'dev', hostIf, 'nodad']);
  execFileSync('ip', ['-6', 'route', 'replace', `${EXTERNAL_V6}/128`, 'via', POD_V6, 'dev', hostIf]);
  loadClient = installLoadClient();
  redis = await startRedis(manifests, config, secrets, network);
  api = new FakeKubeApi();
  const apiUrl = await api.start();
  api.putNode(NODE_NAME, [
    { type: 'InternalIP', address: network.podAddress },
    { type: 'ExternalIP', address: EXTERNAL_V4 },
    { type: 'ExternalIP', address: EXTERNAL_V6 },
  ]);
  run = await prepareLiveKit(manifests, config, secrets, network, redis.port, apiUrl, NODE_NAME);
  livekit = startLiveKit(run);
  url = `http://${network.podAddress}:${run.port}`;
  await livekit.waitFor('GET / 200', async () => (await httpJson(`${url}/`)).status === 200, 60_000);
  keys = Object.entries(yaml.load(fs.readFileSync(run.config.key_file, 'utf8')) as Record<string, string>)[0];
  ingress = net.createServer((client) => {
    ingressFrom.push(client.remoteAddress!);
    const upstream = net.connect(run.port, network.podAddress);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => ingress.listen(0, HOST_V6, resolve));
});

afterAll(async () => {
  if (livekit?.running) for (const r of [room, `${room}-call-0`]) await new RoomServiceClient(url, keys[0], keys[1]).deleteRoom(r).catch(() => undefined);
  ingress?.close();
  await livekit?.stop();
  await redis?.program.stop();
  await api?.stop();
  network?.remove();
});

describe(`${LIVEKIT_VERSION} on a node with an IPv6 ExternalIP too`, () => {
  test('the rendered lookup writes both addresses, and LiveKit takes one of each family', () => {
    expect(run.nodeIp).toBe(`${EXTERNAL_V4},${EXTERNAL_V6}`);
    expect(livekit.output()).toContain(`using explicit node IP for NAT1To1Ips\t{"ip": {"V4":"${EXTERNAL_V4}","V6":"${EXTERNAL_V6}"}`);
  });

  test("a joining participant is offered host candidates of both families, each at the Node's ExternalIP of its family, on the rendered ports", async () => {
    const token = new AccessToken(keys[0], keys[1], { identity: 'alice', ttl: '10m' });
    token.addGrant({ roomJoin: true, room });
    const ws = new WebSocket(`ws://${network.podAddress}:${run.port}/rtc?access_token=${await token.toJwt()}&protocol=16&sdk=js&auto_subscribe=1`);
    const messages: SignalResponse[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no signal message within 15 s:\n${tail(livekit.output())}`)), 15_000);
      ws.on('message', (data) => {
        clearTimeout(timer);
        messages.push(SignalResponse.fromBinary(new Uint8Array(data as Buffer)));
        resolve();
      });
      ws.once('error', reject);
    });
    const hosts = () =>
      messages
        .filter((m) => m.message.case === 'trickle')
        .map((m) => (JSON.parse((m.message.value as any).candidateInit).candidate as string).split(' '))
        .filter((c) => c[7] === 'host');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !(hosts().some((c) => c[4].includes(':')) && hosts().some((c) => !c[4].includes(':')))) await new Promise((r) => setTimeout(r, 100));
    ws.close();

    // candidate:<foundation> <component> <protocol> <priority> <address> <port> typ host ...
    const byFamily = (v6: boolean) => hosts().filter((c) => c[4].includes(':') === v6);
    expect([...new Set(byFamily(false).map((c) => c[4]))]).toEqual([EXTERNAL_V4]);
    expect([...new Set(byFamily(true).map((c) => c[4]))]).toEqual([EXTERNAL_V6]);
    const inRange = (c: string[]) => c[2].toLowerCase() === 'udp' && Number(c[5]) >= run.config.rtc.port_range_start && Number(c[5]) <= run.config.rtc.port_range_end;
    expect(byFamily(true).some(inRange)).toBe(true);
    expect(byFamily(false).some(inRange)).toBe(true);
    // Neither the pod's own addresses: every candidate is rewritten to the Node's.
    expect(hosts().map((c) => c[4])).not.toContain(POD_V6);
    expect(hosts().map((c) => c[4])).not.toContain(network.podAddress);
  });

  test("two participants of LiveKit's Go SDK restricted to IPv6 complete a call: signal through the Ingress's IPv6, media at the Node's IPv6 and none over IPv4", async () => {
    const { port_range_start: first, port_range_end: last } = run.config.rtc;
    // Packets to LiveKit's UDP range: from this host to the Node's IPv6 (the host candidate LiveKit advertised), and any over IPv4.
    execFileSync('ip', ['netns', 'exec', network.name, 'nft', '-f', '-'], {
      input: [
        'table inet kudo_v6_call {',
        '  chain input {',
        '    type filter hook input priority filter; policy accept;',
        `    ip6 saddr ${HOST_V6} ip6 daddr ${EXTERNAL_V6} udp dport ${first}-${last} counter comment "media over IPv6"`,
        `    meta nfproto ipv4 udp dport ${first}-${last} counter comment "media over IPv4"`,
        '  }',
        '}',
        '',
      ].join('\n'),
    });
    const count = () => ['media over IPv6', 'media over IPv4'].map((c) => counted(network.name, c));
    const before = count();
    const { port } = ingress.address() as net.AddressInfo;
    const end = await callInRoom(loadClient, `ws://[${HOST_V6}]:${port}`, keys[0], keys[1], `${room}-call`, [livekit], ['-ipv6-only']);
    const [media6, media4] = count().map((n, i) => n - before[i]);
    expect(end).toMatchObject({ joined: 2, joinErrors: 0, publishedTracks: 4, subscribedTracks: 4, receivingTracks: 4 });
    expect(end.lossPercent ?? 0).toBeLessThan(5);
    // Two participants publishing Opus and VP8 for 8 s and more send about 2000 packets (1987 to 2031 in five runs):
    // they went to the Node's IPv6, and nothing to LiveKit's UDP ports over IPv4.
    expect({ media6: media6 > 1000, media4 }).toEqual({ media6: true, media4: 0 });
    // Both participants' signal connections came to the Ingress from this host's IPv6.
    expect(ingressFrom.length).toBeGreaterThanOrEqual(2);
    expect([...new Set(ingressFrom)]).toEqual([HOST_V6]);
  });
});
