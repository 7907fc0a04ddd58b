// The webhook's decision for one AdmissionReview, from what the operator holds in memory: the usable
// policies, namespace labels and known scan results. No API request and no scan on this path; images
// without a result are handed back so the caller can have them scanned by reference.
import { parseImageReference } from '../images/image-reference.js';
import type { ImageReference } from '../images/image-reference.js';
import type { CompiledPolicy } from '../policy/image-scan-policy.js';
import { decideAdmission, describeViolation, evaluatePolicies, governsNamespace, isExempt } from '../policy/policy-evaluation.js';
import type { ImageUnderReview, PolicyViolation, ScanCounts } from '../policy/policy-evaluation.js';
import { admissionResponse } from './admission-review.js';
import type { AdmissionRequest, AdmissionReviewResponse } from './admission-review.js';
import { imagesToJudge } from './admitted-images.js';
import type { PullIdentity } from './admitted-images.js';

/** A scan result the operator knows for an image, and the report that shows it. */
export interface KnownScan {
  scan: ScanCounts;
  report?: { namespace: string; name: string };
}

/** The in-memory facts a decision reads; every method must answer from memory, at once. */
export interface AdmissionKnowledge {
  /** The policies whose spec is valid (Ready=True). */
  policies(): readonly CompiledPolicy[];
  /** Labels of a namespace, undefined when the operator has not seen it. */
  namespaceLabels(namespace: string): Readonly<Record<string, string>> | undefined;
  /** The result for an image as it would run in a namespace (by its digest, or the digest its reference runs with). */
  scanResult(reference: ImageReference, namespace: string): KnownScan | undefined;
}

export type Decision = 'allow' | 'warn' | 'deny';

export interface ReviewDecision {
  response: AdmissionReviewResponse;
  decision: Decision;
  /** References governed by a policy but without a known result: scan them soon (empty for dry runs). */
  unscanned: ImageReference[];
  /** Whose pull secrets those scans may use (the pod spec's). */
  pullIdentity?: PullIdentity;
  /** Why the request was not judged, when it was not (for a debug log line). */
  notJudged?: string;
}

/**
 * Judges the images a request asks to run against every policy that governs its namespace: refused
 * if any Deny violation (the message lists them), warnings for the Warn ones. Requests that are not
 * judged (controller-owned pods, updates that add no image, other kinds) and images whose reference
 * cannot be parsed are allowed. Never throws on any request content.
 */
export function decideReview(request: AdmissionRequest, knowledge: AdmissionKnowledge): ReviewDecision {
  const allow = (notJudged?: string): ReviewDecision => ({ response: admissionResponse(request.uid, { allowed: true }), decision: 'allow', unscanned: [], ...(notJudged ? { notJudged } : {}) });
  const toJudge = imagesToJudge(request);
  if (!toJudge.judge) return allow(toJudge.reason);
  const labels = knowledge.namespaceLabels(toJudge.namespace) ?? {};
  const governing = knowledge.policies().filter((p) => governsNamespace(p, labels));
  if (governing.length === 0) return allow('no policy governs the namespace');

  const violations: PolicyViolation[] = [];
  const unscanned: ImageReference[] = [];
  for (const image of toJudge.images) {
    let reference: ImageReference;
    try {
      reference = parseImageReference(image);
    } catch {
      // The kubelet will fail to pull it; refusing here would only hide that clearer error.
      continue;
    }
    const known = knowledge.scanResult(reference, toJudge.namespace);
    const review: ImageUnderReview = { image, reference, scan: known?.scan, ...(known?.report ? { report: known.report } : {}) };
    if (!known && governing.some((p) => wouldUseAScan(p, reference))) unscanned.push(reference);
    violations.push(...evaluatePolicies(governing, labels, review));
  }
  const verdict = decideAdmission(violations);
  const warnings = verdict.warnings.map(describeViolation);
  const response = verdict.allowed
    ? admissionResponse(request.uid, { allowed: true, warnings })
    : admissionResponse(request.uid, { allowed: false, message: verdict.denials.map(describeViolation).join('; '), warnings });
  const decision: Decision = !verdict.allowed ? 'deny' : warnings.length > 0 ? 'warn' : 'allow';
  return { response, decision, unscanned: request.dryRun ? [] : unscanned, pullIdentity: toJudge.pullIdentity };
}

/**
 * Whether a result for the image would change what the policy answers at admission: not for an Audit
 * policy (it judges what runs), an exempt image, or a policy with no threshold that allows unscanned
 * images. Only then is a scan by reference worth a Trivy run.
 */
function wouldUseAScan(policy: CompiledPolicy, reference: ImageReference): boolean {
  if (policy.action === 'Audit') return false;
  if (isExempt(policy, reference)) return false;
  return Object.keys(policy.thresholds).length > 0 || policy.unscanned !== 'Allow';
}
