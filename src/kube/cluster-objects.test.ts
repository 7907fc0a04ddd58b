import { describe, expect, it } from 'vitest';
import { countBySeverity } from '../metrics/vulnerability-counts.js';
import type { ImageScanReportStatus } from '../reports/image-scan-report.js';
import { statusEquals } from '../reports/report-builder.js';
import { SharedVulnerabilityLists, clearSharedValues, takeReportVulnerabilities, toPodEntry, toReportEntry } from './cluster-objects.js';

const digest = `sha256:${'a'.repeat(64)}`;

interface RawVuln {
  id: string;
  severity: string;
  fixedVersion?: string;
}

function vulns(ids: string[]): RawVuln[] {
  return ids.map((id, i) => ({ id, severity: i % 2 === 0 ? 'CRITICAL' : 'HIGH', ...(i % 3 === 0 ? {} : { fixedVersion: '1.2' }) }));
}

/** A report as the API server returns it, freshly parsed from JSON like every list and watch event. */
function rawReport(namespace: string, list: RawVuln[]): { metadata: Record<string, unknown>; status: Record<string, unknown> } {
  return JSON.parse(
    JSON.stringify({
      apiVersion: 'imagescan.dev/v1alpha1',
      kind: 'ImageScanReport',
      metadata: { name: `nginx-${digest.slice(7, 19)}`, namespace, resourceVersion: '7', managedFields: [{ manager: 'x' }] },
      spec: { image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest },
      status: {
        phase: 'Scanned',
        summary: { total: list.length + 2, critical: 1, high: list.length + 1, medium: 0, low: 0, unknown: 0, fixable: list.length },
        vulnerabilities: list.map((v) => ({ ...v, package: 'openssl', installedVersion: '1.1', target: 'nginx:1.25 (debian 12)' })),
        vulnerabilitiesOmitted: 2,
        workloads: [{ kind: 'Deployment', name: 'web' }],
      },
    }),
  ) as { metadata: Record<string, unknown>; status: Record<string, unknown> };
}

describe('toReportEntry keeps reports slim', () => {
  it('drops managedFields and the vulnerability list, and keeps everything else as the server sent it', () => {
    const raw = rawReport('shop', vulns(['CVE-1', 'CVE-2']));
    const entry = toReportEntry(raw);
    const { managedFields: _dropped, ...metadata } = raw.metadata;
    const { vulnerabilities: _list, ...status } = raw.status;
    expect(entry?.report).toEqual({ ...(raw as object), metadata, status });
    expect(entry?.report.status?.vulnerabilities).toBeUndefined();
    expect(entry?.key).toBe(`shop/nginx-${digest.slice(7, 19)}`);
  });

  it('compares equal to the full status, also with keys in another order, and unequal when the list differs', () => {
    const raw = rawReport('shop', vulns(['CVE-1', 'CVE-2', 'CVE-3']));
    const full = structuredClone(raw.status) as ImageScanReportStatus;
    // The builder writes keys in its own order; the API server may return them in another.
    full.vulnerabilities = (full.vulnerabilities ?? []).map((v) => Object.fromEntries(Object.entries(v).reverse()) as typeof v);
    const entry = toReportEntry(raw);
    expect(statusEquals(entry?.report.status, full)).toBe(true);
    const changed = structuredClone(raw.status) as ImageScanReportStatus;
    changed.vulnerabilities = changed.vulnerabilities?.slice(1);
    expect(statusEquals(entry?.report.status, changed)).toBe(false);
    const { vulnerabilities: _gone, ...withoutList } = raw.status;
    expect(statusEquals(entry?.report.status, withoutList as ImageScanReportStatus)).toBe(false);
  });

  it('keeps the per-severity counts of the full status for the metrics', () => {
    const raw = rawReport('shop', vulns(['CVE-1', 'CVE-2', 'CVE-3', 'CVE-4']));
    const expected = countBySeverity(structuredClone(raw.status) as ImageScanReportStatus);
    const entry = toReportEntry(raw);
    expect(expected?.find((c) => c.severity === 'CRITICAL')?.fixable).toBe(1);
    expect(countBySeverity(entry?.report.status)).toEqual(expected);
  });

  it('hands the list over once, one shared copy for reports that carry the same list', () => {
    const lists = new SharedVulnerabilityLists();
    const a = toReportEntry(rawReport('shop', vulns(['CVE-1', 'CVE-2'])), lists);
    const b = toReportEntry(rawReport('billing', vulns(['CVE-1', 'CVE-2'])), lists);
    const c = toReportEntry(rawReport('search', vulns(['CVE-1', 'CVE-3'])), lists);
    if (a === undefined || b === undefined || c === undefined) throw new Error('entries expected');
    const listA = takeReportVulnerabilities(a);
    expect(listA?.map((v) => v.id)).toEqual(['CVE-1', 'CVE-2']);
    expect(takeReportVulnerabilities(b)).toBe(listA);
    expect(takeReportVulnerabilities(c)?.map((v) => v.id)).toEqual(['CVE-1', 'CVE-3']);
    expect(takeReportVulnerabilities(a)).toBeUndefined();
    expect(lists.size()).toBe(2);
  });
});

describe('clearSharedValues', () => {
  const rawPod = (name: string) => ({
    metadata: {
      name,
      namespace: 'shop',
      uid: `uid-${name}`,
      resourceVersion: '1',
      labels: { app: 'web', 'pod-template-hash': '5d9c' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d9c', uid: 'uid-rs', controller: true }],
    },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'nginx:1.19' }] },
    status: { containerStatuses: [{ name: 'app', image: 'nginx:1.19', imageID: `docker.io/library/nginx@${digest}`, ready: true, restartCount: 0 }] },
  });

  it('leaves cached pods as they are, and pods that come after share among themselves again', () => {
    const before = [toPodEntry(rawPod('web-1')), toPodEntry(rawPod('web-2'))];
    expect(before[0]?.pod.metadata?.labels).toBe(before[1]?.pod.metadata?.labels);
    const labels = structuredClone(before[0]?.pod.metadata?.labels);
    clearSharedValues();
    expect(before[0]?.pod.metadata?.labels).toEqual(labels);
    expect(before[0]?.images).toBe(before[1]?.images);
    const after = [toPodEntry(rawPod('web-3')), toPodEntry(rawPod('web-4'))];
    expect(after[0]?.pod.metadata?.labels).toEqual(labels);
    expect(after[0]?.pod.metadata?.labels).toBe(after[1]?.pod.metadata?.labels);
    expect(after[0]?.pod.metadata?.ownerReferences).toBe(after[1]?.pod.metadata?.ownerReferences);
    expect(after[0]?.images).toBe(after[1]?.images);
    expect(after[0]?.images).not.toBe(before[0]?.images);
  });
});

describe('toPodEntry of a finished pod', () => {
  const rawPod = (phase: string, owner: { kind: string; name: string } | undefined) => ({
    metadata: {
      name: `p-${phase}-${owner?.kind ?? 'bare'}`,
      namespace: 'shop',
      uid: 'uid-p',
      resourceVersion: '1',
      ownerReferences: owner === undefined ? [] : [{ apiVersion: 'v1', kind: owner.kind, name: owner.name, uid: `uid-${owner.name}`, controller: true }],
    },
    spec: { containers: [{ name: 'app', image: 'nginx:1.19' }] },
    status: { phase, containerStatuses: [{ name: 'app', image: 'nginx:1.19', imageID: `docker.io/library/nginx@${digest}` }] },
  });

  it.each([
    ['Running', undefined, 1],
    ['Pending', { kind: 'ReplicaSet', name: 'web-5d9c' }, 1],
    // Evicted or completed pods of other owners run nothing.
    ['Failed', { kind: 'ReplicaSet', name: 'web-5d9c' }, 0],
    ['Succeeded', undefined, 0],
    ['Failed', { kind: 'StatefulSet', name: 'db' }, 0],
    // A Job's (and so a CronJob's) finished pods count while they exist.
    ['Succeeded', { kind: 'Job', name: 'nightly-2911' }, 1],
    ['Failed', { kind: 'Job', name: 'nightly-2911' }, 1],
  ])('a %s pod owned by %o runs %i digest', (phase, owner, count) => {
    expect(toPodEntry(rawPod(phase, owner))?.images).toHaveLength(count);
  });
});
