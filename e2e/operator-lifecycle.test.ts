// The operator's life against the fake API server and the stub Trivy: grace-period deletion, scheduled
// rescans that keep the report, a kill -9 restart that rescans nothing fresh, private registries,
// Warning events, and convergence under API faults.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildDockerConfigJsonSecret, startFakeApiServer } from './fake-apiserver/index.js';
import type { FakeApiServer } from './fake-apiserver/index.js';
import { eventually, getEndpoint, startOperatorProcess, stubScanInvocations, trivyStubPath, writeTrivyStubWrapper } from './operator-process.js';
import type { OperatorProcess } from './operator-process.js';

interface ReportLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { digest?: string; image?: string };
  status?: { phase?: string; lastScanTime?: string; message?: string; workloads?: unknown[]; summary?: { total?: number } };
}

const REPORTS = 'imagescanreports.imagescan.dev';

describe('operator lifecycle', () => {
  let api: FakeApiServer;
  let work: string;
  const operators: OperatorProcess[] = [];

  function start(extra: string[] = []): OperatorProcess {
    const operator = startOperatorProcess({
      args: [
        '--kubeconfig', api.kubeconfigPath,
        '--trivy-path', writeTrivyStubWrapper(work, { TRIVY_STUB_LOG: path.join(work, 'trivy.log') }),
        '--trivy-cache-dir', path.join(work, 'cache'),
        '--leader-elect=false',
        '--metrics-address', '127.0.0.1:0',
        '--rescan-jitter', '0s',
        ...extra,
      ],
      env: { TMPDIR: work },
    });
    operators.push(operator);
    return operator;
  }

  function reports(namespace?: string): ReportLike[] {
    return api.objects.list(REPORTS, namespace) as ReportLike[];
  }

  function scanned(namespace: string): ReportLike | undefined {
    return reports(namespace).find((r) => r.status?.phase === 'Scanned');
  }

  beforeEach(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-life-'));
    api = await startFakeApiServer({ bookmarkIntervalMs: 500 });
  });

  afterEach(async () => {
    for (const operator of operators.splice(0)) await operator.kill9();
    await api.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('60 pods of one image across 3 namespaces: exactly one Trivy scan and 3 reports', async () => {
    for (const ns of ['a', 'b', 'c']) api.seed.deployment({ namespace: ns, name: 'web', containers: ['nginx:1.19'], replicas: 20 });
    start();
    await eventually(() => {
      const all = reports();
      return all.length === 3 && all.every((r) => r.status?.phase === 'Scanned') ? true : undefined;
    }, 30_000, 'three Scanned reports');
    expect(stubScanInvocations(path.join(work, 'trivy.log'))).toHaveLength(1);
    expect(reports().map((r) => r.metadata?.namespace).sort()).toEqual(['a', 'b', 'c']);
  });

  it('keeps the report for the grace period after the pod is deleted, then removes it', async () => {
    const web = api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'] });
    const operator = start(['--report-grace-period', '4s']);
    await eventually(() => scanned('shop'), 30_000, 'Scanned report');
    const deletedAt = Date.now();
    for (const pod of web.pods) api.objects.delete('pods', 'shop', pod.metadata?.name ?? '');
    // Still there during the grace period, listing no workload.
    const emptied = await eventually(() => reports('shop').find((r) => r.status?.workloads?.length === 0), 3000, 'workloads emptied');
    expect(emptied.status?.phase).toBe('Scanned');
    await eventually(() => (reports('shop').length === 0 ? true : undefined), 15_000, 'report removed');
    expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(3500);
    await operator.waitForLine((l) => l.msg === 'report deleted');
  });

  it('rescans on the schedule: lastScanTime moves and the report never disappears or loses its result', async () => {
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'] });
    start(['--rescan-schedule', '*/3 * * * * *']);
    const first = await eventually(() => scanned('shop'), 30_000, 'Scanned report');
    const firstScan = first.status?.lastScanTime;
    let sawGap = false;
    const later = await eventually(
      () => {
        const now = reports('shop');
        if (now.length !== 1 || now[0]?.status?.phase !== 'Scanned') sawGap = true;
        const t = now[0]?.status?.lastScanTime;
        return t !== undefined && t !== firstScan ? now[0] : undefined;
      },
      20_000,
      'a rescan',
    );
    expect(sawGap).toBe(false);
    expect(later.status?.summary?.total).toBe(first.status?.summary?.total);
  });

  it('after kill -9 and a restart, fresh digests are not scanned again and no report is duplicated', async () => {
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'], replicas: 3 });
    api.seed.deployment({ namespace: 'search', name: 'cache', containers: ['redis:7'] });
    const first = start();
    await eventually(() => (scanned('shop') !== undefined && scanned('search') !== undefined ? true : undefined), 30_000, 'both Scanned');
    await first.kill9();
    api.clearRequests();

    const second = start();
    await second.waitForLine((l) => l.msg === 'controller started');
    api.seed.deployment({ namespace: 'shop', name: 'api', containers: ['alpine:3.19'] });
    await eventually(() => reports('shop').find((r) => r.spec?.image === 'alpine:3.19' && r.status?.phase === 'Scanned'), 30_000, 'new image scanned');
    // Log lines arrive through a pipe: wait for the line rather than racing it.
    await second.waitForLine((l) => l.msg === 'scan finished' && l.image === 'docker.io/library/alpine');
    const finished = second.lines.filter((l) => l.msg === 'scan finished').map((l) => l.image);
    expect(finished).toEqual(['docker.io/library/alpine']);
    expect(reports().length).toBe(3);
    const creates = api.requests().filter((r) => r.resource === 'imagescanreports' && r.verb === 'create');
    expect(creates.map((r) => `${r.namespace ?? ''}/${String(r.code)}`)).toEqual(['shop/201']);
    // Reconciling the two existing, fresh reports after the restart wrote nothing at all.
    const otherWrites = api
      .requests()
      .filter((r) => r.resource === 'imagescanreports' && r.name !== undefined && !r.name.startsWith('alpine-') && r.verb !== 'get' && r.verb !== 'watch' && r.verb !== 'list');
    expect(otherWrites).toEqual([]);
  });

  it('scans a private image with the pull secret, and fails with registry and secret named when it is wrong', async () => {
    api.seed.objects([
      buildDockerConfigJsonSecret('team-a', 'good', { 'registry.example.com': { username: 'robot', password: 'stub-password' } }),
      buildDockerConfigJsonSecret('team-b', 'bad', { 'registry.example.com': { username: 'robot', password: 'wrong-password-123' } }),
    ]);
    api.seed.deployment({ namespace: 'team-a', name: 'app', containers: ['registry.example.com/private/app:1'], imagePullSecrets: ['good'] });
    api.seed.deployment({ namespace: 'team-b', name: 'app', containers: [{ image: 'registry.example.com/private/app:2', digest: `sha256:${'1'.repeat(64)}` }], imagePullSecrets: ['bad'] });
    const operator = start();
    await eventually(() => scanned('team-a'), 30_000, 'private image Scanned');
    const failed = await eventually(() => reports('team-b').find((r) => r.status?.phase === 'Failed'), 30_000, 'Failed report');
    expect(failed.status?.message).toContain('registry.example.com');
    expect(failed.status?.message).toContain('team-b/bad');
    expect(failed.status?.message).toContain('auth');
    const allOutput = JSON.stringify(operator.lines) + operator.rawOutput.join('\n');
    expect(allOutput).not.toContain('wrong-password-123');
    expect(allOutput).not.toContain('stub-password');
    // Each scan got a DOCKER_CONFIG holding only the image's registry.
    const scans = stubScanInvocations(path.join(work, 'trivy.log'));
    expect(scans.length).toBeGreaterThanOrEqual(2);
    for (const scan of scans) expect(scan.registries).toEqual(['registry.example.com']);
    const secretVerbs = new Set(api.requests().filter((r) => r.resource === 'secrets').map((r) => r.verb));
    expect([...secretVerbs]).toEqual(['get']);
  });

  it('puts one Warning event on the Deployment for fixable CRITICAL vulnerabilities', async () => {
    const web = api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'] });
    start(['--rescan-schedule', '*/2 * * * * *']);
    const report = await eventually(() => scanned('shop'), 30_000, 'Scanned report');
    const events = await eventually(() => {
      const found = api.objects.list('events', 'shop') as { reason?: string; message?: string; involvedObject?: { kind?: string; name?: string; uid?: string } }[];
      return found.length > 0 ? found : undefined;
    }, 10_000, 'an event');
    // Rescans with the same result add no event.
    await eventually(() => (reports('shop')[0]?.status?.lastScanTime !== report.status?.lastScanTime ? true : undefined), 15_000, 'a rescan');
    const after = api.objects.list('events', 'shop') as typeof events;
    expect(after).toHaveLength(1);
    expect(events[0]?.reason).toBe('FixableCriticalVulnerabilities');
    expect(events[0]?.involvedObject).toMatchObject({ kind: 'Deployment', name: 'web', uid: web.owner.metadata?.uid });
    expect(events[0]?.message).toContain(`kubectl -n shop get imagescanreport ${report.metadata?.name ?? ''} -o yaml`);
  });

  it('converges to exactly the right reports with 10% of requests failing, 409 storms on reports and watches dropped every few seconds', async () => {
    api.faults.set({ errorRate: 0.1, dropWatchesEveryMs: 2000, conflictRate: 0.3, conflictResources: ['imagescanreports.imagescan.dev'] });
    const images = ['nginx:1.19', 'redis:7', 'alpine:3.19'];
    for (const ns of ['a', 'b', 'c']) {
      images.forEach((image, i) => api.seed.deployment({ namespace: ns, name: `w${i}`, containers: [image], replicas: 2 }));
    }
    // Rescans every 4 s keep status patches coming, so the 409s do not hinge on the first nine alone
    // (0.7^9: one run in 25 saw none).
    start(['--rescan-schedule', '*/4 * * * * *']);
    const converged = () => {
      const all = reports();
      return all.length === 9 && all.every((r) => r.status?.phase === 'Scanned') ? true : undefined;
    };
    await eventually(converged, 60_000, 'nine Scanned reports');
    // It may converge before the first watch is dropped or the first 409: keep the faults on through
    // both, and stay right.
    await eventually(() => (api.faults.stats().droppedWatches > 0 ? true : undefined), 10_000, 'a dropped watch');
    await eventually(() => (api.faults.stats().injected409 > 0 ? true : undefined), 30_000, 'a 409 on a report write');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await eventually(converged, 30_000, 'still nine Scanned reports after dropped watches');
    const stats = api.faults.stats();
    expect(stats.injected429 + stats.injected500).toBeGreaterThan(0);
    expect(stats.droppedWatches).toBeGreaterThan(0);
    expect(stats.injected409).toBeGreaterThan(0);
    api.faults.clear();
    const names = reports().map((r) => `${r.metadata?.namespace}/${r.spec?.image}`).sort();
    expect(names).toEqual(['a', 'b', 'c'].flatMap((ns) => images.map((image) => `${ns}/${image}`)).sort());
  }, 90_000);
});

describe('operator with leader election', () => {
  let api: FakeApiServer;
  let work: string;
  const operators: OperatorProcess[] = [];

  beforeEach(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-lease-'));
    api = await startFakeApiServer({});
    api.seed.namespace('imagescan-system');
  });

  afterEach(async () => {
    for (const operator of operators.splice(0)) await operator.kill9();
    await api.stop();
    rmSync(work, { recursive: true, force: true });
  });

  function replica(identity: string): OperatorProcess {
    const operator = startOperatorProcess({
      args: [
        '--kubeconfig', api.kubeconfigFor(identity),
        '--identity', identity,
        '--trivy-path', trivyStubPath,
        '--trivy-cache-dir', path.join(work, `cache-${identity}`),
        '--leader-elect=true',
        '--metrics-address', '127.0.0.1:0',
      ],
      env: { TMPDIR: work },
    });
    operators.push(operator);
    return operator;
  }

  it('only the leader writes; after kill -9 of the leader the standby takes over within the lease duration', async () => {
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'] });
    const a = replica('replica-a');
    await a.waitForLine((l) => l.msg === 'became leader', 20_000);
    const b = replica('replica-b');
    await b.waitForLine((l) => l.msg === 'caches synced', 20_000);
    await eventually(() => (api.objects.list(REPORTS, 'shop') as ReportLike[]).find((r) => r.status?.phase === 'Scanned'), 30_000, 'Scanned report');
    // Only the leader exports per-image series; the standby reads the same reports and exports none.
    // Both replicas serve the secure /metrics (the standby's access reviews are not fenced like its writes).
    const imagesExported = async (o: OperatorProcess): Promise<number> => {
      const scrape = await getEndpoint(`${await o.metricsUrl()}/metrics`, { token: 'admin' });
      if (scrape.status !== 200) throw new Error(`/metrics answered ${scrape.status}: ${scrape.body}`);
      return scrape.body.match(/^imagescan_report_last_scan_timestamp_seconds\{/gm)?.length ?? 0;
    };
    await eventually(async () => ((await imagesExported(a)) === 1 ? true : undefined), 10_000, 'the leader exporting the image');
    expect(await imagesExported(b)).toBe(0);

    const killedAt = Date.now();
    await a.kill9();
    await b.waitForLine((l) => l.msg === 'became leader', 30_000);
    // The lease (15 s) runs out at most 15 s after the kill; the standby's next attempt comes within a
    // jittered retry period (2 s x up to 2.2); 3 s more for a 2-core machine busy with other suites.
    expect(Date.now() - killedAt).toBeLessThan(15_000 + 4_400 + 3_000);
    api.seed.deployment({ namespace: 'shop', name: 'api', containers: ['alpine:3.19'] });
    await eventually(() => (api.objects.list(REPORTS, 'shop') as ReportLike[]).find((r) => r.spec?.image === 'alpine:3.19' && r.status?.phase === 'Scanned'), 30_000, 'new image scanned by the new leader');
    await eventually(async () => ((await imagesExported(b)) === 2 ? true : undefined), 10_000, 'the new leader exporting both images');

    const writers = api
      .requests()
      .filter((r) => r.resource === 'imagescanreports' && r.verb !== undefined && ['create', 'patch', 'update', 'delete'].includes(r.verb));
    const lastWriteOfA = Math.max(...writers.filter((r) => r.identity === 'replica-a').map((r) => r.startMs));
    const firstWriteOfB = Math.min(...writers.filter((r) => r.identity === 'replica-b').map((r) => r.startMs));
    expect(lastWriteOfA).toBeLessThan(firstWriteOfB);
  }, 90_000);
});
