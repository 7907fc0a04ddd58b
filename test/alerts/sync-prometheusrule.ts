// Regenerates manifests/components/monitoring/prometheusrule.yaml from monitoring/alerts.rules.yaml.
//   npx tsx test/alerts/sync-prometheusrule.ts
import { writeFileSync } from 'node:fs';
import { PROMETHEUS_RULE_FILE, prometheusRuleManifest, readRuleGroups } from './alert-rules.js';

writeFileSync(PROMETHEUS_RULE_FILE, prometheusRuleManifest(readRuleGroups()));
console.log(`wrote ${PROMETHEUS_RULE_FILE}`);
