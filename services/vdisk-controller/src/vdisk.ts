// One vDisk served by this node's controller: the oplog appender, the index of
// undrained data, the read path (index over extents), and drain (index to extents
// on RF replicas, then metadata bottom-up, then the drained sequence, then purge).
import { performance } from 'node:perf_hooks';
import { crc32c } from '@node-rs/crc32';
import { ErrorCode, StrataError, assert } from '@strata/errors';
import type { BlockLocation, EgroupEntry, OplogOp, VdiskRow } from '@strata/proto';
import { BlockIndex, overlay } from './block-index';
import type { OplogAppender } from './oplog';

/** What a vDisk needs from the world: extents, metadata, ids, placement. */
export interface VdiskPorts {
  /** Reads an extent from one of its replicas (verifying its checksum), or throws. */
  readExtent(location: BlockLocation): Promise<Uint8Array>;
  /** The vDisk map row, or null, with its revision (0 when absent). */
  getRow(row: number): Promise<{ value: VdiskRow; revision: number } | null>;
  putRow(row: number, value: VdiskRow, revision: number): Promise<number>;
  /** Writes a new extent into the vDisk's open extent group on every replica, recording it in the egroup map. */
  appendExtent(blockIndex: number, seq: number, data: Uint8Array): Promise<BlockLocation>;
  /** Records the drained oplog sequence in the ownership record. */
  recordDrained(seq: number): Promise<void>;
  /** Purges the oplog below `seq` (never its newest message). */
  purgeBelow(seq: number): Promise<void>;
}

export interface VdiskSettings {
  /** Undrained bytes at which new writes wait for drain. */
  undrainedBytesMax: number;
  /** Undrained bytes at which drain starts without waiting for idleness. */
  drainStartBytes: number;
  /** Idle time after the last write before drain runs anyway. */
  drainIdleMs: number;
  /** Blocks drained concurrently. */
  drainParallelism: number;
  /** Blocks per vDisk map row. */
  rowBlocks: number;
}

export interface VdiskShape {
  id: bigint;
  sizeBytes: number;
  blockSizeBytes: number;
}

export class Vdisk {
  readonly index: BlockIndex;
  private readonly rows = new Map<number, { value: VdiskRow; revision: number }>();
  /** Row updates are serialised per row, so concurrent drains of its blocks do not race. */
  private readonly rowLocks = new Map<number, Promise<void>>();
  private drainedSeq: number;
  private draining: Promise<void> | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private spaceWaiters: Array<() => void> = [];
  private pendingBytes = 0;
  private closed = false;

  constructor(
    readonly shape: VdiskShape,
    readonly appender: OplogAppender,
    private readonly ports: VdiskPorts,
    private readonly settings: VdiskSettings,
    drainedSeq: number,
    private readonly onDrainError: (err: unknown) => void,
  ) {
    this.index = new BlockIndex(shape.blockSizeBytes);
    this.drainedSeq = drainedSeq;
  }

  /** Applies a stored oplog entry's ops to the index (appends and replay alike). */
  apply(seq: number, ops: readonly OplogOp[]): void {
    for (const op of ops) {
      if (op.op === 'write') this.index.insert(op.offset, op.data.length, seq, op.data);
      else this.index.insert(op.offset, op.length, seq, undefined);
    }
  }

  private checkRange(offset: number, length: number): void {
    if (length <= 0) throw new StrataError(ErrorCode.INVALID, 'length must be greater than 0');
    if (offset + length > this.shape.sizeBytes) {
      throw new StrataError(ErrorCode.INVALID, `range ${offset}+${length} is past the end of vdisk ${this.shape.id} (${this.shape.sizeBytes} bytes)`);
    }
  }

  /** Waits (bounded by `deadline`) until undrained data leaves room for `bytes` more. */
  private async reserve(bytes: number, deadline: number): Promise<void> {
    while (this.index.heldBytes + this.pendingBytes + bytes > this.settings.undrainedBytesMax && this.pendingBytes + this.index.heldBytes > 0) {
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
  }

  private released(bytes: number): void {
    this.pendingBytes -= bytes;
  }

  async write(offset: number, data: Uint8Array, deadline: number): Promise<void> {
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
    this.checkRange(offset, length);
    await this.appender.append({ op: 'zero', offset, length });
    this.afterWrite();
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
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
      reads.push(
        (async () => {
          const data = await this.blockBase(block);
          if (data === undefined) return;
          const blockStart = block * bs;
          const a = Math.max(start, blockStart);
          const b = Math.min(end, blockStart + data.length);
          if (b > a) out.set(data.subarray(a - blockStart, b - blockStart), a - start);
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

  /** The block's durable content, or undefined when it has none (zeros). */
  private async blockBase(block: number): Promise<Uint8Array | undefined> {
    const { value } = await this.row(this.rowOf(block));
    const location = value.blocks[String(block)];
    if (location === undefined) return undefined;
    return this.ports.readExtent(location);
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

  /** Starts a drain unless one is running. */
  kickDrain(): void {
    if (this.closed || this.draining !== undefined || this.index.blockCount === 0) return;
    this.draining = this.drain()
      .catch((err: unknown) => this.onDrainError(err))
      .finally(() => {
        this.draining = undefined;
        for (const wake of this.spaceWaiters.splice(0)) wake();
        // More may have arrived meanwhile.
        if (this.index.heldBytes >= this.settings.drainStartBytes) this.kickDrain();
      });
  }

  /** Drains everything stored up to now. Resolves when the drained sequence is recorded. */
  async drain(): Promise<void> {
    const upTo = this.appender.lastSequence;
    const blocks = this.index.blocksUpTo(upTo);
    if (blocks.length === 0) return;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < blocks.length && !this.closed) {
        const block = blocks[next++]!;
        await this.drainBlock(block, upTo);
        for (const wake of this.spaceWaiters.splice(0)) wake();
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.settings.drainParallelism, blocks.length) }, worker));
    if (this.closed) return;
    await this.ports.recordDrained(upTo);
    this.drainedSeq = upTo;
    await this.ports.purgeBelow(upTo + 1);
  }

  private async drainBlock(block: number, upTo: number): Promise<void> {
    const length = this.blockLength(block);
    const blockStart = block * this.shape.blockSizeBytes;
    const segments = this.index.query(blockStart, blockStart + length);
    const base = this.index.covers(blockStart, blockStart + length) ? undefined : await this.blockBase(block);
    const content = new Uint8Array(length);
    if (base !== undefined) content.set(base.subarray(0, length));
    overlay(content, blockStart, segments);
    const allZero = content.every((b) => b === 0);
    // Bottom-up: the extent (and its egroup entry) exists before the row points at it.
    const location = allZero ? undefined : await this.ports.appendExtent(block, upTo, content);
    const rowIndex = this.rowOf(block);
    const previous = this.rowLocks.get(rowIndex) ?? Promise.resolve();
    const update = previous.then(() => this.updateRow(rowIndex, block, location));
    const settled = update.catch(() => undefined);
    this.rowLocks.set(rowIndex, settled);
    try {
      await update;
    } finally {
      if (this.rowLocks.get(rowIndex) === settled) this.rowLocks.delete(rowIndex);
    }
    this.index.dropUpTo(block, upTo);
  }

  private async updateRow(rowIndex: number, block: number, location: BlockLocation | undefined): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const row = await this.row(rowIndex);
      const blocks = { ...row.value.blocks };
      if (location === undefined) delete blocks[String(block)];
      else blocks[String(block)] = location;
      try {
        const revision = await this.ports.putRow(rowIndex, { blocks }, row.revision);
        this.rows.set(rowIndex, { value: { blocks }, revision });
        break;
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

/** The checksum recorded for an extent. */
export function extentChecksum(data: Uint8Array): number {
  return crc32c(data);
}

/** A copy of an egroup entry with one more extent appended at its end. */
export function withExtent(entry: EgroupEntry, extent: { id: string; length: number; crc32c: number }): EgroupEntry {
  assert(extent.length > 0, 'extents are never empty');
  return {
    ...entry,
    version: entry.version + 1,
    sizeBytes: entry.sizeBytes + extent.length,
    extents: [...entry.extents, { id: extent.id, offset: entry.sizeBytes, length: extent.length, crc32c: extent.crc32c, refs: 1 }],
  };
}
