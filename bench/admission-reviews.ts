// The AdmissionReviews of the benchmark's admission phase, as the API server would send them to a
// validating webhook: Deployments and bare pods created in the modelled cluster's namespaces, with a
// mix of images the operator knows (running and scanned, by tag or pinned by digest) and images it has
// never seen. Deterministic for a seed; each review has its own uid.

/** What a review's images are, from the operator's point of view. */
export type ImageCategory = 'known' | 'pinned' | 'unknown' | 'outside';

export interface ReviewMix {
  /** Shares of the images drawn, by category; need not sum to 1. */
  known: number;
  pinned: number;
  unknown: number;
  outside: number;
  /** Share of reviews that are bare pods (the rest are Deployments). */
  pods: number;
}

/**
 * Tags of running images 45%, the same pinned by the digest they run with 30%, new builds in the
 * cluster's registry (not scanned yet) 15%, images from a registry the bench policy does not allow 10%.
 */
export const DEFAULT_MIX: ReviewMix = { known: 0.45, pinned: 0.3, unknown: 0.15, outside: 0.1, pods: 0.5 };

export interface ReviewInputs {
  namespaces: readonly string[];
  /** Images running in the cluster, each with the digest it runs with (sha256:…). */
  known: readonly { image: string; digest: string }[];
  /** Images not running anywhere (a small pool: the operator scans each by reference once). */
  unknown: readonly string[];
  /** Images from outside the allowed registries. */
  outside: readonly string[];
  mix?: ReviewMix;
}

export interface GeneratedReview {
  uid: string;
  kind: 'Deployment' | 'Pod';
  namespace: string;
  images: { image: string; category: ImageCategory }[];
  /** The AdmissionReview v1 request as JSON. */
  body: string;
}

/** Repository of a reference without its tag or digest (the tag's colon is after the last slash). */
export function repositoryOf(image: string): string {
  const at = image.indexOf('@');
  const base = at >= 0 ? image.slice(0, at) : image;
  const colon = base.lastIndexOf(':');
  return colon > base.lastIndexOf('/') ? base.slice(0, colon) : base;
}

/** A UUID-shaped uid, unique per index within a run (and across runs with different `run`s). */
export function reviewUid(run: number, index: number): string {
  const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0').slice(-width);
  return `${hex(run >>> 0, 8)}-be4c-4ad5-8000-${hex(index, 12)}`;
}

/**
 * Yields reviews in order, forever. `random` draws the namespace, kind, container count and images;
 * `run` goes into every uid so reviews of different runs never share one.
 */
export function* admissionReviews(inputs: ReviewInputs, random: () => number, run = 1): Generator<GeneratedReview> {
  const mix = inputs.mix ?? DEFAULT_MIX;
  if (inputs.namespaces.length === 0 || inputs.known.length === 0) throw new Error('admission reviews need namespaces and known images');
  const categories = (
    [
      ['known', mix.known],
      ['pinned', mix.pinned],
      ['unknown', inputs.unknown.length > 0 ? mix.unknown : 0],
      ['outside', inputs.outside.length > 0 ? mix.outside : 0],
    ] as [ImageCategory, number][]
  ).filter(([, share]) => share > 0);
  const totalShare = categories.reduce((sum, [, share]) => sum + share, 0);
  if (totalShare === 0) throw new Error('admission reviews need a mix with some share of images');
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const drawImage = (): { image: string; category: ImageCategory } => {
    let r = random() * totalShare;
    let category = categories[0]?.[0] ?? 'known';
    for (const [c, share] of categories) {
      category = c;
      if (r < share) break;
      r -= share;
    }
    if (category === 'unknown') return { image: pick(inputs.unknown), category };
    if (category === 'outside') return { image: pick(inputs.outside), category };
    const known = pick(inputs.known);
    return category === 'pinned' ? { image: `${repositoryOf(known.image)}@${known.digest}`, category } : { image: known.image, category };
  };

  for (let index = 0; ; index += 1) {
    const namespace = pick(inputs.namespaces);
    const kind = random() < mix.pods ? 'Pod' : 'Deployment';
    const images = [drawImage()];
    if (random() < 0.3) images.push(drawImage());
    const initImage = random() < 0.1 ? drawImage() : undefined;
    const uid = reviewUid(run, index);
    const name = `bench-${kind === 'Pod' ? 'pod' : 'app'}-${index}`;
    const podSpec = {
      ...(initImage === undefined ? {} : { initContainers: [container('init', initImage.image)] }),
      containers: images.map((img, c) => container(c === 0 ? 'app' : `sidecar-${c}`, img.image)),
      serviceAccountName: 'default',
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    };
    const labels = { app: name, 'app.kubernetes.io/part-of': 'bench' };
    const object =
      kind === 'Pod'
        ? { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels }, spec: podSpec }
        : {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name, namespace, labels, generation: 1 },
            spec: { replicas: 2, selector: { matchLabels: { app: name } }, template: { metadata: { labels }, spec: podSpec }, strategy: { type: 'RollingUpdate' } },
          };
    const group = kind === 'Pod' ? '' : 'apps';
    const resource = kind === 'Pod' ? 'pods' : 'deployments';
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid,
        kind: { group, version: 'v1', kind },
        resource: { group, version: 'v1', resource },
        requestKind: { group, version: 'v1', kind },
        requestResource: { group, version: 'v1', resource },
        name,
        namespace,
        operation: 'CREATE',
        userInfo: { username: 'bench-deployer', uid: 'bench-deployer-uid', groups: ['system:authenticated'] },
        object,
        oldObject: null,
        dryRun: false,
        options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions', fieldManager: 'kubectl-client-side-apply' },
      },
    };
    yield { uid, kind, namespace, images: initImage === undefined ? images : [initImage, ...images], body: JSON.stringify(review) };
  }
}

function container(name: string, image: string): Record<string, unknown> {
  return {
    name,
    image,
    ports: [{ containerPort: 8080, protocol: 'TCP' }],
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
  };
}
