// The benchmark's compressed day (issue 21): the operator restarted with its cache volume, the schedule
// and the DB refresh shortened by the same factor as the day (12 h and 6 h of a day of --day-seconds),
// and a new DB version at every download. It counts what reached a registry and what the rescans cost.
import type { Figure } from './figures.js';
import { dbDownloadTimes, registryPullsBetween, scansBetween } from './trivy-stub.js';
import type { StubEvent } from './trivy-stub.js';

/** The day's schedule and refresh, as the defaults are to a real day: every 12 h and every 6 h. */
export function compressedDayArgs(daySeconds: number): string[] {
  return ['--rescan-schedule', everySeconds(daySeconds / 2), '--trivy-db-refresh', `${daySeconds / 4}s`, '--rescan-jitter', '0s'];
}

/** A six-field cron firing every `s` seconds (s divides a minute, or is whole minutes dividing an hour). */
export function everySeconds(s: number): string {
  if (Number.isInteger(s) && s > 0 && s < 60 && 60 % s === 0) return `*/${s} * * * * *`;
  const minutes = s / 60;
  if (Number.isInteger(minutes) && minutes > 0 && 60 % minutes === 0) return minutes === 1 ? '0 * * * * *' : `0 */${minutes} * * * *`;
  throw new Error(`no cron fires every ${s} s; pick a --day-seconds whose half divides a minute or an hour`);
}

export interface DayFigures {
  daySeconds: number;
  windowSeconds: number;
  runningDigests: number;
  registryPulls: number;
  /** Pulls per running digest, scaled to a whole day: the registryPullsPerDigestPerDay (ideal 0). */
  registryPullsPerDigestPerDay: number;
  /** New DB versions downloaded in the window. */
  dbVersions: number;
  /** Rescans (scans of any kind) per running digest per day. */
  rescansPerDigestPerDay: number;
  /** Mean wall time of one digest's rescan by Trivy (start to end of the child). */
  rescanSecondsPerDigest: number;
  /** Wall time from each DB download to the last rescan it caused, per digest rescanned, averaged. */
  rescanWallSecondsPerDigest: number;
}

/** The figures of the day window [fromMs, toMs) from the stand-in's log. */
export function dayFigures(events: StubEvent[], fromMs: number, toMs: number, runningDigests: number, daySeconds: number): DayFigures {
  const windowSeconds = (toMs - fromMs) / 1000;
  const days = windowSeconds / daySeconds;
  const pulls = registryPullsBetween(events, fromMs, toMs).length;
  const scans = scansBetween(events, fromMs, toMs);
  const ends = new Map<number, number>();
  for (const e of events) if (e.event === 'end') ends.set(e.pid, e.t);
  const durations = scans.flatMap((s) => {
    const end = ends.get(s.pid);
    return end === undefined ? [] : [(end - s.t) / 1000];
  });
  const downloads = dbDownloadTimes(events).filter((t) => t >= fromMs && t < toMs);
  // Each wave: the scans between one download and the next.
  const waves = downloads.map((t, i) => {
    const inWave = scans.filter((s) => s.t >= t && s.t < (downloads[i + 1] ?? toMs));
    const last = Math.max(t, ...inWave.map((s) => ends.get(s.pid) ?? s.t));
    return { count: inWave.length, seconds: (last - t) / 1000 };
  }).filter((w) => w.count > 0);
  const perDigest = waves.map((w) => w.seconds / w.count);
  return {
    daySeconds,
    windowSeconds,
    runningDigests,
    registryPulls: pulls,
    registryPullsPerDigestPerDay: pulls / Math.max(1, runningDigests) / days,
    dbVersions: downloads.length,
    rescansPerDigestPerDay: scans.length / Math.max(1, runningDigests) / days,
    rescanSecondsPerDigest: durations.length === 0 ? 0 : durations.reduce((a, b) => a + b, 0) / durations.length,
    rescanWallSecondsPerDigest: perDigest.length === 0 ? 0 : perDigest.reduce((a, b) => a + b, 0) / perDigest.length,
  };
}

/** The table rows of the day. */
export function dayTable(day: DayFigures): Figure[] {
  const versionsPerDay = day.dbVersions / (day.windowSeconds / day.daySeconds);
  return [
    { phase: 'day', name: 'registryPullsPerDigestPerDay', value: day.registryPullsPerDigestPerDay, ideal: 0, unit: '', target: '= 0', met: day.registryPulls === 0 },
    { phase: 'day', name: 'rescans per digest per day (DB versions per day)', value: day.rescansPerDigestPerDay, ideal: versionsPerDay, unit: '', target: '<= DB versions', met: day.rescansPerDigestPerDay <= versionsPerDay + 1e-9 },
    { phase: 'day', name: 'rescanSecondsPerDigest (Trivy child)', value: day.rescanSecondsPerDigest, ideal: undefined, unit: 's' },
    { phase: 'day', name: 'rescan wall seconds per digest (DB download to last rescan)', value: day.rescanWallSecondsPerDigest, ideal: undefined, unit: 's' },
  ];
}
