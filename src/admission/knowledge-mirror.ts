// The webhook worker's copy of what admission decisions read (see webhook-worker.ts): the main thread
// owns the sources (policy store, namespace informer, KnownImages, ReferenceScans) and sends changes
// as batched deltas of plain, structured-clone-safe data; this applies them. Pure: no I/O, no timers.
import type { ImageReference } from '../images/image-reference.js';
import type { CompiledPolicy } from '../policy/image-scan-policy.js';
import type { ScanCounts } from '../policy/policy-evaluation.js';
import { RecentMap } from '../recent-map.js';
import type { AdmissionKnowledge, KnownScan } from './admission-decider.js';
import { tagKey } from './tag-key.js';

/**
 * A batch of changes, applied in field order. null removes a key. `reset` empties the mirror first
 * (a full snapshot). Reference scans are replayed in the order they were learned, so a mirror with the
 * same bound keeps the same most recent ones as the main thread.
 */
export interface KnowledgeDelta {
  reset?: true;
  /** The valid policies, all of them, when they changed (CompiledPolicy is plain data and RegExps). */
  policies?: readonly CompiledPolicy[];
  namespaces?: [namespace: string, labels: Record<string, string> | null][];
  /** tag key (tagKey()) → the digest pods run it with. */
  tags?: [tagKey: string, digest: string | null][];
  /** digest → its reports' results by namespace (only reports with a result). */
  reports?: [digest: string, scans: [namespace: string, known: KnownScan][] | null][];
  referenceTags?: [tagKey: string, digest: string][];
  referenceScans?: [digest: string, scan: ScanCounts][];
}

/** AdmissionKnowledge answered from the deltas received, with the same rules as knowledgeOf(). */
export class KnowledgeMirror implements AdmissionKnowledge {
  private validPolicies: readonly CompiledPolicy[] = [];
  private readonly labels = new Map<string, Readonly<Record<string, string>>>();
  private readonly tagDigests = new Map<string, string>();
  private readonly reportScans = new Map<string, Map<string, KnownScan>>();
  private readonly referenceTags: RecentMap<string, string>;
  private readonly referenceScans: RecentMap<string, ScanCounts>;

  /** maxLearned: ReferenceScans' bound. */
  constructor(maxLearned: number) {
    this.referenceTags = new RecentMap(maxLearned);
    this.referenceScans = new RecentMap(maxLearned);
  }

  apply(delta: KnowledgeDelta): void {
    if (delta.reset === true) {
      this.validPolicies = [];
      this.labels.clear();
      this.tagDigests.clear();
      this.reportScans.clear();
      this.referenceTags.clear();
      this.referenceScans.clear();
    }
    if (delta.policies !== undefined) this.validPolicies = delta.policies;
    for (const [namespace, labels] of delta.namespaces ?? []) {
      if (labels === null) this.labels.delete(namespace);
      else this.labels.set(namespace, labels);
    }
    for (const [key, digest] of delta.tags ?? []) {
      if (digest === null) this.tagDigests.delete(key);
      else this.tagDigests.set(key, digest);
    }
    for (const [digest, scans] of delta.reports ?? []) {
      if (scans === null || scans.length === 0) this.reportScans.delete(digest);
      else this.reportScans.set(digest, new Map(scans));
    }
    for (const [key, digest] of delta.referenceTags ?? []) this.referenceTags.set(key, digest);
    for (const [digest, scan] of delta.referenceScans ?? []) this.referenceScans.set(digest, scan);
  }

  policies(): readonly CompiledPolicy[] {
    return this.validPolicies;
  }

  namespaceLabels(namespace: string): Readonly<Record<string, string>> | undefined {
    return this.labels.get(namespace);
  }

  scanResult(reference: ImageReference, namespace: string): KnownScan | undefined {
    const key = tagKey(reference.repository, reference.tag);
    const digest = reference.digest ?? this.tagDigests.get(key) ?? this.referenceTags.get(key);
    if (digest === undefined) return undefined;
    const reports = this.reportScans.get(digest);
    // The namespace's own report first, as KnownImages.scanOfDigest answers.
    const reported = reports?.get(namespace) ?? reports?.values().next().value;
    if (reported !== undefined) return reported;
    const scanned = this.referenceScans.get(digest);
    return scanned === undefined ? undefined : { scan: scanned };
  }
}
