// The index of undrained oplog data: for each vDisk block, the byte ranges written
// (or zeroed) since the last drain, newest on top, each tagged with the oplog
// sequence that carries it. Reads overlay it on what the extent stores hold; drain
// turns it into extents and then forgets what it made durable. Segments never cross
// a block boundary, so every operation touches one block's short list.

export interface Segment {
  /** Offset within the vDisk. */
  start: number;
  /** Exclusive end. */
  end: number;
  /** Oplog sequence of the entry that wrote it. */
  seq: number;
  /** The bytes, or undefined for a range that reads as zeros. */
  data: Uint8Array | undefined;
}

export class BlockIndex {
  private readonly blocks = new Map<number, Segment[]>();
  /** Bytes of data held (zero ranges cost nothing). */
  heldBytes = 0;

  constructor(readonly blockSizeBytes: number) {}

  /** Records that [start, start+length) now holds `data` (or zeros), written at `seq`. */
  insert(start: number, length: number, seq: number, data: Uint8Array | undefined): void {
    let pos = start;
    const end = start + length;
    while (pos < end) {
      const block = Math.floor(pos / this.blockSizeBytes);
      const blockEnd = Math.min(end, (block + 1) * this.blockSizeBytes);
      const piece = data?.subarray(pos - start, blockEnd - start);
      this.insertInBlock(block, { start: pos, end: blockEnd, seq, data: piece });
      pos = blockEnd;
    }
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
      this.heldBytes -= s.data?.length ?? 0;
      if (s.start < seg.start) kept.push(this.slice(s, s.start, seg.start));
      if (s.end > seg.end) kept.push(this.slice(s, seg.end, s.end));
    }
    kept.push(seg);
    this.heldBytes += seg.data?.length ?? 0;
    kept.sort((a, b) => a.start - b.start);
    this.blocks.set(block, kept);
  }

  private slice(s: Segment, start: number, end: number): Segment {
    const data = s.data?.subarray(start - s.start, end - s.start);
    this.heldBytes += data?.length ?? 0;
    return { start, end, seq: s.seq, data };
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
        const a = Math.max(s.start, start);
        const b = Math.min(s.end, end);
        out.push({ start: a, end: b, seq: s.seq, data: s.data?.subarray(a - s.start, b - s.start) });
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
      this.heldBytes -= s.data?.length ?? 0;
      return false;
    });
    if (kept.length === 0) this.blocks.delete(block);
    else this.blocks.set(block, kept);
  }

  get blockCount(): number {
    return this.blocks.size;
  }
}

/** Copies the index's view of [start, end) onto `base` (which holds that range). */
export function overlay(base: Uint8Array, baseStart: number, segments: readonly Segment[]): Uint8Array {
  for (const s of segments) {
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
