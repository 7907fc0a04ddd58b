// The CRD in crds/ against what the builder writes: the schema must be structural (the API server
// refuses it otherwise), accept every report the builder produces, and declare every field the builder
// writes (the API server silently prunes undeclared fields).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SEVERITIES, type ScanResult, type Vulnerability } from '../scanner/scan-result.js';
import type { ImageScanReport, ReportDetails } from './image-scan-report.js';
import { buildReportObject, buildReportStatus, type DesiredReport, type ScanState } from './report-builder.js';
import { loadTrivyFixtures, REPO_ROOT } from './testdata/trivy-fixtures.js';
import { compilePolicy } from '../policy/image-scan-policy.js';
import { desiredReportPolicy } from '../policy/report-policy-status.js';

type Schema = Record<string, unknown>;

const crd = parse(readFileSync(path.join(REPO_ROOT, 'crds/imagescan.dev_imagescanreports.yaml'), 'utf8')) as {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: { kind: string; plural: string; singular: string; shortNames: string[]; listKind: string; categories?: string[] };
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns: { name: string; type: string; jsonPath: string; priority?: number }[];
      schema: { openAPIV3Schema: Schema };
    }[];
  };
};
const version = crd.spec.versions[0];
if (version === undefined) throw new Error('the CRD has no version');
const openAPISchema = version.schema.openAPIV3Schema;

const DIGEST = `sha256:${'9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'}`;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const ETCD_LIMIT = 1.5 * 1024 * 1024;

/**
 * OpenAPI v3 as the API server reads it → JSON Schema for ajv. x-kubernetes-* keys are dropped; every
 * object with declared properties gets additionalProperties: false, so anything the API server would
 * prune fails validation here instead of vanishing silently there. metadata is the API server's business.
 */
function toJsonSchema(node: Schema, atMetadata = false): Schema {
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('x-kubernetes-')) continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, Schema>).map(([k, v]) => [k, toJsonSchema(v, k === 'metadata' && node === openAPISchema)]));
    } else if (key === 'items') {
      out.items = toJsonSchema(value as Schema);
    } else {
      out[key] = value;
    }
  }
  if (node.type === 'object' && node.properties !== undefined && !atMetadata) out.additionalProperties = false;
  return out;
}

const ajv = new Ajv({ allErrors: true, strict: true });
ajv.addFormat('date-time', RFC3339);
ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
const validate: ValidateFunction = ajv.compile(toJsonSchema(openAPISchema));

function expectValid(report: ImageScanReport): void {
  const json = JSON.parse(JSON.stringify(report)) as unknown;
  const ok = validate(json);
  expect(ok ? [] : validate.errors).toEqual([]);
}

/** Bytes as the API server's encoder writes them (it escapes <, > and &). */
function apiBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value).replace(/[<>&]/g, '\\u003c'));
}

function reportFor(scan: ScanState | undefined, desired: Partial<DesiredReport> = {}, details: ReportDetails = 'fixes'): ImageScanReport {
  const input: DesiredReport = {
    namespace: 'shop',
    image: 'nginx:1.25',
    repository: 'docker.io/library/nginx',
    digest: DIGEST,
    team: 'payments',
    workloads: [
      { kind: 'Deployment', name: 'web' },
      { kind: 'CronJob', name: 'nightly' },
    ],
    ...desired,
  };
  const status = buildReportStatus({ scan, workloads: input.workloads, team: input.team, localOnly: input.localOnly, observedGeneration: 1, now: new Date('2026-11-26T12:00:00Z'), limits: { details } });
  return { ...buildReportObject(input), status };
}

describe('the ImageScanReport CRD', () => {
  it('has the names, scope, version and status subresource of the design', () => {
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.kind).toBe('CustomResourceDefinition');
    expect(crd.metadata.name).toBe('imagescanreports.imagescan.dev');
    expect(crd.spec.group).toBe('imagescan.dev');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names).toMatchObject({ kind: 'ImageScanReport', plural: 'imagescanreports', singular: 'imagescanreport', shortNames: ['isr'] });
    // Reports stay out of `kubectl get all`.
    expect(crd.spec.names.categories ?? []).not.toContain('all');
    expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([['v1alpha1', true, true]]);
    expect(version.subresources).toEqual({ status: {} });
  });

  it('prints the design columns (POLICY from the Policies section), DIGEST and TEAM only with -o wide', () => {
    const columns = version.additionalPrinterColumns.map((c) => [c.name.toUpperCase(), c.type, c.jsonPath, c.priority ?? 0]);
    expect(columns).toEqual([
      ['IMAGE', 'string', '.spec.image', 0],
      ['CRITICAL', 'integer', '.status.summary.critical', 0],
      ['HIGH', 'integer', '.status.summary.high', 0],
      ['MEDIUM', 'integer', '.status.summary.medium', 0],
      ['LOW', 'integer', '.status.summary.low', 0],
      ['FIXABLE', 'integer', '.status.summary.fixable', 0],
      ['PHASE', 'string', '.status.phase', 0],
      ['POLICY', 'string', '.status.policy.result', 0],
      ['LAST SCAN', 'date', '.status.lastScanTime', 0],
      ['AGE', 'date', '.metadata.creationTimestamp', 0],
      ['DIGEST', 'string', '.spec.digest', 1],
      ['TEAM', 'string', '.status.team', 1],
    ]);
    // Every column but AGE points at a declared field of the right type.
    for (const c of version.additionalPrinterColumns.filter((col) => !col.jsonPath.startsWith('.metadata'))) {
      let node: Schema | undefined = openAPISchema;
      for (const part of c.jsonPath.slice(1).split('.')) node = (node?.properties as Record<string, Schema> | undefined)?.[part];
      expect(node?.type, c.jsonPath).toBe(c.type === 'date' ? 'string' : c.type);
    }
  });

  it('is a structural schema', () => {
    const problems: string[] = [];
    const allowed = new Set([
      'type', 'description', 'properties', 'items', 'required', 'enum', 'pattern', 'format', 'minimum', 'maximum',
      'minLength', 'maxLength', 'minItems', 'maxItems', 'additionalProperties', 'nullable', 'default',
      'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields',
    ]);
    const walk = (node: Schema, at: string): void => {
      for (const key of Object.keys(node)) if (!allowed.has(key)) problems.push(`${at}: keyword ${key} is not allowed here`);
      if (typeof node.type !== 'string' && node['x-kubernetes-preserve-unknown-fields'] !== true) problems.push(`${at}: no type`);
      if (node.properties !== undefined && node.additionalProperties !== undefined) problems.push(`${at}: properties and additionalProperties together`);
      if (node.type === 'array' && node.items === undefined) problems.push(`${at}: array without items`);
      if (node.type === 'object' && node.properties === undefined && at !== '.metadata' && node['x-kubernetes-preserve-unknown-fields'] !== true) {
        problems.push(`${at}: object without properties`);
      }
      for (const key of node.required as string[] | undefined ?? []) {
        if ((node.properties as Record<string, unknown> | undefined)?.[key] === undefined) problems.push(`${at}: required ${key} is not declared`);
      }
      if (node['x-kubernetes-list-type'] === 'map') {
        const keys = node['x-kubernetes-list-map-keys'] as string[];
        const item = node.items as Schema;
        for (const k of keys) if (!(item.required as string[]).includes(k)) problems.push(`${at}: list-map key ${k} must be required`);
      }
      for (const [key, child] of Object.entries((node.properties as Record<string, Schema> | undefined) ?? {})) walk(child, `${at}.${key}`);
      if (node.items !== undefined) walk(node.items as Schema, `${at}[]`);
    };
    walk(openAPISchema, '');
    expect(problems).toEqual([]);
  });

  it('declares the standard metav1.Condition for status.conditions', () => {
    const conditions = (openAPISchema.properties as Record<string, Schema>).status?.properties as Record<string, Schema>;
    const item = conditions.conditions?.items as Schema;
    expect(item.required).toEqual(['lastTransitionTime', 'message', 'reason', 'status', 'type']);
    expect(Object.keys(item.properties as object).sort()).toEqual(['lastTransitionTime', 'message', 'observedGeneration', 'reason', 'status', 'type']);
  });
});

describe('reports the builder writes, validated against the CRD', () => {
  const fixtures = loadTrivyFixtures();

  it.each(fixtures.map((f) => [f.name, f.result] as const))('%s: valid, nothing pruned', (_name, result) => {
    expectValid(reportFor({ phase: 'Scanned', result, scannedAt: new Date('2026-11-26T10:00:00Z') }));
    expectValid(reportFor({ phase: 'Scanned', result, scannedAt: new Date('2026-11-26T10:00:00Z') }, {}, 'full'));
    expectValid(reportFor({ phase: 'Scanning', result, scannedAt: new Date('2026-11-26T10:00:00Z') }));
    expectValid(reportFor({ phase: 'Failed', result, failure: { reason: 'timeout', message: 'took longer than 10m' } }));
  });

  it('Pending, Failed and local-only reports are valid', () => {
    expectValid(reportFor(undefined));
    expectValid(reportFor({ phase: 'Scanning' }));
    expectValid(reportFor({ phase: 'Failed', failure: { reason: 'auth', message: 'x'.repeat(5000) } }, { localOnly: true, team: 'unassigned' }));
    // A long error with the retry sentence: the message stays within maxLength, the sentence whole.
    const retried = reportFor({ phase: 'Failed', failure: { reason: 'timeout', message: 'y'.repeat(5000), retry: { attempts: 5, nextRetryAt: new Date('2026-12-08T00:00:00Z'), maxAttempts: 5 } } });
    expectValid(retried);
    expect(retried.status).toMatchObject({ failedScanAttempts: 5, nextRetryTime: '2026-12-08T00:00:00Z' });
    expect(retried.status?.message).toMatch(/…  ?Gave up after 5 failed attempts in a row; next try with the scheduled rescan at 2026-12-08T00:00:00Z\.$/);
    expectValid(reportFor(undefined, { repository: 'registry.example.com:5000/team/app', image: 'registry.example.com:5000/team/app:v1' }));
    expectValid(reportFor(undefined, { repository: '[fd00::1]:5000/app', image: '[fd00::1]:5000/app' }));
  });

  it('declares the status.policy the policy audit writes, Fail and Pass alike', () => {
    const vulnerability = (id: string, severity: Vulnerability['severity']): Vulnerability => ({ id, severity, package: 'openssl', installedVersion: '3.0.1', fixedVersion: '3.0.2', target: 'debian 12', class: 'os-pkgs' }) as Vulnerability;
    const result = resultOf([vulnerability('CVE-2026-0001', 'CRITICAL'), vulnerability('CVE-2026-0002', 'HIGH')]);
    const report = reportFor({ phase: 'Scanned', result, scannedAt: new Date('2026-11-26T12:00:00Z') });
    const noCriticals = compilePolicy('no-criticals', { action: 'Deny', vulnerabilities: { critical: 0 } });
    const corpOnly = compilePolicy('corp-only', { allowedRegistries: ['registry.corp.example'] });
    if (!noCriticals.ok || !corpOnly.ok) throw new Error('test policies must compile');
    const policy = desiredReportPolicy([noCriticals.policy, corpOnly.policy], {}, report);
    expect(policy?.violations.map((v) => [v.policy, v.rule])).toEqual([
      ['corp-only', 'registry'],
      ['no-criticals', 'critical'],
    ]);
    expectValid({ ...report, status: { ...report.status, policy } });
    expectValid({ ...report, status: { ...report.status, policy: { result: 'Pass', violations: [] } } });
    expect(validate(JSON.parse(JSON.stringify({ ...report, status: { ...report.status, policy: { result: 'Maybe', violations: [] } } })))).toBe(false);
  });

  it('rejects what the API server would reject (the check is not vacuous)', () => {
    const report = reportFor(undefined);
    const bad = [
      { ...report, spec: { ...report.spec, digest: 'sha256:xyz' } },
      { ...report, status: { ...report.status, phase: 'Done' } },
      { ...report, status: { ...report.status, surprise: 1 } },
      { ...report, spec: { ...report.spec, extra: 'pruned' } },
    ];
    for (const r of bad) expect(validate(JSON.parse(JSON.stringify(r)))).toBe(false);
  });
});

// Strings that stress the cap: long, non-ASCII, and full of characters Go's encoder escapes.
const text = (max: number) =>
  fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: max }),
    fc.string({ unit: fc.constantFrom('<', '>', '&', '"', '\\', '😀', 'é', 'a'), maxLength: max }),
  );
const vulnerability: fc.Arbitrary<Vulnerability> = fc.record(
  {
    id: text(200),
    severity: fc.constantFrom(...SEVERITIES),
    package: text(300),
    installedVersion: text(300),
    fixedVersion: text(600),
    title: text(3000),
    url: text(1500),
    target: text(600),
  },
  { requiredKeys: ['id', 'severity', 'package', 'installedVersion', 'target'] },
);

function resultOf(vulnerabilities: Vulnerability[]): ScanResult {
  const count = (s: string) => vulnerabilities.filter((v) => v.severity === s).length;
  return {
    vulnerabilities,
    summary: {
      critical: count('CRITICAL'),
      high: count('HIGH'),
      medium: count('MEDIUM'),
      low: count('LOW'),
      unknown: count('UNKNOWN'),
      total: vulnerabilities.length,
      fixable: vulnerabilities.filter((v) => v.fixedVersion).length,
    },
    scanner: { name: 'Trivy', version: '0.58.1', dbUpdatedAt: '2026-11-26T06:00:00.123456789Z' },
  };
}

describe('a report of up to 10,000 vulnerabilities', () => {
  function checkCapped(vulnerabilities: Vulnerability[]): void {
    // The default: fix entries only, within their own budget, and the whole report within 64 KiB.
    const slim = reportFor({ phase: 'Scanned', result: resultOf(vulnerabilities), scannedAt: new Date('2026-11-26T10:00:00Z') });
    const fixes = slim.status?.fixes ?? [];
    expect(fixes.length).toBeLessThanOrEqual(500);
    expect(apiBytes(fixes)).toBeLessThanOrEqual(32 * 1024);
    expect(apiBytes(slim)).toBeLessThanOrEqual(64 * 1024);
    expect(slim.status?.vulnerabilities).toBeUndefined();
    if (vulnerabilities.some((v) => v.fixedVersion?.trim())) expect(fixes.length + (slim.status?.fixesOmitted ?? 0)).toBeGreaterThan(0);
    expectValid(slim);

    const report = reportFor({ phase: 'Scanned', result: resultOf(vulnerabilities), scannedAt: new Date('2026-11-26T10:00:00Z') }, {}, 'full');
    const status = report.status ?? {};
    const kept = status.vulnerabilities ?? [];
    expect(kept.length).toBeLessThanOrEqual(1000);
    expect(kept.length + (status.vulnerabilitiesOmitted ?? 0)).toBe(vulnerabilities.length);
    expect(apiBytes(kept)).toBeLessThanOrEqual(256 * 1024);
    expect(apiBytes(report)).toBeLessThan(ETCD_LIMIT / 3);
    expect(status.summary?.total).toBe(vulnerabilities.length);
    // Worst first, and no kept entry is less severe than an omitted one.
    const rank = (s: string) => SEVERITIES.indexOf(s as (typeof SEVERITIES)[number]);
    const ranks = kept.map((v) => rank(v.severity));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    const omittedBest = Math.min(...vulnerabilities.map((v) => rank(v.severity)).sort((a, b) => a - b).slice(kept.length));
    if (kept.length < vulnerabilities.length) expect(Math.max(-1, ...ranks)).toBeLessThanOrEqual(omittedBest);
    expectValid(report);
  }

  it('is capped, valid under the CRD schema and far below the size limit (property)', () => {
    fc.assert(
      fc.property(fc.array(vulnerability, { maxLength: 10_000, size: 'max' }), checkCapped),
      { numRuns: 12 },
    );
  });

  it('is capped for exactly 10,000 generated vulnerabilities', () => {
    const [sample] = fc.sample(fc.array(vulnerability, { minLength: 10_000, maxLength: 10_000 }), { numRuns: 1, seed: 42 });
    checkCapped(sample ?? []);
  });
});
