// The operator's root pino logger. Built once in main.ts; every part gets a child.
import { pino } from 'pino';
import type { Logger, LevelWithSilent, DestinationStream } from 'pino';

/**
 * Paths that may carry credentials or the Trivy child's environment. Redacted by path, compiled once,
 * so a careless `log.info({ target })` cannot leak a registry password.
 */
export const REDACTED_PATHS: readonly string[] = [
  '*.password',
  '*.auth',
  '*.token',
  '*.identitytoken',
  '*.registrytoken',
  '*.serverToken',
  '*.credentials',
  'credentials',
  'env',
  '*.env',
  '*.DOCKER_CONFIG',
  '*.TRIVY_PASSWORD',
  '*.TRIVY_TOKEN',
  // The settings handed to Trivy, and the secret-valued cloud credentials among them.
  'trivyEnv',
  '*.trivyEnv',
  'extraEnv',
  '*.extraEnv',
  '*.AWS_SECRET_ACCESS_KEY',
  '*.AWS_SESSION_TOKEN',
  '*.AWS_CONTAINER_AUTHORIZATION_TOKEN',
  '*.AZURE_CLIENT_SECRET',
  '*.AZURE_CLIENT_CERTIFICATE_PASSWORD',
  'headers.authorization',
  '*.headers.authorization',
];

export interface LoggerOptions {
  level: LevelWithSilent | string;
  /** Where lines go; stdout by default. Tests pass a stream to capture lines. */
  destination?: DestinationStream;
}

/** Creates the root logger: JSON lines, ISO time, string level, secrets redacted. */
export function createLogger(options: LoggerOptions): Logger {
  const settings = {
    level: options.level,
    base: { name: 'imagescan-operator' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}
