// User story: an image that never scans, or a pod that has finished, costs little. An image that always
// outlasts the scan timeout is tried a few times with a growing backoff, then left to the scheduled
// rescan, and its report says so; a pod that completed (not a Job's) stops keeping its image's report.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestFor } from '../fake-apiserver/index.js';
import { CLEAN_FIXTURE, REPORTS, delay, eventually, startRig } from './harness.js';
import type { OperatorProcess, ReportLike, Rig } from './harness.js';

interface RetryStatus {
  failedScanAttempts?: number;
  nextRetryTime?: string;
}

describe('failure that stays small', () => {
  let rig: Rig;
  let operator: OperatorProcess;

  const report = (ns: string, image: string): (ReportLike & { status?: RetryStatus }) | undefined =>
    rig.reports(ns).find((r) => r.spec?.image === image) as (ReportLike & { status?: RetryStatus }) | undefined;
  const runsOf = (image: string) => rig.stubEvents().filter((e) => e.event === 'start' && e.argv?.some((a) => a.endsWith(digestFor(image))));

  beforeAll(async () => {
    rig = await startRig();
    rig.setStubMap({ default: CLEAN_FIXTURE, 'docker.io/library/hangs': { mode: 'hang' } });
    operator = rig.start({
      args: ['--scan-timeout', '1s', '--scan-retry-backoff', '1s', '--max-scan-attempts', '3', '--report-grace-period', '3s'],
    });
    await operator.waitForLine((l) => l.msg === 'caches synced', 30_000);
  });

  afterAll(async () => {
    await rig?.close();
  });

  it('an image that always times out is tried 3 times with a growing backoff, then not again, and its report says so', async () => {
    rig.api.seed.pod({ namespace: 'shop', name: 'stuck', containers: ['hangs:1'] });
    const failed = await eventually(
      () => {
        const r = report('shop', 'hangs:1');
        return r?.status?.phase === 'Failed' && r.status.failedScanAttempts === 3 ? r : undefined;
      },
      40_000,
      'a Failed report after 3 attempts',
    );
    expect(failed.status?.message).toMatch(/^Scan failed \(timeout\): The scan did not finish within the scan timeout; Trivy was killed /);
    expect(failed.status?.message).toContain(`Gave up after 3 failed attempts in a row; next try with the scheduled rescan at ${failed.status?.nextRetryTime ?? '?'}.`);
    // The next try is the schedule's (every 12 h at 00:00 and 12:00 UTC), not minutes away.
    expect(Date.parse(failed.status?.nextRetryTime ?? '') - Date.now()).toBeGreaterThan(60_000);
    const runs = runsOf('hangs:1');
    expect(runs).toHaveLength(3);
    // Growing gaps: 1 s then 2 s of backoff after each 1 s timeout (no quick retry inside a request).
    const gaps = runs.slice(1).map((run, i) => run.t - (runs[i]?.t ?? 0));
    // (Measured between the stub's own start lines, which lag the spawn by a varying ~0.1-0.3 s.)
    expect(gaps[0]).toBeGreaterThanOrEqual(1_700);
    expect(gaps[1]).toBeGreaterThanOrEqual(2_700);
    expect((gaps[1] ?? 0) - (gaps[0] ?? 0)).toBeGreaterThanOrEqual(600);
    // Well past where a fourth attempt would have come: none, and no report write either.
    const writes = rig.api.requests({ resource: 'imagescanreports', verb: 'patch' }).length;
    await delay(8_000);
    expect(runsOf('hangs:1')).toHaveLength(3);
    expect(rig.api.requests({ resource: 'imagescanreports', verb: 'patch' })).toHaveLength(writes);
  }, 60_000);

  it("a Succeeded pod's image loses its report after the grace period; a Job's completed pod keeps it", async () => {
    rig.api.seed.pod({ namespace: 'batch', name: 'once', containers: ['alpine:3.19'] });
    const job = rig.api.seed.job({ namespace: 'batch', name: 'nightly', containers: ['redis:7'] });
    await eventually(() => (report('batch', 'alpine:3.19')?.status?.phase === 'Scanned' && report('batch', 'redis:7')?.status?.phase === 'Scanned' ? true : undefined), 30_000, 'both reports Scanned');

    const complete = (name: string) => {
      const stored = rig.api.objects.get('pods', 'batch', name);
      if (stored === undefined) throw new Error(`pod ${name}`);
      const pod = structuredClone(stored) as { status: { phase: string } };
      pod.status.phase = 'Succeeded';
      rig.api.objects.upsert(pod as never);
    };
    complete('once');
    for (const pod of job.pods) complete((pod.metadata as { name: string }).name);
    const completedAt = Date.now();

    await eventually(() => (report('batch', 'alpine:3.19') === undefined ? true : undefined), 20_000, 'the bare pod’s report deleted');
    expect(Date.now() - completedAt).toBeGreaterThanOrEqual(3_000);
    const scansOfAlpine = runsOf('alpine:3.19').length;
    await delay(4_000);
    expect(rig.api.objects.list(REPORTS, 'batch').map((r) => (r as ReportLike).spec?.image)).toEqual(['redis:7']);
    expect(report('batch', 'redis:7')?.status?.workloads).toEqual([{ kind: 'Job', name: 'nightly' }]);
    expect(runsOf('alpine:3.19')).toHaveLength(scansOfAlpine);
  }, 60_000);
});
