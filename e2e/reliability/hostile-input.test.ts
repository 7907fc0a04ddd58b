// User story: a cluster is full of odd things — a pod with 100 containers, names and labels at
// Kubernetes' maximum length, pods whose status is half written, debug (ephemeral) containers, image
// references with ports, digests only, or invalid ones; a Trivy that prints 10,000 vulnerabilities,
// 100 MB, nothing, or no file. The operator never crashes, every report it writes is accepted by the
// API server and stays far below its size limit, broken scans say why, and other images keep being
// scanned.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestFor } from '../fake-apiserver/index.js';
import type { KubeObject } from '../fake-apiserver/index.js';
import { CLEAN_FIXTURE, eventually, rawVulnerabilityCount, startRig, writeSyntheticReport } from './harness.js';
import type { OperatorProcess, ReportLike, Rig, StubEntry } from './harness.js';

const HEX = (c: string) => c.repeat(64);
const LONG_NS = `ns-${'n'.repeat(60)}`; // 63: the longest namespace name
const LONG_POD = `p${'o'.repeat(251)}d`; // 253: the longest pod name
const LONG_TEAM = `t${'e'.repeat(61)}m`; // 63: the longest label value

describe('hostile and odd input', () => {
  let rig: Rig;
  let operator: OperatorProcess;
  let manyVulns: string;

  const report = (ns: string, image: string): ReportLike | undefined => rig.reports(ns).find((r) => r.spec?.image === image);
  const settled = (ns: string, image: string): ReportLike | undefined => {
    const r = report(ns, image);
    return r?.status?.phase === 'Scanned' || r?.status?.phase === 'Failed' ? r : undefined;
  };

  beforeAll(async () => {
    rig = await startRig();
    manyVulns = writeSyntheticReport(path.join(rig.work, 'many-vulns.json'), 10_000, { longText: true });
    const garbage100mb = path.join(rig.work, 'garbage-100mb.json');
    writeFileSync(garbage100mb, Buffer.alloc(100 * 1024 * 1024, '{"SchemaVersion": 2, "Results": ['));
    const map: Record<string, string | StubEntry> = {
      default: CLEAN_FIXTURE,
      'ghcr.io/odd/many-vulns': { fixture: manyVulns },
      'ghcr.io/odd/huge-report': { mode: 'huge', hugeMb: 100 },
      'ghcr.io/odd/garbage-100mb': { fixture: garbage100mb },
      'ghcr.io/odd/garbage': { mode: 'garbage' },
      'ghcr.io/odd/empty': { mode: 'empty' },
      'ghcr.io/odd/nofile': { mode: 'nofile' },
    };
    rig.setStubMap(map);
    // The CRD allows 1000 listed entries; ask for more to check the operator's own cap holds.
    operator = rig.start({ args: ['--max-report-vulnerabilities', '1000', '--scan-concurrency', '4'] });
    await operator.waitForLine((l) => l.msg === 'caches synced', 30_000);
  });

  afterAll(async () => {
    await rig?.close();
  });

  it('a pod with 100 containers (init, regular, ephemeral) gets one Scanned report per digest', async () => {
    const image = (i: number) => `ghcr.io/many/c${i}:1`;
    rig.api.seed.pod({
      namespace: 'many',
      name: 'hundred',
      initContainers: Array.from({ length: 10 }, (_, i) => image(i)),
      containers: Array.from({ length: 85 }, (_, i) => image(10 + i)),
      ephemeralContainers: Array.from({ length: 5 }, (_, i) => image(95 + i)),
    });
    await eventually(() => {
      const all = rig.reports('many');
      return all.length === 100 && all.every((r) => r.status?.phase === 'Scanned') ? true : undefined;
    }, 90_000, `100 Scanned reports (have ${rig.reports('many').length})`);
    const digests = rig.reports('many').map((r) => r.spec?.digest).sort();
    expect(digests).toEqual(Array.from({ length: 100 }, (_, i) => digestFor(image(i))).sort());
    expect(rig.reports('many').every((r) => JSON.stringify(r.status?.workloads) === JSON.stringify([{ kind: 'Pod', name: 'hundred' }]))).toBe(true);
  }, 120_000);

  it('maximum-length names and label values, unicode annotations: a valid report naming them', async () => {
    rig.api.seed.namespace(LONG_NS, { team: LONG_TEAM });
    rig.api.seed.pod({
      namespace: LONG_NS,
      name: LONG_POD,
      labels: { ['app.kubernetes.io/name']: `a${'b'.repeat(62)}` },
      annotations: { description: 'Ünïcødé ☃ 日本語 🚀 — a pod with a long name' },
      containers: [{ name: `c${'x'.repeat(62)}`, image: `registry.example.com:5000/${'deep/'.repeat(10)}${'r'.repeat(120)}:${'t'.repeat(128)}` }],
    });
    const r = await eventually(() => rig.reports(LONG_NS).find((x) => x.status?.phase === 'Scanned'), 30_000, 'report for the long names');
    expect(r.status?.workloads).toEqual([{ kind: 'Pod', name: LONG_POD }]);
    expect(r.status?.team).toBe(LONG_TEAM);
    expect(r.metadata?.labels?.['imagescan.dev/team']).toBe(LONG_TEAM);
    expect((r.metadata?.name ?? '').length).toBeLessThanOrEqual(53);
    expect(r.spec?.repository).toBe(`registry.example.com:5000/${'deep/'.repeat(10)}${'r'.repeat(120)}`);
  });

  it('pods with missing status fields are waited for, never crash the operator', async () => {
    const base = (name: string, status: unknown): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'odd' },
      spec: { containers: [{ name: 'app', image: `ghcr.io/odd/${name}:1` }] },
      ...(status === undefined ? {} : { status }),
    });
    rig.api.seed.objects([
      base('no-status', undefined),
      base('empty-status', {}),
      base('no-container-statuses', { phase: 'Running' }),
      base('status-without-imageid', { phase: 'Running', containerStatuses: [{ name: 'app', ready: true }] }),
      base('status-without-name', { phase: 'Running', containerStatuses: [{ imageID: `ghcr.io/odd/x@sha256:${HEX('a')}` }] }),
      base('status-not-a-list', { phase: 'Running', containerStatuses: { app: 'x' } }),
    ]);
    // A normal pod seeded after them still gets its report: the operator is alive and working.
    rig.api.seed.pod({ namespace: 'odd', name: 'normal', containers: ['ghcr.io/odd/normal:1'] });
    await eventually(() => settled('odd', 'ghcr.io/odd/normal:1'), 30_000, 'the normal pod scanned');
    expect(rig.reports('odd').map((r) => r.spec?.image)).toEqual(['ghcr.io/odd/normal:1']);
    expect(operator.child.exitCode).toBeNull();
  });

  const digestOnly = `ghcr.io/odd/digest-only@sha256:${HEX('b')}`;
  const tagAndDigest = `localhost:5000/a/b/c:tag@sha256:${HEX('c')}`;
  const withPort = 'registry.example.com:5000/team/app:1.2';
  const invalid = 'Registry.Example.com/UPPER/Case:1';
  const unicode = 'ghcr.io/odd/ünïcødé:1';

  it('odd image references: port, digest only, localhost with tag and digest → reports with the right repository; invalid ones → no report, no crash', async () => {
    rig.api.seed.pod({
      namespace: 'refs',
      name: 'refs',
      containers: [
        digestOnly,
        tagAndDigest,
        withPort,
        // A runtime never starts these, but a status may still claim an imageID; they must not crash or report.
        { image: invalid, imageID: `registry.example.com/upper/case@sha256:${HEX('d')}` },
        { image: unicode, imageID: `ghcr.io/odd/x@sha256:${HEX('e')}` },
      ],
    });
    const scanned = await eventually(() => {
      const all = rig.reports('refs');
      return all.length >= 3 && all.every((r) => r.status?.phase === 'Scanned') ? all : undefined;
    }, 30_000, 'reports of the valid references');
    const byImage = new Map(scanned.map((r) => [r.spec?.image, r]));
    expect(byImage.get(digestOnly)?.spec).toMatchObject({ repository: 'ghcr.io/odd/digest-only', digest: `sha256:${HEX('b')}` });
    expect(byImage.get(tagAndDigest)?.spec).toMatchObject({ repository: 'localhost:5000/a/b/c', digest: `sha256:${HEX('c')}` });
    expect(byImage.get(withPort)?.spec?.repository).toBe('registry.example.com:5000/team/app');
    expect([...byImage.keys()].sort()).toEqual([digestOnly, tagAndDigest, withPort].sort());
    expect(operator.child.exitCode).toBeNull();
  });

  it('invalid references are named in a warning log line (pod, container, reference)', async () => {
    for (const bad of [invalid, unicode]) {
      const line = await operator.waitForLine((l) => l.image === bad, 10_000);
      expect(line.level).toBe('warn');
      expect(line).toMatchObject({ namespace: 'refs', pod: 'refs' });
    }
  });

  it('10,000 vulnerabilities with over-long fields: Scanned, capped, valid under the CRD, far below the size limit', async () => {
    rig.api.seed.pod({ namespace: 'big', name: 'many-vulns', containers: ['ghcr.io/odd/many-vulns:1'] });
    const r = await eventually(() => settled('big', 'ghcr.io/odd/many-vulns:1'), 30_000, 'many-vulns report');
    expect(r.status?.phase).toBe('Scanned');
    const total = rawVulnerabilityCount(manyVulns);
    expect(total).toBe(10_000);
    const fixes = r.status?.fixes ?? [];
    expect(r.status?.summary?.total).toBe(total);
    // What to upgrade, worst first and within its budget; the per-vulnerability list only with --report-details=full.
    expect(fixes.length).toBeGreaterThan(0);
    expect(fixes.length + (r.status?.fixesOmitted ?? 0)).toBeGreaterThan(fixes.length);
    expect(fixes[0]?.critical).toBeGreaterThan(0);
    expect(Buffer.byteLength(JSON.stringify(fixes))).toBeLessThanOrEqual(8 * 1024);
    expect(r.status).not.toHaveProperty('vulnerabilities');
    const size = Buffer.byteLength(JSON.stringify(rig.api.objects.get('imagescanreports.imagescan.dev', 'big', r.metadata?.name ?? '')));
    expect(size).toBeLessThan(64 * 1024); // the API server refuses 1.5 MiB; etcd holds one per namespace
  }, 60_000);

  it('a valid 100 MB Trivy report is scanned and capped; the operator stays up', async () => {
    rig.api.seed.pod({ namespace: 'big', name: 'huge', containers: ['ghcr.io/odd/huge-report:1'] });
    const r = await eventually(() => settled('big', 'ghcr.io/odd/huge-report:1'), 60_000, 'huge report');
    const end = rig.stubEvents().find((e) => e.event === 'end' && e.mappingKey === 'ghcr.io/odd/huge-report') as { huge?: { total: number; bytes: number } } | undefined;
    expect(end?.huge?.bytes).toBeGreaterThanOrEqual(100 * 1024 * 1024);
    expect(r.status?.phase).toBe('Scanned');
    expect(r.status?.summary?.total).toBe(end?.huge?.total);
    const size = Buffer.byteLength(JSON.stringify(rig.api.objects.get('imagescanreports.imagescan.dev', 'big', r.metadata?.name ?? '')));
    expect(size).toBeLessThan(512 * 1024);
  }, 90_000);

  it('Trivy writing 100 MB of garbage, garbage, an empty file or no file → Failed (invalid_output); other images still scanned', async () => {
    const broken = ['garbage-100mb', 'garbage', 'empty', 'nofile'];
    for (const name of broken) rig.api.seed.pod({ namespace: 'broken', name, containers: [`ghcr.io/odd/${name}:1`] });
    rig.api.seed.pod({ namespace: 'broken', name: 'fine', containers: ['ghcr.io/odd/fine:1'] });
    for (const name of broken) {
      const r = await eventually(() => settled('broken', `ghcr.io/odd/${name}:1`), 60_000, `${name} report`);
      expect(r.status?.phase, name).toBe('Failed');
      expect(r.status?.message, name).toContain('invalid_output');
    }
    expect((await eventually(() => settled('broken', 'ghcr.io/odd/fine:1'), 30_000, 'fine report')).status?.phase).toBe('Scanned');
    // A permanent failure is not retried in a loop: one Trivy run per broken image.
    for (const name of broken) {
      expect(rig.stubEvents().filter((e) => e.event === 'start' && e.argv?.some((a) => a.startsWith(`ghcr.io/odd/${name}@`))).length, name).toBe(1);
    }
    rig.api.seed.pod({ namespace: 'broken', name: 'after', containers: ['ghcr.io/odd/after:1'] });
    expect((await eventually(() => settled('broken', 'ghcr.io/odd/after:1'), 30_000, 'a later image')).status?.phase).toBe('Scanned');
    expect(operator.child.exitCode).toBeNull();
    expect(operator.lines.filter((l) => l.level === 'fatal' || l.msg === 'unhandled promise rejection')).toEqual([]);
  }, 120_000);
});
