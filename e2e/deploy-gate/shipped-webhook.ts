// The ValidatingWebhookConfiguration the `admission` component ships, as the e2e tests install it: read
// from manifests/, with the CA bundle cert-manager would inject, so the tests exercise the real scope.
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
