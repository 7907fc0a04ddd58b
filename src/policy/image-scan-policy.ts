// ImageScanPolicy: the custom resource's names and spec, and its parsing into a policy that can be
// evaluated. A spec the schema let through but that cannot be used (an older CRD, a server without
// CEL) becomes a problem message for condition Ready=False, never an exception.
import type { V1LabelSelector } from '@kubernetes/client-node';
import { compileImageGlob, parseRegistryPrefix } from './image-patterns.js';
import type { ImageGlob, RegistryPrefix } from './image-patterns.js';
import { labelSelectorProblems } from './label-selector.js';

export const POLICY_GROUP = 'imagescan.dev';
export const POLICY_VERSION = 'v1alpha1';
export const POLICY_KIND = 'ImageScanPolicy';
export const POLICY_PLURAL = 'imagescanpolicies';

export const POLICY_ACTIONS = ['Audit', 'Warn', 'Deny'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];
export const UNSCANNED_ACTIONS = ['Allow', 'Warn', 'Deny'] as const;
export type UnscannedAction = (typeof UNSCANNED_ACTIONS)[number];

/** The vulnerability thresholds, in the order rules are reported. */
export const THRESHOLD_RULES = ['critical', 'high', 'fixableCritical', 'fixableHigh'] as const;
export type ThresholdRule = (typeof THRESHOLD_RULES)[number];
/** Rule names used everywhere: status, metrics, events, messages. */
export const POLICY_RULES = ['registry', ...THRESHOLD_RULES, 'unscanned'] as const;
export type PolicyRule = (typeof POLICY_RULES)[number];

/** spec of an ImageScanPolicy as the CRD declares it. */
export interface ImageScanPolicySpec {
  namespaceSelector?: V1LabelSelector;
  action?: PolicyAction;
  allowedRegistries?: string[];
  vulnerabilities?: Partial<Record<ThresholdRule, number>>;
  unscanned?: UnscannedAction;
  exemptImages?: string[];
}

/** A usable policy: defaults applied, selector checked, prefixes and globs compiled. */
export interface CompiledPolicy {
  name: string;
  /** Absent: every namespace. */
  namespaceSelector: V1LabelSelector | undefined;
  action: PolicyAction;
  /** Empty: any registry. */
  allowedRegistries: RegistryPrefix[];
  thresholds: Partial<Record<ThresholdRule, number>>;
  unscanned: UnscannedAction;
  exemptImages: ImageGlob[];
}

export type PolicyParseResult = { ok: true; policy: CompiledPolicy } | { ok: false; message: string };

/**
 * Turns a policy's name and spec (as read from the cluster, so `unknown`) into a CompiledPolicy,
 * applying the CRD's defaults (action Warn, unscanned Warn). On any problem returns one message that
 * lists every problem, for condition Ready=False. Never throws.
 */
export function compilePolicy(name: string, spec: unknown): PolicyParseResult {
  const problems: string[] = [];
  const s: Record<string, unknown> = isRecord(spec) ? spec : {};
  if (spec !== undefined && spec !== null && !isRecord(spec)) problems.push('spec must be an object');

  const action = enumOr(s.action, POLICY_ACTIONS, 'Warn', 'spec.action', problems);
  const unscanned = enumOr(s.unscanned, UNSCANNED_ACTIONS, 'Warn', 'spec.unscanned', problems);

  const selectorProblems = labelSelectorProblems(s.namespaceSelector, 'spec.namespaceSelector');
  problems.push(...selectorProblems);
  const namespaceSelector = selectorProblems.length === 0 && isRecord(s.namespaceSelector) ? (s.namespaceSelector as V1LabelSelector) : undefined;

  const allowedRegistries: RegistryPrefix[] = [];
  for (const entry of stringList(s.allowedRegistries, 'spec.allowedRegistries', problems)) {
    const parsed = parseRegistryPrefix(entry);
    if (parsed.ok) allowedRegistries.push(parsed.value);
    else problems.push(`spec.allowedRegistries: ${parsed.problem}`);
  }

  const exemptImages: ImageGlob[] = [];
  for (const entry of stringList(s.exemptImages, 'spec.exemptImages', problems)) {
    const parsed = compileImageGlob(entry);
    if (parsed.ok) exemptImages.push(parsed.value);
    else problems.push(`spec.exemptImages: ${parsed.problem}`);
  }

  const thresholds: Partial<Record<ThresholdRule, number>> = {};
  if (s.vulnerabilities !== undefined && s.vulnerabilities !== null) {
    if (!isRecord(s.vulnerabilities)) problems.push('spec.vulnerabilities must be an object');
    else {
      for (const rule of THRESHOLD_RULES) {
        const value = s.vulnerabilities[rule];
        if (value === undefined || value === null) continue;
        if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) thresholds[rule] = value;
        else problems.push(`spec.vulnerabilities.${rule} must be a whole number of at least 0, not ${JSON.stringify(value)}`);
      }
    }
  }

  if (problems.length > 0) return { ok: false, message: problems.join('; ') };
  return { ok: true, policy: { name, namespaceSelector, action, allowedRegistries, thresholds, unscanned, exemptImages } };
}

function enumOr<T extends string>(value: unknown, allowed: readonly T[], fallback: T, field: string, problems: string[]): T {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  problems.push(`${field}: ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
  return fallback;
}

function stringList(value: unknown, field: string, problems: string[]): string[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  problems.push(`${field} must be a list of strings`);
  return [];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
