// The curator's messages and state (proto/curator.cddl): the requests to the curator
// master (`strata.curator.<op>`), its progress record (`curator.progress` in `own`)
// and the summary of a scan. The master itself holds the lease `curator.master`.
import { z } from 'zod';
import { u64, uint } from '@strata/codec';
import { objectName } from './config';

/** Requests to the curator master: `strata.curator.status`, `strata.curator.scan`, `strata.curator.scrub`. */
export const CuratorOp = { status: 'status', scan: 'scan', scrub: 'scrub' } as const;
export type CuratorOp = (typeof CuratorOp)[keyof typeof CuratorOp];

/** What one scan found: every extent group read, those under-replicated, what it queued. */
export const curatorScanSummary = z.strictObject({
  /** The scan's number under this master: 1 for its first. */
  scan: uint,
  /** A full scan also asked each replica's extent store whether the replica is there. */
  full: z.boolean(),
  startedAtMs: uint,
  durationMs: uint,
  /** Extent groups read from the metadata. */
  egroups: uint,
  /** Extent groups with fewer than RF replicas that are not lost. */
  underReplicated: uint,
  /** Replicas found lost (node dead past the re-protection delay, disk gone, file missing). */
  lostReplicas: uint,
  /** Copies the scan queued. */
  copiesQueued: uint,
  /** Under-replicated extent groups no copy can fix now (no live source, no target with room). */
  unfixable: uint,
});
export type CuratorScanSummary = z.output<typeof curatorScanSummary>;

/** One scan's garbage collection (garbage.ts, gc.ts in services/curator). */
export const curatorGarbageSummary = z.strictObject({
  atMs: uint,
  /** Replicas listed on the disks read. */
  listed: uint,
  deleted: uint,
  bytes: uint,
  /** Unnamed replicas younger than the grace period: left for a later scan. */
  young: uint,
  /** Disks not read (node not alive, listing failed): nothing deleted there. */
  skippedDisks: uint,
  /** Whether deletes ran (`STRATA_GC=off` plans and reports only). */
  enabled: z.boolean(),
});
export type CuratorGarbageSummary = z.output<typeof curatorGarbageSummary>;

/** A node or disk being drained, as the last scan found it: the replicas it still holds. */
export const curatorDrain = z.strictObject({
  kind: z.enum(['node', 'disk']),
  name: objectName,
  /** Replicas still on it (on the node's disks), and their bytes. */
  replicas: uint,
  bytes: uint,
});
export type CuratorDrain = z.output<typeof curatorDrain>;

/** A disk at one end of the rebalance's spread: its used share in permille of its capacity. */
export const rebalanceDisk = z.strictObject({ disk: u64, node: objectName, usedPermille: uint });

/** The rebalance as the last scan found it (rebalance.ts in services/curator). */
export const curatorRebalance = z.strictObject({
  /** Whether moves run (`STRATA_REBALANCE=off` disables them). */
  enabled: z.boolean(),
  /** The threshold, in tenths of a percentage point (100: 10 points). */
  thresholdPermille: uint,
  /** The fullest and emptiest disks taking part and their used shares (permille of capacity); absent with fewer than two. */
  fullest: rebalanceDisk.optional(),
  emptiest: rebalanceDisk.optional(),
  /** Between them, permille. */
  spreadPermille: uint.optional(),
  /** Moves queued or running, and done since this master started. */
  moving: uint,
  movesDone: uint,
});
export type CuratorRebalance = z.output<typeof curatorRebalance>;

/** One tier's used share (permille of its disks' capacity). */
export const tierUse = z.strictObject({ tier: z.string().max(16), usedPermille: uint });

/** Tiering as the last scan found it (tiering.ts in services/curator). */
export const curatorTiering = z.strictObject({
  /** Whether moves run (`STRATA_TIERING=off` disables them). */
  enabled: z.boolean(),
  /** A tier above this share of its capacity (permille) sends cold extent groups down. */
  thresholdPermille: uint,
  /** Not written for this long: cold. */
  coldAfterMs: uint,
  /** Each tier with a disk taking part: its used share, permille of its disks' capacity. */
  tiers: z.array(tierUse).max(8),
  /** Moves queued or running, and done since this master started. */
  moving: uint,
  movesDone: uint,
});
export type CuratorTiering = z.output<typeof curatorTiering>;

/** One scrub pass (scrub.ts in services/curator): every replica on a live node read and its checksums verified. */
export const curatorScrubSummary = z.strictObject({
  startedAtMs: uint,
  durationMs: uint,
  /** Replicas read whole, and their bytes. */
  replicas: uint,
  bytes: uint,
  /** Replicas that failed their checksum: each is repaired by a copy from a good one. */
  damaged: uint,
  /** Replicas not read (extent store did not answer, entry changed under the read): the next pass reads them. */
  skipped: uint,
});
export type CuratorScrubSummary = z.output<typeof curatorScrubSummary>;

/**
 * The master's progress, key `curator.progress` in `own`: rewritten as copies finish,
 * so `strata curator status` can show it and a new master can resume the counts.
 */
export const curatorProgress = z.strictObject({
  /** The master that wrote it and its lease epoch. */
  master: objectName,
  curatorEpoch: uint,
  updatedAtMs: uint,
  /** Whether copies run (`STRATA_REBUILD=off` disables them). */
  rebuild: z.boolean(),
  /** Extent groups under-replicated at the last scan, less those fixed since. */
  underReplicated: uint,
  /** Bytes of the copies queued and not yet done. */
  bytesToCopy: uint,
  /** Bytes copied since this record was created. */
  bytesCopied: uint,
  copiesDone: uint,
  copiesFailed: uint,
  /** Recent copy rate, bytes per second (0 before the first copy). */
  bytesPerSec: uint,
  /** Estimated time to copy what remains, at that rate; absent when unknown or nothing remains. */
  etaMs: uint.optional(),
  lastScan: curatorScanSummary.optional(),
  /** Replicas no md-egroup entry names, deleted by the garbage collection since this record was created. */
  garbageDeleted: uint.optional(),
  /** Their bytes. */
  garbageBytes: uint.optional(),
  /** What the last scan's garbage collection did, once there was one. */
  lastGarbage: curatorGarbageSummary.optional(),
  /** The nodes and disks being drained at the last scan, less the moves done since. */
  draining: z.array(curatorDrain).max(4096).optional(),
  /** The rebalance at the last scan, with the moves done since. */
  rebalance: curatorRebalance.optional(),
  /** Tiering at the last scan, with the moves done since. */
  tiering: curatorTiering.optional(),
  /** The last scrub pass that ended, and the one running (replicas read so far of how many). */
  lastScrub: curatorScrubSummary.optional(),
  scrubbing: z.strictObject({ startedAtMs: uint, replicasDone: uint, replicasTotal: uint }).optional(),
});
export type CuratorProgress = z.output<typeof curatorProgress>;

/** `strata.curator.status`. */
export const curatorStatusRequest = z.strictObject({});
export const curatorStatusReply = z.strictObject({
  /** The master's node and lease epoch. */
  master: objectName,
  curatorEpoch: uint,
  /** The scan running now: when it started and whether it is full. */
  running: z.strictObject({ startedAtMs: uint, full: z.boolean() }).optional(),
  /** Copies being made now. */
  copiesInFlight: uint,
  progress: curatorProgress,
});
export type CuratorStatusReply = z.output<typeof curatorStatusReply>;

/** `strata.curator.scan`: a scan now; its reply comes once the scan (not its copies) is done. */
export const curatorScanRequest = z.strictObject({ full: z.boolean() });
export const curatorScanReply = curatorScanSummary;

/** `strata.curator.scrub`: a scrub pass now (or the one running); its reply comes once the pass is done (its repairs may still run). */
export const curatorScrubRequest = z.strictObject({});
export const curatorScrubReply = curatorScrubSummary;
