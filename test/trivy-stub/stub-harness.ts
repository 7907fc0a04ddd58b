// Helpers for tests that run the stub Trivy: a private workspace, the env that configures the stub,
// and readers for its invocation log. Used by src/scanner tests and available to e2e suites.
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { SEVERITIES } from '../../src/scanner/scan-result.js';
import type { TrivyRunnerOptions } from '../../src/scanner/trivy-runner.js';
import { ScanFailure } from '../../src/scanner/scan-failure.js';

export const STUB_TRIVY = fileURLToPath(new URL('./trivy', import.meta.url));
export const STUB_DEFAULT_MAP = fileURLToPath(new URL('./images.json', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FIXTURES_DIR = path.resolve(REPO_ROOT, 'test/fixtures/trivy');

export interface StubLogLine {
  event: 'start' | 'end' | 'grandchild' | 'sigterm-ignored';
  pid: number;
  t: number;
  argv?: string[];
  env?: string[];
  envNames?: string[];
  /** The GOMEMLIMIT the run was given, if any. */
  gomemlimit?: string;
  registries?: string[];
  dockerConfigKeys?: string[];
  dockerConfigMode?: string;
  dockerConfigDirMode?: string;
  exitCode?: number;
  target?: string;
  mappingKey?: string;
  fixture?: string;
  mode?: string;
  dbDownloaded?: boolean;
  /** Set on `image` runs that asked the registry for the image (every scan by reference). */
  registryPull?: boolean;
  grandchildPid?: number;
  huge?: { CRITICAL: number; HIGH: number; MEDIUM: number; LOW: number; UNKNOWN: number; fixable: number; total: number; bytes: number };
}

export interface Invocation {
  pid: number;
  start: StubLogLine;
  end?: StubLogLine;
  grandchildPid?: number;
}

export interface StubWorkspace {
  dir: string;
  cacheDir: string;
  tmpDir: string;
  logFile: string;
  mapFile: string;
  /** Variables for the runner's extraEnv so the stub finds its map and log. */
  extraEnv: Record<string, string>;
  /** Replace the mapping (re-read by the stub on every run). */
  writeMap(map: Record<string, unknown>): void;
  log(): StubLogLine[];
  invocations(): Invocation[];
  /** Entries left in tmpDir (per-scan folders that were not removed). */
  leftovers(): string[];
  cleanup(): void;
}

/** A fresh workspace; `map` entries are merged over the default images.json (fixture paths made absolute). */
export function createStubWorkspace(map: Record<string, unknown> = {}, env: Record<string, string> = {}): StubWorkspace {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trivy-stub-test-'));
  const cacheDir = path.join(dir, 'cache');
  const tmpDir = mkdtempSync(path.join(dir, 'scans-'));
  const logFile = path.join(dir, 'stub.log');
  const mapFile = path.join(dir, 'images.json');
  const defaults = JSON.parse(readFileSync(STUB_DEFAULT_MAP, 'utf8')) as Record<string, unknown>;
  const absolutise = (value: unknown): unknown => {
    const fix = (p: string) => path.resolve(path.dirname(STUB_DEFAULT_MAP), p);
    if (typeof value === 'string') return fix(value);
    if (value && typeof value === 'object' && 'fixture' in value && typeof value.fixture === 'string') return { ...value, fixture: fix(value.fixture) };
    return value;
  };
  const writeMap = (m: Record<string, unknown>) => {
    const merged = Object.fromEntries(Object.entries({ ...defaults, ...m }).map(([k, v]) => [k, k === 'db' ? v : absolutise(v)]));
    writeFileSync(mapFile, JSON.stringify(merged, null, 2));
  };
  writeMap(map);
  const log = (): StubLogLine[] =>
    existsSync(logFile)
      ? readFileSync(logFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as StubLogLine)
      : [];
  return {
    dir,
    cacheDir,
    tmpDir,
    logFile,
    mapFile,
    extraEnv: { TRIVY_STUB_MAP: mapFile, TRIVY_STUB_LOG: logFile, ...env },
    writeMap,
    log,
    invocations: () => pairInvocations(log()),
    leftovers: () => readdirSync(tmpDir),
    cleanup: () => {
      // If a test failed half-way, do not leave hung stubs or their grandchildren behind.
      for (const inv of pairInvocations(log())) {
        for (const pid of [inv.pid, inv.grandchildPid]) if (pid !== undefined && !inv.end && isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function pairInvocations(lines: StubLogLine[]): Invocation[] {
  const byPid = new Map<number, Invocation>();
  for (const line of lines) {
    if (line.event === 'start') byPid.set(line.pid, { pid: line.pid, start: line });
    const inv = byPid.get(line.pid);
    if (!inv) continue;
    if (line.event === 'end') inv.end = line;
    if (line.event === 'grandchild') inv.grandchildPid = line.grandchildPid;
  }
  return [...byPid.values()];
}

/** Runs that asked a registry for an image (from the stub's log lines). */
export function registryPulls(lines: readonly StubLogLine[]): StubLogLine[] {
  return lines.filter((l) => l.event === 'end' && l.registryPull === true);
}

/** The largest number of [start, end] intervals that overlap at any instant. */
export function maxOverlap(intervals: { start: number; end: number }[]): number {
  const points = intervals.flatMap((i) => [
    { t: i.start, d: 1 },
    { t: i.end, d: -1 },
  ]);
  // Ends before starts at the same instant: touching intervals do not overlap.
  points.sort((a, b) => a.t - b.t || a.d - b.d);
  let current = 0;
  let max = 0;
  for (const p of points) {
    current += p.d;
    max = Math.max(max, current);
  }
  return max;
}

/** Whether the process exists and is not a zombie (a killed orphan may wait to be reaped by PID 1). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** A sha256 digest derived from a small number, for tests. */
export function testDigest(n: number): string {
  return `sha256:${n.toString(16).padStart(64, '0')}`;
}

/** TrivyRunner options that run this stub inside `ws`, with every severity and a 20 s timeout. */
export function stubRunnerOptions(ws: StubWorkspace, logger: Logger, overrides: Partial<TrivyRunnerOptions> = {}): TrivyRunnerOptions {
  return {
    trivyPath: STUB_TRIVY,
    cacheDir: ws.cacheDir,
    tmpDir: ws.tmpDir,
    severities: [...SEVERITIES],
    ignoreUnfixed: false,
    timeoutMs: 20_000,
    killGraceMs: 200,
    logger,
    pathEnv: process.env.PATH ?? '',
    extraEnv: ws.extraEnv,
    ...overrides,
  };
}

/**
 * Writes an executable `<dir>/trivy` for --trivy-path that exports `env` and execs `command` (by
 * default this Node running the stub) with its arguments. The operator gives Trivy an allow-listed
 * environment with a system PATH, so stub settings and the Node to use must travel in the wrapper;
 * exec keeps the process the operator starts and signals the stub itself.
 */
export function writeTrivyWrapper(dir: string, env: Record<string, string>, command: readonly string[] = [process.execPath, STUB_TRIVY]): string {
  const quote = (value: string): string => `'${value.replaceAll("'", `'\\''`)}'`;
  const exports = Object.entries(env).map(([name, value]) => `export ${name}=${quote(value)}`);
  const file = path.join(dir, 'trivy');
  writeFileSync(file, ['#!/bin/sh', ...exports, `exec ${command.map(quote).join(' ')} "$@"`, ''].join('\n'));
  chmodSync(file, 0o755);
  return file;
}

/** The ScanFailure a scan rejects with; throws when it resolves or rejects with anything else. */
export async function failureOf(promise: Promise<unknown>): Promise<ScanFailure> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ScanFailure) return err;
    throw new Error(`expected a ScanFailure, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected the scan to fail');
}
