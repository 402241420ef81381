/**
 * What the config says about every pod, whichever chart builds it: where it
 * may run (tolerations, node affinity, priority class, topology spread),
 * which Secrets its images are pulled with, and which registry they come
 * from. Charts set their own scheduling (LiveKit's and coturn's node
 * selectors, the backups' affinity to the media's node, anti-affinities);
 * withScheduling adds the operator's to it and never takes any away.
 *
 * No runtime import of cdk8s: config.ts uses the image rule while the
 * config is read.
 */
import type { k8s } from 'cdk8s-plus-28';

/** A topology spread constraint whose label selector may be left out: it then selects the workload's own pods. */
export type TopologySpread = Omit<k8s.TopologySpreadConstraint, 'labelSelector'> & { readonly labelSelector?: k8s.LabelSelector };

/** One workload's settings as the config holds them (scheduling.<workload>, and scheduling.all). */
export interface WorkloadScheduling {
  readonly tolerations: readonly k8s.Toleration[];
  readonly nodeAffinity?: k8s.NodeAffinity;
  readonly priorityClassName?: string;
  readonly topologySpreadConstraints: readonly TopologySpread[];
}

/** What a chart adds to its pods: the workload's settings merged with scheduling.all, and the pull Secrets. */
export interface PodScheduling extends WorkloadScheduling {
  /** Secrets (in the pod's namespace) of type kubernetes.io/dockerconfigjson. */
  readonly imagePullSecrets: readonly string[];
}

/**
 * scheduling.all and a workload's own settings, as one: lists joined
 * (all's first), node affinities both required (see andNodeAffinity), the
 * workload's priority class over all's. Undefined when nothing is set, so
 * a chart renders exactly what it did without these options.
 */
export function mergeScheduling(all: WorkloadScheduling, own: WorkloadScheduling, imagePullSecrets: readonly string[]): PodScheduling | undefined {
  const merged: PodScheduling = {
    tolerations: [...all.tolerations, ...own.tolerations],
    nodeAffinity: andNodeAffinity(all.nodeAffinity, own.nodeAffinity),
    priorityClassName: own.priorityClassName ?? all.priorityClassName,
    topologySpreadConstraints: [...all.topologySpreadConstraints, ...own.topologySpreadConstraints],
    imagePullSecrets: [...imagePullSecrets],
  };
  const empty =
    merged.tolerations.length === 0 &&
    merged.nodeAffinity === undefined &&
    merged.priorityClassName === undefined &&
    merged.topologySpreadConstraints.length === 0 &&
    merged.imagePullSecrets.length === 0;
  return empty ? undefined : merged;
}

/**
 * Both node affinities must hold. Kubernetes ORs the terms of one required
 * node selector, so "a and b" is every term of a combined with every term
 * of b; preferences simply add up.
 */
export function andNodeAffinity(a: k8s.NodeAffinity | undefined, b: k8s.NodeAffinity | undefined): k8s.NodeAffinity | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const ra = a.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  const rb = b.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  let required: k8s.NodeSelectorTerm[] | undefined = ra ?? rb;
  if (ra !== undefined && rb !== undefined) {
    required = ra.flatMap((x) =>
      rb.map((y) => {
        const expressions = [...(x.matchExpressions ?? []), ...(y.matchExpressions ?? [])];
        const fields = [...(x.matchFields ?? []), ...(y.matchFields ?? [])];
        return { ...(expressions.length > 0 ? { matchExpressions: expressions } : {}), ...(fields.length > 0 ? { matchFields: fields } : {}) };
      }),
    );
  }
  const preferred = [...(a.preferredDuringSchedulingIgnoredDuringExecution ?? []), ...(b.preferredDuringSchedulingIgnoredDuringExecution ?? [])];
  return {
    ...(required !== undefined ? { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: required } } : {}),
    ...(preferred.length > 0 ? { preferredDuringSchedulingIgnoredDuringExecution: preferred } : {}),
  };
}

/**
 * A pod spec with the operator's scheduling added to what the chart set:
 * tolerations, spread constraints and pull Secrets appended, the node
 * affinity ANDed with the chart's (pod affinities and node selectors are
 * left as they are, and Kubernetes ANDs them with it), the priority class
 * set. A spread constraint without a label selector counts the workload's
 * own pods (`selector`).
 */
export function withScheduling(spec: k8s.PodSpec, s: PodScheduling | undefined, selector: Record<string, string>): k8s.PodSpec {
  if (s === undefined) return spec;
  const nodeAffinity = andNodeAffinity(spec.affinity?.nodeAffinity, s.nodeAffinity);
  return {
    ...spec,
    ...(s.imagePullSecrets.length > 0 ? { imagePullSecrets: [...(spec.imagePullSecrets ?? []), ...s.imagePullSecrets.map((name) => ({ name }))] } : {}),
    ...(s.priorityClassName !== undefined ? { priorityClassName: s.priorityClassName } : {}),
    ...(s.tolerations.length > 0 ? { tolerations: [...(spec.tolerations ?? []), ...s.tolerations] } : {}),
    ...(nodeAffinity !== undefined ? { affinity: { ...spec.affinity, nodeAffinity } } : {}),
    ...(s.topologySpreadConstraints.length > 0
      ? {
          topologySpreadConstraints: [
            ...(spec.topologySpreadConstraints ?? []),
            ...s.topologySpreadConstraints.map((c) => ({ ...c, labelSelector: c.labelSelector ?? { matchLabels: selector } })),
          ],
        }
      : {}),
  };
}

/** The names Docker Hub answers to, where one-component repositories live under "library/". */
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * An image repository as pulled through the mirror `registry` (a host, with
 * an optional port and path: "mirror.example.com", "harbor.local:8443/hub"):
 * the repository's own registry host is replaced by it and the path kept.
 * The registry host is the repository's first component when that has a
 * "." or ":" or is "localhost" (the rule Docker and containerd apply);
 * otherwise the registry is Docker Hub, and a one-component name is
 * Docker Hub's "library/<name>". Tag and digest are not part of the
 * repository and stay as they are.
 *
 *   docker.io/library/postgres  -> mirror.example.com/library/postgres
 *   postgres                    -> mirror.example.com/library/postgres
 *   livekit/livekit-server      -> mirror.example.com/livekit/livekit-server
 *   ghcr.io/element-hq/synapse  -> mirror.example.com/element-hq/synapse
 */
export function mirroredRepository(repository: string, registry: string): string {
  const slash = repository.indexOf('/');
  const first = slash < 0 ? '' : repository.slice(0, slash);
  const hasHost = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const host = hasHost ? first : 'docker.io';
  let rest = hasHost ? repository.slice(slash + 1) : repository;
  if (DOCKER_HUB.has(host) && !rest.includes('/')) rest = `library/${rest}`;
  return `${registry}/${rest}`;
}

/**
 * `value` with every image (a mapping of repository and tag, and maybe a
 * digest: the config's image settings) pulled through `registry`. It walks
 * the whole config, so an image setting added later is mirrored too.
 */
export function withImagesFrom<T>(value: T, registry: string): T {
  if (Array.isArray(value)) return (value as unknown[]).map((v) => withImagesFrom(v, registry)) as T;
  if (value === null || typeof value !== 'object') return value;
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  const isImage = typeof o.repository === 'string' && typeof o.tag === 'string' && keys.every((k) => ['repository', 'tag', 'digest'].includes(k));
  if (isImage) return { ...o, repository: mirroredRepository(o.repository as string, registry) } as T;
  // synapse.extraConfig is homeserver.yaml text of the operator's, not an image setting.
  return Object.fromEntries(keys.map((k) => [k, k === 'extraConfig' ? o[k] : withImagesFrom(o[k], registry)])) as T;
}
