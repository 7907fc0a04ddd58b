// A list+watch cache that never stops silently. client-node's ListWatch stops for good on any error
// other than 410, keeps whole objects, and has no health signal; this one restarts with capped
// backoff, keeps only a transformed (slim) copy of each object, and reports how long it has been down.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { StreamingWatch } from './watch-stream.js';

/** One page of a list call, already normalised: raw items, the snapshot's resourceVersion, next token. */
export interface ListPage {
  items: readonly unknown[];
  resourceVersion: string;
  continueToken?: string;
}

/** Objects delivered to handlers between two yields to the event loop during a relist. */
const EMIT_SLICE = 100;

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Lists one page. The informer pages with `limit` so a 10,000-pod relist never holds one huge response. */
export type ListPageFn = (request: { limit: number; continueToken?: string }) => Promise<ListPage>;

/** What the cache keeps of an object; `key` must be unique (namespace/name), `resourceVersion` detects changes. */
export interface CachedObject {
  key: string;
  resourceVersion: string;
}

export interface InformerHandlers<T> {
  add?: (obj: T) => void;
  update?: (oldObj: T, newObj: T) => void;
  delete?: (obj: T) => void;
}

/** The minimal watch interface (StreamingWatch, client-node's Watch); tests may pass their own. */
export interface WatchClient {
  watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController>;
}

export interface ResilientInformerOptions<T extends CachedObject> {
  /** Short name for logs and readiness reasons, e.g. "pods". */
  name: string;
  /** Watch path without query, e.g. /api/v1/pods or /api/v1/namespaces/ns/pods. */
  path: string;
  labelSelector?: string;
  list: ListPageFn;
  /** Turns a raw object (list page or watch event) into what the cache keeps; undefined drops the object. */
  transform: (raw: unknown) => T | undefined;
  kubeConfig?: KubeConfig;
  watchClient?: WatchClient;
  logger: Logger;
  pageSize?: number;
  /** The next page's size from the objects of the last one (default: pageSize for every page). */
  nextPageSize?: (items: readonly unknown[]) => number;
  /** Server-side watch timeout; jittered by ±20 % so many informers do not reconnect together. */
  watchTimeoutSeconds?: number;
  /** Restart the watch when nothing (event, bookmark, connect) arrived for this long. */
  watchdogMs?: number;
  /** Report unhealthy once the watch has been down this long. */
  unhealthyAfterMs?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  now?: () => number;
  random?: () => number;
}

export interface InformerHealth {
  name: string;
  synced: boolean;
  healthy: boolean;
  /** Epoch ms when the watch was last known to work. */
  lastHealthyAt: number | undefined;
  /** Milliseconds the watch has been down, 0 when up. */
  downForMs: number;
}

class WatchGone extends Error {
  override readonly name = 'WatchGone';
}

function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const record = err as { statusCode?: unknown; code?: unknown };
  if (typeof record.statusCode === 'number') return record.statusCode;
  if (typeof record.code === 'number') return record.code;
  return undefined;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

function isClientTimeout(err: unknown): boolean {
  return err instanceof Error && err.name === 'TimeoutError';
}

/**
 * A resilient informer: lists (paged), then watches from the list's resourceVersion; relists on 410;
 * on any other failure retries with backoff 1 s → 30 s, reset by the next event. Handlers are called
 * synchronously with slim objects; a throwing handler is logged and never stops the informer.
 */
export class ResilientInformer<T extends CachedObject> {
  private readonly objects = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private readonly watchClient: WatchClient;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private resourceVersion = '';
  private running = false;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private backoffMs = 0;
  private downSince: number | undefined;
  private lastHealthyAt: number | undefined;
  private lastActivityAt = 0;
  private currentWatch: AbortController | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private sleepTimer: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private loop: Promise<void> | undefined;
  private eventCount = 0;

  constructor(private readonly options: ResilientInformerOptions<T>) {
    const kubeConfig = options.kubeConfig;
    if (options.watchClient !== undefined) {
      this.watchClient = options.watchClient;
    } else if (kubeConfig !== undefined) {
      // A real API server sends its first bookmark only after about a minute: a quiet watch must not
      // time out before the server-side period ends (per-namespace ones would fall out of the watch
      // cache into 410 and a full relist). Our own watchdog catches a dead connection sooner.
      this.watchClient = new StreamingWatch(kubeConfig, ((options.watchTimeoutSeconds ?? 300) * 1.2 + 60) * 1000);
    } else {
      throw new Error(`informer ${options.name}: kubeConfig or watchClient is required`);
    }
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.log = options.logger.child({ informer: options.name });
  }

  /** Registers handlers; call before start() so the initial list is seen. */
  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  /** Starts the list/watch loop in the background. Returns at once; see whenSynced(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.downSince = this.now();
    this.loop = this.run();
    const watchdogMs = this.options.watchdogMs ?? 10 * 60_000;
    this.watchdogTimer = setInterval(() => this.checkWatchdog(watchdogMs), Math.max(1000, Math.floor(watchdogMs / 4)));
    this.watchdogTimer.unref();
  }

  /** Stops watching and waits for the loop to end. The cache keeps its content. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    if (this.watchdogTimer !== undefined) clearInterval(this.watchdogTimer);
    this.currentWatch?.abort();
    if (this.sleepTimer !== undefined) {
      clearTimeout(this.sleepTimer.timer);
      this.sleepTimer.resolve();
    }
    await this.loop;
  }

  /** Resolves once the first full list has been applied. */
  whenSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  isSynced(): boolean {
    return this.synced;
  }

  get(key: string): T | undefined {
    return this.objects.get(key);
  }

  list(): IterableIterator<T> {
    return this.objects.values();
  }

  size(): number {
    return this.objects.size;
  }

  health(): InformerHealth {
    const now = this.now();
    const downForMs = this.downSince === undefined ? 0 : now - this.downSince;
    const unhealthyAfterMs = this.options.unhealthyAfterMs ?? 60_000;
    return {
      name: this.options.name,
      synced: this.synced,
      healthy: this.synced && downForMs <= unhealthyAfterMs,
      lastHealthyAt: this.lastHealthyAt,
      downForMs,
    };
  }

  private markHealthy(): void {
    const now = this.now();
    this.downSince = undefined;
    this.lastHealthyAt = now;
    this.lastActivityAt = now;
  }

  private markDown(): void {
    this.downSince ??= this.now();
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        if (this.resourceVersion === '') {
          await this.relist();
        }
        const startedAt = this.now();
        const eventsBefore = this.eventCount;
        await this.watchOnce();
        // A server that accepts a watch and ends it at once, again and again, must not make us spin.
        if (this.running && this.eventCount === eventsBefore && this.now() - startedAt < 1000) {
          this.backoffMs = Math.min(this.backoffMs > 0 ? this.backoffMs * 2 : (this.options.baseBackoffMs ?? 1000), this.options.maxBackoffMs ?? 30_000);
          await this.sleep(this.backoffMs);
        }
      } catch (err) {
        if (!this.running) break;
        if (err instanceof WatchGone || statusCodeOf(err) === 410) {
          this.log.debug('watch expired, relisting');
          this.resourceVersion = '';
          continue;
        }
        this.markDown();
        this.backoffMs = Math.min(
          this.backoffMs > 0 ? this.backoffMs * 2 : (this.options.baseBackoffMs ?? 1000),
          this.options.maxBackoffMs ?? 30_000,
        );
        const code = statusCodeOf(err);
        this.log.warn(
          { err: err instanceof Error ? { name: err.name, message: err.message } : String(err), code, retryInMs: this.backoffMs },
          'watch failed, retrying',
        );
        await this.sleep(this.backoffMs);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleepTimer = undefined;
        resolve();
      }, ms);
      this.sleepTimer = { timer, resolve };
    });
  }

  private async relist(): Promise<void> {
    let pageSize = this.options.pageSize ?? 500;
    const fresh = new Map<string, T>();
    let resourceVersion = '';
    let continueToken: string | undefined;
    let restarts = 0;
    do {
      let page: ListPage;
      try {
        page = await this.options.list(continueToken === undefined ? { limit: pageSize } : { limit: pageSize, continueToken });
      } catch (err) {
        // An expired continue token means the snapshot is gone; start the list over, a few times at most.
        if (statusCodeOf(err) === 410 && continueToken !== undefined && restarts < 3) {
          restarts += 1;
          fresh.clear();
          continueToken = undefined;
          continue;
        }
        throw err;
      }
      for (const raw of page.items) {
        const obj = this.options.transform(raw);
        if (obj !== undefined) fresh.set(obj.key, obj);
      }
      resourceVersion = page.resourceVersion;
      continueToken = page.continueToken === '' ? undefined : page.continueToken;
      if (this.options.nextPageSize !== undefined) pageSize = this.options.nextPageSize(page.items);
      // Let timers, probes and other informers run between pages: a relist of thousands of large
      // objects is otherwise one long stretch of parsing and transforming.
      await yieldToEventLoop();
    } while (continueToken !== undefined && this.running);
    if (!this.running) return;

    const previous = new Map(this.objects);
    this.objects.clear();
    // An object whose resourceVersion did not change keeps its cached copy: handlers never see the
    // fresh one, so anything its transform handed over for them would be held by nobody's choice.
    for (const [key, obj] of fresh) {
      const old = previous.get(key);
      this.objects.set(key, old !== undefined && old.resourceVersion === obj.resourceVersion ? old : obj);
    }
    let emitted = 0;
    for (const [key, obj] of fresh) {
      const old = previous.get(key);
      if (old === undefined) this.emit('add', undefined, obj);
      else if (old.resourceVersion !== obj.resourceVersion) this.emit('update', old, obj);
      else continue;
      // Handlers do real work per object (the report handler rebuilds scan knowledge): deliver a
      // relist of thousands of objects in slices.
      emitted += 1;
      if (emitted % EMIT_SLICE === 0) await yieldToEventLoop();
    }
    for (const [key, old] of previous) {
      if (!fresh.has(key)) this.emit('delete', old, undefined);
    }
    this.resourceVersion = resourceVersion;
    this.backoffMs = 0;
    this.markHealthy();
    if (!this.synced) {
      this.synced = true;
      this.log.info({ objects: this.objects.size }, 'informer synced');
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  /** Opens one watch and resolves when it ends normally; rejects with the error that ended it. */
  private watchOnce(): Promise<void> {
    const timeoutBase = this.options.watchTimeoutSeconds ?? 300;
    const timeoutSeconds = Math.max(1, Math.round(timeoutBase * (0.8 + 0.4 * this.random())));
    const query: Record<string, string | number | boolean | undefined> = {
      allowWatchBookmarks: true,
      timeoutSeconds,
      resourceVersion: this.resourceVersion,
      labelSelector: this.options.labelSelector,
    };
    return new Promise<void>((resolve, reject) => {
      let finished = false;
      let gone = false;
      let errorEvent: { code: number | undefined } | undefined;
      const done = (err: unknown): void => {
        if (finished) return;
        finished = true;
        this.currentWatch = undefined;
        if (gone) reject(new WatchGone('watch resourceVersion expired'));
        // A server that keeps answering with an error event must meet our backoff, not a tight loop.
        else if (errorEvent !== undefined) reject(Object.assign(new Error(`watch error event ${String(errorEvent.code ?? 'without a code')}`), { statusCode: errorEvent.code }));
        else if (err === null || err === undefined || isClientTimeout(err) || (isAbort(err) && this.running)) resolve();
        else if (isAbort(err)) resolve();
        else reject(err instanceof Error ? err : new Error(String(err)));
      };
      const onEvent = (phase: string, apiObj: unknown): void => {
        this.lastActivityAt = this.now();
        if (phase === 'ERROR') {
          const code = statusCodeOf(apiObj);
          if (code === 410) gone = true;
          else errorEvent = { code };
          this.currentWatch?.abort();
          return;
        }
        this.eventCount += 1;
        this.backoffMs = 0;
        this.markHealthy();
        const rv = resourceVersionOf(apiObj);
        if (phase === 'BOOKMARK') {
          if (rv !== undefined) this.resourceVersion = rv;
          return;
        }
        const obj = this.options.transform(apiObj);
        if (obj !== undefined) {
          if (phase === 'ADDED' || phase === 'MODIFIED') {
            const old = this.objects.get(obj.key);
            if (old === undefined || old.resourceVersion !== obj.resourceVersion) this.objects.set(obj.key, obj);
            if (old === undefined) this.emit('add', undefined, obj);
            else if (old.resourceVersion !== obj.resourceVersion) this.emit('update', old, obj);
          } else if (phase === 'DELETED') {
            const old = this.objects.get(obj.key);
            this.objects.delete(obj.key);
            this.emit('delete', old ?? obj, undefined);
          }
        }
        if (rv !== undefined) this.resourceVersion = rv;
      };
      this.watchClient
        .watch(this.options.path, query, onEvent, done)
        .then((controller) => {
          if (finished) return;
          this.currentWatch = controller;
          if (!this.running) controller.abort();
          else this.markHealthy();
        })
        .catch((err: unknown) => done(err));
    });
  }

  private checkWatchdog(watchdogMs: number): void {
    if (!this.running || this.currentWatch === undefined) return;
    if (this.now() - this.lastActivityAt > watchdogMs) {
      this.log.warn({ silentForMs: this.now() - this.lastActivityAt }, 'watch silent too long, restarting');
      this.lastActivityAt = this.now();
      // Aborting ends watchOnce normally; the loop reconnects from the last resourceVersion.
      this.currentWatch.abort();
    }
  }

  private emit(type: 'add' | 'update' | 'delete', oldObj: T | undefined, newObj: T | undefined): void {
    for (const handler of this.handlers) {
      try {
        if (type === 'add' && newObj !== undefined) handler.add?.(newObj);
        else if (type === 'update' && oldObj !== undefined && newObj !== undefined) handler.update?.(oldObj, newObj);
        else if (type === 'delete' && oldObj !== undefined) handler.delete?.(oldObj);
      } catch (err) {
        // A handler bug must not stop the watch; the object stays cached and the next event retries.
        this.log.error({ err }, 'informer handler failed');
      }
    }
  }
}

function resourceVersionOf(obj: unknown): string | undefined {
  if (typeof obj !== 'object' || obj === null) return undefined;
  const metadata = (obj as { metadata?: unknown }).metadata;
  if (typeof metadata !== 'object' || metadata === null) return undefined;
  const rv = (metadata as { resourceVersion?: unknown }).resourceVersion;
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
}
