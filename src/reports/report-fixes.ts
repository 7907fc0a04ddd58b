// status.fixes: what to upgrade, worked out from a report's vulnerability list. Pure.
import { compareText, compareVulnerabilities, SEVERITIES, type Severity } from '../scanner/scan-result.js';
import type { FixCounts, ReportFix, ReportVulnerability } from './image-scan-report.js';

const COUNT_FIELD: Readonly<Record<Severity, 'critical' | 'high' | 'medium' | 'low' | 'unknown'>> = {
  CRITICAL: 'critical',
  HIGH: 'high',
  MEDIUM: 'medium',
  LOW: 'low',
  UNKNOWN: 'unknown',
};

/** True when Trivy named a version that fixes it (Trivy leaves FixedVersion out or empty otherwise). */
export function hasFix(v: { fixedVersion?: string | undefined }): boolean {
  return v.fixedVersion !== undefined && v.fixedVersion.trim() !== '';
}

/**
 * One entry per (target, package, installed version) with at least one fixable vulnerability, every
 * fixable entry of `vulns` counted in exactly one of them; sorted worst first (see compareFixes). Trivy
 * writes several fixing versions as one FixedVersion joined by ", " (language packages: one per release
 * line); they are split and kept as written, distinct, in the order of the worst vulnerability first.
 */
export function fixesOf(vulns: readonly ReportVulnerability[]): ReportFix[] {
  const groups = new Map<string, ReportVulnerability[]>();
  for (const v of vulns) {
    if (!hasFix(v)) continue;
    const key = JSON.stringify([v.target ?? '', v.package, v.installedVersion]);
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = []));
    group.push(v);
  }
  const fixes: ReportFix[] = [];
  for (const group of groups.values()) {
    group.sort(compareVulnerabilities);
    const first = group[0] as ReportVulnerability;
    const fix: ReportFix = {
      target: first.target ?? '',
      package: first.package,
      installedVersion: first.installedVersion,
      fixedVersions: [],
      critical: 0,
      high: 0,
      medium: 0,
      low: 0,
      unknown: 0,
      ids: [],
    };
    const versions = new Set<string>();
    for (const v of group) {
      for (const part of (v.fixedVersion ?? '').split(',')) {
        const version = part.trim();
        if (version !== '') versions.add(version);
      }
      fix[COUNT_FIELD[v.severity] ?? 'unknown'] += 1;
      fix.ids.push(v.id);
    }
    fix.fixedVersions = [...versions];
    fixes.push(fix);
  }
  return fixes.sort(compareFixes);
}

/**
 * Worst first: more CRITICAL, then more HIGH, and so on down the severities; ties by package,
 * installed version and target (unique together, so the order is total and the bytes stable).
 */
export function compareFixes(a: ReportFix, b: ReportFix): number {
  for (const severity of SEVERITIES) {
    const field = COUNT_FIELD[severity];
    if (a[field] !== b[field]) return b[field] - a[field];
  }
  return compareText(a.package, b.package) || compareText(a.installedVersion, b.installedVersion) || compareText(a.target, b.target);
}

/** How many vulnerabilities the entries count (each entry's severities added up). */
export function countedVulnerabilities(fixes: readonly ReportFix[]): number {
  let n = 0;
  for (const f of fixes) n += countOf(f.critical) + countOf(f.high) + countOf(f.medium) + countOf(f.low) + countOf(f.unknown);
  return n;
}

/** Fixable vulnerabilities per severity, as the entries count them. */
export function fixableBySeverity(fixes: readonly ReportFix[]): Record<Severity, number> {
  const out: Record<Severity, number> = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0, UNKNOWN: 0 };
  for (const f of fixes) for (const severity of SEVERITIES) out[severity] += countOf(f[COUNT_FIELD[severity]]);
  return out;
}

/**
 * The fixable CRITICAL vulnerabilities of the entries as `id|package|installedVersion` (one per
 * vulnerability): an entry's ids are worst first, so its first `critical` ids are the CRITICAL ones.
 */
export function fixableCriticalIdsOfFixes(fixes: readonly ReportFix[]): string[] {
  const out: string[] = [];
  for (const f of fixes) {
    const ids = Array.isArray(f.ids) ? f.ids : [];
    for (const id of ids.slice(0, countOf(f.critical))) out.push(`${id}|${f.package}|${f.installedVersion}`);
  }
  return out;
}

/** The entries' counts added up by severity, plus `extra` (e.g. counts of entries a cap left out). */
export function sumFixCounts(fixes: readonly ReportFix[], extra?: Partial<FixCounts>): FixCounts {
  const out: FixCounts = { critical: countOf(extra?.critical), high: countOf(extra?.high), medium: countOf(extra?.medium), low: countOf(extra?.low), unknown: countOf(extra?.unknown) };
  for (const f of fixes) for (const severity of SEVERITIES) out[COUNT_FIELD[severity]] += countOf(f[COUNT_FIELD[severity]]);
  return out;
}

/** A count read from the API server: anything but a non-negative integer counts as 0. */
function countOf(value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : 0;
}
