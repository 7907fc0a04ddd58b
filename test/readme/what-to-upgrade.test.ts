// The README's "what to upgrade" one-liner, run as a developer would: the real kubectl, its jsonpath,
// against a report the builder writes for nginx:1.19 (served by the fake API server with the repo's CRD).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer, type FakeApiServer } from '../../e2e/fake-apiserver/index.js';
import { buildReportObject, buildReportStatus } from '../../src/reports/report-builder.js';
import { loadTrivyFixtures, REPO_ROOT } from '../../src/reports/testdata/trivy-fixtures.js';

const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
const section = /<!-- what-to-upgrade:start[^>]*-->\n```sh\n(.*)\n```\n<!-- what-to-upgrade:end -->\n\n```\n(.*)\n```/.exec(readme);

let server: FakeApiServer;
let home: string;

beforeAll(async () => {
  server = await startFakeApiServer();
  home = mkdtempSync(path.join(tmpdir(), 'readme-kubectl-'));
});

afterAll(async () => {
  await server?.stop();
  rmSync(home, { recursive: true, force: true });
});

describe('README: what to upgrade', () => {
  it('the jsonpath one-liner prints one line per package: package installed -> fixed (N CRITICAL, M HIGH)', async () => {
    expect(section, 'README has the what-to-upgrade markers, the command and a sample line').not.toBeNull();
    const [, command = '', sample = ''] = section ?? [];
    const nginx = loadTrivyFixtures().find((f) => f.name === 'real-world/trustdsai-nginx-1.19.json');
    if (nginx === undefined) throw new Error('fixture');
    const report = buildReportObject({
      namespace: 'payments',
      image: 'nginx:1.19',
      repository: 'docker.io/library/nginx',
      digest: `sha256:df13abe416e3${'0'.repeat(52)}`,
      team: 'payments',
      workloads: [],
    });
    expect(command).toContain(` ${report.metadata?.name ?? '?'} `);
    const status = buildReportStatus({ scan: { phase: 'Scanned', result: nginx.result, scannedAt: new Date() }, workloads: [{ kind: 'Deployment', name: 'web' }], team: 'payments', now: new Date() });
    server.objects.upsert(JSON.parse(JSON.stringify({ ...report, status })) as Parameters<FakeApiServer['objects']['upsert']>[0]);

    const kubeconfig = server.kubeconfigFor('developer', { namespace: 'payments', path: path.join(home, 'kubeconfig') });
    const run = await execa('bash', ['-c', command], { env: { PATH: process.env['PATH'] ?? '', HOME: home, KUBECONFIG: kubeconfig }, extendEnv: false, reject: false });
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    const lines = run.stdout.split('\n');
    const expected = (status.fixes ?? []).map((f) => `${f.package} ${f.installedVersion} -> ${f.fixedVersions.join(' ')} (${f.critical} CRITICAL, ${f.high} HIGH)`);
    expect(expected.length).toBeGreaterThan(10);
    expect(lines).toEqual(expected);
    expect(lines[0]).toBe(sample);
  });
});
