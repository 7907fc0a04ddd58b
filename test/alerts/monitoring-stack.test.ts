// The monitoring files against real Prometheus and Alertmanager: the metrics server with fake
// reports is scraped every second, the alert rules (with 1 s `for:`) fire, the example routing
// delivers each alert to its team's webhook, and every dashboard query returns data.
// The operator itself is not involved (that is the e2e incident test); this proves the rules,
// routing and dashboard work on the real metrics exposition.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetricsServer } from '../../src/metrics/http-server.js';
import type { MetricsServer } from '../../src/metrics/http-server.js';
import { OperatorMetrics } from '../../src/metrics/operator-metrics.js';
import type { ImageScanReport } from '../../src/reports/image-scan-report.js';
import { rulesWithShortFor } from './alert-rules.js';
import { alertmanagerConfigForTest, startAlertmanager } from './alertmanager.js';
import type { RunningAlertmanager } from './alertmanager.js';
import { dashboardQueries } from './dashboard-queries.js';
import { fakeReport, fixtureEntries, scannedStatus } from './fake-reports.js';
import { startPrometheus } from './prometheus.js';
import type { RunningPrometheus } from './prometheus.js';
import { startWebhookReceiver } from './webhook-receiver.js';
import type { WebhookNotification, WebhookReceiver } from './webhook-receiver.js';

const now = (): string => new Date().toISOString();
const vulnerable = fakeReport({
  namespace: 'shop',
  name: 'nginx-0123456789ab',
  image: 'nginx:1.19',
  status: {
    ...scannedStatus(fixtureEntries('real-world/trustdsai-nginx-1.19.json'), { team: 'payments', lastScanTime: now() }),
    // It also fails an ImageScanPolicy (the dashboard's policy panels have data).
    policy: { result: 'Fail', violations: [{ policy: 'prod-bar', rule: 'critical', message: 'nginx:1.19 has 42 CRITICAL vulnerabilities, more than ImageScanPolicy prod-bar allows' }] },
  },
});
// The same digest runs in a second payments namespace: still one alert (team and image).
const vulnerableElsewhere = fakeReport({
  namespace: 'checkout',
  name: 'nginx-0123456789ab',
  image: 'docker.io/library/nginx:1.19',
  status: scannedStatus(fixtureEntries('real-world/trustdsai-nginx-1.19.json'), { team: 'payments', lastScanTime: now() }),
});
const clean = fakeReport({
  namespace: 'shop',
  name: 'nginx-fedcba987654',
  image: 'nginx:1.27',
  digest: `sha256:${'f'.repeat(64)}`,
  status: scannedStatus([], { team: 'payments', lastScanTime: now() }),
});
// team search runs an image with vulnerabilities, none of them fixable CRITICAL.
const searchImage = fakeReport({
  namespace: 'catalog',
  name: 'alpine-aaaaaaaaaaaa',
  image: 'alpine:3.19',
  digest: `sha256:${'a'.repeat(64)}`,
  status: scannedStatus(fixtureEntries('real-world/trustdsai-alpine-3.19.json'), { team: 'search', lastScanTime: now() }),
});

let reports: ImageScanReport[] = [vulnerable, vulnerableElsewhere, searchImage];
let metricsServer: MetricsServer | undefined;
let prometheus: RunningPrometheus | undefined;
let alertmanager: RunningAlertmanager | undefined;
let webhook: WebhookReceiver;

const isFixableCritical = (status: 'firing' | 'resolved') => (n: WebhookNotification): boolean =>
  n.alerts.some((a) => a.labels.alertname === 'ImageFixableCriticalVulnerabilities' && a.status === status);

beforeAll(async () => {
  const metrics = new OperatorMetrics({ reportSource: { list: () => reports } });
  metrics.setLeader(true);
  metrics.setDbUpdatedAt(new Date());
  metrics.setBuildInfo('0.1.0-test', '0.58.1');
  metrics.setQueue(0, 0);
  metrics.observeScan({ result: 'success', durationSeconds: 8 });
  metricsServer = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    metrics,
    readiness: () => ({ ready: true, reasons: [] }),
    logger: pino({ level: 'silent' }),
  });
  webhook = await startWebhookReceiver();
  alertmanager = await startAlertmanager(alertmanagerConfigForTest(webhook.url));
  prometheus = await startPrometheus({
    targets: [`127.0.0.1:${metricsServer.address.port}`],
    rules: [rulesWithShortFor('1s')],
    alertmanagerUrl: alertmanager.url,
  });
  // Scans keep happening while the stack runs, so rate() panels have something to show.
  scanTicker = setInterval(() => {
    metrics.observeScan({ result: 'success', durationSeconds: 5 + Math.random() * 20 });
    metrics.observeAdmissionReview('Deployment', 'warn', 0.0004);
  }, 500);
}, 60_000);

let scanTicker: ReturnType<typeof setInterval> | undefined;

afterAll(async () => {
  clearInterval(scanTicker);
  await prometheus?.stop();
  await alertmanager?.stop();
  await metricsServer?.close();
  await webhook.close();
});

describe('monitoring stack on real Prometheus and Alertmanager', () => {
  it('sends fixable CRITICAL of a payments image to the payments receiver only: one alert for its two namespaces, naming both', async () => {
    const notification = await webhook.waitFor('payments', isFixableCritical('firing'));
    const alerts = notification.alerts.filter((a) => a.labels.alertname === 'ImageFixableCriticalVulnerabilities');
    expect(alerts).toHaveLength(1);
    const alert = alerts[0];
    expect(alert?.labels).toEqual({ alertname: 'ImageFixableCriticalVulnerabilities', team: 'payments', report: 'nginx-0123456789ab', severity: 'warning' });
    expect(alert?.annotations.description).toContain('  checkout (docker.io/library/nginx:1.19)\n  shop (nginx:1.19)\n');
    expect(alert?.annotations.description).toContain('kubectl -n checkout get imagescanreport nginx-0123456789ab -o yaml');
    expect(alert?.annotations.runbook_url).toMatch(/monitoring\/README\.md#imagefixablecriticalvulnerabilities$/);
    const critical = fixtureEntries('real-world/trustdsai-nginx-1.19.json').filter((e) => e.severity === 'CRITICAL' && e.fixedVersion !== undefined).length;
    expect(alert?.annotations.summary).toBe(`docker.io/library/nginx:1.19 of team payments has ${critical} fixable CRITICAL vulnerabilities (in 2 namespaces)`);

    expect(webhook.received('search')).toEqual([]);
    expect(webhook.received('platform-sre').flatMap((n) => n.alerts.map((a) => a.labels.alertname))).not.toContain('ImageFixableCriticalVulnerabilities');
  });

  it('sends the policy violation of the payments image to the payments receiver, naming the rule', async () => {
    const notification = await webhook.waitFor('payments', (n) => n.alerts.some((a) => a.labels.alertname === 'ImagePolicyViolation' && a.status === 'firing'));
    const alert = notification.alerts.find((a) => a.labels.alertname === 'ImagePolicyViolation');
    expect(alert?.labels).toEqual({ alertname: 'ImagePolicyViolation', team: 'payments', report: 'nginx-0123456789ab', severity: 'warning' });
    expect(alert?.annotations.summary).toBe('nginx:1.19 of team payments breaks 1 ImageScanPolicy rule (namespace shop)');
    expect(alert?.annotations.description).toContain('  prod-bar: critical\n');
  });

  it('returns data for every dashboard query', async () => {
    const queries = dashboardQueries({ rateInterval: '10s' });
    expect(queries.length).toBeGreaterThan(15);
    const empty = async (): Promise<string[]> => {
      const missing: string[] = [];
      for (const q of queries) {
        const result = await prometheus?.query(q.expr);
        if (result === undefined || result.length === 0) missing.push(`${q.panel} (${q.refId}): ${q.expr}`);
      }
      return missing;
    };
    // rate() needs a few scrapes after the first scan; poll rather than sleep a guessed time.
    await expect.poll(empty, { timeout: 20_000, interval: 1_000 }).toEqual([]);
  });

  it('resolves the alert for the payments receiver when the workload moves to a clean image', async () => {
    await webhook.waitFor('payments', isFixableCritical('firing'));
    reports = [clean, searchImage];
    const resolved = await webhook.waitFor('payments', isFixableCritical('resolved'));
    expect(resolved.alerts.find((a) => a.labels.alertname === 'ImageFixableCriticalVulnerabilities')?.labels.report).toBe('nginx-0123456789ab');
    expect(webhook.received('search')).toEqual([]);
  });

  it('fires ImageScanOperatorDown to the platform receiver when the operator stops answering', async () => {
    // Before Prometheus' first scrape, absent(up == 1) is briefly true as well: only an alert that
    // started firing after the stop counts.
    const stoppedAt = Date.now();
    await metricsServer?.close();
    metricsServer = undefined;
    const down = await webhook.waitFor('platform-sre', (n) =>
      n.alerts.some(
        (a) => a.labels.alertname === 'ImageScanOperatorDown' && a.status === 'firing' && a.labels.reason === undefined && Date.parse(a.startsAt) >= stoppedAt,
      ),
    );
    expect(down.alerts.find((a) => a.labels.alertname === 'ImageScanOperatorDown')?.labels.severity).toBe('critical');
  });
});
