// @kubernetes/client-node 2.x against the fake: kubeconfig loading, informers through dropped watches,
// compaction and restarts, typed pagination, CustomObjectsApi status patches and their errors.
import * as k8s from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from './index.js';
import type { FakeApiServer } from './index.js';

let server: FakeApiServer;
let kc: k8s.KubeConfig;

beforeEach(async () => {
  server = await startFakeApiServer({ bookmarkIntervalMs: 200 });
  kc = new k8s.KubeConfig();
  kc.loadFromFile(server.kubeconfigFor('operator-a'));
});

afterEach(async () => {
  await server.stop();
});

async function eventually(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Recorder {
  informer: k8s.Informer<k8s.V1Pod> & k8s.ObjectCache<k8s.V1Pod>;
  events: string[];
  errors: unknown[];
}

function podInformer(restartOnError: boolean): Recorder {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const informer = k8s.makeInformer(kc, '/api/v1/pods?allowWatchBookmarks=true', () => core.listPodForAllNamespaces());
  const events: string[] = [];
  const errors: unknown[] = [];
  informer.on('add', (p) => events.push(`add ${p.metadata?.name ?? ''}`));
  informer.on('update', (p) => events.push(`update ${p.metadata?.name ?? ''}`));
  informer.on('delete', (p) => events.push(`delete ${p.metadata?.name ?? ''}`));
  informer.on('error', (err: unknown) => {
    errors.push(err);
    if (restartOnError) setTimeout(() => void informer.start(), 50);
  });
  return { informer, events, errors };
}

describe('client-node informer', () => {
  it('receives add, update and delete', async () => {
    server.seed.pod({ namespace: 'apps', name: 'before', containers: ['nginx:1.25'] });
    const { informer, events } = podInformer(false);
    await informer.start();
    try {
      expect(events).toEqual(['add before']);
      const p = server.seed.pod({ namespace: 'apps', name: 'after', containers: ['nginx:1.25'] });
      server.objects.upsert({ ...p, metadata: { ...p.metadata, labels: { changed: 'yes' } } });
      server.objects.delete('pods', 'apps', 'before');
      await eventually(() => events.length === 4, 'three watch events');
      expect(events).toEqual(['add before', 'add after', 'update after', 'delete before']);
      expect(informer.list().map((o) => o.metadata?.name)).toEqual(['after']);
    } finally {
      await informer.stop();
    }
  });

  it('reconnects by itself after the server closes the watch, without relisting', async () => {
    const { informer, events, errors } = podInformer(false);
    await informer.start();
    try {
      await eventually(() => server.openWatches() === 1, 'the watch');
      server.clearRequests();
      expect(server.dropWatches('close')).toBe(1);
      server.seed.pod({ namespace: 'apps', name: 'while-away', containers: ['nginx:1.25'] });
      await eventually(() => events.includes('add while-away'), 'the event written while reconnecting');
      expect(errors).toEqual([]);
      expect(server.requests({ verb: 'list' })).toHaveLength(0);
      expect(server.requests({ verb: 'watch' }).length).toBeGreaterThanOrEqual(1);
    } finally {
      await informer.stop();
    }
  });

  it('reports a reset connection as an error, and a restart resumes without losing events', async () => {
    const { informer, events, errors } = podInformer(true);
    await informer.start();
    try {
      await eventually(() => server.openWatches() === 1, 'the watch');
      server.dropWatches('reset');
      server.seed.pod({ namespace: 'apps', name: 'during-reset', containers: ['nginx:1.25'] });
      await eventually(() => events.includes('add during-reset'), 'the event after restart');
      expect(errors.length).toBeGreaterThanOrEqual(1);
    } finally {
      await informer.stop();
    }
  });

  it('relists after 410 when the server restarts with its history compacted, and converges', async () => {
    server.seed.pod({ namespace: 'apps', name: 'keep', containers: ['nginx:1.25'] });
    server.seed.pod({ namespace: 'apps', name: 'gone', containers: ['nginx:1.25'] });
    const { informer, events } = podInformer(true);
    await informer.start();
    try {
      await eventually(() => server.openWatches() === 1, 'the watch');
      const rvBefore = Number(server.resourceVersion());
      await server.stopServing();
      // Changes while the informer is disconnected; then the history is lost.
      server.objects.delete('pods', 'apps', 'gone');
      server.seed.pod({ namespace: 'apps', name: 'new', containers: ['nginx:1.25'] });
      server.clearRequests();
      await server.restart({ compact: true });
      expect(Number(server.resourceVersion())).toBeGreaterThan(rvBefore);
      await eventually(() => events.includes('delete gone') && events.includes('add new'), 'the relist diff', 8000);
      expect(informer.list().map((p) => p.metadata?.name).sort()).toEqual(['keep', 'new']);
      expect(server.requests({ verb: 'list', resource: 'pods' }).length).toBeGreaterThanOrEqual(1);
    } finally {
      await informer.stop();
    }
  });

  it('relists after an in-stream 410 when history was compacted while it reconnected', async () => {
    server.seed.pod({ namespace: 'apps', name: 'old', containers: ['nginx:1.25'] });
    const { informer, events, errors } = podInformer(false);
    await informer.start();
    try {
      await eventually(() => server.openWatches() === 1, 'the watch');
      server.clearRequests();
      // All synchronous: the informer cannot reconnect before the write and the compaction.
      server.dropWatches('close');
      server.objects.delete('pods', 'apps', 'old');
      server.seed.pod({ namespace: 'apps', name: 'missed', containers: ['nginx:1.25'] });
      server.compact();
      await eventually(() => events.includes('add missed') && events.includes('delete old'), 'the relist diff');
      expect(errors).toEqual([]);
      await eventually(() => server.requests({ resource: 'pods' }).length >= 3, 'the new watch');
      const verbs = server.requests({ resource: 'pods' }).map((r) => r.verb);
      expect(verbs.slice(0, 3)).toEqual(['watch', 'list', 'watch']);
    } finally {
      await informer.stop();
    }
  });
});

describe('client-node informer with HTTP 410', () => {
  it('relists when the watch request itself is answered 410 Gone', async () => {
    const strict = await startFakeApiServer({ expiredWatchAsHttpError: true, crdDirs: [] });
    const strictKc = new k8s.KubeConfig();
    strictKc.loadFromFile(strict.kubeconfigFor('operator-a'));
    const core = strictKc.makeApiClient(k8s.CoreV1Api);
    const informer = k8s.makeInformer(strictKc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    const events: string[] = [];
    const errors: unknown[] = [];
    informer.on('add', (p) => events.push(`add ${p.metadata?.name ?? ''}`));
    informer.on('error', (e: unknown) => errors.push(e));
    await informer.start();
    try {
      await eventually(() => strict.openWatches() === 1, 'the watch');
      strict.dropWatches('close');
      strict.seed.pod({ namespace: 'apps', name: 'missed', containers: ['nginx:1.25'] });
      strict.compact();
      await eventually(() => events.includes('add missed'), 'the relist');
      expect(errors).toEqual([]);
      expect(strict.requests({ resource: 'pods', code: 410 }).map((r) => r.verb)).toEqual(['watch']);
    } finally {
      await informer.stop();
      await strict.stop();
    }
  });
});

describe('typed clients', () => {
  it('pages a cluster-wide pod list with limit and _continue', async () => {
    for (let i = 0; i < 12; i++) server.seed.pod({ namespace: i % 2 === 0 ? 'even' : 'odd', name: `p${String(i).padStart(2, '0')}`, containers: ['nginx:1.25'] });
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const names: string[] = [];
    let cont: string | undefined;
    let pages = 0;
    do {
      const page: k8s.V1PodList = await core.listPodForAllNamespaces({ limit: 5, ...(cont ? { _continue: cont } : {}) });
      pages += 1;
      names.push(...page.items.map((p) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`));
      cont = page.metadata?._continue;
    } while (cont);
    expect(pages).toBe(3);
    expect(names).toHaveLength(12);
    expect(new Set(names).size).toBe(12);
    const first = (await core.listPodForAllNamespaces({ limit: 5 })).metadata?._continue ?? '';
    server.seed.pod({ namespace: 'odd', name: 'later', containers: ['nginx:1.25'] });
    server.compact();
    const err = await core.listPodForAllNamespaces({ limit: 5, _continue: first }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(k8s.ApiException);
    expect((err as k8s.ApiException<string>).code).toBe(410);
  });

  it('merge-patches report status through CustomObjectsApi and sees 404/409/422 as ApiException with reasons', async () => {
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const group = 'imagescan.dev';
    const version = 'v1alpha1';
    const plural = 'imagescanreports';
    const digest = `sha256:${'a'.repeat(64)}`;
    const body = { apiVersion: `${group}/${version}`, kind: 'ImageScanReport', metadata: { name: 'nginx-aaaaaaaaaaaa', namespace: 'default' }, spec: { image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest } };
    const created = (await custom.createNamespacedCustomObject({ group, version, plural, namespace: 'default', body })) as { metadata: { resourceVersion: string } };
    const status = { phase: 'Scanned', lastScanTime: new Date().toISOString() };
    const patched = (await custom.patchNamespacedCustomObjectStatus(
      { group, version, plural, namespace: 'default', name: 'nginx-aaaaaaaaaaaa', body: { status } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    )) as { spec: unknown; status: unknown };
    expect(patched.spec).toEqual(body.spec);
    expect(patched.status).toEqual(status);
    const reason = async (p: Promise<unknown>): Promise<string> => {
      const e = await p.then(() => undefined, (x: unknown) => x);
      if (!(e instanceof k8s.ApiException)) throw new Error('expected an ApiException');
      return `${e.code} ${(JSON.parse(String(e.body)) as { reason: string }).reason}`;
    };
    expect(await reason(custom.getNamespacedCustomObject({ group, version, plural, namespace: 'default', name: 'missing' }))).toBe('404 NotFound');
    expect(await reason(custom.replaceNamespacedCustomObject({ group, version, plural, namespace: 'default', name: 'nginx-aaaaaaaaaaaa', body: { ...body, metadata: { ...body.metadata, resourceVersion: created.metadata.resourceVersion } } }))).toBe('409 Conflict');
    expect(await reason(custom.createNamespacedCustomObject({ group, version, plural, namespace: 'default', body }))).toBe('409 AlreadyExists');
    expect(await reason(custom.createNamespacedCustomObject({ group, version, plural, namespace: 'default', body: { ...body, metadata: { name: 'x' }, spec: { ...body.spec, digest: 'sha256:short' } } }))).toBe('422 Invalid');
    // the default content type of client-node's patch is JSON Patch: an object body is refused
    const defaultType = await custom.patchNamespacedCustomObject({ group, version, plural, namespace: 'default', name: 'nginx-aaaaaaaaaaaa', body: { spec: {} } }).then(() => 'ok', (e: unknown) => (e instanceof k8s.ApiException ? e.code : 'other'));
    expect(defaultType).toBe(400);
  });

  it('takes a Lease with V1MicroTime and reads it back', async () => {
    const coord = kc.makeApiClient(k8s.CoordinationV1Api);
    const lease = await coord.createNamespacedLease({
      namespace: 'default',
      body: { metadata: { name: 'imagescan-operator' }, spec: { holderIdentity: 'operator-a', leaseDurationSeconds: 15, acquireTime: new k8s.V1MicroTime(), renewTime: new k8s.V1MicroTime() } },
    });
    expect(lease.spec?.holderIdentity).toBe('operator-a');
    const writes = server.requests({ resource: 'leases', verb: 'create' });
    expect(writes.map((w) => [w.identity, w.code])).toEqual([['operator-a', 201]]);
  });
});
