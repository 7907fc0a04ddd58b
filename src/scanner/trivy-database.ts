// The Trivy vulnerability DB (and Java DB) lifecycle in standalone mode: one download at start, then
// one per refresh interval, into the shared cache that every scan reads with --skip-db-update.
//
// Trivy's download is not safe against concurrent readers or writers (trivy-cli.md §5, issue #8454),
// so while a download runs the gate is closed: no scan starts, and the download itself waits (up to
// drainTimeoutMs) for running scans to finish. A failed refresh keeps the old DB and is retried with
// exponential backoff; scans go on meanwhile. In client/server mode the server owns the vulnerability
// DB and readiness is its /healthz; the Java DB is still used by the client (Trivy matches JARs on the
// client side), so it alone is downloaded and refreshed here, under the same gate.
import type { Logger } from 'pino';
import type { ServerFetch } from './server-fetch.js';
import type { TrivyRunner, TrivyVersionInfo } from './trivy-runner.js';

export interface TrivyDatabaseOptions {
  runner: Pick<TrivyRunner, 'downloadDatabases' | 'version'>;
  /** Trivy server URL: client/server mode. */
  server?: string;
  refreshIntervalMs: number;
  /** Retry delay after failed downloads: baseMs * 2^(failures-1), at most maxMs, with jitter (default 30 s .. 30 min). */
  backoff?: { baseMs: number; maxMs: number };
  logger: Logger;
  /** Scans running now (ScanQueue.inProgress); a download waits for them to finish. */
  activeScans?: () => number;
  /** Longest wait for running scans before downloading anyway (default 15 min). */
  drainTimeoutMs?: number;
  /** How often the drain wait looks at activeScans (default 500 ms). */
  drainPollMs?: number;
  /** Server mode: how often /healthz is probed (default 30 s). */
  healthIntervalMs?: number;
  random?: () => number;
  /** Clock for the age of a DB found in the cache (default Date.now). */
  now?: () => number;
  /** Injectable wait, resolved early (not rejected) when the signal aborts. */
  delay?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Server mode: how /healthz and /version are fetched (default: the global fetch). */
  fetch?: ServerFetch;
}

/** Keeps the Trivy DB present and fresh, and gates scans while it is being replaced. */
export class TrivyDatabase {
  private readonly log: Logger;
  private readonly stopController = new AbortController();
  private readonly delay: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly listeners = new Set<(updatedAt: string) => void>();
  private waiters: (() => void)[] = [];
  private hasDb = false;
  private downloading = false;
  private serverHealthy = false;
  private info: TrivyVersionInfo = {};
  private downloadCount = 0;
  private loop: Promise<void> | undefined;

  constructor(private readonly opts: TrivyDatabaseOptions) {
    this.log = opts.logger;
    this.delay = opts.delay ?? abortableDelay;
  }

  /**
   * Starts the lifecycle. Standalone: resolves after the first download attempt (success or not; a
   * failure is retried in the background). Server mode: resolves after the first health probe. Never rejects.
   */
  async start(): Promise<void> {
    if (this.loop) return;
    let firstDone: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (firstDone = resolve));
    const lifecycle = this.opts.server
      ? Promise.all([this.watchServer(firstDone), this.refreshLoop(() => undefined)]).then(() => undefined)
      : this.refreshLoop(firstDone);
    this.loop = lifecycle.catch((err: unknown) => {
      this.log.error({ err }, 'trivy DB lifecycle stopped unexpectedly');
      firstDone();
    });
    await first;
  }

  /** Stops refreshing; a running download is killed. */
  async stop(): Promise<void> {
    this.stopController.abort();
    await this.loop;
  }

  /** Resolves when scans may run: a DB is present and no download is in progress (at once in server mode). */
  whenReady(): Promise<void> {
    if (this.scansAllowed()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** For readiness: a usable DB exists (still true while it is being refreshed); in server mode, /healthz answered. */
  isReady(): boolean {
    return this.opts.server ? this.serverHealthy : this.hasDb;
  }

  /** The DB's UpdatedAt (RFC 3339), once known. */
  updatedAt(): string | undefined {
    return this.info.dbUpdatedAt;
  }

  /** The Trivy version and DB time, for stamping scan results. */
  versionInfo(): TrivyVersionInfo {
    return { ...this.info };
  }

  /** Calls the listener with UpdatedAt after each successful download, and at start when a fresh cached DB is used. Returns an unsubscribe function. */
  onUpdated(listener: (updatedAt: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Download attempts started so far. */
  downloads(): number {
    return this.downloadCount;
  }

  private scansAllowed(): boolean {
    return this.hasDb && !this.downloading;
  }

  private openGateIfAllowed(): void {
    if (!this.scansAllowed()) return;
    const waiting = this.waiters;
    this.waiters = [];
    for (const resolve of waiting) resolve();
  }

  private async refreshLoop(firstDone: () => void): Promise<void> {
    const signal = this.stopController.signal;
    let failures = 0;
    // A restart (the cache is an emptyDir that outlives the container) finds the DB it downloaded:
    // reuse it until it is due, instead of one more download per restart.
    // (Server mode: `trivy version` reads no local vulnerability DB; the Java DB download is cheap
    // when Trivy finds it fresh.)
    const freshForMs = this.opts.server ? 0 : await this.cachedDbFreshFor();
    if (freshForMs > 0) {
      this.hasDb = true;
      this.openGateIfAllowed();
      this.log.info({ dbUpdatedAt: this.info.dbUpdatedAt, dbDownloadedAt: this.info.dbDownloadedAt }, 'trivy DB in the cache is fresh, not downloading');
      // Listeners learn the DB time as after a download (metrics, build info); it did not move.
      const updatedAt = this.info.dbUpdatedAt;
      if (updatedAt !== undefined) for (const l of this.listeners) this.notify(l, updatedAt);
      firstDone();
      await this.delay(freshForMs, signal);
    }
    while (!signal.aborted) {
      const ok = await this.refresh();
      firstDone();
      if (signal.aborted) break;
      failures = ok ? 0 : failures + 1;
      await this.delay(ok ? this.opts.refreshIntervalMs : this.retryDelay(failures), signal);
    }
  }

  /** One download; true on success. Never throws. */
  private async refresh(): Promise<boolean> {
    const signal = this.stopController.signal;
    this.downloading = true;
    try {
      await this.drain(signal);
      if (signal.aborted) return false;
      this.downloadCount++;
      const started = Date.now();
      await this.opts.runner.downloadDatabases(signal);
      this.hasDb = true;
      // In server mode the DB time and version come from the server's /version.
      if (this.opts.server) return true;
      await this.readVersion();
      this.log.info({ dbUpdatedAt: this.info.dbUpdatedAt, durationMs: Date.now() - started }, 'trivy DB downloaded');
      const updatedAt = this.info.dbUpdatedAt;
      if (updatedAt !== undefined) for (const l of this.listeners) this.notify(l, updatedAt);
      return true;
    } catch (err) {
      if (signal.aborted) return false;
      if (!this.hasDb && !this.opts.server) {
        // A DB left in the cache by an earlier run (persistent volume) is better than none.
        await this.readVersion();
        if (this.info.dbUpdatedAt !== undefined) this.hasDb = true;
      }
      this.log.warn({ err: err instanceof Error ? err.message : String(err), keepingOldDb: this.hasDb }, 'trivy DB download failed');
      return false;
    } finally {
      this.downloading = false;
      this.openGateIfAllowed();
    }
  }

  private async drain(signal: AbortSignal): Promise<void> {
    const active = this.opts.activeScans;
    if (!active) return;
    const deadline = Date.now() + (this.opts.drainTimeoutMs ?? 15 * 60_000);
    while (active() > 0 && !signal.aborted) {
      if (Date.now() >= deadline) {
        this.log.warn({ activeScans: active() }, 'scans still running; replacing the trivy DB anyway');
        return;
      }
      await this.delay(this.opts.drainPollMs ?? 500, signal);
    }
  }

  /** How long the DB already in the cache stays fresh (0: none, unknown age, or due). */
  private async cachedDbFreshFor(): Promise<number> {
    await this.readVersion();
    const downloadedAt = Date.parse(this.info.dbDownloadedAt ?? '');
    if (this.info.dbUpdatedAt === undefined || Number.isNaN(downloadedAt)) return 0;
    const age = (this.opts.now ?? Date.now)() - downloadedAt;
    return age >= 0 && age < this.opts.refreshIntervalMs ? this.opts.refreshIntervalMs - age : 0;
  }

  private async readVersion(): Promise<void> {
    try {
      this.info = await this.opts.runner.version();
    } catch (err) {
      this.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'trivy version failed');
    }
  }

  private retryDelay(failures: number): number {
    const { baseMs, maxMs } = this.opts.backoff ?? { baseMs: 30_000, maxMs: 30 * 60_000 };
    const capped = Math.min(maxMs, baseMs * 2 ** (failures - 1));
    return Math.round(capped / 2 + (this.opts.random ?? Math.random)() * (capped / 2));
  }

  private notify(listener: (updatedAt: string) => void, updatedAt: string): void {
    try {
      listener(updatedAt);
    } catch (err) {
      this.log.error({ err }, 'trivy DB listener threw');
    }
  }

  private async watchServer(firstDone: () => void): Promise<void> {
    const signal = this.stopController.signal;
    const doFetch: ServerFetch = this.opts.fetch ?? fetch;
    const base = (this.opts.server ?? '').replace(/\/+$/, '');
    while (!signal.aborted) {
      const wasHealthy = this.serverHealthy;
      try {
        const health = await doFetch(`${base}/healthz`, { signal: AbortSignal.any([signal, AbortSignal.timeout(5_000)]) });
        this.serverHealthy = health.ok;
        if (health.ok) await this.readServerVersion(doFetch, base, signal);
      } catch {
        this.serverHealthy = false;
      }
      if (wasHealthy !== this.serverHealthy) this.log.info({ server: base, healthy: this.serverHealthy }, 'trivy server health changed');
      firstDone();
      await this.delay(this.opts.healthIntervalMs ?? 30_000, signal);
    }
  }

  private async readServerVersion(doFetch: ServerFetch, base: string, signal: AbortSignal): Promise<void> {
    try {
      const res = await doFetch(`${base}/version`, { signal: AbortSignal.any([signal, AbortSignal.timeout(5_000)]) });
      if (!res.ok) return;
      const doc: unknown = await res.json();
      if (typeof doc !== 'object' || doc === null) return;
      const version = 'Version' in doc && typeof doc.Version === 'string' ? doc.Version : undefined;
      const db = 'VulnerabilityDB' in doc && typeof doc.VulnerabilityDB === 'object' && doc.VulnerabilityDB !== null ? doc.VulnerabilityDB : undefined;
      const updatedAt = db && 'UpdatedAt' in db && typeof db.UpdatedAt === 'string' ? db.UpdatedAt : undefined;
      const changed = updatedAt !== undefined && updatedAt !== this.info.dbUpdatedAt;
      this.info = { ...(version ? { version } : {}), ...(updatedAt ? { dbUpdatedAt: updatedAt } : {}) };
      if (changed) for (const l of this.listeners) this.notify(l, updatedAt);
    } catch {
      // /version is informational; health decides readiness.
    }
  }
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
