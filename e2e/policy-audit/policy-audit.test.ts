// User story: the platform team audits what runs against a quality bar. With an ImageScanPolicy on the
// prod namespaces, `kubectl get isr` shows which images fail it and `kubectl get isp` how many; the
// workloads get a Warning event and Prometheus a series per violation. Labelling a namespace brings it
// under the policy, a looser threshold clears exactly the reports it should (and writes nothing else),
// and a policy the operator cannot use says so in its Ready condition while the audit goes on. A
// restart writes nothing again; with two replicas only the leader writes and exports the series.
// The operator runs as its own process against the fake API server; kubectl is the real one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../fake-apiserver/index.js';
import type { FakeApiServer } from '../fake-apiserver/index.js';
import { kubectlFor, parseTable } from '../fake-apiserver/kubectl-runner.js';
import type { Kubectl } from '../fake-apiserver/kubectl-runner.js';
import { eventually, getEndpoint, startOperatorProcess, writeTrivyStubWrapper } from '../operator-process.js';
import type { OperatorProcess } from '../operator-process.js';

interface ReportLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { repository?: string };
  status?: { phase?: string; policy?: { result: string; violations: { policy: string; rule: string; message: string }[] } };
}

interface PolicyLike {
  metadata?: { generation?: number };
  status?: { observedGeneration?: number; violations?: number; conditions?: { type: string; status: string; reason: string; message: string }[] };
}

const REPORTS = 'imagescanreports.imagescan.dev';
const POLICIES = 'imagescanpolicies.imagescan.dev';

function prodBar(critical: number): string {
  return `apiVersion: imagescan.dev/v1alpha1
kind: ImageScanPolicy
metadata:
  name: prod-bar
spec:
  namespaceSelector:
    matchLabels:
      env: prod
  action: Audit
  vulnerabilities:
    critical: ${critical}
`;
}

describe('auditing running images against ImageScanPolicies', () => {
  let api: FakeApiServer;
  let operator: OperatorProcess;
  let kubectl: Kubectl;
  let work: string;

  const reports = (): ReportLike[] => ['shop', 'catalog'].flatMap((ns) => api.objects.list(REPORTS, ns) as ReportLike[]);
  const reportOf = (namespace: string, repository: string): ReportLike | undefined =>
    (api.objects.list(REPORTS, namespace) as ReportLike[]).find((r) => r.spec?.repository === repository);
  const policy = (name: string): PolicyLike | undefined => api.objects.get(POLICIES, undefined, name) as PolicyLike | undefined;
  const policyEvents = (): { reason?: string; metadata?: { namespace?: string }; involvedObject?: { kind?: string; name?: string } }[] =>
    ['shop', 'catalog'].flatMap((ns) => api.objects.list('events', ns) as { reason?: string }[]).filter((e) => e.reason === 'ImagePolicyViolation');
  const verdicts = (): Record<string, string> =>
    Object.fromEntries(reports().map((r) => [`${r.metadata?.namespace ?? ''}/${(r.spec?.repository ?? '').split('/').pop() ?? ''}`, r.status?.policy?.result ?? 'none']));

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-policy-audit-'));
    api = await startFakeApiServer({});
    api.seed.namespace('shop', { team: 'payments', env: 'prod' });
    api.seed.namespace('catalog', { team: 'search' });
    api.seed.node('node-1');
    // nginx 1.19: 42 CRITICAL (40 fixable); alpine 3.19: none; redis 7: 1 (unfixable); checkout-go: none.
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: [{ name: 'nginx', image: 'nginx:1.19' }] });
    api.seed.deployment({ namespace: 'shop', name: 'jobs', containers: [{ name: 'alpine', image: 'alpine:3.19' }] });
    api.seed.deployment({ namespace: 'catalog', name: 'cache', containers: [{ name: 'redis', image: 'redis:7' }] });
    api.seed.deployment({ namespace: 'catalog', name: 'checkout', containers: [{ name: 'app', image: 'ghcr.io/steadybit/checkout-go:main' }] });
    const wrapper = writeTrivyStubWrapper(work, {});
    operator = startOperatorProcess({
      args: ['--kubeconfig', api.kubeconfigPath, '--trivy-path', wrapper, '--trivy-cache-dir', path.join(work, 'cache'), '--leader-elect=false', '--metrics-address', '127.0.0.1:0'],
      env: { TMPDIR: work },
    });
    kubectl = kubectlFor(api.kubeconfigPath);
    await eventually(() => (reports().length === 4 && reports().every((r) => r.status?.phase === 'Scanned') ? true : undefined), 30_000, 'four Scanned reports');
  });

  afterAll(async () => {
    await operator?.stop();
    kubectl?.close();
    await api?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('1. a policy on the prod namespaces: the POLICY and VIOLATIONS columns, an event on the workload, a series per violation', async () => {
    await kubectl.ok(['apply', '-f', '-'], prodBar(0));
    await eventually(() => (verdicts()['shop/nginx'] === 'Fail' && verdicts()['shop/alpine'] === 'Pass' ? true : undefined), 20_000, 'shop reports judged');
    expect(verdicts()).toEqual({ 'shop/nginx': 'Fail', 'shop/alpine': 'Pass', 'catalog/redis': 'none', 'catalog/checkout-go': 'none' });
    expect(reportOf('shop', 'docker.io/library/nginx')?.status?.policy?.violations).toEqual([
      {
        policy: 'prod-bar',
        rule: 'critical',
        message: `nginx:1.19 has 42 CRITICAL vulnerabilities, more than ImageScanPolicy prod-bar allows: see kubectl get imagescanreport -n shop ${reportOf('shop', 'docker.io/library/nginx')?.metadata?.name ?? ''} -o yaml, then move to a base image with fewer of them`,
      },
    ]);

    const isr = parseTable(await kubectl.ok(['get', 'isr', '-A']));
    expect(isr.map((row) => `${row.NAMESPACE} ${row.IMAGE} ${row.POLICY}`).sort()).toEqual([
      'catalog ghcr.io/steadybit/checkout-go:main ',
      'catalog redis:7 ',
      'shop alpine:3.19 Pass',
      'shop nginx:1.19 Fail',
    ]);
    await eventually(() => (policy('prod-bar')?.status?.violations === 1 ? true : undefined), 10_000, 'prod-bar counting one violation');
    const isp = parseTable(await kubectl.ok(['get', 'isp']));
    expect(isp).toEqual([{ NAME: 'prod-bar', ACTION: 'Audit', NAMESPACES: '{"env":"prod"}', VIOLATIONS: '1', AGE: expect.any(String) as string }]);
    expect(policy('prod-bar')?.status).toMatchObject({ observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True', reason: 'Valid' }] });

    const events = await eventually(async () => {
      const out = await kubectl.ok(['get', 'events', '-n', 'shop', '--field-selector', 'reason=ImagePolicyViolation', '-o', 'jsonpath={range .items[*]}{.involvedObject.kind}/{.involvedObject.name} {.type}: {.message}{"\\n"}{end}']);
      return out.trim() === '' ? undefined : out.trim().split('\n');
    }, 10_000, 'the ImagePolicyViolation event');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatch(/^Deployment\/web Warning: Image nginx:1\.19 breaks ImageScanPolicy prod-bar \(rule critical\): nginx:1\.19 has 42 CRITICAL vulnerabilities/);

    const metrics = (await getEndpoint(`${await operator.metricsUrl()}/metrics`, { token: 'admin' })).body;
    const series = metrics.split('\n').filter((line) => line.startsWith('imagescan_policy_violations{'));
    expect(series).toEqual([`imagescan_policy_violations{policy="prod-bar",namespace="shop",report="${reportOf('shop', 'docker.io/library/nginx')?.metadata?.name ?? ''}",image="nginx:1.19",team="payments",rule="critical"} 1`]);
  });

  it('2. labelling a namespace env=prod brings its reports under the policy', async () => {
    await kubectl.ok(['label', 'namespace', 'catalog', 'env=prod']);
    await eventually(() => (verdicts()['catalog/redis'] === 'Fail' && verdicts()['catalog/checkout-go'] === 'Pass' ? true : undefined), 20_000, 'catalog reports judged');
    await eventually(() => (policy('prod-bar')?.status?.violations === 2 ? true : undefined), 10_000, 'prod-bar counting two violations');
  });

  it('3. a policy the operator cannot use gets Ready=False with the problem, and the audit goes on', async () => {
    // The schema lets `nginx` through; as a glob over normalised references it names no repository.
    await kubectl.ok(['apply', '-f', '-'], 'apiVersion: imagescan.dev/v1alpha1\nkind: ImageScanPolicy\nmetadata:\n  name: broken\nspec:\n  exemptImages: [nginx]\n  vulnerabilities:\n    high: 0\n');
    const ready = await eventually(() => policy('broken')?.status?.conditions?.find((c) => c.type === 'Ready'), 10_000, 'the Ready condition of broken');
    expect(ready).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(ready.message).toContain('spec.exemptImages: exemption pattern "nginx" names no repository');
    expect(policy('broken')?.status).toMatchObject({ observedGeneration: 1, violations: 0 });
    // It enforces nothing: no report names it.
    expect(reports().flatMap((r) => r.status?.policy?.violations ?? []).filter((v) => v.policy === 'broken')).toEqual([]);
    expect(operator.child.exitCode).toBeNull();
  });

  it('4. a looser threshold flips to Pass only the reports it clears, and writes only those (nginx still fails: not written)', async () => {
    const since = api.requests().at(-1)?.seq ?? 0;
    await kubectl.ok(['apply', '-f', '-'], prodBar(1));
    await eventually(() => (verdicts()['catalog/redis'] === 'Pass' ? true : undefined), 20_000, 'redis passing');
    await eventually(() => (policy('prod-bar')?.status?.violations === 1 && policy('prod-bar')?.status?.observedGeneration === 2 ? true : undefined), 10_000, 'prod-bar at generation 2 with one violation');
    expect(verdicts()).toEqual({ 'shop/nginx': 'Fail', 'shop/alpine': 'Pass', 'catalog/redis': 'Pass', 'catalog/checkout-go': 'Pass' });
    // Let any further write arrive before counting (the recount waits a second).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const writes = api.requests({ sinceSeq: since }).filter((r) => r.identity !== 'admin' || r.userAgent?.includes('imagescan-operator') === true);
    const reportStatusWrites = writes.filter((r) => r.resource === 'imagescanreports' && r.verb === 'patch');
    expect(reportStatusWrites.map((r) => `${r.namespace ?? ''}/${r.name ?? ''} ${r.subresource ?? ''}`)).toEqual([`catalog/${reportOf('catalog', 'docker.io/library/redis')?.metadata?.name ?? ''} status`]);
    const policyStatusWrites = writes.filter((r) => r.resource === 'imagescanpolicies' && r.verb === 'patch' && r.userAgent?.includes('imagescan-operator') === true);
    expect(policyStatusWrites.map((r) => `${r.name ?? ''} ${r.subresource ?? ''}`)).toEqual(['prod-bar status']);

    // An edit that changes no verdict writes no report at all.
    const quiet = api.requests().at(-1)?.seq ?? 0;
    await kubectl.ok(['apply', '-f', '-'], prodBar(2));
    await eventually(() => (policy('prod-bar')?.status?.observedGeneration === 3 ? true : undefined), 10_000, 'prod-bar at generation 3');
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(api.requests({ sinceSeq: quiet }).filter((r) => r.resource === 'imagescanreports' && r.verb === 'patch')).toEqual([]);
    // Re-evaluations announce nothing again: one event per finding (nginx in shop, redis in catalog).
    expect(policyEvents().map((e) => `${e.metadata?.namespace ?? ''} ${e.involvedObject?.kind ?? ''}/${e.involvedObject?.name ?? ''}`).sort()).toEqual(['catalog Deployment/cache', 'shop Deployment/web']);
  });

  it('5. after a restart the operator resumes from what the reports hold: no status write, no event again', async () => {
    await operator.stop();
    const since = api.requests().at(-1)?.seq ?? 0;
    const eventsBefore = policyEvents().length;
    operator = startOperatorProcess({
      args: ['--kubeconfig', api.kubeconfigPath, '--trivy-path', writeTrivyStubWrapper(work, {}), '--trivy-cache-dir', path.join(work, 'cache'), '--leader-elect=false', '--metrics-address', '127.0.0.1:0'],
      env: { TMPDIR: work },
    });
    await operator.waitForLine((l) => l.msg === 'policy audit started', 30_000);
    // Long enough for every report and policy to be evaluated (and a recount to run) on this small cluster.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const writes = api.requests({ sinceSeq: since }).filter((r) => r.verb === 'patch' && (r.resource === 'imagescanreports' || r.resource === 'imagescanpolicies'));
    expect(writes.map((r) => `${r.resource ?? ''}/${r.name ?? ''}`)).toEqual([]);
    expect(policyEvents()).toHaveLength(eventsBefore);
    // Not even a create answered AlreadyExists: what the reports held counts as announced.
    expect(api.requests({ sinceSeq: since }).filter((r) => r.resource === 'events' && r.verb === 'create')).toEqual([]);
    expect(verdicts()).toEqual({ 'shop/nginx': 'Fail', 'shop/alpine': 'Pass', 'catalog/redis': 'Pass', 'catalog/checkout-go': 'Pass' });
  });

  it('6. a namespace that leaves the policy loses status.policy, and the POLICY column is empty again', async () => {
    await kubectl.ok(['label', 'namespace', 'catalog', 'env-']);
    await eventually(() => (verdicts()['catalog/redis'] === 'none' && verdicts()['catalog/checkout-go'] === 'none' ? true : undefined), 20_000, 'catalog reports without status.policy');
    const isr = parseTable(await kubectl.ok(['get', 'isr', '-n', 'catalog']));
    expect(isr.map((row) => row.POLICY)).toEqual(['', '']);
  });
});

describe('two replicas: only the leader audits', () => {
  let api: FakeApiServer;
  let work: string;
  const replicas: OperatorProcess[] = [];

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-policy-replicas-'));
    api = await startFakeApiServer({});
    api.seed.namespace('imagescan-system');
    api.seed.namespace('shop', { team: 'payments', env: 'prod' });
    api.seed.node('node-1');
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: [{ name: 'nginx', image: 'nginx:1.19' }] });
    api.objects.create({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanPolicy', metadata: { name: 'prod-bar' }, spec: { namespaceSelector: { matchLabels: { env: 'prod' } }, action: 'Audit', vulnerabilities: { critical: 0 } } });
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await api?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  function replica(identity: string): OperatorProcess {
    const operator = startOperatorProcess({
      args: [
        '--kubeconfig', api.kubeconfigFor(identity),
        '--identity', identity,
        '--trivy-path', writeTrivyStubWrapper(work, {}),
        '--trivy-cache-dir', path.join(work, `cache-${identity}`),
        '--leader-elect=true',
        '--leader-election-namespace', 'imagescan-system',
        '--metrics-address', '127.0.0.1:0',
      ],
      env: { TMPDIR: work },
    });
    replicas.push(operator);
    return operator;
  }

  it('writes status.policy, the policy status and the event from the leader alone; the standby exports no violation series', async () => {
    const leader = replica('replica-a');
    await leader.waitForLine((l) => l.msg === 'became leader', 30_000);
    const standby = replica('replica-b');
    await standby.waitForLine((l) => l.msg === 'caches synced', 30_000);
    await eventually(() => ((api.objects.list(REPORTS, 'shop') as ReportLike[])[0]?.status?.policy?.result === 'Fail' ? true : undefined), 30_000, 'nginx failing prod-bar');
    await eventually(() => ((api.objects.get(POLICIES, undefined, 'prod-bar') as PolicyLike | undefined)?.status?.violations === 1 ? true : undefined), 10_000, 'prod-bar counting it');
    await eventually(() => (api.objects.list('events', 'shop') as { reason?: string }[]).find((e) => e.reason === 'ImagePolicyViolation'), 10_000, 'the event');

    const auditWrites = api
      .requests()
      .filter((r) => (r.resource === 'imagescanpolicies' && r.verb === 'patch') || (r.resource === 'imagescanreports' && r.subresource === 'status') || (r.resource === 'events' && r.verb === 'create'));
    expect(auditWrites.length).toBeGreaterThanOrEqual(3);
    expect([...new Set(auditWrites.map((r) => r.identity))]).toEqual(['replica-a']);

    const violationSeries = async (o: OperatorProcess): Promise<number> =>
      (await getEndpoint(`${await o.metricsUrl()}/metrics`, { token: 'admin' })).body.match(/^imagescan_policy_violations\{/gm)?.length ?? 0;
    await eventually(async () => ((await violationSeries(leader)) === 1 ? true : undefined), 10_000, 'the leader exporting the violation');
    expect(await violationSeries(standby)).toBe(0);
  }, 90_000);
});
