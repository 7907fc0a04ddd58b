// Command-line flags of the benchmark, parsed and validated once into a frozen object.
import { parseArgs } from 'node:util';
import { everySeconds } from './compressed-day.js';

export interface BenchOptions {
  pods: number;
  namespaces: number;
  digests: number;
  teams: number;
  /** The operator's --scan-concurrency. */
  concurrency: number;
  /** How long the stub Trivy sleeps per scan. */
  scanMs: number;
  /** Length of the churn phase. */
  churnSeconds: number;
  /** Pod creations per second during churn (and as many deletions). */
  churnRate: number;
  /** Seconds after the operator starts at which its one scheduled rescan fires (0: computed). */
  rescanAfterSeconds: number;
  /** Node count; half amd64, half arm64. */
  nodes: number;
  seed: number;
  /** Write the figures here as JSON. */
  json: string | undefined;
  /** Extra NODE_OPTIONS for the operator process (e.g. --cpu-prof --cpu-prof-dir=DIR). */
  operatorNodeOptions: string;
  /** Keep the work folder (operator logs, stub log, request log) instead of removing it. */
  keep: boolean;
  /** Which Trivy stand-in: the CPU-cheap bench/fast-trivy.sh, or the project's Node stub. */
  stub: 'fast' | 'node';
  /** The operator's --report-details. */
  reportDetails: 'fixes' | 'full';
  /** Length of the compressed day after the restart (0: none). */
  daySeconds: number;
  /** AdmissionReviews per second sent to the webhook during the rescan. */
  admissionRate: number;
  /** Length of the admission load (0: none). */
  admissionSeconds: number;
}

export class BenchOptionsError extends Error {
  override name = 'BenchOptionsError';
}

export const USAGE = `usage: npm run bench -- [flags]
  --pods N              pods in the cluster (default 10000)
  --namespaces N        namespaces (default 500)
  --digests N           distinct image digests, Zipf-like popularity (default 1000)
  --teams N             teams, as namespace labels (default 50)
  --concurrency N       the operator's --scan-concurrency (default 8)
  --scan-ms N           stub Trivy time per scan in ms (default 200)
  --churn-seconds N     length of the churn phase (default 60)
  --churn-rate N        pod creations and deletions per second during churn (default 100)
  --rescan-after N      seconds from operator start to its scheduled rescan (default: computed)
  --nodes N             nodes, half amd64 and half arm64 (default 20)
  --seed N              random seed of the cluster (default 1)
  --json FILE           also write the figures as JSON to FILE
  --operator-node-options=".."  NODE_OPTIONS for the operator (e.g. "--operator-node-options=--cpu-prof --cpu-prof-dir=/tmp/prof")
  --stub fast|node      Trivy stand-in: bench/fast-trivy.sh (default; sleeps and replays, ~no CPU) or
                        test/trivy-stub/trivy (Node; ~0.13 CPU-s per run, which bounds a 2-core machine)
  --day-seconds N       a day of DB updates (every N/4 s) and schedule (every N/2 s) after the restart,
                        counting registry pulls (default 120; 0: skip)
  --admission-rate N    AdmissionReviews per second to the operator's webhook during the rescan (default 200)
  --admission-seconds N length of that load, open-loop (default 30; 0: no admission phase)
  --keep                keep the work folder with the operator log, stub log and request log
  --report-details fixes|full  the operator's --report-details (default fixes)`;

function positiveInt(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new BenchOptionsError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return value;
}

/** Parses argv (without node and script); throws BenchOptionsError with a one-line message. */
export function parseBenchOptions(argv: string[]): Readonly<BenchOptions> | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        pods: { type: 'string' },
        namespaces: { type: 'string' },
        digests: { type: 'string' },
        teams: { type: 'string' },
        concurrency: { type: 'string' },
        'scan-ms': { type: 'string' },
        'churn-seconds': { type: 'string' },
        'churn-rate': { type: 'string' },
        'rescan-after': { type: 'string' },
        nodes: { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'string' },
        'operator-node-options': { type: 'string' },
        keep: { type: 'boolean', default: false },
        stub: { type: 'string', default: 'fast' },
        'report-details': { type: 'string', default: 'fixes' },
        'day-seconds': { type: 'string' },
        'admission-rate': { type: 'string' },
        'admission-seconds': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new BenchOptionsError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return 'help';
  const options: BenchOptions = {
    pods: positiveInt('pods', values.pods, 10_000),
    namespaces: positiveInt('namespaces', values.namespaces, 500),
    digests: positiveInt('digests', values.digests, 1_000),
    teams: positiveInt('teams', values.teams, 50),
    concurrency: positiveInt('concurrency', values.concurrency, 8),
    scanMs: positiveInt('scan-ms', values['scan-ms'], 200, 0),
    churnSeconds: positiveInt('churn-seconds', values['churn-seconds'], 60, 0),
    churnRate: positiveInt('churn-rate', values['churn-rate'], 100, 0),
    rescanAfterSeconds: positiveInt('rescan-after', values['rescan-after'], 0, 0),
    nodes: positiveInt('nodes', values.nodes, 20, 2),
    seed: positiveInt('seed', values.seed, 1, 0),
    json: values.json,
    operatorNodeOptions: values['operator-node-options'] ?? '',
    keep: values.keep,
    stub: values.stub === 'node' ? 'node' : 'fast',
    reportDetails: values['report-details'] === 'full' ? 'full' : 'fixes',
    daySeconds: positiveInt('day-seconds', values['day-seconds'], 120, 0),
    admissionRate: positiveInt('admission-rate', values['admission-rate'], 200),
    admissionSeconds: positiveInt('admission-seconds', values['admission-seconds'], 30, 0),
  };
  if (values['report-details'] !== 'fixes' && values['report-details'] !== 'full') {
    throw new BenchOptionsError(`--report-details must be fixes or full, got ${JSON.stringify(values['report-details'])}`);
  }
  if (values.stub !== 'node' && values.stub !== 'fast') throw new BenchOptionsError(`--stub must be fast or node, got ${JSON.stringify(values.stub)}`);
  if (options.concurrency > 64) throw new BenchOptionsError(`--concurrency must be at most 64 (the operator's limit), got ${options.concurrency}`);
  if (options.namespaces > options.pods) throw new BenchOptionsError(`--namespaces (${options.namespaces}) must not exceed --pods (${options.pods})`);
  if (options.digests > options.pods) throw new BenchOptionsError(`--digests (${options.digests}) must not exceed --pods (${options.pods}): every digest needs a pod`);
  if (options.daySeconds > 0) {
    try {
      if (options.daySeconds % 4 !== 0) throw new Error(`--day-seconds must be a multiple of 4 (the DB refresh is a quarter day), got ${options.daySeconds}`);
      everySeconds(options.daySeconds / 2);
    } catch (err) {
      throw new BenchOptionsError(err instanceof Error ? err.message : String(err));
    }
  }
  return Object.freeze(options);
}
