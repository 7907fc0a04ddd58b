// Structural-schema handling for custom resources: prune unknown fields, then validate,
// the order the real API server uses (apiextensions-apiserver: pruning before validation).
import { celErrorMessage, compileCel, toCelValue } from './cel.js';
import type { StatusCause } from './errors.js';
import { isRecord } from './types.js';

/** The subset of an openAPIV3Schema node the fake understands. */
export interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  maxLength?: number;
  minLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  maxItems?: number;
  minItems?: number;
  maxProperties?: number;
  minProperties?: number;
  format?: string;
  nullable?: boolean;
  default?: unknown;
  allOf?: SchemaNode[];
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-validations'?: { rule: string; message?: string }[];
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export interface PruneResult {
  value: unknown;
  /** Paths of the fields that were dropped, e.g. `.spec.foo`, for fieldValidation warnings. */
  unknownFields: string[];
}

function preserves(schema: SchemaNode): boolean {
  return schema['x-kubernetes-preserve-unknown-fields'] === true;
}

/**
 * Drops every field the schema does not declare (unless x-kubernetes-preserve-unknown-fields),
 * and nulls in non-nullable fields. At the root, apiVersion, kind and metadata always stay.
 */
export function pruneObject(value: unknown, schema: SchemaNode): PruneResult {
  const unknownFields: string[] = [];
  const pruned = prune(value, schema, '', unknownFields, true);
  return { value: pruned, unknownFields };
}

function prune(value: unknown, schema: SchemaNode, path: string, unknown: string[], root: boolean): unknown {
  if (Array.isArray(value)) {
    if (!schema.items) return value;
    const items = schema.items;
    return value.map((v, i) => prune(v, items, `${path}[${i}]`, unknown, false));
  }
  if (!isRecord(value)) return value;
  if (schema['x-kubernetes-int-or-string'] === true) return value;
  const out: Record<string, unknown> = {};
  const props = schema.properties;
  const additional = schema.additionalProperties;
  const embedded = schema['x-kubernetes-embedded-resource'] === true;
  for (const [key, child] of Object.entries(value)) {
    const childPath = `${path}.${key}`;
    if ((root || embedded) && (key === 'apiVersion' || key === 'kind' || key === 'metadata')) {
      out[key] = child;
      continue;
    }
    const childSchema = props?.[key] ?? (isRecord(additional) ? (additional as SchemaNode) : undefined);
    if (childSchema) {
      if (child === null && childSchema.nullable !== true) continue;
      out[key] = prune(child, childSchema, childPath, unknown, false);
    } else if (preserves(schema) || additional === true) {
      out[key] = child;
    } else {
      unknown.push(childPath);
    }
  }
  return out;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'object':
      return isRecord(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    default:
      return true;
  }
}

function fmt(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
}

function formatError(value: string, format: string): boolean {
  switch (format) {
    case 'date-time':
    case 'datetime':
      return !RFC3339.test(value) || Number.isNaN(Date.parse(value));
    case 'date':
      return !DATE.test(value) || Number.isNaN(Date.parse(value));
    case 'uuid':
      return !UUID.test(value);
    case 'byte':
      return value.length % 4 !== 0 || !BASE64.test(value);
    default:
      // Other formats (int32, int64, uri, hostname, ...) are not checked by this fake.
      return false;
  }
}

const patterns = new Map<string, RegExp>();

/** CRD patterns are RE2; most compile as Unicode JS regexes, the rest without the u flag. */
function compilePattern(pattern: string): RegExp {
  let re = patterns.get(pattern);
  if (!re) {
    try {
      re = new RegExp(pattern, 'u');
    } catch {
      re = new RegExp(pattern);
    }
    patterns.set(pattern, re);
  }
  return re;
}

/** Validates an already-pruned value; field paths in causes are like `spec.digest` or `status.vulnerabilities[3].id`. */
export function validateValue(value: unknown, schema: SchemaNode, path = ''): StatusCause[] {
  const causes: StatusCause[] = [];
  validate(value, schema, path, causes);
  return causes;
}

function validate(value: unknown, schema: SchemaNode, path: string, causes: StatusCause[]): void {
  const field = path.startsWith('.') ? path.slice(1) : path;
  const bodyPath = field === '' ? 'body' : `${field} in body`;
  if (value === null) {
    if (schema.nullable === true) return;
    if (schema.type !== undefined) {
      causes.push({ reason: 'FieldValueTypeInvalid', field, message: `Invalid value: "null": ${bodyPath} must be of type ${schema.type}: "null"` });
    }
    return;
  }
  if (schema['x-kubernetes-int-or-string'] === true) {
    if (!(typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value)))) {
      causes.push({ reason: 'FieldValueTypeInvalid', field, message: `Invalid value: ${fmt(value)}: ${bodyPath} must be of type integer or string` });
    }
    return;
  }
  if (schema.type !== undefined && !hasType(value, schema.type)) {
    causes.push({
      reason: 'FieldValueTypeInvalid',
      field,
      message: `Invalid value: "${typeName(value)}": ${bodyPath} must be of type ${schema.type}: "${typeName(value)}"`,
    });
    return;
  }
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    causes.push({
      reason: 'FieldValueNotSupported',
      field,
      message: `Unsupported value: ${fmt(value)}: supported values: ${schema.enum.map((e) => fmt(e)).join(', ')}`,
    });
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      causes.push({ reason: 'FieldValueTooLong', field, message: `Too long: may not be longer than ${schema.maxLength}` });
    }
    if (schema.minLength !== undefined && length < schema.minLength) {
      causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${fmt(value)}: ${bodyPath} should be at least ${schema.minLength} chars long` });
    }
    if (schema.pattern !== undefined && !compilePattern(schema.pattern).test(value)) {
      causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${fmt(value)}: ${bodyPath} should match '${schema.pattern}'` });
    }
    if (schema.format !== undefined && formatError(value, schema.format)) {
      causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${fmt(value)}: ${bodyPath} must be of type ${schema.format}: ${fmt(value)}` });
    }
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && (schema.exclusiveMinimum === true ? value <= schema.minimum : value < schema.minimum)) {
      const op = schema.exclusiveMinimum === true ? 'greater than' : 'greater than or equal to';
      causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${value}: ${bodyPath} should be ${op} ${schema.minimum}` });
    }
    if (schema.maximum !== undefined && (schema.exclusiveMaximum === true ? value >= schema.maximum : value > schema.maximum)) {
      const op = schema.exclusiveMaximum === true ? 'less than' : 'less than or equal to';
      causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${value}: ${bodyPath} should be ${op} ${schema.maximum}` });
    }
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      causes.push({ reason: 'FieldValueTooMany', field, message: `Too many: ${value.length}: must have at most ${schema.maxItems} items` });
    }
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${value.length}: ${bodyPath} should have at least ${schema.minItems} items` });
    }
    const items = schema.items;
    if (items) value.forEach((v, i) => validate(v, items, `${path}[${i}]`, causes));
  }
  if (isRecord(value)) {
    const keys = Object.keys(value);
    if (schema.maxProperties !== undefined && keys.length > schema.maxProperties) {
      causes.push({ reason: 'FieldValueTooMany', field, message: `Too many: ${keys.length}: must have at most ${schema.maxProperties} items` });
    }
    if (schema.minProperties !== undefined && keys.length < schema.minProperties) {
      causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${keys.length}: ${bodyPath} should have at least ${schema.minProperties} properties` });
    }
    for (const req of schema.required ?? []) {
      if (value[req] === undefined) {
        causes.push({ reason: 'FieldValueRequired', field: field === '' ? req : `${field}.${req}`, message: 'Required value' });
      }
    }
    for (const [key, child] of Object.entries(value)) {
      const childSchema = schema.properties?.[key] ?? (isRecord(schema.additionalProperties) ? (schema.additionalProperties as SchemaNode) : undefined);
      if (childSchema) validate(child, childSchema, `${path}.${key}`, causes);
    }
  }
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    const failure = celRuleFailure(rule, value);
    if (failure !== undefined) causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: "${typeName(value) === 'integer' ? 'number' : typeName(value)}": ${failure}` });
  }
  for (const sub of schema.allOf ?? []) validate(value, sub, path, causes);
  if (schema.anyOf && !schema.anyOf.some((s) => validateValue(value, s, path).length === 0)) {
    causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${fmt(value)}: ${bodyPath} must validate at least one schema (anyOf)` });
  }
  if (schema.oneOf && schema.oneOf.filter((s) => validateValue(value, s, path).length === 0).length !== 1) {
    causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${fmt(value)}: ${bodyPath} must validate one and only one schema (oneOf)` });
  }
}

/** Applies `default`s of declared properties that are absent, as the server does on read and write. */
export function applyDefaults(value: unknown, schema: SchemaNode): unknown {
  if (Array.isArray(value)) {
    const items = schema.items;
    return items ? value.map((v) => applyDefaults(v, items)) : value;
  }
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = { ...value };
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    if (out[key] === undefined && child.default !== undefined) out[key] = structuredClone(child.default);
    if (out[key] !== undefined) out[key] = applyDefaults(out[key], child);
  }
  return out;
}

/**
 * Evaluates one x-kubernetes-validations rule with `self` bound to the value; returns the message to
 * report when the rule does not hold, else undefined. Transition rules (oldSelf) are not evaluated.
 */
function celRuleFailure(rule: { rule: string; message?: string }, value: unknown): string | undefined {
  if (/\boldSelf\b/.test(rule.rule)) return undefined;
  const program = compileCel(rule.rule);
  if (program instanceof Error) return `compilation failed: ${celErrorMessage(program)}`;
  try {
    if (program({ self: toCelValue(value) }) === true) return undefined;
  } catch (err) {
    return `${rule.message ?? `failed rule: ${rule.rule}`} (evaluation error: ${celErrorMessage(err)})`;
  }
  return rule.message ?? `failed rule: ${rule.rule}`;
}
