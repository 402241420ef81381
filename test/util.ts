import { Chart, Testing } from 'cdk8s';
import { buildApp } from '../charts/app';
import { ConfigError, KudoConfig, resolveConfig } from '../charts/config';

export type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: any;
};

/**
 * Mutation testing (docs/mutation-testing.md) learns which tests cover a mutant from what runs during each test.
 * A config or render made when a test file loads, or in a describe block, runs during no test: Stryker then marks
 * every line it touches as "static" and runs the whole suite for each mutant there. Under Stryker
 * (test/mutation/setup.js sets KUDO_MUTATION), such a value is a stand-in that makes the real one again, on first
 * use, in each test that reads it: each test's coverage is then its own. Outside Stryker nothing changes.
 */
// Only Stryker's first run measures coverage: with a mutant active, the tests that run are those that cover it,
// so sharing a value between them is as in a plain run.
const PER_TEST = process.env.KUDO_MUTATION === '1' && process.env.__STRYKER_ACTIVE_MUTANT__ === undefined;

/** A value a file's tests share, made on first use (under Stryker: again in each test that uses it). */
export function lazy<T>(make: () => T): () => T {
  let made: { test: string | undefined; value: T } | undefined;
  return () => {
    const test = PER_TEST ? expect.getState().currentTestName : undefined;
    if (!made || made.test !== test) made = { test, value: make() };
    return made.value;
  };
}

function perTest<T extends object>(make: () => T, target: T): T {
  if (!PER_TEST || expect.getState().currentTestName !== undefined) return make();
  const real = lazy(make);
  return new Proxy(target, {
    get: (_, k) => Reflect.get(real(), k),
    set: (_, k, v) => Reflect.set(real(), k, v),
    has: (_, k) => Reflect.has(real(), k),
    ownKeys: () => Reflect.ownKeys(real()),
    getOwnPropertyDescriptor: (_, k) => {
      const d = Reflect.getOwnPropertyDescriptor(real(), k);
      return d && k !== 'length' ? { ...d, configurable: true } : d;
    },
    getPrototypeOf: () => Reflect.getPrototypeOf(real()),
  });
}

/** The whole message a config (as if read from kudo.yaml) is refused with; fails the test if it is accepted. */
export function rejection(input: unknown): string {
  try {
    resolveConfig(input, 'kudo.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('config was accepted');
}

/** A config from a partial YAML-shaped object, defaults filled in. */
export function config(overrides: object = {}): KudoConfig {
  return perTest(() => resolveConfig(overrides, 'test config'), {} as KudoConfig);
}

/** Every chart of the app, by chart id. */
export function charts(c: KudoConfig = config()): Map<string, Chart> {
  const app = buildApp(c, { outdir: Testing.app().outdir });
  return new Map(app.charts.map((ch) => [ch.node.id, ch]));
}

/**
 * A file's renders, by config: many tests of a file render the same config (the defaults most of all); of the
 * suite's 469 renders, 209 repeated a config its own file had rendered before. Each caller gets its own copy, which
 * it may change. Not kept while Stryker measures coverage (PER_TEST): there every test must run the code it covers.
 */
const renders = new Map<string, { charts: Map<string, Chart>; manifests: Map<string, Manifest[]> }>();

function built(c: KudoConfig) {
  const key = JSON.stringify(c);
  let app = PER_TEST ? undefined : renders.get(key);
  if (!app) {
    app = { charts: charts(c), manifests: new Map() };
    if (!PER_TEST) renders.set(key, app);
  }
  return app;
}

function rendered(app: ReturnType<typeof built>, id: string): Manifest[] {
  let ms = app.manifests.get(id);
  if (!ms) {
    const chart = app.charts.get(id);
    if (!chart) throw new Error(`no chart "${id}"`);
    ms = Testing.synth(chart) as Manifest[];
    app.manifests.set(id, ms);
  }
  return structuredClone(ms);
}

/** The manifests of one chart of the default (or given) config. */
export function synthChart(id: string, c: KudoConfig = config()): Manifest[] {
  return perTest(() => rendered(built(c), id), []);
}

/** All manifests of the whole app. */
export function synthAll(c: KudoConfig = config()): Manifest[] {
  return perTest(() => {
    const app = built(c);
    return [...app.charts.keys()].flatMap((id) => rendered(app, id));
  }, []);
}

/** The one object of a kind with a given name; fails if there is not exactly one. */
export function find(ms: Manifest[], kind: string, name: string): Manifest {
  const hits = ms.filter((m) => m.kind === kind && m.metadata.name === name);
  if (hits.length !== 1) throw new Error(`expected one ${kind} "${name}", found ${hits.length}`);
  return hits[0];
}

export function container(workload: Manifest, name: string): any {
  const spec = workload.kind === 'CronJob' ? workload.spec.jobTemplate.spec.template.spec : workload.spec.template.spec;
  const c = [...spec.containers, ...(spec.initContainers ?? [])].find((x: any) => x.name === name);
  if (!c) throw new Error(`${workload.kind}/${workload.metadata.name} has no container "${name}"`);
  return c;
}

export function podSpec(workload: Manifest): any {
  return workload.kind === 'CronJob' ? workload.spec.jobTemplate.spec.template.spec : workload.spec.template.spec;
}

/**
 * `profile: production` for tests about something other than backups and Redis's exposure: production refuses a config
 * without backup.s3 unless the off-site copy is waived with a reason, and LiveKit on the host network without
 * networkPolicies.nodeCidrs unless Redis's exposure is (the rendered objects stay those of the defaults). A test that
 * closes Redis (nodeCidrs, or LiveKit off the host network) replaces networkPolicies, or the waiver is refused.
 */
export const PRODUCTION = {
  profile: 'production',
  backup: { offsite: { waived: 'a test of something else' } },
  networkPolicies: { redisClosed: { waived: 'a test of something else' } },
} as const;
