// What the reports cost the API server's storage: the bytes of every stored report (etcd keeps each
// custom object as its JSON), and the bytes of the objects a phase rewrote (each write stores the whole
// object again: etcd's write volume, its WAL and its compaction work).
import type { KubeObject, RequestRecord } from '../e2e/fake-apiserver/index.js';

const WRITE_VERBS = new Set(['create', 'update', 'patch']);

export interface StoredReportBytes {
  reports: number;
  /** Sum of the stored objects' JSON bytes. */
  totalBytes: number;
  meanBytes: number;
  p99Bytes: number;
  maxBytes: number;
}

/** The JSON bytes of one stored object (the fake keeps no managedFields; a real API server adds them). */
export function objectBytes(obj: KubeObject): number {
  return Buffer.byteLength(JSON.stringify(obj), 'utf8');
}

/** Total, mean, p99 (nearest rank) and largest size of the given stored reports. */
export function storedReportBytes(reports: readonly KubeObject[]): StoredReportBytes {
  const sizes = reports.map(objectBytes).sort((a, b) => a - b);
  const totalBytes = sizes.reduce((sum, n) => sum + n, 0);
  const rank = Math.max(0, Math.ceil(0.99 * sizes.length) - 1);
  return {
    reports: sizes.length,
    totalBytes,
    meanBytes: sizes.length === 0 ? 0 : totalBytes / sizes.length,
    p99Bytes: sizes[rank] ?? 0,
    maxBytes: sizes.at(-1) ?? 0,
  };
}

export interface RewrittenBytes {
  /** Report writes (create, update, patch of the object or its status) in the window. */
  writes: number;
  /** Sum over those writes of the size of the object they left (the current object, read after the window). */
  objectBytes: number;
  /** Sum of the request bodies the operator sent for them. */
  requestBytes: number;
}

/**
 * The bytes a window's report writes made the API server store: for each write, the size of the object
 * as it is now. Read right after a window whose writes change nothing further (a no-change rescan),
 * that is the size each write stored.
 */
export function rewrittenReportBytes(
  records: readonly RequestRecord[],
  fromMs: number,
  toMs: number,
  current: (namespace: string, name: string) => KubeObject | undefined,
): RewrittenBytes {
  const out: RewrittenBytes = { writes: 0, objectBytes: 0, requestBytes: 0 };
  for (const r of records) {
    if (r.startMs < fromMs || r.startMs >= toMs || r.resource !== 'imagescanreports' || r.verb === undefined || !WRITE_VERBS.has(r.verb)) continue;
    if ((r.code ?? 200) >= 400) continue;
    out.writes += 1;
    out.requestBytes += r.requestBytes ?? 0;
    const obj = r.namespace === undefined || r.name === undefined ? undefined : current(r.namespace, r.name);
    if (obj !== undefined) out.objectBytes += objectBytes(obj);
  }
  return out;
}
