// Which team owns a workload: the value reports and per-image metrics carry, so alerts route by team.
import { UNASSIGNED_TEAM } from '../reports/image-scan-report.js';

/** A Kubernetes label value: at most 63 characters, alphanumerics at both ends, `-_.` inside. */
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;

/**
 * The team of a pod: its label `teamLabelKey`, else its namespace's label of that key, else
 * 'unassigned'. A value that is empty or not a legal label value (it becomes one on the report and
 * in metrics) counts as absent.
 */
export function teamOf(
  podLabels: Readonly<Record<string, string>> | undefined,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
  teamLabelKey: string,
): string {
  for (const labels of [podLabels, namespaceLabels]) {
    const value: unknown = labels?.[teamLabelKey];
    if (isLabelValue(value)) return value;
  }
  return UNASSIGNED_TEAM;
}

/** True for a non-empty legal Kubernetes label value. */
export function isLabelValue(value: unknown): value is string {
  return typeof value === 'string' && LABEL_VALUE.test(value);
}
