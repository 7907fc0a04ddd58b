import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../../e2e/fake-apiserver/index.js';
import type { FakeApiServer, KubeObject } from '../../e2e/fake-apiserver/index.js';
import type { ImageScanReport } from '../reports/image-scan-report.js';
import { LABEL_MANAGED_BY } from '../reports/image-scan-report.js';
import { buildReportObject } from '../reports/report-builder.js';
import { createKubeClients } from './kube-client.js';
import { PolicyStore } from '../policy/policy-store.js';
import { createPolicyInformer, createReportInformer, nextReportPageSize } from './watches.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const asKubeObject = (report: ImageScanReport): KubeObject => JSON.parse(JSON.stringify(report)) as KubeObject;

describe('the report informer', () => {
  let api: FakeApiServer;
  beforeEach(async () => {
    api = await startFakeApiServer({});
    api.seed.namespace('shop');
  });
  afterEach(async () => {
    await api.stop();
  });

  it('lists and watches only the reports this operator manages, in pages', async () => {
    for (const [i, image] of ['nginx:1.25', 'redis:7', 'alpine:3.19'].entries()) {
      const report = buildReportObject({ namespace: 'shop', image, repository: `docker.io/library/${image.split(':')[0] ?? ''}`, digest: DIGEST.replace(/a$/, String(i)), team: 'payments', workloads: [] });
      api.objects.create(asKubeObject(report));
    }
    const foreign = buildReportObject({ namespace: 'shop', image: 'busybox:1', repository: 'docker.io/library/busybox', digest: DIGEST, team: 'payments', workloads: [] });
    api.objects.create(asKubeObject({ ...foreign, metadata: { ...foreign.metadata, labels: { ...foreign.metadata?.labels, [LABEL_MANAGED_BY]: 'someone-else' } } }));

    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    const informer = createReportInformer(createKubeClients(kc, { requestTimeoutMs: 5000, userAgent: 'watch-test' }).getJson, { kubeConfig: kc, logger: pino({ level: 'silent' }), reportPageSize: 2 });
    informer.start();
    try {
      await informer.whenSynced();
      expect([...informer.list()].map((r) => r.report.spec?.image).sort()).toEqual(['alpine:3.19', 'nginx:1.25', 'redis:7']);
      const lists = api.requests().filter((r) => r.resource === 'imagescanreports' && r.verb === 'list');
      expect(lists).toHaveLength(2);
      for (const r of lists) expect(decodeURIComponent(r.path)).toContain('labelSelector=app.kubernetes.io/managed-by=imagescan-operator');
    } finally {
      informer.stop();
    }
  });
});

describe('report list pages', () => {
  const reports = (count: number, entries: number): unknown[] =>
    Array.from({ length: count }, () => ({ status: { vulnerabilities: Array.from({ length: entries }, (_, i) => ({ id: `CVE-2024-${i}` })) } }));

  it('take 500 reports that carry fix entries only, and fewer the longer their per-vulnerability lists', () => {
    expect(nextReportPageSize(reports(50, 0))).toBe(500);
    expect(nextReportPageSize([])).toBe(500);
    expect(nextReportPageSize(reports(50, 100))).toBe(250);
    expect(nextReportPageSize(reports(50, 500))).toBe(50);
    expect(nextReportPageSize(reports(50, 1000))).toBe(50);
    // An upgrade over old reports: half of a page with lists of 400 is 200 entries per report.
    expect(nextReportPageSize([...reports(25, 400), ...reports(25, 0)])).toBe(125);
    expect(nextReportPageSize([null, 'not a report', { status: null }])).toBe(500);
  });

  it('start small, then follow the size of the reports the API server returns', async () => {
    const api = await startFakeApiServer({});
    try {
      api.seed.namespace('shop');
      for (let i = 0; i < 120; i += 1) {
        const report = buildReportObject({ namespace: 'shop', image: `app-${i}:1`, repository: `docker.io/library/app-${i}`, digest: `sha256:${i.toString(16).padStart(64, '0')}`, team: 'payments', workloads: [] });
        api.objects.create(asKubeObject(report));
      }
      const kc = new KubeConfig();
      kc.loadFromFile(api.kubeconfigPath);
      const informer = createReportInformer(createKubeClients(kc, { requestTimeoutMs: 5000, userAgent: 'watch-test' }).getJson, { kubeConfig: kc, logger: pino({ level: 'silent' }) });
      informer.start();
      try {
        await informer.whenSynced();
        expect(informer.size()).toBe(120);
        const limits = api.requests().filter((r) => r.resource === 'imagescanreports' && r.verb === 'list').map((r) => new URL(r.path, 'http://x').searchParams.get('limit'));
        expect(limits).toEqual(['50', '500']);
      } finally {
        informer.stop();
      }
    } finally {
      await api.stop();
    }
  });
});

describe('the policy informer', () => {
  let api: FakeApiServer;
  beforeEach(async () => {
    api = await startFakeApiServer({});
  });
  afterEach(async () => {
    await api.stop();
  });

  it('lists and watches the cluster-scoped policies into a store that compiles them', async () => {
    const policy = (name: string, spec: Record<string, unknown>): KubeObject => ({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanPolicy', metadata: { name }, spec }) as KubeObject;
    api.objects.create(policy('corp-registry', { allowedRegistries: ['registry.corp.example'] }));
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    const informer = createPolicyInformer(createKubeClients(kc, { requestTimeoutMs: 5000, userAgent: 'watch-test' }).getJson, { kubeConfig: kc, logger: pino({ level: 'silent' }) });
    const store = new PolicyStore(informer);
    informer.start();
    try {
      await informer.whenSynced();
      expect(store.validPolicies().map((p) => [p.name, p.action])).toEqual([['corp-registry', 'Warn']]);
      expect(store.get('corp-registry')?.generation).toBe(1);
      api.objects.create(policy('no-criticals', { action: 'Deny', vulnerabilities: { critical: 0 } }));
      await expect.poll(() => store.validPolicies().map((p) => p.name)).toEqual(['corp-registry', 'no-criticals']);
    } finally {
      await informer.stop();
    }
  });
});
