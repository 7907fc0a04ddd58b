// PATCH semantics: JSON merge patch (RFC 7386), JSON patch (RFC 6902), an approximation of
// strategic merge patch (list merge keys of the built-in types) and of server-side apply.
import { ApiError, badRequest } from './errors.js';
import { isRecord } from './types.js';

export const MERGE_PATCH = 'application/merge-patch+json';
export const JSON_PATCH = 'application/json-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';

/** RFC 7386: objects merge recursively, null deletes, anything else (arrays too) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

function unescapePointer(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parsePointer(pointer: unknown): string[] {
  if (typeof pointer !== 'string' || (pointer !== '' && !pointer.startsWith('/'))) {
    throw badRequest(`invalid JSON pointer ${JSON.stringify(pointer)}`);
  }
  return pointer === '' ? [] : pointer.slice(1).split('/').map(unescapePointer);
}

function patchFailure(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}

function getAt(doc: unknown, tokens: string[]): unknown {
  let current = doc;
  for (const t of tokens) {
    if (Array.isArray(current)) current = current[Number(t)];
    else if (isRecord(current)) current = current[t];
    else return undefined;
  }
  return current;
}

function parentOf(doc: unknown, tokens: string[], op: string): { parent: unknown; key: string } {
  const parentTokens = tokens.slice(0, -1);
  const parent = getAt(doc, parentTokens);
  const key = tokens[tokens.length - 1] ?? '';
  if (!Array.isArray(parent) && !isRecord(parent)) {
    throw patchFailure(`${op} operation does not apply: doc is missing path: "/${tokens.join('/')}": missing value`);
  }
  return { parent, key };
}

function arrayIndex(arr: unknown[], key: string, allowEnd: boolean, op: string): number {
  if (key === '-' && allowEnd) return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(key)) throw patchFailure(`${op} operation: invalid array index "${key}"`);
  const idx = Number(key);
  if (idx > arr.length || (!allowEnd && idx === arr.length)) throw patchFailure(`${op} operation: array index ${idx} out of bounds`);
  return idx;
}

function addAt(doc: unknown, tokens: string[], value: unknown, op: string): unknown {
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true, op), 0, value);
  else if (isRecord(parent)) parent[key] = value;
  return doc;
}

function removeAt(doc: unknown, tokens: string[], op: string): unknown {
  const { parent, key } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, false, op), 1);
  else if (isRecord(parent)) {
    if (!(key in parent)) throw patchFailure(`${op} operation does not apply: doc is missing path: "/${tokens.join('/')}": missing value`);
    delete parent[key];
  }
  return doc;
}

/** RFC 6902 operations applied in order; a failing op or test → 422, a malformed body → 400. */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json patch must be an array of operations');
  let doc = structuredClone(target);
  for (const raw of ops) {
    if (!isRecord(raw) || typeof raw.op !== 'string') throw badRequest('json patch operation must be an object with an "op"');
    const op = raw.op;
    const path = parsePointer(raw.path);
    switch (op) {
      case 'add':
        doc = addAt(doc, path, structuredClone(raw.value), op);
        break;
      case 'remove':
        doc = removeAt(doc, path, op);
        break;
      case 'replace':
        if (getAt(doc, path) === undefined) {
          throw patchFailure(`replace operation does not apply: doc is missing key: /${path.join('/')}: missing value`);
        }
        doc = removeAt(doc, path, op);
        doc = addAt(doc, path, structuredClone(raw.value), op);
        break;
      case 'move':
      case 'copy': {
        const from = parsePointer(raw.from);
        const value = getAt(doc, from);
        if (value === undefined) throw patchFailure(`${op} operation does not apply: doc is missing from path: /${from.join('/')}`);
        if (op === 'move') doc = removeAt(doc, from, op);
        doc = addAt(doc, path, structuredClone(value), op);
        break;
      }
      case 'test':
        if (JSON.stringify(getAt(doc, path)) !== JSON.stringify(raw.value)) {
          throw patchFailure(`testing value /${path.join('/')} failed: test failed`);
        }
        break;
      default:
        throw badRequest(`unexpected json patch operation "${op}"`);
    }
  }
  return doc;
}

/** Merge keys of lists in built-in types (patchMergeKey in the Go structs), by field name. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  imagePullSecrets: 'name',
  secrets: 'name',
  env: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  ports: 'containerPort',
  ownerReferences: 'uid',
  conditions: 'type',
  hostAliases: 'ip',
  resourceClaims: 'name',
  topologySpreadConstraints: 'topologyKey',
  containerStatuses: 'name',
  initContainerStatuses: 'name',
  ephemeralContainerStatuses: 'name',
  addresses: 'type',
  taints: 'key',
  webhooks: 'name',
  matchConditions: 'name',
};
/** Primitive lists with patchStrategy "merge" (union instead of replace). */
const MERGE_PRIMITIVE_LISTS = new Set(['finalizers']);

/**
 * Strategic merge patch for built-in types, approximated: maps merge like merge patch, lists with a
 * known merge key merge item by item (`$patch: delete` removes one), `finalizers` unite, other lists
 * replace; `$patch: replace`, `$setElementOrder/…`, `$retainKeys` and `$deleteFromPrimitiveList/…` honoured.
 */
export function strategicMergePatch(target: unknown, patch: unknown, deleteNulls = true): unknown {
  if (!isRecord(patch)) return structuredClone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _ignored, ...rest } = patch;
    return structuredClone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue;
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length);
      const current = out[field];
      if (Array.isArray(current) && Array.isArray(value)) out[field] = current.filter((v) => !value.includes(v));
      continue;
    }
    if (value === null) {
      if (deleteNulls) delete out[key];
      continue;
    }
    const current = out[key];
    const mergeKey = MERGE_KEYS[key];
    if (Array.isArray(value) && mergeKey !== undefined && (Array.isArray(current) || current === undefined)) {
      out[key] = mergeList(current ?? [], value, mergeKey, deleteNulls);
    } else if (Array.isArray(value) && MERGE_PRIMITIVE_LISTS.has(key) && Array.isArray(current)) {
      out[key] = [...current, ...value.filter((v) => !current.includes(v))];
    } else if (isRecord(value)) {
      const merged = strategicMergePatch(current, value, deleteNulls);
      if (merged === undefined) delete out[key];
      else out[key] = merged;
    } else {
      out[key] = structuredClone(value);
    }
  }
  return out;
}

function mergeList(current: unknown[], patch: unknown[], mergeKey: string, deleteNulls: boolean): unknown[] {
  const out = [...current];
  for (const item of patch) {
    if (!isRecord(item) || item[mergeKey] === undefined) {
      out.push(structuredClone(item));
      continue;
    }
    const idx = out.findIndex((c) => isRecord(c) && JSON.stringify(c[mergeKey]) === JSON.stringify(item[mergeKey]));
    if (item.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = strategicMergePatch(out[idx], item, deleteNulls);
    else out.push(strategicMergePatch(undefined, item, deleteNulls));
  }
  return out;
}

/**
 * Server-side apply, approximated: the applied configuration is merged into the live object
 * (maps recursively, keyed lists by merge key, other lists replaced). Field ownership and removal of
 * fields a manager stopped applying are not modelled.
 */
export function applyPatch(live: unknown, applied: unknown): unknown {
  return strategicMergePatch(live, applied, false);
}
