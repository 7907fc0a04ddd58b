// The operator's container memory limit, applied to the benchmarked process. Node sizes V8's heap from
// a cgroup memory limit when there is one (Node 24 in a 2 GiB cgroup: heap limit 1,048 MiB, as with
// --max-old-space-size=1024), and V8 lets a smaller heap grow less between full collections (factor
// ~1.6 instead of 4). Without the limit, on a 24 GiB machine, the benchmark measured a heap sized for
// the machine, which the operator never gets in its Deployment.
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { isAlive } from '../test/trivy-stub/stub-harness.js';

/** Bytes of a Kubernetes memory quantity such as 2Gi, 512Mi, 1G or 1048576. */
export function parseMemoryQuantity(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(quantity.trim());
  if (match === null) throw new Error(`not a memory quantity: ${JSON.stringify(quantity)}`);
  const unit = match[2] ?? '';
  const scale: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Math.round(Number(match[1]) * (scale[unit] ?? 1));
}

/** resources.limits.memory of the container named `container` in a Deployment manifest; throws when absent. */
export function deploymentMemoryLimit(manifest: string, container: string): { quantity: string; bytes: number } {
  const doc: unknown = parseDocument(manifest).toJS();
  const containers = (doc as { spec?: { template?: { spec?: { containers?: unknown } } } } | null)?.spec?.template?.spec?.containers;
  const found = Array.isArray(containers) ? (containers as { name?: unknown; resources?: { limits?: { memory?: unknown } } }[]).find((c) => c.name === container) : undefined;
  const quantity = found?.resources?.limits?.memory;
  if (typeof quantity !== 'string' && typeof quantity !== 'number') throw new Error(`the Deployment has no memory limit for container ${container}`);
  return { quantity: String(quantity), bytes: parseMemoryQuantity(String(quantity)) };
}

/** How the limit reached the operator process. */
export type AppliedLimit =
  | { kind: 'cgroup'; version: 1 | 2; procsPath: string; remove(): void }
  | { kind: 'heap-flag'; flag: string; why: string };

/**
 * A memory cgroup limited to `bytes` that a process joins by writing its pid to `procsPath` (the
 * operator's children, the Trivy stand-ins, join with it, as Trivy shares the operator's container).
 * Where no cgroup can be created (not root, read-only /sys/fs/cgroup), V8's old generation gets the
 * size Node gives it under such a limit (half of it), so the heap grows as it does in the container.
 */
export function applyMemoryLimit(bytes: number, name: string, root = '/sys/fs/cgroup'): AppliedLimit {
  const attempts: [1 | 2, string, string][] = [
    [2, root, 'memory.max'],
    [1, path.join(root, 'memory'), 'memory.limit_in_bytes'],
  ];
  const failures: string[] = [];
  for (const [version, base, limitFile] of attempts) {
    if (version === 2 && !readable(path.join(base, 'cgroup.controllers')).split(/\s+/).includes('memory')) continue;
    if (version === 1 && readable(path.join(base, 'memory.limit_in_bytes')) === '') continue;
    removeLeftovers(base, name);
    const dir = path.join(base, name);
    try {
      mkdirSync(dir);
    } catch (err) {
      failures.push(`cgroup v${version}: ${(err as Error).message}`);
      continue;
    }
    try {
      writeFileSync(path.join(dir, limitFile), String(bytes));
      return { kind: 'cgroup', version, procsPath: path.join(dir, 'cgroup.procs'), remove: () => removeQuietly(dir) };
    } catch (err) {
      removeQuietly(dir);
      failures.push(`cgroup v${version}: ${(err as Error).message}`);
    }
  }
  return {
    kind: 'heap-flag',
    flag: `--max-old-space-size=${Math.floor(bytes / 2 / 2 ** 20)}`,
    why: failures.length > 0 ? failures.join('; ') : 'no memory cgroup controller',
  };
}

/**
 * Removes the groups of earlier runs (same name but another pid) whose process is gone: an interrupted
 * bench can exit while a stand-in still holds its group, and the kernel refuses to remove a busy group.
 */
function removeLeftovers(base: string, name: string): void {
  const prefix = name.replace(/\d+$/, '');
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = Number(entry.slice(prefix.length));
    if (entry === name || !entry.startsWith(prefix) || !Number.isInteger(pid) || pid <= 0 || isAlive(pid)) continue;
    removeQuietly(path.join(base, entry));
  }
}

function readable(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function removeQuietly(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Still has a process (a stand-in killed late) or already gone; the kernel frees it when empty.
  }
}
