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
 */
import { execFile, execFileSync } from 'child_process';
import * as path from 'path';
import { promisify } from 'util';
import { SignalResponse } from '@livekit/protocol';
import * as fs from 'fs';
import * as yaml from 'js-yaml';
import { AccessToken, RoomServiceClient } from 'livekit-server-sdk';
import WebSocket from 'ws';
import { FakeKubeApi } from '../fake-kube-api';
import { configMapFile, find, generatedSecrets, httpJson, PodNetwork, Program, programs, rendered, ROOT, tail, tcpOpen } from './harness';
import { LiveKitRun, prepareLiveKit, startLiveKit } from './livekit';
import { RunningRedis, startRedis } from './redis';

const LIVEKIT_VERSION = execFileSync(programs().livekitServer, ['--version'], { encoding: 'utf8' }).trim();
const { config, manifests } = rendered({ livekit: { hostNetwork: false, replicas: 2, rtc: { udpPort: 31000, tcpPort: 31100 } } });
const NODE_NAME = 'kudo-media-node-1';
const POD = 'livekit-1';
/** LiveKit's API port, as rendered: the Ingress's backend. */
const API_PORT = (yaml.load(configMapFile(manifests, 'livekit-config', 'config.yaml')) as any).port as number;
/** The link between the node and its pod; only these two namespaces have it. */
const POD_LINK = { node: '10.253.0.1', pod: '10.253.0.2' };

/** A pod's network namespace, reached only through the node namespace (a PodNetwork) that routes to it. */
class PodBehindNode {
  readonly name: string;
  readonly podAddress = POD_LINK.pod;

  constructor(readonly node: PodNetwork) {
    this.name = `${node.name}-pod`;
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
    ip('netns', 'add', this.name);
    try {
      ip('-n', node.name, 'link', 'add', 'to-pod', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.name);
      ip('-n', node.name, 'addr', 'add', `${POD_LINK.node}/30`, 'dev', 'to-pod');
      ip('-n', node.name, 'link', 'set', 'to-pod', 'up');
      ip('-n', this.name, 'addr', 'add', `${POD_LINK.pod}/30`, 'dev', 'eth0');
      ip('-n', this.name, 'link', 'set', 'eth0', 'up');
      ip('-n', this.name, 'link', 'set', 'lo', 'up');
      // Replies go back through the node, which undoes the translation.
      ip('-n', this.name, 'route', 'add', 'default', 'via', POD_LINK.node);
      // Per namespace: the host's own setting is left alone.
      execFileSync('ip', ['netns', 'exec', node.name, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    } catch (e) {
      this.remove();
      throw e;
    }
  }

  wrap(command: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.name, command, ...args]];
  }

  remove(): void {
    execFileSync('ip', ['netns', 'delete', this.name], { stdio: 'ignore' });
  }
}

/** The nftables rules that stand for the Service and the Ingress on the node, each with a counter. */
function serviceRules(nodeAddress: string, service: any, apiPort: number): string {
  const rules = service.spec.ports.map(
    (p: any) =>
      `    ip daddr ${nodeAddress} ${p.protocol.toLowerCase()} dport ${p.nodePort} counter dnat to ${POD_LINK.pod}:${p.targetPort} comment "${service.metadata.name} ${p.name}"`,
  );
  return [
    'table ip kudo_service {',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...rules,
    `    ip daddr ${nodeAddress} tcp dport ${apiPort} dnat to ${POD_LINK.pod}:${apiPort} comment "the Ingress"`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Packets a commented nft rule has counted in a namespace. */
function counted(namespace: string, comment: string): number {
  const ruleset = JSON.parse(execFileSync('ip', ['netns', 'exec', namespace, 'nft', '-j', 'list', 'ruleset'], { encoding: 'utf8' })).nftables as any[];
  const rule = ruleset.find((x) => x.rule?.comment === comment)?.rule;
  if (rule === undefined) throw new Error(`no nft rule "${comment}" in ${namespace}`);
  return rule.expr.find((e: any) => e.counter !== undefined).counter.packets;
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
    // LiveKit's Go SDK client, cached after its first build.
    const installed = execFileSync('bash', [path.join(ROOT, 'scripts/capacity/install.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    loadClient = /^KUDO_BENCH_LIVEKIT_LOAD=(.*)$/m.exec(installed)![1];
    secrets = await generatedSecrets(manifests);
    node = new PodNetwork();
    pod = new PodBehindNode(node);
    nodeAddress = node.podAddress;
    execFileSync('ip', ['netns', 'exec', node.name, 'nft', '-f', '-'], { input: serviceRules(nodeAddress, service, API_PORT) });
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
    const podNetwork = pod as unknown as PodNetwork;
    // Redis on the node: LiveKit reaches it across the pod's link, this host (which starts it) across the node's.
    redis = await startRedis(manifests, config, secrets, node);
    api = new FakeKubeApi();
    const apiUrl = await api.start();
    api.putNode(NODE_NAME, [
      { type: 'InternalIP', address: nodeAddress },
      { type: 'ExternalIP', address: nodeAddress },
    ]);
    run = await prepareLiveKit(
      manifests,
      config,
      secrets,
      podNetwork,
      redis.port,
      apiUrl,
      NODE_NAME,
      (cfg) => {
        cfg.redis.address = `${POD_LINK.node}:${redis.port}`; // LOOPBACK_REWRITES.hosts: Redis's Service is the node's address on the pod's link
      },
      { podName: POD },
    );
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
    // Only the paths and Redis's address (the node's) differ from the ConfigMap: the ports are the rendered ones.
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
    expect(execFileSync('ip', ['-4', 'route', 'show', 'match', POD_LINK.pod], { encoding: 'utf8' })).not.toContain('10.253.');
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
    expect(candidates().join('\n')).not.toContain(POD_LINK.pod);
  });

  test("two participants of LiveKit's Go SDK join through the Service and exchange audio and video over the mux port, from their own address", async () => {
    const before = counted(node.name, 'livekit-rtc-1 rtc-udp');
    const { stdout } = await promisify(execFile)(
      loadClient,
      ['-url', `ws://${nodeAddress}:${run.port}`, '-key', apiKey, '-secret', apiSecret, '-rooms', '1', '-size', '2', '-warmup', '3s', '-duration', '5s', '-prefix', room],
      { timeout: 120_000 },
    ).catch((e) => {
      throw new Error(`livekit-load failed: ${e.message}\n${e.stderr ?? ''}\n${tail(livekit.output())}`);
    });
    const end = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .find((x) => x.event === 'window-end');
    expect(end).toMatchObject({ joined: 2, joinErrors: 0, publishedTracks: 4, subscribedTracks: 4, receivingTracks: 4 });
    expect(end.lossPercent ?? 0).toBeLessThan(5);
    // The media went through the Service's UDP rule on the node, and arrived from the client's own address.
    const through = counted(node.name, 'livekit-rtc-1 rtc-udp') - before;
    expect(through).toBeGreaterThan(0);
    expect(counted(pod.name, 'from the client')).toBeGreaterThan(500);
  });
});
