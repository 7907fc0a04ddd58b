// What the operator knows about each digest's scans: the latest good result (kept until a newer good
// result replaces it, so a failed rescan never erases a report), the latest failure, and when the
// digest was last attempted. Seeded from existing reports at start so a restart does not rescan.
import type { ScanFailureReason } from '../scanner/scan-failure.js';
import type { ScanResult, Vulnerability } from '../scanner/scan-result.js';

export interface KnownFailure {
  reason: ScanFailureReason;
  message: string;
  at: Date;
  /** Transient failures (timeouts, registry hiccups) are retried sooner than the rescan schedule. */
  transient: boolean;
  /** The pull secret (namespace/name) the failed scan used; undefined when it had no credentials. */
  credentialsSource?: string;
}

/** Everything known about one digest. */
export interface DigestScanKnowledge {
  digest: string;
  /** The latest successful scan. */
  result?: ScanResult;
  scannedAt?: Date;
  /** Entries known to be missing from result.vulnerabilities (a result rebuilt from a capped report). */
  vulnerabilitiesOmitted?: number;
  /** The latest failed scan, cleared by a later success. */
  failure?: KnownFailure;
  /** Set by a scheduled rescan: the digest should be scanned again, not before this time (epoch ms). */
  rescanNotBefore?: number;
  /** When the digest was last scanned or failed (decides staleness, so failures do not storm). */
  lastAttemptAt: Date;
}

export interface SeedState {
  result?: ScanResult;
  scannedAt?: Date;
  vulnerabilitiesOmitted?: number;
  failure?: { reason: ScanFailureReason; message: string };
}

/** Distinct texts kept for sharing before the table starts over (bounds its own memory). */
const MAX_SHARED_TEXTS = 200_000;

/** In-memory digest → scan knowledge, bounded by the digests the cluster runs (see prune). */
export class ScanResults {
  private readonly byDigest = new Map<string, DigestScanKnowledge>();
  /**
   * One copy of each vulnerability text (ID, package, versions, title, URL, target). Images built on
   * the same base repeat them, yet each scan parses its own copies: in the 10,000-pod bench (1,000
   * digests) duplicated strings were 90 of the 221 MiB live heap.
   */
  private texts = new Map<string, string>();

  get(digest: string): DigestScanKnowledge | undefined {
    return this.byDigest.get(digest);
  }

  /** Records a successful scan; it replaces any older result and clears the failure. */
  recordResult(digest: string, result: ScanResult, scannedAt: Date, vulnerabilitiesOmitted = 0): void {
    const known = this.byDigest.get(digest);
    if (known?.scannedAt !== undefined && known.scannedAt > scannedAt) return;
    this.byDigest.set(digest, { digest, result: this.shareTexts(result), scannedAt, lastAttemptAt: scannedAt, vulnerabilitiesOmitted });
  }

  /** The result with its vulnerability texts replaced by the shared copies (same content). */
  private shareTexts(result: ScanResult): ScanResult {
    if (this.texts.size > MAX_SHARED_TEXTS) this.texts = new Map();
    const share = (text: string): string => {
      const known = this.texts.get(text);
      if (known !== undefined) return known;
      this.texts.set(text, text);
      return text;
    };
    const vulnerabilities = result.vulnerabilities.map((v) => {
      const out: Vulnerability = { ...v, id: share(v.id), package: share(v.package), installedVersion: share(v.installedVersion), target: share(v.target) };
      if (v.fixedVersion !== undefined) out.fixedVersion = share(v.fixedVersion);
      if (v.title !== undefined) out.title = share(v.title);
      if (v.url !== undefined) out.url = share(v.url);
      return out;
    });
    return { ...result, vulnerabilities };
  }

  /** Records a failed scan; an earlier good result is kept. */
  recordFailure(digest: string, failure: KnownFailure): void {
    const known = this.byDigest.get(digest);
    const next: DigestScanKnowledge = { ...(known ?? { digest }), failure, lastAttemptAt: failure.at };
    delete next.rescanNotBefore;
    this.byDigest.set(digest, next);
  }

  /** Marks every given digest for a rescan, each not before its own time (the scheduled pass's jitter). */
  markForRescan(
    digests: Iterable<string>,
    notBefore: (digest: string) => number,
    shouldRescan: (known: DigestScanKnowledge) => boolean = () => true,
  ): number {
    let marked = 0;
    for (const digest of digests) {
      const known = this.byDigest.get(digest);
      if (known === undefined || !shouldRescan(known)) continue;
      known.rescanNotBefore = notBefore(digest);
      marked += 1;
    }
    return marked;
  }

  /** Clears the rescan mark once the rescan has been handed to the scan queue. */
  clearRescanMark(digest: string): void {
    const known = this.byDigest.get(digest);
    if (known !== undefined) delete known.rescanNotBefore;
  }

  /**
   * Learns from an existing report (at start, or written by a previous leader). Ignored when we
   * already know something at least as recent.
   */
  seed(digest: string, state: SeedState): void {
    const known = this.byDigest.get(digest);
    if (state.result !== undefined && state.scannedAt !== undefined) {
      if (known?.scannedAt === undefined || known.scannedAt < state.scannedAt) {
        this.byDigest.set(digest, {
          ...(known ?? {}),
          digest,
          result: this.shareTexts(state.result),
          scannedAt: state.scannedAt,
          vulnerabilitiesOmitted: state.vulnerabilitiesOmitted ?? 0,
          lastAttemptAt: known !== undefined && known.lastAttemptAt > state.scannedAt ? known.lastAttemptAt : state.scannedAt,
        });
      }
      return;
    }
    if (state.failure !== undefined && known === undefined) {
      // A report's failure has no timestamp of its own; treat it as needing the next scheduled pass.
      this.byDigest.set(digest, {
        digest,
        failure: { reason: state.failure.reason, message: state.failure.message, at: new Date(0), transient: false },
        lastAttemptAt: new Date(0),
      });
    }
  }


  /** Forgets digests no longer in use, so memory follows what runs. */
  prune(inUse: (digest: string) => boolean): number {
    let removed = 0;
    for (const digest of [...this.byDigest.keys()]) {
      if (!inUse(digest)) {
        this.byDigest.delete(digest);
        removed += 1;
      }
    }
    return removed;
  }

  size(): number {
    return this.byDigest.size;
  }
}
