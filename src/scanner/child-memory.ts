// How much memory the Trivy children use: they run inside the operator's container, so their
// resident memory counts against its limit next to the operator's own (process_resident_memory_bytes).
// Read from /proc/<pid>/status at scrape time: a few small files for `--scan-concurrency` children.
import { readFile } from 'node:fs/promises';

/** VmRSS of a /proc/<pid>/status text, in bytes; undefined when the line is missing (e.g. a zombie). */
export function residentBytesFromStatus(status: string): number | undefined {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
}

/**
 * Resident bytes of the given processes, summed. A process that exited meanwhile, or a system
 * without /proc, counts 0: the figure is a sample, never an error.
 */
export async function residentBytesOf(pids: Iterable<number>, readStatus: (pid: number) => Promise<string> = readProcStatus): Promise<number> {
  const sizes = await Promise.all(
    [...pids].map(async (pid) => {
      try {
        return residentBytesFromStatus(await readStatus(pid)) ?? 0;
      } catch {
        return 0;
      }
    }),
  );
  return sizes.reduce((sum, bytes) => sum + bytes, 0);
}

function readProcStatus(pid: number): Promise<string> {
  return readFile(`/proc/${pid}/status`, 'utf8');
}
