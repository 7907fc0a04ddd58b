// The stub Trivy as the benchmark runs it: a wrapper script that sets the stub's environment (the
// operator hands Trivy a minimal environment of its own), a mapping of every benchmark repository to
// a real fixture, and counting of scans and DB downloads from the stub's invocation log.
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeTrivyWrapper } from '../test/trivy-stub/stub-harness.js';

export interface StubFiles {
  /** Pass as the operator's --trivy-path. */
  trivyPath: string;
  logPath: string;
  /** The UpdatedAt of the DB the next download gets (an RFC 3339 time, or `now`: each download a new DB). */
  setDbUpdatedAt(value: string): void;
}

/** Real Trivy reports to replay, skipping ones with jar results (they need the Java DB). */
export function benchFixtures(fixturesDir: string): string[] {
  const files = [fixturesDir, path.join(fixturesDir, 'real-world')]
    .flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => path.join(dir, f)))
    .sort();
  return files.filter((file) => {
    const report = JSON.parse(readFileSync(file, 'utf8')) as { Results?: { Type?: string }[] };
    return !(report.Results ?? []).some((r) => r.Type === 'jar');
  });
}

function repositoryOf(image: string): string {
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? image.slice(0, colon) : image;
}

/**
 * A copy of a fixture as Trivy reports a scan of `image` by its tag: `Metadata.RepoDigests` names the
 * image's repository and the digest its tag resolves to (the operator learns the digest from it).
 */
export function referenceFixture(fixtureText: string, image: string, digest: string): string {
  const report = JSON.parse(fixtureText) as { ArtifactName?: string; Metadata?: Record<string, unknown> };
  report.ArtifactName = image;
  report.Metadata = { ...report.Metadata, RepoTags: [image], RepoDigests: [`${repositoryOf(image)}@${digest}`] };
  return JSON.stringify(report);
}

export interface StubOptions {
  kind: 'node' | 'fast';
  workDir: string;
  stubPath: string;
  fastStubPath: string;
  fixtures: string[];
  images: string[];
  /** Images scanned by tag (admission's scans by reference), each with the digest its tag resolves to. */
  referenceImages?: { image: string; digest: string }[];
  scanMs: number;
}

/** The fixture each repository replays: image i gets fixture i mod n, a reference image its own copy. */
function fixtureByRepository(opts: StubOptions): Map<string, string> {
  const byRepository = new Map<string, string>();
  opts.images.forEach((image, i) => byRepository.set(repositoryOf(image), opts.fixtures[i % opts.fixtures.length] ?? ''));
  const withDigests = opts.fixtures.filter((f) => ((JSON.parse(readFileSync(f, 'utf8')) as { Metadata?: { RepoDigests?: unknown[] } }).Metadata?.RepoDigests ?? []).length > 0);
  const dir = path.join(opts.workDir, 'reference-fixtures');
  (opts.referenceImages ?? []).forEach(({ image, digest }, i) => {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${repositoryOf(image).replaceAll('/', '_')}.json`);
    const source = withDigests[i % Math.max(1, withDigests.length)] ?? opts.fixtures[0] ?? '';
    writeFileSync(file, referenceFixture(readFileSync(source, 'utf8'), image, digest));
    byRepository.set(repositoryOf(image), file);
  });
  return byRepository;
}

/**
 * Writes the wrapper and the mapping into `workDir`. The wrapper execs the stub, so the operator's
 * process-group kill still reaches it. `kind` 'node' runs the project's Node stub; 'fast' runs
 * bench/fast-trivy.sh (same replay and log, almost no CPU).
 */
export function writeStubFiles(opts: StubOptions): StubFiles {
  if (opts.kind === 'fast') return writeFastStubFiles(opts);
  if (!existsSync(opts.stubPath)) throw new Error(`stub Trivy not found at ${opts.stubPath}`);
  const mapping: Record<string, string> = Object.fromEntries(fixtureByRepository(opts));
  mapping.default = opts.fixtures[0] ?? '';
  const mapPath = path.join(opts.workDir, 'stub-map.json');
  // The stub reads its mapping on every run, the DB's UpdatedAt included.
  const writeMapping = (updatedAt?: string) => writeFileSync(mapPath, JSON.stringify(updatedAt === undefined ? mapping : { ...mapping, db: { updatedAt } }));
  writeMapping();
  const logPath = path.join(opts.workDir, 'trivy-stub.log');
  const env = { TRIVY_STUB_MAP: mapPath, TRIVY_STUB_LOG: logPath, TRIVY_STUB_SLEEP_MS: String(opts.scanMs) };
  return { trivyPath: writeTrivyWrapper(opts.workDir, env, [process.execPath, opts.stubPath]), logPath, setDbUpdatedAt: writeMapping };
}

function writeFastStubFiles(opts: StubOptions): StubFiles {
  if (!existsSync(opts.fastStubPath)) throw new Error(`fast Trivy stand-in not found at ${opts.fastStubPath}`);
  const mapDir = path.join(opts.workDir, 'stub-map');
  mkdirSync(mapDir);
  for (const [repository, fixture] of fixtureByRepository(opts)) symlinkSync(fixture, path.join(mapDir, repository.replaceAll('/', '_')));
  const logPath = path.join(opts.workDir, 'trivy-stub.log');
  const dbFile = path.join(opts.workDir, 'db-updated-at');
  const env = { BENCH_TRIVY_MAP_DIR: mapDir, BENCH_TRIVY_LOG: logPath, BENCH_TRIVY_SLEEP_MS: String(opts.scanMs), BENCH_TRIVY_DB_UPDATED_AT_FILE: dbFile };
  return {
    trivyPath: writeTrivyWrapper(opts.workDir, env, ['/bin/bash', opts.fastStubPath]),
    logPath,
    setDbUpdatedAt: (value) => writeFileSync(dbFile, `${value}\n`),
  };
}

export interface StubEvent {
  event: string;
  t: number;
  pid: number;
  argv?: string[];
  exitCode?: number;
  dbDownloaded?: boolean;
  target?: string;
}

export function readStubLog(logPath: string): StubEvent[] {
  if (!existsSync(logPath)) return [];
  const events: StubEvent[] = [];
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      events.push(JSON.parse(line) as StubEvent);
    } catch {
      // A line being written while we read; the next read sees it whole.
    }
  }
  return events;
}

function isDbDownload(e: StubEvent): boolean {
  return e.argv?.includes('--download-db-only') === true || e.argv?.includes('--download-java-db-only') === true;
}

/** Scans started in [fromMs, toMs): `trivy image` runs that are not DB downloads, and `trivy sbom` rescans. */
export function scansBetween(events: StubEvent[], fromMs: number, toMs = Infinity): StubEvent[] {
  return events.filter((e) => e.event === 'start' && (e.argv?.[0] === 'sbom' || (e.argv?.[0] === 'image' && !isDbDownload(e))) && e.t >= fromMs && e.t < toMs);
}

/** Registry pulls started in [fromMs, toMs): image scans (a `trivy sbom` rescan asks no registry). */
export function registryPullsBetween(events: StubEvent[], fromMs: number, toMs = Infinity): StubEvent[] {
  return events.filter((e) => e.event === 'start' && e.argv?.[0] === 'image' && !isDbDownload(e) && e.t >= fromMs && e.t < toMs);
}

/** Start times of the vulnerability DB downloads, in order. */
export function dbDownloadTimes(events: StubEvent[]): number[] {
  return events.filter((e) => e.event === 'start' && e.argv?.includes('--download-db-only') === true).map((e) => e.t);
}

/** DB downloads: explicit --download-db-only runs plus scans that fetched the DB themselves. */
export function dbDownloads(events: StubEvent[]): number {
  const explicit = events.filter((e) => e.event === 'start' && e.argv?.includes('--download-db-only') === true).length;
  const implicit = events.filter((e) => e.event === 'end' && e.dbDownloaded === true && !isDbDownloadPid(events, e.pid)).length;
  return explicit + implicit;
}

function isDbDownloadPid(events: StubEvent[], pid: number): boolean {
  return events.some((e) => e.pid === pid && e.event === 'start' && isDbDownload(e));
}

/** Scans that ended with a non-zero exit code (failures would make the other figures meaningless). */
export function failedScans(events: StubEvent[]): number {
  const scanPids = new Set(scansBetween(events, 0).map((e) => e.pid));
  return events.filter((e) => e.event === 'end' && scanPids.has(e.pid) && e.exitCode !== 0).length;
}

/** Stub processes started and not yet ended (scans and DB downloads). */
export function runningScans(events: StubEvent[]): number {
  const open = new Set<number>();
  for (const e of events) {
    if (e.event === 'start') open.add(e.pid);
    else if (e.event === 'end') open.delete(e.pid);
  }
  return open.size;
}
