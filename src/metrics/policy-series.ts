// imagescan_policy_violations{policy, namespace, report, image, team, rule}: 1 per violation that a
// running image's report holds in status.policy, written from the report cache at each scrape (like
// the other per-image series), so the series follow what `kubectl get isr` shows and vanish with it. Pure.
import { UNASSIGNED_TEAM } from '../reports/image-scan-report.js';
import type { ImageScanReport } from '../reports/image-scan-report.js';

export const POLICY_VIOLATIONS = 'imagescan_policy_violations';

const HEADER =
  `# HELP ${POLICY_VIOLATIONS} 1 for each rule of an ImageScanPolicy that a running image breaks (status.policy of its ImageScanReport).\n` +
  `# TYPE ${POLICY_VIOLATIONS} gauge\n`;

const NEEDS_ESCAPE = /[\\"\n]/;
const ESCAPED = /[\\"\n]/g;

function labelValue(value: string): string {
  return NEEDS_ESCAPE.test(value) ? value.replace(ESCAPED, (c) => (c === '\n' ? '\\n' : `\\${c}`)) : value;
}

/** A report whose status.workloads is an empty list waits for collection: its image no longer runs. */
function isRunning(report: ImageScanReport): boolean {
  const workloads = report.status?.workloads;
  return !(Array.isArray(workloads) && workloads.length === 0);
}

/**
 * The family as text chunks of about `chunkBytes` (whole lines). A (policy, rule) pair is written once
 * per report even if a hand-edited status repeats it: a duplicate series fails the whole scrape.
 */
export function* policyViolationChunks(reports: readonly ImageScanReport[], chunkBytes = 64 * 1024): Generator<string> {
  let chunk = HEADER;
  for (const report of reports) {
    const violations = report.status?.policy?.violations;
    if (!Array.isArray(violations) || violations.length === 0 || !isRunning(report)) continue;
    const namespace = report.metadata?.namespace;
    const name = report.metadata?.name;
    if (namespace === undefined || name === undefined || typeof report.spec?.image !== 'string') continue;
    const team = report.status?.team === undefined || report.status.team === '' ? UNASSIGNED_TEAM : report.status.team;
    const common = `namespace="${labelValue(namespace)}",report="${labelValue(name)}",image="${labelValue(report.spec.image)}",team="${labelValue(team)}"`;
    const written = new Set<string>();
    for (const v of violations) {
      const pair = `${String(v.policy)}\n${String(v.rule)}`;
      if (written.has(pair)) continue;
      written.add(pair);
      chunk += `${POLICY_VIOLATIONS}{policy="${labelValue(String(v.policy))}",${common},rule="${labelValue(String(v.rule))}"} 1\n`;
    }
    if (chunk.length >= chunkBytes) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk !== '') yield chunk;
}
