import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { digestLabelValue, reportName } from './report-name.js';

const HEX = '0123456789abcdef'.repeat(4);
const DIGEST = `sha256:${HEX}`;
const DNS1123_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

describe('reportName', () => {
  const cases: [string, string][] = [
    ['docker.io/library/nginx', 'nginx-0123456789ab'],
    ['ghcr.io/aquasecurity/trivy', 'trivy-0123456789ab'],
    ['registry.example.com:5000/team/my_app.server', 'my-app-server-0123456789ab'],
    ['quay.io/org/a__b--c', 'a-b-c-0123456789ab'],
    [`example.com/${'x'.repeat(60)}`, `${'x'.repeat(40)}-0123456789ab`],
    // cut at 40 then trimmed: no dash may precede the digest part's own dash
    [`example.com/${'a'.repeat(39)}_b`, `${'a'.repeat(39)}-0123456789ab`],
    ['example.com/...___', 'image-0123456789ab'],
    ['example.com/日本語', 'image-0123456789ab'],
    ['example.com/Ünïcödé-App', 'n-c-d-app-0123456789ab'],
    ['', 'image-0123456789ab'],
    ['docker.io/library/nginx:1.25', 'nginx-0123456789ab'],
    [`docker.io/library/nginx@${DIGEST}`, 'nginx-0123456789ab'],
  ];
  it.each(cases)('%j → %s', (repository, expected) => {
    expect(reportName(repository, DIGEST)).toBe(expected);
  });

  it('gives distinct valid names for distinct malformed digests', () => {
    const a = reportName('docker.io/library/nginx', 'sha256:XYZ');
    const b = reportName('docker.io/library/nginx', 'sha256:XYW');
    expect(a).toMatch(DNS1123_LABEL);
    expect(a).not.toBe(b);
  });

  it('is a DNS-1123 label of at most 53 characters for any input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), fc.string({ unit: 'binary', maxLength: 100 }), (repository, digest) => {
        const name = reportName(repository, digest);
        expect(name).toMatch(DNS1123_LABEL);
        expect(name.length).toBeLessThanOrEqual(53);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('digestLabelValue', () => {
  it('is the first 40 hex of the digest', () => {
    expect(digestLabelValue(DIGEST)).toBe(HEX.slice(0, 40));
  });

  it('is a legal label value for any input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (digest) => {
        const value = digestLabelValue(digest);
        expect(value).toMatch(LABEL_VALUE);
        expect(value.length).toBe(40);
      }),
      { numRuns: 1000 },
    );
  });
});
