// The status of an ImageScanPolicy: the generation judged, how many reports violate it, and condition
// Ready (False with the problems when the spec cannot be used). Pure.
import type { ImageScanPolicyStatus, PolicyCondition } from '../kube/policy-entry.js';
import type { PolicyParseResult } from './image-scan-policy.js';

export const READY_CONDITION = 'Ready';
export const READY_REASON = 'Valid';
export const INVALID_REASON = 'InvalidSpec';
const MAX_CONDITION_MESSAGE = 32_768;

export interface PolicyStatusInput {
  generation: number;
  result: PolicyParseResult;
  /** Reports in violation (0 for an invalid policy: it enforces nothing). */
  violations: number;
  /** The status the cluster holds, for the condition's lastTransitionTime. */
  previous: ImageScanPolicyStatus | undefined;
  now: Date;
}

/**
 * The status a policy should have. The Ready condition keeps its lastTransitionTime while its status
 * stays the same, so an unchanged policy gets an equal status (and no write).
 */
export function desiredPolicyStatus(input: PolicyStatusInput): ImageScanPolicyStatus {
  const { generation, result } = input;
  const status: PolicyCondition['status'] = result.ok ? 'True' : 'False';
  const previousReady = input.previous?.conditions?.find((c) => c.type === READY_CONDITION);
  const lastTransitionTime = previousReady?.status === status && previousReady.lastTransitionTime !== undefined ? previousReady.lastTransitionTime : rfc3339(input.now);
  const ready: PolicyCondition = {
    type: READY_CONDITION,
    status,
    observedGeneration: generation,
    lastTransitionTime,
    reason: result.ok ? READY_REASON : INVALID_REASON,
    message: result.ok
      ? `In force: the audit and admission apply it (action ${result.policy.action}).`
      : `Not enforced until the spec is fixed: ${result.message}`.slice(0, MAX_CONDITION_MESSAGE),
  };
  return { observedGeneration: generation, violations: result.ok ? input.violations : 0, conditions: [ready] };
}

/** True when the cluster's status says what `desired` says (times of the condition aside when its status is unchanged). */
export function policyStatusEquals(current: ImageScanPolicyStatus | undefined, desired: ImageScanPolicyStatus): boolean {
  return canonical(current) === canonical(desired);
}

function canonical(status: ImageScanPolicyStatus | undefined): string {
  const conditions = Array.isArray(status?.conditions) ? status.conditions : [];
  return JSON.stringify([
    status?.observedGeneration ?? null,
    status?.violations ?? null,
    conditions.map((c) => [c.type, c.status, c.observedGeneration ?? null, normalisedTime(c.lastTransitionTime), c.reason, c.message]),
  ]);
}

/** The API server hands date-times back as strings, and client code may hold Dates. */
function normalisedTime(time: unknown): string | null {
  if (time instanceof Date) return rfc3339(time);
  return typeof time === 'string' ? time : null;
}

function rfc3339(date: Date): string {
  return new Date(Math.floor(date.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
