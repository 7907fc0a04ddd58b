// User story: the control plane is upgraded or restarts (same etcd data, newer resourceVersions; after
// an etcd compaction the operator's watch positions are gone). Whatever changed while it was down —
// a pod started, a pod deleted, a scan that finished while no write could go through — the reports end
// up right without anyone restarting the operator.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestFor } from '../fake-apiserver/index.js';
import { CLEAN_FIXTURE, eventually, startRig } from './harness.js';
import type { OperatorProcess, ReportLike, Rig } from './harness.js';

const GRACE = '3s';

describe('API server restarts', () => {
  let rig: Rig;
  let operator: OperatorProcess;

  const scannedImage = (ns: string, image: string): ReportLike | undefined =>
    rig.reports(ns).find((r) => r.spec?.image === image && r.status?.phase === 'Scanned');

  beforeAll(async () => {
    rig = await startRig();
    rig.setStubMap({
      default: CLEAN_FIXTURE,
      // Finishes while the API server is down, so its result must be written after the restart.
      [digestFor('ghcr.io/acme/slow-1:1')]: { fixture: CLEAN_FIXTURE, sleepMs: 1500 },
      [digestFor('ghcr.io/acme/slow-2:1')]: { fixture: CLEAN_FIXTURE, sleepMs: 1500 },
    });
    rig.api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['ghcr.io/acme/web:1'], replicas: 2 });
    rig.api.seed.deployment({ namespace: 'shop', name: 'old', containers: ['ghcr.io/acme/old-1:1'] });
    rig.api.seed.deployment({ namespace: 'shop', name: 'older', containers: ['ghcr.io/acme/old-2:1'] });
    operator = rig.start({ args: ['--report-grace-period', GRACE] });
    await eventually(() => (rig.reports('shop').filter((r) => r.status?.phase === 'Scanned').length === 3 ? true : undefined), 30_000, 'three Scanned reports');
  });

  afterAll(async () => {
    await rig?.close();
  });

  /** Takes the API server down with a scan in flight, changes the cluster, and brings it back. */
  async function restartWithChanges(round: 1 | 2, compact: boolean): Promise<number> {
    const slow = `ghcr.io/acme/slow-${round}:1`;
    rig.api.seed.pod({ namespace: 'shop', name: `slow-${round}`, containers: [slow] });
    // The report exists once its scan is requested (its status waits for the result).
    await eventually(() => rig.reports('shop').find((r) => r.spec?.image === slow), 15_000, `${slow} report`);

    await rig.api.stopServing();
    // While it is down: a new pod runs, the only pod of an image goes away.
    rig.api.seed.pod({ namespace: 'shop', name: `added-${round}`, containers: [`ghcr.io/acme/added-${round}:1`] });
    const gone = rig.api.objects.list('pods', 'shop').filter((p) => p.metadata?.labels?.app === (round === 1 ? 'old' : 'older'));
    expect(gone).toHaveLength(1);
    for (const pod of gone) rig.api.objects.delete('pods', 'shop', pod.metadata?.name ?? '');
    // Down past the slow scan's end (it cannot write its result).
    await eventually(() => (rig.stubEvents().some((e) => e.event === 'end' && e.mappingKey === digestFor(slow)) ? true : undefined), 10_000, 'slow scan finished');
    const before = Number(rig.api.resourceVersion());
    const requestsBefore = rig.api.requests().length;
    await rig.api.restart({ rvJump: 1000, compact, downMs: 500 });
    expect(Number(rig.api.resourceVersion())).toBeGreaterThanOrEqual(before + 1000);
    return requestsBefore;
  }

  async function expectConverged(round: 1 | 2): Promise<void> {
    await eventually(() => scannedImage('shop', `ghcr.io/acme/added-${round}:1`), 30_000, `report of the pod added while down (round ${round})`);
    await eventually(() => scannedImage('shop', `ghcr.io/acme/slow-${round}:1`), 30_000, `the scan that finished while down is written (round ${round})`);
    const deletedImage = round === 1 ? 'ghcr.io/acme/old-1:1' : 'ghcr.io/acme/old-2:1';
    await eventually(() => (rig.reports('shop').some((r) => r.spec?.image === deletedImage) ? undefined : true), 30_000, `report of the pod deleted while down removed after ${GRACE}`);
    // Exactly one report per image that still runs.
    const images = rig.reports('shop').map((r) => r.spec?.image).sort();
    expect(new Set(images).size).toBe(images.length);
    expect(rig.reports('shop').every((r) => r.status?.phase === 'Scanned')).toBe(true);
  }

  it('with the same data and newer resourceVersions: converges', async () => {
    await restartWithChanges(1, false);
    await expectConverged(1);
    expect(rig.reports('shop').map((r) => r.spec?.image).sort()).toEqual(['ghcr.io/acme/added-1:1', 'ghcr.io/acme/old-2:1', 'ghcr.io/acme/slow-1:1', 'ghcr.io/acme/web:1']);
    expect(operator.child.exitCode).toBeNull();
  }, 90_000);

  it('with the history compacted (old resourceVersions get 410): relists and converges', async () => {
    const sinceIndex = await restartWithChanges(2, true);
    await expectConverged(2);
    expect(rig.reports('shop').map((r) => r.spec?.image).sort()).toEqual(['ghcr.io/acme/added-1:1', 'ghcr.io/acme/added-2:1', 'ghcr.io/acme/slow-1:1', 'ghcr.io/acme/slow-2:1', 'ghcr.io/acme/web:1']);
    // The watches could not resume: pods and reports were listed again.
    const after = rig.api.requests().slice(sinceIndex);
    expect(after.some((r) => r.resource === 'pods' && r.verb === 'list')).toBe(true);
    expect(after.some((r) => r.resource === 'imagescanreports' && r.verb === 'list')).toBe(true);
    expect(operator.child.exitCode).toBeNull();
  }, 90_000);
});
