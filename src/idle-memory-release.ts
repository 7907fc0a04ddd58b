// Gives the memory of a burst of work (cold start, rescan, churn) back to the system once the operator
// is idle again.
//
// V8 keeps the pages its collections free, pooled or committed for the largest heap since, until a
// memory-reducing GC. Its memory reducer starts one when it sees the process idle, but under Node it
// does not: its allocation-rate estimate is updated only at GCs, so at rest, with no GC, it keeps the
// rate of the last busy moment (`--trace-memory-reducer`: "high alloc" at every check, also after 32 s
// without a GC), and Node never tells V8 that the process is idle. An idle operator kept the high-water
// mark of its heap (bench/README.md). This does what the memory reducer would, once per idle period
// after busy work: a memory-reducing full GC, which needs `--expose-gc` (the image's entrypoint sets it).
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Logger } from 'pino';

export interface IdleDetectorOptions {
  /** An interval at least this busy (event-loop utilization, 0..1) is work worth cleaning up after. */
  busyUtilization: number;
  /** An interval at most this busy counts as idle (a scrape or a probe stays below it). */
  idleUtilization: number;
  /** Idle intervals in a row before memory is released. */
  idleIntervals: number;
}

/** Decides, from one event-loop utilization per interval, when to release memory. Pure. */
export class IdleDetector {
  private busySinceRelease = false;
  private idleInARow = 0;

  constructor(private readonly options: IdleDetectorOptions) {}

  /** Takes one interval's utilization; true when memory should be released now. */
  observe(utilization: number): boolean {
    if (utilization >= this.options.busyUtilization) {
      this.busySinceRelease = true;
      this.idleInARow = 0;
      return false;
    }
    if (utilization > this.options.idleUtilization) {
      this.idleInARow = 0;
      return false;
    }
    this.idleInARow += 1;
    if (!this.busySinceRelease || this.idleInARow < this.options.idleIntervals) return false;
    this.busySinceRelease = false;
    return true;
  }
}

export interface IdleMemoryReleaseOptions extends Partial<IdleDetectorOptions> {
  /** globalThis.gc: a function only with --expose-gc; without it nothing is released. */
  gc: NodeJS.GCFunction | undefined;
  logger: Logger;
  /** Length of one interval (default 5 s). */
  intervalMs?: number;
  /** Called just before the memory-reducing collection, to let go of what only caches hold. */
  beforeRelease?: () => void;
  /** For tests: the event-loop utilization since `previous` (default performance.eventLoopUtilization). */
  eventLoopUtilization?: (previous?: EventLoopUtilization) => EventLoopUtilization;
}

/** Starts watching the event loop; stop() ends it. */
export function startIdleMemoryRelease(options: IdleMemoryReleaseOptions): { stop(): void } {
  const gc = options.gc;
  if (gc === undefined) {
    options.logger.debug('node runs without --expose-gc: memory is not released when idle');
    return { stop: () => undefined };
  }
  const utilization = options.eventLoopUtilization ?? ((previous?: EventLoopUtilization) => performance.eventLoopUtilization(previous));
  const detector = new IdleDetector({
    busyUtilization: options.busyUtilization ?? 0.05,
    idleUtilization: options.idleUtilization ?? 0.02,
    idleIntervals: options.idleIntervals ?? 2,
  });
  let last = utilization();
  const timer = setInterval(() => {
    const now = utilization();
    const interval = utilization(last);
    last = now;
    if (!detector.observe(interval.utilization)) return;
    const rssBefore = process.memoryUsage.rss();
    const started = performance.now();
    options.beforeRelease?.();
    // 'last-resort' is V8's memory-reducing collection (what LowMemoryNotification runs): it compacts
    // and returns free pages to the system. A 'regular' full GC keeps them.
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    options.logger.debug(
      { rssBeforeMiB: Math.round(rssBefore / 2 ** 20), rssAfterMiB: Math.round(process.memoryUsage.rss() / 2 ** 20), ms: Math.round(performance.now() - started) },
      'idle: memory released',
    );
  }, options.intervalMs ?? 5_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
