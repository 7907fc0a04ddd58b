// Who may read /metrics: the bearer token is authenticated by the API server (TokenReview) and its user
// authorized for the non-resource URL (SubjectAccessReview), as controller-runtime's
// filters.WithAuthenticationAndAuthorization does. The metrics name every image and its vulnerabilities,
// so the answer is the cluster's RBAC (a ClusterRole with nonResourceURLs ["/metrics"], verbs ["get"]),
// not network reachability. Decisions are cached briefly so a scrape costs no API request.
import { createHash } from 'node:crypto';
import { RecentMap } from '../recent-map.js';

export interface ReviewedUser {
  username: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export type TokenReviewResult = { authenticated: true; user: ReviewedUser } | { authenticated: false };

/** The API server's answers; both throw when it cannot answer (network, 5xx, 403 for the operator itself). */
export interface AccessReviewer {
  reviewToken(token: string): Promise<TokenReviewResult>;
  reviewNonResourceAccess(user: ReviewedUser, path: string, verb: string): Promise<boolean>;
}

/** What to answer: the request may go on, or this status with a short text that names no secret. */
export type AccessDecision =
  | { allowed: true; username: string }
  | { allowed: false; status: 401 | 403 | 429 | 503; message: string; username?: string; cause?: unknown };

export interface MetricsAccessControlOptions {
  reviewer: AccessReviewer;
  now?: () => number;
  /** Cached decisions per kind (tokens, access); the least recently stored go first (default 1024). */
  maxCacheEntries?: number;
  /** Reviews awaiting the API server at once; more are answered 429 (default 16). */
  maxReviewsInFlight?: number;
}

// controller-runtime's TTLs: a token's identity for a minute, an allowed user for five, a denial for
// 30 s (so a new RoleBinding takes effect soon). A rejected token is cached for 10 s only.
const AUTHENTICATED_TTL_MS = 60_000;
const UNAUTHENTICATED_TTL_MS = 10_000;
const ALLOWED_TTL_MS = 5 * 60_000;
const DENIED_TTL_MS = 30_000;

interface Cached<T> {
  value: T;
  expiresAt: number;
}

/** The token of an `Authorization: Bearer <token>` header; undefined for any other form. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return match?.[1];
}

/** The RBAC verb of an HTTP method on a non-resource URL: HEAD reads as much as GET does. */
export function nonResourceVerb(method: string): string {
  const lower = method.toLowerCase();
  return lower === 'head' ? 'get' : lower;
}

/**
 * Decides whether a request may read a path, from its Authorization header. Never throws: an API
 * server that cannot answer gives 503 (the scrape fails, nothing is served), which is not cached.
 */
export class MetricsAccessControl {
  private readonly reviewer: AccessReviewer;
  private readonly now: () => number;
  private readonly maxInFlight: number;
  private readonly tokens: RecentMap<string, Cached<TokenReviewResult>>;
  private readonly access: RecentMap<string, Cached<boolean>>;
  /** Reviews under way, keyed like the caches, so a burst of scrapes with one token asks once. */
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(opts: MetricsAccessControlOptions) {
    this.reviewer = opts.reviewer;
    this.now = opts.now ?? Date.now;
    this.maxInFlight = opts.maxReviewsInFlight ?? 16;
    this.tokens = new RecentMap(opts.maxCacheEntries ?? 1024);
    this.access = new RecentMap(opts.maxCacheEntries ?? 1024);
  }

  async decide(request: { authorization: string | undefined; method: string; path: string }): Promise<AccessDecision> {
    const token = bearerToken(request.authorization);
    if (token === undefined) return { allowed: false, status: 401, message: 'Unauthorized: a bearer token is required' };

    // The cache is keyed by a hash so the map holds no usable token.
    const tokenKey = createHash('sha256').update(token).digest('base64url');
    let identity: TokenReviewResult;
    try {
      const cached = this.fresh(this.tokens, tokenKey);
      identity = cached ?? (await this.review(tokenKey, () => this.reviewer.reviewToken(token), this.tokens, (r) => (r.authenticated ? AUTHENTICATED_TTL_MS : UNAUTHENTICATED_TTL_MS)));
    } catch (err) {
      return this.failure(err, 'authentication');
    }
    if (!identity.authenticated) return { allowed: false, status: 401, message: 'Unauthorized: the token was not accepted' };

    const { user } = identity;
    const verb = nonResourceVerb(request.method);
    const accessKey = JSON.stringify([user.username, user.uid ?? '', [...user.groups].sort(), verb, request.path]);
    let allowed: boolean;
    try {
      const cached = this.fresh(this.access, accessKey);
      allowed = cached ?? (await this.review(accessKey, () => this.reviewer.reviewNonResourceAccess(user, request.path, verb), this.access, (a) => (a ? ALLOWED_TTL_MS : DENIED_TTL_MS)));
    } catch (err) {
      return { ...this.failure(err, 'authorization'), username: user.username };
    }
    if (!allowed) return { allowed: false, status: 403, message: `Forbidden: user "${user.username}" may not ${verb} ${request.path}`, username: user.username };
    return { allowed: true, username: user.username };
  }

  private fresh<T>(cache: RecentMap<string, Cached<T>>, key: string): T | undefined {
    const entry = cache.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.now()) return entry.value;
    cache.delete(key);
    return undefined;
  }

  private async review<T>(key: string, ask: () => Promise<T>, cache: RecentMap<string, Cached<T>>, ttl: (value: T) => number): Promise<T> {
    const running = this.inFlight.get(key) as Promise<T> | undefined;
    if (running !== undefined) return running;
    if (this.inFlight.size >= this.maxInFlight) throw new TooManyReviews();
    const asked = ask().then((value) => {
      cache.set(key, { value, expiresAt: this.now() + ttl(value) });
      return value;
    });
    this.inFlight.set(key, asked);
    try {
      return await asked;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private failure(err: unknown, step: 'authentication' | 'authorization'): AccessDecision & { allowed: false } {
    if (err instanceof TooManyReviews) return { allowed: false, status: 429, message: 'Too many requests awaiting review, retry later' };
    return { allowed: false, status: 503, message: `The API server could not be asked for ${step}, retry later`, cause: err };
  }
}

class TooManyReviews extends Error {
  override readonly name = 'TooManyReviews';
}
