// The operator under test: its own Node process (the bundle dist/main.mjs, as the image runs it),
// measured from outside. RSS and CPU come from /proc/<pid> (free for the operator); heap and event-loop
// delay from its /metrics, scraped at a Prometheus-like interval so scraping itself stays cheap. The
// metrics are secure as in a cluster (the default): HTTPS, and a token the API server reviews.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { createServer } from 'node:net';

export interface OperatorHandle {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly metricsUrl: string;
  /** Bearer token the scrapes send (a user the fake API server authenticates and lets get /metrics). */
  readonly metricsToken: string;
  readonly startedAtMs: number;
  exited: Promise<number | string>;
  /** SIGTERM, SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<number | string>;
}

/** A free loopback port (closed again before the operator binds it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The Node flags of the image's ENTRYPOINT (between the node binary and the script), so the benchmark
 * measures the operator as the image runs it. Throws when the Dockerfile has no exec-form ENTRYPOINT.
 */
export function imageNodeFlags(dockerfile: string): string[] {
  const line = dockerfile.split('\n').find((l) => l.startsWith('ENTRYPOINT '));
  const parsed: unknown = line === undefined ? undefined : JSON.parse(line.slice('ENTRYPOINT '.length));
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string') || parsed.length < 2) {
    throw new Error('the Dockerfile has no exec-form ENTRYPOINT ["node", ..., "script"]');
  }
  return (parsed as string[]).slice(1, -1);
}

/** Variables of the image that name places inside the container; the bench keeps its own. */
const CONTAINER_PATH_VARIABLES = new Set(['PATH', 'HOME', 'TMPDIR', 'XDG_CACHE_HOME']);

/**
 * The environment the Dockerfile's ENV instructions give the operator (`KEY=value` pairs, lines joined
 * at a trailing backslash), without the variables that point at container paths, so the benchmark
 * runs the operator with the image's runtime settings (NODE_ENV, malloc tuning).
 */
export function imageEnvironment(dockerfile: string): Record<string, string> {
  const env: Record<string, string> = {};
  const instructions = dockerfile.replace(/\\\n/g, ' ').split('\n');
  for (const line of instructions) {
    const m = /^ENV\s+(.*)$/.exec(line.trim());
    if (m?.[1] === undefined) continue;
    for (const pair of m[1].trim().split(/\s+/)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new Error(`the Dockerfile's ENV has "${pair}"; only KEY=value pairs are understood`);
      const key = pair.slice(0, eq);
      if (!CONTAINER_PATH_VARIABLES.has(key)) env[key] = pair.slice(eq + 1);
    }
  }
  return env;
}

export function startOperator(opts: {
  mainJs: string;
  args: string[];
  port: number;
  logPath: string;
  nodeOptions: string;
  nodeFlags: readonly string[];
  /** The image's environment (imageEnvironment). */
  imageEnv: Readonly<Record<string, string>>;
  cwd: string;
  /** cgroup.procs of the memory cgroup the operator runs in (see memory-limit.ts). */
  cgroupProcs?: string;
  metricsToken: string;
}): OperatorHandle {
  // The log file is the child's stdout itself: through a pipe to this process, busy serving the fake
  // API server, the operator's synchronous log writes could wait for this process to drain the pipe,
  // which a container runtime reading the pipe would not make them do.
  const logFd = openSync(opts.logPath, 'a');
  const env: Record<string, string> = { ...opts.imageEnv, PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
  if (opts.nodeOptions !== '') env.NODE_OPTIONS = opts.nodeOptions;
  const nodeArgs = [...opts.nodeFlags, opts.mainJs, ...opts.args, '--metrics-address', `127.0.0.1:${opts.port}`];
  const spawnOptions = { cwd: opts.cwd, env, stdio: ['ignore', logFd, logFd] as ['ignore', number, number] };
  // The shell joins the cgroup and then becomes Node (exec keeps the pid), so Node starts inside it.
  const child =
    opts.cgroupProcs === undefined
      ? spawn(process.execPath, nodeArgs, spawnOptions)
      : spawn('/bin/sh', ['-c', 'echo $$ > "$1" && shift && exec "$@"', 'sh', opts.cgroupProcs, process.execPath, ...nodeArgs], spawnOptions);
  closeSync(logFd);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  if (child.pid === undefined) throw new Error(`could not start the operator (${process.execPath} ${opts.mainJs})`);
  const pid = child.pid;
  return {
    pid,
    child,
    metricsUrl: `https://127.0.0.1:${opts.port}`,
    metricsToken: opts.metricsToken,
    startedAtMs: Date.now(),
    exited,
    async stop(graceMs = 20_000): Promise<number | string> {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Parses Prometheus text exposition into `name{labels}` → value (labels as written). */
export function parsePrometheusText(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    if (space < 0) continue;
    const value = Number(line.slice(space + 1));
    if (!Number.isNaN(value)) out.set(line.slice(0, space), value);
  }
  return out;
}

/**
 * The q-quantile (0..1) of a Prometheus histogram in a parsed scrape, as PromQL's histogram_quantile
 * estimates it: linear within the bucket that holds it. Undefined when the histogram has no
 * observations; the highest finite bound when the quantile falls in the +Inf bucket.
 */
export function histogramQuantile(metrics: ReadonlyMap<string, number>, name: string, q: number): number | undefined {
  // Summed over the other labels' series.
  const byBound = new Map<number, number>();
  const prefix = `${name}_bucket{`;
  for (const [key, count] of metrics) {
    if (!key.startsWith(prefix)) continue;
    const le = /le="([^"]+)"/.exec(key)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    byBound.set(bound, (byBound.get(bound) ?? 0) + count);
  }
  const buckets = [...byBound].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return lowerBound;
      return lowerBound + ((b.le - lowerBound) * (rank - lowerCount)) / Math.max(1, b.count - lowerCount);
    }
    lowerBound = b.le;
    lowerCount = b.count;
  }
  return lowerBound;
}

/** GET over HTTPS without verifying the operator's self-signed certificate (as Prometheus' insecureSkipVerify). */
function httpsGet(url: string, timeoutMs: number, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = token === undefined ? {} : { Authorization: `Bearer ${token}` };
    const req = https.get(url, { headers, rejectUnauthorized: false, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

export async function scrapeMetrics(metricsUrl: string, token: string): Promise<Map<string, number> | undefined> {
  try {
    const res = await httpsGet(`${metricsUrl}/metrics`, 10_000, token);
    return res.status === 200 ? parsePrometheusText(res.body) : undefined;
  } catch {
    return undefined;
  }
}

/** /readyz as the kubelet asks it: no token. */
export async function isReady(metricsUrl: string): Promise<boolean> {
  try {
    return (await httpsGet(`${metricsUrl}/readyz`, 2_000)).status === 200;
  } catch {
    return false;
  }
}

export interface ProcSample {
  rssBytes: number;
  /** Peak RSS since start (VmHWM). */
  hwmBytes: number;
  /** user + system CPU seconds since start. */
  cpuSeconds: number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at ") ".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11] ?? 0);
    const stime = Number(fields[12] ?? 0);
    return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM'), cpuSeconds: (utime + stime) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/** What one phase saw of the operator process. */
export interface PhaseProcessFigures {
  peakRssMiB: number;
  endRssMiB: number;
  peakHeapUsedMiB: number;
  endHeapUsedMiB: number;
  /** Largest event-loop delay p99 of the scrapes in the phase (each covers the time since the last). */
  eventLoopP99Ms: number;
  cpuSeconds: number;
  maxQueueDepth: number;
}

const MiB = 1024 * 1024;

/**
 * Samples /proc every 250 ms and /metrics every `scrapeMs` while a phase runs. Call `phase()` at a
 * phase boundary to get that phase's figures and start the next one.
 */
export class OperatorSampler {
  private timer: NodeJS.Timeout | undefined;
  private scrapeTimer: NodeJS.Timeout | undefined;
  private peakRss = 0;
  private lastRss = 0;
  /** Since the last lowestRssOver() began. */
  private lowestRss = Infinity;
  private peakHeap = 0;
  private lastHeap = 0;
  private maxP99 = 0;
  private maxDepth = 0;
  private cpuAtStart = 0;
  private lastCpu = 0;
  private scraping: Promise<void> = Promise.resolve();
  lastMetrics: Map<string, number> | undefined;

  constructor(
    private readonly operator: OperatorHandle,
    private readonly scrapeMs = 15_000,
  ) {}

  async start(): Promise<void> {
    this.sample();
    this.cpuAtStart = this.lastCpu;
    this.timer = setInterval(() => this.sample(), 250);
    this.scrapeTimer = setInterval(() => {
      this.scraping = this.scrape();
    }, this.scrapeMs);
    await this.scrape();
  }

  private sample(): void {
    const s = sampleProc(this.operator.pid);
    if (s === undefined) return;
    this.lastRss = s.rssBytes;
    this.peakRss = Math.max(this.peakRss, s.rssBytes);
    this.lowestRss = Math.min(this.lowestRss, s.rssBytes);
    this.lastCpu = s.cpuSeconds;
  }

  private async scrape(): Promise<void> {
    const m = await scrapeMetrics(this.operator.metricsUrl, this.operator.metricsToken);
    if (m === undefined) return;
    this.lastMetrics = m;
    const heap = m.get('nodejs_heap_size_used_bytes');
    if (heap !== undefined) {
      this.lastHeap = heap;
      this.peakHeap = Math.max(this.peakHeap, heap);
    }
    const p99 = m.get('nodejs_eventloop_lag_p99_seconds');
    if (p99 !== undefined) this.maxP99 = Math.max(this.maxP99, p99);
    const depth = m.get('imagescan_scan_queue_depth');
    if (depth !== undefined) this.maxDepth = Math.max(this.maxDepth, depth);
  }

  /** A scrape now (for a value needed at once, e.g. queue depth); also feeds the phase figures. */
  async scrapeNow(): Promise<Map<string, number> | undefined> {
    await this.scraping;
    await this.scrape();
    return this.lastMetrics;
  }

  /** Ends the current phase with a final scrape; returns its figures and starts the next phase. */
  async phase(): Promise<PhaseProcessFigures> {
    await this.scraping;
    await this.scrape();
    this.sample();
    const figures: PhaseProcessFigures = {
      peakRssMiB: this.peakRss / MiB,
      endRssMiB: this.lastRss / MiB,
      peakHeapUsedMiB: this.peakHeap / MiB,
      endHeapUsedMiB: this.lastHeap / MiB,
      eventLoopP99Ms: this.maxP99 * 1000,
      cpuSeconds: this.lastCpu - this.cpuAtStart,
      maxQueueDepth: this.maxDepth,
    };
    this.peakRss = this.lastRss;
    this.peakHeap = this.lastHeap;
    this.maxP99 = 0;
    this.maxDepth = 0;
    this.cpuAtStart = this.lastCpu;
    return figures;
  }

  /** The lowest RSS (MiB) of the samples taken over the next `ms`. */
  async lowestRssOver(ms: number): Promise<number> {
    this.lowestRss = Infinity;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.lowestRss / MiB;
  }

  /** Peak RSS of the whole process life (VmHWM). */
  highWaterMiB(): number {
    return (sampleProc(this.operator.pid)?.hwmBytes ?? 0) / MiB;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.scrapeTimer !== undefined) clearInterval(this.scrapeTimer);
  }
}
