// The audit's verdict on one ImageScanReport: which rules of the policies that govern its namespace
// the image breaks, as status.policy. Pure: policies, namespace labels and the report in, status out.
import type { ImageReference } from '../images/image-reference.js';
import { countBySeverity } from '../metrics/vulnerability-counts.js';
import type { ImageScanReport, ImageScanReportStatus, ReportPolicyStatus, ReportPolicyViolation } from '../reports/image-scan-report.js';
import type { CompiledPolicy, ThresholdRule } from './image-scan-policy.js';
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
 * True when the audit judges the report: once its first scan has ended, Scanned or Failed (a failed
 * rescan keeps Scanned and the last result). Before that (no status, Pending, Scanning) there is
 * nothing to judge but the registry, and the verdict would flip as soon as the scan ends.
 */
export function isAuditable(report: ImageScanReport): boolean {
  const phase = report.status?.phase;
  return phase === 'Scanned' || phase === 'Failed';
}

/**
 * The image of a report as the policy matchers see it: the repository the operator resolved
 * (spec.repository, normalised), with the tag and digest the pod spec wrote. Not parsed again with
 * parseImageReference: a recount judges every report, and parsing took ~25 µs each (a quarter of a
 * second for 10,000 reports, on the event loop that also answers admission requests).
 */
function imageUnderReview(report: ImageScanReport): ImageUnderReview | undefined {
  const spec = report.spec;
  if (typeof spec?.image !== 'string' || typeof spec.repository !== 'string') return undefined;
  const slash = spec.repository.indexOf('/');
  if (slash <= 0) return undefined;
  const reference: ImageReference = { registry: spec.repository.slice(0, slash), path: spec.repository.slice(slash + 1), repository: spec.repository };
  const at = spec.image.indexOf('@');
  const name = at >= 0 ? spec.image.slice(0, at) : spec.image;
  if (at >= 0) reference.digest = spec.image.slice(at + 1);
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) reference.tag = name.slice(colon + 1);
  const namespace = report.metadata?.namespace ?? '';
  return { image: spec.image, reference, scan: scanCountsOf(report.status), report: { namespace, name: report.metadata?.name ?? '' } };
}

/**
 * The violations of the report's image under the given policies, in the stable order of
 * evaluatePolicies. A Failed report (its image could never be scanned) breaks `unscanned` unless the
 * policy allows unscanned images: its vulnerabilities are unknown, which is not a Pass.
 */
function auditViolations(policies: readonly CompiledPolicy[], namespaceLabels: Readonly<Record<string, string>>, image: ImageUnderReview): PolicyViolation[] {
  return evaluatePolicies(policies, namespaceLabels, image);
}

const THRESHOLD_WORDS: Record<ThresholdRule, string> = {
  critical: 'CRITICAL',
  high: 'HIGH',
  fixableCritical: 'fixable CRITICAL',
  fixableHigh: 'fixable HIGH',
};

/**
 * The sentence a report holds for a violation. Unlike an admission message it names the policy rather
 * than the threshold or the allowed registries: it must stay the same bytes when a policy edit does not
 * change the verdict, or a looser threshold would rewrite (and re-announce) every report still failing.
 * The numbers that change it are the image's own.
 */
function auditMessage(violation: PolicyViolation, image: ImageUnderReview): string {
  const read = `see kubectl get imagescanreport -n ${image.report?.namespace ?? ''} ${image.report?.name ?? ''} -o yaml`;
  const rule = violation.rule;
  if (rule === 'unscanned') {
    return `${image.image} could not be scanned, so its vulnerabilities are unknown and ImageScanPolicy ${violation.policy} does not allow that: ${read} (status.message says why)`;
  }
  if (rule === 'registry' || image.scan === undefined) {
    return `${image.image} (${image.reference.repository}) is not from a registry that ImageScanPolicy ${violation.policy} allows: push it to one (kubectl get imagescanpolicy ${violation.policy} -o yaml lists them) and deploy it from there`;
  }
  const count = image.scan[rule];
  const words = THRESHOLD_WORDS[rule];
  const fix = rule === 'fixableCritical' || rule === 'fixableHigh' ? 'upgrade the packages in its status.fixes' : 'move to a base image with fewer of them';
  return `${image.image} has ${count} ${words} ${count === 1 ? 'vulnerability' : 'vulnerabilities'}, more than ImageScanPolicy ${violation.policy} allows: ${read}, then ${fix}`;
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
  const image = imageUnderReview(report);
  const violations: ReportPolicyViolation[] =
    image === undefined
      ? []
      : auditViolations(governing, namespaceLabels, image)
          .slice(0, MAX_REPORT_POLICY_VIOLATIONS)
          .map((v) => ({ policy: v.policy, rule: v.rule, message: bounded(auditMessage(v, image)) }));
  return { result: violations.length > 0 ? 'Fail' : 'Pass', violations };
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
