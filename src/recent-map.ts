// A Map that keeps at most a given number of entries: each set() makes its key the most recent, and
// the least recently set keys are dropped beyond the bound. For caches whose miss only costs work
// again (owners, announced events, unpacked scan results, findings), so memory follows the bound.
export class RecentMap<K, V> extends Map<K, V> {
  constructor(private readonly maxEntries: number) {
    super();
  }

  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    for (const oldest of this.keys()) {
      if (this.size <= this.maxEntries) break;
      super.delete(oldest);
    }
    return this;
  }
}
