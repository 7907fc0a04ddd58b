// The TLS certificates of the operator's servers (the metrics address and the admission webhook): the
// files of a kubernetes.io/tls Secret (tls.crt, tls.key, e.g. from cert-manager), re-read when they
// change, or for metrics without a directory a self-signed one made at start, as controller-runtime's
// secure metrics server does. Bearer tokens must not cross the network in
// clear text; a self-signed certificate encrypts, and Prometheus (insecureSkipVerify) or a CA from the
// Secret decides how much it verifies.
import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';

/** PEM key and certificate (chain) as node:tls takes them. */
export interface ServingCertificate {
  key: string;
  cert: string;
}

const CERT_FILE = 'tls.crt';
const KEY_FILE = 'tls.key';
const ONE_YEAR_MS = 365 * 24 * 3_600_000;

/**
 * A self-signed ECDSA P-256 certificate for `hosts` (DNS names or IPv4 addresses), valid for a year from
 * `now`. Node's crypto makes the key and the signature but cannot build an X.509 certificate, so the
 * few fixed DER structures of one are written here (X509Certificate parses the result, so a mistake
 * fails the start, never a client). A PKI library did the same for 6.6 MiB more RSS.
 */
export function selfSignedCertificate(hosts: readonly string[], now: Date): ServingCertificate {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40; // positive, and no leading zero byte to strip
  const name = der(0x30, der(0x31, der(0x30, oid('2.5.4.3'), der(0x0c, Buffer.from('imagescan-operator')))));
  const ecdsaWithSha256 = der(0x30, oid('1.2.840.10045.4.3.2'));
  const altNames = der(0x30, ...hosts.map(generalName));
  const tbs = der(
    0x30,
    der(0xa0, der(0x02, Buffer.from([2]))), // version v3, for the extension
    der(0x02, serial),
    ecdsaWithSha256,
    name,
    // A minute back, for clocks a little behind ours.
    der(0x30, time(new Date(now.getTime() - 60_000)), time(new Date(now.getTime() + ONE_YEAR_MS))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    der(0xa3, der(0x30, der(0x30, oid('2.5.29.17'), der(0x04, altNames)))), // subjectAltName
  );
  const signature = sign('sha256', tbs, { key: privateKey, dsaEncoding: 'der' });
  const certificate = der(0x30, tbs, ecdsaWithSha256, der(0x03, Buffer.from([0]), signature));
  return {
    cert: new X509Certificate(certificate).toString(),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** One DER element: tag, definite length, contents. */
function der(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const n = body.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), body]);
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes = [40 * first + second];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let v = arc >> 7; v > 0; v >>= 7) base128.unshift((v & 0x7f) | 0x80);
    bytes.push(...base128);
  }
  return der(0x06, Buffer.from(bytes));
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280, 4.1.2.5). */
function time(date: Date): Buffer {
  const text = date.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'; // YYYYMMDDHHMMSSZ
  return date.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(text.slice(2))) : der(0x18, Buffer.from(text));
}

function generalName(host: string): Buffer {
  if (isIP(host) === 0) return der(0x82, Buffer.from(host)); // dNSName
  if (isIP(host) !== 4) throw new Error(`only IPv4 addresses go into the self-signed certificate, not ${host}`);
  return der(0x87, Buffer.from(host.split('.').map(Number))); // iPAddress
}

/**
 * Reads tls.crt and tls.key from `dir` and checks that they form a usable pair. Throws an Error that
 * names the file or the problem (never the key's content); `purpose` (metrics, webhook) starts it.
 */
export async function readCertificateDir(dir: string, purpose = 'metrics'): Promise<ServingCertificate> {
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(path.join(dir, file), 'utf8');
    } catch (err) {
      throw new Error(`reading the ${purpose} certificate ${path.join(dir, file)}`, { cause: err });
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

export interface CertificateWatchOptions {
  /** Names the certificate in log lines and errors: metrics, webhook. */
  purpose?: string;
  /** The files are also compared this often, for filesystems whose events are unreliable (default 60 s). */
  intervalMs?: number;
  /** Wait this long after a file event before reading, so a rotation in progress settles (default 100 ms). */
  settleMs?: number;
}

/**
 * Calls `onChange` with each new valid pair in `dir`, so a rotated Secret (cert-manager renews before
 * expiry; the kubelet updates the mounted files) is served without a restart. `initial` is the pair
 * served now; undefined means none yet, and the first valid pair that appears is handed on. Reads on
 * every change in the directory (the kubelet swaps the `..data` symlink, which fs.watch reports as a
 * rename there) and every `intervalMs`. A broken or half-written pair is logged and the old one kept.
 * A directory that does not exist yet is checked by the interval only. Returns a function that stops it.
 */
export function watchCertificateDir(
  dir: string,
  initial: ServingCertificate | undefined,
  onChange: (certificate: ServingCertificate) => void,
  logger: Logger,
  options: CertificateWatchOptions | number = {},
): () => void {
  const opts: CertificateWatchOptions = typeof options === 'number' ? { intervalMs: options } : options;
  const purpose = opts.purpose ?? 'metrics';
  let current = initial === undefined ? undefined : fingerprint(initial);
  let lastProblem: string | undefined;
  let checking = false;
  let again = false;
  let stopped = false;

  const check = (): void => {
    if (stopped) return;
    if (checking) {
      again = true;
      return;
    }
    checking = true;
    readCertificateDir(dir, purpose)
      .then((next) => {
        lastProblem = undefined;
        const changed = fingerprint(next);
        if (changed === current || stopped) return;
        current = changed;
        onChange(next);
        logger.info({ dir, notAfter: new X509Certificate(next.cert).validTo }, `${purpose} certificate loaded`);
      })
      .catch((err: unknown) => {
        // Logged once per distinct problem: a missing certificate is checked every interval.
        const problem = err instanceof Error ? err.message : String(err);
        if (problem === lastProblem) return;
        lastProblem = problem;
        if (current === undefined) logger.warn({ err, dir }, `${purpose} certificate not usable yet`);
        else logger.error({ err, dir }, `${purpose} certificate not reloaded, serving the previous one`);
      })
      .finally(() => {
        checking = false;
        if (again) {
          again = false;
          check();
        }
      });
  };

  let settle: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dir, () => {
      clearTimeout(settle);
      settle = setTimeout(check, opts.settleMs ?? 100);
    });
    watcher.on('error', (err) => logger.warn({ err, dir }, `watching the ${purpose} certificate failed; checking periodically`));
  } catch {
    // No directory yet (or no inotify): the interval still finds the files.
  }
  const timer = setInterval(check, opts.intervalMs ?? 60_000);
  timer.unref();
  if (initial === undefined) check();
  return () => {
    stopped = true;
    clearInterval(timer);
    clearTimeout(settle);
    watcher?.close();
  };
}

function fingerprint(certificate: ServingCertificate): string {
  return createHash('sha256').update(certificate.cert).update('\0').update(certificate.key).digest('hex');
}
