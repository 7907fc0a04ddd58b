// ImageScanReports for metrics tests, built from real Trivy JSON read raw (not through our parser),
// so expectations do not depend on the code under test.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImageScanReport, ImageScanReportStatus, ReportVulnerability } from '../../src/reports/image-scan-report.js';
import { SEVERITIES } from '../../src/scanner/scan-result.js';
import type { Severity } from '../../src/scanner/scan-result.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const trivyFixtures = path.resolve(repoRoot, 'test/fixtures/trivy');

interface RawTrivy {
  Results?: {
    Target: string;
    Vulnerabilities?: { VulnerabilityID: string; PkgName: string; InstalledVersion: string; FixedVersion?: string; Severity: string }[];
  }[];
}

/** Every vulnerability entry of a fixture (path relative to the fixtures folder), in file order. */
export function fixtureEntries(file: string): ReportVulnerability[] {
  const raw = JSON.parse(readFileSync(path.join(trivyFixtures, file), 'utf8')) as RawTrivy;
  return (raw.Results ?? []).flatMap((result) =>
    (result.Vulnerabilities ?? []).map((v) => ({
      id: v.VulnerabilityID,
      severity: v.Severity as Severity,
      package: v.PkgName,
      installedVersion: v.InstalledVersion,
      ...(v.FixedVersion ? { fixedVersion: v.FixedVersion } : {}),
      target: result.Target,
    })),
  );
}

/** A Scanned status with the summary of all entries and the full list, sorted worst first. */
export function scannedStatus(entries: ReportVulnerability[], extra: Partial<ImageScanReportStatus> = {}): ImageScanReportStatus {
  const count = (s: Severity): number => entries.filter((e) => e.severity === s).length;
  return {
    phase: 'Scanned',
    lastScanTime: '2026-11-26T12:00:00Z',
    summary: {
      critical: count('CRITICAL'),
      high: count('HIGH'),
      medium: count('MEDIUM'),
      low: count('LOW'),
      unknown: count('UNKNOWN'),
      total: entries.length,
      fixable: entries.filter((e) => e.fixedVersion !== undefined).length,
    },
    vulnerabilities: [...entries].sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity)),
    vulnerabilitiesOmitted: 0,
    workloads: [{ kind: 'Deployment', name: 'app' }],
    ...extra,
  };
}

export function fakeReport(opts: {
  namespace: string;
  name: string;
  image: string;
  digest?: string;
  status?: ImageScanReportStatus;
}): ImageScanReport {
  const digest = opts.digest ?? `sha256:${'ab'.repeat(32)}`;
  return {
    apiVersion: 'imagescan.dev/v1alpha1',
    kind: 'ImageScanReport',
    metadata: { namespace: opts.namespace, name: opts.name },
    spec: { image: opts.image, repository: `docker.io/library/${opts.image.split(':')[0] ?? 'x'}`, digest },
    ...(opts.status ? { status: opts.status } : {}),
  };
}
