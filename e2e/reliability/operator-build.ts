// Runs the operator the way the image does — plain JavaScript on node, no tsx in between — so the
// twenty restarts of the crash suite cost about a second each instead of several (tsx compiles the
// sources again in every fresh process). The sources are transpiled once per content hash with esbuild
// (what tsx itself uses) into node_modules/.cache, where the compiled files still resolve the
// project's dependencies; concurrent suites share the result (written to a temp folder, then renamed).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { repoRoot, startOperatorProcess } from '../operator-process.js';
import type { OperatorProcess } from '../operator-process.js';

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

/** Runs the compiled operator with plain node (startOperatorProcess with `mainJs`). */
export function startCompiledOperator(mainJs: string, args: string[], env: Record<string, string>): OperatorProcess {
  return startOperatorProcess({ mainJs, args, env });
}
