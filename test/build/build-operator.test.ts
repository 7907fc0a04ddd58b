// The image copies dist/ and nothing else: the bundle must run with no node_modules anywhere above it,
// and carry the licence of every package whose code it contains.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildOperator } from '../../scripts/build-operator.js';
import { Worker } from 'node:worker_threads';
import type { FromWorker, ToWorker } from '../../src/admission/webhook-worker.js';
import { ChildSpawner } from '../../src/scanner/child-spawner.js';
import { makeSelfSignedCert } from '../self-signed-cert.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('npm run build', () => {
  let dir: string;
  let mainJs: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'imagescan-build-'));
    mainJs = await buildOperator(path.join(dir, 'dist'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('the bundle runs on its own, outside the project', () => {
    const out = execFileSync(process.execPath, [mainJs, '--help'], { cwd: dir, env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' });
    expect(out).toContain('Usage: imagescan-operator');
  });

  test('the bundled Trivy spawner starts children on its own, beside the bundle', async () => {
    const spawner = new ChildSpawner(path.join(path.dirname(mainJs), 'trivy-spawner.mjs'));
    try {
      const run = await spawner.run(process.execPath, ['-e', 'process.stdout.write("started")'], { env: {}, stdout: 'pipe', maxChars: 100 }).done;
      expect(run).toEqual({ exitCode: 0, stdout: 'started', stderr: '' });
    } finally {
      spawner.close();
    }
  });

  test('the bundled webhook worker answers AdmissionReviews on its own thread, beside the bundle', async () => {
    const cert = makeSelfSignedCert({ ips: ['127.0.0.1'] });
    const worker = new Worker(path.join(path.dirname(mainJs), 'webhook-worker.mjs'), { workerData: { logLevel: 'silent', maxLearned: 4 } });
    try {
      const listening = new Promise<string>((resolve, reject) => {
        worker.on('message', (m: FromWorker) => (m.type === 'listening' ? resolve(m.url) : m.type === 'listen-failed' ? reject(new Error(m.message)) : undefined));
        worker.on('error', reject);
      });
      const send = (m: ToWorker): void => worker.postMessage(m);
      send({ type: 'knowledge', delta: { reset: true } });
      send({ type: 'serve', host: '127.0.0.1', port: 0, certificate: { cert: cert.certPem, key: cert.keyPem } });
      const url = await listening;
      const review = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'nginx' }] } } } };
      const answer = await new Promise<string>((resolve, reject) => {
        const req = https.request(`${url}/validate`, { method: 'POST', ca: cert.certPem }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        });
        req.on('error', reject);
        req.end(JSON.stringify(review));
      });
      expect(JSON.parse(answer)).toMatchObject({ response: { uid: 'u1', allowed: true } });
    } finally {
      await worker.terminate();
    }
  });

  test('the bundle is ASCII, so V8 keeps its source at one byte per character', () => {
    expect(readFileSync(mainJs).every((byte) => byte < 0x80)).toBe(true);
  });

  test('lists the licence of each production dependency it bundles', () => {
    const licences = readFileSync(path.join(dir, 'dist/THIRD-PARTY-LICENSES.txt'), 'utf8');
    const dependencies = Object.keys((JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
    for (const name of dependencies) expect(licences, name).toMatch(new RegExp(`^${name.replace(/[/.]/g, '\\$&')}@\\d`, 'm'));
    expect(licences).toContain('Apache License');
  });
});
