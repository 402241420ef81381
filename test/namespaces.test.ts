import { config, find, synthChart } from './util';

test('Pod Security: restricted for the stack, privileged only for the host-network namespace', () => {
  const ms = synthChart('00-namespaces');
  const level = (n: string) => find(ms, 'Namespace', n).metadata.labels!['pod-security.kubernetes.io/enforce'];
  expect(level('kudo')).toBe('restricted');
  expect(level('kudo-media')).toBe('privileged');
  expect(level('kudo-app')).toBe('baseline');
  for (const n of ['kudo', 'kudo-media', 'kudo-app']) expect(find(ms, 'Namespace', n).metadata.labels!['pod-security.kubernetes.io/audit']).toBe('restricted');
});

test('names come from config', () => {
  const ms = synthChart('00-namespaces', config({ namespaces: { stack: 'chat', hostNetwork: 'chat-edge', app: 'web' } }));
  expect(ms.map((m) => m.metadata.name).sort()).toEqual(['chat', 'chat-edge', 'web']);
});

test('livekit.hostNetwork false leaves the media namespace privileged: coturn, which shares it, is still on the host network', () => {
  const ms = synthChart('00-namespaces', config({ livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100 } } }));
  const labels = find(ms, 'Namespace', 'kudo-media').metadata.labels!;
  expect(labels['pod-security.kubernetes.io/enforce']).toBe('privileged');
  // LiveKit's pods meet restricted (test/livekit.test.ts), so the audit at restricted records coturn's alone.
  expect(labels['pod-security.kubernetes.io/audit']).toBe('restricted');
});
