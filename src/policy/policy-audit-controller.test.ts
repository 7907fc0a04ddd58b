import type { CoreV1Event } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { NamespaceEntry, ReportEntry } from '../kube/cluster-objects.js';
import { FakeInformer } from '../../test/fake-informer.js';
import type { Workload } from '../kube/owner-resolver.js';
import { PolicyEventRecorder } from '../kube/policy-event-recorder.js';
import type { ImageScanPolicyStatus, PolicyEntry } from '../kube/policy-entry.js';
import { toPolicyEntry } from '../kube/policy-entry.js';
import type { PolicyWriter } from '../kube/policy-writer.js';
import type { ImageScanReport, ReportPolicyStatus } from '../reports/image-scan-report.js';
import { buildReportObject } from '../reports/report-builder.js';
import { PolicyAuditController } from './policy-audit-controller.js';
import { PolicyStore } from './policy-store.js';

let version = 100;
const nextVersion = (): string => String((version += 1));

function reportEntry(namespace: string, image: string, repository: string, digestChar: string, critical: number, policy?: ReportPolicyStatus): ReportEntry {
  const base = buildReportObject({ namespace, image, repository, digest: `sha256:${digestChar.repeat(64)}`, team: 'payments', workloads: [] });
  const report: ImageScanReport = {
    ...base,
    status: {
      phase: 'Scanned',
      team: 'payments',
      workloads: [{ kind: 'Deployment', name: 'web' }],
      summary: { critical, high: 0, medium: 0, low: 0, unknown: 0, total: critical, fixable: 0 },
      fixes: [],
      ...(policy === undefined ? {} : { policy }),
    },
  };
  const name = base.metadata?.name ?? '';
  return { key: `${namespace}/${name}`, resourceVersion: nextVersion(), namespace, name, report };
}

function policyEntry(name: string, spec: unknown, generation = 1, status?: ImageScanPolicyStatus): PolicyEntry {
  const entry = toPolicyEntry({ metadata: { name, generation, resourceVersion: nextVersion() }, spec, status });
  if (entry === undefined) throw new Error('bad policy');
  return entry;
}

function rig(options: { failWrites?: number } = {}) {
  const reports = new FakeInformer<ReportEntry>();
  const namespaces = new FakeInformer<NamespaceEntry>();
  const policyInformer = new FakeInformer<PolicyEntry>();
  const policies = new PolicyStore(policyInformer);
  const reportWrites: string[] = [];
  const policyWrites: { name: string; status: ImageScanPolicyStatus }[] = [];
  let failures = options.failWrites ?? 0;
  const writer: PolicyWriter = {
    patchReportPolicy: async (namespace, name, policy) => {
      await Promise.resolve();
      if (failures > 0) {
        failures -= 1;
        throw new Error('the API server is busy');
      }
      reportWrites.push(`${namespace}/${name} ${policy?.result ?? 'null'}`);
      const entry = reports.get(`${namespace}/${name}`);
      if (entry === undefined) return undefined;
      const resourceVersion = nextVersion();
      const status = { ...entry.report.status };
      if (policy === null) delete status.policy;
      else status.policy = policy;
      // The watch delivers our write a little later.
      setTimeout(() => reports.put({ ...entry, resourceVersion, report: { ...entry.report, status } }), 5);
      return resourceVersion;
    },
    patchPolicyStatus: async (name, status) => {
      await Promise.resolve();
      policyWrites.push({ name, status });
      const entry = policyInformer.get(name);
      if (entry === undefined) return undefined;
      const resourceVersion = nextVersion();
      setTimeout(() => policyInformer.put({ ...entry, resourceVersion, status }), 5);
      return resourceVersion;
    },
  };
  const events: CoreV1Event[] = [];
  const recorder = new PolicyEventRecorder({
    core: {
      createNamespacedEvent: async ({ body }: { namespace: string; body: CoreV1Event }) => {
        await Promise.resolve();
        events.push(body);
        return body;
      },
    } as unknown as ConstructorParameters<typeof PolicyEventRecorder>[0]['core'],
    logger: pino({ level: 'silent' }),
    instance: 'test',
  });
  const web: Workload = { kind: 'Deployment', name: 'web', namespace: 'shop', apiVersion: 'apps/v1', uid: 'uid-web' };
  const controller = new PolicyAuditController({
    policies,
    policyInformer,
    reports,
    namespaces,
    isWatchedNamespace: (namespace) => namespace !== 'kube-system',
    podsRunning: () => [{ entry: { pod: { metadata: { name: 'web-1', namespace: 'shop' } } } }],
    resolveOwner: async () => {
      await Promise.resolve();
      return web;
    },
    writer,
    events: recorder,
    logger: pino({ level: 'silent' }),
    now: () => new Date('2026-12-07T18:00:00Z'),
    recountDelayMs: 1,
    queueOptions: { baseDelayMs: 5, jitter: 0 },
  });
  /** Resolves once nothing is queued or running, twice in a row across timers (watch deliveries). */
  const settled = async (): Promise<void> => {
    let quiet = 0;
    while (quiet < 3) {
      await new Promise((resolve) => setTimeout(resolve, 15));
      quiet = controller.pendingWork() === 0 ? quiet + 1 : 0;
    }
  };
  return { reports, namespaces, policyInformer, controller, reportWrites, policyWrites, events, settled };
}

describe('PolicyAuditController', () => {
  it('writes each report and policy once, announces each finding once, and a re-evaluation writes nothing', async () => {
    const r = rig();
    r.namespaces.put({ key: 'shop', resourceVersion: '1', name: 'shop', labels: { env: 'prod' } });
    r.namespaces.put({ key: 'dev', resourceVersion: '1', name: 'dev', labels: {} });
    r.namespaces.put({ key: 'kube-system', resourceVersion: '1', name: 'kube-system', labels: { env: 'prod' } });
    r.reports.put(reportEntry('shop', 'nginx:1.19', 'docker.io/library/nginx', 'a', 3));
    r.reports.put(reportEntry('shop', 'alpine:3.19', 'docker.io/library/alpine', 'b', 0));
    r.reports.put(reportEntry('dev', 'nginx:1.19', 'docker.io/library/nginx', 'a', 3));
    // A report left in a namespace the operator no longer watches is not its to judge.
    r.reports.put(reportEntry('kube-system', 'nginx:1.19', 'docker.io/library/nginx', 'a', 3));
    r.policyInformer.put(policyEntry('prod-bar', { namespaceSelector: { matchLabels: { env: 'prod' } }, vulnerabilities: { critical: 0 } }));
    r.controller.start();
    try {
      await r.settled();
      expect(r.reportWrites.sort()).toEqual(['shop/alpine-bbbbbbbbbbbb Pass', 'shop/nginx-aaaaaaaaaaaa Fail']);
      expect(r.policyWrites.at(-1)).toMatchObject({ name: 'prod-bar', status: { observedGeneration: 1, violations: 1 } });
      expect(r.events.map((e) => `${e.involvedObject.kind}/${e.involvedObject.name} ${e.reason ?? ''}`)).toEqual(['Deployment/web ImagePolicyViolation']);

      const writes = r.reportWrites.length + r.policyWrites.length;
      r.controller.resync();
      await r.settled();
      expect(r.reportWrites.length + r.policyWrites.length).toBe(writes);
      expect(r.events).toHaveLength(1);
    } finally {
      await r.controller.stop();
    }
  });

  it('judges a namespace\'s reports again when its labels change, and not when an update only reorders them', async () => {
    const r = rig();
    r.namespaces.put({ key: 'dev', resourceVersion: '1', name: 'dev', labels: { team: 'web', tier: 'dev' } });
    r.reports.put(reportEntry('dev', 'nginx:1.19', 'docker.io/library/nginx', 'a', 3));
    r.policyInformer.put(policyEntry('prod-bar', { namespaceSelector: { matchLabels: { env: 'prod' } }, vulnerabilities: { critical: 0 } }));
    r.controller.start();
    try {
      await r.settled();
      expect(r.reportWrites).toEqual([]);
      r.namespaces.put({ key: 'dev', resourceVersion: '2', name: 'dev', labels: { tier: 'dev', team: 'web' } });
      expect(r.controller.pendingWork()).toBe(0);
      r.namespaces.put({ key: 'dev', resourceVersion: '3', name: 'dev', labels: { tier: 'dev', team: 'web', env: 'prod' } });
      expect(r.controller.pendingWork()).toBeGreaterThan(0);
      await r.settled();
      expect(r.reportWrites).toEqual(['dev/nginx-aaaaaaaaaaaa Fail']);
    } finally {
      await r.controller.stop();
    }
  });

  it('after a restart, announces nothing a report already held and writes nothing that is already right', async () => {
    const r = rig();
    r.namespaces.put({ key: 'shop', resourceVersion: '1', name: 'shop', labels: { env: 'prod' } });
    const held: ReportPolicyStatus = {
      result: 'Fail',
      violations: [
        {
          policy: 'prod-bar',
          rule: 'critical',
          message: 'nginx:1.19 has 3 CRITICAL vulnerabilities, more than ImageScanPolicy prod-bar allows: see kubectl get imagescanreport -n shop nginx-aaaaaaaaaaaa -o yaml, then move to a base image with fewer of them',
        },
      ],
    };
    r.reports.put(reportEntry('shop', 'nginx:1.19', 'docker.io/library/nginx', 'a', 3, held));
    r.policyInformer.put(policyEntry('prod-bar', { namespaceSelector: { matchLabels: { env: 'prod' } }, vulnerabilities: { critical: 0 } }));
    r.controller.start();
    try {
      await r.settled();
      expect(r.reportWrites).toEqual([]);
      expect(r.events).toEqual([]);
      // Only the policy's own status was missing.
      expect(r.policyWrites.map((w) => w.name)).toEqual(['prod-bar']);
    } finally {
      await r.controller.stop();
    }
  });

  it('keeps an invalid policy out of every verdict, says so in Ready, and retries a failed write', async () => {
    const r = rig({ failWrites: 1 });
    r.namespaces.put({ key: 'shop', resourceVersion: '1', name: 'shop', labels: {} });
    r.reports.put(reportEntry('shop', 'nginx:1.19', 'docker.io/library/nginx', 'a', 3));
    r.policyInformer.put(policyEntry('broken', { exemptImages: ['nginx'], vulnerabilities: { critical: 0 } }));
    r.policyInformer.put(policyEntry('registry', { allowedRegistries: ['docker.io/library'] }));
    r.controller.start();
    try {
      await r.settled();
      // The first write failed and was retried: the report holds the verdict of the valid policy only.
      expect(r.reportWrites).toEqual(['shop/nginx-aaaaaaaaaaaa Pass']);
      const broken = r.policyWrites.find((w) => w.name === 'broken');
      expect(broken?.status.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'False', reason: 'InvalidSpec' });
      expect(broken?.status.violations).toBe(0);
    } finally {
      await r.controller.stop();
    }
  });

  it('counts a policy\'s violations as reports change: a clean rescan and a deleted report lower it', async () => {
    const r = rig();
    r.namespaces.put({ key: 'shop', resourceVersion: '1', name: 'shop', labels: {} });
    r.reports.put(reportEntry('shop', 'nginx:1.19', 'docker.io/library/nginx', 'a', 3));
    r.reports.put(reportEntry('shop', 'redis:7', 'docker.io/library/redis', 'b', 1));
    r.policyInformer.put(policyEntry('bar', { vulnerabilities: { critical: 0 } }));
    r.controller.start();
    const violations = (): number | undefined => r.policyWrites.at(-1)?.status.violations;
    try {
      await r.settled();
      expect(violations()).toBe(2);
      const nginx = [...r.reports.list()].find((e) => e.report.spec.image === 'nginx:1.19');
      if (nginx?.report.status?.summary === undefined) throw new Error('no nginx report');
      r.reports.put({ ...nginx, resourceVersion: nextVersion(), report: { ...nginx.report, status: { ...nginx.report.status, summary: { ...nginx.report.status.summary, critical: 0, total: 0 } } } });
      await r.settled();
      expect(violations()).toBe(1);
      const redis = [...r.reports.list()].find((e) => e.report.spec.image === 'redis:7');
      if (redis === undefined) throw new Error('no redis report');
      r.reports.delete(redis.key);
      await r.settled();
      expect(violations()).toBe(0);
      expect(r.reportWrites.sort()).toEqual(['shop/nginx-aaaaaaaaaaaa Fail', 'shop/nginx-aaaaaaaaaaaa Pass', 'shop/redis-bbbbbbbbbbbb Fail']);
    } finally {
      await r.controller.stop();
    }
  });

  it('writes nothing once stopped (leadership lost)', async () => {
    const r = rig();
    r.namespaces.put({ key: 'shop', resourceVersion: '1', name: 'shop', labels: {} });
    r.policyInformer.put(policyEntry('bar', { vulnerabilities: { critical: 0 } }));
    r.controller.start();
    await r.settled();
    await r.controller.stop();
    r.reports.put(reportEntry('shop', 'nginx:1.19', 'docker.io/library/nginx', 'a', 3));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(r.reportWrites).toEqual([]);
  });
});
