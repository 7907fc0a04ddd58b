import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseImageReference } from '../images/image-reference.js';
import { compilePolicy } from './image-scan-policy.js';
import type { CompiledPolicy, ThresholdRule } from './image-scan-policy.js';
import { decideAdmission, describeViolation, evaluateImage, evaluatePolicies } from './policy-evaluation.js';
import type { ImageUnderReview, PolicyViolation, ScanCounts } from './policy-evaluation.js';

function policy(name: string, spec: Record<string, unknown>): CompiledPolicy {
  const result = compilePolicy(name, spec);
  if (!result.ok) throw new Error(result.message);
  return result.policy;
}

const CLEAN: ScanCounts = { critical: 0, high: 0, fixableCritical: 0, fixableHigh: 0 };
const payments = { team: 'payments', 'kubernetes.io/metadata.name': 'shop' };

function image(ref: string, scan: ScanCounts = CLEAN, report?: ImageUnderReview['report']): ImageUnderReview {
  return { image: ref, reference: parseImageReference(ref), scan, ...(report ? { report } : {}) };
}

/** An image whose scan result is not known. */
function unscanned(ref: string): ImageUnderReview {
  return { image: ref, reference: parseImageReference(ref), scan: undefined };
}

describe('evaluateImage', () => {
  const corp = policy('corp-registry', { action: 'Deny', allowedRegistries: ['registry.corp.example', 'ghcr.io/acme'], namespaceSelector: { matchLabels: { team: 'payments' } } });

  it('refuses nginx:1.25 in a governed namespace and says where to push it; ignores other namespaces', () => {
    expect(evaluateImage(corp, payments, image('nginx:1.25'))).toEqual([
      {
        policy: 'corp-registry',
        rule: 'registry',
        enforcement: 'deny',
        message: 'nginx:1.25 (docker.io/library/nginx) is not from an allowed registry (registry.corp.example, ghcr.io/acme): push it there and deploy it from there',
      },
    ]);
    expect(evaluateImage(corp, { team: 'search' }, image('nginx:1.25'))).toEqual([]);
    expect(evaluateImage(corp, payments, image('registry.corp.example/shop/web:2'))).toEqual([]);
    expect(evaluateImage(corp, payments, image('ghcr.io/acme/x:1'))).toEqual([]);
    expect(evaluateImage(corp, payments, image('ghcr.io/acme-evil/x:1')).map((v) => v.rule)).toEqual(['registry']);
  });

  it('names at most three allowed registries', () => {
    const many = policy('many', { allowedRegistries: ['a.example', 'b.example', 'c.example', 'd.example', 'e.example'] });
    expect(evaluateImage(many, {}, image('nginx'))[0]?.message).toContain('(a.example, b.example, c.example and 2 more)');
  });

  it('violates a threshold only when the count is above it, and names the numbers and the report', () => {
    const bar = policy('bar', { action: 'Warn', vulnerabilities: { fixableCritical: 0, high: 5 } });
    const report = { namespace: 'shop', name: 'nginx-0123456789ab' };
    expect(evaluateImage(bar, {}, image('nginx:1.25', { ...CLEAN, fixableCritical: 0, high: 5 }, report))).toEqual([]);
    expect(evaluateImage(bar, {}, image('nginx:1.25', { critical: 9, high: 6, fixableCritical: 2, fixableHigh: 1 }, report))).toEqual([
      {
        policy: 'bar',
        rule: 'high',
        enforcement: 'warn',
        message: 'nginx:1.25 has 6 HIGH vulnerabilities, more than the 5 allowed: see kubectl get imagescanreport -n shop nginx-0123456789ab -o yaml, then move to a base image with fewer of them',
      },
      {
        policy: 'bar',
        rule: 'fixableCritical',
        enforcement: 'warn',
        message: 'nginx:1.25 has 2 fixable CRITICAL vulnerabilities, more than the 0 allowed: see kubectl get imagescanreport -n shop nginx-0123456789ab -o yaml, then upgrade the packages in its status.fixes',
      },
    ]);
    expect(evaluateImage(bar, {}, image('nginx:1.25', { ...CLEAN, fixableCritical: 1 }))[0]?.message).toBe(
      'nginx:1.25 has 1 fixable CRITICAL vulnerability, more than the 0 allowed: see its ImageScanReport, then upgrade the packages in its status.fixes',
    );
  });

  it('an unknown result is the unscanned rule, enforced as spec.unscanned says; the registry rule still applies', () => {
    const strict = policy('strict', { action: 'Warn', unscanned: 'Deny', allowedRegistries: ['registry.corp.example'], vulnerabilities: { critical: 0 } });
    expect(evaluateImage(strict, {}, unscanned('nginx')).map((v) => [v.rule, v.enforcement])).toEqual([
      ['registry', 'warn'],
      ['unscanned', 'deny'],
    ]);
    expect(evaluateImage(strict, {}, unscanned('registry.corp.example/app'))[0]?.message).toBe('registry.corp.example/app has no scan result yet: retry once it has been scanned');
    expect(evaluateImage(policy('lenient', { unscanned: 'Allow', vulnerabilities: { critical: 0 } }), {}, unscanned('nginx'))).toEqual([]);
    expect(evaluateImage(policy('default', {}), {}, unscanned('nginx')).map((v) => [v.rule, v.enforcement])).toEqual([['unscanned', 'warn']]);
  });

  it('an Audit policy only reports, whatever spec.unscanned says', () => {
    const audit = policy('audit', { action: 'Audit', unscanned: 'Deny', allowedRegistries: ['registry.corp.example'] });
    expect(evaluateImage(audit, {}, unscanned('nginx')).map((v) => v.enforcement)).toEqual(['audit', 'audit']);
  });

  it('exempt images break no rule', () => {
    const p = policy('p', { action: 'Deny', allowedRegistries: ['registry.corp.example'], vulnerabilities: { critical: 0 }, exemptImages: ['registry.corp.example/legacy/*', 'docker.io/library/busybox'] });
    expect(evaluateImage(p, {}, image('registry.corp.example/legacy/app:1', { ...CLEAN, critical: 40 }))).toEqual([]);
    expect(evaluateImage(p, {}, unscanned('busybox:1.36'))).toEqual([]);
    expect(evaluateImage(p, {}, image('registry.corp.example/legacy/team/app:1', { ...CLEAN, critical: 1 })).map((v) => v.rule)).toEqual(['critical']);
  });
});

describe('several policies and the admission decision', () => {
  const warnBar = policy('b-warn', { action: 'Warn', vulnerabilities: { fixableCritical: 0 } });
  const denyRegistry = policy('a-deny', { action: 'Deny', allowedRegistries: ['registry.corp.example'], namespaceSelector: { matchLabels: { team: 'payments' } } });
  const audit = policy('c-audit', { action: 'Audit', vulnerabilities: { high: 0 } });
  const bad = image('nginx:1.25', { ...CLEAN, fixableCritical: 3, high: 4 });

  it('refuses if any policy refuses, and returns the warnings of all', () => {
    const decision = decideAdmission(evaluatePolicies([warnBar, audit, denyRegistry], payments, bad));
    expect(decision.allowed).toBe(false);
    expect(decision.denials.map(describeViolation)).toEqual([
      'ImageScanPolicy a-deny (registry): nginx:1.25 (docker.io/library/nginx) is not from an allowed registry (registry.corp.example): push it there and deploy it from there',
    ]);
    expect(decision.warnings.map((v) => [v.policy, v.rule])).toEqual([['b-warn', 'fixableCritical']]);
  });

  it('allows with warnings where the denying policy does not govern the namespace; audit plays no part', () => {
    const decision = decideAdmission(evaluatePolicies([warnBar, audit, denyRegistry], { team: 'search' }, bad));
    expect(decision).toMatchObject({ allowed: true, denials: [] });
    expect(decision.warnings.map((v) => v.policy)).toEqual(['b-warn']);
    expect(decideAdmission(evaluatePolicies([audit], {}, bad))).toEqual({ allowed: true, denials: [], warnings: [] });
  });

  it('gives the same order whatever order the policies come in', () => {
    const forward = evaluatePolicies([warnBar, audit, denyRegistry], payments, bad);
    const backward = evaluatePolicies([denyRegistry, audit, warnBar], payments, bad);
    expect(backward).toEqual(forward);
    expect(forward.map((v) => v.policy)).toEqual(['a-deny', 'b-warn', 'c-audit']);
  });
});

// Thresholds, as properties: a rule is violated exactly when its count is above its threshold.
const RULES: ThresholdRule[] = ['critical', 'high', 'fixableCritical', 'fixableHigh'];
const counts = fc.record({ critical: fc.nat(50), high: fc.nat(50), fixableCritical: fc.nat(50), fixableHigh: fc.nat(50) });
const thresholds = fc.record(
  { critical: fc.nat(50), high: fc.nat(50), fixableCritical: fc.nat(50), fixableHigh: fc.nat(50) },
  { requiredKeys: [] },
);
const action = fc.constantFrom('Audit', 'Warn', 'Deny');

function ruleSet(violations: PolicyViolation[]): Set<string> {
  return new Set(violations.map((v) => v.rule));
}

describe('threshold properties', () => {
  it('violates exactly the rules whose count is above their threshold, enforced as the action says', () => {
    fc.assert(
      fc.property(counts, thresholds, action, (c, t, a) => {
        const violations = evaluateImage(policy('p', { action: a, vulnerabilities: t }), {}, image('registry.corp.example/app:1', c));
        const expected = RULES.filter((r) => t[r] !== undefined && c[r] > (t[r] ?? 0));
        expect(violations.map((v) => v.rule)).toEqual(expected);
        for (const v of violations) expect(v.enforcement).toBe(a.toLowerCase());
        for (const v of violations) expect(v.message).toContain(`has ${c[v.rule as ThresholdRule]} `);
      }),
    );
  });

  it('raising a threshold never adds a violation; lowering one never removes one', () => {
    fc.assert(
      fc.property(counts, thresholds, fc.constantFrom(...RULES), fc.nat(10), (c, t, rule, raise) => {
        const before = ruleSet(evaluateImage(policy('p', { vulnerabilities: t }), {}, image('registry.corp.example/app:1', c)));
        const looser = { ...t, [rule]: (t[rule] ?? 0) + raise };
        const after = ruleSet(evaluateImage(policy('p', { vulnerabilities: looser }), {}, image('registry.corp.example/app:1', c)));
        for (const r of after) expect(before.has(r) || (t[rule] === undefined && r === rule)).toBe(true);
      }),
    );
  });

  it('a threshold equal to the count is met', () => {
    fc.assert(
      fc.property(counts, (c) => {
        expect(evaluateImage(policy('p', { action: 'Deny', vulnerabilities: c }), {}, image('registry.corp.example/app:1', c))).toEqual([]);
      }),
    );
  });
});
