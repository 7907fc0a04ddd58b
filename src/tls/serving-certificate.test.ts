import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { readCertificateDir, selfSignedCertificate, watchCertificateDir } from './serving-certificate.js';
import type { ServingCertificate } from './serving-certificate.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function certDir(certificate: ServingCertificate): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'metrics-tls-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'tls.crt'), certificate.cert);
  writeFileSync(path.join(dir, 'tls.key'), certificate.key, { mode: 0o600 });
  return dir;
}

/** The certificate a TLS client sees on `server`. */
function peerCertificate(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', rejectUnauthorized: false, agent: false }, (res) => {
      const raw = (res.socket as TLSSocket).getPeerX509Certificate();
      res.resume();
      if (raw === undefined) reject(new Error('no peer certificate'));
      else resolve(raw);
    });
    req.on('error', reject);
  });
}

describe('selfSignedCertificate', () => {
  it('makes a certificate for the hosts, valid for a year, signed by its own key, that a TLS server serves', async () => {
    const now = new Date('2026-12-07T12:00:00Z');
    const certificate = selfSignedCertificate(['localhost', '127.0.0.1'], now);
    const x509 = new X509Certificate(certificate.cert);
    expect(x509.subject).toBe('CN=imagescan-operator');
    expect(x509.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(new Date(x509.validFrom).getTime()).toBeLessThanOrEqual(now.getTime());
    expect(new Date(x509.validTo).getTime() - now.getTime()).toBe(365 * 24 * 3_600_000);
    expect(x509.checkHost('localhost')).toBe('localhost');

    const server = https.createServer(certificate, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const served = await peerCertificate((server.address() as AddressInfo).port);
      expect(served.fingerprint256).toBe(x509.fingerprint256);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('writes validity dates past 2049 as GeneralizedTime, which clients still read', () => {
    const x509 = new X509Certificate(selfSignedCertificate(['localhost'], new Date('2049-12-31T00:00:00Z')).cert);
    expect(new Date(x509.validTo).toISOString()).toBe('2050-12-31T00:00:00.000Z');
    expect(x509.verify(x509.publicKey)).toBe(true);
  });

  it('makes a new key each time (no two replicas share one)', () => {
    const [a, b] = [selfSignedCertificate(['localhost'], new Date()), selfSignedCertificate(['localhost'], new Date())];
    expect(a.key).not.toBe(b.key);
    expect(new X509Certificate(a.cert).serialNumber).not.toBe(new X509Certificate(b.cert).serialNumber);
  });
});

describe('readCertificateDir', () => {
  it('reads tls.crt and tls.key as a kubernetes.io/tls Secret mounts them', async () => {
    const certificate = selfSignedCertificate(['localhost'], new Date());
    expect(await readCertificateDir(certDir(certificate))).toEqual(certificate);
  });

  it('names the missing file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'metrics-tls-'));
    dirs.push(dir);
    await expect(readCertificateDir(dir)).rejects.toThrow(`reading the metrics certificate ${path.join(dir, 'tls.crt')}`);
  });

  it('refuses a key that does not belong to the certificate, without printing the key', async () => {
    const [a, b] = [selfSignedCertificate(['localhost'], new Date()), selfSignedCertificate(['localhost'], new Date())];
    const dir = certDir({ cert: a.cert, key: b.key });
    const err = await readCertificateDir(dir).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain('are not a matching PEM certificate and key');
    expect((err as Error).message).not.toContain('PRIVATE KEY');
  });
});

describe('watchCertificateDir', () => {
  it('hands on a rotated pair, and keeps the old one when the new files do not match', async () => {
    const first = selfSignedCertificate(['localhost'], new Date());
    const dir = certDir(first);
    const seen: ServingCertificate[] = [];
    const stop = watchCertificateDir(dir, first, (c) => seen.push(c), pino({ level: 'silent' }), 20);
    try {
      await new Promise((resolve) => setTimeout(resolve, 80));
      expect(seen).toEqual([]);
      const second = selfSignedCertificate(['localhost'], new Date());
      writeFileSync(path.join(dir, 'tls.crt'), second.cert);
      writeFileSync(path.join(dir, 'tls.key'), second.key);
      await expect.poll(() => seen.length, { timeout: 2000 }).toBe(1);
      expect(seen[0]).toEqual(second);
      writeFileSync(path.join(dir, 'tls.key'), first.key); // half-written rotation: key of another cert
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(seen).toHaveLength(1);
    } finally {
      stop();
    }
  });
});

describe('watchCertificateDir on a mounted Secret', () => {
  /** Updates the folder the way the kubelet updates a Secret volume: a new ..<version> folder, then one ..data symlink swap. */
  function mount(dir: string, version: number, certificate: ServingCertificate): void {
    const folder = `..v${version}`;
    mkdirSync(path.join(dir, folder));
    writeFileSync(path.join(dir, folder, 'tls.crt'), certificate.cert);
    writeFileSync(path.join(dir, folder, 'tls.key'), certificate.key);
    symlinkSync(folder, path.join(dir, '..data_tmp'));
    renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
  }

  it('serves a rotation at once (the ..data swap), not at the next interval', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'webhook-tls-'));
    dirs.push(dir);
    const first = selfSignedCertificate(['localhost'], new Date());
    mount(dir, 1, first);
    symlinkSync('..data/tls.crt', path.join(dir, 'tls.crt'));
    symlinkSync('..data/tls.key', path.join(dir, 'tls.key'));
    const seen: ServingCertificate[] = [];
    const stop = watchCertificateDir(dir, first, (c) => seen.push(c), pino({ level: 'silent' }), { purpose: 'webhook', intervalMs: 600_000 });
    try {
      const second = selfSignedCertificate(['localhost'], new Date());
      mount(dir, 2, second);
      await expect.poll(() => seen.length, { timeout: 2000 }).toBe(1);
      expect(seen[0]).toEqual(second);
    } finally {
      stop();
    }
  });

  it('hands on the first pair that appears when there was none at start, also in a folder made later', async () => {
    const parent = mkdtempSync(path.join(tmpdir(), 'webhook-tls-'));
    dirs.push(parent);
    const dir = path.join(parent, 'serving-certs');
    const seen: ServingCertificate[] = [];
    const stop = watchCertificateDir(dir, undefined, (c) => seen.push(c), pino({ level: 'silent' }), { purpose: 'webhook', intervalMs: 50 });
    try {
      await new Promise((resolve) => setTimeout(resolve, 120));
      expect(seen).toEqual([]);
      const certificate = selfSignedCertificate(['localhost'], new Date());
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'tls.key'), certificate.key);
      writeFileSync(path.join(dir, 'tls.crt'), certificate.cert);
      await expect.poll(() => seen.length, { timeout: 2000 }).toBe(1);
      expect(seen[0]).toEqual(certificate);
    } finally {
      stop();
    }
  });
});
