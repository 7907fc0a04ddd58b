// Which digests a scheduled rescan scans again. Level-based: it looks at what each digest's result was
// made from, not at which trigger came first, so a DB update and the schedule together rescan a digest
// once per DB version.
import type { DigestScanKnowledge } from './scan-results.js';

export interface RescanLevel {
  /** UpdatedAt (RFC 3339) of the vulnerability DB scans use now; undefined while unknown. */
  dbUpdatedAt: string | undefined;
  nowMs: number;
  /** The schedule's period (rescanIntervalMs). */
  periodMs: number;
}

/**
 * A digest is stale when its result was matched against an older DB than the current one, or is at
 * least a schedule period old (the DB times unknown, or the DB not moving: a rescan then still catches
 * a changed scanner). A result of the current DB scanned within the period is what a rescan would give
 * again: the image behind a digest does not change, and the rescan reads the same SBOM. Digests
 * without a result (failed, never scanned) are left to be scanned.
 */
export function isDueForScheduledRescan(known: DigestScanKnowledge, level: RescanLevel): boolean {
  const result = known.result;
  if (result === undefined) return true;
  const scannedWith = Date.parse(result.scanner.dbUpdatedAt ?? '');
  const current = Date.parse(level.dbUpdatedAt ?? '');
  if (!Number.isNaN(scannedWith) && !Number.isNaN(current) && scannedWith < current) return true;
  const scannedAt = known.scannedAt?.getTime();
  return scannedAt === undefined || level.nowMs - scannedAt >= level.periodMs;
}
