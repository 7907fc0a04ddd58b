import type { EventLoopUtilization } from 'node:perf_hooks';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { IdleDetector, startIdleMemoryRelease } from './idle-memory-release.js';

const options = { busyUtilization: 0.05, idleUtilization: 0.02, idleIntervals: 2 };

describe('IdleDetector', () => {
  it('releases once, after busy work and then two idle intervals in a row', () => {
    const detector = new IdleDetector(options);
    const decisions = [0.6, 0.9, 0.01, 0.004, 0.003, 0.001, 0.2, 0.0, 0.0].map((u) => detector.observe(u));
    expect(decisions).toEqual([false, false, false, true, false, false, false, false, true]);
  });

  it('never releases an operator that was never busy (probes and scrapes only)', () => {
    const detector = new IdleDetector(options);
    expect([0.01, 0.004, 0.019, 0.0, 0.01].map((u) => detector.observe(u))).toEqual([false, false, false, false, false]);
  });

  it('waits while the loop is neither busy nor idle, and counts idle intervals in a row only', () => {
    const detector = new IdleDetector(options);
    expect([0.5, 0.0, 0.03, 0.0, 0.03, 0.0, 0.0].map((u) => detector.observe(u))).toEqual([false, false, false, false, false, false, true]);
  });
});

describe('startIdleMemoryRelease', () => {
  it("runs V8's memory-reducing collection when the operator turns idle after work", () => {
    vi.useFakeTimers();
    try {
      const loads = [0.8, 0.01, 0.01, 0.01];
      let i = 0;
      const eventLoopUtilization = (previous?: EventLoopUtilization): EventLoopUtilization =>
        ({ idle: 0, active: 0, utilization: previous === undefined ? 0 : (loads[i++] ?? 0) });
      const order: string[] = [];
      const gc = vi.fn();
      gc.mockImplementation(() => order.push('gc'));
      const beforeRelease = (): void => void order.push('caches cleared');
      const release = startIdleMemoryRelease({ gc, logger: pino({ level: 'silent' }), intervalMs: 1000, eventLoopUtilization, beforeRelease });
      vi.advanceTimersByTime(2000);
      expect(gc).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1000);
      expect(gc).toHaveBeenCalledTimes(1);
      expect(gc).toHaveBeenCalledWith({ type: 'major', execution: 'sync', flavor: 'last-resort' });
      expect(order).toEqual(['caches cleared', 'gc']);
      vi.advanceTimersByTime(5000);
      expect(gc).toHaveBeenCalledTimes(1);
      release.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('does nothing without --expose-gc', () => {
    vi.useFakeTimers();
    try {
      const eventLoopUtilization = vi.fn((): EventLoopUtilization => ({ idle: 0, active: 0, utilization: 1 }));
      startIdleMemoryRelease({ gc: undefined, logger: pino({ level: 'silent' }), eventLoopUtilization }).stop();
      vi.advanceTimersByTime(60_000);
      expect(eventLoopUtilization).not.toHaveBeenCalled();
    } finally {
      vi.useRealTimers();
    }
  });
});
