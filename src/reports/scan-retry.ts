// When a digest whose scans keep failing is tried again. An image that always times out or always
// crashes Trivy must not hold a scan slot every few minutes forever: the retries back off
// (base, 2 x base, 4 x base, ...), and after `maxAttempts` failures in a row the digest waits for the
// scheduled rescan, which tries it once per pass. A success starts the count again.

export interface ScanRetryPolicy {
  /** Wait after the first failure; doubled after each further one. */
  baseMs: number;
  /** Failed attempts in a row after which only the scheduled rescan tries again. */
  maxAttempts: number;
}

export const DEFAULT_SCAN_RETRY_POLICY: Readonly<ScanRetryPolicy> = { baseMs: 10 * 60_000, maxAttempts: 5 };

/** The retry state a Failed report shows (status.failedScanAttempts, status.nextRetryTime). */
export interface ScanRetryState {
  /** Failed attempts in a row since the last successful scan. */
  attempts: number;
  /** When the digest is tried next. */
  nextRetryAt: Date;
}

/**
 * When to try again after the `attempts`-th failure in a row at `failedAt`. A transient failure
 * (timeout, crash, registry hiccup) is retried after base x 2^(attempts-1), but never later than the
 * next scheduled rescan (which tries anyway). A permanent one (image gone, credentials refused), and
 * any failure once `maxAttempts` is reached, waits for that rescan.
 */
export function nextScanRetry(attempts: number, failedAt: Date, transient: boolean, policy: ScanRetryPolicy, nextScheduledRescan: Date): Date {
  const scheduled = Math.max(failedAt.getTime(), nextScheduledRescan.getTime());
  if (!transient || attempts >= policy.maxAttempts) return new Date(scheduled);
  const backoffMs = policy.baseMs * 2 ** Math.min(30, Math.max(0, attempts - 1));
  return new Date(Math.min(failedAt.getTime() + backoffMs, scheduled));
}

/** The sentence a Failed report's status.message ends with: how often it failed and when it is tried next. */
export function retrySentence(retry: ScanRetryState, maxAttempts: number): string {
  const at = retry.nextRetryAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (retry.attempts >= maxAttempts) return `Gave up after ${retry.attempts} failed attempts in a row; next try with the scheduled rescan at ${at}.`;
  return `Failed ${retry.attempts} of ${maxAttempts} attempts; next try at ${at}.`;
}
