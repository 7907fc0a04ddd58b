// Warning headers as the real API server's warning recorder writes them (endpoints/filters/warning.go):
// deduplicated, `299 - "<text>"`, and once the texts pass 4096 runes in total, each is cut to 256
// runes and those past the limit are dropped. Long webhook warnings therefore show up truncated here
// exactly as kubectl would print them from a real cluster.
const TRUNCATE_AT_TOTAL_RUNES = 4 * 1024;
const TRUNCATE_ITEM_RUNES = 256;

function quoted(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The Warning header values for these texts, in order (several may go in one header, comma-separated). */
export function warningHeaderValues(texts: readonly string[]): string[] {
  const unique = [...new Set(texts.filter((t) => t !== ''))];
  const total = unique.reduce((n, t) => n + [...t].length, 0);
  if (total <= TRUNCATE_AT_TOTAL_RUNES) return unique.map((t) => `299 - ${quoted(t)}`);
  const values: string[] = [];
  let written = 0;
  for (const t of unique) {
    if (written >= TRUNCATE_AT_TOTAL_RUNES) break;
    const cut = [...t].slice(0, TRUNCATE_ITEM_RUNES);
    written += cut.length;
    values.push(`299 - ${quoted(cut.join(''))}`);
  }
  return values;
}

/** Response headers carrying the warnings (none when there are none). */
export function warningHeaders(texts: readonly string[]): Record<string, string> {
  const values = warningHeaderValues(texts);
  return values.length === 0 ? {} : { Warning: values.join(', ') };
}
