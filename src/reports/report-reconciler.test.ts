import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiException } from '@kubernetes/client-node';
import type { CoreV1Api } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { KubeApiError } from '../kube/api-error.js';
import { EventRecorder } from '../kube/event-recorder.js';
import { slimReport, toNamespaceEntry, toNodeEntry, toPodEntry } from '../kube/cluster-objects.js';
import type { NamespaceEntry, NodeEntry } from '../kube/cluster-objects.js';
import { OwnerResolver } from '../kube/owner-resolver.js';
import { PodImageIndex, reportKey } from '../kube/pod-image-index.js';
import { PullSecretReader } from '../kube/pull-secrets.js';
import type { ReportStore } from '../kube/report-store.js';
import { parseTrivyReport } from '../scanner/trivy-report-parser.js';
import type { ScanTarget } from '../scanner/trivy-runner.js';
import type { ImageScanReport, ImageScanReportStatus } from './image-scan-report.js';
import { scanStateFromReport } from './report-builder.js';
import { parseTeamOverrides } from '../images/team-overrides.js';
import type { TeamOverride } from '../images/team-overrides.js';
import { DEFAULT_INTERIM_STATUS_DELAY_MS, ReportReconciler } from './report-reconciler.js';
import type { ScanRetryPolicy } from './scan-retry.js';
import { ScanResults } from './scan-results.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixturePath = path.resolve(repoRoot, 'test/fixtures/trivy/real-world/trustdsai-nginx-1.19.json');
const fixtureText = readFileSync(fixturePath, 'utf8');

/** Expected counts straight from the raw Trivy JSON, independent of the parser and builder. */
function rawCounts(): { total: number; critical: number; high: number; fixable: number } {
  const raw = JSON.parse(fixtureText) as { Results?: { Vulnerabilities?: { Severity: string; FixedVersion?: string }[] }[] };
  const vulns = (raw.Results ?? []).flatMap((r) => r.Vulnerabilities ?? []);
  return {
    total: vulns.length,
    critical: vulns.filter((v) => v.Severity === 'CRITICAL').length,
    high: vulns.filter((v) => v.Severity === 'HIGH').length,
    fixable: vulns.filter((v) => v.FixedVersion !== undefined && v.FixedVersion !== '').length,
  };
}

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const OTHER_DIGEST = `sha256:${'cd'.repeat(32)}`;
const NS = 'shop';
const KEY = reportKey(NS, DIGEST);
const HOUR = 3_600_000;

function apiError(code: number, reason: string): ApiException<string> {
  return new ApiException(code, reason, JSON.stringify({ kind: 'Status', code, reason, message: reason }), {});
}

/** The API server's side of reports, recording each write. Its content is what a synced informer shows. */
class FakeReportServer implements ReportStore {
  readonly objects = new Map<string, ImageScanReport>();
  readonly writes: string[] = [];
  /** The statuses patchStatus was given, in order. */
  readonly statusesSent: ImageScanReportStatus[] = [];
  private rv = 1;
  /** The clock that stamps creationTimestamp, as the API server does. */
  constructor(private readonly now: () => Date = () => new Date()) {}
  /** Errors thrown by the next calls of a kind, in order. */
  readonly failNext: Partial<Record<'create' | 'patchStatus' | 'delete', KubeApiError[]>> = {};

  private fail(kind: 'create' | 'patchStatus' | 'delete'): void {
    const err = this.failNext[kind]?.shift();
    if (err !== undefined) throw err;
  }

  create(report: ImageScanReport): Promise<ImageScanReport> {
    this.writes.push(`create ${report.metadata?.namespace}/${report.metadata?.name}`);
    this.fail('create');
    const key = `${report.metadata?.namespace}/${report.metadata?.name}`;
    if (this.objects.has(key)) return Promise.reject(new KubeApiError('AlreadyExists', 409, 'AlreadyExists', 'exists'));
    const stored = structuredClone({ ...report, metadata: { ...report.metadata, resourceVersion: String(this.rv++), generation: 1, creationTimestamp: this.now() } });
    delete stored.status; // the status subresource drops status on create
    this.objects.set(key, stored);
    return Promise.resolve(structuredClone(stored));
  }

  get(namespace: string, name: string): Promise<ImageScanReport | undefined> {
    const found = this.objects.get(`${namespace}/${name}`);
    return Promise.resolve(found === undefined ? undefined : structuredClone(found));
  }

  patchStatus(report: ImageScanReport, status: ImageScanReportStatus): Promise<ImageScanReport> {
    const namespace = report.metadata?.namespace ?? '';
    const name = report.metadata?.name ?? '';
    const previous = report.status;
    this.writes.push(`patchStatus ${namespace}/${name}`);
    this.statusesSent.push(status);
    this.fail('patchStatus');
    const found = this.objects.get(`${namespace}/${name}`);
    if (found === undefined) return Promise.reject(new KubeApiError('NotFound', 404, 'NotFound', 'gone'));
    // A merge patch, as KubeReportStore sends it: fields of `previous` that `status` lacks are removed,
    // fields left undefined are not sent (the server keeps them). Round-trip through JSON as the API
    // server does (Dates become strings).
    const body: Record<string, unknown> = JSON.parse(JSON.stringify(status)) as Record<string, unknown>;
    const merged: Record<string, unknown> = { ...(found.status ?? {}), ...body };
    for (const key of Object.keys(previous ?? {})) if (!(key in status)) delete merged[key];
    found.status = merged as ImageScanReportStatus;
    found.metadata = { ...found.metadata, resourceVersion: String(this.rv++) };
    return Promise.resolve(structuredClone(found));
  }

  patchMetadata(namespace: string, name: string, patch: { labels?: Record<string, string | null>; spec?: ImageScanReport['spec'] }): Promise<ImageScanReport> {
    this.writes.push(`patchMetadata ${namespace}/${name}`);
    const found = this.objects.get(`${namespace}/${name}`);
    if (found === undefined) return Promise.reject(new KubeApiError('NotFound', 404, 'NotFound', 'gone'));
    const labels = { ...found.metadata?.labels };
    for (const [k, v] of Object.entries(patch.labels ?? {})) {
      if (v === null) delete labels[k];
      else labels[k] = v;
    }
    found.metadata = { ...found.metadata, labels };
    if (patch.spec !== undefined) found.spec = { ...patch.spec };
    return Promise.resolve(structuredClone(found));
  }

  delete(namespace: string, name: string): Promise<void> {
    this.writes.push(`delete ${namespace}/${name}`);
    this.fail('delete');
    this.objects.delete(`${namespace}/${name}`);
    return Promise.resolve();
  }

  find(namespace: string, digest: string): ImageScanReport | undefined {
    for (const report of this.objects.values()) {
      if (report.metadata?.namespace === namespace && report.spec.digest === digest) return structuredClone(report);
    }
    return undefined;
  }
  /** The report as the operator's cache holds it: slim, without its vulnerability list (see slimReport). */
  cached(namespace: string, digest: string): ImageScanReport | undefined {
    const found = this.find(namespace, digest);
    return found === undefined ? undefined : slimReport(found).report;
  }
}

class FakeScanQueue {
  readonly requests: { target: ScanTarget; priority: 'new' | 'rescan'; notBefore?: number }[] = [];
  readonly pending = new Set<string>();
  request(target: ScanTarget, priority: 'new' | 'rescan', opts?: { notBefore?: number }): boolean {
    if (this.pending.has(target.digest)) return false;
    this.pending.add(target.digest);
    this.requests.push({ target, priority, ...(opts?.notBefore === undefined ? {} : { notBefore: opts.notBefore }) });
    return true;
  }
  isPending(digest: string): boolean {
    return this.pending.has(digest);
  }
}

function pod(
  name: string,
  options: { digest?: string; image?: string; owner?: { kind: string; name: string }; labels?: Record<string, string>; node?: string; pullSecret?: string; namespace?: string; container?: string } = {},
) {
  const digest = options.digest ?? DIGEST;
  const image = options.image ?? 'nginx:1.19';
  const container = options.container ?? 'app';
  return toPodEntry({
    metadata: {
      name,
      namespace: options.namespace ?? NS,
      uid: `uid-${name}`,
      resourceVersion: '1',
      labels: options.labels ?? {},
      ownerReferences: options.owner === undefined ? [] : [{ apiVersion: 'apps/v1', kind: options.owner.kind, name: options.owner.name, uid: `uid-${options.owner.name}`, controller: true }],
    },
    spec: {
      nodeName: options.node ?? 'node-a',
      containers: [{ name: container, image }],
      ...(options.pullSecret === undefined ? {} : { imagePullSecrets: [{ name: options.pullSecret }] }),
    },
    status: { containerStatuses: [{ name: container, image, imageID: `docker.io/library/nginx@${digest}`, ready: true, restartCount: 0 }] },
  });
}

/** Counts the calls of scans.resultOf, each of which may unpack a packed list. */
function countUnpacks(scans: ScanResults): { count: number } {
  const counter = { count: 0 };
  const resultOf = scans.resultOf.bind(scans);
  scans.resultOf = (digest: string) => {
    counter.count += 1;
    return resultOf(digest);
  };
  return counter;
}

interface HarnessOptions {
  reportDetails?: 'fixes' | 'full';
  secrets?: Record<string, { type: string; data: Record<string, string>; namespace?: string }>;
  retry?: ScanRetryPolicy;
  /** Scan knowledge shared with another harness (a restarted operator seeds its own). */
  scans?: ScanResults;
  teamOverrides?: TeamOverride[];
  /** Collects the reconciler's info lines. */
  infoLines?: string[];
}

function harness(options: HarnessOptions = {}) {
  let nowMs = Date.parse('2026-11-26T10:00:00Z');
  const now = () => new Date(nowMs);
  const server = new FakeReportServer(now);
  const queue = new FakeScanQueue();
  const scans = options.scans ?? new ScanResults();
  const index = new PodImageIndex({ isWatchedNamespace: () => true, now });
  const namespaces = new Map<string, NamespaceEntry>();
  const ns = toNamespaceEntry({ metadata: { name: NS, resourceVersion: '1', labels: { team: 'payments' } } });
  if (ns !== undefined) namespaces.set(NS, ns);
  const nodes = new Map<string, NodeEntry>();
  const node = toNodeEntry({ metadata: { name: 'node-a', resourceVersion: '1', labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'arm64' } } });
  if (node !== undefined) nodes.set('node-a', node);
  const replicaSets: Record<string, string> = { 'web-5d9c': 'web' };
  const getJson = (path: string): Promise<unknown> => {
    const name = /\/replicasets\/([^/]+)$/.exec(path)?.[1] ?? '';
    const deployment = replicaSets[name];
    if (deployment === undefined) return Promise.reject(apiError(404, 'NotFound'));
    return Promise.resolve({ metadata: { name, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment, uid: `uid-${deployment}`, controller: true }] } });
  };
  const secretReads: string[] = [];
  const core = {
    readNamespacedServiceAccount: () => Promise.reject(apiError(404, 'NotFound')),
    readNamespacedSecret: ({ namespace, name }: { namespace: string; name: string }) => {
      secretReads.push(`${namespace}/${name}`);
      const secret = options.secrets?.[name];
      if (secret === undefined || namespace !== (secret.namespace ?? NS)) return Promise.reject(apiError(404, 'NotFound'));
      return Promise.resolve({ metadata: { name, namespace }, ...secret });
    },
  } as unknown as CoreV1Api;
  const reconciler = new ReportReconciler({
    pods: index,
    namespaces,
    nodes,
    reports: {
      find: (namespace, digest) => server.cached(namespace, digest),
    },
    scans,
    scanQueue: queue,
    store: server,
    owners: new OwnerResolver({ getJson }),
    pullSecrets: new PullSecretReader({ core, now: () => nowMs }),
    teamLabel: 'team',
    ...(options.teamOverrides === undefined ? {} : { teamOverrides: options.teamOverrides }),
    gracePeriodMs: HOUR,
    rescanIntervalMs: 12 * HOUR,
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    maxReportVulnerabilities: 100,
    ...(options.reportDetails === undefined ? {} : { reportDetails: options.reportDetails }),
    now,
    logger: options.infoLines === undefined ? pino({ level: 'silent' }) : pino({ level: 'info' }, { write: (line: string) => void options.infoLines?.push(line) }),
  });
  const result = parseTrivyReport(fixtureText);
  /** What the loop does with a successful ScanOutcome. */
  const finishScan = (digest = DIGEST) => {
    queue.pending.delete(digest);
    reconciler.recordSuccess(digest, result, now());
  };
  /** A pod named `name` runs the image and its scan has ended: the report holds the result. */
  const scannedPod = async (name = 'solo') => {
    const entry = pod(name);
    if (entry === undefined) throw new Error('pod');
    index.upsert(entry);
    await reconciler.reconcile(KEY);
    finishScan();
    await reconciler.reconcile(KEY);
    return entry;
  };
  /** A pod named `name` runs the image and its first scan has failed for good (gone from the registry). */
  const failedPod = async (name = 'solo') => {
    const entry = pod(name);
    if (entry === undefined) throw new Error('pod');
    index.upsert(entry);
    await reconciler.reconcile(KEY);
    queue.pending.delete(DIGEST);
    reconciler.recordFailure(DIGEST, 'not_found', 'MANIFEST_UNKNOWN: manifest unknown', false, now());
    await reconciler.reconcile(KEY);
    return entry;
  };
  return {
    server,
    queue,
    scans,
    index,
    reconciler,
    secretReads,
    finishScan,
    scannedPod,
    failedPod,
    advance: (ms: number) => {
      nowMs += ms;
    },
    now,
    report: () => server.find(NS, DIGEST),
  };
}

describe('ReportReconciler', () => {
  it('on first sight creates the report, asks for one scan for the node platform, and writes Scanning only if the scan takes 30 s', async () => {
    const h = harness();
    const entry = pod('web-5d9c-x1', { owner: { kind: 'ReplicaSet', name: 'web-5d9c' } });
    expect(entry).toBeDefined();
    if (entry === undefined) return;
    expect(h.index.upsert(entry)).toEqual([KEY]);

    expect(await h.reconciler.reconcile(KEY)).toEqual({ requeueAfterMs: DEFAULT_INTERIM_STATUS_DELAY_MS });
    expect(h.server.writes).toEqual([`create ${NS}/nginx-abababababab`]);
    expect(h.queue.requests).toEqual([{ target: { repository: 'docker.io/library/nginx', digest: DIGEST, platform: 'linux/arm64' }, priority: 'new' }]);
    expect(h.report()?.status).toBeUndefined();

    h.advance(10_000);
    expect(await h.reconciler.reconcile(KEY)).toEqual({ requeueAfterMs: DEFAULT_INTERIM_STATUS_DELAY_MS - 10_000 });
    h.advance(DEFAULT_INTERIM_STATUS_DELAY_MS - 10_000);
    await h.reconciler.reconcile(KEY);

    expect(h.server.writes).toEqual([`create ${NS}/nginx-abababababab`, `patchStatus ${NS}/nginx-abababababab`]);
    expect(h.queue.requests).toHaveLength(1);
    const report = h.report();
    expect(report?.spec).toEqual({ image: 'nginx:1.19', repository: 'docker.io/library/nginx', digest: DIGEST });
    expect(report?.status?.phase).toBe('Scanning');
    expect(report?.status?.workloads).toEqual([{ kind: 'Deployment', name: 'web' }]);
    expect(report?.status?.team).toBe('payments');
    expect(report?.metadata?.labels?.['imagescan.dev/team']).toBe('payments');
  });

  it('a scan that ends within the delay gives a new report exactly two writes: create, then the result', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.advance(5_000);
    h.finishScan();

    expect(await h.reconciler.reconcile(KEY)).toEqual({});
    await h.reconciler.reconcile(KEY);

    expect(h.server.writes).toEqual([`create ${NS}/nginx-abababababab`, `patchStatus ${NS}/nginx-abababababab`]);
    expect(h.report()?.status?.phase).toBe('Scanned');
  });

  it('a second reconcile with nothing new makes zero writes and no scan request', async () => {
    const h = harness();
    const entry = pod('web-5d9c-x1', { owner: { kind: 'ReplicaSet', name: 'web-5d9c' } });
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    const before = h.server.writes.length;

    await h.reconciler.reconcile(KEY);

    expect(h.server.writes.length).toBe(before);
    expect(h.queue.requests).toHaveLength(1);
  });

  it.each(['fixes', 'full'] as const)('--report-details=%s: writes the scan result once: Scanned with the counts Trivy reported, then nothing on the next reconcile', async (details) => {
    const h = harness({ reportDetails: details });
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.finishScan();
    h.server.writes.length = 0;

    await h.reconciler.reconcile(KEY);
    await h.reconciler.reconcile(KEY);

    expect(h.server.writes).toEqual([`patchStatus ${NS}/nginx-abababababab`]);
    const expected = rawCounts();
    const status = h.report()?.status;
    expect(status?.phase).toBe('Scanned');
    expect(status?.summary?.total).toBe(expected.total);
    expect(status?.summary?.critical).toBe(expected.critical);
    expect(status?.summary?.high).toBe(expected.high);
    expect(status?.summary?.fixable).toBe(expected.fixable);
    // What to upgrade, the worst packages first: nginx:1.19's 58 packages do not fit the 8 KiB budget,
    // the rest are counted.
    const counted = (status?.fixes ?? []).reduce((n, f) => n + f.critical + f.high + f.medium + f.low + f.unknown, 0);
    expect(counted).toBeGreaterThan(0);
    expect(counted).toBeLessThan(expected.fixable);
    expect(status?.fixesOmitted).toBeGreaterThan(0);
    expect(Buffer.byteLength(JSON.stringify(status?.fixes))).toBeLessThanOrEqual(8 * 1024);
    expect(status?.fixes?.[0]?.critical).toBeGreaterThan(0);
    if (details === 'fixes') {
      expect(status).not.toHaveProperty('vulnerabilities');
      expect(status).not.toHaveProperty('vulnerabilitiesOmitted');
    } else {
      // Capped by --max-report-vulnerabilities, the rest counted.
      expect(status?.vulnerabilities).toHaveLength(100);
      expect(status?.vulnerabilitiesOmitted).toBe(expected.total - 100);
      expect(status?.vulnerabilities?.[0]?.severity).toBe('CRITICAL');
    }
    expect(status?.workloads).toEqual([{ kind: 'Pod', name: 'solo' }]);
  });

  it('a rescan with the same findings costs exactly one status write (the new lastScanTime) and keeps the result meanwhile', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.finishScan();
    await h.reconciler.reconcile(KEY);
    const firstScan = h.report()?.status?.lastScanTime;

    h.advance(12 * HOUR);
    h.server.writes.length = 0;
    await h.reconciler.reconcile(KEY); // stale: a rescan is requested, the report stays Scanned
    expect(h.queue.requests.map((r) => r.priority)).toEqual(['new', 'rescan']);
    expect(h.report()?.status?.phase).toBe('Scanned');
    expect(h.server.writes).toEqual([]);

    h.advance(60_000);
    h.finishScan();
    await h.reconciler.reconcile(KEY);
    expect(h.server.writes).toEqual([`patchStatus ${NS}/nginx-abababababab`]);
    expect(h.report()?.status?.lastScanTime).not.toBe(firstScan);
  });

  it('keeps the report through the grace period after the last pod goes, then deletes it', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.finishScan();
    await h.reconciler.reconcile(KEY);
    h.server.writes.length = 0;

    expect(h.index.remove(entry)).toEqual([KEY]);
    const first = await h.reconciler.reconcile(KEY);
    expect(first.requeueAfterMs).toBe(HOUR);
    // One write: the report now lists no workload (metrics drop the image at once).
    expect(h.server.writes).toEqual([`patchStatus ${NS}/nginx-abababababab`]);
    expect(h.report()?.status?.workloads).toEqual([]);
    expect(h.report()?.status?.phase).toBe('Scanned');

    h.advance(HOUR - 1000);
    const second = await h.reconciler.reconcile(KEY);
    expect(second.requeueAfterMs).toBe(1000);
    expect(h.report()).toBeDefined();

    h.advance(1000);
    await h.reconciler.reconcile(KEY);
    expect(h.report()).toBeUndefined();
    expect(h.server.writes.at(-1)).toBe(`delete ${NS}/nginx-abababababab`);
  });

  it('a pod coming back within the grace period keeps the report and lists its workload again', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.index.remove(entry);
    await h.reconciler.reconcile(KEY);
    h.advance(HOUR / 2);
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.advance(HOUR);
    await h.reconciler.reconcile(KEY);
    expect(h.report()?.status?.workloads).toEqual([{ kind: 'Pod', name: 'solo' }]);
    expect(h.server.writes.filter((w) => w.startsWith('delete'))).toEqual([]);
  });

  it('a report from before status.fixes whose list was capped is left alone until one rescan completes it, then written once', async () => {
    // The old version's report: full list capped at 100 (nginx:1.19 has 337 fixable of 795), no fixes.
    const old = harness({ reportDetails: 'full' });
    await old.scannedPod();
    const stored = old.report();
    if (stored?.status === undefined) throw new Error('report');
    const { fixes: _fixes, fixesOmitted: _omitted, fixesOmittedCounts: _counts, ...oldStatus } = stored.status;
    expect(oldStatus.vulnerabilitiesOmitted).toBeGreaterThan(0);

    // The new version starts with that report in the cluster and the pod running.
    const h = harness();
    h.server.objects.set(`${NS}/${stored.metadata?.name ?? ''}`, structuredClone({ ...stored, status: oldStatus }));
    h.scans.seed(DIGEST, scanStateFromReport(structuredClone({ ...stored, status: oldStatus })), (state) => h.reconciler.prepared(state));
    expect(h.scans.get(DIGEST)?.detailsIncomplete).toBe(true);
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    h.server.writes.length = 0;
    await h.reconciler.reconcile(KEY);
    await h.reconciler.reconcile(KEY);
    expect(h.server.writes).toEqual([]);
    expect(h.queue.requests.map((r) => [r.target.digest, r.priority])).toEqual([[DIGEST, 'rescan']]);
    expect(h.report()?.status?.vulnerabilities?.length).toBe(100);

    h.finishScan();
    await h.reconciler.reconcile(KEY);
    await h.reconciler.reconcile(KEY);
    expect(h.server.writes).toEqual([`patchStatus ${NS}/nginx-abababababab`]);
    expect(h.report()?.status).not.toHaveProperty('vulnerabilities');
    expect(h.report()?.status?.fixes?.length).toBeGreaterThan(0);
    expect(h.queue.requests).toHaveLength(1);
  });

  it('after a restart, an orphan report (no pod) waits a full grace period from start before deletion', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    // "Restart": a new index that never saw the pod, same server.
    const restarted = new PodImageIndex({ isWatchedNamespace: () => true, now: h.now });
    const reconciler = new ReportReconciler({
      ...(h.reconciler as unknown as { options: ConstructorParameters<typeof ReportReconciler>[0] }).options,
      pods: restarted,
    });
    const result = await reconciler.reconcile(KEY);
    expect(result.requeueAfterMs).toBe(HOUR);
    expect(h.report()).toBeDefined();
  });

  it('a restarted operator seeded from a fresh report requests no scan and writes nothing', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.finishScan();
    await h.reconciler.reconcile(KEY);
    const report = h.report();
    if (report === undefined) throw new Error('report');

    // A new process: empty scan knowledge and queue, seeded from the report as the controller does.
    h.advance(HOUR);
    const scans = new ScanResults();
    scans.seed(DIGEST, scanStateFromReport(report));
    const queue = new FakeScanQueue();
    const options = (h.reconciler as unknown as { options: ConstructorParameters<typeof ReportReconciler>[0] }).options;
    const restarted = new ReportReconciler({ ...options, scans, scanQueue: queue });
    h.server.writes.length = 0;

    await restarted.reconcile(KEY);

    expect(queue.requests).toEqual([]);
    expect(h.server.writes).toEqual([]);
  });

  it('a restart announces nothing again; a new workload or a changed result is announced', async () => {
    // The API server's events, shared by both processes: a repeat of a name is 409 AlreadyExists.
    const created: { name: string; workload: string }[] = [];
    const names = new Set<string>();
    const core = {
      createNamespacedEvent: ({ body }: { body: { metadata: { name: string }; involvedObject: { kind: string; name: string } } }) => {
        created.push({ name: body.metadata.name, workload: `${body.involvedObject.kind}/${body.involvedObject.name}` });
        if (names.has(body.metadata.name)) return Promise.reject(apiError(409, 'AlreadyExists'));
        names.add(body.metadata.name);
        return Promise.resolve(body);
      },
    } as unknown as CoreV1Api;
    const recorder = () => new EventRecorder({ core, logger: pino({ level: 'silent' }), instance: 'test' });
    const h = harness();
    const options = (h.reconciler as unknown as { options: ConstructorParameters<typeof ReportReconciler>[0] }).options;
    const first = new ReportReconciler({ ...options, events: recorder() });
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await first.reconcile(KEY);
    h.finishScan();
    await first.reconcile(KEY);
    // The fixture has fixable CRITICAL vulnerabilities: one event for the one workload.
    expect(h.report()?.status?.fixes?.some((f) => f.critical > 0)).toBe(true);
    expect(created).toHaveLength(1);
    const report = h.report();
    if (report === undefined) throw new Error('report');

    // A new process, knowledge seeded from the report: nothing changed, so no event (no 409 either).
    h.advance(HOUR);
    const scans = new ScanResults();
    scans.seed(DIGEST, scanStateFromReport(report));
    const restarted = new ReportReconciler({ ...options, scans, scanQueue: new FakeScanQueue(), events: recorder() });
    await restarted.reconcile(KEY);
    expect(created).toHaveLength(1);

    // A workload that starts running the image is announced, once.
    const web = pod('web-5d9c-x1', { owner: { kind: 'ReplicaSet', name: 'web-5d9c' } });
    if (web === undefined) throw new Error('pod');
    h.index.upsert(web);
    await restarted.reconcile(KEY);
    await restarted.reconcile(KEY);
    expect(created.slice(1).map((e) => e.workload)).toEqual(['Deployment/web']);

    // A scan with a different result is announced to every workload.
    const result = parseTrivyReport(fixtureText);
    const fewer = { ...result, vulnerabilities: result.vulnerabilities.filter((v) => !(v.severity === 'CRITICAL' && v.id === result.vulnerabilities.find((c) => c.severity === 'CRITICAL' && (c.fixedVersion ?? '') !== '')?.id)) };
    restarted.recordSuccess(DIGEST, fewer, h.now());
    await restarted.reconcile(KEY);
    expect(created.slice(2).map((e) => e.workload).sort()).toEqual(['Deployment/web', 'Pod/solo']);
    expect(new Set(created.map((e) => e.name)).size).toBe(created.length);
  });

  it('a reconcile that changes nothing leaves the packed vulnerability list alone, and still retries an event that failed', async () => {
    // The first event create fails (the API server throttles); the later ones succeed.
    const created: string[] = [];
    let failures = 1;
    const core = {
      createNamespacedEvent: ({ body }: { body: { involvedObject: { kind: string; name: string } } }) => {
        if (failures > 0) {
          failures -= 1;
          return Promise.reject(apiError(429, 'TooManyRequests'));
        }
        created.push(`${body.involvedObject.kind}/${body.involvedObject.name}`);
        return Promise.resolve(body);
      },
    } as unknown as CoreV1Api;
    const h = harness();
    const options = (h.reconciler as unknown as { options: ConstructorParameters<typeof ReportReconciler>[0] }).options;
    const reconciler = new ReportReconciler({ ...options, events: new EventRecorder({ core, logger: pino({ level: 'silent' }), instance: 'test' }) });
    const unpacks = countUnpacks(h.scans);
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await reconciler.reconcile(KEY);
    reconciler.recordSuccess(DIGEST, parseTrivyReport(fixtureText), h.now());
    h.queue.pending.delete(DIGEST);
    await reconciler.reconcile(KEY);
    expect(h.server.writes).toEqual([`create ${NS}/nginx-abababababab`, `patchStatus ${NS}/nginx-abababababab`]);
    expect(h.report()?.status?.fixes?.length).toBeGreaterThan(0);
    expect(created).toEqual([]);

    // Unchanged report, but the event is still owed: the list is unpacked to announce it.
    await reconciler.reconcile(KEY);
    expect(created).toEqual(['Pod/solo']);
    expect(h.server.writes).toHaveLength(2);

    // Unchanged and announced: nothing is written, created or unpacked.
    unpacks.count = 0;
    for (let i = 0; i < 3; i++) await reconciler.reconcile(KEY);
    expect(unpacks.count).toBe(0);
    expect(created).toEqual(['Pod/solo']);
    expect(h.server.writes).toHaveLength(2);

    // A new workload changes the status: the write leaves the list on the server, and the list is
    // unpacked to tell the new workload.
    const web = pod('web-5d9c-x1', { owner: { kind: 'ReplicaSet', name: 'web-5d9c' } });
    if (web === undefined) throw new Error('pod');
    h.index.upsert(web);
    await reconciler.reconcile(KEY);
    expect(unpacks.count).toBeGreaterThan(0);
    expect(h.server.writes).toHaveLength(3);
    expect(h.report()?.status?.workloads).toEqual([{ kind: 'Deployment', name: 'web' }, { kind: 'Pod', name: 'solo' }]);
    expect(h.report()?.status?.fixes?.length).toBeGreaterThan(0);
    expect(created).toEqual(['Pod/solo', 'Deployment/web']);
  });

  it('a rescan with the same result writes its new time without unpacking or sending the list again', async () => {
    const h = harness();
    const unpacks = countUnpacks(h.scans);
    await h.scannedPod();
    const list = h.report()?.status?.fixes;
    expect(list?.length).toBeGreaterThan(0);
    expect(h.server.statusesSent[0]?.fixes).toEqual(list);

    h.advance(HOUR);
    h.reconciler.recordSuccess(DIGEST, parseTrivyReport(fixtureText), h.now());
    unpacks.count = 0;
    await h.reconciler.reconcile(KEY);
    expect(h.server.writes).toHaveLength(3);
    expect(unpacks.count).toBe(0);
    expect(h.server.statusesSent[1]?.fixes).toBeUndefined();
    expect(h.report()?.status?.lastScanTime).toBe('2026-11-26T11:00:00Z');
    expect(h.report()?.status?.fixes).toEqual(list);
    // The report as written counts as holding the list: the next reconcile writes nothing.
    await h.reconciler.reconcile(KEY);
    expect(h.server.writes).toHaveLength(3);

    // The status write finds the report gone (404): the report it creates again gets the list.
    h.advance(HOUR);
    h.reconciler.recordSuccess(DIGEST, parseTrivyReport(fixtureText), h.now());
    h.server.failNext.patchStatus = [new KubeApiError('NotFound', 404, 'NotFound', 'gone')];
    await h.reconciler.reconcile(KEY);
    expect(h.server.statusesSent.at(-2)?.fixes).toBeUndefined();
    expect(h.server.statusesSent.at(-1)?.fixes).toEqual(list);
  });

  it('a report created meanwhile by someone else (409 AlreadyExists) is read and updated, not duplicated', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    // On the server but not yet in the cache, and without our labels.
    h.server.objects.set(`${NS}/nginx-abababababab`, {
      apiVersion: 'imagescan.dev/v1alpha1',
      kind: 'ImageScanReport',
      metadata: { name: 'nginx-abababababab', namespace: NS, labels: {}, resourceVersion: '7' },
      spec: { image: 'nginx:1.19', repository: 'docker.io/library/nginx', digest: DIGEST },
    });
    const options = (h.reconciler as unknown as { options: ConstructorParameters<typeof ReportReconciler>[0] }).options;
    const reconciler = new ReportReconciler({ ...options, reports: { find: () => undefined } });

    await reconciler.reconcile(KEY);

    expect(h.server.writes).toEqual([
      `create ${NS}/nginx-abababababab`,
      `patchMetadata ${NS}/nginx-abababababab`,
      `patchStatus ${NS}/nginx-abababababab`,
    ]);
    expect([...h.server.objects.keys()]).toEqual([`${NS}/nginx-abababababab`]);
    expect(h.report()?.metadata?.labels?.['app.kubernetes.io/managed-by']).toBe('imagescan-operator');
    expect(h.report()?.status?.phase).toBe('Scanning');
  });

  it('a 409 Conflict on the status write is thrown for a retry with backoff', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    h.server.failNext.patchStatus = [new KubeApiError('Conflict', 409, 'Conflict', 'stale')];
    await h.reconciler.reconcile(KEY);
    h.advance(DEFAULT_INTERIM_STATUS_DELAY_MS);
    await expect(h.reconciler.reconcile(KEY)).rejects.toMatchObject({ kind: 'Conflict', transient: true });
    // The retry converges.
    await h.reconciler.reconcile(KEY);
    expect(h.report()?.status?.phase).toBe('Scanning');
  });

  it('a report deleted behind the cache (404 on the status write) is created again', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.finishScan();
    const stale = h.report();
    h.server.objects.clear();
    const options = (h.reconciler as unknown as { options: ConstructorParameters<typeof ReportReconciler>[0] }).options;
    const reconciler = new ReportReconciler({ ...options, reports: { find: () => stale } });
    h.server.writes.length = 0;

    await reconciler.reconcile(KEY);

    expect(h.server.writes).toEqual([
      `patchStatus ${NS}/nginx-abababababab`,
      `create ${NS}/nginx-abababababab`,
      `patchStatus ${NS}/nginx-abababababab`,
    ]);
    expect(h.report()?.status?.phase).toBe('Scanned');
  });

  it('a permanent scan failure gives Failed with the reason in status.message, and no new request until the next rescan', async () => {
    const h = harness();
    await h.failedPod();
    h.advance(HOUR);
    await h.reconciler.reconcile(KEY);

    const status = h.report()?.status;
    expect(status?.phase).toBe('Failed');
    expect(status?.message).toContain('not_found');
    expect(status?.message).toContain('MANIFEST_UNKNOWN');
    expect(h.queue.requests).toHaveLength(1);
  });

  it("logs a new report's first result at debug (its digest's 'scan finished' says it) and a first failure at info", async () => {
    const infoLines: string[] = [];
    const h = harness({ infoLines });
    await h.scannedPod();
    expect(h.report()?.status?.phase).toBe('Scanned');
    expect(infoLines.filter((l) => l.includes('report status changed'))).toEqual([]);

    await harness({ infoLines }).failedPod();
    const changed = infoLines.map((l) => JSON.parse(l) as { msg: string; phase?: string; namespace?: string }).filter((l) => l.msg === 'report status changed');
    expect(changed.map((l) => [l.phase, l.namespace])).toEqual([['Failed', NS]]);
  });

  it('a failed rescan keeps the previous result (Scanned), never erasing the report', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.finishScan();
    await h.reconciler.reconcile(KEY);
    h.advance(12 * HOUR);
    await h.reconciler.reconcile(KEY);
    h.queue.pending.delete(DIGEST);
    h.reconciler.recordFailure(DIGEST, 'timeout', 'scan timed out', true, h.now());
    await h.reconciler.reconcile(KEY);
    expect(h.report()?.status?.phase).toBe('Scanned');
    expect(h.report()?.status?.summary?.total).toBe(rawCounts().total);
  });

  it('a transient failure of a first scan is Failed and retried after a delay', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.queue.pending.delete(DIGEST);
    h.reconciler.recordFailure(DIGEST, 'timeout', 'scan timed out after 10m', true, h.now());
    const waiting = await h.reconciler.reconcile(KEY);
    expect(h.report()?.status?.phase).toBe('Failed');
    expect(waiting.requeueAfterMs).toBe(10 * 60_000);
    h.advance(10 * 60_000);
    await h.reconciler.reconcile(KEY);
    expect(h.queue.requests).toHaveLength(2);
    expect(h.report()?.status?.phase).toBe('Scanning');
  });

  it('an auth failure names the registry and the secret, never the secret content', async () => {
    const password = 'stub-password-should-not-leak';
    const dockerconfig = Buffer.from(JSON.stringify({ auths: { 'https://index.docker.io/v1/': { username: 'robot', password } } })).toString('base64');
    const h = harness({ secrets: { regcred: { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': dockerconfig } } } });
    const entry = pod('solo', { pullSecret: 'regcred' });
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    expect(h.queue.requests[0]?.target.credentials).toEqual({ registry: 'docker.io', auth: { username: 'robot', password }, source: `${NS}/regcred` });
    expect(h.secretReads).toEqual([`${NS}/regcred`]);
    h.queue.pending.delete(DIGEST);
    h.reconciler.recordFailure(DIGEST, 'auth', 'UNAUTHORIZED: authentication required', false, h.now());

    await h.reconciler.reconcile(KEY);

    const message = h.report()?.status?.message ?? '';
    expect(h.report()?.status?.phase).toBe('Failed');
    expect(message).toContain('docker.io');
    expect(message).toContain(`${NS}/regcred`);
    expect(JSON.stringify(h.report())).not.toContain(password);
  });

  it('a missing pull secret is named in the auth failure message', async () => {
    const h = harness();
    const entry = pod('solo', { pullSecret: 'missing-cred' });
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    expect(h.queue.requests[0]?.target.credentials).toBeUndefined();
    h.queue.pending.delete(DIGEST);
    h.reconciler.recordFailure(DIGEST, 'auth', 'UNAUTHORIZED', false, h.now());
    await h.reconciler.reconcile(KEY);
    const message = h.report()?.status?.message ?? '';
    expect(message).toContain('docker.io');
    expect(message).toContain(`secret ${NS}/missing-cred not found`);
  });

  it("a private image that failed auth without credentials in one namespace is retried once with another namespace's secret", async () => {
    const dockerconfig = Buffer.from(JSON.stringify({ auths: { 'docker.io': { username: 'robot', password: 'pw' } } })).toString('base64');
    const h = harness({ secrets: { regcred: { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': dockerconfig }, namespace: 'billing' } } });
    const plain = pod('plain');
    const withSecret = pod('private', { namespace: 'billing', pullSecret: 'regcred' });
    if (plain === undefined || withSecret === undefined) throw new Error('pod');
    h.index.upsert(plain);
    h.index.upsert(withSecret);
    await h.reconciler.reconcile(KEY);
    expect(h.queue.requests[0]?.target.credentials).toBeUndefined();
    h.queue.pending.delete(DIGEST);
    h.reconciler.recordFailure(DIGEST, 'auth', 'UNAUTHORIZED', false, h.now());

    const billingKey = reportKey('billing', DIGEST);
    await h.reconciler.reconcile(billingKey);
    expect(h.queue.requests).toHaveLength(2);
    expect(h.queue.requests[1]?.target.credentials?.source).toBe('billing/regcred');
    // That one fails too: no third attempt until the schedule.
    h.queue.pending.delete(DIGEST);
    h.reconciler.recordFailure(DIGEST, 'auth', 'UNAUTHORIZED', false, h.now());
    await h.reconciler.reconcile(billingKey);
    await h.reconciler.reconcile(KEY);
    expect(h.queue.requests).toHaveLength(2);
    expect(h.server.find('billing', DIGEST)?.status?.message).toContain('billing/regcred');
  });

  it('when the pods move to a mirror with another image name for the same digest, the old report is replaced, not orphaned', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.finishScan();
    const moved = pod('solo', { image: 'mirror.example.com/hub/nginx-mirror:1.19' });
    if (moved === undefined) throw new Error('pod');
    h.index.upsert({ ...moved, resourceVersion: '2' });
    h.server.writes.length = 0;

    await h.reconciler.reconcile(KEY);

    expect(h.server.writes).toEqual([
      `create ${NS}/nginx-mirror-abababababab`,
      `delete ${NS}/nginx-abababababab`,
      `patchStatus ${NS}/nginx-mirror-abababababab`,
    ]);
    expect([...h.server.objects.keys()]).toEqual([`${NS}/nginx-mirror-abababababab`]);
  });

  it('a spec that drifted (same name, new repository) is patched in place', async () => {
    const h = harness();
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    const moved = pod('solo', { image: 'mirror.example.com/library/nginx:1.19' });
    if (moved === undefined) throw new Error('pod');
    h.index.upsert({ ...moved, resourceVersion: '2' });
    h.server.writes.length = 0;

    await h.reconciler.reconcile(KEY);

    expect(h.server.writes).toEqual([`patchMetadata ${NS}/nginx-abababababab`]);
    expect(h.report()?.spec).toEqual({ image: 'mirror.example.com/library/nginx:1.19', repository: 'mirror.example.com/library/nginx', digest: DIGEST });
  });

  it('a pod update that changes the image maps both the old and the new key', () => {
    const h = harness();
    const before = pod('solo');
    const after = pod('solo', { digest: OTHER_DIGEST });
    if (before === undefined || after === undefined) throw new Error('pod');
    h.index.upsert(before);
    expect(h.index.upsert({ ...after, resourceVersion: '2' }).sort()).toEqual([KEY, reportKey(NS, OTHER_DIGEST)].sort());
    // An update that changes nothing the report depends on maps to no key.
    expect(h.index.upsert({ ...after, resourceVersion: '3' })).toEqual([]);
  });

  it('many pods of one workload give one report with one workload and one scan request', async () => {
    const h = harness();
    for (let i = 0; i < 20; i += 1) {
      const entry = pod(`web-5d9c-${i}`, { owner: { kind: 'ReplicaSet', name: 'web-5d9c' } });
      if (entry !== undefined) h.index.upsert(entry);
    }
    await h.reconciler.reconcile(KEY);
    h.finishScan();
    await h.reconciler.reconcile(KEY);
    expect(h.queue.requests).toHaveLength(1);
    expect(h.server.objects.size).toBe(1);
    expect(h.report()?.status?.workloads).toEqual([{ kind: 'Deployment', name: 'web' }]);
  });

  it('an image that always times out is retried with a growing backoff, then only by the schedule, and its report says so', async () => {
    const h = harness({ retry: { baseMs: 10 * 60_000, maxAttempts: 3 } });
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    const waits: (number | undefined)[] = [];
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      h.queue.pending.delete(DIGEST);
      h.reconciler.recordFailure(DIGEST, 'timeout', 'The scan did not finish within the scan timeout; Trivy was killed', true, h.now());
      const result = await h.reconciler.reconcile(KEY);
      waits.push(result.requeueAfterMs);
      if (result.requeueAfterMs !== undefined) h.advance(result.requeueAfterMs);
      await h.reconciler.reconcile(KEY);
    }
    expect(waits).toEqual([10 * 60_000, 20 * 60_000, undefined]);
    expect(h.queue.requests).toHaveLength(3);
    const status = h.report()?.status;
    expect(status?.phase).toBe('Failed');
    expect(status?.failedScanAttempts).toBe(3);
    // 10:00 + 10 m + 20 m: the third failure; the next try is the schedule's (rescan interval 12 h).
    expect(status?.nextRetryTime).toBe('2026-11-26T22:30:00Z');
    expect(status?.message).toMatch(/^Scan failed \(timeout\): The scan did not finish.* Gave up after 3 failed attempts in a row; next try with the scheduled rescan at 2026-11-26T22:30:00Z\.$/);
    // Hours later, nothing more: no requeue, no request, no write.
    const writes = h.server.writes.length;
    h.advance(11 * HOUR);
    expect(await h.reconciler.reconcile(KEY)).toEqual({});
    expect(h.queue.requests).toHaveLength(3);
    expect(h.server.writes).toHaveLength(writes);
    // The scheduled time comes: one more attempt, and a success clears the count.
    h.advance(HOUR);
    await h.reconciler.reconcile(KEY);
    expect(h.queue.requests).toHaveLength(4);
    h.finishScan();
    await h.reconciler.reconcile(KEY);
    expect(h.report()?.status?.phase).toBe('Scanned');
    expect(h.report()?.status?.failedScanAttempts).toBeUndefined();
    expect(h.report()?.status?.nextRetryTime).toBeUndefined();
  });

  it('after a restart the failure count and retry time come back from the report: no scan before it, no write', async () => {
    const before = harness({ retry: { baseMs: 10 * 60_000, maxAttempts: 5 } });
    const entry = pod('solo');
    if (entry === undefined) throw new Error('pod');
    before.index.upsert(entry);
    await before.reconciler.reconcile(KEY);
    before.queue.pending.delete(DIGEST);
    before.reconciler.recordFailure(DIGEST, 'timeout', 'killed', true, before.now());
    before.queue.pending.delete(DIGEST);
    await before.reconciler.reconcile(KEY);
    before.advance(10 * 60_000);
    await before.reconciler.reconcile(KEY);
    before.queue.pending.delete(DIGEST);
    before.reconciler.recordFailure(DIGEST, 'timeout', 'killed', true, before.now());
    await before.reconciler.reconcile(KEY);
    const stored = before.report();
    expect(stored?.status?.failedScanAttempts).toBe(2);

    // A new process: its scan knowledge is seeded from the report, as the report informer does.
    const scans = new ScanResults();
    if (stored !== undefined) scans.seed(DIGEST, scanStateFromReport(stored));
    const after = harness({ retry: { baseMs: 10 * 60_000, maxAttempts: 5 }, scans });
    for (const [key, report] of before.server.objects) after.server.objects.set(key, report);
    after.advance(10 * 60_000 + 5 * 60_000);
    after.index.upsert(entry);
    await after.reconciler.reconcile(KEY);
    expect(after.queue.requests).toHaveLength(0);
    expect(after.server.writes).toEqual([]);
    after.advance(15 * 60_000);
    await after.reconciler.reconcile(KEY);
    expect(after.queue.requests).toHaveLength(1);
    after.queue.pending.delete(DIGEST);
    after.reconciler.recordFailure(DIGEST, 'timeout', 'killed', true, after.now());
    await after.reconciler.reconcile(KEY);
    expect(after.report()?.status?.failedScanAttempts).toBe(3);
  });

  it("two namespaces whose secrets both fail: each secret is tried once, then the digest waits, never alternating", async () => {
    const config = (user: string) => Buffer.from(JSON.stringify({ auths: { 'docker.io': { username: user, password: 'pw' } } })).toString('base64');
    const h = harness({
      secrets: {
        'cred-a': { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': config('a') } },
        'cred-b': { type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': config('b') }, namespace: 'billing' },
      },
    });
    const shop = pod('shop-pod', { pullSecret: 'cred-a' });
    const billing = pod('billing-pod', { namespace: 'billing', pullSecret: 'cred-b' });
    if (shop === undefined || billing === undefined) throw new Error('pod');
    h.index.upsert(shop);
    h.index.upsert(billing);
    const billingKey = reportKey('billing', DIGEST);
    await h.reconciler.reconcile(KEY);
    for (let round = 0; round < 4; round += 1) {
      h.queue.pending.delete(DIGEST);
      h.reconciler.recordFailure(DIGEST, 'auth', 'UNAUTHORIZED', false, h.now());
      await h.reconciler.reconcile(billingKey);
      await h.reconciler.reconcile(KEY);
    }
    expect(h.queue.requests.map((r) => r.target.credentials?.source)).toEqual([`${NS}/cred-a`, 'billing/cred-b']);
  });
});

describe('ReportReconciler team overrides (--team-overrides)', () => {
  const sidecars = parseTeamOverrides('container:istio-proxy=platform,repository:docker.io/library/nginx=web-platform');

  async function teamOfReport(h: ReturnType<typeof harness>, entry: ReturnType<typeof pod>): Promise<{ team?: string; label?: string }> {
    if (entry === undefined) throw new Error('pod');
    h.index.upsert(entry);
    await h.reconciler.reconcile(KEY);
    h.finishScan();
    await h.reconciler.reconcile(KEY);
    const report = h.report();
    return { ...(report?.status?.team === undefined ? {} : { team: report.status.team }), ...(report?.metadata?.labels?.['imagescan.dev/team'] === undefined ? {} : { label: report.metadata.labels['imagescan.dev/team'] }) };
  }

  it("gives an injected sidecar's image the platform's team, not the team of the pod it sits in", async () => {
    const h = harness({ teamOverrides: parseTeamOverrides('container:istio-proxy=platform') });
    const sidecar = pod('checkout-1', { container: 'istio-proxy', labels: { team: 'payments' } });
    expect(await teamOfReport(h, sidecar)).toEqual({ team: 'platform', label: 'platform' });
  });

  it('leaves other containers to the pod and namespace labels', async () => {
    const h = harness({ teamOverrides: parseTeamOverrides('container:istio-proxy=platform') });
    expect(await teamOfReport(h, pod('checkout-1', { labels: { team: 'search' } }))).toEqual({ team: 'search', label: 'search' });
  });

  it('lets a repository rule win over a container rule', async () => {
    const h = harness({ teamOverrides: sidecars });
    expect(await teamOfReport(h, pod('checkout-1', { container: 'istio-proxy', labels: { team: 'payments' } }))).toEqual({ team: 'web-platform', label: 'web-platform' });
  });

  it('moves an existing report to the new team once the flag is set (a restart with the flag)', async () => {
    const before = harness();
    const sidecar = pod('checkout-1', { container: 'istio-proxy', labels: { team: 'payments' } });
    expect(await teamOfReport(before, sidecar)).toEqual({ team: 'payments', label: 'payments' });
    const after = harness({ teamOverrides: parseTeamOverrides('container:istio-proxy=platform') });
    // The same cluster state seen by an operator started with the flag.
    for (const [key, report] of before.server.objects) after.server.objects.set(key, structuredClone(report));
    expect(await teamOfReport(after, sidecar)).toEqual({ team: 'platform', label: 'platform' });
  });
});
