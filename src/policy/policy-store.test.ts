import { describe, expect, it } from 'vitest';
import { FakeInformer } from '../../test/fake-informer.js';
import type { PolicyEntry } from '../kube/policy-entry.js';
import { toPolicyEntry } from '../kube/policy-entry.js';
import { PolicyStore } from './policy-store.js';
import type { PolicyChange } from './policy-store.js';

/** Delivers policy objects the way the informer does: add, update (old, new), delete. */
class PolicyFeed extends FakeInformer<PolicyEntry> {
  apply(name: string, spec: unknown, opts: { generation?: number; status?: unknown } = {}): void {
    const entry = toPolicyEntry({ metadata: { name, generation: opts.generation ?? 1, resourceVersion: String(Math.random()) }, spec, status: opts.status });
    if (entry === undefined) throw new Error('bad test policy');
    this.put(entry);
  }
}

function storeWithFeed(): { feed: PolicyFeed; store: PolicyStore; changes: PolicyChange[] } {
  const feed = new PolicyFeed();
  const store = new PolicyStore(feed);
  const changes: PolicyChange[] = [];
  store.onChange((c) => changes.push(c));
  return { feed, store, changes };
}

describe('PolicyStore', () => {
  it('serves the valid policies compiled, sorted by name, with defaults applied', () => {
    const { feed, store } = storeWithFeed();
    feed.apply('zeta', { action: 'Deny', vulnerabilities: { critical: 0 } });
    feed.apply('alpha', { allowedRegistries: ['registry.corp.example'] });
    const policies = store.validPolicies();
    expect(policies.map((p) => p.name)).toEqual(['alpha', 'zeta']);
    expect(policies[0]).toMatchObject({ action: 'Warn', unscanned: 'Warn', allowedRegistries: [{ text: 'registry.corp.example' }] });
    expect(policies[1]).toMatchObject({ action: 'Deny', thresholds: { critical: 0 } });
  });

  it('leaves an invalid policy out of validPolicies but keeps its problem for the status', () => {
    const { feed, store } = storeWithFeed();
    feed.apply('good', { vulnerabilities: { high: 3 } });
    feed.apply('bad', { exemptImages: ['nginx'], namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'Within' }] } });
    expect(store.validPolicies().map((p) => p.name)).toEqual(['good']);
    const bad = store.get('bad');
    expect(bad?.result.ok).toBe(false);
    if (bad?.result.ok === false) {
      expect(bad.result.message).toContain('spec.exemptImages');
      expect(bad.result.message).toContain('spec.namespaceSelector.matchExpressions[0].operator');
    }
  });

  it('returns the same array until a spec changes, and a new one after', () => {
    const { feed, store } = storeWithFeed();
    feed.apply('p', { vulnerabilities: { critical: 0 } });
    const first = store.validPolicies();
    expect(store.validPolicies()).toBe(first);
    feed.apply('p', { vulnerabilities: { critical: 0 } }, { status: { violations: 4 } });
    expect(store.validPolicies()).toBe(first);
    feed.apply('p', { vulnerabilities: { critical: 2 } }, { generation: 2 });
    const second = store.validPolicies();
    expect(second).not.toBe(first);
    expect(second[0]?.thresholds).toEqual({ critical: 2 });
    expect(Object.isFrozen(second)).toBe(true);
  });

  it('tells listeners what a policy enforced before and after, and nothing for a status-only update', () => {
    const { feed, store, changes } = storeWithFeed();
    feed.apply('p', { vulnerabilities: { critical: 0 } });
    feed.apply('p', { vulnerabilities: { critical: 0 } }, { status: { violations: 1, observedGeneration: 1 } });
    expect(store.get('p')?.status).toEqual({ violations: 1, observedGeneration: 1 });
    feed.apply('p', { exemptImages: ['no-host'] }, { generation: 2 });
    feed.apply('p', { vulnerabilities: { critical: 5 } }, { generation: 3 });
    feed.delete('p');
    expect(changes.map((c) => [c.name, c.previous?.thresholds, c.current?.thresholds])).toEqual([
      ['p', undefined, { critical: 0 }],
      ['p', { critical: 0 }, undefined],
      ['p', undefined, { critical: 5 }],
      ['p', { critical: 5 }, undefined],
    ]);
    expect(store.validPolicies()).toEqual([]);
    expect(store.get('p')).toBeUndefined();
  });

  it('stops calling a listener once unsubscribed', () => {
    const feed = new PolicyFeed();
    const store = new PolicyStore(feed);
    const seen: string[] = [];
    const unsubscribe = store.onChange((c) => seen.push(c.name));
    feed.apply('a', {});
    unsubscribe();
    feed.apply('b', {});
    expect(seen).toEqual(['a']);
  });
});
