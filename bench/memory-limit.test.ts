import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyMemoryLimit, deploymentMemoryLimit, parseMemoryQuantity } from './memory-limit.js';

const deployment = (resources: string): string => `apiVersion: apps/v1
kind: Deployment
metadata: { name: x }
spec:
  template:
    spec:
      containers:
        - name: sidecar
          resources: { limits: { memory: 64Mi } }
        - name: operator
${resources}
`;

describe('the Deployment memory limit', () => {
  it('reads the named container limit in any Kubernetes unit', () => {
    expect(deploymentMemoryLimit(deployment('          resources: { limits: { memory: 2Gi } }'), 'operator')).toEqual({ quantity: '2Gi', bytes: 2 * 1024 ** 3 });
    expect(parseMemoryQuantity('512Mi')).toBe(512 * 1024 ** 2);
    expect(parseMemoryQuantity('1G')).toBe(1e9);
    expect(parseMemoryQuantity('1.5Gi')).toBe(1.5 * 1024 ** 3);
    expect(parseMemoryQuantity('1048576')).toBe(1048576);
    expect(() => parseMemoryQuantity('lots')).toThrow(/not a memory quantity/);
  });

  it('fails clearly when the operator container has no memory limit', () => {
    expect(() => deploymentMemoryLimit(deployment('          resources: { requests: { memory: 1Gi } }'), 'operator')).toThrow(/no memory limit for container operator/);
  });

  it('finds the limit of the shipped manifest', () => {
    const manifest = readFileSync(path.resolve(import.meta.dirname, '../manifests/base/deployment.yaml'), 'utf8');
    expect(deploymentMemoryLimit(manifest, 'operator').bytes).toBeGreaterThanOrEqual(256 * 1024 ** 2);
  });
});

describe('applying the limit to the operator process', () => {
  let root: string;
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('makes a cgroup v1 memory group with the limit', () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'cgroup-'));
    mkdirSync(path.join(root, 'memory'));
    writeFileSync(path.join(root, 'memory/memory.limit_in_bytes'), '9223372036854771712\n');
    const limit = applyMemoryLimit(2 * 1024 ** 3, 'bench-1', root);
    expect(limit).toMatchObject({ kind: 'cgroup', version: 1, procsPath: path.join(root, 'memory/bench-1/cgroup.procs') });
    expect(readFileSync(path.join(root, 'memory/bench-1/memory.limit_in_bytes'), 'utf8')).toBe(String(2 * 1024 ** 3));
  });

  it('prefers cgroup v2 when its memory controller is there', () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'cgroup-'));
    writeFileSync(path.join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    const limit = applyMemoryLimit(1024 ** 3, 'bench-2', root);
    expect(limit).toMatchObject({ kind: 'cgroup', version: 2, procsPath: path.join(root, 'bench-2/cgroup.procs') });
    expect(readFileSync(path.join(root, 'bench-2/memory.max'), 'utf8')).toBe(String(1024 ** 3));
  });

  it('without a memory cgroup, sizes the old generation as Node does under the limit (half of it)', () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'cgroup-'));
    expect(applyMemoryLimit(2 * 1024 ** 3, 'bench-3', root)).toEqual({ kind: 'heap-flag', flag: '--max-old-space-size=1024', why: 'no memory cgroup controller' });
  });

  it('removes the empty groups of earlier runs whose process is gone, and only those', () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'cgroup-'));
    mkdirSync(path.join(root, 'memory'));
    writeFileSync(path.join(root, 'memory/memory.limit_in_bytes'), '9223372036854771712\n');
    const dead = 2 ** 22 + 1; // above the largest pid Linux can give: no such process
    for (const dir of [`bench-${dead}`, `bench-${process.pid}`, 'other-7']) mkdirSync(path.join(root, 'memory', dir));
    applyMemoryLimit(1024 ** 3, 'bench-4', root);
    expect(readdirSync(path.join(root, 'memory')).sort()).toEqual(['bench-4', `bench-${process.pid}`, 'memory.limit_in_bytes', 'other-7'].sort());
  });
});
