// Starts a real Alertmanager (Debian's `prometheus-alertmanager`, or upstream `alertmanager`) on a
// loopback port, with the example routing of monitoring/alertmanager.example.yml pointed at a
// test webhook and its waits cut to a second.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { repoRoot } from './fake-reports.js';
import { PROMETHEUS_INSTALL_HINT, freePort, startReadyServer } from './prometheus.js';

export const AMTOOL_INSTALL_HINT =
  'amtool is not installed: run `apt-get install prometheus-alertmanager` (Debian/Ubuntu; npm test does it where it can)';

export const ALERTMANAGER_EXAMPLE_FILE = path.join(repoRoot, 'monitoring/alertmanager.example.yml');

interface Route {
  receiver?: string;
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
}

interface Receiver {
  name: string;
  webhook_configs?: { url: string; send_resolved?: boolean }[];
}

/**
 * The example config with every receiver's webhook sent to `${webhookBase}/<receiver name>` and the
 * route's waits cut to 1 s, so a test sees a notification (and its resolution) within seconds.
 */
export function alertmanagerConfigForTest(webhookBase: string, file = ALERTMANAGER_EXAMPLE_FILE): string {
  const config = parse(readFileSync(file, 'utf8')) as { route: Route; receivers: Receiver[] };
  config.route.group_wait = '1s';
  config.route.group_interval = '1s';
  config.route.repeat_interval = '1h';
  config.receivers = config.receivers.map((receiver) => ({
    name: receiver.name,
    webhook_configs: [{ url: `${webhookBase}/${receiver.name}`, send_resolved: true }],
  }));
  return stringify(config);
}

export interface RunningAlertmanager {
  url: string;
  stop(): Promise<void>;
}

/** Debian names the binary prometheus-alertmanager; upstream releases call it alertmanager. */
async function alertmanagerBinary(): Promise<string> {
  for (const name of ['prometheus-alertmanager', 'alertmanager']) {
    const result = await execa(name, ['--version'], { reject: false });
    if (result.exitCode === 0) return name;
  }
  throw new Error(PROMETHEUS_INSTALL_HINT);
}

/** Starts Alertmanager with the given config text; resolves when ready. Clustering is off. */
export async function startAlertmanager(configText: string): Promise<RunningAlertmanager> {
  const binary = await alertmanagerBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'imagescan-alertmanager-'));
  writeFileSync(path.join(dir, 'alertmanager.yml'), configText);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const stop = await startReadyServer(
    binary,
    [
      `--config.file=${path.join(dir, 'alertmanager.yml')}`,
      `--storage.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // No gossip port: tests run side by side and need only loopback.
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    dir,
    `${url}/-/ready`,
  );
  return { url, stop };
}
