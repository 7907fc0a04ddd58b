// The I/O parts reconcile uses (owner resolver, pull-secret reader, event recorder), each against
// the fake API server, with the requests it made checked for least privilege.
import { KubeConfig } from '@kubernetes/client-node';
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildDockerCfgSecret, buildDockerConfigJsonSecret, buildServiceAccount, startFakeApiServer } from '../../e2e/fake-apiserver/index.js';
import type { FakeApiServer, KubeObject } from '../../e2e/fake-apiserver/index.js';
import { toPodEntry } from './cluster-objects.js';
import { EventRecorder, FIXABLE_CRITICAL_REASON } from './event-recorder.js';
import { createKubeClients } from './kube-client.js';
import type { KubeClients } from './kube-client.js';
import { OwnerResolver } from './owner-resolver.js';
import { PullSecretReader, registryHostOf } from './pull-secrets.js';

let api: FakeApiServer;
let clients: KubeClients;

beforeEach(async () => {
  api = await startFakeApiServer({});
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigPath);
  clients = createKubeClients(kc, { requestTimeoutMs: 5000, userAgent: 'kube-parts-test' });
});

afterEach(async () => {
  await api.stop();
});

function slim(obj: KubeObject | undefined): V1Pod {
  const entry = toPodEntry(obj);
  if (entry === undefined) throw new Error('not a pod');
  return entry.pod;
}

describe('OwnerResolver', () => {
  it('resolves Deployment, CronJob, StatefulSet, DaemonSet and bare pods to their top-level owner', async () => {
    const resolver = new OwnerResolver({ getJson: clients.getJson });
    const deployment = api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.25'] });
    const cron = api.seed.cronJob({ namespace: 'shop', name: 'nightly', containers: ['alpine:3.19'] });
    const sts = api.seed.podSet('StatefulSet', { namespace: 'shop', name: 'db', containers: ['redis:7'] });
    const ds = api.seed.podSet('DaemonSet', { namespace: 'shop', name: 'agent', containers: ['alpine:3.19'] });
    const bare = api.seed.pod({ namespace: 'shop', name: 'debug', containers: ['alpine:3.19'] });

    expect(await resolver.resolve(slim(deployment.pods[0]))).toMatchObject({ kind: 'Deployment', name: 'web', uid: deployment.owner.metadata?.uid });
    expect(await resolver.resolve(slim(cron.pods[0]))).toMatchObject({ kind: 'CronJob', name: 'nightly', uid: cron.owner.metadata?.uid });
    expect(await resolver.resolve(slim(sts.pods[0]))).toMatchObject({ kind: 'StatefulSet', name: 'db' });
    expect(await resolver.resolve(slim(ds.pods[0]))).toMatchObject({ kind: 'DaemonSet', name: 'agent' });
    expect(await resolver.resolve(slim(bare))).toMatchObject({ kind: 'Pod', name: 'debug', apiVersion: 'v1' });
  });

  it('reads each ReplicaSet once, as metadata only, and falls back to the ReplicaSet when it is gone', async () => {
    const resolver = new OwnerResolver({ getJson: clients.getJson });
    const web = api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.25'], replicas: 3 });
    for (const pod of web.pods) await resolver.resolve(slim(pod));
    const reads = api.requests().filter((r) => r.resource === 'replicasets');
    expect(reads.length).toBe(1);
    // the API server sends no pod template: only what the resolver reads
    expect(reads[0]?.accept).toMatch(/^application\/json;as=PartialObjectMetadata;g=meta\.k8s\.io;v=v1,/);

    const orphan = api.seed.deployment({ namespace: 'shop', name: 'orphan', containers: ['nginx:1.25'] });
    api.objects.delete('replicasets.apps', 'shop', orphan.intermediate?.metadata?.name ?? '');
    expect(await resolver.resolve(slim(orphan.pods[0]))).toMatchObject({ kind: 'ReplicaSet', name: orphan.intermediate?.metadata?.name });
  });
});

describe('PullSecretReader', () => {
  it('finds docker.io credentials in a dockerconfigjson secret under any Docker Hub alias', async () => {
    api.seed.objects([buildDockerConfigJsonSecret('shop', 'hub', { 'https://index.docker.io/v1/': { username: 'robot', password: 'pw-1' } })]);
    const pod = slim(api.seed.pod({ namespace: 'shop', name: 'p', containers: ['nginx:1.25'], imagePullSecrets: ['hub'] }));
    const reader = new PullSecretReader({ core: clients.core });
    const found = await reader.lookup(pod, 'docker.io');
    expect(found.credentials).toMatchObject({ registry: 'docker.io', auth: { username: 'robot', password: 'pw-1' }, source: 'shop/hub' });
  });

  it("uses the service account's legacy dockercfg secret, and reads secrets by name only", async () => {
    api.seed.objects([
      buildDockerCfgSecret('shop', 'legacy', { 'registry.example.com:5000': { username: 'ci', password: 'pw-2' } }),
      buildServiceAccount('shop', 'builder', ['legacy']),
    ]);
    const pod = slim(api.seed.pod({ namespace: 'shop', name: 'p', containers: ['registry.example.com:5000/app:1'], serviceAccountName: 'builder' }));
    const reader = new PullSecretReader({ core: clients.core });
    const found = await reader.lookup(pod, 'registry.example.com:5000');
    expect(found.credentials?.source).toBe('shop/legacy');
    expect(found.credentials?.auth).toMatchObject({ username: 'ci', password: 'pw-2' });
    const secretRequests = api.requests().filter((r) => r.resource === 'secrets');
    expect(secretRequests.map((r) => r.verb)).toEqual(['get']);
  });

  it('names missing and unusable secrets without their content', async () => {
    api.seed.objects([buildDockerConfigJsonSecret('shop', 'other', { 'ghcr.io': { username: 'u', password: 'secret-value-xyz' } })]);
    const pod = slim(api.seed.pod({ namespace: 'shop', name: 'p', containers: ['nginx:1.25'], imagePullSecrets: ['missing', 'other'] }));
    const reader = new PullSecretReader({ core: clients.core });
    const found = await reader.lookup(pod, 'docker.io');
    expect(found.credentials).toBeUndefined();
    expect(found.checked).toEqual(['shop/missing', 'shop/other']);
    expect(found.problems).toEqual(['secret shop/missing not found']);
    expect(JSON.stringify(found)).not.toContain('secret-value-xyz');
  });

  it('forgets secrets and service accounts once their TTL has passed, so no replica holds credentials for long', async () => {
    api.seed.objects([buildDockerConfigJsonSecret('shop', 'hub', { 'docker.io': { username: 'robot', password: 'pw-1' } })]);
    const pod = slim(api.seed.pod({ namespace: 'shop', name: 'p', containers: ['nginx:1.25'], imagePullSecrets: ['hub'] }));
    let now = 0;
    const reader = new PullSecretReader({ core: clients.core, ttlMs: 60_000, now: () => now });
    await reader.lookup(pod, 'docker.io');
    now = 30_000;
    expect(reader.forgetExpired()).toBe(0);
    now = 61_000;
    // The secret and the service account.
    expect(reader.forgetExpired()).toBe(2);
    expect(reader.forgetExpired()).toBe(0);
    const before = api.requests().filter((r) => r.resource === 'secrets').length;
    expect((await reader.lookup(pod, 'docker.io')).credentials?.source).toBe('shop/hub');
    expect(api.requests().filter((r) => r.resource === 'secrets')).toHaveLength(before + 1);
  });

  it('normalises registry keys', () => {
    expect(registryHostOf('https://index.docker.io/v1/')).toBe('docker.io');
    expect(registryHostOf('registry-1.docker.io')).toBe('docker.io');
    expect(registryHostOf('http://Registry.Example.com:5000/v2/')).toBe('registry.example.com:5000');
  });
});

describe('EventRecorder', () => {
  it('records one Warning event per workload and result, naming the report and the kubectl command', async () => {
    const web = api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.25'] });
    const recorder = new EventRecorder({ core: clients.core, logger: pino({ level: 'silent' }), instance: 'test' });
    const workload = { kind: 'Deployment', name: 'web', namespace: 'shop', apiVersion: 'apps/v1', uid: web.owner.metadata?.uid ?? '' };
    const finding = { namespace: 'shop', reportName: 'nginx-0123456789ab', image: 'nginx:1.25', criticalIds: ['CVE-1', 'CVE-2'], workloads: [workload] };

    await recorder.fixableCritical(finding);
    await recorder.fixableCritical(finding); // a rescan with the same result
    let events = api.objects.list('events', 'shop');
    expect(events).toHaveLength(1);
    const event = events[0] as { reason?: string; type?: string; message?: string; involvedObject?: { kind?: string; name?: string; uid?: string } };
    expect(event.reason).toBe(FIXABLE_CRITICAL_REASON);
    expect(event.type).toBe('Warning');
    expect(event.involvedObject).toMatchObject({ kind: 'Deployment', name: 'web', uid: workload.uid });
    expect(event.message).toContain('kubectl -n shop get imagescanreport nginx-0123456789ab -o yaml');

    await recorder.fixableCritical({ ...finding, criticalIds: ['CVE-1', 'CVE-2', 'CVE-3'] }); // the result changed
    events = api.objects.list('events', 'shop');
    expect(events).toHaveLength(2);

    // A restarted operator (new recorder, no memory) does not duplicate what it already announced.
    const restarted = new EventRecorder({ core: clients.core, logger: pino({ level: 'silent' }), instance: 'test' });
    await restarted.fixableCritical({ ...finding, criticalIds: ['CVE-1', 'CVE-2', 'CVE-3'] });
    expect(api.objects.list('events', 'shop')).toHaveLength(2);
    // Another kind of workload with the same name gets its own event.
    await restarted.fixableCritical({ ...finding, workloads: [{ ...workload, kind: 'StatefulSet', apiVersion: 'apps/v1', uid: 'sts-uid' }] });
    expect(api.objects.list('events', 'shop')).toHaveLength(3);
  });

  it('markAnnounced counts a finding as announced without a request, except one whose create failed', async () => {
    let calls = 0;
    let failNext = false;
    const core = {
      createNamespacedEvent: ({ body }: { body: unknown }) => {
        calls += 1;
        if (failNext) {
          failNext = false;
          return Promise.reject(new Error('connection reset'));
        }
        return Promise.resolve(body);
      },
    } as unknown as CoreV1Api;
    const recorder = new EventRecorder({ core, logger: pino({ level: 'silent' }), instance: 'test' });
    const workload = { kind: 'Deployment', name: 'web', namespace: 'shop', apiVersion: 'apps/v1', uid: 'u1' };
    const finding = { namespace: 'shop', reportName: 'nginx-0123456789ab', image: 'nginx:1.25', criticalIds: ['CVE-1'], workloads: [workload] };

    recorder.markAnnounced(finding);
    await recorder.fixableCritical(finding);
    expect(calls).toBe(0);
    await recorder.fixableCritical({ ...finding, criticalIds: ['CVE-1', 'CVE-2'] }); // a changed result
    expect(calls).toBe(1);

    const other = { ...finding, workloads: [{ ...workload, name: 'api', uid: 'u2' }] };
    failNext = true;
    await recorder.fixableCritical(other); // fails
    recorder.markAnnounced(other); // must not hide the failure
    await recorder.fixableCritical(other);
    expect(calls).toBe(3);
  });
});
