import { describe, expect, it } from 'vitest';
import type { DigestScanKnowledge } from './scan-results.js';
import { isDueForScheduledRescan } from './scheduled-rescan.js';

const HOUR = 3_600_000;
const t0 = Date.parse('2026-12-07T00:00:00Z');
const db = (hours: number) => new Date(t0 + hours * HOUR).toISOString();

function known(scannedHoursAgo: number, dbUpdatedAt: string | undefined, now = t0 + 12 * HOUR): DigestScanKnowledge {
  const scannedAt = new Date(now - scannedHoursAgo * HOUR);
  return {
    digest: 'sha256:1',
    result: { summary: { critical: 0, high: 0, medium: 0, low: 0, unknown: 0, total: 0, fixable: 0 }, scanner: { name: 'Trivy', ...(dbUpdatedAt === undefined ? {} : { dbUpdatedAt }) } },
    scannedAt,
    lastAttemptAt: scannedAt,
  };
}

describe('isDueForScheduledRescan', () => {
  const level = { dbUpdatedAt: db(6), nowMs: t0 + 12 * HOUR, periodMs: 12 * HOUR };

  it('skips a digest the DB update already rescanned: same DB, within the period', () => {
    expect(isDueForScheduledRescan(known(5.9, db(6)), level)).toBe(false);
  });

  it('rescans a result of an older DB however recent', () => {
    expect(isDueForScheduledRescan(known(0.1, db(0)), level)).toBe(true);
  });

  it('rescans a result a whole period old even of the current DB (the DB is not moving)', () => {
    expect(isDueForScheduledRescan(known(12, db(6)), level)).toBe(true);
    expect(isDueForScheduledRescan(known(11.9, db(6)), level)).toBe(false);
  });

  it('falls back to the age alone when either DB time is unknown', () => {
    expect(isDueForScheduledRescan(known(2, undefined), level)).toBe(false);
    expect(isDueForScheduledRescan(known(13, undefined), level)).toBe(true);
    expect(isDueForScheduledRescan(known(2, db(0)), { ...level, dbUpdatedAt: undefined })).toBe(false);
  });

  it('leaves digests without a result to be scanned', () => {
    expect(isDueForScheduledRescan({ digest: 'sha256:1', lastAttemptAt: new Date(t0) }, level)).toBe(true);
  });

  it('with a DB every 6 h and the schedule every 12 h, rescans each digest once per DB version', () => {
    // A day: DB versions at 0, 6, 12, 18 h (each rescans what is older), the schedule at 0 and 12 h.
    let state = known(0, db(0), t0);
    let currentDb = db(0);
    let rescans = 0;
    const rescan = (atHours: number) => {
      const at = new Date(t0 + atHours * HOUR);
      state = { ...known(0, currentDb, at.getTime()), scannedAt: at, lastAttemptAt: at };
      rescans += 1;
    };
    for (let minute = 1; minute < 24 * 60; minute += 1) {
      const hours = minute / 60;
      const now = t0 + minute * 60_000;
      if (minute % 360 === 0) {
        currentDb = db(hours);
        if (Date.parse(state.result?.scanner.dbUpdatedAt ?? '') < Date.parse(currentDb)) rescan(hours);
      }
      // The schedule fires a minute after the DB update (the same window).
      if (minute % 720 === 1 && isDueForScheduledRescan(state, { dbUpdatedAt: currentDb, nowMs: now, periodMs: 12 * HOUR })) rescan(hours);
    }
    // The three DB versions after the first scan; the schedule (at 0:01 and 12:01) adds none.
    expect(rescans).toBe(3);
  });
});
