// Runs the operator the way the image does — plain JavaScript on node, no tsx in between — so the
// twenty restarts of the crash suite cost about a second each instead of several (tsx compiles the
// sources again in every fresh process). The sources are transpiled once per content hash with esbuild
// (what tsx itself uses) into node_modules/.cache, where the compiled files still resolve the
// project's dependencies; concurrent suites share the result (written to a temp folder, then renamed).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';
import { repoRoot } from '../operator-process.js';
import type { LogLine, OperatorProcess } from '../operator-process.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

let built: Promise<string> | undefined;

/** Transpiles src/ (once per content) and returns the path of the compiled main.js. */
export function compiledOperator(): Promise<string> {
  built ??= (async () => {
    const src = path.join(repoRoot, 'src');
    const files = sourceFiles(src).sort();
    const hash = createHash('sha256');
    for (const file of files) hash.update(file).update(readFileSync(file));
    const cache = path.join(repoRoot, 'node_modules/.cache/imagescan-reliability');
    const target = path.join(cache, hash.digest('hex').slice(0, 16));
    if (!existsSync(path.join(target, 'main.js'))) {
      const staging = `${target}.${process.pid}.${Date.now()}`;
      await build({ entryPoints: files, outdir: staging, outbase: src, format: 'esm', platform: 'node', target: 'node24', bundle: false, logLevel: 'error' });
      try {
        renameSync(staging, target);
      } catch {
        // Another suite finished the same build first.
        rmSync(staging, { recursive: true, force: true });
      }
    }
    return path.join(target, 'main.js');
  })();
  return built;
}

/** Like operator-process.ts' startOperatorProcess, but runs the compiled operator with `node`. */
export function startCompiledOperator(mainJs: string, args: string[], env: Record<string, string>): OperatorProcess {
  const child = spawn(process.execPath, [mainJs, ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  const rawOutput: string[] = [];
  let waiters: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const onLine = (text: string): void => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== 'object' || parsed === null) {
      rawOutput.push(text);
      return;
    }
    const line = parsed as LogLine;
    lines.push(line);
    const done = waiters.filter((w) => w.match(line));
    waiters = waiters.filter((w) => !done.includes(w));
    for (const w of done) w.resolve(line);
  };
  createInterface(child.stdout).on('line', onLine);
  createInterface(child.stderr).on('line', onLine);

  const waitForLine = (match: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> => {
    const seen = lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (line: LogLine) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const fail = (why: string) => {
        waiters = waiters.filter((w) => w !== waiter);
        clearTimeout(timer);
        reject(new Error(`${why}; last lines:\n${lines.slice(-10).map((l) => JSON.stringify(l)).join('\n')}\n${rawOutput.slice(-10).join('\n')}`));
      };
      const timer = setTimeout(() => fail(`no matching operator log line within ${timeoutMs} ms`), timeoutMs);
      waiters.push(waiter);
      void exited.then((code) => {
        if (waiters.includes(waiter)) fail(`operator exited (${String(code)}) before the awaited log line`);
      });
    });
  };

  return {
    child,
    lines,
    rawOutput,
    waitForLine,
    exited,
    async metricsPort() {
      return Number((await waitForLine((l) => l.msg === 'metrics server listening')).port);
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}
