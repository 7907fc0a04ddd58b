// The ImageScanPolicy CRD as a platform team meets it with kubectl: defaults filled in, nonsense
// refused by the schema (enums, negative thresholds, selectors, registries, patterns), the printer
// columns. Run against the fake API server, which applies the structural schema, its defaults and
// its CEL rules the way the real one does.
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../../e2e/fake-apiserver/index.js';
import type { FakeApiServer } from '../../e2e/fake-apiserver/index.js';
import { kubectlFor, parseTable } from '../../e2e/fake-apiserver/kubectl-runner.js';
import type { Kubectl } from '../../e2e/fake-apiserver/kubectl-runner.js';

const CRD_FILE = path.resolve(import.meta.dirname, '../../crds/imagescan.dev_imagescanpolicies.yaml');

let server: FakeApiServer;
let kubectl: Kubectl;

beforeAll(async () => {
  server = await startFakeApiServer({ crdDirs: [] });
  kubectl = kubectlFor(server.kubeconfigFor('platform-admin'));
  await kubectl.ok(['apply', '-f', CRD_FILE]);
});

afterAll(async () => {
  kubectl.close();
  await server.stop();
});

function policy(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanPolicy', metadata: { name }, spec });
}

async function refused(name: string, spec: Record<string, unknown>): Promise<string> {
  const r = await kubectl.run(['apply', '-f', '-'], policy(name, spec));
  expect(r.code, `${name} should be refused; stdout: ${r.stdout}`).not.toBe(0);
  expect(server.objects.get('imagescanpolicies.imagescan.dev', undefined, name)).toBeUndefined();
  return r.stderr;
}

describe('ImageScanPolicy CRD', () => {
  it('is cluster-scoped with the short name isp, and fills in action and unscanned', async () => {
    expect(await kubectl.ok(['apply', '-f', '-'], policy('corp-registry', { allowedRegistries: ['registry.corp.example'] }))).toContain(
      'imagescanpolicy.imagescan.dev/corp-registry created',
    );
    const stored = parseYaml(await kubectl.ok(['get', 'isp', 'corp-registry', '-o', 'yaml'])) as { metadata: { namespace?: string }; spec: Record<string, unknown> };
    expect(stored.metadata.namespace).toBeUndefined();
    expect(stored.spec).toEqual({ allowedRegistries: ['registry.corp.example'], action: 'Warn', unscanned: 'Warn' });
  });

  it('keeps a full, valid spec as written', async () => {
    const spec = {
      namespaceSelector: {
        matchLabels: { team: 'payments' },
        matchExpressions: [
          { key: 'env', operator: 'In', values: ['prod', 'staging'] },
          { key: 'imagescan.dev/exempt', operator: 'DoesNotExist' },
        ],
      },
      action: 'Deny',
      allowedRegistries: ['registry.corp.example', 'ghcr.io/acme', 'registry.local:5000/team'],
      vulnerabilities: { critical: 0, high: 10, fixableCritical: 0, fixableHigh: 3 },
      unscanned: 'Deny',
      exemptImages: ['registry.corp.example/legacy/*', 'docker.io/library/busybox:1.36', 'ghcr.io/acme/**'],
    };
    await kubectl.ok(['apply', '-f', '-'], policy('payments-prod', spec));
    expect(server.objects.get('imagescanpolicies.imagescan.dev', undefined, 'payments-prod')?.spec).toEqual(spec);
  });

  it('refuses an unknown action or unscanned value, naming the allowed ones', async () => {
    expect(await refused('bad-action', { action: 'Block' })).toMatch(/spec\.action: Unsupported value: "Block": supported values: "Audit", "Warn", "Deny"/);
    expect(await refused('bad-unscanned', { unscanned: 'Ignore' })).toMatch(/spec\.unscanned: Unsupported value: "Ignore"/);
  });

  it('refuses negative and fractional thresholds', async () => {
    expect(await refused('negative', { vulnerabilities: { fixableCritical: -1 } })).toMatch(/spec\.vulnerabilities\.fixableCritical: Invalid value: -1: .*greater than or equal to 0/);
    expect(await refused('fraction', { vulnerabilities: { high: 1.5 } })).toMatch(/spec\.vulnerabilities\.high: Invalid value: "number": .*must be of type integer/);
  });

  it('refuses malformed selectors: unknown operator, In without values, Exists with values, bad label key', async () => {
    expect(await refused('bad-operator', { namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'Equals', values: ['a'] }] } })).toMatch(
      /spec\.namespaceSelector\.matchExpressions\[0\]\.operator: Unsupported value: "Equals"/,
    );
    expect(await refused('in-without-values', { namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In' }] } })).toMatch(
      /spec\.namespaceSelector\.matchExpressions\[0\]: Invalid value: "object": In and NotIn need at least one value/,
    );
    expect(await refused('exists-with-values', { namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'Exists', values: ['a'] }] } })).toMatch(
      /Exists and DoesNotExist take none/,
    );
    expect(await refused('bad-key', { namespaceSelector: { matchExpressions: [{ key: 'no spaces', operator: 'Exists' }] } })).toMatch(
      /spec\.namespaceSelector\.matchExpressions\[0\]\.key: Invalid value: "no spaces"/,
    );
    expect(await refused('bad-label-value', { namespaceSelector: { matchLabels: { team: 'a b' } } })).toMatch(/spec\.namespaceSelector\.matchLabels\.team: Invalid value: "a b"/);
  });

  it('refuses registries that are not a host or host/path prefix, and patterns that are not image references', async () => {
    for (const registry of ['https://registry.corp.example', 'Registry.Corp.Example', 'ghcr.io//acme', 'ghcr.io/acme/*', 'ghcr.io/acme:v1']) {
      expect(await refused('bad-registry', { allowedRegistries: [registry] })).toMatch(/spec\.allowedRegistries\[0\]: Invalid value/);
    }
    expect(await refused('bad-exemption', { exemptImages: ['/legacy/*'] })).toMatch(/spec\.exemptImages\[0\]: Invalid value/);
    expect(await refused('spaces', { exemptImages: ['registry.corp.example/legacy app'] })).toMatch(/spec\.exemptImages\[0\]: Invalid value/);
  });

  it('shows ACTION, NAMESPACES (the matchLabels), VIOLATIONS and AGE; -o wide adds the expressions', async () => {
    await kubectl.ok(['apply', '-f', '-'], policy('team-audit', { action: 'Audit', namespaceSelector: { matchLabels: { team: 'payments', env: 'prod' } } }));
    await kubectl.ok(['patch', 'isp', 'team-audit', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { violations: 3, observedGeneration: 1 } })]);
    const rows = parseTable(await kubectl.ok(['get', 'imagescanpolicies']));
    const row = rows.find((r) => r.NAME === 'team-audit');
    expect(Object.keys(row ?? {})).toEqual(['NAME', 'ACTION', 'NAMESPACES', 'VIOLATIONS', 'AGE']);
    expect(row).toMatchObject({ ACTION: 'Audit', NAMESPACES: '{"env":"prod","team":"payments"}', VIOLATIONS: '3' });
    expect(row?.AGE).toMatch(/^\d+s$/);
    // No selector (every namespace) and no status yet: empty cells, as kubectl prints missing values.
    expect(rows.find((r) => r.NAME === 'corp-registry')).toMatchObject({ ACTION: 'Warn', NAMESPACES: '', VIOLATIONS: '' });
    const wide = parseTable(await kubectl.ok(['get', 'isp', 'payments-prod', '-o', 'wide']))[0];
    expect(wide?.EXPRESSIONS).toBe('[{"key":"env","operator":"In","values":["prod","staging"]},{"key":"imagescan.dev/exempt","operator":"DoesNotExist"}]');
    expect(wide?.UNSCANNED).toBe('Deny');
  });
});
