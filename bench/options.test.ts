import { describe, expect, it } from 'vitest';
import { BenchOptionsError, parseBenchOptions } from './options.js';

describe('the admission flags', () => {
  it('default to 200 reviews per second for 30 s; 0 seconds skips the phase, a rate of 0 is refused', () => {
    expect(parseBenchOptions([])).toMatchObject({ admissionRate: 200, admissionSeconds: 30 });
    expect(parseBenchOptions(['--admission-rate', '50', '--admission-seconds', '0'])).toMatchObject({ admissionRate: 50, admissionSeconds: 0 });
    expect(() => parseBenchOptions(['--admission-rate', '0'])).toThrow(BenchOptionsError);
    expect(() => parseBenchOptions(['--admission-seconds', '1.5'])).toThrow(/--admission-seconds must be an integer >= 0/);
  });
});
