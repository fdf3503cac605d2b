// What a drain writes, as a pure plan over the index of undrained data: for each
// block holding ranges written at or below the drain's sequence `upTo`, those ranges
// (each the newest write of its bytes, references and zeros included) and what they
// amount to: zeros only, the whole block or part of it. The drain (Vdisk.drain) is
// the executor: it decides per block, from the plan and what only the extent groups
// can tell (a staging extent to adopt, a shared or unwritable extent), where the
// ranges go, writes them, then the vDisk map, then the drained sequence.
//
// Ranges a later write (above `upTo`) covers are not in the plan: that write stays
// in the index and the oplog, and a later drain writes it.
import type { BlockLocation } from '@strata/proto';
import type { BlockIndex, Segment } from './block-index';

export interface BlockPlan {
  block: number;
  /** The block's first byte in the vDisk, and its length (the last block may be short). */
  start: number;
  length: number;
  /** Where the vDisk map puts the block (undefined: nowhere yet). */
  mapped: BlockLocation | undefined;
  /** The index's ranges of the block written at or below `upTo`, in offset order. */
  segments: Segment[];
  /** Whether they all read as zeros (no bytes, no references). */
  zerosOnly: boolean;
  /** Whether they cover the whole block. */
  whole: boolean;
}

export interface DrainPlan {
  upTo: number;
  blocks: BlockPlan[];
}

/** The plan of one block: see BlockPlan. */
export function planBlock(index: BlockIndex, block: number, length: number, mapped: BlockLocation | undefined, upTo: number): BlockPlan {
  const start = block * index.blockSizeBytes;
  const segments = index.query(start, start + length, upTo);
  return {
    block,
    start,
    length,
    mapped,
    segments,
    zerosOnly: segments.every((s) => s.data === undefined && s.ref === undefined),
    whole: index.covers(start, start + length, upTo),
  };
}

/**
 * The plan of a drain up to `upTo`: every block holding ranges written at or below
 * it, in block order. `mapped` is the vDisk map (the block's location, if any) and
 * `blockLength` the length of a block.
 */
export function plan(index: BlockIndex, mapped: (block: number) => BlockLocation | undefined, upTo: number, blockLength: (block: number) => number): DrainPlan {
  return { upTo, blocks: index.blocksUpTo(upTo).map((block) => planBlock(index, block, blockLength(block), mapped(block), upTo)) };
}
