// The deploy gate as the operator runs it on every replica: the webhook server, served once a
// certificate is in --webhook-cert-dir and re-served on each rotation, answering from the caches
// (policies, namespace labels, known images, scans by reference) and asking for a scan by reference
// of every governed image whose result is unknown. No API request and no scan on the request path.
import type { Logger } from 'pino';
import type { ImageReference } from '../images/image-reference.js';
import type { CompiledPolicy } from '../policy/image-scan-policy.js';
import { readCertificateDir, watchCertificateDir } from '../tls/serving-certificate.js';
import type { ServingCertificate } from '../tls/serving-certificate.js';
import { decideReview } from './admission-decider.js';
import type { AdmissionKnowledge, Decision, KnownScan } from './admission-decider.js';
import type { AdmissionRequest, AdmissionReviewResponse } from './admission-review.js';
import type { KnownImages } from './known-images.js';
import type { ReferenceScans } from './reference-scans.js';
import { startWebhookServer } from './webhook-server.js';
import type { WebhookServer } from './webhook-server.js';

/** The in-memory sources a decision reads. */
export interface AdmissionSources {
  /** The valid policies (the policy store's validPolicies). */
  policies: () => readonly CompiledPolicy[];
  namespaceLabels: (namespace: string) => Readonly<Record<string, string>> | undefined;
  images: Pick<KnownImages, 'digestOfTag' | 'scanOfDigest'>;
  scans: Pick<ReferenceScans, 'digestOfTag' | 'scanOfDigest' | 'request'>;
}

/**
 * The knowledge a decision reads: a reference's digest is the one it pins, else the one pods run its
 * tag with, else the one a scan by reference found; its result is a report's, else that scan's.
 */
export function knowledgeOf(sources: AdmissionSources): AdmissionKnowledge {
  return {
    policies: sources.policies,
    namespaceLabels: sources.namespaceLabels,
    scanResult(reference: ImageReference, namespace: string): KnownScan | undefined {
      const digest = reference.digest ?? sources.images.digestOfTag(reference.repository, reference.tag) ?? sources.scans.digestOfTag(reference.repository, reference.tag);
      if (digest === undefined) return undefined;
      const reported = sources.images.scanOfDigest(digest, namespace);
      if (reported !== undefined) return reported;
      const scanned = sources.scans.scanOfDigest(digest);
      return scanned === undefined ? undefined : { scan: scanned };
    },
  };
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
}

export interface AdmissionWebhook {
  /** The running server; undefined until a certificate is there. */
  server(): WebhookServer | undefined;
  /** Judges one request as the server does (also for tests and the benchmark). */
  decide(request: AdmissionRequest): AdmissionReviewResponse;
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
  const knowledge = knowledgeOf(opts.sources);
  let server: WebhookServer | undefined;
  let starting: Promise<void> | undefined;
  let stopped = false;

  function decide(request: AdmissionRequest): AdmissionReviewResponse {
    const started = process.hrtime.bigint();
    const decision = decideReview(request, knowledge);
    for (const image of decision.unscanned) opts.sources.scans.request(image, decision.pullIdentity);
    const fields = { uid: request.uid, kind: request.kind.kind, namespace: request.namespace, name: request.name, operation: request.operation, dryRun: request.dryRun };
    if (decision.notJudged !== undefined) log.debug({ ...fields, reason: decision.notJudged }, 'admission request not judged');
    // A refusal is what someone will ask about; warnings and allows are per-request detail.
    else if (decision.decision === 'deny') log.info({ ...fields, decision: decision.decision, unscanned: decision.unscanned.length }, 'admission request refused');
    else log.debug({ ...fields, decision: decision.decision, unscanned: decision.unscanned.length }, 'admission request judged');
    opts.onReviewed?.(request.kind.kind, decision.decision, Number(process.hrtime.bigint() - started) / 1e9);
    return decision.response;
  }

  async function serve(certificate: ServingCertificate): Promise<void> {
    server = await startWebhookServer({ host: opts.host ?? '', port: opts.port, certificate, decide, logger: log });
    log.info({ port: server.address.port, address: server.address.address, certDir: opts.certDir }, 'admission webhook listening');
  }

  let initial: ServingCertificate | undefined;
  try {
    initial = await readCertificateDir(opts.certDir, 'webhook');
  } catch (err) {
    log.warn({ certDir: opts.certDir, reason: err instanceof Error ? err.message : String(err) }, 'admission webhook not served until a certificate is there (install the admission component)');
  }
  if (initial !== undefined) await serve(initial);

  const stopWatching = watchCertificateDir(
    opts.certDir,
    initial,
    (certificate) => {
      if (stopped) return;
      if (server !== undefined) {
        server.setCertificate(certificate);
        return;
      }
      starting ??= serve(certificate).catch((err: unknown) => {
        starting = undefined;
        log.error({ err, port: opts.port }, 'admission webhook could not start');
      });
    },
    log,
    { purpose: 'webhook', intervalMs: opts.certCheckIntervalMs ?? 10_000 },
  );

  return {
    server: () => server,
    decide,
    async stop(): Promise<void> {
      stopped = true;
      stopWatching();
      await starting;
      await server?.close();
    },
  };
}
