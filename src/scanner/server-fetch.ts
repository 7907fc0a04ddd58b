// GET requests to the Trivy server (/healthz, /version) that trust an extra CA besides the system's:
// an https server with a cluster-internal certificate (e.g. issued by cert-manager). Node's global
// fetch has no per-request CA option, and NODE_EXTRA_CA_CERTS would widen trust for every connection
// of the process. The CA file is read at each request, so a rotated CA is picked up.
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { rootCertificates } from 'node:tls';

/** The part of the Fetch API the Trivy server probe uses. */
export interface ProbeResponse {
  ok: boolean;
  json(): Promise<unknown>;
}
export type ServerFetch = (url: string, init: { signal: AbortSignal }) => Promise<ProbeResponse>;

/** Bodies of /healthz and /version are a few hundred bytes; anything far larger is not Trivy. */
const MAX_BODY_BYTES = 1024 * 1024;

/** A ServerFetch for https URLs that trusts the PEM certificates in `caFile` as well as the system CAs. */
export function fetchTrustingCa(caFile: string): ServerFetch {
  return async (url, init) => {
    const ca = [...rootCertificates, await readFile(caFile, 'utf8')];
    return new Promise<ProbeResponse>((resolve, reject) => {
      const req = https.get(url, { ca, signal: init.signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) req.destroy(new Error(`response from ${url} is larger than ${MAX_BODY_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ ok: status >= 200 && status < 300, json: () => new Promise((done) => done(JSON.parse(body) as unknown)) });
        });
      });
      req.on('error', reject);
    });
  };
}
