// Scans of images the webhook was asked about but no pod runs yet, by reference: a tag is scanned as
// `repository:tag` (Trivy reports the digest it resolved), a pinned digest as itself. What they teach
// (tag → digest, digest → counts) answers the retry from memory. Each replica scans what it is asked
// (the API server may ask either): nothing is written to the cluster, so a standby can do it too.
//
// Bounded on purpose: one Trivy child at a time beside the cluster's scans, at most `maxQueued`
// references waiting (each once), a failed reference not tried again before `retryAfterMs`, and what
// was learned kept for the most recent `maxLearned` tags and digests.
import type { Logger } from 'pino';
import type { ImageReference } from '../images/image-reference.js';
import type { ScanCounts } from '../policy/policy-evaluation.js';
import { hasFix } from '../reports/report-fixes.js';
import { RecentMap } from '../recent-map.js';
import { ScanFailure } from '../scanner/scan-failure.js';
import type { ScanResult } from '../scanner/scan-result.js';
import type { PullIdentity } from './admitted-images.js';
import { tagKey } from './known-images.js';

/** What to scan: a tag, or a digest (a reference that pins one); with the pull secrets of whoever asked first. */
export type ReferenceTarget = ({ repository: string; tag: string; digest?: undefined } | { repository: string; digest: string; tag?: undefined }) & { pullIdentity?: PullIdentity };

export interface ReferenceScansOptions {
  /** Runs one scan; throws a ScanFailure (or anything) when it fails. */
  scan: (target: ReferenceTarget, signal: AbortSignal) => Promise<{ digest: string; result: ScanResult }>;
  /** True when the target's result is known meanwhile (its tag runs, its digest has a report): no scan is run. */
  isKnown: (target: ReferenceTarget) => boolean;
  /** Told of every successful scan (e.g. to seed the controller's scan knowledge). */
  onScanned?: (scanned: { target: ReferenceTarget; digest: string; result: ScanResult; finishedAt: Date }) => void;
  logger: Logger;
  maxQueued?: number;
  maxLearned?: number;
  retryAfterMs?: number;
  now?: () => number;
}

/** What one scan by reference taught: the tag's digest (for a tag) and the digest's counts. */
export interface LearnedScan {
  tagKey?: string;
  digest: string;
  scan: ScanCounts;
}

interface Learned {
  scan: ScanCounts;
  scannedAt: number;
}

/** A bounded, de-duplicating queue of scans by reference, and what they taught. */
export class ReferenceScans {
  private readonly queued = new Map<string, ReferenceTarget>();
  private running: { key: string; controller: AbortController; done: Promise<void> } | undefined;
  private readonly digestByTag: RecentMap<string, string>;
  private readonly scanByDigest: RecentMap<string, Learned>;
  private readonly failedAt: RecentMap<string, number>;
  private readonly maxQueued: number;
  private readonly retryAfterMs: number;
  private readonly now: () => number;
  private stopped = false;
  private readonly learnedListeners: ((learned: LearnedScan) => void)[] = [];

  /** How many tags and digests are kept (the most recently learned). */
  readonly maxLearned: number;

  constructor(private readonly opts: ReferenceScansOptions) {
    this.maxLearned = opts.maxLearned ?? 2048;
    this.digestByTag = new RecentMap(this.maxLearned);
    this.scanByDigest = new RecentMap(this.maxLearned);
    this.failedAt = new RecentMap(this.maxLearned);
    this.maxQueued = opts.maxQueued ?? 100;
    this.retryAfterMs = opts.retryAfterMs ?? 5 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** The digest a scan by reference found for the tag, if any. */
  digestOfTag(repository: string, tag: string | undefined): string | undefined {
    return this.digestByTag.get(tagKey(repository, tag));
  }

  /** The counts a scan by reference found for the digest, if any. */
  scanOfDigest(digest: string): ScanCounts | undefined {
    return this.scanByDigest.get(digest)?.scan;
  }

  /** What is known now, oldest first: replaying it into maps of the same bound gives the same maps. */
  learned(): { tags: [tagKey: string, digest: string][]; scans: [digest: string, scan: ScanCounts][] } {
    return { tags: [...this.digestByTag], scans: [...this.scanByDigest].map(([digest, learned]) => [digest, learned.scan]) };
  }

  /** Calls `listener` after each successful scan, once its result is known here. */
  onLearned(listener: (learned: LearnedScan) => void): void {
    this.learnedListeners.push(listener);
  }

  /**
   * Asks for a scan of the reference soon. Returns false, queuing nothing, when its result is known
   * here, it is queued or running already, failed less than retryAfterMs ago, the queue is full, or the scans stopped.
   */
  request(reference: ImageReference, pullIdentity?: PullIdentity): boolean {
    if (this.stopped) return false;
    const image = reference.digest !== undefined ? { repository: reference.repository, digest: reference.digest } : { repository: reference.repository, tag: reference.tag ?? 'latest' };
    const target: ReferenceTarget = pullIdentity === undefined ? image : { ...image, pullIdentity };
    const key = keyOf(target);
    if (this.queued.has(key) || this.running?.key === key) return false;
    // Learned already: the webhook thread asked before its copy of the knowledge had the result.
    const learnedDigest = target.digest ?? this.digestByTag.get(key);
    if (learnedDigest !== undefined && this.scanByDigest.has(learnedDigest)) return false;
    const failed = this.failedAt.get(key);
    if (failed !== undefined && this.now() - failed < this.retryAfterMs) return false;
    if (this.queued.size >= this.maxQueued) {
      this.opts.logger.warn({ image: key, queued: this.queued.size }, 'too many images waiting for a scan by reference; not queued');
      return false;
    }
    this.queued.set(key, target);
    this.pump();
    return true;
  }

  /** References waiting or being scanned. */
  pending(): number {
    return this.queued.size + (this.running === undefined ? 0 : 1);
  }

  /** Drops the waiting references and cancels the running scan. Never rejects. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.queued.clear();
    const running = this.running;
    running?.controller.abort(new Error('reference scans stopped'));
    await running?.done;
  }

  private pump(): void {
    if (this.stopped || this.running !== undefined) return;
    const next = this.queued.entries().next();
    if (next.done === true) return;
    const [key, target] = next.value;
    this.queued.delete(key);
    // Known meanwhile (it started running and was scanned, or a scan of another name found its digest).
    if (this.opts.isKnown(target) || (target.digest !== undefined && this.scanByDigest.has(target.digest))) {
      this.pump();
      return;
    }
    const controller = new AbortController();
    const running = { key, controller, done: Promise.resolve() };
    this.running = running;
    running.done = this.run(key, target, controller.signal).finally(() => {
      this.running = undefined;
      this.pump();
    });
  }

  private async run(key: string, target: ReferenceTarget, signal: AbortSignal): Promise<void> {
    const log = this.opts.logger;
    log.info({ image: key }, 'scan by reference started');
    let scanned: { digest: string; result: ScanResult };
    try {
      scanned = await this.opts.scan(target, signal);
    } catch (err) {
      if (this.stopped) return;
      this.failedAt.set(key, this.now());
      const reason = err instanceof ScanFailure ? err.reason : 'scanner_error';
      log.warn({ image: key, reason, message: err instanceof Error ? err.message : String(err) }, 'scan by reference failed');
      return;
    }
    if (this.stopped) return;
    const finishedAt = this.now();
    this.failedAt.delete(key);
    if (target.tag !== undefined) this.digestByTag.set(key, scanned.digest);
    const scan = scanCountsOfResult(scanned.result);
    this.scanByDigest.set(scanned.digest, { scan, scannedAt: finishedAt });
    for (const listener of this.learnedListeners) listener({ ...(target.tag === undefined ? {} : { tagKey: key }), digest: scanned.digest, scan });
    log.info({ image: key, digest: scanned.digest, critical: scanned.result.summary.critical, high: scanned.result.summary.high }, 'scan by reference finished');
    try {
      this.opts.onScanned?.({ target, digest: scanned.digest, result: scanned.result, finishedAt: new Date(finishedAt) });
    } catch (err) {
      log.error({ err, image: key }, 'scan by reference listener threw');
    }
  }
}

function keyOf(target: ReferenceTarget): string {
  return target.digest !== undefined ? `${target.repository}@${target.digest}` : tagKey(target.repository, target.tag);
}

/** The threshold counts of a scan result (its full list: fixable means a fixed version is known). */
export function scanCountsOfResult(result: ScanResult): ScanCounts {
  let fixableCritical = 0;
  let fixableHigh = 0;
  for (const v of result.vulnerabilities) {
    if (!hasFix(v)) continue;
    if (v.severity === 'CRITICAL') fixableCritical++;
    else if (v.severity === 'HIGH') fixableHigh++;
  }
  return { critical: result.summary.critical, high: result.summary.high, fixableCritical, fixableHigh };
}
