// The pure balancing rule of the metadata shards: given the live peers, the partition
// lease records as this shard has watched them, and what it holds, say which
// partitions to contend for, which to hand over, and which contentions to give up.
// No I/O and no clock reads: shard.ts feeds it and applies the decision, and
// test/balance.test.ts drives it with simulated inputs.
//
// The rule, per tick:
//  - share = ceil(P / live shards), counting this one.
//  - A partition is unserved when its lease is free (released, or no record yet) or
//    expired (its record has not moved for a whole TTL on our clock: the lease rule of
//    @strata/lease, so its holder has stopped acting).
//  - Contend for unserved partitions while holding (or contending for) fewer than the
//    share; free ones first, then expired ones, each shard in its own rotated order so
//    two shards starting together rarely race for the same partition.
//  - Availability beats balance: a partition unserved for a further TTL is contended
//    for by any shard, even one at or above its share (its peers are stuck or gone).
//  - Hold more than the share only while no live peer needs more: release
//    min(held - share, the peers' total shortfall below the share), so a partition is
//    never handed over to nobody (a dead peer still counted live reports what it held).
//  - Give up a contention when the record shows another holder renewing it.
import { partitionOf } from '@strata/proto';

/** A partition's lease record as this shard has watched it. */
export interface PartitionRecord {
  partition: number;
  /** The holder named by the record; '' when released or when there is no record. */
  holder: string;
  /** The record's revision (0: no record). */
  revision: number;
  /** How long the record has stayed at this revision, on this shard's clock. */
  silentMs: number;
}

export interface BalanceInput {
  /** This shard's name (the holder name in its leases). */
  me: string;
  partitionCount: number;
  ttlMs: number;
  /** Live peers (not counting this shard), each with the partitions it reported holding. */
  peers: ReadonlyMap<string, number>;
  /** Partitions this shard holds. */
  held: ReadonlySet<number>;
  /** Partitions this shard contends for and does not hold yet. */
  contending: ReadonlySet<number>;
  /** One entry per partition, 0 to partitionCount - 1. */
  records: readonly PartitionRecord[];
}

export interface Acquire {
  partition: number;
  /**
   * The expired record to free first, by compare-and-set on this revision. A Lease
   * started fresh would wait a TTL of its own before taking it; this shard has already
   * watched the record stay silent that long, which is the same proof.
   */
  reapRevision?: number;
}

export interface BalanceDecision {
  share: number;
  acquire: Acquire[];
  /** Held partitions to release (Lease.stop with release). */
  release: number[];
  /** Contentions to stop: the partition is held by someone else who renews it. */
  abandon: number[];
}

/** Each shard's fair share: ceil(P / live shards). */
export function fairShare(partitionCount: number, liveShards: number): number {
  if (liveShards < 1) throw new Error(`assertion failed: live shards (${liveShards}) counts this shard`);
  return Math.ceil(partitionCount / liveShards);
}

/** How long the partition has had nobody serving it, or -1 while a holder renews it. */
export function unservedForMs(record: PartitionRecord, ttlMs: number): number {
  if (record.holder === '') return record.silentMs;
  return record.silentMs >= ttlMs ? record.silentMs - ttlMs : -1;
}

/** This shard's order of preference over partitions: a rotation seeded by its name. */
function preferenceRank(me: string, partitionCount: number): (p: number) => number {
  const offset = partitionOf(me, partitionCount);
  return (p) => (p - offset + partitionCount) % partitionCount;
}

export function decideBalance(input: BalanceInput): BalanceDecision {
  const { me, partitionCount, ttlMs, peers, held, contending } = input;
  if (input.records.length !== partitionCount) throw new Error(`assertion failed: ${input.records.length} records for ${partitionCount} partitions`);
  const share = fairShare(partitionCount, peers.size + 1);
  const rank = preferenceRank(me, partitionCount);

  const abandon: number[] = [];
  for (const p of contending) {
    const r = input.records[p]!;
    if (r.holder !== '' && r.holder !== me && unservedForMs(r, ttlMs) < 0) abandon.push(p);
  }

  const candidates = input.records
    .filter((r) => !held.has(r.partition) && !contending.has(r.partition) && unservedForMs(r, ttlMs) >= 0)
    .sort((a, b) => Number(a.holder !== '') - Number(b.holder !== '') || rank(a.partition) - rank(b.partition));
  let room = share - held.size - (contending.size - abandon.length);
  const acquire: Acquire[] = [];
  for (const r of candidates) {
    const overdue = unservedForMs(r, ttlMs) >= ttlMs;
    if (room <= 0 && !overdue) continue;
    room--;
    acquire.push(r.holder === '' ? { partition: r.partition } : { partition: r.partition, reapRevision: r.revision });
  }

  const release: number[] = [];
  if (held.size > share) {
    let shortfall = 0;
    for (const n of peers.values()) shortfall += Math.max(0, share - n);
    const count = Math.min(held.size - share, shortfall);
    // Hand over the partitions this shard prefers least.
    release.push(...[...held].sort((a, b) => rank(b) - rank(a)).slice(0, count));
  }
  return { share, acquire, release, abandon };
}
