// The deploy gate as installed: two operator processes (leader and standby) serving the webhook from
// their caches, the fake API server calling them like the real one, and the real kubectl. What a
// developer sees for Warn and Deny policies, allowed registries, unscanned images scanned by
// reference, controller-owned pods, a standby answering like the leader, and the webhook down.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../test/alerts/prometheus.js';
import { makeSelfSignedCert } from '../../test/self-signed-cert.js';
import { kubectlFor } from '../fake-apiserver/kubectl-runner.js';
import { deployment, shippedWebhookConfiguration } from './gate-fixtures.js';
import type { Kubectl, KubectlResult } from '../fake-apiserver/kubectl-runner.js';
import { CLEAN_FIXTURE, eventually, NGINX_FIXTURE, startRig } from '../reliability/harness.js';
import type { OperatorProcess, Rig } from '../reliability/harness.js';

const SERVICE = { namespace: 'imagescan-system', name: 'imagescan-operator-webhook' };
const cert = makeSelfSignedCert({ dnsNames: [`${SERVICE.name}.${SERVICE.namespace}.svc`] });
const POLICIES = 'imagescanpolicies.imagescan.dev';

let rig: Rig;
let kubectl: Kubectl;
const replicas: { operator: OperatorProcess; port: number; identity: string }[] = [];
let nginxReport: string;

async function usePolicy(name: string, spec: Record<string, unknown>): Promise<void> {
  for (const existing of rig.api.objects.list(POLICIES)) {
    if (existing.metadata?.name !== name) await kubectl.ok(['delete', 'imagescanpolicy', existing.metadata?.name ?? '']);
  }
  await kubectl.ok(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'imagescan.dev/v1alpha1', kind: 'ImageScanPolicy', metadata: { name }, spec }));
}

/** Sends the webhook calls to one replica (the Service's endpoint). */
function routeTo(port: number | undefined): void {
  rig.api.setWebhookService(SERVICE.namespace, SERVICE.name, port === undefined ? undefined : { host: '127.0.0.1', port });
}

const apply = (manifest: string, ...extra: string[]): Promise<KubectlResult> => kubectl.run(['apply', ...extra, '-f', '-'], manifest);

/** Waits until every replica judges a server-side dry run (which changes nothing) as `check` expects. */
async function untilJudged(manifest: string, check: (r: KubectlResult) => boolean, what: string): Promise<void> {
  for (const replica of replicas) {
    routeTo(replica.port);
    await eventually(async () => ((check(await apply(manifest, '--dry-run=server'))) ? true : undefined), 20_000, `${what} (${replica.identity})`);
  }
  routeTo(replicas[0]?.port);
}

beforeAll(async () => {
  rig = await startRig();
  rig.setStubMap({ 'docker.io/library/nginx': NGINX_FIXTURE, default: CLEAN_FIXTURE });
  rig.api.seed.namespace('imagescan-system');
  rig.api.seed.namespace('shop', { team: 'payments' });
  rig.api.seed.namespace('sandbox', { team: 'research' });
  // nginx:1.25 already runs in prod, so its result (fixable CRITICALs) is known before any apply.
  rig.api.seed.deployment({ namespace: 'prod', name: 'web', containers: [{ name: 'web', image: 'nginx:1.25' }] });
  const certDir = path.join(rig.work, 'webhook-certs');
  mkdirSync(certDir);
  writeFileSync(path.join(certDir, 'tls.crt'), cert.certPem);
  writeFileSync(path.join(certDir, 'tls.key'), cert.keyPem);
  for (const identity of ['replica-a', 'replica-b']) {
    const port = await freePort();
    const operator = rig.start({
      args: ['--leader-elect=true', '--leader-election-namespace', 'imagescan-system', '--identity', identity, '--trivy-cache-dir', path.join(rig.work, `cache-${identity}`), '--webhook-address', `127.0.0.1:${port}`, '--webhook-cert-dir', certDir],
    });
    replicas.push({ operator, port, identity });
    await operator.waitForLine((l) => l.msg === 'admission webhook listening', 60_000);
  }
  // The one that leads writes the report; both read it through their informers.
  const report = await eventually(() => rig.reports('prod').find((r) => r.status?.phase === 'Scanned'), 60_000, 'nginx report in prod');
  nginxReport = report.metadata?.name ?? '';
  kubectl = kubectlFor(rig.api.kubeconfigFor('dev-bob'));
  await kubectlFor(rig.api.kubeconfigPath).ok(['apply', '-f', '-'], shippedWebhookConfiguration(cert.caBundle));
  routeTo(replicas[0]?.port);
}, 180_000);

afterAll(async () => {
  kubectl?.close();
  await rig?.close();
});

describe('the deploy gate of a running operator', () => {
  it('Warn: kubectl prints a warning naming the report of the image running elsewhere, and the Deployment is created', async () => {
    await usePolicy('team-payments', { namespaceSelector: { matchLabels: { team: 'payments' } }, action: 'Warn', vulnerabilities: { fixableCritical: 0 } });
    await untilJudged(deployment('web', 'nginx:1.25'), (r) => r.stderr.includes('Warning: ImageScanPolicy'), 'Warn policy in force');
    const r = await apply(deployment('web', 'nginx:1.25'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`Warning: ImageScanPolicy team-payments (fixableCritical): nginx:1.25 has 40 fixable CRITICAL vulnerabilities, more than the 0 allowed: see kubectl get imagescanreport -n prod ${nginxReport} -o yaml, then upgrade the packages in its status.fixes`);
    expect(rig.api.objects.get('deployments.apps', 'shop', 'web')).toBeDefined();
  });

  it('Deny: the same apply fails with the message and nothing is created; the standby answers the same as the leader', async () => {
    await usePolicy('team-payments', { namespaceSelector: { matchLabels: { team: 'payments' } }, action: 'Deny', vulnerabilities: { fixableCritical: 0 } });
    await untilJudged(deployment('api', 'nginx:1.25'), (r) => r.code !== 0, 'Deny policy in force');
    const answers: string[] = [];
    for (const replica of replicas) {
      routeTo(replica.port);
      const r = await apply(deployment('api', 'nginx:1.25'));
      expect(r.code).not.toBe(0);
      answers.push(r.stderr);
    }
    expect(answers[0]).toContain(`deployments.apps "api" is forbidden: admission webhook "images.imagescan.dev" denied the request: ImageScanPolicy team-payments (fixableCritical): nginx:1.25 has 40 fixable CRITICAL vulnerabilities, more than the 0 allowed: see kubectl get imagescanreport -n prod ${nginxReport} -o yaml`);
    expect(answers[1]).toBe(answers[0]);
    expect(rig.api.objects.get('deployments.apps', 'shop', 'api')).toBeUndefined();
    routeTo(replicas[0]?.port);
  });

  it('never refuses a pod a controller owns, even when the image now fails the policy; a bare pod with it is refused', async () => {
    const pod = (name: string, owned: boolean) =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'shop', ...(owned ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f7c', uid: 'e3b0c442-98fc-4c14-9afb-f4c8996fb924', controller: true }] } : {}) },
        spec: { containers: [{ name: 'web', image: 'nginx:1.25' }] },
      });
    const owned = await apply(pod('web-5d8f7c-abcde', true));
    expect(owned.code, owned.stderr).toBe(0);
    expect(owned.stderr).not.toContain('Warning');
    const bare = await apply(pod('debug', false));
    expect(bare.stderr).toContain('pods "debug" is forbidden');
  });

  it('allowedRegistries refuses nginx:1.25 in a governed namespace and allows it in another; ghcr.io/acme does not allow ghcr.io/acme-evil', async () => {
    await usePolicy('corp-registry', { namespaceSelector: { matchLabels: { team: 'payments' } }, action: 'Deny', allowedRegistries: ['registry.corp.example', 'ghcr.io/acme'], unscanned: 'Allow' });
    await untilJudged(deployment('proxy', 'nginx:1.25'), (r) => r.stderr.includes('is not from an allowed registry'), 'registry policy in force');
    const refused = await apply(deployment('proxy', 'nginx:1.25'));
    expect(refused.stderr).toContain('ImageScanPolicy corp-registry (registry): nginx:1.25 (docker.io/library/nginx) is not from an allowed registry (registry.corp.example, ghcr.io/acme): push it there and deploy it from there');
    expect((await apply(deployment('proxy', 'nginx:1.25', 'sandbox'))).code).toBe(0);
    expect((await apply(deployment('evil', 'ghcr.io/acme-evil/x:1'))).stderr).toContain('ghcr.io/acme-evil/x:1 (ghcr.io/acme-evil/x) is not from an allowed registry');
    const acme = await apply(deployment('acme', 'ghcr.io/acme/x:1'));
    expect(acme.code, acme.stderr).toBe(0);
  });

  it('Deny-unscanned: the first apply is refused, the image is scanned by reference within a minute, the retry is allowed when clean', async () => {
    await usePolicy('strict', { namespaceSelector: { matchLabels: { team: 'payments' } }, action: 'Deny', unscanned: 'Deny', vulnerabilities: { fixableCritical: 0 } });
    const image = 'registry.corp.example/shop/checkout:2.1';
    await untilJudged(deployment('checkout', 'nginx:1.25'), (r) => r.stderr.includes('ImageScanPolicy strict'), 'strict policy in force');
    // Asked of the leader here, so that its reconciler can reuse the scan below.
    const holder = (rig.api.objects.get('leases.coordination.k8s.io', 'imagescan-system', 'imagescan-operator') as { spec?: { holderIdentity?: string } } | undefined)?.spec?.holderIdentity;
    const leader = replicas.find((r) => r.identity === holder);
    expect(leader).toBeDefined();
    routeTo(leader?.port);
    const scansBefore = rig.stubEvents().filter((e) => e.event === 'start' && e.argv?.includes(`${image}`)).length;
    expect(scansBefore).toBe(0);
    // A dry run is judged but changes nothing: no scan is asked for.
    expect((await apply(deployment('checkout', image), '--dry-run=server')).stderr).toContain('has no scan result yet');
    const first = await apply(deployment('checkout', image));
    expect(first.code).not.toBe(0);
    expect(first.stderr).toContain(`ImageScanPolicy strict (unscanned): ${image} has no scan result yet: retry once it has been scanned`);
    expect(rig.api.objects.get('deployments.apps', 'shop', 'checkout')).toBeUndefined();
    const started = Date.now();
    await eventually(async () => ((await apply(deployment('checkout', image))).code === 0 ? true : undefined), 60_000, 'retry allowed');
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(rig.api.objects.get('deployments.apps', 'shop', 'checkout')).toBeDefined();
    // One Trivy run by reference, on the replica that was asked; none for the dry run.
    const byReference = rig.stubEvents().filter((e) => e.event === 'start' && e.argv?.at(-1) === image);
    expect(byReference).toHaveLength(1);
    // When the image then runs (the digest its RepoDigests named), its report comes from that scan: no second Trivy run.
    const digest = 'sha256:83508b68ad4cc406d89f3493f339a6203ddc91160fe04ad6c21f2a4c351ba54e';
    rig.api.seed.pod({ namespace: 'shop', name: 'checkout-1', containers: [{ name: 'app', image, digest }] });
    await eventually(() => rig.reports('shop').find((r) => r.spec?.digest === digest && r.status?.phase === 'Scanned'), 30_000, 'report of the checkout image');
    expect(rig.stubEvents().filter((e) => e.event === 'start' && (e.argv ?? []).some((a) => a.includes(digest)))).toEqual([]);
    routeTo(replicas[0]?.port);
  });

  it('with the webhook down (operators stopped), deployments go through: failurePolicy Ignore', async () => {
    await usePolicy('team-payments', { namespaceSelector: { matchLabels: { team: 'payments' } }, action: 'Deny', vulnerabilities: { fixableCritical: 0 } });
    await untilJudged(deployment('late', 'nginx:1.25'), (r) => r.code !== 0, 'Deny policy in force');
    for (const replica of replicas) await replica.operator.stop();
    const r = await apply(deployment('late', 'nginx:1.25'));
    expect(r.code, r.stderr).toBe(0);
    expect(rig.api.objects.get('deployments.apps', 'shop', 'late')).toBeDefined();
    // The API server did call the webhook: with failurePolicy Fail the same call failing refuses.
    await kubectlFor(rig.api.kubeconfigPath).ok(['patch', 'validatingwebhookconfiguration', 'imagescan-operator', '--type=json', '-p', '[{"op":"replace","path":"/webhooks/0/failurePolicy","value":"Fail"}]']);
    const failed = await apply(deployment('later', 'nginx:1.25'));
    expect(failed.stderr).toContain('failed calling webhook "images.imagescan.dev"');
  });
});
