// The ImageScanReport custom resource: its API names, label keys and TypeScript shape.
// Names are declared once here; everything else imports them.
import type { KubernetesObject, V1Condition } from '@kubernetes/client-node';
import type { Vulnerability, VulnerabilitySummary } from '../scanner/scan-result.js';

export const REPORT_GROUP = 'imagescan.dev';
export const REPORT_VERSION = 'v1alpha1';
export const REPORT_API_VERSION = `${REPORT_GROUP}/${REPORT_VERSION}`;
export const REPORT_KIND = 'ImageScanReport';
export const REPORT_PLURAL = 'imagescanreports';

export const FIELD_MANAGER = 'imagescan-operator';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'imagescan-operator';
export const LABEL_DIGEST = 'imagescan.dev/digest';
export const LABEL_TEAM = 'imagescan.dev/team';
export const UNASSIGNED_TEAM = 'unassigned';

export const REPORT_PHASES = ['Pending', 'Scanning', 'Scanned', 'Failed'] as const;
export type ReportPhase = (typeof REPORT_PHASES)[number];

export interface ImageScanReportSpec {
  /** The reference as the pod spec writes it, e.g. nginx:1.25. */
  image: string;
  /** Fully qualified repository, e.g. docker.io/library/nginx. */
  repository: string;
  /** sha256:<64 hex>. */
  digest: string;
}

/** A vulnerability as a report lists it: the scan's entry without its class, target optional. */
export type ReportVulnerability = Omit<Vulnerability, 'class' | 'target'> & { target?: string };

/**
 * What to upgrade: the fixable vulnerabilities of one (target, package, installed version). The counts
 * are of fixable vulnerabilities only, one per vulnerability entry of Trivy's list; `ids` has one id
 * per counted entry (the same CVE at two paths of one package twice), worst first, so the first
 * `critical` ids are the CRITICAL ones.
 */
export interface ReportFix {
  target: string;
  package: string;
  installedVersion: string;
  /** The distinct versions Trivy names as fixing them, as it writes them (its FixedVersion split at commas). */
  fixedVersions: string[];
  critical: number;
  high: number;
  medium: number;
  low: number;
  unknown: number;
  ids: string[];
}

/** Fixable vulnerabilities by severity, as a fix entry counts them. */
export interface FixCounts {
  critical: number;
  high: number;
  medium: number;
  low: number;
  unknown: number;
}

/** --report-details: `fixes` writes status.fixes only; `full` also the per-vulnerability list. */
export const REPORT_DETAILS = ['fixes', 'full'] as const;
export type ReportDetails = (typeof REPORT_DETAILS)[number];

export interface ReportWorkload {
  kind: string;
  name: string;
}

/** One rule of one ImageScanPolicy that the report's image breaks (status.policy.violations[]). */
export interface ReportPolicyViolation {
  policy: string;
  /** A rule name of design.md: registry, critical, high, fixableCritical, fixableHigh. */
  rule: string;
  message: string;
}

export const POLICY_RESULTS = ['Pass', 'Fail'] as const;
export type PolicyResult = (typeof POLICY_RESULTS)[number];

/**
 * status.policy: the verdict of the ImageScanPolicies that govern the report's namespace. Written by
 * the policy audit alone (merge patches naming only this key); the report reconciler never writes it.
 */
export interface ReportPolicyStatus {
  result: PolicyResult;
  violations: ReportPolicyViolation[];
}

export interface ImageScanReportStatus {
  phase?: ReportPhase;
  lastScanTime?: string;
  scanner?: { name: 'Trivy'; version?: string; dbUpdatedAt?: string };
  summary?: VulnerabilitySummary;
  fixes?: ReportFix[];
  fixesOmitted?: number;
  /** The fixable vulnerabilities of the entries the cap left out, by severity (only when fixesOmitted > 0). */
  fixesOmittedCounts?: FixCounts;
  vulnerabilities?: ReportVulnerability[];
  vulnerabilitiesOmitted?: number;
  workloads?: ReportWorkload[];
  team?: string;
  message?: string;
  /** Failed scan attempts in a row since the last success (Failed reports only). */
  failedScanAttempts?: number;
  /** When a Failed report's digest is tried next (RFC 3339). */
  nextRetryTime?: string;
  conditions?: V1Condition[];
  /** Absent where no policy governs the namespace. */
  policy?: ReportPolicyStatus;
}

export interface ImageScanReport extends KubernetesObject {
  apiVersion: typeof REPORT_API_VERSION;
  kind: typeof REPORT_KIND;
  spec: ImageScanReportSpec;
  status?: ImageScanReportStatus;
}
