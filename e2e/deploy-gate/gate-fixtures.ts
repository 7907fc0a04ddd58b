// What the deploy-gate e2e tests apply: the ValidatingWebhookConfiguration the `admission` component
// ships (read from manifests/, with the CA bundle cert-manager would inject, so the tests exercise the
// real scope), and the Deployments they try to create.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { repoRoot } from '../operator-process.js';

interface WebhookConfiguration {
  webhooks: { clientConfig: { caBundle?: string } }[];
}

/** The shipped configuration as JSON for `kubectl apply -f -`, trusting `caBundle` (base64 PEM). */
export function shippedWebhookConfiguration(caBundle: string): string {
  const file = path.join(repoRoot, 'manifests', 'components', 'admission', 'validatingwebhookconfiguration.yaml');
  const config = parse(readFileSync(file, 'utf8')) as WebhookConfiguration;
  for (const webhook of config.webhooks) webhook.clientConfig.caBundle = caBundle;
  return JSON.stringify(config);
}

/** A one-container Deployment as JSON for `kubectl apply -f -`. */
export function deployment(name: string, image: string, namespace = 'shop'): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: { selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image }] } } },
  });
}
