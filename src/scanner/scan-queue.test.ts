// The queue, the DB gate and the runner together, against the stub Trivy (no mocks).
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createStubWorkspace, stubRunnerOptions, isAlive, maxOverlap, testDigest } from '../../test/trivy-stub/stub-harness.js';
import type { Invocation, StubWorkspace } from '../../test/trivy-stub/stub-harness.js';
import { ScanQueue } from './scan-queue.js';
import type { ScanOutcome, ScanQueueEvent, ScanQueueOptions } from './scan-queue.js';
import { TrivyDatabase } from './trivy-database.js';
import { TrivyRunner } from './trivy-runner.js';
import type { ScanTarget, TrivyRunnerOptions } from './trivy-runner.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Harness {
  ws: StubWorkspace;
  runner: TrivyRunner;
  db: TrivyDatabase;
  queue: ScanQueue;
  outcomes: ScanOutcome[];
  events: ScanQueueEvent[];
  eventTimes: { type: string; attempt: number; t: number }[];
  logLines: string[];
  /** Resolves when `n` outcomes have been emitted. */
  outcomesReached(n: number, timeoutMs?: number): Promise<ScanOutcome[]>;
  scans(): Invocation[];
}

function harness(opts: {
  map?: Record<string, unknown>;
  env?: Record<string, string>;
  runner?: Partial<TrivyRunnerOptions>;
  queue?: Partial<ScanQueueOptions>;
  concurrency?: number;
}): Harness {
  const ws = createStubWorkspace(opts.map, opts.env);
  const logLines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
  const runner = new TrivyRunner(stubRunnerOptions(ws, logger, opts.runner));
  const ref: { queue?: ScanQueue } = {};
  const db = new TrivyDatabase({ runner, refreshIntervalMs: 3_600_000, logger, activeScans: () => ref.queue?.pastGate() ?? 0 });
  const outcomes: ScanOutcome[] = [];
  const events: ScanQueueEvent[] = [];
  const eventTimes: { type: string; attempt: number; t: number }[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const queue = new ScanQueue({
    scan: (t, signal, onChildExit, onChildStart) => runner.scan(t, signal, onChildExit, onChildStart),
    concurrency: opts.concurrency ?? 2,
    gate: () => db.whenReady(),
    backoff: { baseMs: 50, maxMs: 200 },
    onOutcome: (o) => {
      outcomes.push(o);
      for (const w of waiters) if (outcomes.length >= w.n) w.resolve();
    },
    onEvent: (e) => {
      events.push(e);
      eventTimes.push({ type: e.type, attempt: e.attempt, t: Date.now() });
    },
    logger,
    ...opts.queue,
  });
  ref.queue = queue;
  cleanups.push(() => ws.cleanup(), () => db.stop(), () => queue.stop());
  return {
    ws,
    runner,
    db,
    queue,
    outcomes,
    events,
    eventTimes,
    logLines,
    outcomesReached: (n, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${outcomes.length} of ${n} outcomes`)), timeoutMs);
        const done = () => (clearTimeout(timer), resolve(outcomes));
        if (outcomes.length >= n) done();
        else waiters.push({ n, resolve: done });
      }),
    scans: () => ws.invocations().filter((i) => i.start.argv?.[0] === 'image' && !i.start.argv.some((a) => a.startsWith('--download-'))),
  };
}

const target = (n: number, repository = 'docker.io/library/alpine'): ScanTarget => ({ repository, digest: testDigest(n) });
const intervals = (invocations: Invocation[]) => invocations.map((i) => ({ start: i.start.t, end: i.end?.t ?? Number.POSITIVE_INFINITY }));

describe('ScanQueue with the stub Trivy', () => {
  it('scans 5 digests once each for 20 concurrent requests, within the concurrency limit, after one DB download', async () => {
    const h = harness({ env: { TRIVY_STUB_SLEEP_MS: '800' }, concurrency: 2 });
    const dbStarted = h.db.start(); // scans requested while the DB is still downloading must wait
    const accepted = Array.from({ length: 20 }, (_, i) => h.queue.request(target(i % 5), i % 2 ? 'new' : 'rescan'));
    await dbStarted;
    const outcomes = await h.outcomesReached(5);

    expect(accepted.filter(Boolean)).toHaveLength(5);
    const scans = h.scans();
    expect(scans).toHaveLength(5);
    expect(new Set(scans.map((s) => s.start.argv?.at(-1)))).toEqual(new Set([0, 1, 2, 3, 4].map((n) => `docker.io/library/alpine@${testDigest(n)}`)));
    expect(maxOverlap(intervals(scans))).toBe(2);
    // Exactly one DB and one Java DB download, finished before the first scan started.
    const downloads = h.ws.invocations().filter((i) => i.start.argv?.some((a) => a.startsWith('--download-')));
    expect(downloads.map((d) => d.start.argv?.[1])).toEqual(['--download-db-only', '--download-java-db-only']);
    expect(h.db.downloads()).toBe(1);
    expect(Math.min(...scans.map((s) => s.start.t))).toBeGreaterThanOrEqual(Math.max(...downloads.map((d) => d.end?.t ?? Infinity)));
    expect(scans.every((s) => s.end?.dbDownloaded === undefined)).toBe(true);

    expect(outcomes.map((o) => o.ok)).toEqual([true, true, true, true, true]);
    expect(outcomes.every((o) => o.attempts === 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(h.outcomes).toHaveLength(5);
    expect(h.queue.depth() + h.queue.inProgress()).toBe(0);
    expect(h.ws.leftovers()).toEqual([]);
  });

  it('starts scans ahead of its slots that wait in the runner: never more children than slots, and the wait is not counted in the timeout', async () => {
    const h = harness({ env: { TRIVY_STUB_SLEEP_MS: '700' }, concurrency: 1, runner: { scanSlots: 1, timeoutMs: 2_000 }, queue: { startAhead: 2 } });
    await h.db.start();
    for (const n of [1, 2, 3, 4]) h.queue.request(target(n), 'new');
    // Three started: one child running, two waiting for the slot (counted as waiting), the fourth queued.
    await expect.poll(() => h.queue.pastGate()).toBe(3);
    await expect.poll(() => h.queue.inProgress()).toBe(1);
    expect(h.queue.depth()).toBe(3);
    const outcomes = await h.outcomesReached(4);
    // The third waited for two runs of ~0.8 s before its own: over 2 s since it started, yet not timed out.
    expect(outcomes.map((o) => [o.ok, o.attempts])).toEqual([[true, 1], [true, 1], [true, 1], [true, 1]]);
    expect(maxOverlap(intervals(h.scans()))).toBe(1);
  });

  it('says it is idle once, when the last scan has ended, not while one still runs or waits for a retry', async () => {
    const idleAt: number[] = [];
    const h = harness({ env: { TRIVY_STUB_SLEEP_MS: '300' }, concurrency: 1, queue: { onIdle: () => idleAt.push(h.outcomes.length) } });
    await h.db.start();
    expect(h.queue.idle()).toBe(true);
    for (const n of [1, 2, 3]) h.queue.request(target(n), 'new');
    expect(h.queue.idle()).toBe(false);
    await expect.poll(() => h.queue.depth()).toBe(2);
    await h.outcomesReached(3);
    await expect.poll(() => idleAt).toEqual([3]);
    expect(h.queue.idle()).toBe(true);
  });

  it('never starts the child of a scan stopped while it waits for a slot', async () => {
    const h = harness({ env: { TRIVY_STUB_SLEEP_MS: '1500' }, concurrency: 1, runner: { scanSlots: 1 }, queue: { startAhead: 1 } });
    await h.db.start();
    h.queue.request(target(1), 'new');
    h.queue.request(target(2), 'new');
    await expect.poll(() => h.scans().length).toBe(1);
    expect(h.queue.pastGate()).toBe(2);
    expect(h.queue.inProgress()).toBe(1);
    await h.queue.stop();
    await new Promise((r) => setTimeout(r, 300));
    expect(h.scans().map((s) => s.start.argv?.at(-1)?.split('@')[1])).toEqual([testDigest(1)]);
    expect(h.ws.leftovers()).toEqual([]);
  });

  it('runs newly seen images before queued rescans, and a new request upgrades a queued rescan', async () => {
    const h = harness({ env: { TRIVY_STUB_SLEEP_MS: '150' }, concurrency: 1 });
    await h.db.start();
    h.queue.request(target(1), 'rescan'); // starts at once
    h.queue.request(target(2), 'rescan');
    h.queue.request(target(3), 'rescan');
    h.queue.request(target(4), 'new');
    expect(h.queue.request(target(3), 'new')).toBe(false); // upgraded, not queued twice
    // Three queued plus the first, which is taken but still passing the DB gate: none has a child yet.
    expect(h.queue.depth()).toBe(4);
    expect(h.queue.inProgress()).toBe(0);
    await h.outcomesReached(4);
    // 'new' first, oldest request first among equals: 3 was requested (as a rescan) before 4.
    expect(h.scans().map((s) => s.start.argv?.at(-1)?.split('@')[1])).toEqual([1, 3, 4, 2].map(testDigest));
  });

  it('does not start a scan before its notBefore time', async () => {
    const h = harness({});
    await h.db.start();
    const notBefore = Date.now() + 400;
    h.queue.request(target(1), 'rescan', { notBefore });
    expect(h.queue.isPending(testDigest(1))).toBe(true);
    await h.outcomesReached(1);
    expect(h.scans()[0]?.start.t).toBeGreaterThanOrEqual(notBefore);
  });

  it('kills a hung scan at the timeout, retries it with backoff, then reports it failed as timeout', async () => {
    const h = harness({ env: { TRIVY_STUB_MODE: 'hang' }, runner: { timeoutMs: 700 }, queue: { maxAttempts: 3, random: () => 0 } });
    await h.db.start();
    h.queue.request(target(1), 'new');
    const [outcome] = await h.outcomesReached(1);

    expect(outcome).toMatchObject({ ok: false, attempts: 3, failure: { reason: 'timeout', transient: true } });
    const scans = h.scans();
    expect(scans).toHaveLength(3);
    for (const s of scans) {
      expect(s.end).toBeUndefined();
      expect(isAlive(s.pid)).toBe(false);
      expect(isAlive(s.grandchildPid ?? 0)).toBe(false);
    }
    // random 0 => half of the exponential delay: at least 25 ms, then 50 ms between a failure and the retry.
    const at = (type: string, attempt: number) => h.eventTimes.find((e) => e.type === type && e.attempt === attempt)?.t ?? Number.NaN;
    expect(at('started', 2) - at('finished', 1)).toBeGreaterThanOrEqual(25);
    expect(at('started', 3) - at('finished', 2)).toBeGreaterThanOrEqual(50);
    // Each attempt lasted the timeout (killed at 700 ms), not the stub's hour-long sleep.
    for (const attempt of [1, 2, 3]) expect(at('finished', attempt) - at('started', attempt)).toBeGreaterThanOrEqual(700);
    expect(at('finished', 3) - at('started', 1)).toBeLessThan(5_000);
    expect(h.events.filter((e) => e.type === 'finished').map((e) => (e.type === 'finished' ? [e.reason, e.willRetry] : []))).toEqual([
      ['timeout', true],
      ['timeout', true],
      ['timeout', false],
    ]);
    expect(h.ws.leftovers()).toEqual([]);
  });

  it('with retriesAtOnce refusing timeouts, a hung scan is killed once and reported, holding its slot one timeout only', async () => {
    const h = harness({ env: { TRIVY_STUB_MODE: 'hang' }, runner: { timeoutMs: 500 }, queue: { maxAttempts: 3, random: () => 0, retriesAtOnce: (f) => f.reason !== 'timeout' } });
    await h.db.start();
    h.queue.request(target(1), 'new');
    const [outcome] = await h.outcomesReached(1);

    expect(outcome).toMatchObject({ ok: false, attempts: 1, failure: { reason: 'timeout', transient: true } });
    expect(h.scans()).toHaveLength(1);
  });

  it('reports garbage output as invalid_output without retrying', async () => {
    const h = harness({ env: { TRIVY_STUB_MODE: 'garbage' } });
    await h.db.start();
    h.queue.request(target(1), 'new');
    const [outcome] = await h.outcomesReached(1);
    expect(outcome).toMatchObject({ ok: false, attempts: 1, failure: { reason: 'invalid_output', transient: false } });
    expect(h.scans()).toHaveLength(1);
  });

  it('does not retry an image that is gone from the registry', async () => {
    const h = harness({});
    await h.db.start();
    h.queue.request(target(1, 'registry.example.com/gone/app'), 'new');
    const [outcome] = await h.outcomesReached(1);
    expect(outcome).toMatchObject({ ok: false, attempts: 1, failure: { reason: 'not_found', transient: false } });
  });

  it('retries a registry 503 and succeeds when the registry recovers, with one image failing and the others fine', async () => {
    const unavailable = 'run error: image scan error: scan error: unable to initialize a scanner: unable to initialize an image scanner: 1 error occurred:\n\t* remote error: GET https://index.docker.io/v2/library/redis/manifests/sha256:00: unexpected status code 503 Service Unavailable\n';
    const h = harness({ map: { 'docker.io/library/redis': { mode: 'fail', fatal: unavailable } } });
    await h.db.start();
    h.queue.request(target(1, 'docker.io/library/redis'), 'new');
    h.queue.request(target(2, 'docker.io/library/nginx'), 'new');
    h.queue.request(target(3, 'docker.io/library/alpine'), 'new');
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (h.events.some((e) => e.type === 'finished' && e.willRetry)) {
          clearInterval(check);
          h.ws.writeMap({}); // the registry is back
          resolve();
        }
      }, 5);
    });
    const outcomes = await h.outcomesReached(3);
    const redis = outcomes.find((o) => o.target.repository === 'docker.io/library/redis');
    expect(redis).toMatchObject({ ok: true, attempts: 2 });
    expect(outcomes.filter((o) => o.ok)).toHaveLength(3);
  });

  it('keeps credentials out of argv and out of every log line', async () => {
    const h = harness({});
    await h.db.start();
    const creds = { registry: 'registry.example.com', auth: { username: 'robot', password: 'stub-password' }, source: 'team-a/regcred' };
    h.queue.request({ ...target(1, 'registry.example.com/private/app'), credentials: creds }, 'new');
    h.queue.request({ ...target(2, 'registry.example.com/private/app'), credentials: { ...creds, auth: { username: 'robot', password: 'not-the-password' } } }, 'new');
    const outcomes = await h.outcomesReached(2);
    expect(outcomes.map((o) => (o.ok ? 'ok' : o.failure.reason)).sort()).toEqual(['auth', 'ok']);
    const recorded = JSON.stringify(h.ws.log());
    const logs = h.logLines.join('');
    expect(logs).toContain('team-a/regcred');
    for (const secret of ['stub-password', 'not-the-password', Buffer.from('robot:stub-password').toString('base64')]) {
      expect(recorded).not.toContain(secret);
      expect(logs).not.toContain(secret);
      expect(JSON.stringify(outcomes.map((o) => (o.ok ? '' : o.failure.message)))).not.toContain(secret);
    }
  });

  it('on stop kills running scans, drops queued ones, emits nothing more and leaves no temp files', async () => {
    const h = harness({ env: { TRIVY_STUB_MODE: 'hang' }, concurrency: 2 });
    await h.db.start();
    for (let i = 1; i <= 5; i++) h.queue.request(target(i), 'new');
    while (h.ws.invocations().filter((i) => i.grandchildPid).length < 2) await new Promise((r) => setTimeout(r, 20));
    expect(h.queue.inProgress()).toBe(2);
    expect(h.queue.depth()).toBe(3);

    await h.queue.stop();
    const scans = h.scans();
    expect(scans).toHaveLength(2);
    for (const s of scans) {
      expect(isAlive(s.pid)).toBe(false);
      expect(isAlive(s.grandchildPid ?? 0)).toBe(false);
    }
    expect(h.ws.leftovers()).toEqual([]);
    expect(h.outcomes).toEqual([]);
    expect(h.queue.request(target(9), 'new')).toBe(false);
    expect(h.queue.depth() + h.queue.inProgress()).toBe(0);
  });
});
