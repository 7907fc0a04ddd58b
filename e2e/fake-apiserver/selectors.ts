// Label and field selectors, parsed once per request and matched per object.
import { badRequest } from './errors.js';
import type { KubeObject } from './types.js';
import { isRecord } from './types.js';

type Requirement =
  | { op: 'eq' | 'neq'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'exists' | 'notexists'; key: string };

export type Matcher = (obj: KubeObject) => boolean;

const MATCH_ALL: Matcher = () => true;

/** Splits on commas that are not inside parentheses. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else current += ch;
  }
  terms.push(current);
  return terms.map((t) => t.trim()).filter((t) => t !== '');
}

function parseRequirement(term: string, kind: 'label' | 'field'): Requirement {
  const setMatch = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
  if (setMatch) {
    if (kind === 'field') throw badRequest(`invalid field selector: set-based requirements are not supported: ${term}`);
    const values = (setMatch[3] ?? '').split(',').map((v) => v.trim()).filter((v) => v !== '');
    return { op: setMatch[2] === 'in' ? 'in' : 'notin', key: setMatch[1] ?? '', values };
  }
  const eqMatch = /^([^\s!=]+)\s*(!=|==|=)\s*([^\s!=]*)$/.exec(term);
  if (eqMatch) return { op: eqMatch[2] === '!=' ? 'neq' : 'eq', key: eqMatch[1] ?? '', value: eqMatch[3] ?? '' };
  if (kind === 'label') {
    const notExists = /^!\s*([^\s!=()]+)$/.exec(term);
    if (notExists) return { op: 'notexists', key: notExists[1] ?? '' };
    if (/^[^\s!=()]+$/.test(term)) return { op: 'exists', key: term };
  }
  throw badRequest(`unable to parse requirement: ${kind} selector "${term}"`);
}

function compile(requirements: Requirement[], lookup: (obj: KubeObject, key: string) => string | undefined): Matcher {
  if (requirements.length === 0) return MATCH_ALL;
  return (obj) =>
    requirements.every((r) => {
      const actual = lookup(obj, r.key);
      switch (r.op) {
        case 'eq':
          return actual === r.value;
        case 'neq':
          return actual !== r.value;
        case 'in':
          return actual !== undefined && r.values.includes(actual);
        case 'notin':
          return actual === undefined || !r.values.includes(actual);
        case 'exists':
          return actual !== undefined;
        case 'notexists':
          return actual === undefined;
      }
      return false;
    });
}

/** `a=b,c!=d,e in (x,y),f notin (z),g,!h` → matcher over metadata.labels; 400 when unparseable. */
export function parseLabelSelector(selector: string | null | undefined): Matcher {
  if (!selector) return MATCH_ALL;
  const reqs = splitTerms(selector).map((t) => parseRequirement(t, 'label'));
  return compile(reqs, (obj, key) => obj.metadata?.labels?.[key]);
}

/** Field value at a dotted path (`spec.nodeName`), stringified as the server's field sets do. */
export function fieldValue(obj: KubeObject, path: string): string | undefined {
  let current: unknown = obj;
  for (const part of path.split('.')) {
    if (!isRecord(current)) return undefined;
    current = current[part];
  }
  if (current === undefined || current === null) return undefined;
  if (typeof current === 'object') return undefined;
  return String(current);
}

/**
 * `metadata.name=x,spec.nodeName!=y` → matcher. Any dotted path is accepted (the real server allows a
 * per-resource set; metadata.name, metadata.namespace, spec.nodeName, status.phase, involvedObject.* are
 * the ones clients use). A missing field compares as the empty string, as in the real field sets.
 */
export function parseFieldSelector(selector: string | null | undefined): Matcher {
  if (!selector) return MATCH_ALL;
  const reqs = splitTerms(selector).map((t) => parseRequirement(t, 'field'));
  return compile(reqs, (obj, key) => fieldValue(obj, key) ?? '');
}

/**
 * A metav1.LabelSelector object (matchLabels AND matchExpressions with In, NotIn, Exists,
 * DoesNotExist) against a label set; empty or absent matches everything. Assumes a validated
 * selector: an unknown operator matches nothing.
 */
export function labelSelectorMatches(selector: unknown, labels: Record<string, string>): boolean {
  if (!isRecord(selector)) return true;
  const has = (key: string): boolean => Object.hasOwn(labels, key);
  for (const [key, value] of Object.entries(isRecord(selector.matchLabels) ? selector.matchLabels : {})) {
    if (!has(key) || labels[key] !== value) return false;
  }
  for (const expr of Array.isArray(selector.matchExpressions) ? selector.matchExpressions : []) {
    if (!isRecord(expr) || typeof expr.key !== 'string') return false;
    const values = Array.isArray(expr.values) ? expr.values : [];
    const present = has(expr.key);
    const listed = present && values.includes(labels[expr.key]);
    const ok = expr.operator === 'In' ? listed : expr.operator === 'NotIn' ? !listed : expr.operator === 'Exists' ? present : expr.operator === 'DoesNotExist' ? !present : false;
    if (!ok) return false;
  }
  return true;
}
