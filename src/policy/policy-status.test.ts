import { describe, expect, it } from 'vitest';
import { compilePolicy } from './image-scan-policy.js';
import { desiredPolicyStatus, policyStatusEquals } from './policy-status.js';

const valid = compilePolicy('corp', { action: 'Deny', allowedRegistries: ['registry.corp.example'] });
const invalid = compilePolicy('broken', { exemptImages: ['nginx'], namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In' }] } });
const t0 = new Date('2026-12-07T17:00:00.400Z');
const t1 = new Date('2026-12-07T18:00:00Z');

describe('the status of an ImageScanPolicy', () => {
  it('says Ready=True with the generation and the reports in violation', () => {
    expect(desiredPolicyStatus({ generation: 3, result: valid, violations: 7, previous: undefined, now: t0 })).toEqual({
      observedGeneration: 3,
      violations: 7,
      conditions: [{ type: 'Ready', status: 'True', observedGeneration: 3, lastTransitionTime: '2026-12-07T17:00:00Z', reason: 'Valid', message: 'In force: the audit and admission apply it (action Deny).' }],
    });
  });

  it('says Ready=False with every problem of an invalid spec, and counts no violations', () => {
    const status = desiredPolicyStatus({ generation: 2, result: invalid, violations: 5, previous: undefined, now: t0 });
    expect(status.violations).toBe(0);
    expect(status.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'False', reason: 'InvalidSpec', observedGeneration: 2 });
    expect(status.conditions?.[0]?.message).toMatch(/^Not enforced until the spec is fixed: .*spec\.namespaceSelector\.matchExpressions\[0\]\.values.*spec\.exemptImages/);
  });

  it('keeps the transition time while the condition holds, so an unchanged policy needs no write', () => {
    const first = desiredPolicyStatus({ generation: 1, result: valid, violations: 2, previous: undefined, now: t0 });
    const again = desiredPolicyStatus({ generation: 1, result: valid, violations: 2, previous: first, now: t1 });
    expect(policyStatusEquals(first, again)).toBe(true);
    expect(policyStatusEquals(first, desiredPolicyStatus({ generation: 1, result: valid, violations: 3, previous: first, now: t1 }))).toBe(false);
    expect(policyStatusEquals(first, desiredPolicyStatus({ generation: 2, result: valid, violations: 2, previous: first, now: t1 }))).toBe(false);
    const broken = desiredPolicyStatus({ generation: 2, result: invalid, violations: 0, previous: first, now: t1 });
    expect(broken.conditions?.[0]?.lastTransitionTime).toBe('2026-12-07T18:00:00Z');
    expect(policyStatusEquals(undefined, first)).toBe(false);
  });
});
