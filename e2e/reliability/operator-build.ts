// Runs the operator the way the image does — the bundle `npm run build` makes, on plain node — so the
// twenty restarts of the crash suite cost about a second each instead of several (tsx compiles the
// sources again in every fresh process). The bundle is built once per content hash of its inputs into
// node_modules/.cache; concurrent suites share the result (written to a temp folder, then renamed).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { buildInputs, buildOperator } from '../../scripts/build-operator.js';
import { repoRoot, startOperatorProcess } from '../operator-process.js';
import type { OperatorProcess } from '../operator-process.js';

let built: Promise<string> | undefined;

/** Bundles the operator (once per content) and returns the path of its main.mjs. */
export function compiledOperator(): Promise<string> {
  built ??= (async () => {
    const hash = createHash('sha256');
    for (const file of buildInputs()) hash.update(file).update(readFileSync(file));
    const target = path.join(repoRoot, 'node_modules/.cache/imagescan-reliability', hash.digest('hex').slice(0, 16));
    const mainJs = path.join(target, 'main.mjs');
    if (!existsSync(mainJs)) {
      const staging = `${target}.${process.pid}.${Date.now()}`;
      await buildOperator(staging);
      try {
        renameSync(staging, target);
      } catch {
        // Another suite finished the same build first.
        rmSync(staging, { recursive: true, force: true });
      }
    }
    return mainJs;
  })();
  return built;
}

/** Runs the compiled operator with plain node (startOperatorProcess with `mainJs`). */
export function startCompiledOperator(mainJs: string, args: string[], env: Record<string, string>): OperatorProcess {
  return startOperatorProcess({ mainJs, args, env });
}
