/**
 * What every component's part of the config is built from: zod's checks beyond types (REFINEMENTS) and the fragments
 * several components share (DNS names, quantities, images, resources, storage, scheduling, Secret references).
 */
import { isIP } from 'net';
import type { z as Z } from 'zod';
import { cronProblem, isLabelValue, isObjectName, isQualifiedName } from '../k8s-names';

// RFC 1123 host names: lowercase labels of letters, digits and inner hyphens.
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Memory and storage sizes the config takes: whole bytes, a decimal or binary suffix (common.ts memoryBytes reads them). */
export const MEMORY_QUANTITY = /^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
/** CPU the config takes: cores, a decimal, millicores or another Kubernetes suffix (common.ts cpuCores reads it). */
export const CPU_QUANTITY = /^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/;

/** Kubernetes quantity suffixes (decimal and binary) as factors. */
/** What a refinement needs of zod's context: a way to report a problem. */
interface Problems {
  addIssue(issue: { code: 'custom'; message: string; path?: (string | number)[] }): void;
}

/**
 * The schema's checks beyond types, bounds and patterns, as named functions
 * outside the schema: refine takes the predicates, superRefine the reporters.
 */
export const REFINEMENTS = {
  dnsName: (v: string) => v.length <= 253 && v.split('.').length >= 2 && v.split('.').every((l) => DNS_LABEL.test(l)),
  objectName: isObjectName,
  labelKey: isQualifiedName,
  labelValue: isLabelValue,
  /** Labels (node selectors, ServiceMonitor labels) as the API server checks them. */
  labelMap: (m: Record<string, string>, ctx: Problems) => {
    for (const [k, v] of Object.entries(m)) {
      if (!isQualifiedName(k))
        ctx.addIssue({ code: 'custom', message: `"${k}" is not a label key (an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_", ".")` });
      if (!isLabelValue(v))
        ctx.addIssue({ code: 'custom', message: `"${v}" is not a label value (at most 63 letters, digits, "-", "_", ".", starting and ending with a letter or digit)` });
    }
  },
  annotationMap: (m: Record<string, string>, ctx: Problems) => {
    for (const k of Object.keys(m)) {
      if (!isQualifiedName(k))
        ctx.addIssue({ code: 'custom', message: `"${k}" is not an annotation key (an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_", ".")` });
    }
  },
  cron: (v: string, ctx: Problems) => {
    const problem = cronProblem(v);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: `not a schedule Kubernetes accepts: ${problem} (e.g. "15 3 * * *" or "@daily")` });
  },
  toleration: (t: { key?: string; operator?: string; value?: string; effect?: string; tolerationSeconds?: number }, ctx: Problems) => {
    const exists = t.operator === 'Exists';
    if (exists && t.value !== undefined && t.value !== '') ctx.addIssue({ code: 'custom', path: ['value'], message: 'must be empty when operator is "Exists"' });
    if ((t.key === undefined || t.key === '') && !exists)
      ctx.addIssue({ code: 'custom', path: ['operator'], message: 'must be "Exists" when key is empty (the toleration then matches every taint)' });
    if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute')
      ctx.addIssue({ code: 'custom', path: ['tolerationSeconds'], message: 'applies only with effect "NoExecute"' });
  },
  selectorRequirement: (r: { operator: string; values?: string[] }, ctx: Problems) => {
    const n = r.values?.length ?? 0;
    if ((r.operator === 'In' || r.operator === 'NotIn') && n === 0)
      ctx.addIssue({ code: 'custom', path: ['values'], message: `must list at least one value with operator "${r.operator}"` });
    if ((r.operator === 'Exists' || r.operator === 'DoesNotExist') && n > 0)
      ctx.addIssue({ code: 'custom', path: ['values'], message: `must be empty with operator "${r.operator}"` });
    if ((r.operator === 'Gt' || r.operator === 'Lt') && (n !== 1 || !/^-?[0-9]+$/.test(r.values![0]))) {
      ctx.addIssue({ code: 'custom', path: ['values'], message: `must be one integer with operator "${r.operator}"` });
    }
    if (r.operator === 'In' || r.operator === 'NotIn') {
      for (const [i, v] of (r.values ?? []).entries()) if (!isLabelValue(v)) ctx.addIssue({ code: 'custom', path: ['values', i], message: `"${v}" is not a label value` });
    }
  },
  topologySpreadConstraint: (c: { minDomains?: number; whenUnsatisfiable: string }, ctx: Problems) => {
    if (c.minDomains !== undefined && c.whenUnsatisfiable !== 'DoNotSchedule') {
      ctx.addIssue({ code: 'custom', path: ['minDomains'], message: 'applies only with whenUnsatisfiable "DoNotSchedule"' });
    }
  },
  notReservedLocalpart: (v: string) => !v.startsWith('_'),
  nonZero: (v: number) => v !== 0,
  startsWithRegistryHost: (v: string) => {
    const host = v.split('/')[0];
    return host.includes('.') || host.includes(':') || host === 'localhost';
  },
};
type RefinementName = keyof typeof REFINEMENTS;

/** "address/bits" with an IPv4 or IPv6 address and a prefix length its family allows (host bits are the chart's to check). */
export function isCidr(s: string): boolean {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(s);
  const family = m === null ? 0 : isIP(m[1]);
  return m !== null && family !== 0 && Number(m[2]) <= (family === 4 ? 32 : 128);
}

/** The shared fragments, built with the config's zod (loaded only when a config file is checked). */
export function sharedFragments(z: typeof Z) {
  const reported = reporter(z);

  const dnsName = z.string().refine(REFINEMENTS.dnsName, {
    message: 'must be a lowercase DNS name such as "chat.example.com" (labels of a-z, 0-9 and inner "-", at least two labels)',
  });
  const dnsLabel = z.string().regex(DNS_LABEL, 'must be a lowercase DNS label (a-z, 0-9 and inner "-", at most 63 characters)');
  const quantity = z.string().regex(CPU_QUANTITY, 'must be a Kubernetes quantity such as "500m", "512Mi" or "2Gi"');
  const memory = z.string().regex(MEMORY_QUANTITY, 'must be a memory quantity such as "512Mi" or "2Gi"');
  const port = z.number().int().min(1).max(65535);
  // Labels (node selectors, ServiceMonitor labels) and annotations as the API server checks them.
  const labelMap = reported(z.record(z.string(), z.string()), 'labelMap');
  const annotationMap = reported(z.record(z.string(), z.string()), 'annotationMap');
  const objectName = z.string().refine(REFINEMENTS.objectName, { message: 'must be a Kubernetes object name (lowercase letters, digits, "-" and ".", at most 253)' });
  // Either family: a dual-stack cluster has IPv6 node, pod and Service ranges, and IPv6 clients.
  const cidr = z.string().refine(isCidr, { message: 'must be an IPv4 or IPv6 CIDR such as "10.0.0.0/16" or "fd00:10:244::/56"' });
  const cron = reported(z.string(), 'cron');

  const resources = (cpuReq: string, memReq: string, cpuLim: string, memLim: string) =>
    z
      .strictObject({
        requests: z.strictObject({ cpu: quantity.default(cpuReq), memory: memory.default(memReq) }).prefault({}),
        limits: z.strictObject({ cpu: quantity.default(cpuLim), memory: memory.default(memLim) }).prefault({}),
      })
      .prefault({});

  const image = (repository: string, tag: string) =>
    z
      .strictObject({
        repository: z
          .string()
          .regex(/^[a-z0-9.\-_/:]+$/, 'must be an image repository such as "docker.io/library/postgres"')
          .default(repository),
        tag: z
          .string()
          .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be an image tag')
          .default(tag),
        /** Optional digest; when set the image is pulled by digest and the tag is informational. */
        digest: z
          .string()
          .regex(/^sha256:[a-f0-9]{64}$/, 'must be "sha256:" followed by 64 hex digits')
          .optional(),
      })
      .prefault({});

  const storage = (size: string) =>
    z
      .strictObject({
        size: memory.default(size),
        /** StorageClass; unset means the cluster's default class. */
        className: objectName.optional(),
      })
      .prefault({});

  const { labelKey, labelValue, toleration, selectorRequirement, nodeSelectorTerm, workloadScheduling } = schedulingFragments(z, reported, labelMap, objectName);

  /** A key of a Secret's (or a ConfigMap's) data. */
  const secretKey = z.string().regex(/^[-._a-zA-Z0-9]{1,253}$/, 'must be a Secret data key (at most 253 letters, digits, "-", "_", ".")');

  const secretRef = (name: string, key: string) =>
    z
      .strictObject({
        name: dnsLabel.default(name),
        key: secretKey.default(key),
      })
      .prefault({});

  return {
    z,
    reported,
    dnsName,
    dnsLabel,
    quantity,
    memory,
    port,
    labelMap,
    annotationMap,
    objectName,
    cidr,
    cron,
    resources,
    image,
    storage,
    labelKey,
    labelValue,
    toleration,
    selectorRequirement,
    nodeSelectorTerm,
    workloadScheduling,
    secretKey,
    secretRef,
  };
}

/** What each component's fragment is built from. */
export type Fragments = ReturnType<typeof sharedFragments>;

/** `schema.superRefine(REFINEMENTS[name])`, with the config's zod. */
function reporter(z: typeof Z) {
  return <S extends Z.ZodType>(schema: S, name: RefinementName): S => schema.check(z.superRefine(REFINEMENTS[name] as never));
}

/** Scheduling, in Kubernetes' own shapes (examples from its docs paste in), checked as the API server checks them. */
function schedulingFragments(z: typeof Z, reported: ReturnType<typeof reporter>, labelMap: Z.ZodRecord<Z.ZodString, Z.ZodString>, objectName: Z.ZodString) {
  const labelKey = z.string().refine(REFINEMENTS.labelKey, { message: 'must be a label key (an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_", ".")' });
  const labelValue = z
    .string()
    .refine(REFINEMENTS.labelValue, { message: 'must be a label value (at most 63 letters, digits, "-", "_", ".", starting and ending with a letter or digit)' });
  const toleration = reported(
    z.strictObject({
      /** Empty (with operator Exists) tolerates every taint. */
      key: labelKey.optional(),
      operator: z.enum(['Exists', 'Equal']).optional(),
      value: labelValue.optional(),
      effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
      tolerationSeconds: z.number().int().optional(),
    }),
    'toleration',
  );
  const selectorRequirement = <O extends readonly [string, ...string[]]>(operators: O) =>
    reported(
      z.strictObject({
        key: labelKey,
        operator: z.enum(operators),
        values: z.array(z.string()).optional(),
      }),
      'selectorRequirement',
    );
  const nodeSelectorTerm = z.strictObject({ matchExpressions: z.array(selectorRequirement(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'] as const)).min(1) });
  const workloadScheduling = z
    .strictObject({
      tolerations: z.array(toleration).default([]),
      /** Kubernetes' NodeAffinity: requiredDuringSchedulingIgnoredDuringExecution and preferredDuringSchedulingIgnoredDuringExecution. */
      nodeAffinity: z
        .strictObject({
          requiredDuringSchedulingIgnoredDuringExecution: z.strictObject({ nodeSelectorTerms: z.array(nodeSelectorTerm).min(1) }).optional(),
          preferredDuringSchedulingIgnoredDuringExecution: z.array(z.strictObject({ weight: z.number().int().min(1).max(100), preference: nodeSelectorTerm })).optional(),
        })
        .optional(),
      priorityClassName: objectName.optional(),
      /** Without a labelSelector a constraint counts the workload's own pods. */
      topologySpreadConstraints: z
        .array(
          reported(
            z.strictObject({
              maxSkew: z.number().int().min(1),
              topologyKey: labelKey,
              whenUnsatisfiable: z.enum(['DoNotSchedule', 'ScheduleAnyway']),
              minDomains: z.number().int().min(1).optional(),
              labelSelector: z
                .strictObject({
                  matchLabels: labelMap.optional(),
                  matchExpressions: z.array(selectorRequirement(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const)).optional(),
                })
                .optional(),
              matchLabelKeys: z.array(labelKey).optional(),
              nodeAffinityPolicy: z.enum(['Honor', 'Ignore']).optional(),
              nodeTaintsPolicy: z.enum(['Honor', 'Ignore']).optional(),
            }),
            'topologySpreadConstraint',
          ),
        )
        .default([]),
    })
    .prefault({});
  return { labelKey, labelValue, toleration, selectorRequirement, nodeSelectorTerm, workloadScheduling };
}
