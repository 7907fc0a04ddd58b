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

export interface ReportWorkload {
  kind: string;
  name: string;
}

export interface ImageScanReportStatus {
  phase?: ReportPhase;
  lastScanTime?: string;
  scanner?: { name: 'Trivy'; version?: string; dbUpdatedAt?: string };
  summary?: VulnerabilitySummary;
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
}

export interface ImageScanReport extends KubernetesObject {
  apiVersion: typeof REPORT_API_VERSION;
  kind: typeof REPORT_KIND;
  spec: ImageScanReportSpec;
  status?: ImageScanReportStatus;
}
