import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../../e2e/fake-apiserver/index.js';
import type { FakeApiServer } from '../../e2e/fake-apiserver/index.js';
import type { PodEntry } from './cluster-objects.js';
import { ResilientInformer } from './informer.js';
import { createKubeClients } from './kube-client.js';
import { createPodInformer } from './watches.js';

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('ResilientInformer against the fake API server', () => {
  let api: FakeApiServer;
  let informer: ResilientInformer<PodEntry>;
  const seen: string[] = [];

  beforeEach(async () => {
    seen.length = 0;
    api = await startFakeApiServer({ bookmarkIntervalMs: 200 });
    for (let i = 0; i < 7; i += 1) api.seed.pod({ namespace: 'team-a', name: `p${i}`, containers: ['nginx:1.25'] });
    const kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath);
    const clients = createKubeClients(kc, { requestTimeoutMs: 5000, userAgent: 'informer-test' });
    // Page size 3: the list of 7 pods takes three pages.
    informer = createPodInformer(clients.getJson, { kubeConfig: kc, logger: pino({ level: 'silent' }), pageSize: 3, unhealthyAfterMs: 300 });
    informer.on({
      add: (p) => seen.push(`add ${p.key}`),
      update: (_o, p) => seen.push(`update ${p.key}`),
      delete: (p) => seen.push(`delete ${p.key}`),
    });
  });

  afterEach(async () => {
    await informer.stop();
    await api.stop();
  });

  it('lists in pages, keeps slim pods, and follows watch events', async () => {
    informer.start();
    await informer.whenSynced();
    expect(informer.size()).toBe(7);
    const entry = informer.get('team-a/p0');
    expect(entry?.images[0]?.image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(Object.keys(entry?.pod.metadata ?? {}).sort()).toEqual(['labels', 'name', 'namespace', 'ownerReferences', 'resourceVersion', 'uid']);
    expect(entry?.pod.status).toBeUndefined();
    const pageRequests = api.requests().filter((r) => r.verb === 'list' && r.resource === 'pods');
    expect(pageRequests.length).toBe(3);

    api.seed.pod({ namespace: 'team-a', name: 'late', containers: ['redis:7'] });
    await until(() => seen.includes('add team-a/late'));
    api.objects.delete('pods', 'team-a', 'p1');
    await until(() => seen.includes('delete team-a/p1'));
    expect(informer.health().healthy).toBe(true);
  });

  it('reconnects after dropped watches and relists after history compaction, missing nothing', async () => {
    informer.start();
    await informer.whenSynced();
    api.dropWatches('reset');
    api.seed.pod({ namespace: 'team-a', name: 'during-drop', containers: ['redis:7'] });
    await until(() => seen.includes('add team-a/during-drop'));

    // Stop serving, change the world, compact the history: the old resourceVersion is gone (410).
    await api.stopServing();
    api.objects.delete('pods', 'team-a', 'p2');
    api.seed.pod({ namespace: 'team-a', name: 'after-restart', containers: ['redis:7'] });
    api.compact();
    await api.startServing();
    await until(() => seen.includes('add team-a/after-restart') && seen.includes('delete team-a/p2'), 40_000);
    expect(informer.get('team-a/p2')).toBeUndefined();
    await until(() => informer.health().healthy);
  }, 60_000);

  it('reports unhealthy while the API server is unreachable, healthy again once it is back', async () => {
    informer.start();
    await informer.whenSynced();
    await api.stopServing();
    await until(() => !informer.health().healthy, 20_000);
    expect(informer.health().downForMs).toBeGreaterThan(300);
    await api.startServing();
    await until(() => informer.health().healthy, 40_000);
  }, 60_000);
});

describe('ResilientInformer with a misbehaving watch', () => {
  /**
   * An informer over an empty list whose every watch runs `misbehave` on the next turn (then ends it);
   * runs it for 700 ms with a 100 ms base backoff and returns the watches made and the health then.
   */
  async function watchesIn700ms(misbehave: (callback: (phase: string, apiObj: unknown) => void) => void, unhealthyAfterMs?: number) {
    let watches = 0;
    const informer = new ResilientInformer<{ key: string; resourceVersion: string }>({
      name: 'misbehaving',
      path: '/misbehaving',
      list: () => Promise.resolve({ items: [], resourceVersion: '5' }),
      transform: () => undefined,
      logger: pino({ level: 'silent' }),
      baseBackoffMs: 100,
      ...(unhealthyAfterMs === undefined ? {} : { unhealthyAfterMs }),
      watchClient: {
        watch: (_path, _query, callback, done) => {
          watches += 1;
          setImmediate(() => {
            misbehave(callback);
            done(null);
          });
          return Promise.resolve(new AbortController());
        },
      },
    });
    informer.start();
    await informer.whenSynced();
    await new Promise((resolve) => setTimeout(resolve, 700));
    const health = informer.health();
    await informer.stop();
    return { watches, health };
  }

  it('backs off instead of spinning when the server ends every watch at once', async () => {
    const { watches } = await watchesIn700ms(() => undefined);
    // 100 + 200 + 400 ms of backoff fit in 700 ms: a handful of watches, not thousands.
    expect(watches).toBeGreaterThanOrEqual(2);
    expect(watches).toBeLessThanOrEqual(5);
  });

  it('backs off, and reports the watch down, when the server answers every watch with an error event', async () => {
    const { watches, health } = await watchesIn700ms((callback) => callback('ERROR', { kind: 'Status', code: 500, reason: 'InternalError' }), 50);
    expect(watches).toBeGreaterThanOrEqual(2);
    expect(watches).toBeLessThanOrEqual(5);
    expect(health.healthy).toBe(false);
  });
});
