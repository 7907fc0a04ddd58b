// Reads and writes ImageScanReports through CustomObjectsApi. Writes are merge patches, so arrays
// (vulnerabilities, workloads) are replaced whole and a field set to null is removed.
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { CustomObjectsApi } from '@kubernetes/client-node';
import type { ImageScanReport, ImageScanReportSpec, ImageScanReportStatus } from '../reports/image-scan-report.js';
import { FIELD_MANAGER, REPORT_GROUP, REPORT_PLURAL, REPORT_VERSION } from '../reports/image-scan-report.js';
import { sameVulnerabilities } from '../reports/report-builder.js';
import { isNotFound, toKubeApiError } from './api-error.js';

/** The report writes reconcile needs. Every method throws KubeApiError on failure. */
export interface ReportStore {
  /** Creates the report (the API server drops `status` on create; write it with patchStatus). */
  create(report: ImageScanReport): Promise<ImageScanReport>;
  /** Reads one report; undefined when it does not exist. */
  get(namespace: string, name: string): Promise<ImageScanReport | undefined>;
  /**
   * Replaces the status: top-level fields of `previous` that `status` lacks are removed, and a
   * vulnerability list equal to `previous`'s is left as it is rather than sent again.
   */
  patchStatus(namespace: string, name: string, status: ImageScanReportStatus, previous?: ImageScanReportStatus): Promise<ImageScanReport>;
  /** Brings labels and spec back to the desired values (merge patch on the main resource). */
  patchMetadata(namespace: string, name: string, patch: { labels?: Record<string, string | null>; spec?: ImageScanReportSpec }): Promise<ImageScanReport>;
  /** Deletes the report; a report that is already gone is not an error. */
  delete(namespace: string, name: string): Promise<void>;
}

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

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

  async patchStatus(
    namespace: string,
    name: string,
    status: ImageScanReportStatus,
    previous?: ImageScanReportStatus,
  ): Promise<ImageScanReport> {
    const body: Record<string, unknown> = { ...status };
    for (const key of Object.keys(previous ?? {})) {
      if (!(key in body)) body[key] = null;
    }
    // A merge patch leaves alone what it does not name: a list the report already holds is not sent
    // again. A rescan with unchanged results then sends a few hundred bytes per report instead of up
    // to 500 entries each.
    if (previous !== undefined && status.vulnerabilities !== undefined && sameVulnerabilities(previous, status)) delete body.vulnerabilities;
    try {
      const patched: unknown = await this.custom.patchNamespacedCustomObjectStatus(
        { group: REPORT_GROUP, version: REPORT_VERSION, plural: REPORT_PLURAL, namespace, name, body: { status: body }, fieldManager: FIELD_MANAGER },
        MERGE_PATCH,
      );
      return patched as ImageScanReport;
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
