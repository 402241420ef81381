/**
 * The configuration matrix: every option that changes which objects are rendered or which connections they allow,
 * each with the values that make a difference, combined so that every pair of values of two options appears in at
 * least one render (all-pairs), plus the combinations an operator's set-up names (Traefik on k3s, a shared Gateway,
 * two environments in one Argo CD, the app outside the cluster).
 *
 * The unit tier (test/matrix.test.ts) holds every render of it to invariants read from the objects themselves; the
 * real-program tier decides its NetworkPolicies' flows with cyclonus and scans it with kube-score and checkov.
 */

/** One option of the matrix: its values, each as the part of a config file that sets it. */
export interface Factor {
  name: string;
  levels: Record<string, object>;
}

export const FACTORS: Factor[] = [
  {
    // Routing, the controller or Gateway that does it, and where its proxies run: one factor, since each value of one
    // of these means something only with a value of the others.
    name: 'proxy',
    levels: {
      traefik: {},
      'traefik-k3s': { ingress: { namespace: 'kube-system' } },
      haproxy: { ingress: { controller: 'haproxy' } },
      'ingress-nginx': { ingress: { controller: 'ingress-nginx' } },
      'nginx-inc': { ingress: { controller: 'nginx-inc' } },
      // NGINX Gateway Fabric runs a Gateway's proxies in the Gateway's namespace (Cilium's would not be pods there).
      'gateway-in-stack': { routing: 'gateway-api', gatewayApi: { gatewayClassName: 'nginx' } },
      'gateway-own-namespace': { routing: 'gateway-api', gatewayApi: { gatewayNamespace: 'gateways', gatewayClassName: 'eg', proxyNamespace: 'envoy-gateway-system' } },
      'gateway-shared': { routing: 'gateway-api', gatewayApi: { createGateway: false, gatewayName: 'shared', gatewayNamespace: 'infra' } },
      // A Gateway of ours in a namespace of its own, with its proxies there (no proxyNamespace).
      'gateway-own-namespace-proxies-there': { routing: 'gateway-api', gatewayApi: { gatewayNamespace: 'gateways', gatewayClassName: 'nginx' } },
      // Someone else's Gateway in the stack namespace: not created, its proxies under the stack's default-deny.
      'gateway-shared-in-stack': { routing: 'gateway-api', gatewayApi: { createGateway: false, gatewayName: 'shared' } },
    },
  },
  { name: 'profile', levels: { small: {}, production: { profile: 'production' } } },
  {
    name: 'postgres',
    levels: {
      statefulset: {},
      'cloudnative-pg': {
        postgres: { mode: 'cloudnative-pg', cloudnativePg: { backup: { destinationPath: 's3://kudo-backups/postgres', endpointURL: 'https://minio.example.org:9000' } } },
      },
      external: { postgres: { mode: 'external', external: { host: 'db.example.org', port: 6432, ca: { kind: 'Secret', name: 'db-ca', key: 'ca.crt' } } } },
    },
  },
  { name: 'secrets', levels: { generated: {}, existing: { secrets: { mode: 'existing' } } } },
  {
    name: 'backup',
    levels: {
      local: {},
      off: { backup: { enabled: false } },
      s3: { backup: { s3: { enabled: true, repository: 's3:https://s3.example.com/kudo-backups/kudo' } } },
      's3-own-port': { backup: { s3: { enabled: true, repository: 's3:https://minio.example.org:9000/kudo-backups/kudo' } } },
    },
  },
  { name: 'monitoring', levels: { off: {}, on: { monitoring: { enabled: true } } } },
  { name: 'wellKnown', levels: { on: {}, off: { wellKnown: { enabled: false } } } },
  {
    name: 'argocd',
    levels: {
      off: {},
      on: { argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git' } },
      'second-environment': { argocd: { enabled: true, repoURL: 'https://git.example.com/kudo/infra.git', applicationName: 'kudo-staging', path: 'environments/staging/dist' } },
    },
  },
  {
    name: 'adminApi',
    levels: {
      internal: {},
      exposed: { synapse: { adminApi: { expose: true, sourceRanges: ['198.51.100.0/24'] } } },
      'app-outside': { synapse: { adminApi: { expose: true, sourceRanges: ['198.51.100.7/32'] } }, app: { outsideCluster: true } },
    },
  },
  // The cluster's own addresses: its nodes', and its pods' and Services' (k3s's pod range, kubeadm's Service range).
  { name: 'nodeCidrs', levels: { none: {}, listed: { networkPolicies: { nodeCidrs: ['10.0.0.0/16'], clusterCidrs: ['10.42.0.0/16', '10.96.0.0/12'] } } } },
  {
    // How LiveKit takes media: a UDP range or one mux port on the host network, or (livekit.hostNetwork false) its
    // own pod's mux and TCP ports behind NodePort Services, one per replica; that with its own TURN instead of
    // coturn, where nothing is on the node's network; or behind a LoadBalancer Service per replica (issue 28).
    name: 'livekitUdp',
    levels: {
      range: {},
      mux: { livekit: { rtc: { udpPort: 7882 } } },
      nodeports: { livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100 } } },
      'own-turn': { coturn: { enabled: false }, livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100 }, turn: { enabled: true, udpPort: 31200 } } },
      'load-balancers': { livekit: { hostNetwork: false, rtc: { udpPort: 31000, tcpPort: 31100, nodeAddress: 'load-balancer' } } },
    },
  },
  {
    // A Secret of the operator's, mounted into every Synapse process for a setting of their own.
    name: 'synapseExtras',
    levels: {
      none: {},
      sso: {
        synapse: {
          extraSecretFiles: [{ secret: 'kudo-sso', key: 'client_secret', file: 'oidc_client_secret' }],
          extraConfig: { oidc_providers: [{ idp_id: 'sso', issuer: 'https://sso.example.org/', client_id: 'synapse', client_secret_path: '/secrets/extra/oidc_client_secret' }] },
        },
      },
    },
  },
];

/** One render of the matrix: a value of every factor, by factor name. */
export type Levels = Record<string, string>;

/**
 * Which values cannot go together, and why: the config refuses each with the message `refusal` (a test holds that it
 * still does, so a constraint that no longer holds is noticed and removed).
 */
export const EXCLUDED: { when: Levels; because: string; refusal: string }[] = [
  ...[
    'traefik',
    'traefik-k3s',
    'nginx-inc',
    'gateway-in-stack',
    'gateway-own-namespace',
    'gateway-shared',
    'gateway-own-namespace-proxies-there',
    'gateway-shared-in-stack',
  ].flatMap((proxy) =>
    ['exposed', 'app-outside'].map((adminApi) => ({
      when: { proxy, adminApi },
      because: 'the admin API is exposed only through an Ingress annotation that limits source addresses',
      refusal: 'synapse.adminApi.expose',
    })),
  ),
  // Three values together: production with LiveKit on the host network still goes with either value of nodeCidrs
  // (listed here) or LiveKit off the host network, so every pair of two of them stays in the matrix.
  ...['range', 'mux'].map((livekitUdp) => ({
    when: { profile: 'production', nodeCidrs: 'none', livekitUdp },
    because: "production refuses Redis open to every private address: LiveKit on the host network needs the nodes' addresses (issue 25)",
    refusal: 'profile "production" leaves Redis open to every namespace',
  })),
];

function excluded(levels: Levels): boolean {
  return EXCLUDED.some((e) => Object.entries(e.when).every(([f, l]) => levels[f] === l));
}

/** A deep merge of config fragments: mappings merge, anything else is replaced. */
export function merge(...parts: object[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const part of parts) {
    for (const [k, v] of Object.entries(part)) {
      const old = out[k];
      const both = [old, v].every((x) => typeof x === 'object' && x !== null && !Array.isArray(x));
      out[k] = both ? merge(old as object, v as object) : v;
    }
  }
  return out;
}

/**
 * The config of one render. Production without an off-site copy needs the reason written down (the config refuses it
 * otherwise), so one is added there: it changes no object.
 */
export function configOf(levels: Levels): Record<string, unknown> {
  const parts = FACTORS.map((f) => f.levels[levels[f.name]]);
  const offsite = levels.backup === 's3' || levels.backup === 's3-own-port';
  const waiver = levels.profile === 'production' && !offsite ? [{ backup: { offsite: { waived: 'a render of the test matrix' } } }] : [];
  return merge(...parts, ...waiver);
}

/**
 * Rows such that every allowed pair of values of two factors is in at least one: greedy, in a fixed order, so the
 * matrix is the same on every run. Each new row starts from the first pair not yet covered and, factor by factor,
 * takes the value that covers the most uncovered pairs with the values already chosen.
 */
export function allPairs(factors: Factor[] = FACTORS): Levels[] {
  const key = (a: string, x: string, b: string, y: string) => `${a}=${x}|${b}=${y}`;
  const uncovered = new Set<string>();
  for (const [i, a] of factors.entries()) {
    for (const b of factors.slice(i + 1)) {
      for (const x of Object.keys(a.levels)) for (const y of Object.keys(b.levels)) if (!excluded({ [a.name]: x, [b.name]: y })) uncovered.add(key(a.name, x, b.name, y));
    }
  }
  const rows: Levels[] = [];
  while (uncovered.size > 0) {
    const [first] = uncovered;
    const [[a, x], [b, y]] = first.split('|').map((p) => p.split('='));
    const row: Levels = { [a]: x, [b]: y };
    for (const f of factors) {
      if (row[f.name] !== undefined) continue;
      let best: [number, string] | undefined;
      for (const l of Object.keys(f.levels)) {
        const candidate = { ...row, [f.name]: l };
        if (excluded(candidate)) continue;
        const gain = Object.entries(row).filter(([g, m]) => uncovered.has(key(g, m, f.name, l)) || uncovered.has(key(f.name, l, g, m))).length;
        if (best === undefined || gain > best[0]) best = [gain, l];
      }
      if (best === undefined) throw new Error(`no value of ${f.name} goes with ${JSON.stringify(row)}`);
      row[f.name] = best[1];
    }
    for (const [i, a2] of factors.entries()) for (const b2 of factors.slice(i + 1)) uncovered.delete(key(a2.name, row[a2.name], b2.name, row[b2.name]));
    rows.push(row);
  }
  return rows;
}

const DEFAULTS: Levels = Object.fromEntries(FACTORS.map((f) => [f.name, Object.keys(f.levels)[0]]));

/** The set-ups the docs give as examples, each the defaults but for what it names. */
export const NAMED: { name: string; levels: Levels }[] = [
  { name: 'Traefik on k3s', levels: { ...DEFAULTS, proxy: 'traefik-k3s' } },
  { name: 'a shared Gateway in another namespace', levels: { ...DEFAULTS, proxy: 'gateway-shared' } },
  { name: 'the Gateway in the stack namespace', levels: { ...DEFAULTS, proxy: 'gateway-in-stack' } },
  { name: 'a second environment in one Argo CD', levels: { ...DEFAULTS, argocd: 'second-environment' } },
  { name: 'the app outside the cluster', levels: { ...DEFAULTS, proxy: 'haproxy', adminApi: 'app-outside' } },
  { name: 'off-site backups on their own port', levels: { ...DEFAULTS, backup: 's3-own-port' } },
  // The nodes' addresses are listed: production refuses Redis open to every private address without them.
  { name: 'production with every option off', levels: { ...DEFAULTS, profile: 'production', backup: 'off', wellKnown: 'off', nodeCidrs: 'listed' } },
  { name: 'LiveKit off the host network, two replicas', levels: { ...DEFAULTS, profile: 'production', livekitUdp: 'nodeports' } },
  { name: 'LiveKit off the host network with its own TURN, no coturn', levels: { ...DEFAULTS, profile: 'production', livekitUdp: 'own-turn' } },
];

/** Every render of the matrix, named by its values. */
export function matrix(): { name: string; levels: Levels; config: Record<string, unknown> }[] {
  // A row is named by what differs from the defaults, in the factors' order.
  const describe = (levels: Levels) =>
    FACTORS.filter((f) => levels[f.name] !== DEFAULTS[f.name])
      .map((f) => `${f.name}=${levels[f.name]}`)
      .join(' ') || 'the defaults';
  const rows = [...NAMED, ...allPairs().map((levels, i) => ({ name: `pairs ${i + 1}: ${describe(levels)}`, levels }))];
  return rows.map((r) => ({ ...r, config: configOf(r.levels) }));
}
