import * as yaml from 'js-yaml';
import { config, container, find, Manifest, podSpec, synthChart } from './util';

const manifests = (c = config()) => synthChart('30-livekit', c);
const lkConfig = (ms: Manifest[]) => yaml.load(find(ms, 'ConfigMap', 'livekit-config').data['config.yaml']) as any;

/** Every key LiveKit 1.13 accepts at the places we use (from its config-sample and config.go). */
const KNOWN = {
  top: ['port', 'bind_addresses', 'log_level', 'key_file', 'keys', 'redis', 'rtc', 'turn', 'prometheus', 'room', 'webhook', 'logging', 'region', 'development'],
  rtc: ['tcp_port', 'udp_port', 'port_range_start', 'port_range_end', 'use_external_ip', 'node_ip', 'turn_servers', 'stun_servers'],
  turnServer: ['host', 'port', 'protocol', 'secret', 'secret_file', 'ttl', 'username', 'credential'],
};

test('config.yaml uses only known keys and holds no secrets', () => {
  const c = lkConfig(manifests());
  expect(Object.keys(c).filter((k) => !KNOWN.top.includes(k))).toEqual([]);
  expect(Object.keys(c.rtc).filter((k) => !KNOWN.rtc.includes(k))).toEqual([]);
  for (const t of c.rtc.turn_servers) expect(Object.keys(t).filter((k) => !KNOWN.turnServer.includes(k))).toEqual([]);
  expect(c.keys).toBeUndefined();
  expect(c.redis.password).toBeUndefined();
  for (const t of c.rtc.turn_servers) expect(t.secret).toBeUndefined();
  expect(c.prometheus_port).toBeUndefined();
  expect(c.prometheus).toEqual({ port: 6789 });
});

test('the ports of the old deployment', () => {
  const c = lkConfig(manifests());
  expect(c.port).toBe(7880);
  expect(c.rtc).toMatchObject({ tcp_port: 7881, port_range_start: 50000, port_range_end: 50100, use_external_ip: true });
  // LiveKit ignores udp_port when a range is set; render one or the other.
  expect(c.rtc.udp_port).toBeUndefined();
  const mux = lkConfig(manifests(config({ livekit: { rtc: { udpPort: 7882 } } })));
  expect(mux.rtc.udp_port).toBe(7882);
  expect(mux.rtc.port_range_start).toBeUndefined();
});

test('secrets: key file written at start, Redis password from the Secret, TURN secret file', () => {
  const ms = manifests();
  const deploy = find(ms, 'Deployment', 'livekit');
  const c = lkConfig(ms);
  expect(c.key_file).toBe('/run/livekit/keys.yaml');
  const init = container(deploy, 'keys');
  expect(init.command.join(' ')).toContain('umask 077');
  expect(init.command.join(' ')).toContain('/run/livekit/keys.yaml');
  const lk = container(deploy, 'livekit');
  expect(lk.env).toContainEqual({ name: 'REDIS_PASSWORD', valueFrom: { secretKeyRef: { name: 'kudo-redis', key: 'password' } } });
  expect(lk.args).toEqual(['--config', '/etc/livekit/config.yaml', '--bind', '$(HOST_IP)']);
  // The API and metrics listen on the node's cluster address, not on its public ones.
  expect(lk.env[0]).toEqual({ name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
  expect(lk.args).not.toContain('--disable-strict-config');
  const turnVolume = podSpec(deploy).volumes.find((v: any) => v.name === 'turn-secret');
  // LiveKit refuses a secret file readable by others.
  expect(turnVolume.secret.defaultMode & 0o007).toBe(0);
  expect(c.rtc.turn_servers.every((t: any) => t.secret_file === '/secrets/turn/shared_secret')).toBe(true);
});

test('TURN servers: our coturn over UDP 3478 and TLS 5349 with a TTL', () => {
  expect(lkConfig(manifests()).rtc.turn_servers).toEqual([
    { host: 'turn.example.com', port: 3478, protocol: 'udp', secret_file: '/secrets/turn/shared_secret', ttl: 3600 },
    { host: 'turn.example.com', port: 5349, protocol: 'tls', secret_file: '/secrets/turn/shared_secret', ttl: 3600 },
  ]);
  expect(lkConfig(manifests()).turn).toEqual({ enabled: false });
});

test('host networking, one pod per node, no surge', () => {
  const deploy = find(manifests(), 'Deployment', 'livekit');
  const spec = podSpec(deploy);
  expect(spec.hostNetwork).toBe(true);
  expect(spec.dnsPolicy).toBe('ClusterFirstWithHostNet');
  expect(spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey).toBe('kubernetes.io/hostname');
  expect(deploy.spec.strategy.rollingUpdate).toEqual({ maxSurge: 0, maxUnavailable: 1 });
  expect(deploy.metadata.namespace).toBe('kudo-media');
});

test('the node IP: STUN by default, the host IP when STUN is off', () => {
  const env = (c: object) => container(find(manifests(config(c)), 'Deployment', 'livekit'), 'livekit').env.map((e: any) => e.name);
  expect(env({})).not.toContain('NODE_IP');
  expect(env({ livekit: { rtc: { useExternalIp: false } } })).toContain('NODE_IP');
  const c = lkConfig(manifests(config({ livekit: { rtc: { useExternalIp: false } } })));
  expect(c.rtc.use_external_ip).toBe(false);
  expect(c.rtc.node_ip).toBeUndefined();
});

test('readiness GET /, TCP liveness, long drain', () => {
  const deploy = find(manifests(), 'Deployment', 'livekit');
  const c = container(deploy, 'livekit');
  expect(c.readinessProbe.httpGet).toEqual({ path: '/', port: 'http' });
  expect(c.livenessProbe.httpGet).toBeUndefined();
  expect(c.livenessProbe.tcpSocket).toEqual({ port: 'http' });
  expect(podSpec(deploy).terminationGracePeriodSeconds).toBeGreaterThanOrEqual(3600);
});

test('Ingress with TLS and WebSocket-friendly timeouts', () => {
  const ing = find(manifests(), 'Ingress', 'livekit');
  expect(ing.spec.rules[0].host).toBe('livekit.example.com');
  expect(ing.spec.tls).toEqual([{ hosts: ['livekit.example.com'], secretName: 'livekit-tls' }]);
  // The controller's own annotations for the timeouts: test/tls.test.ts, per controller family.
  expect(ing.metadata.annotations!['cert-manager.io/cluster-issuer']).toBe('kudo-letsencrypt');
});

test('restricted container context even on the host network', () => {
  const deploy = find(manifests(), 'Deployment', 'livekit');
  expect(podSpec(deploy).securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10880 });
  for (const n of ['livekit', 'keys']) {
    expect(container(deploy, n).securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  }
});

test('a disruption budget only when there is more than one node\'s LiveKit', () => {
  expect(manifests().filter((m) => m.kind === 'PodDisruptionBudget')).toEqual([]);
  const pdb = find(manifests(config({ livekit: { replicas: 3 } })), 'PodDisruptionBudget', 'livekit');
  expect(pdb.spec.maxUnavailable).toBe(1);
});
