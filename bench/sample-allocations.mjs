// Preload for the operator process: V8's sampling heap profiler over a window of its life, counting
// objects that were collected too, so the profile shows where garbage comes from (a heap snapshot
// shows only what survives). Writes a .heapprofile (Chrome DevTools can open it; summarize it with
// `npx tsx bench/allocation-summary.ts FILE`). The window is in the module URL, in seconds after start:
//   npm run bench -- --rescan-after 45 --churn-seconds 5 \
//     "--operator-node-options=--import=file://$PWD/bench/sample-allocations.mjs?from=44&to=74&dir=/tmp/alloc"
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { threadId } from 'node:worker_threads';

const params = new URL(import.meta.url).searchParams;
const fromMs = Number(params.get('from') ?? '0') * 1000;
const toMs = Number(params.get('to') ?? '30') * 1000;
const dir = params.get('dir') ?? '/tmp/alloc';
if (!(toMs > fromMs)) throw new Error(`sample-allocations: bad window from=${params.get('from')} to=${params.get('to')}`);

const session = new Session();
session.connect();
setTimeout(async () => {
  await session.post('HeapProfiler.enable');
  // One sample per 16 KiB allocated on average.
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 16384,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  setTimeout(async () => {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    mkdirSync(dir, { recursive: true });
    // The webhook's worker thread loads this too (it inherits the node options): one file per thread.
    const file = `${dir}/allocations-${process.pid}${threadId === 0 ? '' : `-thread${threadId}`}-${fromMs / 1000}s.heapprofile`;
    writeFileSync(file, JSON.stringify(profile));
    console.error(`sample-allocations: wrote ${file}`);
  }, toMs - fromMs).unref();
}, fromMs).unref();
