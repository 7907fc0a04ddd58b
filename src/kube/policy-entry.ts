// What the policy informer keeps of an ImageScanPolicy: its name, generation, spec (still unchecked:
// compilePolicy judges it) and the status the cluster holds, so the status writer can tell whether a
// write is needed.
import type { CachedObject } from './informer.js';

/** A metav1.Condition as JSON carries it (times as RFC 3339 strings). */
export interface PolicyCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** status of an ImageScanPolicy as the CRD declares it. */
export interface ImageScanPolicyStatus {
  observedGeneration?: number;
  violations?: number;
  conditions?: PolicyCondition[];
}

export interface PolicyEntry extends CachedObject {
  name: string;
  /** metadata.generation (0 when the server sets none). */
  generation: number;
  /** spec as read, for compilePolicy. */
  spec: unknown;
  /** JSON of spec: equal text means an equal spec, so a status-only update is not a policy change. */
  specText: string;
  status: ImageScanPolicyStatus | undefined;
}

type Raw = Record<string, unknown>;

function asRecord(value: unknown): Raw | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Raw) : undefined;
}

/** Keeps what the operator reads of a policy (raw JSON); undefined when it has no name. */
export function toPolicyEntry(raw: unknown): PolicyEntry | undefined {
  const obj = asRecord(raw);
  const metadata = asRecord(obj?.metadata);
  const name = metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  const generation = typeof metadata?.generation === 'number' ? metadata.generation : 0;
  const resourceVersion = typeof metadata?.resourceVersion === 'string' ? metadata.resourceVersion : '';
  const spec = obj?.spec ?? null;
  const status = asRecord(obj?.status) as ImageScanPolicyStatus | undefined;
  return { key: name, resourceVersion, name, generation, spec, specText: JSON.stringify(spec), status };
}
