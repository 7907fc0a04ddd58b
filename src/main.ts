// Entry point: read the config, build the operator, start it, stop it cleanly on SIGTERM/SIGINT.
import { configFromProcess } from './config.js';
import { startIdleMemoryRelease } from './idle-memory-release.js';
import { clearSharedValues } from './kube/cluster-objects.js';
import { createLogger } from './logger.js';
import { buildOperator } from './operator.js';

const config = configFromProcess();
const logger = createLogger({ level: config.logLevel });

process.on('unhandledRejection', (reason) => {
  // A bug, but one that must not take the operator down silently.
  logger.error({ err: reason }, 'unhandled promise rejection');
});

let operator;
try {
  operator = buildOperator(config, { logger });
} catch (err) {
  logger.fatal({ err }, 'operator could not be built');
  process.exit(1);
}
const running = operator;

const idleRelease = startIdleMemoryRelease({ gc: globalThis.gc, logger: logger.child({ component: 'memory' }), beforeRelease: clearSharedValues });

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down');
  idleRelease.stop();
  // Kubernetes sends SIGKILL after the grace period; do not outlive a hung stop by much.
  const deadline = setTimeout(() => {
    logger.error('shutdown took too long, exiting');
    process.exit(1);
  }, 25_000);
  deadline.unref();
  try {
    await running.stop();
    process.exit(0);
  } catch (err) {
    logger.error({ err }, 'shutdown failed');
    process.exit(1);
  }
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

try {
  await running.start();
} catch (err) {
  logger.fatal({ err }, 'operator could not start');
  await running.stop().catch(() => undefined);
  process.exit(1);
}
