// The closed set of reasons a scan fails. The reason is the metric label
// (imagescan_scan_failures_total{reason}) and the cause in a report's status.message.

export const SCAN_FAILURE_REASONS = ['timeout', 'auth', 'not_found', 'scanner_error', 'invalid_output'] as const;
export type ScanFailureReason = (typeof SCAN_FAILURE_REASONS)[number];

/** A failed scan, classified. `transient` failures are retried with backoff; the others are final. */
export class ScanFailure extends Error {
  override readonly name = 'ScanFailure';
  constructor(
    readonly reason: ScanFailureReason,
    message: string,
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
