import { describe, expect, it } from 'vitest';
import { classifyTrivyFailure } from './failure-classifier.js';
import type { ScanFailureReason } from './scan-failure.js';

const T = '2026-11-26T18:04:05Z';
const fatal = (chain: string) => `${T}\tFATAL\tFatal error\t${chain}\n`;
const digestRef = 'registry.example.com/team/app@sha256:3f1b2c9d1e0a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';

// Lines shaped like real Trivy output (trivy-cli.md §4 and public issue reports), with our flags:
// --image-src remote leaves only the "remote error" bullet.
const remote = (detail: string) =>
  fatal(`run error: image scan error: scan error: unable to initialize a scanner: unable to initialize an image scanner: 1 error occurred:`) +
  `\t* remote error: ${detail}\n\n`;

const cases: [string, string, ScanFailureReason, boolean, RegExp][] = [
  [
    'manifest unknown (digest gone from the registry)',
    remote(`GET https://registry.example.com/v2/team/app/manifests/sha256:3f1b: MANIFEST_UNKNOWN: manifest unknown; map[Tag:sha256:3f1b]`),
    'not_found',
    false,
    /^The image was not found in the registry: GET https:\/\/registry\.example\.com\/v2\/team\/app\/manifests\/sha256:3f1b: MANIFEST_UNKNOWN/,
  ],
  [
    'repository unknown',
    remote(`GET https://ghcr.io/v2/acme/missing/manifests/sha256:00: NAME_UNKNOWN: repository name not known to registry`),
    'not_found',
    false,
    /NAME_UNKNOWN/,
  ],
  [
    'platform missing from a multi-arch index',
    fatal(`run error: image scan error: scan error: unable to initialize a scanner: unable to initialize an image scanner: 1 error occurred:\n\t* remote error: no child with platform linux/s390x in index ${digestRef}`),
    'not_found',
    false,
    /no child with platform linux\/s390x/,
  ],
  [
    'unauthorized (token endpoint)',
    remote(`GET https://registry.example.com/oauth2/token?scope=repository%3Ateam%2Fapp%3Apull&service=registry.example.com: UNAUTHORIZED: authentication required; [map[Action:pull Class: Name:team/app Type:repository]]`),
    'auth',
    false,
    /^The registry refused access to the image; check the pod's imagePullSecrets: GET https:\/\/registry\.example\.com\/oauth2\/token.*UNAUTHORIZED/,
  ],
  [
    'denied',
    remote(`GET https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/app/manifests/sha256:aa: DENIED: Your authorization token has expired. Reauthenticate and try again.`),
    'auth',
    false,
    /DENIED: Your authorization token has expired/,
  ],
  ['HEAD with a 401 and no body', remote(`HEAD https://quay.io/v2/org/app/manifests/sha256:aa: unexpected status code 401 Unauthorized (HEAD responses have no body, use GET for details)`), 'auth', false, /401 Unauthorized/],
  ['forbidden', remote(`GET https://harbor.local/v2/p/app/manifests/sha256:aa: unexpected status code 403 Forbidden`), 'auth', false, /403 Forbidden/],
  [
    'rate limited by Docker Hub',
    remote(`GET https://index.docker.io/v2/library/nginx/manifests/sha256:aa: TOOMANYREQUESTS: You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit`),
    'scanner_error',
    true,
    /^The registry is rate limiting or temporarily unavailable: GET https:\/\/index\.docker\.io.*TOOMANYREQUESTS/,
  ],
  ['registry 503', remote(`GET https://registry.example.com/v2/team/app/blobs/sha256:bb: unexpected status code 503 Service Unavailable: upstream connect error`), 'scanner_error', true, /503 Service Unavailable/],
  ['registry 500 in the old format', fatal(`failed to get the v2 manifest: Get https://registry.example.com/v2/a/manifests/x: http: non-successful response (status=500 body="oops")`), 'scanner_error', true, /status=500/],
  ['DNS failure', remote(`Get "https://registry.example.com/v2/": dial tcp: lookup registry.example.com on 10.96.0.10:53: no such host`), 'scanner_error', true, /no such host/],
  ['connection refused', remote(`Get "https://10.0.0.5:5000/v2/": dial tcp 10.0.0.5:5000: connect: connection refused`), 'scanner_error', true, /connection refused/],
  [
    'scan cache locked by another process',
    `${T}\tERROR\tFailed to acquire cache or database lock, see https://trivy.dev/docs/latest/guide/references/troubleshooting/#problems-with-the-cache for troubleshooting\n` +
      fatal('run error: image scan error: scan error: unable to initialize a scan service: unable to initialize cache: unable to initialize fs cache: cache may be in use by another process: timeout'),
    'scanner_error',
    true,
    /cache may be in use by another process/,
  ],
  ['DB not downloaded yet', fatal('run error: init error: DB error: database error: --skip-db-update cannot be specified on the first run'), 'scanner_error', true, /cannot be specified on the first run/],
  [
    "Trivy's own --timeout",
    `${T}\tWARN\tProvide a higher timeout value, see https://trivy.dev/docs/v0.74/guide/references/troubleshooting/#timeout\n` +
      fatal('run error: image scan error: scan error: scan failed: failed analysis: analyze error: timeout: context deadline exceeded'),
    'timeout',
    true,
    /^Trivy gave up when its --timeout expired: .*context deadline exceeded/,
  ],
  [
    'unknown flag (cobra prints Error: and usage, then FATAL)',
    'Error: unknown flag: --bogus\nUsage:\n  trivy image [flags] IMAGE_NAME\n\n' + fatal('unknown flag: --bogus'),
    'scanner_error',
    false,
    /^Trivy rejected its command line.*unknown flag: --bogus/,
  ],
  ['bad flag value', fatal('flag error: scan flag error: unable to parse scanners: unknown scanner: vulns'), 'scanner_error', false, /unknown scanner: vulns/],
  [
    'a cache dir the operator cannot write is not an auth problem',
    fatal('run error: init error: DB error: failed to open DB: open /var/cache/trivy/db/trivy.db: permission denied'),
    'scanner_error',
    true,
    /^Trivy failed: .*permission denied/,
  ],
  ['an error nobody has seen before', fatal('run error: image scan error: scan error: something odd happened'), 'scanner_error', true, /^Trivy failed: .*something odd happened/],
  ['old FATAL format without "Fatal error"', `${T}\tFATAL\terror in image scan: failed to analyze image: failed to extract files: MANIFEST_UNKNOWN: manifest unknown\n`, 'not_found', false, /MANIFEST_UNKNOWN/],
];

describe('classifyTrivyFailure', () => {
  it.each(cases)('%s', (_name, stderr, reason, transient, message) => {
    const failure = classifyTrivyFailure({ exitCode: 1, stderr, timedOut: false });
    expect(failure.reason).toBe(reason);
    expect(failure.transient).toBe(transient);
    expect(failure.message).toMatch(message);
    expect(failure.message).not.toMatch(/FATAL|\n/);
  });

  it('classifies our own timeout as a transient timeout whatever Trivy printed', () => {
    const failure = classifyTrivyFailure({ stderr: remote('GET https://x/v2/: MANIFEST_UNKNOWN'), timedOut: true });
    expect(failure).toMatchObject({ reason: 'timeout', transient: true });
  });

  it('treats a clean exit without a report as invalid output, not retried', () => {
    expect(classifyTrivyFailure({ exitCode: 0, stderr: '', timedOut: false })).toMatchObject({ reason: 'invalid_output', transient: false });
  });

  it('retries a child killed by a signal we did not send (OOM killer)', () => {
    expect(classifyTrivyFailure({ stderr: '', timedOut: false, signal: 'SIGKILL' })).toMatchObject({ reason: 'scanner_error', transient: true, message: expect.stringMatching(/SIGKILL/) });
  });

  it('keeps the last stderr lines when there is no FATAL line', () => {
    const failure = classifyTrivyFailure({ exitCode: 2, stderr: 'panic: runtime error: index out of range\ngoroutine 1 [running]:', timedOut: false });
    expect(failure.message).toMatch(/exit code 2: panic: runtime error/);
  });

  it('never repeats credentials found in the error', () => {
    const stderr = remote(
      'GET https://robot:s3cr3t-pass@registry.example.com/v2/token?service=x&access_token=abc.def.ghi: UNAUTHORIZED: authentication required (Authorization: Basic cm9ib3Q6czNjcjN0 / Bearer eyJhbGciOi.x.y)',
    );
    const failure = classifyTrivyFailure({ exitCode: 1, stderr, timedOut: false });
    expect(failure.reason).toBe('auth');
    for (const secret of ['s3cr3t-pass', 'abc.def.ghi', 'cm9ib3Q6czNjcjN0', 'eyJhbGciOi']) expect(failure.message).not.toContain(secret);
  });

  it('caps very long errors', () => {
    const failure = classifyTrivyFailure({ exitCode: 1, stderr: fatal(`GET https://r/v2/: MANIFEST_UNKNOWN: ${'x'.repeat(5000)}`), timedOut: false });
    expect(failure.message.length).toBeLessThan(500);
  });
});
