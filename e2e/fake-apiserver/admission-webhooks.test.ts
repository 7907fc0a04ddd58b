// The fake calls validating admission webhooks like the real API server, seen through the real
// kubectl: a denial fails `kubectl apply` with the webhook's message, warnings print, failurePolicy
// and timeoutSeconds decide what a broken webhook does, rules and selectors decide which requests
// a webhook sees, and dry runs are flagged. The webhook is a tiny HTTPS server made here.
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeSelfSignedCert } from '../../test/self-signed-cert.js';
import type { SelfSignedCert } from '../../test/self-signed-cert.js';
import { startFakeApiServer } from './index.js';
import type { FakeApiServer } from './index.js';
import { kubectlFor } from './kubectl-runner.js';
import type { Kubectl } from './kubectl-runner.js';

interface Review {
  path: string;
  request: {
    uid: string;
    kind: { group: string; version: string; kind: string };
    resource: { group: string; version: string; resource: string };
    subResource?: string;
    name: string;
    namespace?: string;
    operation: string;
    userInfo: { username: string; groups: string[] };
    object: { metadata: { name: string; uid?: string; labels?: Record<string, string> }; spec?: unknown } | null;
    oldObject: { metadata: { name: string } } | null;
    dryRun: boolean;
    options: { kind: string; dryRun?: string[] };
  };
}

type Answer = { allowed: boolean; message?: string; code?: number; warnings?: string[] } | 'hang' | 'wrong-uid' | 'http-500';

/** A webhook that records every AdmissionReview and answers as the test says. */
class TestWebhook {
  readonly reviews: Review[] = [];
  answer: Answer = { allowed: true };
  private readonly server: Server;
  private readonly hanging = new Set<() => void>();

  constructor(cert: SelfSignedCert) {
    this.server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Omit<Review, 'path'>;
        this.reviews.push({ ...review, path: req.url ?? '' });
        const answer = this.answer;
        if (answer === 'hang') {
          this.hanging.add(() => res.destroy());
          return;
        }
        if (answer === 'http-500') {
          res.writeHead(500).end('boom');
          return;
        }
        const uid = answer === 'wrong-uid' ? 'not-the-uid' : review.request.uid;
        const { allowed = true, message, code, warnings } = answer === 'wrong-uid' ? {} : answer;
        const response = { uid, allowed, ...(warnings ? { warnings } : {}), ...(allowed ? {} : { status: { message, ...(code ? { code } : {}) } }) };
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
      });
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const end of this.hanging) end();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const cert = makeSelfSignedCert({ dnsNames: ['policy-webhook.webhook-system.svc'], ips: ['127.0.0.1'] });
const otherCa = makeSelfSignedCert({ ips: ['127.0.0.1'] });

let api: FakeApiServer;
let kubectl: Kubectl;
let webhook: TestWebhook;
let port: number;

beforeAll(async () => {
  api = await startFakeApiServer({ crdDirs: [] });
  kubectl = kubectlFor(api.kubeconfigFor('dev-alice'));
  api.seed.namespace('payments', { team: 'payments' });
  api.seed.namespace('search', { team: 'search' });
});

afterAll(async () => {
  kubectl.close();
  await api.stop();
});

beforeEach(async () => {
  webhook = new TestWebhook(cert);
  port = await webhook.listen();
});

afterEach(async () => {
  await webhook.close();
  for (const c of api.objects.list('validatingwebhookconfigurations.admissionregistration.k8s.io')) {
    api.objects.delete('validatingwebhookconfigurations.admissionregistration.k8s.io', undefined, c.metadata?.name ?? '');
  }
  for (const ns of ['payments', 'search']) for (const d of api.objects.list('deployments.apps', ns)) api.objects.delete('deployments.apps', ns, d.metadata?.name ?? '');
});

interface WebhookSpec {
  name?: string;
  rules?: Record<string, unknown>[];
  failurePolicy?: 'Ignore' | 'Fail';
  timeoutSeconds?: number;
  namespaceSelector?: Record<string, unknown>;
  objectSelector?: Record<string, unknown>;
  matchConditions?: { name: string; expression: string }[];
  clientConfig?: Record<string, unknown>;
}

const DEPLOYMENT_RULE = { apiGroups: ['apps'], apiVersions: ['v1'], resources: ['deployments'], operations: ['CREATE', 'UPDATE'] };

/** Installs a webhook configuration with kubectl, as a platform team would. */
async function installWebhook(spec: WebhookSpec = {}): Promise<void> {
  const config = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: 'policy' },
    webhooks: [
      {
        name: spec.name ?? 'validate.policy.test',
        clientConfig: spec.clientConfig ?? { url: `https://127.0.0.1:${port}/validate`, caBundle: cert.caBundle },
        rules: spec.rules ?? [DEPLOYMENT_RULE],
        failurePolicy: spec.failurePolicy ?? 'Fail',
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: spec.timeoutSeconds ?? 5,
        ...(spec.namespaceSelector ? { namespaceSelector: spec.namespaceSelector } : {}),
        ...(spec.objectSelector ? { objectSelector: spec.objectSelector } : {}),
        ...(spec.matchConditions ? { matchConditions: spec.matchConditions } : {}),
      },
    ],
  };
  await kubectl.ok(['apply', '-f', '-'], JSON.stringify(config));
}

function deployment(name: string, namespace = 'payments', labels: Record<string, string> = {}): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'web', image: 'nginx:1.25' }] } },
    },
  });
}

function exists(name: string, namespace = 'payments'): boolean {
  return api.objects.get('deployments.apps', namespace, name) !== undefined;
}

describe('validating admission webhooks', () => {
  it('a denial fails kubectl apply with the webhook message and creates nothing; the review says what is admitted', async () => {
    await installWebhook();
    webhook.answer = { allowed: false, message: 'nginx:1.25 is not from an allowed registry', warnings: ['read the policy: kubectl get isp'] };
    const r = await kubectl.run(['apply', '-f', '-'], deployment('web'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('admission webhook "validate.policy.test" denied the request: nginx:1.25 is not from an allowed registry');
    expect(r.stderr).toContain('deployments.apps "web" is forbidden');
    // The real server sends a denying webhook's warnings too, and kubectl prints them.
    expect(r.stderr).toContain('Warning: read the policy: kubectl get isp');
    expect(exists('web')).toBe(false);

    expect(webhook.reviews).toHaveLength(1);
    const review = webhook.reviews[0];
    expect(review?.path).toBe('/validate?timeout=5s');
    expect(review?.request).toMatchObject({
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      name: 'web',
      namespace: 'payments',
      operation: 'CREATE',
      userInfo: { username: 'dev-alice', groups: ['system:authenticated'] },
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions' },
    });
    expect(review?.request.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(review?.request.object?.spec).toMatchObject({ template: { spec: { containers: [{ image: 'nginx:1.25' }] } } });
  });

  it('uses the status code the webhook gives, and says "without explanation" when it gives no message', async () => {
    await installWebhook();
    webhook.answer = { allowed: false, code: 422 };
    const r = await kubectl.run(['apply', '-f', '-'], deployment('web'));
    expect(r.stderr).toContain('admission webhook "validate.policy.test" denied the request without explanation');
    const record = api.requests({ verb: 'create', resource: 'deployments' }).at(-1);
    expect(record?.code).toBe(422);
  });

  it('allows with warnings that kubectl prints, and stores the object the webhook saw (same uid)', async () => {
    await installWebhook();
    webhook.answer = { allowed: true, warnings: ['nginx:1.25 has 2 fixable CRITICAL vulnerabilities', 'second "quoted" warning'] };
    const r = await kubectl.run(['apply', '-f', '-'], deployment('web'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Warning: nginx:1.25 has 2 fixable CRITICAL vulnerabilities');
    expect(r.stderr).toContain('Warning: second "quoted" warning');
    expect(api.objects.get('deployments.apps', 'payments', 'web')?.metadata?.uid).toBe(webhook.reviews[0]?.request.object?.metadata.uid);

    // An UPDATE carries the old object, and a no-op update reaches the webhook too (as in a real cluster).
    await kubectl.ok(['label', 'deployment', 'web', '-n', 'payments', 'tier=frontend']);
    const update = webhook.reviews[1]?.request;
    expect(update?.operation).toBe('UPDATE');
    expect(update?.options.kind).toBe('PatchOptions');
    expect(update?.oldObject?.metadata.name).toBe('web');
    expect(update?.object?.metadata.labels).toEqual({ tier: 'frontend' });
  });

  it('failurePolicy Ignore lets a request through when the webhook is down; Fail refuses it', async () => {
    await webhook.close();
    await installWebhook({ failurePolicy: 'Ignore' });
    const through = await kubectl.run(['apply', '-f', '-'], deployment('web'));
    expect(through.code, through.stderr).toBe(0);
    expect(exists('web')).toBe(true);

    await installWebhook({ failurePolicy: 'Fail' });
    const refused = await kubectl.run(['apply', '-f', '-'], deployment('api'));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Internal error occurred: failed calling webhook "validate\.policy\.test": failed to call webhook: Post "https:\/\/127\.0\.0\.1:\d+\/validate\?timeout=5s": dial tcp 127\.0\.0\.1:\d+: connect: connection refused/);
    expect(exists('api')).toBe(false);
    webhook = new TestWebhook(cert);
    port = await webhook.listen();
  });

  it('a bad answer (wrong uid, HTTP 500) is a call failure, decided by failurePolicy', async () => {
    await installWebhook({ failurePolicy: 'Fail' });
    webhook.answer = 'wrong-uid';
    const wrongUid = await kubectl.run(['apply', '-f', '-'], deployment('web'));
    expect(wrongUid.stderr).toMatch(/failed calling webhook "validate\.policy\.test": expected response\.uid="[0-9a-f-]{36}", got "not-the-uid"/);
    webhook.answer = 'http-500';
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web'))).stderr).toContain('the server responded with the status code 500');
    await installWebhook({ failurePolicy: 'Ignore' });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web'))).code).toBe(0);
  });

  it('verifies the server certificate against caBundle', async () => {
    await installWebhook({ clientConfig: { url: `https://127.0.0.1:${port}/validate`, caBundle: otherCa.caBundle } });
    const r = await kubectl.run(['apply', '-f', '-'], deployment('web'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('tls: failed to verify certificate: x509');
    expect(webhook.reviews).toHaveLength(0);
  });

  it('honours timeoutSeconds: a hanging webhook fails the request after it (Fail) or is skipped (Ignore)', async () => {
    webhook.answer = 'hang';
    await installWebhook({ timeoutSeconds: 1, failurePolicy: 'Fail' });
    let started = Date.now();
    const refused = await kubectl.run(['apply', '-f', '-'], deployment('web'));
    expect(refused.stderr).toContain('/validate?timeout=1s": context deadline exceeded');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(exists('web')).toBe(false);

    await installWebhook({ timeoutSeconds: 1, failurePolicy: 'Ignore' });
    started = Date.now();
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web'))).code).toBe(0);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    // Well before the 10 s default: the configured second is what ended the wait.
    expect(elapsed).toBeLessThan(9000);
  });

  it('namespaceSelector and objectSelector decide which requests the webhook sees', async () => {
    webhook.answer = { allowed: false, message: 'no' };
    await installWebhook({ namespaceSelector: { matchLabels: { team: 'payments' } } });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web', 'search'))).code).toBe(0);
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web', 'payments'))).code).not.toBe(0);
    expect(webhook.reviews.map((r) => r.request.namespace)).toEqual(['payments']);

    await installWebhook({ namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['payments'] }] } });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web', 'payments'))).code).toBe(0);

    await installWebhook({ objectSelector: { matchLabels: { 'imagescan.dev/judge': 'true' } } });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('other', 'payments'))).code).toBe(0);
    expect((await kubectl.run(['apply', '-f', '-'], deployment('judged', 'payments', { 'imagescan.dev/judge': 'true' }))).code).not.toBe(0);
  });

  it('rules match group, version, resource (subresources only in the resource/subresource form), operation and scope', async () => {
    api.seed.pod({ namespace: 'payments', name: 'p', containers: ['nginx:1.25'] });
    await installWebhook({ rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['UPDATE'] }] });
    await kubectl.ok(['label', 'pod', 'p', '-n', 'payments', 'a=b']);
    await kubectl.ok(['patch', 'pod', 'p', '-n', 'payments', '--subresource=status', '--type=merge', '-p', '{"status":{"message":"x"}}']);
    await kubectl.ok(['apply', '-f', '-'], deployment('web'));
    expect(webhook.reviews.map((r) => [r.request.resource.resource, r.request.subResource ?? '', r.request.operation])).toEqual([['pods', '', 'UPDATE']]);

    await installWebhook({ rules: [{ apiGroups: ['*'], apiVersions: ['*'], resources: ['*/status'], operations: ['*'] }] });
    await kubectl.ok(['patch', 'pod', 'p', '-n', 'payments', '--subresource=status', '--type=merge', '-p', '{"status":{"message":"y"}}']);
    expect(webhook.reviews.at(-1)?.request.subResource).toBe('status');

    await installWebhook({ rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['namespaces'], operations: ['CREATE'], scope: 'Namespaced' }] });
    await kubectl.ok(['create', 'namespace', 'scoped-out']);
    await installWebhook({ rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['namespaces'], operations: ['CREATE'], scope: 'Cluster' }] });
    await kubectl.ok(['create', 'namespace', 'scoped-in']);
    expect(webhook.reviews.filter((r) => r.request.resource.resource === 'namespaces').map((r) => r.request.name)).toEqual(['scoped-in']);
  });

  it('DELETE sends the old object and no object', async () => {
    api.seed.pod({ namespace: 'payments', name: 'gone', containers: ['nginx:1.25'] });
    await installWebhook({ rules: [{ apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], operations: ['DELETE'] }] });
    webhook.answer = { allowed: false, message: 'keep it' };
    expect((await kubectl.run(['delete', 'pod', 'gone', '-n', 'payments'])).stderr).toContain('denied the request: keep it');
    expect(api.objects.get('pods', 'payments', 'gone')).toBeDefined();
    expect(webhook.reviews[0]?.request).toMatchObject({ operation: 'DELETE', object: null, oldObject: { metadata: { name: 'gone' } }, options: { kind: 'DeleteOptions' } });
  });

  it('flags dry runs: the webhook judges them, nothing is stored', async () => {
    await installWebhook();
    webhook.answer = { allowed: true, warnings: ['looked at it'] };
    const r = await kubectl.run(['apply', '--dry-run=server', '-f', '-'], deployment('web'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('Warning: looked at it');
    expect(exists('web')).toBe(false);
    expect(webhook.reviews[0]?.request).toMatchObject({ dryRun: true, options: { dryRun: ['All'] } });
    webhook.answer = { allowed: false, message: 'no' };
    expect((await kubectl.run(['apply', '--dry-run=server', '-f', '-'], deployment('web'))).stderr).toContain('denied the request: no');
  });

  it('matchConditions in CEL skip the webhook when one is false; an evaluation error follows failurePolicy', async () => {
    webhook.answer = { allowed: false, message: 'no' };
    await installWebhook({ matchConditions: [{ name: 'not-skipped', expression: "object.metadata.name != 'skip-me'" }, { name: 'creates', expression: "request.operation == 'CREATE'" }] });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('skip-me'))).code).toBe(0);
    expect((await kubectl.run(['apply', '-f', '-'], deployment('judge-me'))).stderr).toContain('denied the request: no');
    expect(webhook.reviews.map((r) => r.request.name)).toEqual(['judge-me']);

    await installWebhook({ matchConditions: [{ name: 'broken', expression: 'object.metadata.noSuchField == 1' }] });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web'))).stderr).toContain('failed calling webhook "validate.policy.test": matchCondition "broken" failed to evaluate');
    await installWebhook({ failurePolicy: 'Ignore', matchConditions: [{ name: 'broken', expression: 'object.metadata.noSuchField == 1' }] });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web'))).code).toBe(0);
  });

  it('reaches a clientConfig.service through setWebhookService, checking the certificate for <name>.<namespace>.svc', async () => {
    webhook.answer = { allowed: false, message: 'from the service' };
    const service = { namespace: 'webhook-system', name: 'policy-webhook', path: '/validate', port: 443 };
    await installWebhook({ clientConfig: { service, caBundle: cert.caBundle } });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web'))).stderr).toContain('has no endpoints');
    api.setWebhookService('webhook-system', 'policy-webhook', { host: '127.0.0.1', port });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web'))).stderr).toContain('denied the request: from the service');
    // The same server under a name its certificate does not carry fails verification.
    api.setWebhookService('webhook-system', 'other', { host: '127.0.0.1', port });
    await installWebhook({ clientConfig: { service: { ...service, name: 'other' }, caBundle: cert.caBundle } });
    expect((await kubectl.run(['apply', '-f', '-'], deployment('web'))).stderr).toMatch(/tls: failed to verify certificate: x509: .*other\.webhook-system\.svc/);
    api.setWebhookService('webhook-system', 'policy-webhook', undefined);
    api.setWebhookService('webhook-system', 'other', undefined);
  });

  it('refuses webhook configurations the real server refuses', async () => {
    const bad = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: 'bad' },
      webhooks: [{ name: 'short', clientConfig: { url: 'http://127.0.0.1/validate' }, rules: [DEPLOYMENT_RULE], admissionReviewVersions: ['v1'], timeoutSeconds: 60 }],
    };
    const r = await kubectl.run(['apply', '-f', '-'], JSON.stringify(bad));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('webhooks[0].name');
    expect(r.stderr).toContain("'https' is the only allowed URL scheme");
    expect(r.stderr).toContain('webhooks[0].sideEffects: Required value');
    expect(r.stderr).toContain('the timeout value must be between 1 and 30 seconds');
  });

  it('fills in the defaults a real server stores (failurePolicy Fail, timeoutSeconds 10, selectors, scope)', async () => {
    const minimal = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: 'minimal' },
      webhooks: [{ name: 'minimal.policy.test', clientConfig: { url: `https://127.0.0.1:${port}/` }, rules: [DEPLOYMENT_RULE], sideEffects: 'None', admissionReviewVersions: ['v1'] }],
    };
    await kubectl.ok(['apply', '-f', '-'], JSON.stringify(minimal));
    const stored = api.objects.get('validatingwebhookconfigurations.admissionregistration.k8s.io', undefined, 'minimal') as { webhooks: Record<string, unknown>[] } | undefined;
    expect(stored?.webhooks[0]).toMatchObject({ failurePolicy: 'Fail', matchPolicy: 'Equivalent', timeoutSeconds: 10, namespaceSelector: {}, objectSelector: {}, rules: [{ ...DEPLOYMENT_RULE, scope: '*' }] });
    expect(await kubectl.ok(['get', 'validatingwebhookconfigurations', 'minimal'])).toMatch(/^NAME\s+WEBHOOKS\s+AGE\nminimal\s+1\s+\d+s\n?$/);
  });
});
