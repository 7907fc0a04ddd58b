import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isWrite, startFakeApiServer } from '../e2e/fake-apiserver/index.js';
import type { FakeApiServer } from '../e2e/fake-apiserver/index.js';
import { getEndpoint } from '../e2e/operator-process.js';
import { loadConfig } from './config.js';
import { buildOperator, rescanIntervalMs, SBOM_FOLDER } from './operator.js';

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

  it('runs its memory housekeeping on a standby too: the SBOM of a digest nothing runs is removed there', async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-operator-'));
    api = await startFakeApiServer({});
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'] });
    // Another replica holds the Lease for the whole test, so this one stays a standby.
    const now = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    api.objects.create({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { namespace: 'imagescan-system', name: 'imagescan-operator' },
      spec: { holderIdentity: 'the-leader', leaseDurationSeconds: 3600, acquireTime: now, renewTime: now },
    });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(api.kubeconfigPath);
    const cacheDir = path.join(work, 'cache');
    const config = loadConfig(
      ['--trivy-path', stub, '--trivy-cache-dir', cacheDir, '--metrics-address', '127.0.0.1:0', '--leader-elect=true', '--identity', 'standby', '--leader-election-namespace', 'imagescan-system', '--kubeconfig', api.kubeconfigPath],
      {},
    );
    const lines: { msg?: string; leading?: boolean }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg?: string; leading?: boolean }) });
    const operator = buildOperator(config, { logger, kubeConfig, trivyEnv: { TMPDIR: work }, housekeepingMs: 200 });
    await operator.start();
    try {
      // After the first timed housekeeping (the start's own prune, asynchronous, is over by then):
      // only a later one can remove what appears now.
      await until(() => (lines.some((l) => l.msg === 'housekeeping done') ? true : undefined), 10_000);
      const before = lines.filter((l) => l.msg === 'housekeeping done').length;
      const stem = path.join(cacheDir, SBOM_FOLDER, `sha256-${'e'.repeat(64)}`);
      mkdirSync(path.dirname(stem), { recursive: true });
      writeFileSync(`${stem}.cdx.json`, '{"bomFormat":"CycloneDX"}');
      writeFileSync(`${stem}.meta.json`, JSON.stringify({ digest: `sha256:${'e'.repeat(64)}`, reference: 'r', artifactName: 'r', createdAt: now }));
      await until(() => (existsSync(`${stem}.cdx.json`) || existsSync(`${stem}.meta.json`) ? undefined : true), 10_000);
      // The pass that removed them logs its line once it is over.
      await until(() => (lines.filter((l) => l.msg === 'housekeeping done').length > before ? true : undefined), 10_000);
      const housekeeping = lines.filter((l) => l.msg === 'housekeeping done');
      expect(housekeeping.every((l) => l.leading === false)).toBe(true);
      expect(lines.some((l) => l.msg === 'became leader')).toBe(false);
      expect(api.requests().filter((r) => isWrite(r) && r.resource !== 'leases')).toEqual([]);
    } finally {
      await operator.stop();
    }
  });

  it('derives the freshness window from the rescan schedule', () => {
    expect(rescanIntervalMs('0 */12 * * *')).toBe(12 * 3_600_000);
    expect(rescanIntervalMs('*/30 * * * *')).toBe(30 * 60_000);
  });
});
