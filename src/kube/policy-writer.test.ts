import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../../e2e/fake-apiserver/index.js';
import type { FakeApiServer, KubeObject } from '../../e2e/fake-apiserver/index.js';
import type { ImageScanReport, ReportPolicyStatus } from '../reports/image-scan-report.js';
import { buildReportObject } from '../reports/report-builder.js';
import { createKubeClients } from './kube-client.js';
import { KubePolicyWriter } from './policy-writer.js';
import { KubeReportStore } from './report-store.js';

const DIGEST = `sha256:${'c'.repeat(64)}`;
const FAIL: ReportPolicyStatus = { result: 'Fail', violations: [{ policy: 'corp-only', rule: 'registry', message: 'nginx:1.25 is not from an allowed registry' }] };

describe('the policy audit and the report reconciler writing one report status', () => {
  let api: FakeApiServer;
  let store: KubeReportStore;
  let writer: KubePolicyWriter;

  beforeEach(async () => {
    api = await startFakeApiServer({});
    api.seed.namespace('shop');
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    const clients = createKubeClients(kc, { requestTimeoutMs: 5000, userAgent: 'policy-writer-test' });
    store = new KubeReportStore(clients.custom);
    writer = new KubePolicyWriter(clients.custom);
  });
  afterEach(async () => {
    await api.stop();
  });

  const read = async (name: string): Promise<ImageScanReport | undefined> => store.get('shop', name);

  it('each keeps the fields of the other: reconcile never drops status.policy, the audit never drops reconcile fields', async () => {
    const created = await store.create(buildReportObject({ namespace: 'shop', image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest: DIGEST, team: 'payments', workloads: [] }));
    const name = created.metadata?.name ?? '';
    const scanned = await store.patchStatus(created, { phase: 'Scanned', team: 'payments', workloads: [{ kind: 'Deployment', name: 'web' }] });

    const version = await writer.patchReportPolicy('shop', name, FAIL);
    const afterAudit = await read(name);
    expect(version).toBe(afterAudit?.metadata?.resourceVersion);
    expect(afterAudit?.status).toEqual({ phase: 'Scanned', team: 'payments', workloads: [{ kind: 'Deployment', name: 'web' }], policy: FAIL });

    // Reconcile from a copy that predates the audit's write, and from one that holds it: both lack
    // status.policy in what they want, and neither removes it nor sends it.
    await store.patchStatus(scanned, { phase: 'Scanned', team: 'search', workloads: [] });
    expect((await read(name))?.status).toEqual({ phase: 'Scanned', team: 'search', workloads: [], policy: FAIL });
    const holding = await read(name);
    if (holding === undefined) throw new Error('report gone');
    await store.patchStatus(holding, { phase: 'Failed', message: 'Scan failed (timeout)', workloads: [] });
    expect((await read(name))?.status).toEqual({ phase: 'Failed', message: 'Scan failed (timeout)', workloads: [], policy: FAIL });
    const statusPatches = api.requests().filter((r) => r.verb === 'patch' && r.subresource === 'status' && r.userAgent?.includes('policy-writer-test') === true);
    expect(statusPatches.length).toBe(4);

    await writer.patchReportPolicy('shop', name, null);
    expect((await read(name))?.status).toEqual({ phase: 'Failed', message: 'Scan failed (timeout)', workloads: [] });
  });

  it('treats a report or a policy that is gone as nothing to write', async () => {
    expect(await writer.patchReportPolicy('shop', 'nginx-cccccccccccc', FAIL)).toBeUndefined();
    expect(await writer.patchPolicyStatus('no-such-policy', { observedGeneration: 1, violations: 0 })).toBeUndefined();
  });

  it('writes the status of a cluster-scoped policy through its status subresource, leaving the spec alone', async () => {
    api.objects.create({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanPolicy', metadata: { name: 'corp-only' }, spec: { allowedRegistries: ['registry.corp.example'] } } as KubeObject);
    const status = {
      observedGeneration: 1,
      violations: 3,
      conditions: [{ type: 'Ready', status: 'True' as const, observedGeneration: 1, lastTransitionTime: '2026-12-07T17:00:00Z', reason: 'Valid', message: 'In force' }],
    };
    expect(await writer.patchPolicyStatus('corp-only', status)).toMatch(/^\d+$/);
    const stored = api.objects.get('imagescanpolicies.imagescan.dev', undefined, 'corp-only') as { spec?: unknown; status?: unknown } | undefined;
    expect(stored?.status).toEqual(status);
    expect(stored?.spec).toEqual({ action: 'Warn', unscanned: 'Warn', allowedRegistries: ['registry.corp.example'] });
  });
});
