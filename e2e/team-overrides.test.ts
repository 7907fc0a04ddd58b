// User story: a mesh injects istio-proxy (and Linkerd's proxy) into every application pod. The platform
// team patches those images, so with --team-overrides their reports, metrics and alerts carry the
// platform's team, while the application images in the same pods stay with the application team.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from './fake-apiserver/index.js';
import type { FakeApiServer } from './fake-apiserver/index.js';
import { eventually, getEndpoint, startOperatorProcess, writeTrivyStubWrapper } from './operator-process.js';
import type { OperatorProcess } from './operator-process.js';

interface ReportLike {
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: { repository?: string };
  status?: { phase?: string; team?: string };
}

describe('--team-overrides gives injected sidecars their own team', () => {
  let api: FakeApiServer;
  let operator: OperatorProcess;
  let work: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-team-overrides-'));
    api = await startFakeApiServer({});
    api.seed.namespace('shop', { team: 'payments' });
    api.seed.namespace('catalog', { team: 'search' });
    api.seed.node('node-1');
    // The same sidecar image in two teams' pods, under the injected container name.
    const istio = { name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.22.0' };
    api.seed.deployment({ namespace: 'shop', name: 'checkout', containers: [{ name: 'app', image: 'nginx:1.19' }, istio] });
    api.seed.deployment({ namespace: 'catalog', name: 'search-api', containers: [{ name: 'app', image: 'redis:7' }, istio] });
    const wrapper = writeTrivyStubWrapper(work, {});
    operator = startOperatorProcess({
      args: [
        '--kubeconfig', api.kubeconfigPath,
        '--trivy-path', wrapper,
        '--trivy-cache-dir', path.join(work, 'cache'),
        '--leader-elect=false',
        '--metrics-address', '127.0.0.1:0',
      ],
      env: { TMPDIR: work, IMAGESCAN_TEAM_OVERRIDES: 'container:istio-proxy=platform,container:linkerd-proxy=platform' },
    });
  });

  afterAll(async () => {
    await operator?.stop();
    await api?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('writes the sidecar reports with team platform and the application reports with the pods team', async () => {
    const teams = await eventually(() => {
      const reports = ['shop', 'catalog'].flatMap((ns) => api.objects.list('imagescanreports.imagescan.dev', ns) as ReportLike[]);
      if (reports.length < 4 || reports.some((r) => r.status?.phase !== 'Scanned')) return undefined;
      return reports.map((r) => `${r.spec?.repository ?? ''} ${r.status?.team ?? ''} ${r.metadata?.labels?.['imagescan.dev/team'] ?? ''}`).sort();
    }, 30_000, 'four Scanned reports');
    expect(teams).toEqual([
      'docker.io/istio/proxyv2 platform platform',
      'docker.io/istio/proxyv2 platform platform',
      'docker.io/library/nginx payments payments',
      'docker.io/library/redis search search',
    ]);

    // The per-image series follow the report: the sidecar is the platform's in both namespaces.
    // Secure metrics: the kubeconfig's admin token, which the fake API server authenticates.
    const metrics = (await getEndpoint(`${await operator.metricsUrl()}/metrics`, { token: 'admin' })).body;
    const sidecarTeams = [...metrics.matchAll(/^imagescan_report_last_scan_timestamp_seconds\{namespace="([^"]+)",report="proxyv2-[0-9a-f]{12}",image="[^"]+",team="([^"]+)"\}/gm)].map((m) => `${m[1]}=${m[2]}`).sort();
    expect(sidecarTeams).toEqual(['catalog=platform', 'shop=platform']);
  });
});
