import { describe, expect, it } from 'vitest';
import { SharedVulnerabilityLists, toReportEntry } from './cluster-objects.js';

const digest = `sha256:${'a'.repeat(64)}`;

/** A report as the API server returns it, freshly parsed from JSON like every list and watch event. */
function rawReport(namespace: string, vulnerabilityIds: string[]): unknown {
  return JSON.parse(
    JSON.stringify({
      apiVersion: 'imagescan.dev/v1alpha1',
      kind: 'ImageScanReport',
      metadata: { name: `nginx-${digest.slice(7, 19)}`, namespace, resourceVersion: '7', managedFields: [{ manager: 'x' }] },
      spec: { image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest },
      status: {
        phase: 'Scanned',
        vulnerabilities: vulnerabilityIds.map((id) => ({ id, severity: 'HIGH', package: 'openssl', installedVersion: '1.1', fixedVersion: '1.2', target: 'nginx:1.25 (debian 12)' })),
      },
    }),
  );
}

describe('toReportEntry with shared vulnerability lists', () => {
  it('keeps one copy of a list that reports in several namespaces carry, and separate copies of different lists', () => {
    const lists = new SharedVulnerabilityLists();
    const a = toReportEntry(rawReport('shop', ['CVE-1', 'CVE-2']), lists);
    const b = toReportEntry(rawReport('billing', ['CVE-1', 'CVE-2']), lists);
    const c = toReportEntry(rawReport('search', ['CVE-1', 'CVE-3']), lists);
    expect(a?.report.status?.vulnerabilities).toBe(b?.report.status?.vulnerabilities);
    expect(c?.report.status?.vulnerabilities).not.toBe(a?.report.status?.vulnerabilities);
    expect(c?.report.status?.vulnerabilities?.map((v) => v.id)).toEqual(['CVE-1', 'CVE-3']);
    expect(lists.size()).toBe(2);
  });

  it('keeps the report content as the server sent it, minus managedFields', () => {
    const raw = rawReport('shop', ['CVE-1']);
    const entry = toReportEntry(raw, new SharedVulnerabilityLists());
    const { managedFields: _dropped, ...metadata } = (raw as { metadata: Record<string, unknown> }).metadata;
    expect(entry?.report).toEqual({ ...(raw as object), metadata });
    expect(entry?.key).toBe(`shop/nginx-${digest.slice(7, 19)}`);
  });
});
