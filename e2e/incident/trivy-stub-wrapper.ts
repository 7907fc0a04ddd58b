// The operator gives Trivy a small explicit environment (no TRIVY_STUB_* from its own), so a test
// that wants its own stub mapping and invocation log passes them through a wrapper script used as
// --trivy-path.
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { trivyStubPath } from '../operator-process.js';

/** Single-quotes a value for /bin/sh. */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * Writes `<dir>/trivy`, an executable that exports `env` (TRIVY_STUB_* settings) and execs the stub
 * Trivy with its arguments, so the process the operator starts (and signals) is the stub itself.
 * Returns the wrapper's path.
 */
export function writeTrivyStubWrapper(dir: string, env: Record<string, string>): string {
  for (const name of Object.keys(env)) {
    if (!/^TRIVY_STUB_[A-Z_]+$/.test(name)) throw new Error(`not a stub setting: ${name}`);
  }
  const exports = Object.entries(env).map(([name, value]) => `export ${name}=${shellQuote(value)}`);
  const file = path.join(dir, 'trivy');
  writeFileSync(file, ['#!/bin/sh', ...exports, `exec ${shellQuote(trivyStubPath)} "$@"`, ''].join('\n'));
  chmodSync(file, 0o755);
  return file;
}
