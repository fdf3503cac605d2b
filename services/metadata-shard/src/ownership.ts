// The shard's watched copy of the vDisk ownership records (`vdisk.<id>` in `own`) and
// the fence check it feeds: a put or delete that a vDisk's owner sends with
// `fence: {vdisk, epoch}` is refused with FENCED when the vDisk has a newer epoch
// (the rule, shared with MemoryMd, is MdFenceCheck of @strata/md-client). One watch
// serves the whole shard process, whatever partitions it holds.
//
// Clock and lag assumption. The watch delivers a new owner's claim (its epoch + 1,
// written by compare-and-set) some milliseconds after it is made. A write of the old
// owner that arrives within that lag is not refused by the record, but an owner is
// deposed only after the dead timeout (6 s by default: the node has been silent that
// long, and stopped serving by itself at the fence timeout, 4 s), or hands the vDisk
// over itself by relinquish, after its last write ended. So by the time a new owner
// exists, the old one has stopped writing, seconds earlier, and the watch has long
// caught up. The fence is for the owner that does not know it was deposed (paused,
// cut off): its writes arrive late, when the record already says so. And where the
// new owner's writes reach this shard before the watch delivers its claim, the
// highest epoch accepted in a fence refuses the old owner from that instant on.
//
// A write checked before a newer epoch arrived may still land after it. On the same
// key the compare-and-set orders them (the later one fails CONFLICT, or the new
// owner rereads the key); the rule promises that no write is checked against an
// epoch older than what this shard knows.
import { ErrorCode, isStrataError } from '@strata/errors';
import { WatchCache, type Entry, type TypedBucket } from '@strata/kv';
import type { Logger } from '@strata/log';
import { MdFenceCheck } from '@strata/md-client';
import { keys, type MdFence, type VdiskOwnership, type vdiskOwnership } from '@strata/proto';

/** The vDisk id of an ownership record's key (`vdisk.12349`), or undefined for any other key. */
export function vdiskOfOwnershipKey(key: string): bigint | undefined {
  const digits = key.slice(key.lastIndexOf('.') + 1);
  if (!/^\d+$/.test(digits)) return undefined;
  const vdisk = BigInt(digits);
  // Through the one function that spells the key, so no other spelling creeps in.
  return keys.vdiskOwnership(vdisk) === key ? vdisk : undefined;
}

export class OwnershipFence {
  private readonly check: MdFenceCheck;
  private readonly removeListener: () => void;

  private constructor(
    private readonly ownership: WatchCache<VdiskOwnership>,
    private readonly log: Logger,
  ) {
    this.check = new MdFenceCheck((vdisk) => this.ownership.get(keys.vdiskOwnership(vdisk))?.value.epoch);
    this.removeListener = ownership.onChange((key, entry) => this.changed(key, entry));
  }

  /** Starts watching the ownership records; resolves once the copy holds all of them. */
  static async start(bucket: TypedBucket<typeof vdiskOwnership>, log: Logger): Promise<OwnershipFence> {
    const cache = await WatchCache.start(bucket, {
      key: keys.vdiskOwnershipAll,
      onBadEntry: (key, err) => log.warn({ key, err }, 'unreadable ownership record skipped (its vdisk is fenced by accepted epochs only)'),
    });
    await cache.ready;
    return new OwnershipFence(cache, log);
  }

  /**
   * Throws FENCED (from MdFenceCheck: naming the vDisk, the write's epoch and the
   * current one) when the write's epoch is older than the vDisk's; otherwise records
   * it as accepted. Call it right before the write, with nothing awaited in between.
   */
  admit(fence: MdFence): void {
    try {
      this.check.admit(fence);
    } catch (err) {
      if (isStrataError(err, ErrorCode.FENCED)) this.log.info({ vdisk: String(fence.vdisk), epoch: fence.epoch, current: this.check.currentEpoch(fence.vdisk) }, 'refused a fenced metadata write');
      throw err;
    }
  }

  stop(): void {
    this.removeListener();
    this.ownership.stop();
  }

  private changed(key: string, entry: Entry<VdiskOwnership> | undefined): void {
    const vdisk = vdiskOfOwnershipKey(key);
    if (vdisk !== undefined) this.check.ownershipChanged(vdisk, entry?.value.epoch);
  }
}
