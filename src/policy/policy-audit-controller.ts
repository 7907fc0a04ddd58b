// The audit of what runs: keeps status.policy of every ImageScanReport and the status of every
// ImageScanPolicy true, while this replica leads. Informer callbacks (reports, namespaces, policies)
// only enqueue keys; a de-duplicating queue hands them to a few workers that compute the desired
// status with the pure core and write only what differs.
import type { Logger } from 'pino';
import type { NamespaceEntry, PodEntry, ReportEntry } from '../kube/cluster-objects.js';
import type { ResilientInformer } from '../kube/informer.js';
import type { Workload } from '../kube/owner-resolver.js';
import type { PolicyEventRecorder, PolicyFinding } from '../kube/policy-event-recorder.js';
import type { ImageScanPolicyStatus, PolicyEntry } from '../kube/policy-entry.js';
import type { PolicyWriter } from '../kube/policy-writer.js';
import type { ReportPolicyStatus, ReportWorkload } from '../reports/image-scan-report.js';
import { WorkQueue } from '../reports/work-queue.js';
import type { WorkQueueOptions } from '../reports/work-queue.js';
import type { CompiledPolicy } from './image-scan-policy.js';
import { governsNamespace } from './policy-evaluation.js';
import type { ScanCounts } from './policy-evaluation.js';
import { desiredPolicyStatus, policyStatusEquals } from './policy-status.js';
import type { PolicyChange, PolicyStore } from './policy-store.js';
import { desiredReportPolicy, isAuditable, samePolicyStatus, scanCountsOf, violatedPolicies } from './report-policy-status.js';

export interface PolicyAuditControllerOptions {
  policies: Pick<PolicyStore, 'validPolicies' | 'get' | 'all' | 'onChange'>;
  policyInformer: Pick<ResilientInformer<PolicyEntry>, 'on' | 'get'>;
  reports: Pick<ResilientInformer<ReportEntry>, 'on' | 'get' | 'list'>;
  namespaces: Pick<ResilientInformer<NamespaceEntry>, 'on' | 'get'>;
  /** False for namespaces the operator does not watch (--namespaces, --exclude-namespaces): their reports are left alone. */
  isWatchedNamespace: (namespace: string) => boolean;
  /** The pods of a report key (namespace/digest) and their top-level owners, for events. */
  podsRunning: (key: string) => readonly { entry: Pick<PodEntry, 'pod'> }[];
  resolveOwner: (pod: PodEntry['pod']) => Promise<Workload>;
  writer: PolicyWriter;
  events: Pick<PolicyEventRecorder, 'isAnnounced' | 'markAnnounced' | 'record' | 'forgetReport'>;
  logger: Logger;
  now?: () => Date;
  workers?: number;
  /** Delay that batches the recounts of a policy's violations while reports change (default 1 s). */
  recountDelayMs?: number;
  /** Every report and policy is evaluated again this often (default 10 minutes). */
  resyncMs?: number;
  queueOptions?: WorkQueueOptions;
}

/**
 * Longest run of evaluations without a turn of the event loop. An evaluation that writes nothing
 * awaits no I/O, so without a pause a resync or a policy edit would judge thousands of reports
 * (~12 µs each) in one go, holding up the admission requests this process answers meanwhile.
 */
const SLICE_MS = 2;
const REPORT_PREFIX = 'report:';
const POLICY_PREFIX = 'policy:';

/** What a write of ours set, until the informer delivers that version (or a later one). */
interface RecentWrite<T> {
  resourceVersion: string;
  value: T;
}

/** True when resourceVersion `a` is at least `b` (numeric as the API server's are; otherwise equal only). */
function isAtLeast(a: string, b: string): boolean {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) >= BigInt(b);
  return a === b;
}

function sameCounts(a: ScanCounts | undefined, b: ScanCounts | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.critical === b.critical && a.high === b.high && a.fixableCritical === b.fixableCritical && a.fixableHigh === b.fixableHigh;
}

function sameWorkloads(a: readonly ReportWorkload[] = [], b: readonly ReportWorkload[] = []): boolean {
  return a.length === b.length && a.every((w, i) => w.kind === b[i]?.kind && w.name === b[i]?.name);
}

/**
 * True when a report update can change its verdict, its events' workloads, or its status.policy was
 * changed by someone else: what the audit reads. A rescan that finds the same, a new scan time, are no
 * reason to look again. Runs in the informer's callback on every report update, so it compares fields
 * (the same status object when the update left it alone) rather than serialising both versions.
 */
function hasAuditInputsChanged(previous: ReportEntry, current: ReportEntry): boolean {
  const a = previous.report;
  const b = current.report;
  if (a.spec?.image !== b.spec?.image || a.spec?.repository !== b.spec?.repository) return true;
  if (a.status === b.status) return false;
  return (
    isAuditable(a) !== isAuditable(b) ||
    !sameCounts(scanCountsOf(a.status), scanCountsOf(b.status)) ||
    !samePolicyStatus(a.status?.policy, b.status?.policy) ||
    !sameWorkloads(a.status?.workloads, b.status?.workloads)
  );
}

/** Runs the audit for report keys (`report:namespace/name`) and policy keys (`policy:name`) while leading. */
export class PolicyAuditController {
  private queue: WorkQueue | undefined;
  private workers: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly reportWrites = new Map<string, RecentWrite<ReportPolicyStatus | undefined>>();
  private readonly policyWrites = new Map<string, RecentWrite<ImageScanPolicyStatus>>();
  /**
   * The policies each report violates, as its last evaluation found, and how many reports violate
   * each policy: a policy's status.violations without judging every report again (a recount over
   * 10,000 reports took ~60 ms of the event loop that also answers admission requests).
   */
  private readonly violatedBy = new Map<string, ReadonlySet<string>>();
  private readonly violationCounts = new Map<string, number>();
  private readonly now: () => Date;
  private readonly log: Logger;
  private sliceStartedAt = performance.now();

  constructor(private readonly options: PolicyAuditControllerOptions) {
    this.now = options.now ?? (() => new Date());
    this.log = options.logger;
    options.reports.on({
      add: (entry) => this.enqueueReport(entry.key),
      update: (old, entry) => {
        if (hasAuditInputsChanged(old, entry)) this.enqueueReport(entry.key);
      },
      delete: (entry) => this.enqueueReport(entry.key),
    });
    options.namespaces.on({
      update: (old, entry) => {
        if (!sameLabels(old.labels, entry.labels)) this.enqueueReportsIn((namespace) => namespace === entry.name);
      },
    });
    options.policies.onChange((change) => this.enqueuePolicyChange(change));
    // Generation and status changes (ours included: their reconcile then writes nothing).
    options.policyInformer.on({
      add: (entry) => this.enqueuePolicy(entry.name),
      update: (_old, entry) => this.enqueuePolicy(entry.name),
    });
  }

  /** Starts the workers and evaluates everything (call when caches are synced and this replica leads). Idempotent. */
  start(): void {
    if (this.queue !== undefined) return;
    const queue = new WorkQueue(this.options.queueOptions);
    this.queue = queue;
    for (let i = 0; i < (this.options.workers ?? 4); i += 1) this.workers.push(this.work(queue));
    this.enqueueAll();
    this.resyncTimer = setInterval(() => this.resync(), this.options.resyncMs ?? 10 * 60_000);
    this.resyncTimer.unref();
    this.log.info({ policies: this.options.policies.all().length }, 'policy audit started');
  }

  /** Stops handing out keys and waits for running evaluations; what was written is forgotten (a new term reads the cluster). */
  async stop(): Promise<void> {
    const queue = this.queue;
    if (queue === undefined) return;
    this.queue = undefined;
    clearInterval(this.resyncTimer);
    await queue.shutDownWithDrain();
    await Promise.all(this.workers);
    this.workers = [];
    this.reportWrites.clear();
    this.policyWrites.clear();
    this.violatedBy.clear();
    this.violationCounts.clear();
    this.log.info('policy audit stopped');
  }

  /** Keys waiting or being worked on (delayed recounts not included). */
  pendingWork(): number {
    return (this.queue?.len() ?? 0) + (this.queue?.inProgress() ?? 0);
  }

  /** Evaluates every report and policy again (what the periodic resync does). */
  resync(): void {
    this.enqueueAll();
  }

  private enqueueAll(): void {
    this.enqueueReportsIn(() => true);
    for (const policy of this.options.policies.all()) this.enqueuePolicy(policy.name);
  }

  private enqueueReport(key: string): void {
    this.queue?.add(REPORT_PREFIX + key);
  }

  private enqueuePolicy(name: string): void {
    this.queue?.add(POLICY_PREFIX + name);
  }

  private enqueueRecount(name: string): void {
    this.queue?.addAfter(POLICY_PREFIX + name, this.options.recountDelayMs ?? 1000);
  }

  private enqueueReportsIn(matches: (namespace: string) => boolean): void {
    if (this.queue === undefined) return;
    for (const entry of this.options.reports.list()) if (matches(entry.namespace)) this.enqueueReport(entry.key);
  }

  /** A policy's spec changed: the reports of the namespaces it governed or governs now, and its status. */
  private enqueuePolicyChange(change: PolicyChange): void {
    if (this.queue === undefined) return;
    const touched = (policy: CompiledPolicy | undefined, labels: Record<string, string>): boolean => policy !== undefined && governsNamespace(policy, labels);
    const decided = new Map<string, boolean>();
    this.enqueueReportsIn((namespace) => {
      let governed = decided.get(namespace);
      if (governed === undefined) {
        const labels = this.options.namespaces.get(namespace)?.labels ?? {};
        governed = touched(change.previous, labels) || touched(change.current, labels);
        decided.set(namespace, governed);
      }
      return governed;
    });
    this.enqueuePolicy(change.name);
  }

  private async work(queue: WorkQueue): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        if (key.startsWith(REPORT_PREFIX)) await this.reconcileReport(key.slice(REPORT_PREFIX.length));
        else await this.reconcilePolicy(key.slice(POLICY_PREFIX.length));
        queue.forget(key);
      } catch (err) {
        const retryInMs = queue.addRateLimited(key);
        const failure = err instanceof Error ? { type: err.name, message: err.message } : { message: String(err) };
        this.log.warn({ key, err: failure, retryInMs, requeues: queue.numRequeues(key) }, 'policy audit failed');
      } finally {
        queue.done(key);
      }
      await this.pauseWhenLong();
    }
  }

  private async pauseWhenLong(): Promise<void> {
    if (performance.now() - this.sliceStartedAt < SLICE_MS) return;
    await new Promise((resolve) => setImmediate(resolve));
    this.sliceStartedAt = performance.now();
  }

  /** status.policy of what the cluster holds, or of our last write until the informer has it. */
  private currentReportPolicy(entry: ReportEntry): ReportPolicyStatus | undefined {
    const recent = this.reportWrites.get(entry.key);
    if (recent !== undefined) {
      if (!isAtLeast(entry.resourceVersion, recent.resourceVersion)) return recent.value;
      this.reportWrites.delete(entry.key);
    }
    return entry.report.status?.policy;
  }

  /**
   * Makes status.policy of the report (key namespace/name) match the policies that govern its
   * namespace, announces its violations on the workloads that run it, and has the counts of the
   * policies whose membership changed recomputed. Throws KubeApiError on a failed write (retried).
   */
  private async reconcileReport(key: string): Promise<void> {
    const entry = this.options.reports.get(key);
    if (entry === undefined) {
      this.reportWrites.delete(key);
      this.noteViolations(key, undefined);
      const slash = key.indexOf('/');
      this.options.events.forgetReport(key.slice(0, slash), key.slice(slash + 1));
      return;
    }
    const report = entry.report;
    if (!isAuditable(report) || !this.options.isWatchedNamespace(entry.namespace)) {
      this.noteViolations(key, undefined);
      return;
    }
    const labels = this.options.namespaces.get(entry.namespace)?.labels ?? {};
    const desired = desiredReportPolicy(this.options.policies.validPolicies(), labels, report);
    this.noteViolations(key, desired);
    const current = this.currentReportPolicy(entry);
    if (!samePolicyStatus(current, desired)) {
      const resourceVersion = await this.options.writer.patchReportPolicy(entry.namespace, entry.name, desired ?? null);
      if (resourceVersion === undefined) return;
      this.reportWrites.set(key, { resourceVersion, value: desired });
      const fields = { namespace: entry.namespace, report: entry.name, image: report.spec.image, result: desired?.result ?? null, violations: desired?.violations.length ?? 0 };
      // A report's first result is not a change: at info, a cold start or a new policy would log one
      // line per governed report (each ~0.1 ms and 63 KiB of garbage in pino's redaction).
      if (current === undefined) this.log.debug(fields, 'report policy result set');
      else this.log.info(fields, 'report policy result changed');
    }
    if (desired !== undefined && desired.violations.length > 0) await this.announce(entry, desired, current);
  }

  /** Records which policies the report violates now; the counts of those that changed are written soon. */
  private noteViolations(key: string, desired: ReportPolicyStatus | undefined): void {
    const before = this.violatedBy.get(key) ?? new Set<string>();
    const after = violatedPolicies(desired);
    for (const policy of before) {
      if (after.has(policy)) continue;
      const left = (this.violationCounts.get(policy) ?? 1) - 1;
      if (left > 0) this.violationCounts.set(policy, left);
      else this.violationCounts.delete(policy);
      this.enqueueRecount(policy);
    }
    for (const policy of after) {
      if (before.has(policy)) continue;
      this.violationCounts.set(policy, (this.violationCounts.get(policy) ?? 0) + 1);
      this.enqueueRecount(policy);
    }
    if (after.size > 0) this.violatedBy.set(key, after);
    else this.violatedBy.delete(key);
  }

  /** Warning events for the report's findings on the workloads that run its image, once per finding. */
  private async announce(entry: ReportEntry, desired: ReportPolicyStatus, before: ReportPolicyStatus | undefined): Promise<void> {
    const report = entry.report;
    const findings: PolicyFinding[] = desired.violations.map((violation) => ({ namespace: entry.namespace, reportName: entry.name, image: report.spec.image, violation }));
    const listed = report.status?.workloads ?? [];
    // Findings the report already held were announced by whoever wrote them (this process before a
    // restart, or a former leader), for the workloads it listed then.
    const previous = Array.isArray(before?.violations) ? before.violations : [];
    const held = findings.filter((f) => previous.some((v) => v.policy === f.violation.policy && v.rule === f.violation.rule && v.message === f.violation.message));
    if (held.length > 0) this.options.events.markAnnounced(held, listed);
    if (listed.length > 0 && this.options.events.isAnnounced(findings, listed)) return;
    const workloads = new Map<string, Workload>();
    for (const pod of this.options.podsRunning(`${entry.namespace}/${report.spec.digest}`)) {
      const workload = await this.options.resolveOwner(pod.entry.pod);
      workloads.set(`${workload.kind}/${workload.name}`, workload);
    }
    await this.options.events.record(findings, [...workloads.values()]);
  }

  /** Makes the policy's status say its generation, its Ready condition and how many reports violate it. */
  private async reconcilePolicy(name: string): Promise<void> {
    const stored = this.options.policies.get(name);
    const entry = this.options.policyInformer.get(name);
    if (stored === undefined || entry === undefined) {
      this.policyWrites.delete(name);
      return;
    }
    let current = entry.status;
    const recent = this.policyWrites.get(name);
    if (recent !== undefined) {
      if (isAtLeast(entry.resourceVersion, recent.resourceVersion)) this.policyWrites.delete(name);
      else current = recent.value;
    }
    // Policy keys are queued behind the report keys of the same change (and of a start), so by the
    // time one is handed out every report it depends on has been evaluated.
    const violations = stored.result.ok ? (this.violationCounts.get(name) ?? 0) : 0;
    const desired = desiredPolicyStatus({ generation: entry.generation, result: stored.result, violations, previous: current, now: this.now() });
    if (policyStatusEquals(current, desired)) return;
    const resourceVersion = await this.options.writer.patchPolicyStatus(name, desired);
    if (resourceVersion === undefined) return;
    this.policyWrites.set(name, { resourceVersion, value: desired });
    if (!stored.result.ok) this.log.warn({ policy: name, generation: entry.generation, problem: stored.result.message }, 'ImageScanPolicy is invalid, not enforced');
  }
}

/** Same keys and values, in any order (the API server may reorder a map it returns). */
function sameLabels(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>> | undefined): boolean {
  const left = a ?? {};
  const right = b ?? {};
  const keys = Object.keys(left);
  return keys.length === Object.keys(right).length && keys.every((key) => right[key] === left[key]);
}
