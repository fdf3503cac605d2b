// The read path of a served vDisk: the index of undrained data laid over what the
// extents hold (zeros where a block has no extent). The overlay is taken first: a
// drain finishing while the base is read then yields either the old base plus the
// overlay or the new base plus the same overlay, and both are right.
import { ErrorCode, StrataError } from '@strata/errors';
import type { BlockLocation } from '@strata/proto';
import { overlay, type BlockIndex, type Segment } from './block-index';

/** What a read needs of its vDisk. */
export interface ReadSources {
  vdisk: bigint;
  index: BlockIndex;
  /** Where the vDisk map puts `block` (undefined: nowhere; it reads as zeros). */
  location(block: number): Promise<BlockLocation | undefined>;
  /** `length` bytes of the extent at `location`, from `offset` within it. */
  read(location: BlockLocation, offset: number, length: number): Promise<Uint8Array>;
  /** `segments` with every reference read into bytes. */
  materialize(segments: readonly Segment[]): Promise<Segment[]>;
}

/** The bytes of [offset, offset+length), a range already checked against the vDisk's size. */
export async function readRange(src: ReadSources, offset: number, length: number): Promise<Uint8Array> {
  const end = offset + length;
  const segments = src.index.query(offset, end);
  const bs = src.index.blockSizeBytes;
  // All drained and within one block: the replica's bytes are the answer, with no copy.
  if (segments.length === 0 && Math.floor(offset / bs) === Math.floor((end - 1) / bs)) return readOneBlock(src, offset, end);
  const out = new Uint8Array(length);
  const [bytes] = await Promise.all([src.materialize(segments), src.index.covers(offset, end) ? undefined : readBase(src, offset, end, out)]);
  return overlay(out, offset, bytes);
}

/** [start, end), within one block, from its extent (zeros when it has none). */
async function readOneBlock(src: ReadSources, start: number, end: number): Promise<Uint8Array> {
  const bs = src.index.blockSizeBytes;
  const block = Math.floor(start / bs);
  const location = await src.location(block);
  if (location === undefined) return new Uint8Array(end - start);
  const data = await src.read(location, start - block * bs, end - start);
  if (data.length !== end - start) throw new StrataError(ErrorCode.INTERNAL, `a read of ${end - start} bytes at ${start} of vdisk ${src.vdisk} got ${data.length} from its extent`);
  return data;
}

/** Fills `out` (covering [start, end)) from the extents, zeros where none. */
async function readBase(src: ReadSources, start: number, end: number, out: Uint8Array): Promise<void> {
  const bs = src.index.blockSizeBytes;
  const reads: Promise<void>[] = [];
  for (let block = Math.floor(start / bs); block * bs < end; block++) {
    const blockStart = block * bs;
    const a = Math.max(start, blockStart);
    const b = Math.min(end, blockStart + bs);
    reads.push(
      (async () => {
        const location = await src.location(block);
        // No extent: the block reads as zeros, which `out` already holds.
        if (location === undefined) return;
        out.set(await src.read(location, a - blockStart, b - a), a - start);
      })(),
    );
  }
  await Promise.all(reads);
}
