// scripts/release-manifests.sh, as the release workflow runs it, with the real kubectl: install.yaml
// and one install-<component>.yaml per component, each the whole installation with the operator's
// image pinned by the digest given (never a tag), so `kubectl apply -f <asset>` runs the signed image.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);
const repoRoot = path.resolve(import.meta.dirname, '../..');
const script = path.join(repoRoot, 'scripts/release-manifests.sh');
const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const IMAGE = 'ghcr.io/example-owner/imagescan-operator';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: { template?: { spec?: { containers?: { name: string; image: string }[] } } };
}

let out: string;
const objects = (file: string): K8sObject[] => parseAllDocuments(readFileSync(path.join(out, file), 'utf8')).map((d) => d.toJS() as K8sObject);
const find = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);
const components = readdirSync(path.join(repoRoot, 'manifests/components')).sort();

beforeAll(async () => {
  out = mkdtempSync(path.join(os.tmpdir(), 'release-manifests-'));
  await run(script, [`${IMAGE}@${DIGEST}`, out], { cwd: os.tmpdir() });
}, 60_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('release manifests', () => {
  it('writes install.yaml and one file per component, and leaves nothing in the clone', () => {
    expect(readdirSync(out).sort()).toEqual(['install.yaml', ...components.map((c) => `install-${c}.yaml`)].sort());
    expect(readdirSync(repoRoot).filter((f) => f.startsWith('.release-overlay'))).toEqual([]);
  });

  it('install.yaml is the base: the CRD, the namespace, RBAC and the operator pinned by digest', () => {
    const objs = objects('install.yaml');
    expect(find(objs, 'CustomResourceDefinition', 'imagescanreports.imagescan.dev')).toBeDefined();
    expect(find(objs, 'Namespace', 'imagescan-system')).toBeDefined();
    expect(find(objs, 'ClusterRole', 'imagescan-operator')).toBeDefined();
    const containers = find(objs, 'Deployment', 'imagescan-operator')?.spec?.template?.spec?.containers ?? [];
    expect(containers.map((c) => c.image)).toEqual([`${IMAGE}@${DIGEST}`]);
    // No other reference to the operator's image, by tag or under the base's name.
    expect(readFileSync(path.join(out, 'install.yaml'), 'utf8')).not.toMatch(/imagescan-operator:\d/);
  });

  it.each(components)('install-%s.yaml is the base with that component, the operator pinned by the same digest', (component) => {
    const objs = objects(`install-${component}.yaml`);
    expect(find(objs, 'CustomResourceDefinition', 'imagescanreports.imagescan.dev')).toBeDefined();
    expect(find(objs, 'Deployment', 'imagescan-operator')?.spec?.template?.spec?.containers?.[0]?.image).toBe(`${IMAGE}@${DIGEST}`);
    const base = objects('install.yaml').map((o) => `${o.kind}/${o.metadata.name}`);
    const these = objs.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(these, 'the component changes what is installed').not.toEqual(base);
  });

  it('the components add or remove what they say', () => {
    expect(find(objects('install-monitoring.yaml'), 'ServiceMonitor', 'imagescan-operator')).toBeDefined();
    expect(find(objects('install-trivy-server.yaml'), 'Deployment', 'imagescan-trivy-server')).toBeDefined();
    expect(find(objects('install.yaml'), 'ClusterRole', 'imagescan-operator-pull-secrets')).toBeDefined();
    expect(find(objects('install-no-private-registries.yaml'), 'ClusterRole', 'imagescan-operator-pull-secrets')).toBeUndefined();
  });

  it('refuses an image by tag, or no output folder', async () => {
    for (const args of [[`${IMAGE}:0.1.0`, out], [`${IMAGE}@${DIGEST}`], [`${IMAGE}@sha256:abc`, out]]) {
      const err = (await run(script, args).then(() => undefined, (e: unknown) => e)) as { code?: number; stderr?: string } | undefined;
      expect(err?.code, args.join(' ')).toBe(2);
      expect(err?.stderr).toMatch(/the image by digest, never by tag/);
    }
    expect(existsSync(path.join(out, 'install.yaml'))).toBe(true);
  });
});
