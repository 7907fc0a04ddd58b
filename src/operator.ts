// Builds every part of the operator from its config without starting anything, so tests can build
// the whole operator without ports, signals or child processes; start() and stop() run it.
import path from 'node:path';
import cron from 'node-cron';
import type { ScheduledTask } from 'node-cron';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { OperatorConfig } from './config.js';
import type { NamespaceEntry, NodeEntry, PodEntry, ReportEntry } from './kube/cluster-objects.js';
import { startAdmissionWebhook } from './admission/admission-webhook.js';
import type { AdmissionWebhook } from './admission/admission-webhook.js';
import type { WebhookServer } from './admission/webhook-server.js';
import { KnownImages } from './admission/known-images.js';
import { ReferenceScans } from './admission/reference-scans.js';
import type { ReferenceTarget } from './admission/reference-scans.js';
import { EventRecorder } from './kube/event-recorder.js';
import type { ResilientInformer } from './kube/informer.js';
import { createKubeClients, loadKubeConfig } from './kube/kube-client.js';
import type { KubeClients } from './kube/kube-client.js';
import { LeaderElector } from './kube/leader-election.js';
import { LeadershipFence } from './kube/write-fence.js';
import { OwnerResolver } from './kube/owner-resolver.js';
import { PolicyEventRecorder } from './kube/policy-event-recorder.js';
import { KubePolicyWriter } from './kube/policy-writer.js';
import { PodImageIndex } from './kube/pod-image-index.js';
import { PullSecretReader } from './kube/pull-secrets.js';
import { ReportIndex } from './kube/report-index.js';
import { KubeReportStore } from './kube/report-store.js';
import { createNamespaceInformer, createNodeInformer, createPodInformer, createPolicyInformer, createReportInformer } from './kube/watches.js';
import type { WatchSettings } from './kube/watches.js';
import { KubeAccessReviewer } from './kube/access-reviews.js';
import { startMetricsServer } from './metrics/http-server.js';
import type { MetricsServer, Readiness } from './metrics/http-server.js';
import { MetricsAccessControl } from './metrics/metrics-auth.js';
import { readCertificateDir, selfSignedCertificate, watchCertificateDir } from './tls/serving-certificate.js';
import type { ServingCertificate } from './tls/serving-certificate.js';
import { OperatorMetrics } from './metrics/operator-metrics.js';
import { PolicyAuditController } from './policy/policy-audit-controller.js';
import { PolicyStore } from './policy/policy-store.js';
import { ReportController } from './reports/report-controller.js';
import { ReportReconciler } from './reports/report-reconciler.js';
import type { ScanRequester } from './reports/report-reconciler.js';
import { ScanResults } from './reports/scan-results.js';
import { isDueForScheduledRescan } from './reports/scheduled-rescan.js';
import { SbomCache } from './scanner/sbom-cache.js';
import { fetchTrustingCa } from './scanner/server-fetch.js';
import { ScanQueue } from './scanner/scan-queue.js';
import type { ScanOutcome } from './scanner/scan-queue.js';
import { residentBytesOf } from './scanner/child-memory.js';
import { TrivyDatabase } from './scanner/trivy-database.js';
import { TrivyRunner } from './scanner/trivy-runner.js';
import type { ScanTarget, TrivyVersionInfo } from './scanner/trivy-runner.js';

export const OPERATOR_VERSION = '0.1.0';

/** What tests (or main) may inject instead of the defaults. */
export interface OperatorDeps {
  logger: Logger;
  /** A ready KubeConfig instead of loading config.kubeconfig. */
  kubeConfig?: KubeConfig;
  now?: () => Date;
  random?: () => number;
  /** Informer timings (tests shorten them). */
  watch?: Omit<WatchSettings, 'kubeConfig' | 'logger'>;
  /** Reconcile workers (default 16: a reconcile mostly waits on the API server). */
  workers?: number;
  /**
   * Extra environment for Trivy children (proxies, CA bundles, or the stub Trivy's TRIVY_STUB_*
   * settings in tests), and their PATH. The runner otherwise gives children a minimal environment.
   */
  trivyEnv?: Record<string, string>;
  trivyPathEnv?: string;
  /** Interval of the memory housekeeping every replica runs (default 5 minutes). */
  housekeepingMs?: number;
  /** Leader election timings (tests shorten them). */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface Operator {
  readonly config: OperatorConfig;
  readonly metrics: OperatorMetrics;
  readonly controller: ReportController;
  /** The ImageScanPolicies in force (compiled), kept on every replica. */
  readonly policies: PolicyStore;
  /** The metrics server's bound address once started. */
  metricsServer(): MetricsServer | undefined;
  /** The admission webhook's server once it has a certificate. */
  webhookServer(): WebhookServer | undefined;
  readiness(): Readiness;
  /** Starts watching, serving metrics, contending for leadership; resolves once caches are synced. */
  start(): Promise<void>;
  /** Stops everything: leadership (released), workers, scans (children killed), watches, HTTP. */
  stop(): Promise<void>;
  /** Rescans every running digest now (what the schedule does). */
  rescanAll(reason: string): void;
}

const REQUEST_TIMEOUT_MS = 30_000;
/** The folder of the digests' SBOMs inside --trivy-cache-dir (docs/trivy-sbom-rescans.md). */
export const SBOM_FOLDER = 'imagescan-sbom';
/**
 * The interval between two fires of the rescan schedule; a digest scanned more recently than this is
 * fresh (a restart does not rescan it).
 */
export function rescanIntervalMs(expression: string): number {
  return Math.max(60_000, schedulePeriodMs(expression));
}

/** The shorter of the schedule's next two gaps, so an irregular schedule (every 5 hours: a short last gap) errs short. */
export function schedulePeriodMs(expression: string): number {
  const task = cron.createTask(expression, () => undefined, { timezone: 'UTC' });
  try {
    const runs = task.getNextRuns(3);
    const [a, b, c] = runs;
    if (a === undefined || b === undefined) return 12 * 3_600_000;
    const gaps = [b.getTime() - a.getTime(), c === undefined ? Infinity : c.getTime() - b.getTime()];
    return Math.min(...gaps);
  } finally {
    task.destroy();
  }
}

/** The kinds the admission component sends; anything else is counted as `other`, so labels stay few. */
const ADMISSION_KINDS = new Set(['Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob']);

/** Builds the operator; nothing runs until start(). Throws when the kubeconfig cannot be loaded. */
export function buildOperator(config: OperatorConfig, deps: OperatorDeps): Operator {
  const log = deps.logger;
  const now = deps.now ?? (() => new Date());
  const random = deps.random ?? Math.random;
  const kubeConfig = deps.kubeConfig ?? loadKubeConfig(config.kubeconfig);
  // With leader election, reports and events are written only while this replica leads (see write-fence.ts).
  const fence = config.leaderElect ? new LeadershipFence() : undefined;
  const clients: KubeClients = createKubeClients(kubeConfig, {
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    userAgent: `imagescan-operator/${OPERATOR_VERSION} (${config.identity})`,
    ...(fence === undefined ? {} : { writeFence: fence }),
  });
  const watchSettings: WatchSettings = { kubeConfig, logger: log.child({ component: 'informer' }), ...deps.watch };

  const excluded = new Set(config.excludeNamespaces);
  const included = new Set(config.namespaces);
  const isWatchedNamespace = (ns: string): boolean => !excluded.has(ns) && (included.size === 0 || included.has(ns));

  const podInformers: ResilientInformer<PodEntry>[] =
    config.namespaces.length === 0 ? [createPodInformer(clients.getJson, watchSettings)] : config.namespaces.map((ns) => createPodInformer(clients.getJson, watchSettings, ns));
  const nodeInformer: ResilientInformer<NodeEntry> = createNodeInformer(clients.getJson, watchSettings);
  const namespaceInformer: ResilientInformer<NamespaceEntry> = createNamespaceInformer(clients.getJson, watchSettings);
  const reportInformer: ResilientInformer<ReportEntry> = createReportInformer(clients.getJson, watchSettings);
  const policyInformer = createPolicyInformer(clients.getJson, watchSettings);
  // The ImageScanPolicies in force, compiled: read by the audit and by admission on every replica.
  const policies = new PolicyStore(policyInformer);
  const informers: Pick<ResilientInformer<PodEntry>, 'start' | 'stop' | 'whenSynced' | 'health'>[] = [...podInformers, nodeInformer, namespaceInformer, reportInformer, policyInformer];

  const podLog = log.child({ component: 'pods' });
  const index = new PodImageIndex({
    isWatchedNamespace,
    now,
    // A typo'd or hostile image string must be visible to whoever reads the log, but never crash or retry.
    onInvalidImages: (entry, invalid) => {
      for (const item of invalid) {
        podLog.warn(
          { namespace: entry.namespace, pod: entry.name, container: item.container, image: item.image, imageID: item.imageID, reason: item.error.message },
          'container image cannot be parsed, not scanned',
        );
      }
    },
  });
  const reportIndex = new ReportIndex(reportInformer, () => now().getTime());
  const scans = new ScanResults();
  // The runner is built below; the gauge reads it only at scrape time.
  const trivyPids = (): number[] => {
    const spawner = runner.spawnerPid();
    return spawner === undefined ? runner.childPids() : [...runner.childPids(), spawner];
  };
  const metrics = new OperatorMetrics({ reportSource: reportIndex, trivyMemory: () => residentBytesOf(trivyPids()) });
  metrics.setBuildInfo(OPERATOR_VERSION);
  metrics.setLeader(false);

  const sbomCache = new SbomCache({ dir: path.join(config.trivyCacheDir, SBOM_FOLDER), logger: log.child({ component: 'sbom' }) });
  const runner: TrivyRunner = new TrivyRunner({
    trivyPath: config.trivyPath,
    cacheDir: config.trivyCacheDir,
    ...(config.registryCredentialsDir === undefined ? {} : { credentialsDir: config.registryCredentialsDir }),
    ...(config.trivyServer === undefined ? {} : { server: config.trivyServer }),
    ...(config.trivyServerToken === undefined ? {} : { serverToken: config.trivyServerToken }),
    ...(config.trivyServerCa === undefined ? {} : { serverCa: config.trivyServerCa }),
    severities: [...config.severities],
    ignoreUnfixed: config.ignoreUnfixed,
    timeoutMs: config.scanTimeoutMs,
    ...(config.trivyMemoryLimitBytes === undefined ? {} : { memoryLimitBytes: config.trivyMemoryLimitBytes }),
    ...(config.trivyDbRepository === undefined ? {} : { dbRepository: config.trivyDbRepository }),
    ...(config.trivyJavaDbRepository === undefined ? {} : { javaDbRepository: config.trivyJavaDbRepository }),
    logger: log.child({ component: 'trivy' }),
    extraEnv: { ...config.trivyEnv, ...deps.trivyEnv },
    ...(deps.trivyPathEnv === undefined ? {} : { pathEnv: deps.trivyPathEnv }),
    // Stamps the scanner version and DB time on each result (the database learns them at download).
    scannerInfo: (): TrivyVersionInfo => database.versionInfo(),
    sbomCache,
    scanSlots: config.scanConcurrency,
  });
  const database: TrivyDatabase = new TrivyDatabase({
    runner,
    ...(config.trivyServer === undefined ? {} : { server: config.trivyServer }),
    ...(config.trivyServerCa === undefined ? {} : { fetch: fetchTrustingCa(config.trivyServerCa) }),
    refreshIntervalMs: config.trivyDbRefreshMs,
    activeScans: () => scanQueue?.pastGate() ?? 0,
    logger: log.child({ component: 'trivy-db' }),
  });

  // The scan queue lives for one leadership term (stop() kills its children); reconcile reaches it
  // through this delegate so a new term gets a fresh queue.
  let scanQueue: ScanQueue | undefined;
  const scanRequester: ScanRequester = {
    request: (target: ScanTarget, priority, opts) => {
      const accepted = scanQueue?.request(target, priority, opts) ?? false;
      if (scanQueue !== undefined) metrics.setQueue(scanQueue.depth(), scanQueue.inProgress());
      return accepted;
    },
    isPending: (digest: string) => scanQueue?.isPending(digest) ?? false,
  };

  const pullSecrets = new PullSecretReader({ core: clients.core });
  const events = new EventRecorder({ core: clients.core, logger: log.child({ component: 'events' }), instance: config.identity });
  const owners = new OwnerResolver({ getJson: clients.getJson });
  const reconciler = new ReportReconciler({
    pods: index,
    namespaces: namespaceInformer,
    nodes: nodeInformer,
    reports: reportIndex,
    scans,
    scanQueue: scanRequester,
    store: new KubeReportStore(clients.custom),
    owners,
    pullSecrets,
    events,
    teamLabel: config.teamLabel,
    teamOverrides: config.teamOverrides,
    gracePeriodMs: config.reportGracePeriodMs,
    rescanIntervalMs: rescanIntervalMs(config.rescanSchedule),
    retry: { baseMs: config.scanRetryBackoffMs, maxAttempts: config.maxScanAttempts },
    // Called after a failed scan: the schedule's next pass (the task exists by then).
    nextScheduledRescan: (after) => rescanTask.getNextRuns(1)[0] ?? new Date(after.getTime() + rescanIntervalMs(config.rescanSchedule)),
    maxReportVulnerabilities: config.maxReportVulnerabilities,
    reportDetails: config.reportDetails,
    now,
    logger: log.child({ component: 'reconciler' }),
  });
  const controller = new ReportController({
    reconciler,
    index,
    scans,
    pods: podInformers,
    namespaces: namespaceInformer,
    reports: reportInformer,
    // 4 workers wrote ~280 report writes/s in the 10,000-pod bench, so the ~10,000 writes of a cold
    // start took longer than its 1,000 scans; each worker spends most of its time awaiting a response.
    workers: deps.workers ?? 16,
    logger: log.child({ component: 'controller' }),
    rescanJitterMs: config.rescanJitterMs,
    now,
    random,
  });

  // The deploy gate's memory: built before the informers start so it sees their first lists.
  const knownImages = new KnownImages({ pods: podInformers, reports: reportInformer });
  const referenceScans = new ReferenceScans({
    scan: async (target: ReferenceTarget, signal) => {
      await database.whenReady();
      // The asking pod spec's pull secrets, read now (off the request path), as the kubelet would use them.
      const identity = target.pullIdentity;
      const registry = target.repository.split('/')[0] ?? '';
      const credentials =
        identity === undefined
          ? undefined
          : (await pullSecrets.lookup({ metadata: { namespace: identity.namespace }, spec: { containers: [], imagePullSecrets: identity.imagePullSecrets.map((name) => ({ name })), serviceAccountName: identity.serviceAccountName } }, registry)).credentials;
      const withCredentials = credentials === undefined ? {} : { credentials };
      if (target.digest !== undefined) return { digest: target.digest, result: await runner.scan({ repository: target.repository, digest: target.digest, ...withCredentials }, signal) };
      return runner.scanReference({ repository: target.repository, tag: target.tag, ...withCredentials }, signal);
    },
    // A digest running in a watched namespace is the leader's to scan (its report then answers); one
    // that runs only where the operator does not look is scanned here.
    isKnown: (target) => {
      const digest = target.digest ?? knownImages.digestOfTag(target.repository, target.tag);
      return digest !== undefined && (index.isRunning(digest) || knownImages.scanOfDigest(digest, '') !== undefined);
    },
    // The digest's result is then known to the reconciler too: when the image starts running here, its
    // report is written from this scan instead of a second Trivy run.
    onScanned: ({ target, digest, result, finishedAt }) =>
      controller.handleScanOutcome({ digest, target: { repository: target.repository, digest }, finishedAt, attempts: 1, durationMs: 0, ok: true, result }),
    logger: log.child({ component: 'reference-scans' }),
  });
  let webhook: AdmissionWebhook | undefined;

  // status.policy of reports and the status of policies, written by the leader (its own queue and keys).
  const policyAudit = new PolicyAuditController({
    policies,
    policyInformer,
    reports: reportInformer,
    namespaces: namespaceInformer,
    isWatchedNamespace,
    podsRunning: (key) => index.podsRunning(key),
    resolveOwner: (pod) => owners.resolve(pod),
    writer: new KubePolicyWriter(clients.custom),
    events: new PolicyEventRecorder({ core: clients.core, logger: log.child({ component: 'policy-events' }), instance: config.identity }),
    now,
    logger: log.child({ component: 'policy-audit' }),
  });

  const newScanQueue = (): ScanQueue =>
    new ScanQueue({
      scan: (target, signal, onChildExit, onChildStart) => runner.scan(target, signal, onChildExit, onChildStart),
      concurrency: config.scanConcurrency,
      // The runner's helper holds these until one of its scanSlots is free: a slot's next child then
      // starts as the last one exits, not after a turn of this busy event loop.
      startAhead: config.scanConcurrency,
      // A timeout would only repeat for another full timeout; the reconciler's growing backoff retries it.
      retriesAtOnce: (failure) => failure.reason !== 'timeout',
      gate: () => database.whenReady(),
      onOutcome: (outcome: ScanOutcome) => {
        // One count per scan request, after its retries (monitoring/README.md): a timeout retried
        // into a success is a success, so ImageScanFailing measures scans that end failed.
        metrics.observeScanOutcome(outcome);
        controller.handleScanOutcome(outcome);
      },
      onEvent: () => {
        if (scanQueue === undefined) return;
        metrics.setQueue(scanQueue.depth(), scanQueue.inProgress());
      },
      // First scans' reports wait for their conversion to an SBOM until no scan is queued or running.
      onIdle: () => runner.convertHeldReports(),
      logger: log.child({ component: 'scan-queue' }),
    });

  const cronLog = log.child({ component: 'cron' });
  // Digests the last DB update already rescanned are skipped: one rescan per DB version, whichever comes first.
  const periodMs = schedulePeriodMs(config.rescanSchedule);
  const scheduledRescan = () => controller.rescanAll('schedule', (known) => isDueForScheduledRescan(known, { dbUpdatedAt: database.updatedAt(), nowMs: now().getTime(), periodMs }));
  const rescanTask: ScheduledTask = cron.createTask(config.rescanSchedule, scheduledRescan, {
    timezone: 'UTC',
    noOverlap: true,
    name: 'rescan',
    // node-cron prints coloured lines to the console by default; keep everything in our JSON log.
    logger: {
      info: (message: string) => cronLog.debug(message),
      warn: (message: string) => cronLog.warn(message),
      error: (message: string | Error, err?: Error) => cronLog.error({ err: err ?? message }, 'cron task failed'),
      debug: (message: string | Error) => cronLog.debug(String(message)),
    },
  });
  database.onUpdated((updatedAt) => {
    metrics.setDbUpdatedAt(updatedAt);
    const trivyVersion = database.versionInfo().version;
    if (trivyVersion !== undefined) metrics.setBuildInfo(OPERATOR_VERSION, trivyVersion);
    if (leading) controller.rescanOutdated(updatedAt);
  });

  const elector = config.leaderElect
    ? new LeaderElector({
        client: clients.coordination,
        namespace: config.leaderElectionNamespace,
        name: config.leaderElectionId,
        identity: config.identity,
        ...(fence === undefined ? {} : { fence }),
        ...(deps.leaseDurationMs === undefined ? {} : { leaseDurationMs: deps.leaseDurationMs }),
        ...(deps.renewDeadlineMs === undefined ? {} : { renewDeadlineMs: deps.renewDeadlineMs }),
        ...(deps.retryPeriodMs === undefined ? {} : { retryPeriodMs: deps.retryPeriodMs }),
        onStartedLeading: () => startLeading(),
        onStoppedLeading: () => stopLeading(),
        logger: log.child({ component: 'leader-election' }),
      })
    : undefined;

  const metricsAccess = config.metricsSecure ? new MetricsAccessControl({ reviewer: new KubeAccessReviewer(clients) }) : undefined;

  let leading = false;
  let stopping = false;
  let housekeepingTimer: NodeJS.Timeout | undefined;

  /**
   * Bounds what the informers feed on every replica: only the leader's reconciles forget keys, reports
   * and secrets one by one, so a standby (or a former leader) would otherwise keep all it ever saw.
   */
  function housekeep(): void {
    const forgotten = {
      digests: controller.pruneKnowledge(),
      goneKeys: index.forgetGoneBefore(new Date(now().getTime() - config.reportGracePeriodMs)),
      reportWrites: reportIndex.sweep(),
      pullSecrets: pullSecrets.forgetExpired(),
    };
    void pruneSboms();
    log.debug({ ...forgotten, leading }, 'housekeeping done');
  }
  let server: MetricsServer | undefined;
  let stopCertificateWatch: (() => void) | undefined;
  let electorLoop: Promise<void> | undefined;

  /** SBOMs follow the digests that run or still have a report, on every replica (each has its own cache volume). */
  function pruneSboms(): Promise<unknown> {
    const reported = new Set(reportIndex.list().map((report) => report.spec.digest));
    return sbomCache.prune((digest) => index.isRunning(digest) || reported.has(digest));
  }

  function startLeading(): void {
    if (leading || stopping) return;
    leading = true;
    metrics.setLeader(true);
    scanQueue = newScanQueue();
    controller.start();
    policyAudit.start();
    rescanTask.start();
  }

  async function stopLeading(): Promise<void> {
    if (!leading) return;
    leading = false;
    metrics.setLeader(false);
    rescanTask.stop();
    await Promise.all([controller.stop(), policyAudit.stop()]);
    const queue = scanQueue;
    scanQueue = undefined;
    await queue?.stop();
    // A standby scans nothing: what it held is converted now.
    if (!stopping) runner.convertHeldReports();
  }

  async function contend(): Promise<void> {
    // run() resolves when leadership is lost; stay a standby and contend again unless stopping.
    while (elector !== undefined && !stopping) {
      await elector.run();
    }
  }

  function readiness(): Readiness {
    const reasons: string[] = [];
    for (const informer of informers) {
      const health = informer.health();
      if (!health.synced) reasons.push(`${health.name} not synced`);
      else if (!health.healthy) reasons.push(`${health.name} watch down for ${Math.round(health.downForMs / 1000)}s`);
    }
    if (!database.isReady()) reasons.push(config.trivyServer === undefined ? 'vulnerability database not ready' : 'Trivy server not reachable');
    if (elector !== undefined && !elector.isLeader() && elector.leaderIdentity() === undefined) reasons.push('leader not known yet');
    return { ready: reasons.length === 0, reasons };
  }

  return {
    config,
    metrics,
    controller,
    policies,
    metricsServer: () => server,
    webhookServer: () => webhook?.server(),
    readiness,
    rescanAll: (reason) => controller.rescanAll(reason),
    async start(): Promise<void> {
      log.info({ server: clients.server, namespaces: config.namespaces, leaderElect: config.leaderElect, identity: config.identity }, 'operator starting');
      const httpLog = log.child({ component: 'http' });
      let certificate: ServingCertificate | undefined;
      if (config.metricsSecure) {
        certificate = config.metricsCertDir === undefined ? selfSignedCertificate(['localhost', '127.0.0.1'], now()) : await readCertificateDir(config.metricsCertDir);
      }
      server = await startMetricsServer({
        host: config.metrics.host ?? '',
        port: config.metrics.port,
        metrics: metrics,
        readiness,
        logger: httpLog,
        ...(certificate === undefined ? {} : { tls: certificate }),
        ...(metricsAccess === undefined ? {} : { authorize: (request) => metricsAccess.decide(request) }),
      });
      const running = server;
      if (config.metricsCertDir !== undefined && certificate !== undefined) {
        stopCertificateWatch = watchCertificateDir(config.metricsCertDir, certificate, (next) => running.setCertificate(next), httpLog);
      }
      log.info(
        {
          port: server.address.port,
          address: server.address.address,
          url: server.url,
          secure: config.metricsSecure,
          certificate: config.metricsSecure ? (config.metricsCertDir ?? 'self-signed') : undefined,
        },
        'metrics server listening',
      );
      for (const informer of informers) informer.start();
      void database.start().catch((err: unknown) => log.error({ err }, 'vulnerability database start failed'));
      await Promise.all(informers.map((informer) => informer.whenSynced()));
      log.info({ pods: index.podCount(), reports: reportInformer.size() }, 'caches synced');
      // Every replica answers admission requests, from caches that are now filled. Its worker thread
      // starts (~130 ms at 10,000 pods) while this replica begins to lead or to contend.
      const webhookStarting = startAdmissionWebhook({
        host: config.webhook.host,
        port: config.webhook.port,
        certDir: config.webhookCertDir,
        sources: { policies, namespaces: namespaceInformer, images: knownImages, scans: referenceScans },
        onReviewed: (kind, decision, seconds) => metrics.observeAdmissionReview(ADMISSION_KINDS.has(kind) ? kind : 'other', decision, seconds),
        logger: log.child({ component: 'admission' }),
      });
      // A webhook that cannot start fails start() below, which stops what began here.
      webhookStarting.catch(() => undefined);
      if (!stopping) {
        // Only once the caches are synced: before, nothing would look in use, and the SBOM prune would
        // delete files that each cost a registry pull to write again.
        // Then the reports a previous process held for conversion, of digests still running.
        void pruneSboms()
          .then(() => runner.resumeHeldReports())
          .then(() => {
            if (scanQueue?.idle() ?? true) runner.convertHeldReports();
          });
        housekeepingTimer = setInterval(housekeep, deps.housekeepingMs ?? 5 * 60_000);
        housekeepingTimer.unref();
        if (elector === undefined) startLeading();
        else electorLoop = contend();
      }
      webhook = await webhookStarting;
      if (stopping) await webhook.stop();
    },
    async stop(): Promise<void> {
      if (stopping) return;
      stopping = true;
      log.info('operator stopping');
      if (elector !== undefined) {
        await elector.stop();
        await electorLoop;
      }
      await stopLeading();
      clearInterval(housekeepingTimer);
      rescanTask.destroy();
      await database.stop();
      await runner.stopHeldReports();
      await webhook?.stop();
      await referenceScans.stop();
      await Promise.all(informers.map((informer) => informer.stop()));
      stopCertificateWatch?.();
      await server?.close();
      log.info('operator stopped');
    },
  };
}
