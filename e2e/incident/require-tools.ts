// The incident test needs Prometheus' and Alertmanager's binaries. When one is missing the test must
// fail (never skip) and say how to install them, before it starts anything.
import { execa } from 'execa';

export const INCIDENT_INSTALL_HINT = 'run `apt-get install prometheus prometheus-alertmanager` (Debian/Ubuntu; npm test does it where it can)';

/** A tool the test runs, under any of its names (Debian renames some binaries). */
export interface RequiredTool {
  names: string[];
}

export const INCIDENT_TOOLS: RequiredTool[] = [
  { names: ['prometheus'] },
  { names: ['prometheus-alertmanager', 'alertmanager'] },
  { names: ['promtool'] },
];

async function answers(binary: string): Promise<boolean> {
  const result = await execa(binary, ['--version'], { reject: false, timeout: 10_000 });
  return result.exitCode === 0;
}

/**
 * Resolves when every tool answers `--version` under one of its names; otherwise rejects with an
 * Error that names the missing tools and the apt-get command that installs them.
 */
export async function requireTools(tools: RequiredTool[] = INCIDENT_TOOLS): Promise<void> {
  const missing: string[] = [];
  for (const tool of tools) {
    let found = false;
    for (const name of tool.names) {
      if (await answers(name)) {
        found = true;
        break;
      }
    }
    if (!found) missing.push(tool.names.join(' / '));
  }
  if (missing.length > 0) {
    throw new Error(`the incident test needs ${missing.join(', ')} on PATH: ${INCIDENT_INSTALL_HINT}`);
  }
}
