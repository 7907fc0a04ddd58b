// Backoff, jitter and notBefore on a manual clock: exact times, no sleeping. The scan function is the
// edge being faked here (the stub-driven tests in scan-queue.test.ts cover the real runner).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ScanFailure } from './scan-failure.js';
import { ScanQueue } from './scan-queue.js';
import type { ScanOutcome } from './scan-queue.js';
import type { ScanResult } from './scan-result.js';

const emptyResult: ScanResult = { vulnerabilities: [], summary: { critical: 0, high: 0, medium: 0, low: 0, unknown: 0, total: 0, fixable: 0 }, scanner: { name: 'Trivy' } };

function manualClock() {
  let now = 0;
  const timers: { at: number; resolve: () => void; signal: AbortSignal }[] = [];
  return {
    now: () => now,
    delay: (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => timers.push({ at: now + ms, resolve, signal })),
    /** Moves time forward, firing due timers (also those their callbacks set), and lets the queue's promise chains run. */
    async advance(ms: number) {
      now += ms;
      for (let fired = true; fired; ) {
        fired = false;
        for (const t of timers.splice(0)) {
          if (t.signal.aborted || t.at <= now) {
            t.resolve();
            fired = true;
          } else timers.push(t);
        }
        for (let i = 0; i < 20; i++) await Promise.resolve();
      }
    },
  };
}

describe('ScanQueue timing', () => {
  it('retries transient failures after exponential backoff with jitter, capped, then gives up', async () => {
    const clock = manualClock();
    const calls: number[] = [];
    const outcomes: ScanOutcome[] = [];
    const queue = new ScanQueue({
      scan: () => {
        calls.push(clock.now());
        return Promise.reject(new ScanFailure('scanner_error', 'registry 503', true));
      },
      concurrency: 1,
      maxAttempts: 4,
      backoff: { baseMs: 1_000, maxMs: 3_000 },
      onOutcome: (o) => outcomes.push(o),
      logger: pino({ level: 'silent' }),
      now: clock.now,
      random: () => 0.5,
      delay: clock.delay,
    });
    queue.request({ repository: 'docker.io/library/nginx', digest: 'sha256:1' }, 'new');
    await clock.advance(0);
    // Equal jitter with random 0.5: 3/4 of min(max, base * 2^(n-1)) => 750, 1500, 2250 (capped at 3000).
    for (const [step, expectedCalls] of [[749, 1], [1, 2], [1_499, 2], [1, 3], [2_249, 3], [1, 4]] as const) {
      await clock.advance(step);
      expect(calls).toHaveLength(expectedCalls);
    }
    expect(calls).toEqual([0, 750, 2_250, 4_500]);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ ok: false, attempts: 4, failure: { reason: 'scanner_error' } });
    expect(queue.isPending('sha256:1')).toBe(false);
  });

  it('holds a request until its notBefore, while a new image goes first', async () => {
    const clock = manualClock();
    const started: string[] = [];
    const queue = new ScanQueue({
      scan: (t) => {
        started.push(t.digest);
        return Promise.resolve(emptyResult);
      },
      concurrency: 1,
      onOutcome: () => undefined,
      logger: pino({ level: 'silent' }),
      now: clock.now,
      delay: clock.delay,
    });
    queue.request({ repository: 'docker.io/library/a', digest: 'sha256:a' }, 'rescan', { notBefore: 5_000 });
    queue.request({ repository: 'docker.io/library/b', digest: 'sha256:b' }, 'new');
    await clock.advance(0);
    expect(started).toEqual(['sha256:b']);
    await clock.advance(4_999);
    expect(started).toEqual(['sha256:b']);
    expect(queue.isPending('sha256:a')).toBe(true);
    await clock.advance(1);
    expect(started).toEqual(['sha256:b', 'sha256:a']);
  });

  it('a new request for a rescan waiting on notBefore makes it run now', async () => {
    const clock = manualClock();
    const started: string[] = [];
    const queue = new ScanQueue({
      scan: (t) => (started.push(t.digest), Promise.resolve(emptyResult)),
      concurrency: 1,
      onOutcome: () => undefined,
      logger: pino({ level: 'silent' }),
      now: clock.now,
      delay: clock.delay,
    });
    expect(queue.request({ repository: 'docker.io/library/a', digest: 'sha256:a' }, 'rescan', { notBefore: 60_000 })).toBe(true);
    expect(queue.request({ repository: 'docker.io/library/a', digest: 'sha256:a' }, 'new')).toBe(false);
    await clock.advance(0);
    expect(started).toEqual(['sha256:a']);
  });

  it('emits a non-classified error once as a permanent scanner_error, and survives a throwing listener', async () => {
    const clock = manualClock();
    let calls = 0;
    const outcomes: ScanOutcome[] = [];
    const queue = new ScanQueue({
      scan: () => (calls++, Promise.reject(new TypeError('boom'))),
      concurrency: 1,
      onOutcome: (o) => {
        outcomes.push(o);
        throw new Error('listener bug');
      },
      logger: pino({ level: 'silent' }),
      now: clock.now,
      delay: clock.delay,
    });
    queue.request({ repository: 'docker.io/library/a', digest: 'sha256:a' }, 'new');
    queue.request({ repository: 'docker.io/library/b', digest: 'sha256:b' }, 'new');
    await clock.advance(10_000);
    expect(calls).toBe(2);
    expect(outcomes.map((o) => (o.ok ? 'ok' : `${o.failure.reason}:${o.failure.transient}:${o.failure.message}`))).toEqual([
      'scanner_error:false:Unexpected error while scanning: boom',
      'scanner_error:false:Unexpected error while scanning: boom',
    ]);
  });

  it('lets the next scan start once a child has exited, while that scan still reads its report', async () => {
    const clock = manualClock();
    const started: string[] = [];
    const finishReport = new Map<string, () => void>();
    const outcomes: ScanOutcome[] = [];
    const queue = new ScanQueue({
      scan: (target, _signal, onChildExit, onChildStart) => {
        started.push(target.digest);
        onChildStart();
        onChildExit();
        return new Promise<ScanResult>((resolve) => finishReport.set(target.digest, () => resolve(emptyResult)));
      },
      concurrency: 1,
      onOutcome: (o) => outcomes.push(o),
      logger: pino({ level: 'silent' }),
      now: clock.now,
      delay: clock.delay,
    });
    for (const d of ['sha256:1', 'sha256:2', 'sha256:3']) queue.request({ repository: 'docker.io/library/nginx', digest: d }, 'new');
    await clock.advance(0);
    // One child at a time, but the first scan's report reading does not hold the slot.
    expect(started).toEqual(['sha256:1', 'sha256:2']);
    expect(queue.inProgress()).toBe(0);
    // Still no third: at most `concurrency` scans may be finishing behind the running ones.
    expect(queue.depth()).toBe(1);
    finishReport.get('sha256:1')?.();
    // The resolved scan reaches the queue's next delay only after a few promise hops.
    await clock.advance(0);
    await clock.advance(0);
    expect(outcomes.map((o) => o.digest)).toEqual(['sha256:1']);
    expect(started).toEqual(['sha256:1', 'sha256:2', 'sha256:3']);
    expect(queue.isPending('sha256:2')).toBe(true);
  });

  it('keeps the slot until the attempt ends when the scan does not say its child exited', async () => {
    const clock = manualClock();
    const started: string[] = [];
    const finish = new Map<string, () => void>();
    const atFinish: [number, number][] = [];
    const queue: ScanQueue = new ScanQueue({
      onEvent: (e) => {
        // What the operator's queue gauges read when a scan finishes: it is neither waiting nor running.
        if (e.type === 'finished') atFinish.push([queue.depth(), queue.inProgress()]);
      },
      scan: (target, _signal, _onChildExit, onChildStart) => {
        started.push(target.digest);
        onChildStart();
        return new Promise<ScanResult>((resolve) => finish.set(target.digest, () => resolve(emptyResult)));
      },
      concurrency: 1,
      onOutcome: () => undefined,
      logger: pino({ level: 'silent' }),
      now: clock.now,
      delay: clock.delay,
    });
    for (const d of ['sha256:1', 'sha256:2']) queue.request({ repository: 'docker.io/library/nginx', digest: d }, 'new');
    await clock.advance(0);
    expect(started).toEqual(['sha256:1']);
    expect(queue.inProgress()).toBe(1);
    finish.get('sha256:1')?.();
    await clock.advance(0);
    await clock.advance(0);
    expect(started).toEqual(['sha256:1', 'sha256:2']);
    expect(atFinish).toEqual([[1, 0]]);
  });
});
