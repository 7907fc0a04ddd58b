// The PromQL of every panel of monitoring/grafana-dashboard.json, with Grafana's variables replaced
// so the queries run on plain Prometheus (the incident test checks that each returns data).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './fake-reports.js';

export const DASHBOARD_FILE = path.join(repoRoot, 'monitoring/grafana-dashboard.json');

export interface DashboardQuery {
  panel: string;
  refId: string;
  /** PromQL, ready for /api/v1/query. */
  expr: string;
  /** Grafana runs it as an instant query (stat, table) rather than a range. */
  instant: boolean;
}

interface Target {
  expr?: string;
  refId?: string;
  instant?: boolean;
}

interface Panel {
  title?: string;
  type?: string;
  targets?: Target[];
  panels?: Panel[];
}

export interface QueryOptions {
  /** Replaces $__rate_interval (default '1m'; with a 1 s scrape, '10s' is plenty). */
  rateInterval?: string;
  /** Regex for the $cluster, $team and $namespace variables (default '.*', i.e. "All"). */
  cluster?: string;
  team?: string;
  namespace?: string;
}

/** Every target's PromQL as the dashboard file has it, Grafana variables still in, in dashboard order. */
export function rawDashboardQueries(file = DASHBOARD_FILE): DashboardQuery[] {
  const dashboard = JSON.parse(readFileSync(file, 'utf8')) as { panels?: Panel[] };
  const queries: DashboardQuery[] = [];
  const visit = (panels: Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (target.expr === undefined) continue;
        queries.push({ panel: panel.title ?? '', refId: target.refId ?? '', expr: target.expr, instant: target.instant === true });
      }
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels ?? []);
  return queries;
}

/**
 * Every target of every panel (rows included), in dashboard order. Throws when a query still
 * contains a Grafana variable this function does not know, so a new variable cannot slip through.
 */
export function dashboardQueries(opts: QueryOptions = {}, file = DASHBOARD_FILE): DashboardQuery[] {
  const values: Record<string, string> = {
    $__rate_interval: opts.rateInterval ?? '1m',
    $cluster: opts.cluster ?? '.*',
    $team: opts.team ?? '.*',
    $namespace: opts.namespace ?? '.*',
  };
  return rawDashboardQueries(file).map((query) => ({
    ...query,
    expr: query.expr.replace(/\$[_a-zA-Z]+/g, (name) => {
      const value = values[name];
      if (value === undefined) throw new Error(`panel "${query.panel}" uses unknown variable ${name}`);
      return value;
    }),
  }));
}
