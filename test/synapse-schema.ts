/**
 * Validates homeserver.yaml settings against Synapse's own config schema
 * (schemas/synapse-config.schema.yaml, JSON Schema draft 2020-12)
 * with ajv. The schema is not strict about unknown keys; it catches wrong
 * types and values of the keys it knows. Its custom io.element.* keywords
 * are ignored.
 */
import * as fs from 'fs';
import * as path from 'path';
import Ajv2020 from 'ajv/dist/2020';
import * as yaml from 'js-yaml';
import { SCHEMAS_DIR } from './k8s-schema';

let validate: ((hs: unknown) => string[]) | undefined;

/** Error messages for one homeserver.yaml (parsed); empty when valid. */
export function synapseConfigErrors(hs: unknown): string[] {
  if (validate === undefined) {
    const schema = yaml.load(fs.readFileSync(path.join(SCHEMAS_DIR, 'synapse-config.schema.yaml'), 'utf8')) as Record<string, unknown>;
    // Its meta-schema is Synapse's own (draft 2020-12 plus io.element.* keywords), which ajv does not have.
    delete schema.$schema;
    correctSchema(schema as any);
    const fn = new Ajv2020({ strict: false, allErrors: true, validateFormats: false }).compile(schema);
    validate = (hs) => (fn(hs) ? [] : (fn.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`));
  }
  return validate(hs);
}

/**
 * Where the schema (written for the docs, v1.157) is narrower than what Synapse
 * 1.163 reads, so a working config would fail it: every stream may have a list
 * of writers (synapse/config/workers.py converts a name to a one-item list;
 * events is sharded by room), redis.dbid is an int (txredisapi's), and
 * email.smtp_port is a port number (the docs' examples are numbers).
 */
function correctSchema(schema: any): void {
  const writers = schema.properties.stream_writers.properties;
  for (const stream of Object.keys(writers)) {
    delete writers[stream].type;
    writers[stream].anyOf = [{ type: 'string' }, { type: 'array', items: { type: 'string' } }];
  }
  schema.properties.redis.properties.dbid.type = ['integer', 'string', 'null'];
  schema.properties.email.properties.smtp_port.type = ['integer', 'string', 'null'];
}

/** The Synapse schema's keys (dotted, "[]" for list items), for tests that check every key of a kind. */
export function synapseSchemaKeys(): string[] {
  const schema = yaml.load(fs.readFileSync(path.join(SCHEMAS_DIR, 'synapse-config.schema.yaml'), 'utf8')) as any;
  const out: string[] = [];
  const walk = (node: any, at: string[]): void => {
    if (node === null || typeof node !== 'object') return;
    for (const [k, v] of Object.entries<any>(node.properties ?? {})) {
      out.push([...at, k].join('.'));
      walk(v, [...at, k]);
    }
    if (node.items) walk(node.items, [...at.slice(0, -1), `${at[at.length - 1]}[]`]);
    for (const key of ['anyOf', 'oneOf', 'allOf']) for (const sub of node[key] ?? []) walk(sub, at);
  };
  walk(schema, []);
  return [...new Set(out)];
}
