// The record of every API request: who (identity from the bearer token) did what, when, with what result.
import { appendFileSync } from 'node:fs';
import type { Verb } from './types.js';

export interface RequestRecord {
  /** Increasing number, to fetch only newer records. */
  seq: number;
  /** When the request arrived / its response ended (ISO 8601 with ms). */
  time: string;
  endTime?: string;
  startMs: number;
  endMs?: number;
  method: string;
  path: string;
  /** RBAC verb for resource requests; undefined for non-resource URLs (discovery, /version, /openapi). */
  verb?: Verb;
  apiGroup?: string;
  apiVersion?: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** User name the token maps to, `system:anonymous` without a token. */
  identity: string;
  userAgent?: string;
  contentType?: string;
  /** The request body's size as its Content-Length header gives it. */
  requestBytes?: number;
  accept?: string;
  /** HTTP status code (for watches: the code the stream started with). */
  code?: number;
  /** Status reason for failures (NotFound, Conflict, ...). */
  reason?: string;
  /** Set when the failure was injected by the fault injector. */
  injected?: boolean;
}

export type RequestFilter = Partial<Pick<RequestRecord, 'verb' | 'apiGroup' | 'resource' | 'subresource' | 'namespace' | 'name' | 'identity' | 'code'>> & {
  sinceSeq?: number;
};

export class RequestLog {
  private records: RequestRecord[] = [];
  private seq = 0;

  constructor(
    private readonly limit: number,
    private readonly file: string | undefined,
  ) {}

  start(partial: Omit<RequestRecord, 'seq' | 'time' | 'startMs'>, now: number): RequestRecord {
    this.seq += 1;
    const record: RequestRecord = { seq: this.seq, time: new Date(now).toISOString(), startMs: now, ...partial };
    this.records.push(record);
    if (this.records.length > this.limit) this.records.splice(0, this.records.length - this.limit);
    return record;
  }

  finish(record: RequestRecord, code: number, reason: string | undefined, now: number): void {
    record.code ??= code;
    if (reason !== undefined) record.reason ??= reason;
    record.endMs = now;
    record.endTime = new Date(now).toISOString();
    if (this.file) appendFileSync(this.file, `${JSON.stringify(record)}\n`);
  }

  list(filter: RequestFilter = {}): RequestRecord[] {
    return this.records.filter((r) => {
      if (filter.sinceSeq !== undefined && r.seq <= filter.sinceSeq) return false;
      for (const key of ['verb', 'apiGroup', 'resource', 'subresource', 'namespace', 'name', 'identity', 'code'] as const) {
        if (filter[key] !== undefined && r[key] !== filter[key]) return false;
      }
      return true;
    });
  }

  clear(): void {
    this.records = [];
  }
}

/** Verbs that change stored state. */
export const WRITE_VERBS: readonly Verb[] = ['create', 'update', 'patch', 'delete', 'deletecollection'];

export function isWrite(record: RequestRecord): boolean {
  return record.verb !== undefined && WRITE_VERBS.includes(record.verb);
}

/**
 * The attributes an RBAC rule matches for this request: `{ verb, apiGroup, resource, namespace }` with the
 * subresource folded in as RBAC writes it (`pods/status`); undefined for non-resource URLs.
 */
export function rbacAttributes(record: RequestRecord): { verb: Verb; apiGroup: string; resource: string; namespace: string | undefined; name: string | undefined } | undefined {
  if (record.verb === undefined || record.resource === undefined) return undefined;
  const resource = record.subresource ? `${record.resource}/${record.subresource}` : record.resource;
  return { verb: record.verb, apiGroup: record.apiGroup ?? '', resource, namespace: record.namespace, name: record.name };
}
