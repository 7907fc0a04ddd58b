// In-memory object storage with one resourceVersion counter (like etcd's revision), a bounded
// event history for watches, and per-namespace indexes so work stays proportional to the result.
import type { KubeObject } from './types.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** An object as stored: never mutated after it is stored; `json` is its serialization, made once. */
export interface StoredObject {
  readonly obj: KubeObject;
  readonly json: string;
  readonly namespace: string;
  readonly name: string;
  readonly rv: number;
}

export interface StoreEvent {
  readonly rv: number;
  readonly rkey: string;
  readonly type: EventType;
  /** The new object (for DELETED: the object as deleted, carrying the deletion's resourceVersion). */
  readonly object: StoredObject;
  /** The previous version, for MODIFIED/DELETED; lets selector watches see objects leave the selection. */
  readonly previous: StoredObject | undefined;
}

/** One open watch, fed synchronously by the store. */
export interface WatchSink {
  readonly namespace: string | undefined;
  deliver(event: StoreEvent): void;
}

interface Collection {
  byNamespace: Map<string, Map<string, StoredObject>>;
  count: number;
  /** Sorted `namespace/name` keys across namespaces; rebuilt lazily after adds/removes. */
  sortedKeys: string[] | undefined;
}

export interface StoreOptions {
  /** Events kept for watches from older resourceVersions (default 10000). */
  historySize?: number;
  /** First resourceVersion handed out minus one (default 1000). */
  initialResourceVersion?: number;
}

export class ObjectStore {
  private rv: number;
  private compactedRv: number;
  private readonly collections = new Map<string, Collection>();
  private readonly history: StoreEvent[] = [];
  private historyStart = 0;
  private readonly historySize: number;
  private readonly sinks = new Map<string, Set<WatchSink>>();

  constructor(opts: StoreOptions = {}) {
    this.historySize = Math.max(1, opts.historySize ?? 10_000);
    this.rv = opts.initialResourceVersion ?? 1000;
    this.compactedRv = this.rv;
  }

  /** The latest resourceVersion handed out. */
  currentRv(): number {
    return this.rv;
  }

  /** The oldest resourceVersion a watch may still start from; older ones get 410 Expired. */
  oldestWatchableRv(): number {
    return this.compactedRv;
  }

  /** Moves the counter forward without writing, as a restarted server whose etcd moved on would. */
  advanceRv(by: number): void {
    this.rv += Math.max(0, by);
  }

  /** Drops the event history: watches and continue tokens from any earlier resourceVersion now expire. */
  compact(): void {
    this.history.length = 0;
    this.historyStart = 0;
    this.compactedRv = this.rv;
  }

  nextRv(): number {
    this.rv += 1;
    return this.rv;
  }

  private collection(rkey: string): Collection {
    let c = this.collections.get(rkey);
    if (!c) {
      c = { byNamespace: new Map(), count: 0, sortedKeys: undefined };
      this.collections.set(rkey, c);
    }
    return c;
  }

  get(rkey: string, namespace: string, name: string): StoredObject | undefined {
    return this.collections.get(rkey)?.byNamespace.get(namespace)?.get(name);
  }

  count(rkey: string, namespace?: string): number {
    const c = this.collections.get(rkey);
    if (!c) return 0;
    return namespace === undefined ? c.count : (c.byNamespace.get(namespace)?.size ?? 0);
  }

  /** Objects sorted by namespace then name (the order the real server lists in). */
  list(rkey: string, namespace?: string): StoredObject[] {
    const c = this.collections.get(rkey);
    if (!c) return [];
    if (namespace !== undefined) {
      const ns = c.byNamespace.get(namespace);
      if (!ns) return [];
      return [...ns.keys()].sort().map((n) => ns.get(n)).filter((o): o is StoredObject => o !== undefined);
    }
    return this.sortedKeys(c)
      .map((k) => {
        const slash = k.indexOf('/');
        return c.byNamespace.get(k.slice(0, slash))?.get(k.slice(slash + 1));
      })
      .filter((o): o is StoredObject => o !== undefined);
  }

  private sortedKeys(c: Collection): string[] {
    if (!c.sortedKeys) {
      const keys: string[] = [];
      for (const [ns, objs] of c.byNamespace) for (const name of objs.keys()) keys.push(`${ns}/${name}`);
      keys.sort();
      c.sortedKeys = keys;
    }
    return c.sortedKeys;
  }

  /**
   * Stores `obj` (its metadata.resourceVersion must already be `rv`, from nextRv()) and emits the event.
   * DELETED removes the object; ADDED/MODIFIED insert or replace it.
   */
  write(rkey: string, type: EventType, obj: KubeObject, rv: number): StoredObject {
    const namespace = obj.metadata?.namespace ?? '';
    const name = obj.metadata?.name ?? '';
    const stored: StoredObject = { obj, json: JSON.stringify(obj), namespace, name, rv };
    const c = this.collection(rkey);
    let ns = c.byNamespace.get(namespace);
    const previous = ns?.get(name);
    if (type === 'DELETED') {
      if (ns && previous) {
        ns.delete(name);
        c.count -= 1;
        c.sortedKeys = undefined;
        if (ns.size === 0) c.byNamespace.delete(namespace);
      }
    } else {
      if (!ns) {
        ns = new Map();
        c.byNamespace.set(namespace, ns);
      }
      if (!previous) {
        c.count += 1;
        c.sortedKeys = undefined;
      }
      ns.set(name, stored);
    }
    const event: StoreEvent = { rv, rkey, type, object: stored, previous };
    this.record(event);
    for (const sink of this.sinks.get(rkey) ?? []) {
      if (sink.namespace === undefined || sink.namespace === namespace) sink.deliver(event);
    }
    return stored;
  }

  private record(event: StoreEvent): void {
    this.history.push(event);
    if (this.history.length - this.historyStart > this.historySize) {
      const dropped = this.history[this.historyStart];
      this.historyStart += 1;
      if (dropped) this.compactedRv = Math.max(this.compactedRv, dropped.rv);
      // Reclaim the array now and then instead of shifting on every write.
      if (this.historyStart > this.historySize) {
        this.history.splice(0, this.historyStart);
        this.historyStart = 0;
      }
    }
  }

  /** Events of one resource after `sinceRv` (caller checked it is not older than oldestWatchableRv()). */
  eventsSince(rkey: string, sinceRv: number, namespace?: string): StoreEvent[] {
    const out: StoreEvent[] = [];
    // History is ordered by rv, so binary-search the start.
    let lo = this.historyStart;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const ev = this.history[mid];
      if (ev && ev.rv <= sinceRv) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.history.length; i++) {
      const ev = this.history[i];
      if (ev && ev.rkey === rkey && (namespace === undefined || ev.object.namespace === namespace)) out.push(ev);
    }
    return out;
  }

  subscribe(rkey: string, sink: WatchSink): () => void {
    let set = this.sinks.get(rkey);
    if (!set) {
      set = new Set();
      this.sinks.set(rkey, set);
    }
    set.add(sink);
    return () => {
      set.delete(sink);
    };
  }

  /** Every collection key with at least one object (for the stats endpoint). */
  resourceKeys(): string[] {
    return [...this.collections.entries()].filter(([, c]) => c.count > 0).map(([k]) => k);
  }
}
