import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

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
});
