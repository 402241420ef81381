/**
 * LiveKit off the host network with its own TURN, coturn off (issue 28), on the production topology: the media
 * namespace is rendered at Pod Security `restricted`, and the real API server's Pod Security admission enforces it.
 * Every pod of the stack is admitted and runs; none is on the host network or holds a host port; the API server keeps
 * the TURN Services as rendered; and a host-network pod is refused in the media namespace (so the level is enforced,
 * not only written down).
 */
import { Manifest } from '../e2e/harness';
import { convergedCluster, namespacesOf, objects, podsOf } from './checks';
import { Cluster, TOPOLOGIES } from './cluster';
import { livekitOwnTurn } from './configs';

const NODES = TOPOLOGIES.production;
const MEDIA = 'kudo-media';
const CONFIG = livekitOwnTurn(NODES.length);

let c: Cluster;
let manifests: Manifest[];

beforeAll(async () => {
  ({ c, manifests } = await convergedCluster('livekit-own-turn', CONFIG, 'production'));
}, 300_000);

afterAll(async () => {
  await c?.stop();
});

test('the media namespace enforces restricted, and its LiveKit pods were admitted and run', () => {
  expect(c.get(['namespace', MEDIA]).metadata.labels).toMatchObject({
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/warn': 'restricted',
    'pod-security.kubernetes.io/audit': 'restricted',
  });
  const pods = podsOf(c, MEDIA, { 'app.kubernetes.io/name': 'livekit' });
  expect(pods.map((p) => [p.metadata.name, p.status.phase]).sort()).toEqual([
    ['livekit-0', 'Running'],
    ['livekit-1', 'Running'],
    ['livekit-2', 'Running'],
  ]);
  expect(podsOf(c, MEDIA, { 'app.kubernetes.io/name': 'coturn' })).toEqual([]);
});

test('no pod of the stack is on the host network or holds a host port; no namespace is above restricted but the app one at baseline', () => {
  const namespaces = namespacesOf(manifests);
  const pods = namespaces.flatMap((ns) => objects(c, 'pods', [ns]));
  expect(pods.length).toBeGreaterThan(NODES.length);
  for (const p of pods) {
    expect([p.metadata.name, p.spec.hostNetwork ?? false]).toEqual([p.metadata.name, false]);
    const hostPorts = [...p.spec.containers, ...(p.spec.initContainers ?? [])].flatMap((ct: any) => (ct.ports ?? []).filter((port: any) => port.hostPort !== undefined));
    expect([p.metadata.name, hostPorts]).toEqual([p.metadata.name, []]);
  }
  const levels = Object.fromEntries(namespaces.map((ns) => [ns, c.get(['namespace', ns]).metadata.labels?.['pod-security.kubernetes.io/enforce']]));
  expect(Object.values(levels).filter((l) => l !== 'restricted' && l !== 'baseline')).toEqual([]);
});

test("the API server keeps the TURN Services: each replica's UDP TURN NodePort, and 443 on one LoadBalancer", () => {
  const services = objects(c, 'services', [MEDIA]);
  const rtc = services.filter((s) => s.metadata.name.startsWith('livekit-rtc-'));
  expect(Object.fromEntries(rtc.map((s) => [s.metadata.name, s.spec.ports.filter((p: any) => p.name === 'turn-udp').map((p: any) => `${p.protocol}/${p.nodePort}`)]))).toEqual({
    'livekit-rtc-0': ['UDP/31200'],
    'livekit-rtc-1': ['UDP/31201'],
    'livekit-rtc-2': ['UDP/31202'],
  });
  const turn = services.find((s) => s.metadata.name === 'livekit-turn');
  expect([turn.spec.type, turn.spec.ports.map((p: any) => `${p.protocol}/${p.port}->${p.targetPort}`)]).toEqual(['LoadBalancer', ['TCP/443->turns']]);
});

test('Pod Security refuses a host-network pod in the media namespace (a server-side dry run)', () => {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'host-network-probe', namespace: MEDIA },
    spec: { hostNetwork: true, containers: [{ name: 'c', image: 'registry.example/none:1' }] },
  };
  const r = c.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod), allowFail: true });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/violates PodSecurity "restricted:latest": host namespaces/);
});
