// The real kubectl as a test client of the fake (or of anything with a kubeconfig). Async on purpose:
// the server under test runs in the same process and must keep answering while kubectl waits.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Kubectl {
  run(args: string[], input?: string): Promise<KubectlResult>;
  /** Runs and returns stdout; throws with kubectl's stderr on a non-zero exit. */
  ok(args: string[], input?: string): Promise<string>;
  /** Removes the discovery cache folder. */
  close(): void;
}

export function kubectlFor(kubeconfig: string): Kubectl {
  const cacheDir = mkdtempSync(path.join(tmpdir(), 'kubectl-cache-'));
  const run = async (args: string[], input?: string): Promise<KubectlResult> => {
    const r = await execa('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, '--request-timeout', '20s', ...args], {
      reject: false,
      ...(input !== undefined ? { input } : {}),
    });
    return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  return {
    run,
    async ok(args, input) {
      const r = await run(args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    },
    close: () => rmSync(cacheDir, { recursive: true, force: true }),
  };
}

/** Splits kubectl's table output at the header's column starts (cells may be empty). */
export function parseTable(out: string): Record<string, string>[] {
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0] ?? '';
  const starts: { name: string; at: number }[] = [];
  const re = /\S+(?: \S+)*/g;
  for (let m = re.exec(header); m; m = re.exec(header)) starts.push({ name: m[0], at: m.index });
  return lines.slice(1).map((line) => {
    const row: Record<string, string> = {};
    starts.forEach((s, i) => {
      const end = starts[i + 1]?.at ?? line.length;
      row[s.name] = line.slice(s.at, end).trim();
    });
    return row;
  });
}
