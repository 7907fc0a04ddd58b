// What the operator knows about each digest's scans: the latest good result (kept until a newer good
// result replaces it, so a failed rescan never erases a report), the latest failure, and when the
// digest was last attempted. Seeded from existing reports at start so a restart does not rescan.
import { brotliCompressSync, brotliDecompressSync, constants as zlibConstants } from 'node:zlib';
import type { ScanFailureReason } from '../scanner/scan-failure.js';
import type { ScanResult, Vulnerability } from '../scanner/scan-result.js';
import { findingFingerprint } from '../kube/event-recorder.js';
import { RecentMap } from '../recent-map.js';
import type { FixCounts, ReportFix } from './image-scan-report.js';
import { fixableCriticalIdsOfFixes } from './report-fixes.js';

export interface KnownFailure {
  reason: ScanFailureReason;
  message: string;
  at: Date;
  /** Transient failures (timeouts, registry hiccups) are retried sooner than the rescan schedule. */
  transient: boolean;
  /** Failed attempts in a row since the last successful scan, this one included. */
  attempts: number;
  /** When the digest is tried again (see scan-retry.ts); undefined: at once (a report from an older version). */
  nextRetryAt?: Date;
  /**
   * The pull secrets (namespace/name) that failed scans used since the last success, so another
   * namespace's secret is tried once each, never the same ones in turn.
   */
  triedCredentials?: readonly string[];
}

/** Everything known about one digest. */
export interface DigestScanKnowledge {
  digest: string;
  /** The latest successful scan, without its vulnerability list (ScanResults.resultOf has it). */
  result?: ScanOutline;
  scannedAt?: Date;
  /** Entries known to be missing from result.vulnerabilities (a result rebuilt from a capped report). */
  vulnerabilitiesOmitted?: number;
  /** Fix entries known to be missing from the kept fixes. */
  fixesOmitted?: number;
  /** Their fixable vulnerabilities by severity. */
  fixesOmittedCounts?: FixCounts;
  /** The kept lists lack what the reports should show; only a scan completes them (see ScanState). */
  detailsIncomplete?: boolean;
  /** Set when the result's lists are already a report's lists; their fingerprint (see ScanState). */
  preparedListFingerprint?: string;
  /**
   * The fixable CRITICAL finding of the kept fix entries (how many, and its findingFingerprint), worked
   * out when they are stored: whether a Warning event is owed is then known without the lists.
   */
  finding?: { count: number; fingerprint: string };
  /** The latest failed scan, cleared by a later success. */
  failure?: KnownFailure;
  /** Set by a scheduled rescan: the digest should be scanned again, not before this time (epoch ms). */
  rescanNotBefore?: number;
  /** When the digest was last scanned or failed (decides staleness, so failures do not storm). */
  lastAttemptAt: Date;
}

/** A scan result without its vulnerability list: what most decisions need. */
export type ScanOutline = Omit<ScanResult, 'vulnerabilities'>;

/** A result as a report holds it: the (possibly empty) vulnerability list and the fix entries. */
export interface KeptResult {
  result: ScanResult;
  fixes: ReportFix[];
}

/** What a scan (or a report) gives the knowledge: a ScanState as preparedScanState makes it. */
export interface SeedState {
  result?: ScanResult;
  fixes?: ReportFix[];
  fixesOmitted?: number;
  fixesOmittedCounts?: FixCounts;
  scannedAt?: Date;
  vulnerabilitiesOmitted?: number;
  detailsIncomplete?: boolean;
  preparedListFingerprint?: string;
  failure?: { reason: ScanFailureReason; message: string; retry?: { attempts: number; nextRetryAt: Date } };
}

/** The knowledge with its result's lists as compressed JSON (see ScanResults). */
type StoredKnowledge = DigestScanKnowledge & { packedVulnerabilities?: Buffer };

/** Results kept unpacked, most recently used last: the digests whose reports are being written now. */
const UNPACKED_RESULTS = 32;

/**
 * In-memory digest → scan knowledge, bounded by the digests the cluster runs (see prune). A result's
 * vulnerability list is needed only when a report of the digest is written, so it is kept as compressed
 * JSON (~10x smaller) and unpacked for the few digests in use: in the 10,000-pod bench the parsed
 * lists of 1,000 digests were ~30 MiB of the 135 MiB live heap.
 */
export class ScanResults {
  private readonly byDigest = new Map<string, StoredKnowledge>();
  private readonly unpacked = new RecentMap<string, KeptResult>(UNPACKED_RESULTS);

  get(digest: string): DigestScanKnowledge | undefined {
    return this.byDigest.get(digest);
  }

  /** The latest successful result with its lists (the same objects while in use). */
  resultOf(digest: string): KeptResult | undefined {
    const stored = this.byDigest.get(digest);
    if (stored?.result === undefined || stored.packedVulnerabilities === undefined) return undefined;
    let kept = this.unpacked.get(digest);
    if (kept === undefined) {
      const [vulnerabilities, fixes] = JSON.parse(brotliDecompressSync(stored.packedVulnerabilities).toString('utf8')) as [Vulnerability[], ReportFix[]];
      kept = { result: { ...stored.result, vulnerabilities }, fixes };
    }
    this.unpacked.set(digest, kept);
    return kept;
  }

  /**
   * Records a successful scan, as preparedScanState makes it (its result and fixes are what the
   * reports hold); it replaces any older result and clears the failure.
   */
  recordResult(digest: string, state: SeedState & { result: ScanResult }, scannedAt: Date): void {
    const known = this.byDigest.get(digest);
    if (known?.scannedAt !== undefined && known.scannedAt > scannedAt) return;
    const kept = { result: state.result, fixes: state.fixes ?? [] };
    const stored: StoredKnowledge = { digest, ...pack(kept), scannedAt, lastAttemptAt: scannedAt, ...detailsFacts(state) };
    this.store(digest, stored, kept);
  }

  private store(digest: string, knowledge: StoredKnowledge, result?: KeptResult): void {
    this.byDigest.set(digest, knowledge);
    if (result !== undefined) this.unpacked.set(digest, result);
    else this.unpacked.delete(digest);
  }

  /** Records a failed scan; an earlier good result is kept. */
  recordFailure(digest: string, failure: KnownFailure): void {
    const known = this.byDigest.get(digest);
    const next: StoredKnowledge = { ...(known ?? { digest }), failure, lastAttemptAt: failure.at };
    delete next.rescanNotBefore;
    this.byDigest.set(digest, next);
  }

  /**
   * Marks every given digest for a rescan, each not before its own time (the scheduled pass's jitter).
   * Returns the digests marked.
   */
  markForRescan(
    digests: Iterable<string>,
    notBefore: (digest: string) => number,
    shouldRescan: (known: DigestScanKnowledge) => boolean = () => true,
  ): string[] {
    const marked: string[] = [];
    for (const digest of digests) {
      const known = this.byDigest.get(digest);
      if (known === undefined || !shouldRescan(known)) continue;
      known.rescanNotBefore = notBefore(digest);
      marked.push(digest);
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
   * already know something at least as recent. A result that is kept goes through `prepare` first
   * (the reconciler's: the list as its reports hold it, with its fingerprint).
   */
  seed<S extends SeedState>(digest: string, state: S, prepare: (state: S) => SeedState = (s) => s): void {
    const known = this.byDigest.get(digest);
    if (state.result !== undefined && state.scannedAt !== undefined) {
      if (known?.scannedAt === undefined || known.scannedAt < state.scannedAt) {
        // Prepared only now that it is kept: most reports the watch delivers are known already.
        const kept = prepare(state);
        // What we knew stays (a failure, rescanNotBefore), except the facts of the lists replaced here.
        const { preparedListFingerprint: _replaced, detailsIncomplete: _incomplete, fixesOmitted: _omitted, fixesOmittedCounts: _counts, ...earlier } = known ?? {};
        const stored: StoredKnowledge = {
          ...earlier,
          digest,
          ...pack({ result: kept.result ?? state.result, fixes: kept.fixes ?? [] }),
          scannedAt: state.scannedAt,
          lastAttemptAt: known !== undefined && known.lastAttemptAt > state.scannedAt ? known.lastAttemptAt : state.scannedAt,
          ...detailsFacts(kept),
        };
        // A report that cannot give what this configuration writes (see ScanState.detailsIncomplete)
        // asks for one scan; its reports are left as they are until it ends.
        if (stored.detailsIncomplete === true) stored.rescanNotBefore ??= 0;
        this.store(digest, stored);
      }
      return;
    }
    const failedAt = state.scannedAt ?? new Date(0);
    // A failure newer than what is known (a restart, or another leader's attempt) brings its count and
    // retry time along, so a restart neither rescans at once nor forgets how often the digest failed.
    if (state.failure !== undefined && (known === undefined || (known.result === undefined && known.lastAttemptAt < failedAt))) {
      const failure: KnownFailure = { reason: state.failure.reason, message: state.failure.message, at: failedAt, transient: false, attempts: state.failure.retry?.attempts ?? 1 };
      if (state.failure.retry !== undefined) failure.nextRetryAt = state.failure.retry.nextRetryAt;
      this.byDigest.set(digest, { ...(known ?? {}), digest, failure, lastAttemptAt: failedAt });
    }
  }

  /** Forgets digests no longer in use, so memory follows what runs. */
  prune(inUse: (digest: string) => boolean): number {
    let removed = 0;
    for (const digest of [...this.byDigest.keys()]) {
      if (!inUse(digest)) {
        this.byDigest.delete(digest);
        this.unpacked.delete(digest);
        removed += 1;
      }
    }
    return removed;
  }

  size(): number {
    return this.byDigest.size;
  }
}

/**
 * Brotli at quality 5, in text mode: on the fixtures' report lists 24% smaller than deflate at level 1
 * (52 against 68 KB for 16 lists), ~0.35 ms per list to pack (once per scan) and faster to unpack. The
 * packed lists are most of what the operator keeps per digest outside the V8 heap (~4.9 KB each in the
 * 10,000-pod bench, where a churn adds 1,200 digests). The output is copied out: a compression result
 * can be a view of a larger buffer, which kept 41 MiB of mostly empty buffers alive for 1,000 digests
 * (heap snapshot, 10,000-pod bench).
 */
function pack(kept: KeptResult): { result: ScanOutline; packedVulnerabilities: Buffer; finding: { count: number; fingerprint: string } } {
  const { vulnerabilities, ...outline } = kept.result;
  const text = JSON.stringify([vulnerabilities, kept.fixes]);
  const packed = brotliCompressSync(text, {
    params: {
      [zlibConstants.BROTLI_PARAM_QUALITY]: 5,
      [zlibConstants.BROTLI_PARAM_MODE]: zlibConstants.BROTLI_MODE_TEXT,
      [zlibConstants.BROTLI_PARAM_SIZE_HINT]: text.length,
      [zlibConstants.BROTLI_PARAM_LGWIN]: windowBitsFor(text.length),
    },
  });
  const exact = Buffer.alloc(packed.length);
  packed.copy(exact);
  const criticalIds = fixableCriticalIdsOfFixes(kept.fixes);
  return { result: outline, packedVulnerabilities: exact, finding: { count: criticalIds.length, fingerprint: findingFingerprint(criticalIds) } };
}

/**
 * A window just large enough for the text (brotli's 10..22 bits). The default, 4 MiB, is allocated and
 * touched afresh for every list, most of which are a few KB: the same output, 0.141 -> 0.085 ms per
 * list on the fixtures (`brotliCompressSync` alone), and ~1 ms per list in the operator's cold start
 * profile, where that memory was new pages each time.
 */
function windowBitsFor(bytes: number): number {
  return Math.max(zlibConstants.BROTLI_MIN_WINDOW_BITS, Math.min(zlibConstants.BROTLI_MAX_WINDOW_BITS, Math.ceil(Math.log2(bytes + 1))));
}

/** The facts of a prepared state that the knowledge keeps beside its packed lists. */
function detailsFacts(state: SeedState): Pick<DigestScanKnowledge, 'vulnerabilitiesOmitted' | 'fixesOmitted' | 'fixesOmittedCounts' | 'detailsIncomplete' | 'preparedListFingerprint'> {
  const facts: ReturnType<typeof detailsFacts> = { vulnerabilitiesOmitted: state.vulnerabilitiesOmitted ?? 0, fixesOmitted: state.fixesOmitted ?? 0 };
  if (state.fixesOmittedCounts !== undefined && (state.fixesOmitted ?? 0) > 0) facts.fixesOmittedCounts = state.fixesOmittedCounts;
  if (state.detailsIncomplete === true) facts.detailsIncomplete = true;
  if (state.preparedListFingerprint !== undefined) facts.preparedListFingerprint = state.preparedListFingerprint;
  return facts;
}
