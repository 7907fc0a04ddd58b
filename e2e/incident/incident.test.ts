// The incident path end to end with real components: the operator (its own process, against the fake
// API server and the stub Trivy) is scraped by a real Prometheus (1 s scrape and evaluation, alert
// rules with 1 s `for:`) that sends to a real Alertmanager routing by team to webhooks served here.
// A vulnerable payments image pages payments (not search), rolling it out to a clean image resolves
// the page, and stopping the operator pages the platform team. The dashboard's queries and promtool's
// checks run against the same real operator.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RULES_FILE, rulesWithShortFor } from '../../test/alerts/alert-rules.js';
import { alertmanagerConfigForTest, startAlertmanager } from '../../test/alerts/alertmanager.js';
import type { RunningAlertmanager } from '../../test/alerts/alertmanager.js';
import { dashboardQueries } from '../../test/alerts/dashboard-queries.js';
import { freePort, startPrometheus } from '../../test/alerts/prometheus.js';
import type { RunningPrometheus } from '../../test/alerts/prometheus.js';
import { promtool } from '../../test/alerts/promtool.js';
import { makeSelfSignedCert } from '../../test/self-signed-cert.js';
import { startWebhookReceiver } from '../../test/alerts/webhook-receiver.js';
import type { WebhookNotification, WebhookReceiver } from '../../test/alerts/webhook-receiver.js';
import { digestFor, startFakeApiServer } from '../fake-apiserver/index.js';
import type { FakeApiServer, SeededWorkload } from '../fake-apiserver/index.js';
import { eventually, getEndpoint, repoRoot, startOperatorProcess, writeTrivyStubWrapper } from '../operator-process.js';
import type { OperatorProcess } from '../operator-process.js';
import { requireTools } from './require-tools.js';
import { rollOutImage } from './rollout.js';

const run = promisify(execFile);
const REPORTS = 'imagescanreports.imagescan.dev';
const FIXTURES = path.resolve(repoRoot, 'test/fixtures/trivy/real-world');
const VULNERABLE_FIXTURE = path.join(FIXTURES, 'trustdsai-nginx-1.19.json');
const CLEAN_FIXTURE = path.join(FIXTURES, 'steadybit-checkout-go-main.json');

// payments runs nginx:1.19 (fixable CRITICALs) and rolls out nginx:1.27 (mapped by digest to a clean
// report); search runs a clean image throughout.
const PAYMENTS_NS = 'shop';
const SEARCH_NS = 'catalog';
const VULNERABLE_IMAGE = 'nginx:1.19';
const PATCHED_IMAGE = 'nginx:1.27';
const SEARCH_IMAGE = 'ghcr.io/steadybit/checkout-go:main';
const ALERT = 'ImageFixableCriticalVulnerabilities';

/** Fixable CRITICAL entries counted straight from the raw Trivy JSON (not through the operator's parser). */
function fixableCriticals(fixture: string): number {
  const raw = JSON.parse(readFileSync(fixture, 'utf8')) as { Results?: { Vulnerabilities?: { Severity: string; FixedVersion?: string }[] }[] };
  return (raw.Results ?? [])
    .flatMap((r) => r.Vulnerabilities ?? [])
    .filter((v) => v.Severity === 'CRITICAL' && typeof v.FixedVersion === 'string' && v.FixedVersion !== '').length;
}

/** The fixture the stub Trivy answered with for each digest it scanned (from its invocation log). */
function stubFixturesByDigest(): Map<string, string> {
  const byDigest = new Map<string, string>();
  for (const line of readFileSync(stubLog, 'utf8').split('\n')) {
    if (line === '') continue;
    const entry = JSON.parse(line) as { event?: string; target?: string; fixture?: string };
    const digest = /@(sha256:[0-9a-f]{64})$/.exec(entry.target ?? '')?.[1];
    if (entry.event === 'end' && digest !== undefined && entry.fixture !== undefined) byDigest.set(digest, entry.fixture);
  }
  return byDigest;
}

interface ReportLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { image?: string; digest?: string };
  status?: { phase?: string; workloads?: { kind: string; name: string }[]; team?: string };
}

const alertsIn = (n: WebhookNotification, alertname: string, status: 'firing' | 'resolved') =>
  n.alerts.filter((a) => a.labels.alertname === alertname && a.status === status);

let work: string | undefined;
let api: FakeApiServer | undefined;
let webhook: WebhookReceiver | undefined;
let alertmanager: RunningAlertmanager | undefined;
let operator: OperatorProcess | undefined;
let prometheus: RunningPrometheus | undefined;
let payments: SeededWorkload;
let webhookPort = 0;

/** Sends the operator's webhook one AdmissionReview (a dry-run Deployment in payments), as the API server would; resolves with its status code. */
function sendAdmissionReview(uid: string): Promise<number> {
  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      namespace: PAYMENTS_NS,
      operation: 'CREATE',
      userInfo: { username: 'dev' },
      dryRun: true,
      object: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'canary', namespace: PAYMENTS_NS },
        spec: { selector: { matchLabels: { app: 'canary' } }, template: { metadata: { labels: { app: 'canary' } }, spec: { containers: [{ name: 'app', image: VULNERABLE_IMAGE }] } } },
      },
    },
  });
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port: webhookPort, path: '/validate', method: 'POST', rejectUnauthorized: false, headers: { 'Content-Type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
let metricsUrl: string;
let stubLog: string;
const startedAt = Date.now();
const timings: Record<string, number> = {};
const mark = (step: string): void => {
  timings[step] = (Date.now() - startedAt) / 1000;
};

function reportsIn(namespace: string): ReportLike[] {
  return (api?.objects.list(REPORTS, namespace) ?? []) as ReportLike[];
}

beforeAll(async () => {
  await requireTools();
  const vulnerableCount = fixableCriticals(VULNERABLE_FIXTURE);
  // The scenario only means something if the fixtures are what this test says they are.
  expect(vulnerableCount).toBeGreaterThan(0);
  expect(fixableCriticals(CLEAN_FIXTURE)).toBe(0);

  const dir = mkdtempSync(path.join(tmpdir(), 'imagescan-incident-'));
  work = dir;
  // The test's own stub mapping: unmapped images fail, so a wrong image shows up as a Failed report.
  const mapping = path.join(dir, 'images.json');
  stubLog = path.join(dir, 'trivy.log');
  writeFileSync(
    mapping,
    JSON.stringify({
      [digestFor(PATCHED_IMAGE)]: CLEAN_FIXTURE,
      'docker.io/library/nginx': VULNERABLE_FIXTURE,
      'ghcr.io/steadybit/checkout-go': CLEAN_FIXTURE,
    }),
  );
  const trivy = writeTrivyStubWrapper(dir, { TRIVY_STUB_MAP: mapping, TRIVY_STUB_LOG: stubLog });

  const cluster = await startFakeApiServer({});
  api = cluster;
  cluster.seed.namespace(PAYMENTS_NS, { team: 'payments' });
  cluster.seed.namespace(SEARCH_NS, { team: 'search' });
  cluster.seed.node('node-1');
  payments = cluster.seed.deployment({ namespace: PAYMENTS_NS, name: 'checkout', containers: [VULNERABLE_IMAGE], replicas: 2 });
  cluster.seed.deployment({ namespace: SEARCH_NS, name: 'search-api', containers: [SEARCH_IMAGE] });
  // A quality bar on the payments namespaces (audit only): the policy panels and ImagePolicyViolation have data.
  cluster.objects.create({
    apiVersion: 'imagescan.dev/v1alpha1',
    kind: 'ImageScanPolicy',
    metadata: { name: 'payments-bar' },
    spec: { namespaceSelector: { matchLabels: { team: 'payments' } }, action: 'Audit', vulnerabilities: { fixableCritical: 0 } },
  });

  // The deploy gate is served too, so its dashboard panels can have data (see the dashboard test).
  const cert = makeSelfSignedCert({ ips: ['127.0.0.1'] });
  const certDir = path.join(dir, 'webhook-certs');
  mkdirSync(certDir);
  writeFileSync(path.join(certDir, 'tls.crt'), cert.certPem);
  writeFileSync(path.join(certDir, 'tls.key'), cert.keyPem);
  webhookPort = await freePort();

  webhook = await startWebhookReceiver();
  const receiverUrl = webhook.url;
  // Alertmanager and the operator start side by side; each is recorded as soon as it runs, so
  // afterAll stops it even when the other fails to start.
  const [am, port] = await Promise.all([
    startAlertmanager(alertmanagerConfigForTest(receiverUrl)).then((started) => (alertmanager = started)),
    (async () => {
      const started = startOperatorProcess({
        args: [
          '--kubeconfig', cluster.kubeconfigPath,
          '--trivy-path', trivy,
          '--trivy-cache-dir', path.join(dir, 'cache'),
          '--leader-elect=false',
          '--metrics-address', '127.0.0.1:0',
          // Rescans every 2 s keep scans going, so the rate() panels have something to show.
          '--rescan-schedule', '*/2 * * * * *',
          '--rescan-jitter', '0s',
          '--webhook-address', `127.0.0.1:${webhookPort}`,
          '--webhook-cert-dir', certDir,
        ],
        env: { TMPDIR: dir },
      });
      operator = started;
      return started.metricsPort();
    })(),
  ]);
  metricsUrl = `https://127.0.0.1:${port}/metrics`;
  // Secure metrics, scraped as the monitoring component's ServiceMonitor does: HTTPS with a token
  // (the fake API server's admin, whom its RBAC does not restrict), the self-signed certificate unverified.
  prometheus = await startPrometheus({ targets: [`127.0.0.1:${port}`], rules: [rulesWithShortFor('1s')], alertmanagerUrl: am.url, bearerToken: 'admin' });
  mark('stack up');
}, 45_000);

afterAll(async () => {
  // Every step runs even when an earlier one throws, so no process or temp dir outlives the test.
  const steps: [string, () => Promise<unknown> | undefined][] = [
    ['operator', () => operator?.stop(3_000)],
    ['prometheus', () => prometheus?.stop()],
    ['alertmanager', () => alertmanager?.stop()],
    ['webhook receiver', () => webhook?.close()],
    ['fake API server', () => api?.stop()],
  ];
  const failures: string[] = [];
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (err) {
      failures.push(`${name}: ${String(err)}`);
    }
  }
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
  mark('cleaned up');
  process.stdout.write(`incident test timings (s since start): ${JSON.stringify(timings)}\n`);
  if (failures.length > 0) throw new Error(`cleanup failed: ${failures.join('; ')}`);
}, 30_000);

describe('incident: vulnerable image → owning team paged → rollout resolves → operator down pages SRE', () => {
  it('pages the payments receiver with ImageFixableCriticalVulnerabilities naming the report, its namespace and image', async () => {
    const firing = await webhook?.waitFor('payments', (n) => alertsIn(n, ALERT, 'firing').length > 0, 25_000);
    mark('payments paged');
    const alert = firing === undefined ? undefined : alertsIn(firing, ALERT, 'firing')[0];

    // The report the alert names is the one the operator wrote for the running digest.
    const report = reportsIn(PAYMENTS_NS).find((r) => r.spec?.digest === digestFor(VULNERABLE_IMAGE));
    expect(report?.status?.phase).toBe('Scanned');
    expect(report?.status?.workloads).toEqual([{ kind: 'Deployment', name: 'checkout' }]);
    const reportName = report?.metadata?.name ?? '(no report)';
    expect(alert?.labels).toMatchObject({ team: 'payments', report: reportName, severity: 'warning' });
    expect(alert?.annotations.summary).toBe(`${VULNERABLE_IMAGE} of team payments has ${fixableCriticals(VULNERABLE_FIXTURE)} fixable CRITICAL vulnerabilities (namespace ${PAYMENTS_NS})`);

    // The command the description gives the developer works and shows the fixable CRITICALs.
    const command = /kubectl (-n \S+ get imagescanreport \S+ -o yaml)/.exec(alert?.annotations.description ?? '');
    expect(command?.[1]).toBe(`-n ${PAYMENTS_NS} get imagescanreport ${reportName} -o yaml`);
    const { stdout } = await run('kubectl', ['--kubeconfig', api?.kubeconfigPath ?? '', ...(command?.[1] ?? '').split(' ')]);
    expect(stdout).toContain(`name: ${reportName}`);
    // What to upgrade: the fix entries, worst first, the first with its fixable CRITICALs.
    expect(stdout).toMatch(/fixes:\n\s*- critical: [1-9]/);

    // Only payments was paged about it; the search image is clean and routed elsewhere anyway.
    expect(webhook?.received('search')).toEqual([]);
    const elsewhere = (webhook?.received('platform-sre') ?? []).flatMap((n) => n.alerts.map((a) => a.labels.alertname));
    expect(elsewhere).not.toContain(ALERT);
    const searchReport = reportsIn(SEARCH_NS).find((r) => r.spec?.image === SEARCH_IMAGE);
    expect(searchReport?.status).toMatchObject({ phase: 'Scanned', team: 'search' });
  }, 30_000);

  it('serves /metrics that promtool check metrics accepts; promtool check rules accepts the rules file', async () => {
    const res = await getEndpoint(metricsUrl, { token: 'admin' });
    expect(res.status).toBe(200);
    const text = res.body;
    // A real exposition: the payments image's series are in it.
    expect(text).toMatch(/imagescan_image_vulnerabilities\{[^}]*namespace="shop"[^}]*severity="CRITICAL",fixable="true"\} [1-9]/);
    const metrics = await promtool(['check', 'metrics'], text);
    expect(String(metrics.stdout) + String(metrics.stderr)).toBe('');
    expect(metrics.exitCode).toBe(0);

    const rules = await promtool(['check', 'rules', RULES_FILE]);
    expect(rules.exitCode, String(rules.stdout) + String(rules.stderr)).toBe(0);
    expect(String(rules.stdout)).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('answers every Grafana dashboard query with data from the real operator', async () => {
    const queries = dashboardQueries({ rateInterval: '10s' });
    expect(queries.length).toBeGreaterThan(15);
    const withoutData = async (): Promise<string[]> => {
      const missing: string[] = [];
      for (const q of queries) {
        const result = (await prometheus?.query(q.expr)) ?? [];
        // NaN (e.g. a quantile of no observations) draws nothing in Grafana either.
        if (!result.some((s) => !Number.isNaN(Number(s.value[1])))) missing.push(`${q.panel} (${q.refId}): ${q.expr}`);
      }
      return missing;
    };
    // Deploys keep arriving at the gate while Prometheus scrapes, as in a working cluster: its rate and
    // latency panels need observations within their window.
    await operator?.waitForLine((l) => l.msg === 'admission webhook listening', 20_000);
    let sent = 0;
    const deploys = setInterval(() => void sendAdmissionReview(`incident-${(sent += 1)}`).catch(() => undefined), 300);
    try {
      expect(await sendAdmissionReview('incident-0')).toBe(200);
      await expect.poll(withoutData, { timeout: 20_000, interval: 1_000 }).toEqual([]);
    } finally {
      clearInterval(deploys);
    }
    expect(await prometheus?.query('imagescan_leader == 1')).toHaveLength(1);
    mark('dashboard has data');
  }, 30_000);

  it('resolves the page when the Deployment rolls out a clean image; the old report stays, listing no workload', async () => {
    const oldReport = reportsIn(PAYMENTS_NS).find((r) => r.spec?.digest === digestFor(VULNERABLE_IMAGE));
    const oldName = oldReport?.metadata?.name ?? '(no report)';
    if (api === undefined) throw new Error('no fake API server');
    rollOutImage(api, payments, PATCHED_IMAGE);

    const resolved = await webhook?.waitFor(
      'payments',
      (n) => alertsIn(n, ALERT, 'resolved').some((a) => a.labels.report === oldName),
      20_000,
    );
    mark('payments resolved');
    expect(resolved?.status).toBe('resolved');
    // Resolved by the rollout, not by a scrape gap: the operator is still up and scraped.
    expect(operator?.child.exitCode).toBeNull();
    expect((await prometheus?.query('up{job="imagescan-operator"}'))?.map((s) => s.value[1])).toEqual(['1']);

    // What a user sees: during the grace period the old report is still there with no workload,
    // and it exports no series; the new digest has its own clean report.
    const kept = reportsIn(PAYMENTS_NS).find((r) => r.metadata?.name === oldName);
    expect(kept?.status).toMatchObject({ phase: 'Scanned', workloads: [] });
    expect(await prometheus?.query(`imagescan_image_vulnerabilities{report="${oldName}"}`)).toEqual([]);
    const patched = await eventually(
      () => reportsIn(PAYMENTS_NS).find((r) => r.spec?.digest === digestFor(PATCHED_IMAGE) && r.status?.phase === 'Scanned'),
      10_000,
      'the patched image Scanned',
    );
    expect(patched.status?.workloads).toEqual([{ kind: 'Deployment', name: 'checkout' }]);
    // The patched image is scanned (its scan time is a series) and has no fixable CRITICAL: an empty
    // bucket is no series at all.
    await eventually(async () => {
      const series = await prometheus?.query(`imagescan_report_last_scan_timestamp_seconds{report="${patched.metadata?.name ?? ''}"}`);
      return series !== undefined && series.length > 0 ? series : undefined;
    }, 10_000, 'series of the patched image');
    expect(await prometheus?.query(`imagescan_image_vulnerabilities{report="${patched.metadata?.name ?? ''}", severity="CRITICAL", fixable="true"}`)).toEqual([]);
    // The stub answered each digest with the fixture this test mapped it to.
    const fixtures = stubFixturesByDigest();
    expect(fixtures.get(digestFor(VULNERABLE_IMAGE))).toBe(VULNERABLE_FIXTURE);
    expect(fixtures.get(digestFor(PATCHED_IMAGE))).toBe(CLEAN_FIXTURE);
    expect(fixtures.get(digestFor(SEARCH_IMAGE))).toBe(CLEAN_FIXTURE);
    // No page for the patched image.
    const pagedReports = (webhook?.received('payments') ?? []).flatMap((n) => alertsIn(n, ALERT, 'firing').map((a) => a.labels.report));
    expect(new Set(pagedReports)).toEqual(new Set([oldName]));
  }, 30_000);

  it('pages platform-sre with ImageScanOperatorDown when the operator process stops; search never got anything', async () => {
    // absent(up == 1) is also true for a moment before Prometheus' first scrape, and the no_leader
    // variant can fire while the operator syncs: only a reason-less alert that started after the stop counts.
    const stoppedAt = Date.now();
    expect(await operator?.stop()).toBe(0);
    const afterStop = (a: WebhookNotification['alerts'][number]): boolean => a.labels.reason === undefined && Date.parse(a.startsAt) >= stoppedAt;
    const down = await webhook?.waitFor('platform-sre', (n) => alertsIn(n, 'ImageScanOperatorDown', 'firing').some(afterStop), 20_000);
    mark('operator down paged');
    const alert = down === undefined ? undefined : alertsIn(down, 'ImageScanOperatorDown', 'firing').find(afterStop);
    expect(alert?.labels.severity).toBe('critical');
    expect(alert?.labels.team).toBeUndefined();

    // The teams are not paged for the operator, and search was never paged at all.
    const teamAlerts = (webhook?.received('payments') ?? []).flatMap((n) => n.alerts.map((a) => a.labels.alertname));
    expect(teamAlerts).not.toContain('ImageScanOperatorDown');
    expect(webhook?.received('search')).toEqual([]);
  }, 30_000);
});
