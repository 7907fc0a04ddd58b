import { describe, expect, it } from 'vitest';
import type { ImageReference } from '../images/image-reference.js';
import { compilePolicy } from '../policy/image-scan-policy.js';
import type { CompiledPolicy } from '../policy/image-scan-policy.js';
import { decideReview } from './admission-decider.js';
import type { AdmissionKnowledge, KnownScan } from './admission-decider.js';
import type { AdmissionRequest } from './admission-review.js';

function policy(name: string, spec: Record<string, unknown>): CompiledPolicy {
  const r = compilePolicy(name, spec);
  if (!r.ok) throw new Error(r.message);
  return r.policy;
}

const CLEAN = { critical: 0, high: 0, fixableCritical: 0, fixableHigh: 0 };

/** Knowledge held in maps, keyed by normalised repository and tag, as a cache would hold it. */
function knowledge(policies: CompiledPolicy[], scans: Record<string, KnownScan>, namespaces: Record<string, Record<string, string>> = { shop: { team: 'payments' } }): AdmissionKnowledge {
  return {
    policies: () => policies,
    namespaceLabels: (ns) => namespaces[ns],
    scanResult: (ref: ImageReference) => scans[`${ref.repository}:${ref.tag ?? ''}`],
  };
}

function deploymentRequest(images: string[], extra: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    uid: '7f1c',
    kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
    operation: 'CREATE',
    namespace: 'shop',
    name: 'web',
    object: { spec: { template: { spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) } } } },
    oldObject: undefined,
    dryRun: false,
    ...extra,
  };
}

const vulnerable: KnownScan = { scan: { ...CLEAN, critical: 2, fixableCritical: 2 }, report: { namespace: 'prod', name: 'nginx-0123456789ab' } };

describe('decideReview', () => {
  it('warns and allows under a Warn policy, naming the report; echoes the uid', () => {
    const k = knowledge([policy('bar', { action: 'Warn', vulnerabilities: { fixableCritical: 0 } })], { 'docker.io/library/nginx:1.25': vulnerable });
    const d = decideReview(deploymentRequest(['nginx:1.25']), k);
    expect(d.decision).toBe('warn');
    expect(d.response).toEqual({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: {
        uid: '7f1c',
        allowed: true,
        warnings: [
          'ImageScanPolicy bar (fixableCritical): nginx:1.25 has 2 fixable CRITICAL vulnerabilities, more than the 0 allowed: see kubectl get imagescanreport -n prod nginx-0123456789ab -o yaml, then upgrade the packages in its status.fixes',
        ],
      },
    });
  });

  it('refuses under a Deny policy with a message naming policy, rule, image and numbers', () => {
    const k = knowledge([policy('bar', { action: 'Deny', vulnerabilities: { fixableCritical: 0 } })], { 'docker.io/library/nginx:1.25': vulnerable });
    const d = decideReview(deploymentRequest(['nginx:1.25']), k);
    expect(d.decision).toBe('deny');
    expect(d.response.response).toMatchObject({ uid: '7f1c', allowed: false, status: { code: 403, reason: 'Forbidden' } });
    expect(d.response.response.status?.message).toContain('ImageScanPolicy bar (fixableCritical): nginx:1.25 has 2 fixable CRITICAL vulnerabilities');
  });

  it('judges the registry in governed namespaces only, on path-segment boundaries', () => {
    const k = knowledge([policy('corp', { action: 'Deny', allowedRegistries: ['registry.corp.example', 'ghcr.io/acme'], namespaceSelector: { matchLabels: { team: 'payments' } } })], {
      'docker.io/library/nginx:1.25': { scan: CLEAN },
      'ghcr.io/acme-evil/x:1': { scan: CLEAN },
      'ghcr.io/acme/x:1': { scan: CLEAN },
    }, { shop: { team: 'payments' }, other: { team: 'search' } });
    expect(decideReview(deploymentRequest(['nginx:1.25']), k).decision).toBe('deny');
    expect(decideReview(deploymentRequest(['nginx:1.25'], { namespace: 'other' }), k).decision).toBe('allow');
    expect(decideReview(deploymentRequest(['ghcr.io/acme-evil/x:1']), k).decision).toBe('deny');
    expect(decideReview(deploymentRequest(['ghcr.io/acme/x:1']), k).decision).toBe('allow');
  });

  it('hands back unscanned images for a scan, except on a dry run; spec.unscanned decides', () => {
    const k = knowledge([policy('strict', { action: 'Deny', unscanned: 'Deny' })], {});
    const d = decideReview(deploymentRequest(['registry.corp.example/new:1']), k);
    expect(d.decision).toBe('deny');
    expect(d.response.response.status?.message).toContain('registry.corp.example/new:1 has no scan result yet: retry once it has been scanned');
    expect(d.unscanned.map((r) => `${r.repository}:${r.tag ?? ''}`)).toEqual(['registry.corp.example/new:1']);
    expect(decideReview(deploymentRequest(['registry.corp.example/new:1'], { dryRun: true }), k)).toMatchObject({ decision: 'deny', unscanned: [] });
  });

  it('asks for no scan a policy would not use: Audit policies, exempt images, no threshold with unscanned Allow', () => {
    const image = ['registry.corp.example/legacy/old:1'];
    const asked = (spec: Record<string, unknown>) => decideReview(deploymentRequest(image), knowledge([policy('p', spec)], {})).unscanned.length;
    expect(asked({ action: 'Audit', vulnerabilities: { critical: 0 } })).toBe(0);
    expect(asked({ action: 'Deny', vulnerabilities: { critical: 0 }, exemptImages: ['registry.corp.example/legacy/*'] })).toBe(0);
    expect(asked({ action: 'Deny', allowedRegistries: ['registry.corp.example'], unscanned: 'Allow' })).toBe(0);
    expect(asked({ action: 'Warn', vulnerabilities: { critical: 0 }, unscanned: 'Allow' })).toBe(1);
  });

  it('allows what it does not judge, and says why', () => {
    const k = knowledge([policy('strict', { action: 'Deny', unscanned: 'Deny' })], {});
    const ownedPod: AdmissionRequest = {
      ...deploymentRequest([]),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      object: { metadata: { ownerReferences: [{ kind: 'ReplicaSet', name: 'web-1', uid: 'u', controller: true }] }, spec: { containers: [{ name: 'c', image: 'nginx' }] } },
    };
    expect(decideReview(ownedPod, k)).toMatchObject({ decision: 'allow', notJudged: 'pod is owned by a controller', response: { response: { uid: '7f1c', allowed: true } } });
    expect(decideReview(deploymentRequest(['nginx'], { namespace: 'unknown-ns' }), knowledge([policy('p', { namespaceSelector: { matchLabels: { team: 'x' } } })], {}))).toMatchObject({
      decision: 'allow',
      notJudged: 'no policy governs the namespace',
    });
    // An image reference the kubelet could never pull is left to the kubelet's clearer error.
    expect(decideReview(deploymentRequest(['Not A Reference']), k).decision).toBe('allow');
  });
});
