import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { histogramQuantile, imageEnvironment, imageNodeFlags, parsePrometheusText } from './operator-probe.js';

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

describe('histogramQuantile', () => {
  const scrape = (counts: [string, number][]): Map<string, number> =>
    parsePrometheusText(counts.map(([le, n]) => `d_seconds_bucket{kind="Pod",le="${le}"} ${n}`).join('\n'));
  test('interpolates within the bucket that holds the quantile, as PromQL does', () => {
    const m = scrape([['0.001', 90], ['0.005', 99], ['0.01', 100], ['+Inf', 100]]);
    expect(histogramQuantile(m, 'd_seconds', 0.5)).toBeCloseTo(0.001 * (50 / 90));
    expect(histogramQuantile(m, 'd_seconds', 0.99)).toBeCloseTo(0.005);
    expect(histogramQuantile(m, 'd_seconds', 0.995)).toBeCloseTo(0.0075);
  });
  test('answers the highest finite bound past it, and nothing without observations', () => {
    expect(histogramQuantile(scrape([['0.001', 1], ['+Inf', 100]]), 'd_seconds', 0.99)).toBe(0.001);
    expect(histogramQuantile(scrape([['0.001', 0], ['+Inf', 0]]), 'd_seconds', 0.99)).toBeUndefined();
    expect(histogramQuantile(new Map(), 'd_seconds', 0.99)).toBeUndefined();
  });
  test('sums the series of other labels', () => {
    const two = parsePrometheusText('d_seconds_bucket{kind="Pod",le="0.001"} 50\nd_seconds_bucket{kind="Pod",le="+Inf"} 50\nd_seconds_bucket{kind="Deployment",le="0.001"} 0\nd_seconds_bucket{kind="Deployment",le="+Inf"} 50');
    expect(histogramQuantile(two, 'd_seconds', 0.5)).toBeCloseTo(0.001);
    expect(histogramQuantile(two, 'd_seconds', 0.99)).toBe(0.001);
  });
});
