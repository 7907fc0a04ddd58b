// Which resources are served right now: the built-ins plus every established CRD.
import { apiVersionOf, builtinResources, resourceKey, resourceFromCrd } from './resources.js';
import type { ResourceDef } from './resources.js';
import type { KubeObject } from './types.js';

export class ResourceRegistry {
  private readonly defs = new Map<string, ResourceDef>();
  /** Bumped on every change, so discovery documents can be cached per generation. */
  private revision = 0;

  constructor() {
    for (const def of builtinResources()) this.defs.set(resourceKey(def.group, def.resource), def);
  }

  generation(): number {
    return this.revision;
  }

  all(): ResourceDef[] {
    return [...this.defs.values()];
  }

  byKey(rkey: string): ResourceDef | undefined {
    return this.defs.get(rkey);
  }

  /** The resource served at /apis/<group>/<version>/<resource>, if that version is served. */
  lookup(group: string, version: string, resource: string): ResourceDef | undefined {
    const def = this.defs.get(resourceKey(group, resource));
    return def && def.versions.includes(version) ? def : undefined;
  }

  /** The resource whose kind is `kind` in `apiVersion` (used by seeding from plain objects). */
  byKind(apiVersion: string, kind: string): ResourceDef | undefined {
    for (const def of this.defs.values()) {
      if (def.kind === kind && def.versions.some((v) => apiVersionOf(def.group, v) === apiVersion)) return def;
    }
    return undefined;
  }

  /** Group → versions (preferred first), for /apis. */
  groups(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const def of this.defs.values()) {
      if (def.group === '') continue;
      const versions = out.get(def.group) ?? [];
      for (const v of def.versions) if (!versions.includes(v)) versions.push(v);
      out.set(def.group, versions);
    }
    return out;
  }

  /** Registers (or replaces) the resource a CRD defines; returns its key. */
  registerCrd(crd: KubeObject): string {
    const def = resourceFromCrd(crd);
    const rkey = resourceKey(def.group, def.resource);
    const existing = this.defs.get(rkey);
    if (existing && !existing.custom) throw new Error(`CRD ${crd.metadata?.name ?? '?'} would shadow the built-in ${rkey}`);
    this.defs.set(rkey, def);
    this.revision += 1;
    return rkey;
  }

  unregister(rkey: string): void {
    if (this.defs.get(rkey)?.custom) {
      this.defs.delete(rkey);
      this.revision += 1;
    }
  }
}
