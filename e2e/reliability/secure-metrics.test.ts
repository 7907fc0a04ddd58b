// User story: a platform team installs the operator with its manifests (base + monitoring component)
// and wants the cluster's image and vulnerability inventory readable only by Prometheus: /metrics
// refuses a scrape without a token (401) and a user RBAC does not allow (403), serves Prometheus'
// ServiceAccount (bound to imagescan-operator-metrics-reader), never answers 200 when the API server
// cannot be asked, and the kubelet's probes keep working without a token.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSeedText } from '../fake-apiserver/index.js';
import { getEndpoint, repoRoot } from '../operator-process.js';
import { NGINX_FIXTURE, OPERATOR_SA, eventually, startRig } from './harness.js';
import type { OperatorProcess, Rig } from './harness.js';

const RBAC_KINDS = new Set(['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding']);
// The ServiceAccount the monitoring component binds to the metrics-reader ClusterRole.
const PROMETHEUS = 'system:serviceaccount:monitoring:prometheus-k8s';
// Authenticated, but bound to nothing that grants /metrics.
const DEVELOPER = 'system:serviceaccount:shop:default';

/** RBAC objects of `kubectl kustomize` on an overlay of the base plus the monitoring component. */
function renderedRbac(): ReturnType<typeof parseSeedText> {
  const overlay = mkdtempSync(path.join(tmpdir(), 'imagescan-secure-metrics-'));
  const rel = (p: string): string => path.relative(overlay, path.join(repoRoot, p));
  writeFileSync(
    path.join(overlay, 'kustomization.yaml'),
    ['apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization', 'resources:', `  - ${rel('manifests/base')}`, 'components:', `  - ${rel('manifests/components/monitoring')}`, ''].join('\n'),
  );
  try {
    return parseSeedText(execFileSync('kubectl', ['kustomize', overlay], { encoding: 'utf8' })).filter((o) => RBAC_KINDS.has(String(o.kind)));
  } finally {
    rmSync(overlay, { recursive: true, force: true });
  }
}

describe('secure /metrics with the manifests’ RBAC', () => {
  let rig: Rig;
  let operator: OperatorProcess;
  let url: string;

  beforeAll(async () => {
    const objects = renderedRbac();
    rig = await startRig({ rbac: { objects, enforceFor: [OPERATOR_SA, PROMETHEUS, DEVELOPER] } });
    rig.setStubMap({ default: NGINX_FIXTURE });
    rig.api.kubeconfigFor(PROMETHEUS, { token: 'prometheus-token' });
    rig.api.kubeconfigFor(DEVELOPER, { token: 'developer-token' });
    rig.api.seed.namespace('imagescan-system');
    rig.api.seed.namespace('shop', { team: 'payments' });
    rig.api.seed.deployment({ namespace: 'shop', name: 'web', containers: ['nginx:1.19'] });
    // Secure metrics are the default: no flag about them here.
    operator = rig.start({ kubeconfig: rig.api.kubeconfigFor(OPERATOR_SA) });
    url = await operator.metricsUrl();
    await eventually(() => (rig.reports('shop')[0]?.status?.phase === 'Scanned' ? true : undefined), 60_000, 'the nginx report Scanned');
  }, 90_000);

  afterAll(async () => {
    await rig?.close();
  });

  it('serves HTTPS only', async () => {
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const listening = operator.lines.find((l) => l.msg === 'metrics server listening');
    expect(listening).toMatchObject({ secure: true, certificate: 'self-signed' });
    await expect(getEndpoint(`${url.replace('https:', 'http:')}/healthz`, { timeoutMs: 3000 })).rejects.toThrow();
  });

  it('refuses an unauthenticated scrape with 401, and a token the API server does not know with 401', async () => {
    const anonymous = await getEndpoint(`${url}/metrics`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(anonymous.body).not.toContain('imagescan_');
    const guessed = await getEndpoint(`${url}/metrics`, { token: 'guessed-token' });
    expect(guessed.status).toBe(401);
    expect(guessed.body).not.toContain('imagescan_');
  });

  it('refuses an authenticated user without the metrics-reader binding with 403', async () => {
    const reply = await getEndpoint(`${url}/metrics`, { token: 'developer-token' });
    expect(reply.status).toBe(403);
    expect(reply.body).toBe(`Forbidden: user "${DEVELOPER}" may not get /metrics\n`);
  });

  it('serves the metrics to Prometheus’ ServiceAccount, bound to metrics-reader by the monitoring component', async () => {
    const reply = await getEndpoint(`${url}/metrics`, { token: 'prometheus-token' });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatch(/^imagescan_image_vulnerabilities\{namespace="shop",.*image="nginx:1\.19".*severity="CRITICAL",fixable="true"\} [1-9]/m);
  });

  it('asks the API server once per token, not per scrape, with the operator’s own RBAC', async () => {
    const before = rig.api.requests({ identity: OPERATOR_SA, resource: 'tokenreviews' }).length;
    for (let i = 0; i < 5; i++) expect((await getEndpoint(`${url}/metrics`, { token: 'prometheus-token' })).status).toBe(200);
    expect(rig.api.requests({ identity: OPERATOR_SA, resource: 'tokenreviews' })).toHaveLength(before);
    const reviews = rig.api.requests({ identity: OPERATOR_SA }).filter((r) => r.resource === 'tokenreviews' || r.resource === 'subjectaccessreviews');
    expect(reviews.length).toBeGreaterThan(0);
    expect(reviews.filter((r) => r.code !== 201)).toEqual([]);
  });

  it('answers 503, never the metrics, while the API server fails the review; 200 once it answers again', async () => {
    rig.api.kubeconfigFor(PROMETHEUS, { token: 'prometheus-token-rotated' }); // not cached yet
    rig.api.faults.set({ resources: ['tokenreviews.authentication.k8s.io'], errorRate: 1, errorCodes: [500] });
    try {
      const reply = await getEndpoint(`${url}/metrics`, { token: 'prometheus-token-rotated' });
      expect(reply.status).toBe(503);
      expect(reply.body).not.toContain('imagescan_');
    } finally {
      rig.api.faults.clear();
    }
    expect((await getEndpoint(`${url}/metrics`, { token: 'prometheus-token-rotated' })).status).toBe(200);
  });

  it('keeps /healthz and /readyz open for the kubelet’s probes, which send no token', async () => {
    expect(await getEndpoint(`${url}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await getEndpoint(`${url}/readyz`)).status).toBe(200);
  });
});
