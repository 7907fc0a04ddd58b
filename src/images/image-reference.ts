// Image references as pod specs write them, and image IDs as container runtimes report them.
// The grammar follows the distribution project's reference grammar (the one Docker, containerd and
// CRI-O share), so that the repository we scan is the one the runtime pulled.
import { isIPv6 } from 'node:net';

/** Docker Hub's canonical registry host, as runtimes write it in fully qualified names. */
export const DOCKER_HUB_REGISTRY = 'docker.io';
/** Docker's own limit on a repository name (the normalized name, registry included). */
export const MAX_REPOSITORY_LENGTH = 255;
/** Longer than any valid reference (name 255 + tag 128 + digest 71): cuts work on hostile input early. */
const MAX_REFERENCE_LENGTH = 512;

const DOCKER_HUB_ALIASES = new Set([DOCKER_HUB_REGISTRY, 'index.docker.io', 'registry-1.docker.io']);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const PORT = /^[0-9]{1,5}$/;
const TAG = /^\w[\w.-]{0,127}$/;
const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
const SHA256_HEX = /^[a-f0-9]{64}$/;
/** Any digest in the OCI grammar; we only support sha256, and say so instead of "malformed". */
const ANY_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//;

/** A parsed, normalized image reference. */
export interface ImageReference {
  /** Registry host, lowercase, with its port if any: docker.io, registry.example.com:5000, [::1]:5000. */
  registry: string;
  /** Path inside the registry, with Docker Hub's implicit library/: library/nginx. */
  path: string;
  /** registry/path: docker.io/library/nginx. */
  repository: string;
  tag?: string;
  /** sha256:<64 hex>. */
  digest?: string;
}

/** What a container status's imageID tells: the digest, and the repository when the runtime knows one. */
export interface ImageID {
  repository?: string;
  digest: string;
}

/** The image a started container runs: the spec's repository and the digest that actually runs. */
export interface ResolvedImage {
  /** The reference as the pod spec writes it. */
  image: string;
  repository: string;
  registry: string;
  /** sha256:<64 hex>. */
  digest: string;
  /** 'reference' when the imageID was a local image ID and the spec pinned a digest. */
  digestSource: 'imageID' | 'reference';
  /**
   * True when the runtime only knows the image by its local ID (e.g. `kind load`, `docker build` on the
   * node) and the spec pins no digest: the digest is the image config digest, which no registry serves.
   */
  localOnly: boolean;
  /**
   * The tag the spec names (`latest` when it names neither a tag nor a digest); absent when the spec
   * pins a digest. Kept so what indexes pods by tag needs no second parse of the spec image.
   */
  specTag?: string;
}

/** A reference or image ID that cannot be parsed. `input` is the offending string. */
export class ImageReferenceError extends Error {
  override readonly name = 'ImageReferenceError';
  constructor(
    readonly input: string,
    readonly problem: string,
  ) {
    super(`invalid image reference ${quote(input)}: ${problem}`);
  }
}

/**
 * Parses an image reference as written in a pod spec (`nginx:1.25`, `ghcr.io/org/app@sha256:…`,
 * `registry:5000/team/app:v1@sha256:…`) into its normalized registry, path and repository, applying
 * Docker Hub's implicit `docker.io` and `library/`. Throws ImageReferenceError for anything else.
 */
export function parseImageReference(ref: string): ImageReference {
  if (ref.length === 0) throw new ImageReferenceError(ref, 'empty');
  if (ref.length > MAX_REFERENCE_LENGTH) {
    throw new ImageReferenceError(ref, `longer than ${MAX_REFERENCE_LENGTH} characters`);
  }

  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    checkDigest(ref, digest);
    if (rest.length === 0) throw new ImageReferenceError(ref, 'digest without a repository');
  }

  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/') && !rest.endsWith(']')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw new ImageReferenceError(ref, `invalid tag ${quote(tag)}`);
  }

  const { registry, path } = splitRegistry(ref, rest);
  const repository = `${registry}/${path}`;
  if (repository.length > MAX_REPOSITORY_LENGTH) {
    throw new ImageReferenceError(ref, `repository name longer than ${MAX_REPOSITORY_LENGTH} characters`);
  }
  const result: ImageReference = { registry, path, repository };
  if (tag !== undefined) result.tag = tag;
  if (digest !== undefined) result.digest = digest;
  return result;
}

/**
 * Parses a container status's imageID in every form runtimes report: `repo@sha256:…` (containerd,
 * CRI-O), `docker-pullable://repo@sha256:…` (dockershim, cri-dockerd), `docker://sha256:…` and a bare
 * `sha256:…` or 64-hex image ID (locally loaded or built images: no repository). Returns undefined for
 * an empty imageID (the container has not started); throws ImageReferenceError for anything else.
 */
export function parseImageID(imageID: string): ImageID | undefined {
  if (imageID.length === 0) return undefined;
  const rest = imageID.replace(URL_SCHEME, '');
  if (SHA256_DIGEST.test(rest)) return { digest: rest };
  if (SHA256_HEX.test(rest)) return { digest: `sha256:${rest}` };
  if (!rest.includes('@')) {
    throw new ImageReferenceError(imageID, 'image ID is neither a digest nor repository@digest');
  }
  let ref: ImageReference;
  try {
    ref = parseImageReference(rest);
  } catch (err) {
    if (err instanceof ImageReferenceError) throw new ImageReferenceError(imageID, `image ID: ${err.problem}`);
    throw err;
  }
  if (ref.digest === undefined) throw new ImageReferenceError(imageID, 'image ID has no digest');
  return { repository: ref.repository, digest: ref.digest };
}

/**
 * Resolves what a container runs from its spec image and its status imageID. The repository always
 * comes from the spec image (the imageID's repository may be a mirror); the digest from the imageID,
 * except that a local image ID (no repository) yields to a digest pinned in the spec, or else is used
 * with `localOnly: true`. Returns undefined while the container has no imageID (not started yet: wait);
 * throws ImageReferenceError when either string is malformed.
 */
export function resolveContainerImage(specImage: string, imageID: string | undefined): ResolvedImage | undefined {
  if (imageID === undefined || imageID.length === 0) return undefined;
  const ref = parseImageReference(specImage);
  const id = parseImageID(imageID);
  if (id === undefined) return undefined;
  const base = { image: specImage, repository: ref.repository, registry: ref.registry, ...(ref.digest === undefined ? { specTag: ref.tag ?? 'latest' } : {}) };
  if (id.repository !== undefined) {
    return { ...base, digest: id.digest, digestSource: 'imageID', localOnly: false };
  }
  if (ref.digest !== undefined) {
    return { ...base, digest: ref.digest, digestSource: 'reference', localOnly: false };
  }
  return { ...base, digest: id.digest, digestSource: 'imageID', localOnly: true };
}

function checkDigest(ref: string, digest: string): void {
  if (SHA256_DIGEST.test(digest)) return;
  if (ANY_DIGEST.test(digest) && !digest.startsWith('sha256:')) {
    throw new ImageReferenceError(ref, `unsupported digest algorithm in ${quote(digest)} (only sha256)`);
  }
  throw new ImageReferenceError(ref, `invalid digest ${quote(digest)} (want sha256:<64 lowercase hex>)`);
}

function splitRegistry(ref: string, name: string): { registry: string; path: string } {
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  // The distribution rule: the first component names a registry only if it looks like a host.
  const isHost =
    slash !== -1 &&
    (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[') || first !== first.toLowerCase());
  const registry = isHost ? normalizeRegistry(ref, first) : DOCKER_HUB_REGISTRY;
  let path = isHost ? name.slice(slash + 1) : name;
  checkPath(ref, path);
  if (registry === DOCKER_HUB_REGISTRY && !path.includes('/')) path = `library/${path}`;
  return { registry, path };
}

function normalizeRegistry(ref: string, host: string): string {
  let hostname: string;
  let port: string | undefined;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    const address = host.slice(1, close);
    if (close === -1 || !isIPv6(address)) throw new ImageReferenceError(ref, `invalid IPv6 registry host ${quote(host)}`);
    hostname = `[${address.toLowerCase()}]`;
    const after = host.slice(close + 1);
    if (after.length > 0) {
      if (!after.startsWith(':')) throw new ImageReferenceError(ref, `invalid registry host ${quote(host)}`);
      port = after.slice(1);
    }
  } else {
    const colon = host.indexOf(':');
    hostname = colon === -1 ? host : host.slice(0, colon);
    if (colon !== -1) port = host.slice(colon + 1);
    if (!hostname.split('.').every((c) => DOMAIN_COMPONENT.test(c))) {
      throw new ImageReferenceError(ref, `invalid registry host ${quote(host)}`);
    }
    hostname = hostname.toLowerCase();
  }
  if (port !== undefined) {
    if (!PORT.test(port) || Number(port) > 65535) throw new ImageReferenceError(ref, `invalid registry port ${quote(port)}`);
    return `${hostname}:${port}`;
  }
  return DOCKER_HUB_ALIASES.has(hostname) ? DOCKER_HUB_REGISTRY : hostname;
}

function checkPath(ref: string, path: string): void {
  if (path.length === 0) throw new ImageReferenceError(ref, 'empty repository path');
  for (const component of path.split('/')) {
    if (PATH_COMPONENT.test(component)) continue;
    if (PATH_COMPONENT.test(component.toLowerCase())) {
      throw new ImageReferenceError(ref, 'repository name must be lowercase');
    }
    throw new ImageReferenceError(ref, `invalid repository path component ${quote(component)}`);
  }
}

/** Quotes a value for an error message, cut short so hostile input cannot flood a log line. */
function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}
