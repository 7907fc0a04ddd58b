import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../../e2e/fake-apiserver/index.js';
import type { FakeApiServer } from '../../e2e/fake-apiserver/index.js';
import { toKubeApiError } from './api-error.js';
import { createKubeClients } from './kube-client.js';
import { LeadershipFence } from './write-fence.js';

interface RawList {
  items: { metadata: { name: string; creationTimestamp: unknown } }[];
  metadata: { continue?: string };
}

describe('getJson (the informers’ list pages)', () => {
  let api: FakeApiServer;
  const clients = (requestTimeoutMs = 5000) => {
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    return createKubeClients(kc, { requestTimeoutMs, userAgent: 'list-test' });
  };

  beforeEach(async () => {
    api = await startFakeApiServer({});
    for (let i = 0; i < 5; i += 1) api.seed.pod({ namespace: 'shop', name: `p${i}`, containers: ['nginx:1.25'] });
  });
  afterEach(async () => {
    await api.stop();
  });

  it('pages with limit and continue, returns the JSON as sent, with our User-Agent', async () => {
    const { getJson } = clients();
    const first = (await getJson('/api/v1/pods', { limit: 3, continue: undefined })) as RawList;
    expect(first.items).toHaveLength(3);
    // Raw JSON: a timestamp stays a string (client-node's models would make it a Date).
    expect(typeof first.items[0]?.metadata.creationTimestamp).toBe('string');
    const token = first.metadata.continue;
    expect(token).toEqual(expect.any(String));
    const second = (await getJson('/api/v1/pods', { limit: 3, continue: token })) as RawList;
    expect([...first.items, ...second.items].map((p) => p.metadata.name).sort()).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    expect(second.metadata.continue ?? '').toBe('');
    const lists = api.requests().filter((r) => r.resource === 'pods' && r.verb === 'list');
    expect(lists.map((r) => r.userAgent)).toEqual(['list-test', 'list-test']);
  });

  it('fails with the server’s status, classified like the typed calls', async () => {
    const { getJson } = clients();
    api.faults.set({ errorRate: 1, errorCodes: [500], resources: ['pods'] });
    const err = await getJson('/api/v1/pods', { limit: 3 }).catch((e: unknown) => toKubeApiError(e, 'listing pods'));
    expect(err).toMatchObject({ kind: 'ServerError', code: 500, transient: true });
    api.faults.set({});
    const missing = await getJson('/api/v1/namespaces/shop/pods/nope', {}).catch((e: unknown) => toKubeApiError(e, 'reading a pod'));
    expect(missing).toMatchObject({ kind: 'NotFound', code: 404, transient: false });
  });

  it('gives up on a page the server does not send in time', async () => {
    const { getJson } = clients(200);
    api.faults.set({ latencyMs: 2_000, resources: ['pods'] });
    const started = Date.now();
    const err = await getJson('/api/v1/pods', { limit: 3 }).catch((e: unknown) => toKubeApiError(e, 'listing pods'));
    expect(err).toMatchObject({ kind: 'Network', transient: true });
    expect(Date.now() - started).toBeLessThan(1_500);
  });
});

describe('writes behind a write fence (leadership)', () => {
  let api: FakeApiServer;
  const fenced = (fence: LeadershipFence) => {
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigFor('fenced-replica'));
    return createKubeClients(kc, { requestTimeoutMs: 5000, userAgent: 'fence-test', writeFence: fence });
  };
  const event = (name: string) => ({ metadata: { name, namespace: 'shop' }, involvedObject: { kind: 'Pod', name: 'p', namespace: 'shop' }, reason: 'Test', message: 'm' });

  beforeEach(async () => {
    api = await startFakeApiServer({});
    api.seed.namespace('shop');
  });
  afterEach(async () => {
    await api.stop();
  });

  it('are not sent while the fence is closed, while reads and the Lease are', async () => {
    const fence = new LeadershipFence();
    const clients = fenced(fence);
    await expect(clients.core.createNamespacedEvent({ namespace: 'shop', body: event('e1') })).rejects.toMatchObject({ kind: 'Fenced' });
    await clients.core.readNamespace({ name: 'shop' });
    await clients.coordination.createNamespacedLease({ namespace: 'shop', body: { metadata: { name: 'l' }, spec: { holderIdentity: 'fenced-replica' } } });
    fence.open();
    await clients.core.createNamespacedEvent({ namespace: 'shop', body: event('e2') });
    const byReplica = api.requests({ identity: 'fenced-replica' }).map((r) => `${r.verb} ${r.resource}`);
    expect(byReplica).toEqual(['get namespaces', 'create leases', 'create events']);
  });

  it('in flight are aborted when the fence closes, and a slow API server then does not apply them', async () => {
    const fence = new LeadershipFence();
    fence.open();
    const clients = fenced(fence);
    api.faults.set({ latencyMs: 1500, latencyIdentities: ['fenced-replica'] });
    const write = clients.core.createNamespacedEvent({ namespace: 'shop', body: event('late') });
    await new Promise((resolve) => setTimeout(resolve, 300));
    fence.close('leadership lost');
    await expect(write).rejects.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 1800));
    expect(api.objects.list('events', 'shop')).toEqual([]);
    expect(api.requests({ identity: 'fenced-replica', verb: 'create' }).map((r) => r.code)).toEqual([499]);
  });
});
