// TrivyRunner with an SbomCache, against the stub Trivy: the first scan of a digest pulls the image
// and keeps its SBOM, every later scan reads the SBOM and asks no registry.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createStubWorkspace, failureOf, registryPulls, stubRunnerOptions, STUB_DEFAULT_MAP, testDigest } from '../../test/trivy-stub/stub-harness.js';
import type { StubWorkspace } from '../../test/trivy-stub/stub-harness.js';
import { SbomCache } from './sbom-cache.js';
import { TrivyRunner } from './trivy-runner.js';
import type { ScanTarget, TrivyRunnerOptions } from './trivy-runner.js';

const workspaces: StubWorkspace[] = [];
afterEach(() => {
  for (const ws of workspaces.splice(0)) ws.cleanup();
});

async function setup(opts: Partial<TrivyRunnerOptions> = {}, env: Record<string, string> = {}, map: Record<string, unknown> = {}) {
  const ws = createStubWorkspace(map, env);
  workspaces.push(ws);
  const logLines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
  const sbomDir = path.join(ws.cacheDir, 'imagescan-sbom');
  const sbomCache = new SbomCache({ dir: sbomDir, logger });
  const runner = new TrivyRunner(stubRunnerOptions(ws, logger, { sbomCache, ...opts }));
  if (opts.server === undefined) await runner.downloadDatabases();
  const pulls = () => registryPulls(ws.log()).length;
  const runsOf = (command: string) => ws.invocations().filter((i) => i.start.argv?.[0] === command);
  return { ws, runner, sbomDir, sbomCache, logLines, pulls, runsOf };
}

const nginx: ScanTarget = { repository: 'docker.io/library/nginx', digest: testDigest(1), platform: 'linux/arm64' };
const nginxStem = `sha256-${'0'.repeat(63)}1.linux-arm64`;

describe('TrivyRunner with an SBOM cache', () => {
  it('pulls once with --list-all-pkgs, keeps the SBOM by convert, then rescans it with the exact sbom flags', async () => {
    const { ws, runner, sbomDir, pulls, runsOf } = await setup();
    const first = await runner.scan(nginx);

    const image = runsOf('image').find((i) => !i.start.argv?.includes('--download-db-only') && !i.start.argv?.includes('--download-java-db-only'));
    const imageArgv = image?.start.argv ?? [];
    const report = imageArgv[imageArgv.indexOf('--output') + 1] ?? '';
    expect(imageArgv).toEqual([
      'image', '--format', 'json', '--output', report, '--scanners', 'vuln', '--image-src', 'remote', '--platform', 'linux/arm64',
      '--cache-dir', ws.cacheDir, '--cache-backend', 'memory', '--skip-db-update', '--skip-java-db-update',
      '--skip-version-check', '--disable-telemetry', '--quiet', '--timeout', '20s', '--list-all-pkgs', `docker.io/library/nginx@${nginx.digest}`,
    ]);
    const convertArgv = runsOf('convert')[0]?.start.argv ?? [];
    const staged = convertArgv[convertArgv.indexOf('--output') + 1] ?? '';
    const policy = convertArgv[convertArgv.indexOf('--ignore-policy') + 1] ?? '';
    expect(convertArgv).toEqual(['convert', '--format', 'cyclonedx', '--output', staged, '--ignore-policy', policy, '--quiet', '--timeout', '20s', report]);
    // Written beside its final name (same volume, so the rename is atomic), the policy in the scan's private folder.
    expect(path.dirname(staged)).toBe(sbomDir);
    expect(path.dirname(policy)).toBe(path.dirname(report));
    expect(readdirSync(sbomDir).sort()).toEqual([`${nginxStem}.cdx.json`, `${nginxStem}.meta.json`]);
    expect(pulls()).toBe(1);

    const second = await runner.scan(nginx);
    expect(pulls()).toBe(1);
    const sbomArgv = runsOf('sbom')[0]?.start.argv ?? [];
    const output = sbomArgv[sbomArgv.indexOf('--output') + 1] ?? '';
    expect(sbomArgv).toEqual([
      'sbom', '--format', 'json', '--output', output, '--scanners', 'vuln', '--cache-dir', ws.cacheDir, '--cache-backend', 'memory',
      '--skip-db-update', '--skip-java-db-update', '--skip-version-check', '--disable-telemetry', '--quiet', '--timeout', '20s',
      '--list-all-pkgs=false', path.join(sbomDir, `${nginxStem}.cdx.json`),
    ]);
    expect(second).toEqual(first);
    expect(second.vulnerabilities[0]?.target).toBe('nginx:1.19 (debian 10.9)');
    expect(ws.leftovers()).toEqual([]);
  });

  it('rescans every mapped fixture from its SBOM to the same result as the first scan, with filters applied', async () => {
    const repositories = Object.keys(JSON.parse(readFileSync(STUB_DEFAULT_MAP, 'utf8')) as Record<string, unknown>).filter((k) => k.includes('/') && !k.startsWith('registry.example.com'));
    const { runner, pulls, runsOf } = await setup({ severities: ['CRITICAL', 'HIGH', 'MEDIUM'], ignoreUnfixed: true });
    for (const [i, repository] of repositories.entries()) {
      const target: ScanTarget = { repository, digest: testDigest(100 + i) };
      const first = await runner.scan(target);
      const rescan = await runner.scan(target);
      expect(rescan, repository).toEqual(first);
      expect(first.vulnerabilities.every((v) => v.fixedVersion !== undefined && v.severity !== 'LOW'), repository).toBe(true);
    }
    expect(pulls()).toBe(repositories.length);
    expect(runsOf('sbom').every((i) => i.start.argv?.includes('--ignore-unfixed') && i.start.argv.includes('CRITICAL,HIGH,MEDIUM'))).toBe(true);
  });

  it('replaces an SBOM that Trivy cannot read with one registry scan, then uses the new one', async () => {
    const { runner, sbomDir, pulls, logLines } = await setup();
    const first = await runner.scan(nginx);
    writeFileSync(path.join(sbomDir, `${nginxStem}.cdx.json`), 'not an SBOM');

    expect(await runner.scan(nginx)).toEqual(first);
    expect(pulls()).toBe(2);
    expect(logLines.some((l) => l.includes('the kept SBOM cannot be read'))).toBe(true);
    expect(await runner.scan(nginx)).toEqual(first);
    expect(pulls()).toBe(2);
  });

  it('pulls again when the SBOM is gone, its meta is corrupt, or another Trivy version wrote it', async () => {
    let version = '0.74.0';
    const { runner, sbomDir, pulls } = await setup({ scannerInfo: () => ({ version }) });
    await runner.scan(nginx);
    await runner.scan(nginx);
    expect(pulls()).toBe(1);

    writeFileSync(path.join(sbomDir, `${nginxStem}.meta.json`), '{');
    await runner.scan(nginx);
    expect(pulls()).toBe(2);

    version = '0.75.0';
    await runner.scan(nginx);
    expect(pulls()).toBe(3);
    await runner.scan(nginx);
    expect(pulls()).toBe(3);

    for (const name of readdirSync(sbomDir)) writeFileSync(path.join(sbomDir, name), '');
    await runner.scan(nginx);
    expect(pulls()).toBe(4);
  });

  it('rescans a digest from its first scan SBOM whichever platform asks next, and keeps the SBOM per platform', async () => {
    const { runner, pulls, sbomDir } = await setup();
    const first = await runner.scan(nginx);
    expect(await runner.scan({ ...nginx, platform: 'linux/amd64' })).toEqual(first);
    expect(await runner.scan({ repository: nginx.repository, digest: nginx.digest })).toEqual(first);
    expect(pulls()).toBe(1);
    // An SBOM only for the other platform is no entry for this one once this one has its own.
    rmSync(sbomDir, { recursive: true });
    await runner.scan({ ...nginx, platform: 'linux/amd64' });
    await runner.scan(nginx);
    expect(pulls()).toBe(2);
    expect(readdirSync(sbomDir).filter((n) => n.endsWith('.cdx.json'))).toEqual([`sha256-${'0'.repeat(63)}1.linux-amd64.cdx.json`]);
  });

  it('still returns the scan when the SBOM cannot be kept, and pulls again next time', async () => {
    const { ws, runner, sbomDir, pulls, logLines } = await setup();
    mkdirSync(path.dirname(sbomDir), { recursive: true });
    writeFileSync(sbomDir, 'a file where the folder should be');
    const first = await runner.scan(nginx);
    expect(first.summary.total).toBeGreaterThan(0);
    await runner.scan(nginx);
    expect(pulls()).toBe(2);
    expect(logLines.some((l) => l.includes('could not keep the SBOM'))).toBe(true);
    expect(ws.leftovers()).toEqual([]);
  });

  it('fails an SBOM scan that times out like any scan, and keeps the SBOM for the next attempt', async () => {
    const { runner, sbomDir, pulls } = await setup({ timeoutMs: 4_000 }, { TRIVY_STUB_SBOM_SLEEP_MS: '20000' });
    await runner.scan(nginx);
    const failure = await failureOf(runner.scan(nginx));
    expect(failure.reason).toBe('timeout');
    expect(pulls()).toBe(1);
    expect(existsSync(path.join(sbomDir, `${nginxStem}.cdx.json`))).toBe(true);
  });

  it('in client/server mode rescans the SBOM through the server, the token only in the environment', async () => {
    const { runner, runsOf, pulls } = await setup({ server: 'http://trivy-server:4954', serverToken: 'server-secret' });
    await runner.scan(nginx);
    await runner.scan(nginx);
    expect(pulls()).toBe(1);
    const sbom = runsOf('sbom')[0];
    const argv = sbom?.start.argv ?? [];
    expect(argv.slice(7, 13)).toEqual(['--cache-dir', argv[8], '--server', 'http://trivy-server:4954', '--skip-java-db-update', '--skip-version-check']);
    expect(argv.join(' ')).not.toContain('server-secret');
    expect(sbom?.start.env).toEqual(['TRIVY_TOKEN']);
  });
});

describe('TrivyRunner with scan slots: a first scan\'s report is converted when no scan waits for a slot', () => {
  // A repository whose image runs take 1.5 s, to keep the single slot busy while others wait.
  const slowMap = { 'docker.io/library/slow': { fixture: '../fixtures/trivy/real-world/trustdsai-nginx-1.19.json', sleepMs: 1500 } };
  const slow: ScanTarget = { repository: 'docker.io/library/slow', digest: testDigest(9) };
  const redis: ScanTarget = { repository: 'docker.io/library/redis', digest: testDigest(2) };
  const order = (runsOf: (command: string) => { start: { t: number; argv?: string[] } }[]) =>
    [...runsOf('image').filter((i) => !(i.start.argv ?? []).some((a) => a.startsWith('--download-'))), ...runsOf('convert'), ...runsOf('sbom')]
      .sort((a, b) => a.start.t - b.start.t)
      .map((i) => `${i.start.argv?.[0] ?? ''} ${(i.start.argv?.at(-1) ?? '').replace(/.*@sha256:0*/, '').replace(/.*\/sha256-0*(\d+).*/, '$1')}`);

  it('holds first scans\' reports on the cache volume until asked, then converts each behind any scan that waits for the slot', async () => {
    const { runner, sbomDir, pulls, runsOf } = await setup({ scanSlots: 1 }, {}, slowMap);
    const [first] = await Promise.all([runner.scan(slow), runner.scan(nginx)]);
    expect(readdirSync(sbomDir).filter((n) => n.endsWith('.report.json'))).toHaveLength(2);
    expect(runsOf('convert')).toHaveLength(0);
    const busy = runner.scan({ ...slow, digest: testDigest(8) });
    await expect.poll(() => order(runsOf).length).toBe(3);
    runner.convertHeldReports();
    // A scan asked for after the conversions still goes first.
    await Promise.all([busy, runner.scan(redis)]);
    // Their own reports are held until asked for again.
    await expect.poll(() => readdirSync(sbomDir).filter((n) => n.endsWith('.report.json')).length, { timeout: 10_000 }).toBe(2);
    expect(runsOf('convert')).toHaveLength(2);
    runner.convertHeldReports();
    await expect.poll(() => runsOf('convert').length, { timeout: 10_000 }).toBe(4);
    expect(order(runsOf)).toEqual(['image 9', 'image 1', 'image 8', 'image 2', 'convert 9', 'convert 1', 'convert 8', 'convert 2']);
    await expect.poll(() => readdirSync(sbomDir).filter((n) => n.includes('.report')).length).toBe(0);
    expect(await runner.scan(slow)).toEqual(first);
    expect(pulls()).toBe(4);
    expect(runsOf('sbom')).toHaveLength(1);
  });

  it('converts a held report ahead of the waiting scans when its digest is scanned again, without a pull', async () => {
    const { runner, pulls, runsOf } = await setup({ scanSlots: 1 }, {}, slowMap);
    const first = await runner.scan(nginx);
    const busy = runner.scan(slow);
    const queued = runner.scan(redis);
    await expect.poll(() => order(runsOf).length).toBeGreaterThanOrEqual(2);
    runner.convertHeldReports();
    const rescan = await runner.scan(nginx);
    await Promise.all([busy, queued]);
    expect(rescan).toEqual(first);
    expect(pulls()).toBe(3);
    const runs = order(runsOf);
    // The rescan's conversion went ahead of redis's image scan, which had waited longer.
    expect(runs.indexOf('convert 1')).toBeLessThan(runs.indexOf('image 2'));
    expect(runs.indexOf('sbom 1')).toBeGreaterThan(runs.indexOf('convert 1'));
  });

  it('leaves held reports to the next process when stopped, which converts them at start and pulls nothing more', async () => {
    const { ws, runner, sbomCache, sbomDir, pulls, runsOf, logLines } = await setup({ scanSlots: 1 }, {}, slowMap);
    const busy = runner.scan(slow);
    await expect.poll(() => order(runsOf).length).toBe(1);
    const first = await runner.scan(nginx);
    // nginx's conversion waits behind the slow scan when the runner stops.
    runner.convertHeldReports();
    await runner.stopHeldReports();
    await busy;
    const held = await sbomCache.held();
    expect(held.map((h) => h.meta.digest).sort()).toEqual([nginx.digest, slow.digest]);
    expect(runsOf('convert')).toHaveLength(0);

    const next = new TrivyRunner(stubRunnerOptions(ws, pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) }), { sbomCache: new SbomCache({ dir: sbomDir, logger: pino({ level: 'silent' }) }), scanSlots: 1 }));
    expect(await next.resumeHeldReports()).toBe(2);
    expect(await next.scan(nginx)).toEqual(first);
    next.convertHeldReports();
    await expect.poll(() => readdirSync(sbomDir).filter((n) => n.includes('.report')).length).toBe(0);
    await next.scan(slow);
    expect(pulls()).toBe(2);
  });

  it('converts held reports at most a slot\'s worth at a time, until none is left', async () => {
    const { ws, runner, sbomDir, runsOf } = await setup({ scanSlots: 1 });
    for (const n of [1, 2, 3, 4]) await runner.scan({ ...nginx, digest: testDigest(n) });
    expect(readdirSync(sbomDir).filter((n) => n.endsWith('.report.json'))).toHaveLength(4);
    const conversionFolders = () => readdirSync(ws.tmpDir).filter((n) => n.startsWith('imagescan-')).length;
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, conversionFolders())), 1);
    runner.convertHeldReports();
    most = Math.max(most, conversionFolders());
    await expect.poll(() => readdirSync(sbomDir).filter((n) => n.includes('.report')).length, { timeout: 10_000 }).toBe(0);
    clearInterval(sampler);
    expect(runsOf('convert')).toHaveLength(4);
    // One conversion asked for (and its folder made) at a time, not all four waiting for the slot.
    expect(most).toBe(1);
  });

  it('converts at once, in the slot, once the held reports reach their byte limit', async () => {
    const { ws, runner, sbomDir, runsOf } = await setup({ scanSlots: 1, maxHeldReportBytes: 1 }, {}, slowMap);
    const busy = runner.scan(slow);
    await expect.poll(() => order(runsOf).length).toBe(1);
    const scans = Promise.all([runner.scan(nginx), runner.scan(redis)]);
    await Promise.all([busy, scans]);
    runner.convertHeldReports();
    await expect.poll(() => runsOf('convert').length).toBe(3);
    // The slow scan's report was held (nothing was yet), which reached the limit: nginx's and redis's
    // were converted from their scan's own folder as their scans ended, the held one last.
    const inputs = runsOf('convert').sort((a, b) => a.start.t - b.start.t).map((i) => i.start.argv?.at(-1) ?? '');
    expect(inputs.slice(0, 2).every((input) => input.startsWith(ws.tmpDir))).toBe(true);
    expect(inputs[2]).toBe(path.join(sbomDir, `sha256-${'0'.repeat(63)}9.report.json`));
    await expect.poll(() => readdirSync(sbomDir).filter((n) => n.includes('.report')).length).toBe(0);
  });
});
