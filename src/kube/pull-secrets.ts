// Registry credentials for a pod's image, from its imagePullSecrets and its service account's.
// Secrets are read by name only (never listed or watched), and their content is never put in an
// error message or a log line.
import { Buffer } from 'node:buffer';
import type { CoreV1Api, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { RegistryCredentials } from '../scanner/trivy-runner.js';
import { RecentMap } from '../recent-map.js';
import { toKubeApiError } from './api-error.js';

const DOCKER_CONFIG_JSON = 'kubernetes.io/dockerconfigjson';
const DOCKER_CFG = 'kubernetes.io/dockercfg';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** What the lookup found: credentials for the registry, or why none were found (names only, no content). */
export interface PullSecretLookup {
  credentials?: RegistryCredentials;
  /** Secrets considered, as namespace/name, in the order kubelet would try them. */
  checked: string[];
  /** Human sentences about secrets that could not be used, e.g. "secret team-a/regcred not found". */
  problems: string[];
}

interface ParsedEntry {
  host: string;
  auth: RegistryCredentials['auth'];
}

export interface PullSecretReaderOptions {
  core: CoreV1Api;
  /** Secrets and service accounts are re-read after this long (default 60 s). */
  ttlMs?: number;
  now?: () => number;
}

/** Normalises a docker config key (https://index.docker.io/v1/, host:port/path) to a registry host. */
export function registryHostOf(key: string): string {
  let host = key.trim().toLowerCase();
  host = host.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  return DOCKER_HUB_ALIASES.has(host) ? 'docker.io' : host;
}

function hostMatches(pattern: string, registry: string): boolean {
  const wanted = registryHostOf(registry);
  if (pattern === wanted) return true;
  // kubelet accepts a leading wildcard label, e.g. *.example.com.
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1);
    return wanted.endsWith(suffix) && !wanted.slice(0, -suffix.length).includes('.');
  }
  return false;
}

function decode(data: string | undefined): string | undefined {
  return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
}

function stringField(record: Record<string, unknown>, key: string): string | undefined {
  const value = record[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Parses a docker config secret into entries; throws a message naming the secret, never its content. */
function parseDockerSecret(secret: V1Secret, source: string): ParsedEntry[] {
  let text: string | undefined;
  let nested: boolean;
  if (secret.type === DOCKER_CONFIG_JSON) {
    text = decode(secret.data?.['.dockerconfigjson']);
    nested = true;
  } else if (secret.type === DOCKER_CFG) {
    text = decode(secret.data?.['.dockercfg']);
    nested = false;
  } else {
    throw new Error(`secret ${source} has type ${secret.type ?? '(none)'}, not ${DOCKER_CONFIG_JSON} or ${DOCKER_CFG}`);
  }
  if (text === undefined) throw new Error(`secret ${source} has no docker config data`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`secret ${source} does not hold valid JSON`);
  }
  const root = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  const auths = nested ? root.auths : root;
  if (typeof auths !== 'object' || auths === null) throw new Error(`secret ${source} has no auths`);
  const entries: ParsedEntry[] = [];
  for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null) continue;
    const record = value as Record<string, unknown>;
    const auth: RegistryCredentials['auth'] = {};
    const username = stringField(record, 'username');
    const password = stringField(record, 'password');
    const encoded = stringField(record, 'auth');
    const identitytoken = stringField(record, 'identitytoken');
    const registrytoken = stringField(record, 'registrytoken');
    if (username !== undefined) auth.username = username;
    if (password !== undefined) auth.password = password;
    if (encoded !== undefined) auth.auth = encoded;
    if (identitytoken !== undefined) auth.identitytoken = identitytoken;
    if (registrytoken !== undefined) auth.registrytoken = registrytoken;
    entries.push({ host: registryHostOf(key), auth });
  }
  return entries;
}

interface Cached<T> {
  at: number;
  value: T;
}

/** Secrets and service accounts cached at most; a miss costs one read again. */
const MAX_CACHED = 5000;

/** Reads pull secrets by name and picks the entry for an image's registry. */
export class PullSecretReader {
  private readonly secrets = new RecentMap<string, Cached<ParsedEntry[] | Error>>(MAX_CACHED);
  private readonly serviceAccounts = new RecentMap<string, Cached<string[]>>(MAX_CACHED);
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(private readonly options: PullSecretReaderOptions) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * Finds credentials for `registry` (a host as in the repository, e.g. docker.io or host:5000) among
   * the pod's pull secrets, then its service account's. Missing or malformed secrets are reported in
   * `problems`, not thrown; transient API failures throw KubeApiError.
   */
  async lookup(pod: V1Pod, registry: string): Promise<PullSecretLookup> {
    const namespace = pod.metadata?.namespace ?? '';
    const names: string[] = [];
    for (const ref of pod.spec?.imagePullSecrets ?? []) {
      if (ref.name !== undefined && ref.name !== '' && !names.includes(ref.name)) names.push(ref.name);
    }
    const serviceAccount = pod.spec?.serviceAccountName ?? 'default';
    for (const name of await this.serviceAccountSecrets(namespace, serviceAccount)) {
      if (!names.includes(name)) names.push(name);
    }
    const result: PullSecretLookup = { checked: [], problems: [] };
    for (const name of names) {
      const source = `${namespace}/${name}`;
      result.checked.push(source);
      const entries = await this.secretEntries(namespace, name);
      if (entries instanceof Error) {
        result.problems.push(entries.message);
        continue;
      }
      const match = entries.find((entry) => hostMatches(entry.host, registry));
      if (match !== undefined) {
        result.credentials = { registry, auth: match.auth, source };
        return result;
      }
    }
    return result;
  }

  /**
   * Drops entries older than the TTL, which would be read again anyway: a replica that stopped leading
   * keeps no registry credentials, and the caches follow the namespaces still scanned. Returns how
   * many were dropped.
   */
  forgetExpired(): number {
    const oldest = this.now() - this.ttlMs;
    let dropped = 0;
    for (const cache of [this.secrets, this.serviceAccounts] as Map<string, Cached<unknown>>[]) {
      for (const [key, cached] of cache) {
        if (cached.at > oldest) continue;
        cache.delete(key);
        dropped += 1;
      }
    }
    return dropped;
  }

  private async serviceAccountSecrets(namespace: string, name: string): Promise<string[]> {
    const key = `${namespace}/${name}`;
    const cached = this.serviceAccounts.get(key);
    if (cached !== undefined && this.now() - cached.at < this.ttlMs) return cached.value;
    let value: string[] = [];
    try {
      const sa = await this.options.core.readNamespacedServiceAccount({ namespace, name });
      value = (sa.imagePullSecrets ?? []).map((ref) => ref.name ?? '').filter((n) => n !== '');
    } catch (err) {
      const apiError = toKubeApiError(err, `reading service account ${key}`);
      // A missing or unreadable service account just contributes no secrets.
      if (apiError.kind !== 'NotFound' && apiError.kind !== 'Forbidden') throw apiError;
    }
    this.serviceAccounts.set(key, { at: this.now(), value });
    return value;
  }

  private async secretEntries(namespace: string, name: string): Promise<ParsedEntry[] | Error> {
    const key = `${namespace}/${name}`;
    const cached = this.secrets.get(key);
    if (cached !== undefined && this.now() - cached.at < this.ttlMs) return cached.value;
    let value: ParsedEntry[] | Error;
    try {
      const secret = await this.options.core.readNamespacedSecret({ namespace, name });
      try {
        value = parseDockerSecret(secret, key);
      } catch (err) {
        value = err instanceof Error ? err : new Error(`secret ${key} cannot be parsed`);
      }
    } catch (err) {
      const apiError = toKubeApiError(err, `reading secret ${key}`);
      if (apiError.kind === 'NotFound') value = new Error(`secret ${key} not found`);
      else if (apiError.kind === 'Forbidden') value = new Error(`secret ${key} cannot be read (forbidden)`);
      else throw apiError;
    }
    this.secrets.set(key, { at: this.now(), value });
    return value;
  }
}
