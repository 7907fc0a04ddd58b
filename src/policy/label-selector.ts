// Kubernetes LabelSelector semantics (metav1.LabelSelectorAsSelector), for a policy's namespaceSelector.
import type { V1LabelSelector } from '@kubernetes/client-node';

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

/**
 * The problems of a selector as the API server words them (key and value syntax, unknown operator,
 * values with Exists/DoesNotExist, none with In/NotIn), or an empty list when it is valid.
 * `field` prefixes each message (e.g. `spec.namespaceSelector`). Never throws, whatever the input.
 */
export function labelSelectorProblems(selector: unknown, field: string): string[] {
  if (selector === undefined || selector === null) return [];
  if (!isRecord(selector)) return [`${field} must be an object`];
  const problems: string[] = [];
  const { matchLabels, matchExpressions } = selector;
  if (matchLabels !== undefined && matchLabels !== null) {
    if (!isRecord(matchLabels)) problems.push(`${field}.matchLabels must be a map of strings`);
    else {
      for (const [key, value] of Object.entries(matchLabels)) {
        problems.push(...keyProblems(key, `${field}.matchLabels`));
        if (typeof value !== 'string' || !isLabelValue(value)) problems.push(`${field}.matchLabels: invalid value ${JSON.stringify(value)} for key ${JSON.stringify(key)}`);
      }
    }
  }
  if (matchExpressions !== undefined && matchExpressions !== null) {
    if (!Array.isArray(matchExpressions)) problems.push(`${field}.matchExpressions must be a list`);
    else {
      matchExpressions.forEach((requirement: unknown, i) => problems.push(...requirementProblems(requirement, `${field}.matchExpressions[${i}]`)));
    }
  }
  return problems;
}

function requirementProblems(requirement: unknown, field: string): string[] {
  if (!isRecord(requirement)) return [`${field} must be an object`];
  const { key, operator, values } = requirement;
  const problems = typeof key === 'string' ? keyProblems(key, `${field}.key`) : [`${field}.key is required`];
  if (typeof operator !== 'string' || !OPERATORS.has(operator)) {
    problems.push(`${field}.operator: ${JSON.stringify(operator ?? null)} is not one of In, NotIn, Exists, DoesNotExist`);
    return problems;
  }
  if (values !== undefined && values !== null && !(Array.isArray(values) && values.every((v) => typeof v === 'string'))) {
    problems.push(`${field}.values must be a list of strings`);
    return problems;
  }
  const list = (values ?? []) as string[];
  if ((operator === 'In' || operator === 'NotIn') && list.length === 0) problems.push(`${field}.values: must be specified when operator is ${operator}`);
  if ((operator === 'Exists' || operator === 'DoesNotExist') && list.length > 0) problems.push(`${field}.values: may not be specified when operator is ${operator}`);
  for (const v of list) if (!isLabelValue(v)) problems.push(`${field}.values: invalid label value ${JSON.stringify(v)}`);
  return problems;
}

function keyProblems(key: string, field: string): string[] {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const valid = name.length <= 63 && QUALIFIED_NAME.test(name) && (prefix === undefined || (prefix.length <= 253 && DNS1123_SUBDOMAIN.test(prefix)));
  return valid ? [] : [`${field}: invalid label key ${JSON.stringify(key)}`];
}

function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

/**
 * Whether labels match a valid selector: every matchLabels pair and every expression must hold (In:
 * the key is present with one of the values; NotIn: absent, or present with none of them; Exists;
 * DoesNotExist). An absent or empty selector matches everything, as the policy contract says (unlike
 * Kubernetes' nil selector, which matches nothing). Call labelSelectorProblems first: an invalid
 * requirement here matches nothing rather than throwing.
 */
export function matchesLabelSelector(selector: V1LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!Object.hasOwn(labels, key) || labels[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(labels, key);
    const value = present ? labels[key] : undefined;
    switch (operator) {
      case 'In':
        if (!present || !values.includes(value ?? '')) return false;
        break;
      case 'NotIn':
        if (present && values.includes(value ?? '')) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
