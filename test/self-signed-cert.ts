// Self-signed serving certificates for tests of HTTPS servers (admission webhooks), made with the
// openssl CLI: Node can verify certificates but not issue them. The certificate is its own CA, so
// it is also the caBundle a webhook configuration carries.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface SelfSignedCert {
  certPem: string;
  keyPem: string;
  /** base64 of certPem, as `clientConfig.caBundle` wants it. */
  caBundle: string;
}

/** A P-256 certificate valid for a day for the given DNS names and IP addresses. Throws if openssl fails. */
export function makeSelfSignedCert(opts: { dnsNames?: string[]; ips?: string[]; commonName?: string }): SelfSignedCert {
  const dir = mkdtempSync(path.join(tmpdir(), 'self-signed-'));
  try {
    const san = [...(opts.dnsNames ?? []).map((d) => `DNS:${d}`), ...(opts.ips ?? []).map((ip) => `IP:${ip}`)].join(',');
    const keyFile = path.join(dir, 'tls.key');
    const certFile = path.join(dir, 'tls.crt');
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', keyFile, '-out', certFile, '-days', '1',
        '-subj', `/CN=${opts.commonName ?? opts.dnsNames?.[0] ?? opts.ips?.[0] ?? 'test'}`,
        ...(san === '' ? [] : ['-addext', `subjectAltName=${san}`]),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const certPem = readFileSync(certFile, 'utf8');
    return { certPem, keyPem: readFileSync(keyFile, 'utf8'), caBundle: Buffer.from(certPem).toString('base64') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
