// The controller's work queue of string keys (`namespace/digest`), with client-go's workqueue
// semantics: a key waits in the queue at most once, is handed to one worker at a time, and a key added
// while it is being processed is queued again when the worker calls done().

export type WorkPriority = 'high' | 'normal';

export interface AddOptions {
  /** 'high' keys are handed out before every 'normal' one (new pods before scheduled rescans). */
  priority?: WorkPriority;
}

/** Runs fn after delayMs; returns a function that cancels it. */
export type ScheduleFn = (fn: () => void, delayMs: number) => () => void;

export interface WorkQueueOptions {
  /** First delay of addRateLimited; it doubles per requeue of the same key. Default 500 ms. */
  baseDelayMs?: number;
  /** Longest delay of addRateLimited. Default 5 minutes. */
  maxDelayMs?: number;
  /** Fraction by which a backoff delay is randomly shortened, 0..1, so retries do not march in step. Default 0.1. */
  jitter?: number;
  /** Monotonic milliseconds. Default performance.now. */
  now?: () => number;
  /** Default: an unref'd setTimeout, so a pending retry never keeps the process alive. */
  schedule?: ScheduleFn;
  /** Default Math.random. */
  random?: () => number;
}

const defaultSchedule: ScheduleFn = (fn, delayMs) => {
  const timer = setTimeout(fn, delayMs);
  timer.unref();
  return () => clearTimeout(timer);
};

/** A first-in first-out list with O(1) removal at the head. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

interface QueueEntry {
  key: string;
  /** Matches queued.get(key).seq while the entry is current; older entries are skipped. */
  seq: number;
}

interface DelayedEntry {
  key: string;
  readyAt: number;
}

/** Binary min-heap of delayed entries by readyAt. */
class DelayHeap {
  private readonly items: DelayedEntry[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): DelayedEntry | undefined {
    return this.items[0];
  }

  push(entry: DelayedEntry): void {
    const items = this.items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent];
      if (p === undefined || p.readyAt <= entry.readyAt) break;
      items[i] = p;
      i = parent;
    }
    items[i] = entry;
  }

  pop(): DelayedEntry | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      let smallestAt = last.readyAt;
      const l = items[left];
      if (l !== undefined && l.readyAt < smallestAt) {
        smallest = left;
        smallestAt = l.readyAt;
      }
      const r = items[right];
      if (r !== undefined && r.readyAt < smallestAt) smallest = right;
      if (smallest === i) break;
      const child = items[smallest];
      if (child === undefined) break;
      items[i] = child;
      i = smallest;
    }
    items[i] = last;
    return top;
  }

  clear(): void {
    this.items.length = 0;
  }
}

function higher(a: WorkPriority | undefined, b: WorkPriority): WorkPriority {
  return a === 'high' || b === 'high' ? 'high' : 'normal';
}

/**
 * De-duplicating, rate-limited work queue of string keys. Unlike client-go, get() returns undefined
 * as soon as the queue is shut down (queued keys are dropped; the cluster, not the queue, holds the
 * state, so the next leader rebuilds them).
 */
export class WorkQueue {
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly jitter: number;
  private readonly now: () => number;
  private readonly schedule: ScheduleFn;
  private readonly random: () => number;

  private readonly high = new Fifo<QueueEntry>();
  private readonly normal = new Fifo<QueueEntry>();
  /** Keys waiting in a Fifo, with the current entry's seq. */
  private readonly queued = new Map<string, { priority: WorkPriority; seq: number }>();
  private seq = 0;
  /** Keys handed to a worker and not yet done. */
  private readonly processing = new Set<string>();
  /** Keys added while processing: queued again on done(). */
  private readonly addedWhileProcessing = new Map<string, WorkPriority>();

  private readonly delayed = new DelayHeap();
  /** The earliest time each delayed key is due; heap entries with another time are stale. */
  private readonly waiting = new Map<string, { readyAt: number; priority: WorkPriority }>();
  private timer: { at: number; cancel: () => void } | undefined;

  private readonly failures = new Map<string, number>();
  private readonly getters: ((key: string | undefined) => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 500;
    this.maxDelayMs = options.maxDelayMs ?? 5 * 60_000;
    this.jitter = Math.min(1, Math.max(0, options.jitter ?? 0.1));
    this.now = options.now ?? (() => performance.now());
    this.schedule = options.schedule ?? defaultSchedule;
    this.random = options.random ?? Math.random;
  }

  /** Queue key unless it is already waiting; a key being processed is queued again after done(). */
  add(key: string, options: AddOptions = {}): void {
    if (this.shuttingDown) return;
    const priority = options.priority ?? 'normal';
    if (this.processing.has(key)) {
      this.addedWhileProcessing.set(key, higher(this.addedWhileProcessing.get(key), priority));
      return;
    }
    const current = this.queued.get(key);
    if (current !== undefined) {
      // Already waiting: only a priority upgrade changes anything (its old 'normal' entry goes stale).
      if (priority === 'high' && current.priority === 'normal') this.enqueue(key, 'high');
      return;
    }
    this.enqueue(key, priority);
    this.dispatch();
  }

  /** Add key after delayMs; several delayed adds of one key coalesce to the earliest time. */
  addAfter(key: string, delayMs: number, options: AddOptions = {}): void {
    if (this.shuttingDown) return;
    const priority = options.priority ?? 'normal';
    if (!(delayMs > 0)) {
      this.add(key, options);
      return;
    }
    const readyAt = this.now() + delayMs;
    const existing = this.waiting.get(key);
    if (existing !== undefined && existing.readyAt <= readyAt) {
      existing.priority = higher(existing.priority, priority);
      return;
    }
    this.waiting.set(key, { readyAt, priority: higher(existing?.priority, priority) });
    this.delayed.push({ key, readyAt });
    this.armTimer();
  }

  /**
   * Add key after its backoff: baseDelayMs·2^(requeues so far), at most maxDelayMs, shortened by up
   * to `jitter`. Returns the delay chosen. forget(key) resets the backoff.
   */
  addRateLimited(key: string, options: AddOptions = {}): number {
    const requeues = this.failures.get(key) ?? 0;
    this.failures.set(key, requeues + 1);
    const exponential = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(requeues, 52));
    const delay = Math.round(exponential * (1 - this.jitter * this.random()));
    this.addAfter(key, delay, options);
    return delay;
  }

  /** Reset the backoff of key (call after it was processed successfully). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How many times key went through addRateLimited since the last forget. */
  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /**
   * The next key to process, waiting until one is ready. The caller owns the key until it calls
   * done(key). Resolves undefined once the queue is shut down.
   */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.next();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /** Mark key finished; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    if (!this.processing.delete(key)) return;
    const again = this.addedWhileProcessing.get(key);
    if (again !== undefined) {
      this.addedWhileProcessing.delete(key);
      if (!this.shuttingDown) {
        this.enqueue(key, again);
        this.dispatch();
      }
    }
    if (this.processing.size === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** Keys waiting to be handed out (not counting delayed or in-process keys). */
  len(): number {
    return this.queued.size;
  }

  /** Keys handed to workers and not yet done. */
  inProgress(): number {
    return this.processing.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stop: waiting get() calls and all later ones resolve undefined; queued and delayed keys are dropped; adds are ignored. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.delayed.clear();
    this.waiting.clear();
    this.high.clear();
    this.normal.clear();
    this.queued.clear();
    this.addedWhileProcessing.clear();
    const getters = this.getters.splice(0);
    for (const resolve of getters) resolve(undefined);
  }

  /** shutDown(), then resolve once every key handed out has been marked done. */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private enqueue(key: string, priority: WorkPriority): void {
    const seq = ++this.seq;
    this.queued.set(key, { priority, seq });
    (priority === 'high' ? this.high : this.normal).push({ key, seq });
  }

  /** Take the next current entry, high before normal, and mark it processing. */
  private next(): string | undefined {
    for (const fifo of [this.high, this.normal]) {
      for (let entry = fifo.shift(); entry !== undefined; entry = fifo.shift()) {
        if (this.queued.get(entry.key)?.seq !== entry.seq) continue;
        this.queued.delete(entry.key);
        this.processing.add(entry.key);
        return entry.key;
      }
    }
    return undefined;
  }

  private dispatch(): void {
    while (this.getters.length > 0) {
      const key = this.next();
      if (key === undefined) return;
      const resolve = this.getters.shift();
      resolve?.(key);
    }
  }

  private armTimer(): void {
    let top = this.delayed.peek();
    while (top !== undefined && this.waiting.get(top.key)?.readyAt !== top.readyAt) {
      this.delayed.pop();
      top = this.delayed.peek();
    }
    if (top === undefined) {
      this.timer?.cancel();
      this.timer = undefined;
      return;
    }
    if (this.timer !== undefined && this.timer.at <= top.readyAt) return;
    this.timer?.cancel();
    const at = top.readyAt;
    const cancel = this.schedule(() => this.onTimer(), Math.max(1, Math.ceil(at - this.now())));
    this.timer = { at, cancel };
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.shuttingDown) return;
    const now = this.now();
    for (let top = this.delayed.peek(); top !== undefined && top.readyAt <= now; top = this.delayed.peek()) {
      this.delayed.pop();
      const waiting = this.waiting.get(top.key);
      if (waiting?.readyAt !== top.readyAt) continue;
      this.waiting.delete(top.key);
      this.add(top.key, { priority: waiting.priority });
    }
    // A timer may fire a little early; armTimer then waits for the remainder.
    this.armTimer();
  }
}
