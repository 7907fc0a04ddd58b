import type { V1Condition } from '@kubernetes/client-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ScanResult, Vulnerability } from '../scanner/scan-result.js';
import type { ImageScanReport, ImageScanReportStatus } from './image-scan-report.js';
import {
  buildListlessStatus,
  buildReportObject,
  buildReportStatus,
  capVulnerabilities,
  preparedScanState,
  sameDetails,
  scanStateFromReport,
  statusEquals,
  statusKeepingList,
  detailsFingerprint,
  type ReportStatusInput,
  type ScanState,
} from './report-builder.js';
import { slimReport } from '../kube/cluster-objects.js';
import { countBySeverity } from '../metrics/vulnerability-counts.js';
import { loadTrivyFixtures } from './testdata/trivy-fixtures.js';

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const SCANNED_AT = new Date('2026-11-26T10:00:00.789Z');
const NOW = new Date('2026-11-26T12:34:56.321Z');
const RANK = { CRITICAL: 0, HIGH: 1, MEDIUM: 2, LOW: 3, UNKNOWN: 4 } as const;
const fixtures = loadTrivyFixtures();

// These tests hold the per-vulnerability list to what it was before status.fixes: with
// --report-details=full it is written exactly as before (report-fixes.test.ts covers the default).
const FULL = { details: 'full' } as const;

function statusInput(scan: ScanState | undefined, extra: Partial<ReportStatusInput> = {}): ReportStatusInput {
  return { scan, workloads: [{ kind: 'Deployment', name: 'web' }], team: 'payments', now: NOW, ...extra, limits: { ...FULL, ...extra.limits } };
}

function scanned(result: ScanResult): ScanState {
  return { phase: 'Scanned', result, scannedAt: SCANNED_AT };
}

/** What the API server hands back: plain JSON, times as strings. */
function roundTrip<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

describe('buildReportObject', () => {
  it('names the report after the image and digest and labels it for selection', () => {
    const report = buildReportObject({
      namespace: 'shop',
      image: 'nginx:1.25',
      repository: 'docker.io/library/nginx',
      digest: DIGEST,
      team: 'payments',
      workloads: [],
    });
    expect(report).toEqual({
      apiVersion: 'imagescan.dev/v1alpha1',
      kind: 'ImageScanReport',
      metadata: {
        name: 'nginx-0123456789ab',
        namespace: 'shop',
        labels: {
          'app.kubernetes.io/managed-by': 'imagescan-operator',
          'imagescan.dev/digest': DIGEST.slice(7, 47),
          'imagescan.dev/team': 'payments',
        },
      },
      spec: { image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest: DIGEST },
    });
    expect(report.status).toBeUndefined();
  });

  it('leaves the team label off when the team is unknown', () => {
    const report = buildReportObject({ namespace: 'a', image: 'x', repository: 'docker.io/library/x', digest: DIGEST, team: 'unassigned', workloads: [] });
    expect(report.metadata?.labels).not.toHaveProperty(['imagescan.dev/team']);
  });
});

describe('buildReportStatus from real Trivy reports', () => {
  it.each(fixtures.map((f) => [f.name, f] as const))('%s: every entry listed worst first, summary as Trivy counts', (_name, fixture) => {
    const status = buildReportStatus(statusInput(scanned(fixture.result)));
    const raw = fixture.rawVulnerabilities;
    expect(status.phase).toBe('Scanned');
    expect(status.lastScanTime).toBe('2026-11-26T10:00:00Z');
    expect(status.summary?.total).toBe(raw.length);
    expect(status.summary?.critical).toBe(raw.filter((v) => v.Severity === 'CRITICAL').length);
    expect(status.summary?.fixable).toBe(raw.filter((v) => v.FixedVersion).length);
    const kept = status.vulnerabilities ?? [];
    const omitted = status.vulnerabilitiesOmitted ?? -1;
    expect(kept.length + omitted).toBe(raw.length);
    const key = (id: string, pkg: string, version: string, fixed: string | undefined, target: string | undefined) => `${id}|${pkg}|${version}|${fixed ?? ''}|${target ?? ''}`;
    const rawKeys = raw.map((v) => key(v.VulnerabilityID, v.PkgName, v.InstalledVersion, v.FixedVersion, v.Target));
    const keptKeys = kept.map((v) => key(v.id, v.package, v.installedVersion, v.fixedVersion, v.target));
    if (omitted === 0) {
      expect([...keptKeys].sort()).toEqual([...rawKeys].sort());
    } else {
      // Capped (only the biggest real-world report): every entry of a severity worse than the last kept one survives.
      const lastKeptRank = kept.length === 0 ? 0 : RANK[kept[kept.length - 1]?.severity ?? 'UNKNOWN'];
      const mustKeep = raw.filter((v) => RANK[v.Severity as keyof typeof RANK] < lastKeptRank).map((v) => key(v.VulnerabilityID, v.PkgName, v.InstalledVersion, v.FixedVersion, v.Target));
      expect(keptKeys.filter((k) => mustKeep.includes(k)).length).toBe(mustKeep.length);
      for (const k of keptKeys) expect(rawKeys).toContain(k);
    }
    const ranks = kept.map((v) => RANK[v.severity]);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect(status.scanner).toEqual({ name: 'Trivy', version: fixture.raw.Trivy?.Version, dbUpdatedAt: '2026-11-26T06:00:00Z' });
    expect(status.conditions).toEqual([
      {
        type: 'Scanned',
        status: 'True',
        reason: 'ScanSucceeded',
        message: expect.stringContaining(`${raw.length} vulnerabilities`) as unknown,
        lastTransitionTime: new Date('2026-11-26T12:34:56Z'),
      },
    ]);
  });

  it('gives the same bytes whatever order the vulnerabilities and workloads arrive in', () => {
    const big = fixtures.find((f) => f.name.includes('trustdsai-nginx'));
    expect(big).toBeDefined();
    const result = big?.result as ScanResult;
    const workloads = [
      { kind: 'Deployment', name: 'web' },
      { kind: 'CronJob', name: 'nightly' },
      { kind: 'Deployment', name: 'api' },
    ];
    const a = buildReportStatus(statusInput(scanned(result), { workloads }));
    const shuffled = { ...result, vulnerabilities: [...result.vulnerabilities].reverse() };
    const b = buildReportStatus(statusInput(scanned(shuffled), { workloads: [...workloads].reverse() }));
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    expect(a.workloads).toEqual([
      { kind: 'CronJob', name: 'nightly' },
      { kind: 'Deployment', name: 'api' },
      { kind: 'Deployment', name: 'web' },
    ]);
  });
});

describe('buildReportStatus phases and conditions', () => {
  const result = fixtures.find((f) => f.name === 'alpine-39.json')?.result as ScanResult;

  it('is Pending with no findings before the first scan', () => {
    const status = buildReportStatus(statusInput(undefined));
    expect(status).toEqual({
      phase: 'Pending',
      workloads: [{ kind: 'Deployment', name: 'web' }],
      team: 'payments',
      conditions: [{ type: 'Scanned', status: 'False', reason: 'ScanPending', message: 'waiting for the first scan', lastTransitionTime: new Date('2026-11-26T12:34:56Z') }],
    });
  });

  it('says why a scan failed, with a reason a machine can read', () => {
    const status = buildReportStatus(
      statusInput({ phase: 'Failed', scannedAt: SCANNED_AT, failure: { reason: 'auth', message: 'registry.example.com: secret shop/pull-creds was refused' } }),
    );
    expect(status.phase).toBe('Failed');
    expect(status.message).toBe('Scan failed (auth): registry.example.com: secret shop/pull-creds was refused');
    expect(status.conditions?.[0]).toMatchObject({ status: 'False', reason: 'RegistryAuthFailed', message: 'registry.example.com: secret shop/pull-creds was refused' });
    expect(status.summary).toBeUndefined();
  });

  it('keeps the previous result visible while a rescan runs and after it fails', () => {
    const scanning = buildReportStatus(statusInput({ phase: 'Scanning', result, scannedAt: SCANNED_AT }));
    expect(scanning.summary?.total).toBe(6);
    expect(scanning.conditions?.[0]).toMatchObject({ status: 'True', reason: 'ScanSucceeded' });
    const failed = buildReportStatus(statusInput({ phase: 'Failed', result, scannedAt: SCANNED_AT, failure: { reason: 'timeout', message: 'scan took longer than 10m' } }));
    expect(failed.vulnerabilities).toHaveLength(6);
    expect(failed.conditions?.[0]).toMatchObject({ status: 'False', reason: 'ScanTimedOut' });
  });

  it('says so when the digest is a local image ID', () => {
    const status = buildReportStatus(statusInput(undefined, { localOnly: true }));
    expect(status.message).toMatch(/local image ID/);
  });

  it('moves lastTransitionTime only when the condition status changes', () => {
    const earlier = new Date('2026-11-20T08:00:00Z');
    const previous: V1Condition[] = roundTrip([{ type: 'Scanned', status: 'True', reason: 'ScanSucceeded', message: 'x', lastTransitionTime: earlier }]);
    const same = buildReportStatus(statusInput(scanned(result), { previousConditions: previous }));
    expect(same.conditions?.[0]?.lastTransitionTime).toEqual(earlier);
    const changed = buildReportStatus(
      statusInput({ phase: 'Failed', failure: { reason: 'not_found', message: 'manifest unknown' } }, { previousConditions: previous }),
    );
    expect(changed.conditions?.[0]?.lastTransitionTime).toEqual(new Date('2026-11-26T12:34:56Z'));
  });

  it('records observedGeneration when given', () => {
    const status = buildReportStatus(statusInput(scanned(result), { observedGeneration: 3 }));
    expect(status.conditions?.[0]?.observedGeneration).toBe(3);
  });

  it('shortens long titles, drops over-long URLs and repairs broken unicode', () => {
    const odd: Vulnerability = {
      id: 'CVE-2026-0001',
      severity: 'HIGH',
      package: 'pkg\ud800',
      installedVersion: '1.0',
      title: '🐛'.repeat(500),
      url: `https://example.com/${'a'.repeat(2000)}`,
      target: 'app',
    };
    const status = buildReportStatus(statusInput(scanned({ ...result, vulnerabilities: [odd] })));
    const v = status.vulnerabilities?.[0];
    expect(Array.from(v?.title ?? '')).toHaveLength(256);
    expect(v?.title?.endsWith('…')).toBe(true);
    expect(v?.url).toBeUndefined();
    expect(v?.package).toBe('pkg\ufffd');
  });
});

describe('capVulnerabilities', () => {
  const many: Vulnerability[] = Array.from({ length: 10_000 }, (_, i) => ({
    id: `CVE-2026-${String(i).padStart(5, '0')}`,
    severity: (['LOW', 'UNKNOWN', 'MEDIUM', 'HIGH', 'CRITICAL'] as const)[i % 5] ?? 'LOW',
    package: `package-${i % 97}`,
    installedVersion: `1.${i % 13}.0`,
    fixedVersion: i % 3 === 0 ? undefined : `1.${i % 13}.1`,
    title: `A problem in package-${i % 97} that lets an attacker <do> & "things" ${'x'.repeat(i % 200)}`,
    url: `https://avd.aquasec.com/nvd/cve-2026-${i}`,
    target: 'debian 12.8',
  }));
  const result: ScanResult = {
    vulnerabilities: many,
    summary: { critical: 2000, high: 2000, medium: 2000, low: 2000, unknown: 2000, total: 10_000, fixable: 6666 },
    scanner: { name: 'Trivy', version: '0.58.1' },
  };

  it('keeps the worst 1000 of 10,000 and counts the rest as omitted', () => {
    const status = buildReportStatus(statusInput(scanned(result)));
    const kept = status.vulnerabilities ?? [];
    expect(kept.length).toBeLessThanOrEqual(1000);
    expect(kept.length + (status.vulnerabilitiesOmitted ?? 0)).toBe(10_000);
    // 2000 CRITICAL exist, so a cap at 1000 entries keeps only CRITICAL ones.
    expect(new Set(kept.map((v) => v.severity))).toEqual(new Set(['CRITICAL']));
    expect(status.summary?.total).toBe(10_000);
  });

  it('stops at the byte budget, counting the escapes the API server writes', () => {
    const all = buildReportStatus(statusInput(scanned(result), { limits: { maxVulnerabilities: 100_000, maxVulnerabilityBytes: 100_000 } }));
    const json = JSON.stringify(all.vulnerabilities).replace(/[<>&]/g, '\\u003c');
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(100_000);
    expect(all.vulnerabilities?.length).toBeGreaterThan(100);
    const ranks = (all.vulnerabilities ?? []).map((v) => RANK[v.severity]);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
  });

  it('keeps a prefix: nothing after the first entry that does not fit', () => {
    const vulns = [{ id: 'a', severity: 'CRITICAL', package: 'p', installedVersion: '1' }, { id: 'b'.repeat(200), severity: 'HIGH', package: 'p', installedVersion: '1' }, { id: 'c', severity: 'LOW', package: 'p', installedVersion: '1' }] as const;
    const capped = capVulnerabilities(vulns, { maxBytes: 150, maxCount: 10 });
    expect(capped.vulnerabilities.map((v) => v.id)).toEqual(['a']);
    expect(capped.omitted).toBe(2);
  });
});

describe('statusEquals', () => {
  const result = fixtures.find((f) => f.name === 'debian-buster.json')?.result as ScanResult;
  const current = buildReportStatus(statusInput(scanned(result)));

  it('sees no change in what the API server returns for the status it was given', () => {
    const fromServer = roundTrip(current);
    // metav1.Time is stored in whole seconds without a fraction.
    (fromServer.conditions?.[0] as unknown as Record<string, string>).lastTransitionTime = '2026-11-26T12:34:56Z';
    const reordered = Object.fromEntries(Object.entries(fromServer).reverse()) as ImageScanReportStatus;
    expect(statusEquals(reordered, buildReportStatus(statusInput(scanned(result), { previousConditions: reordered.conditions, now: new Date() })))).toBe(true);
  });

  it('ignores key order at every depth and fields without a value, but not a changed condition', () => {
    const fromServer = roundTrip(current);
    const { scanner, summary } = fromServer;
    if (scanner === undefined || summary === undefined) throw new Error('a Scanned status has scanner and summary');
    const reversed = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).reverse()) as T;
    const reordered: ImageScanReportStatus = {
      ...reversed(fromServer),
      scanner: reversed(scanner),
      summary: reversed(summary),
      conditions: fromServer.conditions?.map((c) => reversed(c)),
      message: undefined,
    };
    expect(statusEquals(current, reordered)).toBe(true);
    const otherMessage = { ...reordered, conditions: reordered.conditions?.map((c) => ({ ...c, message: `${c.message} (again)` })) };
    expect(statusEquals(current, otherMessage)).toBe(false);
    const otherScanner = { ...reordered, scanner: { ...scanner, version: '0.0.1' } };
    expect(statusEquals(current, otherScanner)).toBe(false);
  });

  it('sees a rescan with the same findings as a change (lastScanTime moved)', () => {
    const rescanned = buildReportStatus(statusInput({ ...scanned(result), scannedAt: new Date('2026-11-26T22:00:00Z') }, { previousConditions: current.conditions }));
    expect(statusEquals(current, rescanned)).toBe(false);
  });

  it('sees changed findings, team, workloads and phase as changes', () => {
    const variants: ImageScanReportStatus[] = [
      buildReportStatus(statusInput(scanned({ ...result, vulnerabilities: result.vulnerabilities.slice(1) }))),
      buildReportStatus(statusInput(scanned(result), { team: 'search' })),
      buildReportStatus(statusInput(scanned(result), { workloads: [] })),
      buildReportStatus(statusInput({ ...scanned(result), phase: 'Scanning' })),
    ];
    for (const v of variants) expect(statusEquals(current, v)).toBe(false);
    expect(statusEquals(undefined, current)).toBe(false);
  });
});

describe('buildListlessStatus', () => {
  it.each(fixtures.map((f) => [f.name, f.result] as const))(
    '%s: compares like the status with its list, and holds everything else of it',
    (_name, result) => {
      const prepared = preparedScanState(scanned(result), { ...FULL, maxVulnerabilities: 100 });
      const full = buildReportStatus(statusInput(prepared, { limits: { maxVulnerabilities: 100 } }));
      const fromServer = roundTrip(full);
      const { result: withList, ...rest } = prepared;
      const outline = withList === undefined ? rest : { ...rest, result: { summary: withList.summary, scanner: withList.scanner } };
      const listless = buildListlessStatus({ ...statusInput(undefined, { limits: { maxVulnerabilities: 100 }, previousConditions: fromServer.conditions }), scan: outline });
      if (listless === undefined) throw new Error('a prepared state gives a listless status');
      expect(listless.vulnerabilities).toBeUndefined();
      expect(listless.fixes).toBeUndefined();
      expect(roundTrip(listless)).toEqual(roundTrip({ ...full, fixes: undefined, vulnerabilities: undefined }));
      expect(statusEquals(fromServer, listless)).toBe(true);
      expect(sameDetails(fromServer, listless)).toBe(true);

      // The report's list without its worst entry, under the same summary, is a change.
      if (withList === undefined || withList.vulnerabilities.length === 0) return;
      const other = preparedScanState(scanned({ ...result, vulnerabilities: withList.vulnerabilities.slice(1) }), { ...FULL, maxVulnerabilities: 100 });
      const changed = buildListlessStatus({ ...statusInput(undefined, { limits: { maxVulnerabilities: 100 } }), scan: { ...outline, preparedListFingerprint: other.preparedListFingerprint } });
      if (changed === undefined) throw new Error('a prepared state gives a listless status');
      expect(statusEquals(fromServer, changed)).toBe(false);
    },
  );

  it('needs the list when it was not prepared, and builds a status without result as buildReportStatus does', () => {
    const result = fixtures.find((f) => f.name === 'debian-buster.json')?.result as ScanResult;
    expect(buildListlessStatus({ ...statusInput(undefined), scan: { phase: 'Scanned', result: { summary: result.summary, scanner: result.scanner } } })).toBeUndefined();
    const failed: ScanState = { phase: 'Failed', scannedAt: SCANNED_AT, failure: { reason: 'timeout', message: 'no answer in 10m' } };
    expect(buildListlessStatus({ ...statusInput(undefined), scan: failed })).toEqual(buildReportStatus(statusInput(failed)));
  });
});

describe('statusKeepingList', () => {
  const result = fixtures.find((f) => f.name === 'alpine-39.json')?.result as ScanResult;
  const prepared = preparedScanState(scanned(result), { ...FULL, maxVulnerabilities: 100 });
  const { result: withList, ...rest } = prepared;
  if (withList === undefined) throw new Error('alpine-39 has a result');
  const outline = { ...rest, result: { summary: withList.summary, scanner: withList.scanner } };
  const onServer = roundTrip(buildReportStatus(statusInput(prepared, { limits: { maxVulnerabilities: 100 } })));
  const cached = slimReport({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanReport', metadata: { name: 'r', namespace: 'n' }, spec: { image: 'i', repository: 'r', digest: DIGEST }, status: onServer }).report.status;

  it('writes a new workload over a report holding the same list without the list, with the facts of the list', () => {
    const listless = buildListlessStatus({ ...statusInput(undefined, { workloads: [{ kind: 'Deployment', name: 'api' }] }), scan: outline });
    if (listless === undefined) throw new Error('prepared');
    const toWrite = statusKeepingList(cached, listless);
    expect(toWrite).toBeDefined();
    expect(toWrite?.vulnerabilities).toBeUndefined();
    expect(toWrite?.workloads).toEqual([{ kind: 'Deployment', name: 'api' }]);
    expect(sameDetails(toWrite, onServer)).toBe(true);
    expect(countBySeverity(toWrite)).toEqual(countBySeverity(onServer));
  });

  it('needs the list when the report holds another list, another summary, or is not slim', () => {
    const fewer = preparedScanState(scanned({ ...result, vulnerabilities: withList.vulnerabilities.slice(1) }), { ...FULL, maxVulnerabilities: 100 });
    const otherList = buildListlessStatus({ ...statusInput(undefined), scan: { ...outline, preparedListFingerprint: fewer.preparedListFingerprint } });
    if (otherList === undefined) throw new Error('prepared');
    expect(statusKeepingList(cached, otherList)).toBeUndefined();
    // Same list, one more LOW beyond it: the fixable counts the metrics use could differ.
    const summary = { ...withList.summary, low: withList.summary.low + 1, total: withList.summary.total + 1 };
    const otherSummary = buildListlessStatus({ ...statusInput(undefined), scan: { ...outline, result: { ...outline.result, summary } } });
    if (otherSummary === undefined) throw new Error('prepared');
    expect(statusKeepingList(cached, otherSummary)).toBeUndefined();
    const same = buildListlessStatus({ ...statusInput(undefined), scan: outline });
    if (same === undefined) throw new Error('prepared');
    expect(statusKeepingList(onServer, same)).toBeUndefined();
    expect(statusKeepingList(undefined, same)).toBeUndefined();
  });
});

describe('scanStateFromReport', () => {
  function reportWith(status: ImageScanReportStatus): ImageScanReport {
    const report = buildReportObject({ namespace: 'shop', image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest: DIGEST, team: 'payments', workloads: [] });
    return roundTrip({ ...report, status });
  }

  it.each(fixtures.map((f) => [f.name, f.result] as const))('%s: rebuilding the status from the report gives the same status', (_name, result) => {
    const status = buildReportStatus(statusInput(scanned(result)));
    const report = reportWith(status);
    const state = scanStateFromReport(report);
    expect(state.phase).toBe('Scanned');
    expect(state.scannedAt).toEqual(new Date('2026-11-26T10:00:00Z'));
    expect(state.result?.summary).toEqual(result.summary);
    const rebuilt = buildReportStatus(statusInput(state, { previousConditions: report.status?.conditions }));
    expect(statusEquals(report.status, rebuilt)).toBe(true);
  });

  it('keeps the omitted count of a capped report', () => {
    const vulns: Vulnerability[] = Array.from({ length: 3000 }, (_, i) => ({ id: `CVE-${i}`, severity: 'MEDIUM', package: 'p', installedVersion: '1', target: 't' }));
    const result: ScanResult = { vulnerabilities: vulns, summary: { critical: 0, high: 0, medium: 3000, low: 0, unknown: 0, total: 3000, fixable: 0 }, scanner: { name: 'Trivy' } };
    const report = reportWith(buildReportStatus(statusInput(scanned(result))));
    expect(report.status?.vulnerabilitiesOmitted).toBe(2000);
    const rebuilt = buildReportStatus(statusInput(scanStateFromReport(report), { previousConditions: report.status?.conditions }));
    expect(rebuilt.vulnerabilitiesOmitted).toBe(2000);
    expect(statusEquals(report.status, rebuilt)).toBe(true);
  });

  it.each(fixtures.map((f) => [f.name, f.result] as const))(
    '%s: a prepared list (the kept list, JSON round trip, its fingerprint) builds the same status as the scan result',
    (_name, result) => {
      const status = buildReportStatus(statusInput(scanned(result)));
      const kept = scanStateFromReport(reportWith(status));
      const prepared: ScanState = { ...kept, result: roundTrip(kept.result), preparedListFingerprint: detailsFingerprint(status.fixes, status.vulnerabilities) };
      const rebuilt = buildReportStatus(statusInput(prepared, { previousConditions: status.conditions }));
      expect(statusEquals(status, rebuilt)).toBe(true);
      expect(roundTrip(rebuilt.vulnerabilities)).toEqual(roundTrip(status.vulnerabilities)?.map((v) => expect.objectContaining(v)));
      expect(rebuilt.vulnerabilitiesOmitted).toBe(status.vulnerabilitiesOmitted);
    },
  );

  it.each(fixtures.map((f) => [f.name, f.result] as const))(
    '%s: preparedScanState keeps the list a report holds, which builds the same status after a JSON round trip',
    (_name, result) => {
      const status = buildReportStatus(statusInput(scanned(result)));
      const prepared = preparedScanState(scanned(result), FULL);
      expect(prepared.preparedListFingerprint).toBe(detailsFingerprint(status.fixes, status.vulnerabilities));
      expect(prepared.vulnerabilitiesOmitted).toBe(status.vulnerabilitiesOmitted);
      const rebuilt = buildReportStatus(statusInput({ ...prepared, result: roundTrip(prepared.result) }, { previousConditions: status.conditions }));
      expect(statusEquals(status, rebuilt)).toBe(true);
      expect(rebuilt.vulnerabilitiesOmitted).toBe(status.vulnerabilitiesOmitted);
    },
  );

  it('restores a failure with its reason', () => {
    const report = reportWith(buildReportStatus(statusInput({ phase: 'Failed', scannedAt: SCANNED_AT, failure: { reason: 'invalid_output', message: 'not JSON' } })));
    expect(scanStateFromReport(report)).toEqual({
      phase: 'Failed',
      scannedAt: new Date('2026-11-26T10:00:00Z'),
      failure: { reason: 'invalid_output', message: 'not JSON' },
    });
  });

  it('treats a report without status as Pending', () => {
    const report = buildReportObject({ namespace: 'shop', image: 'nginx', repository: 'docker.io/library/nginx', digest: DIGEST, team: 'x', workloads: [] });
    expect(scanStateFromReport(report)).toEqual({ phase: 'Pending' });
  });
});

describe('restart round trip (property)', () => {
  const text = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 700 }), fc.constantFrom('', '<&>', '\ud800x', '🐛'.repeat(300)));
  const vulnerability: fc.Arbitrary<Vulnerability> = fc.record(
    {
      id: text,
      severity: fc.constantFrom('CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'),
      package: text,
      installedVersion: text,
      fixedVersion: text,
      title: text,
      url: text,
      target: text,
    },
    { requiredKeys: ['id', 'severity', 'package', 'installedVersion', 'target'] },
  );

  it('a report read back after a restart rebuilds to an equal status, so a restart writes nothing', () => {
    fc.assert(
      fc.property(fc.array(vulnerability, { maxLength: 60 }), fc.integer({ min: 1, max: 40 }), (vulns, maxVulnerabilities) => {
        const result: ScanResult = {
          vulnerabilities: vulns,
          summary: { critical: 0, high: 0, medium: 0, low: 0, unknown: 0, total: vulns.length, fixable: 0 },
          scanner: { name: 'Trivy', version: '0.58.1' },
        };
        const limits = { maxVulnerabilities };
        const status = buildReportStatus(statusInput(scanned(result), { limits }));
        const report = roundTrip({ ...buildReportObject({ namespace: 'a', image: 'x', repository: 'docker.io/library/x', digest: DIGEST, team: 't', workloads: [] }), status });
        const rebuilt = buildReportStatus(statusInput(scanStateFromReport(report), { limits, previousConditions: report.status?.conditions, now: new Date() }));
        expect(statusEquals(report.status, rebuilt)).toBe(true);
        expect(JSON.stringify(roundTrip(rebuilt).vulnerabilities)).toBe(JSON.stringify(report.status?.vulnerabilities));
      }),
      { numRuns: 300 },
    );
  });
});
