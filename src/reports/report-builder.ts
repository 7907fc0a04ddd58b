// Domain model -> ImageScanReport: the object the operator wants to exist, assembled once, capped to fit
// the API server's size limit, and byte-for-byte stable so an unchanged result costs no write.
import type { V1Condition } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import type { SeverityCount } from '../metrics/vulnerability-counts.js';
import { isLabelValue } from '../images/team.js';
import { findingFingerprint } from '../kube/event-recorder.js';
import { SCAN_FAILURE_REASONS, type ScanFailureReason } from '../scanner/scan-failure.js';
import { DEFAULT_SCAN_RETRY_POLICY, retrySentence } from './scan-retry.js';
import type { ScanRetryState } from './scan-retry.js';
import { compareText, compareVulnerabilities, SEVERITIES, type ScanResult, type ScannerInfo, type Severity, type Vulnerability, type VulnerabilitySummary } from '../scanner/scan-result.js';
import {
  LABEL_DIGEST,
  LABEL_MANAGED_BY,
  LABEL_TEAM,
  MANAGED_BY_VALUE,
  REPORT_API_VERSION,
  REPORT_KIND,
  REPORT_PHASES,
  UNASSIGNED_TEAM,
  type ImageScanReport,
  type ImageScanReportStatus,
  type FixCounts,
  type ReportDetails,
  type ReportFix,
  type ReportPhase,
  type ReportVulnerability,
  type ReportWorkload,
} from './image-scan-report.js';
import { compareFixes, fixableCriticalIdsOfFixes, fixesOf, hasFix, sumFixCounts } from './report-fixes.js';
import { digestLabelValue, reportName } from './report-name.js';

/** The type of the one condition the operator writes. */
export const SCANNED_CONDITION = 'Scanned';

export interface ReportLimits {
  /** Whether the per-vulnerability list is written (`full`) or only status.fixes (`fixes`). */
  details: ReportDetails;
  /** Budget for status.fixes as the API server serializes it (bytes). */
  maxFixBytes: number;
  maxFixes: number;
  /** Budget for status.vulnerabilities as the API server serializes it (bytes). */
  maxVulnerabilityBytes: number;
  maxVulnerabilities: number;
  maxWorkloads: number;
}

/**
 * etcd refuses objects over 1.5 MiB, and every report is stored once per namespace that runs the image:
 * at 50,000 pods that is ~22,000 reports, and etcd's default quota is 2 GiB. The lists are the only parts
 * that grow with the image. status.fixes gets 8 KiB, the worst ~30 packages: on the real reports among
 * the fixtures 11 of 14 need less than 8 KB, nginx:1.19 18.6 KB (58 packages), the largest 34 KB (61
 * packages); what the cap leaves out is counted in fixesOmitted, and the whole list is one flag
 * (--report-details=full) or one `trivy image` away. With full, the per-vulnerability list's 256 KiB and
 * 1000 entries keep the whole report below the limit and `kubectl get -o yaml` readable.
 */
export const DEFAULT_REPORT_LIMITS: Readonly<ReportLimits> = Object.freeze({
  details: 'fixes',
  maxFixBytes: 8 * 1024,
  maxFixes: 100,
  maxVulnerabilityBytes: 256 * 1024,
  maxVulnerabilities: 1000,
  maxWorkloads: 500,
});

/**
 * The CRD's maxItems for the lists. Limits asked for (e.g. --max-report-vulnerabilities up to 5000)
 * are clamped to them: a longer list is refused by the API server (422) and the report never updates.
 */
export const CRD_MAX_ITEMS = Object.freeze({ vulnerabilities: 1000, workloads: 500, fixes: 500, fixIds: 5000, fixedVersions: 100 });

/**
 * Longest strings (in code points, as the API server counts) the builder writes; the CRD declares the
 * same numbers as maxLength, so a report never fails validation because Trivy wrote a long field.
 */
export const FIELD_MAX_LENGTH = Object.freeze({
  id: 128,
  package: 256,
  installedVersion: 256,
  fixedVersion: 512,
  /** One of a fix entry's fixedVersions (a piece of a FixedVersion, itself at most fixedVersion long). */
  fixVersion: 512,
  title: 256,
  url: 1024,
  target: 512,
  workloadKind: 63,
  workloadName: 253,
  scannerVersion: 64,
  message: 1024,
  conditionMessage: 1024,
});

/** The report a (namespace, digest) should have, as the controller computes it from the pods. */
export interface DesiredReport {
  namespace: string;
  /** The reference as the pod spec writes it. */
  image: string;
  repository: string;
  digest: string;
  team: string;
  workloads: ReportWorkload[];
  /** The digest is a local image ID (see ResolvedImage.localOnly); the status says so. */
  localOnly?: boolean;
}

/** What is known about the scans of one digest. */
export interface ScanState {
  phase: ReportPhase;
  /** The latest successful result; kept while a rescan runs or after a rescan failed. */
  result?: ScanResult;
  /** When `result` was produced, or, without a result, when the failed attempt ended. */
  scannedAt?: Date;
  /** `retry`: how often it failed in a row and when it is tried next (see scan-retry.ts). */
  failure?: { reason: ScanFailureReason; message: string; retry?: ScanRetryState & { maxAttempts?: number } };
  /** Entries known to be missing from result.vulnerabilities (a result rebuilt from a capped report). */
  vulnerabilitiesOmitted?: number;
  /**
   * The report's fix entries, when known apart from result.vulnerabilities: a result rebuilt from a
   * report that holds status.fixes, or a prepared state. Otherwise they are worked out from the list.
   */
  fixes?: ReportFix[];
  /** Fix entries known to be missing from `fixes`. */
  fixesOmitted?: number;
  /** The fixable vulnerabilities of those missing entries, by severity. */
  fixesOmittedCounts?: FixCounts;
  /**
   * Set when the state cannot give the details this configuration writes: fixes worked out from an
   * old-format report whose list was capped, or a per-vulnerability list asked for from a report that
   * holds only fixes. Only a scan can complete it.
   */
  detailsIncomplete?: boolean;
  /**
   * Set when result.vulnerabilities and fixes are already a report's lists built under the same limits
   * (sorted, bounded, capped: see preparedScanState); the value is their detailsFingerprint.
   */
  preparedListFingerprint?: string;
}

/** A ScanState whose result comes without its vulnerability list (see buildListlessStatus). */
export type ScanOutlineState = Omit<ScanState, 'result'> & { result?: Omit<ScanResult, 'vulnerabilities'> };

export interface ReportStatusInput {
  /** Undefined: nothing known yet (Pending). */
  scan?: ScanState;
  workloads: ReportWorkload[];
  team: string;
  localOnly?: boolean;
  /** The report's metadata.generation, recorded as the condition's observedGeneration. */
  observedGeneration?: number;
  /** The report's current conditions: a condition whose status is unchanged keeps its lastTransitionTime. */
  previousConditions?: readonly V1Condition[];
  /** The lastTransitionTime of a condition whose status changes now. */
  now: Date;
  limits?: Partial<ReportLimits>;
}

/** Builds the report object without status: metadata (name, namespace, labels) and spec. */
export function buildReportObject(input: DesiredReport): ImageScanReport {
  const labels: Record<string, string> = {
    [LABEL_MANAGED_BY]: MANAGED_BY_VALUE,
    [LABEL_DIGEST]: digestLabelValue(input.digest),
  };
  if (input.team !== UNASSIGNED_TEAM && isLabelValue(input.team)) labels[LABEL_TEAM] = input.team;
  return {
    apiVersion: REPORT_API_VERSION,
    kind: REPORT_KIND,
    metadata: { name: reportName(input.repository, input.digest), namespace: input.namespace, labels },
    spec: { image: input.image, repository: input.repository, digest: input.digest },
  };
}

/**
 * Builds the report's whole status from what is known about the scans. Deterministic: the same input
 * gives the same JSON bytes (vulnerabilities and workloads sorted by a total order, fields in a fixed
 * order). Vulnerabilities are capped worst first (see capVulnerabilities) and counted in
 * vulnerabilitiesOmitted; the summary always counts all of them.
 */
export function buildReportStatus(input: ReportStatusInput): ImageScanReportStatus {
  const limits = { ...DEFAULT_REPORT_LIMITS, ...input.limits };
  const scan: ScanState = input.scan ?? { phase: 'Pending' };
  const result = scan.result;
  let phase: ReportPhase = REPORT_PHASES.includes(scan.phase) ? scan.phase : 'Pending';
  // "Scanned" with nothing to show would be a lie; the controller should never ask for it.
  if (phase === 'Scanned' && result === undefined) phase = 'Pending';

  const status: ImageScanReportStatus = { phase };
  if (scan.scannedAt !== undefined && !Number.isNaN(scan.scannedAt.getTime())) status.lastScanTime = rfc3339(scan.scannedAt);
  if (result !== undefined) {
    status.scanner = scannerInfo(result.scanner);
    status.summary = summaryOf(result.summary);
    const details = scan.preparedListFingerprint === undefined ? detailsOf({ ...scan, result }, limits) : preparedDetails({ ...scan, result }, limits);
    status.fixes = details.fixes;
    status.fixesOmitted = details.fixesOmitted;
    if (details.fixesOmitted > 0) status.fixesOmittedCounts = details.fixesOmittedCounts;
    if (details.vulnerabilities !== undefined) {
      status.vulnerabilities = details.vulnerabilities;
      status.vulnerabilitiesOmitted = details.vulnerabilitiesOmitted;
    }
  }
  if (result !== undefined && scan.preparedListFingerprint !== undefined) listFingerprints.set(status, scan.preparedListFingerprint);
  status.workloads = sortWorkloads(input.workloads).slice(0, Math.min(limits.maxWorkloads, CRD_MAX_ITEMS.workloads));
  status.team = isLabelValue(input.team) ? input.team : UNASSIGNED_TEAM;
  const message = statusMessage(phase, scan, input.localOnly === true);
  if (message !== undefined) status.message = message;
  const retry = phase === 'Failed' ? scan.failure?.retry : undefined;
  if (retry !== undefined && !Number.isNaN(retry.nextRetryAt.getTime())) {
    status.failedScanAttempts = nonNegativeInteger(retry.attempts);
    status.nextRetryTime = rfc3339(retry.nextRetryAt);
  }
  status.conditions = [scannedCondition(phase, scan, input)];
  return status;
}

/**
 * The status buildReportStatus builds for the same input, but without the result's vulnerability list:
 * the list is known by its fingerprint, which statusEquals and sameVulnerabilities compare. So a
 * reconcile that changes nothing need not unpack the list (a decompression and a JSON.parse per key: most
 * of the operator's garbage after a cold start and in a resync, bench/README.md). Undefined when the
 * result's list is not prepared (preparedScanState), as its fingerprint is then unknown. Compare it,
 * never write it: its `vulnerabilities` is undefined, so a merge patch of it would leave the list alone.
 */
export function buildListlessStatus(input: Omit<ReportStatusInput, 'scan'> & { scan: ScanOutlineState }): ImageScanReportStatus | undefined {
  const { result, ...scan } = input.scan;
  if (result === undefined) return buildReportStatus({ ...input, scan });
  const fingerprint = scan.preparedListFingerprint;
  if (fingerprint === undefined) return undefined;
  // Prepared lists are taken as they are (preparedDetails), so empty ones give every other field the same.
  const status = buildReportStatus({ ...input, scan: { ...scan, fixes: [], result: { ...result, vulnerabilities: [] } } });
  status.fixes = undefined;
  if ('vulnerabilities' in status) status.vulnerabilities = undefined;
  listFingerprints.set(status, fingerprint);
  return status;
}

/**
 * Keeps the longest prefix of `vulns` (which must be sorted worst first) that fits both limits, so the
 * worst severities always survive. `maxBytes` counts the array as the API server's JSON encoder writes it.
 */
export function capVulnerabilities(
  vulns: readonly ReportVulnerability[],
  limits: { maxBytes: number; maxCount: number },
): { vulnerabilities: ReportVulnerability[]; omitted: number } {
  const kept = fittingPrefix(vulns, limits);
  return { vulnerabilities: vulns.slice(0, kept), omitted: vulns.length - kept };
}

/**
 * As capVulnerabilities, for fix entries (sorted worst first): the worst packages always survive; the
 * entries left out are counted, and their vulnerabilities by severity (so the metrics stay exact).
 */
export function capFixes(fixes: readonly ReportFix[], limits: { maxBytes: number; maxCount: number }): { fixes: ReportFix[]; omitted: number; omittedCounts: FixCounts } {
  const kept = fittingPrefix(fixes, limits);
  return { fixes: fixes.slice(0, kept), omitted: fixes.length - kept, omittedCounts: sumFixCounts(fixes.slice(kept)) };
}

/** How many leading items fit `maxCount` and, as a JSON array, `maxBytes`. */
function fittingPrefix(items: readonly object[], limits: { maxBytes: number; maxCount: number }): number {
  let bytes = 2; // the brackets
  let kept = 0;
  for (const item of items) {
    if (kept >= limits.maxCount) break;
    const size = serializedBytes(JSON.stringify(item)) + (kept > 0 ? 1 : 0);
    if (bytes + size > limits.maxBytes) break;
    bytes += size;
    kept += 1;
  }
  return kept;
}

/**
 * True when writing `desired` over `current` would change nothing a reader sees. Every field counts,
 * lastScanTime included (a rescan with the same findings still records that it ran); only the
 * conditions' lastTransitionTime is ignored, since it changes only together with the condition's status.
 */
export function statusEquals(current: ImageScanReportStatus | undefined, desired: ImageScanReportStatus | undefined): boolean {
  return canonicalStatus(current) === canonicalStatus(desired);
}

/**
 * What a cached report keeps of its lists (fixes, vulnerabilities) once the lists themselves are
 * dropped: their fingerprint (for statusEquals), the per-severity fixable counts the metrics derive
 * from them, and the findingFingerprint of their fixable CRITICAL vulnerabilities (for events).
 */
export interface SlimStatusFacts {
  /** listFingerprintOf the status. */
  fingerprint: string;
  /** countBySeverity of the full status (undefined: no summary yet). */
  severityCounts: SeverityCount[] | undefined;
  /** findingFingerprint of fixableCriticalIdsOfStatus of the full status. */
  finding?: string;
}

// Slim statuses are ordinary status objects (so they can be spread into patches and compared), with
// their facts beside them: a field would be sent to the API server with the next patch.
const slimFacts = new WeakMap<ImageScanReportStatus, SlimStatusFacts>();
// The fingerprint of the list a listless status stands for (a slim one has it in its facts).
const listFingerprints = new WeakMap<ImageScanReportStatus, string>();

/**
 * A copy of `status` without its lists, remembered with `facts` so statusEquals compares it by
 * fingerprint. The keys `fixes` and `vulnerabilities` stay (value undefined) when the lists were
 * present, so a status patch that drops a list still sends it as null, and a spread of the slim status
 * sent as a merge patch leaves the server's lists alone.
 */
export function slimStatus(status: ImageScanReportStatus, facts: SlimStatusFacts): ImageScanReportStatus {
  const slim: ImageScanReportStatus = { ...status };
  if ('fixes' in status) slim.fixes = undefined;
  if ('vulnerabilities' in status) slim.vulnerabilities = undefined;
  slimFacts.set(slim, facts);
  return slim;
}

/** True when both statuses hold the same lists, fixes and vulnerabilities (either may be slim or listless). */
export function sameDetails(a: ImageScanReportStatus | undefined, b: ImageScanReportStatus | undefined): boolean {
  return listFingerprintOf(a) === listFingerprintOf(b);
}

/** The fingerprint of the status's lists (detailsFingerprint), also for a slim or listless status. */
export function listFingerprintOf(status: ImageScanReportStatus | undefined): string {
  if (status === undefined) return detailsFingerprint(undefined, undefined);
  return slimFacts.get(status)?.fingerprint ?? listFingerprints.get(status) ?? detailsFingerprint(status.fixes, status.vulnerabilities);
}

/** The two lists' vulnerabilityFingerprints together: what statusEquals compares of them. */
export function detailsFingerprint(fixes: unknown, vulnerabilities: unknown): string {
  return `${vulnerabilityFingerprint(fixes)}/${vulnerabilityFingerprint(vulnerabilities)}`;
}

/**
 * The findingFingerprint of the fixable CRITICAL vulnerabilities a status shows: kept in a slim
 * status's facts, else worked out from its lists.
 */
export function findingOfStatus(status: ImageScanReportStatus | undefined): string {
  return slimFacts.get(status as ImageScanReportStatus)?.finding ?? findingFingerprint(fixableCriticalIdsOfStatus(status));
}

/**
 * The fixable CRITICAL vulnerabilities a status shows, as `id|package|installedVersion`: from its fix
 * entries, or from its per-vulnerability list in a report written before status.fixes existed.
 */
export function fixableCriticalIdsOfStatus(status: Pick<ImageScanReportStatus, 'fixes' | 'vulnerabilities'> | undefined): string[] {
  if (Array.isArray(status?.fixes)) return fixableCriticalIdsOfFixes(status.fixes);
  return (status?.vulnerabilities ?? []).filter((v) => v.severity === 'CRITICAL' && hasFix(v)).map((v) => `${v.id}|${v.package}|${v.installedVersion}`);
}

/**
 * `listless` (see buildListlessStatus) as a status to write over `current` without the list, when
 * `current` is slim and already holds that list: a merge patch that does not name the list leaves it
 * on the server, so the packed list need not be unpacked for the write. The facts of `current` carry
 * over only with the same summary too (the fixable counts depend on both). Undefined otherwise.
 */
export function statusKeepingList(current: ImageScanReportStatus | undefined, listless: ImageScanReportStatus): ImageScanReportStatus | undefined {
  const facts = slimStatusFacts(current);
  if (facts === undefined || facts.fingerprint !== listFingerprintOf(listless)) return undefined;
  if (canonicalJson(current?.summary) !== canonicalJson(listless.summary)) return undefined;
  return slimStatus(listless, facts);
}

/** The facts kept for a status made by slimStatus; undefined for any other status. */
export function slimStatusFacts(status: ImageScanReportStatus | undefined): SlimStatusFacts | undefined {
  return status === undefined ? undefined : slimFacts.get(status);
}

/**
 * A short, stable hash of a vulnerability list as statusEquals compares it (key order and undefined
 * fields do not count); 'none' for a missing list. Memoized per array.
 */
export function vulnerabilityFingerprint(list: unknown): string {
  if (list === undefined) return 'none';
  if (typeof list !== 'object' || list === null) return JSON.stringify(list);
  const known = fingerprints.get(list);
  if (known !== undefined) return known;
  const hash = createHash('sha256');
  if (Array.isArray(list)) {
    // Entry by entry in a fixed field order: the API server returns keys in its own order. This walk
    // costs a fraction of a key-sorting JSON.stringify replacer (every watched report is fingerprinted).
    // The text goes to the hash in pieces of ~16 K characters: as one string, a long list's text was a
    // large object, which only a full GC frees.
    let piece = '[';
    for (let i = 0; i < list.length; i++) {
      piece += (i === 0 ? '' : ',') + canonicalEntry(list[i] as unknown);
      if (piece.length < 16_384) continue;
      hash.update(piece);
      piece = '';
    }
    hash.update(`${piece}]`);
  } else {
    hash.update(canonicalJson(list) ?? 'null');
  }
  const digest = hash.digest('base64');
  fingerprints.set(list, digest);
  return digest;
}

const VULNERABILITY_FIELDS = ['id', 'severity', 'package', 'installedVersion', 'fixedVersion', 'title', 'url', 'target'] as const;

/** One entry as canonical text: the known fields in a fixed order; any other shape as key-sorted JSON. */
function canonicalEntry(item: unknown): string {
  if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
    const record = item as Record<string, unknown>;
    let present = 0;
    let plain = true;
    for (const key in record) {
      const value = record[key];
      if (value === undefined) continue;
      present += 1;
      if (typeof value !== 'string') plain = false;
    }
    const values: (string | null)[] = [];
    let known = 0;
    for (const field of VULNERABILITY_FIELDS) {
      const value = record[field];
      if (value === undefined) values.push(null);
      else {
        known += 1;
        values.push(typeof value === 'string' ? value : null);
      }
    }
    if (plain && known === present) return JSON.stringify(values);
  }
  return `!${canonicalJson(item) ?? 'null'}`;
}

/**
 * A scan state as the scan knowledge keeps it: the result's list as a report holds it under `limits`
 * (sorted, bounded, capped), the omitted count, and the list's fingerprint, so every later build uses
 * the list as it is (ScanState.preparedListFingerprint). A state without result, or already prepared,
 * is returned as it is.
 */
export function preparedScanState(state: ScanState, limits?: Partial<ReportLimits>): ScanState {
  const result = state.result;
  if (result === undefined || state.preparedListFingerprint !== undefined) return state;
  const all = { ...DEFAULT_REPORT_LIMITS, ...limits };
  const details = detailsOf({ ...state, result }, all);
  const prepared: ScanState = {
    ...state,
    result: { ...result, vulnerabilities: (details.vulnerabilities ?? []).map(fromReportVulnerability) },
    fixes: details.fixes,
    fixesOmitted: details.fixesOmitted,
    fixesOmittedCounts: details.fixesOmittedCounts,
    vulnerabilitiesOmitted: details.vulnerabilitiesOmitted ?? 0,
    preparedListFingerprint: detailsFingerprint(details.fixes, details.vulnerabilities),
  };
  if (isIncomplete(state, result, all)) prepared.detailsIncomplete = true;
  else delete prepared.detailsIncomplete;
  return prepared;
}

/**
 * Whether a state rebuilt from a report lacks what this configuration writes. Fixes worked out from a
 * capped list (a report written before status.fixes) are exact when every fixable entry was listed;
 * otherwise some fixable entries are unknown. A report that holds only fixes has no list to give `full`.
 */
function isIncomplete(state: ScanState, result: ScanResult, limits: ReportLimits): boolean {
  if (state.detailsIncomplete === true) return true;
  const omitted = nonNegativeInteger(state.vulnerabilitiesOmitted ?? 0);
  if (omitted === 0) return false;
  if (state.fixes === undefined) {
    let listedFixable = 0;
    for (const v of result.vulnerabilities) if (hasFix(v)) listedFixable += 1;
    if (listedFixable < nonNegativeInteger(result.summary.fixable)) return true;
  }
  return limits.details === 'full' && limits.maxVulnerabilities > 0 && state.fixes !== undefined && result.vulnerabilities.length === 0;
}

/**
 * Rebuilds the scan knowledge recorded in an existing report, so a restarted operator neither rescans
 * a fresh digest nor loses a result. The vulnerabilities are the (possibly capped) list the report
 * holds, with the omitted count carried in `vulnerabilitiesOmitted`: building the status again from the
 * returned state gives the same status. A recorded 'Scanning' phase means a scan was interrupted.
 */
export function scanStateFromReport(report: ImageScanReport): ScanState {
  const status = report.status ?? {};
  const phase: ReportPhase = status.phase !== undefined && REPORT_PHASES.includes(status.phase) ? status.phase : 'Pending';
  const state: ScanState = { phase };
  if (status.lastScanTime !== undefined) {
    const scannedAt = new Date(status.lastScanTime);
    if (!Number.isNaN(scannedAt.getTime())) state.scannedAt = scannedAt;
  }
  if (status.summary !== undefined) {
    const scanner: ScannerInfo = { name: 'Trivy' };
    if (status.scanner?.version !== undefined) scanner.version = status.scanner.version;
    if (status.scanner?.dbUpdatedAt !== undefined) scanner.dbUpdatedAt = status.scanner.dbUpdatedAt;
    const listed = Array.isArray(status.vulnerabilities);
    state.result = {
      vulnerabilities: (listed ? (status.vulnerabilities ?? []) : []).map(fromReportVulnerability),
      summary: summaryOf(status.summary),
      scanner,
    };
    if (Array.isArray(status.fixes)) {
      state.fixes = status.fixes;
      state.fixesOmitted = nonNegativeInteger(status.fixesOmitted ?? 0);
      if (state.fixesOmitted > 0) state.fixesOmittedCounts = sumFixCounts([], status.fixesOmittedCounts);
    }
    // A report written with --report-details=fixes has no list: every entry is omitted from it.
    state.vulnerabilitiesOmitted = nonNegativeInteger((listed ? status.vulnerabilitiesOmitted : state.fixes === undefined ? 0 : status.summary.total) ?? 0);
  }
  if (phase === 'Failed') {
    const condition = status.conditions?.find((c) => c.type === SCANNED_CONDITION);
    state.failure = {
      reason: failureReasonOf(condition?.reason),
      message: condition?.message ?? status.message ?? '',
    };
    const nextRetryAt = status.nextRetryTime === undefined ? Number.NaN : Date.parse(status.nextRetryTime);
    if (status.failedScanAttempts !== undefined && !Number.isNaN(nextRetryAt)) {
      state.failure.retry = { attempts: nonNegativeInteger(status.failedScanAttempts), nextRetryAt: new Date(nextRetryAt) };
    }
  }
  return state;
}

// ---- vulnerabilities

// A list's fingerprint is memoized by the list's identity, weakly: the reports of a digest delivered
// together share one list (SharedVulnerabilityLists), each fingerprinted as it enters the cache. Only
// the hash is kept: the canonical JSON of every list beside it was a large part of the heap.
const fingerprints = new WeakMap<object, string>();

/** The lists a status holds, with their omitted counts; `vulnerabilities` only with details `full`. */
interface StatusDetails {
  fixes: ReportFix[];
  fixesOmitted: number;
  fixesOmittedCounts: FixCounts;
  vulnerabilities?: ReportVulnerability[];
  vulnerabilitiesOmitted?: number;
}

/**
 * The lists of a prepared state (see preparedScanState), used as they are: the scan knowledge keeps
 * them packed and unpacks them into new arrays, so the identity memos below would miss and redo the
 * sorting, capping and hashing (14% of the operator's CPU in a 10,000-pod rescan). `vulnerabilities`
 * only when the state was prepared for `full` (an empty list otherwise).
 */
function preparedDetails(scan: ScanState & { result: ScanResult }, limits: ReportLimits): StatusDetails {
  const details: StatusDetails = {
    fixes: scan.fixes ?? [],
    fixesOmitted: nonNegativeInteger(scan.fixesOmitted ?? 0),
    fixesOmittedCounts: sumFixCounts([], scan.fixesOmittedCounts),
  };
  if (limits.details === 'full') {
    details.vulnerabilities = scan.result.vulnerabilities as ReportVulnerability[];
    details.vulnerabilitiesOmitted = nonNegativeInteger(scan.vulnerabilitiesOmitted ?? 0);
  }
  return details;
}

/** The lists a status holds for a scan state that is not prepared: sorted, bounded and capped. */
function detailsOf(scan: ScanState & { result: ScanResult }, limits: ReportLimits): StatusDetails {
  const fixLimits = { maxBytes: limits.maxFixBytes, maxCount: Math.min(limits.maxFixes, CRD_MAX_ITEMS.fixes) };
  const fixes = scan.fixes === undefined ? cappedFixesOf(scan.result, fixLimits) : capFixes(reportFixesFrom(scan.fixes), fixLimits);
  const details: StatusDetails = {
    fixes: fixes.fixes,
    fixesOmitted: fixes.omitted + nonNegativeInteger(scan.fixesOmitted ?? 0),
    fixesOmittedCounts: addCounts(fixes.omittedCounts, scan.fixesOmittedCounts),
  };
  if (limits.details === 'full') {
    const capped = cappedVulnerabilitiesOf(scan.result, limits.maxVulnerabilityBytes, Math.min(limits.maxVulnerabilities, CRD_MAX_ITEMS.vulnerabilities));
    details.vulnerabilities = capped.vulnerabilities;
    details.vulnerabilitiesOmitted = capped.omitted + nonNegativeInteger(scan.vulnerabilitiesOmitted ?? 0);
  }
  return details;
}

function addCounts(a: FixCounts, b: Partial<FixCounts> | undefined): FixCounts {
  const c = sumFixCounts([], b);
  return { critical: a.critical + c.critical, high: a.high + c.high, medium: a.medium + c.medium, low: a.low + c.low, unknown: a.unknown + c.unknown };
}

/** The report's fix entries for a result: worked out from its whole list, sorted and capped. */
function cappedFixesOf(result: ScanResult, limits: { maxBytes: number; maxCount: number }): ReturnType<typeof capFixes> {
  return capFixes(reportFixesFrom(fixesOf(result.vulnerabilities.map(toReportVulnerability))), limits);
}

/** Fix entries as a report held them, bounded and sorted again (a report is read from the API server). */
function reportFixesFrom(fixes: readonly ReportFix[]): ReportFix[] {
  const out: ReportFix[] = [];
  for (const f of fixes) {
    if (typeof f !== 'object' || f === null) continue;
    const ids = (Array.isArray(f.ids) ? f.ids : []).filter((id): id is string => typeof id === 'string');
    const versions = (Array.isArray(f.fixedVersions) ? f.fixedVersions : []).filter((v): v is string => typeof v === 'string');
    out.push({
      target: boundedText(String(f.target ?? ''), FIELD_MAX_LENGTH.target),
      package: boundedText(String(f.package ?? ''), FIELD_MAX_LENGTH.package),
      installedVersion: boundedText(String(f.installedVersion ?? ''), FIELD_MAX_LENGTH.installedVersion),
      fixedVersions: versions.slice(0, CRD_MAX_ITEMS.fixedVersions).map((v) => boundedText(v, FIELD_MAX_LENGTH.fixVersion)),
      critical: nonNegativeInteger(f.critical),
      high: nonNegativeInteger(f.high),
      medium: nonNegativeInteger(f.medium),
      low: nonNegativeInteger(f.low),
      unknown: nonNegativeInteger(f.unknown),
      ids: ids.slice(0, CRD_MAX_ITEMS.fixIds).map((id) => boundedText(id, FIELD_MAX_LENGTH.id)),
    });
  }
  return out.sort(compareFixes);
}

/**
 * The report's vulnerability list for a result: sorted worst first and capped. Worked out once per scan
 * (preparedScanState); every reconcile after it takes the prepared list as it is.
 */
function cappedVulnerabilitiesOf(result: ScanResult, maxBytes: number, maxCount: number): { vulnerabilities: ReportVulnerability[]; omitted: number } {
  return capVulnerabilities(sortReportVulnerabilities(result.vulnerabilities.map(toReportVulnerability)), { maxBytes, maxCount });
}

const SEVERITY_RANK: ReadonlyMap<Severity, number> = new Map(SEVERITIES.map((s, i) => [s, i]));

function toReportVulnerability(v: Vulnerability): ReportVulnerability {
  const out: ReportVulnerability = {
    id: boundedText(v.id, FIELD_MAX_LENGTH.id),
    severity: SEVERITY_RANK.has(v.severity) ? v.severity : 'UNKNOWN',
    package: boundedText(v.package, FIELD_MAX_LENGTH.package),
    installedVersion: boundedText(v.installedVersion, FIELD_MAX_LENGTH.installedVersion),
  };
  if (v.fixedVersion !== undefined && v.fixedVersion !== '') out.fixedVersion = boundedText(v.fixedVersion, FIELD_MAX_LENGTH.fixedVersion);
  if (v.title !== undefined && v.title !== '') out.title = boundedText(v.title, FIELD_MAX_LENGTH.title);
  // A cut URL is a broken link: leave an over-long one out instead.
  if (v.url !== undefined && v.url !== '' && codePointLength(v.url) <= FIELD_MAX_LENGTH.url) out.url = wellFormed(v.url);
  out.target = boundedText(v.target, FIELD_MAX_LENGTH.target);
  return out;
}

function fromReportVulnerability(v: ReportVulnerability): Vulnerability {
  const out: Vulnerability = { id: v.id, severity: v.severity, package: v.package, installedVersion: v.installedVersion, target: v.target ?? '' };
  if (v.fixedVersion !== undefined) out.fixedVersion = v.fixedVersion;
  if (v.title !== undefined) out.title = v.title;
  if (v.url !== undefined) out.url = v.url;
  return out;
}

function sortReportVulnerabilities(vulns: ReportVulnerability[]): ReportVulnerability[] {
  return vulns.sort(compareVulnerabilities);
}

// ---- workloads, summary, scanner

function sortWorkloads(workloads: readonly ReportWorkload[]): ReportWorkload[] {
  const unique = new Map<string, ReportWorkload>();
  for (const w of workloads) {
    const kind = boundedText(w.kind, FIELD_MAX_LENGTH.workloadKind);
    const name = boundedText(w.name, FIELD_MAX_LENGTH.workloadName);
    unique.set(`${kind}/${name}`, { kind, name });
  }
  return [...unique.values()].sort((a, b) => compareText(a.kind, b.kind) || compareText(a.name, b.name));
}

function summaryOf(s: VulnerabilitySummary): VulnerabilitySummary {
  return {
    critical: nonNegativeInteger(s.critical),
    high: nonNegativeInteger(s.high),
    medium: nonNegativeInteger(s.medium),
    low: nonNegativeInteger(s.low),
    unknown: nonNegativeInteger(s.unknown),
    total: nonNegativeInteger(s.total),
    fixable: nonNegativeInteger(s.fixable),
  };
}

// The CRD declares dbUpdatedAt as date-time, which the API server enforces: write only what it accepts.
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

function scannerInfo(scanner: ScannerInfo): NonNullable<ImageScanReportStatus['scanner']> {
  const out: NonNullable<ImageScanReportStatus['scanner']> = { name: 'Trivy' };
  if (scanner.version !== undefined && scanner.version !== '') out.version = boundedText(scanner.version, FIELD_MAX_LENGTH.scannerVersion);
  if (scanner.dbUpdatedAt !== undefined && RFC3339.test(scanner.dbUpdatedAt)) out.dbUpdatedAt = scanner.dbUpdatedAt;
  return out;
}

// ---- message and condition

const FAILURE_CONDITION_REASONS: Readonly<Record<ScanFailureReason, string>> = {
  timeout: 'ScanTimedOut',
  auth: 'RegistryAuthFailed',
  not_found: 'ImageNotFound',
  scanner_error: 'ScannerError',
  invalid_output: 'InvalidScannerOutput',
};

const LOCAL_ONLY_NOTE =
  'The image was loaded onto the node without a registry digest (e.g. kind load): spec.digest is its local image ID, which no registry serves.';

function failureOf(scan: ScanState): { reason: ScanFailureReason; message: string } {
  const reason = scan.failure !== undefined && SCAN_FAILURE_REASONS.includes(scan.failure.reason) ? scan.failure.reason : 'scanner_error';
  const message = scan.failure?.message.trim() ?? '';
  return { reason, message: message === '' ? 'the scan failed without a message' : message };
}

function statusMessage(phase: ReportPhase, scan: ScanState, localOnly: boolean): string | undefined {
  const parts: string[] = [];
  if (phase === 'Failed') {
    const failure = failureOf(scan);
    parts.push(`Scan failed (${failure.reason}): ${failure.message}`);
  }
  if (localOnly) parts.push(LOCAL_ONLY_NOTE);
  if (parts.length === 0) return undefined;
  const retry = phase === 'Failed' ? scan.failure?.retry : undefined;
  if (retry === undefined || Number.isNaN(retry.nextRetryAt.getTime())) return boundedText(parts.join(' '), FIELD_MAX_LENGTH.message);
  // The retry sentence goes last and is never cut: a long error is shortened instead.
  const sentence = retrySentence({ attempts: nonNegativeInteger(retry.attempts), nextRetryAt: wholeSeconds(retry.nextRetryAt) }, retry.maxAttempts ?? DEFAULT_SCAN_RETRY_POLICY.maxAttempts);
  return `${boundedText(parts.join(' '), FIELD_MAX_LENGTH.message - codePointLength(sentence) - 1)} ${sentence}`;
}

function scannedCondition(phase: ReportPhase, scan: ScanState, input: ReportStatusInput): V1Condition {
  let status: 'True' | 'False';
  let reason: string;
  let message: string;
  if (phase === 'Failed') {
    const failure = failureOf(scan);
    [status, reason, message] = ['False', FAILURE_CONDITION_REASONS[failure.reason], failure.message];
  } else if (scan.result !== undefined && phase !== 'Pending') {
    [status, reason, message] = ['True', 'ScanSucceeded', summarySentence(scan.result.summary)];
  } else if (phase === 'Scanning') {
    [status, reason, message] = ['False', 'ScanInProgress', 'the first scan is running'];
  } else {
    [status, reason, message] = ['False', 'ScanPending', 'waiting for the first scan'];
  }
  const previous = input.previousConditions?.find((c) => c.type === SCANNED_CONDITION);
  const condition: V1Condition = {
    type: SCANNED_CONDITION,
    status,
    reason,
    message: boundedText(message, FIELD_MAX_LENGTH.conditionMessage),
    lastTransitionTime: transitionTime(previous, status, input.now),
  };
  if (input.observedGeneration !== undefined && Number.isSafeInteger(input.observedGeneration) && input.observedGeneration >= 0) {
    condition.observedGeneration = input.observedGeneration;
  }
  return condition;
}

function summarySentence(s: VulnerabilitySummary): string {
  return `${s.total} vulnerabilities: ${s.critical} critical, ${s.high} high, ${s.medium} medium, ${s.low} low, ${s.unknown} unknown; ${s.fixable} fixable`;
}

/** Kept from the previous condition while its status holds; whole seconds, as metav1.Time stores it. */
function transitionTime(previous: V1Condition | undefined, status: string, now: Date): Date {
  if (previous?.status === status) {
    // Read from the API server this is a string, whatever the generated type says.
    const kept = new Date(previous.lastTransitionTime as Date | string);
    if (!Number.isNaN(kept.getTime())) return wholeSeconds(kept);
  }
  return wholeSeconds(now);
}

function failureReasonOf(conditionReason: string | undefined): ScanFailureReason {
  for (const reason of SCAN_FAILURE_REASONS) if (FAILURE_CONDITION_REASONS[reason] === conditionReason) return reason;
  return 'scanner_error';
}

// ---- comparison and serialization

function canonicalStatus(status: ImageScanReportStatus | undefined): string {
  if (status === undefined) return 'null';
  return `${canonicalJson(status, STATUS_NOISE) ?? 'null'}|${listFingerprintOf(status)}`;
}

/** Keys canonicalJson leaves out (true), or rules for a key's value (for an array, for each element). */
type Skip = ReadonlyMap<string, true | Skip>;

// A cached (slim) status no longer has its lists, only their fingerprint (which canonicalStatus
// appends); a condition's lastTransitionTime changes only together with its status. status.policy is
// the policy audit's (src/policy/policy-audit-controller.ts), never part of what reconcile wants.
const STATUS_NOISE: Skip = new Map<string, true | Skip>([
  ['fixes', true],
  ['vulnerabilities', true],
  ['policy', true],
  ['conditions', new Map([['lastTransitionTime', true]])],
]);

/**
 * JSON text of `value` with object keys in code-unit order, so key order in what the API returned
 * does not matter; otherwise as JSON.stringify writes it (toJSON used, undefined and functions left
 * out of objects, null in arrays), without what `skip` names. One pass and one string: statusEquals
 * runs on every reconcile, and a key-sorting replacer over a JSON round trip made ~15 KB of garbage
 * per call (sampled allocations, bench/README.md).
 */
function canonicalJson(value: unknown, skip?: Skip): string | undefined {
  const plain = typeof value === 'object' && value !== null && typeof (value as { toJSON?: unknown }).toJSON === 'function' ? (value as { toJSON: () => unknown }).toJSON() : value;
  if (plain === undefined || typeof plain === 'function' || typeof plain === 'symbol') return undefined;
  if (typeof plain !== 'object' || plain === null) return JSON.stringify(plain);
  if (Array.isArray(plain)) {
    let out = '[';
    for (let i = 0; i < plain.length; i++) out += `${i === 0 ? '' : ','}${canonicalJson(plain[i], skip) ?? 'null'}`;
    return `${out}]`;
  }
  const record = plain as Record<string, unknown>;
  let out = '{';
  for (const key of sortedKeys(record)) {
    const rule = skip?.get(key);
    if (rule === true) continue;
    const text = canonicalJson(record[key], rule);
    if (text !== undefined) out += `${out.length === 1 ? '' : ','}${JSON.stringify(key)}:${text}`;
  }
  return `${out}}`;
}

/**
 * The object's keys in code-unit order (as Array.prototype.sort orders strings). Sorted in place by
 * insertion: V8's sort takes a work array of its own, ~3 KB of garbage for a status's ten keys.
 */
function sortedKeys(record: object): string[] {
  const keys = Object.keys(record);
  if (keys.length > 32) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i] as string;
    let j = i - 1;
    for (; j >= 0 && (keys[j] as string) > key; j--) keys[j + 1] = keys[j] as string;
    keys[j + 1] = key;
  }
  return keys;
}

/** Bytes of a JSON text as Go's encoder writes it: it escapes <, >, & and U+2028/9 as \uXXXX. */
function serializedBytes(json: string): number {
  let extra = 0;
  for (const ch of json) {
    if (ch === '<' || ch === '>' || ch === '&') extra += 5;
    else if (ch === '\u2028' || ch === '\u2029') extra += 3;
  }
  return Buffer.byteLength(json, 'utf8') + extra;
}

function rfc3339(date: Date): string {
  return wholeSeconds(date).toISOString().replace('.000Z', 'Z');
}

function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

function nonNegativeInteger(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

// ---- text

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Replaces lone surrogates (the API server would store U+FFFD and every reconcile would see a change)
 * and cuts to `max` code points, ending with an ellipsis when cut. Idempotent.
 */
function boundedText(text: string, max: number): string {
  const clean = wellFormed(text);
  if (clean.length <= max) return clean;
  const points = Array.from(clean);
  if (points.length <= max) return clean;
  return `${points.slice(0, max - 1).join('')}…`;
}

function wellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, '\ufffd');
}

function codePointLength(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}
