/**
 * Validates rendered objects against the Kubernetes OpenAPI definitions in
 * schemas/kubernetes and the pinned CRDs in crds/ (both in the repository), with
 * ajv. Like `kubectl apply --validate=strict`, unknown fields are errors:
 * every object schema that lists its properties gets additionalProperties:
 * false (unless it says it preserves unknown fields).
 */
import * as fs from 'fs';
import * as path from 'path';
import Ajv, { CodeOptions, ValidateFunction } from 'ajv';
import * as yaml from 'js-yaml';

const ROOT = path.resolve(__dirname, '..');
/** The pinned CRD files (crds/README.md lists them). */
export const CRDS_DIR = path.join(ROOT, 'crds');
/** The pinned Kubernetes OpenAPI definitions and Synapse config schema (schemas/README.md lists them). */
export const SCHEMAS_DIR = path.join(ROOT, 'schemas');

/** The oldest and the newest Kubernetes the charts support: every render is valid for both. */
export const KUBERNETES_VERSIONS = ['v1.28.0', 'v1.36.0'];

/** The pinned CRDs (in CRDS_DIR) of every custom resource kind the charts render. */
export const RENDERED_CRDS = [
  'cert-manager/certificates.yaml',
  'cert-manager/clusterissuers.yaml',
  'cert-manager/issuers.yaml',
  'argo-cd/application.yaml',
  'gateway-api/gateways.yaml',
  'gateway-api/httproutes.yaml',
  'prometheus-operator/servicemonitors.yaml',
  'prometheus-operator/podmonitors.yaml',
  'prometheus-operator/prometheusrules.yaml',
  'cloudnative-pg/clusters.yaml',
  'cloudnative-pg/scheduledbackups.yaml',
  'cloudnative-pg/barman-cloud-objectstores.yaml',
];

function strict(schema: any): any {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: any = {};
  for (const [k, v] of Object.entries(schema)) {
    // Descend into sub-schemas, not into literal values (enum, default, example).
    out[k] = ['enum', 'default', 'example', 'required', 'x-kubernetes-group-version-kind', 'x-kubernetes-list-map-keys'].includes(k) ? v : strict(v);
  }
  if (out.properties && out.additionalProperties === undefined && !out['x-kubernetes-preserve-unknown-fields']) {
    out.additionalProperties = false;
  }
  return out;
}

/**
 * CRD patterns are Go (RE2) regular expressions, as the API server reads them;
 * a leading (?i) is Go's case-insensitive flag (prometheus-operator's
 * PrometheusRule has one), which JavaScript spells as a flag instead.
 */
const goRegExp: NonNullable<CodeOptions['regExp']> = Object.assign(
  (pattern: string, u: string) => {
    const flag = /^(\^?)\(\?i\)/.exec(pattern);
    return flag ? new RegExp(flag[1] + pattern.slice(flag[0].length), `${u}i`) : new RegExp(pattern, u);
  },
  { code: 'new RegExp' },
);

export interface Validator {
  /** Error messages for one object; empty when valid. */
  errors(obj: any): string[];
}

export function kubernetesValidator(version: string, crdFiles: string[]): Validator {
  const file = path.join(SCHEMAS_DIR, 'kubernetes', version, '_definitions.json');
  const definitions = strict(JSON.parse(fs.readFileSync(file, 'utf8')).definitions);
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, code: { regExp: goRegExp } });
  ajv.addSchema({ $id: 'k8s', definitions });
  const byGvk = new Map<string, () => ValidateFunction>();
  const lazily = (schema: object) => {
    let fn: ValidateFunction | undefined;
    return () => (fn ??= ajv.compile(schema));
  };
  for (const [name, def] of Object.entries<any>(definitions)) {
    for (const gvk of def['x-kubernetes-group-version-kind'] ?? []) {
      const apiVersion = gvk.group ? `${gvk.group}/${gvk.version}` : gvk.version;
      byGvk.set(`${apiVersion}/${gvk.kind}`, lazily({ $ref: `k8s#/definitions/${name}` }));
    }
  }
  for (const crdFile of crdFiles) {
    for (const crd of yaml.loadAll(fs.readFileSync(path.join(CRDS_DIR, crdFile), 'utf8')) as any[]) {
      if (crd?.kind !== 'CustomResourceDefinition') continue;
      for (const v of crd.spec.versions) {
        const schema = strict(v.schema.openAPIV3Schema);
        // The CRD leaves metadata open; check it as Kubernetes does.
        schema.properties.metadata = { $ref: 'k8s#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' };
        byGvk.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, lazily(schema));
      }
    }
  }
  return {
    errors(obj: any): string[] {
      const key = `${obj.apiVersion}/${obj.kind}`;
      const validate = byGvk.get(key);
      if (!validate) return [`${key} is not served by Kubernetes ${version} or the pinned CRDs`];
      const fn = validate();
      if (fn(obj)) return [];
      return (fn.errors ?? []).map((e) => {
        const extra = e.keyword === 'additionalProperties' ? ` "${(e.params as any).additionalProperty}"` : '';
        return `${e.instancePath || '/'} ${e.message}${extra}`;
      });
    },
  };
}
