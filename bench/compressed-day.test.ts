import { describe, expect, it } from 'vitest';
import { compressedDayArgs, dayFigures, everySeconds } from './compressed-day.js';
import type { StubEvent } from './trivy-stub.js';

describe('the compressed day', () => {
  it('keeps the defaults’ proportions: the schedule every half day, the DB every quarter day', () => {
    expect(compressedDayArgs(120)).toEqual(['--rescan-schedule', '0 * * * * *', '--trivy-db-refresh', '30s', '--rescan-jitter', '0s']);
    expect(everySeconds(20)).toBe('*/20 * * * * *');
    expect(everySeconds(600)).toBe('0 */10 * * * *');
    expect(() => everySeconds(70)).toThrow(/no cron fires every 70 s/);
  });

  it('counts image scans as registry pulls and sbom runs as rescans, scaled to a day', () => {
    let pid = 0;
    const run = (argv: string[], t: number, seconds: number): StubEvent[] => {
      pid += 1;
      return [{ event: 'start', pid, t, argv }, { event: 'end', pid, t: t + seconds * 1000, exitCode: 0 }];
    };
    const events = [
      ...run(['image', '--download-db-only'], 1_000, 0),
      ...run(['sbom', 'a.cdx.json'], 1_100, 0.5),
      ...run(['sbom', 'b.cdx.json'], 1_200, 1.5),
      ...run(['image', '--download-db-only'], 31_000, 0),
      ...run(['sbom', 'a.cdx.json'], 31_100, 0.5),
      ...run(['image', '--format', 'json', 'docker.io/library/c@sha256:1'], 31_200, 2),
      ...run(['convert', '--format', 'cyclonedx', 'r.json'], 33_200, 0.1),
    ];
    const day = dayFigures(events, 0, 60_000, 3, 120);
    expect(day.registryPulls).toBe(1);
    expect(day.registryPullsPerDigestPerDay).toBeCloseTo(1 / 3 / 0.5);
    expect(day.dbVersions).toBe(2);
    // Four scans (three from SBOMs, one of an image) of three digests in half a day.
    expect(day.rescansPerDigestPerDay).toBeCloseTo(4 / 3 / 0.5);
    expect(day.rescanSecondsPerDigest).toBeCloseTo((0.5 + 1.5 + 0.5 + 2) / 4);
  });
});
