// The policies in force, compiled once per spec change: admission asks for them on every request and
// the audit on every report it evaluates, so neither may parse specs or sort on the way.
import type { InformerHandlers } from '../kube/informer.js';
import type { ImageScanPolicyStatus, PolicyEntry } from '../kube/policy-entry.js';
import { compilePolicy } from './image-scan-policy.js';
import type { CompiledPolicy, PolicyParseResult } from './image-scan-policy.js';

/** What the store reads: the policy informer (or anything that delivers PolicyEntry objects). */
export interface PolicySource {
  on(handlers: InformerHandlers<PolicyEntry>): void;
}

/** One policy as the store holds it: its spec judged by compilePolicy, and the status the cluster holds. */
export interface StoredPolicy {
  name: string;
  generation: number;
  /** ok with the compiled policy, or the message for condition Ready=False. */
  result: PolicyParseResult;
  status: ImageScanPolicyStatus | undefined;
}

/**
 * A change of what a policy enforces: added, spec edited, deleted. `previous`/`current` are the
 * compiled policy before and after, undefined when absent or invalid (an invalid policy enforces
 * nothing). A status-only update is not a change.
 */
export interface PolicyChange {
  name: string;
  previous: CompiledPolicy | undefined;
  current: CompiledPolicy | undefined;
}

export type PolicyChangeListener = (change: PolicyChange) => void;

/**
 * Keeps every ImageScanPolicy compiled, fed by the policy informer. validPolicies() is an array built
 * once per change and shared by callers; listeners hear of spec changes synchronously, from the
 * informer's callback, so they must only enqueue work.
 */
export class PolicyStore {
  private readonly policies = new Map<string, StoredPolicy & { specText: string }>();
  private readonly listeners = new Set<PolicyChangeListener>();
  private valid: readonly CompiledPolicy[] | undefined;

  constructor(source: PolicySource) {
    source.on({
      add: (entry) => this.put(entry),
      update: (_old, entry) => this.put(entry),
      delete: (entry) => this.remove(entry.name),
    });
  }

  /**
   * The valid policies, sorted by name; the same frozen array until a policy's spec changes, so it is
   * cheap to call on every admission request. Invalid policies are left out: they enforce nothing.
   */
  validPolicies(): readonly CompiledPolicy[] {
    if (this.valid === undefined) {
      const compiled: CompiledPolicy[] = [];
      for (const stored of this.policies.values()) if (stored.result.ok) compiled.push(stored.result.policy);
      compiled.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      this.valid = Object.freeze(compiled);
    }
    return this.valid;
  }

  /** A policy by name, valid or not (for its status). */
  get(name: string): StoredPolicy | undefined {
    return this.policies.get(name);
  }

  /** Every policy, valid or not. */
  all(): StoredPolicy[] {
    return [...this.policies.values()];
  }

  /** Calls `listener` on every change of what a policy enforces; returns the unsubscribe function. */
  onChange(listener: PolicyChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private put(entry: PolicyEntry): void {
    const known = this.policies.get(entry.name);
    if (known !== undefined && known.specText === entry.specText) {
      // Status (or metadata) only: keep the compiled policy, note what the cluster now holds.
      known.status = entry.status;
      known.generation = entry.generation;
      return;
    }
    const result = compilePolicy(entry.name, entry.spec);
    this.policies.set(entry.name, { name: entry.name, generation: entry.generation, result, status: entry.status, specText: entry.specText });
    this.changed(entry.name, known, result);
  }

  private remove(name: string): void {
    const known = this.policies.get(name);
    if (known === undefined) return;
    this.policies.delete(name);
    this.changed(name, known, undefined);
  }

  private changed(name: string, before: StoredPolicy | undefined, after: PolicyParseResult | undefined): void {
    this.valid = undefined;
    const change: PolicyChange = { name, previous: compiledOf(before?.result), current: compiledOf(after) };
    for (const listener of this.listeners) listener(change);
  }
}

function compiledOf(result: PolicyParseResult | undefined): CompiledPolicy | undefined {
  return result?.ok === true ? result.policy : undefined;
}
