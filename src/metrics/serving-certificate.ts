// The TLS certificate of the metrics address: the files of a kubernetes.io/tls Secret (tls.crt,
// tls.key, e.g. from cert-manager) when a directory is given, else a self-signed one made at start,
// as controller-runtime's secure metrics server does. Bearer tokens must not cross the network in
// clear text; a self-signed certificate encrypts, and Prometheus (insecureSkipVerify) or a CA from the
// Secret decides how much it verifies.
import { createHash, KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import type { Logger } from 'pino';

/** PEM key and certificate (chain) as node:tls takes them. */
export interface ServingCertificate {
  key: string;
  cert: string;
}

const CERT_FILE = 'tls.crt';
const KEY_FILE = 'tls.key';
const COMMON_NAME_OID = '2.5.4.3';
const SUBJECT_ALT_NAME_OID = '2.5.29.17';
const ONE_YEAR_MS = 365 * 24 * 3_600_000;

/**
 * A self-signed ECDSA P-256 certificate for `hosts` (DNS names or IPv4 addresses), valid for a year from
 * `now`. Node's crypto makes and signs keys but cannot build an X.509 certificate; pkijs encodes it.
 */
export async function selfSignedCertificate(hosts: readonly string[], now: Date): Promise<ServingCertificate> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto });

  const certificate = new pkijs.Certificate();
  certificate.version = 2; // X.509 v3, for the subjectAltName extension
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f; // a positive INTEGER
  certificate.serialNumber = new asn1js.Integer({ valueHex: serial });
  const name = (): pkijs.AttributeTypeAndValue => new pkijs.AttributeTypeAndValue({ type: COMMON_NAME_OID, value: new asn1js.Utf8String({ value: 'imagescan-operator' }) });
  certificate.subject.typesAndValues.push(name());
  certificate.issuer.typesAndValues.push(name());
  // A minute back, for clocks a little behind ours.
  certificate.notBefore.value = new Date(now.getTime() - 60_000);
  certificate.notAfter.value = new Date(now.getTime() + ONE_YEAR_MS);
  const altNames = new pkijs.GeneralNames({ names: hosts.map(generalName) });
  certificate.extensions = [new pkijs.Extension({ extnID: SUBJECT_ALT_NAME_OID, critical: false, extnValue: altNames.toSchema().toBER(false) })];
  await certificate.subjectPublicKeyInfo.importKey(keys.publicKey, engine);
  await certificate.sign(keys.privateKey, 'SHA-256', engine);

  const cert = new X509Certificate(Buffer.from(certificate.toSchema(true).toBER(false))).toString();
  const key = KeyObject.from(keys.privateKey).export({ format: 'pem', type: 'pkcs8' }).toString();
  return { key, cert };
}

function generalName(host: string): pkijs.GeneralName {
  if (isIP(host) === 0) return new pkijs.GeneralName({ type: 2, value: host }); // dNSName
  if (isIP(host) !== 4) throw new Error(`only IPv4 addresses go into the self-signed certificate, not ${host}`);
  return new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: new Uint8Array(host.split('.').map(Number)) }) }); // iPAddress
}

/**
 * Reads tls.crt and tls.key from `dir` and checks that they form a usable pair. Throws an Error that
 * names the file or the problem (never the key's content).
 */
export async function readCertificateDir(dir: string): Promise<ServingCertificate> {
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(path.join(dir, file), 'utf8');
    } catch (err) {
      throw new Error(`reading the metrics certificate ${path.join(dir, file)}`, { cause: err });
    }
  };
  const cert = await read(CERT_FILE);
  const key = await read(KEY_FILE);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new Error(`${path.join(dir, CERT_FILE)} and ${KEY_FILE} are not a matching PEM certificate and key: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { key, cert };
}

/**
 * Re-reads the directory every `intervalMs` and calls `onChange` with a new valid pair, so a rotated
 * Secret (cert-manager renews before expiry; the kubelet updates the mounted files) is served without
 * a restart. A broken pair is logged and the old one kept. Returns a function that stops it.
 */
export function watchCertificateDir(dir: string, initial: ServingCertificate, onChange: (certificate: ServingCertificate) => void, logger: Logger, intervalMs = 60_000): () => void {
  let current = fingerprint(initial);
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    readCertificateDir(dir)
      .then((next) => {
        const changed = fingerprint(next);
        if (changed === current) return;
        current = changed;
        onChange(next);
        logger.info({ dir, notAfter: new X509Certificate(next.cert).validTo }, 'metrics certificate reloaded');
      })
      .catch((err: unknown) => logger.error({ err, dir }, 'metrics certificate not reloaded, serving the previous one'))
      .finally(() => {
        checking = false;
      });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function fingerprint(certificate: ServingCertificate): string {
  return createHash('sha256').update(certificate.cert).update('\0').update(certificate.key).digest('hex');
}
