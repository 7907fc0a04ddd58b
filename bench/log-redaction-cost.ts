// Prints what one log line costs (time and bytes allocated, garbage included) with the operator's
// redaction paths, with subsets of them, and without any: the cost is per line, in every component.
// Usage: npx tsx bench/log-redaction-cost.ts
import { Session } from 'node:inspector/promises';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { REDACTED_PATHS } from '../src/logger.js';

interface SampleNode {
  selfSize: number;
  children: SampleNode[];
}

const LINES = 10_000;
const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
// A typical reconciler line.
const fields = { namespace: 'ns-0001', digest: `sha256:${'a'.repeat(64)}`, image: 'registry.example/app:1.0', report: 'app-a342f3cb1b2c', phase: 'Scanned' };
const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');

function allocated(node: SampleNode): number {
  return node.children.reduce((sum, child) => sum + allocated(child), node.selfSize);
}

async function measure(label: string, paths: string[] | undefined): Promise<void> {
  const options = paths === undefined ? { level: 'info' } : { level: 'info', redact: { paths, censor: '[redacted]' } };
  const log = pino(options, sink).child({ component: 'reconciler' });
  for (let i = 0; i < LINES / 2; i++) log.info(fields, 'warm-up');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const started = performance.now();
  for (let i = 0; i < LINES; i++) log.info(fields, 'report status changed');
  const ms = performance.now() - started;
  const { profile } = await session.post('HeapProfiler.stopSampling');
  const bytes = allocated(profile.head as SampleNode);
  console.log(`${label.padEnd(34)} ${((ms / LINES) * 1000).toFixed(1).padStart(6)} µs/line ${(bytes / LINES / 1024).toFixed(1).padStart(6)} KiB/line`);
}

await measure('no redaction', undefined);
await measure('explicit paths only', REDACTED_PATHS.filter((p) => !p.startsWith('*')));
await measure('one leading wildcard (*.password)', ['*.password']);
await measure(`all ${REDACTED_PATHS.length} paths (the operator's)`, [...REDACTED_PATHS]);
