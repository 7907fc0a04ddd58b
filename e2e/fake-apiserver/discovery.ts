// Discovery documents (/api, /apis, per group-version) and a minimal OpenAPI v3 tree that tells
// kubectl the server validates fields itself (so kubectl does not need schemas to apply/create).
import { createHash } from 'node:crypto';
import type { ResourceRegistry } from './registry.js';
import { apiVersionOf } from './resources.js';
import type { ResourceDef } from './resources.js';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-fake',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groupDoc(group: string, versions: string[]): Record<string, unknown> {
  const gvs = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions: gvs, preferredVersion: gvs[0] };
}

export function apiGroupList(registry: ResourceRegistry): Record<string, unknown> {
  const groups = [...registry.groups().entries()].sort(([a], [b]) => a.localeCompare(b)).map(([g, vs]) => groupDoc(g, vs));
  return { kind: 'APIGroupList', apiVersion: 'v1', groups };
}

export function apiGroup(registry: ResourceRegistry, group: string): Record<string, unknown> | undefined {
  const versions = registry.groups().get(group);
  return versions ? { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(group, versions) } : undefined;
}

function defsIn(registry: ResourceRegistry, group: string, version: string): ResourceDef[] {
  return registry
    .all()
    .filter((d) => d.group === group && d.versions.includes(version))
    .sort((a, b) => a.resource.localeCompare(b.resource));
}

/** APIResourceList for one group-version, or undefined when nothing is served there. */
export function apiResourceList(registry: ResourceRegistry, group: string, version: string): Record<string, unknown> | undefined {
  const defs = defsIn(registry, group, version);
  if (defs.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const d of defs) {
    const entry: Record<string, unknown> = { name: d.resource, singularName: d.singular, namespaced: d.namespaced, kind: d.kind, verbs: d.verbs };
    if (d.shortNames.length > 0) entry.shortNames = d.shortNames;
    if (d.categories.length > 0) entry.categories = d.categories;
    entry.storageVersionHash = createHash('sha256').update(`${d.group}/${d.resource}`).digest('base64').slice(0, 11);
    resources.push(entry);
    if (d.statusSubresource) {
      resources.push({ name: `${d.resource}/status`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: ['get', 'patch', 'update'] });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(group, version), resources };
}

function gvPath(group: string, version: string): string {
  return group === '' ? `api/${version}` : `apis/${group}/${version}`;
}

/** Every served group-version → its minimal OpenAPI v3 document. */
function openApiDocs(registry: ResourceRegistry): Map<string, Record<string, unknown>> {
  const docs = new Map<string, Record<string, unknown>>();
  const byGv = new Map<string, ResourceDef[]>();
  for (const d of registry.all()) {
    for (const v of d.versions) {
      const key = `${d.group}|${v}`;
      byGv.set(key, [...(byGv.get(key) ?? []), d]);
    }
  }
  for (const [key, defs] of byGv) {
    const [group = '', version = ''] = key.split('|');
    const paths: Record<string, unknown> = {};
    for (const d of defs) {
      const base = `/${gvPath(group, version)}${d.namespaced ? '/namespaces/{namespace}' : ''}/${d.resource}/{name}`;
      // kubectl only looks for the PATCH operation of the kind and its fieldValidation parameter.
      paths[base] = {
        patch: {
          'x-kubernetes-group-version-kind': { group, version, kind: d.kind },
          parameters: [
            { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } },
            { name: 'dryRun', in: 'query', schema: { type: 'string', uniqueItems: true } },
            { name: 'fieldManager', in: 'query', schema: { type: 'string', uniqueItems: true } },
          ],
          responses: { '200': { description: 'OK' } },
        },
      };
    }
    docs.set(gvPath(group, version), { openapi: '3.0.0', info: { title: 'Kubernetes', version: SERVER_VERSION.gitVersion }, paths, components: {} });
  }
  return docs;
}

/** `/openapi/v3` index and documents; hashes change when the set of resources changes. */
export function openApiV3(registry: ResourceRegistry, path: string): Record<string, unknown> | undefined {
  const docs = openApiDocs(registry);
  if (path === '') {
    const paths: Record<string, unknown> = {};
    for (const [gv, doc] of docs) {
      const hash = createHash('sha512').update(JSON.stringify(doc)).digest('hex').slice(0, 64).toUpperCase();
      paths[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${hash}` };
    }
    return { paths };
  }
  return docs.get(path);
}
