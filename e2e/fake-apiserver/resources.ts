// The resource types the fake serves: built-ins with their real names and scopes, plus CRDs.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { SchemaNode } from './schema.js';
import type { KubeObject, Verb } from './types.js';
import { isRecord } from './types.js';
import type { NameRule } from './validation.js';

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  format?: string;
  priority?: number;
}

export interface ResourceDef {
  group: string;
  /** Served versions; the first is the preferred one. */
  versions: string[];
  resource: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  nameRule: NameRule;
  statusSubresource: boolean;
  custom: boolean;
  /** Whether metadata.generation is kept (bumped when anything but metadata/status changes). */
  generation: boolean;
  /** CRDs only: schema and printer columns per version. */
  schemas: Map<string, SchemaNode>;
  printerColumns: Map<string, PrinterColumn[]>;
  /** MicroTime fields (dotted paths) that must carry exactly six fractional digits. */
  microTimeFields: string[];
  /** Verbs served (discovery lists them; others get 405). Reviews are create-only and never stored. */
  verbs: Verb[];
}

export const ALL_VERBS: Verb[] = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export function resourceKey(group: string, resource: string): string {
  return `${group}/${resource}`;
}

export function apiVersionOf(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}

interface BuiltinSpec {
  group: string;
  version: string;
  resource: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  status?: boolean;
  nameRule?: NameRule;
  generation?: boolean;
  microTimeFields?: string[];
  categories?: string[];
  verbs?: Verb[];
}

const BUILTINS: BuiltinSpec[] = [
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, shortNames: ['po'], status: true, categories: ['all'] },
  { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false, shortNames: ['no'], status: true },
  { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false, shortNames: ['ns'], status: true, nameRule: 'label' },
  { group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true, shortNames: ['ev'], microTimeFields: ['eventTime'] },
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, shortNames: ['sa'] },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'] },
  { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], status: true, generation: true, categories: ['all'] },
  { group: 'apps', version: 'v1', resource: 'replicasets', kind: 'ReplicaSet', namespaced: true, shortNames: ['rs'], status: true, generation: true, categories: ['all'] },
  { group: 'apps', version: 'v1', resource: 'statefulsets', kind: 'StatefulSet', namespaced: true, shortNames: ['sts'], status: true, generation: true, categories: ['all'] },
  { group: 'apps', version: 'v1', resource: 'daemonsets', kind: 'DaemonSet', namespaced: true, shortNames: ['ds'], status: true, generation: true, categories: ['all'] },
  { group: 'batch', version: 'v1', resource: 'jobs', kind: 'Job', namespaced: true, status: true, generation: true, categories: ['all'] },
  { group: 'batch', version: 'v1', resource: 'cronjobs', kind: 'CronJob', namespaced: true, shortNames: ['cj'], status: true, generation: true, categories: ['all'] },
  { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true, microTimeFields: ['spec.acquireTime', 'spec.renewTime'] },
  { group: 'events.k8s.io', version: 'v1', resource: 'events', kind: 'Event', namespaced: true, shortNames: ['ev'], microTimeFields: ['eventTime'] },
  { group: 'admissionregistration.k8s.io', version: 'v1', resource: 'validatingwebhookconfigurations', kind: 'ValidatingWebhookConfiguration', namespaced: false, generation: true },
  // Answered, not stored: the API server evaluates the review and returns it with its status.
  { group: 'authentication.k8s.io', version: 'v1', resource: 'tokenreviews', kind: 'TokenReview', namespaced: false, verbs: ['create'] },
  { group: 'authorization.k8s.io', version: 'v1', resource: 'subjectaccessreviews', kind: 'SubjectAccessReview', namespaced: false, verbs: ['create'] },
  { group: 'apiextensions.k8s.io', version: 'v1', resource: 'customresourcedefinitions', kind: 'CustomResourceDefinition', namespaced: false, shortNames: ['crd', 'crds'], status: true, generation: true },
];

export function builtinResources(): ResourceDef[] {
  return BUILTINS.map((b) => ({
    group: b.group,
    versions: [b.version],
    resource: b.resource,
    singular: b.kind.toLowerCase(),
    kind: b.kind,
    namespaced: b.namespaced,
    shortNames: b.shortNames ?? [],
    categories: b.categories ?? [],
    nameRule: b.nameRule ?? 'subdomain',
    statusSubresource: b.status ?? false,
    custom: false,
    generation: b.generation ?? false,
    schemas: new Map(),
    printerColumns: new Map(),
    microTimeFields: b.microTimeFields ?? [],
    verbs: b.verbs ?? ALL_VERBS,
  }));
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** Turns a CustomResourceDefinition object into the resource it defines; throws on a malformed CRD. */
export function resourceFromCrd(crd: KubeObject): ResourceDef {
  const spec = crd.spec;
  if (!isRecord(spec) || typeof spec.group !== 'string' || !isRecord(spec.names) || !Array.isArray(spec.versions)) {
    throw new Error(`CRD ${crd.metadata?.name ?? '?'} lacks spec.group, spec.names or spec.versions`);
  }
  const names = spec.names;
  if (typeof names.plural !== 'string' || typeof names.kind !== 'string') {
    throw new Error(`CRD ${crd.metadata?.name ?? '?'} lacks spec.names.plural or kind`);
  }
  const schemas = new Map<string, SchemaNode>();
  const printerColumns = new Map<string, PrinterColumn[]>();
  const versions: string[] = [];
  let status = false;
  const served = spec.versions.filter(isRecord).filter((v) => v.served !== false && typeof v.name === 'string');
  // The storage version is listed first so it becomes the preferred version in discovery.
  served.sort((a, b) => Number(b.storage === true) - Number(a.storage === true));
  for (const v of served) {
    const name = String(v.name);
    versions.push(name);
    const schema = isRecord(v.schema) ? v.schema.openAPIV3Schema : undefined;
    if (isRecord(schema)) schemas.set(name, schema as SchemaNode);
    const columns = Array.isArray(v.additionalPrinterColumns) ? v.additionalPrinterColumns.filter(isRecord) : [];
    printerColumns.set(
      name,
      columns.map((c) => {
        const col: PrinterColumn = { name: String(c.name), type: String(c.type ?? 'string'), jsonPath: String(c.jsonPath ?? '') };
        if (typeof c.description === 'string') col.description = c.description;
        if (typeof c.format === 'string') col.format = c.format;
        if (typeof c.priority === 'number') col.priority = c.priority;
        return col;
      }),
    );
    if (isRecord(v.subresources) && v.subresources.status !== undefined) status = true;
  }
  return {
    group: spec.group,
    versions,
    resource: names.plural,
    singular: typeof names.singular === 'string' ? names.singular : names.kind.toLowerCase(),
    kind: names.kind,
    namespaced: spec.scope !== 'Cluster',
    shortNames: strings(names.shortNames),
    categories: strings(names.categories),
    nameRule: 'subdomain',
    statusSubresource: status,
    custom: true,
    generation: true,
    schemas,
    printerColumns,
    microTimeFields: [],
    verbs: ALL_VERBS,
  };
}

/** Every CustomResourceDefinition document in the YAML/JSON files of a directory (not recursive). */
export function readCrdFiles(dir: string): KubeObject[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  } catch {
    return [];
  }
  const crds: KubeObject[] = [];
  for (const file of files) {
    const text = readFileSync(path.join(dir, file), 'utf8');
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length > 0) throw new Error(`${path.join(dir, file)}: ${doc.errors[0]?.message ?? 'invalid YAML'}`);
      const value: unknown = doc.toJS();
      if (isRecord(value) && value.kind === 'CustomResourceDefinition') crds.push(value as KubeObject);
    }
  }
  return crds;
}
