// Redirect-on-write at the vDisk map, the pure part. A snapshot copies the source's
// rows to the snapshot's and bumps the source's generation (vdiskOwnership.generation);
// each block location carries the generation it was made the block's home at
// (BlockLocation.gen, absent = 0). A block is shared, and never written in place, when
// its location is of an older generation than the vDisk's (a snapshot names the same
// extent), or when its extent group belongs to another vDisk (a clone's blocks, copied
// from its snapshot, live in the source's extent groups: only their writer may write
// them). A write to a shared block goes to a new extent holding the block's whole
// content (read-merge-write, vdisk.ts moveBlock).
import type { BlockLocation, VdiskRow } from '@strata/proto';

/** Whether drain must move `location`'s block to a new extent rather than write it in place. */
export function isShared(location: BlockLocation, generation: number, ownsEgroup: boolean): boolean {
  return !ownsEgroup || (location.gen ?? 0) < generation;
}

/** `location` stamped with the generation it becomes a block's home at (no field at 0: rows stay as they were before snapshots). */
export function stamped(location: BlockLocation, generation: number): BlockLocation {
  const { gen: _old, ...rest } = location;
  return generation > 0 ? { ...rest, gen: generation } : rest;
}

/** The rows of a vDisk of `sizeBytes` with `blockSizeBytes` blocks and `rowBlocks` blocks per row: 0 .. count-1. */
export function rowCount(sizeBytes: number, blockSizeBytes: number, rowBlocks: number): number {
  return Math.ceil(Math.ceil(sizeBytes / blockSizeBytes) / rowBlocks);
}

/** What a snapshot writes: each source row that holds a block, as it is (its locations keep their generations), and the blocks in all. */
export function planRowCopy(rows: ReadonlyArray<{ row: number; value: VdiskRow }>): { rows: Array<{ row: number; value: VdiskRow }>; blocks: number } {
  const out = rows.filter((r) => Object.keys(r.value.blocks).length > 0).map((r) => ({ row: r.row, value: { blocks: { ...r.value.blocks } } }));
  return { rows: out, blocks: out.reduce((n, r) => n + Object.keys(r.value.blocks).length, 0) };
}
