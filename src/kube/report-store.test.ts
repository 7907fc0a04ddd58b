import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../../e2e/fake-apiserver/index.js';
import type { FakeApiServer } from '../../e2e/fake-apiserver/index.js';
import { buildReportObject } from '../reports/report-builder.js';
import { FIELD_MANAGER } from '../reports/image-scan-report.js';
import { KubeApiError } from './api-error.js';
import { slimReport } from './cluster-objects.js';
import { createKubeClients } from './kube-client.js';
import { KubeReportStore, reportAfterStatusWrite } from './report-store.js';

const DIGEST = `sha256:${'e'.repeat(64)}`;

describe('KubeReportStore against the fake API server', () => {
  let api: FakeApiServer;
  let store: KubeReportStore;

  beforeEach(async () => {
    api = await startFakeApiServer({});
    api.seed.namespace('shop');
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    store = new KubeReportStore(createKubeClients(kc, { requestTimeoutMs: 5000, userAgent: 'store-test' }).custom);
  });

  afterEach(async () => {
    await api.stop();
  });

  const desired = () =>
    buildReportObject({ namespace: 'shop', image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest: DIGEST, team: 'payments', workloads: [] });

  it('creates without status, then a merge-patched status replaces fields and removes the ones left out', async () => {
    const created = await store.create({ ...desired(), status: { phase: 'Scanned' } });
    expect(created.status).toBeUndefined(); // the status subresource drops status on create
    const name = created.metadata?.name ?? '';
    const failed = await store.patchStatus(created, {
      phase: 'Failed',
      message: 'Scan failed (auth): no credentials',
      scanner: { name: 'Trivy', version: '0.74.0' },
      workloads: [{ kind: 'Deployment', name: 'web' }],
    });
    expect((await store.get('shop', name))?.status?.message).toContain('auth');
    await store.patchStatus(failed, { phase: 'Scanned', scanner: { name: 'Trivy' }, workloads: [] });
    const stored = await store.get('shop', name);
    expect(stored?.status).toEqual({ phase: 'Scanned', scanner: { name: 'Trivy' }, workloads: [] });
    const patches = api.requests().filter((r) => r.verb === 'patch');
    expect(patches.every((r) => r.contentType?.startsWith('application/merge-patch+json') === true)).toBe(true);
  });

  it('returns the report as written, with the new resourceVersion, from an answer that carries the metadata only', async () => {
    const created = await store.create(desired());
    const written = await store.patchStatus(created, { phase: 'Scanned', lastScanTime: '2026-11-27T01:00:00Z', team: 'payments' });
    const stored = await store.get('shop', created.metadata?.name ?? '');
    expect(written.metadata?.resourceVersion).toBe(stored?.metadata?.resourceVersion);
    expect(written.metadata?.resourceVersion).not.toBe(created.metadata?.resourceVersion);
    expect(written.spec).toEqual(stored?.spec);
    expect(written.status).toEqual(stored?.status);
    const statusPatch = api.requests().find((r) => r.verb === 'patch' && r.subresource === 'status');
    expect(statusPatch?.accept).toMatch(/^application\/json;as=PartialObjectMetadata;g=meta\.k8s\.io;v=v1,application\/json$/);
  });

  it('takes the whole report from a server that ignores the request for metadata only', () => {
    const report = desired();
    const whole = { ...report, metadata: { ...report.metadata, resourceVersion: '7' }, status: { phase: 'Scanned' as const, team: 'search' } };
    expect(reportAfterStatusWrite(whole, report, { phase: 'Scanned' })).toBe(whole);
    const partial = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'nginx-eeeeeeeeeeee', namespace: 'shop', resourceVersion: '8' } };
    expect(reportAfterStatusWrite(partial, report, { phase: 'Pending' })).toEqual({ ...report, metadata: partial.metadata, status: { phase: 'Pending' } });
  });

  it('does not send a vulnerability list the report already holds, and replaces one that changed', async () => {
    const created = await store.create(desired());
    const name = created.metadata?.name ?? '';
    const list = Array.from({ length: 200 }, (_, i) => ({
      id: `CVE-2026-${1000 + i}`,
      severity: 'HIGH' as const,
      package: 'openssl',
      installedVersion: '3.0.1',
      fixedVersion: '3.0.9',
      title: 'a long enough title to make the list weigh what a real one does',
      target: 'debian 12',
    }));
    const first = await store.patchStatus(created, { phase: 'Scanned', lastScanTime: '2026-11-27T01:00:00Z', vulnerabilities: list });
    const rescanned = await store.patchStatus(first, { phase: 'Scanned', lastScanTime: '2026-11-27T07:00:00Z', vulnerabilities: list.map((v) => ({ ...v })) });
    const afterRescan = await store.get('shop', name);
    expect(afterRescan?.status?.lastScanTime).toBe('2026-11-27T07:00:00Z');
    expect(afterRescan?.status?.vulnerabilities).toEqual(list);
    const fixedList = list.slice(1);
    await store.patchStatus(rescanned, { phase: 'Scanned', lastScanTime: '2026-11-27T08:00:00Z', vulnerabilities: fixedList });
    expect((await store.get('shop', name))?.status?.vulnerabilities).toEqual(fixedList);
    const sizes = api.requests().filter((r) => r.verb === 'patch' && r.subresource === 'status').map((r) => r.requestBytes ?? 0);
    expect(sizes).toHaveLength(3);
    expect(sizes[0]).toBeGreaterThan(20_000);
    expect(sizes[1]).toBeLessThan(500);
    expect(sizes[2]).toBeGreaterThan(20_000);
  });

  it('keeps the list on the server when the cache\'s slim copy of a report is written back with other changes', async () => {
    const created = await store.create(desired());
    const name = created.metadata?.name ?? '';
    const list = [{ id: 'CVE-2026-1', severity: 'HIGH' as const, package: 'openssl', installedVersion: '3.0.1', target: 'debian 12' }];
    await store.patchStatus(created, { phase: 'Scanned', vulnerabilities: list, workloads: [{ kind: 'Deployment', name: 'web' }] });
    const cached = slimReport((await store.get('shop', name)) ?? desired()).report;
    expect(cached.status?.vulnerabilities).toBeUndefined();
    await store.patchStatus(cached, { ...cached.status, workloads: [] });
    expect((await store.get('shop', name))?.status).toEqual({ phase: 'Scanned', vulnerabilities: list, workloads: [] });
  });

  it('tells AlreadyExists from NotFound, and deleting a missing report is not an error', async () => {
    await store.create(desired());
    const missing = { ...desired(), metadata: { namespace: 'shop', name: 'missing-000000000000' } };
    await expect(store.create(desired())).rejects.toMatchObject({ kind: 'AlreadyExists', code: 409 });
    await expect(store.patchStatus(missing, { phase: 'Pending' })).rejects.toBeInstanceOf(KubeApiError);
    await expect(store.patchStatus(missing, { phase: 'Pending' })).rejects.toMatchObject({ kind: 'NotFound', transient: false });
    expect(await store.get('shop', 'missing-000000000000')).toBeUndefined();
    await expect(store.delete('shop', 'missing-000000000000')).resolves.toBeUndefined();
  });

  it('classifies injected 429 and 500 as transient', async () => {
    api.faults.set({ errorRate: 1, errorCodes: [429], resources: ['imagescanreports.imagescan.dev'] });
    await expect(store.create(desired())).rejects.toMatchObject({ kind: 'TooManyRequests', transient: true });
    api.faults.set({ errorRate: 1, errorCodes: [500], resources: ['imagescanreports.imagescan.dev'] });
    await expect(store.get('shop', 'x')).rejects.toMatchObject({ kind: 'ServerError', transient: true });
  });

  it('sends our User-Agent and field manager, and gives the server its message back in errors', async () => {
    const created = await store.create(desired());
    const name = created.metadata?.name ?? '';
    await store.patchStatus(created, { phase: 'Pending' });
    const writes = api.requests().filter((r) => r.resource === 'imagescanreports');
    expect(writes.map((r) => r.userAgent)).toEqual(['store-test', 'store-test']);
    expect(writes.map((r) => r.path)).toEqual([
      expect.stringMatching(new RegExp(`^/apis/imagescan.dev/v1alpha1/namespaces/shop/imagescanreports\\?fieldManager=${FIELD_MANAGER}$`)),
      expect.stringMatching(new RegExp(`/imagescanreports/${name}/status\\?fieldManager=${FIELD_MANAGER}$`)),
    ]);
    const invalid = await store.patchStatus(created, { phase: 'Bogus' as 'Pending' }).catch((err: unknown) => err);
    expect(invalid).toMatchObject({ kind: 'Invalid', code: 422, reason: 'Invalid', transient: false });
    expect((invalid as Error).message).toMatch(/^patching status of report shop\/.+: HTTP 422 Invalid: .*phase/);
  });

  it('gives up on a request the server does not answer in time, as a transient error', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    const impatient = new KubeReportStore(createKubeClients(kc, { requestTimeoutMs: 200, userAgent: 'store-test' }).custom);
    api.faults.set({ latencyMs: 2_000, resources: ['imagescanreports.imagescan.dev'] });
    const started = Date.now();
    await expect(impatient.create(desired())).rejects.toMatchObject({ kind: 'Network', transient: true });
    expect(Date.now() - started).toBeLessThan(1_500);
  });
});
