// Test support: the recorded real Trivy reports (test/fixtures/trivy), read straight from their JSON (not through the scanner's
// parser), so report tests compute their expectations independently of the code under test.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SEVERITIES, type ScanResult, type Severity, type Vulnerability } from '../../scanner/scan-result.js';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../../..');
export const FIXTURES_DIR = path.resolve(REPO_ROOT, 'test/fixtures/trivy');

interface RawVulnerability {
  VulnerabilityID: string;
  PkgName: string;
  InstalledVersion: string;
  FixedVersion?: string;
  Severity: string;
  Title?: string;
  PrimaryURL?: string;
}
interface RawReport {
  Trivy?: { Version?: string };
  Results?: { Target: string; Class?: string; Vulnerabilities?: RawVulnerability[] }[];
}

export interface TrivyFixture {
  /** Path relative to the fixtures folder, e.g. real-world/trivyweb-redis-7.json. */
  name: string;
  raw: RawReport;
  /** Every raw vulnerability entry with its Result's Target, in file order. */
  rawVulnerabilities: (RawVulnerability & { Target: string })[];
  result: ScanResult;
}

/** Every Trivy report fixture (top level and real-world), as a ScanResult built directly from the JSON. */
export function loadTrivyFixtures(): TrivyFixture[] {
  const names = [
    ...readdirSync(FIXTURES_DIR).filter((f) => f.endsWith('.json')),
    ...readdirSync(path.join(FIXTURES_DIR, 'real-world'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => `real-world/${f}`),
  ].sort();
  return names.map((name) => {
    const raw = JSON.parse(readFileSync(path.join(FIXTURES_DIR, name), 'utf8')) as RawReport;
    const rawVulnerabilities = (raw.Results ?? []).flatMap((r) => (r.Vulnerabilities ?? []).map((v) => ({ ...v, Target: r.Target })));
    const vulnerabilities: Vulnerability[] = rawVulnerabilities.map((v) => {
      const out: Vulnerability = {
        id: v.VulnerabilityID,
        severity: (SEVERITIES as readonly string[]).includes(v.Severity) ? (v.Severity as Severity) : 'UNKNOWN',
        package: v.PkgName,
        installedVersion: v.InstalledVersion,
        target: v.Target,
      };
      if (v.FixedVersion) out.fixedVersion = v.FixedVersion;
      if (v.Title) out.title = v.Title;
      if (v.PrimaryURL) out.url = v.PrimaryURL;
      return out;
    });
    const count = (s: string) => rawVulnerabilities.filter((v) => v.Severity === s).length;
    const result: ScanResult = {
      vulnerabilities,
      summary: {
        critical: count('CRITICAL'),
        high: count('HIGH'),
        medium: count('MEDIUM'),
        low: count('LOW'),
        unknown: count('UNKNOWN'),
        total: rawVulnerabilities.length,
        fixable: rawVulnerabilities.filter((v) => v.FixedVersion).length,
      },
      scanner: { name: 'Trivy', ...(raw.Trivy?.Version !== undefined ? { version: raw.Trivy.Version } : {}), dbUpdatedAt: '2026-11-26T06:00:00Z' },
    };
    return { name, raw, rawVulnerabilities, result };
  });
}
