// `npm run bench`: a 10,000-pod cluster on the fake API server (in this process), the operator as its
// own process (bundled, as the image runs it), the stub Trivy sleeping a fixed time per scan, an
// ImageScanPolicy governing half the namespaces. Phases — cold start, a scheduled rescan with unchanged
// results during which AdmissionReviews are sent to the operator's webhook, pod churn, restart, a
// compressed day — and the figures of issues 6 and 18, each with its ideal and ratio. Prints a table;
// `--json FILE` writes the figures. Every way out stops the operator and the fake API server.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildOperator } from '../scripts/build-operator.js';
import { digestFor, seededRandom, startFakeApiServer } from '../e2e/fake-apiserver/index.js';
import type { FakeApiServer, KubeObject, RequestRecord } from '../e2e/fake-apiserver/index.js';
import { countRequests, lastReportWriteMs } from './api-requests.js';
import type { ApiWindowCounts } from './api-requests.js';
import { makeSelfSignedCert } from '../test/self-signed-cert.js';
import type { AdmissionLoadResult } from './admission-load.js';
import { runAdmissionLoadInWorker } from './admission-load-runner.js';
import { repositoryOf } from './admission-reviews.js';
import { benchPolicy, churnImage, namespaceLabels, outsideImage, planCluster, reportPairs, unknownImage } from './cluster-model.js';
import type { ClusterPlan } from './cluster-model.js';
import { formatMarkdown, formatTable } from './figures.js';
import { rewrittenReportBytes, storedReportBytes } from './report-bytes.js';
import type { Figure } from './figures.js';
import { applyMemoryLimit, deploymentMemoryLimit } from './memory-limit.js';
import { freePort, histogramQuantile, imageEnvironment, imageNodeFlags, isReady, OperatorSampler, startOperator } from './operator-probe.js';
import type { OperatorHandle, PhaseProcessFigures } from './operator-probe.js';
import { BenchOptionsError, parseBenchOptions, USAGE } from './options.js';
import type { BenchOptions } from './options.js';
import type { StubEvent } from './trivy-stub.js';
import { benchFixtures, dbDownloads, dbDownloadTimes, failedScans, readStubLog, runningScans, scansBetween, writeStubFiles } from './trivy-stub.js';
import { compressedDayArgs, dayFigures, dayTable } from './compressed-day.js';
import { Teardown } from './teardown.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPORTS = 'imagescanreports.imagescan.dev';
const OPERATOR_IDENTITY = 'imagescan-operator';
/** The operator's container in manifests/base/deployment.yaml. */
const OPERATOR_CONTAINER = 'operator';

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/**
 * The leak check compares the operator's RSS at rest before and after churn: the lowest over this long
 * with nothing happening. A phase can end anywhere in a GC cycle (±30 MiB on the same state); at rest
 * V8's memory reducer collects ~8 s after the last GC and returns what it freed.
 */
const IDLE_RSS_WINDOW_MS = 20_000;
/** The admission webhook's timeoutSeconds in the `admission` component (design: 5 s). */
const ADMISSION_TIMEOUT_MS = 5_000;

async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>, operator?: OperatorHandle, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (operator !== undefined && (operator.child.exitCode !== null || operator.child.signalCode !== null)) {
      throw new Error(`the operator exited (${String(operator.child.exitCode ?? operator.child.signalCode)}) while waiting for ${what}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * V8's heap in use (live objects and garbage not yet collected) and the memory of Buffers and other
 * external objects, from a scrape after an RSS window at rest: beside the RSS they tell growth of the
 * operator's own state from memory the allocators keep.
 */
async function memoryInUse(sampler: OperatorSampler): Promise<{ heapMiB: number; externalMiB: number }> {
  const m = await sampler.scrapeNow();
  const mib = (name: string): number => {
    const bytes = m?.get(name);
    return bytes === undefined ? Number.NaN : bytes / 2 ** 20;
  };
  return { heapMiB: mib('nodejs_heap_size_used_bytes'), externalMiB: mib('nodejs_external_memory_bytes') };
}

interface ReportTally {
  total: number;
  /** `namespace/spec.image` of every report → whether it is Scanned or Failed. */
  pairs: Map<string, boolean>;
  scanned: number;
  failed: number;
  /** Reports whose lastScanTime is at or after the given time. */
  scannedSince: number;
}

function tallyReports(api: FakeApiServer, sinceMs = Infinity): ReportTally {
  const tally: ReportTally = { total: 0, pairs: new Map(), scanned: 0, failed: 0, scannedSince: 0 };
  for (const report of api.objects.list(REPORTS)) {
    tally.total += 1;
    const status = (report.status ?? {}) as { phase?: string; lastScanTime?: string };
    tally.pairs.set(`${report.metadata?.namespace ?? ''}/${String((report.spec as { image?: unknown } | undefined)?.image)}`, status.phase === 'Scanned' || status.phase === 'Failed');
    if (status.phase === 'Scanned') tally.scanned += 1;
    if (status.phase === 'Failed') tally.failed += 1;
    if (status.lastScanTime !== undefined && Date.parse(status.lastScanTime) >= sinceMs) tally.scannedSince += 1;
  }
  return tally;
}

interface OwnerRef {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
}

interface SeededCluster {
  livePods: { namespace: string; name: string; images: readonly string[] }[];
  /** Per planned workload, the owner its pods point at (ReplicaSet or StatefulSet). */
  podOwners: OwnerRef[];
}

function ownerRefOf(obj: KubeObject): OwnerRef {
  return { apiVersion: String(obj.apiVersion), kind: String(obj.kind), name: obj.metadata?.name ?? '', uid: obj.metadata?.uid ?? '', controller: true };
}

function seedCluster(api: FakeApiServer, plan: ClusterPlan): SeededCluster {
  for (const ns of plan.namespaces) api.seed.namespace(ns.name, namespaceLabels(ns));
  api.seed.objects([benchPolicy()]);
  for (const node of plan.nodes) api.seed.node(node.name, { arch: node.arch, os: 'linux' });
  const livePods: SeededCluster['livePods'] = [];
  const podOwners: OwnerRef[] = [];
  for (const w of plan.workloads) {
    const seed = { namespace: w.namespace, name: w.name, containers: w.containers, replicas: w.replicas, nodes: w.nodes };
    const seeded = w.kind === 'Deployment' ? api.seed.deployment(seed) : api.seed.podSet('StatefulSet', seed);
    podOwners.push(ownerRefOf(seeded.intermediate ?? seeded.owner));
    for (const pod of seeded.pods) livePods.push({ namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '', images: w.containers });
  }
  return { livePods, podOwners };
}

/** UTC cron (with seconds) firing once at `at` — the operator's one scheduled rescan in this run. */
function cronAt(at: Date): string {
  return `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} ${at.getUTCDate()} ${at.getUTCMonth() + 1} *`;
}

interface Phase {
  name: string;
  fromMs: number;
  toMs: number;
  process: PhaseProcessFigures;
  api: ApiWindowCounts;
  scans: number;
}

async function main(options: BenchOptions): Promise<number> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'imagescan-bench-'));
  log(`work folder ${work}`);
  const idealColdStartS = (options.digests * options.scanMs) / 1000 / options.concurrency;

  log('building the operator (the bundle `npm run build` makes for the image)');
  const mainJs = await buildOperator(path.join(work, 'dist'));

  const plan = planCluster(options, seededRandom(options.seed));
  const expectedPairs = reportPairs(plan);
  const api = await startFakeApiServer({ historySize: 200_000, requestLogLimit: 10_000_000, defaultIdentity: OPERATOR_IDENTITY });
  const stopApi = teardown.add('the fake API server', () => api.stop());
  // The scrapes' identity: the operator reviews this token (TokenReview, SubjectAccessReview) as it
  // would Prometheus' in a cluster.
  const metricsToken = 'bench-prometheus-token';
  api.kubeconfigFor('prometheus', { token: metricsToken });
  const seedStart = Date.now();
  const cluster = seedCluster(api, plan);
  log(`seeded ${cluster.livePods.length} pods in ${plan.namespaces.length} namespaces, ${plan.workloads.length} workloads, ${plan.images.length} digests, ${expectedPairs.size} (namespace, digest) pairs in ${Date.now() - seedStart} ms`);

  const fixtures = benchFixtures(path.resolve(repoRoot, 'test/fixtures/trivy'));
  const churnCreates = options.churnSeconds * options.churnRate;
  const churnImages = Array.from({ length: Math.ceil(churnCreates / 5) }, (_, i) => churnImage(i));
  // Images the admission reviews name that run nowhere; the operator scans each by reference once.
  const unknownImages = Array.from({ length: 20 }, (_, i) => unknownImage(i));
  const outsideImages = Array.from({ length: 5 }, (_, i) => outsideImage(i));
  const admissionRepositories = new Set([...unknownImages, ...outsideImages].map(repositoryOf));
  const isAdmissionScan = (e: StubEvent): boolean => e.argv?.some((a) => admissionRepositories.has(repositoryOf(a))) === true;
  const stub = writeStubFiles({
    kind: options.stub,
    workDir: work,
    stubPath: path.join(repoRoot, 'test/trivy-stub/trivy'),
    fastStubPath: path.join(repoRoot, 'bench/fast-trivy.sh'),
    fixtures,
    images: [...plan.images, ...churnImages],
    referenceImages: [...unknownImages, ...outsideImages].map((image) => ({ image, digest: digestFor(image) })),
    scanMs: options.scanMs,
  });

  // The DB of the cold start is an hour old; the rescan phase's is published after it (issue 21: the
  // schedule rescans only what an older DB scanned, so the rescan phase is a DB update's).
  stub.setDbUpdatedAt(new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString());
  const rescanAfterS = options.rescanAfterSeconds > 0 ? options.rescanAfterSeconds : Math.ceil(Math.max(90, 4 * idealColdStartS + 60));
  const operatorStartMs = Date.now();
  const rescanAt = new Date(Math.ceil((operatorStartMs + rescanAfterS * 1000) / 1000) * 1000);
  const operatorArgs = [
    '--kubeconfig', api.kubeconfigPath,
    '--trivy-path', stub.trivyPath,
    '--trivy-cache-dir', path.join(work, 'trivy-cache'),
    '--scan-concurrency', String(options.concurrency),
    '--rescan-schedule', cronAt(rescanAt),
    '--rescan-jitter', '0s',
    '--trivy-db-refresh', `${rescanAfterS}s`,
    '--leader-elect=false',
    '--log-level', 'info',
    '--report-details', options.reportDetails,
  ];
  const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
  const nodeFlags = imageNodeFlags(dockerfile);
  const imageEnv = imageEnvironment(dockerfile);
  const imageEnvText = Object.entries(imageEnv).map(([k, v]) => `${k}=${v}`).join(' ') || '(none)';
  log(`node flags of the image's ENTRYPOINT: ${nodeFlags.join(' ') || '(none)'}; its environment: ${imageEnvText}`);
  const memoryLimit = deploymentMemoryLimit(readFileSync(path.join(repoRoot, 'manifests/base/deployment.yaml'), 'utf8'), OPERATOR_CONTAINER);
  const limit = applyMemoryLimit(memoryLimit.bytes, `imagescan-bench-${process.pid}`);
  let memoryLimitApplied: string;
  let cgroupProcs: string | undefined;
  if (limit.kind === 'cgroup') {
    process.on('exit', limit.remove);
    cgroupProcs = limit.procsPath;
    memoryLimitApplied = `cgroup v${limit.version}, ${memoryLimit.quantity}`;
    log(`the operator runs in a cgroup v${limit.version} with the Deployment's memory limit, ${memoryLimit.quantity}`);
  } else {
    nodeFlags.push(limit.flag);
    memoryLimitApplied = `${limit.flag} (for ${memoryLimit.quantity})`;
    log(`no memory cgroup could be made (${limit.why}); ${limit.flag} gives V8 the heap Node sizes from the Deployment's ${memoryLimit.quantity} limit`);
  }
  // The webhook's serving certificate, as cert-manager would mount it; the load trusts it as the
  // webhook configuration's caBundle would. Every operator serves the webhook on loopback only.
  const webhookCertDir = path.join(work, 'webhook-certs');
  const webhookCert = makeSelfSignedCert({ ips: ['127.0.0.1'], commonName: 'imagescan-operator-webhook' });
  mkdirSync(webhookCertDir);
  writeFileSync(path.join(webhookCertDir, 'tls.crt'), webhookCert.certPem);
  writeFileSync(path.join(webhookCertDir, 'tls.key'), webhookCert.keyPem, { mode: 0o600 });
  const start = async (label: string, extraArgs: string[] = []): Promise<{ operator: OperatorHandle; sampler: OperatorSampler; webhookUrl: string }> => {
    const webhookPort = await freePort();
    const webhookArgs = ['--webhook-address', `127.0.0.1:${webhookPort}`, '--webhook-cert-dir', webhookCertDir];
    const operator = startOperator({ mainJs, args: [...operatorArgs, ...webhookArgs, ...extraArgs], port: await freePort(), logPath: path.join(work, `operator-${label}.log`), nodeOptions: options.operatorNodeOptions, nodeFlags, imageEnv, cwd: work, metricsToken, ...(cgroupProcs === undefined ? {} : { cgroupProcs }) });
    const sampler = new OperatorSampler(operator);
    teardown.add(`the operator (pid ${operator.pid})`, async () => {
      sampler.stop();
      await operator.stop(5_000);
    });
    log(`operator pid ${operator.pid}, log ${path.join(work, `operator-${label}.log`)}`);
    await sampler.start();
    return { operator, sampler, webhookUrl: `https://127.0.0.1:${webhookPort}/validate` };
  };
  const records = (): RequestRecord[] => api.requests({ identity: OPERATOR_IDENTITY });
  const phases: Phase[] = [];
  const endPhase = async (name: string, fromMs: number, sampler: OperatorSampler): Promise<Phase> => {
    const toMs = Date.now();
    const phase: Phase = { name, fromMs, toMs, process: await sampler.phase(), api: countRequests(records(), fromMs, toMs), scans: scansBetween(readStubLog(stub.logPath), fromMs, toMs).length };
    phases.push(phase);
    log(`${name}: ${((toMs - fromMs) / 1000).toFixed(1)} s, ${phase.scans} scans, ${phase.api.reportWrites} report writes, ${phase.api.total} requests, peak RSS ${phase.process.peakRssMiB.toFixed(0)} MiB, heap ${phase.process.peakHeapUsedMiB.toFixed(0)} MiB, loop p99 ${phase.process.eventLoopP99Ms.toFixed(0)} ms, CPU ${phase.process.cpuSeconds.toFixed(1)} s`);
    return phase;
  };
  /** Waits until no report write for `quietMs` (the controller has caught up), or until `deadlineMs`. */
  const settle = async (quietMs: number, operator: OperatorHandle, deadlineMs = Infinity): Promise<void> => {
    await waitFor('report writes to stop', 120_000, () => (Date.now() - lastReportWriteMs(records()) >= quietMs || Date.now() >= deadlineMs ? true : undefined), operator);
  };

  // ---- phase 1: cold start with every pod present
  log(`phase 1: cold start (ideal ${idealColdStartS.toFixed(1)} s); scheduled rescan at ${rescanAt.toISOString()}`);
  const first = await start('1');
  let { operator, sampler } = first;
  const { webhookUrl } = first;
  let firstReadyMs: number | undefined;
  const coldDoneMs = await waitFor('every report Scanned', Math.max(600_000, idealColdStartS * 20_000), async () => {
    if (firstReadyMs === undefined && (await isReady(operator.metricsUrl))) firstReadyMs = Date.now();
    const t = tallyReports(api);
    return t.total >= expectedPairs.size && t.scanned + t.failed >= expectedPairs.size ? Date.now() : undefined;
  }, operator);
  const coldStartSeconds = (coldDoneMs - operator.startedAtMs) / 1000;
  log(`cold start done in ${coldStartSeconds.toFixed(1)} s`);
  await settle(3_000, operator, rescanAt.getTime() - 500);
  const cold = await endPhase('cold start', operatorStartMs, sampler);
  const reportsAfterCold = tallyReports(api);
  const reportBytes = storedReportBytes(api.objects.list(REPORTS));

  // ---- phase 2: the rescan after a DB update (its refresh due at the rescan time), results unchanged;
  // the schedule fires then too, and adds nothing
  const rescanValid = coldDoneMs < rescanAt.getTime();
  if (!rescanValid) log(`WARNING: the scheduled rescan fired before the cold start finished; pass a larger --rescan-after`);
  log(`phase 2: a new DB is published; waiting for its download and the scheduled rescan at ${rescanAt.toISOString()}`);
  const steadyFrom = Date.now();
  stub.setDbUpdatedAt(new Date().toISOString());
  const dbSwitchMs = await waitFor('the DB refresh', rescanAt.getTime() - Date.now() + 60_000, () => dbDownloadTimes(readStubLog(stub.logPath))[1], operator, 100);
  // The admission load starts with the rescan, in a worker thread (this thread serves the fake API server).
  let admissionLoad: ReturnType<typeof runAdmissionLoadInWorker> | undefined;
  if (options.admissionSeconds > 0) {
    log(`admission: ${options.admissionRate} AdmissionReviews per second for ${options.admissionSeconds} s to ${webhookUrl}, open-loop`);
    admissionLoad = runAdmissionLoadInWorker({
      url: webhookUrl,
      caPem: webhookCert.certPem,
      ratePerSecond: options.admissionRate,
      seconds: options.admissionSeconds,
      timeoutMs: ADMISSION_TIMEOUT_MS,
      reviews: { namespaces: plan.namespaces.map((ns) => ns.name), known: plan.images.map((image) => ({ image, digest: digestFor(image) })), unknown: unknownImages, outside: outsideImages },
      seed: options.seed + 2,
      run: process.pid,
    });
    const load = admissionLoad;
    teardown.add('the admission load', () => load.stop());
  }
  await waitFor('the rescan time', rescanAt.getTime() - Date.now() + 5_000, () => (Date.now() >= rescanAt.getTime() ? true : undefined), operator, 100);
  const rescanStartedAt = dbSwitchMs;
  const rescanDoneMs = await waitFor('every report rescanned', Math.max(600_000, idealColdStartS * 20_000), () => {
    const t = tallyReports(api, Math.floor(dbSwitchMs / 1000) * 1000);
    return t.scannedSince >= t.total ? Date.now() : undefined;
  }, operator);
  const rescanSeconds = (rescanDoneMs - rescanStartedAt) / 1000;
  let admission: AdmissionPhase | undefined;
  if (admissionLoad !== undefined) {
    const a = await admissionLoad.result;
    // The operator's own account: reviews it answered and the time its decisions took (its histogram),
    // beside the latency seen from outside (TLS, the event loop's queue, the decision).
    const m = await sampler.scrapeNow();
    const decisionSeconds = m === undefined ? undefined : histogramQuantile(m, 'imagescan_admission_review_duration_seconds', 0.99);
    const operatorReviews = [...(m ?? new Map<string, number>())].filter(([k]) => k.startsWith('imagescan_admission_reviews_total{')).reduce((sum, [, n]) => sum + n, 0);
    admission = { ...a, operatorDecisionP99Ms: decisionSeconds === undefined ? Number.NaN : decisionSeconds * 1000, operatorReviews };
    log(`admission: ${a.sent} sent (${a.achievedRatePerSecond.toFixed(0)}/s), ${a.answered} answered (${a.decisions.allow} allow, ${a.decisions.warn} warn, ${a.decisions.deny} deny), ${a.errors} errors, latency p50 ${a.latencyMs.p50.toFixed(2)} ms, p99 ${a.latencyMs.p99.toFixed(2)} ms, max ${a.latencyMs.max.toFixed(1)} ms, send lag p99 ${a.sendLagMs.p99.toFixed(1)} ms, ${a.connections} connections`);
    for (const sample of a.errorSamples) log(`admission error: ${sample}`);
    log(`admission: the operator counted ${operatorReviews} reviews, decision time p99 ${admission.operatorDecisionP99Ms.toFixed(2)} ms (its histogram)`);
  }
  await settle(3_000, operator);
  const rescanBytesWritten = rewrittenReportBytes(records(), steadyFrom, Date.now(), (ns, name) => api.objects.get(REPORTS, ns, name));
  // Still the rescan phase (already mostly waiting), so the churn phase's figures are the churn's alone.
  const rssBeforeChurn = await sampler.lowestRssOver(IDLE_RSS_WINDOW_MS);
  const inUseBeforeChurn = await memoryInUse(sampler);
  log(`RSS at rest before churn: ${rssBeforeChurn.toFixed(0)} MiB (lowest over ${IDLE_RSS_WINDOW_MS / 1000} s); V8 heap in use ${inUseBeforeChurn.heapMiB.toFixed(0)} MiB, external ${inUseBeforeChurn.externalMiB.toFixed(0)} MiB`);
  const steady = await endPhase('rescan', steadyFrom, sampler);
  // Scans of the images only the admission reviews named are the admission's, not the rescan's.
  const steadyRescanScans = scansBetween(readStubLog(stub.logPath), dbSwitchMs).filter((e) => !isAdmissionScan(e)).length;

  // ---- phase 3: churn
  log(`phase 3: churn, ${options.churnRate} creations + ${options.churnRate} deletions per second for ${options.churnSeconds} s, a fifth with new digests`);
  const random = seededRandom(options.seed + 1);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const churnFrom = Date.now();
  let created = 0;
  let deleted = 0;
  let newDigests = 0;
  const ticksPerSecond = 10;
  const perTick = options.churnRate / ticksPerSecond;
  let owed = 0;
  for (let tick = 0; tick < options.churnSeconds * ticksPerSecond; tick += 1) {
    const due = churnFrom + (tick * 1000) / ticksPerSecond;
    if (due > Date.now()) await sleep(due - Date.now());
    owed += perTick;
    for (; owed >= 1; owed -= 1) {
      if (created % 5 === 0) {
        const image = churnImages[newDigests] ?? churnImage(newDigests);
        const ns = pick(plan.namespaces).name;
        const seeded = api.seed.deployment({ namespace: ns, name: `churn-${String(created).padStart(5, '0')}`, containers: [image], replicas: 1, nodes: [pick(plan.nodes).name] });
        newDigests += 1;
        for (const pod of seeded.pods) cluster.livePods.push({ namespace: ns, name: pod.metadata?.name ?? '', images: [image] });
      } else {
        const i = Math.floor(random() * plan.workloads.length);
        const w = plan.workloads[i];
        const owner = cluster.podOwners[i];
        if (w === undefined || owner === undefined) continue;
        const name = `${w.name}-c${String(created).padStart(5, '0')}`;
        api.seed.pod({ namespace: w.namespace, name, containers: w.containers, ownerReferences: [owner], nodeName: pick(w.nodes), labels: { app: w.name } });
        cluster.livePods.push({ namespace: w.namespace, name, images: w.containers });
      }
      created += 1;
      const victim = Math.floor(random() * cluster.livePods.length);
      const pod = cluster.livePods[victim];
      const last = cluster.livePods.pop();
      if (pod !== undefined && last !== undefined && victim < cluster.livePods.length) cluster.livePods[victim] = last;
      if (pod !== undefined && api.objects.delete('pods', pod.namespace, pod.name)) deleted += 1;
    }
  }
  const churnEnd = Date.now();
  const achievedRate = created / ((churnEnd - churnFrom) / 1000);
  log(`churn: ${created} created, ${deleted} deleted, ${newDigests} new digests in ${((churnEnd - churnFrom) / 1000).toFixed(1)} s (${achievedRate.toFixed(0)}/s)`);
  let lastDrainScrape = 0;
  // Every image still running has its report; pods deleted before the operator saw them need none.
  const livePairs = new Set(cluster.livePods.flatMap((p) => p.images.map((image) => `${p.namespace}/${image}`)));
  const drainedMs = await waitFor('queue drained and every report Scanned', 600_000, async () => {
    const t = tallyReports(api);
    // Reports of images whose pods went before they were scanned wait for garbage collection as they are.
    if ([...livePairs].some((pair) => t.pairs.get(pair) !== true)) return undefined;
    if (runningScans(readStubLog(stub.logPath)) > 0) return undefined;
    // A scrape costs the operator real work (per-report gauges): not more often than every 3 s.
    if (Date.now() - lastDrainScrape < 3_000) return undefined;
    lastDrainScrape = Date.now();
    const m = await sampler.scrapeNow();
    // Running scans from the stub's log (imagescan_scans_in_progress is set before a finished scan leaves the queue).
    return (m?.get('imagescan_scan_queue_depth') ?? 0) === 0 && runningScans(readStubLog(stub.logPath)) === 0 ? Date.now() : undefined;
  }, operator, 500);
  const drainSeconds = (drainedMs - churnEnd) / 1000;
  await settle(5_000, operator);
  const churn = await endPhase('churn', churnFrom, sampler);
  const rssAfterChurn = await sampler.lowestRssOver(IDLE_RSS_WINDOW_MS);
  const inUseAfterChurn = await memoryInUse(sampler);
  log(`RSS at rest after churn: ${rssAfterChurn.toFixed(0)} MiB (lowest over ${IDLE_RSS_WINDOW_MS / 1000} s); V8 heap in use ${inUseAfterChurn.heapMiB.toFixed(0)} MiB, external ${inUseAfterChurn.externalMiB.toFixed(0)} MiB`);
  const churnScans = churn.scans;

  // ---- phase 4: restart after everything is scanned
  log('phase 4: restart');
  const stopCode = await operator.stop();
  sampler.stop();
  const highWaterFirst = Math.max(...phases.map((p) => p.process.peakRssMiB));
  const restartFrom = Date.now();
  ({ operator, sampler } = await start('2'));
  const readyMs = await waitFor('/readyz after restart', 300_000, async () => ((await isReady(operator.metricsUrl)) ? Date.now() : undefined), operator, 100);
  const timeToReadySeconds = (readyMs - operator.startedAtMs) / 1000;
  // Give the restarted controller time to reconcile every key, then wait for it to go quiet.
  await sleep(Math.max(15_000, readyMs - operator.startedAtMs));
  await settle(5_000, operator);
  const restart = await endPhase('restart', restartFrom, sampler);
  const highWater = Math.max(highWaterFirst, sampler.highWaterMiB(), restart.process.peakRssMiB);
  await operator.stop();
  sampler.stop();
  const beforeDayMs = Date.now();

  // ---- phase 5: a compressed day of DB updates and scheduled rescans, the cache volume kept
  let day: ReturnType<typeof dayFigures> | undefined;
  if (options.daySeconds > 0) {
    log(`phase 5: a day in ${options.daySeconds} s: DB updates every ${options.daySeconds / 4} s, the schedule every ${options.daySeconds / 2} s`);
    stub.setDbUpdatedAt('now');
    ({ operator, sampler } = await start('3', compressedDayArgs(options.daySeconds)));
    const dayFrom = Date.now();
    await sleep(options.daySeconds * 1000);
    const dayTo = Date.now();
    // No waiting for quiet: the next DB version is never far off.
    const dayPhase = await endPhase('day', dayFrom, sampler);
    await operator.stop();
    sampler.stop();
    const runningDigests = new Set(cluster.livePods.flatMap((p) => p.images)).size;
    day = dayFigures(readStubLog(stub.logPath), dayFrom, dayTo, runningDigests, options.daySeconds);
    log(`day: ${day.registryPulls} registry pulls, ${day.dbVersions} DB versions, ${dayPhase.scans} rescans of ${runningDigests} running digests`);
  }

  const stubEvents = readStubLog(stub.logPath);
  const totals = countRequests(records(), 0, Infinity);
  // The operator's requests, one JSON line each, for reading beside the operator log (--keep).
  if (options.keep) writeFileSync(path.join(work, 'requests.jsonl'), records().map((r) => `${JSON.stringify(r)}\n`).join(''));
  const finalReports = tallyReports(api);
  await stopApi();

  // ---- figures
  const reports = reportsAfterCold.total;
  const invocationsPerDigest = cold.scans / options.digests;
  const coldStartRatio = coldStartSeconds / idealColdStartS;
  const writesPerNewReport = cold.api.reportCreates === 0 ? 0 : cold.api.reportWrites / cold.api.reportCreates;
  const writesPerUnchangedReport = steady.api.reportWrites / Math.max(1, reports);
  const peakRssMiB = highWater;
  const eventLoopP99Ms = Math.max(...phases.map((p) => p.process.eventLoopP99Ms));
  const rssGrowthAfterChurn = (rssAfterChurn - rssBeforeChurn) / rssBeforeChurn;
  const dbDownloadCount = dbDownloads(stubEvents.filter((e) => e.t < beforeDayMs));
  // One at start, then one per refresh interval (a restart reuses a DB younger than that).
  const firstDownloadMs = dbDownloadTimes(stubEvents)[0] ?? operatorStartMs;
  const dbRefreshesDue = 1 + Math.floor((beforeDayMs - firstDownloadMs) / (rescanAfterS * 1000));

  const figures: Figure[] = [
    { phase: 'cold start', name: 'Trivy invocations ÷ distinct digests', value: invocationsPerDigest, ideal: 1, unit: '', target: '= 1.00', met: Math.abs(invocationsPerDigest - 1) < 0.005 },
    { phase: 'all', name: 'vulnerability DB downloads (one per refresh)', value: dbDownloadCount, ideal: dbRefreshesDue, unit: '', target: '<= refreshes due', met: dbDownloadCount >= 2 && dbDownloadCount <= dbRefreshesDue },
    { phase: 'cold start', name: 'time to all reports Scanned', value: coldStartSeconds, ideal: idealColdStartS, unit: 's', target: 'ratio <= 1.15', met: coldStartRatio <= 1.15 },
    { phase: 'cold start', name: 'API writes per new report', value: writesPerNewReport, ideal: 2, unit: '' },
    { phase: 'rescan', name: 'Trivy invocations ÷ running digests', value: steadyRescanScans / options.digests, ideal: 1, unit: '' },
    { phase: 'rescan', name: 'time to rescan every digest', value: rescanSeconds, ideal: idealColdStartS, unit: 's' },
    { phase: 'rescan', name: 'API writes per unchanged report', value: writesPerUnchangedReport, ideal: 1, unit: '', target: '<= 1', met: writesPerUnchangedReport <= 1 },
    ...(admission === undefined ? [] : admissionFigures(options, admission)),
    { phase: 'churn', name: 'Trivy invocations ÷ new digests', value: churnScans / Math.max(1, newDigests), ideal: 1, unit: '' },
    { phase: 'churn', name: 'seconds to drain the queue after churn', value: drainSeconds, ideal: undefined, unit: 's' },
    { phase: 'churn', name: 'RSS at rest after churn vs before', value: rssAfterChurn, ideal: rssBeforeChurn, unit: 'MiB', target: 'within 10%', met: Math.abs(rssGrowthAfterChurn) <= 0.1 },
    { phase: 'restart', name: 'Trivy invocations after restart', value: restart.scans, ideal: 0, unit: '', target: '= 0', met: restart.scans === 0 },
    { phase: 'restart', name: 'report writes after restart', value: restart.api.reportWrites, ideal: 0, unit: '' },
    { phase: 'restart', name: 'time to ready', value: timeToReadySeconds, ideal: undefined, unit: 's' },
    { phase: 'all', name: 'operator peak RSS', value: peakRssMiB, ideal: undefined, unit: 'MiB', target: '< 200 MiB', met: peakRssMiB < 200 },
    { phase: 'all', name: 'event-loop delay p99 (worst phase)', value: eventLoopP99Ms, ideal: undefined, unit: 'ms', target: '< 100 ms', met: eventLoopP99Ms < 100 },
    { phase: 'all', name: 'API requests', value: totals.total, ideal: undefined, unit: '' },
    ...reportBytesFigures(options, reportBytes, rescanBytesWritten),
    ...(day === undefined ? [] : dayTable(day)),
  ];
  for (const p of phases) {
    figures.push(
      { phase: p.name, name: 'peak RSS / peak heap used', value: p.process.peakRssMiB, ideal: undefined, unit: `MiB / ${p.process.peakHeapUsedMiB.toFixed(0)} MiB` },
      { phase: p.name, name: 'event-loop delay p99', value: p.process.eventLoopP99Ms, ideal: undefined, unit: 'ms' },
      { phase: p.name, name: 'CPU seconds / wall seconds', value: p.process.cpuSeconds, ideal: undefined, unit: `s / ${((p.toMs - p.fromMs) / 1000).toFixed(0)} s` },
      { phase: p.name, name: 'API requests (report writes)', value: p.api.total, ideal: undefined, unit: `(${p.api.reportWrites})` },
    );
  }

  const machine = { nproc: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()}/${os.arch()}` };
  const result = {
    pods: options.pods,
    namespaces: options.namespaces,
    digests: options.digests,
    teams: options.teams,
    concurrency: options.concurrency,
    scanMs: options.scanMs,
    stub: options.stub,
    reports,
    invocationsPerDigest,
    dbDownloads: dbDownloadCount,
    dbRefreshesDue,
    registryPullsPerDigestPerDay: day?.registryPullsPerDigestPerDay,
    rescanSecondsPerDigest: day?.rescanSecondsPerDigest,
    day,
    coldStartSeconds,
    idealColdStartSeconds: idealColdStartS,
    coldStartRatio,
    writesPerNewReport,
    writesPerUnchangedReport,
    peakRssMiB,
    eventLoopP99Ms,
    rescansAfterRestart: restart.scans,
    rssGrowthAfterChurn,
    rssBeforeChurnMiB: rssBeforeChurn,
    rssAfterChurnMiB: rssAfterChurn,
    heapUsedBeforeChurnMiB: inUseBeforeChurn.heapMiB,
    heapUsedAfterChurnMiB: inUseAfterChurn.heapMiB,
    externalBeforeChurnMiB: inUseBeforeChurn.externalMiB,
    externalAfterChurnMiB: inUseAfterChurn.externalMiB,
    timeToReadySeconds,
    reportDetails: options.reportDetails,
    reportBytes,
    rescanBytesWritten,
    rescanSeconds,
    rescanValid,
    admissionP99Ms: admission?.latencyMs.p99,
    admissionErrors: admission?.errors,
    admission: admission === undefined ? undefined : { ratePerSecond: options.admissionRate, seconds: options.admissionSeconds, timeoutMs: ADMISSION_TIMEOUT_MS, ...admission, scans: scansBetween(stubEvents, 0).filter(isAdmissionScan).length },
    churn: { seconds: options.churnSeconds, created, deleted, newDigests, achievedRatePerSecond: achievedRate, drainSeconds, scans: churnScans, maxQueueDepth: churn.process.maxQueueDepth },
    failedScans: failedScans(stubEvents),
    reportsAtEnd: { total: finalReports.total, scanned: finalReports.scanned, failed: finalReports.failed },
    totalApiRequests: totals.total,
    apiTotals: totals,
    firstStopExitCode: stopCode,
    phases: phases.map((p) => ({ name: p.name, seconds: (p.toMs - p.fromMs) / 1000, scans: p.scans, ...p.process, api: p.api })),
    machine,
    operatorNodeFlags: nodeFlags,
    operatorImageEnv: imageEnv,
    operatorMemoryLimit: memoryLimitApplied,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
  };

  process.stdout.write(`\nimagescan-operator benchmark — ${options.pods} pods, ${options.namespaces} namespaces, ${options.digests} digests (${reports} reports), concurrency ${options.concurrency}, scan ${options.scanMs} ms, ${options.stub} stub\n`);
  process.stdout.write(`machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}; operator node flags: ${nodeFlags.join(' ') || '(none)'}; environment from the image: ${imageEnvText}; operator memory limit: ${memoryLimitApplied}\n\n`);
  process.stdout.write(`${formatTable(figures)}\n`);
  if (!rescanValid) process.stdout.write('\nWARNING: the rescan fired during the cold start; its figures are not meaningful (use --rescan-after).\n');
  if (result.failedScans > 0) process.stdout.write(`\nWARNING: ${result.failedScans} stub scans failed; see ${stub.logPath}\n`);
  if (options.json !== undefined) {
    writeFileSync(options.json, `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(options.json.replace(/\.json$/, '') + '.md', `${formatMarkdown(figures)}\n`);
    log(`wrote ${options.json}`);
  }
  if (options.keep) log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
  return figures.every((f) => f.met !== false) ? 0 : 1;
}

/**
 * What the reports cost etcd (issue 20): the stored reports after the cold start, and what one no-change
 * rescan rewrote. The size targets hold for the default --report-details=fixes; the total's for the
 * 50,000-pod cluster (5% of etcd's default 2 GiB quota).
 */
function reportBytesFigures(options: BenchOptions, stored: ReturnType<typeof storedReportBytes>, rewritten: ReturnType<typeof rewrittenReportBytes>): Figure[] {
  const fixes = options.reportDetails === 'fixes';
  const mb = (n: number) => n / 1e6;
  return [
    {
      phase: 'cold start',
      name: `stored reports (${options.reportDetails}), total`,
      value: mb(stored.totalBytes),
      ideal: undefined,
      unit: 'MB',
      ...(fixes && options.pods >= 50_000 ? { target: '<= 100 MB', met: stored.totalBytes <= 100e6 } : {}),
    },
    { phase: 'cold start', name: 'stored report, mean', value: stored.meanBytes / 1024, ideal: undefined, unit: 'KiB' },
    { phase: 'cold start', name: 'stored report, p99', value: stored.p99Bytes / 1024, ideal: undefined, unit: 'KiB', ...(fixes ? { target: '<= 16 KiB', met: stored.p99Bytes <= 16 * 1024 } : {}) },
    { phase: 'cold start', name: 'stored report, largest', value: stored.maxBytes / 1024, ideal: undefined, unit: 'KiB', ...(fixes ? { target: '<= 64 KiB', met: stored.maxBytes <= 64 * 1024 } : {}) },
    { phase: 'rescan', name: 'bytes of objects rewritten', value: mb(rewritten.objectBytes), ideal: undefined, unit: `MB (${rewritten.writes} writes, ${mb(rewritten.requestBytes).toFixed(1)} MB sent)` },
  ];
}

/**
 * The admission phase's figures (issue 18): latency from the request's start to its answer, and every
 * answer the API server could not have used (non-2xx, not an AdmissionReview, wrong uid, no answer
 * within the webhook's timeout, connection refused or reset) as an error.
 */
interface AdmissionPhase extends AdmissionLoadResult {
  /** p99 of the operator's imagescan_admission_review_duration_seconds (the decision alone), in ms. */
  operatorDecisionP99Ms: number;
  /** Sum of imagescan_admission_reviews_total. */
  operatorReviews: number;
}

function admissionFigures(options: BenchOptions, a: AdmissionPhase): Figure[] {
  const expected = Math.round(options.admissionRate * options.admissionSeconds);
  return [
    { phase: 'rescan', name: 'admission review latency p99', value: a.latencyMs.p99, ideal: undefined, unit: 'ms', target: '< 5 ms', met: a.latencyMs.p99 < 5 },
    { phase: 'rescan', name: 'admission errors', value: a.errors, ideal: 0, unit: '', target: '= 0', met: a.errors === 0 && a.sent === expected },
    { phase: 'rescan', name: 'admission review latency p50 / max', value: a.latencyMs.p50, ideal: undefined, unit: `ms / ${a.latencyMs.max.toFixed(1)} ms` },
    { phase: 'rescan', name: 'admission decision time p99 (operator histogram)', value: a.operatorDecisionP99Ms, ideal: undefined, unit: 'ms' },
    { phase: 'rescan', name: 'admission reviews answered (allow/warn/deny)', value: a.answered, ideal: undefined, unit: `of ${expected} (${a.decisions.allow}/${a.decisions.warn}/${a.decisions.deny})` },
    { phase: 'rescan', name: 'admission reviews sent per second (open loop)', value: a.achievedRatePerSecond, ideal: options.admissionRate, unit: '/s' },
    { phase: 'rescan', name: 'admission send lag p99 (the sender’s own delay)', value: a.sendLagMs.p99, ideal: undefined, unit: 'ms' },
  ];
}

/** Stops what the run started (operators, the admission load, the fake API server) on every way out. */
const teardown = new Teardown((what, err) => log(`stopping ${what} failed: ${err instanceof Error ? err.message : String(err)}`));
const exitAfterTeardown = (code: number): void => {
  void teardown.run().finally(() => process.exit(code));
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the operator and the fake API server`);
    exitAfterTeardown(130);
  });
}
process.once('uncaughtException', (err) => {
  console.error(`bench: ${err.stack ?? err.message}`);
  exitAfterTeardown(1);
});

let parsed;
try {
  parsed = parseBenchOptions(process.argv.slice(2));
} catch (err) {
  if (err instanceof BenchOptionsError) {
    console.error(`bench: ${err.message}`);
    process.exit(2);
  }
  throw err;
}
if (parsed === 'help') {
  console.log(USAGE);
  process.exit(0);
}
main(parsed).then(
  (code) => exitAfterTeardown(code),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    exitAfterTeardown(1);
  },
);
