// The operator's Prometheus metrics: one typed field per metric of design.md, on a registry of our own.
// Per-report series are written from the report cache at every scrape (report-series.ts), so they
// cannot drift and vanish with their report; event-time metrics are set by the scanner and the
// controller through the small methods below.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REPORT_PHASES } from '../reports/image-scan-report.js';
import type { ImageScanReport, ReportPhase } from '../reports/image-scan-report.js';
import { SCAN_FAILURE_REASONS } from '../scanner/scan-failure.js';
import type { ScanFailureReason } from '../scanner/scan-failure.js';
import { policyViolationChunks } from './policy-series.js';
import { reportSeriesChunks } from './report-series.js';

/** Where per-report series come from at scrape time, e.g. the report informer's cache. */
export interface ReportSource {
  list(): readonly ImageScanReport[];
}

export const SCAN_RESULTS = ['success', 'failure'] as const;
export type ScanResultLabel = (typeof SCAN_RESULTS)[number];

/**
 * One finished scan. The operator reports the scan queue's outcomes (once per scan request, after
 * its retries; the duration is the last Trivy run's).
 */
export type ScanObservation =
  | { result: 'success'; durationSeconds: number }
  | { result: 'failure'; reason: ScanFailureReason; durationSeconds: number };

/**
 * The shape of the scan queue's ScanOutcome that metrics need; a ScanOutcome is assignable to it.
 */
export type ScanOutcomeLike = { durationMs: number } & (
  | { ok: true }
  | { ok: false; failure: { reason: ScanFailureReason } }
);

/** Trivy scans take seconds to tens of minutes (a cold pull of a multi-GB image); 1 s .. 30 min. */
export const SCAN_DURATION_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1200, 1800];

/** Admission decisions, as imagescan_admission_reviews_total labels them. */
export const ADMISSION_DECISIONS = ['allow', 'warn', 'deny'] as const;
export type AdmissionDecisionLabel = (typeof ADMISSION_DECISIONS)[number];

/** Answers come from memory in well under a millisecond; the API server gives up after 5 s. */
export const ADMISSION_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

const MISNAMED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export interface OperatorMetricsOptions {
  reportSource: ReportSource;
  /**
   * Bytes of resident memory of the running Trivy children, read at scrape time (they run in the
   * operator's container, so they count against its memory limit). Without it the gauge stays 0.
   */
  trivyMemory?: () => Promise<number>;
  /** Adds prom-client's process and Node.js metrics (default true; tests may turn it off). */
  defaultMetrics?: boolean;
}

export class OperatorMetrics {
  readonly registry = new Registry();

  readonly scansTotal: Counter<'result'>;
  readonly scanFailuresTotal: Counter<'reason'>;
  readonly scanDurationSeconds: Histogram<'result'>;
  readonly scanQueueDepth: Gauge;
  readonly scansInProgress: Gauge;
  readonly imagesTracked: Gauge;
  readonly imagesFailed: Gauge;
  readonly trivyResidentMemoryBytes: Gauge;
  readonly reports: Gauge<'phase'>;
  readonly trivyDbUpdatedTimestampSeconds: Gauge;
  readonly leader: Gauge;
  readonly buildInfo: Gauge<'version' | 'trivy_version'>;
  readonly admissionReviewsTotal: Counter<'kind' | 'decision'>;
  readonly admissionReviewDurationSeconds: Histogram;

  private readonly reportSource: ReportSource;
  /** Per-image series are the leader's to export: standbys read the same reports (see scrape). */
  private leading = false;

  constructor(opts: OperatorMetricsOptions) {
    const source = opts.reportSource;
    this.reportSource = source;
    const registers = [this.registry];

    this.scansTotal = new Counter({
      name: 'imagescan_scans_total',
      help: 'Trivy scans finished, by result.',
      labelNames: ['result'],
      registers,
    });
    this.scanFailuresTotal = new Counter({
      name: 'imagescan_scan_failures_total',
      help: 'Trivy scans that failed, by classified reason.',
      labelNames: ['reason'],
      registers,
    });
    this.scanDurationSeconds = new Histogram({
      name: 'imagescan_scan_duration_seconds',
      help: 'Wall time of a Trivy scan, by result.',
      labelNames: ['result'],
      buckets: SCAN_DURATION_BUCKETS,
      registers,
    });
    // Every label value exists from the start, so rate() and the failure alert see a 0 before the
    // first failure instead of a missing series.
    for (const result of SCAN_RESULTS) {
      this.scansTotal.inc({ result }, 0);
      this.scanDurationSeconds.zero({ result });
    }
    for (const reason of SCAN_FAILURE_REASONS) this.scanFailuresTotal.inc({ reason }, 0);

    this.admissionReviewsTotal = new Counter({
      name: 'imagescan_admission_reviews_total',
      help: 'AdmissionReviews answered by this replica, by object kind and decision (allow, warn, deny).',
      labelNames: ['kind', 'decision'],
      registers,
    });
    this.admissionReviewDurationSeconds = new Histogram({
      name: 'imagescan_admission_review_duration_seconds',
      help: 'Time to decide one AdmissionReview, from memory.',
      buckets: ADMISSION_DURATION_BUCKETS,
      registers,
    });

    this.scanQueueDepth = new Gauge({
      name: 'imagescan_scan_queue_depth',
      help: 'Scans waiting in the queue (not yet running).',
      registers,
    });
    this.scansInProgress = new Gauge({
      name: 'imagescan_scans_in_progress',
      help: 'Trivy scans running now.',
      registers,
    });

    this.imagesTracked = new Gauge({
      name: 'imagescan_images_tracked',
      help: 'Distinct image digests that have an ImageScanReport.',
      registers,
      collect() {
        this.set(distinctDigests(source.list(), () => true));
      },
    });
    this.imagesFailed = new Gauge({
      name: 'imagescan_images_failed',
      help: 'Distinct image digests whose ImageScanReport is in phase Failed (their vulnerabilities are unknown).',
      registers,
      collect() {
        // Counted by digest, not by report: one image gone from its registry in 40 namespaces is one.
        this.set(distinctDigests(source.list(), (report) => report.status?.phase === 'Failed'));
      },
    });

    this.reports = new Gauge({
      name: 'imagescan_reports',
      help: 'ImageScanReports by status.phase (a report without a phase yet counts as Pending).',
      labelNames: ['phase'],
      registers,
      collect() {
        const byPhase = new Map<ReportPhase, number>(REPORT_PHASES.map((phase) => [phase, 0]));
        for (const report of source.list()) {
          const phase = phaseOf(report);
          byPhase.set(phase, (byPhase.get(phase) ?? 0) + 1);
        }
        this.reset();
        for (const [phase, count] of byPhase) this.set({ phase }, count);
      },
    });

    this.trivyDbUpdatedTimestampSeconds = new Gauge({
      name: 'imagescan_trivy_db_updated_timestamp_seconds',
      help: 'Unix time the Trivy vulnerability DB in use was built (its UpdatedAt); 0 while unknown.',
      registers,
    });
    this.leader = new Gauge({
      name: 'imagescan_leader',
      help: '1 when this replica is the leader and scans, 0 when it stands by.',
      registers,
    });
    const trivyMemory = opts.trivyMemory;
    this.trivyResidentMemoryBytes = new Gauge({
      name: 'imagescan_trivy_resident_memory_bytes',
      help: 'Resident memory of the Trivy processes this replica runs now (scans and DB downloads) and of the helper process that starts them, summed.',
      registers,
      async collect() {
        if (trivyMemory !== undefined) this.set(await trivyMemory());
      },
    });
    this.buildInfo = new Gauge({
      name: 'imagescan_build_info',
      help: 'Always 1; the labels tell the operator version and the Trivy version it runs.',
      labelNames: ['version', 'trivy_version'],
      registers,
    });

    if (opts.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      // These three are gauges named like counters, which `promtool check metrics` rejects; the
      // same numbers remain as sum(nodejs_active_handles) etc. by type.
      for (const name of MISNAMED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    }
  }

  /** The Content-Type of `scrape()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The exposition text of every metric, in chunks to write one at a time (see report-series.ts).
   * Rejects when the report source throws.
   */
  async scrape(): Promise<IterableIterator<string | Buffer>> {
    const registryText = await this.registry.metrics();
    // A standby exports no per-image series: two replicas would double the largest families for
    // nothing, and the leader's are the ones its scans keep current.
    const reports = this.leading ? this.reportSource.list() : undefined;
    return (function* () {
      yield registryText;
      if (reports !== undefined) {
        yield* reportSeriesChunks(reports);
        yield* policyViolationChunks(reports);
      }
    })();
  }

  /** Records one finished scan: scans_total, scan_failures_total and the duration histogram. */
  observeScan(observation: ScanObservation): void {
    const { result } = observation;
    this.scansTotal.inc({ result });
    if (observation.result === 'failure') this.scanFailuresTotal.inc({ reason: observation.reason });
    this.scanDurationSeconds.observe({ result }, Math.max(0, observation.durationSeconds));
  }

  /** The same as observeScan, from the scan queue's ScanOutcome. */
  observeScanOutcome(outcome: ScanOutcomeLike): void {
    const durationSeconds = outcome.durationMs / 1000;
    if (outcome.ok) this.observeScan({ result: 'success', durationSeconds });
    else this.observeScan({ result: 'failure', reason: outcome.failure.reason, durationSeconds });
  }

  /** Sets the queue gauges; call it on every queue event (cheap). */
  /** One answered AdmissionReview: its object kind (Deployment, Pod, ...), the decision and how long it took. */
  observeAdmissionReview(kind: string, decision: AdmissionDecisionLabel, seconds: number): void {
    this.admissionReviewsTotal.inc({ kind, decision });
    this.admissionReviewDurationSeconds.observe(seconds);
  }

  setQueue(depth: number, inProgress: number): void {
    this.scanQueueDepth.set(depth);
    this.scansInProgress.set(inProgress);
  }

  /** 1 while this replica holds the lease (or leader election is off), 0 on standby; only a leader exports per-image series. */
  setLeader(isLeader: boolean): void {
    this.leading = isLeader;
    this.leader.set(isLeader ? 1 : 0);
  }

  /**
   * Sets the Trivy DB build time from an RFC 3339 string or Date. Returns false and keeps the old
   * value when the time cannot be parsed (the alert then sees the old age rather than a bogus one).
   */
  setDbUpdatedAt(updatedAt: string | Date): boolean {
    const ms = updatedAt instanceof Date ? updatedAt.getTime() : Date.parse(updatedAt);
    if (!Number.isFinite(ms) || ms <= 0) return false;
    this.trivyDbUpdatedTimestampSeconds.set(ms / 1000);
    return true;
  }

  /** Replaces the build_info series (call again once the Trivy version is known). */
  setBuildInfo(version: string, trivyVersion = 'unknown'): void {
    this.buildInfo.reset();
    this.buildInfo.set({ version, trivy_version: trivyVersion }, 1);
  }
}

function phaseOf(report: ImageScanReport): ReportPhase {
  const phase = report.status?.phase;
  return phase !== undefined && (REPORT_PHASES as readonly string[]).includes(phase) ? phase : 'Pending';
}

/** How many distinct digests the matching reports name (objects from the API server are raw JSON: one without a digest is skipped). */
function distinctDigests(reports: readonly ImageScanReport[], matches: (report: ImageScanReport) => boolean): number {
  const digests = new Set<string>();
  for (const report of reports) {
    if (typeof report.spec?.digest === 'string' && matches(report)) digests.add(report.spec.digest);
  }
  return digests.size;
}
