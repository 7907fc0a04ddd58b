import { describe, expect, it } from 'vitest';
import { RecentMap } from './recent-map.js';

describe('RecentMap', () => {
  it('drops the least recently set keys beyond its bound, and a set refreshes a key', () => {
    const map = new RecentMap<string, number>(2);
    map.set('a', 1).set('b', 2);
    map.set('a', 3);
    map.set('c', 4);
    expect([...map.entries()]).toEqual([['a', 3], ['c', 4]]);
    expect(map.get('b')).toBeUndefined();
  });
});
