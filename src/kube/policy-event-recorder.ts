// Warning Events (reason ImagePolicyViolation) on the workloads that run an image breaking a policy,
// so `kubectl describe deployment x` shows it: one per (workload, report, policy, rule) finding, and
// again only when the finding's message changes (another count, another threshold).
import type { CoreV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ReportPolicyViolation, ReportWorkload } from '../reports/image-scan-report.js';
import { RecentMap } from '../recent-map.js';
import { toKubeApiError } from './api-error.js';
import { createWorkloadWarning } from './event-recorder.js';
import type { Workload } from './owner-resolver.js';

export const POLICY_VIOLATION_REASON = 'ImagePolicyViolation';
/** Event messages are shown in one `kubectl describe` line; the report holds the whole text. */
const MAX_MESSAGE = 1024;

export interface PolicyFinding {
  namespace: string;
  reportName: string;
  image: string;
  violation: ReportPolicyViolation;
}

export interface PolicyEventRecorderOptions {
  core: Pick<CoreV1Api, 'createNamespacedEvent'>;
  logger: Logger;
  /** reportingInstance of the events (the replica's identity). */
  instance: string;
  now?: () => Date;
  maxRemembered?: number;
}

function workloadKey(namespace: string, workload: Pick<ReportWorkload, 'kind' | 'name'>, reportName: string, violation: ReportPolicyViolation): string {
  return `${namespace}/${workload.kind}/${workload.name}|${reportName}|${violation.policy}|${violation.rule}`;
}

/** Records ImagePolicyViolation events, de-duplicated in memory by workload, report, policy and rule. */
export class PolicyEventRecorder {
  private readonly sent: RecentMap<string, string>;
  /** Keys whose last create failed: still owed, so never marked as announced from a report's status. */
  private readonly failed = new Set<string>();
  private readonly now: () => Date;

  constructor(private readonly options: PolicyEventRecorderOptions) {
    this.now = options.now ?? (() => new Date());
    this.sent = new RecentMap(options.maxRemembered ?? 20_000);
  }

  /** True when every finding is announced with this message on every one of the workloads (kind and name suffice). */
  isAnnounced(findings: readonly PolicyFinding[], workloads: readonly Pick<ReportWorkload, 'kind' | 'name'>[]): boolean {
    return findings.every((f) => workloads.every((w) => this.sent.get(workloadKey(f.namespace, w, f.reportName, f.violation)) === f.violation.message));
  }

  /**
   * Records findings as announced without events: what a report already held before this process
   * started (a restart is not a new finding).
   */
  markAnnounced(findings: readonly PolicyFinding[], workloads: readonly Pick<ReportWorkload, 'kind' | 'name'>[]): void {
    for (const f of findings) {
      for (const w of workloads) {
        const key = workloadKey(f.namespace, w, f.reportName, f.violation);
        if (!this.failed.has(key)) this.sent.set(key, f.violation.message);
      }
    }
  }

  /**
   * Creates one Warning event per finding and workload not announced yet. A failed create is logged
   * and left unannounced, so the next evaluation tries again; never throws.
   */
  async record(findings: readonly PolicyFinding[], workloads: readonly Workload[]): Promise<void> {
    for (const finding of findings) {
      for (const workload of workloads) {
        const key = workloadKey(finding.namespace, workload, finding.reportName, finding.violation);
        if (this.sent.get(key) === finding.violation.message) continue;
        try {
          await this.create(finding, workload);
          this.sent.set(key, finding.violation.message);
          this.failed.delete(key);
        } catch (err) {
          this.failed.add(key);
          const apiError = toKubeApiError(err, `creating event on ${workload.kind} ${finding.namespace}/${workload.name}`);
          this.options.logger.warn(
            { namespace: finding.namespace, report: finding.reportName, image: finding.image, policy: finding.violation.policy, rule: finding.violation.rule, workload: `${workload.kind}/${workload.name}`, code: apiError.code, reason: apiError.reason },
            'policy event not recorded',
          );
        }
      }
    }
  }

  /** Forgets what was announced for a report (deleted), so a new report of that name is announced again. */
  forgetReport(namespace: string, reportName: string): void {
    for (const key of [...this.sent.keys()]) {
      if (key.startsWith(`${namespace}/`) && key.includes(`|${reportName}|`)) this.sent.delete(key);
    }
    for (const key of [...this.failed]) {
      if (key.startsWith(`${namespace}/`) && key.includes(`|${reportName}|`)) this.failed.delete(key);
    }
  }

  private async create(finding: PolicyFinding, workload: Workload): Promise<void> {
    const now = this.now();
    const { violation } = finding;
    const text = `Image ${finding.image} breaks ImageScanPolicy ${violation.policy} (rule ${violation.rule}): ${violation.message}`;
    const message = text.length <= MAX_MESSAGE ? text : `${text.slice(0, MAX_MESSAGE - 1)}…`;
    await createWorkloadWarning(this.options.core, {
      namespace: finding.namespace,
      workload,
      identity: `${finding.reportName}|${violation.policy}|${violation.rule}|${violation.message}`,
      reason: POLICY_VIOLATION_REASON,
      message,
      now,
      instance: this.options.instance,
    });
  }
}
