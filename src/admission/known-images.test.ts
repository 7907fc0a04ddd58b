import { describe, expect, it } from 'vitest';
import { FakeInformer, runningPodEntry as pod } from '../../test/fake-informer.js';
import { toReportEntry } from '../kube/cluster-objects.js';
import type { PodEntry, ReportEntry } from '../kube/cluster-objects.js';
import { KnownImages } from './known-images.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;



function report(namespace: string, name: string, digest: string, status?: Record<string, unknown>): ReportEntry {
  const entry = toReportEntry({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanReport', metadata: { namespace, name, resourceVersion: '1' }, spec: { image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest }, ...(status ? { status } : {}) });
  if (entry === undefined) throw new Error('bad report');
  return entry;
}

const scanned = {
  phase: 'Scanned',
  summary: { critical: 3, high: 2, medium: 0, low: 0, unknown: 0, total: 5, fixable: 3 },
  fixes: [{ target: 'debian', package: 'openssl', installedVersion: '1', fixedVersions: ['2'], critical: 2, high: 1, medium: 0, low: 0, unknown: 0, ids: ['CVE-1', 'CVE-2', 'CVE-3'] }],
};

describe('KnownImages', () => {
  it('knows the digest a tag runs with while a pod runs it (the one most pods run), and forgets it after', () => {
    const pods = new FakeInformer<PodEntry>();
    const known = new KnownImages({ pods: [pods], reports: new FakeInformer<ReportEntry>() });
    const a = pod('prod', 'a', 'nginx:1.25', D1);
    const b = pod('prod', 'b', 'docker.io/library/nginx:1.25', D2);
    const c = pod('dev', 'c', 'nginx:1.25', D2);
    pods.put(a);
    expect(known.digestOfTag('docker.io/library/nginx', '1.25')).toBe(D1);
    pods.put(b);
    pods.put(c);
    expect(known.digestOfTag('docker.io/library/nginx', '1.25')).toBe(D2);
    expect(known.digestOfTag('docker.io/library/nginx', undefined)).toBeUndefined();
    for (const p of [a, b, c]) pods.delete(p.key);
    expect(known.digestOfTag('docker.io/library/nginx', '1.25')).toBeUndefined();
  });

  it('answers a digest from a report with a result, the namespace\'s own first, with the fixable counts of its fixes', () => {
    const reports = new FakeInformer<ReportEntry>();
    const known = new KnownImages({ pods: [], reports });
    reports.put(report('prod', 'nginx-1', D1, scanned));
    reports.put(report('dev', 'nginx-2', D1, scanned));
    reports.put(report('prod', 'nginx-3', D2, { phase: 'Pending' }));
    expect(known.scanOfDigest(D1, 'dev')).toEqual({ scan: { critical: 3, high: 2, fixableCritical: 2, fixableHigh: 1 }, report: { namespace: 'dev', name: 'nginx-2' } });
    expect(known.scanOfDigest(D1, 'shop')?.report).toEqual({ namespace: 'prod', name: 'nginx-1' });
    expect(known.scanOfDigest(D2, 'prod')).toBeUndefined();
    reports.delete(report('prod', 'nginx-1', D1, scanned).key);
    reports.delete(report('dev', 'nginx-2', D1, scanned).key);
    expect(known.scanOfDigest(D1, 'prod')).toBeUndefined();
  });
});
