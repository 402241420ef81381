/**
 * LiveKit on a node with an IPv6 address too, started as the rendered Deployment starts it (./livekit): the address
 * lookup runs for real against an API whose Node has an IPv4 and an IPv6 ExternalIP, and LiveKit runs in a
 * PodNetwork given an IPv6 address beside its IPv4 one. A participant joining is offered host candidates of both
 * families, each at the Node's ExternalIP of that family.
 */
import { execFileSync } from 'child_process';
import { SignalResponse } from '@livekit/protocol';
import * as fs from 'fs';
import * as yaml from 'js-yaml';
import { AccessToken, RoomServiceClient } from 'livekit-server-sdk';
import WebSocket from 'ws';
import { FakeKubeApi } from '../fake-kube-api';
import { generatedSecrets, httpJson, PodNetwork, Program, programs, rendered, tail } from './harness';
import { LiveKitRun, prepareLiveKit, startLiveKit } from './livekit';
import { RunningRedis, startRedis } from './redis';

const LIVEKIT_VERSION = execFileSync(programs().livekitServer, ['--version'], { encoding: 'utf8' }).trim();
const { config, manifests } = rendered();
const NODE_NAME = 'kudo-node-6';
const EXTERNAL_V4 = '203.0.113.7';
const EXTERNAL_V6 = '2001:db8:6b75::7';
// The pod's own IPv6, on its link to this host (a unique-local address; no DAD, so it is usable at once).
const POD_V6 = 'fd6b:7564:6f00::2';

let secrets: Record<string, string>;
let network: PodNetwork;
let redis: RunningRedis;
let api: FakeKubeApi;
let run: LiveKitRun;
let livekit: Program;
let url: string;
let keys: [string, string];
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
});

afterAll(async () => {
  if (livekit?.running) await new RoomServiceClient(url, keys[0], keys[1]).deleteRoom(room).catch(() => undefined);
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
});
