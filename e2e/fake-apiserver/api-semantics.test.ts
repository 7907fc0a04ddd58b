// HTTP-level behaviour of the fake API server that the operator depends on: status subresource,
// optimistic concurrency, patch content types, CRD schema validation and pruning, size limits,
// pagination, selectors, watches, fault injection and the request log.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWrite, rbacAttributes, seededRandom, startFakeApiServer } from './index.js';
import type { FakeApiServer } from './index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WIDGETS = '/apis/example.com/v1/namespaces/default/widgets';

interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

let server: FakeApiServer;

async function call(method: string, url: string, body?: unknown, opts: { contentType?: string; token?: string; accept?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = { Authorization: `Bearer ${opts.token ?? 'tester'}` };
  if (body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/json';
  if (opts.accept) headers.Accept = opts.accept;
  const res = await fetch(server.url + url, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
}

function widget(name: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name }, spec, ...extra };
}

function meta(obj: Record<string, unknown>): Record<string, unknown> {
  return obj.metadata as Record<string, unknown>;
}

beforeAll(async () => {
  server = await startFakeApiServer({ crdDirs: [path.join(here, 'testdata')], random: seededRandom(42) });
});

afterAll(async () => {
  await server.stop();
});

describe('custom resources', () => {
  it('drops status on create and keeps spec when /status is merge-patched', async () => {
    const created = await call('POST', WIDGETS, widget('w-status', { size: 2 }, { status: { ready: 'yes' } }));
    expect(created.status).toBe(201);
    expect(created.body.status).toBeUndefined();
    expect(meta(created.body).generation).toBe(1);

    const patched = await call('PATCH', `${WIDGETS}/w-status/status`, { status: { ready: 'yes', count: 3 }, spec: { size: 9 } }, { contentType: 'application/merge-patch+json' });
    expect(patched.status).toBe(200);
    expect(patched.body.status).toEqual({ ready: 'yes', count: 3 });
    // spec edits through /status are ignored, and a status change does not bump generation
    expect(patched.body.spec).toMatchObject({ size: 2 });
    expect(meta(patched.body).generation).toBe(1);

    // a main-resource update cannot change status, but bumps generation for the spec change
    const current = (await call('GET', `${WIDGETS}/w-status`)).body;
    const updated = await call('PUT', `${WIDGETS}/w-status`, { ...current, spec: { size: 3 }, status: { ready: 'no' } });
    expect(updated.status).toBe(200);
    expect(updated.body.status).toEqual({ ready: 'yes', count: 3 });
    expect(meta(updated.body).generation).toBe(2);
  });

  it('answers 409 Conflict to an update with a stale resourceVersion', async () => {
    const created = (await call('POST', WIDGETS, widget('w-conflict', { size: 1 }))).body;
    const first = await call('PUT', `${WIDGETS}/w-conflict`, { ...created, spec: { size: 2 } });
    expect(first.status).toBe(200);
    const stale = await call('PUT', `${WIDGETS}/w-conflict`, { ...created, spec: { size: 3 } });
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({ kind: 'Status', reason: 'Conflict', code: 409 });
    const staleStatus = await call('PUT', `${WIDGETS}/w-conflict/status`, { ...created, status: { ready: 'x' } });
    expect(staleStatus.body.reason).toBe('Conflict');
  });

  it('makes no write for a no-op update (same resourceVersion)', async () => {
    const created = (await call('POST', WIDGETS, widget('w-noop', { size: 4 }))).body;
    const again = await call('PUT', `${WIDGETS}/w-noop`, created);
    expect(again.status).toBe(200);
    expect(meta(again.body).resourceVersion).toBe(meta(created).resourceVersion);
  });

  it('refuses strategic merge patch on a custom resource with 415, and unknown patch types everywhere', async () => {
    await call('POST', WIDGETS, widget('w-smp', { size: 1 }));
    const smp = await call('PATCH', `${WIDGETS}/w-smp`, { spec: { size: 2 } }, { contentType: 'application/strategic-merge-patch+json' });
    expect(smp.status).toBe(415);
    expect(smp.body.reason).toBe('UnsupportedMediaType');
    const plain = await call('PATCH', '/api/v1/namespaces/default', { metadata: { labels: { a: 'b' } } }, { contentType: 'application/json' });
    expect(plain.status).toBe(415);
  });

  it('applies JSON patch and server-side apply (which needs a fieldManager)', async () => {
    await call('POST', WIDGETS, widget('w-patch', { size: 1, tags: ['a'] }));
    const jp = await call('PATCH', `${WIDGETS}/w-patch`, [{ op: 'add', path: '/spec/tags/-', value: 'b' }, { op: 'replace', path: '/spec/size', value: 5 }], { contentType: 'application/json-patch+json' });
    expect(jp.status).toBe(200);
    expect(jp.body.spec).toMatchObject({ size: 5, tags: ['a', 'b'] });
    const failedTest = await call('PATCH', `${WIDGETS}/w-patch`, [{ op: 'test', path: '/spec/size', value: 1 }], { contentType: 'application/json-patch+json' });
    expect(failedTest.status).toBe(422);

    const noManager = await call('PATCH', `${WIDGETS}/w-apply`, widget('w-apply', { size: 2 }), { contentType: 'application/apply-patch+yaml' });
    expect(noManager.status).toBe(400);
    const applied = await call('PATCH', `${WIDGETS}/w-apply?fieldManager=test&force=true`, widget('w-apply', { size: 2 }), { contentType: 'application/apply-patch+yaml' });
    expect(applied.status).toBe(201);
    const reapplied = await call('PATCH', `${WIDGETS}/w-apply?fieldManager=test`, 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w-apply\nspec:\n  color: red\n', {
      contentType: 'application/apply-patch+yaml',
    });
    expect(reapplied.status).toBe(200);
    expect(reapplied.body.spec).toMatchObject({ size: 2, color: 'red' });
  });

  it('rejects schema violations with 422 Invalid and one cause per field', async () => {
    const bad = await call('POST', WIDGETS, widget('w-bad', { size: 11, color: 'pink', label: 'TOO-LONG-AND-UPPER', when: 'yesterday', tags: ['a', 'b', 'c', 'd'] }));
    expect(bad.status).toBe(422);
    expect(bad.body).toMatchObject({ kind: 'Status', reason: 'Invalid', code: 422 });
    const details = bad.body.details as { causes: { field: string; reason: string }[] };
    const fields = details.causes.map((c) => `${c.field}:${c.reason}`).sort();
    expect(fields).toEqual(
      [
        'spec.color:FieldValueNotSupported',
        'spec.label:FieldValueInvalid',
        'spec.label:FieldValueTooLong',
        'spec.size:FieldValueInvalid',
        'spec.tags:FieldValueTooMany',
        'spec.when:FieldValueInvalid',
      ].sort(),
    );
    const missing = await call('POST', WIDGETS, widget('w-missing', { color: 'red' }));
    expect(missing.status).toBe(422);
    expect((missing.body.details as { causes: { field: string }[] }).causes.map((c) => c.field)).toEqual(['spec.size']);
    const wrongType = await call('POST', WIDGETS, widget('w-type', { size: '3' }));
    expect((wrongType.body.details as { causes: { reason: string }[] }).causes[0]?.reason).toBe('FieldValueTypeInvalid');
    expect(server.objects.get('widgets.example.com', 'default', 'w-bad')).toBeUndefined();
  });

  it('prunes unknown fields (except under preserve-unknown-fields), applies defaults, and refuses them with fieldValidation=Strict', async () => {
    const created = await call('POST', WIDGETS, widget('w-prune', { size: 1, bogus: true, extra: { anything: { goes: 1 } } }, { topLevel: 'x' }));
    expect(created.status).toBe(201);
    expect(created.body.spec).toEqual({ size: 1, extra: { anything: { goes: 1 } }, shape: 'round' });
    expect(created.body.topLevel).toBeUndefined();
    expect(created.headers.get('warning')).toContain('unknown field \\"spec.bogus\\"');
    const strict = await call('POST', `${WIDGETS}?fieldValidation=Strict`, widget('w-strict', { size: 1, bogus: true }));
    expect(strict.status).toBe(400);
    expect(String(strict.body.message)).toContain('unknown field "spec.bogus"');
  });
});

describe('names, labels and sizes', () => {
  it('validates names and label values with 422, and generates names', async () => {
    const badName = await call('POST', '/api/v1/namespaces/default/configmaps', { metadata: { name: 'Bad_Name' } });
    expect(badName.status).toBe(422);
    expect((badName.body.details as { causes: { field: string }[] }).causes[0]?.field).toBe('metadata.name');
    const badNs = await call('POST', '/api/v1/namespaces', { metadata: { name: 'a.b' } });
    expect(badNs.status).toBe(422);
    const longLabel = await call('POST', '/api/v1/namespaces/default/configmaps', { metadata: { name: 'ok', labels: { team: 'x'.repeat(64) } } });
    expect(longLabel.status).toBe(422);
    expect(String(longLabel.body.message)).toContain('must be no more than 63 characters');
    const generated = await call('POST', '/api/v1/namespaces/default/configmaps', { metadata: { generateName: 'gen-' } });
    expect(generated.status).toBe(201);
    expect(String(meta(generated.body).name)).toMatch(/^gen-[a-z0-9]{5}$/);
    const dup = await call('POST', '/api/v1/namespaces/default/configmaps', { metadata: { name: String(meta(generated.body).name) } });
    expect(dup.body.reason).toBe('AlreadyExists');
    const noNs = await call('POST', '/api/v1/namespaces/nowhere/configmaps', { metadata: { name: 'x' } });
    expect(noNs.status).toBe(404);
  });

  it('refuses request bodies over 3 MiB with 413, and objects over etcd\'s limit with 500', async () => {
    const big = await call('POST', WIDGETS, widget('w-big', { size: 1, extra: { blob: 'x'.repeat(3 * 1024 * 1024 + 10) } }));
    expect(big.status).toBe(413);
    expect(big.body.reason).toBe('RequestEntityTooLarge');
    // under the body limit but over etcd's 1.5 MiB: the real apiserver's plain 500
    const overEtcd = await call('POST', WIDGETS, widget('w-etcd', { size: 1, extra: { blob: 'x'.repeat(2 * 1024 * 1024) } }));
    expect(overEtcd.status).toBe(500);
    expect(String(overEtcd.body.message)).toContain('etcdserver: request is too large');
    // the server is still fine afterwards
    expect((await call('GET', '/version')).status).toBe(200);
  });

  it('checks that a core event names an object in its own namespace', async () => {
    const event = (ns: string): Record<string, unknown> => ({
      metadata: { name: `web.${ns}` },
      involvedObject: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: ns },
      reason: 'FixableCritical',
      type: 'Warning',
      message: 'm',
      source: { component: 'imagescan-operator' },
    });
    expect((await call('POST', '/api/v1/namespaces/default/events', event('default'))).status).toBe(201);
    const wrong = await call('POST', '/api/v1/namespaces/default/events', event('kube-system'));
    expect(wrong.status).toBe(422);
    expect((wrong.body.details as { causes: { field: string }[] }).causes[0]?.field).toBe('involvedObject.namespace');
  });

  it('decodes Lease MicroTime only with six fractional digits', async () => {
    const lease = (renewTime: string): Record<string, unknown> => ({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: `l${renewTime.length}` }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime } });
    const micro = await call('POST', '/apis/coordination.k8s.io/v1/namespaces/default/leases', lease('2026-01-01T10:00:00.123000Z'));
    expect(micro.status).toBe(201);
    const milli = await call('POST', '/apis/coordination.k8s.io/v1/namespaces/default/leases', lease('2026-01-01T10:00:00.123Z'));
    expect(milli.status).toBe(400);
  });
});

describe('metadata-only reads', () => {
  it('answers a GET that accepts PartialObjectMetadata with the metadata alone, and plain JSON otherwise', async () => {
    await call('POST', WIDGETS, widget('w-meta', { size: 4 }, { metadata: { name: 'w-meta', labels: { app: 'a' } } }));
    const partial = await call('GET', `${WIDGETS}/w-meta`, undefined, { accept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json' });
    expect(partial.status).toBe(200);
    expect(partial.body).toMatchObject({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'w-meta', labels: { app: 'a' } } });
    expect(partial.body.spec).toBeUndefined();
    const full = await call('GET', `${WIDGETS}/w-meta`, undefined, { accept: 'application/json' });
    expect(full.body).toMatchObject({ kind: 'Widget', spec: { size: 4 } });
  });
});

describe('lists', () => {
  it('pages with limit/continue through one consistent resourceVersion, and expires tokens after compaction', async () => {
    for (let i = 0; i < 7; i++) server.seed.pod({ namespace: 'paging', name: `p-${i}`, containers: ['nginx:1.25'], labels: { idx: String(i), parity: i % 2 === 0 ? 'even' : 'odd' } });
    const names: string[] = [];
    let cont: string | undefined;
    let pages = 0;
    let listRv: unknown;
    do {
      const page: Reply = await call('GET', `/api/v1/namespaces/paging/pods?limit=3${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
      expect(page.status).toBe(200);
      pages += 1;
      for (const item of page.body.items as Record<string, unknown>[]) names.push(String(meta(item).name));
      const m = page.body.metadata as Record<string, unknown>;
      listRv ??= m.resourceVersion;
      expect(m.resourceVersion).toBe(listRv);
      cont = m.continue as string | undefined;
    } while (cont);
    expect(pages).toBe(3);
    expect(names).toEqual(['p-0', 'p-1', 'p-2', 'p-3', 'p-4', 'p-5', 'p-6']);

    // Later pages show the first page's snapshot: changes made meanwhile are not visible.
    const page1 = await call('GET', '/api/v1/namespaces/paging/pods?limit=4');
    server.objects.delete('pods', 'paging', 'p-5');
    const p6 = server.objects.get('pods', 'paging', 'p-6');
    server.objects.upsert({ ...p6, metadata: { ...p6?.metadata, labels: { changed: 'yes' } } });
    server.seed.pod({ namespace: 'paging', name: 'p-4a', containers: ['nginx:1.25'] });
    const page2 = await call('GET', `/api/v1/namespaces/paging/pods?limit=4&continue=${encodeURIComponent(String((page1.body.metadata as Record<string, unknown>).continue))}`);
    const items2 = page2.body.items as Record<string, unknown>[];
    expect(items2.map((i) => meta(i).name)).toEqual(['p-4', 'p-5', 'p-6']);
    expect(meta(items2[2] ?? {}).labels).toMatchObject({ idx: '6' });
    expect((page2.body.metadata as Record<string, unknown>).resourceVersion).toBe((page1.body.metadata as Record<string, unknown>).resourceVersion);
    server.objects.delete('pods', 'paging', 'p-4a');
    server.seed.pod({ namespace: 'paging', name: 'p-5', containers: ['nginx:1.25'], labels: { idx: '5', parity: 'odd' } });
    server.objects.upsert({ ...p6, metadata: { ...p6?.metadata } });

    const first = await call('GET', '/api/v1/pods?limit=2&labelSelector=parity%3Deven');
    const token = String((first.body.metadata as Record<string, unknown>).continue);
    server.seed.pod({ namespace: 'paging', name: 'p-late', containers: ['nginx:1.25'] });
    server.compact();
    const after = await call('GET', `/api/v1/pods?limit=2&labelSelector=parity%3Deven&continue=${encodeURIComponent(token)}`);
    expect(after.status).toBe(410);
    expect(after.body.reason).toBe('Expired');
  });

  it('filters by label selector (=, !=, in, notin, exists) and field selector', async () => {
    const pick = async (q: string): Promise<string[]> =>
      ((await call('GET', `/api/v1/namespaces/paging/pods?${q}`)).body.items as Record<string, unknown>[]).map((i) => String(meta(i).name)).filter((n) => n !== 'p-late');
    expect(await pick('labelSelector=parity%3Dodd')).toEqual(['p-1', 'p-3', 'p-5']);
    expect(await pick('labelSelector=parity!%3Dodd,idx')).toEqual(['p-0', 'p-2', 'p-4', 'p-6']);
    expect(await pick(`labelSelector=${encodeURIComponent('idx in (1,2),parity notin (odd)')}`)).toEqual(['p-2']);
    expect(await pick('labelSelector=!idx')).toEqual([]);
    expect(await pick('fieldSelector=metadata.name%3Dp-4')).toEqual(['p-4']);
    expect(await pick('fieldSelector=status.phase%3DRunning,metadata.name!%3Dp-0&labelSelector=parity%3Deven')).toEqual(['p-2', 'p-4', 'p-6']);
  });
});

describe('watch', () => {
  async function readLines(url: string, count: number, timeoutMs = 5000): Promise<Record<string, unknown>[]> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    const res = await fetch(server.url + url, { headers: { Authorization: 'Bearer watcher' }, signal: ctl.signal });
    const out: Record<string, unknown>[] = [];
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          out.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
          buf = buf.slice(nl + 1);
        }
        if (out.length >= count) break;
      }
    } catch {
      // aborted by the timer or the server ended the stream
    } finally {
      clearTimeout(timer);
      ctl.abort();
    }
    return out;
  }

  it('resumes from a resourceVersion, reports selector exits as DELETED, and ends at timeoutSeconds', async () => {
    const start = server.resourceVersion();
    const a = server.seed.pod({ namespace: 'watching', name: 'a', containers: ['nginx:1.25'], labels: { sel: 'yes' } });
    server.objects.upsert({ ...a, metadata: { ...a.metadata, labels: { sel: 'no' } } });
    server.objects.delete('pods', 'watching', 'a');
    const events = await readLines(`/api/v1/namespaces/watching/pods?watch=1&resourceVersion=${start}&labelSelector=sel%3Dyes&timeoutSeconds=1`, 10);
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'DELETED']);
  });

  it('sends bookmarks when allowed, and 410 Expired for a compacted resourceVersion', async () => {
    const quiet = await startFakeApiServer({ crdDirs: [], bookmarkIntervalMs: 100 });
    try {
      const res = await fetch(`${quiet.url}/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion=${quiet.resourceVersion()}&timeoutSeconds=1`);
      const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: { metadata: { resourceVersion: string } } });
      expect(lines.length).toBeGreaterThanOrEqual(3);
      expect(lines.every((l) => l.type === 'BOOKMARK' && l.object.metadata.resourceVersion === quiet.resourceVersion())).toBe(true);
      const old = quiet.resourceVersion();
      quiet.seed.node('n1');
      quiet.compact();
      const expiredRes = await fetch(`${quiet.url}/api/v1/nodes?watch=true&resourceVersion=${old}`);
      const ev = JSON.parse((await expiredRes.text()).trim()) as { type: string; object: { code: number; reason: string } };
      expect(ev).toMatchObject({ type: 'ERROR', object: { code: 410, reason: 'Expired' } });
    } finally {
      await quiet.stop();
    }
  });
});

describe('fault injection and the request log', () => {
  it('fails the configured fraction of matching requests with 429 (Retry-After) or 500', async () => {
    server.faults.set({ errorRate: 0.3, verbs: ['get'], resources: ['configmaps'], retryAfterSeconds: 2 });
    const codes: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 200; i++) {
      const r = await call('GET', '/api/v1/namespaces/default/configmaps/nope');
      codes.push(r.status);
      if (r.status === 429) retryAfter = r.headers.get('retry-after');
    }
    // a list of the same resource is not a 'get' and is never failed
    const listCodes = await Promise.all(Array.from({ length: 20 }, () => call('GET', '/api/v1/namespaces/default/configmaps').then((r) => r.status)));
    server.faults.clear();
    const failed = codes.filter((c) => c === 429 || c === 500).length;
    expect(failed / codes.length).toBeGreaterThan(0.2);
    expect(failed / codes.length).toBeLessThan(0.4);
    expect(codes.filter((c) => c === 404).length).toBe(200 - failed);
    expect(codes).toContain(429);
    expect(codes).toContain(500);
    expect(retryAfter).toBe('2');
    expect(listCodes.every((c) => c === 200)).toBe(true);
    const stats = server.faults.stats();
    expect(stats.injected429 + stats.injected500).toBe(failed);
  });

  it('adds latency and drops open watches periodically', async () => {
    server.faults.set({ latencyMs: 150 });
    const started = Date.now();
    await call('GET', '/api/v1/namespaces');
    expect(Date.now() - started).toBeGreaterThanOrEqual(145);
    server.faults.set({ dropWatchesEveryMs: 100, dropWatchesMode: 'close' });
    const before = server.faults.stats().droppedWatches;
    const watchStarted = Date.now();
    const res = await fetch(`${server.url}/api/v1/pods?watch=true&resourceVersion=${server.resourceVersion()}&timeoutSeconds=5`);
    await res.text();
    server.faults.clear();
    expect(Date.now() - watchStarted).toBeLessThan(1000);
    expect(server.faults.stats().droppedWatches).toBeGreaterThan(before);
  });

  it('turns updates of a resource into 409 storms', async () => {
    const created = (await call('POST', WIDGETS, widget('w-storm', { size: 1 }))).body;
    server.faults.set({ conflictRate: 1, conflictResources: ['widgets.example.com'] });
    const r = await call('PUT', `${WIDGETS}/w-storm`, { ...created, spec: { size: 2 } });
    server.faults.clear();
    expect(r.status).toBe(409);
    expect(r.body.reason).toBe('Conflict');
  });

  it('records verb, resource, subresource, namespace, name, identity and code of each request', async () => {
    server.clearRequests();
    await call('POST', WIDGETS, widget('w-log', { size: 1 }), { token: 'operator-a' });
    await call('PATCH', `${WIDGETS}/w-log/status`, { status: { ready: 'y' } }, { token: 'operator-b', contentType: 'application/merge-patch+json' });
    await call('PUT', `${WIDGETS}/w-log`, { ...widget('w-log', { size: 2 }) }, { token: 'operator-b' });
    await call('GET', '/apis', undefined, { token: 'operator-a' });
    const log = server.requests();
    const rows = log.filter((r) => r.verb !== undefined).map((r) => [r.verb, r.apiGroup, r.resource, r.subresource, r.namespace, r.name, r.identity, r.code]);
    expect(rows).toEqual([
      ['create', 'example.com', 'widgets', undefined, 'default', undefined, 'operator-a', 201],
      ['patch', 'example.com', 'widgets', 'status', 'default', 'w-log', 'operator-b', 200],
      // custom resources need a resourceVersion on update: 422
      ['update', 'example.com', 'widgets', undefined, 'default', 'w-log', 'operator-b', 422],
    ]);
    const statusPatch = log.find((r) => r.subresource === 'status');
    expect(statusPatch && rbacAttributes(statusPatch)).toEqual({ verb: 'patch', apiGroup: 'example.com', resource: 'widgets/status', namespace: 'default', name: 'w-log' });
    expect(log.filter(isWrite)).toHaveLength(3);
    const discovery = log.find((r) => r.path === '/apis');
    expect(discovery?.verb).toBeUndefined();
    expect(discovery?.identity).toBe('operator-a');
    expect(server.requests({ identity: 'operator-b' })).toHaveLength(2);
  });

  it('offers the same controls over HTTP under /__fake/', async () => {
    const set = await fetch(`${server.url}/__fake/faults`, { method: 'POST', body: JSON.stringify({ errorRate: 1, errorCodes: [500], resources: ['secrets'] }) });
    expect(set.status).toBe(200);
    expect((await call('GET', '/api/v1/namespaces/default/secrets')).status).toBe(500);
    await fetch(`${server.url}/__fake/faults`, { method: 'DELETE' });
    expect((await call('GET', '/api/v1/namespaces/default/secrets')).status).toBe(200);
    const stats = (await (await fetch(`${server.url}/__fake/stats`)).json()) as { resourceVersion: string };
    expect(stats.resourceVersion).toBe(server.resourceVersion());
    const reqs = (await (await fetch(`${server.url}/__fake/requests`)).json()) as { path: string }[];
    expect(reqs.some((r) => r.path === '/api/v1/namespaces/default/secrets')).toBe(true);
    // control requests themselves are not in the log
    expect(reqs.some((r) => r.path.startsWith('/__fake'))).toBe(false);
  });
});
