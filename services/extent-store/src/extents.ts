// The extent table of one extent-group replica: extents sorted by offset, never
// overlapping. Pure functions, so the rules for where a write may land are tested
// without a disk.

/** One extent as written: `offset` 1048576, `length` 1048576 is the second MiB of the file. */
export interface Extent {
  offset: number;
  length: number;
  crc32c: number;
}

/** Where a new extent goes: a new entry, over an identical range, or nowhere. */
export type Placement =
  | { kind: 'insert'; index: number }
  | { kind: 'replace'; index: number }
  | { kind: 'overlap'; with: Extent };

export function extentEnd(extent: Pick<Extent, 'offset' | 'length'>): number {
  return extent.offset + extent.length;
}

export function sameExtent(a: Extent, b: Extent): boolean {
  return a.offset === b.offset && a.length === b.length && a.crc32c === b.crc32c;
}

/** Index of the first extent whose offset is at or after `offset` (binary search). */
function lowerBound(extents: readonly Extent[], offset: number): number {
  let lo = 0;
  let hi = extents.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (extents[mid]!.offset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the extent at exactly (`offset`, `length`), or -1. */
export function findExtent(extents: readonly Extent[], offset: number, length: number): number {
  const i = lowerBound(extents, offset);
  const e = extents[i];
  return e !== undefined && e.offset === offset && e.length === length ? i : -1;
}

/**
 * Where `extent` fits. Rewriting an extent's exact range replaces it; a write that
 * covers part of another extent is refused, because it would leave that extent's
 * checksum describing bytes that are no longer there.
 */
export function placeExtent(extents: readonly Extent[], extent: Pick<Extent, 'offset' | 'length'>): Placement {
  const i = lowerBound(extents, extent.offset);
  const at = extents[i];
  if (at !== undefined && at.offset === extent.offset && at.length === extent.length) return { kind: 'replace', index: i };
  const before = extents[i - 1];
  if (before !== undefined && extentEnd(before) > extent.offset) return { kind: 'overlap', with: before };
  if (at !== undefined && at.offset < extentEnd(extent)) return { kind: 'overlap', with: at };
  return { kind: 'insert', index: i };
}

/** A copy of `extents` with `extent` placed as `placement` says. */
export function withExtent(extents: readonly Extent[], extent: Extent, placement: Placement): Extent[] {
  const out = [...extents];
  if (placement.kind === 'replace') out[placement.index] = extent;
  else if (placement.kind === 'insert') out.splice(placement.index, 0, extent);
  return out;
}

/** Why a table is not sorted, disjoint and made of non-empty extents; undefined if it is. */
export function tableProblem(extents: readonly Extent[]): string | undefined {
  let end = 0;
  for (const [i, e] of extents.entries()) {
    if (e.length <= 0) return `extent ${i} at offset ${e.offset} is empty`;
    if (e.offset < end) return `extent ${i} at offset ${e.offset} overlaps the one before (which ends at ${end})`;
    end = extentEnd(e);
  }
  return undefined;
}

/** The file size the table implies: the end of its last extent. */
export function tableEnd(extents: readonly Extent[]): number {
  const last = extents[extents.length - 1];
  return last === undefined ? 0 : extentEnd(last);
}
