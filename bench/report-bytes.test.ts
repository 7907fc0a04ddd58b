import { describe, expect, it } from 'vitest';
import type { KubeObject, RequestRecord } from '../e2e/fake-apiserver/index.js';
import { objectBytes, rewrittenReportBytes, storedReportBytes } from './report-bytes.js';

const report = (name: string, padding: number): KubeObject => ({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanReport', metadata: { name, namespace: 'shop' }, status: { message: 'x'.repeat(padding) } });

describe('storedReportBytes', () => {
  it('sums the JSON bytes and gives mean, nearest-rank p99 and the largest', () => {
    const reports = Array.from({ length: 200 }, (_, i) => report(`r${String(i).padStart(3, '0')}`, i >= 197 ? 1000 * (i - 194) : 10));
    const sizes = reports.map(objectBytes);
    const figures = storedReportBytes(reports);
    expect(figures.reports).toBe(200);
    expect(figures.totalBytes).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(figures.meanBytes).toBeCloseTo(figures.totalBytes / 200);
    expect(figures.p99Bytes).toBe(objectBytes(reports[197] as KubeObject)); // the 198th smallest of 200
    expect(figures.maxBytes).toBe(objectBytes(reports[199] as KubeObject));
    expect(storedReportBytes([])).toEqual({ reports: 0, totalBytes: 0, meanBytes: 0, p99Bytes: 0, maxBytes: 0 });
  });
});

describe('rewrittenReportBytes', () => {
  it('counts the successful report writes of the window, each at the size of the object it left', () => {
    const objects = new Map([['shop/a', report('a', 100)], ['shop/b', report('b', 300)]]);
    const record = (seq: number, startMs: number, extra: Partial<RequestRecord>): RequestRecord =>
      ({ seq, time: '', startMs, method: 'PATCH', path: '/', identity: 'op', namespace: 'shop', resource: 'imagescanreports', verb: 'patch', code: 200, ...extra }) as RequestRecord;
    const records = [
      record(1, 5, { name: 'a', requestBytes: 10 }), // before the window
      record(2, 10, { name: 'a', subresource: 'status', requestBytes: 40 }),
      record(3, 11, { name: 'b', subresource: 'status', requestBytes: 60 }),
      record(4, 12, { name: 'b', subresource: 'status', code: 409, requestBytes: 60 }), // refused: stored nothing
      record(5, 13, { name: 'b', verb: 'get' }),
      record(6, 14, { name: 'p', resource: 'pods' }),
      record(7, 20, { name: 'a' }), // after
    ];
    const out = rewrittenReportBytes(records, 10, 20, (ns, name) => objects.get(`${ns}/${name}`));
    expect(out).toEqual({ writes: 2, requestBytes: 100, objectBytes: objectBytes(objects.get('shop/a') as KubeObject) + objectBytes(objects.get('shop/b') as KubeObject) });
  });
});
