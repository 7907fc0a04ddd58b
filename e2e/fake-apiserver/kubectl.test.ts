// The real kubectl 1.32 against the fake: discovery, create/get/label/delete of pods, applying the
// repo's CRD and a report, and the printer columns of `kubectl get imagescanreports`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from './index.js';
import type { FakeApiServer } from './index.js';
import { parseTable } from './kubectl-runner.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CRD_FILE = path.resolve(here, '../../crds/imagescan.dev_imagescanreports.yaml');

let server: FakeApiServer;
let kubeconfig: string;
let cacheDir: string;

async function kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  // Async on purpose: the server runs in this process and must keep answering.
  const r = await execa('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, '--request-timeout', '10s', ...args], { reject: false, ...(input !== undefined ? { input } : {}) });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function ok(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}


interface PrinterColumnSpec {
  name: string;
  jsonPath: string;
  priority?: number;
}

function crdColumns(): PrinterColumnSpec[] {
  const crd = parseYaml(readFileSync(CRD_FILE, 'utf8')) as { spec: { versions: { additionalPrinterColumns?: PrinterColumnSpec[] }[] } };
  return crd.spec.versions[0]?.additionalPrinterColumns ?? [];
}

beforeAll(async () => {
  // Start without CRDs: the test installs the repo's CRD with kubectl apply.
  server = await startFakeApiServer({ crdDirs: [] });
  kubeconfig = server.kubeconfigFor('alice');
  cacheDir = mkdtempSync(path.join(tmpdir(), 'kubectl-cache-'));
});

afterAll(async () => {
  await server.stop();
  rmSync(cacheDir, { recursive: true, force: true });
});

describe('kubectl against the fake API server', () => {
  it('creates, lists, labels, describes and deletes pods', async () => {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default' }, spec: { containers: [{ name: 'web', image: 'nginx:1.25' }] } };
    expect(await ok(['create', '-f', '-'], JSON.stringify(pod))).toContain('pod/web created');
    server.seed.pod({ namespace: 'team-a', name: 'running', containers: ['nginx:1.25'] });

    const all = parseTable(await ok(['get', 'pods', '-A']));
    expect(all.map((r) => [r.NAMESPACE, r.NAME, r.STATUS])).toEqual([
      ['default', 'web', 'Pending'],
      ['team-a', 'running', 'Running'],
    ]);
    const wide = parseTable(await ok(['get', 'pods', '-n', 'team-a', '-o', 'wide']));
    expect(wide[0]?.NODE).toBe('node-1');

    expect(await ok(['label', 'pod', 'web', 'team=payments'])).toContain('pod/web labeled');
    expect(server.objects.get('pods', 'default', 'web')?.metadata?.labels).toEqual({ team: 'payments' });
    expect(parseTable(await ok(['get', 'pods', '-l', 'team=payments'])).map((r) => r.NAME)).toEqual(['web']);

    const yaml = parseYaml(await ok(['get', 'pod', 'running', '-n', 'team-a', '-o', 'yaml'])) as { status: { containerStatuses: { imageID: string }[] } };
    expect(yaml.status.containerStatuses[0]?.imageID).toMatch(/^docker\.io\/library\/nginx@sha256:[a-f0-9]{64}$/);
    expect(await ok(['describe', 'pod', 'web'])).toMatch(/Labels:\s+team=payments/);

    expect(await ok(['delete', 'pod', 'web'])).toContain('pod "web" deleted');
    expect(server.objects.get('pods', 'default', 'web')).toBeUndefined();
    const writes = server.requests({ identity: 'alice' }).filter((r) => r.verb === 'create' || r.verb === 'patch' || r.verb === 'delete');
    expect(writes.map((w) => [w.verb, w.resource, w.name ?? ''])).toEqual([
      ['create', 'pods', ''],
      ['patch', 'pods', 'web'],
      ['delete', 'pods', 'web'],
    ]);
  });

  it("runs kubectl's protobuf generators for namespaces and docker-registry secrets", async () => {
    expect(await ok(['create', 'namespace', 'shop'])).toContain('namespace/shop created');
    expect(server.objects.get('namespaces', undefined, 'shop')?.metadata?.labels).toEqual({ 'kubernetes.io/metadata.name': 'shop' });
    await ok(['create', 'secret', 'docker-registry', 'regcred', '-n', 'shop', '--docker-server=registry.example.com:5000', '--docker-username=u', '--docker-password=p']);
    const secret = server.objects.get('secrets', 'shop', 'regcred');
    expect(secret?.type).toBe('kubernetes.io/dockerconfigjson');
    const config = JSON.parse(Buffer.from(String((secret?.data as Record<string, string>)['.dockerconfigjson']), 'base64').toString()) as { auths: Record<string, { username: string }> };
    expect(config.auths['registry.example.com:5000']?.username).toBe('u');
  });

  it('applies the CRD and a report; get -A and -o wide show the printer columns with the values', async () => {
    expect(await ok(['apply', '-f', CRD_FILE])).toContain('customresourcedefinition.apiextensions.k8s.io/imagescanreports.imagescan.dev created');
    const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
    const report = {
      apiVersion: 'imagescan.dev/v1alpha1',
      kind: 'ImageScanReport',
      metadata: { name: 'nginx-0123456789ab', namespace: 'default', labels: { 'app.kubernetes.io/managed-by': 'imagescan-operator' } },
      spec: { image: 'nginx:1.25', repository: 'docker.io/library/nginx', digest },
    };
    expect(await ok(['apply', '-f', '-'], JSON.stringify(report))).toContain('imagescanreport.imagescan.dev/nginx-0123456789ab created');
    const status = {
      phase: 'Scanned',
      lastScanTime: new Date(Date.now() - 5 * 60_000).toISOString(),
      scanner: { name: 'Trivy', version: '0.58.0' },
      summary: { critical: 2, high: 7, medium: 11, low: 3, unknown: 1, total: 24, fixable: 9 },
      team: 'payments',
      policy: { result: 'Fail', violations: [{ policy: 'prod-bar', rule: 'critical', message: 'nginx:1.25 has 2 CRITICAL vulnerabilities' }] },
    };
    // What the operator does: a merge patch on /status (kubectl patch --subresource uses the same endpoint).
    await ok(['patch', 'isr', 'nginx-0123456789ab', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);

    const columns = crdColumns();
    const source = { ...report, status, metadata: { ...report.metadata, creationTimestamp: 'x' } };
    const valueAt = (jsonPath: string): unknown => jsonPath.split('.').filter((p) => p !== '').reduce<unknown>((o, p) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[p] : undefined), source);
    const expectRow = (row: Record<string, string> | undefined, wide: boolean): void => {
      expect(row).toBeDefined();
      for (const c of columns) {
        const header = c.name.toUpperCase();
        if ((c.priority ?? 0) > 0 && !wide) {
          expect(row && header in row).toBe(false);
          continue;
        }
        const cell = row?.[header];
        if (c.jsonPath === '.metadata.creationTimestamp') expect(cell).toMatch(/^\d+s$/);
        else if (c.jsonPath === '.status.lastScanTime') expect(cell).toMatch(/^5m(\d+s)?$/);
        else expect(cell).toBe(String(valueAt(c.jsonPath)));
      }
    };
    const rows = parseTable(await ok(['get', 'imagescanreports', '-A']));
    expect(rows).toHaveLength(1);
    expect(rows[0]?.NAMESPACE).toBe('default');
    expect(rows[0]?.NAME).toBe('nginx-0123456789ab');
    expectRow(rows[0], false);
    const wideRows = parseTable(await ok(['get', 'isr', '-o', 'wide']));
    expectRow(wideRows[0], true);

    // The CRD's schema is enforced on kubectl apply too.
    const bad = await kubectl(['apply', '-f', '-'], JSON.stringify({ ...report, metadata: { name: 'bad', namespace: 'default' }, spec: { ...report.spec, digest: 'latest' } }));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('spec.digest');
  });
});
