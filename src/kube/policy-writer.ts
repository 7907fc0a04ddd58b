// The policy audit's writes: status.policy of a report and the status of an ImageScanPolicy, each a
// merge patch on the status subresource that names only what the audit owns, so it never removes or
// overwrites a field the report reconciler writes (and the reconciler never sends status.policy).
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { POLICY_GROUP, POLICY_PLURAL, POLICY_VERSION } from '../policy/image-scan-policy.js';
import type { ReportPolicyStatus } from '../reports/image-scan-report.js';
import { FIELD_MANAGER, REPORT_GROUP, REPORT_PLURAL, REPORT_VERSION } from '../reports/image-scan-report.js';
import { isNotFound, toKubeApiError } from './api-error.js';
import type { ImageScanPolicyStatus } from './policy-entry.js';

/** The audit's writes. Each returns the object's new resourceVersion, or undefined when it is gone; other failures throw KubeApiError. */
export interface PolicyWriter {
  /** Sets status.policy of a report, or removes it (null). */
  patchReportPolicy(namespace: string, name: string, policy: ReportPolicyStatus | null): Promise<string | undefined>;
  /** Sets the status of an ImageScanPolicy (observedGeneration, violations, conditions). */
  patchPolicyStatus(name: string, status: ImageScanPolicyStatus): Promise<string | undefined>;
}

/** Only the new resourceVersion is read: a report answer would carry its fix list, parsed for nothing. */
const METADATA_ANSWER = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';
const STATUS_MERGE_PATCH = setHeaderOptions('Accept', METADATA_ANSWER, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));

function resourceVersionOf(answer: unknown): string | undefined {
  const version = (answer as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
  return typeof version === 'string' ? version : '';
}

/** A PolicyWriter on the real API (or the fake API server). */
export class KubePolicyWriter implements PolicyWriter {
  constructor(private readonly custom: CustomObjectsApi) {}

  async patchReportPolicy(namespace: string, name: string, policy: ReportPolicyStatus | null): Promise<string | undefined> {
    try {
      const answer: unknown = await this.custom.patchNamespacedCustomObjectStatus(
        { group: REPORT_GROUP, version: REPORT_VERSION, plural: REPORT_PLURAL, namespace, name, body: { status: { policy } }, fieldManager: FIELD_MANAGER },
        STATUS_MERGE_PATCH,
      );
      return resourceVersionOf(answer);
    } catch (err) {
      const apiError = toKubeApiError(err, `patching status.policy of report ${namespace}/${name}`);
      if (isNotFound(apiError)) return undefined;
      throw apiError;
    }
  }

  async patchPolicyStatus(name: string, status: ImageScanPolicyStatus): Promise<string | undefined> {
    try {
      const answer: unknown = await this.custom.patchClusterCustomObjectStatus(
        { group: POLICY_GROUP, version: POLICY_VERSION, plural: POLICY_PLURAL, name, body: { status }, fieldManager: FIELD_MANAGER },
        STATUS_MERGE_PATCH,
      );
      return resourceVersionOf(answer);
    } catch (err) {
      const apiError = toKubeApiError(err, `patching status of ImageScanPolicy ${name}`);
      if (isNotFound(apiError)) return undefined;
      throw apiError;
    }
  }
}
