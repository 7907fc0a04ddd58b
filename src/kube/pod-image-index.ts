// Which pods run which digest, per namespace: the index behind the work-queue keys
// (`namespace/digest`). Updated synchronously from the pod informer's callbacks; cheap.
import type { InvalidContainerImage, PodImage } from '../images/pod-images.js';
import type { PodEntry } from './cluster-objects.js';

/** A pod as the reconciler needs it: the slim object and the digests it runs. */
export interface IndexedPod {
  entry: PodEntry;
  images: PodImage[];
  /** The pod's unparseable container images, to report each change once. */
  invalidText?: string;
}

export interface PodImageIndexOptions {
  /** False for namespaces the operator must ignore (excluded, or outside --namespaces). */
  isWatchedNamespace: (namespace: string) => boolean;
  /** Told once per pod (and again when they change) about containers whose image cannot be parsed. */
  onInvalidImages?: (entry: PodEntry, invalid: readonly InvalidContainerImage[]) => void;
  now?: () => Date;
}

/** The work-queue key of a (namespace, digest). */
export function reportKey(namespace: string, digest: string): string {
  return `${namespace}/${digest}`;
}

/** Splits a work-queue key; undefined for a malformed key. */
export function parseReportKey(key: string): { namespace: string; digest: string } | undefined {
  const slash = key.indexOf('/');
  if (slash <= 0) return undefined;
  return { namespace: key.slice(0, slash), digest: key.slice(slash + 1) };
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

function ownersText(entry: PodEntry): string {
  return (entry.pod.metadata?.ownerReferences ?? []).map((ref) => `${ref.kind}/${ref.name}`).join(',');
}

function labelsText(entry: PodEntry): string {
  const labels = entry.pod.metadata?.labels ?? {};
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k] ?? ''}`)
    .join(',');
}

/** Index of running digests by namespace, with the time each key lost its last pod. */
export class PodImageIndex {
  private readonly pods = new Map<string, IndexedPod>();
  private readonly podsByKey = new Map<string, Set<string>>();
  private readonly namespacesByDigest = new Map<string, Set<string>>();
  private readonly emptySince = new Map<string, Date>();
  private readonly now: () => Date;
  readonly startedAt: Date;

  constructor(private readonly options: PodImageIndexOptions) {
    this.now = options.now ?? (() => new Date());
    this.startedAt = this.now();
  }

  /**
   * Adds or updates a pod. Returns the keys whose reports may change: old and new digests when the
   * images changed, or all of the pod's keys when labels, owners or node changed; none otherwise.
   */
  upsert(entry: PodEntry): string[] {
    if (!this.options.isWatchedNamespace(entry.namespace)) return [];
    const previous = this.pods.get(entry.key);
    const images = entry.images;
    const invalidText = entry.invalidImages.map((i) => `${i.container}=${i.image}@${i.imageID}`).join('\n');
    if (invalidText !== '' && previous?.invalidText !== invalidText) this.options.onInvalidImages?.(entry, entry.invalidImages);
    const newKeys = images.map((image) => reportKey(entry.namespace, image.image.digest)).sort();
    const oldKeys = previous === undefined ? [] : previous.images.map((image) => reportKey(entry.namespace, image.image.digest)).sort();
    if (previous !== undefined) this.unlink(previous);
    const indexed: IndexedPod = { entry, images };
    if (invalidText !== '') indexed.invalidText = invalidText;
    this.pods.set(entry.key, indexed);
    this.link(indexed);
    if (previous === undefined) return newKeys;
    const unchanged =
      sameStrings(oldKeys, newKeys) &&
      ownersText(previous.entry) === ownersText(entry) &&
      labelsText(previous.entry) === labelsText(entry) &&
      previous.entry.pod.spec?.nodeName === entry.pod.spec?.nodeName &&
      previous.images.map((i) => i.image.image).join(',') === images.map((i) => i.image.image).join(',');
    if (unchanged) return [];
    return [...new Set([...oldKeys, ...newKeys])];
  }

  /** Removes a pod; returns the keys it ran (their reports may now be collected). */
  remove(entry: PodEntry): string[] {
    const previous = this.pods.get(entry.key);
    if (previous === undefined) return [];
    this.pods.delete(entry.key);
    this.unlink(previous);
    return previous.images.map((image) => reportKey(entry.namespace, image.image.digest));
  }

  /** The pods of the key's namespace that run its digest. */
  podsRunning(key: string): IndexedPod[] {
    const podKeys = this.podsByKey.get(key);
    if (podKeys === undefined) return [];
    const out: IndexedPod[] = [];
    for (const podKey of [...podKeys].sort()) {
      const pod = this.pods.get(podKey);
      if (pod !== undefined) out.push(pod);
    }
    return out;
  }

  /** Every key (namespace) that runs the digest now. */
  keysForDigest(digest: string): string[] {
    return [...(this.namespacesByDigest.get(digest) ?? [])].map((namespace) => reportKey(namespace, digest));
  }

  /** Every key with at least one pod. */
  runningKeys(): string[] {
    return [...this.podsByKey.keys()];
  }

  /** Every digest with at least one pod. */
  runningDigests(): string[] {
    return [...this.namespacesByDigest.keys()];
  }

  isRunning(digest: string): boolean {
    return this.namespacesByDigest.has(digest);
  }

  /**
   * Since when no pod of the namespace has run the digest: undefined while one does. A key never seen
   * since start counts from the start (memory does not survive a restart).
   */
  goneSince(key: string): Date | undefined {
    if (this.podsByKey.has(key)) return undefined;
    return this.emptySince.get(key) ?? this.startedAt;
  }

  /** Drops the memory of a key whose report has been deleted. */
  forgetKey(key: string): void {
    if (!this.podsByKey.has(key)) this.emptySince.delete(key);
  }

  /**
   * Forgets when keys lost their last pod, for keys that lost it before `cutoff` (now less the grace
   * period): goneSince then answers the start time, which is earlier still, so no decision changes.
   * Only the leader's reconciles call forgetKey; this bounds the map on every replica. Returns how
   * many were forgotten.
   */
  forgetGoneBefore(cutoff: Date): number {
    let removed = 0;
    for (const [key, since] of this.emptySince) {
      if (since < cutoff) {
        this.emptySince.delete(key);
        removed += 1;
      }
    }
    return removed;
  }

  /** False for namespaces this operator ignores (excluded, or outside --namespaces). */
  isWatchedNamespace(namespace: string): boolean {
    return this.options.isWatchedNamespace(namespace);
  }

  podCount(): number {
    return this.pods.size;
  }

  private link(pod: IndexedPod): void {
    for (const image of pod.images) {
      const key = reportKey(pod.entry.namespace, image.image.digest);
      let set = this.podsByKey.get(key);
      if (set === undefined) {
        set = new Set();
        this.podsByKey.set(key, set);
      }
      set.add(pod.entry.key);
      this.emptySince.delete(key);
      let namespaces = this.namespacesByDigest.get(image.image.digest);
      if (namespaces === undefined) {
        namespaces = new Set();
        this.namespacesByDigest.set(image.image.digest, namespaces);
      }
      namespaces.add(pod.entry.namespace);
    }
  }

  private unlink(pod: IndexedPod): void {
    for (const image of pod.images) {
      const key = reportKey(pod.entry.namespace, image.image.digest);
      const set = this.podsByKey.get(key);
      if (set === undefined) continue;
      set.delete(pod.entry.key);
      if (set.size === 0) {
        this.podsByKey.delete(key);
        this.emptySince.set(key, this.now());
        const namespaces = this.namespacesByDigest.get(image.image.digest);
        namespaces?.delete(pod.entry.namespace);
        if (namespaces?.size === 0) this.namespacesByDigest.delete(image.image.digest);
      }
    }
  }
}
