// The semantics of each write: create, update, patch, delete, with the real server's defaulting,
// validation, optimistic concurrency and status-subresource rules. Used by HTTP and by seeding.
import { randomUUID } from 'node:crypto';
import { WEBHOOK_GROUP, defaultWebhookConfiguration, validateWebhookConfiguration } from './admission-webhooks.js';
import { alreadyExists, badRequest, conflict, internalError, invalid, notFound, unsupportedMediaType } from './errors.js';
import type { StatusCause } from './errors.js';
import { APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, applyPatch, jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import type { ResourceRegistry } from './registry.js';
import { apiVersionOf, resourceKey, resourceFromCrd } from './resources.js';
import type { ResourceDef } from './resources.js';
import { applyDefaults, pruneObject, validateValue } from './schema.js';
import { fieldValue } from './selectors.js';
import type { ObjectStore, StoredObject } from './store.js';
import type { KubeObject, ObjectMeta } from './types.js';
import { isRecord } from './types.js';
import { microTimeError, validateObjectMeta } from './validation.js';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  /** Served version the client used; objects are returned with its apiVersion. */
  version?: string;
  fieldManager?: string;
  fieldValidation?: FieldValidation;
  dryRun?: boolean;
  /** Seeding only: keep status on create (pods "already running"), skip the namespace check. */
  keepStatus?: boolean;
  force?: boolean;
  /** The uid to give a created object (the one admission webhooks were shown in the preview). */
  uid?: string;
}

export interface WriteResult {
  stored: StoredObject;
  created: boolean;
  warnings: string[];
}

export interface ObjectApiOptions {
  now: () => Date;
  /** HTTP-created pods get a running status at once (there is no kubelet). */
  autoRunPods: boolean;
  /** Largest object accepted after decoding (etcd's limit is 1.5 MiB). */
  maxObjectBytes: number;
  /** Called with a created pod to fill a "running" status; provided by the seeding module. */
  runningPodStatus: (pod: KubeObject, now: Date) => Record<string, unknown>;
}

const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

/** RFC 3339 with whole seconds, as metav1.Time serializes. */
export function timestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function metaOf(obj: KubeObject): ObjectMeta {
  if (!isRecord(obj.metadata)) obj.metadata = {};
  return obj.metadata as ObjectMeta;
}

function withoutMetaAndStatus(obj: KubeObject): Record<string, unknown> {
  const { metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (isRecord(v)) {
      const sorted: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) sorted[key] = v[key];
      return sorted;
    }
    return v;
  });
}

export class ObjectApi {
  constructor(
    private readonly registry: ResourceRegistry,
    private readonly store: ObjectStore,
    private readonly opts: ObjectApiOptions,
  ) {}

  private rkey(def: ResourceDef): string {
    return resourceKey(def.group, def.resource);
  }

  get(def: ResourceDef, namespace: string, name: string): StoredObject {
    const found = this.store.get(this.rkey(def), def.namespaced ? namespace : '', name);
    if (!found) throw notFound(def.group, def.resource, name);
    return found;
  }

  /** POST to a collection. */
  create(def: ResourceDef, namespace: string | undefined, body: unknown, opts: WriteOptions = {}): WriteResult {
    if (!isRecord(body)) throw badRequest('the body of the request must be a JSON object');
    const obj = clone(body) as KubeObject;
    const version = opts.version ?? def.versions[0] ?? 'v1';
    this.checkTypeMeta(def, version, obj);
    const meta = metaOf(obj);
    if (def.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== '' && namespace !== undefined && meta.namespace !== namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = namespace ?? meta.namespace;
      if (!meta.namespace) throw badRequest('an empty namespace may not be set during creation');
      if (!opts.keepStatus && !this.store.get('/namespaces', '', meta.namespace)) {
        throw notFound('', 'namespaces', meta.namespace);
      }
    } else {
      delete meta.namespace;
    }
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== '' && !opts.keepStatus) {
      throw internalError('resourceVersion should not be set on objects to be created');
    }
    if ((meta.name === undefined || meta.name === '') && typeof meta.generateName === 'string' && meta.generateName !== '') {
      let suffix = '';
      for (let i = 0; i < 5; i++) suffix += NAME_CHARS[Math.floor(Math.random() * NAME_CHARS.length)] ?? 'x';
      meta.name = `${meta.generateName}${suffix}`;
    }
    const now = this.opts.now();
    meta.uid = opts.uid ?? (opts.keepStatus && typeof meta.uid === 'string' && meta.uid !== '' ? meta.uid : randomUUID());
    if (!(opts.keepStatus && typeof meta.creationTimestamp === 'string')) meta.creationTimestamp = timestamp(now);
    delete meta.deletionTimestamp;
    delete meta.managedFields;
    if (def.generation) meta.generation = 1;
    else delete meta.generation;
    if (def.statusSubresource && !opts.keepStatus) delete obj.status;
    this.defaultOnCreate(def, obj, opts, now);
    const warnings = this.validate(def, version, obj, true, opts);
    const name = meta.name ?? '';
    const rkey = this.rkey(def);
    const ns = def.namespaced ? (meta.namespace ?? '') : '';
    if (this.store.get(rkey, ns, name)) throw alreadyExists(def.group, def.resource, name);
    this.checkSize(obj);
    if (opts.dryRun) {
      return { stored: { obj, json: JSON.stringify(obj), namespace: ns, name, rv: this.store.currentRv() }, created: true, warnings };
    }
    if (def.group === 'apiextensions.k8s.io') this.establishCrd(obj);
    const rv = this.store.nextRv();
    meta.resourceVersion = String(rv);
    const stored = this.store.write(rkey, 'ADDED', obj, rv);
    if (def.group === '' && def.resource === 'namespaces') this.createDefaultServiceAccount(name);
    return { stored, created: true, warnings };
  }

  /** PUT on an object or its /status. */
  update(def: ResourceDef, namespace: string, name: string, subresource: string | undefined, body: unknown, opts: WriteOptions = {}): WriteResult {
    if (!isRecord(body)) throw badRequest('the body of the request must be a JSON object');
    const candidate = clone(body) as KubeObject;
    const version = opts.version ?? def.versions[0] ?? 'v1';
    this.checkTypeMeta(def, version, candidate);
    const meta = metaOf(candidate);
    if (meta.name !== undefined && meta.name !== name) {
      throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
    }
    if (def.namespaced && meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const old = this.store.get(this.rkey(def), def.namespaced ? namespace : '', name);
    if (!old) throw notFound(def.group, def.resource, name);
    if (def.custom && (meta.resourceVersion === undefined || meta.resourceVersion === '')) {
      throw invalid(def.group, def.kind, name, [
        { reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' },
      ]);
    }
    return this.commit(def, version, old, candidate, subresource, opts);
  }

  /** PATCH on an object or its /status, by content type; apply patches may create. */
  patch(def: ResourceDef, namespace: string, name: string, subresource: string | undefined, contentType: string, body: unknown, opts: WriteOptions = {}): WriteResult {
    const version = opts.version ?? def.versions[0] ?? 'v1';
    const accepted = def.custom ? [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] : [JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH];
    if (!accepted.includes(contentType)) throw unsupportedMediaType(contentType, accepted);
    const old = this.store.get(this.rkey(def), def.namespaced ? namespace : '', name);
    if (contentType === APPLY_PATCH) {
      if (!opts.fieldManager) throw badRequest('PATCH, fieldManager: Required value: is required for apply patch');
      if (!isRecord(body)) throw badRequest('apply patch body must be an object');
      const applied = body as KubeObject;
      if (typeof applied.apiVersion !== 'string' || typeof applied.kind !== 'string') {
        throw badRequest('apiVersion and kind must be set in an apply patch');
      }
      const appliedName = isRecord(applied.metadata) ? applied.metadata.name : undefined;
      if (appliedName !== undefined && appliedName !== name) {
        throw badRequest(`the name of the object (${String(appliedName)}) does not match the name on the URL (${name})`);
      }
      if (!old) {
        if (subresource !== undefined) throw notFound(def.group, def.resource, name);
        const toCreate = clone(applied);
        metaOf(toCreate).name = name;
        return this.create(def, def.namespaced ? namespace : undefined, toCreate, opts);
      }
      const merged = applyPatch(clone(old.obj), applied) as KubeObject;
      // Apply carries no resourceVersion precondition unless the caller put one in the body.
      const appliedRv = isRecord(applied.metadata) ? applied.metadata.resourceVersion : undefined;
      metaOf(merged).resourceVersion = typeof appliedRv === 'string' ? appliedRv : String(old.rv);
      return this.commit(def, version, old, merged, subresource, opts);
    }
    if (!old) throw notFound(def.group, def.resource, name);
    let patched: unknown;
    if (contentType === JSON_PATCH) patched = jsonPatch(old.obj, body);
    else if (!isRecord(body)) throw badRequest('a merge patch must be a JSON object');
    else if (contentType === MERGE_PATCH) patched = mergePatch(clone(old.obj), body);
    else patched = strategicMergePatch(clone(old.obj), body);
    if (!isRecord(patched)) throw badRequest('the patch produced something that is not an object');
    return this.commit(def, version, old, patched as KubeObject, subresource, opts);
  }

  /** DELETE one object; with finalizers it only gets a deletionTimestamp. */
  remove(def: ResourceDef, namespace: string, name: string, options: unknown = undefined, dryRun = false): StoredObject {
    const rkey = this.rkey(def);
    const ns = def.namespaced ? namespace : '';
    const old = this.store.get(rkey, ns, name);
    if (!old) throw notFound(def.group, def.resource, name);
    const pre = isRecord(options) && isRecord(options.preconditions) ? options.preconditions : undefined;
    if (pre && typeof pre.resourceVersion === 'string' && pre.resourceVersion !== String(old.rv)) {
      throw conflict(def.group, def.resource, name, `the ResourceVersion in the precondition (${pre.resourceVersion}) does not match the ResourceVersion in record (${old.rv}). The object might have been modified`);
    }
    if (pre && typeof pre.uid === 'string' && pre.uid !== old.obj.metadata?.uid) {
      throw conflict(def.group, def.resource, name, `the UID in the precondition (${pre.uid}) does not match the UID in record (${String(old.obj.metadata?.uid)}). The object might have been deleted and then recreated`);
    }
    if (dryRun) return old;
    const finalizers = old.obj.metadata?.finalizers ?? [];
    if (finalizers.length > 0 && !(def.group === '' && def.resource === 'namespaces')) {
      if (old.obj.metadata?.deletionTimestamp) return old;
      const obj = clone(old.obj);
      const meta = metaOf(obj);
      meta.deletionTimestamp = timestamp(this.opts.now());
      meta.deletionGracePeriodSeconds = 0;
      const rv = this.store.nextRv();
      meta.resourceVersion = String(rv);
      return this.store.write(rkey, 'MODIFIED', obj, rv);
    }
    return this.deleteNow(def, old);
  }

  private deleteNow(def: ResourceDef, old: StoredObject): StoredObject {
    if (def.group === '' && def.resource === 'namespaces') {
      // No namespace controller: the namespace's contents go at once.
      for (const other of this.registry.all()) {
        if (!other.namespaced) continue;
        for (const obj of this.store.list(this.rkey(other), old.name)) this.deleteNow(other, obj);
      }
    }
    if (def.group === 'apiextensions.k8s.io' && def.resource === 'customresourcedefinitions') {
      try {
        const crdDef = resourceFromCrd(old.obj);
        const crKey = resourceKey(crdDef.group, crdDef.resource);
        const registered = this.registry.byKey(crKey);
        if (registered) for (const obj of this.store.list(crKey)) this.deleteNow(registered, obj);
        this.registry.unregister(crKey);
      } catch {
        // A CRD that never registered has nothing to clean up.
      }
    }
    const obj = clone(old.obj);
    const rv = this.store.nextRv();
    metaOf(obj).resourceVersion = String(rv);
    return this.store.write(this.rkey(def), 'DELETED', obj, rv);
  }

  private checkTypeMeta(def: ResourceDef, version: string, obj: KubeObject): void {
    const expected = apiVersionOf(def.group, version);
    if (obj.apiVersion !== undefined && obj.apiVersion !== '' && obj.apiVersion !== expected) {
      throw badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${expected})`);
    }
    if (obj.kind !== undefined && obj.kind !== '' && obj.kind !== def.kind) {
      throw badRequest(`the kind in the data (${String(obj.kind)}) does not match the expected kind (${def.kind})`);
    }
    obj.apiVersion = expected;
    obj.kind = def.kind;
  }

  private checkSize(obj: KubeObject): void {
    const size = Buffer.byteLength(JSON.stringify(obj));
    if (size > this.opts.maxObjectBytes) {
      // etcd refuses it and the apiserver passes that on as a plain 500 (kubernetes/kubernetes#112152,
      // still open): retrying cannot help, so writers must cap before writing.
      throw internalError('etcdserver: request is too large');
    }
  }

  /** Shared tail of update and patch: status rules, preconditions, validation, no-op detection. */
  private commit(def: ResourceDef, version: string, old: StoredObject, candidateIn: KubeObject, subresource: string | undefined, opts: WriteOptions): WriteResult {
    const name = old.name;
    if (subresource !== undefined && subresource !== 'status') throw notFound(def.group, def.resource, name);
    if (subresource === 'status' && !def.statusSubresource) throw notFound(def.group, def.resource, name);
    const oldObj = old.obj;
    const requestedRv = candidateIn.metadata?.resourceVersion;
    let candidate: KubeObject;
    if (subresource === 'status') {
      // Only status changes on /status; spec and metadata edits are silently ignored.
      candidate = clone(oldObj);
      if (candidateIn.status === undefined) delete candidate.status;
      else candidate.status = clone(candidateIn.status);
    } else {
      candidate = candidateIn;
      if (def.statusSubresource) {
        if (oldObj.status === undefined) delete candidate.status;
        else candidate.status = clone(oldObj.status);
      }
    }
    this.checkTypeMeta(def, version, candidate);
    const meta = metaOf(candidate);
    const oldMeta = oldObj.metadata ?? {};
    if (requestedRv !== undefined && requestedRv !== '' && requestedRv !== String(old.rv)) {
      throw conflict(def.group, def.resource, name);
    }
    // Fields the server owns.
    meta.name = oldMeta.name;
    if (def.namespaced) meta.namespace = oldMeta.namespace;
    else delete meta.namespace;
    meta.uid = oldMeta.uid;
    meta.creationTimestamp = oldMeta.creationTimestamp;
    if (oldMeta.deletionTimestamp !== undefined) meta.deletionTimestamp = oldMeta.deletionTimestamp;
    else delete meta.deletionTimestamp;
    delete meta.managedFields;
    meta.resourceVersion = String(old.rv);
    if (def.generation) {
      // Compared canonically: key order in a client's body must not count as a change.
      const specChanged = canonical(withoutMetaAndStatus(candidate)) !== canonical(withoutMetaAndStatus(oldObj));
      meta.generation = (oldMeta.generation ?? 1) + (specChanged ? 1 : 0);
    } else delete meta.generation;
    if (def.group === '' && def.resource === 'namespaces') this.defaultNamespace(candidate);
    if (def.group === '' && def.resource === 'secrets') this.defaultSecret(candidate);
    const warnings = this.validate(def, version, candidate, false, opts);
    this.checkSize(candidate);
    if (canonical(candidate) === canonical(oldObj)) {
      // A no-op write does not touch storage: same resourceVersion, no watch event.
      return { stored: old, created: false, warnings };
    }
    if (opts.dryRun) return { stored: { ...old, obj: candidate, json: JSON.stringify(candidate) }, created: false, warnings };
    if (meta.deletionTimestamp !== undefined && (meta.finalizers ?? []).length === 0) {
      return { stored: this.deleteNow(def, { ...old, obj: candidate }), created: false, warnings };
    }
    if (def.group === 'apiextensions.k8s.io') this.establishCrd(candidate);
    const rv = this.store.nextRv();
    meta.resourceVersion = String(rv);
    return { stored: this.store.write(this.rkey(def), 'MODIFIED', candidate, rv), created: false, warnings };
  }

  /** What the service-account controller does for every new namespace. */
  private createDefaultServiceAccount(namespace: string): void {
    const sa = this.registry.byKey('/serviceaccounts');
    if (!sa || this.store.get('/serviceaccounts', namespace, 'default')) return;
    this.create(sa, namespace, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace } }, { keepStatus: true });
  }

  /** Type-specific defaults the real registries apply on create. */
  private defaultOnCreate(def: ResourceDef, obj: KubeObject, opts: WriteOptions, now: Date): void {
    if (def.group !== '') return;
    if (def.resource === 'namespaces') {
      this.defaultNamespace(obj);
      if (!opts.keepStatus || obj.status === undefined) obj.status = { phase: 'Active' };
      obj.spec = isRecord(obj.spec) ? obj.spec : { finalizers: ['kubernetes'] };
    } else if (def.resource === 'pods' && !opts.keepStatus) {
      obj.status = this.opts.autoRunPods ? this.opts.runningPodStatus(obj, now) : { phase: 'Pending', qosClass: 'BestEffort' };
    } else if (def.resource === 'secrets') {
      this.defaultSecret(obj);
    }
  }

  private defaultNamespace(obj: KubeObject): void {
    const meta = metaOf(obj);
    meta.labels = { ...(meta.labels ?? {}), 'kubernetes.io/metadata.name': meta.name ?? '' };
  }

  private defaultSecret(obj: KubeObject): void {
    if (obj.type === undefined || obj.type === '') obj.type = 'Opaque';
    if (isRecord(obj.stringData)) {
      const data: Record<string, unknown> = isRecord(obj.data) ? { ...obj.data } : {};
      for (const [k, v] of Object.entries(obj.stringData)) data[k] = Buffer.from(String(v)).toString('base64');
      obj.data = data;
      delete obj.stringData;
    }
  }

  /** All validation for a write; returns fieldValidation warnings, throws 400/422. */
  private validate(def: ResourceDef, version: string, obj: KubeObject, creating: boolean, opts: WriteOptions): string[] {
    const meta = metaOf(obj);
    const name = meta.name ?? '';
    for (const field of def.microTimeFields) {
      const err = microTimeError(lookup(obj, field));
      if (err) throw badRequest(`${def.kind} in version "${version}" cannot be handled as a ${def.kind}: ${err}`);
    }
    const causes: StatusCause[] = validateObjectMeta(meta, def.nameRule);
    let warnings: string[] = [];
    if (def.custom) {
      const schema = def.schemas.get(version);
      if (schema) {
        const { value, unknownFields } = pruneObject(obj, schema);
        if (unknownFields.length > 0) {
          const mode = opts.fieldValidation ?? 'Warn';
          if (mode === 'Strict') {
            throw badRequest(`${def.kind} in version "${version}" cannot be handled as a ${def.kind}: strict decoding error: ${unknownFields.map((f) => `unknown field "${f.slice(1)}"`).join(', ')}`);
          }
          if (mode === 'Warn') warnings = unknownFields.map((f) => `unknown field "${f.slice(1)}"`);
        }
        const defaulted = applyDefaults(value, schema);
        if (isRecord(defaulted)) {
          for (const key of Object.keys(obj)) if (!(key in defaulted)) delete obj[key];
          Object.assign(obj, defaulted);
          // Keep the caller's metadata object: the write paths hold a reference to it.
          obj.metadata = meta;
        }
        const { metadata: _m, ...rest } = obj;
        const restSchema = { ...schema, properties: { ...(schema.properties ?? {}) } };
        delete restSchema.properties.metadata;
        causes.push(...validateValue(rest, restSchema));
      }
    } else {
      causes.push(...this.validateBuiltin(def, obj, creating));
    }
    if (causes.length > 0) throw invalid(def.group, def.kind, name, causes);
    return warnings;
  }

  private validateBuiltin(def: ResourceDef, obj: KubeObject, creating: boolean): StatusCause[] {
    const causes: StatusCause[] = [];
    const required = (field: string): void => {
      if (fieldValue(obj, field) === undefined && !isRecord(lookup(obj, field))) causes.push({ reason: 'FieldValueRequired', field, message: 'Required value' });
    };
    if (def.group === '' && def.resource === 'pods') {
      const containers = lookup(obj, 'spec.containers');
      if (!Array.isArray(containers) || containers.length === 0) causes.push({ reason: 'FieldValueRequired', field: 'spec.containers', message: 'Required value' });
      else
        containers.forEach((c, i) => {
          if (!isRecord(c) || typeof c.name !== 'string' || c.name === '') causes.push({ reason: 'FieldValueRequired', field: `spec.containers[${i}].name`, message: 'Required value' });
          if (!isRecord(c) || typeof c.image !== 'string' || c.image === '') causes.push({ reason: 'FieldValueRequired', field: `spec.containers[${i}].image`, message: 'Required value' });
        });
    }
    if (def.group === '' && def.resource === 'secrets') {
      const data = isRecord(obj.data) ? obj.data : {};
      for (const [key, value] of Object.entries(data)) {
        if (!/^[-._a-zA-Z0-9]+$/.test(key)) causes.push({ reason: 'FieldValueInvalid', field: 'data', message: `Invalid value: ${JSON.stringify(key)}: a valid config key must consist of alphanumeric characters, '-', '_' or '.'` });
        if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
          throw badRequest(`Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0`);
        }
      }
      const dockerKey = obj.type === 'kubernetes.io/dockerconfigjson' ? '.dockerconfigjson' : obj.type === 'kubernetes.io/dockercfg' ? '.dockercfg' : undefined;
      if (dockerKey !== undefined) {
        const raw = data[dockerKey];
        if (typeof raw !== 'string') causes.push({ reason: 'FieldValueRequired', field: `data[${dockerKey}]`, message: 'Required value' });
        else {
          try {
            JSON.parse(Buffer.from(raw, 'base64').toString('utf8'));
          } catch {
            causes.push({ reason: 'FieldValueInvalid', field: `data[${dockerKey}]`, message: 'Invalid value: "<secret contents redacted>": invalid JSON' });
          }
        }
      }
    }
    if (def.group === '' && def.resource === 'events') causes.push(...validateCoreEvent(obj));
    if (def.group === 'events.k8s.io' && creating) {
      for (const field of ['eventTime', 'reportingController', 'reportingInstance', 'action', 'reason']) required(field);
    }
    if (def.group === 'coordination.k8s.io') {
      const duration = lookup(obj, 'spec.leaseDurationSeconds');
      if (duration !== undefined && (typeof duration !== 'number' || duration <= 0)) {
        causes.push({ reason: 'FieldValueInvalid', field: 'spec.leaseDurationSeconds', message: `Invalid value: ${JSON.stringify(duration)}: must be greater than 0` });
      }
    }
    if (def.group === WEBHOOK_GROUP && def.resource === 'validatingwebhookconfigurations') {
      defaultWebhookConfiguration(obj);
      causes.push(...validateWebhookConfiguration(obj));
    }
    if (def.group === 'apiextensions.k8s.io') {
      try {
        resourceFromCrd(obj);
      } catch (err) {
        causes.push({ reason: 'FieldValueInvalid', field: 'spec', message: `Invalid value: ${(err as Error).message}` });
      }
    }
    return causes;
  }

  /** A CRD becomes servable at once and reports Established, like the real controller says soon after. */
  private establishCrd(obj: KubeObject): void {
    this.registry.registerCrd(obj);
    const spec = isRecord(obj.spec) ? obj.spec : {};
    const now = timestamp(this.opts.now());
    obj.status = {
      acceptedNames: isRecord(spec.names) ? spec.names : {},
      storedVersions: Array.isArray(spec.versions) ? spec.versions.filter(isRecord).filter((v) => v.storage === true).map((v) => v.name) : [],
      conditions: [
        { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: now },
        { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: now },
      ],
    };
  }
}

function lookup(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, p) => (isRecord(o) ? o[p] : undefined), obj);
}

/** core/v1 Event rules of apis/core/validation/events.go (legacyValidateEvent), the parts clients trip on. */
function validateCoreEvent(obj: KubeObject): StatusCause[] {
  const causes: StatusCause[] = [];
  const ns = obj.metadata?.namespace ?? '';
  const involved = isRecord(obj.involvedObject) ? obj.involvedObject : {};
  const involvedNs = typeof involved.namespace === 'string' ? involved.namespace : '';
  const mismatch = (): StatusCause => ({ reason: 'FieldValueInvalid', field: 'involvedObject.namespace', message: `Invalid value: ${JSON.stringify(involvedNs)}: does not match event.namespace` });
  if (obj.eventTime === undefined || obj.eventTime === null) {
    if (involvedNs === '' ? ns !== '' && ns !== 'default' : ns !== involvedNs) causes.push(mismatch());
  } else {
    if (involvedNs === '' && ns !== 'default' && ns !== 'kube-system') causes.push(mismatch());
    for (const field of ['reportingComponent', 'reportingInstance', 'action', 'reason']) {
      const v = obj[field];
      if (typeof v !== 'string' || v === '') causes.push({ reason: 'FieldValueRequired', field, message: 'Required value' });
    }
  }
  if (obj.type !== undefined && obj.type !== '' && obj.type !== 'Normal' && obj.type !== 'Warning') {
    causes.push({ reason: 'FieldValueNotSupported', field: 'type', message: `Unsupported value: ${JSON.stringify(obj.type)}: supported values: "Normal", "Warning"` });
  }
  return causes;
}
