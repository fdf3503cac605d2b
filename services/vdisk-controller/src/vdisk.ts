// One vDisk served by this node's controller: the oplog appender, the index of
// undrained data, the read path (read-path.ts: index over extents), and drain (undrained ranges
// written in place into extents on RF replicas, then metadata bottom-up, then the
// drained sequence, then purge). A drain refused FENCED (a newer owner exists) ends
// draining for good: see `fenced`.
//
// Writes of at least `directWriteBytesMin` skip the oplog's data path (direct
// writes): their bytes go to a staging extent of each block on every replica
// (staging.ts), then a small oplog message of `ref` ops commits them. The oplog so
// stays the one fenced order of the vDisk's writes: a deposed owner's commit fails
// like any append, and the index orders references and bytes by sequence. A crash
// before the commit leaves bytes nothing references (garbage for the curator):
// readers see the old data; after it, the new. Drain then makes a staging extent the
// block's extent when it holds most of the block (its other ranges filled in from the
// block's current content), or copies the referenced bytes into the block's extent.
import { performance } from 'node:perf_hooks';
import { ErrorCode, StrataError, isStrataError } from '@strata/errors';
import { modifyRecord, type CasRecord } from '@strata/kv';
import type { BlockLocation, EgPiece, OplogOp, VdiskRow } from '@strata/proto';
import { ROOT_CONTEXT, SPAN_LINKS_MAX, SpanAttr, recordingSpan, trace, inSpan, type Link, type SpanContext } from '@strata/tracing';
import { BlockIndex, WriteLinks, clip, overlay, type Segment } from './block-index';
import { planBlock } from './drain-plan';
import { readRange, type ReadSources } from './read-path';
import { settleAll, type CopyRecord, type ExtentChanges, type ExtentSpace } from './extent-groups';
import type { Oplog } from '@strata/oplog';
import { StagingExtents, type Staged } from './staging';
import { isShared, planRowCopy, rowCount, stamped } from './snapshot';

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
  /** Fault tests only: waits at `step` (see FaultStep), so a test can kill a process there. */
  hold?(step: FaultStep): Promise<void>;
  /**
   * Whether the vDisk's container can still place `backlogBytes` of undrained data
   * plus a write of `bytes` (by the disks' usage reports): a NO_SPACE error to refuse
   * the write with when it cannot, undefined when it can. Absent: always room.
   */
  roomFor?(bytes: number, backlogBytes: number): StrataError | undefined;
  /** Records the vDisk's generation in the ownership record (a snapshot's bump), fenced like recordDrained. */
  recordGeneration?(generation: number): Promise<void>;
  /** Writes a row of the snapshot `snapshot` (whatever was there: a retry's partial copy is overwritten). */
  putSnapshotRow?(snapshot: bigint, row: number, value: VdiskRow): Promise<void>;
}

/** What a snapshot did: the cut (the last oplog sequence it holds), what it copied, and how long writes waited. */
export interface SnapshotResult {
  generation: number;
  cutSeq: number;
  rows: number;
  blocks: number;
  pauseMs: number;
}

/** How a drain failure relates to the ones before it, so the controller logs a change of state, not every retry. */
export interface DrainFailure {
  /** Consecutive failed drains, this one included. */
  failures: number;
  /** True when this failure's code differs from the previous failure's (or the previous drain succeeded). */
  changed: boolean;
  /** When the next attempt runs, ms from now. */
  retryInMs: number;
}

/**
 * Steps of a direct write, and of a drain that adopts staging extents, at which a
 * fault test may hold the controller (the setting faultHoldAt) to kill it, or an
 * extent store, there.
 */
export const FaultStep = {
  /** Staging extents allocated; no replica written yet. */
  directStaged: 'direct-staged',
  /** Every replica has the bytes; the commit (`ref` ops) not appended yet. */
  directWritten: 'direct-written',
  /** The commit is stored; the client not answered yet. */
  directCommitted: 'direct-committed',
  /** A drain wrote its extent groups (adopted staging extents included); the vDisk map not yet. */
  drainAdopted: 'drain-adopted',
} as const;
export type FaultStep = (typeof FaultStep)[keyof typeof FaultStep];

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
  /** Writes of at least this many bytes are direct writes (see the top). */
  directWriteBytesMin: number;
  /** Extent groups that direct writes fill at once (each takes one replica write at a time). */
  directLanes: number;
  /**
   * Longest wait between drain attempts after failures: the wait doubles from
   * drainIdleMs with each failure up to this (a full disk is not hammered, and a freed
   * one is noticed within it). Also how long writes are refused NO_SPACE after a drain
   * or a direct write last got NO_SPACE, unless a drain succeeds first. Default 5000.
   */
  drainRetryMaxMs?: number;
}

const DRAIN_RETRY_MAX_MS_DEFAULT = 5_000;

/** How long a zeroing without a deadline of its own waits for a snapshot's hold. */
const ZERO_HOLD_MS_DEFAULT = 10_000;

/**
 * What a byte a reference covers weighs against the oplog's limits, as a share of a
 * byte held in the index: its data is in the extent groups already, but drain must
 * still record it and a restart replays it.
 */
const REF_WEIGHT_DIVISOR = 16;
const refWeight = (bytes: number): number => Math.ceil(bytes / REF_WEIGHT_DIVISOR);

/** Compare-and-set attempts of one vDisk map row update (a second or third only after a stale cached copy). */
const ROW_WRITE_ATTEMPTS = 3;

/** A row's block table with `changes` applied: a location sets a block's extent, undefined frees it. */
function withChanges(blocks: VdiskRow['blocks'], changes: ReadonlyMap<number, BlockLocation | undefined>): VdiskRow['blocks'] {
  const out = { ...blocks };
  for (const [block, location] of changes) {
    if (location === undefined) delete out[String(block)];
    else out[String(block)] = location;
  }
  return out;
}

export interface VdiskShape {
  id: bigint;
  sizeBytes: number;
  blockSizeBytes: number;
  /** A snapshot: writes and zeroing are refused INVALID. */
  readOnly?: boolean;
  /** The generation recorded in its ownership record when it was opened (absent: 0); see snapshot.ts. */
  generation?: number;
}

const tracer = trace.getTracer('@strata/vdisk-controller');

/** See Vdisk.backlog. */
export interface VdiskBacklog {
  bytes: number;
  entries: number;
  oldestAgeMs: number;
  drainedBytes: number;
  drainedSeq: number;
  lastSeq: number;
}

export class Vdisk {
  readonly index: BlockIndex;
  /** What the read path (read-path.ts) reads: the index over the extents the vDisk map names. */
  private readonly readSources: ReadSources;
  /** The traced writes the index holds, for the next drain span's links. */
  readonly writeLinks = new WriteLinks<SpanContext>(SPAN_LINKS_MAX);
  private readonly rows = new Map<number, { value: VdiskRow; revision: number }>();
  /** Extents allocated for blocks whose vDisk map entry is not written yet (a drain failed after allocating). */
  private readonly allocated = new Map<number, BlockLocation>();
  /** Blocks the curator's compaction asked drain to move out of an evacuating extent group (block -> that extent group). */
  private readonly evacuate = new Map<number, bigint>();
  private drainedSeq: number;
  /** The undrained oplog entries that carry data, oldest first, with their data bytes (for bounded drains). */
  private readonly entryBytes: Array<{ seq: number; bytes: number; atMs: number }> = [];
  /** Data bytes of the entries drained since the vDisk was opened (for the drain-rate metric). */
  private drainedBytesTotal = 0;
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
  /** Consecutive failed drains, and the code of the last failure (see DrainFailure). */
  private drainFailures = 0;
  private lastDrainErrorCode: string | undefined;
  /**
   * Set when a drain or a direct write got NO_SPACE: new writes are refused NO_SPACE
   * (never acknowledged into an oplog that cannot drain) until a drain succeeds, or
   * until `untilMs` passes with no new NO_SPACE, when a write may try again.
   */
  private noSpace: { err: StrataError; untilMs: number } | undefined;
  private staging: StagingExtents;
  /** The vDisk's generation: blocks whose locations are older are shared with a snapshot (snapshot.ts). */
  private generationNow: number;
  /** Set while a snapshot holds new writes: they wait for it (bounded by their deadline). */
  private hold: Promise<void> | undefined;
  /** Writes and zeroings past the hold and not yet stored or failed: a snapshot waits for them. */
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly shape: VdiskShape,
    readonly appender: Oplog,
    private readonly space: ExtentSpace,
    private readonly ports: VdiskPorts,
    private readonly settings: VdiskSettings,
    drainedSeq: number,
    private readonly onDrainError: (err: unknown, failure: DrainFailure) => void,
    private readonly onDrainRecovered?: (failures: number) => void,
  ) {
    this.index = new BlockIndex(shape.blockSizeBytes);
    this.readSources = {
      vdisk: shape.id,
      index: this.index,
      location: async (block) => (await this.row(this.rowOf(block))).value.blocks[String(block)],
      read: (location, offset, length) => this.space.read(location, offset, length),
      materialize: (segments) => this.materialize(segments),
    };
    this.drainedSeq = drainedSeq;
    this.generationNow = shape.generation ?? 0;
    this.staging = this.newStaging();
  }

  private newStaging(): StagingExtents {
    return new StagingExtents((block, length) => this.space.allocate(block, length, block % this.settings.directLanes));
  }

  get generation(): number {
    return this.generationNow;
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
      } else if (op.op === 'ref') {
        this.index.insert(op.offset, op.length, seq, { egroup: op.egroup, offset: op.egOffset });
        bytes += refWeight(op.length);
      } else this.index.insert(op.offset, op.length, seq, undefined);
    }
    if (bytes > 0) {
      // The appends of one message share its sequence: one entry for them all.
      const last = this.entryBytes.at(-1);
      if (last?.seq === seq) last.bytes += bytes;
      else this.entryBytes.push({ seq, bytes, atMs: performance.now() });
    }
    if (writes !== undefined) this.writeLinks.record(seq, writes);
  }

  /**
   * The write path's one step into the oplog: appends `ops` and, once stored, applies
   * them to the index at the sequence the append returns, in the same turn (a drain
   * starts in a turn of its own: see kickDrain).
   */
  private async appendAndApply(...ops: OplogOp[]): Promise<void> {
    const { seq, span } = await this.appender.append(...ops);
    this.apply(seq, ops, span === undefined ? undefined : [span]);
  }

  /** Describes the I/O on the active span (the controller's handler span), when it records. */
  private describe(op: string, offset: number, length: number): void {
    recordingSpan()?.setAttributes({ [SpanAttr.vdisk]: String(this.shape.id), [SpanAttr.ioOp]: op, [SpanAttr.offset]: offset, [SpanAttr.length]: length });
  }

  /** The vDisk grew (`strata vdisk resize`): ranges up to the new end are served from now on. It never shrinks. */
  grow(sizeBytes: number): void {
    if (sizeBytes > this.shape.sizeBytes) this.shape.sizeBytes = sizeBytes;
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
    const fits = (): boolean => this.undrainedBytes() + this.pendingBytes + bytes <= this.settings.undrainedBytesMax || this.pendingBytes + this.undrainedBytes() === 0;
    if (this.roomQueue.length === 0 && fits()) {
      this.pendingBytes += bytes;
      return;
    }
    const turn = {};
    this.roomQueue.push(turn);
    try {
      while (this.roomQueue[0] !== turn || !fits()) {
        if (this.fencedBy !== undefined) throw this.fencedBy;
        this.checkNoSpace();
        recordingSpan()?.addEvent('oplog full: waiting for drain', { 'strata.undrained_bytes': this.undrainedBytes() + this.pendingBytes });
        // After a failed drain the retry waits for its backoff: kicking here would
        // retry at once each time this writer wakes, a busy loop (seen: 4,000 failed
        // drains a second on a full disk).
        if (this.drainFailures === 0) this.kickDrain();
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

  /** What the index holds against the oplog's limits: bytes, and references by their weight. */
  private undrainedBytes(): number {
    return this.index.heldBytes + refWeight(this.index.refBytes);
  }

  /**
   * Refuses a write that could not be stored (decided before it is acknowledged):
   * NO_SPACE while drain or a direct write recently got NO_SPACE, or when the
   * container cannot place the undrained backlog plus this write. Reads, zeroing and
   * what was acknowledged are not affected.
   */
  private checkRoom(bytes: number): void {
    this.checkNoSpace();
    const refusal = this.ports.roomFor?.(bytes, this.index.heldBytes + this.pendingBytes);
    if (refusal !== undefined) throw refusal;
  }

  private checkNoSpace(): void {
    if (this.noSpace === undefined) return;
    if (performance.now() < this.noSpace.untilMs) throw this.noSpace.err;
    this.noSpace = undefined;
  }

  /** Writes are refused NO_SPACE for a while (see `noSpace`). */
  private latchNoSpace(cause: StrataError): StrataError {
    const err = new StrataError(ErrorCode.NO_SPACE, `vdisk ${this.shape.id}: no space to store writes: ${cause.message}`, { cause });
    this.noSpace = { err, untilMs: performance.now() + this.retryMaxMs() };
    return err;
  }

  private retryMaxMs(): number {
    return this.settings.drainRetryMaxMs ?? DRAIN_RETRY_MAX_MS_DEFAULT;
  }

  async write(offset: number, data: Uint8Array, deadline: number): Promise<void> {
    this.describe('write', offset, data.length);
    this.checkWritable();
    this.checkRange(offset, data.length);
    // No await unless held: a write reaches its oplog append (or staging) in the same
    // turn as before snapshots existed, which the order of concurrent writes relies on.
    if (this.hold !== undefined) await this.passHold(deadline);
    this.inFlight++;
    try {
      this.checkRoom(data.length);
      if (data.length >= this.settings.directWriteBytesMin && (await this.writeDirect(offset, data, deadline))) return;
      await this.reserve(data.length, deadline);
      try {
        // The request's bytes are a view into its message buffer: keep a copy.
        await this.appendAndApply({ op: 'write', offset, data: Uint8Array.prototype.slice.call(data) });
      } finally {
        this.released(data.length);
      }
      this.afterWrite();
    } finally {
      this.doneWriting();
    }
  }

  private checkWritable(): void {
    if (this.shape.readOnly === true) throw new StrataError(ErrorCode.INVALID, `vdisk ${this.shape.id} is a snapshot: it is read-only`);
  }

  /** Waits while a snapshot holds new writes, at most until `deadline` (TIMEOUT: the client retries). */
  private async passHold(deadline: number): Promise<void> {
    while (this.hold !== undefined) {
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) throw new StrataError(ErrorCode.TIMEOUT, `vdisk ${this.shape.id}: held by a snapshot past the request's deadline`);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.hold, new Promise<void>((resolve) => (timer = setTimeout(resolve, timerMs(remainingMs))))]);
      clearTimeout(timer);
    }
  }

  private doneWriting(): void {
    if (--this.inFlight === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /**
   * A direct write (see the top): the bytes go to a staging extent of each block they
   * touch, on every replica, then one oplog message of `ref` ops commits them all,
   * and the index learns the references when it is stored (apply). False when the
   * replicas could not take the bytes (a replica's node hung, dead or refusing, no
   * room to place an extent group): nothing was committed, and the caller writes
   * through the oplog instead, which needs no extent store now.
   */
  private async writeDirect(offset: number, data: Uint8Array, deadline: number): Promise<boolean> {
    const weight = refWeight(data.length);
    await this.reserve(weight, deadline);
    try {
      const parts = await this.placeDirect(offset, data).catch((err: unknown) => {
        // Deposed: the oplog would refuse the write too.
        if (isStrataError(err, ErrorCode.FENCED)) throw err;
        // No room on the replicas (or for a new extent group): drain would find none
        // either, so the write is refused rather than acknowledged into the oplog.
        if (isStrataError(err, ErrorCode.NO_SPACE)) throw this.latchNoSpace(err);
        recordingSpan()?.addEvent('direct write not placed: through the oplog', { 'exception.message': (err as Error).message });
        return undefined;
      });
      if (parts === undefined) return false;
      let committed = false;
      try {
        await this.appendAndApply(...parts.map((p) => ({ op: 'ref' as const, offset: p.start, length: p.end - p.start, egroup: p.egroup, egOffset: p.egOffset })));
        committed = true;
        await this.ports.hold?.(FaultStep.directCommitted);
      } finally {
        for (const p of parts) this.staging.done(p, committed);
      }
    } finally {
      this.released(weight);
    }
    this.afterWrite();
    return true;
  }

  /** Stages the write's parts and writes their bytes to every replica; on failure, the staging extents are tainted. */
  private async placeDirect(offset: number, data: Uint8Array): Promise<Array<Staged & { start: number; end: number }>> {
    const parts = await this.stageParts(offset, data.length);
    try {
      await this.ports.hold?.(FaultStep.directStaged);
      const byEgroup = new Map<bigint, EgPiece[]>();
      for (const p of parts) {
        const pieces = byEgroup.get(p.egroup) ?? [];
        pieces.push({ offset: p.egOffset, data: data.subarray(p.start - offset, p.end - offset) });
        byEgroup.set(p.egroup, pieces);
      }
      await settleAll([...byEgroup].map(([egroup, pieces]) => this.space.put(egroup, pieces)));
      await this.ports.hold?.(FaultStep.directWritten);
      return parts;
    } catch (err) {
      for (const p of parts) this.staging.done(p, false);
      throw err;
    }
  }

  /** The range [offset, offset+length) cut at block boundaries, each part staged. */
  private async stageParts(offset: number, length: number): Promise<Array<Staged & { start: number; end: number }>> {
    const bs = this.shape.blockSizeBytes;
    const parts: Array<Staged & { start: number; end: number }> = [];
    try {
      for (let start = offset; start < offset + length; ) {
        const block = Math.floor(start / bs);
        const end = Math.min(offset + length, (block + 1) * bs);
        const staged = await this.staging.stage(block, this.blockLength(block), start - block * bs, end - block * bs);
        parts.push({ ...staged, start, end });
        start = end;
      }
    } catch (err) {
      for (const p of parts) this.staging.done(p, false);
      throw err;
    }
    return parts;
  }

  /** `segments` with every reference read into bytes (from the extent groups). */
  private materialize(segments: readonly Segment[]): Promise<Segment[]> {
    return Promise.all(
      segments.map(async (s) => {
        if (s.ref === undefined) return s;
        const length = s.end - s.start;
        const data = await this.space.read({ egroup: s.ref.egroup, offset: s.ref.offset, length }, 0, length);
        return { start: s.start, end: s.end, seq: s.seq, data };
      }),
    );
  }

  async zero(offset: number, length: number, deadline = performance.now() + ZERO_HOLD_MS_DEFAULT): Promise<void> {
    this.describe('zero', offset, length);
    this.checkWritable();
    this.checkRange(offset, length);
    if (this.hold !== undefined) await this.passHold(deadline);
    this.inFlight++;
    try {
      await this.appendAndApply({ op: 'zero', offset, length });
      this.afterWrite();
    } finally {
      this.doneWriting();
    }
  }

  // ---- The curator's requests: record a copy, release and compact extent groups -----------

  /** The curator's copy of a replica of one of this vDisk's extent groups, recorded by its writer (ExtentGroups.recordCopy). */
  recordCopy(copy: CopyRecord): Promise<number> {
    return this.space.recordCopy(copy);
  }

  /**
   * The curator's release (`strata.vdc.<node>.release`): of `egroups`, extent groups
   * of this vDisk that no row names by the curator's reading, those this owner gives
   * up for good. Deleting one it still uses would lose acknowledged writes, so it
   * keeps every one that is
   *  - a lane's open extent group (allocations go on there; ExtentGroups.retire),
   *  - where a staging extent is current or has writes in flight,
   *  - where drain allocated an extent not yet recorded in a row (`allocated`),
   *  - named by an undrained `ref` op in the index (a direct write committed to the
   *    oplog, whose bytes are there; a restarted owner replays the same ops).
   * First the others are retired (no allocation there from now on) and their idle
   * current staging extents dropped; then one turn lets the allocations handed out
   * before reach `allocated` and the staging table (promise continuations, no I/O);
   * then it judges. The released ones stay retired: never allocated in, staged into,
   * adopted from (adoption needs a reference) or written by drain (not writable).
   */
  async release(egroups: readonly bigint[]): Promise<bigint[]> {
    const retiring = this.space.retire(egroups);
    this.staging.abandonIn(new Set(retiring));
    await new Promise<void>((resolve) => setImmediate(resolve));
    const used = this.egroupsInUse();
    this.space.unretire(retiring.filter((egroup) => used.has(egroup)));
    return retiring.filter((egroup) => !used.has(egroup));
  }

  /**
   * The curator's compaction (`strata.vdc.<node>.compact`): `egroups` (mostly dead, by
   * the curator's reading) are evacuated: retired for good (no allocation or staging
   * there, and drain never writes them in place: not writable), and every block the
   * rows place there is queued for the next drain, which moves it to a new extent
   * through its own move path (moveBlock: the block's content with its undrained
   * writes laid over it), records the rows and frees the old extent. Nothing is
   * written outside the drain, so no client write can race a move. A lane's open
   * extent group is not evacuated.
   */
  async compact(egroups: readonly bigint[]): Promise<{ evacuating: bigint[]; blocks: number }> {
    const evacuating = this.space.evacuate(egroups);
    const set = new Set(evacuating);
    this.staging.abandonIn(set);
    let blocks = 0;
    for (let row = 0; row < rowCount(this.shape.sizeBytes, this.shape.blockSizeBytes, this.settings.rowBlocks); row++) {
      for (const [block, location] of Object.entries((await this.row(row)).value.blocks)) {
        if (!set.has(location.egroup)) continue;
        this.evacuate.set(Number(block), location.egroup);
        blocks++;
      }
    }
    if (blocks > 0) this.kickDrain();
    return { evacuating, blocks };
  }

  /** Whether drain has nothing to do: no undrained data, no block to move. */
  private get nothingToDrain(): boolean {
    return this.index.blockCount === 0 && this.evacuate.size === 0;
  }

  /** The extent groups this owner holds in memory: staging extents, unrecorded allocations, undrained references. */
  private egroupsInUse(): Set<bigint> {
    const out = this.staging.egroups();
    for (const location of this.allocated.values()) out.add(location.egroup);
    for (const egroup of this.index.refEgroups()) out.add(egroup);
    return out;
  }

  // ---- Snapshot ---------------------------------------------------------------------------

  /**
   * Cuts a snapshot into the rows of `snapshot`: holds new writes, waits for those in
   * flight (so every write acknowledged before the hold is stored in the oplog),
   * drains everything stored, seals what the source allocates in (its open extent
   * groups and staging extents: no extent made before the cut is ever allocated
   * again), bumps the generation (from now on every block drained before is shared),
   * copies the rows, and lets writes go on. Bounded by `deadline`: past it, or on a
   * failed drain, it fails and the writes go on (the generation may have been bumped:
   * harmless, a later write of an old block only moves it).
   */
  async snapshot(snapshot: bigint, deadline: number): Promise<SnapshotResult> {
    const { recordGeneration, putSnapshotRow } = this.ports;
    if (recordGeneration === undefined || putSnapshotRow === undefined) throw new StrataError(ErrorCode.INVALID, `vdisk ${this.shape.id}: snapshots are not supported here`);
    this.checkWritable();
    if (this.hold !== undefined) throw new StrataError(ErrorCode.CONFLICT, `vdisk ${this.shape.id}: a snapshot is being taken already`);
    const startedMs = performance.now();
    let release!: () => void;
    this.hold = new Promise<void>((resolve) => (release = resolve));
    try {
      await this.waitIdle(deadline);
      const cutSeq = this.appender.lastSequence;
      await this.drainAll(deadline);
      this.allocated.clear();
      this.staging = this.newStaging();
      this.space.seal();
      // Bumped here before it is recorded: an extent group whose creation was under way
      // during the cut carries the old generation, and is then never opened (see
      // ExtentGroups.opened); the sweep treats only what is below the recorded one as sealed.
      const generation = this.generationNow + 1;
      this.generationNow = generation;
      await recordGeneration(generation);
      const rows: Array<{ row: number; value: VdiskRow }> = [];
      for (let row = 0; row < rowCount(this.shape.sizeBytes, this.shape.blockSizeBytes, this.settings.rowBlocks); row++) {
        rows.push({ row, value: (await this.row(row)).value });
      }
      const plan = planRowCopy(rows);
      await settleAll(plan.rows.map((r) => putSnapshotRow(snapshot, r.row, r.value)));
      return { generation, cutSeq, rows: plan.rows.length, blocks: plan.blocks, pauseMs: Math.round(performance.now() - startedMs) };
    } finally {
      this.hold = undefined;
      release();
    }
  }

  /** Waits until no write is in flight, within `deadline`. */
  private async waitIdle(deadline: number): Promise<void> {
    while (this.inFlight > 0) {
      const remainingMs = deadline - performance.now();
      if (remainingMs <= 0) throw new StrataError(ErrorCode.TIMEOUT, `vdisk ${this.shape.id}: writes in flight did not finish before the snapshot's deadline`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timerMs(remainingMs));
        this.idleWaiters.push(resolve);
      });
      clearTimeout(timer);
    }
  }

  /** Drains until the index is empty (everything stored is in the extent groups and rows), within `deadline`. */
  private async drainAll(deadline: number): Promise<void> {
    while (this.index.blockCount > 0) {
      if (this.fencedBy !== undefined) throw this.fencedBy;
      if (performance.now() > deadline) throw new StrataError(ErrorCode.TIMEOUT, `vdisk ${this.shape.id}: drain did not finish before the snapshot's deadline`);
      if (this.draining === undefined) this.kickDrain();
      const running = this.draining;
      if (running === undefined) throw new StrataError(ErrorCode.UNAVAILABLE, `vdisk ${this.shape.id}: drain cannot run now`);
      await running;
      if (this.drainFailures > 0) throw new StrataError(ErrorCode.UNAVAILABLE, `vdisk ${this.shape.id}: drain failed during the snapshot (${this.lastDrainErrorCode ?? 'error'}); try again`);
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.describe('read', offset, length);
    this.checkRange(offset, length);
    return readRange(this.readSources, offset, length);
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
    if (this.undrainedBytes() >= this.settings.drainStartBytes) this.kickDrain();
    clearTimeout(this.drainTimer);
    this.drainTimer = setTimeout(() => this.kickDrain(), this.settings.drainIdleMs);
  }

  /** Starts a drain, or, when one is running, another as soon as it ends. */
  kickDrain(): void {
    if (this.closed || this.fencedBy !== undefined || this.nothingToDrain) return;
    if (this.draining !== undefined) {
      this.drainAgain = true;
      return;
    }
    this.drainAgain = false;
    let failed = false;
    // The drain starts in a turn of its own, when every append stored by then has been
    // applied. The appender's last sequence moves as a message is stored, a moment
    // before its writers apply it (one after another); a drain started in between (a
    // kick from a write, or from the end of the previous drain) would go up to that
    // sequence without their data and record it as drained.
    this.draining = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => (this.closed ? undefined : this.drain()))
      .then(() => {
        if (this.drainFailures > 0) this.onDrainRecovered?.(this.drainFailures);
        this.drainFailures = 0;
        this.lastDrainErrorCode = undefined;
        this.noSpace = undefined;
      })
      .catch((err: unknown) => {
        failed = true;
        const code = err instanceof StrataError ? err.code : 'INTERNAL';
        this.drainFailures++;
        const changed = code !== this.lastDrainErrorCode;
        this.lastDrainErrorCode = code;
        if (isStrataError(err, ErrorCode.NO_SPACE)) this.latchNoSpace(err);
        this.onDrainError(err, { failures: this.drainFailures, changed, retryInMs: this.retryDelayMs() });
      })
      .finally(() => {
        this.draining = undefined;
        for (const wake of this.spaceWaiters.splice(0)) wake();
        if (this.closed || this.fencedBy !== undefined || this.nothingToDrain) return;
        // Writes that arrived meanwhile (or a kick that found this drain running) are
        // drained next: at once, or after the idle delay when this drain failed, so
        // a failing extent store is not hammered.
        if (!failed && (this.drainAgain || this.undrainedBytes() >= this.settings.drainStartBytes)) this.kickDrain();
        else {
          clearTimeout(this.drainTimer);
          this.drainTimer = setTimeout(() => this.kickDrain(), failed ? this.retryDelayMs() : this.settings.drainIdleMs);
        }
      });
  }

  /**
   * The wait before the next drain after `drainFailures` failures in a row: drainIdleMs
   * doubled with each one after the first, at most drainRetryMaxMs (bounded backoff:
   * a full disk or a down store is retried a few times a minute, not ten times a second).
   */
  private retryDelayMs(): number {
    const doublings = Math.min(Math.max(this.drainFailures - 1, 0), 30);
    return Math.min(this.settings.drainIdleMs * 2 ** doublings, Math.max(this.retryMaxMs(), this.settings.drainIdleMs));
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
    // The blocks with undrained data, and those the curator's compaction asked to move.
    const withMoves = (list: number[]): number[] => (this.evacuate.size === 0 ? list : [...new Set([...list, ...this.evacuate.keys()])].sort((a, b) => a - b));
    let blocks = withMoves(this.index.blocksUpTo(upTo));
    // A round whose entries later writes overwrote whole has nothing left to write.
    while (blocks.length === 0 && upTo < this.appender.lastSequence) {
      this.forgetEntriesUpTo(upTo);
      upTo = this.roundEnd();
      blocks = withMoves(this.index.blocksUpTo(upTo));
    }
    if (blocks.length === 0) return;
    // The drain span is a child of the oldest write it drains (that write's oplog
    // append), whatever context kicked it (a later write's, through afterWrite, or its
    // idle timer): so a write's trace runs from the gateway to the extent stores and
    // metadata shards that stored it, one trace as the design promises. It is linked to
    // every write it drains (bounded), and a root when none was traced. Its extent-store
    // writes and metadata puts run inside it, so the bus's request spans, and the
    // stores' and shards' handler spans, are its descendants.
    const linked = this.writeLinks.upTo(upTo);
    const links = linked.contexts.map((context): Link => ({ context }));
    const oldest = linked.contexts[0];
    const parent = oldest === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, oldest);
    const span = tracer.startSpan('drain', { links }, parent);
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
    const groups = new Map<bigint, { pieces: EgPiece[]; changes: ExtentChanges }>();
    const group = (egroup: bigint): { pieces: EgPiece[]; changes: ExtentChanges } => {
      let g = groups.get(egroup);
      if (g === undefined) groups.set(egroup, (g = { pieces: [], changes: { added: [], freed: [] } }));
      return g;
    };
    const rowChanges = new Map<number, Map<number, BlockLocation | undefined>>();
    let adoptions = 0;
    const setBlock = (block: number, location: BlockLocation | undefined): void => {
      const row = this.rowOf(block);
      let changes = rowChanges.get(row);
      if (changes === undefined) rowChanges.set(row, (changes = new Map()));
      // A new home carries the generation it is made at (snapshot.ts).
      changes.set(block, location === undefined ? undefined : stamped(location, this.generationNow));
    };

    // Extents the vDisk map will no longer name, marked free in the extent-group map
    // only once the rows no longer point at them (step 3b).
    const freed = new Map<bigint, BlockLocation[]>();
    const free = async (location: BlockLocation): Promise<void> => {
      // Another vDisk's extent group (a clone's shared block): its writer keeps its refs.
      if (!(await this.space.owns(location.egroup))) return;
      const list = freed.get(location.egroup);
      if (list === undefined) freed.set(location.egroup, [location]);
      else list.push(location);
    };

    // 1. Plan.
    for (const block of blocks) {
      if (this.closed) return;
      const mapped = (await this.row(this.rowOf(block))).value.blocks[String(block)];
      let location = mapped ?? this.allocated.get(block);
      const adopted = await this.adoptStaging(block, upTo, mapped);
      if (adopted !== undefined) {
        // A staging extent becomes the block's extent: no copy of what it holds.
        const g = group(adopted.location.egroup);
        g.changes.added.push({ block, location: adopted.location });
        g.pieces.push(...adopted.pieces);
        setBlock(block, adopted.location);
        adoptions++;
        if (location !== undefined) await free(location);
        this.allocated.delete(block);
        continue;
      }
      // What the index holds of the block up to the drain's sequence (drain-plan.ts).
      const { start: blockStart, length, segments: visible, zerosOnly, whole } = planBlock(this.index, block, this.blockLength(block), mapped, upTo);
      // References to the block's own extent (an adopted staging extent) are in place already.
      const segments = await this.materialize(visible.filter((seg) => mapped === undefined || !isAt(seg, mapped, blockStart)));
      // Queued by the curator's compaction and still in the evacuating extent group:
      // moved below (that extent group is not writable), even with nothing new to write.
      const evacuating = mapped !== undefined && this.evacuate.get(block) === mapped.egroup;
      if (!evacuating) this.evacuate.delete(block);
      if (segments.length === 0 && mapped !== undefined && !evacuating) continue;
      if (zerosOnly && (location === undefined || whole)) {
        // Zeros onto nothing cost nothing; a block zeroed whole no longer needs its
        // extent. An extent allocated by a failed drain is given up too: it may hold
        // some of that drain's bytes, which these zeros supersede.
        if (location !== undefined) await free(location);
        if (mapped !== undefined) setBlock(block, undefined);
        this.allocated.delete(block);
        continue;
      }
      if (location !== undefined && ((mapped !== undefined && (await this.shared(mapped))) || !(await this.space.writable(location.egroup)))) {
        // Shared with a snapshot (redirect-on-write), or a replica of its extent group
        // is on a hung or dead node (drain never waits on it): the block moves whole
        // to a new extent, and the old one is never written.
        const moved = await this.moveBlock(block, mapped, segments);
        const g = group(moved.location.egroup);
        g.changes.added.push({ block, location: moved.location });
        g.pieces.push({ offset: moved.location.offset, data: moved.image });
        setBlock(block, moved.location);
        await free(location);
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
    if (adoptions > 0) await this.ports.hold?.(FaultStep.drainAdopted);

    // 3. The vDisk map.
    await settleAll([...rowChanges].map(([row, changes]) => this.updateRow(row, changes)));
    for (const [, changes] of rowChanges) {
      for (const block of changes.keys()) {
        this.allocated.delete(block);
        this.evacuate.delete(block);
      }
    }
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
   * The staging extent that drain makes the extent of `block` (see the top), and the
   * pieces that fill in its ranges no reference in the index names: the block's
   * content there as of `upTo` (its extent's bytes, or zeros, under the index's other
   * ranges). Undefined when copying is cheaper or adoption is not safe: the staging
   * extent holds less than half the block (and is not a fresh one of a block with no
   * extent), a write to it is in flight (its range is neither committed nor free), or
   * its pieces would need a replica that drain cannot write now.
   *
   * Ranges of the staging extent that references newer than `upTo` name keep those
   * newer bytes, not the content as of `upTo`: the references stay in the index
   * above them until a later drain, so no read sees the difference.
   */
  private async adoptStaging(block: number, upTo: number, mapped: BlockLocation | undefined): Promise<{ location: BlockLocation; pieces: EgPiece[] } | undefined> {
    const blockStart = block * this.shape.blockSizeBytes;
    const length = this.blockLength(block);
    const visible = this.index.query(blockStart, blockStart + length, upTo);
    let newest: Segment | undefined;
    for (const seg of visible) if (seg.ref !== undefined && (newest === undefined || seg.seq > newest.seq)) newest = seg;
    if (newest?.ref === undefined) return undefined;
    const home: BlockLocation = { egroup: newest.ref.egroup, offset: newest.ref.offset - (newest.start - blockStart), length };
    // Already the block's extent: the references are in place, and the rest is written in place.
    if (mapped !== undefined && mapped.egroup === home.egroup && mapped.offset === home.offset) return undefined;
    const held = this.index.query(blockStart, blockStart + length).filter((seg) => isAt(seg, home, blockStart));
    // Sealed before anything else: from here no new write lands in it.
    const sealed = this.staging.seal(home);
    if (sealed !== undefined && sealed.inFlight > 0) return undefined;
    // Where it reads as zeros: nowhere, unless this controller made it and no write to it failed.
    const zeroed = (start: number, end: number): boolean =>
      sealed !== undefined && !sealed.tainted && !sealed.written.some((w) => w.start < end - blockStart && start - blockStart < w.end);
    const heldBytes = held.reduce((n, seg) => n + seg.end - seg.start, 0);
    if (heldBytes * 2 < length && !(mapped === undefined && sealed !== undefined && !sealed.tainted)) return undefined;

    const pieces: EgPiece[] = [];
    for (const hole of gaps(held, blockStart, blockStart + length)) {
      const over = visible.filter((seg) => seg.start < hole.end && hole.start < seg.end).map((seg) => clip(seg, Math.max(seg.start, hole.start), Math.min(seg.end, hole.end)));
      // A block with no extent reads as zeros where nothing was written: so does the staging extent, where it was never written.
      if (mapped === undefined && over.length === 0 && zeroed(hole.start, hole.end)) continue;
      const at = home.offset + (hole.start - blockStart);
      if (mapped === undefined && over.every((seg) => seg.data === undefined && seg.ref === undefined)) {
        pieces.push({ offset: at, zeros: hole.end - hole.start });
        continue;
      }
      const bytes = mapped === undefined ? new Uint8Array(hole.end - hole.start) : Uint8Array.prototype.slice.call(await this.space.read(mapped, hole.start - blockStart, hole.end - hole.start));
      pieces.push({ offset: at, data: overlay(bytes, hole.start, await this.materialize(over)) });
    }
    if (pieces.length > 0 && !(await this.space.writable(home.egroup))) return undefined;
    return { location: home, pieces };
  }

  /**
   * A new extent for `block` and the block's whole content as of the drain: what its
   * current extent holds (read from a healthy replica; zeros when it has none) with
   * the index's ranges up to the drain's sequence (`segments`, references read) laid
   * over it. The old extent is not written.
   */
  private async moveBlock(block: number, mapped: BlockLocation | undefined, segments: readonly Segment[]): Promise<{ location: BlockLocation; image: Uint8Array }> {
    const blockStart = block * this.shape.blockSizeBytes;
    const length = this.blockLength(block);
    const image = mapped === undefined ? new Uint8Array(length) : Uint8Array.prototype.slice.call(await this.space.read(mapped, 0, length));
    overlay(image, blockStart, segments);
    const location = await this.space.allocate(block, length);
    this.allocated.set(block, location);
    return { location, image };
  }

  /** Whether the block at `location` is shared (snapshot.ts): then drain never writes it in place. */
  private async shared(location: BlockLocation): Promise<boolean> {
    return isShared(location, this.generationNow, await this.space.owns(location.egroup));
  }

  private forgetEntriesUpTo(seq: number): void {
    let n = 0;
    while (n < this.entryBytes.length && this.entryBytes[n]!.seq <= seq) n++;
    for (const entry of this.entryBytes.splice(0, n)) this.drainedBytesTotal += entry.bytes;
  }

  private async updateRow(rowIndex: number, changes: ReadonlyMap<number, BlockLocation | undefined>): Promise<void> {
    const row: CasRecord<VdiskRow> = {
      what: `vdisk ${this.shape.id} row ${rowIndex}`,
      read: () => this.row(rowIndex),
      write: (value, revision) => this.ports.putRow(rowIndex, value, revision),
      // Only this controller writes its rows; a conflict means our cached copy is
      // stale (a previous incarnation wrote it): read it again.
      afterConflict: () => void this.rows.delete(rowIndex),
    };
    try {
      const { after } = await modifyRecord(row, (current) => ({ blocks: withChanges(current?.value.blocks ?? {}, changes) }), ROW_WRITE_ATTEMPTS);
      this.rows.set(rowIndex, after!);
    } catch (err) {
      // After a failure other than a conflict (a TIMEOUT, say) the put may or may not
      // have landed: the cached revision can no longer be trusted either.
      this.rows.delete(rowIndex);
      throw err;
    }
  }

  get drained(): number {
    return this.drainedSeq;
  }

  /**
   * What the oplog holds that drain has not stored yet, for the metrics: the bytes
   * counted against the oplog's limit, the entries that carry data, how long the
   * oldest of them has waited (the replication lag: data that is only in the oplog),
   * and the bytes drained since the vDisk was opened.
   */
  backlog(nowMs = performance.now()): VdiskBacklog {
    const oldest = this.entryBytes[0];
    return {
      bytes: this.undrainedBytes(),
      entries: this.entryBytes.length,
      oldestAgeMs: oldest === undefined ? 0 : nowMs - oldest.atMs,
      drainedBytes: this.drainedBytesTotal,
      drainedSeq: this.drainedSeq,
      lastSeq: this.appender.lastSequence,
    };
  }

  /** Waits for a running drain; then stops draining. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.drainTimer);
    await this.draining;
  }
}

/** Whether `seg` is a reference to its own place in the extent at `location` of the block starting at `blockStart`. */
function isAt(seg: Segment, location: BlockLocation, blockStart: number): boolean {
  return seg.ref !== undefined && seg.ref.egroup === location.egroup && seg.ref.offset === location.offset + (seg.start - blockStart);
}

/** The ranges of [start, end) that none of `segments` (in offset order, not overlapping) covers. */
function gaps(segments: readonly Segment[], start: number, end: number): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  let pos = start;
  for (const seg of segments) {
    if (seg.start > pos) out.push({ start: pos, end: seg.start });
    pos = Math.max(pos, seg.end);
  }
  if (pos < end) out.push({ start: pos, end });
  return out;
}

/** A wait's timer: Node fires one longer than 2^31 - 1 ms at once, so it is capped (the waiting loop looks again). */
function timerMs(remainingMs: number): number {
  return Math.min(remainingMs, 2 ** 31 - 1);
}
