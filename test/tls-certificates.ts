// Throwaway certificates for tests of TLS to the Trivy server: a CA and a server certificate it
// signed for `localhost`, made with the openssl CLI the way cert-manager's CA issuer would.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

export interface TestCertificates {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Writes `<prefix>-ca.crt`, `<prefix>-server.crt` and `<prefix>-server.key` (1 day, P-256) into `dir`. */
export function makeTestCertificates(dir: string, prefix: string): TestCertificates {
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-days', '1', '-subj', `/CN=${prefix} test CA`, '-keyout', `${prefix}-ca.key`, '-out', `${prefix}-ca.crt`);
  openssl('req', ...ec, '-subj', '/CN=localhost', '-keyout', `${prefix}-server.key`, '-out', `${prefix}-server.csr`);
  writeFileSync(path.join(dir, `${prefix}-ext.cnf`), 'subjectAltName=DNS:localhost\n');
  openssl('x509', '-req', '-in', `${prefix}-server.csr`, '-CA', `${prefix}-ca.crt`, '-CAkey', `${prefix}-ca.key`, '-CAcreateserial', '-days', '1', '-extfile', `${prefix}-ext.cnf`, '-out', `${prefix}-server.crt`);
  return { caFile: path.join(dir, `${prefix}-ca.crt`), certFile: path.join(dir, `${prefix}-server.crt`), keyFile: path.join(dir, `${prefix}-server.key`) };
}
