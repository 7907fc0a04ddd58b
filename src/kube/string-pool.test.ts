import { describe, expect, it } from 'vitest';
import { ObjectPool, StringPool } from './string-pool.js';

describe('StringPool', () => {
  it('gives back the same content, and stays within its bound however many names churn brings', () => {
    const pool = new StringPool(100);
    for (let i = 0; i < 1000; i++) expect(pool.intern(`pod-${i}`)).toBe(`pod-${i}`);
    expect(pool.size()).toBeLessThanOrEqual(100);
    expect(pool.intern('pod-999')).toBe('pod-999');
  });

  it('interns every string value of nested objects and arrays in place, leaving the rest as it was', () => {
    const pool = new StringPool();
    const status = { team: 'payments', conditions: [{ type: 'Scanned', status: 'True', observedGeneration: 3 }], scanner: { name: 'Trivy', version: '0.58.1' }, ok: true, none: null, list: ['a', 7] };
    const before = structuredClone(status);
    pool.internAll(status);
    expect(status).toEqual(before);
    expect(pool.size()).toBe(6);
    pool.internAll(undefined);
    pool.internAll('loose');
    expect(pool.size()).toBe(6);
  });
});

describe('ObjectPool', () => {
  it('gives the first object seen under a key, and stays within its bound', () => {
    const pool = new ObjectPool<{ app: string }>(10);
    const first = pool.share('web', { app: 'web' });
    expect(pool.share('web', { app: 'web' })).toBe(first);
    expect(pool.share('db', { app: 'db' })).toEqual({ app: 'db' });
    for (let i = 0; i < 100; i++) pool.share(`k${i}`, { app: `k${i}` });
    expect(pool.size()).toBeLessThanOrEqual(10);
  });
});
