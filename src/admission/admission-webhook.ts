// The deploy gate as the operator runs it on every replica: the webhook server, served once a
// certificate is in --webhook-cert-dir and re-served on each rotation, answering from the caches
// (policies, namespace labels, known images, scans by reference) and asking for a scan by reference
// of every governed image whose result is unknown. No API request and no scan on the request path.
//
// The server runs on a worker thread (webhook-worker.ts) with a mirror of the caches, fed with
// batched deltas (knowledge-feed.ts): on the main thread a review waited behind the rescan's
// reconciles, report parsing and GC for up to seconds (bench/README.md, "The deploy gate under load").
// The worker is restarted when it dies; the operator never goes down with it.
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { ServingCertificate } from '../tls/serving-certificate.js';
import { readCertificateDir, watchCertificateDir } from '../tls/serving-certificate.js';
import type { Decision } from './admission-decider.js';
import { KnowledgeFeed } from './knowledge-feed.js';
import type { AdmissionSources } from './knowledge-feed.js';
import type { FromWorker, Reviewed, ToWorker, WebhookWorkerData } from './webhook-worker.js';
import type { WebhookServer } from './webhook-server.js';

export type { AdmissionSources } from './knowledge-feed.js';

/** The worker's program beside this module: the .ts source in tests, the bundled .mjs in the image. */
export function webhookWorkerProgram(): { file: string; execArgv: string[] } {
  const here = import.meta.url;
  // tsx's loader by its path, so the thread starts whatever the working directory.
  if (here.endsWith('.ts')) return { file: fileURLToPath(new URL('./webhook-worker.ts', here)), execArgv: ['--import', pathToFileURL(createRequire(here).resolve('tsx')).href] };
  return { file: fileURLToPath(new URL('./webhook-worker.mjs', here)), execArgv: [] };
}

export interface AdmissionWebhookOptions {
  host: string | undefined;
  port: number;
  certDir: string;
  sources: AdmissionSources;
  /** Called once per answered review, for metrics. */
  onReviewed?: (kind: string, decision: Decision, seconds: number) => void;
  logger: Logger;
  /** How often the certificate folder is read besides its file events (default 10 s). */
  certCheckIntervalMs?: number;
  /** Delay before a dead worker is started again (default 1 s, doubling to 30 s while it keeps failing). */
  restartDelayMs?: number;
}

export interface AdmissionWebhook {
  /** The running server; undefined until a certificate is there (and while its worker restarts). */
  server(): WebhookServer | undefined;
  /** The worker thread, while one runs (tests). */
  worker(): Worker | undefined;
  stop(): Promise<void>;
}

/**
 * Starts the webhook. With a usable certificate in certDir it resolves once the server listens, and
 * rejects when the address cannot be bound (a configuration error to stop on). Without one it logs
 * that the webhook is not served and resolves: the operator works without the admission component,
 * and the server starts when cert-manager's Secret appears. Every later pair is served without a restart.
 */
export async function startAdmissionWebhook(opts: AdmissionWebhookOptions): Promise<AdmissionWebhook> {
  const log = opts.logger;
  const feed = new KnowledgeFeed(opts.sources);
  const firstRestartDelay = opts.restartDelayMs ?? 1_000;
  let restartDelay = firstRestartDelay;
  let worker: Worker | undefined;
  let server: WebhookServer | undefined;
  let certificate: ServingCertificate | undefined;
  let starting: Promise<void> | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let stopped = false;

  function reviewed(review: Reviewed, seconds: number): void {
    // Empty on dry runs: the worker's decideReview leaves them out.
    for (const image of review.unscanned) opts.sources.scans.request(image, review.pullIdentity);
    const unscanned = review.unscanned.length;
    if (review.notJudged !== undefined) log.debug({ ...review.fields, reason: review.notJudged }, 'admission request not judged');
    // A refusal is what someone will ask about; warnings and allows are per-request detail.
    else if (review.decision === 'deny') log.info({ ...review.fields, decision: review.decision, unscanned }, 'admission request refused');
    else log.debug({ ...review.fields, decision: review.decision, unscanned }, 'admission request judged');
    opts.onReviewed?.(review.kind, review.decision, seconds);
  }

  /** A line of the worker's logger, written by ours (its level, redaction and destination). */
  function relayLog(line: string): void {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const { level, msg, ...fields } = parsed;
    const label = typeof level === 'number' ? log.levels.labels[level] : undefined;
    const text = typeof msg === 'string' ? msg : '';
    if (label === 'fatal' || label === 'error') log.error(fields, text);
    else if (label === 'warn') log.warn(fields, text);
    else if (label === 'info') log.info(fields, text);
    else log.debug(fields, text);
  }

  /** Starts a worker serving `pair`; resolves once it listens, rejects when it cannot. */
  function spawn(pair: ServingCertificate): Promise<void> {
    const program = webhookWorkerProgram();
    const data: WebhookWorkerData = { logLevel: log.level, maxLearned: opts.sources.scans.maxLearned };
    // A small young generation (a review's garbage is a few KB) keeps the thread's share of the pod's
    // memory small; the old-generation cap, ample for the 8 MiB body limit, ends a runaway thread
    // (ERR_WORKER_OUT_OF_MEMORY, then a restart) instead of the operator.
    const thread = new Worker(program.file, { workerData: data, execArgv: program.execArgv, stdout: false, stderr: false, resourceLimits: { maxYoungGenerationSizeMb: 6, maxOldGenerationSizeMb: 128 } });
    worker = thread;
    const send = (message: ToWorker): void => thread.postMessage(message);
    return new Promise<void>((resolve, reject) => {
      let listening = false;
      thread.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'reviewed':
            reviewed(message, message.seconds);
            return;
          case 'log':
            relayLog(message.line);
            return;
          case 'listening': {
            listening = true;
            restartDelay = firstRestartDelay;
            server = {
              address: message.address,
              url: message.url,
              setCertificate: (next) => send({ type: 'certificate', certificate: next }),
              close: () => thread.terminate().then(() => undefined),
            };
            log.info({ port: message.address.port, address: message.address.address, certDir: opts.certDir }, 'admission webhook listening');
            resolve();
            return;
          }
          case 'listen-failed':
            reject(new Error(`admission webhook cannot listen on ${opts.host ?? ''}:${opts.port}: ${message.message}`));
            void thread.terminate();
            return;
        }
      });
      thread.on('error', (err) => log.error({ err }, 'admission webhook worker failed'));
      thread.on('exit', (code) => {
        if (worker !== thread) return;
        worker = undefined;
        server = undefined;
        feed.stop();
        if (!listening) reject(new Error(`admission webhook worker exited with code ${code} before listening`));
        if (stopped || !listening) return;
        log.error({ code, restartInMs: restartDelay }, 'admission webhook worker exited; starting it again');
        scheduleRestart();
      });
      feed.start((delta) => send({ type: 'knowledge', delta }));
      send({ type: 'serve', host: opts.host ?? '', port: opts.port, certificate: pair });
    });
  }

  function scheduleRestart(): void {
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (stopped || certificate === undefined) return;
      starting = spawn(certificate).catch((err: unknown) => {
        log.error({ err, port: opts.port }, 'admission webhook could not start again');
        restartDelay = Math.min(restartDelay * 2, 30_000);
        if (!stopped) scheduleRestart();
      });
    }, restartDelay);
  }

  try {
    certificate = await readCertificateDir(opts.certDir, 'webhook');
  } catch (err) {
    log.warn({ certDir: opts.certDir, reason: err instanceof Error ? err.message : String(err) }, 'admission webhook not served until a certificate is there (install the admission component)');
  }
  if (certificate !== undefined) await spawn(certificate);

  const stopWatching = watchCertificateDir(
    opts.certDir,
    certificate,
    (next) => {
      if (stopped) return;
      certificate = next;
      if (worker !== undefined) {
        worker.postMessage({ type: 'certificate', certificate: next } satisfies ToWorker);
        return;
      }
      if (restartTimer !== undefined) return;
      starting ??= spawn(next).catch((err: unknown) => {
        starting = undefined;
        log.error({ err, port: opts.port }, 'admission webhook could not start');
      });
    },
    log,
    { purpose: 'webhook', intervalMs: opts.certCheckIntervalMs ?? 10_000 },
  );

  return {
    server: () => server,
    worker: () => worker,
    async stop(): Promise<void> {
      stopped = true;
      stopWatching();
      clearTimeout(restartTimer);
      await starting;
      feed.stop();
      const thread = worker;
      worker = undefined;
      server = undefined;
      await thread?.terminate();
    },
  };
}
