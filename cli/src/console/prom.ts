// What the console reads from the processes' metrics: a scrape parsed into series,
// and per-second rates from two scrapes of a counter. Pure, so it is unit-tested.

/** One series of a Prometheus text scrape. */
export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The series of a scrape whose names are in `names` (comments and other series skipped). */
export function parseScrape(text: string, names: ReadonlySet<string>): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (m === null || !names.has(m[1]!)) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    const value = Number(m[3]);
    if (Number.isFinite(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** The sum of the series named `name`, optionally only those whose `label` is `value`. */
export function total(series: readonly Series[], name: string, where?: { label: string; value: string }): number {
  return series.filter((s) => s.name === name && (where === undefined || s.labels[where.label] === where.value)).reduce((sum, s) => sum + s.value, 0);
}

/** A counter's rate per second between two readings; 0 when it went back (a restart) or no time passed. */
export function ratePerSec(before: { value: number; atMs: number } | undefined, now: { value: number; atMs: number }): number {
  if (before === undefined || now.atMs <= before.atMs || now.value < before.value) return 0;
  return ((now.value - before.value) * 1000) / (now.atMs - before.atMs);
}
