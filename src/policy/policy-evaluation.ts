// Judging one image against policies: which rules it violates, with a message that tells a developer
// what to do, and how violations of several policies combine into an admission decision.
import type { ImageReference } from '../images/image-reference.js';
import { isUnderRegistryPrefix, matchesImageGlob } from './image-patterns.js';
import { POLICY_RULES, THRESHOLD_RULES } from './image-scan-policy.js';
import type { CompiledPolicy, PolicyRule, ThresholdRule } from './image-scan-policy.js';
import { matchesLabelSelector } from './label-selector.js';

/** The counts a scan result gives the thresholds. */
export type ScanCounts = Record<ThresholdRule, number>;

export interface ImageUnderReview {
  /** The reference as the pod spec writes it (nginx:1.25), for messages. */
  image: string;
  reference: ImageReference;
  /** Undefined when the scan result is not known (never scanned, or the scan failed). */
  scan: ScanCounts | undefined;
  /** The report that holds the result, named in messages so developers can read it. */
  report?: { namespace: string; name: string };
}

/** What a violation does: audit (reported only), warn (admission warns), deny (admission refuses). */
export type Enforcement = 'audit' | 'warn' | 'deny';

export interface PolicyViolation {
  policy: string;
  rule: PolicyRule;
  message: string;
  enforcement: Enforcement;
}

export interface AdmissionDecision {
  allowed: boolean;
  /** Why it is refused (empty when allowed). */
  denials: PolicyViolation[];
  /** What kubectl should print, also when refused. */
  warnings: PolicyViolation[];
}

const THRESHOLD_WORDS: Record<ThresholdRule, string> = {
  critical: 'CRITICAL',
  high: 'HIGH',
  fixableCritical: 'fixable CRITICAL',
  fixableHigh: 'fixable HIGH',
};
const MAX_REGISTRIES_NAMED = 3;

/** True when the policy governs a namespace with these labels (no selector: every namespace). */
export function governsNamespace(policy: CompiledPolicy, namespaceLabels: Readonly<Record<string, string>>): boolean {
  return matchesLabelSelector(policy.namespaceSelector, namespaceLabels);
}

/** Whether the reference matches one of the policy's exemptImages globs (the policy then judges nothing of it). */
export function isExempt(policy: CompiledPolicy, reference: ImageReference): boolean {
  return policy.exemptImages.some((glob) => matchesImageGlob(reference, glob));
}

/**
 * The violations of one image under one policy in a namespace: none when the policy does not govern
 * the namespace or the image is exempt; `registry` when it is under no allowed prefix; a threshold
 * rule for each count ABOVE its threshold; `unscanned` when the result is unknown and the policy does
 * not allow unscanned images. An Audit policy's violations are all `audit`; otherwise the action
 * decides, except for `unscanned`, which follows spec.unscanned.
 */
export function evaluateImage(policy: CompiledPolicy, namespaceLabels: Readonly<Record<string, string>>, image: ImageUnderReview): PolicyViolation[] {
  if (!governsNamespace(policy, namespaceLabels)) return [];
  if (isExempt(policy, image.reference)) return [];
  const actionEnforcement: Enforcement = policy.action === 'Audit' ? 'audit' : policy.action === 'Warn' ? 'warn' : 'deny';
  const violations: PolicyViolation[] = [];
  const add = (rule: PolicyRule, message: string, enforcement = actionEnforcement): void => {
    violations.push({ policy: policy.name, rule, message, enforcement });
  };

  if (policy.allowedRegistries.length > 0 && !policy.allowedRegistries.some((p) => isUnderRegistryPrefix(image.reference, p))) {
    const named = policy.allowedRegistries.slice(0, MAX_REGISTRIES_NAMED).map((p) => p.text);
    const more = policy.allowedRegistries.length > MAX_REGISTRIES_NAMED ? ` and ${policy.allowedRegistries.length - MAX_REGISTRIES_NAMED} more` : '';
    add('registry', `${image.image} (${image.reference.repository}) is not from an allowed registry (${named.join(', ')}${more}): push it there and deploy it from there`);
  }

  if (image.scan === undefined) {
    if (policy.unscanned !== 'Allow') {
      const enforcement: Enforcement = policy.action === 'Audit' ? 'audit' : policy.unscanned === 'Warn' ? 'warn' : 'deny';
      add('unscanned', `${image.image} has no scan result yet: retry once it has been scanned`, enforcement);
    }
    return violations;
  }

  for (const rule of THRESHOLD_RULES) {
    const threshold = policy.thresholds[rule];
    const count = image.scan[rule];
    if (threshold === undefined || count <= threshold) continue;
    const fix = rule === 'fixableCritical' || rule === 'fixableHigh' ? 'upgrade the packages in its status.fixes' : 'move to a base image with fewer of them';
    add(rule, `${image.image} has ${count} ${THRESHOLD_WORDS[rule]} ${count === 1 ? 'vulnerability' : 'vulnerabilities'}, more than the ${threshold} allowed: ${readCommand(image)}, then ${fix}`);
  }
  return violations;
}

function readCommand(image: ImageUnderReview): string {
  return image.report ? `see kubectl get imagescanreport -n ${image.report.namespace} ${image.report.name} -o yaml` : 'see its ImageScanReport';
}

/**
 * The violations of one image under every policy, in a stable order (policy name, then rule order),
 * so the same facts always give the same bytes in a status or a response.
 */
export function evaluatePolicies(policies: readonly CompiledPolicy[], namespaceLabels: Readonly<Record<string, string>>, image: ImageUnderReview): PolicyViolation[] {
  return sortViolations(policies.flatMap((p) => evaluateImage(p, namespaceLabels, image)));
}

/** Sorts by policy name, then rule (in POLICY_RULES order), then message. */
export function sortViolations(violations: readonly PolicyViolation[]): PolicyViolation[] {
  const rank = (rule: PolicyRule): number => POLICY_RULES.indexOf(rule);
  return [...violations].sort((a, b) => compare(a.policy, b.policy) || rank(a.rule) - rank(b.rule) || compare(a.message, b.message));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Combines the violations of every image and policy of one admission: refused if any violation is
 * `deny`; the `warn` violations are returned as warnings either way; `audit` ones play no part.
 */
export function decideAdmission(violations: readonly PolicyViolation[]): AdmissionDecision {
  const sorted = sortViolations(violations);
  const denials = sorted.filter((v) => v.enforcement === 'deny');
  const warnings = sorted.filter((v) => v.enforcement === 'warn');
  return { allowed: denials.length === 0, denials, warnings };
}

/** One line for a warning or a denial: names the policy and the rule, then the message. */
export function describeViolation(violation: PolicyViolation): string {
  return `ImageScanPolicy ${violation.policy} (${violation.rule}): ${violation.message}`;
}
