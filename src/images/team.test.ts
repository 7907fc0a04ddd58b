import { describe, expect, it } from 'vitest';
import { isLabelValue, teamOf } from './team.js';

describe('teamOf', () => {
  const cases: [string, Record<string, string> | undefined, Record<string, string> | undefined, string, string][] = [
    ['pod label wins', { team: 'payments' }, { team: 'platform' }, 'team', 'payments'],
    ['namespace label when the pod has none', { app: 'web' }, { team: 'platform' }, 'team', 'platform'],
    ['unassigned when neither has it', { app: 'web' }, {}, 'team', 'unassigned'],
    ['unassigned without any labels', undefined, undefined, 'team', 'unassigned'],
    ['configurable key', { team: 'wrong', 'example.com/owner': 'search' }, undefined, 'example.com/owner', 'search'],
    ['empty pod value counts as absent', { team: '' }, { team: 'platform' }, 'team', 'platform'],
    ['illegal pod value counts as absent', { team: 'Payments Team!' }, { team: 'platform' }, 'team', 'platform'],
    ['illegal value everywhere gives unassigned', { team: '-x' }, { team: 'x'.repeat(64) }, 'team', 'unassigned'],
    ['63 characters is still legal', { team: `a${'b'.repeat(61)}c` }, undefined, 'team', `a${'b'.repeat(61)}c`],
    ['unicode is not a label value', { team: 'équipe' }, undefined, 'team', 'unassigned'],
    ['prototype keys are not labels', {}, {}, '__proto__', 'unassigned'],
    ['prototype keys are not labels (constructor)', {}, {}, 'constructor', 'unassigned'],
  ];
  it.each(cases)('%s', (_name, pod, ns, key, expected) => {
    expect(teamOf(pod, ns, key)).toBe(expected);
  });
});

describe('isLabelValue', () => {
  it.each([
    ['a', true],
    ['a.b_c-d', true],
    ['A9', true],
    ['', false],
    ['a-', false],
    ['_a', false],
    ['a b', false],
    ['x'.repeat(63), true],
    ['x'.repeat(64), false],
  ])('%j → %s', (value, expected) => {
    expect(isLabelValue(value)).toBe(expected);
  });
});
