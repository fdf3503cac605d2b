// Which metadata shards are alive, from their heartbeats in the `hb` bucket: the
// record schema, and the pure rules that turn what this shard has seen into a count.
import { z } from 'zod';
import { uint } from '@strata/codec';
import type { Observation } from '@strata/lease';
import { MD_PARTITIONS } from '@strata/proto';

/** A heartbeat counts as missed after this many of the sender's intervals. */
export const MISSED_BEATS_MAX = 3;

/**
 * A shard's heartbeat, in `hb` under `shard.<name>` (keys.shardHeartbeat), rewritten
 * every heartbeat interval. It is informational: the leases in `own` alone say who
 * serves a partition. Peers use it to count live shards (hence each one's fair share)
 * and, as a hint, to see who is below its share before handing partitions over.
 *
 *   { atMs: 1732182000000, partitions: [0, 5, 11], intervalMs: 1000 }
 *
 * means: at that wall-clock time (for people; never compared between processes) the
 * shard served partitions 0, 5 and 11, and it beats every second, so peers count it
 * gone after three seconds without a new revision, measured on their own clocks.
 */
export const shardHeartbeat = z.strictObject({
  /** Sender's wall clock, ms since the epoch: for people reading status only. */
  atMs: uint,
  /** Partitions the sender held at the beat, each in [0, MD_PARTITIONS). */
  partitions: z
    .array(
      z
        .number()
        .int()
        .min(0)
        .max(MD_PARTITIONS - 1),
    )
    .max(MD_PARTITIONS),
  /** The sender's heartbeat interval, ms (at most a minute, so a bad record cannot keep a dead shard alive for long). */
  intervalMs: z.number().int().positive().max(60_000),
});
export type ShardHeartbeat = z.output<typeof shardHeartbeat>;

/** What this shard remembers of a peer's heartbeat between ticks. */
export interface PeerObservation {
  /** The record's revision, and the local monotonic time it was first seen. */
  revision: number;
  sinceMs: number;
  /** Partitions the peer reported holding. */
  held: number;
  intervalMs: number;
}

/**
 * The observation after seeing revision `revision` of a record at `nowMs`. A record
 * that has not moved keeps its first-seen time: silence is measured on our own clock,
 * never from the sender's timestamps.
 */
export function observeRevision(previous: Observation | undefined, revision: number, nowMs: number): Observation {
  return previous !== undefined && previous.revision === revision ? previous : { revision, sinceMs: nowMs };
}

export function observePeer(previous: PeerObservation | undefined, revision: number, record: ShardHeartbeat, nowMs: number): PeerObservation {
  if (previous !== undefined && previous.revision === revision) return previous;
  return { revision, sinceMs: nowMs, held: record.partitions.length, intervalMs: record.intervalMs };
}

/**
 * The live peers (every shard but `me` whose heartbeat moved within the last
 * MISSED_BEATS_MAX of its intervals), each with the number of partitions it reported.
 */
export function livePeers(observations: ReadonlyMap<string, PeerObservation>, me: string, nowMs: number): Map<string, number> {
  const live = new Map<string, number>();
  for (const [name, o] of observations) {
    if (name === me) continue;
    if (nowMs - o.sinceMs <= MISSED_BEATS_MAX * o.intervalMs) live.set(name, o.held);
  }
  return live;
}
