// Validating admission webhooks, called the way the real API server's ValidatingAdmissionWebhook
// plugin calls them (apiserver/pkg/admission/plugin/webhook): which webhooks a request reaches
// (rules, namespaceSelector, objectSelector, matchConditions), the AdmissionReview v1 sent over HTTPS
// verified against caBundle, timeoutSeconds, failurePolicy, dry-run and sideEffects, and the
// answer: a denial as the webhook's Status, warnings passed on.
import { randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { ApiError, badRequest, internalError, qualifiedResource } from './errors.js';
import type { StatusCause } from './errors.js';
import { celErrorMessage, compileCel, toCelValue } from './cel.js';
import { labelSelectorMatches } from './selectors.js';
import type { KubeObject } from './types.js';
import { isRecord } from './types.js';

export const WEBHOOK_GROUP = 'admissionregistration.k8s.io';
export type AdmissionOperation = 'CREATE' | 'UPDATE' | 'DELETE';

/** What a write is, as admission sees it (admission.Attributes). */
export interface AdmissionAttributes {
  operation: AdmissionOperation;
  group: string;
  version: string;
  resource: string;
  subresource: string | undefined;
  kind: string;
  /** Namespace of a namespaced object; the namespace's own name for a Namespace object; else undefined. */
  namespace: string | undefined;
  name: string;
  object: KubeObject | undefined;
  oldObject: KubeObject | undefined;
  userInfo: { username: string; groups: string[] };
  dryRun: boolean;
  /** CreateOptions, UpdateOptions or DeleteOptions as the request gave them. */
  options: Record<string, unknown>;
}

export interface AdmissionWebhooksOptions {
  /** The stored ValidatingWebhookConfigurations. */
  configurations: () => KubeObject[];
  /** Labels of a namespace, undefined when it does not exist. */
  namespaceLabels: (name: string) => Record<string, string> | undefined;
  /** Where a `clientConfig.service` is served (the fake has no Services or Endpoints). */
  serviceAddress: (namespace: string, name: string) => { host: string; port: number } | undefined;
}

interface Webhook {
  configuration: string;
  name: string;
  spec: Record<string, unknown>;
}

type CallOutcome = { kind: 'allowed'; warnings: string[] } | { kind: 'denied'; warnings: string[]; error: ApiError } | { kind: 'callFailed'; message: string } | { kind: 'skipped' };

const DEFAULT_TIMEOUT_SECONDS = 10;

export class AdmissionWebhooks {
  constructor(private readonly opts: AdmissionWebhooksOptions) {}

  /** True when no webhook is configured, so callers can skip preparing a request. */
  isEmpty(): boolean {
    return this.opts.configurations().every((c) => !Array.isArray(c.webhooks) || c.webhooks.length === 0);
  }

  /**
   * Calls every webhook the request reaches, in parallel; returns the warnings they gave, or throws the
   * ApiError the real server would answer with: the first denial (in configuration-name order) as
   * the webhook's Status, a call failure of a `failurePolicy: Fail` webhook as a 500, a dry run to a
   * webhook with side effects as a 400. The thrown error carries the warnings in its headers.
   */
  async admit(attrs: AdmissionAttributes): Promise<string[]> {
    // The real server never sends webhook configurations to webhooks, so a broken webhook cannot lock
    // itself in.
    if (attrs.group === WEBHOOK_GROUP) return [];
    const webhooks = this.webhooks();
    const outcomes = await Promise.all(webhooks.map((w) => this.call(w, attrs)));
    const warnings = outcomes.flatMap((o) => (o.kind === 'allowed' || o.kind === 'denied' ? o.warnings : []));
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.kind === 'denied') throw withWarnings(outcome.error, warnings);
      if (outcome.kind === 'callFailed') {
        const failurePolicy = webhooks[i]?.spec.failurePolicy ?? 'Fail';
        if (failurePolicy === 'Fail') throw withWarnings(internalError(outcome.message), warnings);
      }
    }
    return warnings;
  }

  private webhooks(): Webhook[] {
    const configs = [...this.opts.configurations()].sort((a, b) => String(a.metadata?.name).localeCompare(String(b.metadata?.name)));
    return configs.flatMap((c) =>
      (Array.isArray(c.webhooks) ? c.webhooks.filter(isRecord) : []).map((spec) => ({ configuration: c.metadata?.name ?? '', name: String(spec.name), spec })),
    );
  }

  private async call(webhook: Webhook, attrs: AdmissionAttributes): Promise<CallOutcome> {
    if (!this.reaches(webhook, attrs)) return { kind: 'skipped' };
    const uid = randomUUID();
    const request = admissionRequest(uid, attrs);
    const conditions = matchConditionsResult(webhook, request);
    if (conditions === false) return { kind: 'skipped' };
    if (typeof conditions === 'string') return { kind: 'callFailed', message: `failed calling webhook "${webhook.name}": ${conditions}` };
    if (attrs.dryRun && !(webhook.spec.sideEffects === 'None' || webhook.spec.sideEffects === 'NoneOnDryRun')) {
      return { kind: 'denied', warnings: [], error: badRequest(`admission webhook "${webhook.name}" does not support dry run`) };
    }
    const timeoutSeconds = typeof webhook.spec.timeoutSeconds === 'number' ? webhook.spec.timeoutSeconds : DEFAULT_TIMEOUT_SECONDS;
    const target = this.target(webhook, timeoutSeconds);
    if (typeof target === 'string') return { kind: 'callFailed', message: `failed calling webhook "${webhook.name}": failed to call webhook: ${target}` };
    let body: unknown;
    try {
      body = await postJson(target, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request }, timeoutSeconds * 1000);
    } catch (err) {
      return { kind: 'callFailed', message: `failed calling webhook "${webhook.name}": failed to call webhook: Post "${target.url}": ${(err as Error).message}` };
    }
    const response = verifyResponse(uid, body);
    if (typeof response === 'string') return { kind: 'callFailed', message: `failed calling webhook "${webhook.name}": ${response}` };
    const warnings = Array.isArray(response.warnings) ? response.warnings.filter((w): w is string => typeof w === 'string') : [];
    if (response.allowed === true) return { kind: 'allowed', warnings };
    return { kind: 'denied', warnings, error: denial(webhook.name, attrs, isRecord(response.status) ? response.status : {}) };
  }

  /** rules, namespaceSelector and objectSelector (generic.Webhook ShouldCallHook). */
  private reaches(webhook: Webhook, attrs: AdmissionAttributes): boolean {
    const rules = Array.isArray(webhook.spec.rules) ? webhook.spec.rules.filter(isRecord) : [];
    if (!rules.some((r) => ruleMatches(r, attrs))) return false;
    if (!this.namespaceMatches(webhook.spec.namespaceSelector, attrs)) return false;
    const objectSelector = webhook.spec.objectSelector;
    if (isRecord(objectSelector) && Object.keys(objectSelector).length > 0) {
      const matches = (o: KubeObject | undefined): boolean => o !== undefined && labelSelectorMatches(objectSelector, o.metadata?.labels ?? {});
      if (!matches(attrs.object) && !matches(attrs.oldObject)) return false;
    }
    return true;
  }

  private namespaceMatches(selector: unknown, attrs: AdmissionAttributes): boolean {
    const isNamespace = attrs.group === '' && attrs.resource === 'namespaces';
    // Cluster-scoped objects other than namespaces are never exempted by a namespaceSelector.
    if (attrs.namespace === undefined && !isNamespace) return true;
    if (!isRecord(selector) || Object.keys(selector).length === 0) return true;
    let labels: Record<string, string> | undefined;
    if (isNamespace && attrs.subresource === undefined && (attrs.operation === 'CREATE' || attrs.operation === 'UPDATE')) labels = attrs.object?.metadata?.labels ?? {};
    else labels = this.opts.namespaceLabels(attrs.namespace ?? attrs.name);
    return labelSelectorMatches(selector, labels ?? {});
  }

  private target(webhook: Webhook, timeoutSeconds: number): { url: string; host: string; port: number; path: string; servername: string; ca: string | undefined } | string {
    const cc = isRecord(webhook.spec.clientConfig) ? webhook.spec.clientConfig : {};
    const ca = typeof cc.caBundle === 'string' && cc.caBundle !== '' ? Buffer.from(cc.caBundle, 'base64').toString('utf8') : undefined;
    // The real server tells the webhook its deadline in the query.
    const withTimeout = (path: string): string => `${path}${path.includes('?') ? '&' : '?'}timeout=${timeoutSeconds}s`;
    if (typeof cc.url === 'string') {
      const url = new URL(cc.url);
      const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
      const port = url.port === '' ? 443 : Number(url.port);
      const path = withTimeout(`${url.pathname}${url.search}`);
      return { url: `https://${url.host}${path}`, host, port, path, servername: host, ca };
    }
    if (isRecord(cc.service)) {
      const { namespace, name } = cc.service;
      const port = typeof cc.service.port === 'number' ? cc.service.port : 443;
      const path = withTimeout(typeof cc.service.path === 'string' ? cc.service.path : '/');
      const servername = `${String(name)}.${String(namespace)}.svc`;
      const url = `https://${servername}:${port}${path}`;
      const address = this.opts.serviceAddress(String(namespace), String(name));
      if (!address) return `Post "${url}": service "${String(namespace)}/${String(name)}" has no endpoints in this fake (see serviceAddresses)`;
      return { url, host: address.host, port: address.port, path, servername, ca };
    }
    return 'clientConfig has neither url nor service';
  }
}

function withWarnings(error: ApiError, warnings: string[]): ApiError {
  error.warnings.push(...warnings);
  return error;
}

/** The webhook's Status as the real server answers a denial (webhook/errors ToStatusErr). */
function denial(webhookName: string, attrs: AdmissionAttributes, status: Record<string, unknown>): ApiError {
  const code = typeof status.code === 'number' && status.code !== 0 ? status.code : 403;
  const deniedBy = `admission webhook "${webhookName}" denied the request`;
  const message = typeof status.message === 'string' && status.message !== '' ? `${deniedBy}: ${status.message}` : typeof status.reason === 'string' && status.reason !== '' ? `${deniedBy}: ${status.reason}` : `${deniedBy} without explanation`;
  const name = attrs.name === '' ? 'Unknown' : attrs.name;
  const prefix = code === 500 ? 'Internal error occurred' : `${qualifiedResource(attrs.group, attrs.resource)} "${name}" is forbidden`;
  const reason = typeof status.reason === 'string' && status.reason !== '' ? status.reason : code === 500 ? 'InternalError' : 'Forbidden';
  const details = isRecord(status.details)
    ? status.details
    : code === 500
      ? { causes: [{ message }] }
      : { name, ...(attrs.group === '' ? {} : { group: attrs.group }), kind: attrs.resource };
  return new ApiError(code, reason as ApiError['reason'], `${prefix}: ${message}`, details);
}

function ruleMatches(rule: Record<string, unknown>, attrs: AdmissionAttributes): boolean {
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const has = (values: string[], v: string): boolean => values.includes('*') || values.includes(v);
  if (!has(list(rule.operations), attrs.operation)) return false;
  if (!has(list(rule.apiGroups), attrs.group)) return false;
  if (!has(list(rule.apiVersions), attrs.version)) return false;
  const resourceOk = list(rule.resources).some((r) => {
    const [res = '', sub = ''] = r.split(/\/(.*)/s);
    return (res === '*' || res === attrs.resource) && (sub === '*' || sub === (attrs.subresource ?? ''));
  });
  if (!resourceOk) return false;
  const isNamespace = attrs.group === '' && attrs.resource === 'namespaces';
  switch (rule.scope ?? '*') {
    case 'Namespaced':
      return !isNamespace && attrs.namespace !== undefined;
    case 'Cluster':
      return isNamespace || attrs.namespace === undefined;
    default:
      return true;
  }
}

function admissionRequest(uid: string, attrs: AdmissionAttributes): Record<string, unknown> {
  const kind = { group: attrs.group, version: attrs.version, kind: attrs.kind };
  const resource = { group: attrs.group, version: attrs.version, resource: attrs.resource };
  return {
    uid,
    kind,
    resource,
    ...(attrs.subresource !== undefined ? { subResource: attrs.subresource, requestSubResource: attrs.subresource } : {}),
    requestKind: kind,
    requestResource: resource,
    name: attrs.name,
    ...(attrs.namespace !== undefined ? { namespace: attrs.namespace } : {}),
    operation: attrs.operation,
    userInfo: attrs.userInfo,
    object: attrs.object ?? null,
    oldObject: attrs.oldObject ?? null,
    dryRun: attrs.dryRun,
    options: attrs.options,
  };
}

/**
 * matchConditions: false when one is false (the webhook is skipped), true when all hold, or the
 * error text when none is false but one failed to evaluate (then failurePolicy decides).
 */
function matchConditionsResult(webhook: Webhook, request: Record<string, unknown>): boolean | string {
  const conditions = Array.isArray(webhook.spec.matchConditions) ? webhook.spec.matchConditions.filter(isRecord) : [];
  if (conditions.length === 0) return true;
  const vars = { object: toCelValue(request.object), oldObject: toCelValue(request.oldObject), request: toCelValue(request) };
  let error: string | undefined;
  for (const c of conditions) {
    const program = compileCel(String(c.expression));
    let result: unknown;
    try {
      if (program instanceof Error) throw program;
      result = program(vars);
    } catch (err) {
      error ??= `matchCondition "${String(c.name)}" failed to evaluate: ${celErrorMessage(err)}`;
      continue;
    }
    if (result === false) return false;
    if (result !== true) error ??= `matchCondition "${String(c.name)}" did not evaluate to a bool`;
  }
  return error ?? true;
}

/** webhook/request VerifyAdmissionResponse: the response object, or why it is not a valid answer. */
function verifyResponse(uid: string, body: unknown): Record<string, unknown> | string {
  if (!isRecord(body) || body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    const got = isRecord(body) ? `${String(body.apiVersion)}, Kind=${String(body.kind)}` : typeof body;
    return `expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got ${got}`;
  }
  const response = body.response;
  if (!isRecord(response)) return 'webhook response was absent';
  if (response.uid !== uid) return `expected response.uid="${uid}", got "${String(response.uid ?? '')}"`;
  if (response.patch !== undefined || response.patchType !== undefined) return 'validating webhooks may not return patches';
  return response;
}

/** POSTs JSON over HTTPS, trusting only `ca` when given; rejects with a Go-like reason on any failure. */
function postJson(target: { host: string; port: number; path: string; servername: string; ca: string | undefined }, body: unknown, timeoutMs: number): Promise<unknown> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: target.host,
        port: target.port,
        path: target.path,
        method: 'POST',
        servername: target.servername,
        ...(target.ca !== undefined ? { ca: target.ca } : {}),
        agent: false,
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Content-Length': payload.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) > 299) {
            reject(new Error(`the server responded with the status code ${res.statusCode ?? 0} but did not return more information`));
            return;
          }
          try {
            resolve(JSON.parse(text) as unknown);
          } catch {
            reject(new Error('the server responded with a body that is not JSON'));
          }
        });
        res.on('error', (err) => reject(err));
      },
    );
    const timer = setTimeout(() => req.destroy(new Error('context deadline exceeded')), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED') reject(new Error(`dial tcp ${target.host}:${target.port}: connect: connection refused`));
      else if (err.code?.startsWith('ERR_TLS') || err.code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || err.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || err.code === 'SELF_SIGNED_CERT_IN_CHAIN') {
        reject(new Error(`tls: failed to verify certificate: x509: ${err.message}`));
      } else reject(err);
    });
    req.end(payload);
  });
}

// ---------------------------------------------------------------- the configuration object

const WEBHOOK_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?){2,}$/;
const OPERATIONS = new Set(['*', 'CREATE', 'UPDATE', 'DELETE', 'CONNECT']);

/** The defaults the real server fills into a ValidatingWebhookConfiguration (admissionregistration/v1 defaults). */
export function defaultWebhookConfiguration(obj: KubeObject): void {
  if (!Array.isArray(obj.webhooks)) return;
  for (const w of obj.webhooks.filter(isRecord)) {
    w.failurePolicy ??= 'Fail';
    w.matchPolicy ??= 'Equivalent';
    w.namespaceSelector ??= {};
    w.objectSelector ??= {};
    w.timeoutSeconds ??= DEFAULT_TIMEOUT_SECONDS;
    if (Array.isArray(w.rules)) for (const r of w.rules.filter(isRecord)) r.scope ??= '*';
  }
}

/** The validation the real server applies to a ValidatingWebhookConfiguration, the parts a manifest trips on. */
export function validateWebhookConfiguration(obj: KubeObject): StatusCause[] {
  const causes: StatusCause[] = [];
  const invalid = (field: string, value: unknown, why: string): void => {
    causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: ${why}` });
  };
  const required = (field: string): void => {
    causes.push({ reason: 'FieldValueRequired', field, message: 'Required value' });
  };
  const names = new Set<string>();
  (Array.isArray(obj.webhooks) ? obj.webhooks : []).forEach((w: unknown, i) => {
    const f = `webhooks[${i}]`;
    if (!isRecord(w)) return invalid(f, w, 'must be an object');
    if (typeof w.name !== 'string' || w.name === '') required(`${f}.name`);
    else if (!WEBHOOK_NAME.test(w.name)) invalid(`${f}.name`, w.name, 'should be a domain with at least three segments separated by dots');
    else if (names.has(w.name)) causes.push({ reason: 'FieldValueDuplicate', field: `${f}.name`, message: `Duplicate value: ${JSON.stringify(w.name)}` });
    else names.add(w.name);
    const cc = isRecord(w.clientConfig) ? w.clientConfig : {};
    if ((cc.url === undefined) === (cc.service === undefined)) causes.push({ reason: 'FieldValueRequired', field: `${f}.clientConfig`, message: 'Required value: exactly one of url or service is required' });
    if (typeof cc.url === 'string') {
      let url: URL | undefined;
      try {
        url = new URL(cc.url);
      } catch {
        invalid(`${f}.clientConfig.url`, cc.url, 'host must be specified');
      }
      if (url && url.protocol !== 'https:') invalid(`${f}.clientConfig.url`, cc.url, `'https' is the only allowed URL scheme`);
      if (url && (url.username !== '' || url.hash !== '')) invalid(`${f}.clientConfig.url`, cc.url, 'user information and fragments are not permitted');
    }
    if (isRecord(cc.service) && (typeof cc.service.name !== 'string' || typeof cc.service.namespace !== 'string')) required(`${f}.clientConfig.service.name`);
    if (typeof cc.caBundle === 'string' && !/^[A-Za-z0-9+/]*={0,2}$/.test(cc.caBundle)) invalid(`${f}.clientConfig.caBundle`, '<redacted>', 'illegal base64 data');
    if (w.sideEffects === undefined) required(`${f}.sideEffects`);
    else if (w.sideEffects !== 'None' && w.sideEffects !== 'NoneOnDryRun') {
      causes.push({ reason: 'FieldValueNotSupported', field: `${f}.sideEffects`, message: `Unsupported value: ${JSON.stringify(w.sideEffects)}: supported values: "None", "NoneOnDryRun"` });
    }
    const versions = Array.isArray(w.admissionReviewVersions) ? w.admissionReviewVersions : [];
    if (versions.length === 0) required(`${f}.admissionReviewVersions`);
    else if (!versions.some((v) => v === 'v1' || v === 'v1beta1')) invalid(`${f}.admissionReviewVersions`, versions, 'must include at least one of v1, v1beta1');
    if (w.failurePolicy !== undefined && w.failurePolicy !== 'Ignore' && w.failurePolicy !== 'Fail') {
      causes.push({ reason: 'FieldValueNotSupported', field: `${f}.failurePolicy`, message: `Unsupported value: ${JSON.stringify(w.failurePolicy)}: supported values: "Fail", "Ignore"` });
    }
    if (w.timeoutSeconds !== undefined && (typeof w.timeoutSeconds !== 'number' || w.timeoutSeconds < 1 || w.timeoutSeconds > 30)) {
      invalid(`${f}.timeoutSeconds`, w.timeoutSeconds, 'the timeout value must be between 1 and 30 seconds');
    }
    (Array.isArray(w.rules) ? w.rules : []).forEach((r: unknown, j) => {
      if (!isRecord(r)) return invalid(`${f}.rules[${j}]`, r, 'must be an object');
      for (const op of Array.isArray(r.operations) ? r.operations : []) {
        if (typeof op !== 'string' || !OPERATIONS.has(op)) causes.push({ reason: 'FieldValueNotSupported', field: `${f}.rules[${j}].operations`, message: `Unsupported value: ${JSON.stringify(op)}` });
      }
      for (const key of ['operations', 'apiGroups', 'apiVersions', 'resources']) if (!Array.isArray(r[key]) || r[key].length === 0) required(`${f}.rules[${j}].${key}`);
      if (r.scope !== undefined && r.scope !== '*' && r.scope !== 'Cluster' && r.scope !== 'Namespaced') {
        causes.push({ reason: 'FieldValueNotSupported', field: `${f}.rules[${j}].scope`, message: `Unsupported value: ${JSON.stringify(r.scope)}: supported values: "*", "Cluster", "Namespaced"` });
      }
    });
    const conditions = Array.isArray(w.matchConditions) ? w.matchConditions : [];
    if (conditions.length > 64) causes.push({ reason: 'FieldValueTooMany', field: `${f}.matchConditions`, message: `Too many: ${conditions.length}: must have at most 64 items` });
    conditions.forEach((c: unknown, j) => {
      if (!isRecord(c) || typeof c.name !== 'string' || typeof c.expression !== 'string') return required(`${f}.matchConditions[${j}]`);
      const program = compileCel(c.expression);
      if (program instanceof Error) invalid(`${f}.matchConditions[${j}].expression`, c.expression, `compilation failed: ${celErrorMessage(program)}`);
    });
  });
  return causes;
}
