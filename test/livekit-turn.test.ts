/**
 * coturn.enabled false with LiveKit's built-in TURN (livekit.turn), and the media namespace at `restricted` (issue 28):
 * the config's refusals, and what the render holds and leaves out.
 */
import * as yaml from 'js-yaml';
import { checklist } from '../scripts/inspect';
import { secretFeatures, secretPlan } from '../charts/secrets';
import { config, container, find, Manifest, podSpec, rejection, synthAll } from './util';

/** LiveKit off the host network, two replicas, its own TURN; coturn off. */
const OWN_TURN = {
  coturn: { enabled: false },
  livekit: { hostNetwork: false, replicas: 2, rtc: { udpPort: 31000, tcpPort: 31100 }, turn: { enabled: true, udpPort: 31200 } },
} as const;
const withOwnTurn = (extra: { livekit?: object; [k: string]: unknown } = {}) => ({
  ...OWN_TURN,
  ...extra,
  livekit: { ...OWN_TURN.livekit, ...(extra.livekit ?? {}) },
});

const all = (input: object = OWN_TURN) => synthAll(config(input));
const lkConfig = (ms: Manifest[]) => yaml.load(find(ms, 'ConfigMap', 'livekit-config').data['config.yaml']) as any;
const homeserver = (ms: Manifest[]) => yaml.load(find(ms, 'ConfigMap', 'synapse-config').data['homeserver.yaml']) as any;
const podSpecs = (ms: Manifest[]) => ms.filter((m) => m.spec?.template?.spec !== undefined || m.spec?.jobTemplate !== undefined).map(podSpec);

describe('the config', () => {
  test('coturn off without LiveKit TURN is refused, naming both keys', () => {
    const message = rejection({ ...OWN_TURN, livekit: { ...OWN_TURN.livekit, turn: { enabled: false } } });
    expect(message).toContain('coturn.enabled false leaves calls without a TURN server');
    expect(message).toContain("set livekit.turn.enabled true for LiveKit's built-in TURN, or coturn.enabled true");
  });

  test('coturn and LiveKit TURN at once are refused', () => {
    expect(rejection({ ...OWN_TURN, coturn: { enabled: true } })).toContain(
      "livekit.turn.enabled and coturn.enabled are both true: the stack runs one TURN server; set coturn.enabled false to use LiveKit's",
    );
  });

  test('LiveKit TURN on the host network is refused: clients are sent to 443', () => {
    expect(rejection({ coturn: { enabled: false }, livekit: { turn: { enabled: true } } })).toContain(
      'livekit.turn.enabled needs livekit.hostNetwork false: LiveKit sends clients to TURN over TLS on port 443 whatever livekit.turn.tlsPort is',
    );
  });

  test("the UDP TURN ports are NodePorts beside the media's: there is no default to take, a port outside the range is refused, and overlaps", () => {
    expect(rejection(withOwnTurn({ livekit: { turn: { enabled: true } } }))).toContain(
      "livekit.turn.enabled takes TURN over UDP on one NodePort per replica: set livekit.turn.udpPort to the first replica's (30000-32767; replica i uses udpPort + i)",
    );
    expect(rejection(withOwnTurn({ livekit: { turn: { enabled: true, udpPort: 3478 } } }))).toContain(
      "livekit.turn.udpPort 3478: with livekit.hostNetwork false it is the first replica's NodePort, and replicas 0-1 take 3478-3479; NodePorts are 30000-32767",
    );
    expect(rejection(withOwnTurn({ livekit: { turn: { enabled: true, udpPort: 31001 } } }))).toContain(
      'livekit.rtc.udpPort 31000-31001 and livekit.turn.udpPort 31001-31002 overlap: each replica',
    );
    expect(rejection(withOwnTurn({ livekit: { turn: { enabled: true, udpPort: 31099 } } }))).toContain(
      'livekit.rtc.tcpPort 31100-31101 and livekit.turn.udpPort 31099-31100 overlap',
    );
    // The last NodePort is taken by the second replica: accepted; one further is not.
    expect(config(withOwnTurn({ livekit: { turn: { enabled: true, udpPort: 32766 } } })).livekit.turn.udpPort).toBe(32766);
    expect(rejection(withOwnTurn({ livekit: { turn: { enabled: true, udpPort: 32767 } } }))).toContain('replicas 0-1 take 32767-32768; NodePorts are 30000-32767');
  });

  test("the TLS port is the pod's: not below 1024, not on its API, metrics or TCP media ports", () => {
    const turn = (t: object) => rejection(withOwnTurn({ livekit: { turn: { enabled: true, udpPort: 31200, ...t } } }));
    expect(turn({ tlsPort: 443 })).toContain('livekit.turn.tlsPort 443: LiveKit (non-root, no capabilities) can bind ports from 1024 only');
    expect(turn({ tlsPort: 7880 })).toContain("livekit.turn.tlsPort 7880 collides with LiveKit's API port 7880");
    expect(turn({ tlsPort: 6789 })).toContain("livekit.turn.tlsPort 6789 collides with LiveKit's metrics port 6789");
    expect(turn({ tlsPort: 31101 })).toContain('livekit.turn.tlsPort 31101 collides with livekit.rtc.tcpPort, which replicas take from 31100 to 31101');
    // UDP and TCP: one number may serve both.
    expect(config(withOwnTurn({ livekit: { turn: { enabled: true, udpPort: 31200, tlsPort: 31200 } } })).livekit.turn.tlsPort).toBe(31200);
    expect(config(withOwnTurn({ livekit: { turn: { enabled: true, udpPort: 31200, tlsPort: 1024 } } })).livekit.turn.tlsPort).toBe(1024);
  });

  test("without coturn, coturn's relay range is no NodePort or host-port conflict", () => {
    // coturn's relay range over LiveKit's NodePorts and its API port: refused only while coturn runs.
    const relay = { relayPorts: { min: 7000, max: 32000 }, totalQuota: 100 };
    expect(config(withOwnTurn({ coturn: { enabled: false, ...relay } })).coturn.enabled).toBe(false);
    expect(rejection({ livekit: OWN_TURN.livekit, coturn: { enabled: true, ...relay } })).toContain('coturn.relayPorts 7000-32000 include the LiveKit API port 7880');
  });

  test('the defaults: coturn on, LiveKit TURN off, no UDP port (a NodePort the operator picks) and TLS on 5349', () => {
    const c = config();
    expect(c.coturn.enabled).toBe(true);
    expect(c.livekit.turn).toEqual({ enabled: false, tlsPort: 5349 });
  });
});

describe('the render with coturn off and LiveKit off the host network', () => {
  test('nothing of coturn is rendered', () => {
    const ms = all();
    const coturnish = ms.filter((m) => /coturn/.test(JSON.stringify({ name: m.metadata.name, labels: m.metadata.labels, template: m.spec?.template?.metadata })));
    expect(coturnish.map((m) => `${m.kind}/${m.metadata.name}`)).toEqual([]);
    expect(ms.filter((m) => m.kind === 'DaemonSet')).toEqual([]);
    // With monitoring on: no coturn target, Service, alert or dashboard either.
    const coturnMonitoring = (input: object) =>
      all({ ...input, monitoring: { enabled: true } })
        .filter((m) => /coturn-metrics|CoturnDown|TurnAllocationsNearLimit|Kudo \/ coturn/.test(JSON.stringify(m)))
        .map((m) => `${m.kind}/${m.metadata.name}`);
    expect(coturnMonitoring(OWN_TURN)).toEqual([]);
    expect(coturnMonitoring({}).length).toBeGreaterThanOrEqual(3);
  });

  test('no pod on the host network or with host ports; every namespace at restricted or below, the media one restricted', () => {
    const ms = all();
    for (const spec of podSpecs(ms)) {
      expect(spec.hostNetwork).toBeUndefined();
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) for (const p of c.ports ?? []) expect(p.hostPort).toBeUndefined();
    }
    const levels = Object.fromEntries(ms.filter((m) => m.kind === 'Namespace').map((n) => [n.metadata.name, n.metadata.labels?.['pod-security.kubernetes.io/enforce']]));
    expect(levels).toEqual({ kudo: 'restricted', 'kudo-media': 'restricted', 'kudo-app': 'baseline' });
    expect(find(ms, 'Namespace', 'kudo-media').metadata.labels?.['pod-security.kubernetes.io/warn']).toBe('restricted');
    // Either option alone keeps the media namespace privileged: coturn, or LiveKit, still uses the node's network.
    const media = (input: object) => find(all(input), 'Namespace', 'kudo-media').metadata.labels?.['pod-security.kubernetes.io/enforce'];
    expect(media({})).toBe('privileged');
    expect(media({ livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100 } } })).toBe('privileged');
  });

  test("LiveKit's pod meets restricted", () => {
    const spec = podSpec(find(all(), 'StatefulSet', 'livekit'));
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    for (const c of [...spec.initContainers, ...spec.containers]) {
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(c.securityContext.capabilities.add).toBeUndefined();
    }
  });

  test('Synapse hands out no TURN servers and mounts no TURN secret; the secret generator makes none', () => {
    const ms = all();
    const hs = homeserver(ms);
    for (const k of ['turn_uris', 'turn_shared_secret', 'turn_shared_secret_path', 'turn_user_lifetime', 'turn_allow_guests']) expect(hs[k]).toBeUndefined();
    expect(JSON.stringify(find(ms, 'Deployment', 'synapse'))).not.toContain('kudo-turn');
    expect(homeserver(all({})).turn_uris).toEqual([
      'turns:turn.example.com:5349?transport=tcp',
      'turn:turn.example.com:3478?transport=udp',
      'turn:turn.example.com:3478?transport=tcp',
    ]);
    const c = config(OWN_TURN);
    expect(secretPlan(c.secrets.refs, c.namespaces, secretFeatures(c)).map((v) => v.name)).not.toContain('turnSharedSecret');
    expect(secretPlan(config().secrets.refs, config().namespaces, secretFeatures(config())).map((v) => v.name)).toContain('turnSharedSecret');
    expect(JSON.stringify(ms)).not.toContain('kudo-turn');
  });

  test("LiveKit's config turns its TURN on with the certificate's files, and names no coturn", () => {
    const ms = all();
    const c = lkConfig(ms);
    expect(c.turn).toEqual({
      enabled: true,
      domain: 'turn.example.com',
      udp_port: 31200,
      tls_port: 5349,
      cert_file: '/tls/turn/tls.crt',
      key_file: '/tls/turn/tls.key',
      external_tls: false,
    });
    expect(c.rtc.turn_servers).toBeUndefined();
    expect(lkConfig(all({})).turn).toEqual({ enabled: false });
  });

  test('the certificate for the TURN host, mounted; replica i starts with its UDP TURN port; the TLS port in the pod', () => {
    const ms = all();
    const cert = find(ms, 'Certificate', 'livekit-turn-tls');
    expect(cert.metadata.namespace).toBe('kudo-media');
    expect(cert.spec).toEqual({
      secretName: 'livekit-turn-tls',
      dnsNames: ['turn.example.com'],
      issuerRef: { kind: 'ClusterIssuer', name: 'kudo-letsencrypt' },
      // LiveKit reads the key at start: a new key at each renewal, as coturn's.
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
    });
    expect(cert.metadata.labels?.['app.kubernetes.io/name']).toBe('livekit');
    const sts = find(ms, 'StatefulSet', 'livekit');
    const lk = container(sts, 'livekit');
    expect(lk.volumeMounts).toContainEqual({ name: 'turn-tls', mountPath: '/tls/turn', readOnly: true });
    expect(lk.volumeMounts.map((v: any) => v.name)).not.toContain('turn-secret');
    expect(podSpec(sts).volumes).toContainEqual({ name: 'turn-tls', secret: { secretName: 'livekit-turn-tls', defaultMode: 0o440 } });
    expect(lk.ports).toContainEqual({ name: 'turns', containerPort: 5349, protocol: 'TCP' });
    expect(lk.command[2]).toContain('--turn.udp_port "$((31200 + i))"');
  });

  test("TURN over UDP in each replica's NodePort Service, over TLS through one LoadBalancer on 443", () => {
    const ms = all();
    for (const i of [0, 1]) {
      expect(find(ms, 'Service', `livekit-rtc-${i}`).spec.ports).toContainEqual({ name: 'turn-udp', protocol: 'UDP', port: 31200 + i, targetPort: 31200 + i, nodePort: 31200 + i });
    }
    const svc = find(ms, 'Service', 'livekit-turn');
    expect(svc.metadata.namespace).toBe('kudo-media');
    expect(svc.spec).toEqual({
      type: 'LoadBalancer',
      // An IPv6 load-balancer address too where the cluster is dual-stack (checklist: AAAA).
      ipFamilyPolicy: 'PreferDualStack',
      selector: { 'app.kubernetes.io/name': 'livekit', 'app.kubernetes.io/instance': 'kudo-livekit' },
      ports: [{ name: 'turns', protocol: 'TCP', port: 443, targetPort: 'turns' }],
    });
    // Without LiveKit's TURN, neither.
    const plain = all({ livekit: { hostNetwork: false, replicas: 2, rtc: { udpPort: 31000, tcpPort: 31100 } } });
    expect(plain.some((m) => m.metadata.name === 'livekit-turn' || m.metadata.name === 'livekit-turn-tls')).toBe(false);
    expect(find(plain, 'Service', 'livekit-rtc-0').spec.ports.map((p: any) => p.name)).toEqual(['rtc-udp', 'rtc-tcp']);
  });

  test("LiveKit's NetworkPolicy admits the TURN ports; the smoke test checks TURN over TLS on 443 and no STUN", () => {
    const ms = all();
    const ingress = find(ms, 'NetworkPolicy', 'livekit').spec.ingress;
    expect(ingress).toContainEqual({
      from: [{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0' } }],
      ports: [
        { protocol: 'UDP', port: 31000, endPort: 31001 },
        { protocol: 'TCP', port: 31100, endPort: 31101 },
        { protocol: 'UDP', port: 31200, endPort: 31201 },
        { protocol: 'TCP', port: 5349 },
      ],
    });
    // The smoke test's way out: HTTPS and TURN over TLS are both 443, once; LiveKit's UDP TURN port instead of coturn's.
    const out = find(ms, 'NetworkPolicy', 'smoke-test').spec.egress[1].ports;
    expect(out).toEqual([
      { protocol: 'TCP', port: 443 },
      { protocol: 'UDP', port: 31200 },
    ]);
    expect(find(all({}), 'NetworkPolicy', 'smoke-test').spec.egress[1].ports).toEqual([
      { protocol: 'TCP', port: 443 },
      { protocol: 'TCP', port: 5349 },
      { protocol: 'UDP', port: 3478 },
    ]);
    const env = container(find(ms, 'CronJob', 'smoke-test'), 'smoke-test').env;
    const names = env.map((e: any) => e.name);
    expect(names).not.toContain('TURN_PORT');
    expect(env).toContainEqual({ name: 'TURN_TLS_PORT', value: '443' });
  });

  test('the checklist: DNS to the TURN Service, its 443, the UDP NodePorts apart from the media ones, what is lost, the certificate restart', () => {
    const c = config(OWN_TURN);
    const list = checklist(c, all());
    expect(list.dns).toContainEqual({
      name: 'turn.example.com',
      type: 'A/AAAA',
      target: 'the external address of Service livekit-turn (a LoadBalancer)',
      why: "LiveKit's TURN over TLS: LiveKit sends clients to port 443 of this host",
    });
    const lkRules = list.firewall.find((f) => f.role === 'LiveKit')!.rules;
    expect(lkRules.map((r) => [r.protocol, r.ports])).toEqual(
      expect.arrayContaining([
        ['UDP', '31000-31001'],
        ['TCP', '31100-31101'],
        ['UDP', '31200-31201'],
      ]),
    );
    expect(list.firewall).toContainEqual({
      role: "LiveKit's TURN (Service livekit-turn)",
      nodes: 'its load balancer',
      rules: [
        { protocol: 'TCP', ports: '443', purpose: 'TURN over TLS for turn.example.com', exposure: 'internet' },
        {
          protocol: 'TCP',
          ports: '80',
          purpose: 'ACME HTTP-01 for turn.example.com: must reach your ingress controller, which Service livekit-turn does not do (or use a DNS-01 issuer, tls.issuer)',
          exposure: 'internet',
        },
      ],
    });
    expect(list.externalIp.join('\n')).toContain('Synapse hands out no TURN servers, so its legacy 1:1 VoIP calls get none');
    expect(list.externalIp.join('\n')).toContain('kubectl -n kudo-media rollout restart statefulset/livekit');
    expect(checklist(config(), all({})).dns.some((d) => d.target.includes('livekit-turn'))).toBe(false);
  });
});
