// The report informer's cache, indexed by (namespace, digest) for reconcile and listable for metrics.
import type { ImageScanReport } from '../reports/image-scan-report.js';
import type { ReportEntry } from './cluster-objects.js';
import type { ResilientInformer } from './informer.js';

/** Reports by (namespace, digest); fed by the report informer's callbacks. */
export class ReportIndex {
  private readonly byDigestKey = new Map<string, string>();

  constructor(private readonly informer: ResilientInformer<ReportEntry>) {
    informer.on({
      add: (entry) => this.index(entry),
      update: (oldEntry, entry) => {
        this.unindex(oldEntry);
        this.index(entry);
      },
      delete: (entry) => this.unindex(entry),
    });
  }

  /** The report of the digest in the namespace, as last seen by the informer. */
  find(namespace: string, digest: string): ImageScanReport | undefined {
    const key = this.byDigestKey.get(`${namespace}/${digest}`);
    return key === undefined ? undefined : this.informer.get(key)?.report;
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
  }

  private unindex(entry: ReportEntry): void {
    const digest = entry.report.spec.digest;
    const indexKey = `${entry.namespace}/${digest}`;
    if (this.byDigestKey.get(indexKey) === entry.key) this.byDigestKey.delete(indexKey);
  }
}
