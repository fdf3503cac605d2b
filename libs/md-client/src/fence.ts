// The fencing rule of metadata writes (`md-fence` in proto/io.cddl), kept here so that
// the metadata shards and MemoryMd (./testing) apply the same code: a write that a
// vDisk's owner sends with `fence: {vdisk, epoch}` is refused with FENCED, before it
// changes anything, when the vDisk's current ownership epoch is above `epoch`.
//
// "Current" is the higher of two epochs:
//  - the epoch of the vDisk's ownership record (`vdisk.<id>` in `own`), which the
//    caller supplies (a shard from its watched copy of the bucket);
//  - the highest epoch already accepted in a fenced write for that vDisk. A new owner
//    writes with the epoch it just claimed, possibly before the watch has delivered
//    the claim; once one of its writes is accepted, the old owner's are refused here
//    too, whatever the watch says.
// A write without a fence (an operator's tool, the curator) is not checked.
import { ErrorCode, StrataError } from '@strata/errors';
import type { MdFence } from '@strata/proto';

/**
 * The most vDisks whose accepted epoch is remembered beyond their ownership record.
 * An entry is dropped as soon as the record reaches its epoch (normally milliseconds
 * after the write, when the watch delivers the claim), so only epochs that the record
 * never reached stay: a record deleted meanwhile, or an epoch nobody recorded.
 */
export const MD_FENCE_ACCEPTED_MAX = 65_536;

/** FENCED for a write fenced at `fence` when the vDisk's current epoch is above it; undefined when it may go on. */
export function fenceRefusal(fence: MdFence, currentEpoch: number | undefined): StrataError | undefined {
  if (currentEpoch === undefined || fence.epoch >= currentEpoch) return undefined;
  return new StrataError(
    ErrorCode.FENCED,
    `vdisk ${fence.vdisk}: metadata write fenced at ownership epoch ${fence.epoch}, but the vdisk's current epoch is ${currentEpoch}; the writer is no longer its owner`,
  );
}

/** The fencing state of one writer of the maps (a shard, or MemoryMd): the epochs it accepted, checked with the ownership records. */
export class MdFenceCheck {
  /** vDisk -> highest epoch accepted in a fence, only while above its ownership record's. Insertion order is recency order. */
  private readonly accepted = new Map<bigint, number>();

  constructor(
    /** The epoch of the vDisk's ownership record as this writer knows it, undefined when it has none. */
    private readonly ownershipEpoch: (vdisk: bigint) => number | undefined,
    private readonly acceptedMax = MD_FENCE_ACCEPTED_MAX,
  ) {
    if (!(Number.isSafeInteger(acceptedMax) && acceptedMax > 0)) throw new Error(`MdFenceCheck: acceptedMax (${acceptedMax}) must be a positive integer`);
  }

  /** The vDisk's current epoch: the higher of its ownership record's and the highest accepted. */
  currentEpoch(vdisk: bigint): number | undefined {
    const owned = this.ownershipEpoch(vdisk);
    const accepted = this.accepted.get(vdisk);
    if (owned === undefined) return accepted;
    return accepted === undefined ? owned : Math.max(owned, accepted);
  }

  /**
   * Throws FENCED when `fence` is older than the vDisk's current epoch; otherwise
   * remembers its epoch as accepted. Call it right before the write, with nothing
   * awaited in between, so a write checked after a newer epoch arrived is refused.
   */
  admit(fence: MdFence): void {
    const refusal = fenceRefusal(fence, this.currentEpoch(fence.vdisk));
    if (refusal !== undefined) throw refusal;
    const owned = this.ownershipEpoch(fence.vdisk);
    // The record says as much already: nothing to remember.
    if (owned !== undefined && fence.epoch <= owned) return;
    this.accepted.delete(fence.vdisk);
    if (this.accepted.size >= this.acceptedMax) {
      // The least recently accepted: long since overtaken by its ownership record,
      // unless that record was deleted or never written (see MD_FENCE_ACCEPTED_MAX).
      const oldest = this.accepted.keys().next().value;
      if (oldest !== undefined) this.accepted.delete(oldest);
    }
    this.accepted.set(fence.vdisk, fence.epoch);
  }

  /**
   * The vDisk's ownership record changed (now at `epoch`, or deleted when undefined):
   * an accepted epoch it has reached adds nothing any more. After a delete the vDisk
   * is gone and its metadata is garbage, so its accepted epoch is dropped too.
   */
  ownershipChanged(vdisk: bigint, epoch: number | undefined): void {
    const accepted = this.accepted.get(vdisk);
    if (accepted !== undefined && (epoch === undefined || epoch >= accepted)) this.accepted.delete(vdisk);
  }

  /** vDisks whose accepted epoch is above their ownership record's (for tests and metrics). */
  get acceptedAhead(): number {
    return this.accepted.size;
  }
}
