import { describe, expect, it } from 'vitest';
import type { ImageScanReport, ReportVulnerability } from '../reports/image-scan-report.js';
import { SCAN_FAILURE_REASONS } from '../scanner/scan-failure.js';
import { SEVERITIES } from '../scanner/scan-result.js';
import type { Severity } from '../scanner/scan-result.js';
import { fakeReport, fixtureEntries, scannedStatus } from '../../test/alerts/fake-reports.js';
import { parsePrometheusText, samplesOf, scrapeText } from '../../test/alerts/prometheus-text.js';
import type { Sample } from '../../test/alerts/prometheus-text.js';
import { OperatorMetrics } from './operator-metrics.js';

const PER_IMAGE = ['imagescan_image_vulnerabilities', 'imagescan_report_last_scan_timestamp_seconds'];

/** Metrics of a leader (the replica that exports per-image series) unless `leader` is false. */
function setup(initial: ImageScanReport[] = [], opts: { leader?: boolean } = {}): { metrics: OperatorMetrics; reports: ImageScanReport[]; scrape: () => Promise<Sample[]> } {
  const reports = [...initial];
  const metrics = new OperatorMetrics({ reportSource: { list: () => reports }, defaultMetrics: false });
  metrics.setLeader(opts.leader ?? true);
  return { metrics, reports, scrape: async () => parsePrometheusText(await scrapeText(metrics)) };
}

function expectedCount(entries: ReportVulnerability[], severity: Severity, fixable: boolean): number {
  return entries.filter((e) => e.severity === severity && (e.fixedVersion !== undefined) === fixable).length;
}

/** The severity × fixable buckets of a list that hold at least one entry: the series a report gets. */
function nonEmptyBuckets(entries: ReportVulnerability[]): number {
  return SEVERITIES.flatMap((severity) => [true, false].filter((fixable) => expectedCount(entries, severity, fixable) > 0)).length;
}

describe('OperatorMetrics per-image series', () => {
  it('exports each non-empty severity bucket, fixable and unfixable, of a scanned report as Trivy found them, and no zeros', async () => {
    const entries = fixtureEntries('alpine-39.json');
    const { scrape } = setup([
      fakeReport({ namespace: 'shop', name: 'alpine-0123456789ab', image: 'alpine:3.9', status: scannedStatus(entries, { team: 'payments' }) }),
    ]);
    const samples = await scrape();
    const series = samplesOf(samples, 'imagescan_image_vulnerabilities');
    // The fixture leaves some buckets empty, so leaving zeros out is visible here.
    expect(nonEmptyBuckets(entries)).toBeLessThan(SEVERITIES.length * 2);
    expect(series).toHaveLength(nonEmptyBuckets(entries));
    for (const severity of SEVERITIES) {
      for (const fixable of [true, false]) {
        const [sample] = samplesOf(series, 'imagescan_image_vulnerabilities', { severity, fixable: String(fixable) });
        if (expectedCount(entries, severity, fixable) === 0) {
          expect(sample, `${severity} fixable=${fixable}`).toBeUndefined();
          continue;
        }
        expect(sample?.labels).toEqual({
          namespace: 'shop',
          report: 'alpine-0123456789ab',
          image: 'alpine:3.9',
          team: 'payments',
          severity,
          fixable: String(fixable),
        });
        expect(sample?.value).toBe(expectedCount(entries, severity, fixable));
      }
    }
    // alpine 3.9 has fixable CRITICAL entries: the alert's input is there.
    expect(samplesOf(series, 'imagescan_image_vulnerabilities', { severity: 'CRITICAL', fixable: 'true' })[0]?.value).toBeGreaterThan(0);

    const [lastScan] = samplesOf(samples, 'imagescan_report_last_scan_timestamp_seconds');
    expect(lastScan?.labels).toEqual({ namespace: 'shop', report: 'alpine-0123456789ab', image: 'alpine:3.9', team: 'payments' });
    expect(lastScan?.value).toBe(Date.parse('2026-11-26T12:00:00Z') / 1000);
  });

  it('removes every series of a report as soon as the report is deleted', async () => {
    const keep = fakeReport({ namespace: 'a', name: 'keep', image: 'nginx:1.25', status: scannedStatus(fixtureEntries('debian-buster.json')) });
    const gone = fakeReport({ namespace: 'a', name: 'gone', image: 'redis:7', status: scannedStatus(fixtureEntries('centos-7.json')) });
    const { reports, scrape } = setup([keep, gone]);
    const before = await scrape();
    expect(before.filter((s) => s.labels.report === 'gone').length).toBe(nonEmptyBuckets(fixtureEntries('centos-7.json')) + 1);

    reports.splice(reports.indexOf(gone), 1);
    const after = await scrape();
    expect(after.filter((s) => s.labels.report === 'gone')).toEqual([]);
    expect(after.filter((s) => s.labels.report === 'keep').length).toBe(nonEmptyBuckets(fixtureEntries('debian-buster.json')) + 1);
    expect(samplesOf(after, 'imagescan_reports', { phase: 'Scanned' })[0]?.value).toBe(1);
  });

  it('puts a team label on every per-image series, "unassigned" when the report has no team', async () => {
    const entries = fixtureEntries('alpine-39.json');
    const { scrape } = setup([
      fakeReport({ namespace: 'a', name: 'with-team', image: 'x:1', status: scannedStatus(entries, { team: 'search' }) }),
      fakeReport({ namespace: 'b', name: 'no-team', image: 'y:1', status: scannedStatus(entries) }),
      fakeReport({ namespace: 'c', name: 'empty-team', image: 'z:1', status: scannedStatus(entries, { team: '' }) }),
    ]);
    const perImage = (await scrape()).filter((s) => PER_IMAGE.includes(s.name));
    expect(perImage.length).toBe(3 * (nonEmptyBuckets(entries) + 1));
    for (const sample of perImage) {
      expect(sample.labels.team).toBe(sample.labels.report === 'with-team' ? 'search' : 'unassigned');
    }
  });

  it('keeps label values with quotes, backslashes, newlines and non-ASCII intact', async () => {
    const odd = 'reg.example.com:5000/we"ird\\path\nnext:tag-ü';
    const team = 'team "a"\\b';
    const entries = fixtureEntries('spring4shell-jre11.json');
    const { metrics } = setup([
      fakeReport({ namespace: 'odd', name: 'odd-report', image: odd, status: scannedStatus(entries, { team }) }),
    ]);
    const text = await scrapeText(metrics);
    // One sample per line: a raw newline inside a label value would have split one.
    const samples = parsePrometheusText(text);
    const perImage = samples.filter((s) => PER_IMAGE.includes(s.name));
    expect(perImage.length).toBe(nonEmptyBuckets(entries) + 1);
    for (const sample of perImage) {
      expect(sample.labels.image).toBe(odd);
      expect(sample.labels.team).toBe(team);
    }
  });

  it('drops the per-image series of a report whose image no longer runs (empty workloads)', async () => {
    const entries = fixtureEntries('alpine-39.json');
    const { scrape } = setup([
      fakeReport({ namespace: 'a', name: 'old', image: 'alpine:3.9', status: scannedStatus(entries, { workloads: [] }) }),
    ]);
    const samples = await scrape();
    expect(samples.filter((s) => PER_IMAGE.includes(s.name))).toEqual([]);
    // It still exists until garbage collection, so it is still counted.
    expect(samplesOf(samples, 'imagescan_reports', { phase: 'Scanned' })[0]?.value).toBe(1);
    expect(samplesOf(samples, 'imagescan_images_tracked')[0]?.value).toBe(1);
  });

  it('exports no vulnerability series for a report that was never scanned, but counts it by phase', async () => {
    const digestA = `sha256:${'a'.repeat(64)}`;
    const digestB = `sha256:${'b'.repeat(64)}`;
    const { scrape } = setup([
      fakeReport({ namespace: 'a', name: 'new', image: 'x:1', digest: digestA }),
      fakeReport({ namespace: 'b', name: 'same-digest', image: 'x:1', digest: digestA, status: { phase: 'Scanning' } }),
      fakeReport({ namespace: 'c', name: 'failed', image: 'y:1', digest: digestB, status: { phase: 'Failed', message: 'not found' } }),
    ]);
    const samples = await scrape();
    expect(samples.filter((s) => PER_IMAGE.includes(s.name))).toEqual([]);
    const phases = Object.fromEntries(samplesOf(samples, 'imagescan_reports').map((s) => [s.labels.phase, s.value]));
    expect(phases).toEqual({ Pending: 1, Scanning: 1, Scanned: 0, Failed: 1 });
    expect(samplesOf(samples, 'imagescan_images_tracked')[0]?.value).toBe(2);
  });

  it('counts failed images by digest: one image gone from its registry in 40 namespaces is one', async () => {
    const gone = `sha256:${'c'.repeat(64)}`;
    const reports = Array.from({ length: 40 }, (_, i) =>
      fakeReport({ namespace: `ns-${i}`, name: 'app-cccccccccccc', image: 'app:1', digest: gone, status: { phase: 'Failed', message: 'Scan failed (not_found)' } }),
    );
    reports.push(fakeReport({ namespace: 'ns-0', name: 'ok', image: 'ok:1', digest: `sha256:${'d'.repeat(64)}`, status: scannedStatus([]) }));
    const samples = await setup(reports).scrape();
    expect(samplesOf(samples, 'imagescan_reports', { phase: 'Failed' })[0]?.value).toBe(40);
    expect(samplesOf(samples, 'imagescan_images_failed')[0]?.value).toBe(1);
    expect(samplesOf(samples, 'imagescan_images_tracked')[0]?.value).toBe(2);
  });

  it('exports per-image series on the leader only: a standby has none, and starts when it leads', async () => {
    const entries = fixtureEntries('alpine-39.json');
    const { metrics, scrape } = setup([fakeReport({ namespace: 'a', name: 'alpine-0123456789ab', image: 'alpine:3.9', status: scannedStatus(entries) })], { leader: false });
    const standby = await scrape();
    expect(standby.filter((s) => PER_IMAGE.includes(s.name))).toEqual([]);
    // The report-wide gauges stay on every replica (they are a handful of series).
    expect(samplesOf(standby, 'imagescan_reports', { phase: 'Scanned' })[0]?.value).toBe(1);
    expect(samplesOf(standby, 'imagescan_leader')[0]?.value).toBe(0);

    metrics.setLeader(true);
    const leading = await scrape();
    expect(leading.filter((s) => PER_IMAGE.includes(s.name))).toHaveLength(nonEmptyBuckets(entries) + 1);

    metrics.setLeader(false);
    expect((await scrape()).filter((s) => PER_IMAGE.includes(s.name))).toEqual([]);
  });

  it('answers the scrape with an error when the report source throws', async () => {
    const metrics = new OperatorMetrics({
      reportSource: {
        list: () => {
          throw new Error('cache not synced');
        },
      },
      defaultMetrics: false,
    });
    metrics.setLeader(true);
    await expect(metrics.scrape()).rejects.toThrow('cache not synced');
  });
});

describe('OperatorMetrics event-time series', () => {
  it('has every failure reason and scan result at 0 before the first scan', async () => {
    const samples = await setup().scrape();
    for (const reason of SCAN_FAILURE_REASONS) {
      expect(samplesOf(samples, 'imagescan_scan_failures_total', { reason })[0]?.value).toBe(0);
    }
    for (const result of ['success', 'failure']) {
      expect(samplesOf(samples, 'imagescan_scans_total', { result })[0]?.value).toBe(0);
      expect(samplesOf(samples, 'imagescan_scan_duration_seconds_count', { result })[0]?.value).toBe(0);
    }
  });

  it('counts scans by result and failures by reason, and times them in minutes-long buckets', async () => {
    const { metrics, scrape } = setup();
    metrics.observeScan({ result: 'success', durationSeconds: 42 });
    metrics.observeScanOutcome({ ok: true, durationMs: 1500 });
    metrics.observeScanOutcome({ ok: false, durationMs: 600_000, failure: { reason: 'timeout' } });
    metrics.observeScan({ result: 'failure', reason: 'auth', durationSeconds: 3 });
    const samples = await scrape();
    expect(samplesOf(samples, 'imagescan_scans_total', { result: 'success' })[0]?.value).toBe(2);
    expect(samplesOf(samples, 'imagescan_scans_total', { result: 'failure' })[0]?.value).toBe(2);
    expect(samplesOf(samples, 'imagescan_scan_failures_total', { reason: 'timeout' })[0]?.value).toBe(1);
    expect(samplesOf(samples, 'imagescan_scan_failures_total', { reason: 'auth' })[0]?.value).toBe(1);
    expect(samplesOf(samples, 'imagescan_scan_failures_total', { reason: 'not_found' })[0]?.value).toBe(0);
    const bucket = (result: string, le: string): number | undefined =>
      samplesOf(samples, 'imagescan_scan_duration_seconds_bucket', { result, le })[0]?.value;
    expect(bucket('success', '1')).toBe(0);
    expect(bucket('success', '2')).toBe(1);
    expect(bucket('success', '60')).toBe(2);
    expect(bucket('failure', '5')).toBe(1);
    expect(bucket('failure', '300')).toBe(1);
    expect(bucket('failure', '600')).toBe(2);
    expect(bucket('failure', '1800')).toBe(2);
    expect(samplesOf(samples, 'imagescan_scan_duration_seconds_sum', { result: 'failure' })[0]?.value).toBe(603);
  });

  it('counts admission reviews by kind and decision and times them in sub-millisecond buckets', async () => {
    const { metrics, scrape } = setup();
    metrics.observeAdmissionReview('Deployment', 'deny', 0.0003);
    metrics.observeAdmissionReview('Deployment', 'deny', 0.002);
    metrics.observeAdmissionReview('Pod', 'allow', 0.0001);
    const samples = await scrape();
    expect(samplesOf(samples, 'imagescan_admission_reviews_total', { kind: 'Deployment', decision: 'deny' })[0]?.value).toBe(2);
    expect(samplesOf(samples, 'imagescan_admission_reviews_total', { kind: 'Pod', decision: 'allow' })[0]?.value).toBe(1);
    expect(samplesOf(samples, 'imagescan_admission_review_duration_seconds_bucket', { le: '0.0005' })[0]?.value).toBe(2);
    expect(samplesOf(samples, 'imagescan_admission_review_duration_seconds_bucket', { le: '0.0025' })[0]?.value).toBe(3);
  });

  it('reports queue, leader, DB age and build info as last set', async () => {
    const { metrics, scrape } = setup();
    const initial = await scrape();
    expect(samplesOf(initial, 'imagescan_trivy_db_updated_timestamp_seconds')[0]?.value).toBe(0);
    expect(samplesOf(initial, 'imagescan_build_info')).toEqual([]);

    metrics.setQueue(7, 2);
    metrics.setLeader(true);
    expect(metrics.setDbUpdatedAt('2026-11-26T06:12:34Z')).toBe(true);
    expect(metrics.setDbUpdatedAt('yesterday')).toBe(false);
    metrics.setBuildInfo('0.1.0');
    metrics.setBuildInfo('0.1.0', '0.58.1');
    const samples = await scrape();
    expect(samplesOf(samples, 'imagescan_scan_queue_depth')[0]?.value).toBe(7);
    expect(samplesOf(samples, 'imagescan_scans_in_progress')[0]?.value).toBe(2);
    expect(samplesOf(samples, 'imagescan_leader')[0]?.value).toBe(1);
    expect(samplesOf(samples, 'imagescan_trivy_db_updated_timestamp_seconds')[0]?.value).toBe(Date.parse('2026-11-26T06:12:34Z') / 1000);
    expect(samplesOf(samples, 'imagescan_build_info')).toEqual([
      { name: 'imagescan_build_info', labels: { version: '0.1.0', trivy_version: '0.58.1' }, value: 1 },
    ]);

    metrics.setLeader(false);
    expect(samplesOf(await scrape(), 'imagescan_leader')[0]?.value).toBe(0);
  });

  it('sums the resident memory of the Trivy children at each scrape, 0 without a source', async () => {
    let children = 3 * 1024 * 1024;
    const metrics = new OperatorMetrics({ reportSource: { list: () => [] }, defaultMetrics: false, trivyMemory: () => Promise.resolve(children) });
    const memory = async (m: OperatorMetrics) => samplesOf(parsePrometheusText(await scrapeText(m)), 'imagescan_trivy_resident_memory_bytes')[0]?.value;
    expect(await memory(metrics)).toBe(3 * 1024 * 1024);
    children = 0;
    expect(await memory(metrics)).toBe(0);
    expect(await memory(setup().metrics)).toBe(0);
  });

  it('adds the process and Node.js default metrics on its own registry', async () => {
    const metrics = new OperatorMetrics({ reportSource: { list: () => [] } });
    const names = new Set(parsePrometheusText(await scrapeText(metrics)).map((s) => s.name));
    expect(names.has('process_cpu_seconds_total')).toBe(true);
    expect(names.has('nodejs_eventloop_lag_seconds')).toBe(true);
    // A second instance (tests, or a rebuilt operator) does not clash: nothing is global.
    expect(() => new OperatorMetrics({ reportSource: { list: () => [] } })).not.toThrow();
  });
});
