// The README must stay true: its configuration table lists every flag and variable of --help with the
// same default, the flags, npm scripts and repository paths it mentions exist, and its links resolve.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { helpText } from '../../src/config.js';
import { configTable } from '../../scripts/readme-config-table.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
const help = helpText();

/** Flags of --help with their variable and default, read straight from the help text. */
function helpSettings(): { flag?: string; env: string; defaultText: string }[] {
  const out: { flag?: string; env: string; defaultText: string }[] = [];
  const lines = help.split('\n');
  const envOnlyStart = lines.findIndex((l) => l.startsWith('Environment only:'));
  lines.forEach((line, i) => {
    const flag = /^ {2}(?:-h, )?(--[a-z0-9-]+)/.exec(line)?.[1];
    const env = /env (IMAGESCAN_[A-Z0-9_]+); default: (.*)$/.exec(lines[i + 2] ?? '');
    if (flag !== undefined && env !== null) out.push({ flag, env: env[1] ?? '', defaultText: env[2] ?? '' });
    // Variables without a flag: each two-space line after "Environment only:", its default below it.
    const envOnly = envOnlyStart >= 0 && i > envOnlyStart ? /^ {2}(\S.*)$/.exec(line)?.[1] : undefined;
    const envOnlyDefault = /default: (.*)$/.exec(lines[i + 1] ?? '')?.[1];
    if (envOnly !== undefined) out.push({ env: envOnly, defaultText: envOnlyDefault ?? '' });
  });
  return out;
}

/** The commands of the README's opening code block, comments removed. */
function openingCommands(): string[] {
  const block = /^```sh\n([\s\S]*?)\n```/m.exec(readme.slice(0, 600))?.[1] ?? '';
  return block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim());
}

function configSection(): string {
  const match = /<!-- config-table:start[^>]*-->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme);
  expect(match, 'README has the config-table markers').not.toBeNull();
  return match?.[1] ?? '';
}

/** A table row's cells with Markdown escapes and code backticks removed. */
function cells(row: string): string[] {
  return row
    .split(/(?<!\\)\|/)
    .slice(1, -1)
    .map((c) => c.trim().replace(/\\(.)/g, '$1').replace(/^`|`$/g, ''));
}

describe('README', () => {
  it('keeps its first two commands', () => {
    expect(openingCommands()).toEqual(['npm ci && npm run demo', 'npm ci && npm test']);
  });

  it('opens with the test command .ci/run and the GitHub workflow run, and the demo command the demo test runs', () => {
    const [demoCommand, testCommand] = openingCommands();
    // .ci/run: the exact line, and no other way of running the suites.
    const ciLines = readFileSync(path.join(repoRoot, '.ci/run'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ciLines).toContain(testCommand);
    expect(ciLines.filter((l) => /\bnpm (ci|test|run)\b|vitest/.test(l))).toEqual([testCommand]);
    // The workflow's test job.
    const workflow = parse(readFileSync(path.join(repoRoot, '.github/workflows/ci.yml'), 'utf8')) as { jobs: Record<string, { steps: { run?: string }[] }> };
    const runs = (workflow.jobs['test']?.steps ?? []).flatMap((s) => (s.run === undefined ? [] : [s.run.trim()]));
    expect(runs).toContain(testCommand);
    // The demo test starts what follows `npm ci && ` (its node_modules are there already).
    const demoTest = readFileSync(path.join(repoRoot, 'e2e/demo/demo.test.ts'), 'utf8');
    const [program, ...args] = (demoCommand ?? '').replace(/^npm ci && /, '').split(' ');
    expect(program).toBe('npm');
    expect(demoTest).toContain(`startDemo('${program ?? ''}', [${args.map((a) => `'${a}'`).join(', ')}`);
  });

  it('lists every flag and variable of --help, with its default, and no other', () => {
    const rows = configSection()
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| flag') && !l.startsWith('| ---'))
      .map(cells);
    const settings = helpSettings();
    expect(settings.length).toBeGreaterThan(20);
    for (const s of settings) {
      const row = rows.find((r) => r[1] === s.env);
      expect(row, `README row for ${s.env}`).toBeDefined();
      expect(row?.[0]).toBe(s.flag ?? '(none)');
      expect(row?.[2]).toBe(s.defaultText);
    }
    expect(rows.map((r) => r[1]).sort()).toEqual(settings.map((s) => s.env).sort());
  });

  it('has the table exactly as scripts/readme-config-table.ts generates it', () => {
    expect(configSection()).toBe(configTable(help));
  });

  it('mentions only operator flags that exist (or the demo\'s --scanner)', () => {
    const known = new Set(helpSettings().flatMap((s) => (s.flag === undefined ? [] : [s.flag])));
    known.add('--help');
    // The generic forms in the sentence about booleans.
    known.add('--flag');
    known.add('--no-flag');
    const demo = readFileSync(path.join(repoRoot, 'scripts/demo.ts'), 'utf8');
    const spans = [...readme.matchAll(/`(--[a-z0-9-]+)[^`]*`/g)].map((m) => m[1] ?? '');
    expect(spans.length).toBeGreaterThan(10);
    for (const flag of spans) {
      if (flag === '--scanner') expect(demo).toContain("'--scanner");
      else expect(known, `README mentions ${flag}`).toContain(flag);
    }
  });

  it('runs only npm scripts that exist', () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    const used = [...readme.matchAll(/npm run ([a-z0-9:]+)/g)].map((m) => m[1] ?? '');
    expect(used).toContain('demo');
    for (const script of used) expect(Object.keys(pkg.scripts), `npm run ${script}`).toContain(script);
    expect(pkg.scripts.start).toBeDefined();
    expect(pkg.scripts.test).toBeDefined();
  });

  it('links and names repository paths that exist', () => {
    const links = [...readme.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1] ?? '').filter((l) => !/^[a-z]+:/.test(l));
    expect(links.length).toBeGreaterThan(3);
    for (const link of links) expect(existsSync(path.join(repoRoot, link)), `link ${link}`).toBe(true);
    const named = [...readme.matchAll(/`((?:src|e2e|test|manifests|monitoring|scripts|bench|crds|\.ci|\.github)\/[^`\s*…]*)`/g)].map((m) => m[1] ?? '');
    expect(named.length).toBeGreaterThan(5);
    for (const p of named) expect(existsSync(path.join(repoRoot, p)), `path ${p}`).toBe(true);
  });
});
