// A Deployment rollout done by hand on the fake API server (which runs no controllers): what the
// Deployment controller and the kubelet would leave behind after `kubectl set image`.
import { createHash } from 'node:crypto';
import { buildPod } from '../fake-apiserver/index.js';
import type { FakeApiServer, KubeObject, SeededWorkload } from '../fake-apiserver/index.js';

interface ContainerSpec {
  name?: string;
  image?: string;
}

interface TemplateSpec {
  metadata?: { labels?: Record<string, string> };
  spec?: { containers?: ContainerSpec[] };
}

export interface RolledOut {
  replicaSet: KubeObject;
  pods: KubeObject[];
}

/** A 10-character pod-template-hash for `value`, from the alphabet Kubernetes uses. */
function podTemplateHash(value: unknown): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  const digest = createHash('sha256').update(JSON.stringify(value)).digest();
  return [...digest.subarray(0, 10)].map((byte) => alphabet[byte % alphabet.length] ?? 'x').join('');
}

function ownerReference(owner: KubeObject): NonNullable<KubeObject['metadata']>['ownerReferences'] {
  return [
    {
      apiVersion: owner.apiVersion ?? 'apps/v1',
      kind: owner.kind ?? '',
      name: owner.metadata?.name ?? '',
      uid: owner.metadata?.uid ?? '',
      controller: true,
    },
  ];
}

/**
 * Rolls the seeded Deployment's first container to `image`: the Deployment's template changes, a new
 * ReplicaSet (new pod-template-hash) gets `replicas` running pods with the new image and its imageID,
 * then the old pods are deleted and the old ReplicaSet is scaled to 0. Returns the new objects.
 */
export function rollOutImage(api: FakeApiServer, workload: SeededWorkload, image: string, now = new Date()): RolledOut {
  const namespace = workload.owner.metadata?.namespace ?? '';
  const name = workload.owner.metadata?.name ?? '';
  const deployment = api.objects.get('deployments.apps', namespace, name);
  if (deployment === undefined) throw new Error(`deployment ${namespace}/${name} not found`);
  const spec = deployment.spec as { replicas?: number; selector?: { matchLabels?: Record<string, string> }; template?: TemplateSpec };
  const template = structuredClone(spec.template ?? {});
  const containers = template.spec?.containers ?? [];
  const first = containers[0];
  if (first === undefined) throw new Error(`deployment ${namespace}/${name} has no container`);
  first.image = image;
  const replicas = spec.replicas ?? 1;
  api.objects.upsert({ ...deployment, spec: { ...spec, template } });

  const hash = podTemplateHash(template);
  const labels = { ...(template.metadata?.labels ?? {}), 'pod-template-hash': hash };
  const replicaSet = api.objects.upsert({
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: `${name}-${hash}`, namespace, labels, ownerReferences: ownerReference(deployment) },
    spec: { replicas, selector: { matchLabels: labels }, template: { ...template, metadata: { labels } } },
    status: { replicas, readyReplicas: replicas, availableReplicas: replicas, observedGeneration: 1 },
  });
  const pods: KubeObject[] = [];
  for (let i = 0; i < replicas; i++) {
    const suffix = podTemplateHash(`${hash}/${i}`).slice(0, 5);
    const pod = buildPod(
      {
        namespace,
        name: `${name}-${hash}-${suffix}`,
        containers: containers.map((c) => ({ image: c.image ?? '', ...(c.name === undefined ? {} : { name: c.name }) })),
        labels,
        ownerReferences: ownerReference(replicaSet),
      },
      now,
    );
    pods.push(api.objects.upsert(pod));
  }

  // The new pods run; the old ones go and the old ReplicaSet is kept at 0 replicas, as kubectl shows.
  for (const pod of workload.pods) api.objects.delete('pods', namespace, pod.metadata?.name ?? '');
  const oldName = workload.intermediate?.metadata?.name;
  const old = oldName === undefined ? undefined : api.objects.get('replicasets.apps', namespace, oldName);
  if (old !== undefined) {
    api.objects.upsert({ ...old, spec: { ...(old.spec as object), replicas: 0 }, status: { replicas: 0, observedGeneration: 2 } });
  }
  return { replicaSet, pods };
}
