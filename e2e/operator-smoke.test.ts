// Smoke test: the operator as its own process against the fake API server and the stub Trivy turns a
// running nginx pod into a Scanned ImageScanReport with the fixture's counts, visible to kubectl.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from './fake-apiserver/index.js';
import type { FakeApiServer } from './fake-apiserver/index.js';
import { eventually, getEndpoint, repoRoot, startOperatorProcess, stubScanInvocations, writeTrivyStubWrapper } from './operator-process.js';
import type { OperatorProcess } from './operator-process.js';

const run = promisify(execFile);
const fixture = path.resolve(repoRoot, 'test/fixtures/trivy/real-world/trustdsai-nginx-1.19.json');

/** Counts straight from the raw Trivy JSON, independent of the operator's parser. */
function expectedCounts(): { critical: number; high: number; medium: number; low: number; total: number; fixable: number } {
  const raw = JSON.parse(readFileSync(fixture, 'utf8')) as { Results?: { Vulnerabilities?: { Severity: string; FixedVersion?: string }[] }[] };
  const vulns = (raw.Results ?? []).flatMap((r) => r.Vulnerabilities ?? []);
  const count = (s: string) => vulns.filter((v) => v.Severity === s).length;
  return {
    critical: count('CRITICAL'),
    high: count('HIGH'),
    medium: count('MEDIUM'),
    low: count('LOW'),
    total: vulns.length,
    fixable: vulns.filter((v) => typeof v.FixedVersion === 'string' && v.FixedVersion !== '').length,
  };
}

interface ReportLike {
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: { digest?: string; image?: string };
  status?: {
    phase?: string;
    summary?: Record<string, number>;
    workloads?: { kind: string; name: string }[];
    team?: string;
    lastScanTime?: string;
    scanner?: { name?: string; version?: string; dbUpdatedAt?: string };
  };
}

describe('operator smoke (fake API server + stub Trivy)', () => {
  let api: FakeApiServer;
  let operator: OperatorProcess;
  let work: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-smoke-'));
    api = await startFakeApiServer({});
    api.seed.namespace('shop', { team: 'payments' });
    api.seed.node('node-1', { arch: 'arm64', os: 'linux' });
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'], replicas: 2, nodes: ['node-1'] });
    const wrapper = writeTrivyStubWrapper(work, { TRIVY_STUB_LOG: path.join(work, 'trivy.log') });
    operator = startOperatorProcess({
      args: [
        '--kubeconfig', api.kubeconfigPath,
        '--trivy-path', wrapper,
        '--trivy-cache-dir', path.join(work, 'cache'),
        '--leader-elect=false',
        '--metrics-address', '127.0.0.1:0',
      ],
      env: { TMPDIR: work },
    });
  });

  afterAll(async () => {
    await operator?.stop();
    await api?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('writes a Scanned report with the fixture counts, the workload and the team', async () => {
    const port = await operator.metricsPort();
    expect(port).toBeGreaterThan(0);
    const report = await eventually(() => {
      const reports = api.objects.list('imagescanreports.imagescan.dev', 'shop') as ReportLike[];
      const scanned = reports.find((r) => r.status?.phase === 'Scanned');
      return scanned;
    }, 30_000, 'a Scanned report');

    const expected = expectedCounts();
    expect(report.spec?.image).toBe('nginx:1.19');
    expect(report.status?.summary).toMatchObject(expected);
    expect(report.status?.workloads).toEqual([{ kind: 'Deployment', name: 'web' }]);
    expect(report.status?.team).toBe('payments');
    // The Trivy version of the report (the fixture's own) and the DB time are stamped on the result.
    const fixtureVersion = (JSON.parse(readFileSync(fixture, 'utf8')) as { Trivy?: { Version?: string } }).Trivy?.Version;
    expect(report.status?.scanner?.name).toBe('Trivy');
    expect(report.status?.scanner?.version).toBe(fixtureVersion);
    expect(report.status?.scanner?.dbUpdatedAt).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect(api.objects.count('imagescanreports.imagescan.dev')).toBe(1);

    // One Trivy scan for two pods of the same digest, for the node's platform.
    const finished = operator.lines.filter((l) => l.msg === 'scan finished');
    expect(finished).toHaveLength(1);
    expect(finished[0]?.total).toBe(expected.total);
    const invocations = stubScanInvocations(path.join(work, 'trivy.log'));
    expect(invocations).toHaveLength(1);
    const argv = invocations[0]?.argv ?? [];
    expect(argv[argv.indexOf('--platform') + 1]).toBe('linux/arm64');
    expect(argv.some((a) => a.startsWith('docker.io/library/nginx@sha256:'))).toBe(true);

    // The fewest writes: one create, and one status write with the result (the scan ends well within
    // the 30 s after which a Scanning status would be written first).
    await new Promise((resolve) => setTimeout(resolve, 500)); // let any redundant write show up
    const writes = api
      .requests()
      .filter((r) => r.resource === 'imagescanreports' && r.verb !== undefined && ['create', 'patch', 'update', 'delete'].includes(r.verb))
      .map((r) => `${r.verb}${r.subresource === undefined ? '' : `/${r.subresource}`}`);
    expect(writes).toEqual(['create', 'patch/status']);

    // The probe needs no token, also with secure metrics (the default).
    const ready = await getEndpoint(`${await operator.metricsUrl()}/readyz`);
    expect(ready.status).toBe(200);
  });

  it('kubectl get imagescanreports -A shows the report with its counts', async () => {
    const expected = expectedCounts();
    const { stdout } = await run('kubectl', ['--kubeconfig', api.kubeconfigPath, 'get', 'imagescanreports', '-A'], { cwd: repoRoot });
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/NAMESPACE\s+NAME\s+IMAGE\s+CRITICAL\s+HIGH\s+MEDIUM\s+LOW\s+FIXABLE\s+PHASE/);
    const row = lines.find((l) => l.startsWith('shop'));
    expect(row).toBeDefined();
    const cells = (row ?? '').split(/\s+/);
    expect(cells.slice(2, 9)).toEqual([
      'nginx:1.19',
      String(expected.critical),
      String(expected.high),
      String(expected.medium),
      String(expected.low),
      String(expected.fixable),
      'Scanned',
    ]);
  });

  it('kubectl get imagescanreports -o wide adds the digest and the team', async () => {
    const report = (api.objects.list('imagescanreports.imagescan.dev', 'shop') as ReportLike[])[0];
    const { stdout } = await run('kubectl', ['--kubeconfig', api.kubeconfigPath, 'get', 'isr', '-n', 'shop', '-o', 'wide'], { cwd: repoRoot });
    const [header, row] = stdout.trim().split('\n');
    expect(header).toMatch(/NAME\s+IMAGE\s+CRITICAL\s+HIGH\s+MEDIUM\s+LOW\s+FIXABLE\s+PHASE\s+POLICY\s+LAST SCAN\s+AGE\s+DIGEST\s+TEAM/);
    const cells = (row ?? '').trim().split(/\s+/);
    expect(cells.slice(-2)).toEqual([report?.spec?.digest, 'payments']);
  });

  it('a pod started while the operator runs has a Scanned report within 5 s plus the scan time', async () => {
    const logFile = path.join(work, 'trivy.log');
    const scansBefore = stubScanInvocations(logFile).length;
    const started = Date.now();
    api.seed.deployment({ namespace: 'shop', name: 'cache', containers: ['redis:7'], replicas: 1, nodes: ['node-1'] });
    const report = await eventually(
      () => (api.objects.list('imagescanreports.imagescan.dev', 'shop') as ReportLike[]).find((r) => r.spec?.image === 'redis:7' && r.status?.phase === 'Scanned'),
      30_000,
      'a Scanned report for redis:7',
    );
    const elapsedMs = Date.now() - started;
    // The scan's own time, from the stub's start and end records of that one run.
    const entries = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event?: string; pid?: number; t?: number; argv?: string[] });
    const scan = stubScanInvocations(logFile)[scansBefore];
    expect(scan?.argv.some((a) => a.startsWith('docker.io/library/redis@sha256:'))).toBe(true);
    const start = entries.find((e) => e.event === 'start' && e.pid === scan?.pid)?.t ?? 0;
    const end = entries.find((e) => e.event === 'end' && e.pid === scan?.pid)?.t ?? Infinity;
    expect(report.status?.workloads).toEqual([{ kind: 'Deployment', name: 'cache' }]);
    expect(elapsedMs).toBeLessThan(5_000 + (end - start));
  });

  it('stops cleanly on SIGTERM', async () => {
    const code = await operator.stop();
    expect(code).toBe(0);
    await operator.waitForLine((l) => l.msg === 'operator stopped', 1000);
  });
});
