// What the operator asked of the API server, per phase window, from the fake's request log.
import type { RequestRecord } from '../e2e/fake-apiserver/index.js';

const WRITE_VERBS = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
/** Created only to be answered (the secure /metrics asks them); nothing is stored, so not writes. */
const REVIEWS = new Set(['tokenreviews', 'subjectaccessreviews']);

export interface ApiWindowCounts {
  total: number;
  /** create/update/patch/delete of imagescanreports, main resource and /status. */
  reportWrites: number;
  reportCreates: number;
  reportStatusWrites: number;
  reportDeletes: number;
  /** Other writes (events, leases). */
  otherWrites: number;
  reads: number;
  /** Requests answered with a 4xx/5xx (conflicts, not found). */
  errors: number;
}

export function countRequests(records: RequestRecord[], fromMs: number, toMs: number): ApiWindowCounts {
  const counts: ApiWindowCounts = { total: 0, reportWrites: 0, reportCreates: 0, reportStatusWrites: 0, reportDeletes: 0, otherWrites: 0, reads: 0, errors: 0 };
  for (const r of records) {
    if (r.startMs < fromMs || r.startMs >= toMs) continue;
    counts.total += 1;
    if ((r.code ?? 200) >= 400) counts.errors += 1;
    const isWrite = r.verb !== undefined && WRITE_VERBS.has(r.verb) && !REVIEWS.has(r.resource ?? '');
    if (!isWrite) {
      counts.reads += 1;
      continue;
    }
    if (r.resource !== 'imagescanreports') {
      counts.otherWrites += 1;
      continue;
    }
    counts.reportWrites += 1;
    if (r.verb === 'create') counts.reportCreates += 1;
    else if (r.verb === 'delete' || r.verb === 'deletecollection') counts.reportDeletes += 1;
    else if (r.subresource === 'status') counts.reportStatusWrites += 1;
  }
  return counts;
}

/** Time of the last report write in the log (0 when none). */
export function lastReportWriteMs(records: RequestRecord[]): number {
  for (let i = records.length - 1; i >= 0; i -= 1) {
    const r = records[i];
    if (r !== undefined && r.resource === 'imagescanreports' && r.verb !== undefined && WRITE_VERBS.has(r.verb)) return r.startMs;
  }
  return 0;
}
