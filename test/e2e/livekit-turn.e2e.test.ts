/**
 * coturn.enabled false with LiveKit's built-in TURN (issue 28), with the real LiveKit: the rendered StatefulSet's
 * replica 1 behind a node, as in test/e2e/livekit-pod-network.e2e.test.ts, with the rendered config (turn enabled)
 * and a throwaway certificate for the TURN host in the place of cert-manager's Secret livekit-turn-tls. The node
 * translates its NodePorts (Service livekit-rtc-1) and, standing for the LoadBalancer Service livekit-turn, port 443
 * to the pod's TLS port; a pod reaching its own Service is masqueraded, as kube-proxy does (serviceRules).
 *
 * The Node's ExternalIP is a public-looking address (203.0.113.n, on the node namespace and routed to from this host),
 * as a real node's is: LiveKit's TURN refuses permissions to private peers (net.IP's IsPrivate, IsLoopback and the
 * like, plus 0.0.0.0/8, 100.64.0.0/10, 198.18.0.0/15 and 240.0.0.0/4 in turnrelay.go of 1.13.x), and the documentation
 * ranges are none of these. The node's private address on this host's link (10.254.n.2) is its InternalIP.
 *
 * What it proves: LiveKit accepts the rendered TURN settings and listens where the Services send clients; a joining
 * participant is handed the TURN URLs and credentials; through the node's 443 a client gets a TLS session whose
 * certificate verifies for the TURN host against the issuing CA, and a TURN Allocate over it with the participant's
 * credentials is granted a relayed address (and refused with a wrong password). And a call: two participants of
 * LiveKit's Go SDK (scripts/capacity/livekit-load -relay-only) behind a firewall that lets out TCP to 443 and the
 * signalling's port only, resolving the TURN host to the node and trusting the test CA, exchange Opus and VP8 through
 * the SFU with every packet relayed by LiveKit's TURN over TLS: into the pod on 443, out of the relay to the node's
 * mux port, and back into the same pod (hairpin).
 *
 * Not here: a real kube-proxy or CNI (Cilium's hairpin differs), a cloud's 1:1 NAT (an ExternalIP that is not on the
 * node: the relay's packets to it leave the node and must come back), a load balancer's address (nodeAddress
 * load-balancer), and TURN over UDP (its URL is handed out, the firewall here blocks it).
 */
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as tls from 'tls';
import { SignalResponse } from '@livekit/protocol';
import * as yaml from 'js-yaml';
import { AccessToken } from 'livekit-server-sdk';
import WebSocket from 'ws';
import { FakeKubeApi } from '../fake-kube-api';
import { find, generatedSecrets, httpJson, PodNetwork, Program, programs, rendered, tempDir } from './harness';
import { LiveKitRun, startLiveKit } from './livekit';
import { callInRoom, installLoadClient } from './livekit-load';
import { counted, PodBehindNode, prepareLiveKitInPod, serviceRules, startNodeServices } from './pod-behind-node';
import { issueServerCert, makeCa } from './pki';
import { ATTR, decodeStun, encodeStun, METHOD, UDP_TRANSPORT } from './stun';
import { RunningRedis } from './redis';

const LIVEKIT_VERSION = execFileSync(programs().livekitServer, ['--version'], { encoding: 'utf8' }).trim();
const { config, manifests } = rendered({
  coturn: { enabled: false },
  livekit: { hostNetwork: false, replicas: 2, rtc: { udpPort: 31000, tcpPort: 31100 }, turn: { enabled: true, udpPort: 31200 } },
});
const NODE_NAME = 'kudo-media-node-1';
const POD = 'livekit-1';
const TURN_HOST = config.hosts.turn;

/** TURN over TLS to `address`:443, verifying the certificate for the TURN host: the TLS session and the Allocate's answers. */
async function allocateOverTls(
  address: string,
  ca: string,
  username: string,
  password: string,
): Promise<{ authorized: boolean; subjectAltName?: string; answers: number[]; relayed?: Buffer }> {
  const socket = tls.connect({ host: address, port: 443, servername: TURN_HOST, ca, minVersion: 'TLSv1.2' });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  let buffered = Buffer.alloc(0);
  const next = () =>
    new Promise<Buffer>((resolve, reject) => {
      const take = () => {
        if (buffered.length >= 20 && buffered.length >= 20 + buffered.readUInt16BE(2)) {
          const n = 20 + buffered.readUInt16BE(2);
          const m = buffered.subarray(0, n);
          buffered = buffered.subarray(n);
          socket.off('data', onData);
          clearTimeout(timer);
          resolve(m);
        }
      };
      const onData = (d: Buffer) => {
        buffered = Buffer.concat([buffered, d]);
        take();
      };
      const timer = setTimeout(() => reject(new Error('no TURN answer in 10 s')), 10_000);
      socket.on('data', onData);
      take();
    });
  socket.write(encodeStun(METHOD.allocate, crypto.randomBytes(12), [[ATTR.requestedTransport, UDP_TRANSPORT]]));
  const challenge = decodeStun(await next());
  const realm = challenge.attrs.get(ATTR.realm)!;
  const nonce = challenge.attrs.get(ATTR.nonce)!;
  const key = crypto.createHash('md5').update(`${username}:${realm.toString()}:${password}`).digest();
  socket.write(
    encodeStun(
      METHOD.allocate,
      crypto.randomBytes(12),
      [
        [ATTR.requestedTransport, UDP_TRANSPORT],
        [ATTR.username, Buffer.from(username)],
        [ATTR.realm, realm],
        [ATTR.nonce, nonce],
      ],
      key,
    ),
  );
  const granted = decodeStun(await next());
  const result = {
    authorized: socket.authorized,
    subjectAltName: socket.getPeerCertificate().subjectaltname,
    answers: [challenge.type, granted.type],
    relayed: granted.attrs.get(ATTR.xorRelayedAddress),
  };
  socket.destroy();
  return result;
}

describe(`${LIVEKIT_VERSION}, coturn off: LiveKit's own TURN in replica ${POD}, over TLS through the node's 443`, () => {
  let node: PodNetwork;
  let pod: PodBehindNode;
  let nodeAddress: string;
  let redis: RunningRedis;
  let api: FakeKubeApi;
  let run: LiveKitRun;
  let livekit: Program;
  let ca: string;
  let caFile: string;
  let apiPort: number;
  let loadClient: string;
  const service = find(manifests, 'Service', 'livekit-rtc-1');
  const turnService = find(manifests, 'Service', 'livekit-turn');

  beforeAll(async () => {
    loadClient = installLoadClient();
    const secrets = await generatedSecrets(manifests);
    const pki = tempDir('turn-pki');
    makeCa(pki, 'ca');
    issueServerCert(pki, 'ca', [TURN_HOST], path.join(pki, 'secret'));
    caFile = path.join(pki, 'ca.crt');
    ca = fs.readFileSync(caFile, 'utf8');
    const turnTls = { 'tls.crt': fs.readFileSync(path.join(pki, 'secret', 'tls.crt'), 'utf8'), 'tls.key': fs.readFileSync(path.join(pki, 'secret', 'tls.key'), 'utf8') };
    node = new PodNetwork();
    pod = new PodBehindNode(node);
    // 203.0.113.n, n of the node's own 10.254.n.0/30: unique among the namespaces on this host.
    nodeAddress = `203.0.113.${node.podAddress.split('.')[2]}`;
    node.addRoutedAddress(nodeAddress);
    apiPort = (yaml.load(find(manifests, 'ConfigMap', 'livekit-config').data['config.yaml']) as any).port as number;
    // The NodePorts of livekit-rtc-1, and the LoadBalancer's 443 to the pod's named port "turns".
    const tlsTarget = find(manifests, 'StatefulSet', 'livekit').spec.template.spec.containers[0].ports.find(
      (p: any) => p.name === turnService.spec.ports[0].targetPort,
    ).containerPort;
    const rules = serviceRules(nodeAddress, [[service, pod.podAddress]], apiPort, [
      `ip daddr ${nodeAddress} tcp dport ${turnService.spec.ports[0].port} counter dnat to ${pod.podAddress}:${tlsTarget} comment "livekit-turn turns"`,
    ]);
    execFileSync('ip', ['netns', 'exec', node.name, 'nft', '-f', '-'], { input: rules });
    const on = await startNodeServices({ manifests, config, secrets }, node, NODE_NAME, nodeAddress);
    ({ redis, api } = on);
    run = await prepareLiveKitInPod({ manifests, config, secrets }, pod, on, POD, turnTls);
    livekit = startLiveKit(run);
    await livekit.waitFor('GET / 200 through the node', async () => (await httpJson(`http://${nodeAddress}:${run.port}/`).catch(() => ({ status: 0 }))).status === 200, 60_000);
  });
  afterAll(async () => {
    await livekit?.stop();
    await redis?.program.stop();
    await api?.stop();
    pod?.remove();
    node?.remove();
  });

  test('the rendered TURN settings are accepted; replica 1 listens for TURN on UDP 31201 and TLS 5349 in its pod', () => {
    expect(run.config.turn).toMatchObject({ enabled: true, domain: TURN_HOST, udp_port: 31200, tls_port: 5349, external_tls: false });
    expect(run.config.rtc.turn_servers).toBeUndefined();
    const started = /Starting TURN server\t(\{.*\})/.exec(livekit.output());
    expect(started).not.toBeNull();
    expect(JSON.parse(started![1])).toMatchObject({ 'turn.portTLS': 5349, 'turn.portUDP': 31201, 'turn.externalTLS': false });
    const ns = (flags: string) => execFileSync('ip', ['netns', 'exec', pod.name, 'ss', flags], { encoding: 'utf8' });
    expect(ns('-Hltn')).toMatch(/:5349 /);
    expect(ns('-Hlun')).toMatch(/:31201 /);
    expect(service.spec.ports.map((p: any) => `${p.name} ${p.protocol} ${p.nodePort}`)).toEqual(['rtc-udp UDP 31001', 'rtc-tcp TCP 31101', 'turn-udp UDP 31201']);
  });

  /** A participant's join answer: the ICE servers LiveKit hands it. */
  async function iceServers(identity: string): Promise<{ urls: string[]; username: string; credential: string }[]> {
    const keys = yaml.load(fs.readFileSync(run.config.key_file, 'utf8')) as Record<string, string>;
    const [[key, secret]] = Object.entries(keys);
    const token = new AccessToken(key, secret, { identity, ttl: '10m' });
    token.addGrant({ roomJoin: true, room: `e2e-turn-${process.pid}` });
    const ws = new WebSocket(`ws://${nodeAddress}:${run.port}/rtc?access_token=${await token.toJwt()}&protocol=16&sdk=js&auto_subscribe=1`);
    let timer: NodeJS.Timeout | undefined;
    const join = await new Promise<SignalResponse>((resolve, reject) => {
      ws.on('message', (data) => {
        const m = SignalResponse.fromBinary(new Uint8Array(data as Buffer));
        if (m.message.case === 'join') resolve(m);
      });
      ws.on('error', reject);
      timer = setTimeout(() => reject(new Error('no join answer')), 15_000);
    }).finally(() => clearTimeout(timer));
    ws.close();
    return (join.message.value as any).iceServers.map((s: any) => ({ urls: s.urls, username: s.username, credential: s.credential }));
  }

  test("a participant is sent to TURN over UDP at the node's address and port 31201, and over TLS at the TURN host on 443", async () => {
    const servers = await iceServers('alice');
    expect(servers).toHaveLength(1);
    expect(servers[0].urls).toEqual([`turn:${nodeAddress}:31201?transport=udp`, `turns:${TURN_HOST}:443?transport=tcp`]);
    expect(servers[0].username).not.toBe('');
    expect(servers[0].credential).not.toBe('');
  });

  test("through the node's 443: a certificate valid for the TURN host, and an Allocate granted with the participant's credentials only", async () => {
    const [{ username, credential }] = await iceServers('bob');
    const ok = await allocateOverTls(nodeAddress, ca, username, credential);
    expect(ok.authorized).toBe(true);
    expect(ok.subjectAltName).toBe(`DNS:${TURN_HOST}`);
    // 401 with realm and nonce, then an Allocate success response (0x0103) with an XOR-RELAYED-ADDRESS.
    expect(ok.answers).toEqual([0x0113, 0x0103]);
    expect(ok.relayed).toBeDefined();
    const wrong = await allocateOverTls(nodeAddress, ca, username, `${credential}x`);
    expect(wrong.answers).toEqual([0x0113, 0x0113]);
    expect(wrong.relayed).toBeUndefined();
    // Another CA does not vouch for it: the client refuses the session.
    const other = tempDir('turn-pki-other');
    makeCa(other, 'other');
    await expect(allocateOverTls(nodeAddress, fs.readFileSync(path.join(other, 'other.crt'), 'utf8'), username, credential)).rejects.toThrow(/certificate/);
  });

  test("two participants of LiveKit's Go SDK, relay-only behind a firewall that lets out TCP to 443 alone, exchange audio and video through LiveKit's TURN over TLS and the SFU", async () => {
    const keys = yaml.load(fs.readFileSync(run.config.key_file, 'utf8')) as Record<string, string>;
    const [[key, secret]] = Object.entries(keys);
    const port = (name: string) => service.spec.ports.find((p: any) => p.name === name);
    const [mux, tcp] = [port('rtc-udp'), port('rtc-tcp')];
    const client = node.hostAddress;
    // On the node: before its translation, what the client sends and the client's firewall (as if its network let out
    // only TCP to 443, and to the signalling's port, which stands for the Ingress's 443); after it, the relay's packets
    // to the pod's mux port through the node's address, and the SFU's answers.
    execFileSync('ip', ['netns', 'exec', node.name, 'nft', '-f', '-'], {
      input: [
        'table ip kudo_client {',
        '  chain prerouting {',
        '    type filter hook prerouting priority raw; policy accept;',
        `    ip saddr ${client} ip daddr ${nodeAddress} tcp dport 443 counter comment "client to TURN over TLS"`,
        `    ip saddr ${client} ip daddr ${nodeAddress} udp dport ${mux.nodePort} counter comment "client to the mux port"`,
        `    ip saddr ${client} ip daddr ${nodeAddress} tcp dport ${tcp.nodePort} counter comment "client to the TCP port"`,
        `    ip saddr ${client} ip daddr ${nodeAddress} tcp dport { 443, ${apiPort} } accept`,
        `    ip saddr ${client} counter drop comment "the client's firewall"`,
        '  }',
        '  chain forward {',
        '    type filter hook forward priority filter; policy accept;',
        `    ip saddr ${pod.podAddress} ip daddr ${pod.podAddress} udp dport ${mux.targetPort} counter comment "relay to the mux port"`,
        `    ip saddr ${pod.podAddress} ip daddr ${pod.podAddress} udp sport ${mux.targetPort} counter comment "mux port to the relay"`,
        '  }',
        '}',
        '',
      ].join('\n'),
    });
    // The client resolves the TURN host to the node (its own /etc/hosts, in a mount namespace of its own) and trusts
    // the test CA alone (Go reads SSL_CERT_FILE and SSL_CERT_DIR on Linux).
    const dir = tempDir('turn-client');
    fs.writeFileSync(path.join(dir, 'hosts'), `127.0.0.1 localhost\n${nodeAddress} ${TURN_HOST}\n`);
    fs.mkdirSync(path.join(dir, 'certs'));
    const withHosts = (command: string, args: string[]): [string, string[]] => [
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', path.join(dir, 'hosts'), command, ...args],
    ];
    const env = { ...process.env, SSL_CERT_FILE: caFile, SSL_CERT_DIR: path.join(dir, 'certs') };
    const comments = ['client to the mux port', 'client to the TCP port', 'relay to the mux port', 'mux port to the relay'];
    const count = () => [...comments.map((c) => counted(node.name, c)), counted(node.name, 'client to TURN over TLS', 'bytes'), counted(node.name, 'livekit-turn turns')];
    const before = count();
    const end = await callInRoom(loadClient, `ws://${nodeAddress}:${apiPort}`, key, secret, `e2e-relayed-${process.pid}`, [livekit], ['-relay-only'], { wrap: withHosts, env });
    const [direct, directTcp, relayed, answered, tlsBytes, tlsSessions] = count().map((n, i) => n - before[i]);
    expect(end).toMatchObject({ joined: 2, joinErrors: 0, publishedTracks: 4, subscribedTracks: 4, receivingTracks: 4 });
    expect(end.lossPercent ?? 0).toBeLessThan(5);
    // Nothing from the client to the SFU's own ports: its candidates were relayed ones only.
    expect({ direct, directTcp }).toEqual({ direct: 0, directTcp: 0 });
    // Through the node's 443, TLS sessions to LiveKit's TURN (4: each participant's two peer connections) carrying
    // both participants' media, about 1.2 MB for the 8 s and more of publishing; the relay sent it on to the node's
    // mux port, which took it back into the pod, and the SFU answered the relay the same way (about 1750 packets
    // each way).
    expect({ tlsSessions: tlsSessions >= 2, tlsBytes: tlsBytes > 500_000, relayed: relayed > 1000, answered: answered > 1000 }).toEqual({
      tlsSessions: true,
      tlsBytes: true,
      relayed: true,
      answered: true,
    });
  });
});
