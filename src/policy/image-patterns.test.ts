import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseImageReference } from '../images/image-reference.js';
import { compileImageGlob, isUnderRegistryPrefix, matchesImageGlob, normalisedReference, parseRegistryPrefix } from './image-patterns.js';
import type { ImageGlob, RegistryPrefix } from './image-patterns.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

function prefix(text: string): RegistryPrefix {
  const parsed = parseRegistryPrefix(text);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.value;
}

function glob(text: string): ImageGlob {
  const parsed = compileImageGlob(text);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.value;
}

describe('registry prefixes', () => {
  it.each<[string, string, boolean]>([
    ['registry.corp.example', 'registry.corp.example/team/app:1.0', true],
    ['registry.corp.example', 'registry.corp.example/app', true],
    ['registry.corp.example', 'registry.corp.example.evil.com/app', false],
    ['ghcr.io/acme', 'ghcr.io/acme/x', true],
    ['ghcr.io/acme', 'ghcr.io/acme/team/x@' + DIGEST, true],
    ['ghcr.io/acme', 'ghcr.io/acme-evil/x', false],
    ['ghcr.io/acme', 'ghcr.io/acmex', false],
    ['ghcr.io/acme/', 'ghcr.io/acme/x', true],
    ['ghcr.io/acme/app', 'ghcr.io/acme/app:1.0', true],
    ['ghcr.io/acme/app', 'ghcr.io/acme/app2:1.0', false],
    // Docker Hub: a bare name is docker.io/library/<name>, and docker.io's aliases mean docker.io.
    ['docker.io/library', 'nginx:1.25', true],
    ['docker.io', 'bitnami/redis', true],
    ['index.docker.io', 'nginx', true],
    ['docker.io/library', 'bitnami/redis', false],
    ['registry.corp.example', 'nginx:1.25', false],
    // A port is part of the host.
    ['registry:5000', 'registry:5000/team/app:v1', true],
    ['registry:5000/team', 'registry:5000/team/app:v1', true],
    ['registry', 'registry:5000/team/app:v1', false],
    ['registry:5000', 'registry:5001/team/app', false],
    ['localhost:5000', 'localhost:5000/app', true],
    ['[::1]:5000', '[::1]:5000/app', true],
  ])('%s allows %s: %s', (allowed, image, expected) => {
    expect(isUnderRegistryPrefix(parseImageReference(image), prefix(allowed))).toBe(expected);
  });

  it.each([
    ['https://registry.corp.example', 'must not have a scheme'],
    ['Registry.Corp.Example', 'does not start with a lowercase registry host'],
    ['', 'does not start with a lowercase registry host'],
    ['ghcr.io//acme', 'invalid path segment ""'],
    ['ghcr.io/acme/*', 'invalid path segment "*"'],
    ['ghcr.io/acme/app:1.0', 'invalid path segment "app:1.0"'],
    ['ghcr.io/Acme', 'invalid path segment "Acme"'],
    ['registry:65536', 'port 65536 is out of range'],
  ])('refuses %s (%s)', (text, problem) => {
    const parsed = parseRegistryPrefix(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toContain(problem);
  });
});

describe('exemption globs', () => {
  it('normalises the reference before matching: Docker Hub, and :latest when there is no tag or digest', () => {
    expect(normalisedReference(parseImageReference('nginx'))).toBe('docker.io/library/nginx:latest');
    expect(normalisedReference(parseImageReference('nginx:1.25'))).toBe('docker.io/library/nginx:1.25');
    expect(normalisedReference(parseImageReference(`ghcr.io/acme/app:v1@${DIGEST}`))).toBe(`ghcr.io/acme/app:v1@${DIGEST}`);
    expect(normalisedReference(parseImageReference(`ghcr.io/acme/app@${DIGEST}`))).toBe(`ghcr.io/acme/app@${DIGEST}`);
  });

  it.each<[string, string, boolean]>([
    // * stays within one path segment; ** crosses segments.
    ['registry.corp.example/legacy/*', 'registry.corp.example/legacy/app:1.0', true],
    ['registry.corp.example/legacy/*', 'registry.corp.example/legacy/app', true],
    ['registry.corp.example/legacy/*', `registry.corp.example/legacy/app@${DIGEST}`, true],
    ['registry.corp.example/legacy/*', 'registry.corp.example/legacy/team/app:1.0', false],
    ['registry.corp.example/legacy/*', 'registry.corp.example/legacy-new/app:1.0', false],
    ['registry.corp.example/legacy/**', 'registry.corp.example/legacy/team/app:1.0', true],
    ['*.corp.example/**', 'registry.corp.example/a/b/c', true],
    ['*.corp.example/**', 'registry.other.example/a', false],
    // A glob without tag or digest covers every tag and digest of what it matches.
    ['docker.io/library/nginx', 'nginx:1.25', true],
    ['docker.io/library/nginx', 'nginx', true],
    ['docker.io/library/nginx', 'nginx-unprivileged:1.25', false],
    // With a tag, only that tag (or the tags it matches).
    ['docker.io/library/busybox:1.36', 'busybox:1.36', true],
    ['docker.io/library/busybox:1.36', 'busybox:1.37', false],
    ['docker.io/library/busybox:1.?', 'busybox:1.5', true],
    ['docker.io/library/nginx:latest', 'nginx', true],
    ['docker.io/library/nginx:1.*', 'nginx:1.25.3', true],
    ['docker.io/library/nginx:1.*', 'nginx:2.0', false],
    // Dots and dashes are literal, not regex.
    ['ghcr.io/acme/app', 'ghcr.io/acme/appx', false],
    ['ghcr.io/acme/a.p', 'ghcr.io/acme/axp', false],
    ['registry:5000/team/*', 'registry:5000/team/app:v1', true],
  ])('%s matches %s: %s', (pattern, image, expected) => {
    expect(matchesImageGlob(parseImageReference(image), glob(pattern))).toBe(expected);
  });

  it.each([
    ['nginx:1.25', 'names no repository'],
    ['nginx/*', 'must start with a registry host'],
    ['/legacy/*', 'must start with a registry host'],
    ['registry.corp.example/legacy app', 'characters no image reference has'],
    ['', 'must be 1 to 512 characters'],
  ])('refuses %s (%s)', (text, problem) => {
    const parsed = compileImageGlob(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toContain(problem);
  });
});

// Generators for normalised repositories: a host (sometimes with a port) and path segments.
const segment = fc.stringMatching(/^[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,4})?$/);
const host = fc.oneof(
  fc.tuple(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), fc.constantFrom('.io', '.example', '.corp.example')).map(([a, b]) => a + b),
  fc.tuple(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), fc.integer({ min: 1, max: 6553 })).map(([a, p]) => `${a}:${p}`),
);
const repository = fc.tuple(host, fc.array(segment, { minLength: 1, maxLength: 4 })).map(([h, path]) => [h, ...path]);
const tag = fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,10}$/);
const digest = fc.stringMatching(/^[a-f0-9]{64}$/).map((h) => `sha256:${h}`);

describe('registry prefix properties', () => {
  it('allows an image exactly when the prefix is a leading run of its path segments', () => {
    fc.assert(
      fc.property(repository, repository, (image, allowed) => {
        const isLeadingRun = allowed.length <= image.length && allowed.every((s, i) => image[i] === s);
        expect(isUnderRegistryPrefix(parseImageReference(image.join('/')), prefix(allowed.join('/')))).toBe(isLeadingRun);
      }),
    );
  });

  it('every leading run of segments allows the image, and a longer last segment never does', () => {
    fc.assert(
      fc.property(repository, fc.nat(), fc.constantFrom('-evil', 'x', '.io', '2'), (image, n, suffix) => {
        const cut = 1 + (n % image.length);
        const ref = parseImageReference(image.join('/'));
        expect(isUnderRegistryPrefix(ref, prefix(image.slice(0, cut).join('/')))).toBe(true);
        const last = image[cut - 1] ?? '';
        // A host with a port can only grow by digits (registry:5000 -> registry:50000).
        const lookalike = [...image.slice(0, cut - 1), `${last}${last.includes(':') ? '0' : suffix}`].join('/');
        expect(isUnderRegistryPrefix(ref, prefix(lookalike))).toBe(false);
      }),
    );
  });

  it('tags and digests never change the answer', () => {
    fc.assert(
      fc.property(repository, repository, tag, digest, (image, allowed, t, d) => {
        const p = prefix(allowed.join('/'));
        const bare = isUnderRegistryPrefix(parseImageReference(image.join('/')), p);
        expect(isUnderRegistryPrefix(parseImageReference(`${image.join('/')}:${t}`), p)).toBe(bare);
        expect(isUnderRegistryPrefix(parseImageReference(`${image.join('/')}:${t}@${d}`), p)).toBe(bare);
      }),
    );
  });
});

describe('exemption glob properties', () => {
  it('a glob without wildcards matches its own repository, with any tag or digest, and nothing else', () => {
    fc.assert(
      fc.property(repository, repository, fc.option(tag), fc.option(digest), (exempt, image, t, d) => {
        const ref = parseImageReference(`${image.join('/')}${t === null ? '' : `:${t}`}${d === null ? '' : `@${d}`}`);
        expect(matchesImageGlob(ref, glob(exempt.join('/')))).toBe(exempt.join('/') === image.join('/'));
      }),
    );
  });

  it('* never crosses a path segment; ** does', () => {
    fc.assert(
      fc.property(repository, fc.array(segment, { minLength: 2, maxLength: 3 }), tag, (base, deeper, t) => {
        const ref = parseImageReference(`${[...base, ...deeper].join('/')}:${t}`);
        expect(matchesImageGlob(ref, glob(`${base.join('/')}/*`))).toBe(false);
        expect(matchesImageGlob(ref, glob(`${base.join('/')}/**`))).toBe(true);
        expect(matchesImageGlob(parseImageReference(`${[...base, deeper[0] ?? 'x'].join('/')}:${t}`), glob(`${base.join('/')}/*`))).toBe(true);
      }),
    );
  });
});
