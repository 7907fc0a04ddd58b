// The alert rules as files: the plain Prometheus rules file is the source; the PrometheusRule in
// manifests/ is generated from it; the incident test gets a copy with short `for:` durations.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { repoRoot } from './fake-reports.js';

export const RULES_FILE = path.join(repoRoot, 'monitoring/alerts.rules.yaml');
export const RULES_TEST_FILE = path.join(repoRoot, 'monitoring/alerts.test.yaml');
export const PROMETHEUS_RULE_FILE = path.join(repoRoot, 'manifests/components/monitoring/prometheusrule.yaml');

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  interval?: string;
  rules: AlertRule[];
}

/** The rule groups of a Prometheus rules file (default: monitoring/alerts.rules.yaml). */
export function readRuleGroups(file = RULES_FILE): RuleGroup[] {
  const doc = parse(readFileSync(file, 'utf8')) as { groups?: RuleGroup[] };
  if (!Array.isArray(doc.groups)) throw new Error(`${file}: no groups`);
  return doc.groups;
}

/** The rule groups inside the PrometheusRule manifest. */
export function readPrometheusRuleGroups(file = PROMETHEUS_RULE_FILE): RuleGroup[] {
  const doc = parse(readFileSync(file, 'utf8')) as { spec?: { groups?: RuleGroup[] } };
  if (!Array.isArray(doc.spec?.groups)) throw new Error(`${file}: no spec.groups`);
  return doc.spec.groups;
}

/** The PrometheusRule manifest text for the given groups (what sync-prometheusrule.ts writes). */
export function prometheusRuleManifest(groups: RuleGroup[]): string {
  const manifest = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'imagescan-operator',
      namespace: 'imagescan-system',
      labels: {
        'app.kubernetes.io/name': 'imagescan-operator',
        'app.kubernetes.io/component': 'monitoring',
        'app.kubernetes.io/part-of': 'imagescan-operator',
      },
    },
    spec: { groups },
  };
  const header = [
    '# GENERATED from monitoring/alerts.rules.yaml by `npx tsx test/alerts/sync-prometheusrule.ts`.',
    '# Edit the rules file (and its promtool tests in monitoring/alerts.test.yaml), then regenerate.',
    '',
  ].join('\n');
  return header + stringify(manifest, { lineWidth: 0 });
}

/**
 * The rules file's text with every alert's `for:` (and `keep_firing_for:`) set to `forDuration`
 * (e.g. '1s'), for the incident test that runs real Prometheus with a 1 s evaluation interval.
 * Expressions are unchanged.
 */
export function rulesWithShortFor(forDuration: string, file = RULES_FILE): string {
  if (!/^\d+(ms|s|m|h)$/.test(forDuration)) throw new Error(`not a Prometheus duration: ${forDuration}`);
  const groups = readRuleGroups(file).map((group) => ({
    ...group,
    rules: group.rules.map((rule) => ({
      ...rule,
      ...(rule.for === undefined ? {} : { for: forDuration }),
      ...(rule.keep_firing_for === undefined ? {} : { keep_firing_for: forDuration }),
    })),
  }));
  return stringify({ groups }, { lineWidth: 0 });
}
