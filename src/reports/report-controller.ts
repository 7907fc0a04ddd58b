// The loop: informer callbacks map objects to keys, a de-duplicating work queue hands keys to a few
// workers, each runs reconcile and then forgets the key, retries it with backoff, or requeues it
// after a delay. Time-driven work (scheduled rescans, DB updates, resync) only marks and enqueues.
import type { Logger } from 'pino';
import type { NamespaceEntry, PodEntry, ReportEntry } from '../kube/cluster-objects.js';
import { takeReportDetails } from '../kube/cluster-objects.js';
import type { ResilientInformer } from '../kube/informer.js';
import type { PodImageIndex } from '../kube/pod-image-index.js';
import { reportKey } from '../kube/pod-image-index.js';
import type { ScanOutcome } from '../scanner/scan-queue.js';
import { scanStateFromReport } from './report-builder.js';
import type { ReportReconciler } from './report-reconciler.js';
import type { DigestScanKnowledge, ScanResults } from './scan-results.js';
import { WorkQueue } from './work-queue.js';
import type { WorkQueueOptions } from './work-queue.js';

export type ReconcileOutcome = 'success' | 'error' | 'requeue';

export interface ReportControllerOptions {
  reconciler: Pick<ReportReconciler, 'reconcile' | 'recordSuccess' | 'recordFailure' | 'prepared'>;
  index: PodImageIndex;
  scans: ScanResults;
  pods: readonly ResilientInformer<PodEntry>[];
  namespaces: ResilientInformer<NamespaceEntry>;
  reports: ResilientInformer<ReportEntry>;
  workers: number;
  logger: Logger;
  /** Spread of a scheduled rescan pass (each digest gets a random delay up to this). */
  rescanJitterMs: number;
  /** Every key is reconciled again this often (catches anything missed). Default 10 minutes. */
  resyncMs?: number;
  queueOptions?: WorkQueueOptions;
  now?: () => Date;
  random?: () => number;
  /** Counts each reconcile by outcome (for tests and metrics). */
  onReconciled?: (outcome: ReconcileOutcome) => void;
}

/** Runs reconciles for keys `namespace/digest` while this replica leads. */
export class ReportController {
  private queue: WorkQueue | undefined;
  private workers: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly counts: Record<ReconcileOutcome, number> = { success: 0, error: 0, requeue: 0 };
  private readonly now: () => Date;
  private readonly random: () => number;
  private readonly log: Logger;

  constructor(private readonly options: ReportControllerOptions) {
    this.now = options.now ?? (() => new Date());
    this.random = options.random ?? Math.random;
    this.log = options.logger;
    for (const informer of options.pods) {
      informer.on({
        add: (entry) => this.enqueue(options.index.upsert(entry), 'high'),
        update: (_old, entry) => this.enqueue(options.index.upsert(entry), 'high'),
        delete: (entry) => this.enqueue(options.index.remove(entry), 'normal'),
      });
    }
    options.namespaces.on({
      update: (oldEntry, entry) => {
        if (JSON.stringify(oldEntry.labels) !== JSON.stringify(entry.labels)) this.enqueueNamespace(entry.name);
      },
    });
    options.reports.on({
      add: (entry) => this.learnFromReport(entry, true),
      update: (_old, entry) => this.learnFromReport(entry, false),
      // Deleted by someone else while its pods still run: reconcile creates it again.
      delete: (entry) => this.enqueue([reportKey(entry.namespace, entry.report.spec.digest)], 'normal'),
    });
  }

  /** Starts the workers (call when caches are synced and this replica leads). Idempotent. */
  start(): void {
    if (this.queue !== undefined) return;
    const queue = new WorkQueue(this.options.queueOptions);
    this.queue = queue;
    for (let i = 0; i < this.options.workers; i += 1) this.workers.push(this.work(queue));
    // 'high' so the first finished scans, whose keys are enqueued 'high', wait behind the remaining
    // scan requests instead of delaying them (measured: the first 5 s of a 10,000-pod cold start
    // otherwise wrote reports of 79 digests and requested no other scans).
    this.enqueueAll('high');
    const resyncMs = this.options.resyncMs ?? 10 * 60_000;
    this.resyncTimer = setInterval(() => {
      this.pruneKnowledge();
      this.enqueueAll();
    }, resyncMs);
    this.resyncTimer.unref();
    this.log.info({ workers: this.options.workers }, 'controller started');
  }

  /** Stops handing out keys and waits for running reconciles to finish. */
  async stop(): Promise<void> {
    const queue = this.queue;
    if (queue === undefined) return;
    this.queue = undefined;
    if (this.resyncTimer !== undefined) clearInterval(this.resyncTimer);
    await queue.shutDownWithDrain();
    await Promise.all(this.workers);
    this.workers = [];
    this.log.info('controller stopped');
  }

  isRunning(): boolean {
    return this.queue !== undefined;
  }

  /** Reconcile counts by outcome since start. */
  reconcileCounts(): Readonly<Record<ReconcileOutcome, number>> {
    return { ...this.counts };
  }

  /** Keys waiting in the queue. */
  queueLength(): number {
    return this.queue?.len() ?? 0;
  }

  /** Stores a finished scan and reconciles every namespace that runs the digest. */
  handleScanOutcome(outcome: ScanOutcome): void {
    const fields = { digest: outcome.digest, image: outcome.target.repository, attempts: outcome.attempts, durationMs: outcome.durationMs };
    if (outcome.ok) {
      this.options.reconciler.recordSuccess(outcome.digest, outcome.result, outcome.finishedAt);
      this.log.info({ ...fields, total: outcome.result.summary.total, critical: outcome.result.summary.critical }, 'scan finished');
    } else {
      const failure = outcome.failure;
      this.options.reconciler.recordFailure(outcome.digest, failure.reason, failure.message, failure.transient, outcome.finishedAt);
      this.log.warn({ ...fields, reason: failure.reason, message: failure.message }, 'scan failed');
    }
    this.enqueue(this.options.index.keysForDigest(outcome.digest), 'high');
  }

  /** Rescans the digests whose result came from an older vulnerability DB than `updatedAt`. */
  rescanOutdated(updatedAt: string): void {
    const dbTime = Date.parse(updatedAt);
    if (Number.isNaN(dbTime)) return;
    // A result without a DB time is left to the schedule: after a restart we must not rescan everything.
    this.rescanAll('vulnerability database updated', (known) => {
      const scannedWith = known.result?.scanner.dbUpdatedAt;
      return scannedWith !== undefined && Date.parse(scannedWith) < dbTime;
    });
  }

  /**
   * Marks every running digest for a rescan, each not before a random moment within the jitter
   * window, and enqueues one key of each: its reconcile asks for the scan. Reports keep their results
   * until the new ones arrive, and then every key of the digest is enqueued (handleScanOutcome).
   * Enqueueing every key here rebuilt thousands of unchanged statuses at once: in the 10,000-pod bench
   * a burst of ~70 MB of garbage, the highest RSS of the run (bench/README.md).
   */
  rescanAll(reason: string, shouldRescan?: (known: DigestScanKnowledge) => boolean): void {
    const nowMs = this.now().getTime();
    const digests = this.options.index.runningDigests();
    const marked = this.options.scans.markForRescan(digests, () => nowMs + Math.floor(this.random() * this.options.rescanJitterMs), shouldRescan);
    this.log.info({ reason, digests: digests.length, marked: marked.length }, 'rescan scheduled');
    const keys: string[] = [];
    for (const digest of marked) {
      const key = this.options.index.keysForDigest(digest)[0];
      if (key !== undefined) keys.push(key);
    }
    this.enqueue(keys, 'normal');
  }

  /**
   * Enqueues every key that has pods or a report: one key of each digest first, because that key's
   * reconcile asks for the digest's scan. In the 10,000-pod bench, keys in namespace order kept the
   * scan queue half idle for the first 40 s of a cold start: the popular digests' keys (already
   * requested) came first and the long tail's scans waited behind their report writes.
   * `firstPriority` is the priority of those first keys (the others are 'normal').
   */
  enqueueAll(firstPriority: 'high' | 'normal' = 'normal'): void {
    const keys = new Set(this.options.index.runningKeys());
    for (const entry of this.options.reports.list()) keys.add(reportKey(entry.namespace, entry.report.spec.digest));
    const firstOfDigest: string[] = [];
    const others: string[] = [];
    const digests = new Set<string>();
    for (const key of keys) {
      const digest = key.slice(key.indexOf('/') + 1);
      (digests.has(digest) ? others : firstOfDigest).push(key);
      digests.add(digest);
    }
    this.enqueue(firstOfDigest, firstPriority);
    this.enqueue(others, 'normal');
  }

  /** Forgets scan knowledge of digests that neither run nor have a report, so memory follows the cluster. */
  pruneKnowledge(): number {
    const reported = new Set<string>();
    for (const entry of this.options.reports.list()) reported.add(entry.report.spec.digest);
    return this.options.scans.prune((digest) => this.options.index.isRunning(digest) || reported.has(digest));
  }

  private enqueueNamespace(namespace: string): void {
    this.enqueue(
      this.options.index.runningKeys().filter((key) => key.startsWith(`${namespace}/`)),
      'normal',
    );
  }

  private learnFromReport(entry: ReportEntry, enqueue: boolean): void {
    // The cache keeps reports slim; the lists come with the delivery, once. They are converted only
    // when the report is newer than what is known (seed ignores older results): after our own writes
    // the watch delivers ~2 reports per key, each with lists that are already known.
    const lists = takeReportDetails(entry);
    const status = entry.report.status;
    const digest = entry.report.spec.digest;
    const knownAt = this.options.scans.get(digest)?.scannedAt?.getTime();
    const reportAt = Date.parse(status?.lastScanTime ?? '');
    const newer = knownAt === undefined || !(knownAt >= reportAt);
    const state = scanStateFromReport(
      status === undefined || lists === undefined || !newer ? entry.report : { ...entry.report, status: { ...status, ...lists } },
    );
    this.options.scans.seed(digest, state, (s) => this.options.reconciler.prepared(s));
    // A report seen for the first time may be an orphan from before a restart: reconcile it.
    if (enqueue) this.enqueue([reportKey(entry.namespace, digest)], 'normal');
  }

  private enqueue(keys: readonly string[], priority: 'high' | 'normal'): void {
    const queue = this.queue;
    if (queue === undefined) return;
    for (const key of keys) queue.add(key, { priority });
  }

  private async work(queue: WorkQueue): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      await this.processItem(queue, key);
    }
  }

  /** One key: reconcile, then forget it, retry it with backoff, or requeue it after a delay. */
  private async processItem(queue: WorkQueue, key: string): Promise<void> {
    const slash = key.indexOf('/');
    try {
      const result = await this.options.reconciler.reconcile(key);
      queue.forget(key);
      if (result.requeueAfterMs !== undefined) {
        queue.addAfter(key, Math.max(1, result.requeueAfterMs));
        this.count('requeue');
      } else {
        this.count('success');
      }
    } catch (err) {
      const delayMs = queue.addRateLimited(key);
      this.count('error');
      const namespace = key.slice(0, slash);
      const digest = key.slice(slash + 1);
      const failure = err instanceof Error ? { type: err.name, message: err.message } : { message: String(err) };
      this.log.warn({ namespace, digest, err: failure, retryInMs: delayMs, requeues: queue.numRequeues(key) }, 'reconcile failed');
    } finally {
      queue.done(key);
    }
  }

  private count(outcome: ReconcileOutcome): void {
    this.counts[outcome] += 1;
    this.options.onReconciled?.(outcome);
  }
}
