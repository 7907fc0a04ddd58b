import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeReport, fixtureEntries, scannedStatus } from '../../test/alerts/fake-reports.js';
import { parsePrometheusText, samplesOf, scrapeText } from '../../test/alerts/prometheus-text.js';
import { startMetricsServer } from './http-server.js';
import type { MetricsServer, MetricsServerOptions, Readiness } from './http-server.js';
import type { AccessDecision } from './metrics-auth.js';
import { OperatorMetrics } from './operator-metrics.js';
import { selfSignedCertificate } from '../tls/serving-certificate.js';

const logger = pino({ level: 'silent' });
let server: MetricsServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(opts: Partial<MetricsServerOptions> = {}): Promise<MetricsServer> {
  server = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    metrics: new OperatorMetrics({ reportSource: { list: () => [] }, defaultMetrics: false }),
    readiness: () => ({ ready: true, reasons: [] }),
    logger,
    ...opts,
  });
  return server;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, opts: { method?: string; body?: string; agent?: http.Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = opts.body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(opts.body)) };
    const req = http.request(url, { method: opts.method ?? 'GET', agent: opts.agent ?? false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('metrics server', () => {
  it('serves the registry in Prometheus text format on GET /metrics', async () => {
    const entries = fixtureEntries('alpine-39.json');
    const metrics = new OperatorMetrics({
      reportSource: { list: () => [fakeReport({ namespace: 'shop', name: 'alpine-1', image: 'alpine:3.9', status: scannedStatus(entries, { team: 'payments' }) })] },
      defaultMetrics: false,
    });
    metrics.setLeader(true);
    const { url } = await start({ metrics });
    const reply = await request(`${url}/metrics`);
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const critical = samplesOf(parsePrometheusText(reply.body), 'imagescan_image_vulnerabilities', { severity: 'CRITICAL', fixable: 'true', team: 'payments' });
    expect(critical[0]?.value).toBe(entries.filter((e) => e.severity === 'CRITICAL' && e.fixedVersion !== undefined).length);
  });

  it('streams a large scrape whole: every report of a 10,000-pod cluster reaches Prometheus', async () => {
    const entries = fixtureEntries('alpine-39.json');
    const reports = Array.from({ length: 3000 }, (_, i) =>
      fakeReport({ namespace: `ns-${i % 50}`, name: `app-${i}`, image: `registry.example.com/app-${i}:1.0`, status: scannedStatus(entries, { team: `team-${i % 7}` }) }),
    );
    const metrics = new OperatorMetrics({ reportSource: { list: () => reports }, defaultMetrics: false });
    metrics.setLeader(true);
    const { url } = await start({ metrics });
    const reply = await request(`${url}/metrics`);
    expect(reply.status).toBe(200);
    expect(reply.headers['transfer-encoding']).toBe('chunked');
    expect(reply.body.length).toBeGreaterThan(1024 * 1024);
    expect(reply.body).toBe(await scrapeText(metrics));
    const lastScans = samplesOf(parsePrometheusText(reply.body), 'imagescan_report_last_scan_timestamp_seconds');
    expect(new Set(lastScans.map((s) => s.labels.report)).size).toBe(3000);
  });

  it('drops a client that stops reading after the deadline, freeing its scrape slot', async () => {
    // 64 MiB: more than the loopback socket buffers hold, so the writer must wait for the reader.
    const chunk = `# ${'x'.repeat(1024 * 1024 - 3)}\n`;
    const huge = { contentType: 'text/plain', scrape: () => Promise.resolve(Array.from({ length: 64 }, () => chunk).values()) };
    const { address, url } = await start({ metrics: huge, requestTimeoutMs: 500 });
    const stalled = [0, 1].map(() => {
      const socket = net.connect(address.port, '127.0.0.1');
      socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
      socket.pause();
      return socket;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await request(`${url}/healthz`)).status).toBe(200);
    expect((await request(`${url}/metrics`, { method: 'HEAD' })).status).toBe(200);
    const busy = await request(`${url}/metrics`);
    expect(busy.status).toBe(429);
    await expect.poll(async () => (await request(`${url}/metrics`)).status, { timeout: 5_000, interval: 200 }).toBe(200);
    const served = await request(`${url}/metrics`);
    expect(served.status).toBe(200);
    expect(served.body.length).toBe(64 * chunk.length);
    for (const socket of stalled) socket.destroy();
  });

  it('answers HEAD without a body and ignores a query string', async () => {
    const { url } = await start();
    const head = await request(`${url}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect((await request(`${url}/metrics?format=x`)).status).toBe(200);
    expect((await request(`${url}/healthz`, { method: 'HEAD' })).status).toBe(200);
  });

  it('answers 500 when collecting fails, and keeps serving', async () => {
    let fail = true;
    const metrics = new OperatorMetrics({
      reportSource: {
        list: () => {
          if (fail) throw new Error('informer cache gone');
          return [];
        },
      },
      defaultMetrics: false,
    });
    const { url } = await start({ metrics });
    const failed = await request(`${url}/metrics`);
    expect(failed.status).toBe(500);
    expect(failed.body).not.toContain('imagescan_');
    fail = false;
    expect((await request(`${url}/metrics`)).status).toBe(200);
  });

  it('says ok on /healthz', async () => {
    const { url } = await start();
    const reply = await request(`${url}/healthz`);
    expect(reply).toMatchObject({ status: 200, body: 'ok\n' });
  });

  it('answers /readyz with 503 and the reasons until ready, then 200', async () => {
    let state: Readiness = { ready: false, reasons: ['pod watch not synced', 'Trivy DB not downloaded yet'] };
    const { url } = await start({ readiness: () => state });
    const notReady = await request(`${url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(notReady.body).toContain('pod watch not synced');
    expect(notReady.body).toContain('Trivy DB not downloaded yet');
    state = { ready: true, reasons: [] };
    expect((await request(`${url}/readyz`)).status).toBe(200);
  });

  it('treats a throwing readiness check as not ready', async () => {
    const { url } = await start({
      readiness: () => {
        throw new Error('lease unknown');
      },
    });
    const reply = await request(`${url}/readyz`);
    expect(reply.status).toBe(503);
    expect(reply.body).toContain('lease unknown');
  });

  it('answers 404 for any other path and 405 for other methods', async () => {
    const { url } = await start();
    for (const path of ['/', '/metrics/', '/debug/pprof', '/readyz/x', '/../metrics%00']) {
      expect((await request(`${url}${path}`)).status, path).toBe(404);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const reply = await request(`${url}/metrics`, { method });
      expect(reply.status, method).toBe(405);
      expect(reply.headers.allow).toBe('GET, HEAD');
    }
  });

  it('refuses a request body', async () => {
    const { url } = await start();
    const reply = await request(`${url}/metrics`, { method: 'GET', body: 'x'.repeat(1000) });
    expect(reply.status).toBe(413);
  });

  it('serves at most two scrapes at once and answers 429 to the third', async () => {
    let open = (): void => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let running = 0;
    const slow = {
      contentType: 'text/plain; version=0.0.4; charset=utf-8',
      scrape: async () => {
        running += 1;
        await gate;
        return ['up 1\n'].values();
      },
    };
    const { url } = await start({ metrics: slow });
    const first = request(`${url}/metrics`);
    const second = request(`${url}/metrics`);
    await expect.poll(() => running).toBe(2);
    const third = await request(`${url}/metrics`);
    expect(third.status).toBe(429);
    expect(third.headers['retry-after']).toBe('1');
    open();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    expect((await request(`${url}/metrics`)).status).toBe(200);
  });

  it('answers 431 to oversized headers', async () => {
    const { url } = await start();
    const reply = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${url}/metrics`, { agent: false, headers: { 'X-Big': 'x'.repeat(32 * 1024) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(reply).toBe(431);
  });

  it('drops a client that never finishes its headers', async () => {
    const { address } = await start({ requestTimeoutMs: 300 });
    const socket = net.connect(address.port, '127.0.0.1');
    socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    const started = Date.now();
    const closed = await new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
      socket.on('close', () => resolve(data));
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(closed).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes promptly even with an idle keep-alive connection open', async () => {
    const { url } = await start();
    const agent = new http.Agent({ keepAlive: true });
    expect((await request(`${url}/healthz`, { agent })).status).toBe(200);
    const started = Date.now();
    await server?.close();
    server = undefined;
    expect(Date.now() - started).toBeLessThan(1_000);
    agent.destroy();
  });

  it('rejects when the port is taken', async () => {
    const first = await start();
    await expect(
      startMetricsServer({
        host: '127.0.0.1',
        port: first.address.port,
        metrics: { contentType: 'text/plain', scrape: () => Promise.resolve([''].values()) },
        readiness: () => ({ ready: true, reasons: [] }),
        logger,
      }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});

/** GET over HTTPS without verifying the self-signed certificate, as Prometheus' insecureSkipVerify and the kubelet do. */
function secureRequest(url: string, opts: { method?: string; token?: string; ca?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = opts.token === undefined ? {} : { Authorization: `Bearer ${opts.token}` };
    const tls = opts.ca === undefined ? { rejectUnauthorized: false } : { ca: opts.ca };
    const req = https.request(url, { method: opts.method ?? 'GET', agent: false, headers, ...tls }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('secure metrics server', () => {
  const decisions: Record<string, AccessDecision> = {
    reader: { allowed: true, username: 'prometheus' },
    developer: { allowed: false, status: 403, message: 'Forbidden: user "dev" may not get /metrics', username: 'dev' },
    'while-api-down': { allowed: false, status: 503, message: 'The API server could not be asked for authentication, retry later', cause: new Error('ECONNREFUSED') },
  };
  const authorize = (request: { authorization: string | undefined }): Promise<AccessDecision> => {
    const token = request.authorization?.replace(/^Bearer /, '');
    return Promise.resolve(decisions[token ?? ''] ?? { allowed: false, status: 401, message: 'Unauthorized: a bearer token is required' });
  };

  it('serves HTTPS only, and /metrics only to an authorized request', async () => {
    const certificate = selfSignedCertificate(['localhost', '127.0.0.1'], new Date());
    const { url, address } = await start({ tls: certificate, authorize });
    expect(url).toBe(`https://127.0.0.1:${address.port}`);
    await expect(request(`http://127.0.0.1:${address.port}/healthz`)).rejects.toThrow();

    const anonymous = await secureRequest(`${url}/metrics`);
    expect([anonymous.status, anonymous.headers['www-authenticate'], anonymous.body]).toEqual([401, 'Bearer realm="imagescan-operator metrics"', 'Unauthorized: a bearer token is required\n']);
    expect((await secureRequest(`${url}/metrics`, { method: 'HEAD' })).status).toBe(401);
    const developer = await secureRequest(`${url}/metrics`, { token: 'developer' });
    expect([developer.status, developer.body]).toEqual([403, 'Forbidden: user "dev" may not get /metrics\n']);
    const down = await secureRequest(`${url}/metrics`, { token: 'while-api-down' });
    expect([down.status, down.headers['retry-after']]).toEqual([503, '5']);
    expect(down.body).not.toMatch(/imagescan_/);

    // Verified against the certificate itself, as a Prometheus given the CA would.
    const reader = await secureRequest(`https://localhost:${address.port}/metrics`, { token: 'reader', ca: certificate.cert });
    expect(reader.status).toBe(200);
    expect(reader.body).toMatch(/^imagescan_leader 0$/m);
  });

  it('keeps /healthz and /readyz open to the kubelet, which sends no token', async () => {
    const { url } = await start({ tls: selfSignedCertificate(['localhost'], new Date()), authorize, readiness: () => ({ ready: false, reasons: ['pods not synced'] }) });
    expect(await secureRequest(`${url}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await secureRequest(`${url}/readyz`)).toMatchObject({ status: 503, body: 'not ready:\n- pods not synced\n' });
  });

  it('serves a new certificate to new connections after setCertificate', async () => {
    const first = selfSignedCertificate(['localhost'], new Date());
    const second = selfSignedCertificate(['localhost'], new Date());
    const started = await start({ tls: first, authorize });
    const port = started.address.port;
    expect((await secureRequest(`https://localhost:${port}/healthz`, { ca: first.cert })).status).toBe(200);
    started.setCertificate(second);
    expect((await secureRequest(`https://localhost:${port}/healthz`, { ca: second.cert })).status).toBe(200);
    await expect(secureRequest(`https://localhost:${port}/healthz`, { ca: first.cert })).rejects.toThrow();
  });
});
