// User story: a platform team scales scanning out to a Trivy server (manifests/components/trivy-server).
// The operator then sends every scan to the server with its token in the environment only, keeps
// just the client's Java DB itself, and is ready only while the server answers /healthz.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../fake-apiserver/index.js';
import type { FakeApiServer } from '../fake-apiserver/index.js';
import { eventually, getEndpoint, startOperatorProcess, stubScanInvocations, writeTrivyStubWrapper } from '../operator-process.js';
import type { OperatorProcess } from '../operator-process.js';

const TOKEN = 'trivy-server-token-e2e-value';

interface ReportLike {
  spec?: { image?: string };
  status?: { phase?: string; scanner?: { version?: string; dbUpdatedAt?: string } };
}

describe('scans go to a Trivy server', () => {
  let api: FakeApiServer;
  let operator: OperatorProcess;
  let work: string;
  let trivyServer: http.Server;
  let serverUrl = '';
  const server = { healthy: true, probes: 0 };

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-server-mode-'));
    // Stands in for `trivy server`: only the two unauthenticated endpoints the operator probes.
    trivyServer = http.createServer((req, res) => {
      server.probes++;
      if (req.url === '/healthz') res.writeHead(server.healthy ? 200 : 503).end(server.healthy ? 'ok' : 'unavailable');
      else if (req.url === '/version') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Version: '0.74.0', VulnerabilityDB: { Version: 2, UpdatedAt: '2026-11-26T06:00:00Z' } }));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => trivyServer.listen(0, '127.0.0.1', resolve));
    serverUrl = `http://127.0.0.1:${(trivyServer.address() as AddressInfo).port}`;

    api = await startFakeApiServer({});
    api.seed.namespace('shop', { team: 'payments' });
    api.seed.node('node-1', { arch: 'amd64', os: 'linux' });
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'], replicas: 1, nodes: ['node-1'] });
    const wrapper = writeTrivyStubWrapper(work, { TRIVY_STUB_LOG: path.join(work, 'trivy.log') });
    operator = startOperatorProcess({
      args: ['--kubeconfig', api.kubeconfigPath, '--trivy-path', wrapper, '--trivy-cache-dir', path.join(work, 'cache'), '--trivy-server', serverUrl, '--leader-elect=false', '--metrics-address', '127.0.0.1:0'],
      env: { TMPDIR: work, IMAGESCAN_TRIVY_SERVER_TOKEN: TOKEN },
    });
  });

  afterAll(async () => {
    await operator?.stop();
    await api?.stop();
    await new Promise<void>((resolve) => (trivyServer ? trivyServer.close(() => resolve()) : resolve()));
    rmSync(work, { recursive: true, force: true });
  });

  it('sends the scan to the server with the token only in the environment, and downloads only the Java DB', async () => {
    const report = await eventually(
      () => (api.objects.list('imagescanreports.imagescan.dev', 'shop') as ReportLike[]).find((r) => r.status?.phase === 'Scanned'),
      30_000,
      'a Scanned report',
    );
    expect(report.spec?.image).toBe('nginx:1.19');

    const invocations = stubScanInvocations(path.join(work, 'trivy.log'));
    expect(invocations).toHaveLength(1);
    const argv = invocations[0]?.argv ?? [];
    expect(argv[argv.indexOf('--server') + 1]).toBe(serverUrl);
    expect(argv).toContain('--skip-java-db-update');
    expect(argv).not.toContain('--skip-db-update');
    expect(JSON.stringify(argv)).not.toContain(TOKEN);
    // The vulnerability DB is the server's: the operator never downloads one itself.
    const all = readFileSync(path.join(work, 'trivy.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event?: string; argv?: string[]; env?: string[] });
    const downloads = all.filter((e) => e.event === 'start' && (e.argv?.includes('--download-db-only') || e.argv?.includes('--download-java-db-only')));
    expect(downloads.map((d) => d.argv?.[1])).toEqual(['--download-java-db-only']);
    const scanStart = all.find((e) => e.event === 'start' && e.argv?.includes('--server'));
    expect(scanStart?.env).toContain('TRIVY_TOKEN');
    expect(operator.lines.some((l) => JSON.stringify(l).includes(TOKEN))).toBe(false);
  });

  it("exports the server's DB time (its GET /version), which TrivyDatabaseStale watches", async () => {
    // Secure metrics: the kubeconfig's admin token, which the fake API server authenticates.
    const text = (await getEndpoint(`${await operator.metricsUrl()}/metrics`, { token: 'admin' })).body;
    expect(text).toMatch(new RegExp(`^imagescan_trivy_db_updated_timestamp_seconds ${Date.parse('2026-11-26T06:00:00Z') / 1000}$`, 'm'));
  });

  it('is ready while the server answers /healthz, and not ready when it stops answering', async () => {
    const url = await operator.metricsUrl();
    expect((await getEndpoint(`${url}/readyz`)).status).toBe(200);
    server.healthy = false;
    // The operator probes /healthz every 30 s; wait for the probe that sees it down.
    const body = await eventually(
      async () => {
        const res = await getEndpoint(`${url}/readyz`);
        return res.status === 503 ? res.body : undefined;
      },
      45_000,
      'readiness to fail',
    );
    expect(body).toMatch(/Trivy server not reachable/);
    server.healthy = true;
  }, 60_000);
});
