// TokenReview and SubjectAccessReview as the real API server answers them: the review comes back
// with its status filled in and is never stored. Servers that delegate authentication and
// authorization to the cluster (the operator's secure /metrics) send these.
import { invalid } from './errors.js';
import type { RbacAuthorizer, RbacAttributes } from './rbac.js';
import { groupsOf } from './rbac.js';
import type { KubeObject, Verb } from './types.js';
import { isRecord } from './types.js';

/** A TokenReview answered from the fake's token table: known tokens authenticate as their user. */
export function answerTokenReview(body: KubeObject, tokens: ReadonlyMap<string, string>): KubeObject {
  const spec = isRecord(body.spec) ? body.spec : {};
  const token = typeof spec.token === 'string' ? spec.token : '';
  if (token === '') throw invalid('authentication.k8s.io', 'TokenReview', '', [{ field: 'spec.token', reason: 'FieldValueRequired', message: 'Required value' }]);
  const user = tokens.get(token);
  const status =
    user === undefined
      ? { authenticated: false, user: {}, error: 'invalid bearer token' }
      : { authenticated: true, user: { username: user, uid: `uid-${user}`, groups: groupsOf(user) }, audiences: ['https://kubernetes.default.svc'] };
  return { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', metadata: {}, spec: { token }, status };
}

/**
 * A SubjectAccessReview evaluated against the fake's RBAC. Users it does not enforce RBAC for may do
 * anything, as everywhere in the fake; enforced users get exactly what their bindings grant.
 */
export function answerSubjectAccessReview(body: KubeObject, rbac: { authorizer: RbacAuthorizer | undefined; enforceFor: readonly string[] }): KubeObject {
  const spec = isRecord(body.spec) ? body.spec : {};
  const user = typeof spec.user === 'string' ? spec.user : '';
  const groups = Array.isArray(spec.groups) ? spec.groups.filter((g): g is string => typeof g === 'string') : [];
  const nonResource = isRecord(spec.nonResourceAttributes) ? spec.nonResourceAttributes : undefined;
  const resource = isRecord(spec.resourceAttributes) ? spec.resourceAttributes : undefined;
  if (user === '' && groups.length === 0) throw invalid('authorization.k8s.io', 'SubjectAccessReview', '', [{ field: 'spec.user', reason: 'FieldValueRequired', message: 'at least one of user or group must be specified' }]);
  if ((nonResource === undefined) === (resource === undefined)) {
    throw invalid('authorization.k8s.io', 'SubjectAccessReview', '', [{ field: 'spec.resourceAttributes', reason: 'FieldValueInvalid', message: 'exactly one of nonResourceAttributes or resourceAttributes must be specified' }]);
  }

  let allowed: boolean;
  if (rbac.authorizer === undefined || !rbac.enforceFor.includes(user)) {
    allowed = true;
  } else if (nonResource !== undefined) {
    allowed = rbac.authorizer.allowsNonResource(user, groups, String(nonResource.path ?? ''), String(nonResource.verb ?? ''));
  } else {
    const r = resource ?? {};
    const attrs: RbacAttributes = {
      verb: String(r.verb ?? '') as Verb,
      apiGroup: String(r.group ?? ''),
      resource: String(r.resource ?? ''),
      subresource: typeof r.subresource === 'string' && r.subresource !== '' ? r.subresource : undefined,
      namespace: typeof r.namespace === 'string' && r.namespace !== '' ? r.namespace : undefined,
      name: typeof r.name === 'string' && r.name !== '' ? r.name : undefined,
    };
    allowed = rbac.authorizer.allows(user, attrs, groups);
  }
  return {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    metadata: {},
    spec,
    status: allowed ? { allowed: true, reason: 'RBAC: allowed' } : { allowed: false },
  };
}
