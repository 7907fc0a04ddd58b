// Standalone fake API server for demos and benchmarks:
//   npx tsx e2e/fake-apiserver/main.ts [--port N] [--seed file.json|yaml] [--kubeconfig-out path]
//     [--identity name] [--auto-run-pods] [--request-log file.jsonl] [--crds dir]...
// Prints the URL and the kubeconfig path, runs until SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseSeedText, startFakeApiServer } from './server.js';
import type { FakeApiServerOptions } from './server.js';

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: 'string', default: '0' },
        seed: { type: 'string' },
        'kubeconfig-out': { type: 'string' },
        identity: { type: 'string', default: 'admin' },
        'auto-run-pods': { type: 'boolean', default: false },
        'request-log': { type: 'string' },
        crds: { type: 'string', multiple: true },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`fake-apiserver: ${(err as Error).message}`);
    return 2;
  }
  if (values.help) {
    console.log('usage: main.ts [--port N] [--seed file.json|yaml] [--kubeconfig-out path] [--identity name] [--auto-run-pods] [--request-log file.jsonl] [--crds dir]...');
    return 0;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`fake-apiserver: --port must be 0..65535, got ${values.port}`);
    return 2;
  }
  const opts: FakeApiServerOptions = { port, defaultIdentity: values.identity, autoRunPods: values['auto-run-pods'] };
  if (values['request-log']) opts.requestLogFile = values['request-log'];
  if (values.crds) opts.crdDirs = values.crds;
  if (values.seed) {
    try {
      opts.seed = parseSeedText(readFileSync(values.seed, 'utf8'));
    } catch (err) {
      console.error(`fake-apiserver: cannot read --seed ${values.seed}: ${(err as Error).message}`);
      return 2;
    }
  }
  const server = await startFakeApiServer(opts);
  const kubeconfig = values['kubeconfig-out'] ? server.kubeconfigFor(values.identity, { path: values['kubeconfig-out'] }) : server.kubeconfigPath;
  console.log(`fake-apiserver listening on ${server.url}`);
  console.log(`kubeconfig: ${kubeconfig}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await server.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`fake-apiserver: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
