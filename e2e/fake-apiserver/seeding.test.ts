// Seeding helpers and the controller-like behaviours the fake stands in for; plus the standalone CLI.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestFor, startFakeApiServer } from './index.js';
import { podSuffix } from './seed.js';
import type { FakeApiServer, KubeObject } from './index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// tsx itself (not npx, which does not relay SIGTERM) so the signal reaches the server process.
const TSX = path.resolve(here, '../../node_modules/.bin/tsx');
let server: FakeApiServer;

beforeAll(async () => {
  server = await startFakeApiServer({ crdDirs: [path.join(here, 'testdata')] });
});

afterAll(async () => {
  await server.stop();
});

function ownerOf(obj: KubeObject | undefined): string {
  const ref = obj?.metadata?.ownerReferences?.[0];
  return ref ? `${ref.kind}/${ref.name}/${ref.uid}` : 'none';
}

function uidRef(obj: KubeObject): string {
  return `${String(obj.kind)}/${obj.metadata?.name ?? ''}/${obj.metadata?.uid ?? ''}`;
}

describe('seeding', () => {
  it('builds Deployment → ReplicaSet → running pods with ownerReferences and imageIDs', () => {
    const { owner, intermediate, pods } = server.seed.deployment({ namespace: 'shop', name: 'web', replicas: 3, containers: ['nginx:1.25', { image: 'registry.example.com:5000/team/sidecar@sha256:' + 'b'.repeat(64) }], nodes: ['n1', 'n2'] });
    expect(intermediate).toBeDefined();
    if (!intermediate) return;
    expect(ownerOf(intermediate)).toBe(uidRef(owner));
    expect(pods).toHaveLength(3);
    for (const pod of server.objects.list('pods', 'shop')) {
      expect(ownerOf(pod)).toBe(uidRef(intermediate));
      const status = pod.status as { phase: string; containerStatuses: { imageID: string; state: Record<string, unknown> }[] };
      expect(status.phase).toBe('Running');
      expect(status.containerStatuses.map((c) => c.imageID)).toEqual([
        `docker.io/library/nginx@${digestFor('nginx:1.25')}`,
        `registry.example.com:5000/team/sidecar@sha256:${'b'.repeat(64)}`,
      ]);
      expect(Object.keys(status.containerStatuses[0]?.state ?? {})).toEqual(['running']);
    }
    expect(server.objects.list('pods', 'shop').map((p) => (p.spec as { nodeName: string }).nodeName).sort()).toEqual(['n1', 'n1', 'n2']);
    // the namespace was created, with the default service account a real cluster has
    expect(server.objects.get('namespaces', undefined, 'shop')).toBeDefined();
    expect(server.objects.get('serviceaccounts', 'shop', 'default')).toBeDefined();
  });

  it('gives replicas of one owner distinct names even when their suffixes clash', () => {
    const first = podSuffix('owner-uid', 0);
    expect(podSuffix('owner-uid', 0)).toBe(first);
    const redrawn = podSuffix('owner-uid', 1, new Set([first, podSuffix('owner-uid', 1)]));
    expect(redrawn).toMatch(/^[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    expect([first, podSuffix('owner-uid', 1)]).not.toContain(redrawn);
  });

  it('builds CronJob → Job → pods, and pull secrets in both docker formats', () => {
    const { owner, intermediate, pods } = server.seed.cronJob({ namespace: 'batch', name: 'report', containers: ['busybox:1.36'] });
    expect(ownerOf(intermediate)).toBe(uidRef(owner));
    expect(intermediate && ownerOf(pods[0])).toBe(intermediate && uidRef(intermediate));

    const json = server.seed.dockerConfigJsonSecret('batch', 'regcred', { 'registry.example.com': { username: 'u', password: 'p' } });
    const decodedJson = JSON.parse(Buffer.from(String((json.data as Record<string, string>)['.dockerconfigjson']), 'base64').toString()) as { auths: Record<string, { auth: string }> };
    expect(Buffer.from(decodedJson.auths['registry.example.com']?.auth ?? '', 'base64').toString()).toBe('u:p');
    const cfg = server.seed.dockerCfgSecret('batch', 'legacy', { 'registry.example.com': { username: 'u', password: 'p' } });
    expect(cfg.type).toBe('kubernetes.io/dockercfg');
    const decodedCfg = JSON.parse(Buffer.from(String((cfg.data as Record<string, string>)['.dockercfg']), 'base64').toString()) as Record<string, unknown>;
    expect(Object.keys(decodedCfg)).toEqual(['registry.example.com']);
    const sa = server.seed.serviceAccount('batch', 'builder', ['regcred']);
    expect(sa.imagePullSecrets).toEqual([{ name: 'regcred' }]);
  });
});

describe('controller stand-ins', () => {
  it('deletes a namespace with its contents and emits DELETED for each', async () => {
    server.seed.pod({ namespace: 'doomed', name: 'p', containers: ['nginx:1.25'] });
    const before = server.resourceVersion();
    const res = await fetch(`${server.url}/api/v1/namespaces/doomed`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect(server.objects.count('pods', 'doomed')).toBe(0);
    const watch = await fetch(`${server.url}/api/v1/pods?watch=true&resourceVersion=${before}&timeoutSeconds=1`);
    expect((await watch.text()).trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type)).toEqual(['DELETED']);
  });

  it('serves a CRD created through the API at once, and forgets its objects when it is deleted', async () => {
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'gadgets.example.org' },
      spec: { group: 'example.org', scope: 'Cluster', names: { plural: 'gadgets', kind: 'Gadget' }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { n: { type: 'integer' } } } } } } }] },
    };
    const created = await fetch(`${server.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions`, { method: 'POST', body: JSON.stringify(crd), headers: { 'Content-Type': 'application/json' } });
    expect(created.status).toBe(201);
    const established = (await created.json()) as { status: { conditions: { type: string; status: string }[] } };
    expect(established.status.conditions.find((c) => c.type === 'Established')?.status).toBe('True');
    const discovery = (await (await fetch(`${server.url}/apis/example.org/v1`)).json()) as { resources: { name: string; namespaced: boolean }[] };
    expect(discovery.resources).toEqual([expect.objectContaining({ name: 'gadgets', namespaced: false })]);
    const g = await fetch(`${server.url}/apis/example.org/v1/gadgets`, { method: 'POST', body: JSON.stringify({ apiVersion: 'example.org/v1', kind: 'Gadget', metadata: { name: 'g1' }, spec: { n: 1, junk: 2 } }) });
    expect(((await g.json()) as { spec: unknown }).spec).toEqual({ n: 1 });
    await fetch(`${server.url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.example.org`, { method: 'DELETE' });
    expect((await fetch(`${server.url}/apis/example.org/v1/gadgets`)).status).toBe(404);
  });

  it('merges strategic patches of built-ins by merge key and keeps objects with finalizers until they are removed', async () => {
    server.seed.pod({ namespace: 'smp', name: 'p', containers: [{ name: 'a', image: 'nginx:1.25' }, { name: 'b', image: 'redis:7' }] });
    const patch = { metadata: { finalizers: ['example.com/hold'] }, spec: { containers: [{ name: 'b', image: 'redis:7.2' }] } };
    const r = await fetch(`${server.url}/api/v1/namespaces/smp/pods/p`, { method: 'PATCH', body: JSON.stringify(patch), headers: { 'Content-Type': 'application/strategic-merge-patch+json' } });
    const pod = (await r.json()) as { spec: { containers: { name: string; image: string }[] } };
    expect(pod.spec.containers.map((c) => `${c.name}=${c.image}`)).toEqual(['a=nginx:1.25', 'b=redis:7.2']);
    await fetch(`${server.url}/api/v1/namespaces/smp/pods/p`, { method: 'DELETE' });
    expect(server.objects.get('pods', 'smp', 'p')?.metadata?.deletionTimestamp).toBeDefined();
    await fetch(`${server.url}/api/v1/namespaces/smp/pods/p`, { method: 'PATCH', body: JSON.stringify({ metadata: { finalizers: null } }), headers: { 'Content-Type': 'application/merge-patch+json' } });
    expect(server.objects.get('pods', 'smp', 'p')).toBeUndefined();
  });
});

describe('standalone CLI', () => {
  it('serves a seed file, writes the kubeconfig, and exits 0 on SIGTERM', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fake-cli-'));
    try {
      const seedFile = path.join(dir, 'seed.json');
      writeFileSync(seedFile, JSON.stringify([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } }, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'demo' }, data: { a: 'b' } }]));
      const kubeconfig = path.join(dir, 'kubeconfig');
      const child = execa(TSX, [path.join(here, 'main.ts'), '--seed', seedFile, '--kubeconfig-out', kubeconfig], { reject: false, env: { PATH: `${path.resolve(here, '../../node_modules/.bin')}:${process.env.PATH ?? ''}` } });
      let output = '';
      child.stdout?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      const deadline = Date.now() + 15_000;
      while (!/kubeconfig: /.test(output) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const url = /listening on (\S+)/.exec(output)?.[1] ?? '';
      expect(output).toContain(`kubeconfig: ${kubeconfig}`);
      const cm = (await (await fetch(`${url}/api/v1/namespaces/demo/configmaps/c`)).json()) as { data: unknown };
      expect(cm.data).toEqual({ a: 'b' });
      child.kill('SIGTERM');
      const result = await Promise.race([child, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('CLI did not exit on SIGTERM')), 5000))]).finally(() => child.kill('SIGKILL'));
      expect(result.exitCode).toBe(0);
      const bad = await execa(TSX, [path.join(here, 'main.ts'), '--port', 'x'], { reject: false });
      expect(bad.exitCode).toBe(2);
      expect(String(bad.stderr)).toContain('--port');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
