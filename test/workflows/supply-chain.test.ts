// The workflows, renovate.json, the Dockerfile and the manifests keep the pinning rule of
// supply-chain.ts; and that checker does fail on an unpinned action, a write-all, an extra write, an
// image nobody pins, a malicious Trivy.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { dockerfileProblems, manifestImageProblems, PinningRule, renovateProblems, trivyVersionProblems, workflowProblems, type RenovateConfig } from './supply-chain.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const read = (p: string): string => readFileSync(path.join(repoRoot, p), 'utf8');
const renovate = JSON.parse(read('renovate.json')) as RenovateConfig;
const rule = new PinningRule(renovate);

/** The writes each job may have; every job not listed writes nothing. */
const ALLOWED_WRITES: Record<string, Record<string, string[]>> = {
  '.github/workflows/ci.yml': {},
  '.github/workflows/release.yml': {
    image: ['packages', 'id-token', 'attestations'],
    publish: ['contents'],
  },
};
const OWN_IMAGES = ['imagescan-operator', 'ghcr.io/imagescan-operator/imagescan-operator'];

const workflows = readdirSync(path.join(repoRoot, '.github/workflows'))
  .filter((f) => /\.ya?ml$/.test(f))
  .map((f) => `.github/workflows/${f}`);
const manifests = readdirSync(path.join(repoRoot, 'manifests'), { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => `manifests/${f.split(path.sep).join('/')}`);

describe('the repository keeps the pinning rule', () => {
  it('knows the writes of every workflow', () => {
    expect(workflows.sort()).toEqual(Object.keys(ALLOWED_WRITES).sort());
  });

  it.each(workflows)('%s: actions pinned by SHA, images pinned or covered, least permissions, no malicious Trivy', (file) => {
    expect(workflowProblems(file, read(file), rule, ALLOWED_WRITES[file])).toEqual([]);
  });

  it('checks every action the workflows use (and they pin the tag commits named in their comments)', () => {
    const uses = workflows.flatMap((f) => [...read(f).matchAll(/uses: (\S+)(?: # (\S+))?/g)].map((m) => ({ uses: m[1] ?? '', tag: m[2] })));
    expect(uses.length).toBeGreaterThanOrEqual(15);
    for (const u of uses) {
      expect(u.uses, 'pinned').toMatch(/@[0-9a-f]{40}$/);
      expect(u.tag, `${u.uses} names its release tag`).toMatch(/^v\d+\.\d+\.\d+$/);
    }
    // One action, one commit: the same tag is not pinned to two SHAs.
    const byAction = new Map<string, Set<string>>();
    for (const u of uses) byAction.set(u.uses.split('@')[0] ?? '', (byAction.get(u.uses.split('@')[0] ?? '') ?? new Set()).add(u.uses));
    for (const [action, pins] of byAction) expect(pins.size, action).toBe(1);
  });

  it('renovate.json pins images and actions, groups npm updates and never offers Trivy 0.69.4-0.69.6', () => {
    expect(renovateProblems(renovate)).toEqual([]);
  });

  it('the Dockerfile writes its base images out, each pinned or covered, and ships a safe Trivy', () => {
    expect(dockerfileProblems('Dockerfile', read('Dockerfile'), rule)).toEqual([]);
  });

  it.each(manifests)('%s: images pinned or covered, no malicious Trivy', (file) => {
    expect(manifestImageProblems(file, read(file), rule, OWN_IMAGES)).toEqual([]);
  });

  it('the README names no malicious Trivy version as the one in use', () => {
    expect(trivyVersionProblems('README.md', read('README.md'))).toEqual([]);
  });
});

describe('the release workflow', () => {
  const release = parse(read('.github/workflows/release.yml')) as {
    on: { push: { tags: string[] } };
    jobs: Record<string, { needs?: string | string[]; steps: { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string> }[] }>;
  };
  const steps = (job: string) => release.jobs[job]?.steps ?? [];
  const runs = (job: string) => steps(job).flatMap((s) => (s.run === undefined ? [] : [s.run]));

  it('runs on version tags only, after the README test command', () => {
    expect(Object.keys(release.on)).toEqual(['push']);
    expect(release.on.push.tags).toEqual(['v[0-9]+.[0-9]+.[0-9]+']);
    expect(runs('test')).toContain('npm ci && npm test');
    expect(release.jobs['image']?.needs).toBe('test');
  });

  it('pushes amd64 and arm64 with an SBOM and provenance, signs and attests that digest', () => {
    const push = steps('image').find((s) => s.with?.['push'] === true);
    expect(push?.uses).toMatch(/^docker\/build-push-action@/);
    expect(push?.with).toMatchObject({ platforms: 'linux/amd64,linux/arm64', sbom: true, provenance: 'mode=max' });
    const sign = steps('image').find((s) => s.run?.startsWith('cosign sign'));
    expect(sign?.run).toBe('cosign sign --yes "$IMAGE@$DIGEST"');
    expect(sign?.env?.['DIGEST']).toBe('${{ steps.push.outputs.digest }}');
    const attest = steps('image').find((s) => s.uses?.startsWith('actions/attest-build-provenance@'));
    expect(attest?.with).toMatchObject({ 'subject-digest': '${{ steps.push.outputs.digest }}', 'push-to-registry': true });
    // The scan comes before the push.
    const order = steps('image').map((s) => (s.run?.includes('--exit-code 1') ? 'scan' : s.with?.['push'] === true ? 'push' : ''));
    expect(order.indexOf('scan')).toBeGreaterThan(-1);
    expect(order.indexOf('scan')).toBeLessThan(order.indexOf('push'));
  });

  it('publishes the manifests rendered with the pushed digest', () => {
    expect(runs('publish')).toContain('scripts/release-manifests.sh "$IMAGE@$DIGEST" dist');
    expect(runs('publish').some((r) => r.startsWith('gh release create "$TAG" dist/*.yaml'))).toBe(true);
    expect(steps('publish').find((s) => s.run?.startsWith('scripts/release-manifests.sh'))?.env).toEqual({
      IMAGE: '${{ needs.image.outputs.image }}',
      DIGEST: '${{ needs.image.outputs.digest }}',
    });
  });
});

describe('the checker fails on what it must refuse', () => {
  const good = `
name: x
on: push
permissions:
  contents: read
env:
  TRIVY_IMAGE: aquasec/trivy:0.74.0
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0
      - run: make
`;
  const file = '.github/workflows/x.yml';

  it('accepts the good workflow it is varied from', () => {
    expect(workflowProblems(file, good, rule)).toEqual([]);
  });

  it('refuses an action pinned by tag or branch, or by a short SHA', () => {
    for (const ref of ['v6', 'main', 'd23441a']) {
      const bad = good.replace(/checkout@\S+/, `checkout@${ref}`);
      expect(workflowProblems(file, bad, rule)).toEqual([`${file}: uses actions/checkout@${ref}: an action must be pinned to a full 40-hex commit SHA`]);
    }
    expect(workflowProblems(file, good.replace('      - run: make', '      - uses: docker://alpine:3.20'), rule)).toEqual([`${file}: docker://alpine:3.20 is not pinned by digest`]);
    const reusable = good.replace('    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0\n      - run: make', '    uses: octo/workflows/.github/workflows/build.yml@main');
    expect(workflowProblems(file, reusable, rule)).toEqual([`${file}: uses octo/workflows/.github/workflows/build.yml@main: an action must be pinned to a full 40-hex commit SHA`]);
  });

  it('refuses write-all at the top or in a job, a write at the top, and a job write not in its list', () => {
    expect(workflowProblems(file, good.replace('permissions:\n  contents: read', 'permissions: write-all'), rule)).toEqual([`${file}: permissions is write-all`]);
    const jobWriteAll = good.replace('    runs-on: ubuntu-latest', '    runs-on: ubuntu-latest\n    permissions: write-all');
    expect(workflowProblems(file, jobWriteAll, rule)).toEqual([`${file}: jobs.build.permissions is write-all`]);
    expect(workflowProblems(file, good.replace('contents: read', 'contents: write'), rule)).toEqual([`${file}: top-level permissions write contents for every job`]);
    const jobWrite = good.replace('    runs-on: ubuntu-latest', '    runs-on: ubuntu-latest\n    permissions:\n      contents: read\n      packages: write');
    expect(workflowProblems(file, jobWrite, rule)).toEqual([`${file}: job build writes packages, which is not in its list (none)`]);
    expect(workflowProblems(file, jobWrite, rule, { build: ['packages'] })).toEqual([]);
    expect(workflowProblems(file, good.replace('permissions:\n  contents: read\n', ''), rule)).toEqual([
      `${file}: no top-level permissions (set {} or contents: read; jobs add what they need)`,
    ]);
  });

  it('refuses an image by tag that no Renovate manager pins, and a malicious Trivy', () => {
    const noCustomManager = new PinningRule({ ...renovate, customManagers: [] });
    expect(workflowProblems(file, good, noCustomManager)).toEqual([`${file}: TRIVY_IMAGE: aquasec/trivy:0.74.0 is neither pinned by digest nor found by a Renovate manager that pins it`]);
    const pinned = good.replace('aquasec/trivy:0.74.0', `aquasec/trivy:0.74.0@sha256:${'0'.repeat(64)}`);
    expect(workflowProblems(file, pinned, noCustomManager)).toEqual([]);
    expect(workflowProblems(file, good.replace('0.74.0', '0.69.5'), rule)).toEqual([`${file}: Trivy 0.69.5 is one of the malicious releases 0.69.4-0.69.6 (CVE-2026-33634)`]);
    expect(trivyVersionProblems('Dockerfile', 'ARG TRIVY_VERSION=0.69.4\n')).toHaveLength(1);
  });

  it('refuses a Dockerfile base image by tag without the docker rule, or behind an ARG', () => {
    const dockerfile = 'FROM node:24-slim AS build\nRUN true\nFROM gcr.io/distroless/nodejs24-debian13:nonroot\nCOPY --from=build /a /a\n';
    expect(dockerfileProblems('Dockerfile', dockerfile, rule)).toEqual([]);
    const noDockerRule = new PinningRule({ ...renovate, packageRules: (renovate.packageRules ?? []).filter((r) => !r.matchDatasources?.includes('docker')) });
    expect(dockerfileProblems('Dockerfile', dockerfile, noDockerRule)).toEqual([
      'Dockerfile: node:24-slim is neither pinned by digest nor covered by a Renovate docker pinDigests rule',
      'Dockerfile: gcr.io/distroless/nodejs24-debian13:nonroot is neither pinned by digest nor covered by a Renovate docker pinDigests rule',
    ]);
    const digests = dockerfile.replace('node:24-slim', `node:24-slim@sha256:${'a'.repeat(64)}`).replace(':nonroot', `:nonroot@sha256:${'b'.repeat(64)}`);
    expect(dockerfileProblems('Dockerfile', digests, noDockerRule)).toEqual([]);
    expect(dockerfileProblems('Dockerfile', 'ARG BASE=node:24\nFROM ${BASE}\n', rule)).toEqual(['Dockerfile: FROM ${BASE} names its image through an ARG, which Renovate cannot pin: write the image out']);
    expect(dockerfileProblems('Dockerfile', 'FROM aquasec/trivy:0.69.6 AS trivy\nFROM scratch\n', rule)).toEqual([
      'Dockerfile: Trivy 0.69.6 is one of the malicious releases 0.69.4-0.69.6 (CVE-2026-33634)',
    ]);
  });

  it('refuses a renovate.json that does not pin, or would offer a malicious Trivy', () => {
    const without = (keep: (r: NonNullable<RenovateConfig['packageRules']>[number]) => boolean): RenovateConfig => ({ ...renovate, packageRules: (renovate.packageRules ?? []).filter(keep) });
    expect(renovateProblems(without((r) => !r.matchManagers?.includes('github-actions')))).toEqual([
      'renovate.json: no packageRule pins GitHub Actions by commit SHA (matchManagers ["github-actions"], pinDigests true)',
    ]);
    expect(renovateProblems(without((r) => !r.matchDatasources?.includes('docker')))).toEqual(['renovate.json: no packageRule pins docker images by digest (matchDatasources ["docker"], pinDigests true)']);
    expect(renovateProblems(without((r) => r.allowedVersions === undefined))).toHaveLength(3);
    expect(renovateProblems({ ...renovate, enabledManagers: ['npm'] })).toContain('renovate.json: no packageRule pins GitHub Actions by commit SHA (matchManagers ["github-actions"], pinDigests true)');
    expect(new PinningRule(renovate).offersTrivy('0.69.3')).toBe(true);
    expect(new PinningRule(renovate).offersTrivy('v0.69.5')).toBe(false);
  });

  it('refuses a manifest image by tag outside the kubernetes manager\'s files', () => {
    const deployment = 'spec:\n  template:\n    spec:\n      containers:\n        - name: trivy\n          image: aquasec/trivy:0.74.0\n';
    expect(manifestImageProblems('manifests/components/x/deployment.yaml', deployment, rule, OWN_IMAGES)).toEqual([]);
    expect(manifestImageProblems('deploy/x.yaml', deployment, rule, OWN_IMAGES)).toEqual([
      "deploy/x.yaml: image aquasec/trivy:0.74.0 is neither pinned by digest nor covered by Renovate's kubernetes manager",
    ]);
  });
});
