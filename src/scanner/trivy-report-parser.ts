// Trivy JSON report (SchemaVersion 2) -> ScanResult.
//
// Reports can be very large (Packages arrays, Descriptions, CVSS, References), while the operator needs
// only a handful of fields per vulnerability. Instead of JSON.parse, which would materialise the whole
// tree on the heap, this walks the bytes once: the fields we use are decoded, everything else is
// validated and skipped without allocating. The result is that a 100 MB report costs little more heap
// than the vulnerabilities it contains.
//
// Decisions (see the tests for each):
// - Only VulnerabilityID, PkgName, InstalledVersion and Severity are required (strings). Trivy always
//   fills them; a report without them is not a Trivy report and is rejected.
// - A Severity outside Trivy's five values is counted as UNKNOWN (case is ignored), like a vulnerability
//   whose severity no source knows, instead of failing the whole scan.
// - Optional fields of the wrong type are treated as absent; unknown keys are ignored.
// - A missing or null Results / Vulnerabilities means none; an empty FixedVersion means no fix.
// - Anything else (not JSON, truncated, SchemaVersion != 2, a bare array, non-object entries) throws
//   TrivyReportError.
import { compareVulnerabilities, SEVERITIES } from './scan-result.js';
import type { ScanResult, Severity, Vulnerability, VulnerabilitySummary } from './scan-result.js';

/** The output Trivy produced is not a SchemaVersion 2 report. Always classified as `invalid_output`. */
export class TrivyReportError extends Error {
  override readonly name = 'TrivyReportError';
  readonly reason = 'invalid_output' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Parses Trivy's `--format json` output into a ScanResult with vulnerabilities sorted worst first.
 * Throws TrivyReportError for anything that is not a SchemaVersion 2 Trivy report; never throws another error.
 */
export function parseTrivyReport(json: string | Buffer): ScanResult {
  let bytes: Uint8Array;
  if (typeof json === 'string') bytes = Buffer.from(json, 'utf8');
  else if (json instanceof Uint8Array) bytes = json;
  else throw new TrivyReportError('Trivy output is neither text nor bytes');
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return readReport(new JsonCursor(buf));
  } catch (err) {
    if (err instanceof TrivyReportError) throw err;
    // Defensive: a bug here must still surface as a classified failure, never crash a worker.
    throw new TrivyReportError(`Trivy output could not be read: ${String(err)}`, { cause: err });
  }
}

/**
 * The report's top-level ArtifactName (the image reference for `trivy image`), read without parsing the
 * rest: Trivy writes it among the first keys. Undefined when absent or when the output is not JSON.
 */
export function readArtifactName(json: Buffer): string | undefined {
  const c = new JsonCursor(json);
  let name: string | undefined;
  try {
    if (c.peekOrEnd() !== CH_LBRACE) return undefined;
    c.readObject((key) => {
      if (key !== 'ArtifactName') return c.skipValue();
      name = c.readStringOrSkip();
      // Stops the walk: the rest of the report is not needed.
      throw FOUND;
    });
  } catch (err) {
    if (err !== FOUND) return undefined;
  }
  return name;
}

const FOUND = new Error('ArtifactName found');

/**
 * Metadata.RepoDigests of a report (`nginx@sha256:…`, as Trivy writes them: the registry's digest of
 * the reference scanned), read without parsing the rest. Empty when absent or not JSON: a scan by
 * reference then cannot tell which digest it scanned.
 */
export function readRepoDigests(json: Buffer): string[] {
  const c = new JsonCursor(json);
  const digests: string[] = [];
  try {
    if (c.peekOrEnd() !== CH_LBRACE) return [];
    c.readObject((key) => {
      if (key !== 'Metadata' || c.peek() !== CH_LBRACE) return c.skipValue();
      c.readObject((field) => {
        if (field !== 'RepoDigests' || c.peek() !== CH_LBRACKET) return c.skipValue();
        c.readArray(() => {
          const text = c.readStringOrSkip();
          if (text !== undefined) digests.push(text);
        });
        throw FOUND;
      });
    });
  } catch (err) {
    if (err !== FOUND) return [];
  }
  return digests;
}

/** Counts as Trivy does: every entry once; `fixable` = entries with a non-empty fixed version. */
export function summarize(vulns: readonly Vulnerability[]): VulnerabilitySummary {
  const summary: VulnerabilitySummary = { critical: 0, high: 0, medium: 0, low: 0, unknown: 0, total: 0, fixable: 0 };
  for (const v of vulns) {
    switch (v.severity) {
      case 'CRITICAL':
        summary.critical++;
        break;
      case 'HIGH':
        summary.high++;
        break;
      case 'MEDIUM':
        summary.medium++;
        break;
      case 'LOW':
        summary.low++;
        break;
      default:
        summary.unknown++;
    }
    summary.total++;
    if (v.fixedVersion) summary.fixable++;
  }
  return summary;
}

/**
 * Returns a new array sorted worst first by a total order (severity, package, installed version, id,
 * target, then the remaining fields), so a rescan with identical findings produces identical output.
 */
export function sortVulnerabilities(vulns: readonly Vulnerability[]): Vulnerability[] {
  return [...vulns].sort(compareVulnerabilities);
}

function toSeverity(value: string): Severity {
  const upper = value.toUpperCase();
  return (SEVERITIES as readonly string[]).includes(upper) ? (upper as Severity) : 'UNKNOWN';
}

function readReport(c: JsonCursor): ScanResult {
  const first = c.peekOrEnd();
  if (first === undefined) c.fail('Trivy output is empty');
  if (first === CH_LBRACKET) c.fail('Trivy output is a bare JSON array (SchemaVersion 1 or not a Trivy report)');
  if (first !== CH_LBRACE) c.fail('Trivy output is not a JSON object');

  let schemaVersion: number | undefined;
  let version: string | undefined;
  let os: string | undefined;
  let vulnerabilities: Vulnerability[] = [];
  c.readObject((key) => {
    switch (key) {
      case 'SchemaVersion':
        schemaVersion = c.readNumberOrSkip();
        break;
      case 'Trivy':
        version = readTrivyVersion(c);
        break;
      case 'Metadata':
        os = readOs(c);
        break;
      case 'Results':
        vulnerabilities = readResults(c);
        break;
      default:
        c.skipValue();
    }
  });
  c.expectEnd();
  if (schemaVersion !== 2) {
    c.fail(
      schemaVersion === undefined
        ? 'Trivy output has no SchemaVersion (not a Trivy JSON report)'
        : Number.isNaN(schemaVersion)
          ? 'Trivy output has a SchemaVersion that is not a number'
          : `Trivy output has SchemaVersion ${schemaVersion}, only 2 is supported`,
      false,
    );
  }
  const sorted = sortVulnerabilities(vulnerabilities);
  const result: ScanResult = {
    vulnerabilities: sorted,
    summary: summarize(sorted),
    scanner: version === undefined ? { name: 'Trivy' } : { name: 'Trivy', version },
  };
  if (os !== undefined) result.os = os;
  return result;
}

function readTrivyVersion(c: JsonCursor): string | undefined {
  if (c.peek() !== CH_LBRACE) {
    c.skipValue();
    return undefined;
  }
  let version: string | undefined;
  c.readObject((key) => {
    if (key === 'Version') version = c.readStringOrSkip();
    else c.skipValue();
  });
  return version;
}

function readOs(c: JsonCursor): string | undefined {
  if (c.peek() !== CH_LBRACE) {
    c.skipValue();
    return undefined;
  }
  let os: string | undefined;
  c.readObject((key) => {
    if (key !== 'OS' || c.peek() !== CH_LBRACE) {
      c.skipValue();
      return;
    }
    let family: string | undefined;
    let name: string | undefined;
    c.readObject((osKey) => {
      if (osKey === 'Family') family = c.readStringOrSkip();
      else if (osKey === 'Name') name = c.readStringOrSkip();
      else c.skipValue();
    });
    // Trivy writes Family "none" when it detected no OS.
    os = family && family !== 'none' ? [family, name].filter(Boolean).join(' ') : undefined;
  });
  return os;
}

function readResults(c: JsonCursor): Vulnerability[] {
  if (c.readNull()) return [];
  if (c.peek() !== CH_LBRACKET) c.fail('Results is not an array');
  const all: Vulnerability[] = [];
  c.readArray((i) => {
    if (c.peek() !== CH_LBRACE) c.fail(`Results[${i}] is not an object`);
    let target = '';
    let klass: string | undefined;
    let entries: Vulnerability[] = [];
    c.readObject((key) => {
      switch (key) {
        case 'Target':
          target = c.readStringOrSkip() ?? '';
          break;
        case 'Class':
          klass = c.readStringOrSkip();
          break;
        case 'Vulnerabilities':
          entries = readVulnerabilities(c, i);
          break;
        default:
          c.skipValue();
      }
    });
    // Target and Class may follow Vulnerabilities in the object; attach them once the Result is read.
    for (const v of entries) {
      v.target = target;
      if (klass !== undefined) v.class = klass;
      all.push(v);
    }
  });
  return all;
}

function readVulnerabilities(c: JsonCursor, resultIndex: number): Vulnerability[] {
  if (c.readNull()) return [];
  if (c.peek() !== CH_LBRACKET) c.fail(`Results[${resultIndex}].Vulnerabilities is not an array`);
  const list: Vulnerability[] = [];
  c.readArray((j) => {
    const where = `Results[${resultIndex}].Vulnerabilities[${j}]`;
    if (c.peek() !== CH_LBRACE) c.fail(`${where} is not an object`);
    const fields: Partial<Record<'id' | 'pkg' | 'installed' | 'severity' | 'fixed' | 'title' | 'url', string>> = {};
    const required = (name: string): string => {
      if (c.peek() !== CH_QUOTE) c.fail(`${where}.${name} is not a string`);
      return c.readString();
    };
    c.readObject((key) => {
      switch (key) {
        case 'VulnerabilityID':
          fields.id = required(key);
          break;
        case 'PkgName':
          fields.pkg = required(key);
          break;
        case 'InstalledVersion':
          fields.installed = required(key);
          break;
        case 'Severity':
          fields.severity = required(key);
          break;
        case 'FixedVersion':
          fields.fixed = c.readStringOrSkip();
          break;
        case 'Title':
          fields.title = c.readStringOrSkip();
          break;
        case 'PrimaryURL':
          fields.url = c.readStringOrSkip();
          break;
        default:
          c.skipValue();
      }
    });
    const { id, pkg, installed, severity } = fields;
    if (id === undefined) c.fail(`${where} has no VulnerabilityID`, false);
    // Trivy writes these with omitempty: an empty package name or version (some binaries and
    // language packages have none) is left out, and one such entry must not discard the report.
    const v: Vulnerability = { id, severity: toSeverity(severity ?? 'UNKNOWN'), package: pkg ?? '', installedVersion: installed ?? '', target: '' };
    if (fields.fixed) v.fixedVersion = fields.fixed;
    if (fields.title !== undefined) v.title = fields.title;
    if (fields.url !== undefined) v.url = fields.url;
    list.push(v);
  });
  return list;
}

// --- A minimal JSON pull reader over bytes ---------------------------------------------------------

const CH_TAB = 0x09;
const CH_LF = 0x0a;
const CH_CR = 0x0d;
const CH_SPACE = 0x20;
const CH_QUOTE = 0x22;
const CH_PLUS = 0x2b;
const CH_COMMA = 0x2c;
const CH_MINUS = 0x2d;
const CH_DOT = 0x2e;
const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_COLON = 0x3a;
const CH_UPPER_E = 0x45;
const CH_LBRACKET = 0x5b;
const CH_BACKSLASH = 0x5c;
const CH_RBRACKET = 0x5d;
const CH_LOWER_E = 0x65;
const CH_LOWER_U = 0x75;
const CH_LBRACE = 0x7b;
const CH_RBRACE = 0x7d;

// Characters allowed after a backslash, other than 'u'.
const SIMPLE_ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);
const LITERALS: ReadonlyMap<number, Buffer> = new Map([
  [0x74, Buffer.from('true')],
  [0x66, Buffer.from('false')],
  [0x6e, Buffer.from('null')],
]);

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

class JsonCursor {
  private pos = 0;
  private skipStack = new Uint8Array(64);
  constructor(private readonly buf: Buffer) {}

  fail(what: string, withPosition = true): never {
    throw new TrivyReportError(withPosition ? `${what} (at byte ${this.pos} of ${this.buf.length})` : what);
  }

  private at(p: number): number | undefined {
    return this.buf[p];
  }

  private skipWhitespace(): void {
    const buf = this.buf;
    let p = this.pos;
    while (p < buf.length) {
      const ch = buf[p];
      if (ch !== CH_SPACE && ch !== CH_LF && ch !== CH_CR && ch !== CH_TAB) break;
      p++;
    }
    this.pos = p;
  }

  /** Next non-whitespace byte, or undefined at the end. */
  peekOrEnd(): number | undefined {
    this.skipWhitespace();
    return this.at(this.pos);
  }

  /** Next non-whitespace byte; the end of input here means the output was truncated. */
  peek(): number {
    const ch = this.peekOrEnd();
    if (ch === undefined) this.fail('Trivy output ends unexpectedly (truncated JSON)');
    return ch;
  }

  expectEnd(): void {
    if (this.peekOrEnd() !== undefined) this.fail('Trivy output has trailing data after the JSON document');
  }

  private expect(ch: number, what: string): void {
    if (this.peek() !== ch) this.fail(`invalid JSON: expected ${what}`);
    this.pos++;
  }

  /** Consumes `null` if it is next. */
  readNull(): boolean {
    if (this.peek() !== 0x6e) return false;
    this.skipLiteral();
    return true;
  }

  /** Reads an object, calling onMember(key) with the cursor on each value; onMember must consume it. */
  readObject(onMember: (key: string) => void): void {
    this.expect(CH_LBRACE, '{');
    if (this.peek() === CH_RBRACE) {
      this.pos++;
      return;
    }
    for (;;) {
      if (this.peek() !== CH_QUOTE) this.fail('invalid JSON: expected an object key');
      const key = this.readString();
      this.expect(CH_COLON, ':');
      onMember(key);
      const next = this.peek();
      this.pos++;
      if (next === CH_RBRACE) return;
      if (next !== CH_COMMA) this.fail('invalid JSON: expected , or }');
    }
  }

  /** Reads an array, calling onElement(index) with the cursor on each element; it must consume it. */
  readArray(onElement: (index: number) => void): void {
    this.expect(CH_LBRACKET, '[');
    if (this.peek() === CH_RBRACKET) {
      this.pos++;
      return;
    }
    for (let i = 0; ; i++) {
      onElement(i);
      const next = this.peek();
      this.pos++;
      if (next === CH_RBRACKET) return;
      if (next !== CH_COMMA) this.fail('invalid JSON: expected , or ]');
    }
  }

  readString(): string {
    this.expect(CH_QUOTE, 'a string');
    const start = this.pos;
    const hasEscape = this.scanStringBody();
    const end = this.pos - 1;
    // Escapes are rare; let V8 decode them exactly as JSON.parse would.
    return hasEscape ? (JSON.parse(this.buf.toString('utf8', start - 1, end + 1)) as string) : this.buf.toString('utf8', start, end);
  }

  readStringOrSkip(): string | undefined {
    if (this.peek() === CH_QUOTE) return this.readString();
    this.skipValue();
    return undefined;
  }

  readNumberOrSkip(): number {
    const ch = this.peek();
    if (ch !== CH_MINUS && (ch < CH_0 || ch > CH_9)) {
      this.skipValue();
      return Number.NaN;
    }
    const start = this.pos;
    this.skipNumber();
    return Number(this.buf.toString('latin1', start, this.pos));
  }

  /** Validates and skips one JSON value of any size without allocating it. Iterative: no stack overflow on deep nesting. */
  skipValue(): void {
    // One entry per open container, 1 = object, 0 = array. A typed array and a depth: emptying an
    // Array with `length = 0` dropped its backing store, so every skipped value allocated a new one
    // (74 MB in 27 s of the bench's churn).
    let depth = 0;
    for (;;) {
      const ch = this.peek();
      let opened = false;
      if (ch === CH_LBRACE || ch === CH_LBRACKET) {
        this.pos++;
        const isObject = ch === CH_LBRACE;
        if (this.peek() === (isObject ? CH_RBRACE : CH_RBRACKET)) {
          this.pos++;
        } else {
          if (depth === this.skipStack.length) this.growSkipStack();
          this.skipStack[depth++] = isObject ? 1 : 0;
          if (isObject) this.skipKeyAndColon();
          opened = true;
        }
      } else {
        this.skipScalar(ch);
      }
      if (opened) continue;
      // A value ended: close finished containers, or move to the next member/element.
      for (;;) {
        if (depth === 0) return;
        const top = this.skipStack[depth - 1] === 1;
        const next = this.peek();
        this.pos++;
        if (next === CH_COMMA) {
          if (top) this.skipKeyAndColon();
          break;
        }
        if (next === (top ? CH_RBRACE : CH_RBRACKET)) {
          depth--;
          continue;
        }
        this.pos--;
        this.fail(top ? 'invalid JSON: expected , or }' : 'invalid JSON: expected , or ]');
      }
    }
  }

  private growSkipStack(): void {
    const grown = new Uint8Array(this.skipStack.length * 2);
    grown.set(this.skipStack);
    this.skipStack = grown;
  }

  private skipKeyAndColon(): void {
    if (this.peek() !== CH_QUOTE) this.fail('invalid JSON: expected an object key');
    this.pos++;
    this.scanStringBody();
    this.expect(CH_COLON, ':');
  }

  private skipScalar(ch: number): void {
    if (ch === CH_QUOTE) {
      this.pos++;
      this.scanStringBody();
    } else if (ch === CH_MINUS || (ch >= CH_0 && ch <= CH_9)) {
      this.skipNumber();
    } else {
      this.skipLiteral();
    }
  }

  // Skipping allocates nothing (no views, no closures): a real-world report of a few MB is mostly
  // skipped, and each allocation here was garbage per scan (bench/README.md).
  private skipLiteral(): void {
    const literal = LITERALS.get(this.peek());
    if (literal === undefined) this.fail('invalid JSON: unexpected character');
    if (this.pos + literal.length > this.buf.length) {
      this.fail('Trivy output ends unexpectedly (truncated JSON)');
    }
    for (let k = 0; k < literal.length; k++) {
      if (this.buf[this.pos + k] !== literal[k]) this.fail('invalid JSON: unexpected character');
    }
    this.pos += literal.length;
  }

  /** JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
  private skipNumber(): void {
    let p = this.pos;
    if (this.at(p) === CH_MINUS) p++;
    if (this.at(p) === CH_0) p++;
    else p = this.skipDigits(p);
    if (this.at(p) === CH_DOT) p = this.skipDigits(p + 1);
    const e = this.at(p);
    if (e === CH_LOWER_E || e === CH_UPPER_E) {
      p++;
      const sign = this.at(p);
      if (sign === CH_PLUS || sign === CH_MINUS) p++;
      p = this.skipDigits(p);
    }
    this.pos = p;
  }

  /** The position after one or more digits from `p`; fails when there is none. */
  private skipDigits(p: number): number {
    let q = p;
    for (let d = this.at(q); d !== undefined && d >= CH_0 && d <= CH_9; d = this.at(q)) q++;
    if (q === p) this.failAt(p, 'invalid JSON: malformed number');
    return q;
  }

  private failAt(p: number, what: string): never {
    this.pos = p;
    if (p >= this.buf.length) this.fail('Trivy output ends unexpectedly (truncated JSON)');
    this.fail(what);
  }

  /** With pos just after the opening quote, moves past the closing quote. Returns whether escapes occurred. */
  private scanStringBody(): boolean {
    const buf = this.buf;
    const len = buf.length;
    let p = this.pos;
    let hasEscape = false;
    for (;;) {
      if (p >= len) this.failAt(p, 'truncated string');
      const ch = buf[p] as number;
      if (ch === CH_QUOTE) break;
      if (ch === CH_BACKSLASH) {
        hasEscape = true;
        const esc = this.at(p + 1);
        if (esc === CH_LOWER_U) {
          for (let k = 2; k < 6; k++) if (!isHex(this.at(p + k))) this.failAt(Math.min(p + k, len), 'invalid JSON: bad \\u escape');
          p += 6;
        } else if (esc !== undefined && SIMPLE_ESCAPES.has(esc)) {
          p += 2;
        } else {
          this.failAt(p + 1, 'invalid JSON: bad escape');
        }
        continue;
      }
      if (ch < CH_SPACE) this.failAt(p, 'invalid JSON: control character in string');
      p++;
    }
    this.pos = p + 1;
    return hasEscape;
  }
}
