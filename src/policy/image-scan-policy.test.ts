import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicy } from './image-scan-policy.js';

describe('compilePolicy', () => {
  it('applies the CRD defaults to an empty or absent spec: Warn, unscanned Warn, every namespace, any registry', () => {
    for (const spec of [undefined, null, {}]) {
      const result = compilePolicy('p', spec);
      expect(result).toEqual({
        ok: true,
        policy: { name: 'p', namespaceSelector: undefined, action: 'Warn', allowedRegistries: [], thresholds: {}, unscanned: 'Warn', exemptImages: [] },
      });
    }
  });

  it('keeps a full spec', () => {
    const result = compilePolicy('payments', {
      namespaceSelector: { matchLabels: { team: 'payments' } },
      action: 'Deny',
      allowedRegistries: ['registry.corp.example', 'ghcr.io/acme'],
      vulnerabilities: { critical: 0, fixableHigh: 5 },
      unscanned: 'Allow',
      exemptImages: ['registry.corp.example/legacy/*'],
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.policy.action).toBe('Deny');
    expect(result.policy.unscanned).toBe('Allow');
    expect(result.policy.namespaceSelector).toEqual({ matchLabels: { team: 'payments' } });
    expect(result.policy.allowedRegistries.map((r) => r.segments)).toEqual([['registry.corp.example'], ['ghcr.io', 'acme']]);
    expect(result.policy.thresholds).toEqual({ critical: 0, fixableHigh: 5 });
    expect(result.policy.exemptImages.map((g) => g.text)).toEqual(['registry.corp.example/legacy/*']);
  });

  it('lists every problem in one message, for condition Ready=False', () => {
    const result = compilePolicy('broken', {
      action: 'Block',
      unscanned: 'Maybe',
      namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In' }] },
      allowedRegistries: ['https://registry.corp.example'],
      vulnerabilities: { critical: -1, high: 1.5, fixableCritical: '0' },
      exemptImages: ['nginx:*'],
    });
    expect(result).toEqual({
      ok: false,
      message: [
        'spec.action: "Block" is not one of Audit, Warn, Deny',
        'spec.unscanned: "Maybe" is not one of Allow, Warn, Deny',
        'spec.namespaceSelector.matchExpressions[0].values: must be specified when operator is In',
        'spec.allowedRegistries: registry "https://registry.corp.example" must not have a scheme: write the host, e.g. registry.corp.example',
        'spec.exemptImages: exemption pattern "nginx:*" names no repository: patterns match normalised references such as docker.io/library/nginx:1.25',
        'spec.vulnerabilities.critical must be a whole number of at least 0, not -1',
        'spec.vulnerabilities.high must be a whole number of at least 0, not 1.5',
        'spec.vulnerabilities.fixableCritical must be a whole number of at least 0, not "0"',
      ].join('; '),
    });
  });

  it('refuses wrong shapes instead of throwing', () => {
    expect(compilePolicy('p', 'spec')).toMatchObject({ ok: false, message: 'spec must be an object' });
    expect(compilePolicy('p', { allowedRegistries: 'ghcr.io' })).toMatchObject({ ok: false, message: 'spec.allowedRegistries must be a list of strings' });
    expect(compilePolicy('p', { vulnerabilities: [1] })).toMatchObject({ ok: false, message: 'spec.vulnerabilities must be an object' });
    expect(compilePolicy('p', { namespaceSelector: 'team=a' })).toMatchObject({ ok: false, message: 'spec.namespaceSelector must be an object' });
  });

  it('never throws, whatever the spec holds', () => {
    const specish = fc.record(
      {
        action: fc.oneof(fc.constantFrom('Audit', 'Warn', 'Deny'), fc.anything()),
        namespaceSelector: fc.anything(),
        allowedRegistries: fc.oneof(fc.array(fc.string()), fc.anything()),
        vulnerabilities: fc.oneof(fc.dictionary(fc.constantFrom('critical', 'high', 'fixableCritical', 'fixableHigh'), fc.anything()), fc.anything()),
        unscanned: fc.anything(),
        exemptImages: fc.oneof(fc.array(fc.string({ unit: 'binary' })), fc.anything()),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(specish, fc.anything()), (spec) => {
        const result = compilePolicy('p', spec);
        expect(result.ok ? typeof result.policy.name : typeof result.message).toBe('string');
      }),
    );
  });
});
