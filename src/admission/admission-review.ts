// AdmissionReview v1 in and out: what the webhook reads from a request, and the response it writes.
// Parsing never throws: a body that is not an AdmissionReview becomes a problem the server answers
// with 400 (there is no uid to echo), everything else gets a response.

/** The fields of an AdmissionRequest the webhook uses. */
export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  operation: string;
  namespace: string | undefined;
  name: string | undefined;
  object: unknown;
  oldObject: unknown;
  dryRun: boolean;
}

export type ParsedReview = { ok: true; request: AdmissionRequest } | { ok: false; problem: string };

/** An AdmissionReview v1 response; `status.message` and `warnings` are what kubectl shows. */
export interface AdmissionReviewResponse {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    status?: { code: number; reason: string; message: string };
    warnings?: string[];
  };
}

/** Reads an AdmissionReview v1 (already JSON-decoded); names the first thing wrong with it. */
export function parseAdmissionReview(body: unknown): ParsedReview {
  if (!isRecord(body)) return { ok: false, problem: 'body is not a JSON object' };
  if (body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    return { ok: false, problem: `expected an admission.k8s.io/v1 AdmissionReview, got ${String(body.apiVersion)} ${String(body.kind)}` };
  }
  const request = body.request;
  if (!isRecord(request)) return { ok: false, problem: 'AdmissionReview has no request' };
  if (typeof request.uid !== 'string' || request.uid === '') return { ok: false, problem: 'request.uid is missing' };
  const kind = isRecord(request.kind) ? request.kind : {};
  return {
    ok: true,
    request: {
      uid: request.uid,
      kind: { group: String(kind.group ?? ''), version: String(kind.version ?? ''), kind: String(kind.kind ?? '') },
      operation: String(request.operation ?? ''),
      namespace: typeof request.namespace === 'string' && request.namespace !== '' ? request.namespace : undefined,
      name: typeof request.name === 'string' && request.name !== '' ? request.name : undefined,
      object: request.object ?? undefined,
      oldObject: request.oldObject ?? undefined,
      dryRun: request.dryRun === true,
    },
  };
}

/**
 * The response for a request: the uid echoed, and when refused a 403 with the message (the API server
 * prefixes it with the webhook's name). Warnings are passed on as kubectl prints them.
 */
export function admissionResponse(uid: string, verdict: { allowed: boolean; message?: string; warnings?: readonly string[] }): AdmissionReviewResponse {
  const response: AdmissionReviewResponse['response'] = { uid, allowed: verdict.allowed };
  if (!verdict.allowed) response.status = { code: 403, reason: 'Forbidden', message: verdict.message ?? 'refused by ImageScanPolicy' };
  if (verdict.warnings && verdict.warnings.length > 0) response.warnings = [...verdict.warnings];
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
