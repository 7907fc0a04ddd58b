// One copy of each value that repeats across the cached objects. JSON.parse gives every pod its own
// copy of its images, owner, labels and namespace, and every report its own copy of the team, the
// scanner and the condition texts: in a heap snapshot of the bench (10,000 pods, 4,365 reports) half of
// the 24 MiB of strings were such copies, and pods of one workload held equal labels, owners and images.

/**
 * One copy of each equal value, by a key the caller derives from its content; the first value seen
 * under a key is the one kept. Shared values must never be mutated.
 */
export class ObjectPool<T> {
  private readonly values = new Map<string, T>();

  /** Past `maxValues` the pool starts over: churn brings new names forever, and a miss costs only sharing. */
  constructor(private readonly maxValues = 20_000) {}

  get(key: string): T | undefined {
    return this.values.get(key);
  }

  share(key: string, value: T): T {
    const pooled = this.values.get(key);
    if (pooled !== undefined) return pooled;
    if (this.values.size >= this.maxValues) this.values.clear();
    this.values.set(key, value);
    return value;
  }

  size(): number {
    return this.values.size;
  }

  /** Starts over: values already shared stay shared by the objects that hold them. */
  clear(): void {
    this.values.clear();
  }
}

/** A bounded intern table: same content in, the first copy seen out. */
export class StringPool extends ObjectPool<string> {
  constructor(maxStrings = 50_000) {
    super(maxStrings);
  }

  intern(value: string): string {
    return this.share(value, value);
  }

  /**
   * Interns, in place, every string inside plain objects and arrays (values, not keys: V8 already
   * keeps one copy of each property name). For objects the caller owns, e.g. fresh from JSON.parse.
   */
  internAll(value: unknown): void {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (typeof item === 'string') value[i] = this.intern(item);
        else this.internAll(item);
      }
    } else if (typeof value === 'object' && value !== null) {
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        const item = record[key];
        if (typeof item === 'string') record[key] = this.intern(item);
        else this.internAll(item);
      }
    }
  }
}

/** The pool the caches share, so a pod and the report of its image hold the same strings. */
export const cachedStrings = new StringPool();
