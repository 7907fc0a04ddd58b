import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { benchFixtures, readStubLog, writeStubFiles } from './trivy-stub.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = benchFixtures(path.join(repoRoot, 'test/fixtures/trivy'));
const digest = `sha256:${'ab'.repeat(32)}`;
let work: string | undefined;
afterEach(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
  work = undefined;
});

/** The fast stand-in in a new work folder, replaying the fixtures for `images`. */
function fastStub(images: string[], referenceImages: { image: string; digest: string }[]) {
  work = mkdtempSync(path.join(tmpdir(), 'bench-stub-'));
  return writeStubFiles({
    kind: 'fast',
    workDir: work,
    stubPath: path.join(repoRoot, 'test/trivy-stub/trivy'),
    fastStubPath: path.join(repoRoot, 'bench/fast-trivy.sh'),
    fixtures,
    images,
    referenceImages,
    scanMs: 0,
  });
}

describe('the fast Trivy stand-in', () => {
  it('scans an image by its tag as Trivy would: RepoDigests names the repository and the digest the tag resolves to', () => {
    const stub = fastStub(['registry.bench.local/app-00001:1.0'], [{ image: 'registry.bench.local/new-00001:1.0', digest }]);
    const scan = (ref: string): { RepoDigests?: string[] } => {
      const out = path.join(work ?? '', 'out.json');
      execFileSync(stub.trivyPath, ['image', '--format', 'json', '--output', out, ref]);
      return (JSON.parse(readFileSync(out, 'utf8')) as { Metadata: { RepoDigests?: string[] } }).Metadata;
    };
    expect(scan('registry.bench.local/new-00001:1.0').RepoDigests).toEqual([`registry.bench.local/new-00001@${digest}`]);
    // An image of the cluster is scanned by digest and replays its fixture as recorded.
    const pinned = `registry.bench.local/app-00001@sha256:${'cd'.repeat(32)}`;
    expect(scan(pinned)).toEqual((JSON.parse(readFileSync(fixtures[0] ?? '', 'utf8')) as { Metadata: unknown }).Metadata);
    expect(readStubLog(stub.logPath).filter((e) => e.event === 'end').map((e) => e.exitCode)).toEqual([0, 0]);
  });

  it('converts a report the operator moved out of the scan folder (named after its digest), and replays its fixture from that SBOM', () => {
    const stub = fastStub(['registry.bench.local/app-00002:1.0'], []);
    const at = (name: string) => path.join(work ?? '', name);
    execFileSync(stub.trivyPath, ['image', '--format', 'json', '--output', at('report.json'), `registry.bench.local/app-00002@${digest}`]);
    const held = at(`sha256-${'ab'.repeat(32)}.linux-amd64.report.json`);
    copyFileSync(at('report.json'), held);
    execFileSync(stub.trivyPath, ['convert', '--format', 'cyclonedx', '--output', at('sbom.cdx.json'), held]);
    execFileSync(stub.trivyPath, ['sbom', '--format', 'json', '--output', at('rescan.json'), at('sbom.cdx.json')]);
    expect(readFileSync(at('rescan.json'), 'utf8')).toBe(readFileSync(at('report.json'), 'utf8'));
  });
});
