// Runs the operator as its own process (`tsx src/main.ts`) for e2e suites, and waits on its JSON log
// lines instead of sleeping.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTrivyWrapper } from '../test/trivy-stub/stub-harness.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const trivyStubPath = path.join(repoRoot, 'test/trivy-stub/trivy');

export interface LogLine {
  level?: string;
  msg?: string;
  [field: string]: unknown;
}

export interface OperatorProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[];
  /** Non-JSON output (stderr, config errors). */
  readonly rawOutput: string[];
  /** Resolves with the first log line (already seen or future) that matches. */
  waitForLine(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** The port the metrics server bound (from the "metrics server listening" line). */
  metricsPort(): Promise<number>;
  /** The metrics server's base URL, `https://127.0.0.1:PORT` (or http with --metrics-secure=false). */
  metricsUrl(): Promise<string>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves on exit. */
  stop(graceMs?: number): Promise<number | string>;
  kill9(): Promise<number | string>;
}

export interface StartOperatorOptions {
  args: string[];
  env?: Record<string, string>;
  /** Run this bundle (scripts/build-operator.ts) with plain node instead of src/main.ts through tsx. */
  mainJs?: string;
}

/**
 * Starts `node --import tsx src/main.ts <args>` with the environment given (plus PATH and HOME). Node
 * runs the operator itself (not the tsx CLI, which would sit in between), so kill -9 kills the operator.
 */
export function startOperatorProcess(options: StartOperatorOptions): OperatorProcess {
  const entry = options.mainJs === undefined ? ['--import', 'tsx', path.join(repoRoot, 'src/main.ts')] : [options.mainJs];
  const child = spawn(process.execPath, [...entry, ...options.args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  const rawOutput: string[] = [];
  const waiters: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];
  const onLine = (text: string): void => {
    let parsed: LogLine | undefined;
    try {
      const value: unknown = JSON.parse(text);
      if (typeof value === 'object' && value !== null) parsed = value as LogLine;
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined) {
      rawOutput.push(text);
      return;
    }
    lines.push(parsed);
    for (const waiter of [...waiters]) {
      if (waiter.match(parsed)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(parsed);
      }
    }
  };
  if (child.stdout !== null) createInterface(child.stdout).on('line', onLine);
  if (child.stderr !== null) createInterface(child.stderr).on('line', onLine);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });

  const waitForLine = (match: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> => {
    const seen = lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no matching operator log line within ${timeoutMs} ms; last lines:\n${lines.slice(-15).map((l) => JSON.stringify(l)).join('\n')}\n${rawOutput.slice(-10).join('\n')}`));
      }, timeoutMs);
      const waiter = {
        match,
        resolve: (line: LogLine) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      waiters.push(waiter);
      void exited.then((code) => {
        if (waiters.includes(waiter)) {
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`operator exited (${String(code)}) before the awaited log line; output:\n${rawOutput.slice(-20).join('\n')}`));
        }
      });
    });
  };

  return {
    child,
    lines,
    rawOutput,
    waitForLine,
    exited,
    async metricsPort(): Promise<number> {
      const line = await waitForLine((l) => l.msg === 'metrics server listening');
      return Number(line.port);
    },
    async metricsUrl(): Promise<string> {
      const line = await waitForLine((l) => l.msg === 'metrics server listening');
      return String(line.url);
    },
    async stop(graceMs = 10_000): Promise<number | string> {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill9(): Promise<number | string> {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}

export interface EndpointReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * GETs `url` from the operator's metrics address with an optional bearer token. Over HTTPS the
 * self-signed certificate is not verified, as the kubelet's probes and Prometheus'
 * `insecureSkipVerify` do not verify it.
 */
export function getEndpoint(url: string, opts: { token?: string; timeoutMs?: number } = {}): Promise<EndpointReply> {
  return new Promise((resolve, reject) => {
    const headers = opts.token === undefined ? {} : { Authorization: `Bearer ${opts.token}` };
    const options = { headers, agent: false as const, timeout: opts.timeoutMs ?? 10_000, rejectUnauthorized: false };
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    const req = url.startsWith('https:') ? https.get(url, options, onResponse) : http.get(url, options, onResponse);
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Writes an executable `trivy` into `dir` that exports `env` (e.g. TRIVY_STUB_LOG, TRIVY_STUB_MAP) and
 * execs the stub: the operator gives Trivy an allow-listed environment, so settings on the operator
 * process would not reach the stub. Returns the wrapper's path, for --trivy-path.
 */
export function writeTrivyStubWrapper(dir: string, env: Record<string, string>): string {
  return writeTrivyWrapper(dir, env);
}

/** The stub's `start` lines for image scans (not DB downloads), from its TRIVY_STUB_LOG file. */
export function stubScanInvocations(logFile: string): { argv: string[]; registries?: string[]; pid?: number }[] {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { event?: string; argv?: string[]; registries?: string[]; pid?: number })
    .filter((e) => e.event === 'start' && e.argv?.[0] === 'image' && !e.argv.includes('--download-db-only') && !e.argv.includes('--download-java-db-only'))
    .map((e) => ({ ...e, argv: e.argv ?? [] }));
}
