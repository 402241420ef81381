import * as fs from 'fs';
import * as path from 'path';
import { architecture, checklist, formatText, renderedManifests, toSvg } from '../scripts/inspect';
import { config } from './util';

describe('production checklist', () => {
  const c = config();
  const list = checklist(c, renderedManifests(c));

  test('DNS: every routed host to the ingress controller, the TURN host to the TURN nodes', () => {
    expect(list.dns.map((d) => [d.name, d.target])).toEqual([
      ['example.com', 'the external address of your nginx ingress controller'],
      ['livekit.example.com', 'the external address of your nginx ingress controller'],
      ['matrix.example.com', 'the external address of your nginx ingress controller'],
      ['turn.example.com', 'the public IPv4 of every node labelled kudo/turn=true'],
    ]);
  });

  test('certificates: one per Ingress TLS host and the TURN Certificate, with their issuer', () => {
    expect(list.certificates.map((x) => `${x.namespace}/${x.secret} ${x.dnsNames.join(',')} ${x.issuer}`)).toEqual([
      'kudo/synapse-tls matrix.example.com kudo-letsencrypt',
      'kudo/matrix-well-known-tls example.com kudo-letsencrypt',
      'kudo-media/livekit-tls livekit.example.com kudo-letsencrypt',
      'kudo-media/coturn-tls turn.example.com kudo-letsencrypt',
    ]);
  });

  test('firewall: the ports the rendered host-network pods and configs open', () => {
    const role = (r: string) => list.firewall.find((f) => f.role === r)!.rules.map((x) => `${x.exposure} ${x.protocol} ${x.ports}`);
    expect(role('LiveKit')).toEqual(['cluster TCP 7880', 'internet TCP 7881', 'cluster TCP 6789', 'internet UDP 50000-50100']);
    expect(role('TURN')).toEqual(['internet UDP 3478', 'internet TCP 3478', 'internet TCP 5349', 'cluster TCP 9641', 'internet UDP 49152-49252']);
    // It follows the config, because it reads the rendered output.
    const other = config({ livekit: { rtc: { udpPort: 7882 } }, coturn: { relayPorts: { min: 40000, max: 40100 } } });
    const l2 = checklist(other, renderedManifests(other));
    expect(l2.firewall.find((f) => f.role === 'LiveKit')!.rules.map((x) => `${x.protocol} ${x.ports}`)).toContain('UDP 7882');
    expect(l2.firewall.find((f) => f.role === 'TURN')!.rules.map((x) => x.ports)).toContain('40000-40100');
  });

  test('external IP and health checks name the real hosts', () => {
    expect(list.externalIp.join('\n')).toContain('kubectl get nodes -l kudo/turn=true -o wide');
    const commands = list.healthChecks.map((h) => h.command);
    expect(commands).toContain('curl -fsS https://matrix.example.com/_matrix/client/versions');
    expect(commands).toContain('curl -fsS https://example.com/.well-known/matrix/server');
    expect(commands).toContain('turnutils_stunclient -p 3478 turn.example.com');
    expect(formatText(list)).toContain('keep closed to the internet: TCP 6789');
  });

  test('Gateway API: the Gateway is the entry point and its listeners hold the certificates', () => {
    const gw = config({ routing: 'gateway-api', gatewayApi: { gatewayClassName: 'cilium' } });
    const l = checklist(gw, renderedManifests(gw));
    expect(l.dns[0].target).toBe('the external address of Gateway kudo');
    expect(l.certificates.filter((x) => x.via.startsWith('Gateway'))).toHaveLength(3);
  });
});

describe('architecture picture', () => {
  const g = architecture(renderedManifests(config()));

  test('shows the routes, the flows between workloads and the volumes, from the manifests', () => {
    const edge = (from: string, to: string) => g.edges.find((e) => e.from.endsWith(from) && e.to.endsWith(to));
    expect(edge('h:matrix.example.com', 'kudo/synapse')).toBeDefined();
    expect(edge('kudo/synapse', 'kudo/synapse')).toEqual({ from: 'r:kudo/synapse', to: 'w:kudo/synapse', label: ':8008' });
    expect(edge('w:kudo/synapse', 'w:kudo/postgres')!.label).toBe(':5432');
    expect(edge('w:kudo/postgres-backup', 'w:kudo/postgres')).toBeDefined();
    expect(edge('w:kudo-media/livekit', 'w:kudo/redis')!.label).toBe(':6379');
    expect(edge('w:kudo/synapse', 'v:kudo/synapse-media')).toBeDefined();
    expect(edge('h:webrtc', 'w:kudo-media/livekit')!.label).toContain('udp 50000-50100');
  });

  test('the committed docs/architecture.svg is what the manifests draw (npm run diagram)', () => {
    const committed = fs.readFileSync(path.join(__dirname, '..', 'docs', 'architecture.svg'), 'utf8');
    expect(committed).toBe(toSvg(g));
  });
});
