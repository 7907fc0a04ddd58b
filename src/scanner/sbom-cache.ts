// What the first scan of a digest learned about the image's packages, kept on the cache volume so
// rescans need no registry request: Trivy's CycloneDX SBOM of the first scan's own JSON report
// (`trivy convert`), rescanned with `trivy sbom` (docs/trivy-sbom-rescans.md).
//
// One entry per (digest, platform): `<name>.cdx.json` and a small `<name>.meta.json` naming what it is.
// Both are written beside their final name and renamed into place, the SBOM first, so a reader never
// sees a half-written SBOM and an entry without its meta is no entry. Entries of digests no longer
// tracked are removed by prune(), so the folder follows what the cluster runs.
// A first scan's report may also be held here (`<name>.report.json` and its `<name>.report-meta.json`)
// until Trivy converts it when the scan slots are idle: on this volume so a restart does not lose it.
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { sortVulnerabilities } from './trivy-report-parser.js';
import type { ScanResult } from './scan-result.js';

/** Which image an SBOM describes: a digest may be an index, resolved per platform. */
export interface SbomKey {
  digest: string;
  platform?: string;
}

/** The sidecar of an SBOM. */
export interface SbomMeta {
  digest: string;
  platform?: string;
  /** The reference the first scan gave Trivy (repository@digest). */
  reference: string;
  /** The first scan's ArtifactName: the start of its OS Target, which a rescan must reproduce. */
  artifactName: string;
  /** The Trivy that wrote the SBOM; another Trivy may find other packages, so its SBOMs are not used. */
  trivyVersion?: string;
  createdAt: string;
}

export interface SbomEntry {
  sbomPath: string;
  meta: SbomMeta;
}

const ENTRY = /^(sha256-[a-f0-9]{64})(?:\.[a-z0-9-]+)?\.(?:cdx|meta|report|report-meta)\.json(?:\.[a-f0-9]+\.partial)?$/;
/**
 * A held report is written at once, on the event loop (the promise steps took a turn of the busy loop
 * each: 105 ms on average per report in the 10,000-pod cold start, while its scan still counted as in
 * flight); a larger report is not held but converted in its scan's slot.
 */
const MAX_HELD_REPORT_BYTES = 8 * 1024 ** 2;
/** A staged file older than this was left by a process that died while writing it. */
const STALE_PARTIAL_MS = 60 * 60_000;

/** The file name stem of an entry: `sha256-<hex>` plus the platform with '/' as '-'. */
export function sbomStem(key: SbomKey): string {
  const digest = key.digest.replace(':', '-');
  return key.platform === undefined ? digest : `${digest}.${key.platform.replaceAll('/', '-')}`;
}

/** The digest (sha256:<hex>) an entry's file belongs to, or undefined for a file that is not one. */
export function digestOfSbomFile(name: string): string | undefined {
  const stem = ENTRY.exec(name)?.[1];
  return stem === undefined ? undefined : stem.replace('-', ':');
}

/**
 * True when a failed `trivy sbom` run blames the SBOM file itself (missing, not an SBOM, undecodable):
 * then a registry scan writes a new one. Other failures (the DB, a timeout) would fail that scan too.
 */
export function blamesSbomFile(stderr: string): boolean {
  return /failed to open sbom file|failed to detect SBOM format|SBOM decode error|scanning is not yet supported|failed to decode/i.test(stderr);
}

/**
 * A `trivy sbom` result as the image scan reports it: Trivy names OS results after the scanned file
 * (`<sbom path> (debian 12.1)`, integration/sbom_test.go), an image scan after the image. Language
 * results are named after paths inside the image or the language, the same in both.
 */
export function asImageResult(result: ScanResult, sbomPath: string, artifactName: string): ScanResult {
  const prefix = `${sbomPath} (`;
  let changed = false;
  const vulnerabilities = result.vulnerabilities.map((v) => {
    if (!v.target.startsWith(prefix)) return v;
    changed = true;
    return { ...v, target: `${artifactName}${v.target.slice(sbomPath.length)}` };
  });
  return changed ? { ...result, vulnerabilities: sortVulnerabilities(vulnerabilities) } : result;
}

/**
 * The ArtifactName an image scan of `reference` would report now: Trivy names the artifact after the
 * reference it was given, so a digest now run from another repository gets that name; a report that
 * named it otherwise (a recorded report replayed by the stub Trivy) keeps its own.
 */
export function reportedArtifactName(meta: Pick<SbomMeta, 'reference' | 'artifactName'>, reference: string): string {
  return meta.artifactName === meta.reference ? reference : meta.artifactName;
}

export interface SbomCacheOptions {
  /** The folder, on the Trivy cache volume. */
  dir: string;
  logger: Logger;
  now?: () => number;
}

/** The SBOM files of scanned digests. Safe for concurrent scans of different keys. */
export class SbomCache {
  private readonly log: Logger;
  private byDigest: Promise<Map<string, Set<string | undefined>>> | undefined;

  constructor(private readonly opts: SbomCacheOptions) {
    this.log = opts.logger;
  }

  /**
   * The usable entry of `key` written by Trivy `trivyVersion` (any, when unknown), or undefined. Without
   * one for the key's platform, an entry of the digest for another platform: the operator scans a
   * digest once, for the platform of whichever pod asked first, and which pod that is may change (a
   * restart, a rollout). Its rescans keep to the first scan's platform instead of pulling again.
   */
  async lookup(key: SbomKey, trivyVersion: string | undefined): Promise<SbomEntry | undefined> {
    // Which platforms have an entry comes from memory: a digest's first scan (no entry) then starts
    // its child without a file system round trip, which a busy event loop stretched to ~100 ms per
    // scan slot in the 10,000-pod cold start. A folder listing per first scan would cost O(n²).
    const platforms = (await this.platforms()).get(key.digest);
    if (platforms === undefined) return undefined;
    const exact = await this.read(key, trivyVersion);
    if (exact !== undefined) return exact;
    for (const platform of platforms) {
      if (platform === key.platform) continue;
      const other = await this.read(platform === undefined ? { digest: key.digest } : { digest: key.digest, platform }, trivyVersion);
      if (other !== undefined) return other;
    }
    return undefined;
  }

  /** digest → the platforms it has entries for: listed once, then kept by commit, discard and prune. */
  private platforms(): Promise<Map<string, Set<string | undefined>>> {
    this.byDigest ??= readdir(this.opts.dir).then(
      async (names) => {
        const map = new Map<string, Set<string | undefined>>();
        for (const name of names) {
          if (!name.endsWith('.meta.json') || digestOfSbomFile(name) === undefined) continue;
          try {
            const meta = parseMeta(await readFile(path.join(this.opts.dir, name), 'utf8'));
            addPlatform(map, meta.digest, meta.platform);
          } catch {
            // Not an entry; lookup() finds nothing there either.
          }
        }
        return map;
      },
      () => new Map<string, Set<string | undefined>>(),
    );
    return this.byDigest;
  }

  private async read(key: SbomKey, trivyVersion: string | undefined): Promise<SbomEntry | undefined> {
    const { sbomPath, metaPath } = this.paths(key);
    let meta: SbomMeta;
    try {
      meta = parseMeta(await readFile(metaPath, 'utf8'));
      await stat(sbomPath);
    } catch {
      return undefined;
    }
    if (meta.digest !== key.digest || meta.platform !== key.platform) return undefined;
    if (trivyVersion !== undefined && meta.trivyVersion !== undefined && meta.trivyVersion !== trivyVersion) return undefined;
    return { sbomPath, meta };
  }

  /**
   * A path in the folder for Trivy to write the SBOM of `key` to, before commit() renames it.
   * Synchronous (one mkdir of an existing folder), so the conversion starts in the turn its scan's
   * image run ended, while the scan still holds its slot.
   */
  stagingPath(key: SbomKey): string {
    // Every time: the folder may have been removed since (a cleaned cache volume).
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    return `${this.paths(key).sbomPath}.${randomBytes(6).toString('hex')}.partial`;
  }

  /** Puts a staged SBOM in place with its meta. On failure the staged file is removed and this throws. */
  async commit(staged: string, meta: SbomMeta): Promise<SbomEntry> {
    const key = sbomKeyOf(meta);
    const { sbomPath, metaPath } = this.paths(key);
    const stagedMeta = `${metaPath}.${randomBytes(6).toString('hex')}.partial`;
    try {
      await writeFile(stagedMeta, JSON.stringify(meta), { mode: 0o600 });
      // The old meta goes first: between the two renames the entry is absent, never mismatched.
      await rm(metaPath, { force: true });
      await rename(staged, sbomPath);
      await rename(stagedMeta, metaPath);
      addPlatform(await this.platforms(), meta.digest, meta.platform);
      return { sbomPath, meta };
    } catch (err) {
      await Promise.all([rm(staged, { force: true }), rm(stagedMeta, { force: true })]);
      throw err;
    }
  }

  /** Removes the entry of `key` (an SBOM Trivy could not read). */
  async discard(key: SbomKey): Promise<void> {
    const { sbomPath, metaPath } = this.paths(key);
    await rm(metaPath, { force: true });
    await rm(sbomPath, { force: true });
    (await this.platforms()).get(key.digest)?.delete(key.platform);
  }

  /**
   * Removes the entries of digests not in use, and staged files a dead process left behind. Returns
   * the number of files removed. Never throws.
   */
  async prune(inUse: (digest: string) => boolean): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.opts.dir);
    } catch {
      return 0;
    }
    const now = (this.opts.now ?? Date.now)();
    let removed = 0;
    for (const name of names) {
      const digest = digestOfSbomFile(name);
      if (digest === undefined) continue;
      const file = path.join(this.opts.dir, name);
      let remove = !inUse(digest);
      if (!remove && name.endsWith('.partial')) {
        const mtime = await stat(file).then((s) => s.mtimeMs, () => now);
        remove = now - mtime > STALE_PARTIAL_MS;
      }
      if (!remove) continue;
      try {
        await rm(file, { force: true });
        removed += 1;
      } catch (err) {
        this.log.warn({ file, err: err instanceof Error ? err.message : String(err) }, 'could not remove an SBOM file');
      }
    }
    const platforms = await this.platforms();
    for (const digest of [...platforms.keys()]) if (!inUse(digest)) platforms.delete(digest);
    if (removed > 0) this.log.info({ removed, dir: this.opts.dir }, 'removed SBOM files of digests no longer running');
    return removed;
  }

  /**
   * Keeps a first scan's Trivy report (and the meta its SBOM will have) until it is converted; returns
   * the report's path, or undefined for a report too large to hold. Throws on failure, having removed
   * what it wrote.
   */
  hold(report: Buffer, meta: SbomMeta): string | undefined {
    if (report.length > MAX_HELD_REPORT_BYTES) return undefined;
    const { reportPath, reportMetaPath } = this.heldPaths(sbomKeyOf(meta));
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    const suffix = `.${randomBytes(6).toString('hex')}.partial`;
    try {
      writeFileSync(reportPath + suffix, report, { mode: 0o600 });
      writeFileSync(reportMetaPath + suffix, JSON.stringify(meta), { mode: 0o600 });
      renameSync(reportPath + suffix, reportPath);
      renameSync(reportMetaPath + suffix, reportMetaPath);
      return reportPath;
    } catch (err) {
      for (const file of [reportPath + suffix, reportMetaPath + suffix, reportPath, reportMetaPath]) rmSync(file, { force: true });
      throw err;
    }
  }

  /** The reports held here (an earlier process's too), each with its path and the meta it was held with. */
  async held(): Promise<{ reportPath: string; meta: SbomMeta; bytes: number }[]> {
    let names: string[];
    try {
      names = await readdir(this.opts.dir);
    } catch {
      return [];
    }
    const found: { reportPath: string; meta: SbomMeta; bytes: number }[] = [];
    for (const name of names) {
      if (!name.endsWith('.report-meta.json') || digestOfSbomFile(name) === undefined) continue;
      try {
        const meta = parseMeta(await readFile(path.join(this.opts.dir, name), 'utf8'));
        const { reportPath } = this.heldPaths(sbomKeyOf(meta));
        found.push({ reportPath, meta, bytes: (await stat(reportPath)).size });
      } catch {
        // Half a held report: prune() removes it with its digest; it is no held report.
      }
    }
    return found;
  }

  /** Forgets the held report of `key` (converted, or not worth converting). Never throws. */
  async release(key: SbomKey): Promise<void> {
    const { reportPath, reportMetaPath } = this.heldPaths(key);
    await rm(reportMetaPath, { force: true }).catch(() => undefined);
    await rm(reportPath, { force: true }).catch(() => undefined);
  }

  private heldPaths(key: SbomKey): { reportPath: string; reportMetaPath: string } {
    const stem = path.join(this.opts.dir, sbomStem(key));
    return { reportPath: `${stem}.report.json`, reportMetaPath: `${stem}.report-meta.json` };
  }

  private paths(key: SbomKey): { sbomPath: string; metaPath: string } {
    const stem = path.join(this.opts.dir, sbomStem(key));
    return { sbomPath: `${stem}.cdx.json`, metaPath: `${stem}.meta.json` };
  }
}

/** The key of an image (a scan target, an entry's meta): its digest and platform, if any. */
export function sbomKeyOf(image: { digest: string; platform?: string | undefined }): SbomKey {
  return image.platform === undefined ? { digest: image.digest } : { digest: image.digest, platform: image.platform };
}

function addPlatform(map: Map<string, Set<string | undefined>>, digest: string, platform: string | undefined): void {
  const known = map.get(digest);
  if (known === undefined) map.set(digest, new Set([platform]));
  else known.add(platform);
}

function parseMeta(text: string): SbomMeta {
  const doc: unknown = JSON.parse(text);
  if (typeof doc !== 'object' || doc === null) throw new Error('not an object');
  const m = doc as Record<string, unknown>;
  if (typeof m.digest !== 'string' || typeof m.reference !== 'string' || typeof m.artifactName !== 'string' || typeof m.createdAt !== 'string') {
    throw new Error('incomplete');
  }
  const meta: SbomMeta = { digest: m.digest, reference: m.reference, artifactName: m.artifactName, createdAt: m.createdAt };
  if (typeof m.platform === 'string') meta.platform = m.platform;
  if (typeof m.trivyVersion === 'string') meta.trivyVersion = m.trivyVersion;
  return meta;
}
