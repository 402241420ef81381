/**
 * Every render of the configuration matrix (test/matrix.ts) held to invariants read from the rendered objects
 * themselves, not from the builders that made them: nothing serves Matrix, LiveKit or the admin API over plain HTTP;
 * every Secret key a pod reads is made by the generator's rendered plan or named by the checklist; every Service finds
 * its pods and their ports; nothing is rendered for a feature that is off; the checklist names every public host and
 * only certificates the render requests. The flows, the scanners and strict schema validation of the same renders are
 * in the real-program tier (test/e2e/flows.e2e.test.ts, test/e2e/policy.e2e.test.ts).
 */
import { checklist } from '../scripts/inspect';
import { EXCLUDED, FACTORS, Levels, allPairs, configOf, matrix } from './matrix';
import { Manifest, config, lazy, synthAll } from './util';

const RENDERS = matrix();
const rendered = new Map(RENDERS.map((r) => [r.name, lazy(() => synthAll(config(r.config)))]));
const manifestsOf = (name: string) => rendered.get(name)!();
const cases = RENDERS.map((r) => [r.name, r.levels] as const);

/** Whether a render's config creates its Gateway (routing gateway-api, gatewayApi.createGateway): else its listeners are someone else's. */
const createsGateway = (levels: Levels) => {
  const c = configOf(levels) as { routing?: string; gatewayApi?: { createGateway?: boolean } };
  return c.routing === 'gateway-api' && c.gatewayApi?.createGateway !== false;
};

const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob'];

/** The pod template of a workload, with its namespace. */
function pods(ms: Manifest[]): { owner: string; namespace: string; labels: Record<string, string>; spec: any }[] {
  return ms
    .filter((m) => WORKLOAD_KINDS.includes(m.kind))
    .map((m) => {
      const template = m.kind === 'CronJob' ? m.spec.jobTemplate.spec.template : m.spec.template;
      return { owner: `${m.kind}/${m.metadata.name}`, namespace: m.metadata.namespace!, labels: template.metadata?.labels ?? {}, spec: template.spec };
    });
}

/** How many pods a workload ("Kind/name") runs. */
function replicasOf(ms: Manifest[], owner: string): number {
  return ms.find((m) => `${m.kind}/${m.metadata.name}` === owner)?.spec.replicas ?? 1;
}

/** Whether a label selector (matchLabels and matchExpressions, Kubernetes' rules) selects these labels. */
function matches(selector: any, labels: Record<string, string>): boolean {
  const exprs: any[] = selector?.matchExpressions ?? [];
  const labelsOk = Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const exprsOk = exprs.every((e) => {
    if (e.operator === 'In') return e.values.includes(labels[e.key]);
    if (e.operator === 'NotIn') return !e.values.includes(labels[e.key]);
    if (e.operator === 'Exists') return e.key in labels;
    if (e.operator === 'DoesNotExist') return !(e.key in labels);
    throw new Error(`unknown operator ${e.operator}`);
  });
  return labelsOk && exprsOk;
}

describe('the matrix', () => {
  test('every allowed pair of values of two options is in at least one render', () => {
    const rows = RENDERS.map((r) => r.levels);
    const missing: string[] = [];
    for (const a of FACTORS) {
      for (const b of FACTORS) {
        if (a.name >= b.name) continue;
        for (const x of Object.keys(a.levels)) {
          for (const y of Object.keys(b.levels)) {
            const forbidden = EXCLUDED.some((e) => Object.keys(e.when).length === 2 && e.when[a.name] === x && e.when[b.name] === y);
            if (!forbidden && !rows.some((r) => r[a.name] === x && r[b.name] === y)) missing.push(`${a.name}=${x} with ${b.name}=${y}`);
          }
        }
      }
    }
    expect(missing).toEqual([]);
    // Pairwise, not every combination: the product of the options' values is over a hundred thousand.
    expect(allPairs().length).toBeLessThan(60);
  });

  test('each excluded combination is one the config still refuses (an exclusion that became possible is noticed)', () => {
    for (const e of EXCLUDED) {
      const levels = { ...Object.fromEntries(FACTORS.map((f) => [f.name, Object.keys(f.levels)[0]])), ...e.when };
      expect(() => config(configOf(levels))).toThrow(e.refusal);
    }
  });

  test('a render per row, each a config the stack accepts', () => {
    expect(RENDERS.length).toBeGreaterThan(30);
    expect(new Set(RENDERS.map((r) => r.name)).size).toBe(RENDERS.length);
  });
});

describe.each(cases)('%s', (name, levels) => {
  const ms = () => manifestsOf(name);

  test('no route serves Matrix, LiveKit or the admin API over plain HTTP', () => {
    const problems: string[] = [];
    for (const ing of ms().filter((m) => m.kind === 'Ingress')) {
      const tlsHosts = new Set((ing.spec.tls ?? []).flatMap((t: any) => (t.secretName ? t.hosts : [])));
      for (const rule of ing.spec.rules) if (!tlsHosts.has(rule.host)) problems.push(`Ingress ${ing.metadata.name}: ${rule.host} has no TLS`);
      // Each controller redirects HTTP to HTTPS for a host with TLS unless told not to (ingress-nginx, HAProxy Ingress
      // and F5 NGINX: ssl-redirect, default on); Traefik serves a router with TLS on TLS connections only.
      for (const [k, v] of Object.entries(ing.metadata.annotations ?? {})) {
        if (/ssl-redirect|redirect-to-https/.test(k) && v === 'false') problems.push(`Ingress ${ing.metadata.name}: ${k}: false`);
        if (k === 'traefik.ingress.kubernetes.io/router.tls' && v === 'false') problems.push(`Ingress ${ing.metadata.name}: ${k}: false`);
      }
    }
    const gateways = ms().filter((m) => m.kind === 'Gateway');
    const listener = (ref: any) => gateways.find((g) => g.metadata.name === ref.name)?.spec.listeners.find((l: any) => l.name === ref.sectionName);
    for (const route of ms().filter((m) => m.kind === 'HTTPRoute')) {
      const redirectOnly = route.spec.rules.every(
        (r: any) => r.backendRefs === undefined && r.filters?.length === 1 && r.filters[0].type === 'RequestRedirect' && r.filters[0].requestRedirect.scheme === 'https',
      );
      for (const ref of route.spec.parentRefs) {
        // Without sectionName a route attaches to every listener of the Gateway, the HTTP one included.
        if (ref.sectionName === undefined) problems.push(`HTTPRoute ${route.metadata.name}: attaches to every listener of ${ref.name}`);
        const l = listener(ref);
        if (createsGateway(levels) && l === undefined) problems.push(`HTTPRoute ${route.metadata.name}: no listener ${ref.sectionName} on ${ref.name}`);
        if (l !== undefined && l.protocol !== 'HTTPS' && !redirectOnly) problems.push(`HTTPRoute ${route.metadata.name}: served on ${l.protocol} listener ${l.name}`);
        if (l !== undefined && l.protocol === 'HTTPS' && redirectOnly) problems.push(`HTTPRoute ${route.metadata.name}: redirects on HTTPS listener ${l.name}`);
      }
    }
    for (const g of gateways) {
      for (const l of g.spec.listeners)
        if (l.protocol === 'HTTPS' && !(l.tls?.certificateRefs?.length > 0)) problems.push(`Gateway ${g.metadata.name}: listener ${l.name} has no certificate`);
    }
    expect(problems).toEqual([]);
    // Each public host is served by something in every render but the shared Gateway's (whose listeners the operator has).
    const served = new Set([...ms().flatMap((m) => (m.kind === 'Ingress' ? m.spec.rules.map((r: any) => r.host) : m.kind === 'HTTPRoute' ? m.spec.hostnames : []))]);
    expect([served.has('matrix.example.com'), served.has('livekit.example.com')]).toEqual([true, true]);
  });

  test('every Secret key a pod reads is made by the generator or is one the checklist asks the operator for', () => {
    const list = checklist(config(RENDERS.find((r) => r.name === name)!.config), ms());
    const known = new Set<string>();
    const plan = ms().find((m) => m.kind === 'ConfigMap' && m.data?.['plan.json'] !== undefined);
    for (const v of plan ? JSON.parse(plan.data!['plan.json']).values : []) for (const d of v.destinations) known.add(`${d.namespace}/${d.secret}/${d.key}`);
    for (const s of list.secretsToCreate) for (const k of s.keys) known.add(`${s.namespace}/${s.secret}/${k}`);
    // Certificates' Secrets hold what cert-manager writes (tls.crt, tls.key, ca.crt): those the checklist lists, and
    // those of the stack's own CA (rendered Certificates the checklist leaves out, as they need nothing from the operator).
    const certificates = [
      ...list.certificates,
      ...ms()
        .filter((m) => m.kind === 'Certificate')
        .map((c) => ({ namespace: c.metadata.namespace!, secret: c.spec.secretName })),
    ];
    for (const c of certificates) for (const k of ['tls.crt', 'tls.key', 'ca.crt']) known.add(`${c.namespace}/${c.secret}/${k}`);
    // What CloudNativePG writes for a Cluster named postgres (its docs: <cluster>-app with the owner's credentials,
    // <cluster>-ca with the CA's certificate).
    for (const k of ['username', 'password', 'uri', 'host', 'port', 'dbname']) known.add(`kudo/postgres-app/${k}`);
    known.add('kudo/postgres-ca/ca.crt');
    const read: string[] = [];
    for (const p of pods(ms())) {
      const at = (secret: string, key: string) => read.push(`${p.namespace}/${secret}/${key} (${p.owner})`);
      for (const v of p.spec.volumes ?? []) {
        if (v.secret) for (const i of v.secret.items ?? [{ key: '*' }]) at(v.secret.secretName, i.key);
        // An optional source's keys need not exist (the rotation keys: docs/operations.md, "Rotating secrets").
        for (const s of v.projected?.sources ?? []) if (s.secret && s.secret.optional !== true) for (const i of s.secret.items ?? [{ key: '*' }]) at(s.secret.name, i.key);
      }
      for (const c of [...p.spec.containers, ...(p.spec.initContainers ?? [])]) {
        for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) at(e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key);
        for (const e of c.envFrom ?? []) if (e.secretRef) at(e.secretRef.name, '*');
      }
    }
    const knownSecrets = new Set([...known].map((k) => k.split('/').slice(0, 2).join('/')));
    const unknown = read.filter((r) => {
      const [ns, secret, key] = r.split(' ')[0].split('/');
      return key === '*' ? !knownSecrets.has(`${ns}/${secret}`) : !known.has(`${ns}/${secret}/${key}`);
    });
    expect(unknown).toEqual([]);
  });

  test('the checklist follows the render: a DNS record for every host a route serves, and only certificates the render requests', () => {
    const list = checklist(config(RENDERS.find((r) => r.name === name)!.config), ms());
    const served = new Set(ms().flatMap((m) => (m.kind === 'Ingress' ? m.spec.rules.map((r: any) => r.host) : m.kind === 'HTTPRoute' ? m.spec.hostnames : [])));
    const records = new Set(list.dns.map((d) => d.name));
    expect([...served].filter((h) => !records.has(h))).toEqual([]);
    // The TURN host has a record too (coturn is on the host network, no route serves it).
    expect(records.has('turn.example.com')).toBe(true);
    // Every certificate it lists is one the render asks cert-manager for (an Ingress's TLS, a Gateway listener, a Certificate).
    const requested = new Set(
      ms().flatMap((m) =>
        m.kind === 'Ingress'
          ? m.spec.tls.map((t: any) => t.secretName)
          : m.kind === 'Gateway'
            ? m.spec.listeners.filter((l: any) => l.tls).map((l: any) => l.tls.certificateRefs[0].name)
            : m.kind === 'Certificate'
              ? [m.spec.secretName]
              : [],
      ),
    );
    expect(list.certificates.map((c) => c.secret).filter((s) => !requested.has(s))).toEqual([]);
  });

  test('every Service selects rendered pods, on ports those pods declare', () => {
    const problems: string[] = [];
    const all = pods(ms());
    for (const svc of ms().filter((m) => m.kind === 'Service')) {
      // One StatefulSet pod by name (the controller adds the label): a pod of the StatefulSet that has that ordinal.
      const { 'statefulset.kubernetes.io/pod-name': podName, ...selector } = svc.spec.selector;
      const ordinal = podName === undefined ? undefined : /^(.+)-(\d+)$/.exec(podName);
      const selected = all.filter(
        (p) =>
          p.namespace === svc.metadata.namespace &&
          matches({ matchLabels: selector }, p.labels) &&
          (ordinal === undefined || (ordinal !== null && p.owner === `StatefulSet/${ordinal[1]}` && Number(ordinal[2]) < replicasOf(ms(), p.owner))),
      );
      if (selected.length === 0) {
        problems.push(`Service ${svc.metadata.namespace}/${svc.metadata.name}: selects no pods`);
        continue;
      }
      // LiveKit's replicas off the host network listen on ports of their own, which their start script computes and one
      // template cannot declare (test/livekit.test.ts runs the script): there, the port clients reach (the NodePort, and
      // a load balancer's port) is the one targeted.
      if (podName !== undefined && (svc.spec.type === 'NodePort' || svc.spec.type === 'LoadBalancer')) {
        for (const port of svc.spec.ports) if (port.nodePort !== port.targetPort) problems.push(`Service ${svc.metadata.name}: nodePort ${port.nodePort} is not its targetPort`);
        if (svc.spec.type === 'LoadBalancer') {
          for (const port of svc.spec.ports) if (port.port !== port.targetPort) problems.push(`Service ${svc.metadata.name}: port ${port.port} is not its targetPort`);
        }
        continue;
      }
      const ports = selected.flatMap((p) => p.spec.containers.flatMap((c: any) => c.ports ?? []));
      for (const port of svc.spec.ports) {
        const target = port.targetPort ?? port.port;
        const found = ports.some(
          (cp: any) => (typeof target === 'string' ? cp.name === target : cp.containerPort === target) && (cp.protocol ?? 'TCP') === (port.protocol ?? 'TCP'),
        );
        if (!found) problems.push(`Service ${svc.metadata.name}: port ${port.name ?? port.port} -> ${target} is no port of ${selected.map((p) => p.owner).join(', ')}`);
      }
    }
    expect(problems).toEqual([]);
  });

  test('every NetworkPolicy, ServiceAccount and ConfigMap serves a rendered pod (nothing is left of a feature that is off)', () => {
    const problems: string[] = [];
    const all = pods(ms());
    // Pods other programs make: cert-manager's HTTP-01 solvers, CloudNativePG's instances, a Gateway's proxies.
    const madeElsewhere = ['acme.cert-manager.io/http01-solver', 'cnpg.io/cluster', 'gateway.networking.k8s.io/gateway-name'];
    for (const np of ms().filter((m) => m.kind === 'NetworkPolicy')) {
      const sel = np.spec.podSelector;
      const keys = [...Object.keys(sel.matchLabels ?? {}), ...(sel.matchExpressions ?? []).map((e: any) => e.key)];
      if (keys.length === 0 || keys.some((k) => madeElsewhere.includes(k))) continue;
      if (!all.some((p) => p.namespace === np.metadata.namespace && matches(sel, p.labels)))
        problems.push(`NetworkPolicy ${np.metadata.namespace}/${np.metadata.name}: selects no rendered pod`);
    }
    for (const sa of ms().filter((m) => m.kind === 'ServiceAccount')) {
      if (!all.some((p) => p.namespace === sa.metadata.namespace && p.spec.serviceAccountName === sa.metadata.name))
        problems.push(`ServiceAccount ${sa.metadata.name}: no pod runs as it`);
    }
    for (const cm of ms().filter((m) => m.kind === 'ConfigMap')) {
      // Dashboards are for Grafana's sidecar, which finds them by label.
      if (cm.metadata.labels?.grafana_dashboard !== undefined) continue;
      const used = all.some(
        (p) =>
          p.namespace === cm.metadata.namespace &&
          ((p.spec.volumes ?? []).some((v: any) => v.configMap?.name === cm.metadata.name || v.projected?.sources?.some((s: any) => s.configMap?.name === cm.metadata.name)) ||
            [...p.spec.containers, ...(p.spec.initContainers ?? [])].some((c: any) =>
              [...(c.env ?? []).map((e: any) => e.valueFrom?.configMapKeyRef?.name), ...(c.envFrom ?? []).map((e: any) => e.configMapRef?.name)].includes(cm.metadata.name),
            )),
      );
      if (!used) problems.push(`ConfigMap ${cm.metadata.namespace}/${cm.metadata.name}: no pod reads it`);
    }
    expect(problems).toEqual([]);
  });

  test('the objects of an option are there exactly when it is on', () => {
    const kinds = new Set(ms().map((m) => m.kind));
    const named = (re: RegExp) =>
      ms()
        .filter((m) => re.test(m.metadata.name))
        .map((m) => `${m.kind}/${m.metadata.name}`);
    expect({
      monitoring: ['ServiceMonitor', 'PrometheusRule'].some((k) => kinds.has(k)),
      argocd: kinds.has('Application'),
      wellKnown: named(/well-known/).length > 0,
      backup: ms().some((m) => m.kind === 'CronJob' && /backup/.test(m.metadata.name)),
      adminApi: ms().some((m) => m.kind === 'Ingress' && /admin/.test(m.metadata.name)),
      gateway: kinds.has('Gateway'),
      cluster: kinds.has('Cluster'),
      statefulsetPostgres: ms().some((m) => m.kind === 'StatefulSet' && m.metadata.name === 'postgres'),
    }).toEqual({
      monitoring: levels.monitoring === 'on',
      argocd: levels.argocd !== 'off',
      wellKnown: levels.wellKnown === 'on',
      backup: levels.backup !== 'off',
      adminApi: levels.adminApi !== 'internal',
      gateway: createsGateway(levels),
      cluster: levels.postgres === 'cloudnative-pg',
      statefulsetPostgres: levels.postgres === 'statefulset',
    });
  });
});
