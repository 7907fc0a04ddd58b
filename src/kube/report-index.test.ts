import { describe, expect, it } from 'vitest';
import { fakeReport } from '../../test/alerts/fake-reports.js';
import { FakeInformer } from '../../test/fake-informer.js';
import type { ImageScanReport } from '../reports/image-scan-report.js';
import type { ReportEntry } from './cluster-objects.js';
import { ReportIndex } from './report-index.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** The report informer as ReportIndex sees it, fed whole reports by the test. */
class FakeReportInformer extends FakeInformer<ReportEntry> {
  deliver(report: ImageScanReport): void {
    this.put(entryOf(report));
  }
}

function entryOf(report: ImageScanReport): ReportEntry {
  const { namespace = '', name = '', resourceVersion = '' } = report.metadata ?? {};
  return { key: `${namespace}/${name}`, namespace, name, resourceVersion, report };
}

function written(resourceVersion: string, phase: 'Pending' | 'Scanned'): ImageScanReport {
  const report = fakeReport({ namespace: 'shop', name: 'nginx-abababababab', image: 'nginx:1.25', digest: DIGEST });
  return { ...report, metadata: { ...report.metadata, resourceVersion }, status: { phase } };
}

describe('ReportIndex', () => {
  it('serves our latest write until the watch delivers it, then the cached copy', () => {
    const informer = new FakeReportInformer();
    const index = new ReportIndex(informer);
    informer.deliver(written('5', 'Pending'));
    index.remember(written('6', 'Scanned'));
    expect(index.find('shop', DIGEST)?.metadata?.resourceVersion).toBe('6');
    informer.deliver(written('6', 'Scanned'));
    expect(index.find('shop', DIGEST)).toBe(informer.get('shop/nginx-abababababab')?.report);
  });

  it('forgets a report deleted after our write, even when the watch delivered the write before its response', () => {
    const informer = new FakeReportInformer();
    const index = new ReportIndex(informer);
    informer.deliver(written('6', 'Scanned'));
    index.remember(written('6', 'Scanned'));
    informer.delete('shop/nginx-abababababab');
    expect(index.find('shop', DIGEST)).toBeUndefined();
  });

  it('keeps no tombstone when the watch delivered the delete before our response, and sweeps what the watch settled', () => {
    let now = 0;
    const informer = new FakeReportInformer();
    const index = new ReportIndex(informer, () => now);
    informer.deliver(written('5', 'Scanned'));
    // The delete event arrives first, then our delete's response.
    informer.delete('shop/nginx-abababababab');
    index.forget('shop', 'nginx-abababababab', DIGEST);
    expect(index.find('shop', DIGEST)).toBeUndefined();
    expect(index.sweep()).toBe(0);

    // A tombstone the delete event never clears (the watch is down) goes after a few minutes.
    informer.deliver(written('7', 'Scanned'));
    index.forget('shop', 'nginx-abababababab', DIGEST);
    expect(index.find('shop', DIGEST)).toBeUndefined();
    now += 60_000;
    expect(index.sweep()).toBe(0);
    now += 5 * 60_000;
    expect(index.sweep()).toBe(1);

    // A write the watch confirmed is swept without any reconcile reading it.
    index.remember(written('8', 'Scanned'));
    informer.deliver(written('9', 'Scanned'));
    expect(index.sweep()).toBe(0);
    index.remember(written('10', 'Scanned'));
    informer.objects.set('shop/nginx-abababababab', entryOf(written('10', 'Scanned')));
    expect(index.sweep()).toBe(1);
  });
});
