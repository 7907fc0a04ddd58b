// Prints where a .heapprofile (bench/sample-allocations.mjs) allocated: the functions that allocated
// most themselves, and the call frames under which most was allocated.
// Usage: npx tsx bench/allocation-summary.ts FILE [rows]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const [file, rowsArg] = process.argv.slice(2);
if (file === undefined) {
  console.error('usage: npx tsx bench/allocation-summary.ts FILE [rows]');
  process.exit(2);
}
const rows = Number(rowsArg ?? '25');
const profile = JSON.parse(readFileSync(file, 'utf8')) as { head: ProfileNode };

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName === '' ? '(anonymous)' : functionName} ${url.split('/').pop() ?? ''}:${lineNumber + 1}`;
}

function walk(node: ProfileNode, stack: readonly string[]): void {
  const name = frameName(node);
  const frames = [...stack, name];
  total += node.selfSize;
  self.set(name, (self.get(name) ?? 0) + node.selfSize);
  // A recursive frame counts once per sample.
  for (const frame of new Set(frames)) inclusive.set(frame, (inclusive.get(frame) ?? 0) + node.selfSize);
  for (const child of node.children) walk(child, frames);
}
walk(profile.head, []);

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1).padStart(8);
const top = (map: Map<string, number>): [string, number][] => [...map].sort((a, b) => b[1] - a[1]).slice(0, rows);
console.log(`${file}: ${(total / 1e6).toFixed(1)} MB allocated (sampled)`);
console.log('\nallocated by the function itself (MB):');
for (const [name, bytes] of top(self)) console.log(`${mb(bytes)}  ${name}`);
console.log('\nallocated under the frame (MB):');
for (const [name, bytes] of top(inclusive)) console.log(`${mb(bytes)}  ${name}`);
