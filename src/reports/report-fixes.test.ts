import { describe, expect, it } from 'vitest';
import { countBySeverity } from '../metrics/vulnerability-counts.js';
import { slimReport } from '../kube/cluster-objects.js';
import { findingFingerprint } from '../kube/event-recorder.js';
import type { ImageScanReport, ImageScanReportStatus, ReportFix } from './image-scan-report.js';
import { buildReportStatus, capFixes, fixableCriticalIdsOfStatus, preparedScanState, scanStateFromReport, type ReportStatusInput, type ScanState } from './report-builder.js';
import { loadTrivyFixtures } from './testdata/trivy-fixtures.js';

const fixtures = loadTrivyFixtures();
const SCANNED_AT = new Date('2026-11-26T10:00:00Z');
const NOW = new Date('2026-11-26T12:00:00Z');
const ALL = { maxVulnerabilities: 1000, maxVulnerabilityBytes: 10 * 1024 * 1024, maxFixes: 500, maxFixBytes: 1024 * 1024 };

function statusOf(scan: ScanState, limits: ReportStatusInput['limits'] = {}): ImageScanReportStatus {
  return buildReportStatus({ scan, workloads: [{ kind: 'Deployment', name: 'web' }], team: 'payments', now: NOW, limits });
}

function reportWith(status: ImageScanReportStatus): ImageScanReport {
  return JSON.parse(
    JSON.stringify({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanReport', metadata: { name: 'r', namespace: 'shop' }, spec: { image: 'x', repository: 'x', digest: 'sha256:x' }, status }),
  ) as ImageScanReport;
}

/** The status as the operator's cache keeps it after a JSON round trip through the API server. */
const slimReportStatus = (status: ImageScanReportStatus) => slimReport(reportWith(status)).report.status;

const counted = (f: ReportFix) => f.critical + f.high + f.medium + f.low + f.unknown;
const entryKey = (target: string, pkg: string, version: string) => JSON.stringify([target, pkg, version]);

describe('status.fixes of real Trivy reports', () => {
  it.each(fixtures.map((f) => [f.name, f] as const))('%s: every fixable vulnerability is counted in exactly one entry', (_name, fixture) => {
    const status = statusOf({ phase: 'Scanned', result: fixture.result, scannedAt: SCANNED_AT }, ALL);
    const fixes = status.fixes ?? [];
    expect(status.fixesOmitted).toBe(0);
    expect(status).not.toHaveProperty('vulnerabilities');

    // Expectations straight from Trivy's JSON: group its fixable entries by (Target, PkgName, InstalledVersion).
    const expected = new Map<string, { ids: string[]; severities: string[]; versions: Set<string> }>();
    for (const v of fixture.rawVulnerabilities) {
      if (v.FixedVersion === undefined || v.FixedVersion === '') continue;
      const key = entryKey(v.Target, v.PkgName, v.InstalledVersion);
      const group = expected.get(key) ?? { ids: [], severities: [], versions: new Set<string>() };
      group.ids.push(v.VulnerabilityID);
      group.severities.push(v.Severity);
      // Trivy joins the versions that fix a vulnerability with ", " (one per release line).
      for (const version of v.FixedVersion.split(', ')) group.versions.add(version);
      expected.set(key, group);
    }
    expect(new Set(fixes.map((f) => entryKey(f.target, f.package, f.installedVersion))).size).toBe(fixes.length);
    expect(fixes).toHaveLength(expected.size);
    for (const fix of fixes) {
      const group = expected.get(entryKey(fix.target, fix.package, fix.installedVersion));
      if (group === undefined) throw new Error(`unexpected entry ${fix.package} ${fix.installedVersion}`);
      expect([...fix.ids].sort()).toEqual([...group.ids].sort());
      expect(counted(fix)).toBe(group.ids.length);
      expect(fix.critical).toBe(group.severities.filter((s) => s === 'CRITICAL').length);
      expect(fix.high).toBe(group.severities.filter((s) => s === 'HIGH').length);
      expect(new Set(fix.fixedVersions)).toEqual(group.versions);
      expect(fix.fixedVersions).toHaveLength(group.versions.size);
      for (const version of fix.fixedVersions) expect(version).not.toMatch(/,|^\s|\s$/);
    }
    expect(fixes.reduce((n, f) => n + counted(f), 0)).toBe(status.summary?.fixable);
  });

  it.each(fixtures.map((f) => [f.name, f.result] as const))('%s: entries worst first, each one\'s ids worst first', (_name, result) => {
    const fixes = statusOf({ phase: 'Scanned', result, scannedAt: SCANNED_AT }).fixes ?? [];
    const weight = (f: ReportFix) => [f.critical, f.high, f.medium, f.low, f.unknown];
    for (let i = 1; i < fixes.length; i++) {
      const [a, b] = [weight(fixes[i - 1] as ReportFix), weight(fixes[i] as ReportFix)];
      const first = a.findIndex((n, k) => n !== b[k]);
      if (first >= 0) expect(a[first]).toBeGreaterThan(b[first] as number);
    }
    // The first `critical` ids are the CRITICAL ones, as in the scan.
    const severityOf = new Map(result.vulnerabilities.map((v) => [`${v.target}|${v.package}|${v.installedVersion}|${v.id}`, v.severity]));
    for (const fix of fixes) {
      const criticalIds = fix.ids.slice(0, fix.critical);
      for (const id of criticalIds) expect(severityOf.get(`${fix.target}|${fix.package}|${fix.installedVersion}|${id}`)).toBe('CRITICAL');
    }
  });

  it.each(fixtures.map((f) => [f.name, f.result] as const))('%s: metrics and the event finding are those of the full list', (_name, result) => {
    const scan: ScanState = { phase: 'Scanned', result, scannedAt: SCANNED_AT };
    const fixesOnly = statusOf(scan, ALL);
    const full = statusOf(scan, { details: 'full', ...ALL });
    expect(full.vulnerabilitiesOmitted).toBe(0);
    expect(full.fixes).toEqual(fixesOnly.fixes);
    expect(countBySeverity(fixesOnly)).toEqual(countBySeverity({ ...full, fixes: undefined }));
    // Capped by the default 8 KiB: the entries left out are counted by severity, the split stays exact.
    const capped = statusOf(scan);
    if ((capped.fixesOmitted ?? 0) > 0) expect(capped.fixesOmittedCounts).toBeDefined();
    else expect(capped).not.toHaveProperty('fixesOmittedCounts');
    expect(countBySeverity(capped)).toEqual(countBySeverity({ ...full, fixes: undefined }));
    expect(countBySeverity(slimReportStatus(capped))).toEqual(countBySeverity(capped));
    expect(findingFingerprint(fixableCriticalIdsOfStatus(fixesOnly))).toBe(findingFingerprint(fixableCriticalIdsOfStatus({ vulnerabilities: full.vulnerabilities })));
  });

  it('by default a report of the largest real scan keeps its worst packages in 8 KiB, the rest counted', () => {
    const largest = fixtures.find((f) => f.name === 'real-world/trivysummary-testscans-0.0.1.json');
    if (largest === undefined) throw new Error('fixture');
    const scan: ScanState = { phase: 'Scanned', result: largest.result, scannedAt: SCANNED_AT };
    const all = statusOf(scan, ALL).fixes ?? [];
    const fixesOnly = statusOf(scan);
    const full = statusOf(scan, { details: 'full' });
    expect(fixesOnly.fixes).toEqual(all.slice(0, fixesOnly.fixes?.length));
    expect(fixesOnly.fixesOmitted).toBe(all.length - (fixesOnly.fixes?.length ?? 0));
    expect(fixesOnly.fixesOmitted).toBeGreaterThan(0);
    expect(Buffer.byteLength(JSON.stringify(fixesOnly.fixes))).toBeLessThanOrEqual(8 * 1024);
    expect(fixesOnly.summary).toEqual(full.summary);
    expect(Buffer.byteLength(JSON.stringify(full))).toBeGreaterThan(15 * Buffer.byteLength(JSON.stringify(fixesOnly)));
  });
});

describe('capFixes', () => {
  it('keeps the worst entries that fit and counts the rest as omitted', () => {
    const nginx = fixtures.find((f) => f.name === 'real-world/trustdsai-nginx-1.19.json');
    const fixes = statusOf({ phase: 'Scanned', result: nginx?.result as ScanState['result'] & object, scannedAt: SCANNED_AT }, ALL).fixes ?? [];
    expect(fixes.length).toBeGreaterThan(10);
    const capped = capFixes(fixes, { maxBytes: 2048, maxCount: 100 });
    expect(capped.fixes).toEqual(fixes.slice(0, capped.fixes.length));
    expect(capped.fixes.length).toBeGreaterThan(0);
    expect(capped.omitted).toBe(fixes.length - capped.fixes.length);
    expect(Buffer.byteLength(JSON.stringify(capped.fixes))).toBeLessThanOrEqual(2048);
    expect(capFixes(fixes, { maxBytes: 1e9, maxCount: 3 })).toMatchObject({ fixes: fixes.slice(0, 3), omitted: fixes.length - 3 });
    // The cap in a report: the summary keeps every count, the entries left out are counted by severity.
    const status = statusOf({ phase: 'Scanned', result: nginx?.result as ScanState['result'] & object, scannedAt: SCANNED_AT }, { ...ALL, maxFixBytes: 2048 });
    expect(status.fixesOmitted).toBe(capped.omitted);
    expect(status.fixesOmittedCounts).toEqual(capped.omittedCounts);
    const all = [...(status.fixes ?? []), ...fixes.slice(capped.fixes.length)];
    expect(all.reduce((n, f) => n + counted(f), 0)).toBe(status.summary?.fixable);
    expect(countBySeverity(status)).toEqual(countBySeverity(statusOf({ phase: 'Scanned', result: nginx?.result as ScanState['result'] & object, scannedAt: SCANNED_AT }, ALL)));
  });
});

describe('a report written before status.fixes', () => {
  it.each(fixtures.map((f) => [f.name, f.result] as const))('%s: an uncapped old list gives the same fixes as a scan, without a rescan', (_name, result) => {
    const old = statusOf({ phase: 'Scanned', result, scannedAt: SCANNED_AT }, { details: 'full', ...ALL });
    const { fixes: _fixes, fixesOmitted: _omitted, ...oldFormat } = old;
    const kept = preparedScanState(scanStateFromReport(reportWith(oldFormat)));
    expect(kept.detailsIncomplete).toBeUndefined();
    const fresh = statusOf({ phase: 'Scanned', result, scannedAt: SCANNED_AT });
    expect(JSON.stringify(statusOf(kept))).toBe(JSON.stringify(fresh));
  });

  it('a capped old list that left fixable vulnerabilities out cannot give the fixes: only a scan completes them', () => {
    const nginx = fixtures.find((f) => f.name === 'real-world/trustdsai-nginx-1.19.json')?.result;
    if (nginx === undefined) throw new Error('fixture');
    const old = statusOf({ phase: 'Scanned', result: nginx, scannedAt: SCANNED_AT }, { details: 'full', maxVulnerabilities: 100 });
    const { fixes: _fixes, fixesOmitted: _omitted, ...oldFormat } = old;
    expect(oldFormat.vulnerabilitiesOmitted).toBeGreaterThan(0);
    expect(preparedScanState(scanStateFromReport(reportWith(oldFormat))).detailsIncomplete).toBe(true);
    // Capped, but every fixable entry listed (here: none was fixable beyond the cap): exact, no scan.
    const fixableFirst = { ...nginx, vulnerabilities: nginx.vulnerabilities.filter((v) => v.fixedVersion !== undefined) };
    const listed = statusOf({ phase: 'Scanned', result: { ...fixableFirst, summary: nginx.summary }, scannedAt: SCANNED_AT }, { details: 'full', ...ALL });
    const { fixes: _f, fixesOmitted: _o, ...listedFormat } = listed;
    const capped = reportWith({ ...listedFormat, vulnerabilitiesOmitted: nginx.summary.total - nginx.summary.fixable });
    expect(preparedScanState(scanStateFromReport(capped)).detailsIncomplete).toBeUndefined();
  });

  it('a report with fixes only cannot give --report-details=full its list; a new-format report rebuilds to itself', () => {
    const nginx = fixtures.find((f) => f.name === 'real-world/trustdsai-nginx-1.19.json')?.result;
    if (nginx === undefined) throw new Error('fixture');
    const written = statusOf({ phase: 'Scanned', result: nginx, scannedAt: SCANNED_AT });
    const state = scanStateFromReport(reportWith(written));
    expect(preparedScanState(state, { details: 'full' }).detailsIncomplete).toBe(true);
    const kept = preparedScanState(state);
    expect(kept.detailsIncomplete).toBeUndefined();
    expect(JSON.stringify(statusOf(kept))).toBe(JSON.stringify(written));
  });
});
