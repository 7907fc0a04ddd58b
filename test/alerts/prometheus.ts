// Starts a real Prometheus (Debian's `prometheus` package) on a loopback port for tests: 1 s scrape
// and evaluation, the given targets as job `imagescan-operator`, optional rule files and
// Alertmanager. Fails (never skips) with an install hint when the binary is missing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import type { ResultPromise } from 'execa';
import { stringify } from 'yaml';

export const PROMETHEUS_INSTALL_HINT =
  'prometheus is not installed: run `apt-get install prometheus prometheus-alertmanager` (Debian/Ubuntu; npm test does it where it can)';

/** A free loopback TCP port (bound and released; fine for tests on one machine). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `url` until it answers 200; throws with the server's output when it exits or times out. */
export async function waitUntilReady(url: string, timeoutMs: number, server: Pick<SpawnedServer, 'output' | 'exited'>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server.exited()) throw new Error(`the server for ${url} exited before it was ready\n${server.output()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs} ms\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface SpawnedServer {
  child: ResultPromise;
  /** The last 20 kB of its stdout and stderr (plus the install hint when the binary is missing). */
  output: () => string;
  exited: () => boolean;
}

/** Runs a long-lived binary with its output kept for error messages; missing binary → hint. */
export function spawnServer(binary: string, args: string[], hint: string): SpawnedServer {
  let output = '';
  let exited = false;
  const child = execa(binary, args, { reject: false, buffer: false, stdin: 'ignore', forceKillAfterDelay: 5_000 });
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  void child.then((result) => {
    exited = true;
    if (result.code === 'ENOENT') output += `\n${hint}`;
  });
  return { child, output: () => output, exited: () => exited };
}

/** Stops a child started by spawnServer: SIGTERM, then SIGKILL after 5 s. */
export async function stopServer(child: ResultPromise): Promise<void> {
  if (child.exitCode !== null || child.killed) {
    await child;
    return;
  }
  child.kill('SIGTERM');
  await child;
}

/**
 * spawnServer, then waits until `readyUrl` answers; the returned stop() ends the server and removes
 * `dir`. A server that never gets ready is stopped (and `dir` removed) before the error is thrown.
 */
export async function startReadyServer(binary: string, args: string[], dir: string, readyUrl: string): Promise<() => Promise<void>> {
  const server = spawnServer(binary, args, PROMETHEUS_INSTALL_HINT);
  const stop = async (): Promise<void> => {
    await stopServer(server.child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilReady(readyUrl, 30_000, server);
  } catch (err) {
    await stop();
    throw err;
  }
  return stop;
}

export interface PrometheusSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PrometheusAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
}

export interface RunningPrometheus {
  url: string;
  /** Instant query; throws on a PromQL error. */
  query(expr: string): Promise<PrometheusSample[]>;
  /** Active (pending or firing) alerts. */
  alerts(): Promise<PrometheusAlert[]>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** host:port of each /metrics target. */
  targets: string[];
  /** Job name of the targets (the alerts expect `imagescan-operator`). */
  jobName?: string;
  /** Rule files' contents (e.g. rulesWithShortFor('1s')). */
  rules?: string[];
  /** http://host:port of an Alertmanager. */
  alertmanagerUrl?: string;
  /**
   * Scrape over HTTPS with this bearer token, not verifying the certificate: what the monitoring
   * component's ServiceMonitor configures for the operator's secure metrics. Plain HTTP without.
   */
  bearerToken?: string;
}

/** The scrape settings a ServiceMonitor with scheme https, bearerTokenFile and insecureSkipVerify renders. */
function secureScrape(dir: string, token: string | undefined): Record<string, unknown> {
  if (token === undefined) return {};
  const tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  return { scheme: 'https', authorization: { type: 'Bearer', credentials_file: tokenFile }, tls_config: { insecure_skip_verify: true } };
}

/** Starts Prometheus and resolves when it is ready; reject with its log (or the install hint). */
export async function startPrometheus(opts: PrometheusOptions): Promise<RunningPrometheus> {
  const dir = mkdtempSync(path.join(tmpdir(), 'imagescan-prometheus-'));
  const ruleFiles = (opts.rules ?? []).map((text, i) => {
    const file = path.join(dir, `rules-${i}.yaml`);
    writeFileSync(file, text);
    return file;
  });
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: ruleFiles,
    ...(opts.alertmanagerUrl === undefined
      ? {}
      : { alerting: { alertmanagers: [{ static_configs: [{ targets: [new URL(opts.alertmanagerUrl).host] }] }] } }),
    scrape_configs: [{ job_name: opts.jobName ?? 'imagescan-operator', static_configs: [{ targets: opts.targets }], ...secureScrape(dir, opts.bearerToken) }],
  };
  writeFileSync(path.join(dir, 'prometheus.yml'), stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const stop = await startReadyServer(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // Notify Alertmanager on every evaluation instead of once a minute.
      '--rules.alert.resend-delay=1s',
      '--log.level=warn',
    ],
    dir,
    `${url}/-/ready`,
  );

  async function api<T>(pathAndQuery: string): Promise<T> {
    const res = await fetch(`${url}${pathAndQuery}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${pathAndQuery}: ${body.error ?? res.status}`);
    return body.data;
  }

  return {
    url,
    query: async (expr) => (await api<{ result: PrometheusSample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
    alerts: async () => (await api<{ alerts: PrometheusAlert[] }>('/api/v1/alerts')).alerts,
    stop,
  };
}
