// The report informer's cache, indexed by (namespace, digest) for reconcile and listable for metrics.
// Our own writes are remembered until the watch delivers them, so a reconcile right after a write
// does not compare against the older cached copy and write the same thing again.
import type { ImageScanReport } from '../reports/image-scan-report.js';
import { slimReport } from './cluster-objects.js';
import type { ReportEntry } from './cluster-objects.js';
import type { ResilientInformer } from './informer.js';

interface RecentWrite {
  /** undefined: we deleted it. */
  report: ImageScanReport | undefined;
  resourceVersion: string;
  /** When it was remembered (ms). */
  at: number;
}

/** A write the watch has not confirmed within this long is settled by the watch's relist, not by us. */
const RECENT_WRITE_MAX_AGE_MS = 5 * 60_000;

/** True when resourceVersion `a` is at least `b`. Opaque strings compare by equality only. */
function isAtLeast(a: string, b: string): boolean {
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) >= BigInt(b);
  return a === b;
}

/** Reports by (namespace, digest); fed by the report informer's callbacks and by our own writes. */
export class ReportIndex {
  private readonly byDigestKey = new Map<string, string>();
  private readonly recent = new Map<string, RecentWrite>();
  private readonly now: () => number;

  constructor(
    private readonly informer: Pick<ResilientInformer<ReportEntry>, 'on' | 'get' | 'list'>,
    now: () => number = Date.now,
  ) {
    this.now = now;
    informer.on({
      add: (entry) => this.index(entry),
      update: (oldEntry, entry) => {
        this.unindex(oldEntry);
        this.index(entry);
      },
      delete: (entry) => {
        this.unindex(entry);
        if (this.recent.get(entry.key)?.report === undefined) this.recent.delete(entry.key);
      },
    });
  }

  /** The report of the digest in the namespace: our latest write, else the informer's copy (slim: see slimReport). */
  find(namespace: string, digest: string): ImageScanReport | undefined {
    const key = this.byDigestKey.get(`${namespace}/${digest}`);
    if (key === undefined) return undefined;
    const cached = this.informer.get(key);
    const recent = this.recent.get(key);
    if (recent === undefined) return cached?.report;
    if (recent.report !== undefined && cached !== undefined && isAtLeast(cached.resourceVersion, recent.resourceVersion)) {
      this.recent.delete(key);
      return cached.report;
    }
    return recent.report;
  }

  /** Remembers a report as the API server returned it after our write. */
  remember(report: ImageScanReport): void {
    const namespace = report.metadata?.namespace;
    const name = report.metadata?.name;
    if (namespace === undefined || name === undefined) return;
    const key = `${namespace}/${name}`;
    const resourceVersion = report.metadata?.resourceVersion ?? '';
    this.byDigestKey.set(`${namespace}/${report.spec.digest}`, key);
    // The watch event of a write can arrive before its response. Remembering the write then would
    // outlive the cache's copy: a later delete would leave it to be served, and it would be held until
    // the next reconcile of the key (thousands of reports after a rescan).
    const cached = this.informer.get(key);
    if (cached !== undefined && isAtLeast(cached.resourceVersion, resourceVersion)) {
      const recent = this.recent.get(key);
      if (recent?.report !== undefined && isAtLeast(cached.resourceVersion, recent.resourceVersion)) this.recent.delete(key);
      return;
    }
    // Until the watch catches up (seconds behind during a cold start's thousands of writes) each
    // remembered response would hold its own parsed vulnerability list; keep it slim like the cache.
    const { managedFields: _managedFields, ...metadata } = report.metadata ?? {};
    const kept = slimReport({ ...report, metadata }).report;
    this.recent.set(key, { report: kept, resourceVersion, at: this.now() });
  }

  /** Remembers that we deleted a report. */
  forget(namespace: string, name: string, digest: string): void {
    const key = `${namespace}/${name}`;
    const indexKey = `${namespace}/${digest}`;
    if (this.informer.get(key) === undefined) {
      // The watch delivered the delete before our response: nothing to hide, and a tombstone set now
      // would never be cleared (no delete event follows).
      this.recent.delete(key);
      if (this.byDigestKey.get(indexKey) === key) this.byDigestKey.delete(indexKey);
      return;
    }
    this.recent.set(key, { report: undefined, resourceVersion: '', at: this.now() });
    this.byDigestKey.set(indexKey, key);
  }

  /**
   * Drops remembered writes and deletes the watch has confirmed, and any older than a few minutes, so
   * the map stays small on every replica (a former leader's included). Returns how many were dropped.
   */
  sweep(): number {
    const oldest = this.now() - RECENT_WRITE_MAX_AGE_MS;
    let dropped = 0;
    for (const [key, recent] of this.recent) {
      const cached = this.informer.get(key);
      const settled = recent.report === undefined ? cached === undefined : cached !== undefined && isAtLeast(cached.resourceVersion, recent.resourceVersion);
      if (!settled && recent.at >= oldest) continue;
      this.recent.delete(key);
      dropped += 1;
      if (cached !== undefined) continue;
      const indexKey = `${key.slice(0, key.indexOf('/'))}/${recent.report?.spec.digest ?? ''}`;
      if (recent.report !== undefined && this.byDigestKey.get(indexKey) === key) this.byDigestKey.delete(indexKey);
    }
    return dropped;
  }

  /** The cached reports of a digest in every namespace (a scan of the cache: for rare lookups only). */
  withDigest(digest: string): ImageScanReport[] {
    const out: ImageScanReport[] = [];
    for (const entry of this.informer.list()) if (entry.report.spec.digest === digest) out.push(entry.report);
    return out;
  }

  /** Every managed report (for metrics at scrape time). */
  list(): ImageScanReport[] {
    const out: ImageScanReport[] = [];
    for (const entry of this.informer.list()) out.push(entry.report);
    return out;
  }

  private index(entry: ReportEntry): void {
    const digest = entry.report.spec.digest;
    if (typeof digest === 'string') this.byDigestKey.set(`${entry.namespace}/${digest}`, entry.key);
    const recent = this.recent.get(entry.key);
    if (recent?.report !== undefined && !/^\d+$/.test(recent.resourceVersion)) this.recent.delete(entry.key);
    else if (recent?.report !== undefined && isAtLeast(entry.resourceVersion, recent.resourceVersion)) this.recent.delete(entry.key);
  }

  private unindex(entry: ReportEntry): void {
    const digest = entry.report.spec.digest;
    const indexKey = `${entry.namespace}/${digest}`;
    if (this.byDigestKey.get(indexKey) === entry.key && this.recent.get(entry.key) === undefined) this.byDigestKey.delete(indexKey);
  }
}
