// The Grafana dashboard's queries, checked without Grafana: every selector is scoped to the $cluster
// variable, and the panels count what their titles say, evaluated by promtool on series shaped like
// the operator's (one image in three namespaces, the leader's series only, no zero buckets).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { DASHBOARD_FILE, dashboardQueries, rawDashboardQueries } from './dashboard-queries.js';
import { promtool, requirePromtool } from './promtool.js';

beforeAll(requirePromtool);

/** Metric names as they appear in the queries: the operator's, prom-client's defaults, and `up`. */
const SELECTOR = /\b(imagescan_[a-z_]+|process_[a-z_]+|nodejs_[a-z0-9_]+|up)\b(\{[^}]*\})?/g;

function query(panel: string, refId = 'A', opts: Parameters<typeof dashboardQueries>[0] = {}): string {
  const found = dashboardQueries(opts).find((q) => q.panel === panel && q.refId === refId);
  if (found === undefined) throw new Error(`no panel "${panel}" (${refId})`);
  return found.expr;
}

describe('Grafana dashboard', () => {
  it('scopes every selector of every query to the $cluster variable', () => {
    const queries = rawDashboardQueries();
    expect(queries.length).toBeGreaterThan(15);
    const unscoped: string[] = [];
    for (const q of queries) {
      for (const match of q.expr.matchAll(SELECTOR)) {
        if (!(match[2] ?? '').includes('cluster=~"$cluster"')) unscoped.push(`${q.panel} (${q.refId}): ${match[0]}`);
      }
    }
    expect(unscoped).toEqual([]);
  });

  it('has a cluster variable (All matches series without the label) that the team and namespace variables follow', () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { templating: { list: { name: string; definition?: string; allValue?: string; includeAll?: boolean }[] } };
    const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(variables.get('cluster')).toMatchObject({ definition: 'label_values(imagescan_build_info, cluster)', includeAll: true, allValue: '.*' });
    // The team list comes from a series every scanned image has (the vulnerability series of a clean image do not exist).
    expect(variables.get('team')?.definition).toBe('label_values(imagescan_report_last_scan_timestamp_seconds{cluster=~"$cluster"}, team)');
    expect(variables.get('namespace')?.definition).toContain('cluster=~"$cluster"');
  });

  it('counts images, not reports, in the fixable CRITICAL, scanned and policy panels, per selected cluster and team', async () => {
    const leader = 'job="imagescan-operator",instance="10.0.0.1:8080"';
    const series = (name: string, labels: string, value: number): { series: string; values: string } => ({ series: `${name}{${leader},${labels}}`, values: `${value}x5` });
    const vuln = (cluster: string, ns: string, report: string, team: string, severity: string, fixable: boolean, value: number) =>
      series('imagescan_image_vulnerabilities', `cluster="${cluster}",namespace="${ns}",report="${report}",image="${report.split('-')[0] ?? ''}:1",team="${team}",severity="${severity}",fixable="${fixable}"`, value);
    const scanned = (cluster: string, ns: string, report: string, team: string) =>
      series('imagescan_report_last_scan_timestamp_seconds', `cluster="${cluster}",namespace="${ns}",report="${report}",image="${report.split('-')[0] ?? ''}:1",team="${team}"`, 1);
    const input = [
      // Cluster a: nginx (2 fixable CRITICAL) in three payments namespaces; redis (HIGH only) in one;
      // search runs a clean alpine (no vulnerability series at all, only its scan time).
      ...['shop', 'checkout', 'billing'].flatMap((ns) => [vuln('a', ns, 'nginx-0123456789ab', 'payments', 'CRITICAL', true, 2), scanned('a', ns, 'nginx-0123456789ab', 'payments')]),
      vuln('a', 'shop', 'redis-aaaaaaaaaaaa', 'payments', 'HIGH', true, 3),
      scanned('a', 'shop', 'redis-aaaaaaaaaaaa', 'payments'),
      scanned('a', 'catalog', 'alpine-bbbbbbbbbbbb', 'search'),
      series('imagescan_images_tracked', 'cluster="a"', 4),
      series('process_resident_memory_bytes', 'cluster="a"', 200e6),
      series('imagescan_trivy_resident_memory_bytes', 'cluster="a"', 300e6),
      // Cluster b: another image with a fixable CRITICAL.
      vuln('b', 'shop', 'app-cccccccccccc', 'payments', 'CRITICAL', true, 7),
      scanned('b', 'shop', 'app-cccccccccccc', 'payments'),
      series('imagescan_images_tracked', 'cluster="b"', 1),
      // Policies in cluster a: nginx breaks two rules in all three namespaces, redis one in shop.
      ...['shop', 'checkout', 'billing'].flatMap((ns) =>
        ['critical', 'fixableCritical'].map((rule) => series('imagescan_policy_violations', `cluster="a",policy="prod-bar",namespace="${ns}",report="nginx-0123456789ab",image="nginx:1",team="payments",rule="${rule}"`, 1)),
      ),
      series('imagescan_policy_violations', 'cluster="a",policy="corp-registry",namespace="shop",report="redis-aaaaaaaaaaaa",image="redis:1",team="payments",rule="registry"', 1),
    ];
    const at = (expr: string, value: number, labels = '{}') => ({ expr, eval_time: '4m', exp_samples: [{ labels, value }] });
    const cases = [
      at(query('Images with fixable CRITICAL', 'A', { cluster: 'a' }), 1),
      at(query('Fixable CRITICAL vulnerabilities', 'A', { cluster: 'a' }), 2),
      at(query('Images scanned / tracked', 'A', { cluster: 'a' }), 3),
      at(query('Images scanned / tracked', 'B', { cluster: 'a' }), 4),
      at(query('Images with fixable CRITICAL', 'A', { cluster: 'a', team: 'search' }), 0),
      at(query('Images scanned / tracked', 'A', { cluster: 'a', team: 'search' }), 1),
      // All clusters: two images with fixable CRITICAL, five scanned, five tracked.
      at(query('Images with fixable CRITICAL'), 2),
      at(query('Images scanned / tracked', 'A'), 4),
      at(query('Images scanned / tracked', 'B'), 5),
      at(query('Images violating policies', 'A', { cluster: 'a' }), 2),
      at(query('Images violating policies', 'A', { cluster: 'a', team: 'search' }), 0),
      at(query('Images violating policies', 'A', { cluster: 'b' }), 0),
      at(query('Policy violations by image and rule', 'A', { cluster: 'a', namespace: 'shop' }).replace(/^count by/, 'sum(count by') + ')', 3),
      at(query('Memory: operator and its Trivy children', 'C', { cluster: 'a' }), 500e6, '{cluster="a",instance="10.0.0.1:8080",job="imagescan-operator"}'),
    ];
    const dir = mkdtempSync(path.join(tmpdir(), 'imagescan-dashboard-'));
    try {
      writeFileSync(path.join(dir, 'none.rules.yaml'), 'groups: []\n');
      writeFileSync(path.join(dir, 'dashboard.test.yaml'), stringify({ rule_files: ['none.rules.yaml'], evaluation_interval: '1m', tests: [{ interval: '1m', input_series: input, promql_expr_test: cases }] }));
      const result = await promtool(['test', 'rules', path.join(dir, 'dashboard.test.yaml')]);
      expect(result.exitCode, String(result.stdout) + String(result.stderr)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
