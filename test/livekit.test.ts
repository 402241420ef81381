import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { config, container, find, Manifest, podSpec, PRODUCTION, synthChart } from './util';

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

test('API and ICE/TCP ports of the old deployment; a UDP range below the ephemeral ports, sized per profile', () => {
  const c = lkConfig(manifests());
  expect(c.port).toBe(7880);
  expect(c.rtc).toMatchObject({ tcp_port: 7881, port_range_start: 20000, port_range_end: 20999 });
  expect(lkConfig(manifests(config({ ...PRODUCTION }))).rtc).toMatchObject({ port_range_start: 20000, port_range_end: 23999 });
  // LiveKit ignores udp_port when a range is set; render one or the other.
  expect(c.rtc.udp_port).toBeUndefined();
  const mux = lkConfig(manifests(config({ livekit: { rtc: { udpPort: 7882 } } })));
  expect(mux.rtc.udp_port).toBe(7882);
  expect(mux.rtc.port_range_start).toBeUndefined();
});

test('secrets: none in an environment variable; the config step writes the key file and the Redis password into memory', () => {
  const ms = manifests();
  const deploy = find(ms, 'Deployment', 'livekit');
  const c = lkConfig(ms);
  expect(c.key_file).toBe('/run/livekit/keys.yaml');
  for (const x of [...podSpec(deploy).containers, ...podSpec(deploy).initContainers]) {
    expect([x.name, (x.env ?? []).filter((e: any) => e.valueFrom?.secretKeyRef)]).toEqual([x.name, []]);
  }
  // The Secrets are mounted in the config step only, which writes LiveKit's files in memory.
  const step = container(deploy, 'config');
  expect(step.volumeMounts.map((m: any) => m.name).sort()).toEqual(['config', 'run', 'secrets']);
  expect(container(deploy, 'livekit').volumeMounts.map((m: any) => m.name)).not.toContain('secrets');
  // The rendered config ends with the redis mapping the step appends the password to.
  expect(find(ms, 'ConfigMap', 'livekit-config').data['config.yaml'].endsWith('redis:\n  address: redis.kudo.svc:6379\n')).toBe(true);
  const lk = container(deploy, 'livekit');
  expect(lk.command[2]).toContain('--config /run/livekit/config.yaml --bind "$HOST_IP"');
  // The API and metrics listen on the node's cluster address, not on its public ones.
  expect(lk.env[0]).toEqual({ name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
  expect(lk.command.join(' ')).not.toContain('--disable-strict-config');
  const turnVolume = podSpec(deploy).volumes.find((v: any) => v.name === 'turn-secret');
  // LiveKit refuses a secret file readable by others.
  expect(turnVolume.secret.defaultMode & 0o007).toBe(0);
  expect(c.rtc.turn_servers.every((t: any) => t.secret_file === '/secrets/turn/shared_secret')).toBe(true);
});

test('the Secrets the config step reads: the API key pair, the Redis password, and an optional second pair (docs/operations.md, "Rotating secrets")', () => {
  const deploy = find(manifests(), 'Deployment', 'livekit');
  expect(podSpec(deploy).volumes.find((v: any) => v.name === 'secrets')).toEqual({
    name: 'secrets',
    projected: {
      defaultMode: 0o440,
      sources: [
        { secret: { name: 'kudo-livekit', items: [{ key: 'api_key', path: 'api_key' }] } },
        { secret: { name: 'kudo-livekit', items: [{ key: 'api_secret', path: 'api_secret' }] } },
        { secret: { name: 'kudo-redis', items: [{ key: 'password', path: 'redis_password' }] } },
        // Optional: the kubelet leaves out a key the Secret does not hold, and LiveKit starts with the main pair alone.
        { secret: { name: 'kudo-livekit', items: [{ key: 'second_api_key', path: 'second_api_key' }], optional: true } },
        { secret: { name: 'kudo-livekit', items: [{ key: 'second_api_secret', path: 'second_api_secret' }], optional: true } },
      ],
    },
  });
  // Beside the main key and secret, wherever secrets.refs puts those.
  const refs = { livekitApiKey: { name: 'vault-lk-key', key: 'id' }, livekitApiSecret: { name: 'vault-lk-secret', key: 'secret' } };
  const moved = podSpec(find(manifests(config({ secrets: { mode: 'existing', refs } })), 'Deployment', 'livekit')).volumes.find((v: any) => v.name === 'secrets');
  expect(moved.projected.sources.filter((x: any) => x.secret.optional).map((x: any) => [x.secret.name, x.secret.items[0].key])).toEqual([
    ['vault-lk-key', 'second_api_key'],
    ['vault-lk-secret', 'second_api_secret'],
  ]);
});

test('the config step, as rendered', () => {
  expect(container(find(manifests(), 'Deployment', 'livekit'), 'config').command).toEqual([
    'sh',
    '-c',
    [
      'set -eu',
      'umask 077',
      `printf '"%s": "%s"\\n' "$(cat /keys/api_key)" "$(cat /keys/api_secret)" > /run/livekit/keys.yaml`,
      'if [ -s /keys/second_api_key ] || [ -s /keys/second_api_secret ]; then',
      "  if [ ! -s /keys/second_api_key ] || [ ! -s /keys/second_api_secret ]; then echo 'kudo-livekit[second_api_key] and kudo-livekit[second_api_secret]: set both or neither' >&2; exit 1; fi",
      '  if [ "$(cat /keys/second_api_key)" = "$(cat /keys/api_key)" ]; then echo \'kudo-livekit[second_api_key]: must differ from kudo-livekit[api_key]\' >&2; exit 1; fi',
      `  printf '"%s": "%s"\\n' "$(cat /keys/second_api_key)" "$(cat /keys/second_api_secret)" >> /run/livekit/keys.yaml`,
      'fi',
      `pw=$(sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g' /keys/redis_password)`,
      `{ cat /etc/livekit/config.yaml; printf '  password: "%s"\\n' "$pw"; } > /run/livekit/config.yaml`,
    ].join('\n'),
  ]);
});

describe('the key file the config step writes from the Secret volume', () => {
  /** Runs the rendered config step on these Secret files: its exit status, stderr and the key file. */
  const runStep = (files: Record<string, string>): { status: number | null; stderr: string; keys?: unknown } => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-livekit-keys-'));
    try {
      const ms = manifests();
      const script = container(find(ms, 'Deployment', 'livekit'), 'config').command[2] as string;
      const [keys, etc, run] = ['keys', 'etc', 'run'].map((d) => path.join(dir, d));
      for (const d of [keys, etc, run]) fs.mkdirSync(d);
      for (const [f, v] of Object.entries({ redis_password: 'pw', ...files })) fs.writeFileSync(path.join(keys, f), v);
      fs.writeFileSync(path.join(etc, 'config.yaml'), find(ms, 'ConfigMap', 'livekit-config').data['config.yaml']);
      const r = spawnSync('sh', ['-c', script.split('/keys/').join(`${keys}/`).split('/etc/livekit/').join(`${etc}/`).split('/run/livekit/').join(`${run}/`)], {
        encoding: 'utf8',
      });
      const keyFile = path.join(run, 'keys.yaml');
      return { status: r.status, stderr: r.stderr, ...(r.status === 0 ? { keys: yaml.load(fs.readFileSync(keyFile, 'utf8')) } : {}) };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const main = { api_key: 'APIold', api_secret: 'old-secret' };

  test('holds the main pair alone when the Secret has no second pair', () => {
    expect(runStep(main)).toEqual({ status: 0, stderr: '', keys: { APIold: 'old-secret' } });
  });

  test('holds both pairs when the Secret has a second one: LiveKit accepts tokens signed with either', () => {
    expect(runStep({ ...main, second_api_key: 'APInew', second_api_secret: 'new-secret' })).toEqual({
      status: 0,
      stderr: '',
      keys: { APIold: 'old-secret', APInew: 'new-secret' },
    });
  });

  test('refuses half a second pair, and a second pair with the main key ID, saying which keys', () => {
    const half = 'kudo-livekit[second_api_key] and kudo-livekit[second_api_secret]: set both or neither\n';
    expect(runStep({ ...main, second_api_key: 'APInew' })).toEqual({ status: 1, stderr: half });
    expect(runStep({ ...main, second_api_secret: 'new-secret' })).toEqual({ status: 1, stderr: half });
    expect(runStep({ ...main, second_api_key: 'APInew', second_api_secret: '' })).toEqual({ status: 1, stderr: half });
    // One key ID cannot be in LiveKit's key file twice: a new secret needs a new key ID.
    expect(runStep({ ...main, second_api_key: 'APIold', second_api_secret: 'new-secret' })).toEqual({
      status: 1,
      stderr: 'kudo-livekit[second_api_key]: must differ from kudo-livekit[api_key]\n',
    });
  });
});

test("the config step quotes any Redis password for YAML, and LiveKit's files are readable by it alone", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-livekit-'));
  try {
    const ms = manifests();
    const script = container(find(ms, 'Deployment', 'livekit'), 'config').command[2] as string;
    const [keys, etc, run] = ['keys', 'etc', 'run'].map((d) => path.join(dir, d));
    for (const d of [keys, etc, run]) fs.mkdirSync(d);
    const password = 'a"b\\c d%s\'e';
    fs.writeFileSync(path.join(keys, 'api_key'), 'APIkey');
    fs.writeFileSync(path.join(keys, 'api_secret'), 'secret');
    fs.writeFileSync(path.join(keys, 'redis_password'), password);
    fs.writeFileSync(path.join(etc, 'config.yaml'), find(ms, 'ConfigMap', 'livekit-config').data['config.yaml']);
    execFileSync('sh', ['-c', script.split('/keys/').join(`${keys}/`).split('/etc/livekit/').join(`${etc}/`).split('/run/livekit/').join(`${run}/`)]);
    const written = yaml.load(fs.readFileSync(path.join(run, 'config.yaml'), 'utf8')) as any;
    expect(written.redis).toEqual({ address: 'redis.kudo.svc:6379', password });
    expect(yaml.load(fs.readFileSync(path.join(run, 'keys.yaml'), 'utf8'))).toEqual({ APIkey: 'secret' });
    for (const f of ['config.yaml', 'keys.yaml']) expect(fs.statSync(path.join(run, f)).mode & 0o077).toBe(0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
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

describe('the address LiveKit advertises', () => {
  const deploy = (c: object) => find(manifests(config(c)), 'Deployment', 'livekit');

  test("by default the Node's ExternalIP, looked up at start with a token of its own: no STUN, no internet needed", () => {
    const ms = manifests();
    const d = find(ms, 'Deployment', 'livekit');
    const c = lkConfig(ms);
    expect(c.rtc.use_external_ip).toBe(false);
    expect(c.rtc.stun_servers).toBeUndefined();
    const lookup = container(d, 'node-address');
    expect(lookup.command).toEqual(['python3', '/etc/livekit/node_address.py', '/run/livekit/node-ip']);
    expect(lookup.volumeMounts.map((m: any) => m.name)).toContain('api-token');
    // The init steps run in order: the address first, then the config.
    expect(podSpec(d).initContainers.map((x: any) => x.name)).toEqual(['node-address', 'config']);
    expect(podSpec(d).automountServiceAccountToken).toBe(false);
    expect(podSpec(d).serviceAccountName).toBe('livekit');
    expect(find(ms, 'ClusterRole', 'kudo-media-livekit-node-reader').rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }]);
    expect(find(ms, 'ConfigMap', 'livekit-config').data['node_address.py']).toContain('ExternalIP');
    // LiveKit gets what the lookup wrote.
    expect(container(d, 'livekit').command[2]).toContain('--node-ip "$(cat /run/livekit/node-ip)"');
  });

  test("the lookup asks for the node's IPv6 too (LiveKit advertises both families where the node has both), as coturn's does", () => {
    const ms = manifests();
    expect(container(find(ms, 'Deployment', 'livekit'), 'node-address').env).toContainEqual({ name: 'ADDRESS_FAMILIES', value: 'both' });
    const pods = find(manifests(config({ livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100 } } })), 'StatefulSet', 'livekit');
    expect(container(pods, 'node-address').env).toContainEqual({ name: 'ADDRESS_FAMILIES', value: 'both' });
    const coturn = find(synthChart('31-coturn', config()), 'DaemonSet', 'coturn');
    expect(container(coturn, 'node-address').env).toContainEqual({ name: 'ADDRESS_FAMILIES', value: 'both' });
  });

  test('a fixed public address: no lookup token', () => {
    const d = deploy({ livekit: { rtc: { publicIp: '203.0.113.9' } } });
    expect(container(d, 'node-address').env).toContainEqual({ name: 'PUBLIC_IP', value: '203.0.113.9' });
    expect(podSpec(d).serviceAccountName).toBeUndefined();
    expect(podSpec(d).volumes.map((v: any) => v.name)).not.toContain('api-token');
  });

  test('a fixed public address of each family: "<IPv4>,<IPv6>" as LiveKit\'s node_ip takes it, or an IPv6 alone; two of one family refused', () => {
    for (const publicIp of ['203.0.113.9,2001:db8:5::9', '2001:db8:5::9']) {
      expect(container(deploy({ livekit: { rtc: { publicIp } } }), 'node-address').env).toContainEqual({ name: 'PUBLIC_IP', value: publicIp });
    }
    // LiveKit refuses these at start ("multiple ipv6 addresses provided"), after the pod was scheduled: the config refuses them first.
    for (const publicIp of ['2001:db8:5::9,2001:db8:5::10', '203.0.113.9,203.0.113.10', '203.0.113.9,2001:db8:5::9,198.51.100.1', 'localhost', '203.0.113.9,']) {
      expect(() => config({ livekit: { rtc: { publicIp } } })).toThrow(
        `livekit.rtc.publicIp: must be an IPv4 address, an IPv6 address, or one of each as "<IPv4>,<IPv6>" (LiveKit's node_ip takes at most one address of each family) (found string "${publicIp}")`,
      );
    }
  });

  test("host-ip: the node's own address, from the downward API", () => {
    const d = deploy({ livekit: { rtc: { nodeAddress: 'host-ip' } } });
    expect(podSpec(d).initContainers.map((x: any) => x.name)).toEqual(['config']);
    expect(container(d, 'livekit').env).toContainEqual({ name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
  });

  test('stun only with servers named by the operator', () => {
    const c = lkConfig(manifests(config({ livekit: { rtc: { nodeAddress: 'stun', stunServers: ['stun.example.org:3478'] } } })));
    expect(c.rtc).toMatchObject({ use_external_ip: true, stun_servers: ['stun.example.org:3478'] });
    expect(() => config({ livekit: { rtc: { nodeAddress: 'stun' } } })).toThrow('livekit.rtc.stunServers must list the STUN servers');
    expect(() => config({ livekit: { rtc: { useExternalIp: true } } })).toThrow('livekit.rtc.useExternalIp: replaced by livekit.rtc.nodeAddress');
  });
});

test("LiveKit is started by the path its image has it at: /livekit-server, which is not on the image's PATH", () => {
  // docker.io/livekit/livekit-server: COPY ... /livekit-server, ENTRYPOINT ["/livekit-server"], on Alpine (PATH without /).
  const c = container(find(manifests(), 'Deployment', 'livekit'), 'livekit');
  expect(c.command.slice(0, 2)).toEqual(['sh', '-c']);
  expect(c.command[2].split('\n').at(-1)).toBe('exec /livekit-server "$@"');
});

test('readiness GET /, TCP liveness, long drain', () => {
  const deploy = find(manifests(), 'Deployment', 'livekit');
  const c = container(deploy, 'livekit');
  expect(c.readinessProbe.httpGet).toEqual({ path: '/', port: 'http' });
  expect(c.livenessProbe.httpGet).toBeUndefined();
  expect(c.livenessProbe.tcpSocket).toEqual({ port: 'http' });
  expect(podSpec(deploy).terminationGracePeriodSeconds).toBeGreaterThanOrEqual(3600);
});

describe("Go's memory limit follows the container's (the capacity benchmark saw LiveKit OOM-killed at its 1 GiB limit without it)", () => {
  /**
   * The start script run by sh as the container runs it, with a stand-in that prints GOMEMLIMIT in place of the
   * image's /livekit-server (the path is swapped in the script: the stand-in is not put on PATH, where the image has
   * no LiveKit).
   */
  const goMemLimit = (c: any, limitMiB: number): string => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-lk-'));
    try {
      fs.writeFileSync(path.join(bin, 'livekit-server'), '#!/bin/sh\necho "$GOMEMLIMIT"\n', { mode: 0o755 });
      const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOST_IP: '10.0.0.5' };
      for (const e of c.env) {
        const ref = e.valueFrom?.resourceFieldRef;
        if (ref) {
          expect(ref).toEqual({ containerName: 'livekit', resource: 'limits.memory', divisor: '1Mi' });
          env[e.name] = String(limitMiB);
        }
      }
      const script = c.command[2].split('exec /livekit-server ').join(`exec ${bin}/livekit-server `);
      return execFileSync('sh', ['-c', script], { env, encoding: 'utf8' }).trim();
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  };

  test('GOMEMLIMIT is nine tenths of the limit, read from the downward API', () => {
    const c = container(find(manifests(), 'Deployment', 'livekit'), 'livekit');
    expect(c.resources.limits.memory).toBe('1Gi');
    expect(goMemLimit(c, 1024)).toBe('921MiB');
    const prod = container(find(manifests(config({ ...PRODUCTION })), 'Deployment', 'livekit'), 'livekit');
    expect(prod.resources.limits.memory).toBe('8Gi');
    expect(goMemLimit(prod, 8192)).toBe('7372MiB');
  });
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
  for (const n of ['livekit', 'config', 'node-address']) {
    expect(container(deploy, n).securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  }
});

test("a disruption budget only when there is more than one node's LiveKit", () => {
  expect(manifests().filter((m) => m.kind === 'PodDisruptionBudget')).toEqual([]);
  const pdb = find(manifests(config({ livekit: { replicas: 3 } })), 'PodDisruptionBudget', 'livekit');
  expect(pdb.spec.maxUnavailable).toBe(1);
});

test('production runs two LiveKit nodes, one pod per node, drained one at a time', () => {
  const prod = manifests(config({ ...PRODUCTION }));
  const lk = find(prod, 'Deployment', 'livekit');
  expect(lk.spec.replicas).toBe(2);
  expect(podSpec(lk).affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
    { labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'livekit', 'app.kubernetes.io/instance': 'kudo-livekit' } }, topologyKey: 'kubernetes.io/hostname' },
  ]);
  expect(find(prod, 'PodDisruptionBudget', 'livekit').spec.maxUnavailable).toBe(1);
  expect(find(manifests(), 'Deployment', 'livekit').spec.replicas).toBe(1);
});

describe('livekit.hostNetwork false: an ordinary pod, each replica behind NodePort Services of its own', () => {
  const podMode = (extra: object = {}) => config({ livekit: { hostNetwork: false, replicas: 3, rtc: { udpPort: 31000, tcpPort: 31100 }, ...extra } });
  const ms = () => manifests(podMode());

  test('a StatefulSet instead of the Deployment, with no host network, host port or host address anywhere in its pod', () => {
    const m = ms();
    expect(m.filter((o) => o.kind === 'Deployment')).toEqual([]);
    const sts = find(m, 'StatefulSet', 'livekit');
    expect(sts.spec).toMatchObject({ replicas: 3, serviceName: 'livekit-pods', podManagementPolicy: 'Parallel' });
    // Its governing Service is headless, as a StatefulSet's must be for its pods' DNS names.
    expect(find(m, 'Service', 'livekit-pods').spec).toMatchObject({ clusterIP: 'None', selector: sts.spec.selector.matchLabels });
    const spec = podSpec(sts);
    expect(spec.hostNetwork).toBeUndefined();
    expect(spec.hostPID).toBeUndefined();
    expect(spec.hostIPC).toBeUndefined();
    expect(spec.dnsPolicy).toBeUndefined();
    for (const x of [...spec.containers, ...spec.initContainers]) {
      for (const p of x.ports ?? []) expect([x.name, p.hostPort]).toEqual([x.name, undefined]);
    }
    const lk = container(sts, 'livekit');
    // Listens on every address of its own pod: no --bind to the node's.
    expect(lk.command[2]).not.toContain('--bind');
    expect(lk.env.map((e: any) => e.name)).not.toContain('HOST_IP');
    expect(lk.ports.map((p: any) => p.name)).toEqual(['http', 'metrics']);
    // Several replicas may share a node (their ports differ); spread when the nodes allow.
    expect(spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution).toBeUndefined();
    expect(spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]).toMatchObject({
      weight: 100,
      podAffinityTerm: { topologyKey: 'kubernetes.io/hostname' },
    });
  });

  test("Pod Security restricted, every container: non-root, no privilege escalation, every capability dropped, the runtime's seccomp profile", () => {
    const spec = podSpec(find(ms(), 'StatefulSet', 'livekit'));
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    const names: string[] = [];
    for (const x of [...spec.initContainers, ...spec.containers]) {
      names.push(x.name);
      expect([x.name, x.securityContext]).toMatchObject([x.name, { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } }]);
      expect(x.securityContext.capabilities.add).toBeUndefined();
      expect(x.securityContext.privileged).not.toBe(true);
      expect(x.securityContext.runAsUser).not.toBe(0);
    }
    expect(names).toEqual(['node-address', 'config', 'livekit']);
    for (const v of spec.volumes) expect([v.name, v.hostPath]).toEqual([v.name, undefined]);
  });

  test('one NodePort Service per replica, selecting that pod alone, keeping the client address, on the ports the replica listens on', () => {
    const m = ms();
    const services = m.filter((o) => o.kind === 'Service' && o.metadata.name.startsWith('livekit-rtc-'));
    expect(services.map((s) => s.metadata.name)).toEqual(['livekit-rtc-0', 'livekit-rtc-1', 'livekit-rtc-2']);
    const s1 = find(m, 'Service', 'livekit-rtc-1');
    expect(s1.metadata.namespace).toBe('kudo-media');
    expect(s1.spec).toEqual({
      type: 'NodePort',
      // Both address families where the cluster has both (no ipFamilies: the cluster's order), one where it has one.
      ipFamilyPolicy: 'PreferDualStack',
      externalTrafficPolicy: 'Local',
      publishNotReadyAddresses: true,
      selector: { 'app.kubernetes.io/name': 'livekit', 'app.kubernetes.io/instance': 'kudo-livekit', 'statefulset.kubernetes.io/pod-name': 'livekit-1' },
      ports: [
        { name: 'rtc-udp', protocol: 'UDP', port: 31001, targetPort: 31001, nodePort: 31001 },
        { name: 'rtc-tcp', protocol: 'TCP', port: 31101, targetPort: 31101, nodePort: 31101 },
      ],
    });
    // The pods carry what it selects, the pod name aside (the StatefulSet controller adds that one).
    expect(find(m, 'StatefulSet', 'livekit').spec.template.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'livekit', 'app.kubernetes.io/instance': 'kudo-livekit' });
    // The API stays behind the Ingress.
    expect(find(m, 'Service', 'livekit').spec.type).toBeUndefined();
  });

  test("a replica's calls keep their media while its readiness fails: a Redis outage makes every LiveKit answer 406 at once", () => {
    const sts = find(ms(), 'StatefulSet', 'livekit');
    // The readiness probe is LiveKit's GET /, which fails on a Redis outage (livekit#4663) ...
    expect(container(sts, 'livekit').readinessProbe.httpGet).toMatchObject({ path: '/' });
    // ... so the media Services do not follow it: an unready endpoint would leave ongoing calls without a route.
    for (const s of ms().filter((o) => o.kind === 'Service' && o.metadata.name.startsWith('livekit-rtc-'))) expect(s.spec.publishNotReadyAddresses).toBe(true);
    // The API Service does: new participants go to a replica that is ready.
    expect(find(ms(), 'Service', 'livekit').spec.publishNotReadyAddresses).toBeUndefined();
  });

  test("the start script gives replica i the first replica's ports plus i, from its pod name; the config holds the first replica's", () => {
    const sts = find(ms(), 'StatefulSet', 'livekit');
    const lk = container(sts, 'livekit');
    expect(lk.env[0]).toEqual({ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
    const script: string = lk.command[2];
    for (const [pod, udp, tcp] of [
      ['livekit-0', 31000, 31100],
      ['livekit-2', 31002, 31102],
    ] as const) {
      // The shell computes the flags: print them instead of starting LiveKit.
      const out = execFileSync('sh', ['-c', script.replace('exec /livekit-server "$@"', 'printf "%s\\n" "$@"')], {
        env: { POD_NAME: pod, MEMORY_LIMIT_MIB: '1024', PATH: process.env.PATH },
        encoding: 'utf8',
      });
      expect(out.split('\n')).toEqual(['--config', '/run/livekit/config.yaml', '--udp-port', String(udp), '--rtc.tcp_port', String(tcp), '']);
    }
    const c = lkConfig(ms());
    expect(c.rtc).toMatchObject({ udp_port: 31000, tcp_port: 31100, use_external_ip: false });
    expect(c.rtc.port_range_start).toBeUndefined();
  });

  test("advertises the node's ExternalIP, looked up as on the host network (the node's own address with host-ip)", () => {
    const sts = find(ms(), 'StatefulSet', 'livekit');
    expect(container(sts, 'node-address').env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    expect(container(sts, 'livekit').command[2]).toContain('--node-ip "$(cat /run/livekit/node-ip)"');
    const hostIp = find(manifests(podMode({ rtc: { udpPort: 31000, tcpPort: 31100, nodeAddress: 'host-ip' } })), 'StatefulSet', 'livekit');
    expect(container(hostIp, 'livekit').env).toContainEqual({ name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
  });

  test('one replica: one Service; the default stays a Deployment on the host network with no such Service', () => {
    const one = manifests(config({ livekit: { hostNetwork: false, rtc: { udpPort: 30500, tcpPort: 30501 } } }));
    expect(one.filter((o) => o.kind === 'Service').map((s) => s.metadata.name)).toEqual(['livekit-rtc-0', 'livekit-pods', 'livekit']);
    const def = manifests();
    expect(def.filter((o) => o.kind === 'StatefulSet')).toEqual([]);
    expect(podSpec(find(def, 'Deployment', 'livekit')).hostNetwork).toBe(true);
    expect(def.filter((o) => o.kind === 'Service').map((s) => s.metadata.name)).toEqual(['livekit']);
  });
});
