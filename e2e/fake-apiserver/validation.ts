// Object-meta validation shared by every resource: names, labels, annotations, as apimachinery words it.
import type { StatusCause } from './errors.js';
import type { ObjectMeta } from './types.js';
import { isRecord } from './types.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

export type NameRule = 'subdomain' | 'label';

const MAX_ANNOTATIONS_BYTES = 256 * 1024;

function invalidValue(field: string, value: unknown, detail: string): StatusCause {
  return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: ${detail}` };
}

/** Problems with a resource name under the given rule (253 chars for subdomains, 63 for labels). */
export function validateName(name: string, rule: NameRule, field = 'metadata.name'): StatusCause[] {
  const causes: StatusCause[] = [];
  const max = rule === 'label' ? 63 : 253;
  if (name.length > max) causes.push(invalidValue(field, name, `must be no more than ${max} characters`));
  const pattern = rule === 'label' ? DNS1123_LABEL : DNS1123_SUBDOMAIN;
  if (!pattern.test(name)) causes.push(invalidValue(field, name, rule === 'label' ? LABEL_MSG : SUBDOMAIN_MSG));
  return causes;
}

/** A label or annotation key: optional DNS-subdomain prefix and a qualified name of at most 63 chars. */
export function validateQualifiedKey(key: string, field: string): StatusCause[] {
  const causes: StatusCause[] = [];
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    if (prefix.length === 0) causes.push(invalidValue(field, key, 'prefix part must be non-empty'));
    else if (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) causes.push(invalidValue(field, key, `prefix part ${SUBDOMAIN_MSG}`));
  }
  if (name.length === 0) causes.push(invalidValue(field, key, 'name part must be non-empty'));
  else {
    if (name.length > 63) causes.push(invalidValue(field, key, 'name part must be no more than 63 characters'));
    if (!QUALIFIED_NAME.test(name)) causes.push(invalidValue(field, key, QUALIFIED_NAME_MSG));
  }
  return causes;
}

export function validateLabelValue(value: string, field: string): StatusCause[] {
  const causes: StatusCause[] = [];
  if (value.length > 63) causes.push(invalidValue(field, value, 'must be no more than 63 characters'));
  if (!LABEL_VALUE.test(value)) causes.push(invalidValue(field, value, LABEL_VALUE_MSG));
  return causes;
}

/** Validates name (unless it is still to be generated), labels and annotations of an object's metadata. */
export function validateObjectMeta(meta: ObjectMeta, rule: NameRule): StatusCause[] {
  const causes: StatusCause[] = [];
  if (typeof meta.name !== 'string' || meta.name === '') {
    causes.push({ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' });
  } else {
    causes.push(...validateName(meta.name, rule));
  }
  const labels: unknown = meta.labels;
  if (labels !== undefined && labels !== null) {
    if (!isRecord(labels)) causes.push(invalidValue('metadata.labels', labels, 'must be a map of strings'));
    else {
      for (const [key, value] of Object.entries(labels)) {
        causes.push(...validateQualifiedKey(key, 'metadata.labels'));
        if (typeof value !== 'string') causes.push(invalidValue('metadata.labels', value, 'must be a string'));
        else causes.push(...validateLabelValue(value, 'metadata.labels'));
      }
    }
  }
  const annotations: unknown = meta.annotations;
  if (annotations !== undefined && annotations !== null) {
    if (!isRecord(annotations)) causes.push(invalidValue('metadata.annotations', annotations, 'must be a map of strings'));
    else {
      let total = 0;
      for (const [key, value] of Object.entries(annotations)) {
        causes.push(...validateQualifiedKey(key.toLowerCase(), 'metadata.annotations'));
        total += key.length + (typeof value === 'string' ? value.length : 0);
      }
      if (total > MAX_ANNOTATIONS_BYTES) {
        causes.push({ reason: 'FieldValueTooLong', field: 'metadata.annotations', message: `Too long: must have at most ${MAX_ANNOTATIONS_BYTES} bytes` });
      }
    }
  }
  return causes;
}

const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

/**
 * The real server decodes MicroTime with the fixed layout 2006-01-02T15:04:05.000000Z07:00,
 * so anything but exactly six fractional digits fails to decode (a 400, not a 422).
 * Returns the Go-style decode error, or undefined when the value is fine.
 */
export function microTimeError(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !MICRO_TIME.test(value) || Number.isNaN(Date.parse(value))) {
    return `parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse as RFC3339Micro`;
  }
  return undefined;
}
