// The inventory of what a pod runs: each container's spec image paired with the digest its runtime
// reports, for init, regular and ephemeral containers alike.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { ImageReferenceError, resolveContainerImage, type ResolvedImage } from './image-reference.js';

export type ContainerType = 'init' | 'regular' | 'ephemeral';

/** One digest a pod runs. Containers sharing a digest are folded into one entry. */
export interface PodImage {
  /** The first container (init, then regular, then ephemeral, in spec order) that runs this digest. */
  container: string;
  containerType: ContainerType;
  /** Every container of the pod that runs this digest, in the same order. */
  containers: string[];
  image: ResolvedImage;
  /** Not known from the pod: the controller fills it from the node (e.g. linux/arm64). */
  platform?: string;
}

/** A started container whose spec image or imageID cannot be parsed; the controller reports, not crashes. */
export interface InvalidContainerImage {
  container: string;
  containerType: ContainerType;
  image: string;
  imageID: string;
  error: ImageReferenceError;
}

export interface PodImageInventory {
  images: PodImage[];
  /** Containers with no imageID yet (not started, or no status at all): wait for the next update. */
  waiting: string[];
  invalid: InvalidContainerImage[];
}

/**
 * Lists every digest the pod runs, de-duplicated, skipping containers that have not started and
 * containers whose image strings cannot be parsed. Never throws, whatever fields are missing.
 */
export function podImages(pod: V1Pod): PodImage[] {
  return inspectPodImages(pod).images;
}

/**
 * Whether a pod's images count as running. A pod in phase Succeeded or Failed runs nothing (an evicted
 * pod of a Deployment can linger for weeks), so it neither keeps a report alive nor is rescanned. A
 * Job's pods are the exception while they exist: a finished Job keeps them until its TTL or its
 * CronJob's history limit removes the Job (and with it the pods), and a CronJob runs the same image
 * again at its next schedule. Dropping them would delete a nightly job's report an hour after each
 * run and scan the image from scratch the next night.
 */
export function runsImages(phase: string | undefined, owners: readonly { kind?: string; controller?: boolean }[] | undefined): boolean {
  if (phase !== 'Succeeded' && phase !== 'Failed') return true;
  return (owners ?? []).some((owner) => owner.kind === 'Job' && owner.controller === true);
}

/** How a container's image is resolved; a cache may stand in for resolveContainerImage. */
export type ImageResolver = (specImage: string, imageID: string | undefined) => ResolvedImage | undefined;

/** Like podImages, but also says which containers are still waiting and which have malformed images. */
export function inspectPodImages(pod: V1Pod, resolve: ImageResolver = resolveContainerImage): PodImageInventory {
  const spec = pod.spec;
  const status = pod.status;
  const groups: [ContainerType, unknown, unknown][] = [
    ['init', spec?.initContainers, status?.initContainerStatuses],
    ['regular', spec?.containers, status?.containerStatuses],
    ['ephemeral', spec?.ephemeralContainers, status?.ephemeralContainerStatuses],
  ];
  const byDigest = new Map<string, PodImage>();
  const inventory: PodImageInventory = { images: [], waiting: [], invalid: [] };

  for (const [containerType, containers, statuses] of groups) {
    const imageIDs = imageIDsByName(statuses);
    for (const container of asArray(containers)) {
      const name = stringField(container, 'name');
      if (name === undefined) continue;
      const image = stringField(container, 'image') ?? '';
      const imageID = imageIDs.get(name);
      let resolved: ResolvedImage | undefined;
      try {
        resolved = resolve(image, imageID);
      } catch (err) {
        if (!(err instanceof ImageReferenceError)) throw err;
        inventory.invalid.push({ container: name, containerType, image, imageID: imageID ?? '', error: err });
        continue;
      }
      if (resolved === undefined) {
        inventory.waiting.push(name);
        continue;
      }
      const seen = byDigest.get(resolved.digest);
      if (seen !== undefined) {
        seen.containers.push(name);
        continue;
      }
      const entry: PodImage = { container: name, containerType, containers: [name], image: resolved };
      byDigest.set(resolved.digest, entry);
      inventory.images.push(entry);
    }
  }
  return inventory;
}

/** Statuses are paired with spec containers by name: their order is not guaranteed to match. */
function imageIDsByName(statuses: unknown): Map<string, string> {
  const ids = new Map<string, string>();
  for (const status of asArray(statuses)) {
    const name = stringField(status, 'name');
    const imageID = stringField(status, 'imageID' satisfies keyof V1ContainerStatus);
    if (name !== undefined && imageID !== undefined && !ids.has(name)) ids.set(name, imageID);
  }
  return ids;
}

// Pods come from the API server as JSON; a field the types call required can still be missing.
function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? (value as unknown[]) : [];
}

function stringField(value: unknown, key: string): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const field = (value as Record<string, unknown>)[key];
  return typeof field === 'string' ? field : undefined;
}
