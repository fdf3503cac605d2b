// One vDisk served by this node's controller: the oplog appender, the index of
// undrained data, the read path (index over extents), and drain (undrained ranges
// written in place into extents on RF replicas, then metadata bottom-up, then the
// drained sequence, then purge). A drain refused FENCED (a newer owner exists) ends
// draining for good: see `fenced`.
import { performance } from 'node:perf_hooks';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import type { BlockLocation, EgPiece, OplogOp, VdiskRow } from '@strata/proto';
import { ROOT_CONTEXT, SPAN_LINKS_MAX, SpanAttr, recordingSpan, trace, inSpan, type Link, type SpanContext } from '@strata/tracing';
import { BlockIndex, WriteLinks, overlay } from './block-index';
import { settleAll, type ExtentChanges, type ExtentSpace } from './extent-groups';
import type { Oplog } from './oplog';

/** What a vDisk needs from the world besides its extent groups: the vDisk map, the ownership record, the oplog. */
export interface VdiskPorts {
  /** The vDisk map row, or null, with its revision (0 when absent). */
  getRow(row: number): Promise<{ value: VdiskRow; revision: number } | null>;
  putRow(row: number, value: VdiskRow, revision: number): Promise<number>;
  /** Records the drained oplog sequence in the ownership record. */
  recordDrained(seq: number): Promise<void>;
  /** Purges the oplog below `seq` (never its newest message). */
  purgeBelow(seq: number): Promise<void>;
  /** Whether drain is paced now (see DrainPacer): then it writes one extent group at a time. */
  drainPaced?(): boolean;
}

export interface VdiskSettings {
  /** Undrained bytes at which new writes wait for drain. */
  undrainedBytesMax: number;
  /** Undrained bytes at which drain starts without waiting for idleness. */
  drainStartBytes: number;
  /** Idle time after the last write before drain runs anyway. */
  drainIdleMs: number;
  /** Extent groups one drain writes at once. */
  drainParallelism: number;
  /**
   * While drain is paced, the most bytes of oplog writes one drain takes (at least one
   * oplog entry), so a writer waiting for room gets it back a little at a time rather
   * than once the whole oplog has drained.
   */
  drainRoundBytesPaced: number;
  /** Blocks per vDisk map row. */
  rowBlocks: number;
}

export interface VdiskShape {
  id: bigint;
  sizeBytes: number;
  blockSizeBytes: number;
}

const tracer = trace.getTracer('@strata/vdisk-controller');

/** A drain is its own trace: it runs in the background, after its writes were acknowledged. */
const drainSpanOptions = { root: true } as const;

export class Vdisk {
  readonly index: BlockIndex;
  /** The traced writes the index holds, for the next drain span's links. */
  readonly writeLinks = new WriteLinks<SpanContext>(SPAN_LINKS_MAX);
  private readonly rows = new Map<number, { value: VdiskRow; revision: number }>();
  /** Extents allocated for blocks whose vDisk map entry is not written yet (a drain failed after allocating). */
  private readonly allocated = new Map<number, BlockLocation>();
  private drainedSeq: number;
  /** The undrained oplog entries that carry data, oldest first, with their data bytes (for bounded drains). */
  private readonly entryBytes: Array<{ seq: number; bytes: number }> = [];
  private draining: Promise<void> | undefined;
  /** A kick arrived while a drain was running. */
  private drainAgain = false;
  private drainTimer: NodeJS.Timeout | undefined;
  private spaceWaiters: Array<() => void> = [];
  /** Writers waiting for room, oldest first (see reserve). */
  private readonly roomQueue: object[] = [];
  private pendingBytes = 0;
  private closed = false;
  private fencedBy: StrataError | undefined;

  constructor(
    readonly shape: VdiskShape,
    readonly appender: Oplog,
    private readonly space: ExtentSpace,
    private readonly ports: VdiskPorts,
    private readonly settings: VdiskSettings,
    drainedSeq: number,
    private readonly onDrainError: (err: unknown) => void,
  ) {
    this.index = new BlockIndex(shape.blockSizeBytes);
    this.drainedSeq = drainedSeq;
  }

  /**
   * Applies a stored oplog entry's ops to the index (appends and replay alike); `writes`
   * are the span contexts of its traced appends, which the drain of `seq` will link to.
   */
  apply(seq: number, ops: readonly OplogOp[], writes?: readonly SpanContext[]): void {
    let bytes = 0;
    for (const op of ops) {
      if (op.op === 'write') {
        this.index.insert(op.offset, op.data.length, seq, op.data);
        bytes += op.data.length;
      } else this.index.insert(op.offset, op.length, seq, undefined);
    }
    if (bytes > 0) this.entryBytes.push({ seq, bytes });
    if (writes !== undefined) this.writeLinks.record(seq, writes);
  }

  /** Describes the I/O on the active span (the controller's handler span), when it records. */
  private describe(op: string, offset: number, length: number): void {
    recordingSpan()?.setAttributes({ [SpanAttr.vdisk]: String(this.shape.id), [SpanAttr.ioOp]: op, [SpanAttr.offset]: offset, [SpanAttr.length]: length });
  }

  private checkRange(offset: number, length: number): void {
    if (length <= 0) throw new StrataError(ErrorCode.INVALID, 'length must be greater than 0');
    if (offset + length > this.shape.sizeBytes) {
      throw new StrataError(ErrorCode.INVALID, `range ${offset}+${length} is past the end of vdisk ${this.shape.id} (${this.shape.sizeBytes} bytes)`);
    }
  }

  /**
   * Set once a drain was refused FENCED, by an extent store or a metadata shard (a
   * newer owner has written there) or by the ownership record (it names a newer
   * epoch): this vDisk's owner has been deposed, so it drains no more, and writes
   * waiting for drain room get this error instead of waiting out their deadline. The
   * controller stops serving the vDisk.
   */
  get fenced(): StrataError | undefined {
    return this.fencedBy;
  }

  /**
   * Waits (bounded by `deadline`) until undrained data leaves room for `bytes` more.
   * Writers get room in the order they started waiting: when drain frees a little, a
   * stream of small writes would otherwise take it every time, and a large write
   * behind them would wait until its deadline (seen: a low-priority vDisk's 1 MiB
   * writes starved by its own 4 KiB ones while its drain was paced).
   */
  private async reserve(bytes: number, deadline: number): Promise<void> {
    const fits = (): boolean => this.index.heldBytes + this.pendingBytes + bytes <= this.settings.undrainedBytesMax || this.pendingBytes + this.index.heldBytes === 0;
    if (this.roomQueue.length === 0 && fits()) {
      this.pendingBytes += bytes;
      return;
    }
    const turn = {};
    this.roomQueue.push(turn);
    try {
      while (this.roomQueue[0] !== turn || !fits()) {
        if (this.fencedBy !== undefined) throw this.fencedBy;
        recordingSpan()?.addEvent('oplog full: waiting for drain', { 'strata.undrained_bytes': this.index.heldBytes + this.pendingBytes });
        this.kickDrain();
        const remainingMs = deadline - performance.now();
        if (remainingMs <= 0) throw new StrataError(ErrorCode.TIMEOUT, `vdisk ${this.shape.id}: the oplog is full and drain has not caught up`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(remainingMs, 1_000));
          this.spaceWaiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      this.pendingBytes += bytes;
    } finally {
      this.roomQueue.splice(this.roomQueue.indexOf(turn), 1);
      // The next in line looks again (the room left may fit it).
      for (const wake of this.spaceWaiters.splice(0)) wake();
    }
  }

  private released(bytes: number): void {
    this.pendingBytes -= bytes;
  }

  async write(offset: number, data: Uint8Array, deadline: number): Promise<void> {
    this.describe('write', offset, data.length);
    this.checkRange(offset, data.length);
    await this.reserve(data.length, deadline);
    try {
      // The request's bytes are a view into its message buffer: keep a copy.
      await this.appender.append({ op: 'write', offset, data: Uint8Array.prototype.slice.call(data) });
    } finally {
      this.released(data.length);
    }
    this.afterWrite();
  }

  async zero(offset: number, length: number): Promise<void> {
    this.describe('zero', offset, length);
    this.checkRange(offset, length);
    await this.appender.append({ op: 'zero', offset, length });
    this.afterWrite();
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.describe('read', offset, length);
    this.checkRange(offset, length);
    const end = offset + length;
    // The overlay is taken first: a drain finishing while the base is read then
    // yields either the old base plus the overlay or the new base plus the same
    // overlay, and both are right.
    const segments = this.index.query(offset, end);
    const out = new Uint8Array(length);
    if (!this.index.covers(offset, end)) await this.readBase(offset, end, out);
    return overlay(out, offset, segments);
  }

  /** Fills `out` (covering [start, end)) from the extents, zeros where none. */
  private async readBase(start: number, end: number, out: Uint8Array): Promise<void> {
    const bs = this.shape.blockSizeBytes;
    const reads: Promise<void>[] = [];
    for (let block = Math.floor(start / bs); block * bs < end; block++) {
      const blockStart = block * bs;
      const a = Math.max(start, blockStart);
      const b = Math.min(end, blockStart + bs);
      reads.push(
        (async () => {
          const location = (await this.row(this.rowOf(block))).value.blocks[String(block)];
          // No extent: the block reads as zeros, which `out` already holds.
          if (location === undefined) return;
          out.set(await this.space.read(location, a - blockStart, b - a), a - start);
        })(),
      );
    }
    await Promise.all(reads);
  }

  private rowOf(block: number): number {
    return Math.floor(block / this.settings.rowBlocks);
  }

  private async row(rowIndex: number): Promise<{ value: VdiskRow; revision: number }> {
    const cached = this.rows.get(rowIndex);
    if (cached !== undefined) return cached;
    // This controller is the only writer of its vDisk's rows, so a row read once
    // stays right as long as every later write goes through rows.set below.
    const loaded = (await this.ports.getRow(rowIndex)) ?? { value: { blocks: {} }, revision: 0 };
    this.rows.set(rowIndex, loaded);
    return loaded;
  }

  private blockLength(block: number): number {
    const bs = this.shape.blockSizeBytes;
    return Math.min(bs, this.shape.sizeBytes - block * bs);
  }

  // ---- Drain ----------------------------------------------------------------------------

  private afterWrite(): void {
    if (this.index.heldBytes >= this.settings.drainStartBytes) this.kickDrain();
    clearTimeout(this.drainTimer);
    this.drainTimer = setTimeout(() => this.kickDrain(), this.settings.drainIdleMs);
  }

  /** Starts a drain, or, when one is running, another as soon as it ends. */
  kickDrain(): void {
    if (this.closed || this.fencedBy !== undefined || this.index.blockCount === 0) return;
    if (this.draining !== undefined) {
      this.drainAgain = true;
      return;
    }
    this.drainAgain = false;
    let failed = false;
    this.draining = this.drain()
      .catch((err: unknown) => {
        failed = true;
        this.onDrainError(err);
      })
      .finally(() => {
        this.draining = undefined;
        for (const wake of this.spaceWaiters.splice(0)) wake();
        if (this.closed || this.fencedBy !== undefined || this.index.blockCount === 0) return;
        // Writes that arrived meanwhile (or a kick that found this drain running) are
        // drained next: at once, or after the idle delay when this drain failed, so
        // a failing extent store is not hammered.
        if (!failed && (this.drainAgain || this.index.heldBytes >= this.settings.drainStartBytes)) this.kickDrain();
        else {
          clearTimeout(this.drainTimer);
          this.drainTimer = setTimeout(() => this.kickDrain(), this.settings.drainIdleMs);
        }
      });
  }

  /**
   * The sequence the next drain goes up to: everything stored, or, while drain is
   * paced, the oldest entries whose data fits `drainRoundBytesPaced` (at least one).
   */
  private roundEnd(): number {
    const last = this.appender.lastSequence;
    if (this.ports.drainPaced?.() !== true) return last;
    let bytes = 0;
    for (const entry of this.entryBytes) {
      if (entry.seq > last) break;
      bytes += entry.bytes;
      // The entry that overflows the round starts the next one.
      if (bytes > this.settings.drainRoundBytesPaced && entry !== this.entryBytes[0]) return entry.seq - 1;
    }
    return last;
  }

  /**
   * Drains what was stored up to `roundEnd()`, in four steps that each finish before the
   * next starts (bottom-up, as the design asks):
   *  1. plan: each block's undrained ranges become pieces of its extent, allocating a
   *     new extent for a block that has none; a block zeroed whole gives its extent up;
   *  2. extent groups: the pieces go to every replica in place, then the extent-group
   *     map records the new version and extents (one write per extent group);
   *  3. vDisk map: the rows of blocks that got or lost an extent;
   *  4. the drained sequence is recorded, the index forgets what is now durable, and
   *     the oplog is purged up to it.
   * A failure anywhere leaves the index as it was: the next drain writes the same
   * ranges again (in place, so that is harmless) and reuses any extent allocated.
   *
   * Only index segments written at or below the drain's sequence are written. Where a
   * later write covers a range, the extent keeps older bytes there, which is right:
   * the later write stays in the index (and the oplog) and is drained by a later round.
   */
  async drain(): Promise<void> {
    if (this.fencedBy !== undefined) throw this.fencedBy;
    let upTo = this.roundEnd();
    let blocks = this.index.blocksUpTo(upTo);
    // A round whose entries later writes overwrote whole has nothing left to write.
    while (blocks.length === 0 && upTo < this.appender.lastSequence) {
      this.forgetEntriesUpTo(upTo);
      upTo = this.roundEnd();
      blocks = this.index.blocksUpTo(upTo);
    }
    if (blocks.length === 0) return;
    // A root span, whatever context kicked the drain (a write's, through afterWrite or
    // its idle timer), linked to the traces of the writes it drains (bounded). Its
    // extent-store writes and metadata puts run inside it, so the bus's request spans,
    // and the stores' and shards' handler spans, are its descendants.
    const linked = this.writeLinks.upTo(upTo);
    const links = linked.contexts.length === 0 ? undefined : linked.contexts.map((context): Link => ({ context }));
    const span = tracer.startSpan('drain', links === undefined ? drainSpanOptions : { ...drainSpanOptions, links }, ROOT_CONTEXT);
    if (span.isRecording()) {
      span.setAttributes({
        [SpanAttr.vdisk]: String(this.shape.id),
        [SpanAttr.drainFromSeq]: this.drainedSeq + 1,
        [SpanAttr.drainToSeq]: upTo,
        [SpanAttr.drainBlocks]: blocks.length,
        [SpanAttr.drainLinks]: linked.contexts.length,
        ...(linked.incomplete ? { [SpanAttr.drainLinksIncomplete]: true } : {}),
      });
    }
    try {
      await inSpan(span, () => this.drainBlocks(upTo, blocks), ROOT_CONTEXT);
    } catch (err) {
      // Retrying would only be refused again: the newer owner drains from the oplog.
      if (isStrataError(err, ErrorCode.FENCED)) this.fencedBy ??= err;
      throw err;
    }
  }

  private async drainBlocks(upTo: number, blocks: readonly number[]): Promise<void> {
    const bs = this.shape.blockSizeBytes;
    const groups = new Map<bigint, { pieces: EgPiece[]; changes: ExtentChanges }>();
    const group = (egroup: bigint): { pieces: EgPiece[]; changes: ExtentChanges } => {
      let g = groups.get(egroup);
      if (g === undefined) groups.set(egroup, (g = { pieces: [], changes: { added: [], freed: [] } }));
      return g;
    };
    const rowChanges = new Map<number, Map<number, BlockLocation | undefined>>();
    const setBlock = (block: number, location: BlockLocation | undefined): void => {
      const row = this.rowOf(block);
      let changes = rowChanges.get(row);
      if (changes === undefined) rowChanges.set(row, (changes = new Map()));
      changes.set(block, location);
    };

    // Extents the vDisk map will no longer name, marked free in the extent-group map
    // only once the rows no longer point at them (step 3b).
    const freed = new Map<bigint, BlockLocation[]>();
    const free = (location: BlockLocation): void => {
      const list = freed.get(location.egroup);
      if (list === undefined) freed.set(location.egroup, [location]);
      else list.push(location);
    };

    // 1. Plan.
    for (const block of blocks) {
      if (this.closed) return;
      const blockStart = block * bs;
      const length = this.blockLength(block);
      const segments = this.index.query(blockStart, blockStart + length, upTo);
      const zerosOnly = segments.every((s) => s.data === undefined);
      const mapped = (await this.row(this.rowOf(block))).value.blocks[String(block)];
      let location = mapped ?? this.allocated.get(block);
      if (zerosOnly && (location === undefined || this.index.covers(blockStart, blockStart + length, upTo))) {
        // Zeros onto nothing cost nothing; a block zeroed whole no longer needs its
        // extent. An extent allocated by a failed drain is given up too: it may hold
        // some of that drain's bytes, which these zeros supersede.
        if (location !== undefined) free(location);
        if (mapped !== undefined) setBlock(block, undefined);
        this.allocated.delete(block);
        continue;
      }
      if (location !== undefined && !(await this.space.writable(location.egroup))) {
        // A replica of its extent group is on a hung or dead node: drain never waits
        // on it. The block moves whole to a new extent on healthy nodes.
        const moved = await this.moveBlock(block, mapped, upTo);
        const g = group(moved.location.egroup);
        g.changes.added.push({ block, location: moved.location });
        g.pieces.push({ offset: moved.location.offset, data: moved.image });
        setBlock(block, moved.location);
        free(location);
        continue;
      }
      if (location === undefined) {
        location = await this.space.allocate(block, length);
        this.allocated.set(block, location);
      }
      const g = group(location.egroup);
      if (mapped === undefined) {
        g.changes.added.push({ block, location });
        setBlock(block, location);
      }
      for (const s of segments) {
        const offset = location.offset + (s.start - blockStart);
        g.pieces.push(s.data === undefined ? { offset, zeros: s.end - s.start } : { offset, data: s.data });
      }
    }

    const span = recordingSpan();
    span?.setAttribute(SpanAttr.drainEgroups, groups.size);
    span?.addEvent('planned');

    // 2. Extent groups, a few at a time. After a failure no worker takes more work,
    // and the drain ends only when every worker has: nothing of a failed drain may
    // still be writing when the next one starts.
    const work = [...groups.entries()];
    let next = 0;
    let failure: { err: unknown } | undefined;
    const worker = async (_: unknown, id: number): Promise<void> => {
      while (next < work.length && !this.closed && failure === undefined) {
        // A paced drain goes one extent group at a time: the other workers stop.
        if (id > 0 && this.ports.drainPaced?.() === true) return;
        const [egroup, g] = work[next++]!;
        try {
          await this.space.write(egroup, g.pieces, g.changes);
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.settings.drainParallelism, work.length) }, worker));
    if (failure !== undefined) throw failure.err;
    if (this.closed) return;

    span?.addEvent('extent groups written');

    // 3. The vDisk map.
    await settleAll([...rowChanges].map(([row, changes]) => this.updateRow(row, changes)));
    for (const [, changes] of rowChanges) for (const block of changes.keys()) this.allocated.delete(block);
    span?.addEvent('vdisk map written');
    // 3b. Extents no row names any more are marked free (the extent-group map alone:
    // no replica is written, so a hung one does not matter). A crash before this
    // leaves an extent marked used that nothing references: garbage, never a
    // reference to nothing.
    await settleAll([...freed].map(([egroup, locations]) => this.space.write(egroup, [], { added: [], freed: locations })));

    // 4. Durable: record, forget, purge.
    await this.ports.recordDrained(upTo);
    this.drainedSeq = upTo;
    for (const block of blocks) this.index.dropUpTo(block, upTo);
    this.writeLinks.dropUpTo(upTo);
    this.forgetEntriesUpTo(upTo);
    span?.addEvent('drained sequence recorded');
    for (const wake of this.spaceWaiters.splice(0)) wake();
    await this.ports.purgeBelow(upTo + 1);
  }

  /**
   * A new extent for `block` and the block's whole content as of `upTo`: what its
   * current extent holds (read from a healthy replica; zeros when it has none) with
   * the index's ranges up to `upTo` laid over it. The old extent is not written.
   */
  private async moveBlock(block: number, mapped: BlockLocation | undefined, upTo: number): Promise<{ location: BlockLocation; image: Uint8Array }> {
    const blockStart = block * this.shape.blockSizeBytes;
    const length = this.blockLength(block);
    const image = mapped === undefined ? new Uint8Array(length) : Uint8Array.prototype.slice.call(await this.space.read(mapped, 0, length));
    overlay(image, blockStart, this.index.query(blockStart, blockStart + length, upTo));
    const location = await this.space.allocate(block, length);
    this.allocated.set(block, location);
    return { location, image };
  }

  private forgetEntriesUpTo(seq: number): void {
    let n = 0;
    while (n < this.entryBytes.length && this.entryBytes[n]!.seq <= seq) n++;
    this.entryBytes.splice(0, n);
  }

  private async updateRow(rowIndex: number, changes: ReadonlyMap<number, BlockLocation | undefined>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const row = await this.row(rowIndex);
      const blocks = { ...row.value.blocks };
      for (const [block, location] of changes) {
        if (location === undefined) delete blocks[String(block)];
        else blocks[String(block)] = location;
      }
      try {
        const revision = await this.ports.putRow(rowIndex, { blocks }, row.revision);
        this.rows.set(rowIndex, { value: { blocks }, revision });
        return;
      } catch (err) {
        // Only this controller writes its rows; a conflict means our cached copy is
        // stale (a previous incarnation wrote it): reload once and try again.
        this.rows.delete(rowIndex);
        if (attempt >= 2 || !(err instanceof StrataError) || err.code !== ErrorCode.CONFLICT) throw err;
      }
    }
  }

  get drained(): number {
    return this.drainedSeq;
  }

  /** Waits for a running drain; then stops draining. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.drainTimer);
    await this.draining;
  }
}
