import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyTrivyFailure } from '../../src/scanner/failure-classifier.js';
import { parseTrivyReport } from '../../src/scanner/trivy-report-parser.js';
import { createStubWorkspace, FIXTURES_DIR, registryPulls, STUB_TRIVY, testDigest } from './stub-harness.js';
import type { StubWorkspace } from './stub-harness.js';

const workspaces: StubWorkspace[] = [];
afterEach(() => {
  for (const ws of workspaces.splice(0)) ws.cleanup();
});

function workspace(map: Record<string, unknown> = {}) {
  const ws = createStubWorkspace(map);
  workspaces.push(ws);
  mkdirSync(ws.cacheDir, { recursive: true });
  return ws;
}

function trivy(ws: StubWorkspace, args: string[], env: Record<string, string> = {}, node?: string) {
  const file = node ?? STUB_TRIVY;
  const argv = node ? [STUB_TRIVY, ...args] : args;
  return execa(file, argv, { env: { PATH: process.env.PATH ?? '', HOME: ws.dir, ...ws.extraEnv, ...env }, extendEnv: false, reject: false });
}

async function withDb(ws: StubWorkspace) {
  const r = await trivy(ws, ['image', '--download-db-only', '--cache-dir', ws.cacheDir]);
  expect(r.exitCode).toBe(0);
}

const nginxFixture = path.join(FIXTURES_DIR, 'real-world/trustdsai-nginx-1.19.json');

describe('stub trivy image', () => {
  it('accepts the documented trivy image flags, in long, short, = and list forms, and replays the fixture byte for byte', async () => {
    const ws = workspace();
    await withDb(ws);
    const out = path.join(ws.dir, 'out.json');
    const r = await trivy(ws, [
      '--cache-dir', ws.cacheDir, '-q', 'image', '-f', 'json', '-o', out, '--scanners', 'vuln', '--severity', 'UNKNOWN,LOW', '-s', 'MEDIUM,HIGH,CRITICAL',
      '--image-src', 'remote', '--platform=linux/arm64', '--cache-backend', 'memory', '--skip-db-update', '--skip-java-db-update',
      '--skip-version-check', '--disable-telemetry', '--timeout', '1h2m3.5s', '--list-all-pkgs', '--db-repository', 'a.example/db:2',
      '--db-repository', 'b.example/db:2', '--java-db-repository', 'c.example/jdb:1', '--offline-scan', '--insecure', '--exit-code', '0',
      '--pkg-types', 'os,library', '--parallel', '5', '--no-progress', '--ignore-status', 'will_not_fix', '--max-image-size', '10GB',
      `docker.io/library/nginx@${testDigest(1)}`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    // Buffer.equals, not toEqual: a deep compare of 2 MB element by element takes seconds.
    expect(readFileSync(out).equals(readFileSync(nginxFixture))).toBe(true);
  });

  it.each([
    [['image', '--foo', 'x'], /^Error: unknown flag: --foo\n/, /FATAL\tFatal error\tunknown flag: --foo/],
    [['image', '-z'], /unknown shorthand flag: 'z' in -z/, /FATAL/],
    [['image', '--output'], /flag needs an argument: --output/, /FATAL/],
    [['image', '--list-all-pkgs=maybe', 'x'], /invalid argument "maybe" for "--list-all-pkgs" flag/, /FATAL/],
    [['image', '--timeout', '10minutes', 'x'], /invalid duration "10minutes"/, /FATAL/],
    [['image', '--scanners', 'vulns', 'x'], /FATAL\tFatal error\tflag error: invalid flag: unknown scanner: vulns/, /FATAL/],
    [['image', '--format', 'xml', 'x'], /unknown format: xml/, /FATAL/],
    [['image', '--image-src', 'registry', 'x'], /unknown image source: registry/, /FATAL/],
    [['image', '--cache-backend', 'disk', 'x'], /unsupported cache backend: disk/, /FATAL/],
    [['image', '--download-db-only', '--skip-db-update'], /can not be specified both/, /FATAL/],
    [['image', '--download-db-only', '--download-java-db-only'], /can not be specified both/, /FATAL/],
    [['scan', 'x'], /unknown command "scan" for "trivy"/, /FATAL/],
    [['version', '--severity', 'HIGH'], /unknown flag: --severity/, /FATAL/],
  ])('rejects %j like Trivy: exit 1 and a FATAL line the classifier calls a permanent scanner_error', async (args, first, fatal) => {
    const ws = workspace();
    const r = await trivy(ws, args);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(first);
    expect(r.stderr).toMatch(fatal);
    expect(classifyTrivyFailure({ exitCode: r.exitCode, stderr: r.stderr, timedOut: false })).toMatchObject({ reason: 'scanner_error', transient: false });
  });

  it('refuses --skip-db-update before the first DB download, and records a download when a scan would do one', async () => {
    const ws = workspace();
    const target = `docker.io/library/alpine@${testDigest(1)}`;
    const refused = await trivy(ws, ['image', '--cache-dir', ws.cacheDir, '--skip-db-update', '--format', 'json', target]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/--skip-db-update cannot be specified on the first run/);
    const downloading = await trivy(ws, ['image', '--cache-dir', ws.cacheDir, '--format', 'json', target]);
    expect(downloading.exitCode).toBe(0);
    expect(ws.invocations().at(-1)?.end?.dbDownloaded).toBe(true);
    expect(existsSync(path.join(ws.cacheDir, 'db', 'metadata.json'))).toBe(true);
  });

  it('chooses the fixture by digest first, then repository, then default; unmapped images are MANIFEST_UNKNOWN', async () => {
    const ws = workspace({ [testDigest(7)]: '../fixtures/trivy/centos-7.json' });
    await withDb(ws);
    const scan = async (ref: string) => {
      const r = await trivy(ws, ['image', '--cache-dir', ws.cacheDir, '--skip-db-update', '--format', 'json', ref]);
      return { r, key: ws.invocations().at(-1)?.end?.mappingKey };
    };
    expect((await scan(`docker.io/library/nginx@${testDigest(7)}`)).key).toBe(testDigest(7));
    expect((await scan(`docker.io/library/nginx@${testDigest(8)}`)).key).toBe('docker.io/library/nginx');
    expect((await scan('docker.io/library/nginx:1.19')).key).toBe('docker.io/library/nginx');
    expect((await scan(`quay.io/someone/else@${testDigest(9)}`)).key).toBe('default');

    const noDefault = Object.fromEntries(Object.entries(JSON.parse(readFileSync(ws.mapFile, 'utf8')) as Record<string, unknown>).filter(([k]) => k !== 'default'));
    writeFileSync(ws.mapFile, JSON.stringify(noDefault));
    const missing = await scan(`quay.io/someone/else@${testDigest(9)}`);
    expect(missing.r.exitCode).toBe(1);
    expect(classifyTrivyFailure({ exitCode: 1, stderr: missing.r.stderr, timedOut: false })).toMatchObject({ reason: 'not_found' });
  });

  it('filters by --severity and --ignore-unfixed like Trivy', async () => {
    const ws = workspace();
    await withDb(ws);
    const r = await trivy(ws, ['image', '--cache-dir', ws.cacheDir, '--skip-db-update', '--format', 'json', '--severity', 'HIGH', '--ignore-unfixed', `docker.io/library/nginx@${testDigest(1)}`]);
    const raw = JSON.parse(readFileSync(nginxFixture, 'utf8')) as { Results: { Vulnerabilities?: { Severity: string; FixedVersion?: string }[] }[] };
    const expected = raw.Results.flatMap((x) => x.Vulnerabilities ?? []).filter((v) => v.Severity === 'HIGH' && v.FixedVersion).length;
    const parsed = parseTrivyReport(r.stdout);
    expect(parsed.summary).toMatchObject({ high: expected, total: expected, fixable: expected });
  });

  it('requires the mapped credentials from DOCKER_CONFIG, and records registries and env names but never values', async () => {
    const ws = workspace();
    await withDb(ws);
    const docker = path.join(ws.dir, 'docker');
    mkdirSync(docker, { mode: 0o700 });
    const ref = `registry.example.com/private/app@${testDigest(1)}`;
    const run = (auths: Record<string, unknown>) => {
      writeFileSync(path.join(docker, 'config.json'), JSON.stringify({ auths }), { mode: 0o600 });
      return trivy(ws, ['image', '--cache-dir', ws.cacheDir, '--skip-db-update', '--format', 'json', ref], { DOCKER_CONFIG: docker, TRIVY_PASSWORD: 'env-secret-value' });
    };
    const denied = await run({ 'registry.example.com': { auth: Buffer.from('robot:nope').toString('base64') } });
    expect(denied.exitCode).toBe(1);
    expect(classifyTrivyFailure({ exitCode: 1, stderr: denied.stderr, timedOut: false })).toMatchObject({ reason: 'auth', transient: false });
    expect((await run({ 'https://registry.example.com': { username: 'robot', password: 'stub-password' } })).exitCode).toBe(0);
    expect((await run({ 'registry.example.com': { auth: Buffer.from('robot:stub-password').toString('base64') } })).exitCode).toBe(0);

    const start = ws.log().filter((l) => l.event === 'start').at(-1);
    expect(start?.registries).toEqual(['registry.example.com']);
    expect(start?.env).toEqual(['DOCKER_CONFIG', 'TRIVY_PASSWORD']);
    expect(start?.dockerConfigMode).toBe('600');
    const log = readFileSync(ws.logFile, 'utf8');
    for (const secret of ['env-secret-value', 'stub-password', Buffer.from('robot:stub-password').toString('base64')]) expect(log).not.toContain(secret);
  });

  it('writes a huge report of the asked size whose counts it records', async () => {
    const ws = workspace();
    await withDb(ws);
    const out = path.join(ws.dir, 'huge.json');
    const r = await trivy(ws, ['image', '--cache-dir', ws.cacheDir, '--skip-db-update', '--format', 'json', '--output', out, `docker.io/library/x@${testDigest(1)}`], { TRIVY_STUB_MODE: 'huge', TRIVY_STUB_HUGE_MB: '2' });
    expect(r.exitCode).toBe(0);
    const huge = ws.invocations().at(-1)?.end?.huge;
    const summary = parseTrivyReport(readFileSync(out)).summary;
    expect(summary).toEqual({ critical: huge?.CRITICAL, high: huge?.HIGH, medium: huge?.MEDIUM, low: huge?.LOW, unknown: huge?.UNKNOWN, total: huge?.total, fixable: huge?.fixable });
    expect(readFileSync(out).length).toBeGreaterThanOrEqual(2 * 1024 * 1024);
  });
});

describe('stub trivy convert and sbom', () => {
  it('drops Packages with --list-all-pkgs=false and records every image scan as a registry pull', async () => {
    const ws = workspace();
    await withDb(ws);
    const out = path.join(ws.dir, 'out.json');
    const r = await trivy(ws, ['image', '--format', 'json', '-o', out, '--cache-dir', ws.cacheDir, '--skip-db-update', '--list-all-pkgs=false', `docker.io/library/nginx@${testDigest(1)}`]);
    expect(r.exitCode, r.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(out, 'utf8')) as { Results: { Packages?: unknown[] }[] };
    expect(doc.Results.every((result) => result.Packages === undefined)).toBe(true);
    expect(parseTrivyReport(readFileSync(out))).toEqual(parseTrivyReport(readFileSync(nginxFixture)));
    expect(registryPulls(ws.log())).toHaveLength(1);
  });

  it('converts a report to CycloneDX that `sbom` scans without the registry, naming the OS result after the file', async () => {
    const ws = workspace();
    await withDb(ws);
    const report = path.join(ws.dir, 'report.json');
    await trivy(ws, ['image', '--format', 'json', '-o', report, '--cache-dir', ws.cacheDir, '--skip-db-update', '--list-all-pkgs', `docker.io/library/nginx@${testDigest(1)}`]);
    const policy = path.join(ws.dir, 'drop.rego');
    writeFileSync(policy, 'package trivy\n\ndefault ignore = true\n');
    const sbom = path.join(ws.dir, 'nginx.cdx.json');
    const converted = await trivy(ws, ['convert', '--format', 'cyclonedx', '--output', sbom, '--ignore-policy', policy, '--quiet', '--timeout', '20s', report]);
    expect(converted.exitCode, converted.stderr).toBe(0);
    const bom = JSON.parse(readFileSync(sbom, 'utf8')) as { bomFormat: string; metadata: { component: { name: string } }; components: { type: string }[]; vulnerabilities?: unknown[] };
    expect(bom.bomFormat).toBe('CycloneDX');
    expect(bom.metadata.component.name).toBe('nginx:1.19');
    expect(bom.components.filter((c) => c.type === 'library')).toHaveLength(135);
    expect(bom.vulnerabilities).toBeUndefined();

    const out = path.join(ws.dir, 'rescan.json');
    const scanned = await trivy(ws, ['sbom', '--format', 'json', '--output', out, '--scanners', 'vuln', '--cache-dir', ws.cacheDir, '--skip-db-update', '--severity', 'CRITICAL', '--list-all-pkgs=false', sbom]);
    expect(scanned.exitCode, scanned.stderr).toBe(0);
    const result = parseTrivyReport(readFileSync(out));
    expect(result.summary).toMatchObject({ critical: 42, total: 42 });
    expect(new Set(result.vulnerabilities.map((v) => v.target))).toEqual(new Set([`${sbom} (debian 10.9)`]));
    expect(registryPulls(ws.log())).toHaveLength(1);
  });

  it.each([
    [['sbom', '--image-src', 'remote', 'x.json'], /unknown flag: --image-src/],
    [['sbom', '--scanners', 'secret', 'x.json'], /unknown scanner: secret/],
    [['convert', '--skip-db-update', 'x.json'], /unknown flag: --skip-db-update/],
    [['convert', '--format', 'cyclonedx', 'missing.json'], /file open error: open missing.json: no such file or directory/],
  ])('rejects what Trivy rejects: %j', async (args, stderr) => {
    const ws = workspace();
    const r = await trivy(ws, args);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(stderr);
  });

  it('fails on a file that is not an SBOM, as Trivy does, with an error that names the SBOM', async () => {
    const ws = workspace();
    await withDb(ws);
    const notSbom = path.join(ws.dir, 'report.json');
    writeFileSync(notSbom, readFileSync(nginxFixture));
    const r = await trivy(ws, ['sbom', '--format', 'json', '--cache-dir', ws.cacheDir, '--skip-db-update', notSbom]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/FATAL\tFatal error\t.*SBOM decode error: unknown scanning is not yet supported/);
  });
});

describe('stub trivy version', () => {
  it('prints the version and the DB UpdatedAt from the cache as JSON', async () => {
    const ws = workspace({ db: { updatedAt: '2026-11-26T06:00:00Z' } });
    const before = await trivy(ws, ['version', '--format', 'json', '--cache-dir', ws.cacheDir]);
    expect(JSON.parse(before.stdout)).toEqual({ Version: '0.74.0' });
    await withDb(ws);
    const after = JSON.parse((await trivy(ws, ['version', '-f', 'json', '--cache-dir', ws.cacheDir])).stdout) as { VulnerabilityDB: { UpdatedAt: string } };
    expect(after.VulnerabilityDB.UpdatedAt).toBe('2026-11-26T06:00:00Z');
  });

  const node20 = '/usr/bin/node';
  it.runIf(existsSync(node20))('runs on the system Node (20) as well', async () => {
    const ws = workspace();
    const { stdout: v } = await execa(node20, ['--version']);
    const r = await trivy(ws, ['version', '--format', 'json'], {}, node20);
    expect(r.exitCode, `${v}: ${r.stderr}`).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ Version: '0.74.0' });
  });
});
