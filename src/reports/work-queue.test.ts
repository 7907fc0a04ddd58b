import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WorkQueue, type WorkQueueOptions } from './work-queue.js';

/** A manual clock: timers fire only when the test advances time. */
class FakeClock {
  time = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 0;

  readonly now = (): number => this.time;

  readonly schedule = (fn: () => void, delayMs: number): (() => void) => {
    const id = this.nextId++;
    this.timers.push({ at: this.time + delayMs, fn, id });
    return () => {
      this.timers = this.timers.filter((t) => t.id !== id);
    };
  };

  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t.id !== due.id);
      this.time = Math.max(this.time, due.at);
      due.fn();
    }
    this.time = end;
  }

  pendingTimers(): number {
    return this.timers.length;
  }
}

function makeQueue(options: WorkQueueOptions = {}): { queue: WorkQueue; clock: FakeClock } {
  const clock = new FakeClock();
  const queue = new WorkQueue({ now: clock.now, schedule: clock.schedule, random: () => 0, ...options });
  return { queue, clock };
}

/** Resolves with the key if get() settles within the current microtask burst, else 'pending'. */
async function poll(promise: Promise<string | undefined>): Promise<string | undefined | 'pending'> {
  return Promise.race([promise, new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')))]);
}

/** Take every key that is ready now, marking each done. */
async function drainReady(queue: WorkQueue): Promise<string[]> {
  const keys: string[] = [];
  while (queue.len() > 0) {
    const key = await queue.get();
    if (key === undefined) break;
    keys.push(key);
    queue.done(key);
  }
  return keys;
}

describe('WorkQueue', () => {
  it('hands keys out first in, first out', async () => {
    const { queue } = makeQueue();
    for (const key of ['ns/a', 'ns/b', 'ns/c']) queue.add(key);
    expect(await drainReady(queue)).toStrictEqual(['ns/a', 'ns/b', 'ns/c']);
  });

  it('turns ten adds of a waiting key into one item', async () => {
    const { queue } = makeQueue();
    for (let i = 0; i < 10; i++) queue.add('ns/a');
    queue.add('ns/b');
    expect(queue.len()).toBe(2);
    expect(await drainReady(queue)).toStrictEqual(['ns/a', 'ns/b']);
  });

  it('never gives one key to two workers at once', async () => {
    const { queue } = makeQueue();
    queue.add('ns/a');
    const first = await queue.get();
    expect(first).toBe('ns/a');
    queue.add('ns/a');
    expect(queue.len()).toBe(0);
    const second = queue.get();
    expect(await poll(second)).toBe('pending');
    queue.done('ns/a');
    expect(await poll(second)).toBe('ns/a');
  });

  it('re-queues a key added while it was processed once, after done', async () => {
    const { queue } = makeQueue();
    queue.add('ns/a');
    await queue.get();
    queue.add('ns/a');
    queue.add('ns/a');
    queue.add('ns/b');
    queue.done('ns/a');
    expect(await drainReady(queue)).toStrictEqual(['ns/b', 'ns/a']);
    expect(await poll(queue.get())).toBe('pending');
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const { queue } = makeQueue();
    const waiting = queue.get();
    expect(await poll(waiting)).toBe('pending');
    queue.add('ns/a');
    expect(await waiting).toBe('ns/a');
  });

  describe('priority', () => {
    it('hands high keys out before normal ones, in arrival order among themselves', async () => {
      const { queue } = makeQueue();
      queue.add('rescan/1');
      queue.add('rescan/2');
      queue.add('new/1', { priority: 'high' });
      queue.add('new/2', { priority: 'high' });
      expect(await drainReady(queue)).toStrictEqual(['new/1', 'new/2', 'rescan/1', 'rescan/2']);
    });

    it('moves a waiting normal key to the front when it is added again with high priority', async () => {
      const { queue } = makeQueue();
      queue.add('ns/a');
      queue.add('ns/b');
      queue.add('ns/b', { priority: 'high' });
      expect(queue.len()).toBe(2);
      expect(await drainReady(queue)).toStrictEqual(['ns/b', 'ns/a']);
    });

    it('keeps high priority for a key added with it while processing', async () => {
      const { queue } = makeQueue();
      queue.add('ns/a');
      await queue.get();
      queue.add('ns/a', { priority: 'high' });
      queue.add('ns/z');
      queue.done('ns/a');
      expect(await drainReady(queue)).toStrictEqual(['ns/a', 'ns/z']);
    });
  });

  describe('addAfter', () => {
    it('makes the key available only once the delay has passed', async () => {
      const { queue, clock } = makeQueue();
      queue.addAfter('ns/a', 1000);
      expect(queue.len()).toBe(0);
      clock.advance(999);
      expect(queue.len()).toBe(0);
      clock.advance(1);
      expect(await drainReady(queue)).toStrictEqual(['ns/a']);
    });

    it('coalesces delayed adds of one key to the earliest time', async () => {
      const { queue, clock } = makeQueue();
      queue.addAfter('ns/a', 10_000);
      queue.addAfter('ns/a', 2_000);
      queue.addAfter('ns/a', 5_000);
      clock.advance(2_000);
      expect(await drainReady(queue)).toStrictEqual(['ns/a']);
      clock.advance(60_000);
      expect(queue.len()).toBe(0);
      expect(clock.pendingTimers()).toBe(0);
    });

    it('releases keys in order of their due time', async () => {
      const { queue, clock } = makeQueue();
      queue.addAfter('ns/late', 3_000);
      queue.addAfter('ns/early', 1_000);
      queue.addAfter('ns/middle', 2_000);
      clock.advance(3_000);
      expect(await drainReady(queue)).toStrictEqual(['ns/early', 'ns/middle', 'ns/late']);
    });

    it('adds at once for a delay of zero or less', async () => {
      const { queue } = makeQueue();
      queue.addAfter('ns/a', 0);
      queue.addAfter('ns/b', -5);
      expect(await drainReady(queue)).toStrictEqual(['ns/a', 'ns/b']);
    });

    it('does not duplicate a key that is already waiting when its delay ends', async () => {
      const { queue, clock } = makeQueue();
      queue.add('ns/a');
      queue.addAfter('ns/a', 100);
      clock.advance(100);
      expect(queue.len()).toBe(1);
    });

    it('works with real timers', async () => {
      const queue = new WorkQueue();
      const started = performance.now();
      queue.addAfter('ns/a', 30);
      expect(await queue.get()).toBe('ns/a');
      expect(performance.now() - started).toBeGreaterThanOrEqual(29);
      queue.shutDown();
    });
  });

  describe('addRateLimited', () => {
    it('backs off exponentially per key from 500 ms to at most 5 minutes', () => {
      const { queue } = makeQueue();
      const delays = Array.from({ length: 12 }, () => queue.addRateLimited('ns/a'));
      const expected = Array.from({ length: 12 }, (_, n) => Math.min(300_000, 500 * 2 ** n));
      expect(delays).toStrictEqual(expected);
      expect(queue.numRequeues('ns/a')).toBe(12);
      expect(queue.numRequeues('ns/b')).toBe(0);
      expect(queue.addRateLimited('ns/b')).toBe(500);
    });

    it('starts again from the base delay after forget', () => {
      const { queue } = makeQueue();
      queue.addRateLimited('ns/a');
      queue.addRateLimited('ns/a');
      queue.forget('ns/a');
      expect(queue.numRequeues('ns/a')).toBe(0);
      expect(queue.addRateLimited('ns/a')).toBe(500);
    });

    it('uses the configured base and maximum and shortens delays by the jitter fraction', () => {
      const { queue } = makeQueue({ baseDelayMs: 1000, maxDelayMs: 3000, jitter: 0.5, random: () => 1 });
      expect([1, 2, 3].map(() => queue.addRateLimited('ns/a'))).toStrictEqual([500, 1000, 1500]);
    });

    it('spreads the retries of keys that failed together', () => {
      let seed = 1;
      const random = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
      const { queue } = makeQueue({ random, jitter: 0.2 });
      const delays = Array.from({ length: 50 }, (_, i) => queue.addRateLimited(`ns/${i}`));
      expect(new Set(delays).size).toBeGreaterThan(10);
      for (const delay of delays) {
        expect(delay).toBeGreaterThanOrEqual(400);
        expect(delay).toBeLessThanOrEqual(500);
      }
    });

    it('delivers the key when its backoff has passed', async () => {
      const { queue, clock } = makeQueue();
      queue.addRateLimited('ns/a');
      clock.advance(499);
      expect(queue.len()).toBe(0);
      clock.advance(1);
      expect(await drainReady(queue)).toStrictEqual(['ns/a']);
    });
  });

  describe('shut down', () => {
    it('resolves waiting and later get() calls with undefined and ignores adds', async () => {
      const { queue, clock } = makeQueue();
      const waiting = queue.get();
      queue.addAfter('ns/later', 100);
      queue.shutDown();
      expect(await waiting).toBeUndefined();
      queue.add('ns/a');
      clock.advance(1000);
      expect(queue.len()).toBe(0);
      expect(await queue.get()).toBeUndefined();
      expect(queue.isShuttingDown()).toBe(true);
    });

    it('drops queued keys, so workers stop at once', async () => {
      const { queue } = makeQueue();
      queue.add('ns/a');
      queue.add('ns/b');
      queue.shutDown();
      expect(await queue.get()).toBeUndefined();
    });

    it('with drain, resolves only after every key handed out is done', async () => {
      const { queue } = makeQueue();
      queue.add('ns/a');
      queue.add('ns/b');
      const a = await queue.get();
      const b = await queue.get();
      let drained = false;
      const drain = queue.shutDownWithDrain().then(() => {
        drained = true;
      });
      queue.add('ns/a');
      queue.done(a ?? '');
      await poll(Promise.resolve(undefined));
      expect(drained).toBe(false);
      queue.done(b ?? '');
      await drain;
      expect(drained).toBe(true);
      expect(queue.len()).toBe(0);
      expect(await queue.get()).toBeUndefined();
    });

    it('with drain and nothing in progress, resolves at once', async () => {
      const { queue } = makeQueue();
      await expect(queue.shutDownWithDrain()).resolves.toBeUndefined();
    });
  });

  it('with concurrent workers, never runs a key twice at once and processes every add that came after the last run started', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c', 'd'), high: fc.boolean(), pause: fc.nat(3) }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 1, max: 4 }),
        async (adds, workerCount) => {
          const queue = new WorkQueue();
          const running = new Set<string>();
          /** Per key: index of the latest add, and index of the latest add seen by a run that started after it. */
          const lastAdd = new Map<string, number>();
          const coveredUpTo = new Map<string, number>();
          let addIndex = -1;
          let overlap = false;
          const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
          const worker = async (): Promise<void> => {
            for (let key = await queue.get(); key !== undefined; key = await queue.get()) {
              if (running.has(key)) overlap = true;
              running.add(key);
              coveredUpTo.set(key, lastAdd.get(key) ?? -1);
              await tick();
              running.delete(key);
              queue.done(key);
            }
          };
          const workers = Array.from({ length: workerCount }, () => worker());
          for (const add of adds) {
            addIndex++;
            lastAdd.set(add.key, addIndex);
            queue.add(add.key, { priority: add.high ? 'high' : 'normal' });
            for (let i = 0; i < add.pause; i++) await tick();
          }
          while (queue.len() > 0 || queue.inProgress() > 0) await tick();
          queue.shutDown();
          await Promise.all(workers);
          expect(overlap).toBe(false);
          for (const [key, index] of lastAdd) expect(coveredUpTo.get(key)).toBe(index);
        },
      ),
      { numRuns: 100 },
    );
  });
});
