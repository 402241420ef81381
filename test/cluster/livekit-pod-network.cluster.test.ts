/**
 * LiveKit off the host network (livekit.hostNetwork: false) on the production topology, three replicas: what the
 * real API server, scheduler and controllers make of the render. The pods run as ordinary pods (no host network, no
 * host ports); the API server accepts the NodePorts the render asks for; each replica's Service finds that replica
 * alone; and Pod Security's own admission, asked what the "restricted" level would say of the media namespace's
 * pods, names coturn (still on the host network) and no LiveKit pod.
 */
import { convergedCluster, objects, podsOf } from './checks';
import { Cluster, TOPOLOGIES } from './cluster';
import { livekitPodNetwork } from './configs';

const NODES = TOPOLOGIES.production;
const MEDIA = 'kudo-media';
const CONFIG = livekitPodNetwork(NODES.length);
const LIVEKIT = { 'app.kubernetes.io/name': 'livekit' };

let c: Cluster;

beforeAll(async () => {
  ({ c } = await convergedCluster('livekit-pod-network', CONFIG, 'production'));
}, 300_000);

afterAll(async () => {
  await c?.stop();
});

test('three LiveKit pods run, one per node, none on the host network or holding a host port', () => {
  const pods = podsOf(c, MEDIA, LIVEKIT);
  expect(pods.map((p) => p.metadata.name).sort()).toEqual(['livekit-0', 'livekit-1', 'livekit-2']);
  expect(pods.map((p) => p.status.phase)).toEqual(['Running', 'Running', 'Running']);
  expect(new Set(pods.map((p) => p.spec.nodeName)).size).toBe(NODES.length);
  for (const p of pods) {
    expect([p.metadata.name, p.spec.hostNetwork ?? false]).toEqual([p.metadata.name, false]);
    const hostPorts = [...p.spec.containers, ...(p.spec.initContainers ?? [])].flatMap((ct: any) => (ct.ports ?? []).filter((port: any) => port.hostPort !== undefined));
    expect([p.metadata.name, hostPorts]).toEqual([p.metadata.name, []]);
  }
});

test("the API server keeps each replica's NodePorts as rendered, and each Service's endpoints are its own replica", () => {
  const services = objects(c, 'services', [MEDIA]).filter((s) => s.metadata.name.startsWith('livekit-rtc-'));
  const ports = (s: any) => s.spec.ports.map((p: any) => `${p.protocol}/${p.port}->${p.nodePort}`);
  expect(Object.fromEntries(services.map((s) => [s.metadata.name, [s.spec.type, s.spec.externalTrafficPolicy, ...ports(s)]]))).toEqual({
    'livekit-rtc-0': ['NodePort', 'Local', 'UDP/31000->31000', 'TCP/31100->31100'],
    'livekit-rtc-1': ['NodePort', 'Local', 'UDP/31001->31001', 'TCP/31101->31101'],
    'livekit-rtc-2': ['NodePort', 'Local', 'UDP/31002->31002', 'TCP/31102->31102'],
  });
  // The endpoint controller's slices: which pods each Service sends its clients to.
  const slices = objects(c, 'endpointslices', [MEDIA]);
  for (const s of services) {
    const targets = slices
      .filter((sl) => sl.metadata.labels?.['kubernetes.io/service-name'] === s.metadata.name)
      .flatMap((sl) => (sl.endpoints ?? []).map((e: any) => e.targetRef?.name));
    expect([s.metadata.name, targets]).toEqual([s.metadata.name, [s.metadata.name.replace('livekit-rtc-', 'livekit-')]]);
  }
});

test('Pod Security\'s admission, asked about "restricted" for the media namespace, names coturn\'s pods and no LiveKit pod', () => {
  // A server-side dry run of the label change: the API server checks the namespace's pods against the level and
  // warns about each that would violate it, and changes nothing.
  const r = c.kubectl(['label', '--dry-run=server', '--overwrite', 'namespace', MEDIA, 'pod-security.kubernetes.io/enforce=restricted']);
  const warned = [...r.stderr.matchAll(/^Warning: ([a-z0-9-]+)(?: \(and \d+ other pods?\))?: (.*)$/gm)].map((m) => [m[1], m[2]]);
  const coturn = podsOf(c, MEDIA, { 'app.kubernetes.io/name': 'coturn' });
  expect(coturn.length).toBeGreaterThan(0);
  expect(warned.map(([pod]) => pod.replace(/-[a-z0-9]{5}$/, '-<id>'))).toEqual(['coturn-<id>']);
  // The same check names a host-network pod, so it would name LiveKit's if they were.
  expect(warned[0][1]).toMatch(/^host namespaces, hostPort/);
  expect(r.stderr).toMatch(/existing pods in namespace "kudo-media" violate the new PodSecurity enforce level "restricted:latest"/);
  // Nothing changed: the namespace keeps its level.
  expect(c.get(['namespace', MEDIA]).metadata.labels['pod-security.kubernetes.io/enforce']).toBe('privileged');
});
