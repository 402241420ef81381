import { Chart, Testing } from 'cdk8s';
import { buildApp } from '../charts/app';
import { KudoConfig, resolveConfig } from '../charts/config';

export type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

/** A config from a partial YAML-shaped object, defaults filled in. */
export function config(overrides: object = {}): KudoConfig {
  return resolveConfig(overrides, 'test config');
}

/** Every chart of the app, by chart id. */
export function charts(c: KudoConfig = config()): Map<string, Chart> {
  const app = buildApp(c, { outdir: Testing.app().outdir });
  return new Map(app.charts.map((ch) => [ch.node.id, ch]));
}

/** The manifests of one chart of the default (or given) config. */
export function synthChart(id: string, c: KudoConfig = config()): Manifest[] {
  const chart = charts(c).get(id);
  if (!chart) throw new Error(`no chart "${id}"`);
  return Testing.synth(chart) as Manifest[];
}

/** All manifests of the whole app. */
export function synthAll(c: KudoConfig = config()): Manifest[] {
  return [...charts(c).values()].flatMap((ch) => Testing.synth(ch) as Manifest[]);
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
 * `profile: production` for tests about something other than backups: production refuses a config
 * without backup.s3 unless the off-site copy is waived with a reason.
 */
export const PRODUCTION = { profile: 'production', backup: { offsite: { waived: 'a test of something else' } } } as const;
