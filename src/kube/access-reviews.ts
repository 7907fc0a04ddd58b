// Asks the API server who a bearer token belongs to (TokenReview) and whether that user may do
// something (SubjectAccessReview), so the metrics endpoint trusts exactly what the cluster's RBAC says.
import type { AuthenticationV1Api, AuthorizationV1Api } from '@kubernetes/client-node';
import type { AccessReviewer, ReviewedUser, TokenReviewResult } from '../metrics/metrics-auth.js';
import { toKubeApiError } from './api-error.js';

/** AccessReviewer over client-node. Every call is one request; failures throw KubeApiError, never retried here. */
export class KubeAccessReviewer implements AccessReviewer {
  constructor(private readonly clients: { authentication: AuthenticationV1Api; authorization: AuthorizationV1Api }) {}

  async reviewToken(token: string): Promise<TokenReviewResult> {
    let review;
    try {
      // No audiences: the API server checks the token against its own, as for a request made to it.
      review = await this.clients.authentication.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });
    } catch (err) {
      throw toKubeApiError(err, 'creating a TokenReview');
    }
    const status = review.status;
    const username = status?.user?.username;
    if (status?.authenticated !== true || username === undefined || username === '') return { authenticated: false };
    const user: ReviewedUser = { username, groups: status.user?.groups ?? [], extra: status.user?.extra ?? {} };
    if (status.user?.uid !== undefined) user.uid = status.user.uid;
    return { authenticated: true, user };
  }

  async reviewNonResourceAccess(user: ReviewedUser, path: string, verb: string): Promise<boolean> {
    let review;
    try {
      review = await this.clients.authorization.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: user.username,
            groups: user.groups,
            extra: user.extra,
            ...(user.uid === undefined ? {} : { uid: user.uid }),
            nonResourceAttributes: { path, verb },
          },
        },
      });
    } catch (err) {
      throw toKubeApiError(err, 'creating a SubjectAccessReview');
    }
    return review.status?.allowed === true;
  }
}
