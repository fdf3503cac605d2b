// The slice arithmetic of an extent-group replica (sidecar formats 2 and 3), pure so it is
// tested without a disk: which slices a byte range touches, how a write's pieces
// land in them, the CRC32C table kept in the sidecar, and the digest that recognises
// the retry of a write.
//
// A replica is a sparse byte array of `sizeBytes` bytes cut into slices of
// `sliceBytes` bytes: slice i covers [i * sliceBytes, (i + 1) * sliceBytes). Every
// slice's CRC32C is taken over all `sliceBytes` of it, bytes beyond the data file's
// end or beyond `sizeBytes` counting as zeros, so a slice never written has the CRC32C
// of `sliceBytes` zero bytes and holes need no special case.
import { createHash } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { assert } from '@strata/errors';
import type { EgPiece } from '@strata/proto';

const KiB = 1024;

/**
 * Smallest slice: a 4 KiB read never checks less than one page of the page cache,
 * and a smaller slice would only grow the sidecar.
 */
export const SLICE_BYTES_MIN = 4 * KiB;
/** Largest slice: above it a 4 KiB read would fetch and checksum as much as format 1 did. */
export const SLICE_BYTES_MAX = 1024 * KiB;
/**
 * The default. A 4 KiB read preads and checksums 32 KiB (a few microseconds of
 * CRC32C, and one request to an SSD either way); a 4 KiB overwrite reads and rewrites
 * 32 KiB; a 64 MiB extent group's CRC table is 2048 entries, 8 KiB of sidecar, which
 * every write rewrites.
 */
export const SLICE_BYTES_DEFAULT = 32 * KiB;
/** Most slices one replica may have: bounds the sidecar (4 bytes per slice) that every write rewrites. */
export const SLICES_PER_EGROUP_MAX = 65_536;
/** Bytes of the write digest (SHA-256). */
export const DIGEST_BYTES = 32;

/** Why `sliceBytes` is not a usable slice size; undefined if it is. */
export function sliceBytesProblem(sliceBytes: number): string | undefined {
  if (!Number.isSafeInteger(sliceBytes) || sliceBytes < SLICE_BYTES_MIN || sliceBytes > SLICE_BYTES_MAX) {
    return `must be a whole number of bytes from ${SLICE_BYTES_MIN} to ${SLICE_BYTES_MAX}, not ${sliceBytes}`;
  }
  // A power of two keeps slices aligned to pages and sectors, so a slice is never
  // split across more device blocks than it needs.
  if ((sliceBytes & (sliceBytes - 1)) !== 0) return `must be a power of two, not ${sliceBytes}`;
  return undefined;
}

export function pieceLength(piece: EgPiece): number {
  return 'data' in piece ? piece.data.length : piece.zeros;
}

/** Number of slices of a replica of `sizeBytes` bytes (the last one may reach past its end). */
export function sliceCount(sizeBytes: number, sliceBytes: number): number {
  return Math.ceil(sizeBytes / sliceBytes);
}

/** The first and last slice (inclusive) that bytes [offset, offset + length) touch; length is at least 1. */
export function slicesOf(offset: number, length: number, sliceBytes: number): { first: number; last: number } {
  assert(length >= 1, `a range of ${length} bytes touches no slice`);
  return { first: Math.floor(offset / sliceBytes), last: Math.floor((offset + length - 1) / sliceBytes) };
}

// ---- CRC32C -------------------------------------------------------------------------

/** Zeros fed to CRC32C a chunk at a time: a zeros piece may be as long as an extent group. */
const ZEROS = new Uint8Array(64 * KiB);

/** CRC32C of `length` zero bytes, continuing from `initial` (the CRC32C of what came before). */
export function crc32cOfZeros(length: number, initial = 0): number {
  let crc = initial;
  for (let left = length; left > 0; left -= ZEROS.length) crc = crc32c(left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left), crc);
  return crc;
}

const zeroSliceCrcs = new Map<number, number>();

/** CRC32C of a slice never written: computed once per slice size. */
export function zeroSliceCrc(sliceBytes: number): number {
  let crc = zeroSliceCrcs.get(sliceBytes);
  if (crc === undefined) {
    crc = crc32cOfZeros(sliceBytes);
    zeroSliceCrcs.set(sliceBytes, crc);
  }
  return crc;
}

/** CRC32C of the pieces' bytes in request order, zeros pieces included: egWriteReply's `crc32c`. */
export function piecesCrc(pieces: readonly EgPiece[]): number {
  let crc = 0;
  for (const piece of pieces) crc = 'data' in piece ? crc32c(piece.data, crc) : crc32cOfZeros(piece.zeros, crc);
  return crc;
}

/**
 * The CRC table of a sidecar: one little-endian uint32 per slice, packed in a byte
 * string (a CBOR array of numbers would take up to 5 bytes an entry and decode slower).
 * Read byte by byte, so the byte string's alignment in the decoded file does not
 * matter and a read allocates nothing.
 */
export function crcAt(crcs: Uint8Array, slice: number): number {
  const i = slice * 4;
  return (crcs[i]! | (crcs[i + 1]! << 8) | (crcs[i + 2]! << 16) | (crcs[i + 3]! << 24)) >>> 0;
}

export function setCrc(crcs: Uint8Array, slice: number, crc: number): void {
  const i = slice * 4;
  crcs[i] = crc & 0xff;
  crcs[i + 1] = (crc >>> 8) & 0xff;
  crcs[i + 2] = (crc >>> 16) & 0xff;
  crcs[i + 3] = (crc >>> 24) & 0xff;
}

/**
 * A copy of a CRC table for `slices` slices (at least as many as it has): the copy is
 * what a write changes, so the cached sidecar stays as it is until the new one is
 * durable. New slices are zeros.
 */
export function grownCrcs(crcs: Uint8Array, slices: number, sliceBytes: number): Uint8Array {
  assert(slices * 4 >= crcs.length, `a CRC table of ${crcs.length / 4} slices cannot shrink to ${slices}`);
  const out = new Uint8Array(slices * 4);
  out.set(crcs);
  const zero = zeroSliceCrc(sliceBytes);
  for (let i = crcs.length / 4; i < slices; i++) setCrc(out, i, zero);
  return out;
}

// ---- The digest of a write ----------------------------------------------------------

/**
 * SHA-256 of a write's `sizeBytes` and pieces (offsets, lengths, kinds and data bytes):
 * the sidecar keeps it for the write that made the replica's version, so a retry of
 * that write is recognised and answered without writing, and a different write at the
 * same version is refused. A 32-bit CRC would be cheaper but could mistake a
 * different write for a retry and silently drop it. A zeros piece is hashed by its
 * length, not 0..n zero bytes: a retry sends the same pieces, and a trim of a whole
 * extent group must not cost a pass over 64 MiB of zeros.
 */
export function writeDigest(sizeBytes: number, pieces: readonly EgPiece[]): Uint8Array {
  const hash = createHash('sha256');
  const header = new DataView(new ArrayBuffer(17));
  header.setBigUint64(0, BigInt(sizeBytes), true);
  header.setBigUint64(8, BigInt(pieces.length), true);
  hash.update(new Uint8Array(header.buffer, 0, 16));
  for (const piece of pieces) {
    header.setUint8(0, 'data' in piece ? 1 : 2);
    header.setBigUint64(1, BigInt(piece.offset), true);
    header.setBigUint64(9, BigInt(pieceLength(piece)), true);
    hash.update(new Uint8Array(header.buffer));
    if ('data' in piece) hash.update(piece.data);
  }
  return new Uint8Array(hash.digest());
}

export function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- Where a write lands ------------------------------------------------------------

/**
 * A run of consecutive slices a write touches, written with one pwrite: `partial`
 * lists (ascending) the slices the pieces do not cover entirely, whose old bytes must
 * be read and checked first; `pieces` the indices (in request order, so later pieces
 * win) of the pieces that reach into the run.
 */
export interface SliceRun {
  first: number;
  count: number;
  partial: number[];
  pieces: number[];
}

/**
 * The runs of slices that `pieces` touch in a replica of `sizeBytes` bytes (its size
 * after the write; every piece is non-empty and ends within it), cut so that no run
 * exceeds `runSlicesMax` slices (a bound on the memory of one write). A slice counts
 * as covered when the pieces together cover it up to the replica's end: bytes past
 * the end are zeros anyway.
 */
export function planWrite(pieces: readonly EgPiece[], sliceBytes: number, sizeBytes: number, runSlicesMax: number): SliceRun[] {
  assert(runSlicesMax >= 1, `runs need at least one slice, not ${runSlicesMax}`);
  // The union of the pieces as disjoint, non-adjacent intervals.
  const spans = pieces.map((p) => ({ start: p.offset, end: p.offset + pieceLength(p) })).sort((a, b) => a.start - b.start);
  const union: Array<{ start: number; end: number }> = [];
  for (const span of spans) {
    assert(span.end > span.start && span.end <= sizeBytes, `piece [${span.start}, ${span.end}) is empty or ends beyond ${sizeBytes}`);
    const last = union[union.length - 1];
    if (last !== undefined && span.start <= last.end) last.end = Math.max(last.end, span.end);
    else union.push({ ...span });
  }

  // Touched slices in ascending order, each with whether the union covers it.
  const slices: number[] = [];
  const covered: boolean[] = [];
  for (const { start, end } of union) {
    const { first, last } = slicesOf(start, end - start, sliceBytes);
    for (let s = first; s <= last; s++) {
      const sliceStart = s * sliceBytes;
      // A slice two intervals of the union meet is already marked partial: the
      // first ends inside it, before the gap between them.
      if (slices[slices.length - 1] === s) continue;
      slices.push(s);
      covered.push(start <= sliceStart && end >= Math.min(sliceStart + sliceBytes, sizeBytes));
    }
  }

  const runs: SliceRun[] = [];
  for (let i = 0; i < slices.length; i++) {
    const s = slices[i]!;
    const run = runs[runs.length - 1];
    if (run !== undefined && run.first + run.count === s && run.count < runSlicesMax) run.count++;
    else runs.push({ first: s, count: 1, partial: [], pieces: [] });
    if (!covered[i]) runs[runs.length - 1]!.partial.push(s);
  }

  // Each piece joins the runs it reaches into: runs are sorted and disjoint, so a
  // binary search finds the first and the piece's end bounds the rest.
  for (const [index, piece] of pieces.entries()) {
    const start = piece.offset;
    const end = start + pieceLength(piece);
    let lo = 0;
    let hi = runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((runs[mid]!.first + runs[mid]!.count) * sliceBytes <= start) lo = mid + 1;
      else hi = mid;
    }
    for (let r = lo; r < runs.length && runs[r]!.first * sliceBytes < end; r++) runs[r]!.pieces.push(index);
  }
  return runs;
}

/**
 * Copies into `target` (the bytes of the replica from `targetOffset` on) the parts of
 * the listed pieces that fall within it, in the order listed: later pieces win.
 */
export function applyPieces(target: Uint8Array, targetOffset: number, pieces: readonly EgPiece[], indices: readonly number[]): void {
  const targetEnd = targetOffset + target.length;
  for (const index of indices) {
    const piece = pieces[index]!;
    const start = Math.max(piece.offset, targetOffset);
    const end = Math.min(piece.offset + pieceLength(piece), targetEnd);
    if (start >= end) continue;
    if ('data' in piece) target.set(piece.data.subarray(start - piece.offset, end - piece.offset), start - targetOffset);
    else target.fill(0, start - targetOffset, end - targetOffset);
  }
}
