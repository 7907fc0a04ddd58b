// User story: the platform team serves the Trivy server over TLS (manifests/components/trivy-server-tls)
// with a certificate from a cluster-internal CA. The operator trusts that CA for its own health checks
// and hands it to Trivy, so the token never crosses the network in clear; without the CA it refuses
// the server instead of falling back to anything weaker.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../fake-apiserver/index.js';
import type { FakeApiServer } from '../fake-apiserver/index.js';
import { eventually, getEndpoint, startOperatorProcess, stubScanInvocations, writeTrivyStubWrapper } from '../operator-process.js';
import type { OperatorProcess } from '../operator-process.js';
import { makeTestCertificates } from '../../test/tls-certificates.js';

interface ReportLike {
  status?: { phase?: string; scanner?: { dbUpdatedAt?: string } };
}

describe('a Trivy server over https with a cluster CA', () => {
  let api: FakeApiServer;
  const operators: OperatorProcess[] = [];
  let work: string;
  let trivyServer: https.Server;
  let serverUrl = '';
  let caFile = '';

  const start = (extraArgs: string[]): OperatorProcess => {
    const wrapper = writeTrivyStubWrapper(work, { TRIVY_STUB_LOG: path.join(work, 'trivy.log') });
    const operator = startOperatorProcess({
      args: ['--kubeconfig', api.kubeconfigPath, '--trivy-path', wrapper, '--trivy-cache-dir', path.join(work, 'cache'), '--trivy-server', serverUrl, '--leader-elect=false', '--metrics-address', '127.0.0.1:0', ...extraArgs],
      env: { TMPDIR: work, IMAGESCAN_TRIVY_SERVER_TOKEN: 'token-e2e' },
    });
    operators.push(operator);
    return operator;
  };
  const readyz = async (operator: OperatorProcess): Promise<{ status: number; body: string }> => {
    const line = await operator.waitForLine((l) => l.msg === 'metrics server listening', 30_000);
    // The probe needs no token; the metrics address serves HTTPS with a self-signed certificate.
    const res = await getEndpoint(`${String(line.url)}/readyz`);
    return { status: res.status, body: res.body };
  };

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-https-server-'));
    const certs = makeTestCertificates(work, 'cluster');
    caFile = certs.caFile;
    trivyServer = https.createServer({ cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) }, (req, res) => {
      if (req.url === '/healthz') res.writeHead(200).end('ok');
      else if (req.url === '/version') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ Version: '0.74.0', VulnerabilityDB: { Version: 2, UpdatedAt: '2026-12-01T06:00:00Z' } }));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => trivyServer.listen(0, 'localhost', resolve));
    serverUrl = `https://localhost:${(trivyServer.address() as AddressInfo).port}`;
    api = await startFakeApiServer({});
    api.seed.namespace('shop', { team: 'payments' });
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'] });
  });

  afterAll(async () => {
    for (const o of operators) await o.stop();
    await api?.stop();
    await new Promise<void>((resolve) => (trivyServer ? trivyServer.close(() => resolve()) : resolve()));
    rmSync(work, { recursive: true, force: true });
  });

  it('is ready through the CA, learns the server DB over TLS, and hands the CA to Trivy', async () => {
    const operator = start(['--trivy-server-ca', caFile]);
    await eventually(async () => ((await readyz(operator)).status === 200 ? true : undefined), 30_000, '/readyz 200');
    const report = await eventually(
      () => (api.objects.list('imagescanreports.imagescan.dev', 'shop') as ReportLike[]).find((r) => r.status?.phase === 'Scanned'),
      30_000,
      'a Scanned report',
    );
    // Stamped from the server's /version, which only the CA-trusting probe could read.
    expect(report.status?.scanner?.dbUpdatedAt).toBe('2026-12-01T06:00:00Z');
    const [scan] = stubScanInvocations(path.join(work, 'trivy.log'));
    const argv = scan?.argv ?? [];
    expect(argv[argv.indexOf('--server') + 1]).toBe(serverUrl);
    expect(argv[argv.indexOf('--cacert') + 1]).toBe(caFile);
  });

  it('without the CA the server is not trusted: not ready, and says why', async () => {
    const operator = start(['--namespaces', 'nothing-here']);
    await eventually(async () => {
      const r = await readyz(operator);
      return r.status === 503 && r.body.includes('Trivy server not reachable') ? true : undefined;
    }, 30_000, '/readyz 503 naming the server');
  });
});
