import { describe, expect, it } from 'vitest';
import { toPodEntry } from './cluster-objects.js';
import type { PodEntry } from './cluster-objects.js';
import { PodImageIndex, parseReportKey, reportKey } from './pod-image-index.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

function pod(namespace: string, name: string, containers: { name: string; image: string; imageID?: string }[], extra: { labels?: Record<string, string> } = {}): PodEntry {
  const entry = toPodEntry({
    metadata: { namespace, name, uid: name, resourceVersion: '1', labels: extra.labels ?? {} },
    spec: { containers: containers.map((c) => ({ name: c.name, image: c.image })) },
    status: {
      containerStatuses: containers.map((c) => ({ name: c.name, image: c.image, imageID: c.imageID ?? '', ready: true, restartCount: 0 })),
    },
  });
  if (entry === undefined) throw new Error('pod');
  return entry;
}

describe('PodImageIndex', () => {
  it('indexes each (namespace, digest) once, however many pods and namespaces run it', () => {
    const index = new PodImageIndex({ isWatchedNamespace: () => true });
    index.upsert(pod('a', 'p1', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }]));
    index.upsert(pod('a', 'p2', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }]));
    index.upsert(pod('b', 'p3', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }, { name: 'side', image: 'redis:7', imageID: `docker.io/library/redis@${B}` }]));
    expect(index.runningKeys().sort()).toEqual([reportKey('a', A), reportKey('b', A), reportKey('b', B)].sort());
    expect(index.keysForDigest(A).sort()).toEqual([reportKey('a', A), reportKey('b', A)]);
    expect(index.podsRunning(reportKey('a', A)).map((p) => p.entry.name)).toEqual(['p1', 'p2']);
  });

  it('resolves each distinct (image, imageID) once and shares it between pods, without mixing distinct ones', () => {
    const index = new PodImageIndex({ isWatchedNamespace: () => true });
    index.upsert(pod('a', 'p1', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }]));
    index.upsert(pod('b', 'p2', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }]));
    index.upsert(pod('b', 'p3', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${B}` }]));
    index.upsert(pod('b', 'p4', [{ name: 'web', image: `nginx@${A}`, imageID: `docker.io/library/nginx@${A}` }]));
    const [p1] = index.podsRunning(reportKey('a', A));
    const [p2, p4] = index.podsRunning(reportKey('b', A));
    const [p3] = index.podsRunning(reportKey('b', B));
    expect(p2?.images[0]?.image).toBe(p1?.images[0]?.image);
    expect(p3?.images[0]?.image).toEqual({ ...p1?.images[0]?.image, digest: B });
    expect(p4?.images[0]?.image.image).toBe(`nginx@${A}`);
    expect(p1?.images[0]?.image.image).toBe('nginx:1.25');
  });

  it('pods of one workload share their labels and images; a pod that differs keeps its own', () => {
    const web = (name: string, hash: string, imageID: string): PodEntry =>
      pod('a', name, [{ name: 'web', image: 'nginx:1.25', imageID }], { labels: { app: 'web', 'pod-template-hash': hash } });
    const p1 = web('p1', 'abc', `docker.io/library/nginx@${A}`);
    const p2 = web('p2', 'abc', `docker.io/library/nginx@${A}`);
    const p3 = web('p3', 'def', `docker.io/library/nginx@${B}`);
    expect(p2.pod.metadata?.labels).toBe(p1.pod.metadata?.labels);
    expect(p2.images).toBe(p1.images);
    expect(p3.pod.metadata?.labels).toEqual({ app: 'web', 'pod-template-hash': 'def' });
    expect(p3.images[0]?.image.digest).toBe(B);
  });

  it('a container without an imageID yet is not indexed; it is once it starts', () => {
    const index = new PodImageIndex({ isWatchedNamespace: () => true });
    expect(index.upsert(pod('a', 'p1', [{ name: 'web', image: 'nginx:1.25' }]))).toEqual([]);
    const started = pod('a', 'p1', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }]);
    expect(index.upsert({ ...started, resourceVersion: '2' })).toEqual([reportKey('a', A)]);
  });

  it('remembers since when a key has no pod, from the start for keys never seen', () => {
    let now = new Date('2026-11-26T10:00:00Z');
    const index = new PodImageIndex({ isWatchedNamespace: () => true, now: () => now });
    const entry = pod('a', 'p1', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }]);
    index.upsert(entry);
    expect(index.goneSince(reportKey('a', A))).toBeUndefined();
    now = new Date('2026-11-26T10:05:00Z');
    index.remove(entry);
    expect(index.goneSince(reportKey('a', A))).toEqual(new Date('2026-11-26T10:05:00Z'));
    expect(index.goneSince(reportKey('z', B))).toEqual(new Date('2026-11-26T10:00:00Z'));
  });

  it('forgets keys gone longer than the grace period without any reconcile, and no grace decision changes', () => {
    let now = new Date('2026-11-26T10:00:00Z');
    const index = new PodImageIndex({ isWatchedNamespace: () => true, now: () => now });
    const digest = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}`;
    // A standby sees a churn of 1,000 digests; only the leader's reconciles would call forgetKey.
    for (let i = 0; i < 1000; i += 1) {
      const entry = pod('a', `p${i}`, [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${digest(i)}` }]);
      index.upsert(entry);
      now = new Date(now.getTime() + 1000);
      index.remove(entry);
    }
    const recent = pod('a', 'recent', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }]);
    index.upsert(recent);
    now = new Date('2026-11-26T12:00:00Z');
    index.remove(recent);
    const grace = 3_600_000;
    const before = index.goneSince(reportKey('a', digest(5)));

    expect(index.forgetGoneBefore(new Date(now.getTime() - grace))).toBe(1000);
    expect(index.forgetGoneBefore(new Date(now.getTime() - grace))).toBe(0);
    // Forgotten keys count from the start, earlier still: past the grace period either way.
    const after = index.goneSince(reportKey('a', digest(5)));
    expect(after?.getTime()).toBeLessThanOrEqual(before?.getTime() ?? 0);
    expect(index.goneSince(reportKey('a', A))).toEqual(new Date('2026-11-26T12:00:00Z'));
  });

  it('ignores pods of namespaces the operator does not watch', () => {
    const index = new PodImageIndex({ isWatchedNamespace: (ns) => ns !== 'kube-system' });
    expect(index.upsert(pod('kube-system', 'p', [{ name: 'c', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }]))).toEqual([]);
    expect(index.runningKeys()).toEqual([]);
  });

  it('reports unparseable images once per pod, not on every update', () => {
    const seen: string[] = [];
    const index = new PodImageIndex({ isWatchedNamespace: () => true, onInvalidImages: (entry, invalid) => seen.push(`${entry.name}:${invalid.map((i) => i.image).join(',')}`) });
    const bad = pod('a', 'p1', [{ name: 'c', image: 'NOT A REF', imageID: `docker.io/library/nginx@${A}` }]);
    index.upsert(bad);
    index.upsert({ ...bad, resourceVersion: '2' });
    expect(seen).toEqual(['p1:NOT A REF']);
  });

  it('team label changes map to the pod keys; readiness flaps map to none', () => {
    const index = new PodImageIndex({ isWatchedNamespace: () => true });
    const base = pod('a', 'p1', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }], { labels: { team: 'x' } });
    index.upsert(base);
    expect(index.upsert({ ...base, resourceVersion: '2' })).toEqual([]);
    const relabelled = pod('a', 'p1', [{ name: 'web', image: 'nginx:1.25', imageID: `docker.io/library/nginx@${A}` }], { labels: { team: 'y' } });
    expect(index.upsert({ ...relabelled, resourceVersion: '3' })).toEqual([reportKey('a', A)]);
  });

  it('parses keys back', () => {
    expect(parseReportKey(reportKey('ns', A))).toEqual({ namespace: 'ns', digest: A });
    expect(parseReportKey('nonsense')).toBeUndefined();
  });
});
