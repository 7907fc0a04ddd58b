import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ImageReferenceError } from './image-reference.js';
import { inspectPodImages, podImages } from './pod-images.js';

const NGINX = `sha256:${'1a'.repeat(32)}`;
const BUSYBOX = `sha256:${'2b'.repeat(32)}`;
const SIDECAR = `sha256:${'3c'.repeat(32)}`;
const DEBUG = `sha256:${'4d'.repeat(32)}`;
const LOCAL = `sha256:${'5e'.repeat(32)}`;

// Shaped like `kubectl get pod -o json` on containerd: statuses are not in spec order.
const runningPod: V1Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-7d9c6b8f5-x2x9z', namespace: 'shop', labels: { team: 'payments' } },
  spec: {
    initContainers: [{ name: 'migrate', image: 'busybox:1.36' }],
    containers: [
      { name: 'web', image: 'nginx:1.25' },
      { name: 'metrics', image: 'ghcr.io/org/sidecar:2' },
      { name: 'web-copy', image: 'docker.io/library/nginx:1.25' },
    ],
    ephemeralContainers: [{ name: 'debugger-abc', image: 'registry.example.com:5000/tools/debug:1' }],
  },
  status: {
    phase: 'Running',
    initContainerStatuses: [
      { name: 'migrate', image: 'docker.io/library/busybox:1.36', imageID: `docker.io/library/busybox@${BUSYBOX}`, ready: true, restartCount: 0 },
    ],
    containerStatuses: [
      { name: 'metrics', image: 'ghcr.io/org/sidecar:2', imageID: `ghcr.io/org/sidecar@${SIDECAR}`, ready: true, restartCount: 0 },
      { name: 'web-copy', image: 'docker.io/library/nginx:1.25', imageID: `docker.io/library/nginx@${NGINX}`, ready: true, restartCount: 0 },
      { name: 'web', image: 'docker.io/library/nginx:1.25', imageID: `docker.io/library/nginx@${NGINX}`, ready: true, restartCount: 0 },
    ],
    ephemeralContainerStatuses: [
      { name: 'debugger-abc', image: 'registry.example.com:5000/tools/debug:1', imageID: `docker-pullable://registry.example.com:5000/tools/debug@${DEBUG}`, ready: false, restartCount: 0 },
    ],
  },
};

describe('podImages', () => {
  it('lists init, regular and ephemeral containers once per digest, paired by name', () => {
    const images = podImages(runningPod);
    expect(images.map((i) => [i.containerType, i.container, i.containers, i.image.repository, i.image.digest])).toEqual([
      ['init', 'migrate', ['migrate'], 'docker.io/library/busybox', BUSYBOX],
      ['regular', 'web', ['web', 'web-copy'], 'docker.io/library/nginx', NGINX],
      ['regular', 'metrics', ['metrics'], 'ghcr.io/org/sidecar', SIDECAR],
      ['ephemeral', 'debugger-abc', ['debugger-abc'], 'registry.example.com:5000/tools/debug', DEBUG],
    ]);
    expect(images[1]?.image).toEqual({
      image: 'nginx:1.25',
      repository: 'docker.io/library/nginx',
      registry: 'docker.io',
      digest: NGINX,
      digestSource: 'imageID',
      localOnly: false,
      specTag: '1.25',
    });
  });

  it('waits for containers that have not started, and never pairs by position', () => {
    const pod: V1Pod = {
      spec: { containers: [{ name: 'a', image: 'nginx:1.25' }, { name: 'b', image: 'busybox' }] },
      status: {
        containerStatuses: [
          // b has a status but no imageID yet (ContainerCreating); a has none at all.
          { name: 'b', image: 'busybox', imageID: '', ready: false, restartCount: 0 },
        ],
      },
    };
    expect(inspectPodImages(pod)).toEqual({ images: [], waiting: ['a', 'b'], invalid: [] });
  });

  it('tolerates missing spec, status and fields without throwing', () => {
    const odd = [
      {},
      { spec: undefined, status: undefined },
      { status: { containerStatuses: [{ name: 'x', imageID: NGINX }] } },
      { spec: { containers: [] } },
      { spec: { containers: [{ image: 'nginx' }, { name: 'noimage' }] }, status: { containerStatuses: [{ name: 'noimage', imageID: `nginx@${NGINX}` }] } },
      JSON.parse('{"spec":{"containers":"nope","initContainers":[null,7,"x"]},"status":{"containerStatuses":{"a":1}}}') as V1Pod,
    ] as V1Pod[];
    for (const pod of odd) expect(() => inspectPodImages(pod)).not.toThrow();
    expect(podImages(odd[4] as V1Pod)).toEqual([]);
    expect(inspectPodImages(odd[4] as V1Pod).invalid.map((i) => i.container)).toEqual(['noimage']);
  });

  it('reports malformed images instead of throwing, and keeps the other containers', () => {
    const pod: V1Pod = {
      spec: { containers: [{ name: 'bad', image: 'Not/A:Valid Image' }, { name: 'good', image: 'nginx' }] },
      status: {
        containerStatuses: [
          { name: 'bad', image: 'x', imageID: `docker.io/library/nginx@${NGINX}`, ready: true, restartCount: 0 },
          { name: 'good', image: 'nginx', imageID: `docker.io/library/nginx@${NGINX}`, ready: true, restartCount: 0 },
        ],
      },
    };
    const inventory = inspectPodImages(pod);
    expect(inventory.images.map((i) => i.container)).toEqual(['good']);
    expect(inventory.invalid).toHaveLength(1);
    expect(inventory.invalid[0]?.error).toBeInstanceOf(ImageReferenceError);
    expect(inventory.invalid[0]).toMatchObject({ container: 'bad', image: 'Not/A:Valid Image' });
  });

  it('marks a kind-loaded image as local only, and uses a pinned digest when the spec has one', () => {
    const pod: V1Pod = {
      spec: {
        containers: [
          { name: 'app', image: 'myapp:dev' },
          { name: 'pinned', image: `localhost:5000/tool@${SIDECAR}` },
        ],
      },
      status: {
        containerStatuses: [
          { name: 'app', image: 'docker.io/library/myapp:dev', imageID: LOCAL, ready: true, restartCount: 0 },
          { name: 'pinned', image: 'localhost:5000/tool', imageID: DEBUG, ready: true, restartCount: 0 },
        ],
      },
    };
    expect(podImages(pod).map((i) => [i.container, i.image.digest, i.image.digestSource, i.image.localOnly])).toEqual([
      ['app', LOCAL, 'imageID', true],
      ['pinned', SIDECAR, 'reference', false],
    ]);
  });

  it('handles 100 containers of maximum-length names', () => {
    const name = (i: number) => `c${String(i).padStart(3, '0')}${'x'.repeat(59)}`;
    const digestOf = (i: number) => `sha256:${(i % 10).toString(16).repeat(64)}`;
    const containers = Array.from({ length: 100 }, (_, i) => ({ name: name(i), image: `example.com/${'a'.repeat(200)}:v${i}` }));
    const pod: V1Pod = {
      spec: { containers },
      status: {
        containerStatuses: containers.map((c, i) => ({ name: c.name, image: c.image, imageID: `example.com/mirror@${digestOf(i)}`, ready: true, restartCount: 0 })).reverse(),
      },
    };
    const images = podImages(pod);
    expect(images).toHaveLength(10);
    expect(images[0]?.containers).toHaveLength(10);
    expect(images.every((i) => i.image.repository === `example.com/${'a'.repeat(200)}`)).toBe(true);
  });
});
