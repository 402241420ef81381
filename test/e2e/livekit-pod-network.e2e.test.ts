/**
 * livekit.hostNetwork false, with the real LiveKit: the rendered StatefulSet's replica 1 (pod livekit-1), its
 * config, init steps, start script and Secret volumes as in test/e2e/livekit.e2e.test.ts, in a network namespace of
 * its own behind a node that translates addresses as its NodePort Service livekit-rtc-1 would.
 *
 *   this host (the client) ── 10.254.n.0/30 ── node namespace (Redis) ── 10.253.0.0/30 ── pod namespace (LiveKit)
 *
 * The node's address on the first link is its ExternalIP (the fake API's Node says so, and LiveKit's lookup step
 * reads it). In the node namespace nftables DNATs that address's ports to the pod, one rule per port of the rendered
 * Service livekit-rtc-1 (nodePort -> pod:targetPort), plus LiveKit's API port, which stands for the Ingress. The
 * node forwards without SNAT, as kube-proxy does for externalTrafficPolicy: Local. This host has no route to the pod's
 * address: whatever reaches LiveKit went through the translation.
 *
 * The client is LiveKit's Go SDK (scripts/capacity/livekit-load, built by scripts/capacity/install.sh): two
 * participants join one room, each publishes Opus and VP8 as real RTP over ICE, DTLS and SRTP, and subscribes to the
 * other's.
 *
 * The second part runs replicas 0 and 1 side by side on one node, sharing the node's Redis, with both Services
 * translated and the API to replica 0: a call signalled there, in a room the other replica holds, must get its media
 * from that replica through that replica's Service (LiveKit's multi-node routing, relayed through Redis).
 */
import { execFileSync } from 'child_process';
import * as path from 'path';
import { SignalResponse } from '@livekit/protocol';
import * as fs from 'fs';
import * as yaml from 'js-yaml';
import { AccessToken, RoomServiceClient } from 'livekit-server-sdk';
import WebSocket from 'ws';
import { FakeKubeApi } from '../fake-kube-api';
import { configMapFile, find, generatedSecrets, httpJson, PodNetwork, Program, programs, rendered, tail, tcpOpen } from './harness';
import { LiveKitRun, startLiveKit } from './livekit';
import { callInRoom, installLoadClient } from './livekit-load';
import { counted, PodBehindNode, prepareLiveKitInPod, serviceRules, startNodeServices } from './pod-behind-node';
import { RunningRedis } from './redis';

const LIVEKIT_VERSION = execFileSync(programs().livekitServer, ['--version'], { encoding: 'utf8' }).trim();
const { config, manifests } = rendered({ livekit: { hostNetwork: false, replicas: 2, rtc: { udpPort: 31000, tcpPort: 31100 } } });
const NODE_NAME = 'kudo-media-node-1';
const POD = 'livekit-1';
/** LiveKit's API port, as rendered: the Ingress's backend. */
const API_PORT = (yaml.load(configMapFile(manifests, 'livekit-config', 'config.yaml')) as any).port as number;

/** The fields LiveKit logs when it starts: its ports, node ID and advertised address. */
function startFields(p: Program): any {
  const started = /starting LiveKit server\t(\{.*\})/.exec(p.output());
  if (started === null) throw new Error(`${p.name} has not started:\n${tail(p.output())}`);
  return JSON.parse(started[1]);
}

describe(`${LIVEKIT_VERSION}, livekit.hostNetwork false: replica ${POD} behind its NodePort Service`, () => {
  let node: PodNetwork;
  let pod: PodBehindNode;
  let nodeAddress: string;
  let secrets: Record<string, string>;
  let redis: RunningRedis;
  let api: FakeKubeApi;
  let run: LiveKitRun;
  let livekit: Program;
  let apiKey: string;
  let apiSecret: string;
  let loadClient: string;
  const service = find(manifests, 'Service', 'livekit-rtc-1');
  const room = `e2e-pod-${process.pid}`;

  beforeAll(async () => {
    loadClient = installLoadClient();
    secrets = await generatedSecrets(manifests);
    node = new PodNetwork();
    pod = new PodBehindNode(node);
    nodeAddress = node.podAddress;
    execFileSync('ip', ['netns', 'exec', node.name, 'nft', '-f', '-'], { input: serviceRules(nodeAddress, [[service, pod.podAddress]], API_PORT) });
    // In the pod: count what reaches the mux port from the client's own address (this host's, on the node's link).
    execFileSync('ip', ['netns', 'exec', pod.name, 'nft', '-f', '-'], {
      input: [
        'table ip kudo_pod {',
        '  chain input {',
        '    type filter hook input priority filter; policy accept;',
        `    ip saddr ${node.hostAddress} udp dport ${service.spec.ports[0].targetPort} counter comment "from the client"`,
        '  }',
        '}',
        '',
      ].join('\n'),
    });
    // Redis on the node: LiveKit reaches it across the pod's link, this host (which starts it) across the node's.
    const on = await startNodeServices({ manifests, config, secrets }, node, NODE_NAME);
    ({ redis, api } = on);
    run = await prepareLiveKitInPod({ manifests, config, secrets }, pod, on, POD);
    livekit = startLiveKit(run);
    await livekit.waitFor('GET / 200 through the node', async () => (await httpJson(`http://${nodeAddress}:${run.port}/`).catch(() => ({ status: 0 }))).status === 200, 60_000);
    const keys = yaml.load(fs.readFileSync(run.config.key_file, 'utf8')) as Record<string, string>;
    [[apiKey, apiSecret]] = Object.entries(keys);
  });
  afterAll(async () => {
    if (livekit?.running) await new RoomServiceClient(`http://${nodeAddress}:${run.port}`, apiKey, apiSecret).deleteRoom(room).catch(() => undefined);
    await livekit?.stop();
    await redis?.program.stop();
    await api?.stop();
    pod?.remove();
    node?.remove();
  });

  test('the rendered config is accepted as it is (ports included), and the start script gives replica 1 the ports of Service livekit-rtc-1', () => {
    // Only the paths, Redis's address (the node's) and the password the config step adds differ from the ConfigMap:
    // every port is the rendered one.
    const leaves = (o: any, at = ''): string[] =>
      o !== null && typeof o === 'object' ? Object.entries(o).flatMap(([k, v]) => leaves(v, at ? `${at}.${k}` : k)) : [`${at}=${JSON.stringify(o)}`];
    const rendered = new Set(leaves(run.rendered));
    const changed = leaves(run.config)
      .filter((l) => !rendered.has(l))
      .map((l) => l.split('=')[0]);
    expect(changed.sort()).toEqual(['key_file', 'redis.address', 'redis.password', 'rtc.turn_servers.0.secret_file', 'rtc.turn_servers.1.secret_file']);
    expect(run.config.port).toBe(run.rendered.port);
    expect(run.config.rtc.udp_port).toBe(31000);
    expect(run.config.rtc.tcp_port).toBe(31100);
    expect(service.spec.ports.map((p: any) => `${p.protocol} ${p.nodePort}->${p.targetPort}`)).toEqual(['UDP 31001->31001', 'TCP 31101->31101']);
    const started = /starting LiveKit server\t(\{.*\})/.exec(livekit.output());
    expect(started).not.toBeNull();
    const fields = JSON.parse(started![1]);
    expect(fields['rtc.portTCP']).toBe(31101);
    expect(fields['rtc.portUDP']).toEqual({ Start: 31001, End: 0 });
    expect(fields.nodeIP).toBe(nodeAddress);
    const listening = execFileSync('ip', ['netns', 'exec', pod.name, 'ss', '-Hltnp'], { encoding: 'utf8' });
    expect(listening).toMatch(/\*:31101 /);
    // Replica 0's TCP port is not this replica's.
    expect(listening).not.toMatch(/:31100 /);
    // Nothing to warn about in the config (a strict-config or deprecation problem would be logged before the start).
    const startup = livekit.output().slice(0, livekit.output().indexOf('starting LiveKit server'));
    expect(startup.split('\n').filter((l) => /\t(WARN|ERROR|FATAL)\t/.test(l))).toEqual([]);
  });

  test('the pod has no address of the node: this host reaches it only through the translation', async () => {
    expect(execFileSync('ip', ['-n', pod.name, '-o', '-4', 'addr', 'show'], { encoding: 'utf8' })).not.toContain(nodeAddress);
    // This host knows no route to the pod's link.
    expect(execFileSync('ip', ['-4', 'route', 'show', 'match', pod.podAddress], { encoding: 'utf8' })).not.toContain('10.253.');
    expect(await tcpOpen(service.spec.ports[1].nodePort, nodeAddress)).toBe(true);
  });

  test("a participant is told to send media to the node's ExternalIP on the Service's NodePorts, never to the pod's address", async () => {
    const token = new AccessToken(apiKey, apiSecret, { identity: 'alice', ttl: '10m' });
    token.addGrant({ roomJoin: true, room });
    const ws = new WebSocket(`ws://${nodeAddress}:${run.port}/rtc?access_token=${await token.toJwt()}&protocol=16&sdk=js&auto_subscribe=1`);
    const messages: SignalResponse[] = [];
    ws.on('message', (data) => messages.push(SignalResponse.fromBinary(new Uint8Array(data as Buffer))));
    const candidates = () => messages.filter((m) => m.message.case === 'trickle').map((m) => JSON.parse((m.message.value as any).candidateInit).candidate as string);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && !(candidates().some((c) => / udp .* typ host/i.test(c)) && candidates().some((c) => / tcp .* typ host/i.test(c)))) {
      await new Promise((r) => setTimeout(r, 100));
    }
    ws.close();
    expect(messages[0]?.message.case).toBe('join');
    const hosts = candidates()
      .filter((c) => / typ host/.test(c))
      .map((c) => c.split(' '))
      .map((c) => `${c[2].toLowerCase()} ${c[4]}:${c[5]}`);
    expect([...new Set(hosts)].sort()).toEqual([`tcp ${nodeAddress}:31101`, `udp ${nodeAddress}:31001`]);
    expect(candidates().join('\n')).not.toContain(pod.podAddress);
  });

  test("two participants of LiveKit's Go SDK join through the Service and exchange audio and video over the mux port, from their own address", async () => {
    const before = counted(node.name, 'livekit-rtc-1 rtc-udp');
    const end = await callInRoom(loadClient, `ws://${nodeAddress}:${run.port}`, apiKey, apiSecret, room, [livekit]);
    expect(end).toMatchObject({ joined: 2, joinErrors: 0, publishedTracks: 4, subscribedTracks: 4, receivingTracks: 4 });
    expect(end.lossPercent ?? 0).toBeLessThan(5);
    // The media's flows went through the Service's UDP rule on the node, and arrived from the client's own address.
    const through = counted(node.name, 'livekit-rtc-1 rtc-udp') - before;
    expect(through).toBeGreaterThan(0);
    expect(counted(pod.name, 'from the client')).toBeGreaterThan(500);
  });
});

describe(`${LIVEKIT_VERSION}, livekit.hostNetwork false: two replicas on one node share rooms through Redis, each reached through its own Service`, () => {
  let node: PodNetwork;
  const pods: PodBehindNode[] = [];
  const servers: Program[] = [];
  const nodeIds: string[] = [];
  let nodeAddress: string;
  let redis: RunningRedis;
  let api: FakeKubeApi;
  let apiKey: string;
  let apiSecret: string;
  let loadClient: string;
  const services = [0, 1].map((i) => find(manifests, 'Service', `livekit-rtc-${i}`));
  /** Which room (by livekit-load prefix) each replica holds. */
  const holds: string[] = [];

  /** A command of redis-cli (the one beside the Redis under test) against the node's Redis. */
  const redisCli = (...args: string[]) =>
    execFileSync(path.join(path.dirname(programs().redisServer), 'redis-cli'), ['-h', nodeAddress, '-p', String(redis.port), ...args], {
      env: { REDISCLI_AUTH: redis.password },
      encoding: 'utf8',
    }).trim();

  beforeAll(async () => {
    loadClient = installLoadClient();
    const secrets = await generatedSecrets(manifests);
    node = new PodNetwork();
    nodeAddress = node.podAddress;
    for (const i of [0, 1]) pods.push(new PodBehindNode(node, i));
    execFileSync('ip', ['netns', 'exec', node.name, 'nft', '-f', '-'], {
      input: serviceRules(
        nodeAddress,
        services.map((svc, i) => [svc, pods[i].podAddress]),
        API_PORT,
      ),
    });
    // In each pod, the media packets that reach its mux port.
    for (const [i, pod] of pods.entries()) {
      const rule = `    udp dport ${services[i].spec.ports[0].targetPort} counter comment "media"`;
      const input = ['table ip kudo_pod {', '  chain input {', '    type filter hook input priority filter; policy accept;', rule, '  }', '}', ''].join('\n');
      execFileSync('ip', ['netns', 'exec', pod.name, 'nft', '-f', '-'], { input });
    }
    const on = await startNodeServices({ manifests, config, secrets }, node, NODE_NAME);
    ({ redis, api } = on);
    for (const [i, pod] of pods.entries()) {
      const run = await prepareLiveKitInPod({ manifests, config, secrets }, pod, on, `livekit-${i}`);
      if (i === 0) [[apiKey, apiSecret]] = Object.entries(yaml.load(fs.readFileSync(run.config.key_file, 'utf8')) as Record<string, string>);
      servers.push(startLiveKit(run, `livekit-${i}`));
    }
    for (const p of servers) {
      await p.waitFor('its start', () => /starting LiveKit server/.test(p.output()), 60_000);
      nodeIds.push(startFields(p).nodeID);
    }
    // Both registered in Redis, with fresh stats: the room allocator places rooms on available nodes only.
    await servers[0].waitFor('two nodes in Redis', () => redisCli('HLEN', 'nodes') === '2', 30_000);
    await servers[0].waitFor(
      'GET / 200 through the Ingress',
      async () => (await httpJson(`http://${nodeAddress}:${API_PORT}/`).catch(() => ({ status: 0 }))).status === 200,
      60_000,
    );
  });
  afterAll(async () => {
    for (const p of servers) await p.stop();
    await redis?.program.stop();
    await api?.stop();
    for (const pod of pods) pod.remove();
    node?.remove();
  });

  test("each replica listens on its own Service's ports and advertises the node", () => {
    expect(servers.map((p) => startFields(p)).map((f) => [f['rtc.portUDP'].Start, f['rtc.portTCP'], f.nodeIP])).toEqual([
      [31000, 31100, nodeAddress],
      [31001, 31101, nodeAddress],
    ]);
    expect(services.map((svc) => svc.spec.ports.map((p: any) => p.nodePort))).toEqual([
      [31000, 31100],
      [31001, 31101],
    ]);
  });

  test('rooms created through the Ingress (replica 0) land on both replicas', async () => {
    const rooms = new RoomServiceClient(`http://${nodeAddress}:${API_PORT}`, apiKey, apiSecret);
    // LiveKit places a room on any available node: create rooms until each replica holds one.
    for (let n = 0; n < 24 && holds.filter(Boolean).length < 2; n++) {
      const prefix = `e2e-two-${process.pid}-${n}`;
      await rooms.createRoom({ name: `${prefix}-0` });
      const i = nodeIds.indexOf(redisCli('HGET', 'room_node_map', `${prefix}-0`));
      expect(i).toBeGreaterThanOrEqual(0);
      holds[i] ??= prefix;
    }
    expect(holds.filter(Boolean)).toHaveLength(2);
  });

  test("a call signalled through replica 0 gets its media from the replica that holds the room, through that replica's Service alone", async () => {
    expect(holds.filter(Boolean)).toHaveLength(2);
    for (const i of [1, 0]) {
      // Connections through each Service's UDP rule on the node, and media packets into each pod.
      const udp = () => [0, 1].flatMap((j) => [counted(node.name, `livekit-rtc-${j} rtc-udp`), counted(pods[j].name, 'media')]);
      const before = udp();
      const end = await callInRoom(loadClient, `ws://${nodeAddress}:${API_PORT}`, apiKey, apiSecret, holds[i], servers);
      expect([i, end]).toMatchObject([i, { joined: 2, joinErrors: 0, publishedTracks: 4, subscribedTracks: 4, receivingTracks: 4 }]);
      const d = udp().map((n, k) => n - before[k]);
      const [flows, packets] = [d[2 * i], d[2 * i + 1]];
      const [otherFlows, otherPackets] = [d[2 * (1 - i)], d[2 * (1 - i) + 1]];
      expect([i, flows > 0, packets > 500, otherFlows, otherPackets]).toEqual([i, true, true, 0, 0]);
    }
  });
});
