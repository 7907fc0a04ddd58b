import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { makeSelfSignedCert } from '../../test/self-signed-cert.js';
import type { ImageReference } from '../images/image-reference.js';
import type { NamespaceEntry } from '../kube/cluster-objects.js';
import { compilePolicy } from '../policy/image-scan-policy.js';
import type { CompiledPolicy } from '../policy/image-scan-policy.js';
import { startAdmissionWebhook } from './admission-webhook.js';
import type { AdmissionSources, AdmissionWebhook } from './admission-webhook.js';
import type { KnownScan } from './admission-decider.js';
import { tagKey } from './known-images.js';

const cert = makeSelfSignedCert({ ips: ['127.0.0.1'] });
const DIGEST = `sha256:${'b'.repeat(64)}`;
let dir: string;
let webhook: AdmissionWebhook | undefined;

afterEach(async () => {
  await webhook?.stop();
  webhook = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function policy(spec: Record<string, unknown>): CompiledPolicy {
  const compiled = compilePolicy('gate', spec);
  if (!compiled.ok) throw new Error(compiled.message);
  return compiled.policy;
}

const NGINX_TAG = tagKey('docker.io/library/nginx', '1.25');
const NGINX_SCAN: KnownScan = { scan: { critical: 2, high: 0, fixableCritical: 1, fixableHigh: 0 }, report: { namespace: 'prod', name: 'nginx-abc' } };

/** Fixed sources: nginx:1.25 runs in the cluster with DIGEST; its report has fixable CRITICALs. */
function sources(policies: CompiledPolicy[]): AdmissionSources & { asked: ImageReference[] } {
  const asked: ImageReference[] = [];
  const shop: NamespaceEntry = { key: 'shop', resourceVersion: '1', name: 'shop', labels: { team: 'payments' } };
  return {
    asked,
    policies: { validPolicies: () => policies, onChange: () => undefined },
    namespaces: { on: () => undefined, get: (name) => (name === 'shop' ? shop : undefined), list: () => [shop] },
    images: {
      digestOfTagKey: (key) => (key === NGINX_TAG ? DIGEST : undefined),
      reportScansOfDigest: (digest) => (digest === DIGEST ? [['prod', NGINX_SCAN]] : []),
      tagKeys: () => [NGINX_TAG].values(),
      reportDigests: () => [DIGEST].values(),
      onChange: () => undefined,
    },
    scans: { request: (ref) => asked.push(ref) > 0, learned: () => ({ tags: [], scans: [] }), onLearned: () => undefined, maxLearned: 16 },
  };
}

function review(uid: string, image: string, opts: { kind?: string; group?: string; dryRun?: boolean } = {}): Record<string, unknown> {
  const spec = { containers: [{ name: 'app', image }] };
  const object = opts.kind === 'Pod' ? { metadata: { name: 'p' }, spec } : { metadata: { name: 'd' }, spec: { template: { spec } } };
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid, kind: { group: opts.group ?? 'apps', version: 'v1', kind: opts.kind ?? 'Deployment' }, operation: 'CREATE', namespace: 'shop', object, dryRun: opts.dryRun ?? false } };
}

function post(port: number, body: unknown): Promise<{ status: number; json: { response?: { allowed: boolean; warnings?: string[]; status?: { message: string } } } }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/validate', method: 'POST', ca: cert.certPem, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, json: res.statusCode === 200 ? (JSON.parse(text) as never) : {} });
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function writeCert(target: string): void {
  mkdirSync(target, { recursive: true });
  writeFileSync(path.join(target, 'tls.key'), cert.keyPem);
  writeFileSync(path.join(target, 'tls.crt'), cert.certPem);
}

describe('the admission webhook of an operator replica', () => {
  it('is not served without a certificate, and serves once cert-manager\'s files appear', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'admission-'));
    const certDir = path.join(dir, 'serving-certs');
    const lines: string[] = [];
    webhook = await startAdmissionWebhook({ host: '127.0.0.1', port: 0, certDir, sources: sources([]), logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }), certCheckIntervalMs: 50 });
    expect(webhook.server()).toBeUndefined();
    expect(lines.join('')).toContain('admission webhook not served until a certificate is there');
    writeCert(certDir);
    await expect.poll(() => webhook?.server(), { timeout: 3000 }).toBeDefined();
    const port = webhook.server()?.address.port ?? 0;
    expect((await post(port, review('u1', 'nginx:1.25'))).json.response?.allowed).toBe(true);
  });

  it('judges from the sources, counts each review, and asks for a scan of unscanned images except on a dry run', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'admission-'));
    writeCert(dir);
    const src = sources([policy({ action: 'Deny', unscanned: 'Warn', vulnerabilities: { fixableCritical: 0 } })]);
    const observed: string[] = [];
    webhook = await startAdmissionWebhook({ host: '127.0.0.1', port: 0, certDir: dir, sources: src, logger: pino({ level: 'silent' }), onReviewed: (kind, decision, seconds) => observed.push(`${kind} ${decision} ${seconds < 0.05}`) });
    const port = webhook.server()?.address.port ?? 0;

    const denied = await post(port, review('u1', 'nginx:1.25'));
    expect(denied.json.response?.status?.message).toBe('ImageScanPolicy gate (fixableCritical): nginx:1.25 has 1 fixable CRITICAL vulnerability, more than the 0 allowed: see kubectl get imagescanreport -n prod nginx-abc -o yaml, then upgrade the packages in its status.fixes');
    expect((await post(port, review('u2', 'registry.corp.example/new:1', { dryRun: true }))).json.response?.warnings).toHaveLength(1);
    expect(src.asked).toEqual([]);
    expect((await post(port, review('u3', 'registry.corp.example/new:1', { kind: 'Pod', group: '' }))).json.response?.allowed).toBe(true);
    // Counted, logged and queued by the main thread when the worker's note arrives.
    await expect.poll(() => src.asked.map((r) => `${r.repository}:${r.tag ?? ''}`)).toEqual(['registry.corp.example/new:1']);
    // An unknown kind and an object the webhook cannot read are allowed, not errors.
    expect((await post(port, review('u4', 'nginx:1.25', { kind: 'Widget', group: 'example.com' }))).json.response?.allowed).toBe(true);
    expect((await post(port, { ...review('u5', 'x'), request: { ...(review('u5', 'x').request as object), object: 'not an object' } })).json.response?.allowed).toBe(true);
    expect((await post(port, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })).status).toBe(400);
    await expect.poll(() => observed).toEqual(['Deployment deny true', 'Deployment warn true', 'Pod warn true', 'Widget allow true', 'Deployment allow true']);
  });

  it('answers a huge object (thousands of containers) within the API server\'s timeout', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'admission-'));
    writeCert(dir);
    webhook = await startAdmissionWebhook({ host: '127.0.0.1', port: 0, certDir: dir, sources: sources([policy({ action: 'Warn', allowedRegistries: ['registry.corp.example'] })]), logger: pino({ level: 'silent' }) });
    const containers = Array.from({ length: 5000 }, (_, i) => ({ name: `c${i}`, image: `registry.corp.example/app-${i % 50}:1`, env: [{ name: 'PAD', value: 'x'.repeat(200) }] }));
    const body = review('big', 'x');
    (body.request as { object: unknown }).object = { metadata: { name: 'd' }, spec: { template: { spec: { containers } } } };
    const started = Date.now();
    const answer = await post(webhook.server()?.address.port ?? 0, body);
    expect(answer.json.response?.allowed).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('answers while the main thread is busy: a 500 ms synchronous loop delays no answer', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'admission-'));
    writeCert(dir);
    webhook = await startAdmissionWebhook({ host: '127.0.0.1', port: 0, certDir: dir, sources: sources([policy({ action: 'Deny', vulnerabilities: { fixableCritical: 0 } })]), logger: pino({ level: 'silent' }) });
    // The client must not share the busy thread: it runs on a thread of its own, over one kept-alive connection.
    const client = new Worker(
      `const https = require('node:https');
       const { parentPort, workerData } = require('node:worker_threads');
       const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: workerData.ca });
       const post = () => new Promise((resolve, reject) => {
         const started = performance.now();
         const req = https.request({ host: '127.0.0.1', port: workerData.port, path: '/validate', method: 'POST', agent }, (res) => {
           const chunks = [];
           res.on('data', (c) => chunks.push(c));
           res.on('end', () => resolve({ ms: performance.now() - started, allowed: JSON.parse(Buffer.concat(chunks).toString()).response.allowed }));
         });
         req.on('error', reject);
         req.end(workerData.body);
       });
       (async () => {
         await post();
         parentPort.postMessage({ ready: true });
         const answers = [];
         const until = performance.now() + 400;
         while (performance.now() < until) {
           answers.push(await post());
           await new Promise((r) => setTimeout(r, 10));
         }
         parentPort.postMessage({ answers });
       })();`,
      { eval: true, workerData: { ca: cert.certPem, port: webhook.server()?.address.port, body: JSON.stringify(review('busy', 'nginx:1.25')) } },
    );
    try {
      const messages: { ready?: boolean; answers?: { ms: number; allowed: boolean }[] }[] = [];
      client.on('message', (m: (typeof messages)[number]) => messages.push(m));
      await expect.poll(() => messages.length, { timeout: 10_000 }).toBe(1);
      const busyUntil = Date.now() + 500;
      while (Date.now() < busyUntil) {
        // The rescan's reconciles, report parsing and GC, in one piece.
      }
      await expect.poll(() => messages.length, { timeout: 10_000 }).toBe(2);
      const answers = messages[1]?.answers ?? [];
      // Every answer is the decision (a deny) and none waited for the loop (1-13 ms here on a loaded
      // machine); served from the main thread, the first would take ~500 ms.
      expect(answers.length).toBeGreaterThan(3);
      expect(answers.every((a) => !a.allowed)).toBe(true);
      expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(100);
    } finally {
      await client.terminate();
    }
  });

  it('starts its worker again when it dies, and serves on', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'admission-'));
    writeCert(dir);
    const lines: string[] = [];
    webhook = await startAdmissionWebhook({ host: '127.0.0.1', port: 0, certDir: dir, sources: sources([]), logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }), restartDelayMs: 50 });
    const first = webhook.worker();
    await first?.terminate();
    await expect.poll(() => lines.join(''), { timeout: 5000 }).toContain('admission webhook worker exited; starting it again');
    await expect.poll(() => webhook?.server(), { timeout: 10_000 }).toBeDefined();
    expect(webhook.worker()).not.toBe(first);
    expect((await post(webhook.server()?.address.port ?? 0, review('again', 'nginx:1.25'))).json.response?.allowed).toBe(true);
  });
});
