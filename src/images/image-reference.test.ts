import { describe, expect, it } from 'vitest';
import {
  ImageReferenceError,
  parseImageID,
  parseImageReference,
  resolveContainerImage,
  type ImageReference,
  type ResolvedImage,
} from './image-reference.js';

const D1 = `sha256:${'a1'.repeat(32)}`;
const D2 = `sha256:${'b2'.repeat(32)}`;

describe('parseImageReference', () => {
  const valid: [string, ImageReference][] = [
    ['nginx', { registry: 'docker.io', path: 'library/nginx', repository: 'docker.io/library/nginx' }],
    ['nginx:1.25', { registry: 'docker.io', path: 'library/nginx', repository: 'docker.io/library/nginx', tag: '1.25' }],
    ['bitnami/redis:7.2', { registry: 'docker.io', path: 'bitnami/redis', repository: 'docker.io/bitnami/redis', tag: '7.2' }],
    ['docker.io/nginx', { registry: 'docker.io', path: 'library/nginx', repository: 'docker.io/library/nginx' }],
    ['index.docker.io/library/nginx:latest', { registry: 'docker.io', path: 'library/nginx', repository: 'docker.io/library/nginx', tag: 'latest' }],
    ['registry-1.docker.io/nginx', { registry: 'docker.io', path: 'library/nginx', repository: 'docker.io/library/nginx' }],
    ['Docker.IO/grafana/grafana', { registry: 'docker.io', path: 'grafana/grafana', repository: 'docker.io/grafana/grafana' }],
    ['ghcr.io/aquasecurity/trivy:0.58.1', { registry: 'ghcr.io', path: 'aquasecurity/trivy', repository: 'ghcr.io/aquasecurity/trivy', tag: '0.58.1' }],
    ['registry.k8s.io/pause:3.10', { registry: 'registry.k8s.io', path: 'pause', repository: 'registry.k8s.io/pause', tag: '3.10' }],
    ['registry.example.com:5000/team/app:v1', { registry: 'registry.example.com:5000', path: 'team/app', repository: 'registry.example.com:5000/team/app', tag: 'v1' }],
    ['localhost/app', { registry: 'localhost', path: 'app', repository: 'localhost/app' }],
    ['localhost:5000/app:dev', { registry: 'localhost:5000', path: 'app', repository: 'localhost:5000/app', tag: 'dev' }],
    ['10.0.0.1:5000/app', { registry: '10.0.0.1:5000', path: 'app', repository: '10.0.0.1:5000/app' }],
    ['[::1]:5000/app:1', { registry: '[::1]:5000', path: 'app', repository: '[::1]:5000/app', tag: '1' }],
    ['[FE80::1]/app', { registry: '[fe80::1]', path: 'app', repository: '[fe80::1]/app' }],
    [`nginx@${D1}`, { registry: 'docker.io', path: 'library/nginx', repository: 'docker.io/library/nginx', digest: D1 }],
    [`nginx:1.25@${D1}`, { registry: 'docker.io', path: 'library/nginx', repository: 'docker.io/library/nginx', tag: '1.25', digest: D1 }],
    [`quay.io:443/org/sub/app:v1.2_3-rc@${D2}`, { registry: 'quay.io:443', path: 'org/sub/app', repository: 'quay.io:443/org/sub/app', tag: 'v1.2_3-rc', digest: D2 }],
    ['a/b__c/d-e--f/g.h:Tag_1', { registry: 'docker.io', path: 'a/b__c/d-e--f/g.h', repository: 'docker.io/a/b__c/d-e--f/g.h', tag: 'Tag_1' }],
    // The first component is a host only if it looks like one: "team" is a Docker Hub organisation.
    ['team/app', { registry: 'docker.io', path: 'team/app', repository: 'docker.io/team/app' }],
  ];
  it.each(valid)('parses %s', (input, expected) => {
    expect(parseImageReference(input)).toEqual(expected);
  });

  const invalid: [string, RegExp][] = [
    ['', /empty/],
    ['Nginx', /must be lowercase/],
    ['library/NGINX:1', /must be lowercase/],
    ['nginx:', /invalid tag/],
    ['nginx:-bad', /invalid tag/],
    [`nginx:${'t'.repeat(129)}`, /invalid tag/],
    ['nginx@sha256:abc', /invalid digest/],
    [`nginx@sha256:${'A1'.repeat(32)}`, /invalid digest/],
    [`nginx@sha512:${'ab'.repeat(64)}`, /unsupported digest algorithm/],
    [`@${D1}`, /digest without a repository/],
    ['nginx@', /invalid digest/],
    ['/nginx', /invalid repository path component/],
    ['nginx/', /invalid repository path component/],
    ['a//b', /invalid repository path component/],
    ['-nginx', /invalid repository path component/],
    ['ngi nx', /invalid/],
    [' nginx', /invalid/],
    ['ghcr.io/', /empty repository path/],
    ['registry.example.com:99999/app', /invalid registry port/],
    ['registry.example.com:/app', /invalid registry port/],
    ['-bad.example.com/app', /invalid registry host/],
    ['[::1/app', /invalid IPv6/],
    ['[nothost]:5000/app', /invalid IPv6/],
    ['[::1]x/app', /invalid registry host/],
    [`example.com/${'a'.repeat(244)}`, /longer than 255/],
    ['x'.repeat(600), /longer than 512/],
  ];
  it.each(invalid)('rejects %j with a clear ImageReferenceError', (input, problem) => {
    let caught: unknown;
    try {
      parseImageReference(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ImageReferenceError);
    expect((caught as ImageReferenceError).message).toMatch(problem);
    expect((caught as ImageReferenceError).input).toBe(input);
  });

  it('accepts a repository of exactly 255 characters and rejects 256', () => {
    const ok = `example.com/${'a'.repeat(255 - 'example.com/'.length)}`;
    expect(parseImageReference(ok).repository).toHaveLength(255);
    expect(() => parseImageReference(`${ok}b`)).toThrow(ImageReferenceError);
  });

  it('keeps error messages short even for huge input', () => {
    expect(() => parseImageReference(`a:${'€'.repeat(400)}`)).toThrow(/^.{0,300}$/);
  });
});

describe('parseImageID', () => {
  const cases: [string, ReturnType<typeof parseImageID>][] = [
    ['', undefined],
    // containerd and CRI-O: the repo digest the image was pulled by
    [`docker.io/library/nginx@${D1}`, { repository: 'docker.io/library/nginx', digest: D1 }],
    [`registry.example.com:5000/team/app@${D1}`, { repository: 'registry.example.com:5000/team/app', digest: D1 }],
    // dockershim / cri-dockerd
    [`docker-pullable://nginx@${D1}`, { repository: 'docker.io/library/nginx', digest: D1 }],
    [`docker-pullable://ghcr.io/org/app@${D2}`, { repository: 'ghcr.io/org/app', digest: D2 }],
    // locally built or loaded images: only the image (config) ID
    [`docker://${D1}`, { digest: D1 }],
    [D2, { digest: D2 }],
    ['a1'.repeat(32), { digest: D1 }],
    // some runtimes keep the tag in front of the digest
    [`docker.io/library/nginx:1.25@${D1}`, { repository: 'docker.io/library/nginx', digest: D1 }],
  ];
  it.each(cases)('reads %j', (input, expected) => {
    expect(parseImageID(input)).toEqual(expected);
  });

  const invalid = ['nginx:1.25', 'sha256:abc', `docker://sha256:${'A'.repeat(64)}`, 'docker-pullable://', `Nginx@${D1}`, '@', `docker://nginx@sha1:${'a'.repeat(40)}`];
  it.each(invalid)('rejects %j with ImageReferenceError naming the image ID', (input) => {
    expect(() => parseImageID(input)).toThrow(ImageReferenceError);
    try {
      parseImageID(input);
    } catch (err) {
      expect((err as ImageReferenceError).input).toBe(input);
    }
  });
});

describe('resolveContainerImage', () => {
  const cases: [string, string, string | undefined, ResolvedImage | undefined][] = [
    ['not started yet: no imageID', 'nginx:1.25', undefined, undefined],
    ['not started yet: empty imageID', 'nginx:1.25', '', undefined],
    [
      'digest from a containerd imageID',
      'nginx:1.25',
      `docker.io/library/nginx@${D1}`,
      { image: 'nginx:1.25', repository: 'docker.io/library/nginx', registry: 'docker.io', digest: D1, digestSource: 'imageID', localOnly: false, specTag: '1.25' },
    ],
    [
      'repository from the spec even when the runtime pulled through a mirror',
      'nginx:1.25',
      `mirror.example.com/library/nginx@${D1}`,
      { image: 'nginx:1.25', repository: 'docker.io/library/nginx', registry: 'docker.io', digest: D1, digestSource: 'imageID', localOnly: false, specTag: '1.25' },
    ],
    [
      'no tag written: the tag is latest',
      'busybox',
      `docker.io/library/busybox@${D1}`,
      { image: 'busybox', repository: 'docker.io/library/busybox', registry: 'docker.io', digest: D1, digestSource: 'imageID', localOnly: false, specTag: 'latest' },
    ],
    [
      'the running digest wins over a different pinned one',
      `ghcr.io/org/app@${D2}`,
      `docker-pullable://ghcr.io/org/app@${D1}`,
      { image: `ghcr.io/org/app@${D2}`, repository: 'ghcr.io/org/app', registry: 'ghcr.io', digest: D1, digestSource: 'imageID', localOnly: false },
    ],
    [
      'locally loaded image with a pinned digest: the reference digest',
      `localhost:5000/app:dev@${D2}`,
      D1,
      { image: `localhost:5000/app:dev@${D2}`, repository: 'localhost:5000/app', registry: 'localhost:5000', digest: D2, digestSource: 'reference', localOnly: false },
    ],
    [
      'locally loaded image without a pinned digest: the config digest, marked local only',
      'app:dev',
      D1,
      { image: 'app:dev', repository: 'docker.io/library/app', registry: 'docker.io', digest: D1, digestSource: 'imageID', localOnly: true, specTag: 'dev' },
    ],
    [
      'docker:// image ID is local as well',
      'app:dev',
      `docker://${D1}`,
      { image: 'app:dev', repository: 'docker.io/library/app', registry: 'docker.io', digest: D1, digestSource: 'imageID', localOnly: true, specTag: 'dev' },
    ],
  ];
  it.each(cases)('%s', (_name, spec, imageID, expected) => {
    expect(resolveContainerImage(spec, imageID)).toEqual(expected);
  });

  it('throws ImageReferenceError for a malformed spec image or imageID', () => {
    expect(() => resolveContainerImage('Bad:Image', D1)).toThrow(ImageReferenceError);
    expect(() => resolveContainerImage('nginx', 'garbage')).toThrow(ImageReferenceError);
  });
});
