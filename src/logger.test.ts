import { describe, expect, it } from 'vitest';
import { createLogger, redactSecrets } from './logger.js';

function logged(write: (log: ReturnType<typeof createLogger>) => void): string {
  const lines: string[] = [];
  write(createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(line) } }));
  return lines.join('');
}

describe('createLogger', () => {
  it('redacts the environment handed to Trivy and secret-valued cloud credentials, wherever they are logged', () => {
    const secrets = {
      AWS_SECRET_ACCESS_KEY: 'aws-secret-1d2f',
      AWS_SESSION_TOKEN: 'aws-session-9a7c',
      AWS_CONTAINER_AUTHORIZATION_TOKEN: 'pod-identity-token-3e4b',
      AZURE_CLIENT_SECRET: 'azure-secret-5c6d',
      AZURE_CLIENT_CERTIFICATE_PASSWORD: 'azure-cert-pass-7e8f',
    };
    const text = logged((log) => {
      log.info({ config: { trivyEnv: { AWS_REGION: 'eu-west-1', ...secrets } } }, 'nested config');
      log.info({ trivyEnv: secrets }, 'top-level');
      log.info({ opts: { extraEnv: secrets } }, 'runner options');
      log.info({ child: { ...secrets } }, 'a careless object');
    });
    for (const value of Object.values(secrets)) expect(text).not.toContain(value);
    // Three whole objects, then each secret of the careless one.
    expect(text.match(/\[redacted\]/g)?.length).toBe(3 + Object.keys(secrets).length);
  });

  it('redacts what the paths name at their depth, leaves the logged object as it was, and keeps other fields', () => {
    const logged = {
      image: 'nginx',
      target: { repository: 'docker.io/library/nginx', credentials: { auth: 'c2VjcmV0' } },
      request: { headers: { authorization: 'Bearer abc.def', accept: 'json' } },
      headers: { authorization: 'Basic dXNlcjpwdw==' },
      failed: [{ password: 'in-an-array-not-named-by-a-path' }],
      err: Object.assign(new Error('boom'), { token: 'on-an-error' }),
    };
    const out = redactSecrets(logged);
    expect(out).toEqual({
      image: 'nginx',
      target: { repository: 'docker.io/library/nginx', credentials: '[redacted]' },
      request: { headers: { authorization: '[redacted]', accept: 'json' } },
      headers: { authorization: '[redacted]' },
      failed: [{ password: 'in-an-array-not-named-by-a-path' }],
      err: '[redacted]',
    });
    expect(logged.target.credentials.auth).toBe('c2VjcmV0');
    expect(logged.err).toBeInstanceOf(Error);
    const clean = { namespace: 'shop', digest: 'sha256:1', nested: { phase: 'Scanned' }, credentials: undefined };
    expect(redactSecrets(clean)).toBe(clean);
  });

  it('redacts the explicit paths in a child logger\'s bindings too', () => {
    const text = logged((log) => log.child({ env: { TRIVY_PASSWORD: 'child-secret' }, component: 'x' }).info('from a child'));
    expect(text).not.toContain('child-secret');
    expect(text).toContain('"component":"x"');
  });
});
