import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ImageScanReport, ImageScanReportStatus } from '../reports/image-scan-report.js';
import { buildReportObject, statusEquals } from '../reports/report-builder.js';
import { compilePolicy } from './image-scan-policy.js';
import type { CompiledPolicy } from './image-scan-policy.js';
import { desiredReportPolicy, isAuditable, samePolicyStatus, scanCountsOf } from './report-policy-status.js';

const DIGEST = `sha256:${'d'.repeat(64)}`;

function policy(name: string, spec: unknown): CompiledPolicy {
  const parsed = compilePolicy(name, spec);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.policy;
}

interface Counts {
  critical: number;
  fixableCritical: number;
  high: number;
  fixableHigh: number;
}

/** A Scanned report whose fix entries carry the fixable counts, as the reconciler writes it. */
function report(image: string, repository: string, counts: Counts | undefined, namespace = 'shop'): ImageScanReport {
  const base = buildReportObject({ namespace, image, repository, digest: DIGEST, team: 'payments', workloads: [] });
  const status: ImageScanReportStatus =
    counts === undefined
      ? { phase: 'Failed', message: 'Scan failed (not_found): manifest unknown', team: 'payments', workloads: [{ kind: 'Deployment', name: 'web' }] }
      : {
          phase: 'Scanned',
          team: 'payments',
          workloads: [{ kind: 'Deployment', name: 'web' }],
          summary: { critical: counts.critical, high: counts.high, medium: 0, low: 0, unknown: 0, total: counts.critical + counts.high, fixable: counts.fixableCritical + counts.fixableHigh },
          fixes: [
            {
              target: 'debian 12',
              package: 'openssl',
              installedVersion: '3.0.1',
              fixedVersions: ['3.0.2'],
              critical: counts.fixableCritical,
              high: counts.fixableHigh,
              medium: 0,
              low: 0,
              unknown: 0,
              ids: Array.from({ length: counts.fixableCritical + counts.fixableHigh }, (_, i) => `CVE-2026-${1000 + i}`),
            },
          ],
          fixesOmitted: 0,
        };
  return { ...base, status };
}

const nginx = (counts?: Counts) => report('nginx:1.25', 'docker.io/library/nginx', counts);
const NONE: Counts = { critical: 0, fixableCritical: 0, high: 0, fixableHigh: 0 };

describe('status.policy of a report', () => {
  it('is absent where no valid policy governs the namespace', () => {
    const payments = policy('payments', { namespaceSelector: { matchLabels: { team: 'payments' } }, vulnerabilities: { critical: 0 } });
    expect(desiredReportPolicy([], { team: 'payments' }, nginx(NONE))).toBeUndefined();
    expect(desiredReportPolicy([payments], { team: 'search' }, nginx({ ...NONE, critical: 4 }))).toBeUndefined();
    expect(desiredReportPolicy([payments], { team: 'payments' }, nginx({ ...NONE, critical: 4 }))?.result).toBe('Fail');
  });

  it('fails with one entry per (policy, rule) broken, with the numbers and the command to read the report', () => {
    const corp = policy('corp-registry', { allowedRegistries: ['registry.corp.example', 'ghcr.io/acme'] });
    const bar = policy('quality-bar', { action: 'Deny', vulnerabilities: { critical: 0, fixableCritical: 0, high: 10 } });
    const status = desiredReportPolicy([bar, corp], {}, nginx({ critical: 2, fixableCritical: 1, high: 3, fixableHigh: 3 }));
    expect(status?.result).toBe('Fail');
    expect(status?.violations.map((v) => [v.policy, v.rule])).toEqual([
      ['corp-registry', 'registry'],
      ['quality-bar', 'critical'],
      ['quality-bar', 'fixableCritical'],
    ]);
    expect(status?.violations[1]?.message).toBe(
      'nginx:1.25 has 2 CRITICAL vulnerabilities, more than ImageScanPolicy quality-bar allows: see kubectl get imagescanreport -n shop nginx-dddddddddddd -o yaml, then move to a base image with fewer of them',
    );
    expect(status?.violations[2]?.message).toMatch(/^nginx:1\.25 has 1 fixable CRITICAL vulnerability, more than .*then upgrade the packages in its status\.fixes$/);
    expect(status?.violations[0]?.message).toBe(
      'nginx:1.25 (docker.io/library/nginx) is not from a registry that ImageScanPolicy corp-registry allows: push it to one (kubectl get imagescanpolicy corp-registry -o yaml lists them) and deploy it from there',
    );
  });

  it('says the same when an edit of the policy changes no verdict', () => {
    const counts = { critical: 3, fixableCritical: 3, high: 0, fixableHigh: 0 };
    const strict = desiredReportPolicy([policy('bar', { vulnerabilities: { critical: 0 }, allowedRegistries: ['registry.corp.example'] })], {}, nginx(counts));
    const looser = desiredReportPolicy([policy('bar', { vulnerabilities: { critical: 2 }, allowedRegistries: ['registry.corp.example', 'ghcr.io/acme'] })], {}, nginx(counts));
    expect(looser?.result).toBe('Fail');
    expect(samePolicyStatus(strict, looser)).toBe(true);
    expect(samePolicyStatus(strict, desiredReportPolicy([policy('bar', { vulnerabilities: { critical: 0 }, allowedRegistries: ['registry.corp.example'] })], {}, nginx({ ...counts, critical: 4 })))).toBe(false);
  });

  it('passes an image under an allowed prefix, but not one under a look-alike', () => {
    const acme = policy('acme', { allowedRegistries: ['ghcr.io/acme'] });
    expect(desiredReportPolicy([acme], {}, report('ghcr.io/acme/api:v2', 'ghcr.io/acme/api', NONE))).toEqual({ result: 'Pass', violations: [] });
    expect(desiredReportPolicy([acme], {}, report('ghcr.io/acme-evil/api:v2', 'ghcr.io/acme-evil/api', NONE))?.result).toBe('Fail');
  });

  it('fails an image that could not be scanned on unscanned, unless the policy allows unscanned images', () => {
    const strict = policy('strict', { allowedRegistries: ['registry.corp.example'], unscanned: 'Deny', vulnerabilities: { critical: 0 } });
    const lenient = policy('lenient', { allowedRegistries: ['registry.corp.example'], unscanned: 'Allow', vulnerabilities: { critical: 0 } });
    const corpImage = report('registry.corp.example/shop/api:1', 'registry.corp.example/shop/api', undefined);
    expect(desiredReportPolicy([strict], {}, corpImage)).toEqual({
      result: 'Fail',
      violations: [
        {
          policy: 'strict',
          rule: 'unscanned',
          message:
            'registry.corp.example/shop/api:1 could not be scanned, so its vulnerabilities are unknown and ImageScanPolicy strict does not allow that: see kubectl get imagescanreport -n shop api-dddddddddddd -o yaml (status.message says why)',
        },
      ],
    });
    expect(desiredReportPolicy([lenient], {}, corpImage)).toEqual({ result: 'Pass', violations: [] });
    expect(desiredReportPolicy([strict, lenient], {}, nginx(undefined))?.violations.map((v) => `${v.policy}/${v.rule}`)).toEqual(['lenient/registry', 'strict/registry', 'strict/unscanned']);
  });

  it('exempts images by glob over the normalised reference', () => {
    const exempting = policy('legacy', { vulnerabilities: { critical: 0 }, exemptImages: ['docker.io/library/nginx'] });
    expect(desiredReportPolicy([exempting], {}, nginx({ ...NONE, critical: 9 }))).toEqual({ result: 'Pass', violations: [] });
  });

  it('is judged only once its first scan has ended, Scanned or Failed', () => {
    const fresh = buildReportObject({ namespace: 'shop', image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest: DIGEST, team: 'payments', workloads: [] });
    expect(isAuditable(fresh)).toBe(false);
    expect(isAuditable({ ...fresh, status: { phase: 'Pending' } })).toBe(false);
    expect(isAuditable({ ...fresh, status: { phase: 'Scanning' } })).toBe(false);
    expect(isAuditable(nginx(undefined))).toBe(true);
    expect(isAuditable(nginx(NONE))).toBe(true);
  });

  it('counts what the metrics count: fixable per severity from the fix entries', () => {
    expect(scanCountsOf(nginx({ critical: 5, fixableCritical: 2, high: 7, fixableHigh: 7 }).status)).toEqual({ critical: 5, high: 7, fixableCritical: 2, fixableHigh: 7 });
    expect(scanCountsOf(nginx(undefined).status)).toBeUndefined();
  });

  const countsArb = fc
    .record({ critical: fc.nat(50), high: fc.nat(50) })
    .chain(({ critical, high }) => fc.record({ critical: fc.constant(critical), high: fc.constant(high), fixableCritical: fc.nat(critical), fixableHigh: fc.nat(high) }));
  const thresholdsArb = fc.record({ critical: fc.nat(60), high: fc.nat(60), fixableCritical: fc.nat(60), fixableHigh: fc.nat(60) }, { requiredKeys: [] });

  it('fails exactly when a count is above its threshold (property)', () => {
    fc.assert(
      fc.property(countsArb, thresholdsArb, (counts, thresholds) => {
        const status = desiredReportPolicy([policy('p', { vulnerabilities: thresholds })], {}, nginx(counts));
        const broken = (['critical', 'high', 'fixableCritical', 'fixableHigh'] as const).filter((rule) => thresholds[rule] !== undefined && counts[rule] > (thresholds[rule] ?? 0));
        expect(status?.violations.map((v) => v.rule)).toEqual(broken);
        expect(status?.result).toBe(broken.length > 0 ? 'Fail' : 'Pass');
      }),
    );
  });

  it('a looser threshold never turns Pass into Fail, and a report whose rules stay broken keeps the same status (property)', () => {
    fc.assert(
      fc.property(countsArb, thresholdsArb, fc.record({ critical: fc.nat(10), high: fc.nat(10), fixableCritical: fc.nat(10), fixableHigh: fc.nat(10) }), (counts, thresholds, extra) => {
        const looser = Object.fromEntries(Object.entries(thresholds).map(([rule, t]) => [rule, t + extra[rule as keyof typeof extra]]));
        const before = desiredReportPolicy([policy('p', { vulnerabilities: thresholds })], {}, nginx(counts));
        const after = desiredReportPolicy([policy('p', { vulnerabilities: looser })], {}, nginx(counts));
        if (before?.result === 'Pass') expect(after?.result).toBe('Pass');
        expect((after?.violations.length ?? 0) <= (before?.violations.length ?? 0)).toBe(true);
        // The same rules broken (or none): the same bytes, so the audit writes nothing for this report.
        const rules = (s: typeof before) => s?.violations.map((v) => v.rule).join();
        if (rules(before) === rules(after)) expect(samePolicyStatus(before, after)).toBe(true);
      }),
    );
  });

  it('is not part of what the report reconciler compares', () => {
    const status = nginx(NONE).status;
    const corp = desiredReportPolicy([policy('corp', { allowedRegistries: ['registry.corp.example'] })], {}, nginx(NONE));
    expect(statusEquals({ ...status, policy: corp }, status)).toBe(true);
    expect(statusEquals({ ...status, team: 'search', policy: corp }, status)).toBe(false);
  });
});
