import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findingFingerprint } from '../kube/event-recorder.js';
import type { ScanResult } from '../scanner/scan-result.js';
import { parseTrivyReport } from '../scanner/trivy-report-parser.js';
import { preparedScanState } from './report-builder.js';
import { fixableCriticalIdsOfFixes } from './report-fixes.js';
import { ScanResults } from './scan-results.js';
import { FIXTURES_DIR as fixtures } from './testdata/trivy-fixtures.js';

/** A result as the reconciler records it: prepared (default limits), with its fix entries. */
function prepared(result: ScanResult) {
  const state = preparedScanState({ phase: 'Scanned', result });
  return { ...state, result: state.result ?? result, fixes: state.fixes ?? [] };
}
const digestOf = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}`;

describe('ScanResults', () => {
  it('gives back each digest its own complete result after many other digests were recorded', () => {
    const scans = new ScanResults();
    const names = ['alpine-39.json', 'centos-7.json', 'debian-buster.json'];
    const results = names.map((name) => parseTrivyReport(readFileSync(path.join(fixtures, name), 'utf8')));
    const at = new Date('2026-11-26T10:00:00Z');
    for (let i = 0; i < 100; i += 1) {
      const result = results[i % results.length];
      if (result !== undefined) scans.recordResult(digestOf(i), prepared(result), at);
    }

    for (let i = 0; i < 100; i += 1) {
      const expected = results[i % results.length];
      expect(expected?.summary.fixable).toBeGreaterThan(0);
      const kept = expected === undefined ? undefined : prepared(expected);
      expect(kept?.fixes.length).toBeGreaterThan(0);
      expect(scans.resultOf(digestOf(i))).toEqual({ result: kept?.result, fixes: kept?.fixes });
    }
  });

  it('keeps the result when a later scan fails, and replaces it with a newer one', () => {
    const scans = new ScanResults();
    const alpine = parseTrivyReport(readFileSync(path.join(fixtures, 'alpine-39.json'), 'utf8'));
    const centos = parseTrivyReport(readFileSync(path.join(fixtures, 'centos-7.json'), 'utf8'));
    scans.recordResult(digestOf(1), { result: alpine }, new Date('2026-11-26T10:00:00Z'));
    scans.recordFailure(digestOf(1), { reason: 'timeout', message: 'scan timed out after 10m', at: new Date('2026-11-26T11:00:00Z'), transient: true, attempts: 1 });

    expect(scans.resultOf(digestOf(1))?.result).toEqual(alpine);
    expect(scans.get(digestOf(1))?.failure?.reason).toBe('timeout');

    scans.recordResult(digestOf(1), { result: centos }, new Date('2026-11-26T12:00:00Z'));
    scans.recordResult(digestOf(1), { result: alpine }, new Date('2026-11-26T09:00:00Z'));
    expect(scans.resultOf(digestOf(1))?.result).toEqual(centos);
    expect(scans.get(digestOf(1))?.failure).toBeUndefined();
  });

  it('knows the fixable CRITICAL finding of a result without unpacking its lists', () => {
    const scans = new ScanResults();
    const alpine = parseTrivyReport(readFileSync(path.join(fixtures, 'alpine-39.json'), 'utf8'));
    const kept = prepared(alpine);
    scans.recordResult(digestOf(1), { ...kept, preparedListFingerprint: 'fp-alpine' }, new Date('2026-11-26T10:00:00Z'));
    const criticalIds = fixableCriticalIdsOfFixes(kept.fixes);
    expect(criticalIds.length).toBeGreaterThan(0);
    expect(scans.get(digestOf(1))?.finding).toEqual({ count: criticalIds.length, fingerprint: findingFingerprint(criticalIds) });
    expect(scans.get(digestOf(1))?.preparedListFingerprint).toBe('fp-alpine');
  });

  it('prepares a result learnt from a report only when it is kept, and keeps what prepare returns', () => {
    const scans = new ScanResults();
    const alpine = parseTrivyReport(readFileSync(path.join(fixtures, 'alpine-39.json'), 'utf8'));
    const centos = parseTrivyReport(readFileSync(path.join(fixtures, 'centos-7.json'), 'utf8'));
    const prepared: string[] = [];
    const prepare = (state: { result?: typeof alpine }) => {
      prepared.push(state.result === alpine ? 'alpine' : 'other');
      return { ...state, result: centos, vulnerabilitiesOmitted: 2, preparedListFingerprint: 'fp' };
    };
    scans.seed(digestOf(1), { result: alpine, scannedAt: new Date('2026-11-26T10:00:00Z') }, prepare);
    scans.seed(digestOf(1), { result: alpine, scannedAt: new Date('2026-11-26T09:00:00Z') }, prepare);

    expect(prepared).toEqual(['alpine']);
    expect(scans.resultOf(digestOf(1))?.result).toEqual(centos);
    expect(scans.get(digestOf(1))).toMatchObject({ vulnerabilitiesOmitted: 2, preparedListFingerprint: 'fp' });
  });
});
