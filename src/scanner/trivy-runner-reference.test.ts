import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createStubWorkspace, failureOf, stubRunnerOptions } from '../../test/trivy-stub/stub-harness.js';
import type { StubWorkspace } from '../../test/trivy-stub/stub-harness.js';
import { TrivyRunner } from './trivy-runner.js';

const workspaces: StubWorkspace[] = [];
afterEach(() => {
  for (const ws of workspaces.splice(0)) ws.cleanup();
});

function setup(map: Record<string, unknown> = {}) {
  const ws = createStubWorkspace(map);
  workspaces.push(ws);
  return { ws, runner: new TrivyRunner(stubRunnerOptions(ws, pino({ level: 'silent' }))) };
}

describe('TrivyRunner.scanReference', () => {
  it('scans repository:tag and returns the digest of Metadata.RepoDigests (Docker Hub short names normalised)', async () => {
    const { ws, runner } = setup();
    await runner.downloadDatabases();
    const scanned = await runner.scanReference({ repository: 'docker.io/library/nginx', tag: '1.19' });
    // trustdsai-nginx-1.19.json: "RepoDigests": ["nginx@sha256:df13abe4…"]
    expect(scanned.digest).toBe('sha256:df13abe416e37eb3db4722840dd479b00ba193ac6606e7902331dcea50f4f1f2');
    expect(scanned.result.summary.critical).toBeGreaterThan(0);
    const argv = ws.invocations().find((i) => i.start.argv?.includes('docker.io/library/nginx:1.19'))?.start.argv ?? [];
    expect(argv.slice(0, 9)).toEqual(['image', '--format', 'json', '--output', argv[4], '--scanners', 'vuln', '--image-src', 'remote']);
    expect(argv.at(-1)).toBe('docker.io/library/nginx:1.19');
    expect(ws.leftovers()).toEqual([]);
  });

  it('fails with invalid_output when the report names no digest, and refuses a reference that could be a flag', async () => {
    const { runner } = setup({ 'registry.corp.example/app': '../fixtures/trivy/centos-7.json' });
    await runner.downloadDatabases();
    expect((await failureOf(runner.scanReference({ repository: 'registry.corp.example/app', tag: 'v1' }))).reason).toBe('invalid_output');
    expect((await failureOf(runner.scanReference({ repository: 'registry.corp.example/app', tag: '--debug' }))).reason).toBe('scanner_error');
  });

  it('pulls a private image with the credentials given, and fails with auth without them', async () => {
    const { ws, runner } = setup();
    await runner.downloadDatabases();
    const image = { repository: 'registry.example.com/private/app', tag: 'v2' };
    expect((await failureOf(runner.scanReference(image))).reason).toBe('auth');
    const credentials = { registry: 'registry.example.com', auth: { username: 'robot', password: 'stub-password' }, source: 'shop/regcred' };
    expect((await runner.scanReference({ ...image, credentials })).digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    const runs = ws.invocations().filter((i) => i.start.argv?.at(-1) === 'registry.example.com/private/app:v2');
    expect(runs.map((r) => r.start.registries ?? [])).toEqual([[], ['registry.example.com']]);
    expect(ws.leftovers()).toEqual([]);
    // Never handed to another registry.
    expect((await failureOf(runner.scanReference({ repository: 'ghcr.io/acme/app', tag: '1', credentials }))).reason).toBe('auth');
  });
});
