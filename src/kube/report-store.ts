// Reads and writes ImageScanReports through CustomObjectsApi. Writes are merge patches, so arrays
// (vulnerabilities, workloads) are replaced whole and a field set to null is removed.
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { CustomObjectsApi } from '@kubernetes/client-node';
import type { ImageScanReport, ImageScanReportSpec, ImageScanReportStatus } from '../reports/image-scan-report.js';
import { FIELD_MANAGER, REPORT_GROUP, REPORT_PLURAL, REPORT_VERSION } from '../reports/image-scan-report.js';
import { sameDetails } from '../reports/report-builder.js';
import { isNotFound, toKubeApiError } from './api-error.js';

/** The report writes reconcile needs. Every method throws KubeApiError on failure. */
export interface ReportStore {
  /** Creates the report (the API server drops `status` on create; write it with patchStatus). */
  create(report: ImageScanReport): Promise<ImageScanReport>;
  /** Reads one report; undefined when it does not exist. */
  get(namespace: string, name: string): Promise<ImageScanReport | undefined>;
  /**
   * Replaces the status of `report` with `status`: fields of `report.status` that `status` lacks are
   * removed, and lists (fixes, vulnerabilities) equal to the report's are left as they are rather than sent again.
   * status.policy is never sent: the policy audit owns it (and reads it from the informer, not from
   * what this returns). Returns the report as written: the server's metadata, the report's spec, and `status`.
   */
  patchStatus(report: ImageScanReport, status: ImageScanReportStatus): Promise<ImageScanReport>;
  /** Brings labels and spec back to the desired values (merge patch on the main resource). */
  patchMetadata(namespace: string, name: string, patch: { labels?: Record<string, string | null>; spec?: ImageScanReportSpec }): Promise<ImageScanReport>;
  /** Deletes the report; a report that is already gone is not an error. */
  delete(namespace: string, name: string): Promise<void>;
}

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/**
 * A status write asks for the report's metadata only, as client-go's metadata client does, with the
 * whole object as the fallback. The whole report would be parsed only to be slimmed: in the
 * 10,000-pod bench that was the list of every report again on each write (bench/README.md).
 */
const METADATA_ANSWER = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';
const STATUS_PATCH = setHeaderOptions('Accept', METADATA_ANSWER, MERGE_PATCH);

/**
 * `next` as a merge patch over `previous`: a merge patch merges objects key by key and replaces
 * arrays, so a key that `previous` has and `next` lacks is sent as null, at every level of objects.
 * A key that `next` has with the value undefined is not sent, so the server keeps its value (a slim
 * status keeps its list that way: see slimStatus).
 */
function replacing(previous: object | undefined, next: object): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...next };
  for (const [key, old] of Object.entries(previous ?? {})) {
    const now = patch[key];
    if (!(key in patch)) patch[key] = null;
    else if (isPlainObject(old) && isPlainObject(now)) patch[key] = replacing(old, now);
  }
  return patch;
}

function isPlainObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The report after a status write of `status`: the whole report when the server sent it, else the
 * metadata it sent (new resourceVersion) with the report's spec and the status written.
 */
export function reportAfterStatusWrite(answer: unknown, report: ImageScanReport, status: ImageScanReportStatus): ImageScanReport {
  const partial = answer as { kind?: unknown; metadata?: ImageScanReport['metadata'] };
  if (partial.kind !== 'PartialObjectMetadata') return answer as ImageScanReport;
  return { apiVersion: report.apiVersion, kind: report.kind, metadata: partial.metadata ?? {}, spec: report.spec, status };
}

/** A ReportStore on the real API (or the fake API server). */
export class KubeReportStore implements ReportStore {
  constructor(private readonly custom: CustomObjectsApi) {}

  async create(report: ImageScanReport): Promise<ImageScanReport> {
    const namespace = report.metadata?.namespace ?? '';
    try {
      const created: unknown = await this.custom.createNamespacedCustomObject({
        group: REPORT_GROUP,
        version: REPORT_VERSION,
        plural: REPORT_PLURAL,
        namespace,
        body: report,
        fieldManager: FIELD_MANAGER,
      });
      return created as ImageScanReport;
    } catch (err) {
      throw toKubeApiError(err, `creating report ${namespace}/${report.metadata?.name ?? ''}`);
    }
  }

  async get(namespace: string, name: string): Promise<ImageScanReport | undefined> {
    try {
      const found: unknown = await this.custom.getNamespacedCustomObject({
        group: REPORT_GROUP,
        version: REPORT_VERSION,
        plural: REPORT_PLURAL,
        namespace,
        name,
      });
      return found as ImageScanReport;
    } catch (err) {
      const apiError = toKubeApiError(err, `reading report ${namespace}/${name}`);
      if (isNotFound(apiError)) return undefined;
      throw apiError;
    }
  }

  async patchStatus(report: ImageScanReport, status: ImageScanReportStatus): Promise<ImageScanReport> {
    const namespace = report.metadata?.namespace ?? '';
    const name = report.metadata?.name ?? '';
    const body = replacing(report.status, status);
    // A merge patch leaves alone what it does not name: lists the report already holds are not sent
    // again. A rescan with unchanged results then sends a few hundred bytes per report instead of the
    // fix entries (and, with --report-details=full, up to 500 vulnerabilities) each.
    if (report.status !== undefined && (status.fixes !== undefined || status.vulnerabilities !== undefined) && sameDetails(report.status, status)) {
      delete body.fixes;
      delete body.vulnerabilities;
    }
    // Neither removed (the key is missing from what reconcile wants) nor sent back from a cached copy
    // that may predate the audit's last write.
    delete body.policy;
    try {
      const answer: unknown = await this.custom.patchNamespacedCustomObjectStatus(
        { group: REPORT_GROUP, version: REPORT_VERSION, plural: REPORT_PLURAL, namespace, name, body: { status: body }, fieldManager: FIELD_MANAGER },
        STATUS_PATCH,
      );
      return reportAfterStatusWrite(answer, report, status);
    } catch (err) {
      throw toKubeApiError(err, `patching status of report ${namespace}/${name}`);
    }
  }

  async patchMetadata(
    namespace: string,
    name: string,
    patch: { labels?: Record<string, string | null>; spec?: ImageScanReportSpec },
  ): Promise<ImageScanReport> {
    const body: Record<string, unknown> = {};
    if (patch.labels !== undefined) body.metadata = { labels: patch.labels };
    if (patch.spec !== undefined) body.spec = patch.spec;
    try {
      const patched: unknown = await this.custom.patchNamespacedCustomObject(
        { group: REPORT_GROUP, version: REPORT_VERSION, plural: REPORT_PLURAL, namespace, name, body, fieldManager: FIELD_MANAGER },
        MERGE_PATCH,
      );
      return patched as ImageScanReport;
    } catch (err) {
      throw toKubeApiError(err, `patching report ${namespace}/${name}`);
    }
  }

  async delete(namespace: string, name: string): Promise<void> {
    try {
      await this.custom.deleteNamespacedCustomObject({ group: REPORT_GROUP, version: REPORT_VERSION, plural: REPORT_PLURAL, namespace, name });
    } catch (err) {
      const apiError = toKubeApiError(err, `deleting report ${namespace}/${name}`);
      if (isNotFound(apiError)) return;
      throw apiError;
    }
  }
}
