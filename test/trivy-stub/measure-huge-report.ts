// Measures what a huge Trivy report costs the operator process: runs TrivyRunner.scan against the stub
// in `huge` mode and prints one JSON line with the report size, the parsed counts, the stub's own
// counts and this process's peak RSS. Run: npx tsx test/trivy-stub/measure-huge-report.ts [MB]
import { pino } from 'pino';
import { TrivyRunner } from '../../src/scanner/trivy-runner.js';
import { createStubWorkspace, stubRunnerOptions, testDigest } from './stub-harness.js';

const mb = Number(process.argv[2] ?? '100');
const ws = createStubWorkspace({}, { TRIVY_STUB_MODE: 'huge', TRIVY_STUB_HUGE_MB: String(mb) });
try {
  const runner = new TrivyRunner(stubRunnerOptions(ws, pino({ level: 'silent' }), { timeoutMs: 120_000 }));
  await runner.downloadDatabases();
  const baselineRssMB = process.resourceUsage().maxRSS / 1024;
  const started = Date.now();
  const result = await runner.scan({ repository: 'docker.io/library/huge', digest: testDigest(1) });
  const durationMs = Date.now() - started;
  const peakRssMB = process.resourceUsage().maxRSS / 1024;
  const stub = ws.invocations().at(-1)?.end?.huge;
  console.log(
    JSON.stringify({
      reportMB: stub ? Math.round((stub.bytes / 1024 / 1024) * 10) / 10 : undefined,
      durationMs,
      baselineRssMB: Math.round(baselineRssMB),
      peakRssMB: Math.round(peakRssMB),
      heapUsedMB: Math.round(process.memoryUsage().heapUsed / 1024 / 1024),
      summary: result.summary,
      stubCounts: stub,
      leftovers: ws.leftovers(),
    }),
  );
} finally {
  ws.cleanup();
}
