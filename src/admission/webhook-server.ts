// The admission webhook's HTTPS endpoint: POST /validate takes an AdmissionReview v1 and answers one.
// The serving certificate is handed in and can be replaced while serving (setCertificate; the
// operator watches the directory with tls/serving-certificate.ts), so cert-manager's rotation needs no
// restart. Bodies are bounded, malformed reviews get a 400, and a decision that throws fails open
// (allowed, logged): the webhook must never be why a deploy breaks.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ServingCertificate } from '../tls/serving-certificate.js';
import { admissionResponse, parseAdmissionReview } from './admission-review.js';
import type { AdmissionRequest, AdmissionReviewResponse } from './admission-review.js';

export const WEBHOOK_PATH = '/validate';

export interface WebhookServerOptions {
  /** '' or '0.0.0.0' for every IPv4 interface, '::' for every interface, '127.0.0.1' in tests. */
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The PEM pair to serve first (readCertificateDir checked it). */
  certificate: ServingCertificate;
  /** Answers a parsed request from memory; a throw is logged and answered with an allow. */
  decide: (request: AdmissionRequest) => AdmissionReviewResponse;
  logger: Logger;
  /** Largest body read (default 8 MiB: an object and its old version, each up to the API server's 3 MiB). */
  maxBodyBytes?: number;
  /** Whole-request deadline in ms (default 10000; the API server gives up after timeoutSeconds anyway). */
  requestTimeoutMs?: number;
}

export interface WebhookServer {
  address: AddressInfo;
  /** https://host:port with the loopback address when bound to every interface. */
  url: string;
  /** Serves this pair to new connections from now on; throws when node:tls cannot use it. */
  setCertificate(certificate: ServingCertificate): void;
  /** Stops accepting and drops open connections. */
  close(): Promise<void>;
}

/**
 * Starts the HTTPS server and resolves once it listens. Rejects when the certificate is unusable or
 * the address cannot be bound, so start-up can stop with one clear line.
 */
export async function startWebhookServer(opts: WebhookServerOptions): Promise<WebhookServer> {
  const log = opts.logger;
  const maxBodyBytes = opts.maxBodyBytes ?? 8 * 1024 * 1024;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;

  const server = https.createServer(
    { cert: opts.certificate.cert, key: opts.certificate.key, headersTimeout: Math.min(5_000, requestTimeoutMs), requestTimeout: requestTimeoutMs, keepAliveTimeout: 30_000, maxHeaderSize: 16 * 1024 },
    (req, res) => {
      void handle(req, res).catch((err: unknown) => {
        log.error({ err }, 'admission request failed');
        if (!res.headersSent) sendText(res, 500, 'internal error\n');
        else res.destroy();
      });
    },
  );

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://webhook');
    if (url.pathname !== WEBHOOK_PATH) {
      sendText(res, 404, 'not found\n');
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      sendText(res, 405, 'method not allowed\n');
      return;
    }
    const body = await readBody(req, maxBodyBytes);
    if (body === undefined) {
      res.setHeader('Connection', 'close');
      sendText(res, 413, `request body larger than ${maxBodyBytes} bytes\n`);
      log.warn({ limit: maxBodyBytes }, 'admission review too large');
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      sendText(res, 400, 'body is not JSON\n');
      log.warn('admission review is not JSON');
      return;
    }
    const parsed = parseAdmissionReview(json);
    if (!parsed.ok) {
      sendText(res, 400, `${parsed.problem}\n`);
      log.warn({ problem: parsed.problem }, 'malformed admission review');
      return;
    }
    let answer: AdmissionReviewResponse;
    try {
      answer = opts.decide(parsed.request);
    } catch (err) {
      log.error({ err, uid: parsed.request.uid, kind: parsed.request.kind.kind, namespace: parsed.request.namespace }, 'admission decision failed; allowing');
      answer = admissionResponse(parsed.request.uid, { allowed: true });
    }
    const text = JSON.stringify(answer);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host === '' ? undefined : opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'webhook server error'));

  const address = server.address() as AddressInfo;
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  return {
    address,
    url: `https://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    setCertificate: (certificate) => server.setSecureContext({ cert: certificate.cert, key: certificate.key }),
    close: async () => {
      if (!server.listening) return;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The body, or undefined once it passes the limit. The rest is read and dropped rather than the
 * stream destroyed, so the 413 still reaches the client; requestTimeout bounds a client that never stops.
 */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total <= limit) chunks.push(buf);
  }
  return total > limit ? undefined : Buffer.concat(chunks);
}

function sendText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
