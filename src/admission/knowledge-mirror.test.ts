import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeInformer, runningPodEntry as pod } from '../../test/fake-informer.js';
import { parseImageReference } from '../images/image-reference.js';
import { toReportEntry } from '../kube/cluster-objects.js';
import type { NamespaceEntry, PodEntry, ReportEntry } from '../kube/cluster-objects.js';
import { compilePolicy } from '../policy/image-scan-policy.js';
import type { CompiledPolicy } from '../policy/image-scan-policy.js';
import type { ScanResult } from '../scanner/scan-result.js';
import type { AdmissionKnowledge, KnownScan } from './admission-decider.js';
import { KnownImages } from './known-images.js';
import { KnowledgeFeed } from './knowledge-feed.js';
import type { AdmissionSources } from './knowledge-feed.js';
import { KnowledgeMirror } from './knowledge-mirror.js';
import type { KnowledgeDelta } from './knowledge-mirror.js';
import { ReferenceScans } from './reference-scans.js';
import type { ReferenceTarget } from './reference-scans.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const D3 = `sha256:${'3'.repeat(64)}`;
const counts = (critical: number) => ({ critical, high: 0, fixableCritical: critical, fixableHigh: 0 });
const nginx = parseImageReference('nginx:1.25');

describe('KnowledgeMirror', () => {
  it('answers from a snapshot as knowledgeOf does: pinned digest, tag of running pods, then scans by reference; own namespace\'s report first', () => {
    const mirror = new KnowledgeMirror(16);
    mirror.apply({
      reset: true,
      namespaces: [['shop', { team: 'payments' }]],
      tags: [['docker.io/library/nginx:1.25', D1]],
      reports: [[D1, [['prod', { scan: counts(1), report: { namespace: 'prod', name: 'nginx-a' } }], ['shop', { scan: counts(2), report: { namespace: 'shop', name: 'nginx-b' } }]]]],
      referenceTags: [['registry.corp.example/app:2', D2], ['docker.io/library/nginx:1.25', D3]],
      referenceScans: [[D2, counts(5)]],
    });
    expect(mirror.namespaceLabels('shop')).toEqual({ team: 'payments' });
    expect(mirror.namespaceLabels('dev')).toBeUndefined();
    expect(mirror.scanResult(nginx, 'shop')?.report?.name).toBe('nginx-b');
    expect(mirror.scanResult(nginx, 'dev')?.report?.name).toBe('nginx-a');
    // A tag no pod runs: the digest and counts a scan by reference found.
    expect(mirror.scanResult(parseImageReference('registry.corp.example/app:2'), 'shop')).toEqual({ scan: counts(5) });
    expect(mirror.scanResult(parseImageReference(`registry.corp.example/app@${D2}`), 'shop')).toEqual({ scan: counts(5) });
    expect(mirror.scanResult(parseImageReference('registry.corp.example/app:3'), 'shop')).toBeUndefined();
  });

  it('applies deltas: null removes a key, a digest\'s reports are replaced whole, reset starts over', () => {
    const mirror = new KnowledgeMirror(16);
    mirror.apply({ reset: true, tags: [['docker.io/library/nginx:1.25', D1]], reports: [[D1, [['prod', { scan: counts(1), report: { namespace: 'prod', name: 'nginx-a' } }]]]], namespaces: [['shop', { team: 'a' }]] });
    mirror.apply({ reports: [[D1, [['dev', { scan: counts(3), report: { namespace: 'dev', name: 'nginx-c' } }]]]], namespaces: [['shop', { team: 'b' }]] });
    expect(mirror.scanResult(nginx, 'prod')).toEqual({ scan: counts(3), report: { namespace: 'dev', name: 'nginx-c' } });
    expect(mirror.namespaceLabels('shop')).toEqual({ team: 'b' });
    mirror.apply({ reports: [[D1, null]], namespaces: [['shop', null]] });
    expect(mirror.scanResult(nginx, 'prod')).toBeUndefined();
    expect(mirror.namespaceLabels('shop')).toBeUndefined();
    mirror.apply({ reports: [[D1, [['prod', { scan: counts(1) }]]]], tags: [['docker.io/library/nginx:1.25', null]] });
    expect(mirror.scanResult(nginx, 'prod')).toBeUndefined();
    mirror.apply({ reset: true });
    expect(mirror.scanResult(parseImageReference(`nginx@${D1}`), 'prod')).toBeUndefined();
  });

  it('keeps the same most recent scans by reference as a ReferenceScans of the same bound', () => {
    const mirror = new KnowledgeMirror(2);
    mirror.apply({ referenceScans: [[D1, counts(1)], [D2, counts(2)]] });
    mirror.apply({ referenceScans: [[D3, counts(3)]] });
    expect(mirror.scanResult(parseImageReference(`x.example/a@${D1}`), 'ns')).toBeUndefined();
    expect(mirror.scanResult(parseImageReference(`x.example/a@${D3}`), 'ns')).toEqual({ scan: counts(3) });
  });
});



function report(namespace: string, name: string, digest: string, critical: number): ReportEntry {
  const status = { phase: 'Scanned', summary: { critical, high: 0, medium: 0, low: 0, unknown: 0, total: critical, fixable: 0 } };
  const entry = toReportEntry({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanReport', metadata: { namespace, name, resourceVersion: '1' }, spec: { image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest }, status });
  if (entry === undefined) throw new Error('bad report');
  return entry;
}

function scanResult(critical: number): ScanResult {
  return { vulnerabilities: [], summary: { critical, high: 0, medium: 0, low: 0, unknown: 0, total: critical, fixable: 0 }, scanner: { name: 'Trivy' } };
}

/**
 * The rules the mirror must follow, read straight from the sources: a reference's digest is the one it
 * pins, else the one pods run its tag with, else the one a scan by reference found; its result is a
 * report's (the namespace's own first), else that scan's.
 */
function knowledgeOf(sources: { policies: AdmissionSources['policies']; namespaces: AdmissionSources['namespaces']; images: KnownImages; scans: ReferenceScans }): AdmissionKnowledge {
  return {
    policies: () => sources.policies.validPolicies(),
    namespaceLabels: (namespace) => sources.namespaces.get(namespace)?.labels,
    scanResult(reference, namespace): KnownScan | undefined {
      const digest = reference.digest ?? sources.images.digestOfTag(reference.repository, reference.tag) ?? sources.scans.digestOfTag(reference.repository, reference.tag);
      if (digest === undefined) return undefined;
      const reported = sources.images.scanOfDigest(digest, namespace);
      if (reported !== undefined) return reported;
      const scanned = sources.scans.scanOfDigest(digest);
      return scanned === undefined ? undefined : { scan: scanned };
    },
  };
}

describe('KnowledgeFeed', () => {
  it('keeps a mirror answering as the sources do, in one structured-cloned batch per interval however many events', async () => {
    const pods = new FakeInformer<PodEntry>();
    const reports = new FakeInformer<ReportEntry>();
    const namespaces = new FakeInformer<NamespaceEntry>();
    const images = new KnownImages({ pods: [pods], reports });
    let finishScan: ((r: { digest: string; result: ScanResult }) => void) | undefined;
    const scans = new ReferenceScans({ scan: (_t: ReferenceTarget) => new Promise((resolve) => (finishScan = resolve)), isKnown: () => false, logger: pino({ level: 'silent' }), maxLearned: 8 });
    let valid: CompiledPolicy[] = [];
    const policyListeners: (() => void)[] = [];
    const sources: AdmissionSources = { policies: { validPolicies: () => valid, onChange: (l) => policyListeners.push(l) }, namespaces, images, scans };

    pods.put(pod('prod', 'a', 'nginx:1.25', D1));
    reports.put(report('prod', 'nginx-a', D1, 1));
    namespaces.put({ key: 'shop', resourceVersion: '1', name: 'shop', labels: { team: 'payments' } });
    const mirror = new KnowledgeMirror(8);
    const sent: KnowledgeDelta[] = [];
    const feed = new KnowledgeFeed(sources, 20);
    // structuredClone: what postMessage does to a delta on its way to the worker.
    feed.start((delta) => {
      sent.push(delta);
      mirror.apply(structuredClone(delta));
    });
    const direct = knowledgeOf({ ...sources, images, scans });
    const refs = ['nginx:1.25', `nginx@${D1}`, `nginx@${D2}`, 'registry.corp.example/app:2'].map((r) => parseImageReference(r));
    const agree = (): void => {
      for (const ns of ['prod', 'shop', 'dev']) {
        expect(mirror.namespaceLabels(ns)).toEqual(direct.namespaceLabels(ns));
        for (const ref of refs) expect(mirror.scanResult(ref, ns)).toEqual(direct.scanResult(ref, ns));
      }
      expect(mirror.policies()).toEqual(direct.policies());
    };
    agree();
    expect(sent).toHaveLength(1);

    // A rescan's worth of events: 500 pods moving the tag to D2, their reports, a label and a policy.
    for (let i = 0; i < 500; i++) pods.put(pod('shop', `p${i}`, 'nginx:1.25', D2));
    for (let i = 0; i < 50; i++) reports.put(report(`ns${i}`, 'nginx-b', D2, i));
    reports.put(report('shop', 'nginx-b', D2, 7));
    namespaces.put({ key: 'dev', resourceVersion: '1', name: 'dev', labels: { team: 'dev' } });
    namespaces.delete('shop');
    const compiled = compilePolicy('gate', { exemptImages: ['registry.corp.example/tools/*'], namespaceSelector: { matchLabels: { team: 'dev' } } });
    if (!compiled.ok) throw new Error(compiled.message);
    valid = [compiled.policy];
    for (const l of policyListeners) l();
    scans.request(parseImageReference('registry.corp.example/app:2'));
    finishScan?.({ digest: D3, result: scanResult(4) });
    await expect.poll(() => sent.length).toBe(2);
    agree();
    expect(direct.scanResult(refs[0] ?? nginx, 'shop')?.report?.name).toBe('nginx-b');
    expect(mirror.scanResult(parseImageReference('registry.corp.example/app:2'), 'prod')).toEqual({ scan: { critical: 4, high: 0, fixableCritical: 0, fixableHigh: 0 } });

    // The pods go: the tag runs with D1 again, and nothing is sent once stopped.
    for (let i = 0; i < 500; i++) pods.delete(pod('shop', `p${i}`, 'nginx:1.25', D2).key);
    feed.flush();
    agree();
    expect(mirror.scanResult(nginx, 'dev')?.report?.name).toBe('nginx-a');
    feed.stop();
    pods.delete(pod('prod', 'a', 'nginx:1.25', D1).key);
    feed.flush();
    expect(sent).toHaveLength(3);
  });
});
