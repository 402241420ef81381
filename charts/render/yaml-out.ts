/**
 * A small YAML writer for rendered manifests: maps, lists, strings, numbers
 * and booleans, as `toJson()` produces them. It writes plain scalars where
 * YAML reads them back as the same string, double quotes (JSON escapes,
 * which YAML shares) elsewhere, and literal blocks for multi-line text such
 * as config files. General YAML libraries spend most of the render's time
 * deciding the same things for every scalar; a unit test reads every
 * rendered file back with js-yaml to check the result.
 */

// Strings YAML 1.1 or 1.2 would read as something other than a string.
const AMBIGUOUS = /^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N|<<|[-+]?(?:\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN)$/;
const NUMBER_LIKE =
  /^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|0x[0-9a-fA-F_]+|0o?[0-7_]+|0b[01_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$/;
// A conservative set of plain scalars: no indicator first, no ": " or " #", no edge blanks.
const PLAIN = /^[A-Za-z0-9_./$(=][A-Za-z0-9_./$()@=:+,;*<>?! -]*$/;

function scalar(s: string): string {
  if (s !== '' && PLAIN.test(s) && !s.endsWith(' ') && !s.endsWith(':') && !s.includes(': ') && !s.includes(' #') && !AMBIGUOUS.test(s) && !NUMBER_LIKE.test(s)) {
    return s;
  }
  return JSON.stringify(s);
}

function key(k: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(k) && !AMBIGUOUS.test(k) && !NUMBER_LIKE.test(k) ? k : JSON.stringify(k);
}

/** A literal block for multi-line text, or undefined when the text cannot be one. */
function block(s: string, indent: string): string | undefined {
  if (!s.includes('\n') || /[^\n\t\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd]/.test(s) || /[ \t]\n|[ \t]$/.test(s)) return undefined;
  const lines = s.split('\n');
  // Chomping: "|" keeps one final newline, "|-" none, "|+" all of them.
  let chomp = '-';
  if (s.endsWith('\n')) {
    lines.pop();
    chomp = s.endsWith('\n\n') ? '+' : '';
  }
  // An indentation indicator (relative to the parent) when the first line starts with a blank.
  const indicator = /^[ \t]/.test(lines[0]) ? '2' : '';
  return `|${indicator}${chomp}\n${lines.map((l) => (l === '' ? '' : `${indent}  ${l}`)).join('\n')}`;
}

function write(value: unknown, indent: string, out: string[]): void {
  // Called for a value in a map or list position; appends its lines.
  if (Array.isArray(value)) {
    if (value.length === 0) {
      out[out.length - 1] += ' []';
      return;
    }
    for (const item of value as unknown[]) {
      if (item !== null && typeof item === 'object' && !Array.isArray(item) && Object.keys(item).length > 0) {
        // "- key: value" with the rest of the map indented under it.
        const lines: string[] = [];
        writeMap(item as Record<string, unknown>, `${indent}  `, lines);
        lines[0] = `${indent}- ${lines[0].slice(indent.length + 2)}`;
        out.push(...lines);
      } else {
        out.push(`${indent}-`);
        writeInline(item, indent, out);
      }
    }
    return;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value);
    if (entries.length === 0) {
      out[out.length - 1] += ' {}';
      return;
    }
    writeMap(value as Record<string, unknown>, indent, out);
    return;
  }
  writeInline(value, indent, out);
}

function writeInline(value: unknown, indent: string, out: string[]): void {
  const last = out.length - 1;
  if (value === null || value === undefined) out[last] += ' null';
  else if (typeof value === 'string') {
    const b = value.includes('\n') ? block(value, indent) : undefined;
    out[last] += ` ${b ?? scalar(value)}`;
  } else if (typeof value === 'number' || typeof value === 'boolean') out[last] += ` ${String(value)}`;
  else if (Array.isArray(value) || typeof value === 'object') {
    const nested: string[] = [out[last]];
    write(value, `${indent}  `, nested);
    out.splice(last, 1, ...nested);
  } else throw new Error(`cannot write a ${typeof value} as YAML`);
}

function writeMap(map: Record<string, unknown>, indent: string, out: string[]): void {
  for (const [k, v] of Object.entries(map)) {
    if (v === undefined) continue;
    out.push(`${indent}${key(k)}:`);
    const isCollection = v !== null && typeof v === 'object' && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
    if (isCollection) write(v, `${indent}  `, out);
    else writeInline(v, indent, out);
  }
}

/** One YAML document for a manifest object. */
export function toYaml(obj: Record<string, unknown>): string {
  const out: string[] = [];
  writeMap(obj, '', out);
  return `${out.join('\n')}\n`;
}
