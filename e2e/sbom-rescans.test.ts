// Rescans without registry traffic: the operator process against the fake API server and the stub
// Trivy, whose every DB download is a new DB version (TRIVY_STUB_DB_UPDATED_AT=now). After the cold
// start, DB updates and the schedule rescan from the kept SBOMs: no registry pull, the same reports,
// one rescan per DB version. A lost SBOM folder costs one pull per digest.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SBOM_FOLDER } from '../src/operator.js';
import { pairInvocations, registryPulls } from '../test/trivy-stub/stub-harness.js';
import type { StubLogLine } from '../test/trivy-stub/stub-harness.js';
import { startFakeApiServer } from './fake-apiserver/index.js';
import type { FakeApiServer } from './fake-apiserver/index.js';
import { eventually, startOperatorProcess, writeTrivyStubWrapper } from './operator-process.js';
import type { OperatorProcess } from './operator-process.js';

interface ReportLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { digest?: string; image?: string };
  status?: { phase?: string; lastScanTime?: string; summary?: unknown; vulnerabilities?: unknown[]; fixes?: unknown[] };
}

const REPORTS = 'imagescanreports.imagescan.dev';
const IMAGES = ['nginx:1.19', 'redis:7', 'alpine:3.19'];

describe('rescans from kept SBOMs', () => {
  let api: FakeApiServer;
  let work: string;
  let operator: OperatorProcess | undefined;
  const logFile = () => path.join(work, 'trivy.log');
  const stubLog = (): StubLogLine[] =>
    existsSync(logFile())
      ? readFileSync(logFile(), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as StubLogLine)
      : [];
  const runs = (command: string) => pairInvocations(stubLog()).filter((i) => i.start.argv?.[0] === command && i.end?.exitCode === 0);
  const dbDownloads = () => runs('image').filter((i) => i.start.argv?.includes('--download-db-only'));
  const reports = () => api.objects.list(REPORTS) as ReportLike[];
  /** What a developer reads in a report, without the times that a rescan moves. */
  const content = (r: ReportLike) => ({ name: r.metadata?.name, summary: r.status?.summary, vulnerabilities: r.status?.vulnerabilities, fixes: r.status?.fixes });

  beforeEach(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-sbom-'));
    api = await startFakeApiServer({ bookmarkIntervalMs: 500 });
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19', 'redis:7'], replicas: 2 });
    api.seed.deployment({ namespace: 'search', name: 'api', containers: ['nginx:1.19', 'alpine:3.19'] });
    operator = startOperatorProcess({
      args: [
        '--kubeconfig', api.kubeconfigPath,
        '--trivy-path', writeTrivyStubWrapper(work, { TRIVY_STUB_LOG: logFile(), TRIVY_STUB_DB_UPDATED_AT: 'now' }),
        '--trivy-cache-dir', path.join(work, 'cache'),
        '--leader-elect=false',
        '--metrics-address', '127.0.0.1:0',
        '--rescan-jitter', '0s',
        // A DB version every 3 s and a schedule every 6 s, as in production 6 h and 12 h: the schedule
        // fires in a DB window whose update already rescanned everything, and must add nothing.
        '--trivy-db-refresh', '3s',
        '--rescan-schedule', '*/6 * * * * *',
      ],
      env: { TMPDIR: work },
    });
  });

  afterEach(async () => {
    await operator?.kill9();
    await api.stop();
    rmSync(work, { recursive: true, force: true });
  });

  async function allScanned(): Promise<ReportLike[]> {
    return eventually(() => {
      const all = reports();
      return all.length === 4 && all.every((r) => r.status?.phase === 'Scanned') ? all : undefined;
    }, 30_000, 'four Scanned reports');
  }

  /** Waits until `n` more DB versions were downloaded and every digest was rescanned after the last. */
  async function rescannedAfterDbVersions(n: number): Promise<void> {
    const target = dbDownloads().length + n;
    await eventually(() => (dbDownloads().length >= target ? true : undefined), 30_000, `${n} more DB versions`);
    const last = dbDownloads()[target - 1]?.end?.t ?? 0;
    await eventually(() => (reports().every((r) => Date.parse(r.status?.lastScanTime ?? '') >= Math.floor(last / 1000) * 1000) ? true : undefined), 30_000, 'every report rescanned');
  }

  it('after the cold start, DB updates and the schedule rescan with no registry pull and the same reports, once per DB version', async () => {
    const first = (await allScanned()).map(content).sort((a, b) => String(a.name).localeCompare(String(b.name)));
    expect(registryPulls(stubLog())).toHaveLength(IMAGES.length);
    // Each first scan's report is held and converted to its SBOM once no scan waits, so shortly after.
    const files = () => readdirSync(path.join(work, 'cache', SBOM_FOLDER));
    const converted = () => files().filter((n) => n.endsWith('.cdx.json')).length === IMAGES.length && !files().some((n) => n.includes('.report'));
    await eventually(() => (converted() ? true : undefined), 10_000, 'an SBOM per digest and no report held');

    await rescannedAfterDbVersions(3);
    expect(registryPulls(stubLog())).toHaveLength(IMAGES.length);
    const rescans = runs('sbom');
    expect(rescans.length).toBeGreaterThanOrEqual(3 * IMAGES.length);
    // At most one rescan of each digest per DB version downloaded after its first scan (the schedule
    // fired at least once and added none).
    const versions = dbDownloads().length - 1;
    const perDigest = new Map<string, number>();
    for (const r of rescans) {
      const sbom = r.start.argv?.at(-1) ?? '';
      perDigest.set(sbom, (perDigest.get(sbom) ?? 0) + 1);
    }
    expect(perDigest.size).toBe(IMAGES.length);
    for (const [sbom, count] of perDigest) expect(count, sbom).toBeLessThanOrEqual(versions);

    // The schedule did fire after the cold start (what it marks in the moment between a DB download and
    // that update's own marks is the same rescan: the counts above are of scans).
    const coldStartDone = runs('image').filter((i) => !i.start.argv?.some((a) => a.startsWith('--download'))).at(-1)?.end?.t ?? 0;
    const scheduled = (operator?.lines ?? []).filter((l) => l.msg === 'rescan scheduled' && l.reason === 'schedule' && Date.parse(String(l.time)) > coldStartDone + 1000);
    expect(scheduled.length).toBeGreaterThanOrEqual(1);

    const later = reports().map(content).sort((a, b) => String(a.name).localeCompare(String(b.name)));
    expect(later).toEqual(first);
  }, 120_000);

  it('a lost SBOM folder costs one registry pull per digest, then none again', async () => {
    await allScanned();
    const pullsBefore = registryPulls(stubLog()).length;
    rmSync(path.join(work, 'cache', SBOM_FOLDER), { recursive: true, force: true });

    await rescannedAfterDbVersions(1);
    await rescannedAfterDbVersions(2);
    const pulled = registryPulls(stubLog()).slice(pullsBefore).map((l) => l.target);
    expect(pulled).toHaveLength(IMAGES.length);
    expect(new Set(pulled).size).toBe(IMAGES.length);
  }, 120_000);
});
