// The index of undrained oplog data: for each vDisk block, the byte ranges written
// (or zeroed) since the last drain, newest on top, each tagged with the oplog
// sequence that carries it. A range holds its bytes (a write through the oplog),
// zeros, or a reference to where a direct write put its bytes in an extent group.
// Reads overlay it on what the extent stores hold; drain turns it into extents and
// then forgets what it made durable. Segments never cross a block boundary, so every
// operation touches one block's short list.
import { assert } from '@strata/errors';

export interface Segment {
  /** Offset within the vDisk. */
  start: number;
  /** Exclusive end. */
  end: number;
  /** Oplog sequence of the entry that wrote it. */
  seq: number;
  /** The bytes, or undefined for a range that reads as zeros or is a reference. */
  data: Uint8Array | undefined;
  /** A direct write's range: its bytes are in extent group `egroup` from `offset` (the segment's `start`). */
  ref?: SegmentRef;
}

export interface SegmentRef {
  egroup: bigint;
  offset: number;
}

/** What an insert records over a range: its bytes, a reference to a direct write's bytes, or zeros (undefined). */
type Content = Uint8Array | SegmentRef | undefined;

export class BlockIndex {
  private readonly blocks = new Map<number, Segment[]>();
  /** Bytes of data held (zero ranges cost nothing). */
  heldBytes = 0;
  /** Bytes that references cover (their data is in the extent groups already). */
  refBytes = 0;

  constructor(readonly blockSizeBytes: number) {}

  /**
   * Records that [start, start+length) now holds `content` written at `seq`: bytes,
   * zeros (undefined), or a reference to where a direct write put the range's bytes.
   */
  insert(start: number, length: number, seq: number, content: Content): void {
    let pos = start;
    const end = start + length;
    while (pos < end) {
      const block = Math.floor(pos / this.blockSizeBytes);
      const blockEnd = Math.min(end, (block + 1) * this.blockSizeBytes);
      const seg: Segment = { start: pos, end: blockEnd, seq, data: undefined };
      if (content instanceof Uint8Array) seg.data = content.subarray(pos - start, blockEnd - start);
      else if (content !== undefined) seg.ref = { egroup: content.egroup, offset: content.offset + (pos - start) };
      this.insertInBlock(block, seg);
      pos = blockEnd;
    }
  }

  private count(s: Segment, sign: 1 | -1): void {
    if (s.data !== undefined) this.heldBytes += sign * s.data.length;
    else if (s.ref !== undefined) this.refBytes += sign * (s.end - s.start);
  }

  private insertInBlock(block: number, seg: Segment): void {
    const list = this.blocks.get(block) ?? [];
    const kept: Segment[] = [];
    for (const s of list) {
      if (s.end <= seg.start || s.start >= seg.end) {
        kept.push(s);
        continue;
      }
      // Keep the parts of the older segment that the new one does not cover.
      this.count(s, -1);
      if (s.start < seg.start) kept.push(this.slice(s, s.start, seg.start));
      if (s.end > seg.end) kept.push(this.slice(s, seg.end, s.end));
    }
    kept.push(seg);
    this.count(seg, 1);
    kept.sort((a, b) => a.start - b.start);
    this.blocks.set(block, kept);
  }

  private slice(s: Segment, start: number, end: number): Segment {
    const part = clip(s, start, end);
    this.count(part, 1);
    return part;
  }

  /**
   * The segments overlapping [start, end), clipped to it, in offset order; only those
   * written at or below `maxSeq` when it is given (what that range held at `maxSeq`,
   * except where a later write covered it).
   */
  query(start: number, end: number, maxSeq = Number.POSITIVE_INFINITY): Segment[] {
    const out: Segment[] = [];
    const first = Math.floor(start / this.blockSizeBytes);
    const last = Math.floor((end - 1) / this.blockSizeBytes);
    for (let block = first; block <= last; block++) {
      for (const s of this.blocks.get(block) ?? []) {
        if (s.end <= start || s.start >= end || s.seq > maxSeq) continue;
        out.push(clip(s, Math.max(s.start, start), Math.min(s.end, end)));
      }
    }
    return out;
  }

  /** True when [start, end) is entirely covered by the index (by segments written at or below `maxSeq`, when given). */
  covers(start: number, end: number, maxSeq = Number.POSITIVE_INFINITY): boolean {
    let pos = start;
    for (const s of this.query(start, end, maxSeq)) {
      if (s.start > pos) return false;
      pos = s.end;
    }
    return pos >= end;
  }

  /** The extent groups the references held name (direct writes not drained yet). */
  refEgroups(): Set<bigint> {
    const out = new Set<bigint>();
    for (const list of this.blocks.values()) for (const s of list) if (s.ref !== undefined) out.add(s.ref.egroup);
    return out;
  }

  /** Blocks that hold segments with a sequence at or below `seq`. */
  blocksUpTo(seq: number): number[] {
    const out: number[] = [];
    for (const [block, list] of this.blocks) if (list.some((s) => s.seq <= seq)) out.push(block);
    return out.sort((a, b) => a - b);
  }

  /** Forgets every segment of `block` with a sequence at or below `seq` (drained). */
  dropUpTo(block: number, seq: number): void {
    const list = this.blocks.get(block);
    if (list === undefined) return;
    const kept = list.filter((s) => {
      if (s.seq > seq) return true;
      this.count(s, -1);
      return false;
    });
    if (kept.length === 0) this.blocks.delete(block);
    else this.blocks.set(block, kept);
  }

  get blockCount(): number {
    return this.blocks.size;
  }
}

/** The part [start, end) of `s`, which covers it. */
export function clip(s: Segment, start: number, end: number): Segment {
  const part: Segment = { start, end, seq: s.seq, data: s.data?.subarray(start - s.start, end - s.start) };
  if (s.ref !== undefined) part.ref = { egroup: s.ref.egroup, offset: s.ref.offset + (start - s.start) };
  return part;
}

/**
 * Copies the index's view of [start, end) onto `base` (which holds that range). The
 * segments hold bytes or zeros: references must have been read into bytes first.
 */
export function overlay(base: Uint8Array, baseStart: number, segments: readonly Segment[]): Uint8Array {
  for (const s of segments) {
    assert(s.ref === undefined, 'overlay gets bytes or zeros: references are read first');
    const at = s.start - baseStart;
    if (s.data === undefined) base.fill(0, at, at + (s.end - s.start));
    else base.set(s.data, at);
  }
  return base;
}

/**
 * The span contexts of stored writes that drain has not made durable yet, kept beside
 * the index for the drain span's links: at most `max` (oldest first; later writes are
 * not kept until a drain frees room, and the drain that covers them says its links are
 * incomplete). Contexts arrive only from traced writes, so with tracing off this stays
 * empty and costs nothing.
 */
export class WriteLinks<C> {
  /** In oplog order: batches are stored, and recorded, one after another. */
  private readonly kept: Array<{ seq: number; context: C }> = [];
  /** The lowest sequence that may hold a write not kept, and the highest; undefined when none. */
  private missing: { from: number; to: number } | undefined;

  constructor(readonly max: number) {}

  /** Records the traced writes of the batch stored at `seq`. */
  record(seq: number, contexts: readonly C[]): void {
    for (const context of contexts) {
      if (this.kept.length < this.max) this.kept.push({ seq, context });
      else this.missing = { from: this.missing?.from ?? seq, to: seq };
    }
  }

  /** The kept contexts of writes at or below `seq`, and whether some writes there were not kept. */
  upTo(seq: number): { contexts: C[]; incomplete: boolean } {
    const contexts: C[] = [];
    for (const k of this.kept) {
      if (k.seq > seq) break;
      contexts.push(k.context);
    }
    return { contexts, incomplete: this.missing !== undefined && this.missing.from <= seq };
  }

  /** Forgets the writes at or below `seq` (drained). */
  dropUpTo(seq: number): void {
    let n = 0;
    while (n < this.kept.length && this.kept[n]!.seq <= seq) n++;
    if (n > 0) this.kept.splice(0, n);
    if (this.missing !== undefined) this.missing = this.missing.to <= seq ? undefined : { from: Math.max(this.missing.from, seq + 1), to: this.missing.to };
  }

  get size(): number {
    return this.kept.length;
  }
}
