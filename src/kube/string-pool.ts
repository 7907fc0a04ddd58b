// One copy of each string that repeats across the cached objects. JSON.parse gives every pod its own
// copy of its images, owner, labels and namespace, and every report its own copy of the team, the
// scanner and the condition texts: in a heap snapshot of the bench (10,000 pods, 4,365 reports) half of
// the 24 MiB of strings were such copies.

/** A bounded intern table: same content in, the first copy seen out. */
export class StringPool {
  private readonly strings = new Map<string, string>();

  /** Past `maxStrings` the table starts over: churn brings new names forever, and a miss costs only sharing. */
  constructor(private readonly maxStrings = 50_000) {}

  intern(value: string): string {
    const pooled = this.strings.get(value);
    if (pooled !== undefined) return pooled;
    if (this.strings.size >= this.maxStrings) this.strings.clear();
    this.strings.set(value, value);
    return value;
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

  size(): number {
    return this.strings.size;
  }
}

/**
 * One copy of each equal small object (a workload's labels, owners and images; a digest's severity
 * counts), by a key the caller derives from its content. The objects are shared: never mutate them.
 */
export class ObjectPool<T> {
  private readonly objects = new Map<string, T>();

  constructor(private readonly maxObjects = 20_000) {}

  share(key: string, value: T): T {
    const pooled = this.objects.get(key);
    if (pooled !== undefined) return pooled;
    if (this.objects.size >= this.maxObjects) this.objects.clear();
    this.objects.set(key, value);
    return value;
  }

  size(): number {
    return this.objects.size;
  }
}

/** The pool the caches share, so a pod and the report of its image hold the same strings. */
export const cachedStrings = new StringPool();
