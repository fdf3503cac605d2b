// Where a vDisk's direct writes put their bytes. A direct write (a large one: see
// vdisk.ts) never overwrites bytes that a committed write may still need, so each
// block it touches gets a staging extent: a new extent of the block's size, in one
// of the direct-write lanes' extent groups. A write lands at its own offset within
// the block there, if that range of the staging extent is still unwritten, and
// otherwise the block gets a new staging extent. Writes to a block one after another
// (a sequential stream in requests smaller than a block) so fill one staging extent,
// and drain can make it the block's extent without copying a byte.
//
// A staging extent takes no more writes once drain has taken it (sealed), or once a
// write to it failed: the bytes that write left there are unknown (tainted), so
// drain must not trust its unwritten ranges to read as zeros.
import { ErrorCode, StrataError } from '@strata/errors';
import type { BlockLocation } from '@strata/proto';

interface Staging {
  block: number;
  location: BlockLocation;
  /** Ranges written or being written, as offsets within the block. */
  written: Array<{ start: number; end: number }>;
  inFlight: number;
  /** The one that takes the next writes of its block. */
  current: boolean;
  sealed: boolean;
  tainted: boolean;
}

/** A range of a block reserved in a staging extent: its bytes go to `egroup` at `egOffset`. */
export interface Staged {
  egroup: bigint;
  egOffset: number;
  staging: Staging;
}

/** What drain learns of a staging extent when it seals it. */
export interface SealedStaging {
  /** Writes to it not finished yet: their ranges are neither committed nor free. */
  inFlight: number;
  /** A write to it failed: its unwritten ranges may hold that write's bytes. */
  tainted: boolean;
  /** The ranges written to it (offsets within the block): elsewhere it reads as zeros, unless tainted. */
  written: ReadonlyArray<{ start: number; end: number }>;
}

/** Attempts at finding room for one range (each loses only to a concurrent write of an overlapping range). */
const STAGE_ATTEMPTS = 8;

const keyOf = (egroup: bigint, offset: number): string => `${egroup}@${offset}`;

export class StagingExtents {
  /** The staging extent that takes the next writes of each block. */
  private readonly current = new Map<number, Staging>();
  /** Every staging extent that is current or has writes in flight, by location. */
  private readonly known = new Map<string, Staging>();
  private readonly allocating = new Map<number, Promise<void>>();

  /** `allocate` gives a new extent of `length` bytes for `block`. */
  constructor(private readonly allocate: (block: number, length: number) => Promise<BlockLocation>) {}

  /** Reserves [start, end) of `block` (offsets within the block, `blockLength` long) in a staging extent. */
  async stage(block: number, blockLength: number, start: number, end: number): Promise<Staged> {
    for (let attempt = 0; attempt < STAGE_ATTEMPTS; attempt++) {
      const s = this.current.get(block);
      if (s !== undefined && !s.sealed && !s.written.some((w) => w.start < end && start < w.end)) {
        s.written.push({ start, end });
        s.inFlight++;
        return { egroup: s.location.egroup, egOffset: s.location.offset + start, staging: s };
      }
      await (this.allocating.get(block) ?? this.startAllocation(block, blockLength));
    }
    throw new StrataError(ErrorCode.UNAVAILABLE, `block ${block}: concurrent writes of the same range kept taking the room of this one; try again`);
  }

  private startAllocation(block: number, blockLength: number): Promise<void> {
    const run = this.allocate(block, blockLength)
      .then((location) => {
        const old = this.current.get(block);
        const s: Staging = { block, location, written: [], inFlight: 0, current: true, sealed: false, tainted: false };
        this.current.set(block, s);
        this.known.set(keyOf(location.egroup, location.offset), s);
        if (old !== undefined) {
          old.current = false;
          this.retire(old);
        }
      })
      .finally(() => this.allocating.delete(block));
    this.allocating.set(block, run);
    return run;
  }

  /** A staged write finished: committed (`ok`) or failed, which taints its staging extent. */
  done(staged: Staged, ok: boolean): void {
    const s = staged.staging;
    s.inFlight--;
    if (!ok) s.tainted = s.sealed = true;
    if (s.sealed && s.current) this.uncurrent(s);
    this.retire(s);
  }

  /**
   * Drain takes the staging extent at `location`: it takes no more writes.
   * Undefined when this controller does not know it (a previous owner's, or one
   * forgotten once idle): then it has nothing in flight, but its unwritten ranges
   * cannot be trusted.
   */
  seal(location: { egroup: bigint; offset: number }): SealedStaging | undefined {
    const s = this.known.get(keyOf(location.egroup, location.offset));
    if (s === undefined) return undefined;
    s.sealed = true;
    if (s.current) this.uncurrent(s);
    this.retire(s);
    return { inFlight: s.inFlight, tainted: s.tainted, written: s.written };
  }

  private uncurrent(s: Staging): void {
    s.current = false;
    if (this.current.get(s.block) === s) this.current.delete(s.block);
  }

  /** Forgets a staging extent that is no longer current and has nothing in flight. */
  private retire(s: Staging): void {
    if (s.inFlight > 0 || s.current) return;
    this.known.delete(keyOf(s.location.egroup, s.location.offset));
  }

  /**
   * The curator's release: the current staging extents in `egroups` with no write in
   * flight take no more writes (their blocks' next writes get new staging extents,
   * elsewhere) and are forgotten. Their committed bytes stay where they are: the
   * index's references name them until drain.
   */
  abandonIn(egroups: ReadonlySet<bigint>): void {
    for (const s of [...this.current.values()]) {
      if (s.inFlight > 0 || !egroups.has(s.location.egroup)) continue;
      this.uncurrent(s);
      this.retire(s);
    }
  }

  /** The extent groups of the staging extents still known: current, or with writes in flight. */
  egroups(): Set<bigint> {
    return new Set([...this.known.values()].map((s) => s.location.egroup));
  }

  /** Staging extents known (for tests: bounded by the blocks being written). */
  get size(): number {
    return this.known.size;
  }
}
