// Shared rig for the reliability suites: the fake API server, the operator as its own process (compiled
// JavaScript, see operator-build.ts), and the stub Trivy behind a small wrapper script (the operator
// gives Trivy a clean environment, so the stub's TRIVY_STUB_* settings cannot come from the operator's;
// the wrapper sets them and `exec`s the stub, so the pid the stub logs is the pid the operator spawned). Everything lives in one temp folder whose
// `tmp/` is the operator's TMPDIR, so leftover scan and credential folders can be asserted on.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeApiServer } from '../fake-apiserver/index.js';
import type { FakeApiServer, FakeApiServerOptions } from '../fake-apiserver/index.js';
import { repoRoot } from '../operator-process.js';
import type { LogLine, OperatorProcess } from '../operator-process.js';
import { compiledOperator, startCompiledOperator } from './operator-build.js';
import { writeTrivyWrapper } from '../../test/trivy-stub/stub-harness.js';

export { eventually } from '../operator-process.js';
export type { LogLine, OperatorProcess } from '../operator-process.js';

export const REPORTS = 'imagescanreports.imagescan.dev';
export const OPERATOR_SA = 'system:serviceaccount:imagescan-system:imagescan-operator';
export const fixturesDir = path.resolve(repoRoot, 'test/fixtures/trivy');
const stubScript = path.join(repoRoot, 'test/trivy-stub/trivy-stub.mjs');

export interface ReportLike {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { digest?: string; image?: string; repository?: string };
  status?: {
    phase?: string;
    lastScanTime?: string;
    message?: string;
    team?: string;
    workloads?: { kind: string; name: string }[];
    summary?: Record<string, number>;
    vulnerabilities?: unknown[];
    vulnerabilitiesOmitted?: number;
  };
}

/** A stub mapping entry (see test/trivy-stub/README.md); fixture paths are absolute here. */
export interface StubEntry {
  fixture?: string;
  mode?: 'ok' | 'hang' | 'fail' | 'garbage' | 'huge' | 'empty' | 'nofile';
  fatal?: string;
  sleepMs?: number;
  hugeMb?: number;
  requireAuth?: { username: string; password: string };
}

export interface StubEvent {
  event: 'start' | 'end' | 'grandchild';
  pid: number;
  t: number;
  argv?: string[];
  /** Every variable name the stub received (never values). */
  envNames?: string[];
  registries?: string[];
  exitCode?: number;
  mappingKey?: string;
  mode?: string;
  grandchildPid?: number;
}

export interface Rig {
  readonly api: FakeApiServer;
  readonly work: string;
  /** The operators' TMPDIR. */
  readonly tmp: string;
  readonly cacheDir: string;
  /** Every operator started so far (for log assertions). */
  readonly operators: OperatorProcess[];
  /** Replaces the stub's mapping (re-read by the stub on every run). */
  setStubMap(map: Record<string, string | StubEntry>): void;
  /** Starts the operator with the rig's Trivy, cache, TMPDIR and fast test settings plus `args`. */
  start(options?: { args?: string[]; kubeconfig?: string; env?: Record<string, string> }): OperatorProcess;
  reports(namespace?: string): ReportLike[];
  stubEvents(): StubEvent[];
  /** Pids of stub runs that are still running (alive and still the stub, not a reused pid). */
  liveStubPids(): number[];
  /** Folders the operator left in its TMPDIR (the runner's per-scan folders are `imagescan-*`). */
  leftoverTempEntries(): string[];
  /** Every operator log line of this rig, as text. */
  allLogText(): string;
  close(): Promise<void>;
}

/** The default clean report (a small real-world Go image). */
export const CLEAN_FIXTURE = path.join(fixturesDir, 'real-world/steadybit-checkout-go-main.json');
export const NGINX_FIXTURE = path.join(fixturesDir, 'real-world/trustdsai-nginx-1.19.json');

export async function startRig(apiOptions: FakeApiServerOptions = {}): Promise<Rig> {
  const work = mkdtempSync(path.join(tmpdir(), 'imagescan-rel-'));
  const tmp = path.join(work, 'tmp');
  const cacheDir = path.join(work, 'cache');
  mkdirSync(tmp);
  const stubLog = path.join(work, 'trivy-stub.jsonl');
  const stubMap = path.join(work, 'stub-map.json');
  writeFileSync(stubMap, JSON.stringify({ default: CLEAN_FIXTURE }));
  const trivyPath = writeTrivyWrapper(work, { TRIVY_STUB_LOG: stubLog, TRIVY_STUB_MAP: stubMap }, [process.execPath, stubScript]);
  const mainJs = await compiledOperator();
  const api = await startFakeApiServer({ bookmarkIntervalMs: 500, ...apiOptions });
  const operators: OperatorProcess[] = [];

  const stubEvents = (): StubEvent[] => {
    if (!existsSync(stubLog)) return [];
    return readFileSync(stubLog, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as StubEvent);
  };

  return {
    api,
    work,
    tmp,
    cacheDir,
    operators,
    setStubMap(map) {
      writeFileSync(stubMap, JSON.stringify(map));
    },
    start(options = {}) {
      const args = [
        '--kubeconfig', options.kubeconfig ?? api.kubeconfigPath,
        '--trivy-path', trivyPath,
        '--trivy-cache-dir', cacheDir,
        '--leader-elect=false',
        '--metrics-address', '127.0.0.1:0',
        '--rescan-jitter', '0s',
        ...(options.args ?? []),
      ];
      const operator = startCompiledOperator(mainJs, args, { ...options.env, TMPDIR: tmp });
      operators.push(operator);
      return operator;
    },
    reports(namespace) {
      return api.objects.list(REPORTS, namespace) as ReportLike[];
    },
    stubEvents,
    liveStubPids() {
      return [...new Set(stubEvents().map((e) => e.pid))].filter(isStubProcess);
    },
    leftoverTempEntries() {
      return readdirSync(tmp);
    },
    allLogText() {
      return operators.map((o) => `${o.lines.map((l) => JSON.stringify(l)).join('\n')}\n${o.rawOutput.join('\n')}`).join('\n');
    },
    async close() {
      for (const operator of operators) await operator.kill9();
      // Only our own stub runs (checked by command line: an old pid may belong to someone else by now).
      for (const pid of new Set(stubEvents().map((e) => e.pid))) if (isStubProcess(pid)) process.kill(pid, 'SIGKILL');
      await api.stop();
      rmSync(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    },
  };
}

/** True while a process with this pid exists (signal 0 checks without signalling; EPERM = exists). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True while `pid` is alive and is a stub Trivy run (its command line names the stub script). */
export function isStubProcess(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(stubScript);
  } catch {
    return false;
  }
}

/** Resolves after `ms` (used only for random kill moments, never to wait for state). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes a Trivy JSON report with `count` vulnerabilities (real field names) and returns its path. */
export function writeSyntheticReport(file: string, count: number, opts: { artifact?: string; longText?: boolean } = {}): string {
  const severities = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'];
  const vulns = Array.from({ length: count }, (_, i) => {
    const v: Record<string, unknown> = {
      VulnerabilityID: `CVE-2024-${String(10000 + i)}`,
      PkgName: `pkg-${i % 997}`,
      InstalledVersion: `1.${i % 50}.0`,
      Severity: severities[i % severities.length],
      Title: `Synthetic vulnerability ${i}`,
      PrimaryURL: `https://avd.aquasec.com/nvd/cve-2024-${String(10000 + i)}`,
    };
    if (i % 3 !== 0) v.FixedVersion = `1.${i % 50}.1`;
    if (opts.longText === true && i % 100 === 0) {
      // Longer than the CRD allows for these fields: the operator must shorten them, not get a 422.
      v.Title = `Ünïcødé ☃ ${'very long title '.repeat(200)}`;
      v.PkgName = `pkg-${'x'.repeat(400)}`;
      v.InstalledVersion = `1.0.0+${'build.'.repeat(80)}`;
      v.FixedVersion = `2.0.0, ${'3.0.0, '.repeat(150)}`;
      v.PrimaryURL = `https://example.com/${'a'.repeat(1500)}`;
    }
    return v;
  });
  const report = {
    SchemaVersion: 2,
    ArtifactName: opts.artifact ?? 'registry.example.com/synthetic/app',
    ArtifactType: 'container_image',
    Metadata: { OS: { Family: 'debian', Name: '12.5' } },
    Results: [{ Target: 'synthetic (debian 12.5)', Class: 'os-pkgs', Type: 'debian', Vulnerabilities: vulns }],
  };
  writeFileSync(file, JSON.stringify(report));
  return file;
}

/** The vulnerabilities of a raw Trivy report file, counted independently of the operator's parser. */
export function rawVulnerabilityCount(file: string): number {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as { Results?: { Vulnerabilities?: unknown[] }[] };
  return (raw.Results ?? []).reduce((n, r) => n + (r.Vulnerabilities?.length ?? 0), 0);
}

/** Matches a log line by its message. */
export function msg(text: string): (line: LogLine) => boolean {
  return (line) => line.msg === text;
}
