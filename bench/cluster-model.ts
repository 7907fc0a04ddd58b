// The benchmark's cluster, as plain data: namespaces with team labels, nodes of two architectures,
// Deployments and StatefulSets whose containers use `digests` distinct images with a Zipf-like
// popularity (a few images in many workloads, a long tail used once). Every other namespace carries
// the label of the bench's ImageScanPolicy, so its audit and its admission checks have work to do.
// Deterministic for a seed.

export interface ClusterPlan {
  namespaces: { name: string; team: string; governed: boolean }[];
  nodes: { name: string; arch: 'amd64' | 'arm64' }[];
  workloads: WorkloadPlan[];
  /** Image reference of each digest rank (index 0 = most popular). */
  images: string[];
}

export interface WorkloadPlan {
  kind: 'Deployment' | 'StatefulSet';
  namespace: string;
  name: string;
  replicas: number;
  /** Image references, one per container. */
  containers: string[];
  /** Nodes the pods are spread over, round robin. */
  nodes: string[];
}

export interface ClusterSize {
  pods: number;
  namespaces: number;
  digests: number;
  teams: number;
  nodes: number;
}

/** Registry host of every benchmark image; the stub Trivy's mapping file keys on these repositories. */
export const BENCH_REGISTRY = 'registry.bench.local';

export function imageForRank(rank: number): string {
  return `${BENCH_REGISTRY}/app-${String(rank + 1).padStart(5, '0')}:1.0`;
}

export function churnImage(index: number): string {
  return `${BENCH_REGISTRY}/churn-${String(index + 1).padStart(5, '0')}:1.0`;
}

/** Images of the admission phase that run nowhere: new builds in the bench registry. */
export function unknownImage(index: number): string {
  return `${BENCH_REGISTRY}/new-${String(index + 1).padStart(5, '0')}:1.0`;
}

/** Images of the admission phase from a registry the bench policy does not allow. */
export function outsideImage(index: number): string {
  return `ghcr.io/bench-outside/tool-${String(index + 1).padStart(3, '0')}:2.0`;
}

/** The namespace label the bench policy selects (on every other namespace). */
export const GOVERNED_LABEL = { key: 'imagescan.dev/deploy-gate', value: 'warn' } as const;

export function namespaceLabels(ns: ClusterPlan['namespaces'][number]): Record<string, string> {
  return ns.governed ? { team: ns.team, [GOVERNED_LABEL.key]: GOVERNED_LABEL.value } : { team: ns.team };
}

/**
 * The ImageScanPolicy of the modelled cluster: Warn on the labelled half of the namespaces when an
 * image has a fixable CRITICAL or comes from outside the bench registry (issue 18's example policy).
 */
export function benchPolicy(): { apiVersion: string; kind: string; metadata: { name: string }; spec: Record<string, unknown> } {
  return {
    apiVersion: 'imagescan.dev/v1alpha1',
    kind: 'ImageScanPolicy',
    metadata: { name: 'bench-deploy-gate' },
    spec: {
      namespaceSelector: { matchLabels: { [GOVERNED_LABEL.key]: GOVERNED_LABEL.value } },
      action: 'Warn',
      allowedRegistries: [BENCH_REGISTRY],
      vulnerabilities: { fixableCritical: 0 },
      unscanned: 'Warn',
    },
  };
}

/** Draws ranks 0..n-1 with probability proportional to 1/(rank+1) (Zipf, s = 1). */
export function zipfSampler(n: number, random: () => number): () => number {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k += 1) {
    total += 1 / (k + 1);
    cumulative[k] = total;
  }
  return () => {
    const target = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] ?? 0) < target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
}

/**
 * Plans the cluster: pods split evenly over namespaces, each namespace's pods over workloads of
 * 1..maxReplicas replicas, 30% of workloads with a second (sidecar) container. Every digest is used
 * by at least one container; the remaining containers draw digests by Zipf popularity.
 */
export function planCluster(size: ClusterSize, random: () => number): ClusterPlan {
  const namespaces = Array.from({ length: size.namespaces }, (_, i) => ({
    name: `ns-${String(i + 1).padStart(4, '0')}`,
    team: `team-${String((i % size.teams) + 1).padStart(3, '0')}`,
    governed: i % 2 === 0,
  }));
  const nodes = Array.from({ length: size.nodes }, (_, i) => ({
    name: `node-${String(i + 1).padStart(3, '0')}`,
    arch: (i % 2 === 0 ? 'amd64' : 'arm64') as 'amd64' | 'arm64',
  }));
  const images = Array.from({ length: size.digests }, (_, k) => imageForRank(k));

  // Fewer replicas per workload when there would not be enough containers to use every digest.
  for (let maxReplicas = 5; maxReplicas >= 1; maxReplicas -= 1) {
    const shapes: { namespace: string; replicas: number; containers: number }[] = [];
    namespaces.forEach((ns, i) => {
      let remaining = Math.floor(size.pods / size.namespaces) + (i < size.pods % size.namespaces ? 1 : 0);
      while (remaining > 0) {
        const replicas = Math.min(remaining, 1 + Math.floor(random() * maxReplicas));
        shapes.push({ namespace: ns.name, replicas, containers: random() < 0.3 ? 2 : 1 });
        remaining -= replicas;
      }
    });
    const slots = shapes.reduce((sum, s) => sum + s.containers, 0);
    if (slots < size.digests && maxReplicas > 1) continue;

    // Every digest once, in random containers; the rest by popularity.
    const ranks: number[] = [];
    for (let k = 0; k < Math.min(size.digests, slots); k += 1) ranks.push(k);
    const draw = zipfSampler(size.digests, random);
    while (ranks.length < slots) ranks.push(draw());
    shuffle(ranks, random);

    let next = 0;
    const perNamespace = new Map<string, number>();
    const workloads: WorkloadPlan[] = shapes.map((shape) => {
      const containers: string[] = [];
      for (let c = 0; c < shape.containers; c += 1) containers.push(images[ranks[next++] ?? 0] ?? imageForRank(0));
      const n = (perNamespace.get(shape.namespace) ?? 0) + 1;
      perNamespace.set(shape.namespace, n);
      const first = Math.floor(random() * nodes.length);
      const spread = [nodes[first]?.name ?? 'node-001', nodes[(first + 1) % nodes.length]?.name ?? 'node-001'];
      return {
        kind: random() < 0.85 ? 'Deployment' : 'StatefulSet',
        namespace: shape.namespace,
        name: `app-${String(n).padStart(3, '0')}`,
        replicas: shape.replicas,
        containers,
        nodes: spread,
      };
    });
    return { namespaces, nodes, workloads, images };
  }
  throw new Error('unreachable: one replica per workload always has enough containers');
}

/** Distinct `namespace/image` pairs of a plan: one report each. */
export function reportPairs(plan: ClusterPlan): Set<string> {
  const pairs = new Set<string>();
  for (const w of plan.workloads) for (const image of w.containers) pairs.add(`${w.namespace}/${image}`);
  return pairs;
}
