// Runs the Trivy CLI as a child process: one `trivy image` per digest, the DB downloads, `trivy version`.
//
// Security and robustness choices a reader might otherwise undo:
// - argv arrays, never a shell; the reference is validated so it cannot look like a flag.
// - The child gets a small explicit environment (nothing inherited), so the operator's own variables
//   (service account paths, tokens) never reach Trivy; the proxy, CA and cloud credential variables
//   it does need come by name from config.ts (extraEnv). Registry credentials go ONLY into a per-scan
//   DOCKER_CONFIG folder (0700) whose config.json (0600) holds just the target registry; unlike
//   TRIVY_USERNAME/PASSWORD, which Trivy sends to every registry it talks to (trivy-cli.md §3). That
//   folder can live apart from the scan's scratch folder (credentialsDir: memory, not disk).
// - The child is spawned detached, i.e. as the leader of its own process group, so a timeout or
//   shutdown signals the whole group (SIGTERM, then SIGKILL after a grace period) and no helper
//   process Trivy started survives it. It is started by a small helper process (child-spawner.ts):
//   a fork of the operator's own large process blocked its event loop for milliseconds per child.
// - The report is written by Trivy to a private file and read back as one Buffer, never accumulated
//   from stdout; the parser then skips what it does not need.
// - With an SbomCache, a digest's first scan pulls the image and keeps its SBOM (`trivy convert` of the
//   report); later scans read that SBOM (`trivy sbom`) and make no registry request
//   (docs/trivy-sbom-rescans.md). An SBOM Trivy cannot read is discarded and the image scanned again.
//   With scanSlots, the first scan's report is held on the cache volume and converted when no scan
//   waits for a slot; a scan of a digest whose report is still held has it converted first.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { parseImageReference } from '../images/image-reference.js';
import { sharedChildSpawner } from './child-spawner.js';
import type { ChildSpawner, SpawnHandle, SpawnOptions } from './child-spawner.js';
import { classifyTrivyFailure } from './failure-classifier.js';
import { ScanFailure } from './scan-failure.js';
import { SEVERITIES } from './scan-result.js';
import type { ScanResult, Severity } from './scan-result.js';
import { asImageResult, blamesSbomFile, reportedArtifactName, sbomKeyOf, sbomStem } from './sbom-cache.js';
import type { SbomCache, SbomKey, SbomMeta } from './sbom-cache.js';
import { parseTrivyReport, readArtifactName, readRepoDigests, TrivyReportError } from './trivy-report-parser.js';

/** Credentials for one registry, from a pod's imagePullSecrets. Values never reach argv or logs. */
export interface RegistryCredentials {
  /** Host as it appears in the repository, e.g. docker.io or registry.example.com:5000. */
  registry: string;
  auth: { username?: string; password?: string; auth?: string; identitytoken?: string; registrytoken?: string };
  /** "namespace/secret-name", for messages. */
  source: string;
}

export interface ScanTarget {
  /** Fully qualified, e.g. docker.io/library/nginx. */
  repository: string;
  /** sha256:<64 hex>. */
  digest: string;
  /** os/arch of the node running the pod, e.g. linux/arm64. */
  platform?: string;
  credentials?: RegistryCredentials;
}

export interface TrivyVersionInfo {
  version?: string;
  /** RFC 3339, VulnerabilityDB.UpdatedAt. */
  dbUpdatedAt?: string;
  /** RFC 3339, VulnerabilityDB.DownloadedAt: when the DB in the cache was fetched. */
  dbDownloadedAt?: string;
}

export interface TrivyRunnerOptions {
  trivyPath: string;
  cacheDir: string;
  /** Parent of the per-scan private temp folders (default: the OS temp dir). */
  tmpDir?: string;
  /**
   * Parent of the per-scan DOCKER_CONFIG folders (default: inside the scan's temp folder). In the
   * Deployment a memory-backed emptyDir, so registry credentials never touch the node's disk while
   * Trivy's large scratch files stay on disk, outside the container's memory limit.
   */
  credentialsDir?: string;
  server?: string;
  serverToken?: string;
  /** PEM CA bundle for an https server, passed as Trivy's --cacert (added to the system CAs). */
  serverCa?: string;
  severities: Severity[];
  ignoreUnfixed: boolean;
  timeoutMs: number;
  dbRepository?: string;
  javaDbRepository?: string;
  logger: Logger;
  /** Time between SIGTERM and SIGKILL of the process group (default 5 s). */
  killGraceMs?: number;
  /** Timeout of each DB download (default 30 min; the Java DB is large). */
  downloadTimeoutMs?: number;
  /** PATH given to the child (default: the usual system directories). */
  pathEnv?: string;
  /** Further variables for the child, e.g. HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE (or the stub's TRIVY_STUB_*). */
  extraEnv?: Record<string, string>;
  /**
   * GOMEMLIMIT of every child, in bytes: Go's garbage collector then works harder near it instead of
   * growing the heap until the container's OOM kill (which takes the operator with it).
   */
  memoryLimitBytes?: number;
  /** Sets TRIVY_INSECURE for registries without TLS. */
  insecure?: boolean;
  /** Reports larger than this are refused as invalid output (default 1 GiB). */
  maxReportBytes?: number;
  /** Scanner facts to stamp on results, e.g. the DB's UpdatedAt from TrivyDatabase. */
  scannerInfo?: () => TrivyVersionInfo;
  /** Keeps each digest's SBOM so rescans need no registry request (none: every scan pulls the image). */
  sbomCache?: SbomCache;
  /** Starts the children (default: the process's one helper, child-spawner.ts). */
  spawner?: ChildSpawner;
  /**
   * Children of scan() at once (image, SBOM and convert runs alike; the scan queue's concurrency). The
   * helper holds a run until a place is free, so a queue may start a few scans ahead of its slots and
   * the next child starts as one exits. Unset: no limit here.
   */
  scanSlots?: number;
  /**
   * With an SbomCache and scanSlots: a first scan's report, up to this many bytes of them at once, is
   * kept on the cache volume and converted to its SBOM once the caller says no scans wait
   * (convertHeldReports), instead of in the scan's slot (default 256 MiB; 0: always at once).
   */
  maxHeldReportBytes?: number;
}

/** A first scan's report kept until Trivy converts it to the digest's SBOM (holdReport). */
interface HeldReport {
  reportPath: string;
  meta: SbomMeta;
  bytes: number;
  /** convertHeldReports asked for it: it converts as one of at most scanSlots at a time. */
  asked: boolean;
  /** The conversion, once started (by that turn, or by a scan of the digest). */
  done: Promise<void> | undefined;
  /** A scan of the digest waits for it: it goes ahead of the scans waiting for a slot. */
  wanted: boolean;
  handle: SpawnHandle | undefined;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
// Registry host (a name or a bracketed IPv6 address)[:port] then path components; no whitespace, no leading '-', no tag or digest.
const REPOSITORY = /^(?:[a-z0-9][a-z0-9.-]*|\[[0-9a-f:.]+\])(?::\d+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+$/;
const TAG = /^\w[\w.-]{0,127}$/;
const PLATFORM = /^[a-z0-9]+\/[a-z0-9]+(?:\/[a-z0-9]+)?$/;
const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const MAX_STDERR_CHARS = 1_000_000;
// An --ignore-policy that drops every finding: the SBOM keeps the packages, not the first scan's
// vulnerabilities, which `trivy sbom` finds again and which would make it several times larger.
const DROP_ALL_FINDINGS = 'package trivy\n\ndefault ignore = true\n';

interface ChildRun {
  exitCode?: number;
  signal?: string;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  cancelled: boolean;
  spawnError?: string;
}

/** Runs Trivy for scans, DB downloads and version queries. Safe to share between concurrent scans. */
export class TrivyRunner {
  private readonly log: Logger;
  private readonly tmpDir: string;
  private readonly killGraceMs: number;
  private readonly scanSlots: SpawnOptions['slots'];
  private staleSweep: Promise<void> | undefined;
  /** Process ids of the Trivy children running now, for their memory gauge. */
  private readonly running = new Set<number>();
  private readonly spawner: ChildSpawner;
  /** By sbomStem of the key. */
  private readonly held = new Map<string, HeldReport>();
  private heldBytes = 0;
  /** Conversions of asked-for held reports started and not ended. */
  private heldConverting = 0;
  /** Aborted by stopHeldReports: the conversions end, their reports stay for the next process. */
  private readonly heldStop = new AbortController();

  constructor(private readonly opts: TrivyRunnerOptions) {
    this.log = opts.logger;
    this.spawner = opts.spawner ?? sharedChildSpawner();
    this.tmpDir = opts.tmpDir ?? os.tmpdir();
    this.killGraceMs = opts.killGraceMs ?? 5_000;
    this.scanSlots = opts.scanSlots === undefined ? undefined : { lane: 'scan', limit: opts.scanSlots };
    for (const s of opts.severities) if (!SEVERITIES.includes(s)) throw new Error(`unknown severity ${String(s)}`);
  }

  /**
   * Scans one image digest and returns its vulnerabilities. Throws a classified ScanFailure (never
   * anything else); a cancelled scan throws a transient scanner_error. Does not retry. `onChildStart`
   * is called when its (first) child has started, after any wait for one of the scanSlots; `onChildExit`
   * is called once Trivy has exited, before its report is read.
   */
  async scan(req: ScanTarget, signal?: AbortSignal, onChildExit?: () => void, onChildStart?: () => void): Promise<ScanResult> {
    checkTarget(req);
    if (signal?.aborted) throw cancelledFailure();
    const dir = await this.makeTempDir();
    let exited = false;
    const childExited = () => {
      if (exited) return;
      exited = true;
      onChildExit?.();
    };
    let credentialsDir: string | undefined;
    try {
      const ref = `${req.repository}@${req.digest}`;
      const fromSbom = await this.scanSbom(req, ref, dir, signal, childExited, onChildStart);
      if (fromSbom !== undefined) return fromSbom;
      const started = Date.now();
      const output = path.join(dir, 'report.json');
      const env = this.childEnv(dir);
      if (req.credentials) credentialsDir = await this.giveCredentials(env, dir, req.credentials);
      const args = this.scanArgs(ref, output, req.platform);
      this.log.debug({ repository: req.repository, digest: req.digest, platform: req.platform, credentials: req.credentials?.source, source: 'registry', args }, 'trivy scan starting');
      const run = await this.runTrivy(args, env, { signal, slots: this.scanSlots, onStart: onChildStart });
      this.log.debug({ digest: req.digest, exitCode: run.exitCode, signal: run.signal, timedOut: run.timedOut, durationMs: Date.now() - started }, 'trivy scan exited');
      const failure = this.failureOf(run);
      if (failure !== undefined) throw failure;
      const cache = this.opts.sbomCache;
      if (cache === undefined) {
        childExited();
        return this.stamp(parseReport(await this.readReport(output)));
      }
      if (this.scanSlots !== undefined && this.heldBytes < (this.opts.maxHeldReportBytes ?? 256 * 1024 ** 2)) {
        // The conversion waits for a slot no scan wants: in a burst of first scans (a cold start) each
        // slot runs image scans back to back (bench/README.md: 1-1.5 s of a 32 s cold start).
        childExited();
        const report = await this.readReport(output);
        const result = this.stamp(parseReport(report));
        const meta = this.sbomMeta(req, ref, report);
        if (this.holdReport(cache, report, meta)) return result;
        const staged = await this.convertToSbom(cache, { key: sbomKeyOf(req), image: req.repository }, output, dir, { signal, order: 'next' });
        if (staged !== undefined) await this.commitSbom(cache, staged, meta);
        return result;
      }
      // The conversion starts in this turn and the report is read meanwhile: every file system round
      // trip between the two children kept the slot idle for a turn of a busy event loop. The slot is
      // free once the conversion has exited, whether or not the read is done (it often was not: 48 ms
      // of a 328 ms slot cycle in the 10,000-pod cold start).
      const converting = this.convertToSbom(cache, { key: sbomKeyOf(req), image: req.repository }, output, dir, { signal, order: 'next' }).then((staged) => {
        childExited();
        return staged;
      });
      let report: Buffer;
      try {
        report = await this.readReport(output);
      } catch (err) {
        await discardStaged(await converting);
        throw err;
      }
      const staged = await converting;
      if (staged !== undefined) await this.commitSbom(cache, staged, this.sbomMeta(req, ref, report));
      return this.stamp(parseReport(report));
    } finally {
      childExited();
      // Synchronous: Node's rmSync walks the few files in C++, where the promise version's JS walk (an
      // lstat, unlink or rmdir round trip each) cost 3.6% of the 10,000-pod cold start's main thread
      // and 2.2x the CPU in all (1,000 scan folders: 245 -> 112 ms).
      if (credentialsDir !== undefined) rmSync(credentialsDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * Scans an image by its tag (`repository:tag`), for an admission request about an image that runs
   * nowhere yet, and returns the digest the registry resolved (Trivy's Metadata.RepoDigests) with the
   * result. Pulls from the registry with the credentials given (the asking pod's pull secret) and keeps no SBOM. Throws a classified
   * ScanFailure; invalid_output when the report names no digest. Does not retry.
   */
  async scanReference(req: { repository: string; tag: string; credentials?: RegistryCredentials }, signal?: AbortSignal): Promise<{ digest: string; result: ScanResult }> {
    if (!REPOSITORY.test(req.repository) || !TAG.test(req.tag)) throw new ScanFailure('scanner_error', `Not a repository and tag: ${JSON.stringify(`${req.repository}:${req.tag}`).slice(0, 300)}`, false);
    checkCredentials(req.credentials, req.repository);
    if (signal?.aborted) throw cancelledFailure();
    let credentialsDir: string | undefined;
    return this.withTempHome(async (dir) => {
      const ref = `${req.repository}:${req.tag}`;
      const output = path.join(dir, 'report.json');
      const args = this.scanArgs(ref, output, undefined);
      const env = this.childEnv(dir);
      if (req.credentials) credentialsDir = await this.giveCredentials(env, dir, req.credentials);
      this.log.debug({ repository: req.repository, tag: req.tag, credentials: req.credentials?.source, source: 'registry', args }, 'trivy scan by reference starting');
      const run = await this.runTrivy(args, env, { signal }).finally(async () => {
        if (credentialsDir !== undefined) await rm(credentialsDir, { recursive: true, force: true });
      });
      const failure = this.failureOf(run);
      if (failure !== undefined) throw failure;
      const report = await this.readReport(output);
      const digest = digestOfRepository(readRepoDigests(report), req.repository);
      if (digest === undefined) throw new ScanFailure('invalid_output', `Trivy's report of ${ref} names no digest (Metadata.RepoDigests)`, false);
      return { digest, result: this.stamp(parseReport(report)) };
    });
  }

  /**
   * A scan of the digest's kept SBOM, or undefined when there is none to use (then the image is
   * scanned). An SBOM that Trivy cannot read is discarded: the image scan writes a new one.
   */
  private async scanSbom(req: ScanTarget, ref: string, dir: string, signal: AbortSignal | undefined, childExited: () => void, childStarted: (() => void) | undefined): Promise<ScanResult | undefined> {
    const cache = this.opts.sbomCache;
    if (cache === undefined) return undefined;
    const key = sbomKeyOf(req);
    await this.convertHeldNow(key);
    const entry = await cache.lookup(key, this.opts.scannerInfo?.().version);
    if (entry === undefined) return undefined;
    const started = Date.now();
    const output = path.join(dir, 'report.json');
    const args = this.sbomArgs(entry.sbomPath, output);
    this.log.debug({ repository: req.repository, digest: req.digest, platform: req.platform, source: 'sbom', args }, 'trivy scan starting');
    const run = await this.runTrivy(args, this.childEnv(dir), { signal, slots: this.scanSlots, onStart: childStarted });
    this.log.debug({ digest: req.digest, exitCode: run.exitCode, signal: run.signal, timedOut: run.timedOut, durationMs: Date.now() - started }, 'trivy scan exited');
    const failure = this.failureOf(run);
    if (failure !== undefined) {
      if (run.cancelled || run.spawnError !== undefined || run.timedOut || !blamesSbomFile(run.stderr)) throw failure;
      this.log.warn({ digest: req.digest, image: req.repository, reason: failure.message }, 'the kept SBOM cannot be read; scanning the image instead');
      await cache.discard(key);
      return undefined;
    }
    childExited();
    try {
      const result = this.stamp(parseReport(await this.readReport(output)));
      return asImageResult(result, entry.sbomPath, reportedArtifactName(entry.meta, ref));
    } catch (err) {
      // Not worth a second child in this slot: the next attempt scans the image and rewrites the SBOM.
      await cache.discard(key);
      throw err;
    }
  }

  /**
   * Starts `trivy convert` of a report into a staged SBOM, synchronously up to the spawn, and resolves
   * to the staged file, or undefined when it could not be made (then the next scan pulls again).
   * Never rejects.
   */
  private async convertToSbom(
    cache: SbomCache,
    target: { key: SbomKey; image: string },
    report: string,
    dir: string,
    how: { signal: AbortSignal | undefined; order: 'next' | 'idle'; onSpawn?: (handle: SpawnHandle) => void },
  ): Promise<string | undefined> {
    const fields = { digest: target.key.digest, image: target.image, platform: target.key.platform };
    let staged: string | undefined;
    try {
      staged = cache.stagingPath(target.key);
      const policy = path.join(dir, 'drop-findings.rego');
      writeFileSync(policy, DROP_ALL_FINDINGS, { mode: 0o600 });
      const args = ['convert', '--format', 'cyclonedx', '--output', staged, '--ignore-policy', policy, '--quiet', '--timeout', goDuration(this.opts.timeoutMs), report];
      // `next`: ahead of the scans waiting for a slot, as it finishes a scan already begun.
      const slots = this.scanSlots === undefined ? undefined : { ...this.scanSlots, order: how.order };
      const run = await this.runTrivy(args, this.childEnv(dir), { signal: how.signal, slots, onSpawn: how.onSpawn });
      if (run.cancelled || run.spawnError !== undefined || run.timedOut || run.exitCode !== 0) {
        await discardStaged(staged);
        // Stopped: a held report stays for the next process; a scan's own conversion is simply not done.
        if (run.cancelled) return undefined;
        const why = run.spawnError ?? classifyTrivyFailure(run).message;
        this.log.warn({ ...fields, reason: why }, 'could not keep the SBOM; the next scan pulls the image again');
        return undefined;
      }
      return staged;
    } catch (err) {
      this.log.warn({ ...fields, reason: err instanceof Error ? err.message : String(err) }, 'could not keep the SBOM; the next scan pulls the image again');
      await discardStaged(staged);
      return undefined;
    }
  }

  /** What a digest's SBOM entry will say, from its first scan's report. */
  private sbomMeta(req: ScanTarget, ref: string, report: Buffer): SbomMeta {
    const trivyVersion = this.opts.scannerInfo?.().version;
    return {
      digest: req.digest,
      ...(req.platform === undefined ? {} : { platform: req.platform }),
      reference: ref,
      artifactName: readArtifactName(report) ?? ref,
      ...(trivyVersion === undefined ? {} : { trivyVersion }),
      createdAt: new Date().toISOString(),
    };
  }

  /** Puts a converted SBOM in place with its meta. Never throws: without it, the next scan pulls again. */
  private async commitSbom(cache: SbomCache, staged: string, meta: SbomMeta): Promise<void> {
    try {
      await cache.commit(staged, meta);
    } catch (err) {
      // commit() has removed the staged file.
      this.log.warn({ digest: meta.digest, image: meta.reference, platform: meta.platform, reason: err instanceof Error ? err.message : String(err) }, 'could not keep the SBOM; the next scan pulls the image again');
    }
  }

  /**
   * Keeps a first scan's report on the cache volume until convertHeldReports() or a scan of its digest
   * asks for its SBOM. False when it could not be kept (then it is the caller's to convert).
   */
  private holdReport(cache: SbomCache, report: Buffer, meta: SbomMeta): boolean {
    try {
      const reportPath = cache.hold(report, meta);
      if (reportPath !== undefined) this.addHeld(reportPath, meta, report.length);
      return reportPath !== undefined;
    } catch (err) {
      this.log.debug({ digest: meta.digest, image: meta.reference, reason: err instanceof Error ? err.message : String(err) }, 'could not hold the report for a later conversion; converting it now');
      return false;
    }
  }

  private addHeld(reportPath: string, meta: SbomMeta, bytes: number): void {
    this.held.set(sbomStem(meta), { reportPath, meta, bytes, asked: false, done: undefined, wanted: false, handle: undefined });
    this.heldBytes += bytes;
  }

  /**
   * Picks up the reports an earlier process held and did not convert (a restart in a burst of first
   * scans); the operator calls it once at start, after pruning the SBOMs of digests no longer running.
   */
  async resumeHeldReports(): Promise<number> {
    const cache = this.opts.sbomCache;
    if (cache === undefined) return 0;
    let resumed = 0;
    for (const { reportPath, meta, bytes } of await cache.held()) {
      if (this.held.has(sbomStem(meta))) continue;
      this.addHeld(reportPath, meta, bytes);
      resumed++;
    }
    if (resumed > 0) this.log.info({ reports: resumed }, 'first-scan reports an earlier process held are converted when no scans wait');
    return resumed;
  }

  /**
   * Converts the held reports, at most scanSlots at a time, each behind every other run waiting for a
   * slot: call it when no scans are queued or running. Asking for all at once had hundreds of
   * conversions finishing together, their file commits ahead of the last scans' report reads.
   */
  convertHeldReports(): void {
    for (const held of this.held.values()) held.asked = true;
    this.convertAskedHeld();
  }

  private convertAskedHeld(): void {
    const cache = this.opts.sbomCache;
    if (cache === undefined || this.heldStop.signal.aborted) return;
    const limit = this.opts.scanSlots ?? 1;
    for (const held of this.held.values()) {
      if (this.heldConverting >= limit) return;
      // Started already: by this loop, or by a scan of its digest (convertHeldNow).
      if (!held.asked || held.done !== undefined) continue;
      this.heldConverting++;
      void this.convertHeld(cache, held).finally(() => {
        this.heldConverting--;
        this.convertAskedHeld();
      });
    }
  }

  /** Stops the conversions of held reports (their files stay for the next process) and waits for them. */
  async stopHeldReports(): Promise<void> {
    const all = [...this.held.values()];
    this.heldStop.abort();
    await Promise.all(all.map((held) => held.done));
    for (const held of all) if (held.done === undefined) this.forgetHeld(held);
  }

  private forgetHeld(held: HeldReport): void {
    if (this.held.get(sbomStem(held.meta)) !== held) return;
    this.held.delete(sbomStem(held.meta));
    this.heldBytes -= held.bytes;
  }

  private convertHeld(cache: SbomCache, held: HeldReport): Promise<void> {
    const { meta } = held;
    const key = sbomKeyOf(meta);
    held.done = (async () => {
      let dir: string | undefined;
      try {
        dir = await this.makeTempDir();
        const onSpawn = (handle: SpawnHandle): void => {
          held.handle = handle;
          if (held.wanted) handle.promote();
        };
        const staged = await this.convertToSbom(cache, { key, image: meta.reference }, held.reportPath, dir, { signal: this.heldStop.signal, order: held.wanted ? 'next' : 'idle', onSpawn });
        if (staged !== undefined) await this.commitSbom(cache, staged, meta);
        if (!this.heldStop.signal.aborted) await cache.release(key);
      } catch (err) {
        this.log.warn({ digest: meta.digest, image: meta.reference, reason: err instanceof Error ? err.message : String(err) }, 'could not convert a held report; the next scan pulls the image again');
        await cache.release(key);
      } finally {
        if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
        this.forgetHeld(held);
      }
    })();
    return held.done;
  }

  /** A scan of `key` needs its SBOM: a held report of it is converted ahead of the waiting scans, and awaited. */
  private async convertHeldNow(key: SbomKey): Promise<void> {
    const held = this.held.get(sbomStem(key));
    const cache = this.opts.sbomCache;
    if (held === undefined || cache === undefined) return;
    held.wanted = true;
    held.handle?.promote();
    await (held.done ?? this.convertHeld(cache, held));
  }

  /**
   * Downloads the vulnerability DB, then the Java DB, into the shared cache dir. Throws a classified
   * ScanFailure on failure; does not retry. In client/server mode only the Java DB: the server owns
   * the vulnerability DB, but Trivy matches JARs on the client.
   */
  async downloadDatabases(signal?: AbortSignal): Promise<void> {
    const timeoutMs = this.opts.downloadTimeoutMs ?? 30 * 60_000;
    const steps: [string, string, string | undefined][] = [
      ['--download-db-only', '--db-repository', this.opts.dbRepository],
      ['--download-java-db-only', '--java-db-repository', this.opts.javaDbRepository],
    ];
    if (this.opts.server) steps.shift();
    for (const [flag, repoFlag, repo] of steps) {
      const args = ['image', flag, '--cache-dir', this.opts.cacheDir, '--skip-version-check', '--disable-telemetry', '--quiet', '--timeout', goDuration(timeoutMs)];
      if (repo) args.push(repoFlag, repo);
      const failure = await this.withTempHome(async (dir) => {
        const run = await this.runTrivy(args, this.childEnv(dir), { timeoutMs, signal });
        return this.failureOf(run);
      });
      if (failure) {
        const what = flag === '--download-db-only' ? 'vulnerability DB' : 'Java DB';
        throw new ScanFailure(failure.reason, `Downloading the ${what} failed: ${failure.message}`, failure.transient, { cause: failure });
      }
    }
  }

  /** Runs `trivy version --format json`: the CLI version and the local DB's UpdatedAt. Throws ScanFailure. */
  async version(): Promise<TrivyVersionInfo> {
    const run = await this.withTempHome((dir) => this.runTrivy(['version', '--format', 'json', '--cache-dir', this.opts.cacheDir], this.childEnv(dir), { timeoutMs: 60_000, stdout: 'pipe' }));
    const failure = this.failureOf(run);
    if (failure !== undefined) throw failure;
    let doc: unknown;
    try {
      doc = JSON.parse(run.stdout);
    } catch (err) {
      throw new ScanFailure('invalid_output', 'trivy version --format json did not print JSON', false, { cause: err });
    }
    const info: TrivyVersionInfo = {};
    if (isRecord(doc)) {
      if (typeof doc.Version === 'string') info.version = doc.Version;
      const db = doc.VulnerabilityDB;
      if (isRecord(db) && typeof db.UpdatedAt === 'string') info.dbUpdatedAt = db.UpdatedAt;
      if (isRecord(db) && typeof db.DownloadedAt === 'string') info.dbDownloadedAt = db.DownloadedAt;
    }
    return info;
  }

  /** Why a run failed, classified (cancelled, not started, timed out, non-zero exit); undefined when it succeeded. */
  private failureOf(run: ChildRun): ScanFailure | undefined {
    if (run.cancelled) return cancelledFailure();
    if (run.spawnError !== undefined) return new ScanFailure('scanner_error', `Trivy could not be started (${this.opts.trivyPath}): ${run.spawnError}`, false);
    if (run.timedOut || run.exitCode !== 0) return classifyTrivyFailure(run);
    return undefined;
  }

  private scanArgs(ref: string, output: string, platform: string | undefined): string[] {
    const o = this.opts;
    const args = ['image', '--format', 'json', '--output', output, '--scanners', 'vuln', '--image-src', 'remote'];
    if (platform) args.push('--platform', platform);
    args.push('--cache-dir', o.cacheDir, ...this.dbAndFilterArgs());
    // The packages are what the SBOM is made of; without an SBOM cache they are most of a report, unused.
    args.push(o.sbomCache === undefined ? '--list-all-pkgs=false' : '--list-all-pkgs', ref);
    return args;
  }

  /** `trivy sbom` with the image scan's settings, minus what only an image has (source, platform). */
  private sbomArgs(sbomPath: string, output: string): string[] {
    const o = this.opts;
    return ['sbom', '--format', 'json', '--output', output, '--scanners', 'vuln', '--cache-dir', o.cacheDir, ...this.dbAndFilterArgs(), '--list-all-pkgs=false', sbomPath];
  }

  /** Where the DBs come from, and the result filters: the same for an image scan and an SBOM rescan. */
  private dbAndFilterArgs(): string[] {
    const o = this.opts;
    const args: string[] = [];
    if (o.server) {
      // Client mode: the server owns the vulnerability DB and the scan cache; the client reads only
      // the Java DB, which TrivyDatabase keeps fresh, so no scan downloads it concurrently.
      args.push('--server', o.server, '--skip-java-db-update');
      // A path, not a secret. Trivy reads it at each start, so a rotated CA is picked up.
      if (o.serverCa) args.push('--cacert', o.serverCa);
    } else {
      // Memory scan cache avoids fanal.db's exclusive lock between concurrent scans (trivy-cli.md §5);
      // the DBs are refreshed by TrivyDatabase only, never by a scan.
      args.push('--cache-backend', 'memory', '--skip-db-update', '--skip-java-db-update');
    }
    args.push('--skip-version-check', '--disable-telemetry', '--quiet', '--timeout', goDuration(o.timeoutMs));
    if (o.severities.length > 0 && o.severities.length < SEVERITIES.length) args.push('--severity', o.severities.join(','));
    if (o.ignoreUnfixed) args.push('--ignore-unfixed');
    return args;
  }

  private childEnv(home: string): Record<string, string> {
    const env: Record<string, string> = { ...this.opts.extraEnv, PATH: this.opts.pathEnv ?? DEFAULT_PATH, HOME: home, TMPDIR: home };
    if (this.opts.server && this.opts.serverToken) env.TRIVY_TOKEN = this.opts.serverToken;
    if (this.opts.insecure) env.TRIVY_INSECURE = 'true';
    // Whole MiB, a suffix Go's runtime reads (B, KiB, MiB, GiB, TiB).
    if (this.opts.memoryLimitBytes !== undefined) env.GOMEMLIMIT = `${Math.max(1, Math.floor(this.opts.memoryLimitBytes / 2 ** 20))}MiB`;
    return env;
  }

  private async withTempHome<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = await this.makeTempDir();
    try {
      return await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * A private folder for one Trivy run, named imagescan-<our pid>-<our start tick>-*. Before the first
   * one, folders left by an operator process that no longer runs (kill -9, OOM: no `finally` ran) are
   * removed, since they may hold a DOCKER_CONFIG with registry credentials; an emptyDir /tmp outlives
   * container restarts.
   */
  private async makeTempDir(parent: string = this.tmpDir): Promise<string> {
    this.staleSweep ??= this.removeStaleTempDirs();
    await this.staleSweep;
    ownStartTick ??= processStartTick('self');
    const started = await ownStartTick;
    // Synchronous: one mkdir on the local /tmp, and a scan slot then starts its child in the same turn
    // instead of waiting for a threadpool round trip behind the other I/O of a busy loop.
    return mkdtempSync(path.join(parent, started === undefined ? `imagescan-${process.pid}-` : `imagescan-${process.pid}-${started}-`));
  }

  /** Writes `credentials` for one run and points the child's DOCKER_CONFIG at them; returns the folder, to remove after the run. */
  private async giveCredentials(env: Record<string, string>, dir: string, credentials: RegistryCredentials): Promise<string> {
    const folder = this.opts.credentialsDir === undefined ? path.join(dir, 'docker') : await this.makeCredentialsDir(this.opts.credentialsDir);
    try {
      env.DOCKER_CONFIG = await writeDockerConfig(folder, credentials);
    } catch (err) {
      // A half-written config may hold the secret: the caller has no folder to remove yet.
      await rm(folder, { recursive: true, force: true });
      throw err;
    }
    return folder;
  }

  /** The per-scan DOCKER_CONFIG folder in credentialsDir; a full or missing volume is a scanner_error, retried. */
  private async makeCredentialsDir(parent: string): Promise<string> {
    try {
      return await this.makeTempDir(parent);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new ScanFailure('scanner_error', `Could not make a folder for registry credentials in ${parent}: ${code}`, true, { cause: err });
    }
  }

  private async removeStaleTempDirs(): Promise<void> {
    const parents = this.opts.credentialsDir === undefined ? [this.tmpDir] : [this.tmpDir, this.opts.credentialsDir];
    await Promise.all(parents.map((parent) => this.removeStaleIn(parent)));
  }

  private async removeStaleIn(tmpDir: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(tmpDir);
    } catch {
      return;
    }
    const verdicts = await Promise.all(names.map((name) => isLeftover(name)));
    const stale = names.filter((_, i) => verdicts[i]);
    // A Trivy child of the dead process may still be writing there (its parent's death does not stop
    // it outside a container): a file created while the folder is emptied fails the last rmdir with
    // ENOTEMPTY, which rm retries.
    const results = await Promise.allSettled(stale.map((name) => rm(path.join(tmpDir, name), { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ folder: stale[i], error: String(r.reason) }] : []));
    if (stale.length > failed.length) this.log.info({ removed: stale.length - failed.length, tmpDir }, 'removed temporary scan folders left by a previous operator process');
    if (failed.length > 0) this.log.warn({ failed, tmpDir }, 'could not remove temporary scan folders left by a previous operator process');
  }

  private async readReport(output: string): Promise<Buffer> {
    let size: number;
    try {
      size = (await stat(output)).size;
    } catch {
      throw new ScanFailure('invalid_output', 'Trivy exited successfully but wrote no report', false);
    }
    const limit = this.opts.maxReportBytes ?? 1024 ** 3;
    if (size > limit) throw new ScanFailure('invalid_output', `Trivy's report is ${size} bytes, more than the ${limit} bytes allowed`, false);
    return readFile(output);
  }

  private stamp(result: ScanResult): ScanResult {
    const info = this.opts.scannerInfo?.() ?? {};
    const version = result.scanner.version ?? info.version;
    result.scanner = { name: 'Trivy', ...(version ? { version } : {}), ...(info.dbUpdatedAt ? { dbUpdatedAt: info.dbUpdatedAt } : {}) };
    return result;
  }

  /** Process ids of the Trivy children running now (scans, DB downloads, version probes). */
  childPids(): number[] {
    return [...this.running];
  }

  /** The process that starts the children (child-spawner.ts), while it runs. */
  spawnerPid(): number | undefined {
    return this.spawner.helperPid();
  }

  /** Runs Trivy in its own process group; kills the whole group on timeout or abort. Never rejects. */
  private async runTrivy(args: string[], env: Record<string, string>, how: RunHow): Promise<ChildRun> {
    const { signal, slots, onStart } = how;
    const timeoutMs = how.timeoutMs ?? this.opts.timeoutMs;
    const child = this.spawner.run(this.opts.trivyPath, args, { env, stdout: how.stdout ?? 'ignore', maxChars: MAX_STDERR_CHARS, ...(slots === undefined ? {} : { slots }) });
    how.onSpawn?.(child);
    let pid: number | undefined;
    let timedOut = false;
    let cancelled = false;
    let killWanted = false;
    let graceTimer: NodeJS.Timeout | undefined;
    let timer: NodeJS.Timeout | undefined;
    const killGroup = () => {
      killWanted = true;
      const group = pid;
      if (group === undefined) return child.cancel();
      if (graceTimer !== undefined) return;
      signalGroup(group, 'SIGTERM');
      graceTimer = setTimeout(() => signalGroup(group, 'SIGKILL'), this.killGraceMs);
    };
    const onAbort = () => ((cancelled = true), killGroup());
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    void child.pid.then((started) => {
      pid = started;
      if (pid === undefined) return;
      this.running.add(pid);
      onStart?.();
      // The timeout counts from the start: a run may have waited for its lane.
      if (timeoutMs > 0 && !killWanted) timer = setTimeout(() => ((timedOut = true), killGroup()), timeoutMs);
      // An abort that came before the pid did.
      if (killWanted) killGroup();
    });
    try {
      const result = await child.done;
      const run: ChildRun = { stdout: result.stdout, stderr: result.stderr, timedOut, cancelled };
      if (result.exitCode !== undefined) run.exitCode = result.exitCode;
      if (result.signal !== undefined) run.signal = result.signal;
      if (result.spawnError !== undefined) run.spawnError = result.spawnError;
      return run;
    } finally {
      await child.pid;
      if (pid !== undefined) this.running.delete(pid);
      clearTimeout(timer);
      clearTimeout(graceTimer);
      signal?.removeEventListener('abort', onAbort);
      // A helper that closed its stdio would not have held us up; make sure it is gone too.
      if (pid !== undefined && (timedOut || cancelled)) signalGroup(pid, 'SIGKILL');
    }
  }
}

/** How runTrivy runs a child. */
interface RunHow {
  /** Default: the scan timeout (--scan-timeout); 0 for none. */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** Default 'ignore': only `trivy version` prints what we read. */
  stdout?: 'ignore' | 'pipe';
  /** A place in the spawner's lane to wait for (scan(), its SBOM and convert runs). */
  slots?: SpawnOptions['slots'];
  /** Called once the child has started (after any wait for `slots`). */
  onStart?: (() => void) | undefined;
  /** Called with the run's handle as soon as it is asked for (to promote it while it waits). */
  onSpawn?: ((handle: SpawnHandle) => void) | undefined;
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/**
 * When process `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat); undefined
 * without /proc or without that process. With the pid it names one process for the whole uptime.
 */
async function processStartTick(pid: number | 'self'): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 2, the command, is in parentheses and may hold spaces: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

let ownStartTick: Promise<string | undefined> | undefined;

/** Whether a folder in TMPDIR is a scan folder of an operator process that no longer runs. */
async function isLeftover(name: string): Promise<boolean> {
  const match = /^imagescan-(\d+)-(?:(\d+)-)?/.exec(name);
  const pid = Number(match?.[1] ?? NaN);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  // Our own pid counts too: we have created nothing yet, so such a folder is from an earlier process
  // that had the same pid (PID 1 in a restarted container).
  if (pid === process.pid || !processExists(pid)) return true;
  // The pid is in use, but maybe by a later process: pids wrap (at 32,768 on many machines).
  const started = match?.[2] === undefined ? undefined : await processStartTick(pid);
  return started !== undefined && started !== match?.[2];
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function cancelledFailure(): ScanFailure {
  return new ScanFailure('scanner_error', 'The scan was cancelled because the operator is stopping', true);
}

function parseReport(report: Buffer): ScanResult {
  try {
    return parseTrivyReport(report);
  } catch (err) {
    if (err instanceof TrivyReportError) throw new ScanFailure('invalid_output', `Trivy's output is not a usable report: ${err.message}`, false, { cause: err });
    throw err;
  }
}

async function discardStaged(staged: string | undefined): Promise<void> {
  if (staged !== undefined) await rm(staged, { force: true });
}

/**
 * The digest of `repository` among RepoDigests (`nginx@sha256:…`, Docker Hub names short): the entry
 * whose name is the repository, else the first one (a remote scan lists only the reference's own).
 */
function digestOfRepository(repoDigests: readonly string[], repository: string): string | undefined {
  const parsed = repoDigests.flatMap((text) => {
    try {
      const ref = parseImageReference(text);
      return ref.digest === undefined ? [] : [ref];
    } catch {
      return [];
    }
  });
  return (parsed.find((p) => p.repository === repository) ?? parsed[0])?.digest;
}

function checkTarget(req: ScanTarget): void {
  if (!DIGEST.test(req.digest)) throw new ScanFailure('scanner_error', `Not a sha256 image digest: ${JSON.stringify(req.digest).slice(0, 100)}`, false);
  if (!REPOSITORY.test(req.repository)) throw new ScanFailure('scanner_error', `Not a fully qualified repository: ${JSON.stringify(req.repository).slice(0, 200)}`, false);
  if (req.platform !== undefined && !PLATFORM.test(req.platform)) throw new ScanFailure('scanner_error', `Not an os/arch platform: ${JSON.stringify(req.platform).slice(0, 100)}`, false);
  checkCredentials(req.credentials, req.repository);
}

function checkCredentials(credentials: RegistryCredentials | undefined, repository: string): void {
  if (credentials && !sameRegistry(credentials.registry, repository.split('/')[0] ?? '')) {
    // Handing a secret to another registry would leak it; this is a caller bug, not a scan failure to retry.
    throw new ScanFailure('auth', `Credentials from ${credentials.source} are for ${credentials.registry}, not for ${repository}`, false);
  }
}

function sameRegistry(a: string, b: string): boolean {
  return a === b || (DOCKER_HUB.has(a) && DOCKER_HUB.has(b));
}

/** Writes config.json with only the target registry's entry into `configDir` (made 0700 if missing); returns the folder. */
async function writeDockerConfig(configDir: string, creds: RegistryCredentials): Promise<string> {
  await mkdir(configDir, { mode: 0o700, recursive: true });
  const { username, password, auth, identitytoken, registrytoken } = creds.auth;
  const entry: Record<string, string> = {};
  if (auth) entry.auth = auth;
  else if (username !== undefined || password !== undefined) entry.auth = Buffer.from(`${username ?? ''}:${password ?? ''}`).toString('base64');
  if (identitytoken) entry.identitytoken = identitytoken;
  if (registrytoken) entry.registrytoken = registrytoken;
  // go-containerregistry looks Docker Hub up under the legacy index URL.
  const key = DOCKER_HUB.has(creds.registry) ? 'https://index.docker.io/v1/' : creds.registry;
  await writeFile(path.join(configDir, 'config.json'), JSON.stringify({ auths: { [key]: entry } }), { mode: 0o600, flag: 'wx' });
  return configDir;
}

function goDuration(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1000))}s`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
