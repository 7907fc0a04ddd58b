import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findingFingerprint, fixableCriticalIds } from '../kube/event-recorder.js';
import { parseTrivyReport } from '../scanner/trivy-report-parser.js';
import { ScanResults } from './scan-results.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/trivy');
const digestOf = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}`;

describe('ScanResults', () => {
  it('gives back each digest its own complete result after many other digests were recorded', () => {
    const scans = new ScanResults();
    const names = ['alpine-39.json', 'centos-7.json', 'debian-buster.json'];
    const results = names.map((name) => parseTrivyReport(readFileSync(path.join(fixtures, name), 'utf8')));
    const at = new Date('2026-11-26T10:00:00Z');
    for (let i = 0; i < 100; i += 1) {
      const result = results[i % results.length];
      if (result !== undefined) scans.recordResult(digestOf(i), result, at);
    }

    for (let i = 0; i < 100; i += 1) {
      const expected = results[i % results.length];
      expect(expected?.vulnerabilities.length).toBeGreaterThan(0);
      expect(scans.resultOf(digestOf(i))).toEqual(expected);
    }
  });

  it('keeps the result when a later scan fails, and replaces it with a newer one', () => {
    const scans = new ScanResults();
    const alpine = parseTrivyReport(readFileSync(path.join(fixtures, 'alpine-39.json'), 'utf8'));
    const centos = parseTrivyReport(readFileSync(path.join(fixtures, 'centos-7.json'), 'utf8'));
    scans.recordResult(digestOf(1), alpine, new Date('2026-11-26T10:00:00Z'));
    scans.recordFailure(digestOf(1), { reason: 'timeout', message: 'scan timed out after 10m', at: new Date('2026-11-26T11:00:00Z'), transient: true, attempts: 1 });

    expect(scans.resultOf(digestOf(1))).toEqual(alpine);
    expect(scans.get(digestOf(1))?.failure?.reason).toBe('timeout');

    scans.recordResult(digestOf(1), centos, new Date('2026-11-26T12:00:00Z'));
    scans.recordResult(digestOf(1), alpine, new Date('2026-11-26T09:00:00Z'));
    expect(scans.resultOf(digestOf(1))).toEqual(centos);
    expect(scans.get(digestOf(1))?.failure).toBeUndefined();
  });

  it('drops a list and takes back only the list the result was recorded with', () => {
    const scans = new ScanResults();
    const alpine = parseTrivyReport(readFileSync(path.join(fixtures, 'alpine-39.json'), 'utf8'));
    const centos = parseTrivyReport(readFileSync(path.join(fixtures, 'centos-7.json'), 'utf8'));
    const at = new Date('2026-11-26T10:00:00Z');
    scans.recordResult(digestOf(1), alpine, at, 0, 'fp-alpine');
    expect(scans.restoreList(digestOf(1), centos, 'fp-alpine')).toBe(false); // it holds its list

    const criticalIds = fixableCriticalIds(alpine.vulnerabilities);
    expect(criticalIds.length).toBeGreaterThan(0);
    const finding = { count: criticalIds.length, fingerprint: findingFingerprint(criticalIds) };
    expect(scans.get(digestOf(1))?.finding).toEqual(finding);

    expect(scans.dropList(digestOf(1))).toBe(true);
    // What events need of the list stays known without it.
    expect(scans.get(digestOf(1))?.finding).toEqual(finding);
    expect(scans.dropList(digestOf(1))).toBe(false);
    expect(scans.resultOf(digestOf(1))).toBeUndefined();
    expect(scans.get(digestOf(1))).toMatchObject({ scannedAt: at, preparedListFingerprint: 'fp-alpine', result: { summary: alpine.summary } });

    expect(scans.restoreList(digestOf(1), centos, 'fp-centos')).toBe(false);
    expect(scans.restoreList(digestOf(2), alpine, 'fp-alpine')).toBe(false); // nothing known
    expect(scans.restoreList(digestOf(1), alpine, 'fp-alpine')).toBe(true);
    expect(scans.resultOf(digestOf(1))).toEqual(alpine);
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
    expect(scans.resultOf(digestOf(1))).toEqual(centos);
    expect(scans.get(digestOf(1))).toMatchObject({ vulnerabilitiesOmitted: 2, preparedListFingerprint: 'fp' });
  });
});
