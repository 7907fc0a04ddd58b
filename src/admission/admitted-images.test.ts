import { describe, expect, it } from 'vitest';
import type { AdmissionRequest } from './admission-review.js';
import { imagesToJudge } from './admitted-images.js';

function podSpec(images: string[], init: string[] = [], ephemeral: string[] = []): Record<string, unknown> {
  return {
    containers: images.map((image, i) => ({ name: `c${i}`, image })),
    initContainers: init.map((image, i) => ({ name: `i${i}`, image })),
    ephemeralContainers: ephemeral.map((image, i) => ({ name: `e${i}`, image })),
  };
}

function request(group: string, kind: string, object: unknown, extra: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return { uid: 'u', kind: { group, version: 'v1', kind }, operation: 'CREATE', namespace: 'shop', name: 'x', object, oldObject: undefined, dryRun: false, ...extra };
}

describe('imagesToJudge', () => {
  it('reads every container kind of each workload kind, the CronJob through its job template', () => {
    const template = { spec: { template: { spec: podSpec(['nginx:1.25', 'app:2'], ['busybox:1.36']) } } };
    for (const [group, kind] of [['apps', 'Deployment'], ['apps', 'StatefulSet'], ['apps', 'DaemonSet'], ['apps', 'ReplicaSet'], ['batch', 'Job']] as const) {
      expect(imagesToJudge(request(group, kind, template))).toMatchObject({ judge: true, namespace: 'shop', images: ['app:2', 'busybox:1.36', 'nginx:1.25'] });
    }
    const cronJob = { spec: { jobTemplate: { spec: { template: { spec: podSpec(['report:1']) } } } } };
    expect(imagesToJudge(request('batch', 'CronJob', cronJob))).toMatchObject({ judge: true, namespace: 'shop', images: ['report:1'] });
    expect(imagesToJudge(request('', 'Pod', { spec: podSpec(['nginx'], [], ['debug:1']) }))).toMatchObject({ judge: true, namespace: 'shop', images: ['debug:1', 'nginx'] });
  });

  it('never judges pods a controller created; judges bare pods and pods with non-controller owners', () => {
    const owned = { metadata: { ownerReferences: [{ kind: 'ReplicaSet', name: 'web-1', uid: 'x', controller: true }] }, spec: podSpec(['nginx']) };
    expect(imagesToJudge(request('', 'Pod', owned))).toEqual({ judge: false, reason: 'pod is owned by a controller' });
    const referenced = { metadata: { ownerReferences: [{ kind: 'ConfigMap', name: 'c', uid: 'y' }] }, spec: podSpec(['nginx']) };
    expect(imagesToJudge(request('', 'Pod', referenced)).judge).toBe(true);
  });

  it('judges an UPDATE only for the images it adds', () => {
    const before = { spec: { template: { spec: podSpec(['nginx:1.25', 'sidecar:1']) } } };
    const scaled = { spec: { replicas: 5, template: { spec: podSpec(['sidecar:1', 'nginx:1.25']) } } };
    const bumped = { spec: { template: { spec: podSpec(['nginx:1.26', 'sidecar:1']) } } };
    expect(imagesToJudge(request('apps', 'Deployment', scaled, { operation: 'UPDATE', oldObject: before }))).toEqual({ judge: false, reason: 'update adds no image' });
    expect(imagesToJudge(request('apps', 'Deployment', bumped, { operation: 'UPDATE', oldObject: before }))).toMatchObject({ judge: true, namespace: 'shop', images: ['nginx:1.26'] });
  });

  it('lets through what it cannot or need not judge', () => {
    expect(imagesToJudge(request('', 'ConfigMap', {})).judge).toBe(false);
    expect(imagesToJudge(request('apps', 'Deployment', {}, { operation: 'DELETE' })).judge).toBe(false);
    expect(imagesToJudge(request('apps', 'Deployment', { spec: 'nonsense' }))).toEqual({ judge: false, reason: 'object has no readable pod spec' });
    expect(imagesToJudge(request('apps', 'Deployment', { spec: { template: { spec: podSpec([]) } } }, { namespace: undefined })).judge).toBe(false);
  });
});

describe('the pull identity of a judged request', () => {
  it('names the pod spec\'s pull secrets and service account, for the scan by reference', () => {
    const spec = { serviceAccountName: 'builder', imagePullSecrets: [{ name: 'regcred' }, { name: '' }, {}], containers: [{ name: 'a', image: 'registry.example.com/private/app:1' }] };
    const judged = imagesToJudge({ uid: 'u', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, operation: 'CREATE', namespace: 'shop', name: 'd', object: { spec: { template: { spec } } }, oldObject: undefined, dryRun: false });
    expect(judged).toMatchObject({ judge: true, pullIdentity: { namespace: 'shop', imagePullSecrets: ['regcred'], serviceAccountName: 'builder' } });
  });
});
