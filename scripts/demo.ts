// `npm run demo`: a fake cluster (the repo's fake API server, in this process), the operator as a child
// process against it, and kubectl to look at the result. Runs until Ctrl-C / SIGTERM, then stops the
// operator, the fake API server and removes its temporary directory.
//
//   npm run demo [-- --scanner auto|stub|trivy] [--wait <seconds>]
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type { FakeApiServer } from '../e2e/fake-apiserver/index.js';
import { DEMO_NAMESPACES, EXPECTED_REPORTS, seedDemoCluster, stubMapping } from './demo-cluster.js';
import { writeTrivyWrapper } from '../test/trivy-stub/stub-harness.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixturesRoot = path.resolve(repoRoot, 'test/fixtures/trivy');
const trivyStub = path.join(repoRoot, 'test/trivy-stub/trivy');
const run = promisify(execFile);
/** The bearer token of your kubeconfig's admin in the fake cluster; it also reads the secure /metrics. */
const ADMIN_TOKEN = 'demo-admin-token';

const USAGE = `usage: npm run demo [-- --scanner auto|stub|trivy] [--wait <seconds>]

  --scanner auto   real trivy when it is on PATH, else the stub (default; env IMAGESCAN_DEMO_SCANNER)
  --scanner stub   the stub Trivy replaying recorded reports from test/fixtures/trivy (offline)
  --scanner trivy  the real trivy on PATH (pulls the public images and the vulnerability DB)
  --wait <s>       how long to wait for the reports before showing them anyway
                   (default 60 with the stub, 600 with real Trivy: the first run downloads its DB)`;

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

interface Options {
  scanner: 'auto' | 'stub' | 'trivy';
  waitSeconds: number | undefined;
}

function parseOptions(): Options | number {
  let values;
  try {
    ({ values } = parseArgs({
      options: { scanner: { type: 'string' }, wait: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message.split('\n')[0] ?? ''}\n${USAGE}\n`);
    return 2;
  }
  if (values.help === true) {
    say(USAGE);
    return 0;
  }
  const scanner = values.scanner ?? process.env['IMAGESCAN_DEMO_SCANNER'] ?? 'auto';
  if (scanner !== 'auto' && scanner !== 'stub' && scanner !== 'trivy') {
    process.stderr.write(`demo: --scanner must be auto, stub or trivy, got ${JSON.stringify(scanner)}\n`);
    return 2;
  }
  let waitSeconds: number | undefined;
  if (values.wait !== undefined) {
    waitSeconds = Number(values.wait);
    if (!Number.isFinite(waitSeconds) || waitSeconds <= 0) {
      process.stderr.write(`demo: --wait must be a positive number of seconds, got ${JSON.stringify(values.wait)}\n`);
      return 2;
    }
  }
  return { scanner, waitSeconds };
}

/** The first executable called `name` on PATH, like `command -v`. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

interface Scanner {
  kind: 'stub' | 'trivy';
  path: string;
  cacheDir: string;
  /** The one line that says which scanner runs. */
  description: string;
}

async function chooseScanner(options: Options, work: string): Promise<Scanner | string> {
  const real = options.scanner === 'stub' ? undefined : onPath('trivy');
  if (options.scanner === 'trivy' && real === undefined) return '--scanner trivy: no trivy on PATH (https://trivy.dev to install it)';
  if (real !== undefined) {
    let version = 'unknown version';
    try {
      const { stdout } = await run(real, ['--version'], { timeout: 10_000 });
      version = /Version:\s*(\S+)/.exec(stdout)?.[1] ?? version;
    } catch {
      // The operator reports its own errors; the version is only for the banner.
    }
    // Kept between runs so only the first demo downloads the vulnerability DB (registries rate-limit it).
    const cacheDir = path.join(process.env['XDG_CACHE_HOME'] ?? path.join(homedir(), '.cache'), 'imagescan-operator-demo', 'trivy');
    mkdirSync(cacheDir, { recursive: true });
    return {
      kind: 'trivy',
      path: real,
      cacheDir,
      description: `real Trivy ${version} (${real}): pulls the public images and the DB over the network; cache ${cacheDir}`,
    };
  }
  if (!existsSync(fixturesRoot)) {
    return `the stub Trivy replays recorded reports from ${fixturesRoot}, which is missing from this clone: check it out again, or install trivy`;
  }
  const mapFile = path.join(work, 'trivy-stub-map.json');
  writeFileSync(mapFile, JSON.stringify(stubMapping(fixturesRoot), null, 2));
  // The operator runs Trivy with a small fixed environment (a system PATH, none of our variables), so a
  // wrapper names this Node and the mapping itself: the stub then runs wherever node is installed.
  const wrapper = writeTrivyWrapper(work, { TRIVY_STUB_MAP: mapFile }, [process.execPath, trivyStub]);
  return {
    kind: 'stub',
    path: wrapper,
    cacheDir: path.join(work, 'trivy-cache'),
    description: `stub Trivy (test/trivy-stub) replaying recorded Trivy reports, offline${options.scanner === 'auto' ? '; put trivy on PATH to scan for real' : ''}`,
  };
}

interface ReportView {
  metadata?: { name?: string; namespace?: string };
  spec?: { image?: string; digest?: string };
  status?: { phase?: string; message?: string; summary?: Record<string, number> };
}

function reports(api: FakeApiServer): ReportView[] {
  return api.objects.list('imagescanreports.imagescan.dev') as ReportView[];
}

function done(r: ReportView): boolean {
  return r.status?.phase === 'Scanned' || r.status?.phase === 'Failed';
}

/** A plain table like kubectl's, for machines without kubectl. */
function ownTable(list: ReportView[]): string {
  const header = ['NAMESPACE', 'NAME', 'IMAGE', 'CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'FIXABLE', 'PHASE'];
  const rows = list.map((r) => {
    const s = r.status?.summary;
    const n = (k: string): string => (s?.[k] === undefined ? '' : String(s[k]));
    return [r.metadata?.namespace ?? '', r.metadata?.name ?? '', r.spec?.image ?? '', n('critical'), n('high'), n('medium'), n('low'), n('fixable'), r.status?.phase ?? ''];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd((widths[i] ?? 0) + 3)).join('').trimEnd()).join('\n');
}

async function kubectlTable(kubeconfig: string, api: FakeApiServer): Promise<string> {
  try {
    const { stdout } = await run('kubectl', ['get', 'imagescanreports', '-A'], { env: { ...process.env, KUBECONFIG: kubeconfig }, timeout: 20_000 });
    return `$ kubectl get imagescanreports -A\n${stdout.trimEnd()}`;
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'kubectl is not installed' : `kubectl failed: ${(err as Error).message.split('\n')[0] ?? ''}`;
    return `(${reason}; the reports as kubectl would list them:)\n${ownTable(reports(api))}`;
  }
}

interface Operator {
  child: ChildProcess;
  exited: Promise<number | string>;
  metricsUrl: Promise<string | undefined>;
  /** Last lines of the log, for a failure message. */
  tail: string[];
  /** Trivy runs that finished (the operator's "scan finished" / "scan failed" lines). */
  scans: () => number;
  /** The last `trivy DB download failed` error, if any. */
  dbFailure: () => string | undefined;
}

function startOperator(scanner: Scanner, kubeconfig: string, work: string, log: WriteStream): Operator {
  // The caller's IMAGESCAN_* settings would change the demo; everything else is passed on.
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('IMAGESCAN_') && k !== 'KUBECONFIG') env[k] = v;
  }
  env['TMPDIR'] = work;
  // Node runs main.ts itself (no tsx CLI in between), so the pid we print is the operator's.
  const child = spawn(
    process.execPath,
    [
      '--import', 'tsx', path.join(repoRoot, 'src/main.ts'),
      '--kubeconfig', kubeconfig,
      '--trivy-path', scanner.path,
      '--trivy-cache-dir', scanner.cacheDir,
      '--leader-elect=false',
      '--metrics-address', '127.0.0.1:0',
      '--log-level', 'info',
    ],
    { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const tail: string[] = [];
  let scans = 0;
  let dbFailure: string | undefined;
  let resolveUrl: (url: string | undefined) => void = () => undefined;
  const metricsUrl = new Promise<string | undefined>((resolve) => {
    resolveUrl = resolve;
  });
  const onLine = (line: string): void => {
    log.write(`${line}\n`);
    tail.push(line);
    if (line.includes('"msg":"scan finished"') || line.includes('"msg":"scan failed"')) scans += 1;
    if (tail.length > 20) tail.shift();
    if (line.includes('"msg":"trivy DB download failed"')) {
      try {
        dbFailure = String((JSON.parse(line) as { err?: unknown }).err ?? 'unknown error').split('\n')[0];
      } catch {
        dbFailure = 'unknown error';
      }
    }
    if (line.includes('"metrics server listening"')) {
      try {
        const parsed = JSON.parse(line) as { url?: unknown; port?: unknown };
        resolveUrl(typeof parsed.url === 'string' ? parsed.url : `http://127.0.0.1:${String(parsed.port)}`);
      } catch {
        resolveUrl(undefined);
      }
    }
  };
  if (child.stdout) createInterface(child.stdout).on('line', onLine);
  if (child.stderr) createInterface(child.stderr).on('line', onLine);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      resolveUrl(undefined);
      resolve(code ?? signal ?? -1);
    });
    child.on('error', (err) => {
      tail.push(`cannot start the operator: ${err.message}`);
      resolveUrl(undefined);
      resolve(-1);
    });
  });
  return { child, exited, metricsUrl, tail, scans: () => scans, dbFailure: () => dbFailure };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main(): Promise<number> {
  const options = parseOptions();
  if (typeof options === 'number') return options;
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) {
    process.stderr.write(`demo: Node ${process.versions.node} is too old; run it with \`npm run demo\` (Node 24 from the node dev dependency)\n`);
    return 1;
  }

  const work = mkdtempSync(path.join(tmpdir(), 'imagescan-demo-'));
  const logFile = path.join(work, 'operator.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  let api: FakeApiServer | undefined;
  let operator: Operator | undefined;
  let stopping = false;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => {
    finish = resolve;
  });

  /** Stops the operator (SIGTERM, SIGKILL after 15 s), then the fake API server; removes the temp dir. */
  const shutdown = async (code: number, keepLog: boolean): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const hardStop = setTimeout(() => {
      process.stderr.write('demo: shutdown took too long; killing the operator\n');
      operator?.child.kill('SIGKILL');
      process.exit(1);
    }, 25_000);
    let exitCode = code;
    if (operator !== undefined && operator.child.exitCode === null && operator.child.signalCode === null) {
      operator.child.kill('SIGTERM');
      const killer = setTimeout(() => operator?.child.kill('SIGKILL'), 15_000);
      const result = await operator.exited;
      clearTimeout(killer);
      if (result !== 0 && result !== 'SIGTERM' && result !== 'SIGINT') {
        say(`The operator did not stop cleanly (${String(result)}).`);
        exitCode = exitCode === 0 ? 1 : exitCode;
        keepLog = true;
      }
    }
    await api?.stop();
    await new Promise<void>((resolve) => log.end(resolve));
    if (keepLog && existsSync(logFile)) {
      const kept = path.join(tmpdir(), `imagescan-demo-operator-${Date.now()}.log`);
      copyFileSync(logFile, kept);
      say(`Operator log kept at ${kept}`);
    }
    rmSync(work, { recursive: true, force: true });
    clearTimeout(hardStop);
    finish(exitCode);
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    // Ctrl-C reaches the whole process group (npm, this process and the operator) and npm relays it
    // again: repeats are expected and ignored.
    if (stopping) return;
    say(`\n${signal}: stopping the operator and the fake API server…`);
    void shutdown(0, false).then(() => say('Stopped.'));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  const fail = (message: string): void => {
    process.stderr.write(`demo: ${message}\n`);
    void shutdown(1, true);
  };

  void (async () => {
    const scanner = await chooseScanner(options, work);
    if (typeof scanner === 'string') return fail(scanner);
    if (stopping) return;

    // Imported only now, so a Ctrl-C while it loads already finds the signal handlers.
    const { startFakeApiServer } = await import('../e2e/fake-apiserver/index.js');
    if (stopping) return;
    const server = await startFakeApiServer({});
    // A signal during the start: shutdown() has already run without a server or an operator.
    if (stopping) return void (await server.stop());
    api = server;
    seedDemoCluster(api);
    // Yours, to look around with kubectl; the operator gets its own identity in the request log.
    const kubeconfig = api.kubeconfigFor('admin', { token: ADMIN_TOKEN, path: path.join(work, 'kubeconfig'), namespace: DEMO_NAMESPACES.payments });
    const operatorKubeconfig = api.kubeconfigFor('imagescan-operator', { path: path.join(work, 'operator-kubeconfig') });

    say('imagescan-operator demo');
    say(`  Cluster:  fake API server ${api.url}; namespaces payments, search, platform (label team=…); nodes amd64 and arm64`);
    say(`  Scanner:  ${scanner.description}`);
    operator = startOperator(scanner, operatorKubeconfig, work, log);
    say(`  Operator: pid ${String(operator.child.pid)}, log ${logFile}`);
    void operator.exited.then((code) => {
      if (!stopping) fail(`the operator exited (${String(code)}) before it was stopped; last log lines:\n  ${operator?.tail.slice(-5).join('\n  ') ?? ''}`);
    });

    const waitMs = (options.waitSeconds ?? (scanner.kind === 'stub' ? 60 : 600)) * 1000;
    say(`Waiting for ${EXPECTED_REPORTS.length} reports to be scanned (at most ${Math.round(waitMs / 1000)} s)…`);
    const started = Date.now();
    let lastProgress = '';
    let dbHint = false;
    for (;;) {
      if (stopping) return;
      const list = reports(api);
      const finishedCount = list.filter(done).length;
      if (list.length >= EXPECTED_REPORTS.length && finishedCount === list.length) break;
      const progress = `  ${finishedCount}/${EXPECTED_REPORTS.length} done`;
      if (progress !== lastProgress && finishedCount > 0 && scanner.kind === 'trivy') say(progress);
      lastProgress = progress;
      const dbFailure = operator.dbFailure();
      if (dbFailure !== undefined && !dbHint) {
        dbHint = true;
        say(`  Trivy cannot download its vulnerability DB (${dbFailure.slice(0, 200)}); the operator keeps retrying.`);
        say('  Without network, stop with Ctrl-C and run: npm run demo -- --scanner stub');
      }
      if (Date.now() - started > waitMs) {
        say(`Not every report is done after ${Math.round(waitMs / 1000)} s; showing them as they are (see the operator log).`);
        break;
      }
      await sleep(200);
    }
    const list = reports(api);
    const digests = new Set(list.map((r) => r.spec?.digest)).size;
    say(`${list.filter((r) => r.status?.phase === 'Scanned').length} reports Scanned, ${list.filter((r) => r.status?.phase === 'Failed').length} Failed after ${((Date.now() - started) / 1000).toFixed(1)} s; ${operator.scans()} Trivy scans for ${digests} distinct digests${list.every(done) ? ' (one scan per digest, however many namespaces run it)' : ''}.`);
    say();
    say(await kubectlTable(kubeconfig, api));
    for (const r of list.filter((x) => x.status?.phase === 'Failed')) {
      say(`  ${r.metadata?.namespace ?? ''}/${r.metadata?.name ?? ''}: ${r.status?.message ?? ''}`);
    }
    const sample = list.find((r) => r.metadata?.namespace === DEMO_NAMESPACES.payments && (r.status?.summary?.['critical'] ?? 0) > 0) ?? list[0];
    const sampleName = sample?.metadata?.name ?? '<name>';
    const metricsUrl = await Promise.race([operator.metricsUrl, sleep(5000).then(() => undefined)]);
    if (stopping) return;
    say();
    say('Look around (the fake cluster runs until Ctrl-C):');
    say(`  export KUBECONFIG=${kubeconfig}`);
    say('  kubectl get isr -A -o wide');
    say(`  kubectl -n payments get isr ${sampleName} -o yaml | less`);
    say(`  kubectl -n payments get events --field-selector type=Warning`);
    say('  kubectl -n payments describe deployment storefront');
    if (metricsUrl !== undefined) {
      // Secure metrics, as in a cluster: a token the API server accepts and RBAC lets get /metrics
      // (here the fake cluster's admin, from your kubeconfig), over HTTPS with a self-signed certificate.
      say(`Metrics:  ${metricsUrl}/metrics   (also /healthz, /readyz, which need no token)`);
      say(`  curl -sk -H 'Authorization: Bearer ${ADMIN_TOKEN}' ${metricsUrl}/metrics | grep 'severity="CRITICAL",fixable="true"'`);
    }
    say(`Operator log: ${logFile}`);
    say('Press Ctrl-C to stop.');
  })().catch((err: unknown) => fail(err instanceof Error ? (err.stack ?? err.message) : String(err)));

  return finished;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
