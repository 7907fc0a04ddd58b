import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { makeSelfSignedCert } from '../../test/self-signed-cert.js';
import { admissionResponse } from './admission-review.js';
import type { AdmissionRequest } from './admission-review.js';
import { startWebhookServer } from './webhook-server.js';
import type { WebhookServer } from './webhook-server.js';

const logger = pino({ level: 'silent' });
const certA = makeSelfSignedCert({ ips: ['127.0.0.1'], commonName: 'webhook-a' });
const certB = makeSelfSignedCert({ ips: ['127.0.0.1'], commonName: 'webhook-b' });

let server: WebhookServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Answer {
  status: number;
  body: string;
  servedBy: string;
}

/** POSTs to the webhook trusting both test certificates; tells which one the server presented. */
function post(pathName: string, body: string, method = 'POST'): Promise<Answer> {
  if (!server) throw new Error('no server');
  const { port } = server.address;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: pathName, method, ca: [certA.certPem, certB.certPem], agent: false, headers: { 'Content-Type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      const peer = (res.socket as TLSSocket).getPeerX509Certificate();
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), servedBy: peer?.subject.replace('CN=', '') ?? '' }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function review(uid: string): string {
  return JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid, kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, operation: 'CREATE', namespace: 'shop' } });
}

async function start(decide: (r: AdmissionRequest) => ReturnType<typeof admissionResponse> = (r) => admissionResponse(r.uid, { allowed: false, message: `no ${r.namespace ?? ''}` }), maxBodyBytes?: number): Promise<void> {
  server = await startWebhookServer({ host: '127.0.0.1', port: 0, certificate: { cert: certA.certPem, key: certA.keyPem }, decide, logger, ...(maxBodyBytes ? { maxBodyBytes } : {}) });
}

describe('webhook server', () => {
  it('answers an AdmissionReview on POST /validate with the decision, uid echoed', async () => {
    await start();
    const answer = await post('/validate?timeout=5s', review('uid-1'));
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-1', allowed: false, status: { code: 403, reason: 'Forbidden', message: 'no shop' } } });
    expect(answer.servedBy).toBe('webhook-a');
  });

  it('answers malformed reviews with 400, other paths 404, other methods 405, huge bodies 413', async () => {
    await start(undefined, 4096);
    expect(await post('/validate', '{not json')).toMatchObject({ status: 400, body: 'body is not JSON\n' });
    expect(await post('/validate', JSON.stringify({ apiVersion: 'v1', kind: 'Pod' }))).toMatchObject({ status: 400, body: 'expected an admission.k8s.io/v1 AdmissionReview, got v1 Pod\n' });
    expect((await post('/mutate', review('u'))).status).toBe(404);
    expect((await post('/validate', '', 'GET')).status).toBe(405);
    expect((await post('/validate', 'x'.repeat(10_000))).status).toBe(413);
    // Still serving after all that.
    expect((await post('/validate', review('u2'))).status).toBe(200);
  });

  it('fails open when the decision throws', async () => {
    await start(() => {
      throw new Error('bug');
    });
    expect(JSON.parse((await post('/validate', review('u3'))).body)).toMatchObject({ response: { uid: 'u3', allowed: true } });
  });

  it('serves a replaced certificate to new connections on the same port', async () => {
    await start();
    expect((await post('/validate', review('a'))).servedBy).toBe('webhook-a');
    const port = server?.address.port;
    server?.setCertificate({ cert: certB.certPem, key: certB.keyPem });
    expect((await post('/validate', review('b'))).servedBy).toBe('webhook-b');
    expect(server?.address.port).toBe(port);
  });

  it('refuses to start with an unusable certificate', async () => {
    await expect(startWebhookServer({ host: '127.0.0.1', port: 0, certificate: { cert: 'not a certificate', key: certA.keyPem }, decide: (r) => admissionResponse(r.uid, { allowed: true }), logger })).rejects.toThrow();
  });
});
