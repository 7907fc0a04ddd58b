// Figures of a benchmark run: each with its ideal and the ratio to it, printed as a table and
// checked against the targets of issue 6.

export interface Figure {
  phase: string;
  name: string;
  value: number;
  /** The floor this figure is compared with; undefined when there is no meaningful ideal. */
  ideal: number | undefined;
  unit: string;
  /** A human statement of the target, e.g. "<= 1.15"; undefined when none. */
  target?: string;
  /** Whether the target is met; undefined when there is none. */
  met?: boolean;
}

export function ratio(value: number, ideal: number | undefined): number | undefined {
  if (ideal === undefined) return undefined;
  if (ideal === 0) return value === 0 ? 1 : Infinity;
  return value / ideal;
}

function fmt(value: number | undefined, unit = ''): string {
  if (value === undefined) return '—';
  if (Number.isNaN(value)) return 'none';
  if (!Number.isFinite(value)) return '∞';
  const abs = Math.abs(value);
  const digits = abs >= 100 || Number.isInteger(value) ? 0 : abs >= 10 ? 1 : 2;
  return `${value.toFixed(digits)}${unit === '' ? '' : ` ${unit}`}`;
}

/** The figures as an aligned text table. */
export function formatTable(figures: Figure[]): string {
  const rows = [['phase', 'figure', 'value', 'ideal', 'ratio', 'target', '']];
  for (const f of figures) {
    const r = ratio(f.value, f.ideal);
    rows.push([
      f.phase,
      f.name,
      fmt(f.value, f.unit),
      fmt(f.ideal, f.ideal === undefined ? '' : f.unit),
      r === undefined ? '—' : Number.isFinite(r) ? r.toFixed(2) : '∞',
      f.target ?? '',
      f.met === undefined ? '' : f.met ? 'ok' : 'MISSED',
    ]);
  }
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, col) => (col >= 2 && col <= 4 ? cell.padStart(widths[col] ?? 0) : cell.padEnd(widths[col] ?? 0))).join('  ').trimEnd()).join('\n');
}

/** The same table in Markdown, for the README. */
export function formatMarkdown(figures: Figure[]): string {
  const lines = ['| phase | figure | value | ideal | ratio | target |', '| --- | --- | ---: | ---: | ---: | --- |'];
  for (const f of figures) {
    const r = ratio(f.value, f.ideal);
    const target = f.target === undefined ? '' : `${f.target} ${f.met === true ? '✓' : '✗ missed'}`;
    lines.push(`| ${f.phase} | ${f.name} | ${fmt(f.value, f.unit)} | ${fmt(f.ideal, f.ideal === undefined ? '' : f.unit)} | ${r === undefined ? '—' : Number.isFinite(r) ? r.toFixed(2) : '∞'} | ${target} |`);
  }
  return lines.join('\n');
}
