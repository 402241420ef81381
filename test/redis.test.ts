import { redisConf } from '../charts/redis';
import { config, container, find, podSpec, synthChart } from './util';

const manifests = () => synthChart('11-redis');

test('a StatefulSet behind a headless Service', () => {
  const ms = manifests();
  const sts = find(ms, 'StatefulSet', 'redis');
  const svc = find(ms, 'Service', 'redis');
  expect(svc.spec.clusterIP).toBe('None');
  expect(sts.spec.serviceName).toBe('redis');
  expect(svc.spec.ports).toEqual([{ name: 'redis', port: 6379, targetPort: 'redis' }]);
});

test('no persistence: LiveKit state is rebuilt after a restart', () => {
  const conf = find(manifests(), 'ConfigMap', 'redis-config').data['redis.conf'];
  expect(conf).toContain('save ""\n');
  expect(conf).toContain('appendonly no\n');
  expect(find(manifests(), 'StatefulSet', 'redis').spec.volumeClaimTemplates).toBeUndefined();
});

test('the password comes from the Secret at start, never from the ConfigMap', () => {
  const ms = manifests();
  const conf = find(ms, 'ConfigMap', 'redis-config').data['redis.conf'];
  expect(conf).not.toMatch(/^requirepass/m);
  expect(conf).toContain('include /run/redis/auth.conf');
  const sts = find(ms, 'StatefulSet', 'redis');
  const c = container(sts, 'redis');
  expect(c.command.join(' ')).toContain('requirepass');
  const vol = podSpec(sts).volumes.find((v: any) => v.name === 'password');
  expect(vol.secret).toMatchObject({ secretName: 'kudo-redis', items: [{ key: 'password', path: 'password' }] });
  expect(podSpec(sts).volumes.find((v: any) => v.name === 'run').emptyDir.medium).toBe('Memory');
});

test('maxmemory follows the memory limit', () => {
  expect(redisConf('256Mi')).toContain('maxmemory 204mb\n');
  expect(redisConf('1Gi')).toContain('maxmemory 819mb\n');
  expect(redisConf('1Gi')).toContain('maxmemory-policy noeviction\n');
});

test('an authenticated PING for readiness, a TCP check for liveness', () => {
  const c = container(find(manifests(), 'StatefulSet', 'redis'), 'redis');
  expect(c.readinessProbe.exec.command.join(' ')).toMatch(/REDISCLI_AUTH=.*redis-cli .*ping/);
  expect(c.livenessProbe.tcpSocket).toEqual({ port: 'redis' });
});

test('non-root, read-only root, pinned image, resources', () => {
  const sts = find(manifests(), 'StatefulSet', 'redis');
  expect(podSpec(sts).securityContext).toMatchObject({ runAsUser: 10999, runAsNonRoot: true });
  const c = container(sts, 'redis');
  expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
  expect(c.image).toMatch(/^docker\.io\/library\/redis:7\.4\.\d+-bookworm$/);
  expect(c.resources.limits.memory).toBe('128Mi');
  const custom = container(find(synthChart('11-redis', config({ redis: { resources: { limits: { memory: '1Gi' } } } })), 'StatefulSet', 'redis'), 'redis');
  expect(custom.resources.limits.memory).toBe('1Gi');
});
