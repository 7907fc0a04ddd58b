// The demo's fake cluster: three team namespaces, two node architectures and workloads of every kind
// the operator resolves, running real public images pinned by the digests their recorded Trivy
// reports name (RepoDigests), so the stub can replay those reports and a real Trivy can pull them.
import type { FakeApiServer } from '../e2e/fake-apiserver/index.js';

/** A real public image, the digest it was scanned at, and its recorded report under test/fixtures/trivy. */
export interface DemoImage {
  image: string;
  digest: string;
  /** Path relative to the fixtures root (`test/fixtures/trivy`). */
  fixture: string;
  /** Architecture the demo runs it on (the images below have a build for it). */
  arch: 'amd64' | 'arm64';
}

export const DEMO_IMAGES = {
  nginx: {
    image: 'nginx:1.19',
    digest: 'sha256:df13abe416e37eb3db4722840dd479b00ba193ac6606e7902331dcea50f4f1f2',
    fixture: 'real-world/trustdsai-nginx-1.19.json',
    arch: 'amd64',
  },
  juiceShop: {
    image: 'bkimminich/juice-shop:v10.2.0',
    digest: 'sha256:b1802758946aa40549b98ee6b8f93e9b92d0a6bf7aed139284893466be9c5065',
    fixture: 'real-world/securecodebox-juice-shop-v10.2.0.json',
    arch: 'amd64',
  },
  redis: {
    image: 'redis:7',
    digest: 'sha256:2a2c7d6d79131e532fbf42a9973eb13a279f6b0b96bf7a44e496a9446549003c',
    fixture: 'real-world/trivyweb-redis-7.json',
    arch: 'arm64',
  },
  alpine: {
    image: 'alpine:3.19',
    digest: 'sha256:6baf43584bcb78f2e5847d1de515f23499913ac9f12bdf834811a3145eb11ca1',
    fixture: 'real-world/trustdsai-alpine-3.19.json',
    arch: 'arm64',
  },
  checkoutGo: {
    image: 'ghcr.io/steadybit/checkout-go:main',
    digest: 'sha256:83508b68ad4cc406d89f3493f339a6203ddc91160fe04ad6c21f2a4c351ba54e',
    fixture: 'real-world/steadybit-checkout-go-main.json',
    arch: 'amd64',
  },
  hotDeals: {
    image: 'ghcr.io/steadybit/hot-deals:main',
    digest: 'sha256:605ab1ec27afd933d6d0eb2eb38159dd8682227cb974252ca0665fb6c2fc0dec',
    fixture: 'real-world/steadybit-hot-deals-main.json',
    arch: 'amd64',
  },
} as const satisfies Record<string, DemoImage>;

export const DEMO_NAMESPACES = { payments: 'payments', search: 'search', platform: 'platform' } as const;
const NODES = { amd64: 'node-amd64-1', arm64: 'node-arm64-1' } as const;

/** One (namespace, digest) report per entry: what the operator should end up writing. */
export interface ExpectedReport {
  namespace: string;
  image: DemoImage;
  team: string;
  workloads: { kind: string; name: string }[];
}

/** The reports the seeded cluster leads to; nginx runs in two namespaces (one scan, two reports). */
export const EXPECTED_REPORTS: readonly ExpectedReport[] = [
  { namespace: 'payments', image: DEMO_IMAGES.nginx, team: 'payments', workloads: [{ kind: 'Deployment', name: 'storefront' }] },
  { namespace: 'payments', image: DEMO_IMAGES.alpine, team: 'payments', workloads: [{ kind: 'CronJob', name: 'nightly-settlement' }] },
  { namespace: 'search', image: DEMO_IMAGES.redis, team: 'search', workloads: [{ kind: 'StatefulSet', name: 'query-cache' }] },
  { namespace: 'search', image: DEMO_IMAGES.juiceShop, team: 'search', workloads: [{ kind: 'Deployment', name: 'search-ui' }] },
  { namespace: 'platform', image: DEMO_IMAGES.checkoutGo, team: 'platform', workloads: [{ kind: 'Deployment', name: 'checkout' }] },
  { namespace: 'platform', image: DEMO_IMAGES.nginx, team: 'platform', workloads: [{ kind: 'Deployment', name: 'status-page' }] },
  // A pod label overrides the namespace's team.
  { namespace: 'platform', image: DEMO_IMAGES.hotDeals, team: 'growth', workloads: [{ kind: 'Pod', name: 'hot-deals-debug' }] },
];

function container(img: DemoImage): { image: string; digest: string } {
  return { image: img.image, digest: img.digest };
}

/** Seeds the demo's namespaces, nodes and running workloads into the fake API server. */
export function seedDemoCluster(api: FakeApiServer): void {
  const seed = api.seed;
  seed.node(NODES.amd64, { arch: 'amd64' });
  seed.node(NODES.arm64, { arch: 'arm64' });
  seed.namespace('payments', { team: 'payments' });
  seed.namespace('search', { team: 'search' });
  seed.namespace('platform', { team: 'platform' });
  const { nginx, juiceShop, redis, alpine, checkoutGo, hotDeals } = DEMO_IMAGES;

  seed.deployment({ namespace: 'payments', name: 'storefront', replicas: 2, containers: [container(nginx)], nodes: [NODES[nginx.arch]] });
  seed.cronJob({ namespace: 'payments', name: 'nightly-settlement', schedule: '0 2 * * *', containers: [container(alpine)], nodes: [NODES[alpine.arch]] });
  seed.podSet('StatefulSet', { namespace: 'search', name: 'query-cache', replicas: 2, containers: [container(redis)], nodes: [NODES[redis.arch]] });
  seed.deployment({ namespace: 'search', name: 'search-ui', containers: [container(juiceShop)], nodes: [NODES[juiceShop.arch]] });
  seed.deployment({ namespace: 'platform', name: 'checkout', replicas: 3, containers: [container(checkoutGo)], nodes: [NODES[checkoutGo.arch]] });
  seed.deployment({ namespace: 'platform', name: 'status-page', containers: [container(nginx)], nodes: [NODES[nginx.arch]] });
  seed.pod({ namespace: 'platform', name: 'hot-deals-debug', labels: { team: 'growth' }, containers: [container(hotDeals)], nodeName: NODES[hotDeals.arch] });
}

/** The stub Trivy's mapping file content: each demo digest → its recorded report (absolute paths). */
export function stubMapping(fixturesRoot: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const img of Object.values(DEMO_IMAGES)) map[img.digest] = `${fixturesRoot}/${img.fixture}`;
  return map;
}
