// User story: the API server turns slow for the leader (an overloaded apiserver instance, a congested
// node) while it has writes in flight. Its renewals fail, a standby takes the Lease, and from then on
// only the new leader's writes reach the cluster: the old leader sends none, and none it sent before
// is applied after the handover.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWrite } from '../fake-apiserver/index.js';
import { REPORTS, delay, eventually, startRig } from './harness.js';
import type { OperatorProcess, ReportLike, Rig } from './harness.js';

const SLOW_MS = 25_000;

describe('lease loss with a slow API server', () => {
  let rig: Rig;
  let a: OperatorProcess;
  let b: OperatorProcess;

  const replica = (identity: string): OperatorProcess =>
    rig.start({
      kubeconfig: rig.api.kubeconfigFor(identity),
      args: ['--leader-elect=true', '--identity', identity, '--trivy-cache-dir', path.join(rig.work, `cache-${identity}`)],
    });

  beforeAll(async () => {
    rig = await startRig();
    rig.api.seed.namespace('imagescan-system');
    rig.api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'] });
    a = replica('replica-a');
    await a.waitForLine((l) => l.msg === 'became leader', 30_000);
    b = replica('replica-b');
    await b.waitForLine((l) => l.msg === 'caches synced', 30_000);
    await eventually(() => (rig.reports('shop').some((r) => r.status?.phase === 'Scanned') ? true : undefined), 30_000, 'the first report Scanned by A');
  }, 90_000);

  afterAll(async () => {
    await rig?.close();
  });

  it('the old leader makes no write after its lease expired, and none of its writes in flight lands after the handover', async () => {
    // From now on every request of A waits 25 s; its watches keep delivering, so it starts writes: the
    // new pods are in 'shop', whose service account A has read (cached), so their reports' creates are
    // A's first requests.
    const slowSince = Date.now();
    rig.api.faults.set({ latencyMs: SLOW_MS, latencyIdentities: ['replica-a'] });
    const images = Array.from({ length: 8 }, (_, i) => `registry.example.com/burst/app-${i}:1`);
    images.forEach((image, i) => rig.api.seed.pod({ namespace: 'shop', name: `p${i}`, containers: [image] }));

    await a.waitForLine((l) => l.msg === 'stopped leading', 30_000);
    await b.waitForLine((l) => l.msg === 'became leader', 40_000);
    const reports = await eventually(
      () => {
        const done = rig.reports('shop').filter((r: ReportLike) => images.includes(r.spec?.image ?? '') && r.status?.phase === 'Scanned');
        return done.length === images.length ? done : undefined;
      },
      40_000,
      'every burst report Scanned by B',
    );
    expect(reports.map((r) => r.spec?.image).sort()).toEqual([...images].sort());
    // Past the moment every request A sent while slow would have been served.
    const servedBy = slowSince + SLOW_MS + 2_000;
    if (Date.now() < servedBy) await delay(servedBy - Date.now());

    const takeover = rig.api.requests({ identity: 'replica-b', resource: 'leases', verb: 'update', code: 200 })[0];
    expect(takeover).toBeDefined();
    const takenAt = takeover?.startMs ?? 0;
    const writesOfA = rig.api.requests({ identity: 'replica-a' }).filter((r) => isWrite(r) && r.resource !== 'leases');
    // The server acted on none of A's writes after the handover (not even to refuse one: without the
    // fence A's creates arrived 25 s late and met B's reports), and A sent none after it ...
    const handledLate = writesOfA.filter((r) => r.code !== 499 && (r.endMs ?? Number.MAX_SAFE_INTEGER) >= takenAt);
    expect(handledLate.map((r) => `${r.verb} ${r.path} ${r.code ?? 'pending'}`)).toEqual([]);
    expect(writesOfA.filter((r) => r.startMs >= takenAt)).toEqual([]);
    // ... although it had writes in flight when it lost the Lease: aborted, so the server dropped them.
    expect(writesOfA.filter((r) => r.code === 499).length).toBeGreaterThan(0);
    // The reports hold B's results only: each was written last by B.
    const lastWriter = new Map<string, string>();
    const burst = new Set(reports.map((r) => r.metadata?.name ?? ''));
    for (const r of rig.api.requests({ resource: 'imagescanreports', namespace: 'shop' })) {
      if (isWrite(r) && (r.code ?? 0) < 300 && burst.has(r.name ?? '')) lastWriter.set(r.name ?? '', r.identity);
    }
    expect([...lastWriter.keys()].sort()).toEqual([...burst].sort());
    expect(new Set(lastWriter.values())).toEqual(new Set(['replica-b']));
    expect(rig.api.objects.list(REPORTS, 'shop')).toHaveLength(images.length + 1);
  }, 120_000);
});
