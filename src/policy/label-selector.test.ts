import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { V1LabelSelector, V1LabelSelectorRequirement } from '@kubernetes/client-node';
import { labelSelectorProblems, matchesLabelSelector } from './label-selector.js';

const payments = { team: 'payments', env: 'prod', 'kubernetes.io/metadata.name': 'shop' };

describe('matchesLabelSelector', () => {
  it.each<[string, V1LabelSelector | undefined, boolean]>([
    ['absent selector: every namespace', undefined, true],
    ['empty selector: every namespace', {}, true],
    ['matchLabels equal', { matchLabels: { team: 'payments' } }, true],
    ['matchLabels differ', { matchLabels: { team: 'search' } }, false],
    ['matchLabels key missing', { matchLabels: { tier: 'web' } }, false],
    ['matchLabels AND matchExpressions, both hold', { matchLabels: { team: 'payments' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'staging'] }] }, true],
    ['matchLabels AND matchExpressions, one fails', { matchLabels: { team: 'payments' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] }, false],
    ['In with the key missing', { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] }, false],
    ['NotIn with the key missing holds', { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['web'] }] }, true],
    ['NotIn with a listed value', { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }, false],
    ['NotIn with another value', { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev'] }] }, true],
    ['Exists', { matchExpressions: [{ key: 'team', operator: 'Exists' }] }, true],
    ['Exists, missing', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, false],
    ['DoesNotExist', { matchExpressions: [{ key: 'imagescan.dev/exempt', operator: 'DoesNotExist' }] }, true],
    ['DoesNotExist, present', { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] }, false],
    ['an unknown operator matches nothing', { matchExpressions: [{ key: 'team', operator: 'Equals', values: ['payments'] }] }, false],
  ])('%s', (_name, selector, expected) => {
    expect(matchesLabelSelector(selector, payments)).toBe(expected);
  });

  it('does not take inherited properties for labels', () => {
    expect(matchesLabelSelector({ matchExpressions: [{ key: 'toString', operator: 'Exists' }] }, {})).toBe(false);
  });
});

describe('labelSelectorProblems', () => {
  it('accepts valid selectors and an absent one', () => {
    expect(labelSelectorProblems(undefined, 'spec.namespaceSelector')).toEqual([]);
    expect(labelSelectorProblems({ matchLabels: { 'example.com/team': 'a_b.c' }, matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev'] }, { key: 'x', operator: 'Exists' }] }, 's')).toEqual([]);
  });

  it('names each problem with its field', () => {
    expect(
      labelSelectorProblems(
        {
          matchLabels: { 'bad key!': 'v', team: 'has space' },
          matchExpressions: [{ key: 'env', operator: 'In' }, { key: 'x', operator: 'Exists', values: ['a'] }, { key: 'y', operator: 'Near' }, 'nonsense'],
        },
        'spec.namespaceSelector',
      ),
    ).toEqual([
      'spec.namespaceSelector.matchLabels: invalid label key "bad key!"',
      'spec.namespaceSelector.matchLabels: invalid value "has space" for key "team"',
      'spec.namespaceSelector.matchExpressions[0].values: must be specified when operator is In',
      'spec.namespaceSelector.matchExpressions[1].values: may not be specified when operator is Exists',
      'spec.namespaceSelector.matchExpressions[2].operator: "Near" is not one of In, NotIn, Exists, DoesNotExist',
      'spec.namespaceSelector.matchExpressions[3] must be an object',
    ]);
  });

  it('never throws, whatever it is given', () => {
    fc.assert(fc.property(fc.anything(), (value) => Array.isArray(labelSelectorProblems(value, 'f'))));
  });
});

// Property tests against a model: a selector is the AND of requirements, matchLabels k: v is In [v].
const key = fc.constantFrom('team', 'env', 'tier', 'example.com/owner');
const value = fc.constantFrom('a', 'b', 'c');
const labels = fc.dictionary(key, value, { maxKeys: 4 });
const requirement: fc.Arbitrary<V1LabelSelectorRequirement> = fc.oneof(
  fc.record({ key, operator: fc.constantFrom('In', 'NotIn'), values: fc.uniqueArray(value, { minLength: 1, maxLength: 3 }) }),
  fc.record({ key, operator: fc.constantFrom('Exists', 'DoesNotExist') }),
);
const selector: fc.Arbitrary<V1LabelSelector> = fc.record(
  { matchLabels: fc.dictionary(key, value, { maxKeys: 2 }), matchExpressions: fc.array(requirement, { maxLength: 3 }) },
  { requiredKeys: [] },
);

function holds(r: V1LabelSelectorRequirement, l: Record<string, string>): boolean {
  const v = l[r.key];
  if (r.operator === 'Exists') return v !== undefined;
  if (r.operator === 'DoesNotExist') return v === undefined;
  const listed = v !== undefined && (r.values ?? []).includes(v);
  return r.operator === 'In' ? listed : !listed;
}

describe('matchesLabelSelector properties', () => {
  it('is the AND of its requirements, matchLabels being In with one value', () => {
    fc.assert(
      fc.property(selector, labels, (s, l) => {
        const requirements = [...Object.entries(s.matchLabels ?? {}).map(([k, v]) => ({ key: k, operator: 'In', values: [v] })), ...(s.matchExpressions ?? [])];
        expect(matchesLabelSelector(s, l)).toBe(requirements.every((r) => holds(r, l)));
      }),
    );
  });

  it('NotIn is the complement of In, DoesNotExist of Exists', () => {
    fc.assert(
      fc.property(key, fc.uniqueArray(value, { minLength: 1 }), labels, (k, values, l) => {
        const inSel = matchesLabelSelector({ matchExpressions: [{ key: k, operator: 'In', values }] }, l);
        expect(matchesLabelSelector({ matchExpressions: [{ key: k, operator: 'NotIn', values }] }, l)).toBe(!inSel);
        const exists = matchesLabelSelector({ matchExpressions: [{ key: k, operator: 'Exists' }] }, l);
        expect(matchesLabelSelector({ matchExpressions: [{ key: k, operator: 'DoesNotExist' }] }, l)).toBe(!exists);
      }),
    );
  });

  it('adding labels a selector does not mention never changes its answer', () => {
    fc.assert(
      fc.property(selector, labels, fc.constantFrom('unrelated', 'other.io/x'), value, (s, l, extraKey, v) => {
        expect(matchesLabelSelector(s, { ...l, [extraKey]: v })).toBe(matchesLabelSelector(s, l));
      }),
    );
  });
});
