// Fault injection: failed requests (429/500), latency, 409 storms and periodic watch drops.
import { conflict, internalError, tooManyRequests } from './errors.js';
import type { ApiError } from './errors.js';
import type { Verb } from './types.js';

export interface FaultConfig {
  /** Fraction (0..1) of matching requests answered with an error instead of being served. */
  errorRate?: number;
  /** Codes to pick from at random for those errors (default [429, 500]). */
  errorCodes?: (429 | 500)[];
  /** Only these verbs fail (default: all verbs). */
  verbs?: Verb[];
  /** Only these resources fail: `pods`, `pods/status`, or `imagescanreports.imagescan.dev` (default: all). */
  resources?: string[];
  /** Only requests of these identities fail (default: everyone). */
  identities?: string[];
  /** Retry-After seconds on 429 (default 1). */
  retryAfterSeconds?: number;
  /** Added before every resource request is served. */
  latencyMs?: number;
  /** Only requests of these identities are delayed (default: everyone). */
  latencyIdentities?: string[];
  /** Extra random latency, uniformly 0..latencyJitterMs. */
  latencyJitterMs?: number;
  /** Fraction of update/patch requests on `conflictResources` answered 409 Conflict (a "409 storm"). */
  conflictRate?: number;
  conflictResources?: string[];
  /** End every open watch every N ms (0/undefined: never). */
  dropWatchesEveryMs?: number;
  /** How watches are dropped: `close` ends the response cleanly, `reset` destroys the socket (default). */
  dropWatchesMode?: 'close' | 'reset';
}

export interface FaultStats {
  injected429: number;
  injected500: number;
  injected409: number;
  delayedRequests: number;
  droppedWatches: number;
}

export interface FaultTarget {
  verb: Verb;
  group: string;
  resource: string;
  subresource: string | undefined;
  identity: string;
}

function matchesResource(list: string[] | undefined, t: FaultTarget): boolean {
  if (!list || list.length === 0) return true;
  const qualified = t.group === '' ? t.resource : `${t.resource}.${t.group}`;
  const names = [t.resource, qualified];
  if (t.subresource) names.push(`${t.resource}/${t.subresource}`, `${qualified}/${t.subresource}`);
  return list.some((r) => names.includes(r));
}

export class FaultInjector {
  private config: FaultConfig = {};
  private readonly counters: FaultStats = { injected429: 0, injected500: 0, injected409: 0, delayedRequests: 0, droppedWatches: 0 };
  private dropTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly random: () => number,
    private readonly dropWatches: (mode: 'close' | 'reset') => number,
  ) {}

  /** Replaces the whole configuration (an empty object turns everything off). */
  set(config: FaultConfig): void {
    this.config = { ...config };
    if (this.dropTimer) clearInterval(this.dropTimer);
    this.dropTimer = undefined;
    const every = config.dropWatchesEveryMs ?? 0;
    if (every > 0) {
      this.dropTimer = setInterval(() => {
        this.counters.droppedWatches += this.dropWatches(config.dropWatchesMode ?? 'reset');
      }, every);
      this.dropTimer.unref();
    }
  }

  clear(): void {
    this.set({});
  }

  current(): FaultConfig {
    return { ...this.config };
  }

  stats(): FaultStats {
    return { ...this.counters };
  }

  countDropped(n: number): void {
    this.counters.droppedWatches += n;
  }

  /** Milliseconds to wait before serving a request of `identity`. */
  delayFor(identity?: string): number {
    const only = this.config.latencyIdentities;
    if (only !== undefined && only.length > 0 && (identity === undefined || !only.includes(identity))) return 0;
    const base = this.config.latencyMs ?? 0;
    const jitter = this.config.latencyJitterMs ?? 0;
    const ms = base + (jitter > 0 ? this.random() * jitter : 0);
    if (ms > 0) this.counters.delayedRequests += 1;
    return ms;
  }

  /** The error to answer with instead of serving, if this request is picked to fail. */
  failureFor(t: FaultTarget, name: string): ApiError | undefined {
    const c = this.config;
    if ((c.conflictRate ?? 0) > 0 && (t.verb === 'update' || t.verb === 'patch') && matchesResource(c.conflictResources, t)) {
      if (this.random() < (c.conflictRate ?? 0)) {
        this.counters.injected409 += 1;
        return conflict(t.group, t.resource, name);
      }
    }
    const rate = c.errorRate ?? 0;
    if (rate <= 0) return undefined;
    if (c.verbs && c.verbs.length > 0 && !c.verbs.includes(t.verb)) return undefined;
    if (c.identities && c.identities.length > 0 && !c.identities.includes(t.identity)) return undefined;
    if (!matchesResource(c.resources, t)) return undefined;
    if (this.random() >= rate) return undefined;
    const codes = c.errorCodes && c.errorCodes.length > 0 ? c.errorCodes : [429, 500];
    const code = codes[Math.floor(this.random() * codes.length)] ?? 500;
    if (code === 429) {
      this.counters.injected429 += 1;
      return tooManyRequests(c.retryAfterSeconds ?? 1);
    }
    this.counters.injected500 += 1;
    return internalError('injected fault');
  }

  dispose(): void {
    if (this.dropTimer) clearInterval(this.dropTimer);
    this.dropTimer = undefined;
  }
}

/** Small deterministic PRNG (mulberry32) so fault tests can be reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
