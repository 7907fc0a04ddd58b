// The scan queue: one scan per digest at a time, a bounded number of scans at once, newly seen images
// ahead of scheduled rescans, and retries with exponential backoff and jitter for transient failures.
//
// A digest is "pending" from request() until its outcome is emitted, including while it waits for a
// retry, so a digest is never queued twice and never scanned by two children at once. One outcome is
// emitted per accepted request: after the last attempt for transient failures, at once otherwise.
//
// `concurrency` bounds Trivy children. A scan that says its child has exited (onChildExit) hands its
// slot to the next one while it still reads and parses the report, so a busy event loop does not keep
// slots idle; at most `concurrency` such scans finish at once. With `startAhead`, that many more scans
// start and wait in the runner for a child slot (TrivyRunner's scanSlots), so a slot's next child starts
// when one exits rather than a turn of the event loop later.
import type { Logger } from 'pino';
import { ScanFailure } from './scan-failure.js';
import type { ScanFailureReason } from './scan-failure.js';
import type { ScanResult } from './scan-result.js';
import type { ScanTarget } from './trivy-runner.js';

export type ScanPriority = 'new' | 'rescan';

export type ScanOutcome = {
  digest: string;
  target: ScanTarget;
  finishedAt: Date;
  /** Attempts made, including the last. */
  attempts: number;
  /** Duration of the last attempt. */
  durationMs: number;
} & ({ ok: true; result: ScanResult } | { ok: false; failure: ScanFailure });

/**
 * For metrics: one `started` and one `finished` per attempt (a retried attempt has willRetry: true),
 * and `running` when the attempt's child has started (after a wait for a slot in the runner).
 */
export type ScanQueueEvent =
  | { type: 'started'; digest: string; attempt: number; priority: ScanPriority }
  | { type: 'running'; digest: string; attempt: number }
  | {
      type: 'finished';
      digest: string;
      attempt: number;
      result: 'success' | 'failure';
      reason?: ScanFailureReason;
      durationSeconds: number;
      willRetry: boolean;
    };

export interface ScanQueueOptions {
  /** Runs one attempt; may call onChildStart once its child runs and onChildExit once it is gone (see above). */
  scan: (target: ScanTarget, signal: AbortSignal, onChildExit: () => void, onChildStart: () => void) => Promise<ScanResult>;
  /** Scans whose child may run at once. */
  concurrency: number;
  /** Scans started beyond `concurrency` whose child the runner holds until a slot is free (default 0). */
  startAhead?: number;
  /** Awaited before each attempt starts, e.g. TrivyDatabase.whenReady. */
  gate?: () => Promise<void>;
  /** Attempts per request for transient failures (default 3). */
  maxAttempts?: number;
  /** Which transient failures are tried again within the request (default: all of them). */
  retriesAtOnce?: (failure: ScanFailure) => boolean;
  /** Retry delay before jitter: baseMs * 2^(attempt-1), at most maxMs (default 30 s .. 10 min). */
  backoff?: { baseMs: number; maxMs: number };
  onOutcome: (outcome: ScanOutcome) => void;
  onEvent?: (event: ScanQueueEvent) => void;
  /** Called when the last scan has ended and nothing is queued (idle() turned true). */
  onIdle?: () => void;
  logger: Logger;
  now?: () => number;
  random?: () => number;
  /** Waits ms (resolving early when the signal aborts); drives notBefore and retry wake-ups. */
  delay?: (ms: number, signal: AbortSignal) => Promise<void>;
}

interface Entry {
  target: ScanTarget;
  priority: ScanPriority;
  /** Earliest start asked for by the caller (jitter for scheduled rescans). */
  notBefore: number;
  /** Earliest start after a failed attempt (backoff). */
  retryAt: number;
  attempts: number;
  seq: number;
}

interface Running {
  controller: AbortController;
  /**
   * 'waiting' at the gate, 'ready' (past it, the child not started: with startAhead it waits for a slot
   * in the runner) and 'scanning' while the child runs all hold a place; 'finishing' (the child has
   * exited or the attempt ended) holds none.
   */
  stage: 'waiting' | 'ready' | 'scanning' | 'finishing';
  done: Promise<void>;
}

/** De-duplicating, bounded-concurrency, two-priority scan queue with retries. */
export class ScanQueue {
  private readonly queued = new Map<string, Entry>();
  private readonly running = new Map<string, Running>();
  private readonly concurrency: number;
  private readonly startAhead: number;
  private readonly maxAttempts: number;
  private readonly backoff: { baseMs: number; maxMs: number };
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly delay: (ms: number, signal: AbortSignal) => Promise<void>;
  private wake: AbortController | undefined;
  private stopped = false;
  private seq = 0;

  constructor(private readonly opts: ScanQueueOptions) {
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) throw new Error(`scan concurrency must be a positive integer, got ${opts.concurrency}`);
    this.concurrency = opts.concurrency;
    this.startAhead = Math.max(0, opts.startAhead ?? 0);
    this.maxAttempts = Math.max(1, opts.maxAttempts ?? 3);
    this.backoff = opts.backoff ?? { baseMs: 30_000, maxMs: 10 * 60_000 };
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.log = opts.logger;
    this.delay = opts.delay ?? unrefDelay;
  }

  /**
   * Queues a scan. Returns false, queuing nothing new, when the digest is already queued or running;
   * a 'new' request then upgrades a queued 'rescan' (dropping its notBefore, keeping any retry backoff).
   * The latest target (platform, credentials) replaces a queued one.
   */
  request(target: ScanTarget, priority: ScanPriority, opts?: { notBefore?: number }): boolean {
    if (this.stopped) return false;
    const digest = target.digest;
    if (this.running.has(digest)) return false;
    const existing = this.queued.get(digest);
    if (existing) {
      existing.target = target;
      if (priority === 'new' && existing.priority === 'rescan') {
        existing.priority = 'new';
        existing.notBefore = 0;
        this.pump();
      }
      return false;
    }
    this.queued.set(digest, { target, priority, notBefore: opts?.notBefore ?? 0, retryAt: 0, attempts: 0, seq: this.seq++ });
    this.pump();
    return true;
  }

  /** Whether the digest is queued, waiting for a retry, or running. */
  isPending(digest: string): boolean {
    return this.queued.has(digest) || this.running.has(digest);
  }

  /** Scans waiting: queued, waiting for a retry, at the gate, or for a child slot in the runner. */
  depth(): number {
    let waiting = this.queued.size;
    for (const r of this.running.values()) if (r.stage === 'waiting' || r.stage === 'ready') waiting++;
    return waiting;
  }

  /** Nothing queued, waiting for a retry, or running (its report still being read included). */
  idle(): boolean {
    return this.queued.size === 0 && this.running.size === 0;
  }

  /** Scans whose child is running now. */
  inProgress(): number {
    let n = 0;
    for (const r of this.running.values()) if (r.stage === 'scanning') n++;
    return n;
  }

  /** Scans past the gate whose child runs or is about to: what a DB download must wait for. */
  pastGate(): number {
    let n = 0;
    for (const r of this.running.values()) if (r.stage === 'ready' || r.stage === 'scanning') n++;
    return n;
  }

  /** Drops queued work, aborts running scans (their children are killed) and waits for them. Never rejects. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.abort();
    this.queued.clear();
    const running = [...this.running.values()];
    for (const r of running) r.controller.abort(new Error('scan queue stopped'));
    await Promise.allSettled(running.map((r) => r.done));
  }

  private pump(): void {
    if (this.stopped) return;
    const now = this.now();
    while (this.hasRoom()) {
      const next = this.nextEligible(now);
      if (!next) break;
      this.queued.delete(next.target.digest);
      this.start(next);
    }
    this.armTimer(now);
  }

  private nextEligible(now: number): Entry | undefined {
    let best: Entry | undefined;
    for (const e of this.queued.values()) {
      if (Math.max(e.notBefore, e.retryAt) > now) continue;
      if (!best || rank(e) < rank(best) || (rank(e) === rank(best) && e.seq < best.seq)) best = e;
    }
    return best;
  }

  /** Wakes the queue when the earliest delayed entry becomes eligible. */
  private armTimer(now: number): void {
    this.wake?.abort();
    this.wake = undefined;
    if (!this.hasRoom()) return; // a finishing scan pumps again
    let earliest = Number.POSITIVE_INFINITY;
    for (const e of this.queued.values()) earliest = Math.min(earliest, Math.max(e.notBefore, e.retryAt));
    if (earliest === Number.POSITIVE_INFINITY) return;
    const wake = new AbortController();
    this.wake = wake;
    void this.delay(Math.max(0, earliest - now), wake.signal).then(() => {
      if (!wake.signal.aborted) this.pump();
    });
  }

  /**
   * A free slot (or one of the startAhead places), within a bound on all scans in flight: when the
   * children end faster than this loop reads their reports (SBOM rescans take milliseconds), the
   * finishing scans fill that bound and no more start, as before startAhead (10,000-pod bench: the
   * rescan's event-loop p99 47 -> 95 ms and peak RSS 209 -> 215 MiB with the bound raised by it).
   */
  private hasRoom(): boolean {
    if (this.running.size >= this.concurrency + Math.max(this.concurrency, this.startAhead)) return false;
    let taken = 0;
    for (const r of this.running.values()) if (r.stage !== 'finishing') taken++;
    return taken < this.concurrency + this.startAhead;
  }

  private start(entry: Entry): void {
    const digest = entry.target.digest;
    const record: Running = { controller: new AbortController(), stage: 'waiting', done: Promise.resolve() };
    this.running.set(digest, record);
    record.done = this.attempt(entry, record)
      .catch((err: unknown) => this.log.error({ err, digest }, 'scan queue bug: attempt threw'))
      .finally(() => {
        record.stage = 'finishing';
        this.running.delete(digest);
        this.pump();
        if (!this.stopped && this.idle()) this.notifyIdle();
      });
  }

  private async attempt(entry: Entry, record: Running): Promise<void> {
    const signal = record.controller.signal;
    const digest = entry.target.digest;
    if (this.opts.gate) {
      try {
        await Promise.race([this.opts.gate(), aborted(signal)]);
      } catch (err) {
        this.log.warn({ err, digest }, 'scan gate failed; scanning anyway');
      }
      if (signal.aborted) return;
    }
    record.stage = 'ready';
    entry.attempts++;
    const attempt = entry.attempts;
    const startedAt = this.now();
    this.emitEvent({ type: 'started', digest, attempt, priority: entry.priority });
    let result: ScanResult;
    try {
      const onChildExit = () => {
        if ((record.stage !== 'scanning' && record.stage !== 'ready') || this.stopped) return;
        record.stage = 'finishing';
        this.pump();
      };
      const onChildStart = () => {
        if (record.stage !== 'ready' || this.stopped) return;
        record.stage = 'scanning';
        this.emitEvent({ type: 'running', digest, attempt });
      };
      result = await this.opts.scan(entry.target, signal, onChildExit, onChildStart);
    } catch (err) {
      if (this.stopped) return; // cancelled by stop(): not an outcome
      const failure = toScanFailure(err);
      const durationMs = this.now() - startedAt;
      const willRetry = failure.transient && entry.attempts < this.maxAttempts && (this.opts.retriesAtOnce?.(failure) ?? true);
      record.stage = 'finishing';
      this.emitEvent({ type: 'finished', digest, attempt: entry.attempts, result: 'failure', reason: failure.reason, durationSeconds: durationMs / 1000, willRetry });
      if (willRetry) {
        const delayMs = this.retryDelay(entry.attempts);
        entry.retryAt = this.now() + delayMs;
        this.queued.set(digest, entry);
        this.log.info({ digest, repository: entry.target.repository, reason: failure.reason, attempt: entry.attempts, retryInMs: delayMs }, 'scan failed, will retry');
        return;
      }
      this.emitOutcome({ digest, target: entry.target, finishedAt: new Date(this.now()), attempts: entry.attempts, durationMs, ok: false, failure });
      return;
    }
    if (this.stopped) return;
    const durationMs = this.now() - startedAt;
    // The report was parsed in this turn; storing the result (capping, packing) gets a turn of its own.
    await this.delay(0, signal);
    if (this.stopped) return;
    record.stage = 'finishing';
    this.emitEvent({ type: 'finished', digest, attempt: entry.attempts, result: 'success', durationSeconds: durationMs / 1000, willRetry: false });
    this.emitOutcome({ digest, target: entry.target, finishedAt: new Date(this.now()), attempts: entry.attempts, durationMs, ok: true, result });
  }

  /** Exponential backoff with "equal jitter": half the delay fixed, half random, so retries spread out. */
  private retryDelay(attempt: number): number {
    const capped = Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** (attempt - 1));
    return Math.round(capped / 2 + this.random() * (capped / 2));
  }

  private emitOutcome(outcome: ScanOutcome): void {
    try {
      this.opts.onOutcome(outcome);
    } catch (err) {
      // A listener's bug must not stop the queue.
      this.log.error({ err, digest: outcome.digest }, 'scan outcome listener threw');
    }
  }

  private notifyIdle(): void {
    try {
      this.opts.onIdle?.();
    } catch (err) {
      this.log.error({ err }, 'scan queue idle listener threw');
    }
  }

  private emitEvent(event: ScanQueueEvent): void {
    try {
      this.opts.onEvent?.(event);
    } catch (err) {
      this.log.error({ err, digest: event.digest }, 'scan event listener threw');
    }
  }
}

/**
 * setTimeout that does not keep the process alive and ends early on abort. A zero delay is the next
 * turn: setImmediate runs right after the I/O being handled, where setTimeout(0) waits for the next
 * loop's timers (10,000-pod cold start 28.1 → 27.7 s, four interleaved runs, with mkdtempSync).
 */
function unrefDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    if (ms === 0) {
      setImmediate(resolve);
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
  });
}

function rank(e: Entry): number {
  return e.priority === 'new' ? 0 : 1;
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

function toScanFailure(err: unknown): ScanFailure {
  if (err instanceof ScanFailure) return err;
  // Not a classified failure: a bug somewhere. Retrying will not fix it.
  return new ScanFailure('scanner_error', `Unexpected error while scanning: ${err instanceof Error ? err.message : String(err)}`, false, { cause: err });
}
