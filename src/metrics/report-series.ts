// The per-report series (imagescan_image_vulnerabilities and imagescan_report_last_scan_timestamp_seconds)
// in the Prometheus text format, written straight from the report cache at each scrape. Through
// prom-client gauges a scrape of 4,365 reports (10,000 pods) built ~48,000 label objects, hashes and
// map entries (279 ms, 275 MiB allocated). As JavaScript strings (a line each, joined into chunks) it
// was still ~25 MiB of V8 heap per scrape, and in a busy operator that garbage sometimes landed in
// the old generation at once: +30-35 MiB of heap, kept as V8's pooled pages until the operator went
// idle (bench/README.md). So the text is written into Buffers, outside the V8 heap, a chunk at a
// time; the metrics server writes one chunk at a time as the client reads. Pure.
import { UNASSIGNED_TEAM } from '../reports/image-scan-report.js';
import type { ImageScanReport } from '../reports/image-scan-report.js';
import { SEVERITIES } from '../scanner/scan-result.js';
import type { Severity } from '../scanner/scan-result.js';
import { countBySeverity } from './vulnerability-counts.js';

export const IMAGE_VULNERABILITIES = 'imagescan_image_vulnerabilities';
export const REPORT_LAST_SCAN = 'imagescan_report_last_scan_timestamp_seconds';

const IMAGE_VULNERABILITIES_HEADER =
  `# HELP ${IMAGE_VULNERABILITIES} Vulnerabilities of a running image by severity and whether a fixed version exists, from its ImageScanReport.\n` +
  `# TYPE ${IMAGE_VULNERABILITIES} gauge\n`;
const REPORT_LAST_SCAN_HEADER =
  `# HELP ${REPORT_LAST_SCAN} Unix time of the last successful scan of a running image (status.lastScanTime of its ImageScanReport).\n` +
  `# TYPE ${REPORT_LAST_SCAN} gauge\n`;

/** The constant text after a report's labels, per severity and fixability. */
const COUNT_SUFFIX = Object.fromEntries(
  SEVERITIES.map((severity) => [severity, { fixable: `,severity="${severity}",fixable="true"} `, unfixable: `,severity="${severity}",fixable="false"} ` }]),
) as Record<Severity, { fixable: string; unfixable: string }>;
const LONGEST_SUFFIX = Math.max(...Object.values(COUNT_SUFFIX).map((s) => s.unfixable.length));

// Module constants: a regular expression literal makes a new object each time it is evaluated.
const NEEDS_ESCAPE = /[\\"\n]/;
const ESCAPED = /[\\"\n]/g;

/** A label value as the text format wants it: backslash, double quote and newline escaped. */
function labelValue(value: string): string {
  return NEEDS_ESCAPE.test(value) ? value.replace(ESCAPED, (c) => (c === '\n' ? '\\n' : `\\${c}`)) : value;
}

/**
 * Reports whose image still runs. A report whose `status.workloads` is an empty list is waiting for
 * garbage collection after its last pod went away: its image no longer runs, so it gets no
 * per-image series and the alerts on it resolve at once instead of after the grace period.
 */
function isRunning(report: ImageScanReport): boolean {
  if (report.metadata?.name === undefined || report.metadata.namespace === undefined) return false;
  if (typeof report.spec?.image !== 'string') return false;
  const workloads = report.status?.workloads;
  return !(Array.isArray(workloads) && workloads.length === 0);
}

function epochSeconds(rfc3339: string | undefined): number | undefined {
  if (rfc3339 === undefined) return undefined;
  const ms = Date.parse(rfc3339);
  return Number.isFinite(ms) ? ms / 1000 : undefined;
}

/** The label values of a report's series, in the order written: namespace, report, image, team. */
function labelValuesOf(report: ImageScanReport): [string, string, string, string] {
  const team = report.status?.team;
  return [report.metadata?.namespace ?? '', report.metadata?.name ?? '', report.spec.image, team === undefined || team === '' ? UNASSIGNED_TEAM : team];
}

const LABEL_OPENINGS = ['{namespace="', '",report="', '",image="', '",team="'] as const;

/** UTF-8 bytes of the labels at most: each character escaped (two) and three bytes per character. */
function maxLabelBytes(values: readonly string[]): number {
  return 64 + 6 * values.reduce((sum, v) => sum + v.length, 0);
}

/** A byte range [start, end) of the chunk being filled. */
type Span = [number, number];

/** Fills Buffers of about `size` bytes; `reserve` starts a new one first when a record might not fit. */
class ChunkWriter {
  private buffer: Buffer;
  private used = 0;

  constructor(private readonly size: number) {
    this.buffer = Buffer.allocUnsafeSlow(size);
  }

  /**
   * Makes room for `maxBytes`; returns the filled chunk when a new one had to be started. A record
   * longer than `size` gets a chunk of its own length, so records are never split.
   */
  reserve(maxBytes: number): Buffer | undefined {
    if (this.buffer.length - this.used >= maxBytes) return undefined;
    const full = this.take();
    this.buffer = Buffer.allocUnsafeSlow(Math.max(this.size, maxBytes));
    return full;
  }

  write(text: string): void {
    this.used += this.buffer.write(text, this.used);
  }

  /**
   * Writes `{namespace="…",report="…",image="…",team="…"` (no closing brace) piece by piece, so no
   * string is built for it; returns where it starts and ends, for copyOf.
   */
  writeLabels(values: readonly string[]): Span {
    const start = this.used;
    for (let i = 0; i < values.length; i++) {
      this.write(LABEL_OPENINGS[i] ?? '');
      this.write(labelValue(values[i] ?? ''));
    }
    this.write('"');
    return [start, this.used];
  }

  /** Writes again what was written at `span` of the current chunk; returns the span. */
  copyOf(span: Span): Span {
    this.buffer.copyWithin(this.used, span[0], span[1]);
    this.used += span[1] - span[0];
    return span;
  }

  /** The filled part (undefined when empty); the writer then holds no chunk until reserve. */
  take(): Buffer | undefined {
    const full = this.used === 0 ? undefined : this.buffer.subarray(0, this.used);
    this.buffer = Buffer.alloc(0);
    this.used = 0;
    return full;
  }
}

/**
 * One imagescan_image_vulnerabilities line, in pieces: no string is built for it. The labels are
 * written for a report's first line and copied for the others; returns where they are.
 */
function writeCountLine(out: ChunkWriter, values: readonly string[], labels: Span | undefined, suffix: string, value: number): Span {
  out.write(IMAGE_VULNERABILITIES);
  const span = labels === undefined ? out.writeLabels(values) : out.copyOf(labels);
  out.write(suffix);
  out.write(String(value));
  out.write('\n');
  return span;
}

/** UTF-8 bytes of `text`, at most: three per UTF-16 code unit. */
function maxBytes(text: string): number {
  return 3 * text.length;
}

/**
 * Both per-report metric families (HELP, TYPE and one line per series) as Buffers of whole lines,
 * each about `chunkBytes` long; the series of one report are never split across chunks, and every
 * chunk ends with a newline. Pass a snapshot: a report that changed between two chunks would
 * otherwise be written twice.
 */
export function* reportSeriesChunks(reports: readonly ImageScanReport[], chunkBytes = 64 * 1024): Generator<Buffer> {
  const out = new ChunkWriter(chunkBytes);
  let full: Buffer | undefined;
  if ((full = out.reserve(maxBytes(IMAGE_VULNERABILITIES_HEADER))) !== undefined) yield full;
  out.write(IMAGE_VULNERABILITIES_HEADER);
  for (const report of reports) {
    if (!isRunning(report)) continue;
    const counts = countBySeverity(report.status);
    if (counts === undefined || counts.length === 0) continue;
    const values = labelValuesOf(report);
    // Per line: the name, the labels, a suffix, a count of at most 16 digits and the newline.
    const lineBytes = IMAGE_VULNERABILITIES.length + maxLabelBytes(values) + LONGEST_SUFFIX + 17;
    if ((full = out.reserve(2 * counts.length * lineBytes)) !== undefined) yield full;
    let labels: Span | undefined;
    // A zero is not written: most images have nothing in several of the ten buckets, and a sum or
    // a `> 0` reads a missing series as none, so a report costs only its non-empty buckets.
    for (const count of counts) {
      const suffix = COUNT_SUFFIX[count.severity];
      if (count.fixable > 0) labels = writeCountLine(out, values, labels, suffix.fixable, count.fixable);
      if (count.unfixable > 0) labels = writeCountLine(out, values, labels, suffix.unfixable, count.unfixable);
    }
  }
  if ((full = out.reserve(maxBytes(REPORT_LAST_SCAN_HEADER))) !== undefined) yield full;
  out.write(REPORT_LAST_SCAN_HEADER);
  for (const report of reports) {
    if (!isRunning(report)) continue;
    const seconds = epochSeconds(report.status?.lastScanTime);
    if (seconds === undefined) continue;
    const values = labelValuesOf(report);
    if ((full = out.reserve(REPORT_LAST_SCAN.length + maxLabelBytes(values) + 32)) !== undefined) yield full;
    out.write(REPORT_LAST_SCAN);
    out.writeLabels(values);
    out.write('} ');
    out.write(String(seconds));
    out.write('\n');
  }
  if ((full = out.take()) !== undefined) yield full;
}
