// Loading the kubeconfig and building the typed API clients the operator uses.
import {
  ApiException,
  AppsV1Api,
  AuthenticationV1Api,
  AuthorizationV1Api,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  HttpMethod,
  KubeConfig,
  ServerConfiguration,
  createConfiguration,
} from '@kubernetes/client-node';
import type { Configuration, Middleware, RequestContext, ResponseContext } from '@kubernetes/client-node';
import { undiciHttpLibrary } from './http-library.js';
import { fencedWriteError } from './write-fence.js';
import type { WriteFence } from './write-fence.js';

/** The clients every part of the operator shares, built from one kubeconfig. */
export interface KubeClients {
  kubeConfig: KubeConfig;
  /** The API server URL, logged at start so a missing kubeconfig is obvious. */
  server: string;
  /** The namespace of the current context (in cluster: the operator's own namespace). */
  contextNamespace: string | undefined;
  core: CoreV1Api;
  apps: AppsV1Api;
  batch: BatchV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  /** TokenReviews and SubjectAccessReviews: who may read /metrics. */
  authentication: AuthenticationV1Api;
  authorization: AuthorizationV1Api;
  /** A GET whose JSON answer is returned as parsed, without client-node's model classes (see rawGetter). */
  getJson: RawGet;
}

/**
 * GET `path` with these query parameters; resolves to the parsed JSON body, throws ApiException on
 * non-2xx. `accept` replaces the Accept header (default application/json).
 */
export type RawGet = (path: string, query: Readonly<Record<string, string | number | undefined>>, accept?: string) => Promise<unknown>;

export interface KubeClientOptions {
  /** Aborts any ordinary (non-watch) request that takes longer; client-node has no default timeout. */
  requestTimeoutMs: number;
  /** Sent as User-Agent so API server audit logs name the operator (and its replica). */
  userAgent: string;
  /**
   * Checked before every write of the typed clients (not the Lease client's, which must renew), whose
   * signal aborts writes in flight when it closes. Default: every write goes.
   */
  writeFence?: WriteFence;
}

/** Where the configuration comes from (config.ts resolves flags and $KUBECONFIG into this). */
export type KubeconfigSource = { kind: 'file'; paths: readonly string[] } | { kind: 'in-cluster' };

/**
 * Loads the kubeconfig: the files in order (the first one's current context wins, later ones are
 * merged in, as kubectl does with $KUBECONFIG), or the pod's service account. Throws when no cluster
 * results, rather than silently using client-node's http://localhost:8080 fallback.
 */
export function loadKubeConfig(source: KubeconfigSource): KubeConfig {
  const kc = new KubeConfig();
  if (source.kind === 'in-cluster') {
    kc.loadFromCluster();
  } else {
    const [first, ...rest] = source.paths;
    if (first === undefined) throw new Error('no kubeconfig file given');
    kc.loadFromFile(first);
    for (const path of rest) {
      const other = new KubeConfig();
      other.loadFromFile(path);
      kc.mergeConfig(other, true);
    }
  }
  if (kc.getCurrentCluster() === null) {
    throw new Error(`kubeconfig ${source.kind === 'file' ? source.paths.join(':') : '(in-cluster)'} has no current cluster`);
  }
  return kc;
}

function requestMiddleware(options: KubeClientOptions, fence: WriteFence | undefined): Middleware {
  return {
    pre: (ctx: RequestContext): Promise<RequestContext> => {
      ctx.setHeaderParam('User-Agent', options.userAgent);
      // A hung connection must not stall a worker forever; the timeout surfaces as a transient error.
      const timeout = AbortSignal.timeout(options.requestTimeoutMs);
      const method = ctx.getHttpMethod();
      if (fence === undefined || method === HttpMethod.GET) {
        ctx.setSignal(timeout);
        return Promise.resolve(ctx);
      }
      if (!fence.mayWrite()) return Promise.reject(fencedWriteError(method, ctx.getUrl()));
      const term = fence.signal();
      ctx.setSignal(term === undefined ? timeout : AbortSignal.any([timeout, term]));
      return Promise.resolve(ctx);
    },
    post: (ctx: ResponseContext): Promise<ResponseContext> => Promise.resolve(ctx),
  };
}

/**
 * The kubeconfig's authentication, reusing one HTTP dispatcher. client-node 2.0.1 builds a new undici
 * Agent for every typed-API request (`KubeConfig.createDispatcher` is not cached), so each request
 * opened a new connection (and TLS handshake); a 5,000-pod benchmark profile showed 2,116 Agents with
 * open sockets in the heap. Headers and tokens are still applied per request.
 */
function reusingDispatcher(kc: KubeConfig): { getName(): string; applySecurityAuthentication(context: RequestContext): Promise<void> } {
  let shared: ReturnType<RequestContext['getDispatcher']>;
  return {
    getName: () => kc.getName(),
    async applySecurityAuthentication(context: RequestContext): Promise<void> {
      await kc.applySecurityAuthentication(context);
      const fresh = context.getDispatcher();
      if (fresh === undefined) return;
      if (shared === undefined) {
        shared = fresh;
        return;
      }
      // The fresh one is dropped unused (it opened no connection). Closing it built an undici error
      // with a stack trace per request: 0.7% of the cold-start CPU profile.
      context.setDispatcher(shared);
    },
  };
}

/**
 * GETs through the typed clients' configuration (authentication, shared dispatcher, User-Agent and
 * timeout middleware), returning JSON.parse's result. For the informers' list pages: the typed list
 * calls turn every object into client-node's model classes, which the informers then reduce to slim
 * entries from raw JSON anyway; for 10,000 pods that was ~140 ms of a cold start's first second.
 */
function rawGetter(configuration: Configuration): RawGet {
  return async (path, query, accept = 'application/json') => {
    let context = configuration.baseServer.makeRequestContext(path, HttpMethod.GET);
    for (const [name, value] of Object.entries(query)) if (value !== undefined) context.setQueryParam(name, String(value));
    context.setHeaderParam('Accept', accept);
    await configuration.authMethods.default?.applySecurityAuthentication(context);
    for (const middleware of configuration.middleware) context = await middleware.pre(context).toPromise();
    let response = await configuration.httpApi.send(context).toPromise();
    for (const middleware of [...configuration.middleware].reverse()) response = await middleware.post(response).toPromise();
    const body = await response.body.text();
    if (response.httpStatusCode < 200 || response.httpStatusCode > 299) {
      throw new ApiException(response.httpStatusCode, `GET ${path}: HTTP ${response.httpStatusCode}`, body, response.headers);
    }
    return JSON.parse(body) as unknown;
  };
}

/** Builds the API clients with a per-request timeout and our User-Agent. Throws on a kubeconfig without cluster. */
export function createKubeClients(kc: KubeConfig, options: KubeClientOptions): KubeClients {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) {
    throw new Error('kubeconfig has no current cluster');
  }
  const auth = reusingDispatcher(kc);
  const httpApi = undiciHttpLibrary();
  const configure = (fence: WriteFence | undefined): Configuration =>
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: auth },
      httpApi,
      promiseMiddleware: [requestMiddleware(options, fence)],
    });
  const configuration = configure(options.writeFence);
  const unfenced = configure(undefined);
  return {
    kubeConfig: kc,
    server: cluster.server,
    contextNamespace: kc.getContextObject(kc.getCurrentContext())?.namespace,
    core: new CoreV1Api(configuration),
    apps: new AppsV1Api(configuration),
    batch: new BatchV1Api(configuration),
    custom: new CustomObjectsApi(configuration),
    // Leader election writes the Lease to keep (or take) the right to write: never fenced.
    coordination: new CoordinationV1Api(unfenced),
    // Reviews are POSTs that store nothing, and every replica serves /metrics: never fenced.
    authentication: new AuthenticationV1Api(unfenced),
    authorization: new AuthorizationV1Api(unfenced),
    getJson: rawGetter(configuration),
  };
}
