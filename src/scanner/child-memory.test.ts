import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { residentBytesFromStatus, residentBytesOf } from './child-memory.js';

describe('child memory', () => {
  it('reads VmRSS from a /proc status text, and nothing from a zombie', () => {
    expect(residentBytesFromStatus('Name:\ttrivy\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t12\n')).toBe(100 * 1024 * 1024);
    expect(residentBytesFromStatus('Name:\ttrivy\nState:\tZ (zombie)\nThreads:\t1\n')).toBeUndefined();
  });

  it('sums the processes, counting one that is gone (or unreadable) as 0', async () => {
    const statuses: Record<number, string> = { 10: 'VmRSS:\t 2048 kB\n', 11: 'VmRSS:\t 1024 kB\n', 12: 'State:\tZ (zombie)\n' };
    const read = (pid: number): Promise<string> => (pid in statuses ? Promise.resolve(statuses[pid] ?? '') : Promise.reject(new Error('ENOENT')));
    expect(await residentBytesOf([10, 11, 12, 13], read)).toBe(3 * 1024 * 1024);
    expect(await residentBytesOf([], read)).toBe(0);
  });

  it('reads a live child from /proc', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { stdio: 'ignore' });
    try {
      // A Node.js process holds tens of MiB resident; a pid that does not exist adds nothing.
      await expect.poll(() => residentBytesOf([child.pid ?? -1]), { timeout: 5_000 }).toBeGreaterThan(5 * 1024 * 1024);
      expect(await residentBytesOf([2 ** 22 + 12345])).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
