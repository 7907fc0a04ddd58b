// The two ways a policy names images: registry prefixes (allowedRegistries) and exemption globs
// (exemptImages), both over the normalised reference, so `nginx` is docker.io/library/nginx.
import { DOCKER_HUB_REGISTRY } from '../images/image-reference.js';
import type { ImageReference } from '../images/image-reference.js';

const DOCKER_HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io']);
const HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:[0-9]{1,5})?$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const GLOB_CHARS = /^[a-zA-Z0-9._:@/*?[\]-]+$/;
const MAX_GLOB_LENGTH = 512;

/** An allowedRegistries entry split into path segments: the host (with its port) first. */
export interface RegistryPrefix {
  /** As written in the policy, for messages. */
  text: string;
  segments: string[];
}

/** An exemptImages glob, compiled. */
export interface ImageGlob {
  text: string;
  regex: RegExp;
  /** True when the last segment names a tag or digest; otherwise the glob also matches the bare repository. */
  namesVersion: boolean;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

/**
 * Parses a registry prefix: a host with an optional port (`registry.corp.example`, `registry:5000`),
 * optionally followed by repository path segments (`ghcr.io/acme`); one trailing `/` is ignored, and
 * Docker Hub's aliases mean docker.io. No scheme, tag, digest or wildcard. Never throws.
 */
export function parseRegistryPrefix(text: string): Parsed<RegistryPrefix> {
  const trimmed = text.endsWith('/') ? text.slice(0, -1) : text;
  const segments = trimmed.split('/');
  const [host = '', ...path] = segments;
  if (text.includes('://')) return { ok: false, problem: `registry ${JSON.stringify(text)} must not have a scheme: write the host, e.g. registry.corp.example` };
  if (!HOST.test(host)) return { ok: false, problem: `registry ${JSON.stringify(text)} does not start with a lowercase registry host (host or host:port)` };
  const port = /:([0-9]+)$/.exec(host)?.[1];
  if (port !== undefined && Number(port) > 65535) return { ok: false, problem: `registry ${JSON.stringify(text)}: port ${port} is out of range` };
  const bad = path.find((p) => !PATH_COMPONENT.test(p));
  if (bad !== undefined) {
    return { ok: false, problem: `registry ${JSON.stringify(text)} has an invalid path segment ${JSON.stringify(bad)} (lowercase letters, digits and . _ - only; no tags, digests or wildcards)` };
  }
  const normalisedHost = DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB_REGISTRY : host;
  return { ok: true, value: { text, segments: [normalisedHost, ...path] } };
}

/**
 * True when the image's repository lies under the prefix on a path-segment boundary:
 * `ghcr.io/acme` allows ghcr.io/acme and ghcr.io/acme/x, never ghcr.io/acme-evil/x. Tags and digests
 * are not part of the repository, and a port is part of the host (registry:5000 is not registry).
 */
export function isUnderRegistryPrefix(image: ImageReference, prefix: RegistryPrefix): boolean {
  const segments = image.repository.split('/');
  if (prefix.segments.length > segments.length) return false;
  return prefix.segments.every((s, i) => segments[i] === s);
}

/**
 * The normalised reference globs are matched against: repository, then `:tag` and/or `@digest` as
 * written, with `:latest` when the reference has neither (what a runtime pulls).
 */
export function normalisedReference(image: ImageReference): string {
  if (image.tag === undefined && image.digest === undefined) return `${image.repository}:latest`;
  return `${image.repository}${image.tag !== undefined ? `:${image.tag}` : ''}${image.digest !== undefined ? `@${image.digest}` : ''}`;
}

/**
 * Compiles an exemption glob. `*` matches any run of characters within one path segment (never a
 * `/`), `**` any run across segments, `?` one character other than `/`; everything else is literal.
 * The first segment must be a registry host or a wildcard, since references are matched normalised
 * (write docker.io/library/nginx, not nginx). Never throws.
 */
export function compileImageGlob(text: string): Parsed<ImageGlob> {
  if (text.length === 0 || text.length > MAX_GLOB_LENGTH) return { ok: false, problem: `exemption pattern must be 1 to ${MAX_GLOB_LENGTH} characters` };
  if (!GLOB_CHARS.test(text)) return { ok: false, problem: `exemption pattern ${JSON.stringify(text)} has characters no image reference has` };
  const first = text.split('/')[0] ?? '';
  if (!text.includes('/') && !text.includes('**')) {
    return { ok: false, problem: `exemption pattern ${JSON.stringify(text)} names no repository: patterns match normalised references such as docker.io/library/nginx:1.25` };
  }
  if (!(/[.:*?[]/.test(first) || first === 'localhost')) {
    return { ok: false, problem: `exemption pattern ${JSON.stringify(text)} must start with a registry host (references are normalised: nginx is docker.io/library/nginx)` };
  }
  let source = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? '';
    if (c === '*' && text[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.\\[\]^$+(){}|-]/g, '\\$&');
  }
  const last = text.slice(text.lastIndexOf('/') + 1);
  return { ok: true, value: { text, regex: new RegExp(`^${source}$`), namesVersion: last.includes(':') || last.includes('@') } };
}

/** True when the glob matches the normalised reference, or (for a glob without tag or digest) the repository. */
export function matchesImageGlob(image: ImageReference, glob: ImageGlob): boolean {
  if (glob.regex.test(normalisedReference(image))) return true;
  return !glob.namesVersion && glob.regex.test(image.repository);
}
