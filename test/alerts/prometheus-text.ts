// A small parser of the Prometheus text exposition format (0.0.4), for tests that read /metrics.
// Written to the format's spec, independently of prom-client, so a serialisation bug shows up.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses exposition text into samples; throws an Error naming the line on anything malformed. */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  const lines = text.split('\n');
  lines.forEach((line, index) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    try {
      samples.push(parseSampleLine(line));
    } catch (err) {
      throw new Error(`line ${index + 1} is not a valid sample: ${JSON.stringify(line)}`, { cause: err });
    }
  });
  return samples;
}

/** The samples of one metric name whose labels include all of `match`. */
export function samplesOf(samples: readonly Sample[], name: string, match: Record<string, string> = {}): Sample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(match).every(([key, value]) => s.labels[key] === value),
  );
}

function parseSampleLine(line: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (nameMatch === null) throw new Error('no metric name');
  const name = nameMatch[0];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos += 1;
    while (line[pos] !== '}') {
      const keyMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(pos));
      if (keyMatch === null) throw new Error(`bad label name at ${pos}`);
      const key = keyMatch[0];
      pos += key.length;
      if (line.slice(pos, pos + 2) !== '="') throw new Error(`expected =" at ${pos}`);
      pos += 2;
      let value = '';
      for (;;) {
        const ch = line[pos];
        if (ch === undefined) throw new Error('unterminated label value');
        pos += 1;
        if (ch === '"') break;
        if (ch === '\\') {
          const next = line[pos];
          pos += 1;
          if (next === 'n') value += '\n';
          else if (next === '\\' || next === '"') value += next;
          else throw new Error(`bad escape \\${String(next)}`);
        } else {
          value += ch;
        }
      }
      if (key in labels) throw new Error(`duplicate label ${key}`);
      labels[key] = value;
      if (line[pos] === ',') pos += 1;
      else if (line[pos] !== '}') throw new Error(`expected , or } at ${pos}`);
    }
    pos += 1;
  }
  const rest = line.slice(pos).trim().split(/\s+/);
  const rawValue = rest[0];
  if (rawValue === undefined || rest.length > 2) throw new Error('expected a value and an optional timestamp');
  // Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any letter case
  // (prom-client writes "Nan").
  const special: Record<string, number> = { nan: NaN, '+inf': Infinity, inf: Infinity, '-inf': -Infinity };
  const value = special[rawValue.toLowerCase()] ?? Number(rawValue);
  if (Number.isNaN(value) && rawValue.toLowerCase() !== 'nan') throw new Error(`bad value ${rawValue}`);
  return { name, labels, value };
}

/** The whole text of one scrape of a metrics source (OperatorMetrics), its chunks joined. */
export async function scrapeText(metrics: { scrape(): Promise<IterableIterator<string | Buffer>> }): Promise<string> {
  return [...(await metrics.scrape())].map((chunk) => (typeof chunk === 'string' ? chunk : chunk.toString('utf8'))).join('');
}
