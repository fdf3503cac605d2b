// Sizes as operators type them (512, 4K, 512M, 10G, 1TiB: binary units) and as
// they read them back.
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

/** Parses a whole number option. */
export function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`${what}: "${text}" is not a whole number`);
  return Number(text);
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
