import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { NamespaceEntry, PodEntry, ReportEntry } from '../kube/cluster-objects.js';
import { toPodEntry } from '../kube/cluster-objects.js';
import { ResilientInformer } from '../kube/informer.js';
import type { CachedObject, WatchClient } from '../kube/informer.js';
import { PodImageIndex, reportKey } from '../kube/pod-image-index.js';
import { parseTrivyReport } from '../scanner/trivy-report-parser.js';
import { ReportController } from './report-controller.js';
import type { ReconcileResult } from './report-reconciler.js';
import { ScanResults } from './scan-results.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const logger = pino({ level: 'silent' });

/** A watch that connects and stays silent: the informers only serve their (fixed) list. */
const silentWatch: WatchClient = {
  watch: (_path, _query, _callback, done) => {
    const controller = new AbortController();
    controller.signal.addEventListener('abort', () => done(null));
    return Promise.resolve(controller);
  },
};

function informer<T extends CachedObject>(name: string, items: unknown[], transform: (raw: unknown) => T | undefined): ResilientInformer<T> {
  return new ResilientInformer<T>({
    name,
    path: `/${name}`,
    list: () => Promise.resolve({ items, resourceVersion: '1' }),
    transform,
    watchClient: silentWatch,
    logger,
  });
}

function rawPod(namespace: string, name: string, digest: string): unknown {
  return {
    metadata: { namespace, name, uid: name, resourceVersion: '1' },
    spec: { containers: [{ name: 'app', image: 'nginx:1.25' }] },
    status: { containerStatuses: [{ name: 'app', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${digest}`, ready: true, restartCount: 0 }] },
  };
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function setup(reconcile: (key: string) => Promise<ReconcileResult>, podItems: unknown[] = [rawPod('a', 'p1', D1), rawPod('b', 'p2', D1)], workers = 2) {
  const pods = informer<PodEntry>('pods', podItems, toPodEntry);
  const namespaces = informer<NamespaceEntry>('namespaces', [], () => undefined);
  const reports = informer<ReportEntry>('reports', [], () => undefined);
  const index = new PodImageIndex({ isWatchedNamespace: () => true });
  const scans = new ScanResults();
  const calls: string[] = [];
  const recorded: string[] = [];
  const controller = new ReportController({
    reconciler: {
      reconcile: (key) => {
        calls.push(key);
        return reconcile(key);
      },
      recordSuccess: (digest) => recorded.push(`success ${digest}`),
      recordFailure: (digest, reason) => recorded.push(`failure ${digest} ${reason}`),
      prepared: (state) => state,
    },
    index,
    scans,
    pods: [pods],
    namespaces,
    reports,
    workers,
    logger,
    rescanJitterMs: 1000,
    queueOptions: { baseDelayMs: 10, maxDelayMs: 50 },
    random: () => 0.5,
  });
  return { pods, namespaces, reports, index, scans, calls, recorded, controller };
}

describe('ReportController', () => {
  it('at start reconciles one key of every digest before a second namespace of any digest, so every scan is asked for first', async () => {
    const D2 = `sha256:${'2'.repeat(64)}`;
    const D3 = `sha256:${'3'.repeat(64)}`;
    // Namespace order puts the popular D1 first everywhere; D3 runs only in the last namespace.
    const podItems = [rawPod('a', 'a1', D1), rawPod('a', 'a2', D2), rawPod('b', 'b1', D1), rawPod('b', 'b2', D2), rawPod('c', 'c1', D1), rawPod('c', 'c3', D3)];
    const h = setup(() => Promise.resolve({}), podItems, 1);
    h.pods.start();
    await h.pods.whenSynced();
    h.controller.start();
    await until(() => h.calls.length === 6);
    const digestsOfFirstThree = new Set(h.calls.slice(0, 3).map((key) => key.slice(key.indexOf('/') + 1)));
    expect(digestsOfFirstThree).toEqual(new Set([D1, D2, D3]));
    expect(new Set(h.calls)).toEqual(new Set(['a', 'b', 'c'].flatMap((ns) => [reportKey(ns, D1)]).concat([reportKey('a', D2), reportKey('b', D2), reportKey('c', D3)])));
    await h.controller.stop();
    await h.pods.stop();
  });

  it('reconciles every running key once the caches are filled and the workers start', async () => {
    const h = setup(() => Promise.resolve({}));
    h.pods.start();
    await h.pods.whenSynced();
    expect(h.calls).toEqual([]); // not leading yet: nothing runs
    h.controller.start();
    await until(() => h.calls.length === 2);
    expect(h.calls.sort()).toEqual([reportKey('a', D1), reportKey('b', D1)]);
    expect(h.controller.reconcileCounts()).toEqual({ success: 2, error: 0, requeue: 0 });
    await h.controller.stop();
    await h.pods.stop();
  });

  it('retries a key that throws, with backoff, until it succeeds; other keys are not held up', async () => {
    let failures = 2;
    const h = setup((key) => {
      if (key.startsWith('a/') && failures > 0) {
        failures -= 1;
        return Promise.reject(new Error('HTTP 500'));
      }
      return Promise.resolve({});
    });
    h.pods.start();
    await h.pods.whenSynced();
    h.controller.start();
    await until(() => h.controller.reconcileCounts().success === 2);
    expect(h.calls.filter((k) => k.startsWith('a/'))).toHaveLength(3);
    expect(h.controller.reconcileCounts().error).toBe(2);
    await h.controller.stop();
    await h.pods.stop();
  });

  it('runs a key again after the delay reconcile asks for', async () => {
    let first = true;
    const h = setup((key) => {
      if (key.startsWith('a/') && first) {
        first = false;
        return Promise.resolve({ requeueAfterMs: 30 });
      }
      return Promise.resolve({});
    });
    h.pods.start();
    await h.pods.whenSynced();
    h.controller.start();
    await until(() => h.calls.filter((k) => k.startsWith('a/')).length === 2);
    expect(h.controller.reconcileCounts().requeue).toBe(1);
    await h.controller.stop();
    await h.pods.stop();
  });

  it('a finished scan is recorded once and reconciles every namespace that runs the digest', async () => {
    const h = setup(() => Promise.resolve({}));
    h.pods.start();
    await h.pods.whenSynced();
    h.controller.start();
    await until(() => h.calls.length === 2);
    h.calls.length = 0;
    const result = parseTrivyReport(JSON.stringify({ SchemaVersion: 2, ArtifactName: 'x', Results: [] }));
    h.controller.handleScanOutcome({ digest: D1, target: { repository: 'docker.io/library/nginx', digest: D1 }, finishedAt: new Date(), attempts: 1, durationMs: 5, ok: true, result });
    await until(() => h.calls.length === 2);
    expect(h.recorded).toEqual([`success ${D1}`]);
    expect(h.calls.sort()).toEqual([reportKey('a', D1), reportKey('b', D1)]);
    await h.controller.stop();
    await h.pods.stop();
  });

  it('a scheduled rescan marks running digests with a spread start, asks through one key per digest, and updates every key with the result', async () => {
    const h = setup(() => Promise.resolve({}));
    h.pods.start();
    await h.pods.whenSynced();
    const result = parseTrivyReport(JSON.stringify({ SchemaVersion: 2, ArtifactName: 'x', Results: [] }));
    h.scans.recordResult(D1, { result }, new Date());
    h.controller.start();
    await until(() => h.calls.length === 2);
    h.calls.length = 0;
    const before = Date.now();
    h.controller.rescanAll('schedule');
    await until(() => h.calls.length === 1);
    const mark = h.scans.get(D1)?.rescanNotBefore ?? 0;
    expect(mark).toBeGreaterThanOrEqual(before + 500);
    expect(mark).toBeLessThanOrEqual(Date.now() + 500);
    // The digest's other key has nothing to do until the result arrives.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(h.calls).toHaveLength(1);
    expect([reportKey('a', D1), reportKey('b', D1)]).toContain(h.calls[0]);
    h.controller.handleScanOutcome({ digest: D1, target: { repository: 'docker.io/library/nginx', digest: D1 }, finishedAt: new Date(), attempts: 1, durationMs: 5, ok: true, result });
    await until(() => h.calls.length === 3);
    expect(h.calls.slice(1).sort()).toEqual([reportKey('a', D1), reportKey('b', D1)]);
    await h.controller.stop();
    await h.pods.stop();
  });

  it('a vulnerability DB update rescans only the digests scanned with an older DB', async () => {
    const D2 = `sha256:${'2'.repeat(64)}`;
    const h = setup(() => Promise.resolve({}), [rawPod('a', 'p1', D1), rawPod('a', 'p2', D2)]);
    h.pods.start();
    await h.pods.whenSynced();
    const scannedWith = (dbUpdatedAt: string) => {
      const result = parseTrivyReport(JSON.stringify({ SchemaVersion: 2, ArtifactName: 'x', Results: [] }));
      return { ...result, scanner: { ...result.scanner, dbUpdatedAt } };
    };
    h.scans.recordResult(D1, { result: scannedWith('2026-11-25T00:00:00Z') }, new Date());
    h.scans.recordResult(D2, { result: scannedWith('2026-11-26T06:00:00Z') }, new Date());
    h.controller.start();
    await until(() => h.calls.length === 2);

    h.controller.rescanOutdated('2026-11-26T00:00:00Z');

    expect(h.scans.get(D1)?.rescanNotBefore).toBeDefined();
    expect(h.scans.get(D2)?.rescanNotBefore).toBeUndefined();
    await h.controller.stop();
    await h.pods.stop();
  });

  it('stop() waits for running reconciles and nothing runs afterwards', async () => {
    const pending: (() => void)[] = [];
    const h = setup(() => new Promise<ReconcileResult>((resolve) => pending.push(() => resolve({}))));
    h.pods.start();
    await h.pods.whenSynced();
    h.controller.start();
    await until(() => pending.length === 2);
    let stopped = false;
    const stopping = h.controller.stop().then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stopped).toBe(false);
    for (const release of pending.splice(0)) release();
    await stopping;
    const count = h.calls.length;
    h.controller.enqueueAll();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(h.calls.length).toBe(count);
    await h.pods.stop();
  });
  it('forgets scan knowledge of digests that neither run nor have a report', async () => {
    const h = setup(() => Promise.resolve({}));
    h.pods.start();
    await h.pods.whenSynced();
    const result = parseTrivyReport(JSON.stringify({ SchemaVersion: 2, ArtifactName: 'x', Results: [] }));
    const gone = `sha256:${'9'.repeat(64)}`;
    h.scans.recordResult(D1, { result }, new Date());
    h.scans.recordResult(gone, { result }, new Date());
    expect(h.controller.pruneKnowledge()).toBe(1);
    expect(h.scans.get(D1)).toBeDefined();
    expect(h.scans.get(gone)).toBeUndefined();
    await h.pods.stop();
  });
});
