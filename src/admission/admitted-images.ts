// Which images an admission request asks to run, and whether it is one the policies judge at all:
// workloads and their pod templates (CREATE, and UPDATE only for images it adds), bare pods that no
// controller owns; never pods a controller created, whose template was judged already.
import type { AdmissionRequest } from './admission-review.js';
import { isRecord } from './admission-review.js';

/** Whose pull secrets the pods would use: the pod spec's imagePullSecrets and service account. */
export interface PullIdentity {
  namespace: string;
  imagePullSecrets: string[];
  serviceAccountName?: string;
}

export type ImagesToJudge = { judge: false; reason: string } | { judge: true; namespace: string; images: string[]; pullIdentity: PullIdentity };

/** Where each judged kind keeps its pod spec. */
const POD_SPEC_PATHS: Record<string, string[]> = {
  '/Pod': ['spec'],
  'apps/Deployment': ['spec', 'template', 'spec'],
  'apps/StatefulSet': ['spec', 'template', 'spec'],
  'apps/DaemonSet': ['spec', 'template', 'spec'],
  'apps/ReplicaSet': ['spec', 'template', 'spec'],
  'batch/Job': ['spec', 'template', 'spec'],
  'batch/CronJob': ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

/**
 * The images to judge for a request (sorted, each once), or why it is not judged: not a CREATE or
 * UPDATE, a kind without a pod spec, a pod owned by a controller, an UPDATE that adds no image, or an
 * object whose pod spec cannot be read (the webhook fails open for those, like failurePolicy Ignore).
 */
export function imagesToJudge(request: AdmissionRequest): ImagesToJudge {
  if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return { judge: false, reason: `operation ${request.operation} is not judged` };
  const path = POD_SPEC_PATHS[`${request.kind.group}/${request.kind.kind}`];
  if (!path) return { judge: false, reason: `kind ${request.kind.kind} has no pod template` };
  if (request.namespace === undefined) return { judge: false, reason: 'request has no namespace' };
  if (request.kind.kind === 'Pod' && hasControllerOwner(request.object)) return { judge: false, reason: 'pod is owned by a controller' };
  const spec = podSpecOf(request.object, path);
  const images = spec === undefined ? undefined : podSpecImages(spec);
  if (spec === undefined || images === undefined) return { judge: false, reason: 'object has no readable pod spec' };
  const pullIdentity = pullIdentityOf(request.namespace, spec);
  if (request.operation === 'UPDATE') {
    const oldSpec = podSpecOf(request.oldObject, path);
    const before = new Set(oldSpec === undefined ? [] : podSpecImages(oldSpec));
    const added = images.filter((i) => !before.has(i));
    if (added.length === 0) return { judge: false, reason: 'update adds no image' };
    return { judge: true, namespace: request.namespace, images: added, pullIdentity };
  }
  return { judge: true, namespace: request.namespace, images, pullIdentity };
}

function hasControllerOwner(object: unknown): boolean {
  const meta = isRecord(object) && isRecord(object.metadata) ? object.metadata : {};
  return Array.isArray(meta.ownerReferences) && meta.ownerReferences.some((o) => isRecord(o) && o.controller === true);
}

function podSpecOf(object: unknown, path: string[]): Record<string, unknown> | undefined {
  let spec: unknown = object;
  for (const key of path) spec = isRecord(spec) ? spec[key] : undefined;
  return isRecord(spec) ? spec : undefined;
}

function pullIdentityOf(namespace: string, spec: Record<string, unknown>): PullIdentity {
  const secrets = Array.isArray(spec.imagePullSecrets) ? spec.imagePullSecrets : [];
  const imagePullSecrets = secrets.flatMap((ref) => (isRecord(ref) && typeof ref.name === 'string' && ref.name !== '' ? [ref.name] : []));
  const account = typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== '' ? spec.serviceAccountName : undefined;
  return { namespace, imagePullSecrets, ...(account === undefined ? {} : { serviceAccountName: account }) };
}

/** Images of init, regular and ephemeral containers, sorted and unique. */
function podSpecImages(spec: Record<string, unknown>): string[] {
  const images = new Set<string>();
  for (const list of [spec.initContainers, spec.containers, spec.ephemeralContainers]) {
    if (!Array.isArray(list)) continue;
    for (const c of list) if (isRecord(c) && typeof c.image === 'string' && c.image !== '') images.add(c.image);
  }
  return [...images].sort();
}
