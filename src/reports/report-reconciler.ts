// Reconcile of one key `namespace/digest`: from the pods that run the digest in that namespace, the
// report that should exist; then the fewest writes that make it so. Level-based and idempotent: it
// reads caches and memory only, so running it twice in a row writes nothing the second time.
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { teamOf } from '../images/team.js';
import { overriddenTeam } from '../images/team-overrides.js';
import type { TeamOverride } from '../images/team-overrides.js';
import type { PodImage } from '../images/pod-images.js';
import { KubeApiError } from '../kube/api-error.js';
import type { NamespaceEntry, NodeEntry } from '../kube/cluster-objects.js';
import { findingFingerprint } from '../kube/event-recorder.js';
import type { FixableCriticalFinding } from '../kube/event-recorder.js';
import type { Workload } from '../kube/owner-resolver.js';
import type { IndexedPod } from '../kube/pod-image-index.js';
import { parseReportKey } from '../kube/pod-image-index.js';
import type { PullSecretLookup } from '../kube/pull-secrets.js';
import type { ReportStore } from '../kube/report-store.js';
import type { ScanFailureReason } from '../scanner/scan-failure.js';
import { compareText } from '../scanner/scan-result.js';
import type { ScanResult } from '../scanner/scan-result.js';
import type { ScanTarget } from '../scanner/trivy-runner.js';
import type { ImageScanReport, ImageScanReportStatus, ReportDetails, ReportWorkload } from './image-scan-report.js';
import { LABEL_TEAM } from './image-scan-report.js';
import {
  buildListlessStatus,
  buildReportObject,
  buildReportStatus,
  findingOfStatus,
  fixableCriticalIdsOfStatus,
  preparedScanState,
  statusEquals,
  statusKeepingList,
} from './report-builder.js';
import type { ScanOutlineState, ScanState } from './report-builder.js';
import type { DigestScanKnowledge, KnownFailure, ScanResults } from './scan-results.js';
import { DEFAULT_SCAN_RETRY_POLICY, nextScanRetry } from './scan-retry.js';
import type { ScanRetryPolicy } from './scan-retry.js';

/**
 * The log of one reconcile, with the key's fields on every line. A pino child per reconcile ran the
 * redaction over its bindings even when the reconcile logged nothing: ~80 MB of garbage in a 30 s
 * rescan of the 10,000-pod bench (sampled allocations, bench/README.md).
 */
class KeyLog {
  constructor(
    private readonly logger: Logger,
    private readonly fields: Readonly<Record<string, string>>,
  ) {}

  info(fields: object, msg: string): void {
    if (this.logger.isLevelEnabled('info')) this.logger.info({ ...this.fields, ...fields }, msg);
  }

  debug(fields: object, msg: string): void {
    if (this.logger.isLevelEnabled('debug')) this.logger.debug({ ...this.fields, ...fields }, msg);
  }
}

/** Default of ReportReconcilerOptions.interimStatusDelayMs: longer than most scans of a small image. */
export const DEFAULT_INTERIM_STATUS_DELAY_MS = 30_000;

/** What reconcile asks of the loop: nothing (done), or to be run again after a delay. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** The pods side: which pods of a namespace run a digest, and since when none does. */
export interface RunningPods {
  podsRunning(key: string): IndexedPod[];
  /** True while a pod in any namespace runs the digest. */
  isRunning(digest: string): boolean;
  goneSince(key: string): Date | undefined;
  forgetKey(key: string): void;
  isWatchedNamespace(namespace: string): boolean;
}

/** The report cache (the report informer), looked up by (namespace, digest). */
export interface ReportLookup {
  find(namespace: string, digest: string): ImageScanReport | undefined;
  /** Told about each successful write, so the next reconcile sees it before the watch does. */
  remember?(report: ImageScanReport): void;
  forget?(namespace: string, name: string, digest: string): void;
}

/** The part of ScanQueue reconcile uses. */
export interface ScanRequester {
  request(target: ScanTarget, priority: 'new' | 'rescan', opts?: { notBefore?: number }): boolean;
  isPending(digest: string): boolean;
}

export interface ReportReconcilerOptions {
  pods: RunningPods;
  namespaces: { get(name: string): NamespaceEntry | undefined };
  nodes: { get(name: string): NodeEntry | undefined };
  reports: ReportLookup;
  scans: ScanResults;
  scanQueue: ScanRequester;
  store: ReportStore;
  owners: { resolve(pod: V1Pod): Promise<Workload> };
  pullSecrets: { lookup(pod: V1Pod, registry: string): Promise<PullSecretLookup> };
  events?: {
    fixableCritical(finding: FixableCriticalFinding): Promise<void>;
    /** Counts a finding the report already held as announced (optional: without it, it is announced). */
    markAnnounced?(finding: FixableCriticalFinding): void;
    forgetReport(namespace: string, name: string): void;
    /**
     * True when the finding with this findingFingerprint is announced for every workload (optional:
     * without it, every reconcile of a Scanned report hands its finding to fixableCritical).
     */
    isAnnounced?(namespace: string, reportName: string, workloads: readonly Workload[], fingerprint: string): boolean;
  };
  teamLabel: string;
  /** Images given to a team whatever pod runs them (--team-overrides); default none. */
  teamOverrides?: readonly TeamOverride[];
  gracePeriodMs: number;
  /** A digest last attempted longer ago than this is rescanned (the schedule's interval). */
  rescanIntervalMs: number;
  /** When a digest whose scans failed is tried again (default: DEFAULT_SCAN_RETRY_POLICY). */
  retry?: ScanRetryPolicy;
  /** The next pass of the rescan schedule after `after` (default: `after` + rescanIntervalMs). */
  nextScheduledRescan?: (after: Date) => Date;
  maxReportVulnerabilities: number;
  /** --report-details (default fixes): whether reports also list every vulnerability. */
  reportDetails?: ReportDetails;
  /** A new report whose first scan has not ended gets a Pending/Scanning status after this long. */
  interimStatusDelayMs?: number;
  now: () => Date;
  logger: Logger;
}

/** The pull secrets remembered per failing digest: enough for every namespace of a shared image. */
const MAX_TRIED_CREDENTIALS = 64;

/** Why a scan failed, with the registry and secret named for auth failures (set at request time). */
interface RequestContext {
  registry: string;
  lookup: PullSecretLookup;
}

function workloadKey(w: { kind: string; name: string }): string {
  return `${w.kind}/${w.name}`;
}

/** Reconciles ImageScanReports; see reconcile(). */
export class ReportReconciler {
  private readonly requestContexts = new Map<string, RequestContext>();
  private readonly retry: ScanRetryPolicy;

  constructor(private readonly options: ReportReconcilerOptions) {
    this.retry = options.retry ?? DEFAULT_SCAN_RETRY_POLICY;
  }

  /**
   * Makes the report of `key` match the pods: creates, patches or deletes it, and asks for a scan when
   * none is fresh. Throws KubeApiError (or other errors) for failures worth a retry with backoff;
   * returns requeueAfterMs when it has to wait (grace period, transient scan failure).
   */
  async reconcile(key: string): Promise<ReconcileResult> {
    const parsed = parseReportKey(key);
    if (parsed === undefined) return {};
    const { namespace, digest } = parsed;
    // Reports in namespaces we do not watch belong to someone else (or to a past configuration).
    if (!this.options.pods.isWatchedNamespace(namespace)) return {};
    const pods = this.options.pods.podsRunning(key);
    const current = this.options.reports.find(namespace, digest);
    if (pods.length === 0) return this.collect(key, namespace, digest, current);

    const first = pods[0];
    const image = first === undefined ? undefined : imageOf(first, digest);
    if (first === undefined || image === undefined) return {};
    const log = new KeyLog(this.options.logger, { namespace, digest, image: image.image.image });

    // The scan request comes first: it needs no API call, and in a cold start the scan slots must
    // not wait behind the owner lookups and report writes of this key.
    const requeue = await this.ensureScan(first, image, log);
    const workloads = await this.workloadsOf(pods);
    const namespaceLabels = this.options.namespaces.get(namespace)?.labels;
    const team =
      overriddenTeam(this.options.teamOverrides ?? [], { repository: image.image.repository, containers: containersRunning(pods, digest) }) ??
      teamOf(first.entry.pod.metadata?.labels, namespaceLabels, this.options.teamLabel);
    const desired = buildReportObject({
      namespace,
      image: image.image.image,
      repository: image.image.repository,
      digest,
      team,
      workloads: workloads.map((w) => ({ kind: w.kind, name: w.name })),
      localOnly: image.image.localOnly,
    });

    const scan = this.scanOutline(digest, image.image.localOnly);
    const reportWorkloads: ReportWorkload[] = workloads.map((w) => ({ kind: w.kind, name: w.name }));

    let report = current;
    if (report === undefined || report.metadata?.name !== desired.metadata?.name) {
      report = await this.create(desired, log);
      // The same digest under another repository name (e.g. pods moved to a mirror): the old report
      // would be an orphan nobody collects.
      const oldName = current?.metadata?.name;
      if (oldName !== undefined && oldName !== desired.metadata?.name) {
        await this.options.store.delete(namespace, oldName);
        this.options.events?.forgetReport(namespace, oldName);
        log.info({ report: oldName }, 'report deleted');
      }
    } else {
      report = await this.fixMetadata(report, desired);
    }
    const waitMs = this.interimStatusWait(report, scan);
    if (waitMs > 0) return { requeueAfterMs: Math.min(waitMs, requeue.requeueAfterMs ?? waitMs) };
    // Known from an old-format report whose list was capped: a rewrite now would be followed by another
    // when the rescan that completes it ends. The report keeps what it shows until then.
    if (scan.detailsIncomplete === true && report.status?.summary !== undefined) return requeue;
    const statusInput = {
      workloads: reportWorkloads,
      team,
      localOnly: image.image.localOnly,
      ...(report.metadata?.generation === undefined ? {} : { observedGeneration: report.metadata.generation }),
      ...(report.status?.conditions === undefined ? {} : { previousConditions: report.status.conditions }),
      now: this.options.now(),
      limits: this.limits(),
    };
    // Compared first without the vulnerability list: most reconciles (pod updates, requeues, resyncs)
    // change nothing, and then the digest's packed list is never unpacked.
    const listless = buildListlessStatus({ ...statusInput, scan });
    let full: ImageScanReportStatus | undefined;
    const fullStatus = async (): Promise<ImageScanReportStatus> => (full ??= buildReportStatus({ ...statusInput, scan: this.withList(digest, scan) }));
    const wanted = listless ?? (await fullStatus());
    if (!statusEquals(report.status, wanted)) {
      // A report that holds the list already gets the other fields only (a new workload, a rescan's time).
      const keepingList = listless === undefined ? undefined : statusKeepingList(report.status, listless);
      report = await this.writeStatus(report, desired, keepingList ?? (await fullStatus()), fullStatus, log);
    }
    await this.announce(namespace, report, wanted, fullStatus, workloads, current);
    return requeue;
  }

  /**
   * Records a finished scan (called by the loop for each ScanOutcome). An auth failure's message is
   * completed with the registry and the secret that were used, never the secret's content.
   */
  recordFailure(digest: string, reason: ScanFailureReason, message: string, transient: boolean, at: Date): void {
    let text = message;
    const context = this.requestContexts.get(digest);
    if (reason === 'auth' && context !== undefined) text = `${authSentence(context)} ${message}`.trim();
    this.requestContexts.delete(digest);
    // A failure is recorded only after the last success cleared the previous one: any failure known is one in a row.
    const previous = this.options.scans.get(digest)?.failure;
    const attempts = (previous?.attempts ?? 0) + 1;
    const scheduled = this.options.nextScheduledRescan?.(at) ?? new Date(at.getTime() + this.options.rescanIntervalMs);
    const failure: KnownFailure = { reason, message: text, at, transient, attempts, nextRetryAt: nextScanRetry(attempts, at, transient, this.retry, scheduled) };
    const tried = new Set(previous?.triedCredentials ?? []);
    const source = context?.lookup.credentials?.source;
    if (source !== undefined) tried.add(source);
    if (tried.size > 0) failure.triedCredentials = [...tried].slice(-MAX_TRIED_CREDENTIALS);
    this.options.scans.recordFailure(digest, failure);
  }

  /**
   * Records a successful scan of the digest. Only what a report can hold is kept (see prepared), so
   * memory does not grow with huge scan results and the knowledge equals what a restart would rebuild
   * from the report.
   */
  recordSuccess(digest: string, result: ScanResult, at: Date): void {
    this.requestContexts.delete(digest);
    const kept = this.prepared({ phase: 'Scanned', result, scannedAt: at });
    this.options.scans.recordResult(digest, { ...kept, result: kept.result ?? result }, at);
  }

  /** A scan state as the scan knowledge keeps it, under this reconciler's limits (see preparedScanState). */
  prepared(state: ScanState): ScanState {
    return preparedScanState(state, this.limits());
  }

  private limits(): { maxVulnerabilities: number; details: ReportDetails } {
    return { maxVulnerabilities: this.options.maxReportVulnerabilities, details: this.options.reportDetails ?? 'fixes' };
  }

  private async collect(key: string, namespace: string, digest: string, current: ImageScanReport | undefined): Promise<ReconcileResult> {
    if (current === undefined) {
      this.options.pods.forgetKey(key);
      return {};
    }
    const goneSince = this.options.pods.goneSince(key) ?? this.options.now();
    const remaining = goneSince.getTime() + this.options.gracePeriodMs - this.options.now().getTime();
    if (remaining > 0) {
      // During the grace period the report says no workload runs the image (metrics drop its series).
      const workloads = current.status?.workloads;
      if (current.status !== undefined && (workloads === undefined || workloads.length > 0)) {
        try {
          const written = await this.options.store.patchStatus(current, { ...current.status, workloads: [] });
          this.options.reports.remember?.(written);
        } catch (err) {
          if (err instanceof KubeApiError && err.kind === 'NotFound') return {};
          throw err;
        }
      }
      return { requeueAfterMs: remaining };
    }
    const name = current.metadata?.name ?? '';
    await this.options.store.delete(namespace, name);
    this.options.reports.forget?.(namespace, name, current.spec.digest);
    this.options.pods.forgetKey(key);
    this.options.events?.forgetReport(namespace, name);
    this.options.logger.info({ namespace, digest: current.spec.digest, image: current.spec.image, report: name }, 'report deleted');
    return {};
  }

  private async workloadsOf(pods: IndexedPod[]): Promise<Workload[]> {
    const byKey = new Map<string, Workload>();
    for (const pod of pods) {
      const workload = await this.options.owners.resolve(pod.entry.pod);
      byKey.set(workloadKey(workload), workload);
    }
    // Code-unit order: the status must not depend on the ICU data or locale of the machine.
    return [...byKey.values()].sort((a, b) => compareText(workloadKey(a), workloadKey(b)));
  }

  /** Requests a scan when nothing fresh is known; returns when to look again for a transient failure. */
  private async ensureScan(pod: IndexedPod, image: PodImage, log: KeyLog): Promise<ReconcileResult> {
    const digest = image.image.digest;
    if (image.image.localOnly) return {};
    const known = this.options.scans.get(digest);
    const now = this.options.now().getTime();
    let decision = scanDecision(known, now, this.options.rescanIntervalMs, this.retry);
    let lookup: PullSecretLookup | undefined;
    if (decision.priority === undefined && known?.failure?.reason === 'auth' && known.result === undefined && !this.options.scanQueue.isPending(digest)) {
      // The digest is shared across namespaces: a scan that failed for lack of (or with other)
      // credentials is tried once more with this namespace's pull secret, unless that secret was tried.
      lookup = await this.options.pullSecrets.lookup(pod.entry.pod, image.image.registry);
      const source = lookup.credentials?.source;
      if (source !== undefined && !(known.failure.triedCredentials ?? []).includes(source)) decision = { priority: 'new' };
    }
    if (decision.priority === undefined) return decision.retryInMs === undefined ? {} : { requeueAfterMs: decision.retryInMs };
    if (this.options.scanQueue.isPending(digest)) {
      this.options.scans.clearRescanMark(digest);
      return {};
    }
    lookup ??= await this.options.pullSecrets.lookup(pod.entry.pod, image.image.registry);
    const target: ScanTarget = { repository: image.image.repository, digest };
    const nodeName = pod.entry.pod.spec?.nodeName;
    const platform = nodeName === undefined ? undefined : this.options.nodes.get(nodeName)?.platform;
    if (platform !== undefined) target.platform = platform;
    if (lookup.credentials !== undefined) target.credentials = lookup.credentials;
    const accepted = this.options.scanQueue.request(target, decision.priority, decision.notBefore === undefined ? undefined : { notBefore: decision.notBefore });
    this.options.scans.clearRescanMark(digest);
    if (accepted) {
      this.requestContexts.set(digest, { registry: image.image.registry, lookup });
      log.debug({ priority: decision.priority, platform, credentials: lookup.credentials?.source }, 'scan requested');
    }
    return {};
  }

  /** What is known about the digest's scans; a result comes without its list (see withList). */
  private scanOutline(digest: string, localOnly: boolean): ScanOutlineState {
    const known = this.options.scans.get(digest);
    const result = known?.result;
    if (known !== undefined && result !== undefined) {
      const state: ScanOutlineState = { phase: 'Scanned', result };
      if (known.scannedAt !== undefined) state.scannedAt = known.scannedAt;
      if (known.vulnerabilitiesOmitted !== undefined && known.vulnerabilitiesOmitted > 0) state.vulnerabilitiesOmitted = known.vulnerabilitiesOmitted;
      if (known.fixesOmitted !== undefined && known.fixesOmitted > 0) state.fixesOmitted = known.fixesOmitted;
      if (known.fixesOmittedCounts !== undefined) state.fixesOmittedCounts = known.fixesOmittedCounts;
      if (known.detailsIncomplete === true) state.detailsIncomplete = true;
      if (known.preparedListFingerprint !== undefined) state.preparedListFingerprint = known.preparedListFingerprint;
      return state;
    }
    if (localOnly) {
      return { phase: 'Failed', failure: { reason: 'not_found', message: 'the image exists only on the node; no registry serves this digest' } };
    }
    if (known?.failure !== undefined && !this.options.scanQueue.isPending(digest)) {
      const { reason, message, attempts, nextRetryAt } = known.failure;
      const failure: NonNullable<ScanOutlineState['failure']> = { reason, message };
      if (nextRetryAt !== undefined) failure.retry = { attempts, nextRetryAt, maxAttempts: this.retry.maxAttempts };
      return { phase: 'Failed', failure, scannedAt: known.failure.at };
    }
    return { phase: this.options.scanQueue.isPending(digest) ? 'Scanning' : 'Pending' };
  }

  /** The scan state with its result's lists, unpacked from the scan knowledge. */
  private withList(digest: string, scan: ScanOutlineState): ScanState {
    const { result: outline, ...rest } = scan;
    if (outline === undefined) return rest;
    const kept = this.options.scans.resultOf(digest);
    // The knowledge keeps a result and its lists together (ScanResults); this cannot happen.
    if (kept === undefined) throw new Error(`the scan knowledge of ${digest} has a result without its lists`);
    return { ...rest, result: kept.result, fixes: kept.fixes };
  }

  /**
   * How long a new report may stay without status while its first scan is queued or running. The
   * status is written once, with the result, when the scan ends within that time; only a longer wait
   * is worth an interim Pending/Scanning write (in a cold start those were ~1,300 of ~10,000 writes).
   */
  private interimStatusWait(report: ImageScanReport, scan: { phase: ScanState['phase'] }): number {
    if ((scan.phase !== 'Pending' && scan.phase !== 'Scanning') || report.status?.phase !== undefined) return 0;
    const created = report.metadata?.creationTimestamp as unknown;
    const createdMs = created instanceof Date ? created.getTime() : typeof created === 'string' ? Date.parse(created) : Number.NaN;
    if (Number.isNaN(createdMs)) return 0;
    return createdMs + (this.options.interimStatusDelayMs ?? DEFAULT_INTERIM_STATUS_DELAY_MS) - this.options.now().getTime();
  }

  private async create(desired: ImageScanReport, log: KeyLog): Promise<ImageScanReport> {
    const namespace = desired.metadata?.namespace ?? '';
    const name = desired.metadata?.name ?? '';
    try {
      const created = await this.options.store.create(desired);
      this.options.reports.remember?.(created);
      // Debug, like its first Scanned status (writeStatus): the digest's 'scan finished' line says it.
      log.debug({ report: name }, 'report created');
      return created;
    } catch (err) {
      // The cache lags behind the server: the report exists already. Read it and carry on.
      if (err instanceof KubeApiError && err.kind === 'AlreadyExists') {
        const existing = await this.options.store.get(namespace, name);
        if (existing !== undefined) {
          this.options.reports.remember?.(existing);
          return this.fixMetadata(existing, desired);
        }
      }
      throw err;
    }
  }

  private async fixMetadata(report: ImageScanReport, desired: ImageScanReport): Promise<ImageScanReport> {
    const namespace = desired.metadata?.namespace ?? '';
    const name = desired.metadata?.name ?? '';
    const labels = report.metadata?.labels ?? {};
    const wanted = desired.metadata?.labels ?? {};
    const labelPatch: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(wanted)) if (labels[k] !== v) labelPatch[k] = v;
    // A team label that no longer applies is removed; other people's labels are left alone.
    if (wanted[LABEL_TEAM] === undefined && labels[LABEL_TEAM] !== undefined) labelPatch[LABEL_TEAM] = null;
    const specDrift =
      report.spec.image !== desired.spec.image || report.spec.repository !== desired.spec.repository || report.spec.digest !== desired.spec.digest;
    if (Object.keys(labelPatch).length === 0 && !specDrift) return report;
    const patch: { labels?: Record<string, string | null>; spec?: ImageScanReport['spec'] } = {};
    if (Object.keys(labelPatch).length > 0) patch.labels = labelPatch;
    if (specDrift) patch.spec = desired.spec;
    const patched = await this.options.store.patchMetadata(namespace, name, patch);
    this.options.reports.remember?.(patched);
    return patched;
  }

  private async writeStatus(
    report: ImageScanReport,
    desired: ImageScanReport,
    status: ImageScanReportStatus,
    fullStatus: () => Promise<ImageScanReportStatus>,
    log: KeyLog,
  ): Promise<ImageScanReport> {
    const name = desired.metadata?.name ?? '';
    try {
      const written = await this.options.store.patchStatus(report, status);
      this.options.reports.remember?.(written);
      if (report.status?.phase !== status.phase) {
        // A new report's first result repeats its digest's 'scan finished' line once per namespace: debug.
        // Each info line costs ~0.1 ms and 63 KiB of garbage in pino's redaction (12% of what the
        // 10,000-pod cold start allocated, with one such line per new report).
        const first = report.status?.phase === undefined && status.phase === 'Scanned';
        if (first) log.debug({ report: name, phase: status.phase }, 'report status changed');
        else log.info({ report: name, phase: status.phase }, 'report status changed');
      }
      return written;
    } catch (err) {
      // Deleted behind our back (or the cache was stale): create it again, then write the status.
      if (err instanceof KubeApiError && err.kind === 'NotFound') {
        // A new report holds no list yet: this write carries it.
        const created = await this.create(desired, log);
        const written = await this.options.store.patchStatus(created, await fullStatus());
        this.options.reports.remember?.(written);
        return written;
      }
      throw err;
    }
  }

  /**
   * Warning events for fixable CRITICAL findings. Events are for a change of result: workloads that the
   * report already listed, with the same vulnerability list, were announced when the report got that
   * list (by this process or one before a restart), so they only count as announced.
   */
  private async announce(
    namespace: string,
    report: ImageScanReport,
    desired: ImageScanReportStatus,
    fullStatus: () => Promise<ImageScanReportStatus>,
    workloads: Workload[],
    before: ImageScanReport | undefined,
  ): Promise<void> {
    const events = this.options.events;
    if (events === undefined || desired.phase !== 'Scanned') return;
    const reportName = report.metadata?.name ?? '';
    // The desired list is the scan knowledge's, whose finding is known without the list: an unchanged
    // report with everything announced (or nothing to announce) costs no unpacking.
    const known = this.options.scans.get(report.spec.digest)?.finding;
    if (known !== undefined && (known.count === 0 || events.isAnnounced?.(namespace, reportName, workloads, known.fingerprint) === true)) return;
    const status = await fullStatus();
    const criticalIds = fixableCriticalIdsOfStatus(status);
    if (criticalIds.length === 0) return;
    const finding = { namespace, reportName, image: report.spec.image, criticalIds };
    // By the finding, not the lists: a report rewritten into another format (status.fixes instead of
    // the per-vulnerability list) holds the same finding, and its workloads were told about it.
    const alreadyHeld =
      events.markAnnounced !== undefined &&
      before?.metadata?.name === report.metadata?.name &&
      before?.status?.phase === 'Scanned' &&
      findingOfStatus(before.status) === findingFingerprint(criticalIds);
    if (alreadyHeld) {
      const listed = new Set((before?.status?.workloads ?? []).map(workloadKey));
      const known = workloads.filter((w) => listed.has(workloadKey(w)));
      if (known.length > 0) events.markAnnounced?.({ ...finding, workloads: known });
    }
    // Skips what is announced; creates the rest (new workloads, a changed result, a failed create).
    await events.fixableCritical({ ...finding, workloads });
  }
}

function imageOf(pod: IndexedPod, digest: string): PodImage | undefined {
  return pod.images.find((image) => image.image.digest === digest);
}

/** Names of the containers that run the digest in any of the pods (lazily: the rules may not ask). */
function* containersRunning(pods: readonly IndexedPod[], digest: string): Generator<string> {
  for (const pod of pods) yield* imageOf(pod, digest)?.containers ?? [];
}

/**
 * Whether (and with which priority) to request a scan, from what is known about the digest. A digest
 * without a result whose scans failed waits for its planned retry (see scan-retry.ts); the reconcile
 * is requeued for a quick retry, while a longer wait is left to the schedule and the resync.
 */
function scanDecision(
  known: DigestScanKnowledge | undefined,
  now: number,
  rescanIntervalMs: number,
  retry: ScanRetryPolicy,
): { priority?: 'new' | 'rescan'; notBefore?: number; retryInMs?: number } {
  if (known === undefined) return { priority: 'new' };
  const priority = known.result === undefined ? 'new' : 'rescan';
  if (known.rescanNotBefore !== undefined) return { priority, notBefore: known.rescanNotBefore };
  const failure = known.failure;
  if (failure !== undefined && known.result === undefined) {
    const waitMs = (failure.nextRetryAt?.getTime() ?? 0) - now;
    if (waitMs <= 0) return { priority };
    return failure.transient && failure.attempts < retry.maxAttempts ? { retryInMs: waitMs } : {};
  }
  if (now - known.lastAttemptAt.getTime() >= rescanIntervalMs) return { priority };
  return {};
}

function authSentence(context: RequestContext): string {
  const { registry, lookup } = context;
  if (lookup.credentials !== undefined) return `Registry ${registry} rejected the credentials from secret ${lookup.credentials.source}.`;
  const problems = lookup.problems.length === 0 ? '' : ` (${lookup.problems.join('; ')})`;
  if (lookup.checked.length === 0) return `Registry ${registry} requires credentials, and the pod has no imagePullSecrets.`;
  return `Registry ${registry} requires credentials; no pull secret has an entry for it (checked ${lookup.checked.join(', ')})${problems}.`;
}
