// The scanner's domain model: what a vulnerability scan of one image digest produced.
// Plain data, independent of Trivy's JSON shape and of Kubernetes.

/** Trivy's severities, worst first. The order is used for sorting and capping. */
export const SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface Vulnerability {
  id: string;
  severity: Severity;
  package: string;
  installedVersion: string;
  /** Absent when no fix is known. May be a comma-separated list for language packages. */
  fixedVersion?: string;
  title?: string;
  /** Trivy's PrimaryURL. */
  url?: string;
  /** Trivy's Result Target, e.g. "alpine:3.19 (alpine 3.19.9)" or "Node.js". */
  target: string;
  /** Trivy's Result Class, e.g. "os-pkgs" or "lang-pkgs". */
  class?: string;
}

/** Counts as Trivy's own summary counts them: every entry once, the same CVE in two packages twice. */
export interface VulnerabilitySummary {
  critical: number;
  high: number;
  medium: number;
  low: number;
  unknown: number;
  total: number;
  /** Entries with a FixedVersion. */
  fixable: number;
}

export interface ScannerInfo {
  name: 'Trivy';
  version?: string;
  /** RFC 3339, the vulnerability DB's UpdatedAt at the time of the scan. */
  dbUpdatedAt?: string;
}

export interface ScanResult {
  /** Every vulnerability, sorted worst first by a total order (severity, package, installed version, id, target). */
  vulnerabilities: Vulnerability[];
  summary: VulnerabilitySummary;
  scanner: ScannerInfo;
  /** Trivy's Metadata.OS, e.g. "alpine 3.19.9", when detected. */
  os?: string;
}

/** The fields of a vulnerability that a sort may look at: a parsed one or a report's entry. */
export type ComparableVulnerability = Pick<Vulnerability, 'id' | 'severity' | 'package' | 'installedVersion' | 'fixedVersion' | 'title' | 'url'> & {
  target?: string;
  class?: string;
};

const SEVERITY_RANK: Readonly<Record<string, number>> = Object.fromEntries(SEVERITIES.map((s, i) => [s, i]));

/**
 * Worst first (severity, package, installed version, id, target), ties broken by every other field:
 * a total order, so equal lists in any order sort to the same bytes and a rescan with the same
 * findings writes nothing.
 */
export function compareVulnerabilities(a: ComparableVulnerability, b: ComparableVulnerability): number {
  const rank = (s: string) => SEVERITY_RANK[s] ?? SEVERITIES.length;
  return (
    rank(a.severity) - rank(b.severity) ||
    compareText(a.package, b.package) ||
    compareText(a.installedVersion, b.installedVersion) ||
    compareText(a.id, b.id) ||
    compareText(a.target, b.target) ||
    compareText(a.fixedVersion, b.fixedVersion) ||
    compareText(a.title, b.title) ||
    compareText(a.url, b.url) ||
    compareText(a.class, b.class)
  );
}

/** Code-unit order, not localeCompare: the same input must give the same bytes on every machine. */
export function compareText(a: string | undefined, b: string | undefined): number {
  const x = a ?? '';
  const y = b ?? '';
  return x < y ? -1 : x > y ? 1 : 0;
}
