/**
 * livekit.rtc.nodeAddress load-balancer (issue 28) against a real API server (kube-apiserver and etcd; no kubelet and
 * no load-balancer controller): the API server admits the replicas' LoadBalancer Services with the rendered ports;
 * the rendered ServiceAccount may get those Services and nothing else; and the rendered address step (load_balancer_address.py
 * with its rendered command and env, in the tools image's Python), run as pod livekit-1 with that ServiceAccount's
 * token, waits while its Service has no load-balancer address and writes the address as soon as the Service's status
 * gets one, set here through the status subresource as a load-balancer controller sets it.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { ApiServer, startApiServer } from './apiserver';
import { configMapFile, find, Manifest, Program, programs, rendered, tempDir } from './harness';

const MEDIA = 'kudo-media';
const { manifests } = rendered({ livekit: { hostNetwork: false, replicas: 2, rtc: { udpPort: 31000, tcpPort: 31100, nodeAddress: 'load-balancer' } } });
const sts = find(manifests, 'StatefulSet', 'livekit');
const step = sts.spec.template.spec.initContainers.find((c: any) => c.name === 'node-address');

let api: ApiServer;
let dir: string;

beforeAll(async () => {
  dir = tempDir('livekit-load-balancer');
  api = await startApiServer({ logDir: dir });
  // What the address step touches: the namespaces, the ServiceAccount and its Role, and the Services.
  const needed = manifests.filter(
    (m: Manifest) => m.kind === 'Namespace' || (m.metadata.namespace === MEDIA && ['ServiceAccount', 'Role', 'RoleBinding', 'Service'].includes(m.kind)),
  );
  const file = path.join(dir, 'objects.yaml');
  fs.writeFileSync(file, needed.map((m) => yaml.dump(m, { lineWidth: -1 })).join('---\n'));
  const r = api.kubectl(['apply', '--server-side', '--validate=strict', '-f', file]);
  expect(r.stderr).toBe('');
}, 120_000);

afterAll(async () => {
  await api?.stop();
});

test("the API server keeps each replica's LoadBalancer Service as rendered: the same port clients reach, the NodePort and the pod's", () => {
  const s = JSON.parse(api.kubectl(['get', 'service', 'livekit-rtc-1', '-n', MEDIA, '-o', 'json']).stdout);
  expect(s.spec.type).toBe('LoadBalancer');
  expect(s.spec.externalTrafficPolicy).toBe('Local');
  expect(s.spec.ports.map((p: any) => [p.name, p.protocol, p.port, p.nodePort, p.targetPort])).toEqual([
    ['rtc-udp', 'UDP', 31001, 31001, 31001],
    ['rtc-tcp', 'TCP', 31101, 31101, 31101],
  ]);
  // externalTrafficPolicy Local: the API server gives the load balancer a health-check port of the nodes.
  expect(s.spec.healthCheckNodePort).toBeGreaterThan(0);
});

test("LiveKit's ServiceAccount may get the replicas' Services, and nothing else", () => {
  const can = (...args: string[]) => api.kubectl(['auth', 'can-i', ...args, '-n', MEDIA], { asUser: `system:serviceaccount:${MEDIA}:livekit`, allowFail: true }).stdout.trim();
  expect([can('get', 'services/livekit-rtc-0'), can('get', 'services/livekit-rtc-1')]).toEqual(['yes', 'yes']);
  expect([can('get', 'services/livekit'), can('list', 'services'), can('get', 'services/livekit-rtc-2'), can('get', 'nodes'), can('get', 'secrets')]).toEqual([
    'no',
    'no',
    'no',
    'no',
    'no',
  ]);
});

/** The rendered step as pod `pod`, with LiveKit's token: its process and the file it writes. */
function runStep(pod: string): { p: Program; out: string } {
  const files = path.join(dir, pod);
  fs.mkdirSync(files, { recursive: true });
  for (const f of ['load_balancer_address.py', 'kube.py']) fs.writeFileSync(path.join(files, f), configMapFile(manifests, 'livekit-config', f));
  const token = path.join(files, 'token');
  fs.writeFileSync(token, api.kubectl(['create', 'token', 'livekit', '-n', MEDIA]).stdout.trim());
  const env: Record<string, string> = { PATH: process.env.PATH!, KUBE_API_URL: api.url, KUBE_TOKEN_FILE: token, KUBE_CA_FILE: api.caFile };
  for (const e of step.env) {
    if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = pod;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = MEDIA;
    else if (e.value !== undefined) env[e.name] = e.value;
    else throw new Error(`unexpected env ${JSON.stringify(e)}`);
  }
  // The rendered command: python3 /etc/livekit/load_balancer_address.py /run/livekit/node-ip, its paths in this folder.
  expect(step.command).toEqual(['python3', '/etc/livekit/load_balancer_address.py', '/run/livekit/node-ip']);
  const out = path.join(files, 'node-ip');
  return { p: new Program(`node-address-${pod}`, programs().synapsePython, [path.join(files, 'load_balancer_address.py'), out], { logDir: dir, env }), out };
}

test('the address step waits for the load balancer, then writes its address: the IPv4, then the IPv6', async () => {
  const { p, out } = runStep('livekit-1');
  await p.waitFor('its waiting line', () => p.output().includes('waiting for Service kudo-media/livekit-rtc-1 to get a load-balancer address'), 30_000);
  // Still waiting, nothing written: a pod never starts LiveKit with an address it does not have.
  await new Promise((r) => setTimeout(r, 2_000));
  expect(p.running).toBe(true);
  expect(fs.existsSync(out)).toBe(false);
  // What a load-balancer controller does once the provider has an address.
  const status = { status: { loadBalancer: { ingress: [{ ip: '2001:db8::41' }, { ip: '203.0.113.41' }] } } };
  api.kubectl(['patch', 'service', 'livekit-rtc-1', '-n', MEDIA, '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
  expect(await p.exit(30_000)).toBe(0);
  expect(fs.readFileSync(out, 'utf8')).toBe('203.0.113.41,2001:db8::41\n');
  expect(p.output()).toContain("public address 203.0.113.41,2001:db8::41 (Service livekit-rtc-1's load balancer)");
}, 60_000);

test('a pod whose Service the Role does not name is refused by the API server, and writes nothing', async () => {
  const { p, out } = runStep('livekit-2');
  expect(await p.exit(30_000)).not.toBe(0);
  expect(p.output()).toMatch(/^load_balancer_address.py: cannot read Service kudo-media\/livekit-rtc-2: HTTP 403: services "livekit-rtc-2" is forbidden/m);
  expect(fs.existsSync(out)).toBe(false);
}, 60_000);
