// Finds the top-level workload that owns a pod: ReplicaSet → Deployment and Job → CronJob need one
// read each; StatefulSet, DaemonSet and bare pods are known from the pod itself.
import type { V1ObjectMeta, V1OwnerReference, V1Pod } from '@kubernetes/client-node';
import { toKubeApiError } from './api-error.js';
import type { KubeApiError } from './api-error.js';
import type { RawGet } from './kube-client.js';
import { RecentMap } from '../recent-map.js';

/** A top-level owner; `uid` and `apiVersion` let Events point at it. */
export interface Workload {
  kind: string;
  name: string;
  namespace: string;
  apiVersion: string;
  uid: string;
}

export interface OwnerResolverOptions {
  getJson: RawGet;
  /** Owners remembered by ReplicaSet/Job uid; the oldest are forgotten beyond this. */
  maxEntries?: number;
}

function controllerOf(refs: readonly V1OwnerReference[] | undefined): V1OwnerReference | undefined {
  if (refs === undefined || refs.length === 0) return undefined;
  return refs.find((ref) => ref.controller === true) ?? refs[0];
}

// Only the owner references are read, so ask for the metadata alone (what controller-runtime's metadata
// client does): the API server then sends neither the pod template nor the status, and we parse less.
// The plain JSON fallback keeps servers that cannot answer PartialObjectMetadata working.
const METADATA_ONLY = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

/** The intermediate owners worth a read, where they live, and the only parent kind we take from them. */
const INTERMEDIATE_OWNERS = {
  ReplicaSet: { groupVersion: 'apps/v1', plural: 'replicasets', parent: 'Deployment' },
  Job: { groupVersion: 'batch/v1', plural: 'jobs', parent: 'CronJob' },
} as const;

function isIntermediate(kind: string): kind is keyof typeof INTERMEDIATE_OWNERS {
  return Object.hasOwn(INTERMEDIATE_OWNERS, kind);
}

function isGiveUp(err: KubeApiError): boolean {
  // Without read access or with the owner gone, the direct owner is the best answer we can give.
  return err.kind === 'NotFound' || err.kind === 'Forbidden';
}

/** Resolves pods to their top-level workloads, remembering intermediate owners by uid. */
export class OwnerResolver {
  private readonly cache: RecentMap<string, Workload>;

  constructor(private readonly options: OwnerResolverOptions) {
    // A rescan reconciles every report, so the bound must hold every ReplicaSet and Job that runs pods:
    // at 10,000 entries the 50,000-pod bench (~15,000 ReplicaSets) missed most lookups and read 35,502
    // ReplicaSets in one rescan. An entry (uid and workload) is ~150 bytes: 7.5 MB at the bound.
    this.cache = new RecentMap(options.maxEntries ?? 50_000);
  }

  /**
   * The top-level owner of the pod. A missing or forbidden intermediate owner falls back to the
   * direct owner; other API failures throw KubeApiError (transient ones are worth a retry).
   */
  async resolve(pod: V1Pod): Promise<Workload> {
    const namespace = pod.metadata?.namespace ?? '';
    const direct = controllerOf(pod.metadata?.ownerReferences);
    if (direct === undefined) {
      return { kind: 'Pod', name: pod.metadata?.name ?? '', namespace, apiVersion: 'v1', uid: pod.metadata?.uid ?? '' };
    }
    const directWorkload: Workload = { kind: direct.kind, name: direct.name, namespace, apiVersion: direct.apiVersion, uid: direct.uid };
    if (!isIntermediate(direct.kind)) return directWorkload;

    const cached = this.cache.get(direct.uid);
    if (cached !== undefined) return cached;

    const { groupVersion, plural, parent: parentKind } = INTERMEDIATE_OWNERS[direct.kind];
    const path = `/apis/${groupVersion}/namespaces/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(direct.name)}`;
    let parent: V1OwnerReference | undefined;
    try {
      const object = (await this.options.getJson(path, {}, METADATA_ONLY)) as { metadata?: V1ObjectMeta } | null;
      parent = controllerOf(object?.metadata?.ownerReferences);
      if (parent?.kind !== parentKind) parent = undefined;
    } catch (err) {
      const apiError = toKubeApiError(err, `reading ${direct.kind} ${namespace}/${direct.name}`);
      if (isGiveUp(apiError)) return directWorkload;
      throw apiError;
    }
    const workload: Workload =
      parent === undefined
        ? directWorkload
        : { kind: parent.kind, name: parent.name, namespace, apiVersion: parent.apiVersion, uid: parent.uid };
    this.remember(direct.uid, workload);
    return workload;
  }

  private remember(uid: string, workload: Workload): void {
    if (uid === '') return;
    this.cache.set(uid, workload);
  }
}
