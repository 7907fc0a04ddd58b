// Which images an admission request asks to run, and whether it is one the policies judge at all:
// workloads and their pod templates (CREATE, and UPDATE only for images it adds), bare pods that no
// controller owns; never pods a controller created, whose template was judged already.
import type { AdmissionRequest } from './admission-review.js';
import { isRecord } from './admission-review.js';

export type ImagesToJudge = { judge: false; reason: string } | { judge: true; namespace: string; images: string[] };

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
  const images = podSpecImages(request.object, path);
  if (images === undefined) return { judge: false, reason: 'object has no readable pod spec' };
  if (request.operation === 'UPDATE') {
    const before = new Set(podSpecImages(request.oldObject, path) ?? []);
    const added = images.filter((i) => !before.has(i));
    if (added.length === 0) return { judge: false, reason: 'update adds no image' };
    return { judge: true, namespace: request.namespace, images: added };
  }
  return { judge: true, namespace: request.namespace, images };
}

function hasControllerOwner(object: unknown): boolean {
  const meta = isRecord(object) && isRecord(object.metadata) ? object.metadata : {};
  return Array.isArray(meta.ownerReferences) && meta.ownerReferences.some((o) => isRecord(o) && o.controller === true);
}

/** Images of init, regular and ephemeral containers, sorted and unique; undefined when there is no pod spec. */
function podSpecImages(object: unknown, path: string[]): string[] | undefined {
  let spec: unknown = object;
  for (const key of path) spec = isRecord(spec) ? spec[key] : undefined;
  if (!isRecord(spec)) return undefined;
  const images = new Set<string>();
  for (const list of [spec.initContainers, spec.containers, spec.ephemeralContainers]) {
    if (!Array.isArray(list)) continue;
    for (const c of list) if (isRecord(c) && typeof c.image === 'string' && c.image !== '') images.add(c.image);
  }
  return [...images].sort();
}
