// Runs Prometheus' promtool for the alert tests and the incident test. Never skips: a missing
// promtool is a failure that says how to install it.
import { execa } from 'execa';
import type { Result } from 'execa';

export const PROMTOOL_INSTALL_HINT =
  'promtool is not installed: run `apt-get install prometheus` (Debian/Ubuntu; npm test does it where it can) or put promtool from a Prometheus release on PATH';

/** Runs `promtool <args>` with optional stdin; throws with the install hint when promtool is missing. */
export async function promtool(args: string[], input?: string): Promise<Result> {
  const result = await execa('promtool', args, { reject: false, timeout: 60_000, ...(input === undefined ? {} : { input }) });
  if (result.code === 'ENOENT') throw new Error(PROMTOOL_INSTALL_HINT);
  return result;
}

/** Throws with the install hint when promtool is not on PATH. */
export async function requirePromtool(): Promise<void> {
  const result = await promtool(['--version']);
  if (result.exitCode !== 0) throw new Error(`${PROMTOOL_INSTALL_HINT}\n${String(result.stderr)}`);
}
