// The deploy gate's bare webhook server behind the fake API server, seen by a developer with the real
// kubectl: what a Warn and a Deny policy print, that nothing is created on a denial, and that
// failurePolicy Ignore lets deploys through when the webhook is down. Knowledge is a fixed in-memory
// table here; operator-gate.test.ts runs the same through operator processes fed by their caches.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideReview } from '../../src/admission/admission-decider.js';
import type { AdmissionKnowledge } from '../../src/admission/admission-decider.js';
import { startWebhookServer } from '../../src/admission/webhook-server.js';
import type { WebhookServer } from '../../src/admission/webhook-server.js';
import { compilePolicy } from '../../src/policy/image-scan-policy.js';
import type { CompiledPolicy } from '../../src/policy/image-scan-policy.js';
import { makeSelfSignedCert } from '../../test/self-signed-cert.js';
import { startFakeApiServer } from '../fake-apiserver/index.js';
import type { FakeApiServer } from '../fake-apiserver/index.js';
import { kubectlFor } from '../fake-apiserver/kubectl-runner.js';
import { deployment, shippedWebhookConfiguration } from './gate-fixtures.js';
import type { Kubectl } from '../fake-apiserver/kubectl-runner.js';

const cert = makeSelfSignedCert({ dnsNames: ['imagescan-operator-webhook.imagescan-system.svc'] });
let api: FakeApiServer;
let kubectl: Kubectl;
let webhook: WebhookServer;
let policies: CompiledPolicy[] = [];

const knowledge: AdmissionKnowledge = {
  policies: () => policies,
  namespaceLabels: (ns) => api.objects.get('namespaces', undefined, ns)?.metadata?.labels,
  scanResult: (ref) =>
    ref.repository === 'docker.io/library/nginx' && ref.tag === '1.25'
      ? { scan: { critical: 3, high: 9, fixableCritical: 2, fixableHigh: 4 }, report: { namespace: 'prod', name: 'nginx-5f7a1c2b9d0e' } }
      : ref.repository.startsWith('registry.corp.example/')
        ? { scan: { critical: 0, high: 0, fixableCritical: 0, fixableHigh: 0 } }
        : undefined,
};

function usePolicy(spec: Record<string, unknown>): void {
  const compiled = compilePolicy('team-bar', spec);
  if (!compiled.ok) throw new Error(compiled.message);
  policies = [compiled.policy];
}

beforeAll(async () => {
  webhook = await startWebhookServer({ host: '127.0.0.1', port: 0, certificate: { cert: cert.certPem, key: cert.keyPem }, logger: pino({ level: 'silent' }), decide: (request) => decideReview(request, knowledge).response });
  api = await startFakeApiServer({ webhookServices: { 'imagescan-system/imagescan-operator-webhook': { host: '127.0.0.1', port: webhook.address.port } } });
  api.seed.namespace('shop', { team: 'payments' });
  api.seed.namespace('sandbox', { team: 'research' });
  kubectl = kubectlFor(api.kubeconfigFor('dev-bob'));
  // What the admission component installs: Ignore, 5 s, NoneOnDryRun, workloads and pods.
  await kubectl.ok(['apply', '-f', '-'], shippedWebhookConfiguration(cert.caBundle));
});

afterAll(async () => {
  kubectl.close();
  await api.stop();
  await webhook.close();
});

describe('the deploy gate through the API server', () => {
  it('Warn: kubectl prints a warning naming the report, and the Deployment is created', async () => {
    usePolicy({ action: 'Warn', vulnerabilities: { fixableCritical: 0 } });
    const r = await kubectl.run(['apply', '-f', '-'], deployment('web', 'nginx:1.25'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Warning: ImageScanPolicy team-bar (fixableCritical): nginx:1.25 has 2 fixable CRITICAL vulnerabilities, more than the 0 allowed: see kubectl get imagescanreport -n prod nginx-5f7a1c2b9d0e -o yaml');
    expect(api.objects.get('deployments.apps', 'shop', 'web')).toBeDefined();
  });

  it('Deny: the same apply fails with the message, and nothing is created', async () => {
    usePolicy({ action: 'Deny', vulnerabilities: { fixableCritical: 0 } });
    const r = await kubectl.run(['apply', '-f', '-'], deployment('api', 'nginx:1.25'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('deployments.apps "api" is forbidden: admission webhook "images.imagescan.dev" denied the request: ImageScanPolicy team-bar (fixableCritical): nginx:1.25 has 2 fixable CRITICAL vulnerabilities');
    expect(api.objects.get('deployments.apps', 'shop', 'api')).toBeUndefined();
  });

  it('allowedRegistries refuses nginx in a governed namespace and allows it elsewhere', async () => {
    usePolicy({ action: 'Deny', allowedRegistries: ['registry.corp.example'], namespaceSelector: { matchLabels: { team: 'payments' } } });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('proxy', 'nginx:1.25'))).stderr).toContain('is not from an allowed registry (registry.corp.example)');
    expect((await kubectl.run(['apply', '-f', '-'], deployment('proxy', 'nginx:1.25', 'sandbox'))).code).toBe(0);
    expect((await kubectl.run(['apply', '-f', '-'], deployment('proxy', 'registry.corp.example/shop/proxy:2'))).code).toBe(0);
  });

  it('with the webhook down, deploys go through (failurePolicy Ignore)', async () => {
    usePolicy({ action: 'Deny', vulnerabilities: { fixableCritical: 0 } });
    await webhook.close();
    const r = await kubectl.run(['apply', '-f', '-'], deployment('batch', 'nginx:1.25'));
    expect(r.code, r.stderr).toBe(0);
    expect(api.objects.get('deployments.apps', 'shop', 'batch')).toBeDefined();
  });
});
