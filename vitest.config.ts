import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'e2e/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // e2e suites start real processes and ports; two cores on CI.
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
