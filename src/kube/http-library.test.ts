import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { HttpMethod, KubeConfig, RequestContext } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { makeSelfSignedCert } from '../../test/self-signed-cert.js';
import { undiciHttpLibrary } from './http-library.js';
import { createKubeClients } from './kube-client.js';
import { StreamingWatch } from './watch-stream.js';

let server: http.Server | undefined;

async function serve(handler: (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void): Promise<string> {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

const send = (ctx: RequestContext) => undiciHttpLibrary().send(ctx).toPromise();

describe('undiciHttpLibrary', () => {
  it('sends the method, headers and text body as given, and returns status, headers and the whole body', async () => {
    let seen: { method?: string; url?: string; headers?: http.IncomingHttpHeaders; body?: string } = {};
    const base = await serve((req, body, res) => {
      seen = { method: req.method, url: req.url, headers: req.headers, body };
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.writeHead(201, { 'Content-Type': 'application/json' });
      // The answer in two writes, one cutting a multi-byte character.
      const answer = Buffer.from(JSON.stringify({ kind: 'ImageScanReport', note: 'déjà vu' }));
      const cut = answer.indexOf(Buffer.from('é')) + 1;
      res.write(answer.subarray(0, cut));
      setTimeout(() => res.end(answer.subarray(cut)), 20);
    });
    const ctx = new RequestContext(`${base}/apis/imagescan.dev/v1alpha1/namespaces/shop/imagescanreports?fieldManager=x`, HttpMethod.PATCH);
    ctx.setHeaderParam('Content-Type', 'application/merge-patch+json');
    ctx.setHeaderParam('User-Agent', 'imagescan-operator/test');
    ctx.setBody(JSON.stringify({ status: { phase: 'Scanned', note: 'ünïcode' } }));
    const response = await send(ctx);
    expect(seen.method).toBe('PATCH');
    expect(seen.url).toBe('/apis/imagescan.dev/v1alpha1/namespaces/shop/imagescanreports?fieldManager=x');
    expect(seen.headers?.['content-type']).toBe('application/merge-patch+json');
    expect(seen.headers?.['user-agent']).toBe('imagescan-operator/test');
    expect(JSON.parse(seen.body ?? '')).toEqual({ status: { phase: 'Scanned', note: 'ünïcode' } });
    expect(response.httpStatusCode).toBe(201);
    expect(response.headers['content-type']).toBe('application/json');
    expect(response.headers['set-cookie']).toBe('a=1, b=2');
    expect(JSON.parse(await response.body.text())).toEqual({ kind: 'ImageScanReport', note: 'déjà vu' });
  });

  it('returns an error status with its body for the caller to read', async () => {
    const base = await serve((_req, _body, res) => {
      res.writeHead(409, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', reason: 'Conflict', code: 409 }));
    });
    const response = await send(new RequestContext(`${base}/api/v1/namespaces/shop/pods/p`, HttpMethod.GET));
    expect(response.httpStatusCode).toBe(409);
    expect(JSON.parse(await response.body.text())).toMatchObject({ reason: 'Conflict' });
  });

  it('rejects with the signal’s reason when it aborts while the answer is still coming', async () => {
    const base = await serve((_req, _body, res) => {
      res.writeHead(200);
      res.write('{"items": [');
    });
    const ctx = new RequestContext(`${base}/api/v1/pods`, HttpMethod.GET);
    ctx.setSignal(AbortSignal.timeout(200));
    await expect(send(ctx)).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('refuses a body it cannot send as text', async () => {
    const ctx = new RequestContext('http://127.0.0.1:1/x', HttpMethod.POST);
    ctx.setBody(new URLSearchParams({ a: '1' }));
    await expect(send(ctx)).rejects.toThrow('only text request bodies');
  });
});

describe('the kube clients and watches over HTTPS', () => {
  let tls: https.Server | undefined;
  afterEach(async () => {
    tls?.closeAllConnections();
    await new Promise<void>((resolve) => (tls === undefined ? resolve() : tls.close(() => resolve())));
    tls = undefined;
  });

  it('trust the kubeconfig\'s CA and send its token, and refuse a server that CA did not sign', async () => {
    const cert = makeSelfSignedCert({ ips: ['127.0.0.1'] });
    const authorizations: (string | undefined)[] = [];
    tls = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      authorizations.push(req.headers.authorization);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (new URL(req.url ?? '', 'https://x').searchParams.get('watch') === 'true') res.end(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'shop' } } })}\n`);
      else res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }));
    });
    await new Promise<void>((resolve) => tls?.listen(0, '127.0.0.1', resolve));
    const server = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
    const kubeConfig = (caData: string): KubeConfig => {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server, caData }],
        users: [{ name: 'u', token: 'the-token' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      return kc;
    };
    const kc = kubeConfig(cert.caBundle);
    const clients = createKubeClients(kc, { requestTimeoutMs: 5000, userAgent: 'tls-test' });
    expect((await clients.core.readNamespace({ name: 'shop' })).metadata?.name).toBe('shop');
    expect(await clients.getJson('/api/v1/namespaces/shop', {})).toMatchObject({ metadata: { name: 'shop' } });
    const events = await new Promise<string[]>((resolve) => {
      const seen: string[] = [];
      void new StreamingWatch(kc, 5_000).watch('/api/v1/namespaces', {}, (type) => seen.push(type), () => resolve(seen));
    });
    expect(events).toEqual(['ADDED']);
    expect(authorizations).toEqual(['Bearer the-token', 'Bearer the-token', 'Bearer the-token']);

    const stranger = makeSelfSignedCert({ ips: ['127.0.0.1'] });
    const untrusting = createKubeClients(kubeConfig(stranger.caBundle), { requestTimeoutMs: 5000, userAgent: 'tls-test' });
    await expect(untrusting.getJson('/api/v1/namespaces/shop', {})).rejects.toThrow();
    expect(authorizations).toHaveLength(3);
  });
});
