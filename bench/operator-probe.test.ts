import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { imageEnvironment, imageNodeFlags } from './operator-probe.js';

const dockerfile = readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../Dockerfile'), 'utf8');

describe('the operator as the image runs it', () => {
  test("takes the image's runtime variables and leaves out its container paths", () => {
    const env = imageEnvironment(dockerfile);
    expect(env.NODE_ENV).toBe('production');
    expect(env.MALLOC_MMAP_THRESHOLD_).toMatch(/^\d+$/);
    for (const key of ['PATH', 'HOME', 'TMPDIR', 'XDG_CACHE_HOME']) expect(env).not.toHaveProperty(key);
  });

  test('reads ENV instructions continued over lines, and refuses a form it cannot read', () => {
    expect(imageEnvironment('FROM x\nENV A=1 \\\n    B=two \\\n    HOME=/tmp\nRUN true\nENV C=3\n')).toEqual({ A: '1', B: 'two', C: '3' });
    expect(() => imageEnvironment('ENV A 1\n')).toThrow(/only KEY=value/);
  });

  test('takes the Node flags between the node binary and the script of the ENTRYPOINT', () => {
    expect(imageNodeFlags('ENTRYPOINT ["/nodejs/bin/node", "--a=1", "--b", "/app/dist/main.mjs"]\n')).toEqual(['--a=1', '--b']);
    expect(imageNodeFlags(dockerfile).every((flag) => flag.startsWith('--'))).toBe(true);
    expect(() => imageNodeFlags('CMD ["node"]\n')).toThrow(/no exec-form ENTRYPOINT/);
  });
});
