// User story: the operator pod is OOM-killed or evicted (kill -9) again and again while it is still
// working through a fresh cluster. When it finally stays up, the reports are exactly right — one per
// (namespace, digest) that runs, none lost, none duplicated, all Scanned — no Trivy child is left
// running and no temporary credential folder is left on disk.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDockerCfgSecret, buildDockerConfigJsonSecret, buildServiceAccount, digestFor, seededRandom } from '../fake-apiserver/index.js';
import { CLEAN_FIXTURE, delay, eventually, msg, rawVulnerabilityCount, startRig } from './harness.js';
import type { OperatorProcess, Rig, StubEntry } from './harness.js';

const NAMESPACES = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
const PUBLIC_IMAGES = 45;
const PRIVATE_IMAGES = 5;
const KILLS = 20;
const CREDENTIALS = { username: 'crash-robot', password: 'crash-pw-7f3a9c' };

function publicImage(i: number): string {
  return `ghcr.io/crash/svc-${String(i).padStart(2, '0')}:1.0`;
}
function privateImage(i: number): string {
  return `registry.example.com/crash/private-${i}:1.0`;
}

describe('kill -9 during a cold start of 500 pods', () => {
  let rig: Rig;
  const random = seededRandom(Number(process.env.CRASH_SEED ?? 7));
  /** namespace/digest of every report that must exist. */
  const expected = new Set<string>();
  const privateDigests = new Set<string>();
  const images = new Map<string, string>();

  beforeAll(async () => {
    rig = await startRig();
    const map: Record<string, StubEntry> = {};
    for (let i = 0; i < PUBLIC_IMAGES; i++) {
      const image = publicImage(i);
      map[digestFor(image)] = { fixture: CLEAN_FIXTURE, sleepMs: 100 + Math.floor(random() * 200) };
    }
    for (let i = 0; i < PRIVATE_IMAGES; i++) {
      const image = privateImage(i);
      privateDigests.add(digestFor(image));
      // Slower, so kills land while their credential folder exists.
      map[digestFor(image)] = { fixture: CLEAN_FIXTURE, sleepMs: 300 + Math.floor(random() * 300), requireAuth: CREDENTIALS };
    }
    rig.setStubMap(map);

    // Pull secrets in every namespace: the legacy format in half of them, and a service account
    // that carries the secret for the workloads that name no secret themselves.
    NAMESPACES.forEach((ns, n) => {
      const auths = { 'registry.example.com': CREDENTIALS };
      rig.api.seed.objects([
        n % 2 === 0 ? buildDockerConfigJsonSecret(ns, 'regcred', auths) : buildDockerCfgSecret(ns, 'regcred', auths),
        buildServiceAccount(ns, 'puller', ['regcred']),
      ]);
    });

    // 45 public Deployments of 10 pods, two images each; 5 private ones (one per namespace).
    let pods = 0;
    for (let d = 0; d < PUBLIC_IMAGES + PRIVATE_IMAGES; d++) {
      const ns = NAMESPACES[d % NAMESPACES.length] ?? 'alpha';
      const isPrivate = d >= PUBLIC_IMAGES;
      const containers = isPrivate ? [privateImage(d - PUBLIC_IMAGES)] : [publicImage(d), publicImage((d * 7 + 3) % PUBLIC_IMAGES)];
      const secretFrom = d % 2 === 0 ? { imagePullSecrets: ['regcred'] } : { serviceAccountName: 'puller' };
      const seeded = rig.api.seed.deployment({ namespace: ns, name: `app-${d}`, containers, replicas: 10, ...(isPrivate ? secretFrom : {}) });
      pods += seeded.pods.length;
      for (const image of containers) {
        expected.add(`${ns}/${digestFor(image)}`);
        images.set(digestFor(image), image);
      }
    }
    expect(pods).toBe(500);
  });

  afterAll(async () => {
    await rig?.close();
  });

  function reportKeys(): string[] {
    return rig.reports().map((r) => `${r.metadata?.namespace ?? ''}/${r.spec?.digest ?? ''}`);
  }

  function converged(): boolean {
    const all = rig.reports();
    const keys = reportKeys();
    return keys.length === expected.size && new Set(keys).size === keys.length && keys.every((k) => expected.has(k)) && all.every((r) => r.status?.phase === 'Scanned');
  }

  /**
   * Kills the operator at a random moment: during start-up, shortly after the n-th scan began, or
   * while a private image's scan (and so its credential folder) is under way.
   */
  async function killAtRandomMoment(operator: OperatorProcess): Promise<string> {
    const roll = random();
    if (roll < 0.2) {
      await Promise.race([delay(Math.floor(random() * 1500)), operator.exited]);
      await operator.kill9();
      return 'start-up';
    }
    const withCredentials = roll > 0.65;
    const nth = withCredentials ? 1 : 1 + Math.floor(random() * 3);
    let started = 0;
    // The debug line the runner logs once the scan's folder (and DOCKER_CONFIG) is written.
    await operator
      .waitForLine((l) => l.msg === 'trivy scan starting' && (!withCredentials || typeof l.credentials === 'string') && ++started >= nth, 6_000)
      .then(() => delay(Math.floor(random() * 250)))
      .catch(() => undefined); // nothing of that kind left to scan: kill now
    await operator.kill9();
    return withCredentials ? 'during a private scan' : `after scan ${nth}`;
  }

  it('ends with exactly the right reports, no Trivy child alive and no credential folder on disk', async () => {
    const moments: string[] = [];
    let killsBeforeConvergence = 0;
    let credentialFoldersSeen = 0;
    for (let i = 0; i < KILLS; i++) {
      const t0 = Date.now();
      const operator = rig.start({ args: ['--scan-concurrency', '4', '--log-level', 'debug'] });
      moments.push(`${await killAtRandomMoment(operator)} @${Date.now() - t0}ms`);
      if (!converged()) killsBeforeConvergence++;
      credentialFoldersSeen += rig.leftoverTempEntries().filter((d) => existsSync(path.join(rig.tmp, d, 'docker', 'config.json'))).length;
    }
    // The kills really hit a cold start: most of them left work undone, some left credentials behind.
    expect(killsBeforeConvergence).toBeGreaterThanOrEqual(15);
    expect(credentialFoldersSeen).toBeGreaterThan(0);

    const tFinal = Date.now();
    const final = rig.start({ args: ['--scan-concurrency', '4'] });
    // Up before it is judged (and stopped): the killed ones may have converged already, and a SIGTERM
    // before main.ts has its handler kills the process by signal instead of a clean exit 0.
    await final.waitForLine((l) => l.msg === 'controller started', 30_000);
    await eventually(() => (converged() ? true : undefined), 90_000, `exactly ${expected.size} Scanned reports (have ${rig.reports().length})`);
    moments.push(`final converged in ${Date.now() - tFinal}ms`);
    // For the record when a run fails or is tuned: how the kills fell.
    console.info(`kill moments: ${moments.join('; ')}; credential folders seen after kills: ${credentialFoldersSeen}; ${expected.size} reports`);
    const total = rawVulnerabilityCount(CLEAN_FIXTURE);
    for (const report of rig.reports()) {
      expect(report.status?.summary?.total).toBe(total);
      expect(report.spec?.image).toBe(images.get(report.spec?.digest ?? ''));
    }

    // Private images were scanned with only their registry's credentials.
    const privateRuns = rig.stubEvents().filter((e) => e.event === 'start' && privateDigests.has(e.argv?.find((a) => a.includes('@sha256:'))?.split('@')[1] ?? ''));
    expect(privateRuns.length).toBeGreaterThanOrEqual(PRIVATE_IMAGES);
    for (const run of privateRuns) expect(run.registries).toEqual(['registry.example.com']);

    // Children of killed operators finish on their own; none may outlive the final convergence.
    await eventually(() => (rig.liveStubPids().length === 0 ? true : undefined), 10_000, 'no stub Trivy process alive');
    // The final operator removes what killed ones left: no scan or credential folder in its TMPDIR.
    await eventually(() => (rig.leftoverTempEntries().length === 0 ? true : undefined), 10_000, `an empty TMPDIR (left: ${rig.leftoverTempEntries().join(', ')})`);
    expect(await final.stop()).toBe(0);
    expect(rig.leftoverTempEntries()).toEqual([]);
    expect(rig.liveStubPids()).toEqual([]);
    expect(rig.allLogText()).not.toContain(CREDENTIALS.password);
    expect(rig.allLogText()).not.toContain(Buffer.from(`${CREDENTIALS.username}:${CREDENTIALS.password}`).toString('base64'));
    await final.waitForLine(msg('operator stopped'), 1000);
  }, 180_000);
});
