// Runs e2e/kind/run.sh (kind cluster + the operator image + real Trivy) as part of `npm test`.
// Where Docker or kind is missing the suite is reported as skipped, with run.sh's one-line reason;
// where both exist it really runs (tens of minutes: it builds the image and downloads the Trivy DB).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect, test } from 'vitest';

const script = path.join(import.meta.dirname, 'run.sh');

// run.sh decides (one place for the rule): exit 0 = can run, 3 = skip with the line on stdout,
// anything else = a hard failure (e.g. CI_REQUIRE_KIND=1 without Docker), which must not be skipped.
const preflight = spawnSync('bash', [script, '--preflight'], { encoding: 'utf8', timeout: 60_000 });
const skipLine = preflight.status === 3 ? preflight.stdout.trim() : undefined;
if (skipLine !== undefined) console.log(skipLine);

const name = skipLine !== undefined ? `kind e2e (${skipLine.replace(/^kind e2e: /, '')})` : 'kind e2e: real cluster, real Trivy';

test.skipIf(skipLine !== undefined)(
  name,
  () => {
    const run = spawnSync('bash', [script], { stdio: 'inherit', timeout: 55 * 60_000 });
    expect(run.error, 'run.sh could not be started or timed out').toBeUndefined();
    expect(run.status, 'e2e/kind/run.sh exit code').toBe(0);
  },
  60 * 60_000,
);
