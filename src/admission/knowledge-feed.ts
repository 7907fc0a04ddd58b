// The main thread's side of the webhook worker's mirror (knowledge-mirror.ts): notes which keys the
// informers and scans by reference changed and sends them as one delta per interval, each key once
// with its value at send time. A rescan of 10,000 pods updates thousands of reports; the worker gets
// a few batches a second instead of a message per event, and the informer callbacks only add to a Set.
import type { NamespaceEntry } from '../kube/cluster-objects.js';
import type { InformerHandlers } from '../kube/informer.js';
import type { CompiledPolicy } from '../policy/image-scan-policy.js';
import type { ScanCounts } from '../policy/policy-evaluation.js';
import type { KnownImages } from './known-images.js';
import type { KnowledgeDelta } from './knowledge-mirror.js';
import type { ReferenceScans } from './reference-scans.js';

/** The in-memory sources admission decisions read, and how they announce changes. */
export interface AdmissionSources {
  /** The policy store: its valid policies, and a listener on changes of what they enforce. */
  policies: { validPolicies(): readonly CompiledPolicy[]; onChange(listener: () => void): unknown };
  /** The namespace informer. */
  namespaces: { on(handlers: InformerHandlers<NamespaceEntry>): void; get(name: string): NamespaceEntry | undefined; list(): Iterable<NamespaceEntry> };
  images: Pick<KnownImages, 'onChange' | 'tagKeys' | 'digestOfTagKey' | 'reportDigests' | 'reportScansOfDigest'>;
  scans: Pick<ReferenceScans, 'request' | 'onLearned' | 'learned' | 'maxLearned'>;
}

/** Collects changes of the sources and hands them to `send` as deltas while started. */
export class KnowledgeFeed {
  private send: ((delta: KnowledgeDelta) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private policiesChanged = false;
  private readonly namespaces = new Set<string>();
  private readonly tags = new Set<string>();
  private readonly digests = new Set<string>();
  private referenceTags: [string, string][] = [];
  private referenceScans: [string, ScanCounts][] = [];

  constructor(
    private readonly sources: AdmissionSources,
    private readonly intervalMs = 50,
  ) {
    sources.policies.onChange(() => this.note(() => (this.policiesChanged = true)));
    const namespace = (entry: NamespaceEntry): void => this.note(() => this.namespaces.add(entry.name));
    sources.namespaces.on({ add: namespace, update: (_old, entry) => namespace(entry), delete: namespace });
    sources.images.onChange((change) => this.note(() => (change.tag !== undefined ? this.tags.add(change.tag) : this.digests.add(change.digest))));
    sources.scans.onLearned((learned) =>
      this.note(() => {
        if (learned.tagKey !== undefined) this.referenceTags.push([learned.tagKey, learned.digest]);
        this.referenceScans.push([learned.digest, learned.scan]);
      }, true),
    );
  }

  /** Sends a full snapshot now, then the changes every interval, to `send` (a new worker gets a new start). */
  start(send: (delta: KnowledgeDelta) => void): void {
    this.stop();
    this.send = send;
    send(this.snapshot());
  }

  /** Stops sending and forgets what changed (the next start sends a snapshot). */
  stop(): void {
    this.send = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.clear();
  }

  /** Everything the sources hold now. */
  snapshot(): KnowledgeDelta {
    const { images, scans } = this.sources;
    const learned = scans.learned();
    return {
      reset: true,
      policies: this.sources.policies.validPolicies(),
      namespaces: [...this.sources.namespaces.list()].map((entry) => [entry.name, entry.labels]),
      tags: [...images.tagKeys()].map((key) => [key, images.digestOfTagKey(key) ?? null]),
      reports: [...images.reportDigests()].map((digest) => [digest, images.reportScansOfDigest(digest)]),
      referenceTags: learned.tags,
      referenceScans: learned.scans,
    };
  }

  /** Sends what changed since the last delta, if anything did. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const send = this.send;
    if (send === undefined) return;
    const { images, namespaces } = this.sources;
    const delta: KnowledgeDelta = {};
    if (this.policiesChanged) delta.policies = this.sources.policies.validPolicies();
    if (this.namespaces.size > 0) delta.namespaces = [...this.namespaces].map((name) => [name, namespaces.get(name)?.labels ?? null]);
    if (this.tags.size > 0) delta.tags = [...this.tags].map((key) => [key, images.digestOfTagKey(key) ?? null]);
    if (this.digests.size > 0) delta.reports = [...this.digests].map((digest) => [digest, images.reportScansOfDigest(digest)]);
    if (this.referenceTags.length > 0) delta.referenceTags = this.referenceTags;
    if (this.referenceScans.length > 0) delta.referenceScans = this.referenceScans;
    this.clear();
    if (Object.keys(delta).length > 0) send(delta);
  }

  /** Records a change; `now`: send at once (a scan by reference finished: someone is about to retry). */
  private note(record: () => unknown, now = false): void {
    if (this.send === undefined) return;
    record();
    if (now) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.intervalMs).unref();
  }

  private clear(): void {
    this.policiesChanged = false;
    this.namespaces.clear();
    this.tags.clear();
    this.digests.clear();
    this.referenceTags = [];
    this.referenceScans = [];
  }
}
