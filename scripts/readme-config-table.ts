// The README's configuration table, generated from the operator's --help text so the two cannot drift:
//   npx tsx scripts/readme-config-table.ts   # prints the table; paste it between the README's markers
// test/readme/readme.test.ts fails when the README's table differs from this output.
import { fileURLToPath } from 'node:url';
import { helpText } from '../src/config.js';

/** One setting as --help describes it. */
export interface HelpEntry {
  /** `--scan-timeout`, or undefined for an environment-only setting. */
  flag: string | undefined;
  env: string;
  defaultText: string;
  meaning: string;
}

/** Parses the operator's --help text into its settings (flags, then environment-only variables). */
export function parseHelp(help: string): HelpEntry[] {
  const lines = help.split('\n');
  const entries: HelpEntry[] = [];
  let envOnlySection = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('Environment only:')) envOnlySection = true;
    const flag = /^ {2}(--[a-z0-9-]+)/.exec(line)?.[1];
    // Under "Environment only:" every two-space line names one or more variables.
    const envOnly = envOnlySection ? /^ {2}(\S.*?)\s*$/.exec(line)?.[1] : undefined;
    if (flag !== undefined) {
      const meaning = (lines[i + 1] ?? '').trim();
      const envLine = /^\s+env (\S+); default: (.*)$/.exec(lines[i + 2] ?? '');
      if (envLine === null) continue; // --help itself has no variable
      entries.push({ flag, env: envLine[1] ?? '', defaultText: envLine[2] ?? '', meaning });
    } else if (envOnly !== undefined) {
      const described = /^\s+(.*); default: (.*)$/.exec(lines[i + 1] ?? '');
      entries.push({ flag: undefined, env: envOnly, defaultText: described?.[2] ?? '', meaning: described?.[1] ?? '' });
    }
  }
  return entries;
}

/** Escapes what Markdown would otherwise read as emphasis or a cell border. */
export function markdownCell(text: string): string {
  return text.replace(/([\\*_|`])/g, '\\$1');
}

/** The Markdown table of every setting: flag, variable, default, meaning. */
export function configTable(help: string = helpText()): string {
  const rows = parseHelp(help).map((e) => {
    const env = /^[A-Z0-9_]+$/.test(e.env) ? `\`${e.env}\`` : markdownCell(e.env);
    return `| ${e.flag === undefined ? '(none)' : `\`${e.flag}\``} | ${env} | ${markdownCell(e.defaultText)} | ${markdownCell(e.meaning)} |`;
  });
  return ['| flag | environment variable | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(`${configTable()}\n`);
}
