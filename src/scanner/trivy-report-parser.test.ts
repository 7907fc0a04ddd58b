import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SEVERITIES } from './scan-result.js';
import type { ScanResult, Severity } from './scan-result.js';
import { parseTrivyReport, sortVulnerabilities, summarize, TrivyReportError } from './trivy-report-parser.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const fixturesDir = path.resolve(repoRoot, 'test/fixtures/trivy');
const fixtureFiles = [fixturesDir, path.join(fixturesDir, 'real-world')].flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => path.join(dir, f)),
);

type RawVuln = Record<string, unknown>;
interface RawResult {
  Target?: string;
  Class?: string;
  Vulnerabilities?: RawVuln[] | null;
}

/** Reference reading of a report straight from JSON.parse, independent of the parser under test. */
function rawVulns(doc: { Results?: RawResult[] | null }): { v: RawVuln; target: string; klass?: string }[] {
  return (doc.Results ?? []).flatMap((r) => (r.Vulnerabilities ?? []).map((v) => ({ v, target: r.Target ?? '', klass: r.Class })));
}

function expectedCounts(doc: { Results?: RawResult[] | null }) {
  const entries = rawVulns(doc);
  const bySeverity = (s: string) => entries.filter((e) => e.v.Severity === s).length;
  return {
    critical: bySeverity('CRITICAL'),
    high: bySeverity('HIGH'),
    medium: bySeverity('MEDIUM'),
    low: bySeverity('LOW'),
    unknown: bySeverity('UNKNOWN'),
    total: entries.length,
    fixable: entries.filter((e) => typeof e.v.FixedVersion === 'string' && e.v.FixedVersion !== '').length,
  };
}

function parseOrError(input: string | Buffer): ScanResult | TrivyReportError {
  try {
    return parseTrivyReport(input);
  } catch (err) {
    if (err instanceof TrivyReportError) return err;
    throw err;
  }
}

const minimalVuln = { VulnerabilityID: 'CVE-1', PkgName: 'openssl', InstalledVersion: '1.0', Severity: 'HIGH' };
const report = (extra: Record<string, unknown>) => JSON.stringify({ SchemaVersion: 2, ...extra });

describe('parseTrivyReport on real Trivy reports', () => {
  it('finds the recorded fixtures', () => {
    expect(fixtureFiles.length).toBeGreaterThanOrEqual(16);
  });

  it.each(fixtureFiles.map((f) => [path.relative(fixturesDir, f), f]))('%s: counts every entry as Trivy does', (_name, file) => {
    const bytes = readFileSync(file);
    const doc = JSON.parse(bytes.toString('utf8')) as { Results?: RawResult[]; Metadata?: { OS?: { Family?: string; Name?: string } }; Trivy?: { Version?: string } };
    const result = parseTrivyReport(bytes);

    expect(result.summary).toEqual(expectedCounts(doc));
    // Every raw entry appears once, with its package, version, fix and target.
    const key = (id: string, pkg: string, ver: string, target: string, fixed: string | undefined) => `${id}|${pkg}|${ver}|${target}|${fixed ?? ''}`;
    const expectedKeys = rawVulns(doc)
      .map(({ v, target }) => key(String(v.VulnerabilityID), String(v.PkgName), String(v.InstalledVersion), target, (v.FixedVersion as string | undefined) || undefined))
      .sort();
    const actualKeys = result.vulnerabilities.map((v) => key(v.id, v.package, v.installedVersion, v.target, v.fixedVersion)).sort();
    expect(actualKeys).toEqual(expectedKeys);

    const os = doc.Metadata?.OS;
    expect(result.os).toBe(os?.Family && os.Family !== 'none' ? `${os.Family} ${os.Name}` : undefined);
    expect(result.scanner).toEqual(doc.Trivy?.Version ? { name: 'Trivy', version: doc.Trivy.Version } : { name: 'Trivy' });
  });

  it('keeps title, primary URL and class from the report', () => {
    const file = path.join(fixturesDir, 'real-world/trustdsai-alpine-3.19.json');
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { Results: RawResult[] };
    const first = rawVulns(doc)[0];
    const result = parseTrivyReport(readFileSync(file, 'utf8'));
    const match = result.vulnerabilities.find((v) => v.id === first?.v.VulnerabilityID && v.package === first.v.PkgName);
    expect(match).toMatchObject({ title: first?.v.Title, url: first?.v.PrimaryURL, class: first?.klass, target: first?.target });
  });

  it('sorts worst first, and the order does not depend on the order Trivy wrote', () => {
    const file = path.join(fixturesDir, 'real-world/securecodebox-juice-shop-v10.2.0.json');
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { Results: RawResult[] };
    const result = parseTrivyReport(JSON.stringify(doc));
    const ranks = result.vulnerabilities.map((v) => SEVERITIES.indexOf(v.severity));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    const shuffled = { ...doc, Results: [...doc.Results].reverse().map((r) => ({ ...r, Vulnerabilities: [...(r.Vulnerabilities ?? [])].reverse() })) };
    expect(parseTrivyReport(JSON.stringify(shuffled))).toEqual(result);
  });
});

describe('summarize', () => {
  it('counts the same CVE in two packages twice, as Trivy does', () => {
    const v = { id: 'CVE-2024-1', severity: 'MEDIUM' as const, package: 'busybox', installedVersion: '1', target: 't' };
    expect(summarize([v, { ...v, package: 'ssl_client', fixedVersion: '2' }])).toEqual({ critical: 0, high: 0, medium: 2, low: 0, unknown: 0, total: 2, fixable: 1 });
  });
});

describe('parseTrivyReport tolerance', () => {
  it('treats a missing or null Results or Vulnerabilities key as no findings', () => {
    for (const input of [report({}), report({ Results: null }), report({ Results: [{ Target: 'x' }] }), report({ Results: [{ Target: 'x', Vulnerabilities: null }] })]) {
      expect(parseTrivyReport(input).summary.total).toBe(0);
    }
  });

  it('ignores unknown keys and optional fields of the wrong type', () => {
    const result = parseTrivyReport(
      report({
        Future: { deeply: [{ nested: [1, 2.5e-3, true, null, '\u00e9\n'] }] },
        Results: [{ Vulnerabilities: [{ ...minimalVuln, Title: 42, PrimaryURL: ['x'], FixedVersion: {}, CVSS: { nvd: { V3Score: 9.8 } } }], Extra: 1, Target: 'img (alpine 3.19)' }],
      }),
    );
    expect(result.vulnerabilities).toEqual([{ id: 'CVE-1', severity: 'HIGH', package: 'openssl', installedVersion: '1.0', target: 'img (alpine 3.19)' }]);
    expect(result.summary.fixable).toBe(0);
  });

  it('skips an unknown field nested thousands of levels deep, and rejects it when a bracket is missing', () => {
    const depth = 5000;
    const deep = `${'[{"a":'.repeat(depth)}1${'}]'.repeat(depth)}`;
    const vulnerability = JSON.stringify({ ...minimalVuln, FixedVersion: '1.1' });
    const text = `{"SchemaVersion":2,"Future":${deep},"Results":[{"Target":"t","Vulnerabilities":[${vulnerability.slice(0, -1)},"CVSS":${deep}}]}]}`;
    expect(parseTrivyReport(text).summary).toMatchObject({ high: 1, fixable: 1, total: 1 });
    expect(() => parseTrivyReport(text.replace(`1${'}]'.repeat(depth)}`, `1${'}]'.repeat(depth - 1)}}`))).toThrow(/invalid JSON/);
  });

  it('counts an unrecognised severity as UNKNOWN and accepts any letter case', () => {
    const result = parseTrivyReport(report({ Results: [{ Vulnerabilities: [{ ...minimalVuln, Severity: 'SEVERE' }, { ...minimalVuln, Severity: 'critical' }] }] }));
    expect(result.summary).toMatchObject({ unknown: 1, critical: 1, total: 2 });
  });

  it('does not count an empty FixedVersion as fixable', () => {
    const result = parseTrivyReport(report({ Results: [{ Vulnerabilities: [{ ...minimalVuln, FixedVersion: '' }, { ...minimalVuln, FixedVersion: '1.1' }] }] }));
    expect(result.summary.fixable).toBe(1);
  });

  it('decodes escaped strings exactly like JSON.parse', () => {
    const title = 'a \u003cb\u003e & "q" \\ \u2028 \ud83d\ude00';
    const input = report({ Results: [{ Vulnerabilities: [{ ...minimalVuln, Title: title }] }] });
    expect(parseTrivyReport(input).vulnerabilities[0]?.title).toBe(title);
  });
});

describe('parseTrivyReport rejects what is not a Trivy report', () => {
  const fixture = readFileSync(path.join(fixturesDir, 'alpine-39.json'), 'utf8');
  const cases: [string, string, RegExp][] = [
    ['empty output', '', /empty/],
    ['only whitespace', ' \n', /empty/],
    ['plain text', 'FATAL something', /not a JSON object/],
    ['a truncated report', fixture.slice(0, fixture.length / 2), /truncated|ends unexpectedly/],
    ['trailing garbage', `${fixture}xyz`, /trailing/],
    ['SchemaVersion 1 (bare array)', '[]', /bare JSON array/],
    ['SchemaVersion 3', report({}).replace('2', '3'), /SchemaVersion 3/],
    ['SchemaVersion as a string', '{"SchemaVersion":"2"}', /not a number/],
    ['no SchemaVersion', '{"Results":[]}', /no SchemaVersion/],
    ['Results is an object', report({ Results: {} }), /Results is not an array/],
    ['a Result that is a number', report({ Results: [1] }), /Results\[0\] is not an object/],
    ['a vulnerability that is null', report({ Results: [{ Vulnerabilities: [null] }] }), /Vulnerabilities\[0\] is not an object/],
    ['a vulnerability without VulnerabilityID', report({ Results: [{ Vulnerabilities: [{ ...minimalVuln, VulnerabilityID: undefined }] }] }), /no VulnerabilityID/],
    ['a numeric Severity', report({ Results: [{ Vulnerabilities: [{ ...minimalVuln, Severity: 3 }] }] }), /Severity is not a string/],
    ['a raw control character in a string', '{"SchemaVersion":2,"X":"a\u0001b"}', /control character/],
    ['a bad escape', '{"SchemaVersion":2,"X":"\\x"}', /bad escape/],
    ['a leading zero', '{"SchemaVersion":02}', /expected , or }/],
    ['an unquoted key', '{SchemaVersion:2}', /object key/],
  ];
  it.each(cases)('%s', (_name, input, message) => {
    const outcome = parseOrError(input);
    expect(outcome).toBeInstanceOf(TrivyReportError);
    expect((outcome as TrivyReportError).reason).toBe('invalid_output');
    expect((outcome as TrivyReportError).message).toMatch(message);
  });
});

describe('parseTrivyReport properties', () => {
  const base = readFileSync(path.join(fixturesDir, 'real-world/trustdsai-alpine-3.19.json'), 'utf8');
  const baseResult = parseTrivyReport(base);

  it('returns a result or a TrivyReportError for any text or bytes, never another exception', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.uint8Array().map((a) => Buffer.from(a)), fc.string({ unit: 'binary' })), (input) => {
        const outcome = parseOrError(input);
        expect(outcome instanceof TrivyReportError || Array.isArray(outcome.vulnerabilities)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('rejects a real report cut at any point', () => {
    const trimmed = base.trimEnd();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: trimmed.length - 1 }), (cut) => {
        expect(parseOrError(trimmed.slice(0, cut))).toBeInstanceOf(TrivyReportError);
      }),
      { numRuns: 500 },
    );
  });

  it('accepts exactly the documents JSON.parse accepts, when the damage is in a key it skips', () => {
    // Any text placed as the value of an unknown key: valid JSON must not change the result, and
    // invalid JSON must be rejected, just as JSON.parse would reject the whole document.
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string(), fc.json().map((j) => j.slice(0, -1))), (value) => {
        const doc = `{"SchemaVersion":2,"Unknown":${value},${base.trim().slice(1)}`;
        let valid = true;
        try {
          JSON.parse(doc);
        } catch {
          valid = false;
        }
        const outcome = parseOrError(doc);
        if (valid) expect(outcome).toEqual(baseResult);
        else expect(outcome).toBeInstanceOf(TrivyReportError);
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees with a reference reading of generated reports', () => {
    const severity = fc.constantFrom<string>(...SEVERITIES, 'low', 'bogus');
    const vuln = fc.record(
      {
        VulnerabilityID: fc.string(),
        PkgName: fc.string(),
        InstalledVersion: fc.string(),
        Severity: severity,
        FixedVersion: fc.string(),
        Title: fc.string(),
        PrimaryURL: fc.webUrl(),
        Description: fc.string(),
      },
      { requiredKeys: ['VulnerabilityID', 'PkgName', 'InstalledVersion', 'Severity'] },
    );
    const result = fc.record({ Target: fc.string(), Class: fc.constantFrom('os-pkgs', 'lang-pkgs'), Vulnerabilities: fc.option(fc.array(vuln, { maxLength: 8 })) }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.option(fc.array(result, { maxLength: 5 })), (results) => {
        const doc = { SchemaVersion: 2, Results: results };
        const parsed = parseTrivyReport(JSON.stringify(doc, null, 2));
        const entries = rawVulns(doc as { Results: RawResult[] | null });
        const normalise = (s: string): Severity => ((SEVERITIES as readonly string[]).includes(s.toUpperCase()) ? (s.toUpperCase() as Severity) : 'UNKNOWN');
        const expected = entries.map(({ v, target, klass }) => {
          const out: Record<string, unknown> = { id: v.VulnerabilityID, severity: normalise(String(v.Severity)), package: v.PkgName, installedVersion: v.InstalledVersion, target };
          if (v.FixedVersion) out.fixedVersion = v.FixedVersion;
          if (v.Title !== undefined) out.title = v.Title;
          if (v.PrimaryURL !== undefined) out.url = v.PrimaryURL;
          if (klass !== undefined) out.class = klass;
          return out;
        });
        expect(parsed.vulnerabilities).toEqual(sortVulnerabilities(expected as never));
        const count = (sev: Severity) => expected.filter((e) => e.severity === sev).length;
        expect(parsed.summary).toEqual({
          critical: count('CRITICAL'), high: count('HIGH'), medium: count('MEDIUM'), low: count('LOW'), unknown: count('UNKNOWN'),
          total: entries.length, fixable: expected.filter((e) => e.fixedVersion !== undefined).length,
        });
      }),
      { numRuns: 300 },
    );
  });
});

describe('entries Trivy wrote with empty (omitted) fields', () => {
  it('keeps an entry without InstalledVersion, PkgName or Severity instead of rejecting the report', () => {
    const input = report({
      Results: [
        {
          Target: 'app',
          Vulnerabilities: [
            { ...minimalVuln, InstalledVersion: undefined },
            { ...minimalVuln, VulnerabilityID: 'CVE-2', PkgName: undefined },
            { ...minimalVuln, VulnerabilityID: 'CVE-3', Severity: undefined },
          ],
        },
      ],
    });
    const result = parseTrivyReport(input);
    expect(result.summary).toMatchObject({ total: 3, high: 2, unknown: 1 });
    expect(result.vulnerabilities.find((v) => v.id === 'CVE-1')?.installedVersion).toBe('');
    expect(result.vulnerabilities.find((v) => v.id === 'CVE-2')?.package).toBe('');
  });
});
