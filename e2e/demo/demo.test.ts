// `npm run demo` as a user runs it: it must print the reports within a minute, with the counts of the
// recorded Trivy reports, and Ctrl-C (SIGINT to the whole process group, as a terminal sends it) or a
// SIGTERM must stop everything: exit code 0, no process left, the temporary directory gone.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { getEndpoint, repoRoot } from '../operator-process.js';

const run = promisify(execFile);
const fixtures = path.resolve(repoRoot, 'test/fixtures/trivy');

// What the demo's cluster runs, written down here independently of scripts/demo-cluster.ts:
// namespace, image as the pod spec writes it, and the recorded Trivy report of that image.
const EXPECTED = [
  { namespace: 'payments', image: 'nginx:1.19', fixture: 'real-world/trustdsai-nginx-1.19.json' },
  { namespace: 'platform', image: 'nginx:1.19', fixture: 'real-world/trustdsai-nginx-1.19.json' },
  { namespace: 'payments', image: 'alpine:3.19', fixture: 'real-world/trustdsai-alpine-3.19.json' },
  { namespace: 'search', image: 'redis:7', fixture: 'real-world/trivyweb-redis-7.json' },
  { namespace: 'search', image: 'bkimminich/juice-shop:v10.2.0', fixture: 'real-world/securecodebox-juice-shop-v10.2.0.json' },
  { namespace: 'platform', image: 'ghcr.io/steadybit/checkout-go:main', fixture: 'real-world/steadybit-checkout-go-main.json' },
  { namespace: 'platform', image: 'ghcr.io/steadybit/hot-deals:main', fixture: 'real-world/steadybit-hot-deals-main.json' },
];

/** Severity counts and fixable count straight from the raw Trivy JSON. */
function counts(fixture: string): { critical: number; high: number; medium: number; low: number; fixable: number } {
  const raw = JSON.parse(readFileSync(path.join(fixtures, fixture), 'utf8')) as { Results?: { Vulnerabilities?: { Severity: string; FixedVersion?: string }[] }[] };
  const vulns = (raw.Results ?? []).flatMap((r) => r.Vulnerabilities ?? []);
  const n = (s: string): number => vulns.filter((v) => v.Severity === s).length;
  return { critical: n('CRITICAL'), high: n('HIGH'), medium: n('MEDIUM'), low: n('LOW'), fixable: vulns.filter((v) => (v.FixedVersion ?? '') !== '').length };
}

interface Demo {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | string>;
  waitFor: (text: string, timeoutMs: number) => Promise<void>;
}

/** Starts a command in its own process group (so the test can send Ctrl-C to all of it, as a terminal does). */
function startDemo(command: string, args: string[]): Demo {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('IMAGESCAN_')) env[k] = v;
  const child = spawn(command, args, { cwd: repoRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listeners: (() => void)[] = [];
  const onData = (chunk: Buffer): void => {
    out += chunk.toString();
    for (const l of [...listeners]) l();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const waitFor = (text: string, timeoutMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      if (out.includes(text)) return resolve();
      const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms; output:\n${out}`)), timeoutMs);
      const check = (): void => {
        if (out.includes(text)) {
          clearTimeout(timer);
          listeners.splice(listeners.indexOf(check), 1);
          resolve();
        }
      };
      listeners.push(check);
      void exited.then((code) => {
        clearTimeout(timer);
        if (!out.includes(text)) reject(new Error(`demo exited (${String(code)}) before "${text}"; output:\n${out}`));
      });
    });
  return { child, output: () => out, exited, waitFor };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function groupAlive(pgid: number): boolean {
  return alive(-pgid);
}

/** Whether the process group is gone within `ms` (tsx's esbuild helper exits a moment after its parent). */
async function groupGoneWithin(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** Pids whose command line mentions `text` (Linux /proc; an empty list elsewhere). */
function processesMentioning(text: string): number[] {
  if (!existsSync('/proc/self/cmdline')) return [];
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function exitWithin(demo: Demo, ms: number): Promise<number | string> {
  return Promise.race([demo.exited, new Promise<string>((resolve) => setTimeout(() => resolve(`still running after ${ms} ms`), ms))]);
}

interface Printed {
  operatorPid: number;
  kubeconfig: string;
  workDir: string;
  metricsUrl: string;
  /** The token the printed curl sends. */
  metricsToken: string;
  rows: Map<string, string[]>;
}

/** Reads what the demo printed: the operator pid, the kubeconfig, the metrics URL and the report table. */
function parsePrinted(output: string): Printed {
  const operatorPid = Number(/Operator: pid (\d+)/.exec(output)?.[1]);
  const kubeconfig = /export KUBECONFIG=(\S+)/.exec(output)?.[1] ?? '';
  const metricsUrl = /Metrics:\s+(https:\/\/\S+)\/metrics/.exec(output)?.[1] ?? '';
  const metricsToken = /curl -sk -H 'Authorization: Bearer (\S+)'/.exec(output)?.[1] ?? '';
  const lines = output.split('\n');
  const start = lines.findIndex((l) => /^NAMESPACE\s+NAME\s+IMAGE\s+CRITICAL\s+HIGH\s+MEDIUM\s+LOW\s+FIXABLE\s+PHASE/.test(l));
  expect(start, `no report table in:\n${output}`).toBeGreaterThanOrEqual(0);
  const rows = new Map<string, string[]>();
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    const cells = line.trim().split(/\s+/);
    rows.set(`${cells[0] ?? ''} ${cells[2] ?? ''}`, cells);
  }
  return { operatorPid, kubeconfig, workDir: path.dirname(kubeconfig), metricsUrl, metricsToken, rows };
}

describe('npm run demo', () => {
  let demo: Demo | undefined;

  afterEach(() => {
    // Only if a test failed half-way: do not leave the demo running.
    if (demo?.child.pid !== undefined && groupAlive(demo.child.pid)) process.kill(-demo.child.pid, 'SIGKILL');
    demo = undefined;
  });

  it('prints the reports within a minute and stops cleanly on Ctrl-C', async () => {
    const started = Date.now();
    demo = startDemo('npm', ['run', 'demo', '--', '--scanner', 'stub']);
    await demo.waitFor('Press Ctrl-C to stop.', 60_000);
    expect(Date.now() - started).toBeLessThan(60_000);
    const output = demo.output();
    expect(output).toMatch(/Scanner:\s+stub Trivy/);
    const printed = parsePrinted(output);

    // Every expected (namespace, image) is listed once, Scanned, with the fixture's counts.
    expect([...printed.rows.keys()].sort()).toEqual(EXPECTED.map((e) => `${e.namespace} ${e.image}`).sort());
    for (const e of EXPECTED) {
      const want = counts(e.fixture);
      const cells = printed.rows.get(`${e.namespace} ${e.image}`) ?? [];
      expect(cells.slice(3, 9), `${e.namespace} ${e.image}`).toEqual([
        String(want.critical),
        String(want.high),
        String(want.medium),
        String(want.low),
        String(want.fixable),
        'Scanned',
      ]);
    }
    // One Trivy scan per distinct digest, although nginx runs in two namespaces.
    const distinct = new Set(EXPECTED.map((e) => e.image)).size;
    expect(output).toContain(`${EXPECTED.length} reports Scanned, 0 Failed`);
    expect(output).toContain(`; ${distinct} Trivy scans for ${distinct} distinct digests`);
    // The demo shows both kinds: images with fixable CRITICALs and a clean one.
    const criticals = EXPECTED.map((e) => counts(e.fixture).critical);
    expect(criticals.some((c) => c > 0)).toBe(true);
    expect(criticals).toContain(0);

    // What it printed works while it runs: the kubeconfig for kubectl, and the metrics URL.
    const { stdout } = await run('kubectl', ['get', 'isr', '-A', '-o', 'wide'], { env: { ...process.env, KUBECONFIG: printed.kubeconfig } });
    expect(stdout).toMatch(/DIGEST\s+TEAM/);
    expect(stdout).toMatch(/hot-deals:main.*\sgrowth\s*$/m);
    // Secure metrics, as in a cluster: refused without the token, served with the printed one.
    expect((await getEndpoint(`${printed.metricsUrl}/metrics`)).status).toBe(401);
    const metrics = await getEndpoint(`${printed.metricsUrl}/metrics`, { token: printed.metricsToken });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^imagescan_image_vulnerabilities\{namespace="payments",.*image="nginx:1.19".*severity="CRITICAL"/m);
    expect(alive(printed.operatorPid)).toBe(true);

    // Ctrl-C: SIGINT to the whole foreground process group.
    const pgid = demo.child.pid ?? 0;
    process.kill(-pgid, 'SIGINT');
    expect(await exitWithin(demo, 15_000)).toBe(0);
    expect(demo.output()).toContain('Stopped.');
    expect(alive(printed.operatorPid)).toBe(false);
    expect(await groupGoneWithin(pgid, 3000)).toBe(true);
    expect(processesMentioning(printed.workDir)).toEqual([]);
    expect(existsSync(printed.workDir)).toBe(false);
  }, 90_000);

  it('stops the operator it started on SIGTERM to the demo alone', async () => {
    demo = startDemo(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', '--scanner', 'stub']);
    await demo.waitFor('Press Ctrl-C to stop.', 60_000);
    const printed = parsePrinted(demo.output());
    expect(printed.rows.size).toBe(EXPECTED.length);
    expect(alive(printed.operatorPid)).toBe(true);

    demo.child.kill('SIGTERM');
    expect(await exitWithin(demo, 15_000)).toBe(0);
    expect(alive(printed.operatorPid)).toBe(false);
    expect(await groupGoneWithin(demo.child.pid ?? 0, 3000)).toBe(true);
    expect(processesMentioning(printed.workDir)).toEqual([]);
    expect(existsSync(printed.workDir)).toBe(false);
  }, 90_000);
});
