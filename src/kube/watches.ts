// The informers the operator runs: pods (cluster-wide or per namespace), nodes, namespaces, its
// own reports and the image scan policies. Each one pages its list and keeps slim objects.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LABEL_MANAGED_BY, MANAGED_BY_VALUE, REPORT_GROUP, REPORT_PLURAL, REPORT_VERSION } from '../reports/image-scan-report.js';
import type { NamespaceEntry, NodeEntry, PodEntry, ReportEntry } from './cluster-objects.js';
import { SharedVulnerabilityLists, toNamespaceEntry, toNodeEntry, toPodEntry, toReportEntry } from './cluster-objects.js';
import type { ListPage, ListPageFn, ResilientInformerOptions } from './informer.js';
import { ResilientInformer } from './informer.js';
import type { RawGet } from './kube-client.js';
import { POLICY_GROUP, POLICY_PLURAL, POLICY_VERSION } from '../policy/image-scan-policy.js';
import type { PolicyEntry } from './policy-entry.js';
import { toPolicyEntry } from './policy-entry.js';

/** Settings shared by every informer (timings are overridable for tests). */
export interface WatchSettings {
  kubeConfig: KubeConfig;
  logger: Logger;
  watchTimeoutSeconds?: number;
  watchdogMs?: number;
  unhealthyAfterMs?: number;
  pageSize?: number;
  /** A fixed page size of the report list (default: nextReportPageSize's, from the reports seen). */
  reportPageSize?: number;
}

const REPORT_PAGE_MIN = 50;
const REPORT_PAGE_MAX = 500;
const VULNERABILITY_ENTRIES_PER_PAGE = 25_000;

/**
 * Reports per list page: as many as carry ~25,000 per-vulnerability entries, 50 to 500. With the
 * default `--report-details=fixes` a report is a few KiB (its fix entries capped at 8 KiB), so 500 a
 * page: 45 pages for the 50,000-pod bench's 22,000 reports instead of 444 (the restart was ready when
 * the last of those came, ~13 s). A report with its list (`full`, or one written before
 * `status.fixes`) is up to ~256 KiB: 500 of them were a ~45 MB response parsed in one go, which blocked
 * the event loop for hundreds of milliseconds, hence 50. Each page sizes the next from its own reports.
 */
export function nextReportPageSize(items: readonly unknown[]): number {
  if (items.length === 0) return REPORT_PAGE_MAX;
  let entries = 0;
  for (const item of items) {
    const list = (item as { status?: { vulnerabilities?: unknown } } | null)?.status?.vulnerabilities;
    if (Array.isArray(list)) entries += list.length;
  }
  const perReport = Math.max(1, entries / items.length);
  return Math.max(REPORT_PAGE_MIN, Math.min(REPORT_PAGE_MAX, Math.floor(VULNERABILITY_ENTRIES_PER_PAGE / perReport)));
}

/** The report label selector: only reports this operator manages. */
export const MANAGED_REPORTS_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}`;

function rawPage(list: unknown): ListPage {
  // Raw JSON: the token is metadata.continue (client-node's models call it _continue).
  const record = (typeof list === 'object' && list !== null ? list : {}) as {
    items?: unknown;
    metadata?: { resourceVersion?: unknown; continue?: unknown };
  };
  const page: ListPage = {
    items: Array.isArray(record.items) ? (record.items as unknown[]) : [],
    resourceVersion: typeof record.metadata?.resourceVersion === 'string' ? record.metadata.resourceVersion : '',
  };
  const token = record.metadata?.continue;
  if (typeof token === 'string' && token !== '') page.continueToken = token;
  return page;
}

/**
 * Options of an informer of `path`: its list pages are raw JSON through getJson (the transforms make
 * slim entries from raw objects, as they do from watch events), with the watch's label selector.
 */
function common<T extends { key: string; resourceVersion: string }>(
  settings: WatchSettings,
  getJson: RawGet,
  rest: Pick<ResilientInformerOptions<T>, 'name' | 'path' | 'transform' | 'labelSelector'>,
): ResilientInformerOptions<T> {
  const { path, labelSelector } = rest;
  const list: ListPageFn = async ({ limit, continueToken }) => rawPage(await getJson(path, { labelSelector, limit, continue: continueToken }));
  const options: ResilientInformerOptions<T> = { ...rest, list, kubeConfig: settings.kubeConfig, logger: settings.logger };
  if (settings.watchTimeoutSeconds !== undefined) options.watchTimeoutSeconds = settings.watchTimeoutSeconds;
  if (settings.watchdogMs !== undefined) options.watchdogMs = settings.watchdogMs;
  if (settings.unhealthyAfterMs !== undefined) options.unhealthyAfterMs = settings.unhealthyAfterMs;
  if (settings.pageSize !== undefined) options.pageSize = settings.pageSize;
  return options;
}

/** A pod informer for all namespaces (namespace undefined) or for one namespace. */
export function createPodInformer(getJson: RawGet, settings: WatchSettings, namespace?: string): ResilientInformer<PodEntry> {
  const path = namespace === undefined ? '/api/v1/pods' : `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
  return new ResilientInformer<PodEntry>(common(settings, getJson, { name: namespace === undefined ? 'pods' : `pods/${namespace}`, path, transform: toPodEntry }));
}

/** The node informer: the platform (os/arch) of the node a pod runs on decides what Trivy pulls. */
export function createNodeInformer(getJson: RawGet, settings: WatchSettings): ResilientInformer<NodeEntry> {
  return new ResilientInformer<NodeEntry>(common(settings, getJson, { name: 'nodes', path: '/api/v1/nodes', transform: toNodeEntry }));
}

/** The namespace informer: namespace labels give the team when a pod has none. */
export function createNamespaceInformer(getJson: RawGet, settings: WatchSettings): ResilientInformer<NamespaceEntry> {
  return new ResilientInformer<NamespaceEntry>(common(settings, getJson, { name: 'namespaces', path: '/api/v1/namespaces', transform: toNamespaceEntry }));
}

/** The report informer (all namespaces, managed reports only): the reconciler's and the metrics' view of reports. */
export function createReportInformer(getJson: RawGet, settings: WatchSettings): ResilientInformer<ReportEntry> {
  const lists = new SharedVulnerabilityLists();
  const options = common<ReportEntry>(settings, getJson, {
    name: 'imagescanreports',
    path: `/apis/${REPORT_GROUP}/${REPORT_VERSION}/${REPORT_PLURAL}`,
    labelSelector: MANAGED_REPORTS_SELECTOR,
    transform: (raw) => toReportEntry(raw, lists),
  });
  // The first page is the smallest: the format of the stored reports is not known yet.
  options.pageSize = settings.reportPageSize ?? REPORT_PAGE_MIN;
  if (settings.reportPageSize === undefined) options.nextPageSize = nextReportPageSize;
  return new ResilientInformer<ReportEntry>(options);
}

/** The ImageScanPolicy informer (cluster-scoped): policies drive the audit of reports and admission. */
export function createPolicyInformer(getJson: RawGet, settings: WatchSettings): ResilientInformer<PolicyEntry> {
  return new ResilientInformer<PolicyEntry>(
    common(settings, getJson, { name: 'imagescanpolicies', path: `/apis/${POLICY_GROUP}/${POLICY_VERSION}/${POLICY_PLURAL}`, transform: toPolicyEntry }),
  );
}
