// User story: a platform team installs the operator with exactly the RBAC in manifests/base and wants
// proof that it is enough and not more: every request the operator makes is allowed, every rule granted
// is needed (the review rules by an authorized scrape of the secure /metrics), secrets are read one by
// one by name (never listed or watched), and no credential value ever appears in its logs.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDockerCfgSecret, buildDockerConfigJsonSecret, buildServiceAccount, digestFor, parseSeedText, rbacAttributes } from '../fake-apiserver/index.js';
import type { KubeObject, RequestRecord } from '../fake-apiserver/index.js';
import { reportName } from '../../src/reports/report-name.js';
import { getEndpoint, repoRoot } from '../operator-process.js';
import { CLEAN_FIXTURE, eventually, NGINX_FIXTURE, OPERATOR_SA, startRig } from './harness.js';
import type { OperatorProcess, Rig } from './harness.js';

const RBAC_KINDS = new Set(['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding']);
/** Test secrets: every value below must stay out of the logs, raw and base64-encoded. */
const SECRETS = {
  podSecret: { username: 'lp-robot', password: 'lp-pod-password-5c1e' },
  saSecret: { username: 'lp-sa-robot', password: 'lp-sa-password-9d27' },
  tokenSecret: { identitytoken: 'lp-identity-token-0b8f' },
};

/**
 * Rules the suite does not reach, each with why the operator needs it. Keep this tiny.
 * Key: `<apiGroup>/<resource>:<verb>` as in rbacUsage().
 */
const UNREACHED: Record<string, string> = {};

function ruleKey(apiGroup: string, resource: string, verb: string): string {
  return `${apiGroup}/${resource}:${verb}`;
}

describe('least privilege with the manifests’ RBAC', () => {
  let rig: Rig;
  let operator: OperatorProcess;
  let rbacObjects: KubeObject[];

  beforeAll(async () => {
    const rendered = execFileSync('kubectl', ['kustomize', 'manifests/base'], { cwd: repoRoot, encoding: 'utf8' });
    rbacObjects = parseSeedText(rendered).filter((o) => RBAC_KINDS.has(String(o.kind)));
    rig = await startRig({ rbac: { objects: rbacObjects, enforceFor: [OPERATOR_SA] } });
    rig.setStubMap({
      default: CLEAN_FIXTURE,
      'docker.io/library/nginx': NGINX_FIXTURE, // fixable CRITICALs → a Warning event
      'registry.example.com/lp/pod-secret': { fixture: CLEAN_FIXTURE, requireAuth: SECRETS.podSecret },
      'registry.example.com/lp/sa-secret': { fixture: CLEAN_FIXTURE, requireAuth: SECRETS.saSecret },
    });
    const api = rig.api;
    api.seed.namespace('imagescan-system');
    api.seed.namespace('shop', { team: 'payments' });
    api.seed.objects([
      buildDockerConfigJsonSecret('shop', 'pod-pull', { 'registry.example.com': SECRETS.podSecret }),
      buildDockerCfgSecret('shop', 'sa-pull', { 'registry.example.com': SECRETS.saSecret }),
      buildDockerConfigJsonSecret('shop', 'token-pull', { 'ghcr.io': SECRETS.tokenSecret }),
      buildServiceAccount('shop', 'builder', ['sa-pull']),
      // The audit under the same RBAC: reads policies, writes their status and the reports' status.policy.
      { apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanPolicy', metadata: { name: 'payments-bar' }, spec: { namespaceSelector: { matchLabels: { team: 'payments' } }, action: 'Audit', vulnerabilities: { fixableCritical: 0 } } },
    ]);
    // Every kind of workload, private images through the pod's and the service account's secrets.
    api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'], replicas: 2 });
    api.seed.podSet('StatefulSet', { namespace: 'shop', name: 'db', containers: ['ghcr.io/lp/db:1'] });
    api.seed.podSet('DaemonSet', { namespace: 'shop', name: 'agent', containers: ['ghcr.io/lp/agent:1'] });
    api.seed.cronJob({ namespace: 'shop', name: 'nightly', containers: ['ghcr.io/lp/batch:1'] });
    api.seed.job({ namespace: 'shop', name: 'migrate', containers: ['ghcr.io/lp/migrate:1'] });
    api.seed.pod({ namespace: 'shop', name: 'debug', containers: ['ghcr.io/lp/tool:1'], imagePullSecrets: ['token-pull'] });
    api.seed.deployment({ namespace: 'shop', name: 'private-a', containers: ['registry.example.com/lp/pod-secret:1'], imagePullSecrets: ['pod-pull'] });
    api.seed.deployment({ namespace: 'shop', name: 'private-b', containers: ['registry.example.com/lp/sa-secret:1'], serviceAccountName: 'builder' });

    operator = rig.start({
      kubeconfig: api.kubeconfigFor(OPERATOR_SA),
      args: [
        '--leader-elect=true',
        '--leader-election-namespace', 'imagescan-system',
        '--identity', 'imagescan-operator-0',
        '--rescan-schedule', '*/5 * * * * *',
        '--report-grace-period', '3s',
      ],
    });
    await operator.waitForLine((l) => l.msg === 'became leader', 30_000);
  });

  afterAll(async () => {
    await rig?.close();
  });

  const images = ['nginx:1.19', 'ghcr.io/lp/db:1', 'ghcr.io/lp/agent:1', 'ghcr.io/lp/batch:1', 'ghcr.io/lp/migrate:1', 'ghcr.io/lp/tool:1', 'registry.example.com/lp/pod-secret:1', 'registry.example.com/lp/sa-secret:1'];

  it('runs a representative life: every workload kind, private images, updates, rescan, grace deletion, Warning event', async () => {
    const all = await eventually(() => {
      const reports = rig.reports('shop');
      return reports.length === images.length && reports.every((r) => r.status?.phase === 'Scanned') ? reports : undefined;
    }, 60_000, 'every image Scanned');
    const kinds = new Set(all.flatMap((r) => r.status?.workloads ?? []).map((w) => w.kind));
    expect([...kinds].sort()).toEqual(['CronJob', 'DaemonSet', 'Deployment', 'Job', 'Pod', 'StatefulSet']);
    // The private images really went through the secrets (the stub refuses them otherwise).
    const registries = rig.stubEvents().filter((e) => e.event === 'start' && e.argv?.some((a) => a.startsWith('registry.example.com/'))).map((e) => e.registries);
    expect(registries.length).toBeGreaterThanOrEqual(2);
    for (const r of registries) expect(r).toEqual(['registry.example.com']);

    // A Warning event on the Deployment for fixable CRITICALs.
    await eventually(() => (rig.api.objects.list('events', 'shop') as { type?: string; involvedObject?: { kind?: string } }[]).find((e) => e.type === 'Warning' && e.involvedObject?.kind === 'Deployment'), 15_000, 'Warning event');
    // The policy audit: nginx fails the payments bar, the policy counts it, the Deployment is told.
    await eventually(() => (rig.reports('shop').find((r) => r.spec?.image === 'nginx:1.19') as { status?: { policy?: { result?: string } } } | undefined)?.status?.policy?.result === 'Fail' ? true : undefined, 15_000, 'nginx failing the policy');
    await eventually(() => ((rig.api.objects.get('imagescanpolicies.imagescan.dev', undefined, 'payments-bar') as { status?: { violations?: number } } | undefined)?.status?.violations === 1 ? true : undefined), 15_000, 'the policy counting one violation');
    await eventually(() => (rig.api.objects.list('events', 'shop') as { reason?: string }[]).find((e) => e.reason === 'ImagePolicyViolation'), 15_000, 'ImagePolicyViolation event');

    // A report that exists already but is not in the operator's cache yet (its report watch keeps
    // failing, as when another writer was faster): the create gets 409, the operator reads it by name
    // and adopts it instead of failing or duplicating.
    rig.api.faults.set({ resources: ['imagescanreports.imagescan.dev'], verbs: ['watch', 'list'], errorRate: 1, errorCodes: [500] });
    rig.api.dropWatches('reset');
    const lateImage = 'ghcr.io/lp/late:1';
    const lateDigest = digestFor(lateImage);
    rig.api.objects.create({
      apiVersion: 'imagescan.dev/v1alpha1',
      kind: 'ImageScanReport',
      metadata: { name: reportName('ghcr.io/lp/late', lateDigest), namespace: 'shop' },
      spec: { image: lateImage, repository: 'ghcr.io/lp/late', digest: lateDigest },
    });
    rig.api.seed.pod({ namespace: 'shop', name: 'late', containers: [lateImage] });
    await eventually(() => (rig.reports('shop').find((r) => r.spec?.image === lateImage)?.status?.phase === 'Scanned' ? true : undefined), 20_000, 'the pre-existing report adopted and Scanned');
    rig.api.faults.clear();
    expect(rig.reports('shop').filter((r) => r.spec?.digest === lateDigest)).toHaveLength(1);
    images.push(lateImage);

    // Update: a pod's team label changes → the report follows.
    const dbPod = rig.api.objects.list('pods', 'shop').find((p) => p.metadata?.labels?.app === 'db');
    expect(dbPod).toBeDefined();
    if (dbPod?.metadata) rig.api.objects.upsert({ ...dbPod, metadata: { ...dbPod.metadata, labels: { ...dbPod.metadata.labels, team: 'data' } } });
    await eventually(() => rig.reports('shop').find((r) => r.spec?.image === 'ghcr.io/lp/db:1' && r.status?.team === 'data'), 15_000, 'team updated');

    // Rescan on the schedule.
    const before = rig.reports('shop').find((r) => r.spec?.image === 'ghcr.io/lp/tool:1')?.status?.lastScanTime;
    await eventually(() => (rig.reports('shop').find((r) => r.spec?.image === 'ghcr.io/lp/tool:1')?.status?.lastScanTime !== before ? true : undefined), 20_000, 'a rescan');

    // Delete: the report goes after the grace period.
    for (const pod of rig.api.objects.list('pods', 'shop').filter((p) => p.metadata?.labels?.app === 'migrate' || p.metadata?.ownerReferences?.[0]?.name === 'migrate')) {
      rig.api.objects.delete('pods', 'shop', pod.metadata?.name ?? '');
    }
    await eventually(() => (rig.reports('shop').some((r) => r.spec?.image === 'ghcr.io/lp/migrate:1') ? undefined : true), 20_000, 'report deleted after grace');
  }, 120_000);

  it('serves /metrics to a scrape the API server authorizes, asking it with a TokenReview and a SubjectAccessReview', async () => {
    // The admin token: known to the fake API server, whose user RBAC does not restrict.
    const url = await operator.metricsUrl();
    const scrape = await getEndpoint(`${url}/metrics`, { token: 'admin' });
    expect(scrape.status).toBe(200);
    expect(scrape.body).toMatch(/^imagescan_leader 1$/m);
    expect((await getEndpoint(`${url}/metrics`)).status).toBe(401);
    const reviews = rig.api.requests({ identity: OPERATOR_SA, verb: 'create' }).filter((r) => r.resource === 'tokenreviews' || r.resource === 'subjectaccessreviews');
    expect(reviews.map((r) => `${r.resource} ${r.code}`).sort()).toEqual(['subjectaccessreviews 201', 'tokenreviews 201']);
  });

  it('made no request its RBAC refused', () => {
    const mine = rig.api.requests({ identity: OPERATOR_SA });
    expect(mine.length).toBeGreaterThan(0);
    const refused = mine.filter((r) => r.code === 403).map(describeRequest);
    expect(refused).toEqual([]);
  });

  it('used every rule it is granted (or the rule is listed with why)', () => {
    const usage = rig.api.rbacUsage();
    if (process.env.REL_DEBUG) console.log(usage.map((u) => `${u.role} ${ruleKey(u.apiGroup, u.resource, u.verb)} ${u.count}`).join('\n'));
    expect(usage.length).toBeGreaterThan(0);
    const unused = usage.filter((u) => u.count === 0).map((u) => ruleKey(u.apiGroup, u.resource, u.verb));
    expect(unused.filter((k) => UNREACHED[k] === undefined)).toEqual([]);
    // And the exemption list names only rules that exist and really stayed unused.
    for (const key of Object.keys(UNREACHED)) expect(unused).toContain(key);
  });

  it('read secrets only by name with get, never list or watch', () => {
    const secretRequests = rig.api.requests({ identity: OPERATOR_SA }).filter((r) => r.resource === 'secrets');
    expect(secretRequests.length).toBeGreaterThan(0);
    for (const r of secretRequests) {
      expect(r.verb, describeRequest(r)).toBe('get');
      expect(r.name, describeRequest(r)).toBeTruthy();
    }
    const names = new Set(secretRequests.map((r) => `${r.namespace ?? ''}/${r.name ?? ''}`));
    expect([...names].sort()).toEqual(['shop/pod-pull', 'shop/sa-pull', 'shop/token-pull']);
  });

  it('never logged a credential, raw or base64', () => {
    const logs = rig.allLogText();
    expect(logs.length).toBeGreaterThan(1000);
    const values: string[] = [];
    for (const s of Object.values(SECRETS)) {
      for (const v of Object.values(s)) values.push(v);
      if ('password' in s) values.push(`${s.username}:${s.password}`);
    }
    const encoded = values.map((v) => Buffer.from(v).toString('base64'));
    // The secrets' data fields as stored, too (base64 of the whole docker config).
    const stored = rig.api.objects.list('secrets', 'shop').flatMap((s) => Object.values((s as { data?: Record<string, string> }).data ?? {}));
    for (const needle of [...values, ...encoded, ...stored]) expect(logs.includes(needle), `log contains ${needle.slice(0, 12)}…`).toBe(false);
  });
});

function describeRequest(r: RequestRecord): string {
  const a = rbacAttributes(r);
  if (a === undefined) return `${r.method} ${r.path} → ${r.code}`;
  return `${r.method} ${a.verb} ${a.apiGroup}/${a.resource} ns=${a.namespace ?? '-'} name=${a.name ?? '-'} → ${r.code}`;
}
