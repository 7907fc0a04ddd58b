import { describe, expect, it } from 'vitest';
import { fakeReport, scannedStatus } from '../../test/alerts/fake-reports.js';
import { parsePrometheusText, samplesOf } from '../../test/alerts/prometheus-text.js';
import type { ReportPolicyStatus } from '../reports/image-scan-report.js';
import { OperatorMetrics } from './operator-metrics.js';
import { POLICY_VIOLATIONS, policyViolationChunks } from './policy-series.js';

const FAIL: ReportPolicyStatus = {
  result: 'Fail',
  violations: [
    { policy: 'corp-registry', rule: 'registry', message: 'not from an allowed registry' },
    { policy: 'prod-bar', rule: 'critical', message: '42 CRITICAL' },
  ],
};

function withPolicy(namespace: string, name: string, policy: ReportPolicyStatus | undefined, extra: { workloads?: { kind: string; name: string }[]; team?: string } = {}) {
  const report = fakeReport({ namespace, name, image: 'nginx:1.19', status: scannedStatus([], { team: extra.team ?? 'payments' }) });
  if (report.status !== undefined) {
    if (policy !== undefined) report.status.policy = policy;
    if (extra.workloads !== undefined) report.status.workloads = extra.workloads;
  }
  return report;
}

describe('imagescan_policy_violations', () => {
  it('is 1 per (report, policy, rule) broken, with the labels of the contract; nothing for a Pass or an ungoverned report', () => {
    const reports = [
      withPolicy('shop', 'nginx-0123456789ab', FAIL),
      withPolicy('catalog', 'nginx-0123456789ab', { result: 'Pass', violations: [] }),
      withPolicy('tools', 'nginx-0123456789ab', undefined),
    ];
    const samples = samplesOf(parsePrometheusText([...policyViolationChunks(reports)].join('')), POLICY_VIOLATIONS);
    expect(samples.map((s) => [s.labels, s.value])).toEqual([
      [{ policy: 'corp-registry', namespace: 'shop', report: 'nginx-0123456789ab', image: 'nginx:1.19', team: 'payments', rule: 'registry' }, 1],
      [{ policy: 'prod-bar', namespace: 'shop', report: 'nginx-0123456789ab', image: 'nginx:1.19', team: 'payments', rule: 'critical' }, 1],
    ]);
  });

  it('has no series for an image that no longer runs, nor twice for a repeated entry, and escapes label values', () => {
    const repeated: ReportPolicyStatus = { result: 'Fail', violations: [...FAIL.violations, ...FAIL.violations] };
    const reports = [withPolicy('gone', 'nginx-0123456789ab', FAIL, { workloads: [] }), withPolicy('shop', 'nginx-0123456789ab', repeated, { team: 'a"b\\c' })];
    const text = [...policyViolationChunks(reports)].join('');
    const samples = samplesOf(parsePrometheusText(text), POLICY_VIOLATIONS);
    expect(samples.map((s) => `${s.labels.namespace ?? ''} ${s.labels.rule ?? ''} ${s.labels.team ?? ''}`)).toEqual(['shop registry a"b\\c', 'shop critical a"b\\c']);
    expect(text).toContain('team="a\\"b\\\\c"');
  });

  it('writes the same lines in chunks of whole lines', () => {
    const reports = Array.from({ length: 200 }, (_, i) => withPolicy(`ns-${i}`, 'nginx-0123456789ab', FAIL));
    const chunks = [...policyViolationChunks(reports, 1024)];
    expect(chunks.length).toBeGreaterThan(5);
    for (const chunk of chunks) expect(chunk.endsWith('\n')).toBe(true);
    expect(chunks.join('')).toBe([...policyViolationChunks(reports, 1024 * 1024)].join(''));
    expect(samplesOf(parsePrometheusText(chunks.join('')), POLICY_VIOLATIONS)).toHaveLength(400);
  });

  it('is exported by the leader only, like the other per-image series', async () => {
    const metrics = new OperatorMetrics({ reportSource: { list: () => [withPolicy('shop', 'nginx-0123456789ab', FAIL)] }, defaultMetrics: false });
    const scrape = async (): Promise<string> => [...(await metrics.scrape())].map((c) => c.toString()).join('');
    metrics.setLeader(false);
    expect(samplesOf(parsePrometheusText(await scrape()), POLICY_VIOLATIONS)).toEqual([]);
    metrics.setLeader(true);
    expect(samplesOf(parsePrometheusText(await scrape()), POLICY_VIOLATIONS)).toHaveLength(2);
  });
});
