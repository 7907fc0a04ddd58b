// The Trivy server probe over https with a private CA, against a real TLS server whose certificate a
// throwaway CA (made with openssl, as cert-manager's CA issuer would) signed for the Service name.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCertificates } from '../../test/tls-certificates.js';
import { fetchTrustingCa } from './server-fetch.js';

let dir = '';
let server: https.Server;
let base = '';

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'server-fetch-'));
  const cluster = makeTestCertificates(dir, 'cluster');
  makeTestCertificates(dir, 'other');
  server = https.createServer({ cert: readFileSync(cluster.certFile), key: readFileSync(cluster.keyFile) }, (req, res) => {
    if (req.url === '/healthz') return void res.end('ok');
    if (req.url === '/version') return void res.end(JSON.stringify({ Version: '0.74.0', VulnerabilityDB: { UpdatedAt: '2026-12-07T00:00:00Z' } }));
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, 'localhost', resolve));
  base = `https://localhost:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const signal = () => AbortSignal.timeout(5_000);

describe('fetchTrustingCa', () => {
  it('reaches an https server whose certificate the given CA signed', async () => {
    const fetchWithCa = fetchTrustingCa(path.join(dir, 'cluster-ca.crt'));
    expect((await fetchWithCa(`${base}/healthz`, { signal: signal() })).ok).toBe(true);
    const version = await fetchWithCa(`${base}/version`, { signal: signal() });
    expect(await version.json()).toEqual({ Version: '0.74.0', VulnerabilityDB: { UpdatedAt: '2026-12-07T00:00:00Z' } });
    expect((await fetchWithCa(`${base}/nothing`, { signal: signal() })).ok).toBe(false);
  });

  it('refuses the server when the CA file holds another CA, as the global fetch does without one', async () => {
    await expect(fetchTrustingCa(path.join(dir, 'other-ca.crt'))(`${base}/healthz`, { signal: signal() })).rejects.toThrow(/certificate/i);
    await expect(fetch(`${base}/healthz`, { signal: signal() })).rejects.toThrow();
  });

  it('reads the CA file at each request, so a rotated CA is trusted without a restart', async () => {
    const caFile = path.join(dir, 'rotating-ca.crt');
    writeFileSync(caFile, readFileSync(path.join(dir, 'other-ca.crt')));
    const fetchWithCa = fetchTrustingCa(caFile);
    await expect(fetchWithCa(`${base}/healthz`, { signal: signal() })).rejects.toThrow();
    writeFileSync(caFile, readFileSync(path.join(dir, 'cluster-ca.crt')));
    expect((await fetchWithCa(`${base}/healthz`, { signal: signal() })).ok).toBe(true);
  });

  it('fails on a missing CA file rather than falling back to the system CAs', async () => {
    await expect(fetchTrustingCa(path.join(dir, 'missing.crt'))(`${base}/healthz`, { signal: signal() })).rejects.toThrow(/ENOENT/);
  });
});
