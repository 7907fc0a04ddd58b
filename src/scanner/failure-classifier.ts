// Trivy's exit status and stderr -> a classified ScanFailure.
//
// Trivy reports every fatal error as one stderr line, `<time>\tFATAL\tFatal error\t<a:b:c error chain>`
// (multi-line when it lists "N errors occurred:" with `\t* ...` bullets), exit code 1. The chain ends in
// go-containerregistry's transport error, e.g. `GET https://…/manifests/sha256:…: MANIFEST_UNKNOWN: …`
// or `unexpected status code 401 Unauthorized`, which is what decides the class.
import { ScanFailure } from './scan-failure.js';
import type { ScanFailureReason } from './scan-failure.js';

export interface TrivyFailureInput {
  exitCode?: number;
  stderr: string;
  /** The operator's own per-scan timeout fired and the process tree was killed. */
  timedOut: boolean;
  /** The signal that ended the process, when it did not exit by itself (e.g. SIGKILL from the OOM killer). */
  signal?: string;
}

interface Rule {
  reason: ScanFailureReason;
  transient: boolean;
  /** Sentence shown to users in status.message; the key part of Trivy's error follows it. */
  sentence: string;
  /** Any match decides; the earliest match position marks the key part of the message. */
  patterns: RegExp[];
}

// Order matters: the first rule whose pattern occurs in the error decides. Trivy's own deadline and
// rate limits / server errors come before auth and not-found so a 503 that mentions a missing token
// is still retried.
const RULES: Rule[] = [
  {
    reason: 'timeout',
    transient: true,
    sentence: 'Trivy gave up when its --timeout expired',
    patterns: [/context deadline exceeded|analyzer timed out/i],
  },
  {
    reason: 'scanner_error',
    transient: true,
    sentence: 'The registry is rate limiting or temporarily unavailable',
    patterns: [
      // Registry error codes are upper case; matching them case-sensitively avoids ordinary words.
      /\b(?:TOOMANYREQUESTS|UNAVAILABLE)\b/,
      /status(?: code)?[=: ]+(?:429|5\d\d)\b|\b(?:429 Too Many Requests|50[0234] (?:Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout))\b/i,
    ],
  },
  {
    reason: 'scanner_error',
    transient: true,
    sentence: 'A network error interrupted the scan',
    patterns: [
      /i\/o timeout|connection refused|connection reset|no such host|network is unreachable|TLS handshake timeout|unexpected EOF|broken pipe|temporary failure in name resolution|server misbehaving|http2: |client connection lost/i,
    ],
  },
  {
    reason: 'scanner_error',
    transient: true,
    sentence: 'The Trivy cache or database was locked or not ready',
    patterns: [/may be in use by another process|acquire cache or database lock|cannot be specified on the first run|failed to download (?:vulnerability|java) DB/i],
  },
  {
    reason: 'auth',
    transient: false,
    sentence: "The registry refused access to the image; check the pod's imagePullSecrets",
    patterns: [
      /\b(?:UNAUTHORIZED|DENIED)\b/,
      /authentication required|status(?: code)?[=: ]+(?:401|403)\b|\b401 Unauthorized\b|\b403 Forbidden\b|no basic auth credentials|requested access to the resource is denied/i,
    ],
  },
  {
    reason: 'not_found',
    transient: false,
    sentence: 'The image was not found in the registry',
    patterns: [
      /\b(?:MANIFEST_UNKNOWN|NAME_UNKNOWN|BLOB_UNKNOWN)\b/,
      /manifest unknown|status(?: code)?[=: ]+404\b|\b404 Not Found\b|no child with platform|repository name not known/i,
    ],
  },
  {
    reason: 'scanner_error',
    transient: false,
    sentence: 'Trivy rejected its command line (an operator/Trivy version mismatch)',
    patterns: [/unknown (?:flag|shorthand flag|command)|flag needs an argument|invalid argument|flag error|requires at least|requires exactly|accepts \d+ arg/i],
  },
];

const MAX_DETAIL = 400;

/**
 * Classifies a failed Trivy run into one of the design's failure reasons and says whether retrying can
 * help. The message is one human sentence plus the decisive part of Trivy's error, scrubbed of credentials.
 */
export function classifyTrivyFailure(input: TrivyFailureInput): ScanFailure {
  const error = fatalError(input.stderr);
  if (input.timedOut) {
    return new ScanFailure('timeout', 'The scan did not finish within the scan timeout; Trivy was killed', true);
  }
  if (error) {
    for (const rule of RULES) {
      const positions = rule.patterns.map((p) => p.exec(error)?.index).filter((i): i is number => i !== undefined);
      if (positions.length > 0) return new ScanFailure(rule.reason, `${rule.sentence}: ${keyPart(error, Math.min(...positions))}`, rule.transient);
    }
    // An error we do not recognise: retry a bounded number of times rather than give up on a flake.
    return new ScanFailure('scanner_error', `Trivy failed: ${keyPart(error, error.length)}`, true);
  }
  if (input.exitCode === 0) {
    return new ScanFailure('invalid_output', 'Trivy exited successfully but wrote no report', false);
  }
  if (input.signal) {
    // SIGKILL without our timeout is usually the OOM killer; worth another try.
    return new ScanFailure('scanner_error', `Trivy was killed by ${input.signal} (out of memory?)`, true);
  }
  const last = lastLines(input.stderr);
  return new ScanFailure(
    'scanner_error',
    `Trivy failed with exit code ${input.exitCode ?? 'unknown'}${last ? `: ${scrub(last)}` : ' and printed nothing'}`,
    true,
  );
}

/** The FATAL (or cobra "Error:") message with the continuation lines Trivy prints after it. */
function fatalError(stderr: string): string | undefined {
  const lines = stderr.split(/\r?\n/);
  let found: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const fatal = /\bFATAL\b\s*(.*)$/.exec(line);
    const cobra = /^Error: (.*)$/.exec(line);
    const hit = fatal?.[1] ?? cobra?.[1];
    if (hit === undefined) continue;
    // Newer Trivy: "FATAL\tFatal error\t<chain>"; user errors: "FATAL\tError\t<chain>".
    let message = hit.replace(/^(?:Fatal error|Error)\t/, '').trim();
    const bullets: string[] = [];
    for (let j = i + 1; j < lines.length && /^\s+(?:\*|\S)/.test(lines[j] ?? '') && !/\t(?:DEBUG|INFO|WARN|ERROR)\t/.test(lines[j] ?? ''); j++) {
      bullets.push((lines[j] ?? '').trim());
    }
    if (bullets.length > 0) message = `${message} ${bullets.join(' ')}`;
    // The last FATAL wins; a cobra "Error:" line is kept only if no FATAL follows.
    if (fatal || found === undefined) found = message;
  }
  return found;
}

/** Around the matched position: from the HTTP request that failed (if any) to the end, capped and scrubbed. */
function keyPart(error: string, at: number): string {
  const before = error.slice(0, at);
  const request = Math.max(before.lastIndexOf('GET https://'), before.lastIndexOf('HEAD https://'), before.lastIndexOf('POST https://'));
  let start = request;
  if (start < 0) {
    // No request in the chain: keep the last three links of the "a: b: c" chain before the match.
    const links = before.split(': ');
    start = links.length > 3 ? before.length - links.slice(-3).join(': ').length : 0;
  }
  let detail = error.slice(start).trim();
  if (detail.length > MAX_DETAIL) detail = `${detail.slice(0, MAX_DETAIL - 1)}…`;
  return scrub(detail);
}

function lastLines(stderr: string): string {
  return stderr.trim().split(/\r?\n/).slice(-2).join(' ').slice(-MAX_DETAIL);
}

/** Removes anything that may be a credential: URL userinfo, Authorization values, token-ish query params. */
function scrub(text: string): string {
  return text
    .replace(/(\w+:\/\/)[^/\s:@]+:[^/\s@]+@/g, '$1[redacted]@')
    .replace(/\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 [redacted]')
    .replace(/([?&](?:access_token|token|password|secret)=)[^&\s"]+/gi, '$1[redacted]');
}
