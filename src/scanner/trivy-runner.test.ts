import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createStubWorkspace, failureOf, stubRunnerOptions, FIXTURES_DIR, isAlive, testDigest } from '../../test/trivy-stub/stub-harness.js';
import type { StubWorkspace } from '../../test/trivy-stub/stub-harness.js';
import { residentBytesOf } from './child-memory.js';
import { TrivyRunner } from './trivy-runner.js';
import type { ScanTarget, TrivyRunnerOptions } from './trivy-runner.js';

const workspaces: StubWorkspace[] = [];
afterEach(() => {
  for (const ws of workspaces.splice(0)) ws.cleanup();
});

function setup(map: Record<string, unknown> = {}, env: Record<string, string> = {}, opts: Partial<TrivyRunnerOptions> = {}) {
  const ws = createStubWorkspace(map, env);
  workspaces.push(ws);
  const logLines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
  const runner = new TrivyRunner(stubRunnerOptions(ws, logger, { killGraceMs: 300, ...opts }));
  return { ws, runner, logLines };
}

type RawDoc = { Results?: { Vulnerabilities?: { Severity: string; FixedVersion?: string }[] }[] };
function rawCounts(file: string, keep: (v: { Severity: string; FixedVersion?: string }) => boolean = () => true) {
  const doc = JSON.parse(readFileSync(path.join(FIXTURES_DIR, file), 'utf8')) as RawDoc;
  const vulns = (doc.Results ?? []).flatMap((r) => r.Vulnerabilities ?? []).filter(keep);
  const n = (s: string) => vulns.filter((v) => v.Severity === s).length;
  return { critical: n('CRITICAL'), high: n('HIGH'), medium: n('MEDIUM'), low: n('LOW'), unknown: n('UNKNOWN'), total: vulns.length, fixable: vulns.filter((v) => v.FixedVersion).length };
}

const nginx: ScanTarget = { repository: 'docker.io/library/nginx', digest: testDigest(1) };

describe('TrivyRunner.scan', () => {
  it('scans repository@digest with the exact flag set and returns the report counts', async () => {
    const { ws, runner } = setup();
    await runner.downloadDatabases();
    const result = await runner.scan({ ...nginx, platform: 'linux/arm64' });

    expect(result.summary).toEqual(rawCounts('real-world/trustdsai-nginx-1.19.json'));
    expect(result.scanner.version).toBe('0.69.3');
    const scan = ws.invocations().find((i) => i.start.argv?.includes(`docker.io/library/nginx@${nginx.digest}`));
    const argv = scan?.start.argv ?? [];
    const output = argv[argv.indexOf('--output') + 1] ?? '';
    expect(argv).toEqual([
      'image', '--format', 'json', '--output', output, '--scanners', 'vuln', '--image-src', 'remote', '--platform', 'linux/arm64',
      '--cache-dir', ws.cacheDir, '--cache-backend', 'memory', '--skip-db-update', '--skip-java-db-update',
      '--skip-version-check', '--disable-telemetry', '--quiet', '--timeout', '20s', '--list-all-pkgs=false', `docker.io/library/nginx@${nginx.digest}`,
    ]);
    expect(path.dirname(path.dirname(output))).toBe(ws.tmpDir);
    expect(scan?.end?.exitCode).toBe(0);
    expect(scan?.end?.dbDownloaded).toBeUndefined();
    expect(ws.leftovers()).toEqual([]);
  });

  it('gives the child only an allow-listed environment', async () => {
    const { ws, runner } = setup();
    process.env.IMAGESCAN_TEST_SECRET = 'must-not-leak';
    try {
      await runner.downloadDatabases();
      await runner.scan(nginx);
    } finally {
      delete process.env.IMAGESCAN_TEST_SECRET;
    }
    for (const inv of ws.invocations()) {
      expect(inv.start.envNames).toEqual(['HOME', 'PATH', 'TMPDIR']);
      expect(inv.start.env).toEqual([]);
    }
  });

  it('bounds every Trivy child with GOMEMLIMIT, in whole MiB, and adds nothing else', async () => {
    const { ws, runner } = setup({}, {}, { memoryLimitBytes: 768 * 2 ** 20 + 12_345 });
    await runner.downloadDatabases();
    await runner.scan(nginx);
    const invocations = ws.invocations();
    expect(invocations.length).toBeGreaterThanOrEqual(3);
    for (const inv of invocations) {
      expect(inv.start.gomemlimit).toBe('768MiB');
      expect(inv.start.envNames).toEqual(['GOMEMLIMIT', 'HOME', 'PATH', 'TMPDIR']);
    }
  });

  it('applies the severity filter and ignore-unfixed', async () => {
    const { ws, runner } = setup({}, {}, { severities: ['CRITICAL', 'HIGH'], ignoreUnfixed: true });
    await runner.downloadDatabases();
    const result = await runner.scan(nginx);
    expect(result.summary).toEqual(rawCounts('real-world/trustdsai-nginx-1.19.json', (v) => ['CRITICAL', 'HIGH'].includes(v.Severity) && Boolean(v.FixedVersion)));
    const argv = ws.invocations().at(-1)?.start.argv ?? [];
    expect(argv.slice(argv.indexOf('--severity'), argv.indexOf('--severity') + 3)).toEqual(['--severity', 'CRITICAL,HIGH', '--ignore-unfixed']);
  });

  it('stamps the DB time from scannerInfo', async () => {
    const { runner } = setup({}, {}, { scannerInfo: () => ({ version: '9.9.9', dbUpdatedAt: '2026-11-26T12:00:00Z' }) });
    await runner.downloadDatabases();
    const result = await runner.scan({ repository: 'docker.io/library/redis', digest: testDigest(2) });
    // The redis report predates Trivy.Version, so the CLI's version is used.
    expect(result.scanner).toEqual({ name: 'Trivy', version: '9.9.9', dbUpdatedAt: '2026-11-26T12:00:00Z' });
  });

  describe('registry credentials', () => {
    const privateImage: ScanTarget = { repository: 'registry.example.com/private/app', digest: testDigest(3) };
    const creds = { registry: 'registry.example.com', auth: { username: 'robot', password: 'stub-password' }, source: 'team-a/pull-secret' };

    it('reach Trivy only through a private DOCKER_CONFIG holding just that registry', async () => {
      const { ws, runner, logLines } = setup();
      await runner.downloadDatabases();
      const result = await runner.scan({ ...privateImage, credentials: creds });
      expect(result.summary.total).toBe(rawCounts('real-world/trustdsai-alpine-3.19.json').total);

      const scan = ws.invocations().at(-1);
      expect(scan?.start.env).toEqual(['DOCKER_CONFIG']);
      expect(scan?.start.registries).toEqual(['registry.example.com']);
      expect(scan?.start.dockerConfigKeys).toEqual([]);
      expect(scan?.start.dockerConfigMode).toBe('600');
      expect(scan?.start.dockerConfigDirMode).toBe('700');
      const everything = JSON.stringify(ws.log()) + logLines.join('');
      for (const secret of ['stub-password', Buffer.from('robot:stub-password').toString('base64')]) expect(everything).not.toContain(secret);
      expect(logLines.join('')).toContain('team-a/pull-secret');
      expect(ws.leftovers()).toEqual([]);
    });

    it('can keep the DOCKER_CONFIG apart from the scan\'s scratch folder (a memory-backed volume in the Deployment)', async () => {
      const { ws } = setup({ 'registry.example.com/private/app': { fixture: '../fixtures/trivy/real-world/trustdsai-alpine-3.19.json', requireAuth: { username: 'robot', password: 'stub-password' }, sleepMs: 1500 } });
      const credentialsDir = mkdtempSync(path.join(ws.dir, 'credentials-'));
      const separate = new TrivyRunner(stubRunnerOptions(ws, pino({ level: 'silent' }), { credentialsDir }));
      // A folder a killed operator left behind (its pid is gone): swept before the first scan.
      mkdirSync(path.join(credentialsDir, 'imagescan-2147483646-1-dead'));
      await separate.downloadDatabases();
      const scanning = separate.scan({ ...privateImage, credentials: creds });
      await vi.waitFor(() => expect(ws.invocations().filter((i) => i.start.argv?.includes('--format'))).toHaveLength(1), { timeout: 5_000 });
      // While Trivy runs: the credentials are in credentialsDir, the scratch folder holds none.
      const held = readdirSync(credentialsDir);
      expect(held).toHaveLength(1);
      expect(held[0]).toMatch(new RegExp(`^imagescan-${process.pid}-`));
      expect(statSync(path.join(credentialsDir, held[0] ?? '', 'config.json')).mode & 0o777).toBe(0o600);
      for (const scratch of ws.leftovers()) expect(readdirSync(path.join(ws.tmpDir, scratch))).not.toContain('docker');
      expect((await scanning).summary.total).toBe(rawCounts('real-world/trustdsai-alpine-3.19.json').total);
      expect(ws.invocations().at(-1)?.start.registries).toEqual(['registry.example.com']);
      expect(readdirSync(credentialsDir)).toEqual([]);
      expect(ws.leftovers()).toEqual([]);
    });

    it('a credentials folder that cannot be made fails the scan as a retryable scanner_error, leaving nothing behind', async () => {
      const { ws } = setup();
      const missing = path.join(ws.dir, 'not-mounted');
      const separate = new TrivyRunner(stubRunnerOptions(ws, pino({ level: 'silent' }), { credentialsDir: missing }));
      await separate.downloadDatabases();
      expect(await failureOf(separate.scan({ ...privateImage, credentials: creds }))).toMatchObject({ reason: 'scanner_error', transient: true, message: expect.stringContaining(`${missing}: ENOENT`) });
      expect(ws.invocations().filter((i) => i.start.argv?.includes('--format'))).toEqual([]);
      expect(ws.leftovers()).toEqual([]);
    });

    it('uses the index URL key for Docker Hub', async () => {
      const { ws, runner } = setup({ 'docker.io/acme/private': { fixture: '../fixtures/trivy/alpine-39.json', requireAuth: { username: 'u', password: 'p@ss:word' } } });
      await runner.downloadDatabases();
      await runner.scan({ repository: 'docker.io/acme/private', digest: testDigest(4), credentials: { registry: 'docker.io', auth: { auth: Buffer.from('u:p@ss:word').toString('base64') }, source: 'ns/hub' } });
      expect(ws.invocations().at(-1)?.start.registries).toEqual(['https://index.docker.io/v1/']);
    });

    it('fails permanently as auth when the registry refuses them, or when there are none', async () => {
      const { runner } = setup();
      await runner.downloadDatabases();
      const wrong = await failureOf(runner.scan({ ...privateImage, credentials: { ...creds, auth: { username: 'robot', password: 'wrong' } } }));
      expect(wrong).toMatchObject({ reason: 'auth', transient: false });
      expect(wrong.message).toMatch(/UNAUTHORIZED: authentication required/);
      expect(wrong.message).not.toContain('wrong');
      expect(await failureOf(runner.scan(privateImage))).toMatchObject({ reason: 'auth', transient: false });
    });

    it('are never handed to a different registry', async () => {
      const { ws, runner } = setup();
      const failure = await failureOf(runner.scan({ ...nginx, credentials: creds }));
      expect(failure).toMatchObject({ reason: 'auth', transient: false });
      expect(ws.invocations()).toEqual([]);
    });
  });

  it('says when Trivy has exited, before the report is read, for failed scans too', async () => {
    const { ws, runner } = setup();
    await runner.downloadDatabases();
    const exits: { childGone: boolean; resolved: boolean }[] = [];
    let resolved = false;
    const onChildExit = () => {
      const scan = ws.invocations().find((i) => i.start.argv?.includes('--output'));
      exits.push({ childGone: scan !== undefined && !isAlive(scan.pid), resolved });
    };
    const result = await runner.scan(nginx, undefined, onChildExit).finally(() => (resolved = true));
    expect(result.summary.total).toBeGreaterThan(0);
    expect(exits).toEqual([{ childGone: true, resolved: false }]);
    await failureOf(runner.scan({ repository: 'registry.example.com/gone/app', digest: testDigest(6) }, undefined, onChildExit));
    expect(exits).toHaveLength(2);
  });

  it('classifies an image missing from the registry as not_found', async () => {
    const { runner } = setup();
    await runner.downloadDatabases();
    const failure = await failureOf(runner.scan({ repository: 'registry.example.com/gone/app', digest: testDigest(5) }));
    expect(failure).toMatchObject({ reason: 'not_found', transient: false });
    expect(failure.message).toMatch(/^The image was not found in the registry: GET https:\/\/registry\.example\.com\/v2\/gone\/app\/manifests\/sha256:0+: MANIFEST_UNKNOWN/);
  });

  it('reports a scan before the first DB download as a transient failure', async () => {
    const { runner } = setup();
    expect(await failureOf(runner.scan(nginx))).toMatchObject({ reason: 'scanner_error', transient: true, message: expect.stringMatching(/first run/) });
  });

  it.each([
    ['garbage', /not a JSON object/],
    ['empty', /empty/],
    ['nofile', /wrote no report/],
  ])('treats %s output after exit 0 as invalid_output, not retryable', async (mode, message) => {
    const { runner, ws } = setup({}, { TRIVY_STUB_MODE: mode });
    await runner.downloadDatabases();
    const failure = await failureOf(runner.scan(nginx));
    expect(failure).toMatchObject({ reason: 'invalid_output', transient: false });
    expect(failure.message).toMatch(message);
    expect(ws.leftovers()).toEqual([]);
  });

  it('kills the whole process tree at the timeout, even when Trivy ignores SIGTERM', async () => {
    const { ws, runner } = setup({}, { TRIVY_STUB_MODE: 'hang', TRIVY_STUB_IGNORE_SIGTERM: '1' }, { timeoutMs: 1_000, killGraceMs: 300 });
    await runner.downloadDatabases();
    const started = Date.now();
    const failure = await failureOf(runner.scan(nginx));
    const elapsed = Date.now() - started;
    expect(failure).toMatchObject({ reason: 'timeout', transient: true });
    expect(elapsed).toBeGreaterThanOrEqual(1_000);
    expect(elapsed).toBeLessThan(4_000);
    const hung = ws.invocations().at(-1);
    expect(hung?.end).toBeUndefined();
    expect(hung?.grandchildPid).toBeGreaterThan(0);
    expect(ws.log().some((l) => l.event === 'sigterm-ignored')).toBe(true);
    expect(isAlive(hung?.pid ?? 0)).toBe(false);
    expect(isAlive(hung?.grandchildPid ?? 0)).toBe(false);
    expect(ws.leftovers()).toEqual([]);
  });

  it('kills the process tree and cleans up when the scan is aborted', async () => {
    const { ws, runner } = setup({}, { TRIVY_STUB_MODE: 'hang' });
    await runner.downloadDatabases();
    const controller = new AbortController();
    const scan = runner.scan(nginx, controller.signal);
    while (!ws.invocations().some((i) => i.grandchildPid)) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    expect(await failureOf(scan)).toMatchObject({ reason: 'scanner_error', transient: true, message: expect.stringMatching(/cancelled/) });
    const hung = ws.invocations().at(-1);
    expect(isAlive(hung?.pid ?? 0)).toBe(false);
    expect(isAlive(hung?.grandchildPid ?? 0)).toBe(false);
    expect(ws.leftovers()).toEqual([]);
  });

  it('rejects targets that are not a digest of a fully qualified repository, before running anything', async () => {
    const { ws, runner } = setup();
    for (const target of [
      { repository: 'docker.io/library/nginx', digest: 'latest' },
      { repository: '--output=/etc/passwd', digest: testDigest(1) },
      { repository: 'nginx', digest: testDigest(1) },
      { repository: 'docker.io/library/nginx', digest: testDigest(1), platform: 'linux/amd64 --debug' },
    ]) {
      expect(await failureOf(runner.scan(target))).toMatchObject({ reason: 'scanner_error', transient: false });
    }
    expect(ws.invocations()).toEqual([]);
  });

  it('scans images of registries addressed by IPv6 literal or with a port, as image references allow', async () => {
    const { ws, runner } = setup();
    await runner.downloadDatabases();
    for (const repository of ['[fd00::5]:5000/team/app', 'registry.example.com:5000/team/app']) {
      await runner.scan({ repository, digest: testDigest(2) });
      expect(ws.invocations().some((i) => i.start.argv?.at(-1) === `${repository}@${testDigest(2)}`)).toBe(true);
    }
  });

  it('reports a missing Trivy executable as a permanent scanner_error', async () => {
    const { ws, runner } = setup({}, {}, { trivyPath: '/nonexistent/trivy' });
    expect(await failureOf(runner.scan(nginx))).toMatchObject({ reason: 'scanner_error', transient: false, message: expect.stringMatching(/could not be started/) });
    expect(ws.leftovers()).toEqual([]);
  });

  it('in client/server mode sends the scan to the server, with the token only in the environment', async () => {
    const { ws, runner } = setup({}, {}, { server: 'http://trivy.trivy-system:4954', serverToken: 'server-token-value' });
    await runner.downloadDatabases();
    const result = await runner.scan(nginx);
    expect(result.summary.total).toBe(rawCounts('real-world/trustdsai-nginx-1.19.json').total);
    const invocations = ws.invocations();
    // The server owns the vulnerability DB; the client still needs the Java DB for JARs.
    expect(invocations.map((i) => i.start.argv?.[1])).toEqual(['--download-java-db-only', '--format']);
    const argv = invocations[1]?.start.argv ?? [];
    expect(argv.slice(argv.indexOf('--server'), argv.indexOf('--server') + 2)).toEqual(['--server', 'http://trivy.trivy-system:4954']);
    expect(argv).toContain('--skip-java-db-update');
    expect(argv).not.toContain('--skip-db-update');
    expect(argv).not.toContain('--cache-backend');
    expect(JSON.stringify(argv)).not.toContain('server-token-value');
    expect(invocations[1]?.start.env).toEqual(['TRIVY_TOKEN']);
  });

  it('trusts the CA of an https server through Trivy\'s --cacert, in client mode only', async () => {
    const { ws, runner } = setup({}, {}, { server: 'https://trivy.trivy-system:4954', serverCa: '/etc/imagescan/trivy-server-ca/ca.crt' });
    await runner.downloadDatabases();
    await runner.scan(nginx);
    const [javaDb, scan] = ws.invocations().map((i) => i.start.argv ?? []);
    expect(scan?.slice(scan.indexOf('--server'), scan.indexOf('--server') + 5)).toEqual([
      '--server', 'https://trivy.trivy-system:4954', '--skip-java-db-update', '--cacert', '/etc/imagescan/trivy-server-ca/ca.crt',
    ]);
    // The Java DB comes from its registry, not from the server.
    expect(javaDb).not.toContain('--cacert');
  });
});

describe('TrivyRunner databases and version', () => {
  it('downloads the vulnerability DB then the Java DB into the cache, and reads UpdatedAt back', async () => {
    const { ws, runner } = setup({ db: { updatedAt: '2026-11-26T06:00:00Z' } }, {}, { dbRepository: 'mirror.example.com/trivy-db:2', javaDbRepository: 'mirror.example.com/trivy-java-db:1' });
    await runner.downloadDatabases();
    const argvs = ws.invocations().map((i) => i.start.argv);
    expect(argvs).toEqual([
      ['image', '--download-db-only', '--cache-dir', ws.cacheDir, '--skip-version-check', '--disable-telemetry', '--quiet', '--timeout', '1800s', '--db-repository', 'mirror.example.com/trivy-db:2'],
      ['image', '--download-java-db-only', '--cache-dir', ws.cacheDir, '--skip-version-check', '--disable-telemetry', '--quiet', '--timeout', '1800s', '--java-db-repository', 'mirror.example.com/trivy-java-db:1'],
    ]);
    expect(statSync(path.join(ws.cacheDir, 'java-db', 'metadata.json')).isFile()).toBe(true);
    const before = Date.now();
    const info = await runner.version();
    expect(info).toMatchObject({ version: '0.74.0', dbUpdatedAt: '2026-11-26T06:00:00Z' });
    // DownloadedAt: when this download happened, so a restart can tell a fresh DB from a stale one.
    expect(Date.parse(info.dbDownloadedAt ?? '')).toBeGreaterThan(before - 60_000);
    expect(Date.parse(info.dbDownloadedAt ?? '')).toBeLessThanOrEqual(Date.now());
    expect(ws.leftovers()).toEqual([]);
  });

  it('lets a jar image scan only after the Java DB was downloaded', async () => {
    const { runner } = setup();
    const hotDeals = { repository: 'ghcr.io/steadybit/hot-deals', digest: testDigest(6) };
    await runner.downloadDatabases();
    expect((await runner.scan(hotDeals)).summary).toEqual(rawCounts('real-world/steadybit-hot-deals-main.json'));
  });

  it('throws a classified failure when the download fails', async () => {
    const { runner } = setup({ db: { mode: 'fail', fatal: 'init error: DB error: failed to download vulnerability DB: OCI repository error: 1 error occurred:\n\t* GET https://ghcr.io/v2/aquasecurity/trivy-db/manifests/2: TOOMANYREQUESTS: retry-after: 35.852µs, allowed: 44000/minute\n' } });
    const failure = await failureOf(runner.downloadDatabases());
    expect(failure).toMatchObject({ transient: true, message: expect.stringMatching(/^Downloading the vulnerability DB failed: .*TOOMANYREQUESTS/) });
  });

  it('reports no DB time before the first download', async () => {
    const { runner } = setup();
    expect(await runner.version()).toEqual({ version: '0.74.0' });
  });
});

describe('TrivyRunner.childPids', () => {
  it('lists the running Trivy children, whose memory can be read, and forgets them when they exit', async () => {
    const { runner } = setup({}, { TRIVY_STUB_SLEEP_MS: '1500' });
    await runner.downloadDatabases();
    expect(runner.childPids()).toEqual([]);
    const scan = runner.scan(nginx);
    await expect.poll(() => runner.childPids().length, { timeout: 5_000 }).toBe(1);
    const pids = runner.childPids();
    expect(isAlive(pids[0] ?? -1)).toBe(true);
    expect(await residentBytesOf(pids)).toBeGreaterThan(1024 * 1024);
    await scan;
    expect(runner.childPids()).toEqual([]);
  });
});
