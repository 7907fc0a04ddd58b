// Hostile input (issue 7): whatever a pod spec or a runtime puts in an image field, the parsers return a
// result or throw ImageReferenceError, quickly. Nothing else may escape into the reconcile loop.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ImageReferenceError, parseImageID, parseImageReference, resolveContainerImage } from './image-reference.js';

/** Calls fn and fails the property if it throws anything but ImageReferenceError or takes too long. */
function outcomeOf<T>(fn: () => T): T | ImageReferenceError {
  const started = performance.now();
  let outcome: T | ImageReferenceError;
  try {
    outcome = fn();
  } catch (err) {
    if (!(err instanceof ImageReferenceError)) throw err;
    outcome = err;
  }
  // A parse takes microseconds; the bound is loose so GC pauses on a loaded CI machine do not flake it,
  // while a regex blow-up on hundreds of characters would take minutes.
  expect(performance.now() - started).toBeLessThan(500);
  return outcome;
}

const hex64 = fc.stringMatching(/^[a-f0-9]{64}$/);
const digest = hex64.map((h) => `sha256:${h}`);
// Strings made of the characters the grammar cares about, so generated input reaches every branch.
const grammarish = fc.string({
  unit: fc.constantFrom('a', 'z', '0', '9', 'A', '.', '_', '-', '/', ':', '@', '[', ']', 's', 'h', '2', '5', '6', 'é', ' ', '\u0000', '\ud800'),
  maxLength: 120,
});
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 300 }),
  grammarish,
  fc.tuple(grammarish, digest).map(([a, d]) => `${a}@${d}`),
  fc.tuple(fc.constantFrom('docker-pullable://', 'docker://', 'containerd://', ''), grammarish, digest).map(([s, a, d]) => `${s}${a}@${d}`),
);

const component = fc.stringMatching(/^[a-z0-9]{1,8}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,8}){0,2}$/);
const host = fc.oneof(
  fc.constant('localhost'),
  fc.constantFrom('docker.io', 'index.docker.io', 'registry-1.docker.io', 'ghcr.io', 'quay.io', '127.0.0.1', '[::1]', '[fd00::5:1]'),
  fc.array(fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/), { minLength: 2, maxLength: 4 }).map((parts) => parts.join('.')),
);
const validReference = fc
  .record({
    host: fc.option(host, { nil: undefined }),
    port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    path: fc.array(component, { minLength: 1, maxLength: 4 }),
    tag: fc.option(fc.stringMatching(/^\w[\w.-]{0,20}$/), { nil: undefined }),
    digest: fc.option(digest, { nil: undefined }),
  })
  // Without a host, a first component with a dot or named localhost would be read as a host (as Docker does).
  .filter(({ host: h, path }) => h !== undefined || !/[.]|^localhost$/.test(path[0] ?? ''))
  .map(({ host: h, port, path, tag, digest: d }) => {
    const registry = h === undefined ? '' : `${h}${port === undefined ? '' : `:${port}`}/`;
    return { ref: `${registry}${path.join('/')}${tag === undefined ? '' : `:${tag}`}${d === undefined ? '' : `@${d}`}`, tag, digest: d };
  });

describe('image parsers on arbitrary input', () => {
  it('parseImageReference returns a reference or throws ImageReferenceError', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        const out = outcomeOf(() => parseImageReference(s));
        if (!(out instanceof ImageReferenceError)) {
          expect(out.repository).toBe(`${out.registry}/${out.path}`);
          expect(out.repository.length).toBeLessThanOrEqual(255);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('parseImageID returns a digest, undefined, or throws ImageReferenceError', () => {
    fc.assert(
      fc.property(anyString, (s) => {
        const out = outcomeOf(() => parseImageID(s));
        if (out !== undefined && !(out instanceof ImageReferenceError)) expect(out.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
      }),
      { numRuns: 3000 },
    );
  });

  it('resolveContainerImage returns an image, undefined, or throws ImageReferenceError', () => {
    fc.assert(
      fc.property(anyString, fc.option(anyString, { nil: undefined }), (spec, id) => {
        const out = outcomeOf(() => resolveContainerImage(spec, id));
        if (out !== undefined && !(out instanceof ImageReferenceError)) expect(out.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
      }),
      { numRuns: 3000 },
    );
  });

  it('stays fast on long pathological input', () => {
    const nasty = ['a-'.repeat(5000), `${'a.'.repeat(5000)}/x`, `${'a'.repeat(250)}${'-'.repeat(250)}!`, `[${':'.repeat(400)}]/a`, `${'a__'.repeat(150)}A`];
    for (const s of nasty) {
      outcomeOf(() => parseImageReference(s));
      outcomeOf(() => parseImageID(s));
      outcomeOf(() => resolveContainerImage(s, `docker-pullable://${s}`));
    }
  });
});

describe('image parsers on valid references', () => {
  it('parse every reference the grammar allows, keeping tag and digest, and normalization is idempotent', () => {
    fc.assert(
      fc.property(validReference, ({ ref, tag, digest: d }) => {
        const parsed = parseImageReference(ref);
        expect(parsed.tag).toBe(tag);
        expect(parsed.digest).toBe(d);
        expect(parseImageReference(parsed.repository).repository).toBe(parsed.repository);
        if (parsed.registry === 'docker.io') expect(parsed.path).toContain('/');
      }),
      { numRuns: 2000 },
    );
  });

  it('resolve to the imageID digest and the spec repository', () => {
    fc.assert(
      fc.property(validReference, digest, host, ({ ref }, d, mirror) => {
        const resolved = resolveContainerImage(ref, `${mirror}/some/mirror@${d}`);
        expect(resolved).toMatchObject({ image: ref, repository: parseImageReference(ref).repository, digest: d, localOnly: false });
      }),
      { numRuns: 1000 },
    );
  });
});
