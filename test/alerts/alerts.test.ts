// Alert rules and metrics against Prometheus' own tooling: promtool checks the rules, runs their unit
// tests (monitoring/alerts.test.yaml) and lints a real /metrics exposition of OperatorMetrics.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { OperatorMetrics } from '../../src/metrics/operator-metrics.js';
import type { ImageScanReport } from '../../src/reports/image-scan-report.js';
import { RULES_FILE, RULES_TEST_FILE, readPrometheusRuleGroups, readRuleGroups, rulesWithShortFor } from './alert-rules.js';
import { fakeReport, fixtureEntries, repoRoot, scannedStatus } from './fake-reports.js';
import { ALERTMANAGER_EXAMPLE_FILE, AMTOOL_INSTALL_HINT } from './alertmanager.js';
import { scrapeText } from './prometheus-text.js';
import { promtool, requirePromtool } from './promtool.js';

const DESIGN_ALERTS = [
  'ImageFixableCriticalVulnerabilities',
  'ImageScanFailing',
  'ImageScanReportStale',
  'TrivyDatabaseStale',
  'ImageScanOperatorDown',
  'ImagePolicyViolation',
];
const PER_IMAGE_METRICS = ['imagescan_image_vulnerabilities', 'imagescan_report_last_scan_timestamp_seconds', 'imagescan_policy_violations'];
const MONITORING_README = path.join(repoRoot, 'monitoring/README.md');

/** The anchors GitHub gives a Markdown file's headings (lower case, punctuation dropped, spaces to '-'). */
function headingAnchors(markdown: string): string[] {
  const anchors: string[] = [];
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = fenced ? undefined : /^#{1,6} (.+)$/.exec(line)?.[1];
    if (heading === undefined) continue;
    anchors.push(heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return anchors;
}

beforeAll(requirePromtool);

describe('alert rules', () => {
  it('pass promtool check rules', async () => {
    const result = await promtool(['check', 'rules', RULES_FILE]);
    expect(result.exitCode, String(result.stdout) + String(result.stderr)).toBe(0);
  });

  it('pass their promtool unit tests (each alert fires exactly when it should)', async () => {
    const result = await promtool(['test', 'rules', RULES_TEST_FILE]);
    expect(result.exitCode, String(result.stdout) + String(result.stderr)).toBe(0);
  }, 60_000);

  it('are the same in the PrometheusRule manifest as in the rules file', () => {
    expect(
      readPrometheusRuleGroups(),
      'manifests/components/monitoring/prometheusrule.yaml is out of date: run `npx tsx test/alerts/sync-prometheusrule.ts`',
    ).toEqual(readRuleGroups());
  });

  it('define every alert of the design, each with a severity, a summary, a description and a for: duration', () => {
    const rules = readRuleGroups().flatMap((g) => g.rules);
    expect([...new Set(rules.map((r) => r.alert))].sort()).toEqual([...DESIGN_ALERTS].sort());
    for (const rule of rules) {
      expect(rule.labels?.severity, rule.alert).toMatch(/^(critical|warning|info)$/);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
    }
  });

  it('give a team one alert per image (team and report, not namespace) on every per-image metric, and keep firing through a leader handover', () => {
    const rules = readRuleGroups().flatMap((g) => g.rules);
    const perImage = rules.filter((r) => PER_IMAGE_METRICS.some((m) => r.expr.includes(m)));
    expect(perImage.map((r) => r.alert).sort()).toEqual(['ImageFixableCriticalVulnerabilities', 'ImagePolicyViolation', 'ImageScanReportStale']);
    for (const rule of perImage) {
      // The outermost aggregation decides the alert's labels.
      const by = /by \(([^)]*)\)/.exec(rule.expr)?.[1]?.split(',').map((s) => s.trim()) ?? [];
      expect(by.sort(), rule.alert).toEqual(['cluster', 'report', 'team']);
      // Only the leader exports these series: a handover leaves a gap of a scrape or two.
      expect(rule.keep_firing_for, rule.alert).toBe('5m');
    }
    const critical = rules.find((r) => r.alert === 'ImageFixableCriticalVulnerabilities');
    expect(critical?.annotations?.description).toContain('get imagescanreport {{ $labels.report }} -o yaml');
  });

  it('link each alert to a runbook: a section of monitoring/README.md that exists', () => {
    const anchors = headingAnchors(readFileSync(MONITORING_README, 'utf8'));
    const rules = readRuleGroups().flatMap((g) => g.rules);
    for (const rule of rules) {
      const url = rule.annotations?.runbook_url ?? '';
      const match = /^https:\/\/github\.com\/imagescan-operator\/imagescan-operator\/blob\/main\/monitoring\/README\.md#([a-z0-9_-]+)$/.exec(url);
      expect(match, `${rule.alert}: ${url}`).not.toBeNull();
      expect(anchors, `${rule.alert}: no heading for #${match?.[1] ?? ''} in monitoring/README.md`).toContain(match?.[1]);
      // The runbook is the alert's own section.
      expect(match?.[1]).toBe(rule.alert.toLowerCase());
    }
    // The heading rule itself, on the forms the README uses.
    expect(headingAnchors('## Runbooks\n### `ImageScanFailing` (reason=x)\n```\n# not a heading\n```\n')).toEqual(['runbooks', 'imagescanfailing-reasonx']);
  });

  it("send the SRE to the leader's log, not to a random replica's", () => {
    const rules = readRuleGroups().flatMap((g) => g.rules);
    for (const rule of rules) {
      const description = rule.annotations?.description ?? '';
      // `kubectl logs deploy/…` picks one pod, the leader or not.
      expect(description, rule.alert).not.toMatch(/logs deploy\//);
      if (!description.includes(' logs ')) continue;
      expect(description, rule.alert).toMatch(/get lease imagescan-operator -o jsonpath='\{\.spec\.holderIdentity\}'|logs -l app\.kubernetes\.io\/name=imagescan-operator --prefix/);
    }
    const readme = readFileSync(MONITORING_README, 'utf8');
    expect(readme).toContain("kubectl -n imagescan-system get lease imagescan-operator -o jsonpath='{.spec.holderIdentity}'");
    expect(readme).toContain('imagescan_leader == 1');
  });

  it('can be rewritten with short for: durations for the incident test, still valid for promtool', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'imagescan-rules-'));
    try {
      const file = path.join(dir, 'alerts.rules.yaml');
      writeFileSync(file, rulesWithShortFor('1s'));
      const result = await promtool(['check', 'rules', file]);
      expect(result.exitCode, String(result.stdout) + String(result.stderr)).toBe(0);
      const rules = readRuleGroups(file).flatMap((g) => g.rules);
      const original = readRuleGroups().flatMap((g) => g.rules);
      expect(rules.map((r) => r.for)).toEqual(original.map(() => '1s'));
      expect(rules.map((r) => r.keep_firing_for)).toEqual(original.map((r) => (r.keep_firing_for === undefined ? undefined : '1s')));
      expect(rules.map((r) => r.expr)).toEqual(original.map((r) => r.expr));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => rulesWithShortFor('soon')).toThrow(/not a Prometheus duration/);
  });
});

describe('Alertmanager example routing', () => {
  async function amtool(args: string[]): Promise<string> {
    const result = await execa('amtool', args, { reject: false });
    if (result.code === 'ENOENT') throw new Error(AMTOOL_INSTALL_HINT);
    expect(result.exitCode, String(result.stderr)).toBe(0);
    return String(result.stdout).trim();
  }

  it('is a valid Alertmanager config', async () => {
    await amtool(['check-config', ALERTMANAGER_EXAMPLE_FILE]);
  });

  it('groups by team and image (report), not by namespace: one notification per team and image', () => {
    const config = parse(readFileSync(ALERTMANAGER_EXAMPLE_FILE, 'utf8')) as { route: { group_by?: string[] } };
    expect(config.route.group_by).toEqual(['alertname', 'cluster', 'team', 'report']);
  });

  it.each([
    [['team=payments', 'alertname=ImageFixableCriticalVulnerabilities'], 'payments'],
    [['team=search', 'alertname=ImageScanReportStale'], 'search'],
    [['team=unassigned', 'alertname=ImageFixableCriticalVulnerabilities'], 'platform-sre'],
    [['team=newteam', 'alertname=ImageFixableCriticalVulnerabilities'], 'platform-sre'],
    [['team=platform', 'alertname=ImageFixableCriticalVulnerabilities', 'report=proxyv2-0123456789ab'], 'platform-sre'],
    [['alertname=ImageScanOperatorDown', 'severity=critical'], 'platform-sre'],
    [['alertname=TrivyDatabaseStale', 'severity=warning'], 'platform-sre'],
  ])('routes %j to %s', async (labels, receiver) => {
    expect(await amtool(['config', 'routes', 'test', `--config.file=${ALERTMANAGER_EXAMPLE_FILE}`, ...labels])).toBe(receiver);
  });
});

describe('OperatorMetrics exposition', () => {
  it('passes promtool check metrics with reports, scans and default metrics in it', async () => {
    const reports: ImageScanReport[] = [
      fakeReport({ namespace: 'shop', name: 'nginx-0123456789ab', image: 'nginx:1.19', status: scannedStatus(fixtureEntries('real-world/trustdsai-nginx-1.19.json'), { team: 'payments' }) }),
      fakeReport({ namespace: 'catalog', name: 'redis-aaaaaaaaaaaa', image: 'redis:7', digest: `sha256:${'a'.repeat(64)}`, status: scannedStatus(fixtureEntries('real-world/trivyweb-redis-7.json'), { team: 'search' }) }),
      fakeReport({ namespace: 'tools', name: 'pending-bbbbbbbbbbbb', image: 'busybox:1', digest: `sha256:${'b'.repeat(64)}` }),
    ];
    const nginx = reports[0];
    if (nginx?.status !== undefined) {
      nginx.status.policy = {
        result: 'Fail',
        violations: [
          { policy: 'corp-registry', rule: 'registry', message: 'nginx:1.19 (docker.io/library/nginx) is not from a registry that ImageScanPolicy corp-registry allows' },
          { policy: 'prod-bar', rule: 'critical', message: 'nginx:1.19 has 42 CRITICAL vulnerabilities, more than ImageScanPolicy prod-bar allows' },
        ],
      };
    }
    const metrics = new OperatorMetrics({ reportSource: { list: () => reports } });
    metrics.observeScan({ result: 'success', durationSeconds: 12.5 });
    metrics.observeScan({ result: 'failure', reason: 'timeout', durationSeconds: 600 });
    metrics.setQueue(3, 1);
    metrics.setLeader(true);
    metrics.setDbUpdatedAt('2026-11-26T06:00:00Z');
    metrics.setBuildInfo('0.1.0', '0.58.1');
    const text = await scrapeText(metrics);
    expect(text).toContain('imagescan_image_vulnerabilities{');
    expect(text).toContain('imagescan_policy_violations{policy="prod-bar",namespace="shop",report="nginx-0123456789ab",image="nginx:1.19",team="payments",rule="critical"} 1\n');

    const result = await promtool(['check', 'metrics'], text);
    expect(String(result.stdout) + String(result.stderr)).toBe('');
    expect(result.exitCode).toBe(0);
  });
});
