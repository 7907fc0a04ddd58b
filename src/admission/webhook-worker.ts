// The webhook's thread (node:worker_threads), started by admission-webhook.ts: it serves HTTPS and
// decides each review with decideReview against its KnowledgeMirror, so a review waits for neither the
// main thread's reconciles, report parsing nor its GC pauses (bench/README.md, "The deploy gate under
// load"). The main thread sends the knowledge as deltas and the certificate; this thread sends back,
// per answered review, what the main thread counts, logs and scans, and its own log lines.
import { parentPort, workerData } from 'node:worker_threads';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { ImageReference } from '../images/image-reference.js';
import type { ServingCertificate } from '../tls/serving-certificate.js';
import { decideReview } from './admission-decider.js';
import type { Decision } from './admission-decider.js';
import type { PullIdentity } from './admitted-images.js';
import { KnowledgeMirror } from './knowledge-mirror.js';
import type { KnowledgeDelta } from './knowledge-mirror.js';
import { startWebhookServer } from './webhook-server.js';
import type { WebhookServer } from './webhook-server.js';

export interface WebhookWorkerData {
  /** The main logger's level: lines below it are not even formatted here. */
  logLevel: string;
  /** ReferenceScans' bound, for the mirror. */
  maxLearned: number;
}

export type ToWorker =
  | { type: 'knowledge'; delta: KnowledgeDelta }
  | { type: 'serve'; host: string; port: number; certificate: ServingCertificate }
  | { type: 'certificate'; certificate: ServingCertificate };

/** One answered review: its metric labels, the fields of its log line, and what to scan by reference. */
export interface Reviewed {
  type: 'reviewed';
  kind: string;
  decision: Decision;
  /** The decision's time, measured here. */
  seconds: number;
  fields: { uid: string; kind: string; namespace: string | undefined; name: string | undefined; operation: string; dryRun: boolean };
  notJudged?: string;
  unscanned: ImageReference[];
  pullIdentity?: PullIdentity;
}

export type FromWorker =
  | Reviewed
  | { type: 'listening'; address: AddressInfo; url: string }
  | { type: 'listen-failed'; message: string }
  /** A line of this thread's pino logger, for the main logger to write. */
  | { type: 'log'; line: string };

const port = parentPort;
if (port === null) throw new Error('webhook-worker.ts runs as a worker thread (admission-webhook.ts starts it)');
const data = workerData as WebhookWorkerData;
const post = (message: FromWorker): void => port.postMessage(message);
const log = pino({ level: data.logLevel, base: undefined, timestamp: false }, { write: (line: string) => post({ type: 'log', line }) });
const mirror = new KnowledgeMirror(data.maxLearned);
let server: WebhookServer | undefined;

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'knowledge':
      mirror.apply(message.delta);
      return;
    case 'certificate':
      try {
        server?.setCertificate(message.certificate);
      } catch (err) {
        log.error({ err }, 'admission webhook certificate not usable; serving the previous one');
      }
      return;
    case 'serve':
      void serve(message.host, message.port, message.certificate);
      return;
  }
});

async function serve(host: string, listenPort: number, certificate: ServingCertificate): Promise<void> {
  try {
    server = await startWebhookServer({
      host,
      port: listenPort,
      certificate,
      logger: log,
      decide: (request) => {
        const started = process.hrtime.bigint();
        const decision = decideReview(request, mirror);
        post({
          type: 'reviewed',
          kind: request.kind.kind,
          decision: decision.decision,
          seconds: Number(process.hrtime.bigint() - started) / 1e9,
          fields: { uid: request.uid, kind: request.kind.kind, namespace: request.namespace, name: request.name, operation: request.operation, dryRun: request.dryRun },
          ...(decision.notJudged === undefined ? {} : { notJudged: decision.notJudged }),
          unscanned: decision.unscanned,
          ...(decision.pullIdentity === undefined ? {} : { pullIdentity: decision.pullIdentity }),
        });
        return decision.response;
      },
    });
    post({ type: 'listening', address: server.address, url: server.url });
  } catch (err) {
    post({ type: 'listen-failed', message: err instanceof Error ? err.message : String(err) });
  }
}
