/**
 * The config schema as data, for the bundle: a config file is checked and
 * completed without loading zod. Loading zod, building the schema and
 * running it cost a fifth of a render with a config file (README,
 * "Performance"); walking this plan costs well under a millisecond.
 *
 * The plan only ever accepts: `checkWithPlan` returns the value zod's
 * `safeParse` returns for a config zod accepts, and `undefined` for anything
 * else, in which case the caller asks zod, whose issues make the error
 * messages. So a config is refused by zod alone, with zod's messages, and a
 * gap in the plan costs time, never a wrong answer.
 *
 * `compilePlan` runs when the bundle is built (scripts/build.mjs), on the
 * schema itself; it refuses (throws) on any zod feature it does not know,
 * rather than guess at its meaning. test/config-plan.test.ts compares the
 * plan with zod on valid and invalid configs.
 */
import type { z } from 'zod';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A check that runs on a node's result, as zod runs `def.checks` after parsing. */
export type PlanCheck =
  | { readonly c: 'regex'; readonly source: string; readonly flags: string }
  | { readonly c: 'min' | 'max'; readonly value: number; readonly inclusive: boolean }
  | { readonly c: 'safeint' }
  | { readonly c: 'minLength'; readonly value: number }
  /** A predicate (zod's refine) or a problem reporter (superRefine), by its name in the refinements. */
  | { readonly c: 'refine' | 'superRefine'; readonly name: string };

/** A node of the schema; its children are indexes into the plan's nodes (a part the schema repeats is there once). */
export type PlanNode = { readonly checks?: readonly PlanCheck[] } & (
  | { readonly t: 'string' | 'number' | 'boolean' | 'unknown' }
  | { readonly t: 'enum'; readonly values: readonly Json[] }
  /** keys: [key, node, optin, optout] in the schema's order, which is the output's. */
  | { readonly t: 'object'; readonly keys: readonly (readonly [string, number, string | null, string | null])[] }
  | { readonly t: 'record'; readonly value: number }
  | { readonly t: 'array'; readonly element: number }
  | { readonly t: 'optional'; readonly inner: number; readonly innerOptin: string | null }
  | { readonly t: 'default' | 'prefault'; readonly inner: number; readonly value: Json }
);

/** The schema as JSON: its nodes, the first the root. */
export interface Plan {
  readonly nodes: readonly PlanNode[];
}

/** The functions the plan names: a refine's predicate, or a superRefine's reporter (which calls ctx.addIssue). */
export type Refinements = Readonly<Record<string, (value: never, ctx: { addIssue(issue: unknown): void }) => unknown>>;

/**
 * The plan of a zod schema. `nameOf` gives the name (in the refinements) of a
 * custom check: zod keeps a refine's function on the check, but hides a
 * superRefine's in a closure.
 */
export function compilePlan(schema: z.ZodType, nameOf: (check: object) => string | undefined): Plan {
  const nodes: PlanNode[] = [];
  const index = new Map<string, number>();
  const add = (node: PlanNode): number => {
    const key = JSON.stringify(node);
    let i = index.get(key);
    if (i === undefined) {
      i = nodes.push(node) - 1;
      index.set(key, i);
    }
    return i;
  };
  nodes.push({ t: 'unknown' }); // the root's place, filled below
  nodes[0] = nodes[compileNode(schema, nameOf, [], add)];
  return { nodes };
}

function compileNode(schema: z.ZodType, nameOf: (check: object) => string | undefined, path: string[], add: (node: PlanNode) => number): number {
  // zod's internals (def, optin, optout) are read here, at build time only; the test suite pins their meaning.
  const zod = (schema as unknown as { _zod: { def: any; values?: Set<unknown>; optin?: string; optout?: string } })._zod;
  const def = zod.def;
  const where = path.length > 0 ? path.join('.') : '(top level)';
  const refuse = (what: string): never => {
    throw new Error(`the config plan (charts/config-plan.ts) cannot express ${what} at ${where}: teach compilePlan and checkWithPlan about it`);
  };
  const checks = ((def.checks ?? []) as { _zod: { def: any } }[]).map((ch): PlanCheck => {
    const d = ch._zod.def;
    if (d.when !== undefined && d.check !== 'min_length') refuse(`a conditional check (${d.check})`);
    switch (d.check) {
      case 'string_format':
        if (!(d.pattern instanceof RegExp)) refuse(`the string format ${d.format}`);
        return { c: 'regex', source: d.pattern.source, flags: d.pattern.flags };
      case 'greater_than': return { c: 'min', value: num(d.value), inclusive: d.inclusive === true };
      case 'less_than': return { c: 'max', value: num(d.value), inclusive: d.inclusive === true };
      case 'number_format':
        if (d.format !== 'safeint') refuse(`the number format ${d.format}`);
        return { c: 'safeint' };
      case 'min_length':
        if (def.type !== 'array') refuse('a minimum length on a string');
        return { c: 'minLength', value: num(d.minimum) };
      case 'custom': {
        const name = nameOf(ch);
        if (name === undefined) refuse('a refinement that is not among the named refinements');
        return { c: typeof d.fn === 'function' ? 'refine' : 'superRefine', name: name! };
      }
      default: return refuse(`the check ${d.check}`);
    }
  });
  const withChecks = (node: PlanNode): number => add(checks.length > 0 ? { ...node, checks } : node);
  const child = (s: z.ZodType, key?: string) => compileNode(s, nameOf, key === undefined ? path : [...path, key], add);
  if (def.coerce) refuse('coercion');
  switch (def.type) {
    case 'string': case 'number': case 'boolean': case 'unknown':
      return withChecks({ t: def.type });
    case 'enum':
      return withChecks({ t: 'enum', values: [...zod.values!].map((v) => json(v, refuse)) });
    case 'object': {
      const catchall = def.catchall?._zod.def.type;
      if (catchall !== 'never') refuse(catchall === undefined ? 'an object that drops unknown keys (use z.strictObject)' : 'an object with a catchall');
      const keys = Object.keys(def.shape).map((k) => {
        const field = def.shape[k];
        return [k, child(field, k), field._zod.optin ?? null, field._zod.optout ?? null] as const;
      });
      return withChecks({ t: 'object', keys });
    }
    case 'record': {
      const key = def.keyType._zod;
      if (key.def.type !== 'string' || key.def.checks?.length || key.values !== undefined || def.mode !== undefined) refuse('a record whose keys are not plain strings');
      return withChecks({ t: 'record', value: child(def.valueType, '*') });
    }
    case 'array':
      return withChecks({ t: 'array', element: child(def.element, '*') });
    case 'optional':
      return withChecks({ t: 'optional', inner: child(def.innerType), innerOptin: def.innerType._zod.optin ?? null });
    case 'default': case 'prefault':
      return withChecks({ t: def.type, inner: child(def.innerType), value: json(def.defaultValue, refuse) });
    default:
      return refuse(`a ${def.type} schema`);
  }
}

function num(v: unknown): number {
  if (typeof v !== 'number') throw new Error(`the config plan expected a number bound, found ${typeof v}`);
  return v;
}

/** A default value as JSON (the plan is embedded as JSON), refusing what JSON would change. */
function json(v: unknown, refuse: (what: string) => never): Json {
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) return v as Json;
  if (Array.isArray(v)) return v.map((x) => json(x, refuse));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, json(x, refuse)]));
  }
  return refuse(`the value ${String(v)}, which JSON cannot hold`);
}

/** Thrown inside checkWithPlan when zod would not accept the input (or the plan cannot tell). */
const REFUSED = Symbol('refused');

/**
 * What zod's `safeParse` returns for `input` when it accepts it, or
 * `undefined`: the input is invalid, or the plan cannot tell; ask zod.
 */
export function checkWithPlan(plan: Plan, input: unknown, refinements: Refinements): { value: unknown } | undefined {
  try {
    return { value: run(plan, 0, input, refinements) };
  } catch (e) {
    if (e === REFUSED) return undefined;
    throw e;
  }
}

const regexes = new Map<string, RegExp>();

function refused(): never {
  throw REFUSED;
}

/** Plain objects only, with no own __proto__ key (zod treats those specially): anything else goes to zod. */
function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype && !Object.prototype.hasOwnProperty.call(v, '__proto__');
}

function copy(v: Json): Json {
  if (Array.isArray(v)) return v.map(copy);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copy(x)]));
  return v;
}

/** One node, as zod's `run`: parse, then the node's checks on the result. */
function run(plan: Plan, i: number, input: unknown, refinements: Refinements): unknown {
  const node = plan.nodes[i];
  const value = parse(plan, node, input, refinements);
  for (const check of node.checks ?? []) {
    switch (check.c) {
      case 'regex': {
        const key = `/${check.source}/${check.flags}`;
        let re = regexes.get(key);
        if (re === undefined) regexes.set(key, (re = new RegExp(check.source, check.flags)));
        re.lastIndex = 0;
        if (!re.test(value as string)) refused();
        break;
      }
      case 'min': if (!(check.inclusive ? (value as number) >= check.value : (value as number) > check.value)) refused(); break;
      case 'max': if (!(check.inclusive ? (value as number) <= check.value : (value as number) < check.value)) refused(); break;
      case 'safeint': if (!Number.isSafeInteger(value)) refused(); break;
      case 'minLength': if ((value as unknown[]).length < check.value) refused(); break;
      case 'refine': if (!refinements[check.name](value as never, { addIssue: refused })) refused(); break;
      case 'superRefine': refinements[check.name](value as never, { addIssue: refused }); break;
    }
  }
  return value;
}

function parse(plan: Plan, node: PlanNode, input: unknown, refinements: Refinements): unknown {
  switch (node.t) {
    case 'string': return typeof input === 'string' ? input : refused();
    case 'number': return typeof input === 'number' && Number.isFinite(input) ? input : refused();
    case 'boolean': return typeof input === 'boolean' ? input : refused();
    case 'unknown': return input;
    case 'enum': return node.values.includes(input as Json) ? input : refused();
    case 'default': {
      const value = input === undefined ? undefined : run(plan, node.inner, input, refinements);
      return value === undefined ? copy(node.value) : value;
    }
    case 'prefault':
      return run(plan, node.inner, input === undefined ? copy(node.value) : input, refinements);
    case 'optional':
      // As zod: absence stays absent, unless the inner schema substitutes a value for it.
      return input === undefined && node.innerOptin !== 'defaulted' ? undefined : run(plan, node.inner, input, refinements);
    case 'array':
      return Array.isArray(input) ? input.map((x) => run(plan, node.element, x, refinements)) : refused();
    case 'record': {
      if (!isPlain(input)) refused();
      const out: Record<string, unknown> = {};
      for (const key of Reflect.ownKeys(input as object)) {
        if (typeof key !== 'string' || !Object.prototype.propertyIsEnumerable.call(input, key)) refused();
        out[key as string] = run(plan, node.value, (input as Record<string, unknown>)[key as string], refinements);
      }
      return out;
    }
    case 'object': {
      if (!isPlain(input)) refused();
      const obj = input as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      const known = new Set<string>();
      for (const [key, field, optin, optout] of node.keys) {
        known.add(key);
        const result = run(plan, field, obj[key], refinements);
        // zod's handlePropertyResult, for a field without issues.
        const present = key in obj;
        if (!present && optin === null) refused();
        if (result !== undefined) out[key] = result;
        else if (present || (optin === 'defaulted' && optout !== 'optional')) out[key] = undefined;
      }
      for (const key in obj) if (!known.has(key)) refused();
      return out;
    }
  }
}
