// Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): what kubectl get shows.
import type { PrinterColumn, ResourceDef } from './resources.js';
import type { KubeObject } from './types.js';
import { isRecord } from './types.js';

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

type Cell = string | number | boolean | null;

interface TablePrinter {
  columns: ColumnDefinition[];
  cells: (obj: KubeObject, now: Date) => Cell[];
}

/** apimachinery's duration.HumanDuration: "45s", "3m12s", "5h30m", "12d", "2y10d". */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const days = Math.floor(hours / 24) % 365;
    return days === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${days}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

function age(value: unknown, now: Date): string {
  if (typeof value !== 'string') return '<unknown>';
  const t = Date.parse(value);
  return Number.isNaN(t) ? '<invalid>' : humanDuration(now.getTime() - t);
}

/** The JSONPath subset printer columns use: `.a.b`, `.a[0].b`, optionally wrapped in `{}`. */
export function evalJsonPath(obj: unknown, jsonPath: string): unknown {
  const expr = jsonPath.trim().replace(/^\{/, '').replace(/\}$/, '');
  const tokens = expr.match(/\.([^.[\]]+)|\[(\d+)\]/g) ?? [];
  let current: unknown = obj;
  for (const token of tokens) {
    if (token.startsWith('[')) {
      current = Array.isArray(current) ? current[Number(token.slice(1, -1))] : undefined;
    } else {
      current = isRecord(current) ? current[token.slice(1)] : undefined;
    }
    if (current === undefined) return undefined;
  }
  return current;
}

/** A cell as the CRD table convertor makes it: string columns via JSONPath printing, the others by cellForJSONValue (a wrong type prints as <none>). */
function crdCell(type: string, value: unknown, now: Date): Cell {
  if (value === undefined || value === null) return null;
  switch (type) {
    case 'integer':
      return typeof value === 'number' ? Math.trunc(value) : null;
    case 'number':
      return typeof value === 'number' ? value : null;
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    case 'string':
      // String columns go through JSONPath printing: maps and lists as compact JSON (keys sorted,
      // as Go's encoding/json writes them), other scalars as text.
      if (typeof value === 'string') return value;
      return typeof value === 'object' ? sortedJson(value) : String(value);
    case 'date':
      return typeof value === 'string' ? age(value, now) : null;
    default:
      return typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
}

function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

const NAME_COLUMN: ColumnDefinition = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
  priority: 0,
};

function col(name: string, type = 'string', priority = 0, description = ''): ColumnDefinition {
  return { name, type, format: '', description, priority };
}

function crdPrinter(columns: PrinterColumn[]): TablePrinter {
  if (columns.length === 0) {
    return {
      columns: [NAME_COLUMN, { ...col('Created At', 'date'), description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' }],
      cells: (obj, now) => [obj.metadata?.name ?? '', age(obj.metadata?.creationTimestamp, now)],
    };
  }
  return {
    columns: [NAME_COLUMN, ...columns.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description ?? '', priority: c.priority ?? 0 }))],
    cells: (obj, now) => [obj.metadata?.name ?? '', ...columns.map((c) => crdCell(c.type, evalJsonPath(obj, c.jsonPath), now))],
  };
}

function arr(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function num(value: unknown): number {
  return typeof value === 'number' ? value : 0;
}

function podPrinter(): TablePrinter {
  return {
    columns: [NAME_COLUMN, col('Ready'), col('Status'), col('Restarts'), col('Age'), col('IP', 'string', 1), col('Node', 'string', 1), col('Nominated Node', 'string', 1), col('Readiness Gates', 'string', 1)],
    cells: (obj, now) => {
      const spec = isRecord(obj.spec) ? obj.spec : {};
      const status = isRecord(obj.status) ? obj.status : {};
      const statuses = arr(status.containerStatuses);
      const ready = statuses.filter((s) => s.ready === true).length;
      const restarts = statuses.reduce((sum, s) => sum + num(s.restartCount), 0);
      let phase = typeof status.phase === 'string' ? status.phase : 'Unknown';
      for (const s of statuses) {
        const state = isRecord(s.state) ? s.state : {};
        if (isRecord(state.waiting) && typeof state.waiting.reason === 'string') phase = state.waiting.reason;
      }
      if (obj.metadata?.deletionTimestamp) phase = 'Terminating';
      return [
        obj.metadata?.name ?? '',
        `${ready}/${arr(spec.containers).length}`,
        phase,
        String(restarts),
        age(obj.metadata?.creationTimestamp, now),
        typeof status.podIP === 'string' ? status.podIP : '<none>',
        typeof spec.nodeName === 'string' ? spec.nodeName : '<none>',
        '<none>',
        '<none>',
      ];
    },
  };
}

function nodePrinter(): TablePrinter {
  return {
    columns: [NAME_COLUMN, col('Status'), col('Roles'), col('Age'), col('Version'), col('Internal-IP', 'string', 1), col('OS-Image', 'string', 1), col('Architecture', 'string', 1)],
    cells: (obj, now) => {
      const status = isRecord(obj.status) ? obj.status : {};
      const readyCond = arr(status.conditions).find((c) => c.type === 'Ready');
      const info = isRecord(status.nodeInfo) ? status.nodeInfo : {};
      const roles = Object.keys(obj.metadata?.labels ?? {})
        .filter((k) => k.startsWith('node-role.kubernetes.io/'))
        .map((k) => k.slice('node-role.kubernetes.io/'.length));
      const ip = arr(status.addresses).find((a) => a.type === 'InternalIP');
      return [
        obj.metadata?.name ?? '',
        readyCond?.status === 'True' ? 'Ready' : 'NotReady',
        roles.length > 0 ? roles.join(',') : '<none>',
        age(obj.metadata?.creationTimestamp, now),
        typeof info.kubeletVersion === 'string' ? info.kubeletVersion : '',
        typeof ip?.address === 'string' ? ip.address : '<none>',
        typeof info.osImage === 'string' ? info.osImage : '<unknown>',
        typeof info.architecture === 'string' ? info.architecture : (obj.metadata?.labels?.['kubernetes.io/arch'] ?? '<unknown>'),
      ];
    },
  };
}

function simplePrinter(extra: { column: ColumnDefinition; value: (obj: KubeObject) => Cell }[]): TablePrinter {
  const main = extra.filter((e) => e.column.priority === 0);
  const wide = extra.filter((e) => e.column.priority !== 0);
  return {
    columns: [NAME_COLUMN, ...main.map((e) => e.column), col('Age'), ...wide.map((e) => e.column)],
    cells: (obj, now) => [obj.metadata?.name ?? '', ...main.map((e) => e.value(obj)), age(obj.metadata?.creationTimestamp, now), ...wide.map((e) => e.value(obj))],
  };
}

function images(obj: KubeObject): string {
  const tmpl = evalJsonPath(obj, '.spec.template.spec.containers') ?? evalJsonPath(obj, '.spec.jobTemplate.spec.template.spec.containers');
  return arr(tmpl).map((c) => String(c.image ?? '')).join(',');
}

function builtinPrinter(def: ResourceDef): TablePrinter {
  const key = `${def.group}/${def.resource}`;
  switch (key) {
    case '/pods':
      return podPrinter();
    case '/nodes':
      return nodePrinter();
    case '/namespaces':
      return simplePrinter([{ column: col('Status'), value: (o) => String(evalJsonPath(o, '.status.phase') ?? 'Active') }]);
    case '/secrets':
      return simplePrinter([
        { column: col('Type'), value: (o) => String(o.type ?? 'Opaque') },
        { column: col('Data', 'integer'), value: (o) => (isRecord(o.data) ? Object.keys(o.data).length : 0) },
      ]);
    case 'apps/deployments':
      return simplePrinter([
        { column: col('Ready'), value: (o) => `${num(evalJsonPath(o, '.status.readyReplicas'))}/${num(evalJsonPath(o, '.spec.replicas') ?? 1)}` },
        { column: col('Up-to-date', 'integer'), value: (o) => num(evalJsonPath(o, '.status.updatedReplicas')) },
        { column: col('Available', 'integer'), value: (o) => num(evalJsonPath(o, '.status.availableReplicas')) },
        { column: col('Containers', 'string', 1), value: (o) => arr(evalJsonPath(o, '.spec.template.spec.containers')).map((c) => String(c.name)).join(',') },
        { column: col('Images', 'string', 1), value: images },
      ]);
    case 'apps/replicasets':
      return simplePrinter([
        { column: col('Desired', 'integer'), value: (o) => num(evalJsonPath(o, '.spec.replicas')) },
        { column: col('Current', 'integer'), value: (o) => num(evalJsonPath(o, '.status.replicas')) },
        { column: col('Ready', 'integer'), value: (o) => num(evalJsonPath(o, '.status.readyReplicas')) },
        { column: col('Images', 'string', 1), value: images },
      ]);
    case 'batch/cronjobs':
      return simplePrinter([
        { column: col('Schedule'), value: (o) => String(evalJsonPath(o, '.spec.schedule') ?? '') },
        { column: col('Suspend', 'boolean'), value: (o) => evalJsonPath(o, '.spec.suspend') === true },
        { column: col('Active', 'integer'), value: (o) => arr(evalJsonPath(o, '.status.active')).length },
        { column: col('Images', 'string', 1), value: images },
      ]);
    case 'admissionregistration.k8s.io/validatingwebhookconfigurations':
      return simplePrinter([{ column: col('Webhooks', 'integer'), value: (o) => arr(o.webhooks).length }]);
    case 'coordination.k8s.io/leases':
      return simplePrinter([{ column: col('Holder'), value: (o) => String(evalJsonPath(o, '.spec.holderIdentity') ?? '') }]);
    default:
      return simplePrinter([]);
  }
}

/** Builds a meta.k8s.io/v1 Table for these objects, as the real server's table convertor would. */
export function buildTable(def: ResourceDef, version: string, objects: KubeObject[], opts: { now: Date; includeObject: IncludeObject; resourceVersion?: string; continueToken?: string }): Record<string, unknown> {
  const printer = def.custom ? crdPrinter(def.printerColumns.get(version) ?? []) : builtinPrinter(def);
  const rows = objects.map((obj) => {
    const row: Record<string, unknown> = { cells: printer.cells(obj, opts.now) };
    if (opts.includeObject === 'Object') row.object = obj;
    else if (opts.includeObject === 'Metadata') row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata ?? {} };
    return row;
  });
  const metadata: Record<string, string> = {};
  if (opts.resourceVersion !== undefined) metadata.resourceVersion = opts.resourceVersion;
  if (opts.continueToken !== undefined) metadata.continue = opts.continueToken;
  return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata, columnDefinitions: printer.columns, rows };
}
