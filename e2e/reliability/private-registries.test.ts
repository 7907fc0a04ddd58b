// User story: teams pull from private registries. The operator scans their images with the pod's (or
// its service account's) pull secret, hands Trivy only the entry of the image's registry in a private
// DOCKER_CONFIG that is gone after the scan, and when a secret is missing or wrong says so — naming the
// registry and the secret, never its content — without hammering the registry with retries.
// (Success with a pod secret and a wrong password are in e2e/operator-lifecycle.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDockerConfigJsonSecret, buildServiceAccount, digestFor } from '../fake-apiserver/index.js';
import { CLEAN_FIXTURE, eventually, startRig } from './harness.js';
import type { OperatorProcess, ReportLike, Rig } from './harness.js';

const ROBOT = { username: 'pr-robot', password: 'pr-password-41d0' };
const OTHER = { username: 'pr-other', password: 'pr-other-password-77aa' };
const HUB = { username: 'pr-hub', password: 'pr-hub-password-3e9b' };

describe('private registries', () => {
  let rig: Rig;
  let operator: OperatorProcess;

  const settled = (ns: string, image: string): ReportLike | undefined => {
    const r = rig.reports(ns).find((x) => x.spec?.image === image);
    return r?.status?.phase === 'Scanned' || r?.status?.phase === 'Failed' ? r : undefined;
  };
  const runsOf = (image: string) => rig.stubEvents().filter((e) => e.event === 'start' && e.argv?.some((a) => a.endsWith(digestFor(image))));

  beforeAll(async () => {
    rig = await startRig();
    rig.setStubMap({
      default: CLEAN_FIXTURE,
      'registry.example.com/pr/app': { fixture: CLEAN_FIXTURE, requireAuth: ROBOT },
      'registry.example.com/pr/nosecret': { fixture: CLEAN_FIXTURE, requireAuth: ROBOT },
      'docker.io/acme/private': { fixture: CLEAN_FIXTURE, requireAuth: HUB },
      'registry.example.com/pr/slow': { fixture: CLEAN_FIXTURE, sleepMs: 1000 },
    });
    rig.api.seed.objects([
      // One secret for two registries: only the image's registry may reach Trivy.
      buildDockerConfigJsonSecret('team', 'multi', { 'registry.example.com': ROBOT, 'other.example.org': OTHER }),
      buildDockerConfigJsonSecret('team', 'hub', { 'https://index.docker.io/v1/': HUB }),
      buildServiceAccount('team', 'deployer', ['hub']),
    ]);
    operator = rig.start({ args: ['--scan-concurrency', '2'] });
    await operator.waitForLine((l) => l.msg === 'caches synced', 30_000);
  });

  afterAll(async () => {
    await rig?.close();
  });

  it('gives Trivy only the image registry’s entry, in a private folder removed after the scan', async () => {
    rig.api.seed.deployment({ namespace: 'team', name: 'app', containers: ['registry.example.com/pr/app:1'], imagePullSecrets: ['multi'] });
    const r = await eventually(() => settled('team', 'registry.example.com/pr/app:1'), 30_000, 'private app report');
    expect(r.status?.phase).toBe('Scanned');
    const [run] = runsOf('registry.example.com/pr/app:1') as ({ registries?: string[]; dockerConfigMode?: string; dockerConfigDirMode?: string; argv?: string[] } | undefined)[];
    expect(run?.registries).toEqual(['registry.example.com']);
    expect(run?.dockerConfigMode).toBe('600');
    expect(run?.dockerConfigDirMode).toBe('700');
    expect(JSON.stringify(run?.argv)).not.toContain(ROBOT.password);
    await eventually(() => (rig.leftoverTempEntries().length === 0 ? true : undefined), 5_000, 'TMPDIR empty after the scan');
  });

  it('uses the service account’s secret for Docker Hub (legacy index URL key)', async () => {
    rig.api.seed.deployment({ namespace: 'team', name: 'hub-app', containers: ['acme/private:2'], serviceAccountName: 'deployer' });
    const r = await eventually(() => settled('team', 'acme/private:2'), 30_000, 'Docker Hub private report');
    expect(r.status?.phase).toBe('Scanned');
  });

  it('a missing secret: Failed naming registry and secret, reason auth, and no retry storm', async () => {
    const image = 'registry.example.com/pr/nosecret:1';
    rig.api.seed.deployment({ namespace: 'team', name: 'broken', containers: [image], imagePullSecrets: ['does-not-exist'], replicas: 2 });
    const r = await eventually(() => settled('team', image), 30_000, 'report for the missing secret');
    expect(r.status?.phase).toBe('Failed');
    expect(r.status?.message).toContain('auth');
    expect(r.status?.message).toContain('registry.example.com');
    expect(r.status?.message).toContain('team/does-not-exist');
    // Pod churn on the failing image (relabels) must not re-run the scan each time.
    const pods = rig.api.objects.list('pods', 'team').filter((p) => p.metadata?.labels?.app === 'broken');
    for (let i = 0; i < 5; i++) {
      for (const pod of pods) rig.api.objects.upsert({ ...pod, metadata: { ...pod.metadata, labels: { ...pod.metadata?.labels, team: `t${i}` } } });
    }
    await eventually(() => (rig.reports('team').find((x) => x.spec?.image === image)?.status?.team === 't4' ? true : undefined), 15_000, 'report follows the relabel');
    // Meanwhile another scan runs to its end: time passes in scans, not in sleeps.
    rig.api.seed.pod({ namespace: 'team', name: 'slow', containers: ['registry.example.com/pr/slow:1'] });
    await eventually(() => settled('team', 'registry.example.com/pr/slow:1'), 30_000, 'slow report');
    expect(runsOf(image).length).toBeLessThanOrEqual(1);
    expect(rig.reports('team').find((x) => x.spec?.image === image)?.status?.phase).toBe('Failed');
  });

  it('never logged a credential', () => {
    const logs = rig.allLogText();
    for (const c of [ROBOT, OTHER, HUB]) {
      for (const needle of [c.password, Buffer.from(`${c.username}:${c.password}`).toString('base64')]) expect(logs.includes(needle)).toBe(false);
    }
  });
});
