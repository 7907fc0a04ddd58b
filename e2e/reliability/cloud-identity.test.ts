// User story: on EKS, GKE and AKS the platform team gives the operator's ServiceAccount a cloud
// identity (IRSA, EKS Pod Identity, GKE or Azure Workload Identity) and expects ECR/GCR/ACR images to
// be scanned with it. The identity arrives as variables the cloud's webhook injects into the operator's
// container; Trivy must get exactly those, and still nothing else of the operator's environment.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestFor } from '../fake-apiserver/index.js';
import { eventually, startRig } from './harness.js';
import type { Rig } from './harness.js';

// What the webhooks inject (values shaped like theirs; nothing here is contacted).
const CLOUD_IDENTITY = {
  AWS_ROLE_ARN: 'arn:aws:iam::111122223333:role/imagescan-ecr-read',
  AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token',
  AWS_STS_REGIONAL_ENDPOINTS: 'regional',
  AWS_REGION: 'eu-west-1',
  AWS_DEFAULT_REGION: 'eu-west-1',
  AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.23/v1/credentials',
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token',
  AZURE_CLIENT_ID: '00000000-0000-0000-0000-00000000000a',
  AZURE_TENANT_ID: '00000000-0000-0000-0000-00000000000b',
  AZURE_FEDERATED_TOKEN_FILE: '/var/run/secrets/azure/tokens/azure-identity-token',
  AZURE_AUTHORITY_HOST: 'https://login.microsoftonline.com/',
  GOOGLE_APPLICATION_CREDENTIALS: '/var/run/secrets/gcp/external-account.json',
  // Static keys from a Secret, the fallback when no workload identity is set up.
  AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEKEYID0001',
  AWS_SECRET_ACCESS_KEY: 'static-secret-value-5b1e',
};
// Set on the operator too, and none of it is Trivy's business.
const NOT_FOR_TRIVY = {
  UNRELATED_OPERATOR_SETTING: 'x',
  IMAGESCAN_TRIVY_SERVER_TOKEN: 'token-for-a-server-this-run-does-not-use',
  AWS_PAGER: '',
  AWS_CLI_AUTO_PROMPT: 'off',
  GOOGLE_CLOUD_PROJECT: 'acme-prod',
  AZURE_USERNAME: 'someone@example.com',
  NODE_OPTIONS: '--max-old-space-size=512',
};

/** Variables /bin/sh adds by itself (the rig's wrapper is a shell script that execs the stub). */
function shellAddedNames(): string[] {
  const out = execFileSync('/bin/sh', ['-c', 'exec env'], { env: {}, encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes('=')).map((l) => l.slice(0, l.indexOf('=')));
}

describe('cloud workload identity reaches Trivy', () => {
  let rig: Rig;

  beforeAll(async () => {
    rig = await startRig();
    const operator = rig.start({ env: { ...CLOUD_IDENTITY, ...NOT_FOR_TRIVY } });
    await operator.waitForLine((l) => l.msg === 'caches synced', 30_000);
  });

  afterAll(async () => {
    await rig?.close();
  });

  it('passes the listed cloud variables to the scan, and nothing else new', async () => {
    const image = '111122223333.dkr.ecr.eu-west-1.amazonaws.com/shop/web:1';
    rig.api.seed.deployment({ namespace: 'shop', name: 'web', containers: [image] });
    await eventually(() => (rig.reports('shop').find((r) => r.spec?.image === image)?.status?.phase === 'Scanned' ? true : undefined), 30_000, 'the ECR image scanned');

    const scans = rig.stubEvents().filter((e) => e.event === 'start' && e.argv?.at(-1)?.endsWith(digestFor(image)));
    expect(scans).toHaveLength(1);
    const base = ['HOME', 'PATH', 'TMPDIR', ...shellAddedNames()];
    expect(new Set(scans[0]?.envNames)).toEqual(new Set([...base, ...Object.keys(CLOUD_IDENTITY)]));
    // The DB downloads run with the same environment (a DB mirror in ECR needs it too).
    const downloads = rig.stubEvents().filter((e) => e.event === 'start' && e.argv?.includes('--download-db-only'));
    expect(downloads.length).toBeGreaterThan(0);
    for (const d of downloads) expect(d.envNames).toEqual(expect.arrayContaining(Object.keys(CLOUD_IDENTITY)));
    // Never in argv, nor in the operator's log.
    for (const scan of scans) expect(JSON.stringify(scan.argv)).not.toContain(CLOUD_IDENTITY.AWS_SECRET_ACCESS_KEY);
    expect(rig.allLogText()).not.toContain(CLOUD_IDENTITY.AWS_SECRET_ACCESS_KEY);
  });
});
