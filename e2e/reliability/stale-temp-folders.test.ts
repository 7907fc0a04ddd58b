// User story: after the operator was OOM-killed mid-scan, the registry password it had written for
// Trivy must not stay on the pod's disk (an emptyDir /tmp survives container restarts). The next
// process removes folders of dead operator processes before its first scan (also when a later process
// took the dead one's pid), and leaves alone those of a live one (two replicas may share a TMPDIR
// outside a cluster) and anything that is not its own.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SEVERITIES } from '../../src/scanner/scan-result.js';
import { TrivyRunner } from '../../src/scanner/trivy-runner.js';
import { trivyStubPath } from '../operator-process.js';
import { isAlive } from './harness.js';

describe('temporary scan folders of a killed operator', () => {
  let work: string;
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  it('are removed before the next scan; a live process’s and foreign folders stay', async () => {
    work = mkdtempSync(path.join(tmpdir(), 'imagescan-stale-'));
    const tmp = path.join(work, 'tmp');
    mkdirSync(tmp);
    // A pid that surely ran and is gone now.
    const dead = spawnSync(process.execPath, ['-e', ''], { stdio: 'ignore' }).pid ?? 0;
    expect(dead).toBeGreaterThan(0);
    expect(isAlive(dead)).toBe(false);
    const live = process.ppid;
    const credentialFolder = path.join(tmp, `imagescan-${dead}-Ab12Cd`, 'docker');
    mkdirSync(credentialFolder, { recursive: true });
    writeFileSync(path.join(credentialFolder, 'config.json'), '{"auths":{"registry.example.com":{"auth":"c2VjcmV0"}}}');
    mkdirSync(path.join(tmp, `imagescan-${process.pid}-Zz9Yy8`)); // a former process with our pid (PID 1 after a restart)
    mkdirSync(path.join(tmp, `imagescan-${live}-Qq1Ww2`));
    // Folders named with a start tick: the live process's own, and one of an earlier process whose pid
    // it took over (pids wrap).
    const liveStat = readFileSync(`/proc/${live}/stat`, 'utf8');
    const liveTick = liveStat.slice(liveStat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
    expect(liveTick).toMatch(/^\d+$/);
    mkdirSync(path.join(tmp, `imagescan-${live}-${liveTick}-Ee5Rr6`));
    mkdirSync(path.join(tmp, `imagescan-${live}-${Number(liveTick) - 1}-Pp0Oo9`));
    mkdirSync(path.join(tmp, 'imagescan-Rr3Tt4')); // not named by pid: cannot tell whose, kept
    mkdirSync(path.join(tmp, 'someone-else'));

    const logged: string[] = [];
    const runner = new TrivyRunner({
      trivyPath: trivyStubPath,
      cacheDir: path.join(work, 'cache'),
      tmpDir: tmp,
      severities: [...SEVERITIES],
      ignoreUnfixed: false,
      timeoutMs: 20_000,
      logger: pino({ level: 'info' }, { write: (line: string) => void logged.push(line) }),
      pathEnv: process.env.PATH ?? '',
    });
    await runner.version();

    expect(existsSync(credentialFolder)).toBe(false);
    expect(readdirSync(tmp).sort()).toEqual([`imagescan-${live}-Qq1Ww2`, `imagescan-${live}-${liveTick}-Ee5Rr6`, 'imagescan-Rr3Tt4', 'someone-else'].sort());
    expect(logged.join('')).toContain('"removed":3');
    expect(logged.join('')).not.toContain('c2VjcmV0');
  });
});
