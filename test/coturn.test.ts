import { execFileSync } from 'child_process';
import * as fs from 'fs';
import { BlockList } from 'net';
import * as os from 'os';
import * as path from 'path';
import { cidrToRange, CoturnProps, DENIED_PEER_CIDRS, turnserverConf } from '../charts/coturn';
import { config, container, find, Manifest, podSpec, PRODUCTION, synthChart } from './util';

const manifests = (c = config()) => synthChart('31-coturn', c);
const conf = (ms: Manifest[]) => find(ms, 'ConfigMap', 'coturn-config').data['turnserver.conf'] as string;
const options = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

test('a host-network DaemonSet on nodes labelled for TURN', () => {
  const ds = find(manifests(), 'DaemonSet', 'coturn');
  const spec = podSpec(ds);
  expect(spec.hostNetwork).toBe(true);
  expect(spec.nodeSelector).toEqual({ 'kudo/turn': 'true' });
  expect(ds.metadata.namespace).toBe('kudo-media');
});

test('turnserver.conf: every option, in order (ports, realm, REST auth, hardening, metrics)', () => {
  const o = options(conf(manifests()));
  // The whole set, so that an option dropped or added shows: the peer ranges are IANA's special-purpose registries'.
  expect(o).toEqual([
    'log-file=stdout',
    'listening-port=3478',
    'tls-listening-port=5349',
    'min-port=10000',
    'max-port=12399',
    'realm=turn.example.com',
    'server-name=turn.example.com',
    'use-auth-secret',
    'fingerprint',
    'no-tcp-relay',
    'no-multicast-peers',
    'denied-peer-ip=0.0.0.0-0.255.255.255',
    'denied-peer-ip=10.0.0.0-10.255.255.255',
    'denied-peer-ip=100.64.0.0-100.127.255.255',
    'denied-peer-ip=127.0.0.0-127.255.255.255',
    'denied-peer-ip=169.254.0.0-169.254.255.255',
    'denied-peer-ip=172.16.0.0-172.31.255.255',
    'denied-peer-ip=192.0.0.0-192.0.0.255',
    'denied-peer-ip=192.0.2.0-192.0.2.255',
    'denied-peer-ip=192.88.99.0-192.88.99.255',
    'denied-peer-ip=192.168.0.0-192.168.255.255',
    'denied-peer-ip=198.18.0.0-198.19.255.255',
    'denied-peer-ip=198.51.100.0-198.51.100.255',
    'denied-peer-ip=203.0.113.0-203.0.113.255',
    'denied-peer-ip=224.0.0.0-239.255.255.255',
    'denied-peer-ip=240.0.0.0-255.255.255.255',
    'denied-peer-ip=::1',
    'denied-peer-ip=::ffff:0:0-::ffff:ffff:ffff',
    'denied-peer-ip=64:ff9b::-64:ff9b::ffff:ffff',
    'denied-peer-ip=100::-100::ffff:ffff:ffff:ffff',
    'denied-peer-ip=2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=2002::-2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=64:ff9b:1::-64:ff9b:1:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=100:0:0:1::-100::1:ffff:ffff:ffff:ffff',
    'denied-peer-ip=2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=3fff::-3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=5f00::-5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=fec0::-feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-peer-ip=ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'user-quota=12',
    'total-quota=1200',
    'stale-nonce=600',
    'no-rfc5780',
    'cipher-list=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
    'pidfile=/run/coturn/turnserver.pid',
    'userdb=/run/coturn/turndb',
    'prometheus',
    'prometheus-port=9641',
  ]);
  // The certificate is start.sh's to add, once it exists.
  expect(o.filter((l) => /^(cert|pkey)=/.test(l))).toEqual([]);
});

test('the relay range holds an even/odd port pair for every allocation total-quota allows, below the ephemeral ports', () => {
  for (const profile of ['small', 'production']) {
    const o = options(conf(manifests(config(profile === 'production' ? PRODUCTION : {}))));
    const value = (k: string) => Number(o.find((l) => l.startsWith(`${k}=`))!.split('=')[1]);
    const [min, max, quota] = [value('min-port'), value('max-port'), value('total-quota')];
    // EVEN-PORT with the R bit takes an even port and the odd one above it (coturn's turnports_allocate_even).
    expect([profile, min % 2, Math.floor((max - min + 1) / 2) >= quota]).toEqual([profile, 0, true]);
    expect([profile, max < 30000]).toEqual([profile, true]);
  }
});

test('no secret and no option the pinned coturn removed or deprecated', () => {
  const text = conf(manifests());
  expect(options(text).filter((l) => l.startsWith('static-auth-secret'))).toEqual([]);
  // Removed in 4.7 (no-stun-backward-compatibility: its behaviour is the default since; 4.18 refuses the line).
  for (const gone of ['no-tlsv1', 'no-tlsv1_1', 'no-cli', 'no-dtls', 'no-sslv2', 'no-sslv3', 'prod', 'secret-ts-exp-time', 'no-stun-backward-compatibility']) {
    expect(options(text).map((l) => l.split('=')[0])).not.toContain(gone);
  }
});

test('comments only on their own lines', () => {
  for (const line of options(conf(manifests()))) expect(line).not.toContain('#');
});

test('denied-peer-ip covers every private and special range, as A-B ranges', () => {
  const denied = options(conf(manifests()))
    .filter((l) => l.startsWith('denied-peer-ip='))
    .map((l) => l.slice('denied-peer-ip='.length));
  expect(denied).toHaveLength(DENIED_PEER_CIDRS.length);
  expect(denied).toEqual(
    expect.arrayContaining([
      '10.0.0.0-10.255.255.255',
      '172.16.0.0-172.31.255.255',
      '192.168.0.0-192.168.255.255',
      '100.64.0.0-100.127.255.255',
      '127.0.0.0-127.255.255.255',
      '169.254.0.0-169.254.255.255',
      '::1',
      'fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      'fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
      '64:ff9b::-64:ff9b::ffff:ffff',
      '::ffff:0:0-::ffff:ffff:ffff',
    ]),
  );
  for (const d of denied) expect(d).not.toContain('/');
});

/** The IPv6 denied-peer-ip lines of the rendered turnserver.conf, read into Node's own address matcher. */
function deniedIpv6(): BlockList {
  const denied = new BlockList();
  for (const line of options(conf(manifests())).filter((l) => l.startsWith('denied-peer-ip=') && l.includes(':'))) {
    const [first, last] = line.slice('denied-peer-ip='.length).split('-');
    if (last === undefined) denied.addAddress(first, 'ipv6');
    else denied.addRange(first, last, 'ipv6');
  }
  return denied;
}

// IANA's IPv6 Special-Purpose Address Registry (the entries not globally reachable), the deprecated IPv4-compatible and
// site-local prefixes, and multicast: one address of each, as a client would put it in XOR-PEER-ADDRESS. Only the IPv6
// lines are read, as coturn compares a peer with ranges of its own family: an IPv4-mapped peer is not checked against
// the IPv4 ranges, so it needs ranges of its own.
test.each([
  ['::ffff:10.0.0.1', 'IPv4-mapped: 10.0.0.1 through a dual-stack relay socket'],
  ['::ffff:169.254.169.254', 'IPv4-mapped: the cloud metadata service'],
  ['64:ff9b::a9fe:a9fe', 'NAT64 well-known prefix: 169.254.169.254 through a NAT64'],
  ['64:ff9b:1::a00:1', 'NAT64 local-use prefix (RFC 8215): 10.0.0.1 through a NAT64'],
  ['100::1', 'discard-only (RFC 6666)'],
  ['100:0:0:1::1', 'dummy prefix (RFC 9780)'],
  ['2001:db8::1', 'documentation (RFC 3849)'],
  ['3fff::1', 'documentation (RFC 9637)'],
  ['5f00::1', 'SRv6 SIDs (RFC 9602)'],
  ['fd00:ec2::254', 'unique local: the AWS IPv6 metadata service'],
  ['fe80::1', 'link-local'],
  ['fec0::1', 'site-local (RFC 3879, deprecated)'],
  ['ff02::1', 'multicast: all nodes'],
])('denied-peer-ip denies IPv6 peer %s (%s)', (address) => {
  const denied = deniedIpv6();
  expect(denied.check(address, 'ipv6')).toBe(true);
});

test('denied-peer-ip leaves public IPv6 peers open, and public IPv4 peers as coturn compares them with IPv6 ranges', () => {
  const denied = deniedIpv6();
  for (const address of ['2606:4700:4700::1111', '2a00:1450:4001:80b::200e', '2620:4f:8000::1']) expect([address, denied.check(address, 'ipv6')]).toEqual([address, false]);
  // coturn 4.18 compares an IPv4 peer with an IPv6 range as its IPv4-compatible address (::a.b.c.d): a range over ::/96
  // would deny every IPv4 peer (seen with the real program: 8.8.8.8 "denied in the range: ::-::ffff:ffff"). So the
  // IPv4-compatible forms of public IPv4 addresses must stay open too (:: and ::1, in 0.0.0.0/8, are denied anyway).
  // And no line of the unspecified address alone: coturn 4.18 denies every IPv6 peer with it (seen: 2606:4700:4700::1111
  // "denied in the range: ::"). coturn refuses the peer :: itself (test/e2e/coturn-ipv6.e2e.test.ts).
  expect(options(conf(manifests())).filter((l) => /^denied-peer-ip=::(-|$)/.test(l))).toEqual([]);
  for (const [v4, compatible] of [
    ['8.8.8.8', '::808:808'],
    ['1.1.1.1', '::101:101'],
    ['93.184.216.34', '::5db8:d822'],
  ]) {
    expect([v4, denied.check(compatible, 'ipv6')]).toEqual([v4, false]);
  }
});

test('CIDR to range conversion', () => {
  expect(cidrToRange('10.0.0.0/8')).toBe('10.0.0.0-10.255.255.255');
  expect(cidrToRange('0.0.0.0/8')).toBe('0.0.0.0-0.255.255.255');
  expect(cidrToRange('240.0.0.0/4')).toBe('240.0.0.0-255.255.255.255');
  expect(cidrToRange('192.0.2.1/32')).toBe('192.0.2.1');
  expect(cidrToRange('2001::/23')).toBe('2001::-2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff');
  expect(cidrToRange('100::/64')).toBe('100::-100::ffff:ffff:ffff:ffff');
  expect(() => cidrToRange('10.0.0.1/8')).toThrow('has host bits set');
  expect(() => cidrToRange('10.0.0.0/33')).toThrow('invalid CIDR');
  expect(() => cidrToRange('300.0.0.0/8')).toThrow('invalid IPv4 address');
});

test('the shared secret and node addresses are added at start from the Secret and downward API', () => {
  const ms = manifests();
  const ds = find(ms, 'DaemonSet', 'coturn');
  const c = container(ds, 'coturn');
  expect(c.command).toEqual(['sh', '/etc/coturn/start.sh']);
  const start = find(ms, 'ConfigMap', 'coturn-config').data['start.sh'];
  expect(start).toContain('static-auth-secret=%s');
  expect(start).toContain('external-ip=%s/%s');
  expect(c.env).toContainEqual({ name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } });
});

test('the TURN Secret volume: the shared secret, and an optional second one (docs/operations.md, "Rotating secrets")', () => {
  expect(podSpec(find(manifests(), 'DaemonSet', 'coturn')).volumes.find((v: any) => v.name === 'turn-secret')).toEqual({
    name: 'turn-secret',
    projected: {
      defaultMode: 0o440,
      sources: [
        { secret: { name: 'kudo-turn', items: [{ key: 'shared_secret', path: 'shared_secret' }] } },
        // Optional: the kubelet leaves it out when the Secret does not hold it, and coturn starts with the main secret alone.
        { secret: { name: 'kudo-turn', items: [{ key: 'second_shared_secret', path: 'second_shared_secret' }], optional: true } },
      ],
    },
  });
});

describe('start.sh, run with a stand-in turnserver that prints the config it is given', () => {
  /** The rendered start.sh on these TURN Secret files, its paths moved into a folder: what it hands turnserver. */
  const startConf = (files: Record<string, string>, publicIp = '203.0.113.7'): string => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-coturn-start-'));
    try {
      const data = find(manifests(), 'ConfigMap', 'coturn-config').data as Record<string, string>;
      const at = Object.fromEntries(['run', 'tls', 'etc', 'secrets', 'bin'].map((d) => [d, path.join(dir, d)]));
      for (const d of Object.values(at)) fs.mkdirSync(d);
      fs.writeFileSync(path.join(at.etc, 'turnserver.conf'), 'realm=turn.example.com\n');
      fs.writeFileSync(path.join(at.run, 'public-ip'), `${publicIp}\n`);
      for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(at.secrets, f), v);
      fs.writeFileSync(path.join(at.bin, 'turnserver'), '#!/bin/sh\n[ "$1" = -c ] && cat "$2"\n', { mode: 0o755 });
      const moves: [string, string][] = [
        ['/run/coturn/', `${at.run}/`],
        ['/tls/', `${at.tls}/`],
        ['/etc/coturn/', `${at.etc}/`],
        ['/secrets/turn/', `${at.secrets}/`],
      ];
      const script = moves.reduce((t, [from, to]) => t.split(from).join(to), data['start.sh']);
      return execFileSync('sh', ['-c', script], {
        env: { PATH: `${at.bin}:/usr/bin:/bin`, NODE_IP: '10.0.0.5', CERT_CHECK_SECONDS: '0.05' },
        encoding: 'utf8',
        timeout: 10_000,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const conf = (...secrets: string[]) =>
    ['realm=turn.example.com', ...secrets.map((s) => `static-auth-secret=${s}`), 'external-ip=203.0.113.7/10.0.0.5', 'listening-ip=10.0.0.5', 'relay-ip=10.0.0.5', ''].join('\n');

  test('one static-auth-secret when the Secret holds the shared secret alone', () => {
    expect(startConf({ shared_secret: 'old' })).toContain(conf('old'));
  });

  test('a second static-auth-secret when the Secret holds a second one: coturn accepts credentials made with either', () => {
    expect(startConf({ shared_secret: 'new', second_shared_secret: 'old' })).toContain(conf('new', 'old'));
    // An emptied key counts as none (an empty static-auth-secret would be a secret anyone can sign with).
    expect(startConf({ shared_secret: 'new', second_shared_secret: '' })).toContain(conf('new'));
  });

  test('a node with an IPv6 address too (the lookup wrote "<IPv4>,<IPv6>"): coturn listens and relays on the IPv6 too, and maps only the IPv4 to the public one', () => {
    const out = startConf({ shared_secret: 's' }, '203.0.113.7,2600:1f18:4a3:6b00::5');
    const lines = out.split('\n').filter((l) => /^(external-ip|listening-ip|relay-ip)=/.test(l));
    expect(lines).toEqual([
      'external-ip=203.0.113.7/10.0.0.5',
      'listening-ip=10.0.0.5',
      'relay-ip=10.0.0.5',
      'listening-ip=2600:1f18:4a3:6b00::5',
      'relay-ip=2600:1f18:4a3:6b00::5',
    ]);
  });
});

test('a cert-manager Certificate for the TURN host; coturn starts without it (optional Secret) and takes it up later', () => {
  const ms = manifests();
  const cert = find(ms, 'Certificate', 'coturn-tls');
  expect(cert.spec).toEqual({
    secretName: 'coturn-tls',
    dnsNames: ['turn.example.com'],
    issuerRef: { kind: 'ClusterIssuer', name: 'kudo-letsencrypt' },
    privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
  });
  expect(cert.metadata).toMatchObject({ namespace: 'kudo-media', labels: { 'app.kubernetes.io/name': 'coturn' } });
  const start = find(ms, 'ConfigMap', 'coturn-config').data['start.sh'];
  expect(start).toContain('kill -USR2');
  expect(start).toContain('printf \'cert=%s\\npkey=%s\\n\' "$cert" "$key"');
  // The same Secret the Certificate fills, and optional: a TURN node without its certificate yet still relays.
  expect(podSpec(find(ms, 'DaemonSet', 'coturn')).volumes.find((v: any) => v.name === 'tls').secret).toEqual({
    secretName: cert.spec.secretName,
    defaultMode: 0o440,
    optional: true,
  });
});

test('public IP from the Node needs a token in the init container only, and RBAC to get nodes', () => {
  const ms = manifests();
  const ds = find(ms, 'DaemonSet', 'coturn');
  expect(podSpec(ds).automountServiceAccountToken).toBe(false);
  expect(container(ds, 'node-address').volumeMounts.map((m: any) => m.name)).toContain('api-token');
  expect(container(ds, 'coturn').volumeMounts.map((m: any) => m.name)).not.toContain('api-token');
  const role = find(ms, 'ClusterRole', 'kudo-media-coturn-node-reader');
  expect(role.rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }]);
});

test('a configured public IP needs no API access', () => {
  const ms = manifests(config({ coturn: { publicIp: '203.0.113.7' } }));
  expect(ms.filter((m) => m.kind === 'ClusterRole' || m.kind === 'ServiceAccount')).toEqual([]);
  const init = container(find(ms, 'DaemonSet', 'coturn'), 'node-address');
  expect(init.env).toContainEqual({ name: 'PUBLIC_IP', value: '203.0.113.7' });
});

test('coturn.publicIp is an IPv4: an IPv6 is refused with why, and what coturn does with the IPv6 instead', () => {
  expect(() => config({ coturn: { publicIp: '2001:db8:5::7' } })).toThrow(
    "coturn.publicIp: an IPv6 address cannot be given here: it is the public half of external-ip=PUBLIC/PRIVATE for the node's IPv4 " +
      '(status.hostIP), and coturn\'s IPv6 is the node\'s own, looked up at start and listened on as it is (found string "2001:db8:5::7")',
  );
  expect(() => config({ coturn: { publicIp: '203.0.113' } })).toThrow('coturn.publicIp: must be an IPv4 address such as "203.0.113.10" (found string "203.0.113")');
});

test('probes and a restricted container', () => {
  const c = container(find(manifests(), 'DaemonSet', 'coturn'), 'coturn');
  expect(c.readinessProbe.tcpSocket.port).toBe(3478);
  expect(c.livenessProbe.tcpSocket.port).toBe(3478);
  expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsNonRoot: true });
});

test("coturn keeps exactly NET_BIND_SERVICE in its bounding set: the image's turnserver carries it as a file capability", () => {
  // coturn/coturn's Debian build file: setcap CAP_NET_BIND_SERVICE=+ep /usr/bin/turnserver. With the capability out of
  // the bounding set the kernel refuses to exec the binary (EPERM); the main container is the only one that runs it.
  const ds = find(manifests(), 'DaemonSet', 'coturn');
  expect(container(ds, 'coturn').securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['NET_BIND_SERVICE'] });
  expect(container(ds, 'node-address').securityContext.capabilities).toEqual({ drop: ['ALL'] });
});

test('the address lookup runs from the ConfigMap alone (its imports are in it too)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kudo-coturn-init-'));
  const data = find(manifests(), 'ConfigMap', 'coturn-config').data as Record<string, string>;
  for (const [f, text] of Object.entries(data)) fs.writeFileSync(path.join(dir, f), text);
  const c = container(find(manifests(config({ coturn: { publicIp: '203.0.113.7' } })), 'DaemonSet', 'coturn'), 'node-address');
  const out = path.join(dir, 'public-ip');
  // The init container's command, its script path moved into the folder.
  execFileSync(c.command[0], [path.join(dir, path.basename(c.command[1])), out], {
    cwd: os.tmpdir(),
    env: { PATH: process.env.PATH, PUBLIC_IP: '203.0.113.7', NODE_NAME: 'n', NODE_IP: '10.0.0.5' },
  });
  expect(fs.readFileSync(out, 'utf8')).toBe('203.0.113.7\n');
});

test('logs to stdout from its first line (a warning before log-file would open a log file of its own)', () => {
  expect(options(conf(manifests()))[0]).toBe('log-file=stdout');
});

test('metrics on the port the DaemonSet, the monitoring Service and the firewall list name, set explicitly', () => {
  const ms = manifests();
  const o = options(conf(ms));
  expect(o).toEqual(expect.arrayContaining(['prometheus', 'prometheus-port=9641']));
  expect(container(find(ms, 'DaemonSet', 'coturn'), 'coturn').ports).toContainEqual({ name: 'metrics', containerPort: 9641, protocol: 'TCP' });
});

test("coturn.extraDeniedPeerIps: each CIDR is denied too, as coturn's A-B range, after the built-in ones", () => {
  const o = options(conf(manifests(config({ coturn: { extraDeniedPeerIps: ['203.0.114.0/24', '2001:db8:1::/48', '198.51.101.7/32'] } }))));
  const denied = o.filter((l) => l.startsWith('denied-peer-ip='));
  expect(denied.slice(-3)).toEqual(['denied-peer-ip=203.0.114.0-203.0.114.255', 'denied-peer-ip=2001:db8:1::-2001:db8:1:ffff:ffff:ffff:ffff:ffff', 'denied-peer-ip=198.51.101.7']);
  expect(denied).toHaveLength(DENIED_PEER_CIDRS.length + 3);
});

test('coturn.extraDeniedPeerIps refuses what is not a CIDR, naming the key', () => {
  expect(() => config({ coturn: { extraDeniedPeerIps: ['203.0.114.0'] } })).toThrow(/coturn\.extraDeniedPeerIps\.0: must be an IPv4 or IPv6 CIDR/);
  expect(() => config({ coturn: { extraDeniedPeerIps: ['10.0.0.0/33'] } })).toThrow(/coturn\.extraDeniedPeerIps\.0: must be an IPv4 or IPv6 CIDR/);
  expect(() => config({ coturn: { extraDeniedPeerIps: ['fd00::/129'] } })).toThrow(/coturn\.extraDeniedPeerIps\.0: must be an IPv4 or IPv6 CIDR/);
  // Host bits set: coturn would get a range the operator did not write.
  expect(() => manifests(config({ coturn: { extraDeniedPeerIps: ['203.0.114.9/24'] } }))).toThrow('coturn.extraDeniedPeerIps: CIDR "203.0.114.9/24" has host bits set');
});

test('coturn.tls.minVersion "1.3" adds no-tlsv1_2 (coturn\'s switch to a TLS 1.3 minimum); the default 1.2 adds nothing', () => {
  expect(options(conf(manifests())).filter((l) => /tlsv1/.test(l))).toEqual([]);
  expect(options(conf(manifests(config({ coturn: { tls: { minVersion: '1.3' } } })))).filter((l) => /tlsv1/.test(l))).toEqual(['no-tlsv1_2']);
  expect(() => config({ coturn: { tls: { minVersion: '1.1' } } })).toThrow(/coturn\.tls\.minVersion/);
});

test('TURNS offers TLS 1.2 with forward-secret AEAD suites only (ECDHE-ECDSA with AES-GCM or ChaCha20-Poly1305), and the TLS 1.3 suites, in either minimum version', () => {
  // coturn passes one cipher-list to OpenSSL's TLS 1.2 list and to its TLS 1.3 suites, so it names both kinds.
  const want = [
    'cipher-list=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
  ];
  for (const minVersion of ['1.2', '1.3']) expect(options(conf(manifests(config({ coturn: { tls: { minVersion } } })))).filter((l) => l.startsWith('cipher-list'))).toEqual(want);
});

describe('CIDR to range conversion, against Python ipaddress (network_address-broadcast_address)', () => {
  test.each([
    ['0.0.0.0/0', '0.0.0.0-255.255.255.255'],
    ['198.51.100.128/25', '198.51.100.128-198.51.100.255'],
    ['255.255.255.255/32', '255.255.255.255'],
    ['::/0', '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['::1/128', '::1'],
    ['2001:db8::/32', '2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff'],
    ['FE80::/10', 'fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
    // Eight groups, no "::" in the input; RFC 5952's compression of the output: the longest run of zero groups, the first
    // of two equal runs, never a single zero group.
    ['2001:db8:0:1:1:1:1:1/128', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8:0:0:1:0:0:0/128', '2001:db8:0:0:1::'],
    ['2001:0:0:1:0:0:1:1/128', '2001::1:0:0:1:1'],
    ['1:0:0:0:0:0:0:0/128', '1::'],
    ['0:0:0:0:0:0:0:1/128', '::1'],
  ])('%s -> %s', (cidr, range) => {
    expect(cidrToRange(cidr)).toBe(range);
  });

  test.each([
    ['10.0.0.0/x', 'invalid CIDR "10.0.0.0/x"'],
    ['10.0.0.0/8.5', 'invalid CIDR "10.0.0.0/8.5"'],
    ['10.0.0.0/-1', 'invalid CIDR "10.0.0.0/-1"'],
    ['::/129', 'invalid CIDR "::/129"'],
    ['256.0.0.0/8', 'invalid IPv4 address "256.0.0.0"'],
    ['-1.0.0.0/8', 'invalid IPv4 address "-1.0.0.0"'],
    ['1.2.3/8', 'invalid IPv4 address "1.2.3"'],
    ['1.2.3.4.5/32', 'invalid IPv4 address "1.2.3.4.5"'],
    ['1.2.3.x/32', 'invalid IPv4 address "1.2.3.x"'],
    ['1:2:3:4:5:6:7/128', 'invalid IPv6 address "1:2:3:4:5:6:7"'],
    ['1:2:3:4:5:6:7:8:9/128', 'invalid IPv6 address "1:2:3:4:5:6:7:8:9"'],
    ['fe80::g/128', 'invalid IPv6 address "fe80::g"'],
    ['abcde::/16', 'invalid IPv6 address "abcde::"'],
    ['10.0.0.1/8', 'CIDR "10.0.0.1/8" has host bits set'],
    ['2001:db8::1/32', 'CIDR "2001:db8::1/32" has host bits set'],
  ])('%s is refused: %s', (cidr, message) => {
    expect(() => cidrToRange(cidr)).toThrow(new Error(message));
  });
});

describe('turnserver.conf from props the config never leaves out', () => {
  const props = (more: Partial<CoturnProps> = {}) => ({ host: 'turn.example.org', relayPorts: { min: 50000, max: 50099 }, userQuota: 12, totalQuota: 50, ...more }) as CoturnProps;
  const deniedLines = (text: string) => text.split('\n').filter((l) => l.startsWith('denied-peer-ip='));

  test('no extra denied ranges and no TLS version given: the built-in ranges only, TLS 1.2 allowed', () => {
    const text = turnserverConf(props());
    expect(deniedLines(text)).toHaveLength(DENIED_PEER_CIDRS.length);
    expect(text).not.toContain('no-tlsv1_2');
  });

  test('TLS 1.3 only: the line that turns 1.2 off, with its comment', () => {
    const lines = turnserverConf(props({ tlsMinVersion: '1.3' })).split('\n');
    expect(lines.slice(lines.indexOf('no-rfc5780') + 1, lines.indexOf('no-rfc5780') + 3)).toEqual(['# TURNS: TLS 1.3 only.', 'no-tlsv1_2']);
    expect(turnserverConf(props({ tlsMinVersion: '1.2' }))).not.toContain('no-tlsv1_2');
  });

  test('a bad extra range names the key and keeps the cause', () => {
    const refusal = (cidr: string) => {
      try {
        turnserverConf(props({ extraDeniedPeerIps: [cidr] }));
      } catch (e) {
        return [(e as Error).message, ((e as Error).cause as Error).message];
      }
      return undefined;
    };
    expect(refusal('10.0.0.0/99')).toEqual(['coturn.extraDeniedPeerIps: not a CIDR "10.0.0.0/99"', 'invalid CIDR "10.0.0.0/99"']);
    expect(refusal('10.0.0.1/8')).toEqual(['coturn.extraDeniedPeerIps: CIDR "10.0.0.1/8" has host bits set', 'CIDR "10.0.0.1/8" has host bits set']);
    expect(deniedLines(turnserverConf(props({ extraDeniedPeerIps: ['198.51.100.128/25'] }))).at(-1)).toBe('denied-peer-ip=198.51.100.128-198.51.100.255');
  });
});
