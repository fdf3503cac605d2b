// What operators type, read strictly: sizes (512, 4K, 512M, 10G, 1TiB: binary
// units) and counts, choices among a closed set, and values checked against the
// schema the config service checks them with, so that a bad value is a usage error
// naming the flag (exit 2) before anything is sent. Sizes are printed back the same way.
import type { z } from 'zod';

/** A mistake in the command line: one line naming the flag or argument, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const units: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/** Parses `10G` (10 GiB) into bytes; throws UsageError naming `what` otherwise. */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$/i.exec(text);
  const factor = m === null ? undefined : units[(m[2] ?? '').toLowerCase()];
  if (m === null || factor === undefined) throw new UsageError(`${what}: "${text}" is not a size (examples: 512, 4K, 512M, 10G, 1T)`);
  const bytes = Number(m[1]) * factor;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${what}: "${text}" is not a whole number of bytes`);
  return bytes;
}

/** 1073741824 -> "1 GiB"; 1536 -> "1.5 KiB". */
export function formatSize(bytes: number): string {
  const names = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < names.length - 1) {
    value /= 1024;
    i++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${names[i]}`;
}

/** Parses a whole number option; with `min`, smaller ones are refused too. */
export function parseCount(text: string, what: string, min = 0): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`${what}: "${text}" is not a whole number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what}: "${text}" is too large`);
  if (n < min) throw new UsageError(`${what}: "${text}" must be at least ${min}`);
  return n;
}

/** `text` if it is one of `values`, else a usage error listing them. */
export function parseChoice<T extends string>(text: string, values: readonly T[], what: string): T {
  const found = values.find((v) => v === text);
  if (found === undefined) throw new UsageError(`${what}: "${text}" is not one of ${values.join(', ')}`);
  return found;
}

/**
 * `value` (read from `text`, given as `what`) checked against `schema`, the rule the
 * config service applies to that field: a usage error with the rule's words
 * (`--rf: "0" must be between 1 and 5`) instead of a refusal after the round trip.
 */
export function checkValue<S extends z.ZodType>(schema: S, value: unknown, what: string, text: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new UsageError(`${what}: "${text}" ${result.error.issues[0]?.message ?? 'is not valid'}`);
}

/** `a, b, c, d, e and 3 more`: names in a message, the first five of them. */
export function listNames(names: readonly string[]): string {
  return names.slice(0, 5).join(', ') + (names.length > 5 ? ` and ${names.length - 5} more` : '');
}

/** Renders rows as an aligned text table. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
