import { describe, expect, it } from 'vitest';
import { fakeReport, fixtureEntries, scannedStatus } from '../../test/alerts/fake-reports.js';
import { parsePrometheusText, samplesOf } from '../../test/alerts/prometheus-text.js';
import { SEVERITIES } from '../scanner/scan-result.js';
import { IMAGE_VULNERABILITIES, REPORT_LAST_SCAN, reportSeriesChunks } from './report-series.js';

const entries = fixtureEntries('alpine-39.json');
const reports = Array.from({ length: 40 }, (_, i) =>
  fakeReport({ namespace: `team-${i % 7}`, name: `alpine-${String(i).padStart(12, '0')}`, image: `alpine:3.${i}`, status: scannedStatus(entries, { team: `t${i % 3}` }) }),
);

/** Severity × fixable buckets of the fixture with at least one entry: zeros are not written. */
const BUCKETS = SEVERITIES.flatMap((severity) => [true, false].filter((fixable) => entries.some((e) => e.severity === severity && (e.fixedVersion !== undefined) === fixable))).length;

function text(chunks: Iterable<Buffer>): string {
  return [...chunks].map((c) => c.toString('utf8')).join('');
}

describe('reportSeriesChunks', () => {
  it('writes the same series whatever the chunk size, each chunk whole lines of whole reports', () => {
    const whole = text(reportSeriesChunks(reports, 1024 * 1024));
    const small = [...reportSeriesChunks(reports, 2048)];
    expect(small.length).toBeGreaterThan(5);
    expect(text(small)).toBe(whole);
    for (const chunk of small) {
      const lines = chunk.toString('utf8').split('\n');
      expect(lines.pop()).toBe('');
      // The lines of a report's vulnerability counts (its non-empty buckets) stay together.
      const perReport = new Map<string, number>();
      for (const line of lines.filter((l) => l.startsWith(`${IMAGE_VULNERABILITIES}{`))) {
        const report = /report="([^"]+)"/.exec(line)?.[1] ?? '';
        perReport.set(report, (perReport.get(report) ?? 0) + 1);
      }
      for (const count of perReport.values()) expect(count).toBe(BUCKETS);
    }
    const samples = parsePrometheusText(whole);
    expect(samplesOf(samples, IMAGE_VULNERABILITIES)).toHaveLength(reports.length * BUCKETS);
    expect(samplesOf(samples, IMAGE_VULNERABILITIES).filter((s) => s.value === 0)).toEqual([]);
    expect(samplesOf(samples, REPORT_LAST_SCAN)).toHaveLength(reports.length);
    expect(samplesOf(samples, REPORT_LAST_SCAN, { report: 'alpine-000000000003' })[0]).toMatchObject({
      labels: { namespace: 'team-3', report: 'alpine-000000000003', image: 'alpine:3.3', team: 't0' },
      value: Date.parse('2026-11-26T12:00:00Z') / 1000,
    });
  });

  it('gives a report longer than a chunk a chunk of its own, and escapes label values', () => {
    const image = `registry.example/${'a'.repeat(3000)}:"quoted"\\`;
    const long = fakeReport({ namespace: 'ns', name: 'long', image, status: scannedStatus(entries) });
    const chunks = [...reportSeriesChunks([...reports.slice(0, 1), long, ...reports.slice(1, 2)], 1024)];
    const own = chunks.find((c) => c.toString('utf8').includes('report="long"'));
    expect(own?.length).toBeGreaterThan(1024);
    const samples = parsePrometheusText(text(chunks));
    expect(samplesOf(samples, REPORT_LAST_SCAN, { report: 'long' })[0]?.labels.image).toBe(image);
    expect(samplesOf(samples, IMAGE_VULNERABILITIES)).toHaveLength(3 * BUCKETS);
  });

  it('writes only the headers when no image runs', () => {
    const gone = fakeReport({ namespace: 'ns', name: 'gone', image: 'alpine:3.9', status: scannedStatus(entries, { workloads: [] }) });
    const out = text(reportSeriesChunks([gone]));
    expect(out.split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual([]);
    expect(out).toContain(`# TYPE ${IMAGE_VULNERABILITIES} gauge\n`);
    expect(out).toContain(`# TYPE ${REPORT_LAST_SCAN} gauge\n`);
  });
});
