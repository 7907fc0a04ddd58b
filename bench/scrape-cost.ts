// Prints what one scrape of the per-report series costs: time, bytes of text, and bytes allocated on
// the V8 heap (garbage included), for the cached (slim) reports of the 10,000-pod bench.
// Usage: npx tsx bench/scrape-cost.ts [reports]
import { Session } from 'node:inspector/promises';
import { slimReport } from '../src/kube/cluster-objects.js';
import { reportSeriesChunks } from '../src/metrics/report-series.js';
import type { ImageScanReport } from '../src/reports/image-scan-report.js';
import { fakeReport, fixtureEntries, scannedStatus } from '../test/alerts/fake-reports.js';

interface SampleNode {
  selfSize: number;
  children: SampleNode[];
}

const count = Number(process.argv[2] ?? '4365');
const SCRAPES = 20;
const lists = ['alpine-39.json', 'centos-7.json', 'debian-buster.json', 'fluentd-gems.json'].map((f) => fixtureEntries(f));
const reports: ImageScanReport[] = Array.from({ length: count }, (_, i) => {
  const digest = `sha256:${i.toString(16).padStart(64, '0')}`;
  const report = fakeReport({
    namespace: `ns-${String(i % 500).padStart(4, '0')}`,
    name: `app-${String(i % 1000).padStart(5, '0')}-${digest.slice(7, 19)}`,
    image: `registry.bench.local/app-${String(i % 1000).padStart(5, '0')}:1.0`,
    digest,
    status: scannedStatus(lists[i % lists.length] ?? [], { team: `team-${String(i % 50).padStart(2, '0')}` }),
  });
  return slimReport(report).report;
});

function allocated(node: SampleNode): number {
  return node.children.reduce((sum, child) => sum + allocated(child), node.selfSize);
}

function scrape(): number {
  let bytes = 0;
  for (const chunk of reportSeriesChunks(reports)) bytes += chunk.length;
  return bytes;
}

const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');
for (let i = 0; i < 5; i++) scrape();
await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
const started = performance.now();
let text = 0;
for (let i = 0; i < SCRAPES; i++) text = scrape();
const ms = (performance.now() - started) / SCRAPES;
const { profile } = await session.post('HeapProfiler.stopSampling');
const heap = allocated(profile.head as SampleNode) / SCRAPES;
console.log(`${count} reports: ${(text / 1024 / 1024).toFixed(1)} MiB of text, ${ms.toFixed(1)} ms and ${(heap / 1024 / 1024).toFixed(2)} MiB of V8 heap allocated per scrape`);
