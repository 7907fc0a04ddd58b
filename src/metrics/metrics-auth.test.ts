import { describe, expect, it } from 'vitest';
import { bearerToken, MetricsAccessControl, nonResourceVerb } from './metrics-auth.js';
import type { AccessReviewer, ReviewedUser, TokenReviewResult } from './metrics-auth.js';

const PROMETHEUS: ReviewedUser = { username: 'system:serviceaccount:monitoring:prometheus-k8s', groups: ['system:serviceaccounts', 'system:authenticated'], extra: {} };
const DEVELOPER: ReviewedUser = { username: 'dev@example.com', groups: ['developers', 'system:authenticated'], extra: {} };

/** An API server in memory: known tokens, users allowed to get /metrics, and a switch to make it fail. */
class FakeReviewer implements AccessReviewer {
  readonly tokens = new Map<string, ReviewedUser>([
    ['prom-token', PROMETHEUS],
    ['dev-token', DEVELOPER],
  ]);
  readonly readers = new Set([PROMETHEUS.username]);
  down = false;
  tokenReviews = 0;
  accessReviews: { user: string; path: string; verb: string }[] = [];
  /** When set, reviews wait for this promise (to hold several requests in flight). */
  gate: Promise<void> | undefined;

  async reviewToken(token: string): Promise<TokenReviewResult> {
    this.tokenReviews += 1;
    await this.gate;
    if (this.down) throw new Error('connect ECONNREFUSED 10.96.0.1:443');
    const user = this.tokens.get(token);
    return user === undefined ? { authenticated: false } : { authenticated: true, user };
  }

  async reviewNonResourceAccess(user: ReviewedUser, path: string, verb: string): Promise<boolean> {
    this.accessReviews.push({ user: user.username, path, verb });
    await this.gate;
    if (this.down) throw new Error('HTTP 503');
    return this.readers.has(user.username) && path === '/metrics' && verb === 'get';
  }
}

function control(reviewer: FakeReviewer, clock = { now: 0 }, extra: { maxCacheEntries?: number; maxReviewsInFlight?: number } = {}): MetricsAccessControl {
  return new MetricsAccessControl({ reviewer, now: () => clock.now, ...extra });
}

const scrape = (token?: string, method = 'GET'): { authorization: string | undefined; method: string; path: string } => ({
  authorization: token === undefined ? undefined : `Bearer ${token}`,
  method,
  path: '/metrics',
});

describe('metrics access control', () => {
  it('answers 401 without a bearer token, and asks the API server nothing', async () => {
    const reviewer = new FakeReviewer();
    const access = control(reviewer);
    for (const authorization of [undefined, '', 'Basic dXNlcjpwYXNz', 'Bearer', 'Bearer two words']) {
      expect(await access.decide({ authorization, method: 'GET', path: '/metrics' })).toMatchObject({ allowed: false, status: 401 });
    }
    expect(reviewer.tokenReviews).toBe(0);
  });

  it('answers 401 for a token the API server does not accept', async () => {
    const decision = await control(new FakeReviewer()).decide(scrape('stolen-or-expired'));
    expect(decision).toMatchObject({ allowed: false, status: 401 });
  });

  it('answers 403 naming the user when RBAC does not let them get /metrics', async () => {
    const decision = await control(new FakeReviewer()).decide(scrape('dev-token'));
    expect(decision).toMatchObject({ allowed: false, status: 403, username: DEVELOPER.username });
    if (!decision.allowed) expect(decision.message).toBe('Forbidden: user "dev@example.com" may not get /metrics');
  });

  it('allows a user bound to get /metrics, asking with the verb get for GET and HEAD', async () => {
    const reviewer = new FakeReviewer();
    const access = control(reviewer);
    expect(await access.decide(scrape('prom-token'))).toEqual({ allowed: true, username: PROMETHEUS.username });
    expect(await access.decide(scrape('prom-token', 'HEAD'))).toEqual({ allowed: true, username: PROMETHEUS.username });
    expect(reviewer.accessReviews).toEqual([{ user: PROMETHEUS.username, path: '/metrics', verb: 'get' }]);
  });

  it('answers 503 while the API server cannot answer, then allows once it can (failures are not cached)', async () => {
    const reviewer = new FakeReviewer();
    const access = control(reviewer);
    reviewer.down = true;
    const down = await access.decide(scrape('prom-token'));
    expect(down).toMatchObject({ allowed: false, status: 503 });
    if (!down.allowed) expect(down.message).not.toContain('prom-token');
    reviewer.down = false;
    expect(await access.decide(scrape('prom-token'))).toMatchObject({ allowed: true });
  });

  it('answers 503, not 200, when only the authorization review fails', async () => {
    const reviewer = new FakeReviewer();
    const access = control(reviewer);
    await access.decide(scrape('dev-token')); // the token is now cached
    reviewer.down = true;
    expect(await access.decide(scrape('prom-token'))).toMatchObject({ allowed: false, status: 503 });
  });

  it('caches decisions briefly: a scrape every 30 s reviews its token once a minute and its access every 5 minutes', async () => {
    const reviewer = new FakeReviewer();
    const clock = { now: 0 };
    const access = control(reviewer, clock);
    for (let t = 0; t < 10 * 60_000; t += 30_000) {
      clock.now = t;
      expect(await access.decide(scrape('prom-token'))).toMatchObject({ allowed: true });
    }
    expect(reviewer.tokenReviews).toBe(10);
    expect(reviewer.accessReviews).toHaveLength(2);
  });

  it('takes a revoked binding into account within 5 minutes, and a new one within 30 s', async () => {
    const reviewer = new FakeReviewer();
    const clock = { now: 0 };
    const access = control(reviewer, clock);
    expect(await access.decide(scrape('prom-token'))).toMatchObject({ allowed: true });
    reviewer.readers.delete(PROMETHEUS.username);
    clock.now = 5 * 60_000 + 1;
    expect(await access.decide(scrape('prom-token'))).toMatchObject({ allowed: false, status: 403 });
    reviewer.readers.add(PROMETHEUS.username);
    clock.now += 30_000 + 1;
    expect(await access.decide(scrape('prom-token'))).toMatchObject({ allowed: true });
  });

  it('asks once for a burst of scrapes with one token, and refuses with 429 beyond the reviews in flight', async () => {
    const reviewer = new FakeReviewer();
    let open = (): void => undefined;
    reviewer.gate = new Promise((resolve) => (open = resolve));
    const access = control(reviewer, { now: 0 }, { maxReviewsInFlight: 2 });
    const burst = Array.from({ length: 5 }, () => access.decide(scrape('prom-token')));
    const other = access.decide(scrape('dev-token'));
    const third = await access.decide(scrape('a-third-token'));
    expect(third).toMatchObject({ allowed: false, status: 429 });
    open();
    for (const decision of await Promise.all(burst)) expect(decision).toMatchObject({ allowed: true });
    expect(await other).toMatchObject({ allowed: false, status: 403 });
    expect(reviewer.tokenReviews).toBe(2);
  });

  it('keeps its caches bounded: many distinct tokens never hold more than the bound', async () => {
    const reviewer = new FakeReviewer();
    const access = control(reviewer, { now: 0 }, { maxCacheEntries: 10 });
    for (let i = 0; i < 100; i++) await access.decide(scrape(`random-${i}`));
    const before = reviewer.tokenReviews;
    // The last ten are still cached; the first were evicted and are asked again.
    for (let i = 90; i < 100; i++) await access.decide(scrape(`random-${i}`));
    expect(reviewer.tokenReviews).toBe(before);
    await access.decide(scrape('random-0'));
    expect(reviewer.tokenReviews).toBe(before + 1);
  });
});

describe('bearerToken', () => {
  it.each([
    ['Bearer abc.def-ghi_', 'abc.def-ghi_'],
    ['bearer abc', 'abc'],
    ['Bearer   abc  ', 'abc'],
    ['Bearer', undefined],
    ['Basic abc', undefined],
    ['Bearer a b', undefined],
    [undefined, undefined],
  ])('%s → %s', (header, token) => {
    expect(bearerToken(header)).toBe(token);
  });
});

describe('nonResourceVerb', () => {
  it('maps GET and HEAD to get, as reading /metrics either way', () => {
    expect([nonResourceVerb('GET'), nonResourceVerb('HEAD'), nonResourceVerb('POST')]).toEqual(['get', 'get', 'post']);
  });
});
