// The admission phase's load: AdmissionReviews POSTed over HTTPS to the operator's webhook at a fixed
// rate, open-loop — each request leaves at its scheduled time whether or not earlier ones have been
// answered (a keep-alive agent without a socket limit, as the API server opens connections as it
// needs them), so a slow webhook shows as latency instead of slowing the sender down. Every answer
// is checked as the API server would: 200, an AdmissionReview v1 with the request's uid and a boolean
// `allowed`, within the timeout.
import https from 'node:https';
import { performance } from 'node:perf_hooks';

/** Time of request `index` after the start, in ms, at `ratePerSecond`. */
export function dueMs(index: number, ratePerSecond: number): number {
  return (index * 1000) / ratePerSecond;
}

/** How many requests a run of `seconds` at `ratePerSecond` sends. */
export function requestCount(ratePerSecond: number, seconds: number): number {
  return Math.round(ratePerSecond * seconds);
}

/** The requests due by `elapsedMs` that have not been sent yet: indexes [sent, returned). */
export function dueBy(elapsedMs: number, sent: number, total: number, ratePerSecond: number): number {
  const due = Math.floor((elapsedMs * ratePerSecond) / 1000) + 1;
  return Math.max(sent, Math.min(total, due));
}

/** Nearest-rank percentile (p in (0, 100]) of values sorted ascending; NaN when there are none. */
export function percentile(sortedAscending: readonly number[], p: number): number {
  if (sortedAscending.length === 0) return Number.NaN;
  const rank = Math.max(0, Math.ceil((p / 100) * sortedAscending.length) - 1);
  return sortedAscending[Math.min(rank, sortedAscending.length - 1)] ?? Number.NaN;
}

export type AnswerError = 'status' | 'body' | 'uid' | 'timeout' | 'connection';
export type Decision = 'allow' | 'warn' | 'deny';
export type CheckedAnswer = { ok: true; decision: Decision } | { ok: false; error: AnswerError; detail: string };

/** Checks an HTTP answer to the review with `uid` as the API server reads it. */
export function checkAnswer(uid: string, status: number, body: string): CheckedAnswer {
  if (status < 200 || status > 299) return { ok: false, error: 'status', detail: `HTTP ${status}: ${body.slice(0, 200)}` };
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { ok: false, error: 'body', detail: `not JSON: ${body.slice(0, 200)}` };
  }
  const review = isRecord(json) ? json : {};
  const response = isRecord(review.response) ? review.response : undefined;
  if (review.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview' || response === undefined) {
    return { ok: false, error: 'body', detail: `not an admission.k8s.io/v1 AdmissionReview with a response: ${body.slice(0, 200)}` };
  }
  if (response.uid !== uid) return { ok: false, error: 'uid', detail: `uid ${String(response.uid)} answers request ${uid}` };
  if (typeof response.allowed !== 'boolean') return { ok: false, error: 'body', detail: 'response.allowed is not a boolean' };
  const warnings = Array.isArray(response.warnings) ? response.warnings : [];
  if (!warnings.every((w) => typeof w === 'string')) return { ok: false, error: 'body', detail: 'response.warnings holds a non-string' };
  return { ok: true, decision: !response.allowed ? 'deny' : warnings.length > 0 ? 'warn' : 'allow' };
}

export interface AdmissionLoadOptions {
  /** The webhook's URL, e.g. https://127.0.0.1:9443/validate. */
  url: string;
  /** PEM the webhook's certificate must chain to (the webhook configuration's caBundle). */
  caPem: string;
  ratePerSecond: number;
  seconds: number;
  /** Per-request deadline (the webhook configuration's timeoutSeconds; the design's is 5 s). */
  timeoutMs: number;
  /** The next request body and its uid; called once per request, in order, just before it is sent. */
  next: () => { uid: string; body: string };
}

export interface AdmissionLoadResult {
  sent: number;
  answered: number;
  errors: number;
  errorsByKind: Record<AnswerError, number>;
  /** Up to five error details, for the log. */
  errorSamples: string[];
  decisions: Record<Decision, number>;
  /** Request started (a new connection's TLS handshake included) → answer read, of the answers that passed the check. */
  latencyMs: { p50: number; p99: number; max: number };
  /** How late requests left against their schedule (the sender's own delay, not the webhook's). */
  sendLagMs: { p99: number; max: number };
  /** Sent ÷ the time from the first to the last send. */
  achievedRatePerSecond: number;
  /** Connections the agent opened (TLS handshakes); few when answers are fast. */
  connections: number;
}

/**
 * Sends `requestCount(rate, seconds)` reviews on the schedule `dueMs`, then waits for every answer (or
 * its timeout). Errors are counted, never thrown.
 */
export async function runAdmissionLoad(opts: AdmissionLoadOptions): Promise<AdmissionLoadResult> {
  const url = new URL(opts.url);
  const agent = new https.Agent({ keepAlive: true, ca: opts.caPem, maxSockets: Infinity });
  const sockets = new WeakSet<object>();
  let connections = 0;
  const total = requestCount(opts.ratePerSecond, opts.seconds);
  const latencies: number[] = [];
  const lags: number[] = [];
  const errorsByKind: Record<AnswerError, number> = { status: 0, body: 0, uid: 0, timeout: 0, connection: 0 };
  const decisions: Record<Decision, number> = { allow: 0, warn: 0, deny: 0 };
  const errorSamples: string[] = [];
  const fail = (error: AnswerError, detail: string): void => {
    errorsByKind[error] += 1;
    if (errorSamples.length < 5) errorSamples.push(`${error}: ${detail}`);
  };
  const pending = new Set<Promise<void>>();

  const send = (uid: string, body: string): Promise<void> =>
    new Promise((resolve) => {
      const startedAt = performance.now();
      let settled = false;
      const done = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        outcome();
        resolve();
      };
      const req = https.request(
        { protocol: url.protocol, hostname: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: 'POST', agent, headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Content-Length': Buffer.byteLength(body) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const elapsed = performance.now() - startedAt;
            const checked = checkAnswer(uid, res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'));
            done(() => {
              if (checked.ok) {
                latencies.push(elapsed);
                decisions[checked.decision] += 1;
              } else fail(checked.error, checked.detail);
            });
          });
          res.on('error', (err) => done(() => fail('connection', err.message)));
        },
      );
      req.on('socket', (socket) => {
        if (sockets.has(socket)) return;
        sockets.add(socket);
        connections += 1;
      });
      // The whole request's deadline, connection and handshake included, as the API server's timeoutSeconds.
      const deadline = setTimeout(() => {
        done(() => fail('timeout', `no answer to ${uid} within ${opts.timeoutMs} ms`));
        req.destroy();
      }, opts.timeoutMs);
      req.on('error', (err) => done(() => fail('connection', err.message)));
      req.end(body);
    });

  const start = performance.now();
  let sent = 0;
  let lastSendAt = start;
  while (sent < total) {
    const now = performance.now();
    const upTo = dueBy(now - start, sent, total, opts.ratePerSecond);
    for (; sent < upTo; sent += 1) {
      lags.push(performance.now() - start - dueMs(sent, opts.ratePerSecond));
      const { uid, body } = opts.next();
      const p = send(uid, body);
      pending.add(p);
      void p.then(() => pending.delete(p));
    }
    lastSendAt = performance.now();
    if (sent < total) {
      const wait = start + dueMs(sent, opts.ratePerSecond) - performance.now();
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
    }
  }
  await Promise.all(pending);
  agent.destroy();

  latencies.sort((a, b) => a - b);
  lags.sort((a, b) => a - b);
  const errors = Object.values(errorsByKind).reduce((sum, n) => sum + n, 0);
  const sendSeconds = (lastSendAt - start) / 1000;
  return {
    sent,
    answered: latencies.length,
    errors,
    errorsByKind,
    errorSamples,
    decisions,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? Number.NaN },
    sendLagMs: { p99: percentile(lags, 99), max: lags.at(-1) ?? Number.NaN },
    achievedRatePerSecond: sendSeconds > 0 ? (sent - 1) / sendSeconds : sent,
    connections,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
