// Seeding: workloads as the controllers would have left them (Deployment → ReplicaSet → Pods with
// ownerReferences, CronJob → Job → Pods), pods already running, pull secrets, service accounts.
import { buildDockerCfgSecret, buildDockerConfigJsonSecret, buildNamespace, buildNode, buildPod, buildServiceAccount, podSuffix, podTemplate, templateHash } from './seed.js';
import type { PodSeed, RegistryAuth, WorkloadSeed } from './seed.js';
import type { KubeObject } from './types.js';

export interface SeededWorkload {
  owner: KubeObject;
  /** ReplicaSet (for Deployments) or Job (for CronJobs); absent for bare Jobs/StatefulSets/DaemonSets. */
  intermediate?: KubeObject;
  pods: KubeObject[];
}

function ownerRef(obj: KubeObject): { apiVersion: string; kind: string; name: string; uid: string; controller: boolean; blockOwnerDeletion: boolean } {
  return {
    apiVersion: String(obj.apiVersion),
    kind: String(obj.kind),
    name: obj.metadata?.name ?? '',
    uid: obj.metadata?.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

export class Seeder {
  constructor(
    private readonly put: (obj: KubeObject) => KubeObject,
    private readonly namespaceExists: (name: string) => boolean,
    private readonly now: () => Date,
  ) {}

  /** Stores any objects as given (status kept); namespaces of namespaced objects are created if missing. */
  objects(objs: KubeObject[]): KubeObject[] {
    return objs.map((o) => this.put(o));
  }

  namespace(name: string, labels: Record<string, string> = {}): KubeObject {
    return this.put(buildNamespace(name, labels));
  }

  private ensureNamespace(name: string): void {
    if (!this.namespaceExists(name)) this.namespace(name);
  }

  node(name: string, opts: { arch?: string; os?: string; labels?: Record<string, string> } = {}): KubeObject {
    return this.put(buildNode(name, opts));
  }

  /** A bare pod, running (containerStatuses with imageIDs) unless `phase: 'Pending'`. */
  pod(seed: PodSeed): KubeObject {
    this.ensureNamespace(seed.namespace);
    return this.put(buildPod(seed, this.now()));
  }

  private podsFor(seed: WorkloadSeed, owner: KubeObject, selector: Record<string, string>, count: number): KubeObject[] {
    const pods: KubeObject[] = [];
    const suffixes = new Set<string>();
    for (let i = 0; i < count; i++) {
      const suffix = podSuffix(owner.metadata?.uid ?? seed.name, i, suffixes);
      suffixes.add(suffix);
      const podSeed: PodSeed = {
        namespace: seed.namespace,
        name: `${owner.metadata?.name ?? seed.name}-${suffix}`,
        containers: seed.containers,
        labels: { ...selector, ...(seed.podLabels ?? {}) },
        ownerReferences: [ownerRef(owner)],
      };
      if (seed.initContainers) podSeed.initContainers = seed.initContainers;
      if (seed.nodes && seed.nodes.length > 0) podSeed.nodeName = seed.nodes[i % seed.nodes.length] ?? 'node-1';
      if (seed.serviceAccountName) podSeed.serviceAccountName = seed.serviceAccountName;
      if (seed.imagePullSecrets) podSeed.imagePullSecrets = seed.imagePullSecrets;
      pods.push(this.put(buildPod(podSeed, this.now())));
    }
    return pods;
  }

  /** Deployment → ReplicaSet (pod-template-hash) → `replicas` running pods (default 1). */
  deployment(seed: WorkloadSeed): SeededWorkload {
    this.ensureNamespace(seed.namespace);
    const replicas = seed.replicas ?? 1;
    const selector = { app: seed.name };
    const template = podTemplate(seed, selector);
    const hash = templateHash(template);
    const deployment = this.put({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: seed.name, namespace: seed.namespace, labels: seed.labels ?? { app: seed.name } },
      spec: { replicas, selector: { matchLabels: selector }, template },
      status: { replicas, readyReplicas: replicas, availableReplicas: replicas, updatedReplicas: replicas, observedGeneration: 1 },
    });
    const rsSelector = { ...selector, 'pod-template-hash': hash };
    const rsTemplate = podTemplate(seed, rsSelector);
    const replicaSet = this.put({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: `${seed.name}-${hash}`, namespace: seed.namespace, labels: rsSelector, ownerReferences: [ownerRef(deployment)] },
      spec: { replicas, selector: { matchLabels: rsSelector }, template: rsTemplate },
      status: { replicas, readyReplicas: replicas, availableReplicas: replicas, observedGeneration: 1 },
    });
    const pods = this.podsFor(seed, replicaSet, rsSelector, replicas);
    return { owner: deployment, intermediate: replicaSet, pods };
  }

  /** A StatefulSet or DaemonSet owning its pods directly. */
  podSet(kind: 'StatefulSet' | 'DaemonSet', seed: WorkloadSeed): SeededWorkload {
    this.ensureNamespace(seed.namespace);
    const replicas = seed.replicas ?? 1;
    const selector = { app: seed.name };
    const spec: Record<string, unknown> = { selector: { matchLabels: selector }, template: podTemplate(seed, selector) };
    if (kind === 'StatefulSet') {
      spec.replicas = replicas;
      spec.serviceName = seed.name;
    }
    const owner = this.put({ apiVersion: 'apps/v1', kind, metadata: { name: seed.name, namespace: seed.namespace, labels: seed.labels ?? selector }, spec, status: {} });
    return { owner, pods: this.podsFor(seed, owner, selector, replicas) };
  }

  /** A Job with `replicas` running pods (default 1). */
  job(seed: WorkloadSeed): SeededWorkload {
    this.ensureNamespace(seed.namespace);
    const selector = { 'batch.kubernetes.io/job-name': seed.name, 'job-name': seed.name };
    const template = podTemplate(seed, selector);
    (template.spec as Record<string, unknown>).restartPolicy = 'Never';
    const job = this.put({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: seed.name, namespace: seed.namespace, labels: seed.labels ?? selector },
      spec: { parallelism: seed.replicas ?? 1, completions: seed.replicas ?? 1, backoffLimit: 6, template },
      status: { active: seed.replicas ?? 1, startTime: this.now().toISOString().replace(/\.\d{3}Z$/, 'Z') },
    });
    return { owner: job, pods: this.podsFor(seed, job, selector, seed.replicas ?? 1) };
  }

  /** CronJob → Job (`<name>-<minute>`) → running pods. */
  cronJob(seed: WorkloadSeed & { schedule?: string }): SeededWorkload {
    this.ensureNamespace(seed.namespace);
    const template = podTemplate(seed, {});
    (template.spec as Record<string, unknown>).restartPolicy = 'OnFailure';
    const cronJob = this.put({
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: seed.name, namespace: seed.namespace, labels: seed.labels ?? { app: seed.name } },
      spec: { schedule: seed.schedule ?? '*/5 * * * *', jobTemplate: { spec: { template } } },
      status: {},
    });
    const jobName = `${seed.name}-${Math.floor(this.now().getTime() / 60_000)}`;
    const selector = { 'batch.kubernetes.io/job-name': jobName, 'job-name': jobName };
    const job = this.put({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: jobName, namespace: seed.namespace, labels: selector, ownerReferences: [ownerRef(cronJob)] },
      spec: { parallelism: 1, completions: 1, backoffLimit: 6, template: podTemplate(seed, selector) },
      status: { active: 1 },
    });
    return { owner: cronJob, intermediate: job, pods: this.podsFor({ ...seed, replicas: 1 }, job, selector, seed.replicas ?? 1) };
  }

  /** `kubernetes.io/dockerconfigjson` secret with an `auths` entry per registry host. */
  dockerConfigJsonSecret(namespace: string, name: string, auths: Record<string, RegistryAuth>): KubeObject {
    this.ensureNamespace(namespace);
    return this.put(buildDockerConfigJsonSecret(namespace, name, auths));
  }

  /** Legacy `kubernetes.io/dockercfg` secret (registry map without the `auths` wrapper). */
  dockerCfgSecret(namespace: string, name: string, auths: Record<string, RegistryAuth>): KubeObject {
    this.ensureNamespace(namespace);
    return this.put(buildDockerCfgSecret(namespace, name, auths));
  }

  serviceAccount(namespace: string, name: string, imagePullSecrets: string[] = []): KubeObject {
    this.ensureNamespace(namespace);
    return this.put(buildServiceAccount(namespace, name, imagePullSecrets));
  }
}
