import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createStubWorkspace, stubRunnerOptions, testDigest } from '../../test/trivy-stub/stub-harness.js';
import type { Invocation, StubWorkspace } from '../../test/trivy-stub/stub-harness.js';
import { ScanQueue } from './scan-queue.js';
import type { ScanOutcome } from './scan-queue.js';
import { TrivyDatabase } from './trivy-database.js';
import type { TrivyDatabaseOptions } from './trivy-database.js';
import { TrivyRunner } from './trivy-runner.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

function setup(map: Record<string, unknown>, env: Record<string, string> = {}, dbOpts: Partial<TrivyDatabaseOptions> = {}) {
  const ws = createStubWorkspace(map, env);
  const runner = new TrivyRunner(stubRunnerOptions(ws, logger, dbOpts.server === undefined ? {} : { server: dbOpts.server }));
  const db = new TrivyDatabase({ runner, refreshIntervalMs: 3_600_000, backoff: { baseMs: 40, maxMs: 400 }, logger, ...dbOpts });
  cleanups.push(() => ws.cleanup(), () => db.stop());
  return { ws, runner, db };
}

const isDownload = (i: Invocation) => i.start.argv?.some((a) => a.startsWith('--download-')) ?? false;
const isScan = (i: Invocation) => i.start.argv?.[0] === 'image' && !isDownload(i);
/** Each DB refresh = its --download-db-only start .. its --download-java-db-only end. */
function refreshWindows(ws: StubWorkspace): { start: number; end: number }[] {
  const downloads = ws.invocations().filter(isDownload);
  const windows: { start: number; end: number }[] = [];
  for (const d of downloads) {
    if (d.start.argv?.[1] === '--download-db-only') windows.push({ start: d.start.t, end: d.end?.t ?? Number.POSITIVE_INFINITY });
    else if (windows.length > 0) (windows[windows.length - 1] as { end: number }).end = d.end?.t ?? Number.POSITIVE_INFINITY;
  }
  return windows;
}

describe('TrivyDatabase (standalone)', () => {
  it('keeps scans waiting until the first download finishes, then reports the DB time', async () => {
    const { db } = setup({ db: { sleepMs: 300, updatedAt: '2026-11-26T06:00:00Z' } });
    const updates: string[] = [];
    db.onUpdated((u) => updates.push(u));
    let gateOpened = false;
    void db.whenReady().then(() => (gateOpened = true));
    const started = db.start();
    await sleep(100);
    expect(gateOpened).toBe(false);
    expect(db.isReady()).toBe(false);
    await started;
    await sleep(0);
    expect(gateOpened).toBe(true);
    expect(db.isReady()).toBe(true);
    expect(db.updatedAt()).toBe('2026-11-26T06:00:00Z');
    expect(updates).toEqual(['2026-11-26T06:00:00Z']);
    expect(db.downloads()).toBe(1);
  });

  it('refreshes on its interval, and no scan runs while a download does', async () => {
    const ref: { queue?: ScanQueue } = {};
    const { ws, db, runner } = setup({ db: { sleepMs: 150 } }, { TRIVY_STUB_SLEEP_MS: '120' }, { refreshIntervalMs: 250, drainPollMs: 20, activeScans: () => ref.queue?.pastGate() ?? 0 });
    const outcomes: ScanOutcome[] = [];
    const queue = new ScanQueue({ scan: (t, s, onChildExit, onChildStart) => runner.scan(t, s, onChildExit, onChildStart), concurrency: 2, gate: () => db.whenReady(), onOutcome: (o) => outcomes.push(o), logger });
    ref.queue = queue;
    cleanups.push(() => queue.stop());

    await db.start();
    for (let n = 0; n < 12; n++) queue.request({ repository: 'docker.io/library/alpine', digest: testDigest(n) }, 'new');
    await until(() => outcomes.length === 12, 20_000);

    expect(outcomes.every((o) => o.ok)).toBe(true);
    // A download is counted just before Trivy starts: wait for a moment when none is in between.
    await until(() => refreshWindows(ws).length === db.downloads(), 3_000).catch(() => undefined);
    const windows = refreshWindows(ws);
    expect(windows.length).toBeGreaterThanOrEqual(2);
    expect(db.downloads()).toBe(windows.length);
    for (const scan of ws.invocations().filter(isScan)) {
      for (const w of windows) {
        const overlaps = scan.start.t < w.end && (scan.end?.t ?? Number.POSITIVE_INFINITY) > w.start;
        expect(overlaps, `scan ${scan.pid} overlaps a DB download`).toBe(false);
      }
    }
  });

  it('keeps the old DB when a refresh fails, retries with growing backoff, and picks up the next good one', async () => {
    const { ws, db, runner } = setup({ db: { updatedAt: '2026-11-26T00:00:00Z' } }, {}, { refreshIntervalMs: 100, random: () => 0 });
    const updates: string[] = [];
    db.onUpdated((u) => updates.push(u));
    await db.start();
    ws.writeMap({ db: { mode: 'fail', fatal: 'init error: DB error: failed to download vulnerability DB: OCI repository error: 1 error occurred:\n\t* GET https://mirror.gcr.io/v2/aquasec/trivy-db/manifests/2: TOOMANYREQUESTS: rate limited\n' } });
    await until(() => refreshWindows(ws).length >= 5);

    // Scans still run on the old DB meanwhile.
    expect(db.isReady()).toBe(true);
    await db.whenReady();
    const result = await runner.scan({ repository: 'docker.io/library/alpine', digest: testDigest(1) });
    expect(result.summary.total).toBeGreaterThan(0);
    expect(db.updatedAt()).toBe('2026-11-26T00:00:00Z');

    const failedStarts = ws
      .invocations()
      .filter((i) => i.start.argv?.[1] === '--download-db-only' && i.end?.exitCode === 1)
      .map((i) => i.start.t);
    // random 0 => delays of 20, 40, 80 ms after consecutive failures (half the exponential delay).
    const gaps = failedStarts.slice(1).map((t, k) => t - (failedStarts[k] ?? 0));
    expect(gaps[1]).toBeGreaterThan(40);
    expect(gaps[2]).toBeGreaterThan(80);

    ws.writeMap({ db: { updatedAt: '2026-11-26T06:00:00Z' } });
    await until(() => db.updatedAt() === '2026-11-26T06:00:00Z');
    expect(updates).toEqual(['2026-11-26T00:00:00Z', '2026-11-26T06:00:00Z']);
  });

  it('stays not ready while the first download fails, and becomes ready when it succeeds', async () => {
    const { ws, db } = setup({ db: { mode: 'fail' } }, {}, { random: () => 0 });
    await db.start();
    expect(db.isReady()).toBe(false);
    let opened = false;
    void db.whenReady().then(() => (opened = true));
    await sleep(100);
    expect(opened).toBe(false);
    ws.writeMap({});
    await until(() => opened);
    expect(db.isReady()).toBe(true);
  });

  it('stop() kills a running download', async () => {
    const { ws, db } = setup({ db: { sleepMs: 60_000 } });
    void db.start();
    await until(() => ws.invocations().filter(isDownload).length === 1);
    const t0 = Date.now();
    await db.stop();
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(ws.invocations().filter(isDownload)[0]?.end).toBeUndefined();
  });

  it('after a restart, reuses a DB the cache holds from less than the refresh interval ago instead of downloading it again', async () => {
    const { ws, runner, db } = setup({ db: { updatedAt: '2026-11-26T06:00:00Z' } });
    await db.start();
    await db.stop();
    expect(ws.invocations().filter((i) => i.start.argv?.[1] === '--download-db-only')).toHaveLength(1);

    const restarted = new TrivyDatabase({ runner, refreshIntervalMs: 3_600_000, logger });
    cleanups.push(() => restarted.stop());
    const updates: string[] = [];
    restarted.onUpdated((u) => updates.push(u));
    await restarted.start();
    expect(restarted.isReady()).toBe(true);
    await restarted.whenReady();
    expect(restarted.updatedAt()).toBe('2026-11-26T06:00:00Z');
    expect(restarted.downloads()).toBe(0);
    // The DB time is announced (metrics need it after a restart) without a download.
    expect(updates).toEqual(['2026-11-26T06:00:00Z']);
    expect(ws.invocations().filter((i) => i.start.argv?.[1] === '--download-db-only')).toHaveLength(1);

    // A DB downloaded longer ago than the interval is downloaded again at start.
    const stale = new TrivyDatabase({ runner, refreshIntervalMs: 3_600_000, logger, now: () => Date.now() + 2 * 3_600_000 });
    cleanups.push(() => stale.stop());
    await stale.start();
    expect(stale.downloads()).toBe(1);
    expect(ws.invocations().filter((i) => i.start.argv?.[1] === '--download-db-only')).toHaveLength(2);
  });
});

describe('TrivyDatabase (client/server mode)', () => {
  async function fakeServer() {
    const state = { healthy: true, updatedAt: '2026-11-26T12:00:00.123456789Z' };
    const server = http.createServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(state.healthy ? 200 : 503).end(state.healthy ? 'ok' : 'down');
      } else if (req.url === '/version') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Version: '0.74.0', VulnerabilityDB: { Version: 2, UpdatedAt: state.updatedAt } }));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, state };
  }

  it('downloads only the Java DB (the client matches JARs), gates scans on it, and is ready while the server answers /healthz', async () => {
    const { url, state } = await fakeServer();
    const { ws, db } = setup({ db: { sleepMs: 200 } }, {}, { server: url, healthIntervalMs: 50 });
    let gateOpened = false;
    void db.whenReady().then(() => (gateOpened = true));
    await db.start();
    expect(db.isReady()).toBe(true);
    expect(db.updatedAt()).toBe('2026-11-26T12:00:00.123456789Z');
    await until(() => gateOpened);
    expect(db.downloads()).toBe(1);
    const downloads = ws.invocations().filter(isDownload).map((d) => d.start.argv?.[1]);
    expect(downloads).toEqual(['--download-java-db-only']);
    state.healthy = false;
    await until(() => !db.isReady());
    await db.whenReady(); // scans are not blocked by the server's health; they fail on their own and are retried
  });
});
