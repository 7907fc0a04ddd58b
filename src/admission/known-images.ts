// What the cluster already tells about images, indexed for the webhook: which digest a tag runs with
// (from the pod cache) and which reports hold a digest's result (from the report cache). Fed by the
// informers' callbacks on every replica, so a request is answered with two map lookups and never a
// walk over all pods or reports.
import type { PodEntry, ReportEntry } from '../kube/cluster-objects.js';
import type { InformerHandlers } from '../kube/informer.js';
import { scanCountsOf } from '../policy/report-policy-status.js';
import type { KnownScan } from './admission-decider.js';
import { tagKey } from './tag-key.js';

interface Source<T> {
  on(handlers: InformerHandlers<T>): void;
}

export { tagKey };

/** What changed: a tag key's digests, or a digest's reports. */
export type KnownImageChange = { tag: string; digest?: undefined } | { digest: string; tag?: undefined };

/** Digests by the tag pods were created with, and reports by digest, kept current by the informers. */
export class KnownImages {
  /** tag key → digest → pods running it (several while a moved tag rolls out). */
  private readonly digestsByTag = new Map<string, Map<string, number>>();
  /** digest → report entries (namespace/name keys) holding its result. */
  private readonly reportsByDigest = new Map<string, Map<string, ReportEntry>>();
  private readonly listeners: ((change: KnownImageChange) => void)[] = [];

  constructor(sources: { pods: readonly Source<PodEntry>[]; reports: Source<ReportEntry> }) {
    for (const pods of sources.pods) {
      pods.on({
        add: (entry) => this.countPod(entry, 1),
        update: (old, entry) => {
          if (old.images === entry.images) return;
          this.countPod(old, -1);
          this.countPod(entry, 1);
        },
        delete: (entry) => this.countPod(entry, -1),
      });
    }
    sources.reports.on({
      add: (entry) => this.putReport(entry),
      update: (old, entry) => {
        this.dropReport(old);
        this.putReport(entry);
      },
      delete: (entry) => this.dropReport(entry),
    });
  }

  /** Calls `listener` synchronously, from the informers' callbacks, on every change: it must only note the key. */
  onChange(listener: (change: KnownImageChange) => void): void {
    this.listeners.push(listener);
  }

  /** Every tag key some pod runs. */
  tagKeys(): IterableIterator<string> {
    return this.digestsByTag.keys();
  }

  /** Every digest some report holds. */
  reportDigests(): IterableIterator<string> {
    return this.reportsByDigest.keys();
  }

  /** The digest pods run for the tag (the one most pods run); undefined when none runs it. */
  digestOfTag(repository: string, tag: string | undefined): string | undefined {
    return this.digestOfTagKey(tagKey(repository, tag));
  }

  /** digestOfTag by the key tagKey() makes. */
  digestOfTagKey(key: string): string | undefined {
    const digests = this.digestsByTag.get(key);
    if (digests === undefined) return undefined;
    let best: string | undefined;
    let most = 0;
    for (const [digest, pods] of digests) {
      if (pods > most) {
        best = digest;
        most = pods;
      }
    }
    return best;
  }

  /** The result of the digest from a report, the namespace's own report first; undefined when no report has one. */
  scanOfDigest(digest: string, namespace: string): KnownScan | undefined {
    const reports = this.reportsByDigest.get(digest);
    if (reports === undefined) return undefined;
    const own = reports.get(namespace);
    const candidates = own === undefined ? reports.values() : [own, ...reports.values()];
    for (const entry of candidates) {
      const scan = scanCountsOf(entry.report.status);
      if (scan !== undefined) return { scan, report: { namespace: entry.namespace, name: entry.name } };
    }
    return undefined;
  }

  /** The results the digest's reports hold, by namespace (reports without a result left out). */
  reportScansOfDigest(digest: string): [namespace: string, known: KnownScan][] {
    const scans: [string, KnownScan][] = [];
    for (const entry of this.reportsByDigest.get(digest)?.values() ?? []) {
      const scan = scanCountsOf(entry.report.status);
      if (scan !== undefined) scans.push([entry.namespace, { scan, report: { namespace: entry.namespace, name: entry.name } }]);
    }
    return scans;
  }

  private changed(change: KnownImageChange): void {
    for (const listener of this.listeners) listener(change);
  }

  private countPod(entry: PodEntry, delta: 1 | -1): void {
    for (const image of entry.images) {
      const { repository, specTag, localOnly } = image.image;
      // A pinned digest needs no tag lookup; a local-only image has no digest a registry serves.
      if (specTag === undefined || localOnly) continue;
      const key = tagKey(repository, specTag);
      let digests = this.digestsByTag.get(key);
      if (digests === undefined) {
        if (delta < 0) continue;
        digests = new Map();
        this.digestsByTag.set(key, digests);
      }
      const pods = (digests.get(image.image.digest) ?? 0) + delta;
      if (pods > 0) digests.set(image.image.digest, pods);
      else digests.delete(image.image.digest);
      if (digests.size === 0) this.digestsByTag.delete(key);
      this.changed({ tag: key });
    }
  }

  private putReport(entry: ReportEntry): void {
    const digest = entry.report.spec.digest;
    if (typeof digest !== 'string') return;
    let reports = this.reportsByDigest.get(digest);
    if (reports === undefined) {
      reports = new Map();
      this.reportsByDigest.set(digest, reports);
    }
    // One report per (namespace, digest): the namespace is the key.
    reports.set(entry.namespace, entry);
    this.changed({ digest });
  }

  private dropReport(entry: ReportEntry): void {
    const digest = entry.report.spec.digest;
    const reports = this.reportsByDigest.get(digest);
    if (reports?.get(entry.namespace)?.key !== entry.key) return;
    reports.delete(entry.namespace);
    if (reports.size === 0) this.reportsByDigest.delete(digest);
    this.changed({ digest });
  }
}
