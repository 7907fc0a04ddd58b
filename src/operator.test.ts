import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../e2e/fake-apiserver/index.js';
import type { FakeApiServer } from '../e2e/fake-apiserver/index.js';
import { getEndpoint } from '../e2e/operator-process.js';
import { loadConfig } from './config.js';
import { buildOperator, rescanIntervalMs } from './operator.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const stub = path.join(repoRoot, 'test/trivy-stub/trivy');

async function until<T>(check: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('buildOperator', () => {
  let api: FakeApiServer | undefined;
  let work: string | undefined;

  afterEach(async () => {
    await api?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it('builds without starting anything, then runs in-process against the fake API server and stops cleanly', async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-operator-'));
    api = await startFakeApiServer({});
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'] });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(api.kubeconfigPath);
    const config = loadConfig(
      ['--trivy-path', stub, '--trivy-cache-dir', path.join(work, 'cache'), '--metrics-address', '127.0.0.1:0', '--leader-elect=false', '--kubeconfig', api.kubeconfigPath],
      {},
    );
    const operator = buildOperator(config, { logger: pino({ level: 'silent' }), kubeConfig, trivyEnv: { TMPDIR: work } });

    // Built, not started: no port, no request to the API server, not ready.
    expect(operator.metricsServer()).toBeUndefined();
    expect(api.requests()).toEqual([]);
    expect(operator.readiness().ready).toBe(false);

    await operator.start();
    const url = operator.metricsServer()?.url ?? '';
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const report = await until(() => api?.objects.list('imagescanreports.imagescan.dev', 'shop').find((r) => (r as { status?: { phase?: string } }).status?.phase === 'Scanned'));
    expect(report).toBeDefined();
    await until(() => (operator.readiness().ready ? true : undefined));
    // Secure by default: the kubeconfig's admin token, reviewed by the API server, reads the metrics.
    expect((await getEndpoint(`${url}/metrics`)).status).toBe(401);
    const metrics = await getEndpoint(`${url}/metrics`, { token: 'admin' });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^imagescan_leader 1$/m);
    expect(metrics.body).toMatch(/^imagescan_scans_total\{result="success"\} 1$/m);

    await operator.stop();
    await expect(getEndpoint(`${url}/healthz`)).rejects.toThrow();
  });

  it('derives the freshness window from the rescan schedule', () => {
    expect(rescanIntervalMs('0 */12 * * *')).toBe(12 * 3_600_000);
    expect(rescanIntervalMs('*/30 * * * *')).toBe(30 * 60_000);
  });
});
