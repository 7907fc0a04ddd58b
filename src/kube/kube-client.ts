// Loading the kubeconfig and building the typed API clients the operator uses.
import {
  AppsV1Api,
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  ServerConfiguration,
  createConfiguration,
} from '@kubernetes/client-node';
import type { Middleware, RequestContext, ResponseContext } from '@kubernetes/client-node';

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
}

export interface KubeClientOptions {
  /** Aborts any ordinary (non-watch) request that takes longer; client-node has no default timeout. */
  requestTimeoutMs: number;
  /** Sent as User-Agent so API server audit logs name the operator (and its replica). */
  userAgent: string;
}

/**
 * Loads the kubeconfig: the given file, else client-node's default order ($KUBECONFIG, ~/.kube/config,
 * in-cluster service account). Throws when no cluster results, rather than silently using
 * client-node's http://localhost:8080 fallback.
 */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath !== undefined && kubeconfigPath !== '') {
    kc.loadFromFile(kubeconfigPath);
  } else {
    kc.loadFromDefault();
  }
  if (kc.getCurrentCluster() === null) {
    throw new Error(`kubeconfig ${kubeconfigPath ?? '(default)'} has no current cluster`);
  }
  return kc;
}

function requestMiddleware(options: KubeClientOptions): Middleware {
  return {
    pre: (ctx: RequestContext): Promise<RequestContext> => {
      ctx.setHeaderParam('User-Agent', options.userAgent);
      // A hung connection must not stall a worker forever; the timeout surfaces as a transient error.
      ctx.setSignal(AbortSignal.timeout(options.requestTimeoutMs));
      return Promise.resolve(ctx);
    },
    post: (ctx: ResponseContext): Promise<ResponseContext> => Promise.resolve(ctx),
  };
}

/** Builds the API clients with a per-request timeout and our User-Agent. Throws on a kubeconfig without cluster. */
export function createKubeClients(kc: KubeConfig, options: KubeClientOptions): KubeClients {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) {
    throw new Error('kubeconfig has no current cluster');
  }
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [requestMiddleware(options)],
  });
  return {
    kubeConfig: kc,
    server: cluster.server,
    contextNamespace: kc.getContextObject(kc.getCurrentContext())?.namespace,
    core: new CoreV1Api(configuration),
    apps: new AppsV1Api(configuration),
    batch: new BatchV1Api(configuration),
    custom: new CustomObjectsApi(configuration),
    coordination: new CoordinationV1Api(configuration),
  };
}
