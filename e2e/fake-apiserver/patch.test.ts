// Patch semantics against the RFCs' own examples, and the strategic-merge directives kubectl sends.
import { describe, expect, it } from 'vitest';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { ApiError } from './errors.js';

describe('JSON merge patch (RFC 7386 appendix A)', () => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  it.each(cases)('%j + %j', (target, patch, expected) => {
    expect(mergePatch(target, patch)).toEqual(expected);
  });
});

describe('JSON patch (RFC 6902)', () => {
  it('adds, removes, replaces, moves, copies and tests', () => {
    const doc = { foo: ['bar', 'baz'], q: { bar: 2 } };
    expect(
      jsonPatch(doc, [
        { op: 'add', path: '/foo/1', value: 'qux' },
        { op: 'remove', path: '/q/bar' },
        { op: 'replace', path: '/foo/0', value: 'x' },
        { op: 'move', from: '/foo/2', path: '/moved' },
        { op: 'copy', from: '/moved', path: '/q/copy' },
        { op: 'test', path: '/foo', value: ['x', 'qux'] },
        { op: 'add', path: '/a~1b', value: 1 },
      ]),
    ).toEqual({ foo: ['x', 'qux'], q: { copy: 'baz' }, moved: 'baz', 'a/b': 1 });
    expect(doc).toEqual({ foo: ['bar', 'baz'], q: { bar: 2 } });
  });

  it('fails a test or a missing path with 422 and a malformed body with 400', () => {
    const code = (f: () => unknown): number => {
      try {
        f();
        return 0;
      } catch (err) {
        return err instanceof ApiError ? err.code : -1;
      }
    };
    expect(code(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]))).toBe(422);
    expect(code(() => jsonPatch({ a: 1 }, [{ op: 'remove', path: '/b' }]))).toBe(422);
    expect(code(() => jsonPatch({ a: 1 }, [{ op: 'replace', path: '/b', value: 1 }]))).toBe(422);
    expect(code(() => jsonPatch({ a: 1 }, { op: 'add' }))).toBe(400);
    expect(code(() => jsonPatch({ a: 1 }, [{ op: 'frobnicate', path: '/a' }]))).toBe(400);
  });
});

describe('strategic merge patch', () => {
  const pod = {
    metadata: { finalizers: ['a'], labels: { x: '1' } },
    spec: { containers: [{ name: 'app', image: 'nginx:1', env: [{ name: 'A', value: '1' }] }, { name: 'side', image: 'envoy:1' }], tolerations: [{ key: 'k' }] },
  };

  it('merges keyed lists item by item, unites finalizers, replaces unkeyed lists', () => {
    const patched = strategicMergePatch(pod, {
      metadata: { finalizers: ['b'], labels: { x: null, y: '2' } },
      spec: { containers: [{ name: 'app', env: [{ name: 'B', value: '2' }] }, { name: 'new', image: 'busybox' }], tolerations: [{ key: 'other' }] },
    });
    expect(patched).toEqual({
      metadata: { finalizers: ['a', 'b'], labels: { y: '2' } },
      spec: {
        containers: [
          { name: 'app', image: 'nginx:1', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] },
          { name: 'side', image: 'envoy:1' },
          { name: 'new', image: 'busybox' },
        ],
        tolerations: [{ key: 'other' }],
      },
    });
  });

  it('honours $patch: delete and replace, $deleteFromPrimitiveList and ignores $setElementOrder', () => {
    const patched = strategicMergePatch(pod, {
      metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] },
      spec: { '$setElementOrder/containers': [{ name: 'app' }], containers: [{ name: 'side', $patch: 'delete' }] },
    });
    expect(patched).toEqual({ metadata: { finalizers: [], labels: { x: '1' } }, spec: { containers: [pod.spec.containers[0]], tolerations: [{ key: 'k' }] } });
    expect(strategicMergePatch(pod, { metadata: { $patch: 'replace', name: 'n' } })).toMatchObject({ metadata: { name: 'n' } });
  });
});
