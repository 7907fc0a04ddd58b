// `npm test` starts with scripts/test-prerequisites.sh: it installs Debian's prometheus and
// prometheus-alertmanager when the machine allows it, and otherwise stops at once with one line. Here
// it runs against a PATH of stand-ins (id, sudo, apt-get, the tools), so every branch is exercised
// without touching this machine's packages.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const script = path.join(repoRoot, 'scripts/test-prerequisites.sh');
const bash = ['/bin/bash', '/usr/bin/bash'].find((p) => existsSync(p)) ?? 'bash';
const TOOLS = ['prometheus', 'promtool', 'prometheus-alertmanager', 'amtool'];

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

interface Machine {
  bin: string;
  log: string;
}

/** A PATH holding only the given stand-ins; each one appends its argv to the log. */
function machine(options: { tools?: string[]; kubectl?: boolean; uid?: number; sudo?: 'none' | 'password' | 'passwordless'; apt?: 'none' | 'installs' | 'installs nothing' | 'fails' }): Machine {
  const bin = mkdtempSync(path.join(os.tmpdir(), 'test-prerequisites-'));
  dirs.push(bin);
  const log = path.join(bin, 'calls.log');
  const stub = (name: string, body: string): void => {
    writeFileSync(path.join(bin, name), `#!/bin/sh\nprintf '%s\\n' "${name} $*" >> '${log}'\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  };
  for (const tool of options.tools ?? []) stub(tool, 'exit 0');
  if (options.kubectl ?? true) stub('kubectl', 'exit 0');
  stub('id', `echo ${options.uid ?? 1000}`);
  const sudo = options.sudo ?? 'none';
  // The stand-in sudo runs only apt-get (the stand-in); writing policy-rc.d is logged, not done.
  if (sudo === 'password') stub('sudo', 'exit 1');
  if (sudo === 'passwordless') stub('sudo', `[ "$1" = -n ] && shift\n[ "$1" = true ] && exit 0\n[ "$1" = env ] && shift 2\n[ "$1" = apt-get ] && shift && exec '${bin}/apt-get' "$@"\nexit 0`);
  const apt = options.apt ?? 'none';
  const create = TOOLS.map((t) => `printf '#!/bin/sh\\n' > '${bin}/${t}'; /bin/chmod 755 '${bin}/${t}'`).join('\n');
  if (apt === 'installs') stub('apt-get', `[ "$1" = install ] || exit 0\n${create}`);
  if (apt === 'installs nothing') stub('apt-get', 'exit 0');
  if (apt === 'fails') stub('apt-get', 'echo "E: Unable to locate package prometheus" >&2; exit 100');
  return { bin, log };
}

function run(m: Machine): { status: number | null; stdout: string; stderr: string; calls: string[] } {
  const r = spawnSync(bash, [script], { env: { PATH: m.bin }, encoding: 'utf8', timeout: 20_000 });
  const calls = existsSync(m.log) ? readFileSync(m.log, 'utf8').trim().split('\n') : [];
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls };
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

describe('npm test prerequisites', () => {
  it('is the first step of npm test, before lint and every suite', () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts['test']).toMatch(/^bash scripts\/test-prerequisites\.sh && npm run lint && /);
  });

  it('does nothing when every tool is there', () => {
    const r = run(machine({ tools: TOOLS }));
    expect([r.status, r.stdout, r.stderr]).toEqual([0, '', '']);
    expect(r.calls.filter((c) => !c.startsWith('id'))).toEqual([]);
  });

  it('accepts upstream Alertmanager\'s binary name', () => {
    const r = run(machine({ tools: ['prometheus', 'promtool', 'alertmanager', 'amtool'] }));
    expect(r.status).toBe(0);
  });

  it('stops with one line naming the packages when there is no apt-get', () => {
    const r = run(machine({ tools: ['prometheus', 'promtool'], uid: 0 }));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([
      'npm test: the alert and incident suites need promtool, prometheus, amtool and alertmanager: install them (Debian/Ubuntu: apt-get install prometheus-alertmanager), then run it again',
    ]);
  });

  it.each([
    ['absent', 'none'],
    ['asking a password', 'password'],
  ] as const)('stops with one line when it is not root and sudo is %s', (_how, sudo) => {
    const r = run(machine({ sudo, apt: 'installs' }));
    expect(r.status).toBe(1);
    expect(lines(r.stderr)).toEqual([
      'npm test: the alert and incident suites need packages prometheus prometheus-alertmanager: run `sudo apt-get install prometheus prometheus-alertmanager` (this user cannot), then run it again',
    ]);
    expect(r.calls.filter((c) => c.startsWith('apt-get'))).toEqual([]);
  });

  it('stops at once when kubectl is missing, installing nothing', () => {
    const r = run(machine({ kubectl: false, sudo: 'passwordless', apt: 'installs' }));
    expect(r.status).toBe(1);
    expect(lines(r.stderr)).toEqual([
      'npm test: install kubectl (https://kubernetes.io/docs/tasks/tools/) and the Debian packages prometheus prometheus-alertmanager (apt-get install prometheus prometheus-alertmanager), then run it again',
    ]);
    expect(r.calls.filter((c) => c.startsWith('apt-get') || c.startsWith('sudo'))).toEqual([]);
  });

  it('installs the packages with passwordless sudo, services held back by policy-rc.d', () => {
    const m = machine({ tools: ['prometheus', 'promtool'], sudo: 'passwordless', apt: 'installs' });
    const r = run(m);
    expect(r.status, r.stderr).toBe(0);
    expect(lines(r.stderr)).toEqual(['npm test: installing prometheus-alertmanager with apt-get (the alert and incident suites run them)']);
    const steps = r.calls.filter((c) => c.startsWith('sudo') || c.startsWith('apt-get'));
    const policyWritten = existsSync('/usr/sbin/policy-rc.d') ? [] : ['policy on', 'policy off'];
    const named = steps.map((c) =>
      c.includes('policy-rc.d') && c.includes('exit 101') ? 'policy on' : c.includes('rm -f /usr/sbin/policy-rc.d') ? 'policy off' : c,
    );
    const expected = [
      'sudo -n true',
      ...policyWritten.slice(0, 1),
      'sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq',
      'apt-get update -qq',
      'sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager',
      'apt-get install -y -qq --no-install-recommends prometheus-alertmanager',
      ...policyWritten.slice(1),
    ];
    expect(named).toEqual(expected);
  });

  it('stops with one line when apt-get fails, and when it installs but the tools are still missing', () => {
    const failed = run(machine({ sudo: 'passwordless', apt: 'fails' }));
    expect(failed.status).toBe(1);
    expect(lines(failed.stderr).at(-1)).toBe('npm test: apt-get could not install prometheus prometheus-alertmanager (its error is above): install them, then run it again');

    const m = machine({ sudo: 'passwordless', apt: 'installs nothing' });
    const empty = run(m);
    expect(empty.status).toBe(1);
    expect(lines(empty.stderr).at(-1)).toBe(
      `npm test: apt-get installed prometheus prometheus-alertmanager, yet the tools of prometheus prometheus-alertmanager are not on PATH (${m.bin}): put them there, then run it again`,
    );
  });
});
