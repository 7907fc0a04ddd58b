import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { asImageResult, blamesSbomFile, digestOfSbomFile, reportedArtifactName, SbomCache, sbomStem } from './sbom-cache.js';
import type { SbomMeta } from './sbom-cache.js';
import type { ScanResult, Vulnerability } from './scan-result.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

function cache(now?: () => number) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'sbom-cache-test-'));
  dirs.push(root);
  const dir = path.join(root, 'imagescan-sbom');
  return { dir, cache: new SbomCache({ dir, logger: pino({ level: 'silent' }), ...(now === undefined ? {} : { now }) }) };
}

function meta(n: number, extra: Partial<SbomMeta> = {}): SbomMeta {
  return { digest: digest(n), reference: `docker.io/library/nginx@${digest(n)}`, artifactName: `docker.io/library/nginx@${digest(n)}`, createdAt: '2026-12-07T12:00:00Z', ...extra };
}

async function put(c: SbomCache, m: SbomMeta): Promise<void> {
  const staged = c.stagingPath(m.platform === undefined ? { digest: m.digest } : { digest: m.digest, platform: m.platform });
  writeFileSync(staged, '{"bomFormat":"CycloneDX"}');
  await c.commit(staged, m);
}

describe('SBOM file names', () => {
  it('name an entry by digest and platform, and give the digest back for any of its files', () => {
    expect(sbomStem({ digest: digest(1) })).toBe(`sha256-${'0'.repeat(63)}1`);
    expect(sbomStem({ digest: digest(1), platform: 'linux/arm/v7' })).toBe(`sha256-${'0'.repeat(63)}1.linux-arm-v7`);
    for (const suffix of ['.cdx.json', '.meta.json', '.linux-arm64.cdx.json', '.cdx.json.0a1b2c.partial']) {
      expect(digestOfSbomFile(`sha256-${'0'.repeat(63)}1${suffix}`)).toBe(digest(1));
    }
    for (const foreign of ['notes.txt', `sha256-${'0'.repeat(63)}1.json`, 'sha256-abc.cdx.json', '.cdx.json']) expect(digestOfSbomFile(foreign)).toBeUndefined();
  });
});

describe('SbomCache', () => {
  it('finds a committed entry only for its digest, platform and Trivy version', async () => {
    const { dir, cache: c } = cache();
    await put(c, meta(1, { trivyVersion: '0.74.0' }));
    await put(c, meta(2, { platform: 'linux/arm64' }));

    const found = await c.lookup({ digest: digest(1) }, '0.74.0');
    expect(found?.sbomPath).toBe(path.join(dir, `${sbomStem({ digest: digest(1) })}.cdx.json`));
    expect(found?.meta).toEqual(meta(1, { trivyVersion: '0.74.0' }));
    expect(await c.lookup({ digest: digest(1) }, undefined)).toBeDefined();
    expect(await c.lookup({ digest: digest(1) }, '0.75.0')).toBeUndefined();
    expect(await c.lookup({ digest: digest(2), platform: 'linux/arm64' }, '0.74.0')).toBeDefined();
    expect(await c.lookup({ digest: digest(3) }, undefined)).toBeUndefined();
    expect(readdirSync(dir).filter((n) => n.endsWith('.partial'))).toEqual([]);
  });

  it('falls back to an entry of the digest for another platform, of the same Trivy version', async () => {
    const { cache: c } = cache();
    await put(c, meta(2, { platform: 'linux/arm64', trivyVersion: '0.74.0' }));
    expect((await c.lookup({ digest: digest(2), platform: 'linux/amd64' }, '0.74.0'))?.meta.platform).toBe('linux/arm64');
    expect((await c.lookup({ digest: digest(2) }, undefined))?.meta.platform).toBe('linux/arm64');
    expect(await c.lookup({ digest: digest(2), platform: 'linux/amd64' }, '0.75.0')).toBeUndefined();
    await put(c, meta(2, { platform: 'linux/amd64', trivyVersion: '0.74.0' }));
    expect((await c.lookup({ digest: digest(2), platform: 'linux/amd64' }, '0.74.0'))?.meta.platform).toBe('linux/amd64');
  });

  it('after a restart finds the entries of other platforms that an earlier process wrote', async () => {
    const { dir, cache: c } = cache();
    await put(c, meta(2, { platform: 'linux/arm64' }));
    const restarted = new SbomCache({ dir, logger: pino({ level: 'silent' }) });
    expect((await restarted.lookup({ digest: digest(2), platform: 'linux/amd64' }, undefined))?.meta.platform).toBe('linux/arm64');
    await restarted.discard({ digest: digest(2), platform: 'linux/arm64' });
    expect(await restarted.lookup({ digest: digest(2), platform: 'linux/amd64' }, undefined)).toBeUndefined();
  });

  it('has no entry when the SBOM or its meta is missing or the meta is not what it should be', async () => {
    const { dir, cache: c } = cache();
    await put(c, meta(1));
    const stem = path.join(dir, sbomStem({ digest: digest(1) }));
    writeFileSync(`${stem}.meta.json`, JSON.stringify({ digest: digest(1) }));
    expect(await c.lookup({ digest: digest(1) }, undefined)).toBeUndefined();
    writeFileSync(`${stem}.meta.json`, JSON.stringify(meta(3)));
    expect(await c.lookup({ digest: digest(1) }, undefined)).toBeUndefined();
    await put(c, meta(1));
    await c.discard({ digest: digest(1) });
    expect(readdirSync(dir)).toEqual([]);
    expect(await c.lookup({ digest: digest(1) }, undefined)).toBeUndefined();
  });

  it('replaces an entry whole, and removes the staged file when the commit fails', async () => {
    const { dir, cache: c } = cache();
    await put(c, meta(1, { trivyVersion: '0.73.0' }));
    await put(c, meta(1, { trivyVersion: '0.74.0' }));
    expect((await c.lookup({ digest: digest(1) }, undefined))?.meta.trivyVersion).toBe('0.74.0');
    expect(readdirSync(dir)).toHaveLength(2);

    const staged = c.stagingPath({ digest: digest(4) });
    writeFileSync(staged, '{}');
    rmSync(dir, { recursive: true });
    await expect(c.commit(staged, meta(4))).rejects.toThrow();
  });

  it('prunes the entries of digests no longer in use and stale staged files, and nothing else', async () => {
    const now = Date.now();
    const { dir, cache: c } = cache(() => now);
    await put(c, meta(1));
    await put(c, meta(2, { platform: 'linux/amd64' }));
    await put(c, meta(3));
    const fresh = c.stagingPath({ digest: digest(1) });
    writeFileSync(fresh, 'being written');
    const stale = c.stagingPath({ digest: digest(3) });
    writeFileSync(stale, 'left by a dead process');
    const twoHoursAgo = (now - 2 * 3_600_000) / 1000;
    utimesSync(stale, twoHoursAgo, twoHoursAgo);
    writeFileSync(path.join(dir, 'README'), 'not ours');

    expect(await c.prune((d) => d !== digest(2))).toBe(3);
    const left = readdirSync(dir).sort();
    expect(left).toContain('README');
    expect(left).toContain(path.basename(fresh));
    expect(left.filter((n) => n.startsWith(sbomStem({ digest: digest(2) })))).toEqual([]);
    expect(await c.lookup({ digest: digest(1) }, undefined)).toBeDefined();
    expect(await c.lookup({ digest: digest(3) }, undefined)).toBeDefined();
    expect(await c.prune(() => false)).toBe(5);
    expect(readdirSync(dir)).toEqual(['README']);
  });

  it('makes the folder again when it was removed', async () => {
    const { dir, cache: c } = cache();
    await put(c, meta(1));
    rmSync(dir, { recursive: true });
    await put(c, meta(2));
    expect(await c.lookup({ digest: digest(2) }, undefined)).toBeDefined();
  });

  it('holds a report with its meta until released, lists it for a later process, and prunes it with its digest', async () => {
    const { dir, cache: c } = cache();
    const path1 = c.hold(Buffer.from('{"ArtifactName":"one"}'), meta(1, { platform: 'linux/arm64' }));
    c.hold(Buffer.from('{"ArtifactName":"two"}'), meta(2));
    // A report of more than 8 MiB is not held (its scan converts it in its slot).
    expect(c.hold(Buffer.alloc(8 * 1024 ** 2 + 1), meta(3))).toBeUndefined();
    // A held report is not an SBOM: scans still find no entry for it.
    expect(await c.lookup({ digest: digest(1), platform: 'linux/arm64' }, undefined)).toBeUndefined();
    const later = new SbomCache({ dir, logger: pino({ level: 'silent' }) });
    expect((await later.held()).map((h) => [h.meta.digest, h.meta.platform, h.bytes]).sort()).toEqual([
      [digest(1), 'linux/arm64', 22],
      [digest(2), undefined, 22],
    ]);
    expect((await later.held()).find((h) => h.meta.digest === digest(1))?.reportPath).toBe(path1);
    await c.release({ digest: digest(1), platform: 'linux/arm64' });
    expect((await c.held()).map((h) => h.meta.digest)).toEqual([digest(2)]);
    expect(await c.prune((d) => d !== digest(2))).toBe(2);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('prunes nothing, without failing, before the folder exists', async () => {
    const { cache: c } = cache();
    expect(await c.prune(() => false)).toBe(0);
  });
});

describe('asImageResult', () => {
  const v = (target: string, id: string, klass = 'os-pkgs'): Vulnerability => ({ id, severity: 'HIGH', package: 'openssl', installedVersion: '1.0', target, class: klass });
  const result = (vulnerabilities: Vulnerability[]): ScanResult => ({
    vulnerabilities,
    summary: { critical: 0, high: vulnerabilities.length, medium: 0, low: 0, unknown: 0, total: vulnerabilities.length, fixable: 0 },
    scanner: { name: 'Trivy', version: '0.74.0' },
    os: 'debian 12.1',
  });
  const sbom = '/var/cache/trivy/imagescan-sbom/sha256-1.cdx.json';

  it('names OS results after the image as an image scan does, leaves language results alone, and sorts again', () => {
    const scanned = result([v(`${sbom} (debian 12.1)`, 'CVE-1'), v('bin/gosu', 'CVE-1', 'lang-pkgs'), v('Node.js', 'CVE-2', 'lang-pkgs')]);
    const image = asImageResult(scanned, sbom, 'docker.io/library/redis@sha256:1');
    expect(image.vulnerabilities.map((x) => x.target)).toEqual(['bin/gosu', 'docker.io/library/redis@sha256:1 (debian 12.1)', 'Node.js']);
    expect(scanned.vulnerabilities.map((x) => x.target)[0]).toBe(`${sbom} (debian 12.1)`);
    expect(image.summary).toEqual(scanned.summary);
    expect(asImageResult(result([v('Java', 'CVE-3', 'lang-pkgs')]), sbom, 'x')).toEqual(result([v('Java', 'CVE-3', 'lang-pkgs')]));
  });

  it('uses the reference an image scan would be given now, unless the first report named the artifact otherwise', () => {
    const first = { reference: 'docker.io/library/redis@sha256:1', artifactName: 'docker.io/library/redis@sha256:1' };
    expect(reportedArtifactName(first, 'mirror.example.com/library/redis@sha256:1')).toBe('mirror.example.com/library/redis@sha256:1');
    expect(reportedArtifactName({ ...first, artifactName: 'redis:7' }, 'mirror.example.com/library/redis@sha256:1')).toBe('redis:7');
  });
});

describe('blamesSbomFile', () => {
  it.each([
    ['run error: sbom scan error: scan error: scan failed: failed analysis: SBOM decode error: unknown scanning is not yet supported', true],
    ['failed to open sbom file error: open /x.cdx.json: no such file or directory', true],
    ['failed to detect SBOM format: seek error', true],
    ['run error: init error: DB error: database error: --skip-db-update cannot be specified on the first run', false],
    ['analyze error: timeout: context deadline exceeded', false],
  ])('%s -> %s', (stderr, expected) => {
    expect(blamesSbomFile(stderr)).toBe(expected);
  });
});
