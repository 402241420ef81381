/**
 * What the Kubernetes API server accepts as names, label keys and values,
 * annotation keys and CronJob schedules, checked when the config is read so
 * that a value the server would refuse is never rendered.
 */

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** An object name such as a StorageClass, IngressClass or GatewayClass (a DNS subdomain). */
export function isObjectName(v: string): boolean {
  return v.length <= 253 && DNS_SUBDOMAIN.test(v);
}

/** A label or annotation key: an optional DNS-subdomain prefix and "/", then a name of at most 63 characters. */
export function isQualifiedName(v: string): boolean {
  const slash = v.lastIndexOf('/');
  const [prefix, name] = slash < 0 ? [undefined, v] : [v.slice(0, slash), v.slice(slash + 1)];
  if (prefix !== undefined && !isObjectName(prefix)) return false;
  return name.length <= 63 && NAME_PART.test(name);
}

/** A label value: empty, or at most 63 letters, digits, "-", "_" and "." starting and ending alphanumeric. */
export function isLabelValue(v: string): boolean {
  return v === '' || (v.length <= 63 && NAME_PART.test(v));
}

const DESCRIPTORS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const FIELDS: { name: string; min: number; max: number; names?: string[]; namesFrom?: number }[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, namesFrom: 1 },
  { name: 'day of week', min: 0, max: 6, names: DAYS, namesFrom: 0 },
];

/**
 * Why Kubernetes would refuse a CronJob schedule, or undefined if it takes
 * it: five fields (numbers, names, "*", "?", lists, ranges, steps) or a
 * descriptor, as robfig/cron's standard parser reads them, and no time zone
 * in the schedule (Kubernetes wants spec.timeZone instead).
 */
export function cronProblem(schedule: string): string | undefined {
  const s = schedule.trim();
  if (/^(CRON_)?TZ=/.test(s)) return 'a time zone in the schedule is refused by Kubernetes (backups run in UTC)';
  if (s.startsWith('@')) {
    if (DESCRIPTORS.has(s)) return undefined;
    const every = /^@every (.+)$/.exec(s);
    if (every) return /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/.test(every[1]) ? undefined : `"${every[1]}" is not a duration such as "6h" or "90m"`;
    return `unknown descriptor ${s}; allowed: ${[...DESCRIPTORS].join(', ')}, @every <duration>`;
  }
  const fields = s.split(/\s+/).filter((f) => f !== '');
  if (fields.length !== 5) return `expected five fields (minute hour day-of-month month day-of-week), found ${fields.length}`;
  for (const [i, text] of fields.entries()) {
    const f = FIELDS[i];
    for (const part of text.split(',')) {
      const problem = cronPart(part, f);
      if (problem) return `${f.name} "${text}": ${problem}`;
    }
  }
  return undefined;
}

function cronPart(part: string, f: (typeof FIELDS)[number]): string | undefined {
  const [range, step, ...extra] = part.split('/');
  if (extra.length > 0) return `too many "/" in "${part}"`;
  if (step !== undefined && !/^[0-9]+$/.test(step)) return `step "${step}" is not a number`;
  if (step !== undefined && Number(step) === 0) return 'a step must be at least 1';
  if (range === '*' || range === '?') return undefined;
  const bounds = range.split('-');
  if (bounds.length > 2) return `too many "-" in "${range}"`;
  const values: number[] = [];
  for (const b of bounds) {
    const named = f.names?.indexOf(b.toLowerCase()) ?? -1;
    if (named >= 0) values.push(named + (f.namesFrom ?? 0));
    else if (/^[0-9]+$/.test(b)) values.push(Number(b));
    else return `"${b}" is not a number${f.names ? ' or a name' : ''}`;
  }
  const [low, high = step !== undefined ? f.max : low] = values;
  if (low < f.min || high > f.max) return `out of range ${f.min}-${f.max}`;
  if (low > high) return `${low} is after ${high}`;
  return undefined;
}
