import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../e2e/fake-apiserver/faults.js';
import { digestFor } from '../e2e/fake-apiserver/seed.js';
import { decideReview } from '../src/admission/admission-decider.js';
import type { AdmissionKnowledge } from '../src/admission/admission-decider.js';
import { admissionResponse, parseAdmissionReview } from '../src/admission/admission-review.js';
import type { AdmissionRequest, AdmissionReviewResponse } from '../src/admission/admission-review.js';
import { imagesToJudge } from '../src/admission/admitted-images.js';
import { startWebhookServer, WEBHOOK_PATH } from '../src/admission/webhook-server.js';
import type { WebhookServer } from '../src/admission/webhook-server.js';
import { parseImageReference } from '../src/images/image-reference.js';
import { compilePolicy } from '../src/policy/image-scan-policy.js';
import { makeSelfSignedCert } from '../test/self-signed-cert.js';
import { checkAnswer, dueBy, dueMs, percentile, requestCount, runAdmissionLoad } from './admission-load.js';
import { admissionReviews, repositoryOf, reviewUid } from './admission-reviews.js';
import type { GeneratedReview, ReviewInputs } from './admission-reviews.js';
import { benchPolicy, imageForRank, namespaceLabels, outsideImage, planCluster, unknownImage } from './cluster-model.js';

const plan = planCluster({ pods: 400, namespaces: 20, digests: 60, teams: 5, nodes: 4 }, seededRandom(1));
const inputs: ReviewInputs = {
  namespaces: plan.namespaces.map((ns) => ns.name),
  known: plan.images.map((image) => ({ image, digest: digestFor(image) })),
  unknown: Array.from({ length: 5 }, (_, i) => unknownImage(i)),
  outside: Array.from({ length: 3 }, (_, i) => outsideImage(i)),
};

function take(n: number, seed = 7, run = 1): GeneratedReview[] {
  const gen = admissionReviews(inputs, seededRandom(seed), run);
  return Array.from({ length: n }, () => gen.next().value as GeneratedReview);
}

describe('the admission reviews', () => {
  const reviews = take(2_000);

  it('are AdmissionReview v1 requests the webhook judges, with the images they list', () => {
    for (const r of reviews) {
      const parsed = parseAdmissionReview(JSON.parse(r.body));
      if (!parsed.ok) throw new Error(parsed.problem);
      expect(parsed.request.uid).toBe(r.uid);
      expect(parsed.request.namespace).toBe(r.namespace);
      const judged = imagesToJudge(parsed.request);
      if (!judged.judge) throw new Error(`${r.uid} not judged: ${judged.reason}`);
      expect(judged.images).toEqual([...new Set(r.images.map((i) => i.image))].sort());
      for (const image of judged.images) expect(() => parseImageReference(image)).not.toThrow();
    }
  });

  it('each have their own uid, also across runs', () => {
    expect(new Set(reviews.map((r) => r.uid)).size).toBe(reviews.length);
    const other = take(50, 7, 2);
    expect(other.some((r) => reviews.some((s) => s.uid === r.uid))).toBe(false);
    expect(reviewUid(1, 0x1234)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('mix Deployments and bare pods, and known, digest-pinned, unknown and outside images', () => {
    const kinds = new Map<string, number>();
    for (const r of reviews) kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
    expect(kinds.get('Pod')).toBeGreaterThan(800);
    expect(kinds.get('Deployment')).toBeGreaterThan(800);
    const images = reviews.flatMap((r) => r.images);
    const share = (c: string): number => images.filter((i) => i.category === c).length / images.length;
    expect(share('known')).toBeCloseTo(0.45, 1);
    expect(share('pinned')).toBeCloseTo(0.3, 1);
    expect(share('unknown')).toBeCloseTo(0.15, 1);
    expect(share('outside')).toBeCloseTo(0.1, 1);
    for (const i of images) {
      if (i.category === 'known') expect(plan.images).toContain(i.image);
      if (i.category === 'unknown') expect(inputs.unknown).toContain(i.image);
      if (i.category === 'outside') expect(inputs.outside).toContain(i.image);
    }
  });

  it('pin images by the digest they run with in the cluster', () => {
    const pinned = reviews.flatMap((r) => r.images).filter((i) => i.category === 'pinned');
    for (const { image } of pinned.slice(0, 200)) {
      const repository = repositoryOf(image);
      const known = inputs.known.find((k) => repositoryOf(k.image) === repository);
      expect(image).toBe(`${repository}@${known?.digest ?? '?'}`);
    }
    expect(repositoryOf(imageForRank(0))).toBe('registry.bench.local/app-00001');
    expect(repositoryOf('localhost:5000/a/b@sha256:00')).toBe('localhost:5000/a/b');
  });

  it('are the same for the same seed', () => {
    expect(take(20).map((r) => r.body)).toEqual(reviews.slice(0, 20).map((r) => r.body));
  });
});

describe('the bench policy', () => {
  it('is a valid ImageScanPolicy that governs every other namespace and warns on the outside registry', () => {
    const compiled = compilePolicy(benchPolicy().metadata.name, benchPolicy().spec);
    if (!compiled.ok) throw new Error(compiled.message);
    const governed = plan.namespaces.filter((ns) => ns.governed).map((ns) => ns.name);
    expect(governed).toHaveLength(plan.namespaces.length / 2);
    const labels = new Map(plan.namespaces.map((ns) => [ns.name, namespaceLabels(ns)]));
    const knowledge: AdmissionKnowledge = {
      policies: () => [compiled.policy],
      namespaceLabels: (ns) => labels.get(ns),
      scanResult: () => ({ scan: { critical: 0, high: 0, fixableCritical: 0, fixableHigh: 0 } }),
    };
    const request = (namespace: string, image: string): AdmissionRequest => ({ uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace, name: 'p', object: { spec: { containers: [{ name: 'c', image }] } }, oldObject: undefined, dryRun: false });
    const ungoverned = plan.namespaces.find((ns) => !ns.governed)?.name ?? '';
    expect(decideReview(request(governed[0] ?? '', outsideImage(0)), knowledge).decision).toBe('warn');
    expect(decideReview(request(governed[0] ?? '', imageForRank(0)), knowledge).decision).toBe('allow');
    expect(decideReview(request(ungoverned, outsideImage(0)), knowledge).decision).toBe('allow');
  });
});

describe('the pacing', () => {
  it('spaces requests evenly at the rate, whatever the answers', () => {
    expect(requestCount(200, 30)).toBe(6_000);
    expect(dueMs(0, 200)).toBe(0);
    expect(dueMs(1, 200)).toBe(5);
    expect(dueMs(5_999, 200)).toBe(29_995);
    // On time: one due at 0 ms, the next at 5 ms.
    expect(dueBy(0, 0, 6_000, 200)).toBe(1);
    expect(dueBy(4.9, 1, 6_000, 200)).toBe(1);
    expect(dueBy(5, 1, 6_000, 200)).toBe(2);
    // A sender late by 100 ms catches up at once rather than sending fewer.
    expect(dueBy(105, 2, 6_000, 200)).toBe(22);
    // Never past the end, never backwards.
    expect(dueBy(60_000, 10, 6_000, 200)).toBe(6_000);
    expect(dueBy(0, 10, 6_000, 200)).toBe(10);
  });
});

describe('percentile', () => {
  it('is the nearest rank', () => {
    const values = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(percentile(values, 99)).toBe(198);
    expect(percentile(values, 50)).toBe(100);
    expect(percentile(values, 100)).toBe(200);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 99)).toBeNaN();
  });
});

describe('checkAnswer', () => {
  const ok = (r: AdmissionReviewResponse): string => JSON.stringify(r);
  it('takes an AdmissionReview v1 with the uid echoed, and tells allow, warn and deny apart', () => {
    expect(checkAnswer('a', 200, ok(admissionResponse('a', { allowed: true })))).toEqual({ ok: true, decision: 'allow' });
    expect(checkAnswer('a', 200, ok(admissionResponse('a', { allowed: true, warnings: ['w'] })))).toEqual({ ok: true, decision: 'warn' });
    expect(checkAnswer('a', 200, ok(admissionResponse('a', { allowed: false, message: 'no' })))).toEqual({ ok: true, decision: 'deny' });
  });
  it('counts as errors what the API server could not use', () => {
    expect(checkAnswer('a', 500, 'boom')).toMatchObject({ ok: false, error: 'status' });
    expect(checkAnswer('a', 200, 'not json')).toMatchObject({ ok: false, error: 'body' });
    expect(checkAnswer('a', 200, JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', response: { uid: 'a', allowed: true } }))).toMatchObject({ ok: false, error: 'body' });
    expect(checkAnswer('a', 200, JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'a' } }))).toMatchObject({ ok: false, error: 'body' });
    expect(checkAnswer('a', 200, ok(admissionResponse('b', { allowed: true })))).toMatchObject({ ok: false, error: 'uid' });
  });
});

describe('runAdmissionLoad against the webhook server', () => {
  const cert = makeSelfSignedCert({ ips: ['127.0.0.1'] });
  let server: WebhookServer | undefined;
  const rawServers: https.Server[] = [];
  afterEach(async () => {
    await server?.close();
    server = undefined;
    for (const raw of rawServers.splice(0)) {
      raw.closeAllConnections();
      raw.close();
    }
  });

  const serve = async (decide: (r: AdmissionRequest) => AdmissionReviewResponse): Promise<string> => {
    server = await startWebhookServer({ host: '127.0.0.1', port: 0, certificate: { cert: cert.certPem, key: cert.keyPem }, decide, logger: pino({ level: 'silent' }) });
    return `${server.url}${WEBHOOK_PATH}`;
  };
  /** A misbehaving webhook: answers each review's uid as `answer` says, after its delay (never when undefined). */
  const serveRaw = async (answer: (uid: string, index: number) => { delayMs: number; status: number; body: string } | undefined): Promise<string> => {
    const raw = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const uid = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request: { uid: string } }).request.uid;
        const a = answer(uid, Number.parseInt(uid.slice(-12), 16));
        if (a === undefined) return;
        setTimeout(() => res.writeHead(a.status, { 'Content-Type': 'application/json' }).end(a.body), a.delayMs);
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    rawServers.push(raw);
    return `https://127.0.0.1:${(raw.address() as AddressInfo).port}${WEBHOOK_PATH}`;
  };
  const next = (): (() => { uid: string; body: string }) => {
    const gen = admissionReviews(inputs, seededRandom(3));
    return () => gen.next().value as GeneratedReview;
  };

  it('sends rate × seconds reviews over TLS and gets every one answered with its decision', async () => {
    const compiled = compilePolicy('bench', benchPolicy().spec);
    if (!compiled.ok) throw new Error(compiled.message);
    const labels = new Map(plan.namespaces.map((ns) => [ns.name, namespaceLabels(ns)]));
    const knownDigests = new Set(inputs.known.map((k) => k.digest));
    const knownImages = new Set(plan.images);
    const knowledge: AdmissionKnowledge = {
      policies: () => [compiled.policy],
      namespaceLabels: (ns) => labels.get(ns),
      scanResult: (ref) =>
        (ref.digest !== undefined && knownDigests.has(ref.digest)) || knownImages.has(`${ref.repository}:${ref.tag ?? ''}`) ? { scan: { critical: 0, high: 0, fixableCritical: 0, fixableHigh: 0 } } : undefined,
    };
    const url = await serve((r) => decideReview(r, knowledge).response);
    const result = await runAdmissionLoad({ url, caPem: cert.certPem, ratePerSecond: 200, seconds: 1, timeoutMs: 5_000, next: next() });
    expect(result.sent).toBe(200);
    expect(result.errors).toBe(0);
    expect(result.answered).toBe(200);
    // Unknown and outside images in governed namespaces warn; everything else is allowed.
    expect(result.decisions.warn).toBeGreaterThan(10);
    expect(result.decisions.allow).toBeGreaterThan(100);
    expect(result.decisions.deny).toBe(0);
    expect(result.latencyMs.p99).toBeGreaterThan(0);
    expect(result.latencyMs.p99).toBeLessThanOrEqual(result.latencyMs.max);
    expect(result.achievedRatePerSecond).toBeGreaterThan(150);
    expect(result.connections).toBeGreaterThanOrEqual(1);
  });

  it('keeps sending on schedule when answers are slow (open loop)', async () => {
    // Every answer takes 300 ms: a closed-loop sender on one connection would manage 3 per second.
    const url = await serveRaw((uid) => ({ delayMs: 300, status: 200, body: JSON.stringify(admissionResponse(uid, { allowed: true })) }));
    const result = await runAdmissionLoad({ url, caPem: cert.certPem, ratePerSecond: 100, seconds: 1, timeoutMs: 5_000, next: next() });
    expect(result.sent).toBe(100);
    expect(result.errors).toBe(0);
    expect(result.achievedRatePerSecond).toBeGreaterThan(80);
    expect(result.sendLagMs.p99).toBeLessThan(100);
    expect(result.latencyMs.p50).toBeGreaterThanOrEqual(300);
    expect(result.connections).toBeGreaterThan(10);
  });

  it('counts timeouts, error statuses, wrong uids and answers that are not AdmissionReviews', async () => {
    const good = (uid: string): string => JSON.stringify(admissionResponse(uid, { allowed: true }));
    const url = await serveRaw((uid, i) => {
      if (i % 10 === 1) return undefined; // never answered
      if (i % 10 === 2) return { delayMs: 0, status: 500, body: 'internal error' };
      if (i % 10 === 3) return { delayMs: 0, status: 200, body: good('someone-else') };
      if (i % 10 === 4) return { delayMs: 0, status: 200, body: '{"kind":"Status"}' };
      return { delayMs: 0, status: 200, body: good(uid) };
    });
    const result = await runAdmissionLoad({ url, caPem: cert.certPem, ratePerSecond: 100, seconds: 0.5, timeoutMs: 300, next: next() });
    expect(result.sent).toBe(50);
    expect(result.errorsByKind).toEqual({ timeout: 5, status: 5, uid: 5, body: 5, connection: 0 });
    expect(result.errors).toBe(20);
    expect(result.answered).toBe(30);
    expect(result.errorSamples).toHaveLength(5);
  });

  it('counts refused connections, and a decision that throws is still a well-formed allow', async () => {
    let n = 0;
    const url = await serve((r) => {
      n += 1;
      if (n % 4 === 0) throw new Error('decision failed');
      return admissionResponse(r.uid, { allowed: true });
    });
    const result = await runAdmissionLoad({ url, caPem: cert.certPem, ratePerSecond: 100, seconds: 0.4, timeoutMs: 5_000, next: next() });
    expect(result).toMatchObject({ sent: 40, answered: 40, errors: 0 });

    await server?.close();
    const refused = await runAdmissionLoad({ url, caPem: cert.certPem, ratePerSecond: 100, seconds: 0.1, timeoutMs: 1_000, next: next() });
    expect(refused.errorsByKind.connection).toBe(10);
  });
});
