// The audit's verdict on one ImageScanReport: which rules of the policies that govern its namespace
// the image breaks, as status.policy. Pure: policies, namespace labels and the report in, status out.
import { parseImageReference } from '../images/image-reference.js';
import type { ImageReference } from '../images/image-reference.js';
import { countBySeverity } from '../metrics/vulnerability-counts.js';
import type { ImageScanReport, ImageScanReportStatus, ReportPolicyStatus, ReportPolicyViolation } from '../reports/image-scan-report.js';
import type { CompiledPolicy } from './image-scan-policy.js';
import { evaluatePolicies, governsNamespace } from './policy-evaluation.js';
import type { ImageUnderReview, PolicyViolation, ScanCounts } from './policy-evaluation.js';

/** The CRD's bounds on status.policy.violations (entries, and characters of a message). */
export const MAX_REPORT_POLICY_VIOLATIONS = 256;
export const MAX_VIOLATION_MESSAGE = 2048;

/**
 * The counts the thresholds compare, from a report's status (a slim cached one too): the same
 * per-severity split the imagescan_image_vulnerabilities series export, so a policy and an alert
 * never disagree about an image. Undefined when the report has no result (never scanned).
 */
export function scanCountsOf(status: ImageScanReportStatus | undefined): ScanCounts | undefined {
  const counts = countBySeverity(status);
  if (counts === undefined) return undefined;
  const critical = counts.find((c) => c.severity === 'CRITICAL');
  const high = counts.find((c) => c.severity === 'HIGH');
  return {
    critical: (critical?.fixable ?? 0) + (critical?.unfixable ?? 0),
    high: (high?.fixable ?? 0) + (high?.unfixable ?? 0),
    fixableCritical: critical?.fixable ?? 0,
    fixableHigh: high?.fixable ?? 0,
  };
}

/**
 * True when the audit judges the report: once reconcile has written its first status (a phase).
 * Before that the report is being created, and a status patch of ours would race its first write.
 */
export function isAuditable(report: ImageScanReport): boolean {
  return typeof report.status?.phase === 'string';
}

/** The image of a report as the policy matchers see it: the reference the pod spec wrote. */
function imageUnderReview(report: ImageScanReport): ImageUnderReview | undefined {
  const spec = report.spec;
  if (typeof spec?.image !== 'string' || typeof spec.repository !== 'string') return undefined;
  let reference: ImageReference;
  try {
    reference = parseImageReference(spec.image);
  } catch {
    // The report exists, so the operator resolved a repository for it: judge that.
    const slash = spec.repository.indexOf('/');
    if (slash <= 0) return undefined;
    reference = { registry: spec.repository.slice(0, slash), path: spec.repository.slice(slash + 1), repository: spec.repository };
  }
  const namespace = report.metadata?.namespace ?? '';
  const name = report.metadata?.name ?? '';
  return { image: spec.image, reference, scan: scanCountsOf(report.status), report: { namespace, name } };
}

/**
 * The violations of the report's image under the given policies, in the stable order of
 * evaluatePolicies. `unscanned` is an admission rule: what runs unscanned is already Pending or Failed
 * (and alerted on), so the audit judges such a report by its registry alone.
 */
function auditViolations(policies: readonly CompiledPolicy[], namespaceLabels: Readonly<Record<string, string>>, report: ImageScanReport): PolicyViolation[] {
  const image = imageUnderReview(report);
  if (image === undefined) return [];
  return evaluatePolicies(policies, namespaceLabels, image).filter((v) => v.rule !== 'unscanned');
}

/**
 * status.policy as it should be: undefined when no valid policy governs the namespace; otherwise Fail
 * with one entry per (policy, rule) broken, or Pass. Same input, same bytes.
 */
export function desiredReportPolicy(
  policies: readonly CompiledPolicy[],
  namespaceLabels: Readonly<Record<string, string>>,
  report: ImageScanReport,
): ReportPolicyStatus | undefined {
  const governing = policies.filter((p) => governsNamespace(p, namespaceLabels));
  if (governing.length === 0) return undefined;
  const violations: ReportPolicyViolation[] = auditViolations(governing, namespaceLabels, report)
    .slice(0, MAX_REPORT_POLICY_VIOLATIONS)
    .map((v) => ({ policy: v.policy, rule: v.rule, message: bounded(v.message) }));
  return { result: violations.length > 0 ? 'Fail' : 'Pass', violations };
}

/** True when the report breaks at least one rule of `policy` (for the policy's status.violations). */
export function violatesPolicy(policy: CompiledPolicy, namespaceLabels: Readonly<Record<string, string>>, report: ImageScanReport): boolean {
  return auditViolations([policy], namespaceLabels, report).length > 0;
}

/** True when two status.policy values say the same (result, and the violations in order). */
export function samePolicyStatus(a: ReportPolicyStatus | undefined, b: ReportPolicyStatus | undefined): boolean {
  return canonical(a) === canonical(b);
}

/** The names of the policies a status.policy holds violations of. */
export function violatedPolicies(status: ReportPolicyStatus | undefined): Set<string> {
  return new Set((status?.violations ?? []).map((v) => v.policy));
}

function canonical(status: ReportPolicyStatus | undefined): string {
  if (status === undefined || status === null) return 'none';
  const violations = Array.isArray(status.violations) ? status.violations : [];
  return JSON.stringify([status.result, violations.map((v) => [v.policy, v.rule, v.message])]);
}

function bounded(message: string): string {
  return message.length <= MAX_VIOLATION_MESSAGE ? message : `${message.slice(0, MAX_VIOLATION_MESSAGE - 1)}…`;
}
