/**
 * livekit.rtc.nodeAddress load-balancer (issue 28: "a Service per LiveKit replica, LoadBalancer or NodePort"): each
 * replica's Service asks for a load balancer of its own, and the replica advertises that load balancer's address,
 * read from the Service's status by its init step with a token that may read those Services and nothing else.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { checklist, renderedManifests } from '../scripts/inspect';
import { config, container, find, Manifest, podSpec, rejection, synthChart } from './util';

const LB = { hostNetwork: false, replicas: 3, rtc: { udpPort: 31000, tcpPort: 31100, nodeAddress: 'load-balancer' } };
const manifests = (livekit: object = LB, extra: object = {}) => synthChart('30-livekit', config({ livekit, ...extra }));
const FILES = path.join(__dirname, '..', 'charts', 'files');

test('each replica behind a LoadBalancer Service of its own: the same ports, its pod alone, client addresses kept', () => {
  const ms = manifests();
  const s1 = find(ms, 'Service', 'livekit-rtc-1');
  expect(s1.spec).toEqual({
    type: 'LoadBalancer',
    ipFamilyPolicy: 'PreferDualStack',
    externalTrafficPolicy: 'Local',
    publishNotReadyAddresses: true,
    selector: { 'app.kubernetes.io/name': 'livekit', 'app.kubernetes.io/instance': 'kudo-livekit', 'statefulset.kubernetes.io/pod-name': 'livekit-1' },
    ports: [
      { name: 'rtc-udp', protocol: 'UDP', port: 31001, targetPort: 31001, nodePort: 31001 },
      { name: 'rtc-tcp', protocol: 'TCP', port: 31101, targetPort: 31101, nodePort: 31101 },
    ],
  });
  expect(ms.filter((m) => m.kind === 'Service' && m.spec.type === 'LoadBalancer').map((m) => m.metadata.name)).toEqual(['livekit-rtc-0', 'livekit-rtc-1', 'livekit-rtc-2']);
  // With LiveKit's own TURN, its UDP port is in the same load balancer (LiveKit hands out turn:<its address>:<port>).
  const turn = manifests({ ...LB, turn: { enabled: true, udpPort: 31200 } }, { coturn: { enabled: false } });
  expect(find(turn, 'Service', 'livekit-rtc-2').spec.ports[2]).toEqual({ name: 'turn-udp', protocol: 'UDP', port: 31202, targetPort: 31202, nodePort: 31202 });
  // NodePort stays the default off the host network.
  const nodePorts = manifests({ ...LB, rtc: { udpPort: 31000, tcpPort: 31100 } });
  expect(find(nodePorts, 'Service', 'livekit-rtc-1').spec.type).toBe('NodePort');
});

test("the address step may get the replicas' Services, and nothing else: no Node, no list, no other Service", () => {
  const ms = manifests();
  const role = find(ms, 'Role', 'livekit-load-balancer-reader');
  expect(role.metadata.namespace).toBe('kudo-media');
  expect(role.rules).toEqual([{ apiGroups: [''], resources: ['services'], resourceNames: ['livekit-rtc-0', 'livekit-rtc-1', 'livekit-rtc-2'], verbs: ['get'] }]);
  const binding = find(ms, 'RoleBinding', 'livekit-load-balancer-reader');
  expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'livekit-load-balancer-reader' });
  expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'livekit', namespace: 'kudo-media' }]);
  expect(ms.filter((m) => m.kind === 'ClusterRole' || m.kind === 'ClusterRoleBinding')).toEqual([]);
  const spec = podSpec(find(ms, 'StatefulSet', 'livekit'));
  expect(spec.serviceAccountName).toBe('livekit');
  expect(spec.automountServiceAccountToken).toBe(false);
  const step = container(find(ms, 'StatefulSet', 'livekit'), 'node-address');
  expect(step.env).toEqual(
    expect.arrayContaining([
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'LOAD_BALANCER_SERVICE_PREFIX', value: 'livekit-rtc-' },
      { name: 'ADDRESS_FAMILIES', value: 'both' },
    ]),
  );
  expect(step.env.map((e: any) => e.name)).not.toContain('PUBLIC_IP');
  // Its own script, beside the API client; the node lookup's is not shipped (the default render's ConfigMap is unchanged).
  expect(step.command).toEqual(['python3', '/etc/livekit/load_balancer_address.py', '/run/livekit/node-ip']);
  expect(Object.keys(find(ms, 'ConfigMap', 'livekit-config').data).sort()).toEqual(['config.yaml', 'kube.py', 'load_balancer_address.py']);
  expect(container(find(ms, 'StatefulSet', 'livekit'), 'livekit').command[2]).toContain('--node-ip "$(cat /run/livekit/node-ip)"');
});

describe("the address taken from a Service's load balancer (load_balancer_address.py)", () => {
  /** load_balancer_address on Services whose status.loadBalancer.ingress is each of `cases`, names resolving per `names`: one Python for all. */
  const addresses = (cases: object[][], names: Record<string, string[]> = {}) => {
    const program = [
      'import json, sys, load_balancer_address',
      'names = json.loads(sys.argv[2])',
      'for ingress in json.loads(sys.argv[1]):',
      '    print(load_balancer_address.load_balancer_address({"status": {"loadBalancer": {"ingress": ingress}}}, lambda host: names[host]))',
    ].join('\n');
    const r = spawnSync('python3', ['-c', program, JSON.stringify(cases), JSON.stringify(names)], {
      cwd: FILES,
      env: { PATH: process.env.PATH, PYTHONDONTWRITEBYTECODE: '1' },
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    return r.stdout.trim().split('\n');
  };

  test('one address of each family, the IPv4 first whatever the order; one family alone; none yet', () => {
    expect(addresses([[{ ip: '2001:db8::7' }, { ip: '203.0.113.7' }], [{ ip: '203.0.113.7' }, { ip: '203.0.113.8' }], [{ ip: '2001:db8::7' }], []])).toEqual([
      '203.0.113.7,2001:db8::7',
      '203.0.113.7',
      '2001:db8::7',
      'None',
    ]);
  });

  test('a host name (a provider that gives one, as AWS does) is resolved once, at start; an IP beside it is taken without asking DNS', () => {
    const names = { 'lb-1.elb.example': ['198.51.100.4', '2001:db8::4', '198.51.100.5'] };
    expect(addresses([[{ hostname: 'lb-1.elb.example' }], [{ ip: '203.0.113.7' }, { hostname: 'lb-1.elb.example' }]], names)).toEqual(['198.51.100.4,2001:db8::4', '203.0.113.7']);
  });
});

describe('refused where it cannot work', () => {
  test('on the host network (there is no Service in front of LiveKit)', () => {
    expect(rejection({ livekit: { rtc: { nodeAddress: 'load-balancer' } } })).toContain(
      'livekit.rtc.nodeAddress load-balancer needs livekit.hostNetwork false: on the host network no Service stands in front of LiveKit',
    );
  });

  test('with a fixed address for every replica (each replica has a load balancer of its own)', () => {
    expect(rejection({ livekit: { ...LB, rtc: { ...LB.rtc, publicIp: '203.0.113.9' } } })).toContain(
      'livekit.rtc.publicIp is used only when livekit.rtc.nodeAddress is "node-external-ip" (the default)',
    );
  });
});

test('the checklist: a load balancer per replica carrying UDP and TCP on one address, and the pods waiting for it', () => {
  const c = config({ livekit: LB });
  const text = checklist(c, renderedManifests(c)).prerequisites.join('\n');
  expect(text).toContain(
    'LiveKit: 3 replicas off the host network, each reached through a LoadBalancer Service of its own (livekit-rtc-<i>): your provider must give each one ' +
      'address that carries UDP and TCP (mixed protocols) and keeps client addresses (externalTrafficPolicy Local); ' +
      "a replica's pod waits in its node-address step until its Service has that address; any node",
  );
});

test('no Node is read and nothing of the node lookup is rendered: the default render is unchanged by the option', () => {
  const def: Manifest[] = manifests({});
  expect(def.filter((m) => m.kind === 'Role')).toEqual([]);
  expect(find(def, 'ClusterRole', 'kudo-media-livekit-node-reader').rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }]);
});
