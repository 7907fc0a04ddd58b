import { describe, expect, it } from 'vitest';
import { nextScanRetry, retrySentence } from './scan-retry.js';

const policy = { baseMs: 10 * 60_000, maxAttempts: 5 };
const failedAt = new Date('2026-12-07T10:00:00Z');
const schedule = new Date('2026-12-08T00:00:00Z');

describe('nextScanRetry', () => {
  it.each([
    [1, true, '2026-12-07T10:10:00.000Z'],
    [2, true, '2026-12-07T10:20:00.000Z'],
    [3, true, '2026-12-07T10:40:00.000Z'],
    [4, true, '2026-12-07T11:20:00.000Z'],
    // The cap: the scheduled rescan is the next try.
    [5, true, '2026-12-08T00:00:00.000Z'],
    [9, true, '2026-12-08T00:00:00.000Z'],
    // Credentials refused, image gone: only the schedule retries.
    [1, false, '2026-12-08T00:00:00.000Z'],
  ])('after failure %i (transient %s) the next try is at %s', (attempts, transient, expected) => {
    expect(nextScanRetry(attempts, failedAt, transient, policy, schedule).toISOString()).toBe(expected);
  });

  it('never waits past the next scheduled rescan, which tries anyway', () => {
    const soon = new Date('2026-12-07T10:30:00Z');
    expect(nextScanRetry(4, failedAt, true, policy, soon).toISOString()).toBe('2026-12-07T10:30:00.000Z');
  });
});

describe('retrySentence', () => {
  it('says how often the scan failed and when it is tried next', () => {
    expect(retrySentence({ attempts: 2, nextRetryAt: new Date('2026-12-07T10:20:00Z') }, 5)).toBe('Failed 2 of 5 attempts; next try at 2026-12-07T10:20:00Z.');
    expect(retrySentence({ attempts: 5, nextRetryAt: schedule }, 5)).toBe('Gave up after 5 failed attempts in a row; next try with the scheduled rescan at 2026-12-08T00:00:00Z.');
  });
});
