// Optional RBAC enforcement: denied requests get the real 403 Forbidden, allowed ones are counted
// per granted permission so a suite can find permissions nobody used.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from './index.js';
import type { FakeApiServer, KubeObject } from './index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SA = 'system:serviceaccount:ops:operator';

const rbacObjects: KubeObject[] = [
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'op' },
    rules: [
      { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
      { apiGroups: ['example.com'], resources: ['widgets/status'], verbs: ['patch'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['allowed'] },
    ],
  },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'op' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'op' }, subjects: [{ kind: 'ServiceAccount', name: 'operator', namespace: 'ops' }] },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'leader', namespace: 'ops' }, rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }] },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'leader', namespace: 'ops' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'leader' }, subjects: [{ kind: 'ServiceAccount', name: 'operator', namespace: 'ops' }] },
];

let server: FakeApiServer;

async function status(method: string, url: string, identity = SA, body?: unknown, contentType = 'application/json'): Promise<{ code: number; body: { reason?: string; message?: string } }> {
  const res = await fetch(server.url + url, {
    method,
    headers: { Authorization: `Bearer ${identity}`, 'Content-Type': contentType },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { code: res.status, body: (await res.json()) as { reason?: string; message?: string } };
}

beforeAll(async () => {
  server = await startFakeApiServer({ crdDirs: [path.join(here, 'testdata')], namespaces: ['default', 'ops'], rbac: { objects: rbacObjects, enforceFor: [SA] } });
  server.seed.pod({ namespace: 'default', name: 'p', containers: ['nginx:1.25'] });
});

afterAll(async () => {
  await server.stop();
});

describe('RBAC enforcement', () => {
  it('allows what the roles grant, and answers 403 Forbidden with the real message otherwise', async () => {
    expect((await status('GET', '/api/v1/pods')).code).toBe(200);
    const get = await status('GET', '/api/v1/namespaces/default/pods/p');
    expect(get.code).toBe(403);
    expect(get.body).toMatchObject({ reason: 'Forbidden', message: `pods "p" is forbidden: User "${SA}" cannot get resource "pods" in API group "" in the namespace "default"` });
    // a Role binds only in its namespace; allowed-but-missing is 404, not 403
    expect((await status('GET', '/apis/coordination.k8s.io/v1/namespaces/ops/leases/x')).code).toBe(404);
    expect((await status('GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases/x')).code).toBe(403);
    // subresource rules grant only the subresource
    expect((await status('PATCH', '/apis/example.com/v1/namespaces/default/widgets/w/status', SA, {}, 'application/merge-patch+json')).code).toBe(404);
    expect((await status('PATCH', '/apis/example.com/v1/namespaces/default/widgets/w', SA, {}, 'application/merge-patch+json')).code).toBe(403);
    // resourceNames restrict gets to the named object; listing is never allowed by them
    expect((await status('GET', '/api/v1/namespaces/default/secrets/allowed')).code).toBe(404);
    expect((await status('GET', '/api/v1/namespaces/default/secrets/other')).code).toBe(403);
    expect((await status('GET', '/api/v1/namespaces/default/secrets')).code).toBe(403);
    // identities not listed in enforceFor are not restricted
    expect((await status('GET', '/api/v1/namespaces/default/pods/p', 'admin')).code).toBe(200);
    expect(server.requests({ identity: SA, code: 403 })).toHaveLength(5);
  });

  it('counts each granted permission it used, so unused grants stand out', () => {
    const usage = server.rbacUsage();
    const used = (resource: string, verb: string): number | undefined => usage.find((u) => u.resource === resource && u.verb === verb)?.count;
    expect(used('pods', 'list')).toBe(1);
    expect(used('pods', 'watch')).toBe(0);
    expect(used('widgets/status', 'patch')).toBe(1);
    expect(used('leases', 'get')).toBe(1);
    expect(used('leases', 'create')).toBe(0);
    expect(used('secrets', 'get')).toBe(1);
    expect(usage.filter((u) => u.count === 0).map((u) => `${u.resource}:${u.verb}`).sort()).toEqual(['leases:create', 'leases:update', 'pods:watch']);
  });
});
