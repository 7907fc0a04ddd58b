// TokenReview and SubjectAccessReview through client-node's typed clients, as the operator's secure
// /metrics sends them: known tokens authenticate, non-resource URLs are authorized by the RBAC model,
// and creating a review at all needs RBAC of its own.
import { ApiException, AuthenticationV1Api, AuthorizationV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from './index.js';
import type { FakeApiServer, KubeObject } from './index.js';

const OPERATOR = 'system:serviceaccount:imagescan-system:imagescan-operator';
const PROMETHEUS = 'system:serviceaccount:monitoring:prometheus-k8s';
const DEVELOPER = 'dev@example.com';

const rbac: KubeObject[] = [
  {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'reviewer' },
    rules: [
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
    ],
  },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'reviewer' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'reviewer' }, subjects: [{ kind: 'ServiceAccount', name: 'imagescan-operator', namespace: 'imagescan-system' }] },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'metrics-reader' }, rules: [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }] },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'debug-reader' }, rules: [{ nonResourceURLs: ['/debug/*'], verbs: ['get'] }] },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'prometheus' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'metrics-reader' }, subjects: [{ kind: 'ServiceAccount', name: 'prometheus-k8s', namespace: 'monitoring' }] },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'debuggers' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'debug-reader' }, subjects: [{ kind: 'Group', name: 'debuggers' }] },
];

let server: FakeApiServer;
let authentication: AuthenticationV1Api;
let authorization: AuthorizationV1Api;

function clientsFor(identity: string): { authentication: AuthenticationV1Api; authorization: AuthorizationV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(server.kubeconfigFor(identity));
  return { authentication: kc.makeApiClient(AuthenticationV1Api), authorization: kc.makeApiClient(AuthorizationV1Api) };
}

async function mayGet(user: string, groups: string[], path: string): Promise<boolean | undefined> {
  const review = await authorization.createSubjectAccessReview({ body: { spec: { user, groups, nonResourceAttributes: { path, verb: 'get' } } } });
  return review.status?.allowed;
}

beforeAll(async () => {
  server = await startFakeApiServer({ rbac: { objects: rbac, enforceFor: [OPERATOR, PROMETHEUS, DEVELOPER] } });
  server.kubeconfigFor(PROMETHEUS, { token: 'prometheus-token' });
  ({ authentication, authorization } = clientsFor(OPERATOR));
});

afterAll(async () => {
  await server.stop();
});

describe('TokenReview', () => {
  it('authenticates a token the server issued, with the service account groups', async () => {
    const review = await authentication.createTokenReview({ body: { spec: { token: 'prometheus-token' } } });
    expect(review.status?.authenticated).toBe(true);
    expect(review.status?.user?.username).toBe(PROMETHEUS);
    expect(review.status?.user?.groups).toEqual(['system:authenticated', 'system:serviceaccounts', 'system:serviceaccounts:monitoring']);
  });

  it('does not authenticate a token it never issued', async () => {
    const review = await authentication.createTokenReview({ body: { spec: { token: 'guessed' } } });
    expect(review.status?.authenticated).toBe(false);
    expect(review.status?.user?.username).toBeUndefined();
  });

  it('is not stored or readable: only create is served', async () => {
    const res = await fetch(`${server.url}/apis/authentication.k8s.io/v1/tokenreviews`, { headers: { Authorization: 'Bearer admin' } });
    expect(res.status).toBe(405);
  });
});

describe('SubjectAccessReview', () => {
  it('allows a non-resource URL to a user bound to a ClusterRole that lists it, and to no one else', async () => {
    expect(await mayGet(PROMETHEUS, ['system:authenticated'], '/metrics')).toBe(true);
    expect(await mayGet(PROMETHEUS, ['system:authenticated'], '/metrics/extra')).toBe(false);
    expect(await mayGet(DEVELOPER, ['system:authenticated'], '/metrics')).toBe(false);
  });

  it('matches a trailing * as a prefix, and binds groups named in the review', async () => {
    expect(await mayGet(DEVELOPER, ['debuggers'], '/debug/pprof/heap')).toBe(true);
    expect(await mayGet(DEVELOPER, ['system:authenticated'], '/debug/pprof/heap')).toBe(false);
  });

  it('refuses a review with neither or both kinds of attributes (422), like the real validation', async () => {
    const err = await authorization.createSubjectAccessReview({ body: { spec: { user: DEVELOPER } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiException);
    expect((err as ApiException<unknown>).code).toBe(422);
  });

  it('needs RBAC to create reviews at all: a user without it gets 403', async () => {
    const developer = clientsFor(DEVELOPER);
    const err = await developer.authentication.createTokenReview({ body: { spec: { token: 'prometheus-token' } } }).catch((e: unknown) => e);
    expect((err as ApiException<unknown>).code).toBe(403);
    expect(server.rbacUsage().filter((u) => u.resource === 'tokenreviews' && u.count > 0)).toHaveLength(1);
  });
});
