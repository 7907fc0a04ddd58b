// The metrics address: /metrics for Prometheus, /healthz and /readyz for the kubelet's probes.
// Nothing else is served, no request body is read, and every request is bounded in time and number,
// so a misbehaving client cannot make the operator spend memory or hang its shutdown.
// Secure serving (the default) is HTTPS, and /metrics answers only requests that `authorize` allows;
// the probes stay open, since the kubelet sends no credentials (and skips verification for HTTPS).
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { AccessDecision } from './metrics-auth.js';
import type { ServingCertificate } from '../tls/serving-certificate.js';

/** What /metrics serves; OperatorMetrics fits. */
export interface MetricsSource {
  readonly contentType: string;
  /** The text in chunks (strings or UTF-8 bytes), written one at a time as the client reads. */
  scrape(): Promise<IterableIterator<string | Buffer>>;
}

export interface Readiness {
  ready: boolean;
  /** Why the operator is not ready (or notes when it is); one short sentence each. */
  reasons: string[];
}

export interface MetricsServerOptions {
  /** '' or '0.0.0.0' for every IPv4 interface, '::' for every interface, '127.0.0.1' in tests. */
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  metrics: MetricsSource;
  readiness: () => Readiness;
  logger: Logger;
  /** Scrapes served at once; more are answered 429 (default 2: Prometheus HA pairs). */
  maxConcurrentScrapes?: number;
  /** Whole-request deadline in ms (default 15000). */
  requestTimeoutMs?: number;
  /** Serve HTTPS with this key and certificate; plain HTTP without. */
  tls?: ServingCertificate;
  /** Decides who may read /metrics; without it anyone who reaches the port may. */
  authorize?: (request: { authorization: string | undefined; method: string; path: string }) => Promise<AccessDecision>;
}

export interface MetricsServer {
  /** The bound address, e.g. { address: '127.0.0.1', port: 39811 }. */
  address: AddressInfo;
  /** http(s)://host:port, with the loopback address when bound to every interface. */
  url: string;
  /** Serves this key and certificate to new connections (a rotated Secret); only with `tls`. */
  setCertificate(certificate: ServingCertificate): void;
  /** Stops accepting, drops open connections and resolves when the socket is closed. */
  close(): Promise<void>;
}

const ROUTES = new Set(['/metrics', '/healthz', '/readyz']);
const TEXT = 'text/plain; charset=utf-8';

/**
 * Starts the HTTP server and resolves once it listens; rejects when the address cannot be bound
 * (e.g. EADDRINUSE), so the operator can stop with a clear message.
 */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const maxScrapes = opts.maxConcurrentScrapes ?? 2;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 15_000;
  const log = opts.logger;
  let scrapesRunning = 0;

  const serverOptions: http.ServerOptions = {
    // Bounds against slow or hostile clients: headers must arrive quickly and the whole request
    // must finish within the deadline; idle keep-alive sockets are dropped soon.
    headersTimeout: Math.min(10_000, requestTimeoutMs),
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: 5_000,
    // Node checks the two timeouts above only this often (default 30 s).
    connectionsCheckingInterval: Math.min(1_000, requestTimeoutMs),
    maxHeaderSize: 16 * 1024,
  };
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    void handle(req, res).catch((err: unknown) => {
      log.error({ err, path: req.url }, 'metrics endpoint failed');
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  };
  const tlsServer = opts.tls === undefined ? undefined : https.createServer({ ...serverOptions, key: opts.tls.key, cert: opts.tls.cert }, listener);
  const server: http.Server = tlsServer ?? http.createServer(serverOptions, listener);
  server.maxHeadersCount = 50;
  // Prometheus, the kubelet and a human: a few connections are plenty.
  server.maxConnections = 32;

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = pathOf(req.url);
    if (path === undefined || !ROUTES.has(path)) {
      send(res, 404, 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'method not allowed\n');
      return;
    }
    if (hasBody(req)) {
      // The body is never read; closing the connection spares draining it.
      res.setHeader('Connection', 'close');
      send(res, 413, 'request body not accepted\n');
      return;
    }
    const head = req.method === 'HEAD';

    if (path === '/healthz') {
      // Answering at all proves the event loop turns; a blocked loop makes the probe time out.
      send(res, 200, 'ok\n');
      return;
    }
    if (path === '/readyz') {
      const readiness = readinessOf(opts.readiness);
      const body = readiness.ready
        ? `ready\n${readiness.reasons.map((r) => `${r}\n`).join('')}`
        : `not ready:\n${readiness.reasons.map((r) => `- ${r}\n`).join('')}`;
      send(res, readiness.ready ? 200 : 503, body);
      return;
    }

    // /metrics
    if (opts.authorize !== undefined) {
      const decision = await opts.authorize({ authorization: req.headers.authorization, method: req.method, path });
      if (!decision.allowed) {
        if (decision.status === 503) log.warn({ err: decision.cause, username: decision.username }, 'metrics request could not be reviewed');
        else log.debug({ status: decision.status, username: decision.username }, 'metrics request refused');
        if (decision.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="imagescan-operator metrics"');
        if (decision.status === 429 || decision.status === 503) res.setHeader('Retry-After', '5');
        send(res, decision.status, `${decision.message}\n`);
        return;
      }
    }
    if (head) {
      res.writeHead(200, { 'Content-Type': opts.metrics.contentType });
      res.end();
      return;
    }
    if (scrapesRunning >= maxScrapes) {
      res.setHeader('Retry-After', '1');
      send(res, 429, 'too many concurrent scrapes\n');
      return;
    }
    scrapesRunning += 1;
    try {
      let chunks: IterableIterator<string | Buffer>;
      try {
        chunks = await opts.metrics.scrape();
      } catch (err) {
        log.warn({ err }, 'collecting metrics failed');
        send(res, 500, 'collecting metrics failed\n');
        return;
      }
      // Chunked, at the client's pace: the text at 10,000 pods is 8.6 MB, and a client that stops
      // reading is dropped after the deadline rather than holding a scrape slot.
      res.setTimeout(requestTimeoutMs, () => res.destroy());
      res.writeHead(200, { 'Content-Type': opts.metrics.contentType });
      for (const chunk of chunks) {
        if (res.write(chunk)) continue;
        await drainedOrClosed(res);
        if (res.destroyed) return;
      }
      res.end();
    } finally {
      scrapesRunning -= 1;
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host === '' ? undefined : opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'metrics server error'));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // Timeouts, oversized headers and malformed requests: answer if we still can, never crash.
    const status =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout'
      : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large'
      : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
    log.debug({ err }, 'bad request on metrics address');
  });

  const address = server.address() as AddressInfo;
  const urlHost = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '[::1]' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log.debug({ address: address.address, port: address.port }, 'metrics server bound');

  return {
    address,
    url: `${tlsServer === undefined ? 'http' : 'https'}://${urlHost}:${address.port}`,
    setCertificate: (certificate) => tlsServer?.setSecureContext({ key: certificate.key, cert: certificate.cert }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function send(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': TEXT, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function drainedOrClosed(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function pathOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    return new URL(url, 'http://metrics.invalid').pathname;
  } catch {
    return undefined;
  }
}

function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/** A throwing readiness callback means not ready, with the error as the reason. */
function readinessOf(readiness: () => Readiness): Readiness {
  try {
    return readiness();
  } catch (err) {
    return { ready: false, reasons: [`readiness check failed: ${err instanceof Error ? err.message : String(err)}`] };
  }
}
