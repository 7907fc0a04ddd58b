import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseImageReference } from '../images/image-reference.js';
import { ScanFailure } from '../scanner/scan-failure.js';
import type { ScanResult } from '../scanner/scan-result.js';
import { ReferenceScans } from './reference-scans.js';
import type { ReferenceTarget } from './reference-scans.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const logger = pino({ level: 'silent' });

function result(vulns: { severity: 'CRITICAL' | 'HIGH'; fixedVersion?: string }[]): ScanResult {
  const vulnerabilities = vulns.map((v, i) => ({ id: `CVE-${i}`, package: 'p', installedVersion: '1', target: 't', ...v }));
  const critical = vulns.filter((v) => v.severity === 'CRITICAL').length;
  const high = vulns.length - critical;
  return { vulnerabilities, summary: { critical, high, medium: 0, low: 0, unknown: 0, total: vulns.length, fixable: vulns.filter((v) => v.fixedVersion).length }, scanner: { name: 'Trivy' } };
}

/** A scan function whose calls the test finishes by hand. */
function manualScanner() {
  const calls: { target: ReferenceTarget; finish: (r: { digest: string; result: ScanResult } | Error) => void }[] = [];
  const scan = (target: ReferenceTarget) =>
    new Promise<{ digest: string; result: ScanResult }>((resolve, reject) => {
      calls.push({ target, finish: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
    });
  return { calls, scan };
}

describe('ReferenceScans', () => {
  it('scans a tag once however often it is asked, then answers its digest and counts from memory', async () => {
    const { calls, scan } = manualScanner();
    const scans = new ReferenceScans({ scan, isKnown: () => false, logger });
    const ref = parseImageReference('registry.corp.example/shop/app:2');
    expect(scans.request(ref)).toBe(true);
    expect(scans.request(ref)).toBe(false);
    expect(calls.map((c) => c.target)).toEqual([{ repository: 'registry.corp.example/shop/app', tag: '2' }]);
    expect(scans.digestOfTag('registry.corp.example/shop/app', '2')).toBeUndefined();
    calls[0]?.finish({ digest: DIGEST, result: result([{ severity: 'CRITICAL', fixedVersion: '2' }, { severity: 'CRITICAL' }, { severity: 'HIGH', fixedVersion: '3' }]) });
    await expect.poll(() => scans.pending()).toBe(0);
    expect(scans.digestOfTag('registry.corp.example/shop/app', '2')).toBe(DIGEST);
    expect(scans.scanOfDigest(DIGEST)).toEqual({ critical: 2, high: 1, fixableCritical: 1, fixableHigh: 1 });
    // Asked again (the webhook thread's copy did not have the result yet; tag or digest): no second scan.
    expect(scans.request(ref)).toBe(false);
    expect(scans.request(parseImageReference(`registry.corp.example/shop/app@${DIGEST}`))).toBe(false);
    expect(calls).toHaveLength(1);
  });

  it('runs one scan at a time, keeps at most maxQueued waiting, and skips what became known meanwhile', async () => {
    const { calls, scan } = manualScanner();
    const known = new Set<string>();
    const scans = new ReferenceScans({ scan, isKnown: (t) => known.has(`${t.repository}:${t.tag ?? ''}`), logger, maxQueued: 2 });
    expect(scans.request(parseImageReference('a.example/x:1'))).toBe(true);
    expect(scans.request(parseImageReference('a.example/y:1'))).toBe(true);
    expect(scans.request(parseImageReference('a.example/z:1'))).toBe(true);
    expect(scans.request(parseImageReference('a.example/w:1'))).toBe(false);
    expect(calls).toHaveLength(1);
    known.add('a.example/y:1');
    calls[0]?.finish(new ScanFailure('not_found', 'gone', false));
    await expect.poll(() => calls.length).toBe(2);
    expect(calls[1]?.target).toEqual({ repository: 'a.example/z', tag: '1' });
  });

  it('does not try a failed reference again before retryAfterMs', async () => {
    const { calls, scan } = manualScanner();
    let now = 0;
    const scans = new ReferenceScans({ scan, isKnown: () => false, logger, retryAfterMs: 1000, now: () => now });
    const ref = parseImageReference('a.example/x:1');
    scans.request(ref);
    calls[0]?.finish(new ScanFailure('auth', 'denied', false));
    await expect.poll(() => scans.pending()).toBe(0);
    expect(scans.request(ref)).toBe(false);
    now = 1000;
    expect(scans.request(ref)).toBe(true);
  });

  it('scans a pinned digest as itself', () => {
    const { calls, scan } = manualScanner();
    const scans = new ReferenceScans({ scan, isKnown: () => false, logger });
    scans.request(parseImageReference(`ghcr.io/acme/app@${DIGEST}`));
    expect(calls[0]?.target).toEqual({ repository: 'ghcr.io/acme/app', digest: DIGEST });
  });
});
