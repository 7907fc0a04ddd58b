// User story: the platform team upgrades the operator over a cluster full of reports written before
// status.fixes (each with its per-vulnerability list). The new version rewrites each report once into
// the new format from what the report holds, and scans again only an image whose old list was capped
// (its fixable vulnerabilities are not all known): no storm of writes or scans.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { digestFor } from '../fake-apiserver/index.js';
import { eventually, fixturesDir, NGINX_FIXTURE, startRig } from './harness.js';
import type { ReportLike, Rig } from './harness.js';

const NGINX = 'ghcr.io/acme/nginx:1.19';
const ALPINE = 'ghcr.io/acme/alpine:3.19';
const NAMESPACES = ['shop', 'search', 'billing'];

describe('an upgrade over reports in the old format', () => {
  let rig: Rig;

  beforeAll(async () => {
    rig = await startRig();
    rig.setStubMap({
      [digestFor(NGINX)]: NGINX_FIXTURE,
      [digestFor(ALPINE)]: path.join(fixturesDir, 'real-world/trustdsai-alpine-3.19.json'),
    });
    for (const namespace of NAMESPACES) {
      rig.api.seed.deployment({ namespace, name: 'web', containers: [NGINX] });
      rig.api.seed.deployment({ namespace, name: 'tools', containers: [ALPINE] });
    }
  });

  /** Trivy runs that scan an image, by reference or from its cached SBOM (not DB downloads or versions). */
  const scanRuns = () =>
    rig.stubEvents().filter((e) => e.event === 'start' && (e.argv?.[0] === 'image' || e.argv?.[0] === 'sbom') && !e.argv.some((a) => a.startsWith('--download')));

  afterAll(async () => {
    await rig?.close();
  });

  it('rewrites every report once, and rescans only the image whose old list was capped', async () => {
    // The old version: the per-vulnerability list, capped at 100 (nginx:1.19 has 795 entries, 337
    // fixable; alpine 3.19 has 6, all listed). Its reports are these without status.fixes.
    const old = rig.start({ args: ['--report-details=full', '--max-report-vulnerabilities=100'] });
    const scanned = (r: ReportLike) => r.status?.phase === 'Scanned';
    await eventually(() => (rig.reports().filter(scanned).length === 6 ? true : undefined), 30_000, 'six Scanned reports');
    await old.stop();
    for (const report of rig.reports()) {
      const { fixes: _fixes, fixesOmitted: _omitted, ...status } = report.status ?? {};
      rig.api.objects.upsert({ ...report, status } as Parameters<Rig['api']['objects']['upsert']>[0]);
    }
    const before = new Map(rig.reports().map((r) => [`${r.metadata?.namespace}/${r.metadata?.name}`, r]));
    for (const r of before.values()) {
      expect(r.status).not.toHaveProperty('fixes');
      expect(r.status?.vulnerabilities?.length).toBeGreaterThan(0);
    }
    expect(before.get(`shop/${rig.reports('shop').find((r) => r.spec?.image === NGINX)?.metadata?.name}`)?.status?.vulnerabilitiesOmitted).toBeGreaterThan(0);
    const scansBefore = scanRuns().length;
    const seq = rig.api.requests().at(-1)?.seq ?? 0;

    // The new version, with its defaults.
    rig.start();
    const converted = (r: ReportLike) => Array.isArray(r.status?.fixes) && r.status?.vulnerabilities === undefined && r.status.vulnerabilitiesOmitted === undefined;
    await eventually(() => (rig.reports().filter(converted).length === 6 ? true : undefined), 30_000, 'six reports in the new format');
    // Whatever would come after the conversion (a second write, another scan) has had time to happen.
    await new Promise((resolve) => setTimeout(resolve, 4_000));

    const writes = rig.api
      .requests()
      .filter((r) => r.seq > seq && r.resource === 'imagescanreports' && r.verb !== undefined && ['create', 'update', 'patch', 'delete'].includes(r.verb));
    const byReport = new Map<string, string[]>();
    for (const w of writes) byReport.set(`${w.namespace}/${w.name}`, [...(byReport.get(`${w.namespace}/${w.name}`) ?? []), `${w.verb} ${w.subresource ?? ''}`.trim()]);
    expect(Object.fromEntries(byReport)).toEqual(Object.fromEntries([...before.keys()].map((key) => [key, ['patch status']])));

    // One scan, of nginx: an image scan, or a rescan of its cached SBOM (named by the digest's hex).
    const scans = scanRuns().slice(scansBefore);
    expect(scans).toHaveLength(1);
    expect(scans[0]?.argv?.join(' ')).toContain(digestFor(NGINX).slice('sha256:'.length));

    for (const report of rig.reports()) {
      const was = before.get(`${report.metadata?.namespace}/${report.metadata?.name}`);
      expect(report.status?.summary).toEqual(was?.status?.summary);
      const fixes = report.status?.fixes ?? [];
      expect(fixes.length).toBeGreaterThan(0);
      if (report.spec?.image === ALPINE) {
        // Converted from the report itself: the same scan, every fixable vulnerability in an entry.
        expect(report.status?.lastScanTime).toBe(was?.status?.lastScanTime);
        expect(fixes.reduce((n, f) => n + f.critical + f.high + f.medium + f.low, 0)).toBe(report.status?.summary?.fixable);
      }
    }
    expect(rig.reports()).toHaveLength(6);
  }, 90_000);
});
