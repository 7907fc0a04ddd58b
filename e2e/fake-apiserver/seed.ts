// Seeding helpers: build realistic objects (namespaces, nodes, workloads with owner chains, pods that
// are already running with imageIDs, pull secrets) and store them as if controllers had done so.
import { createHash } from 'node:crypto';
import type { KubeObject, ObjectMeta } from './types.js';
import { isRecord } from './types.js';

export interface ContainerSeed {
  name?: string;
  image: string;
  /** sha256:<hex> the runtime resolved; default: derived from the image string (stable). */
  digest?: string;
  /** Exact status imageID to report (e.g. `docker-pullable://…` or a bare `sha256:…`); overrides digest. */
  imageID?: string;
  /** Not started yet: the status has no imageID and the container is waiting. */
  waiting?: boolean;
}

export interface PodSeed {
  namespace: string;
  name: string;
  containers: (string | ContainerSeed)[];
  initContainers?: (string | ContainerSeed)[];
  ephemeralContainers?: (string | ContainerSeed)[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  nodeName?: string;
  serviceAccountName?: string;
  imagePullSecrets?: string[];
  ownerReferences?: ObjectMeta['ownerReferences'];
  /** Pending pods have no container statuses at all. */
  phase?: 'Running' | 'Pending' | 'Succeeded' | 'Failed';
}

export interface WorkloadSeed {
  namespace: string;
  name: string;
  containers: (string | ContainerSeed)[];
  initContainers?: (string | ContainerSeed)[];
  replicas?: number;
  labels?: Record<string, string>;
  /** Extra labels on the pods (the `app` selector label is always set). */
  podLabels?: Record<string, string>;
  /** Nodes the pods are spread over, round robin. */
  nodes?: string[];
  serviceAccountName?: string;
  imagePullSecrets?: string[];
}

export interface RegistryAuth {
  username?: string;
  password?: string;
  auth?: string;
  identitytoken?: string;
}

/** Splits an image reference into the fully qualified repository, the tag and a digest if present. */
export function normalizeImage(image: string): { repository: string; tag?: string; digest?: string } {
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const first = rest.split('/')[0] ?? '';
  const hasRegistry = rest.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  let repository = hasRegistry ? rest : `docker.io/${rest}`;
  if (!hasRegistry && !rest.includes('/')) repository = `docker.io/library/${rest}`;
  const out: { repository: string; tag?: string; digest?: string } = { repository };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** The digest the fake "runtime" resolves an image to: the one in the reference, else sha256(image). */
export function digestFor(image: string): string {
  return normalizeImage(image).digest ?? `sha256:${createHash('sha256').update(image).digest('hex')}`;
}

function containerSeed(c: string | ContainerSeed, i: number, prefix: string): ContainerSeed & { name: string } {
  const seed = typeof c === 'string' ? { image: c } : c;
  return { ...seed, name: seed.name ?? `${prefix}${i === 0 ? '' : `-${i}`}` };
}

function containerSpecs(list: (string | ContainerSeed)[] | undefined, prefix: string): Record<string, unknown>[] {
  return (list ?? []).map((c, i) => {
    const s = containerSeed(c, i, prefix);
    return { name: s.name, image: s.image, imagePullPolicy: 'IfNotPresent', resources: {} };
  });
}

function containerStatus(s: ContainerSeed & { name: string }, startedAt: string, terminated: boolean): Record<string, unknown> {
  const ref = normalizeImage(s.image);
  const image = ref.digest !== undefined ? `${ref.repository}@${ref.digest}` : `${ref.repository}:${ref.tag ?? 'latest'}`;
  if (s.waiting === true) {
    return { name: s.name, image: s.image, imageID: '', ready: false, started: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } };
  }
  const imageID = s.imageID ?? `${ref.repository}@${s.digest ?? digestFor(s.image)}`;
  const containerID = `containerd://${createHash('sha256').update(`${s.name}/${imageID}/${startedAt}`).digest('hex')}`;
  const state = terminated
    ? { terminated: { exitCode: 0, reason: 'Completed', startedAt, finishedAt: startedAt, containerID } }
    : { running: { startedAt } };
  return { name: s.name, image, imageID, containerID, ready: !terminated, started: !terminated, restartCount: 0, state };
}

/** A status as the kubelet would report for a running pod built from `seeds` (or the pod's own spec). */
export function runningPodStatus(pod: KubeObject, now: Date, seeds?: { containers: ContainerSeed[]; init: ContainerSeed[]; ephemeral: ContainerSeed[] }): Record<string, unknown> {
  const spec = isRecord(pod.spec) ? pod.spec : {};
  const fromSpec = (key: string): (ContainerSeed & { name: string })[] =>
    (Array.isArray(spec[key]) ? spec[key] : []).filter(isRecord).map((c) => ({ name: String(c.name ?? ''), image: String(c.image ?? '') }));
  const containers = seeds ? seeds.containers.map((c, i) => containerSeed(c, i, 'app')) : fromSpec('containers');
  const init = seeds ? seeds.init.map((c, i) => containerSeed(c, i, 'init')) : fromSpec('initContainers');
  const ephemeral = seeds ? seeds.ephemeral.map((c, i) => containerSeed(c, i, 'debugger')) : fromSpec('ephemeralContainers');
  const startedAt = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  // A stable address per pod, so seeding the same objects twice gives the same status.
  const ipBytes = createHash('sha256').update(`${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`).digest();
  const podIP = `10.244.${ipBytes[0] ?? 0}.${((ipBytes[1] ?? 0) % 254) + 1}`;
  const allReady = containers.every((c) => c.waiting !== true);
  const status: Record<string, unknown> = {
    phase: 'Running',
    conditions: [
      { type: 'Initialized', status: 'True', lastProbeTime: null, lastTransitionTime: startedAt },
      { type: 'Ready', status: allReady ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: startedAt },
      { type: 'ContainersReady', status: allReady ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: startedAt },
      { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: startedAt },
    ],
    hostIP: '10.0.0.10',
    podIP,
    podIPs: [{ ip: podIP }],
    startTime: startedAt,
    qosClass: 'BestEffort',
    containerStatuses: containers.map((c) => containerStatus(c, startedAt, false)),
  };
  if (init.length > 0) status.initContainerStatuses = init.map((c) => containerStatus(c, startedAt, true));
  if (ephemeral.length > 0) status.ephemeralContainerStatuses = ephemeral.map((c) => containerStatus(c, startedAt, false));
  return status;
}

/** Builds a pod object (with a running status unless phase says otherwise). */
export function buildPod(seed: PodSeed, now: Date): KubeObject {
  const spec: Record<string, unknown> = {
    containers: containerSpecs(seed.containers, 'app'),
    restartPolicy: 'Always',
    serviceAccountName: seed.serviceAccountName ?? 'default',
    nodeName: seed.nodeName ?? 'node-1',
  };
  if (seed.initContainers) spec.initContainers = containerSpecs(seed.initContainers, 'init');
  if (seed.ephemeralContainers) {
    spec.ephemeralContainers = containerSpecs(seed.ephemeralContainers, 'debugger');
  }
  if (seed.imagePullSecrets) spec.imagePullSecrets = seed.imagePullSecrets.map((name) => ({ name }));
  const metadata: Record<string, unknown> = { name: seed.name, namespace: seed.namespace, labels: seed.labels ?? {} };
  if (seed.annotations) metadata.annotations = seed.annotations;
  if (seed.ownerReferences) metadata.ownerReferences = seed.ownerReferences;
  const pod: KubeObject = { apiVersion: 'v1', kind: 'Pod', metadata, spec };
  const phase = seed.phase ?? 'Running';
  if (phase === 'Pending') pod.status = { phase: 'Pending', qosClass: 'BestEffort' };
  else {
    const toSeeds = (l: (string | ContainerSeed)[] | undefined): ContainerSeed[] => (l ?? []).map((c) => (typeof c === 'string' ? { image: c } : c));
    const status = runningPodStatus(pod, now, { containers: toSeeds(seed.containers), init: toSeeds(seed.initContainers), ephemeral: toSeeds(seed.ephemeralContainers) });
    status.phase = phase;
    pod.status = status;
  }
  return pod;
}

export function buildNamespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } };
}

export function buildNode(name: string, opts: { arch?: string; os?: string; labels?: Record<string, string> } = {}): KubeObject {
  const arch = opts.arch ?? 'amd64';
  const os = opts.os ?? 'linux';
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/arch': arch, 'kubernetes.io/os': os, 'kubernetes.io/hostname': name, ...(opts.labels ?? {}) } },
    spec: {},
    status: {
      conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }],
      addresses: [{ type: 'InternalIP', address: '10.0.0.10' }, { type: 'Hostname', address: name }],
      nodeInfo: { architecture: arch, operatingSystem: os, kubeletVersion: 'v1.32.0', containerRuntimeVersion: 'containerd://1.7.0', osImage: 'Fake Linux' },
    },
  };
}

function dockerConfig(auths: Record<string, RegistryAuth>): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [registry, a] of Object.entries(auths)) {
    const entry: Record<string, string> = {};
    if (a.username !== undefined) entry.username = a.username;
    if (a.password !== undefined) entry.password = a.password;
    if (a.identitytoken !== undefined) entry.identitytoken = a.identitytoken;
    entry.auth = a.auth ?? Buffer.from(`${a.username ?? ''}:${a.password ?? ''}`).toString('base64');
    out[registry] = entry;
  }
  return out;
}

/** A `kubernetes.io/dockerconfigjson` secret: data[.dockerconfigjson] = {"auths": {...}}. */
export function buildDockerConfigJsonSecret(namespace: string, name: string, auths: Record<string, RegistryAuth>): KubeObject {
  const json = JSON.stringify({ auths: dockerConfig(auths) });
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(json).toString('base64') } };
}

/** A legacy `kubernetes.io/dockercfg` secret: data[.dockercfg] = {registry: {...}} without "auths". */
export function buildDockerCfgSecret(namespace: string, name: string, auths: Record<string, RegistryAuth>): KubeObject {
  const json = JSON.stringify(dockerConfig(auths));
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'kubernetes.io/dockercfg', data: { '.dockercfg': Buffer.from(json).toString('base64') } };
}

export function buildServiceAccount(namespace: string, name: string, imagePullSecrets: string[] = []): KubeObject {
  const sa: KubeObject = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } };
  if (imagePullSecrets.length > 0) sa.imagePullSecrets = imagePullSecrets.map((n) => ({ name: n }));
  return sa;
}

export function podTemplate(seed: WorkloadSeed, selector: Record<string, string>): Record<string, unknown> {
  const spec: Record<string, unknown> = { containers: containerSpecs(seed.containers, 'app'), restartPolicy: 'Always' };
  if (seed.initContainers) spec.initContainers = containerSpecs(seed.initContainers, 'init');
  if (seed.serviceAccountName) spec.serviceAccountName = seed.serviceAccountName;
  if (seed.imagePullSecrets) spec.imagePullSecrets = seed.imagePullSecrets.map((name) => ({ name }));
  return { metadata: { labels: { ...selector, ...(seed.podLabels ?? {}) } }, spec };
}

/** A short, stable hash like the pod-template-hash label. */
export function templateHash(value: unknown): string {
  const chars = 'bcdfghjklmnpqrstvwxz2456789';
  const digest = createHash('sha256').update(JSON.stringify(value)).digest();
  let out = '';
  for (let i = 0; i < 10; i++) out += chars[(digest[i] ?? 0) % chars.length] ?? 'x';
  return out;
}

/**
 * A random-looking 5-char pod suffix, deterministic per (owner, index), and not one in `taken`: two
 * replicas of one owner can draw the same of the 27^5 suffixes (about one 10,000-pod bench seeding
 * in 1,200 had a clash), so a clash draws again, as a ReplicaSet controller does when a name is taken.
 */
export function podSuffix(owner: string, index: number, taken: ReadonlySet<string> = new Set()): string {
  let suffix = templateHash(`${owner}/${index}`).slice(0, 5);
  for (let draw = 1; taken.has(suffix); draw++) suffix = templateHash(`${owner}/${index}/${draw}`).slice(0, 5);
  return suffix;
}
