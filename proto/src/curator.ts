// The curator's messages and state (proto/curator.cddl): the requests to the curator
// master (`strata.curator.<op>`), its progress record (`curator.progress` in `own`)
// and the summary of a scan. The master itself holds the lease `curator.master`.
import { z } from 'zod';
import { u64, uint } from '@strata/codec';
import { objectName } from './config';
import { MD_PARTITIONS, egroupEntry } from './io';

/** Requests to the curator master: `strata.curator.status`, `strata.curator.scan`, `strata.curator.scrub`. */
export const CuratorOp = { status: 'status', scan: 'scan', scrub: 'scrub' } as const;
export type CuratorOp = (typeof CuratorOp)[keyof typeof CuratorOp];

/**
 * What a scan reads. `full`: every md-egroup entry, and each replica's extent store is
 * asked whether the replica is there. `complete`: every entry, the metadata only.
 * `partial`: only the entries changed since the last scan this master completed,
 * merged onto the rows that scan read (a master without them makes a complete scan).
 */
export const ScanKind = { full: 'full', complete: 'complete', partial: 'partial' } as const;
export type ScanKind = (typeof ScanKind)[keyof typeof ScanKind];
const scanKind = z.enum(ScanKind);

/** A curator that mapped tasks of a scan, and how many. */
export const scanWorker = z.strictObject({ node: objectName, tasks: uint });
export type ScanWorker = z.output<typeof scanWorker>;

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
  /** What it read (absent in records written before scans were map tasks). */
  kind: scanKind.optional(),
  /** The scan's id (its first start time, unix-ms): kept by a master that resumes it. */
  id: uint.optional(),
  /** Entries the map tasks read (a partial scan: those changed since `sinceRevision`), deletions included. */
  entries: uint.optional(),
  /** A partial scan: the md-egroup revision (stream sequence) its changes are counted from. */
  sinceRevision: uint.optional(),
  /** Map tasks, those taken from another curator whose task failed, and those whose outputs a master that resumed the scan found done. */
  tasks: uint.optional(),
  reassigned: uint.optional(),
  resumed: uint.optional(),
  /** The curators that mapped its tasks, and how many each. */
  workers: z.array(scanWorker).max(1024).optional(),
});
export type CuratorScanSummary = z.output<typeof curatorScanSummary>;

/**
 * `complete scan 1735689600000: 8 map tasks (n2 4, n3 4), 1 reassigned, 0 found done,
 * 120 entries read`: how a scan was mapped, in its event and in `strata curator`.
 */
export function describeScanMap(s: CuratorScanSummary): string {
  const workers = (s.workers ?? []).map((w) => `${w.node} ${w.tasks}`).join(', ');
  const since = s.sinceRevision === undefined ? '' : ` (changed since revision ${s.sinceRevision})`;
  return `${s.kind ?? (s.full ? 'full' : 'complete')} scan ${s.id ?? s.startedAtMs}: ${s.tasks ?? 0} map tasks (${workers}), ${s.reassigned ?? 0} reassigned, ${s.resumed ?? 0} found done, ${s.entries ?? 0} entries read${since}`;
}

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
  /** When the last full scan started: the next is due a full-scan interval later. */
  lastFullScanAtMs: uint.optional(),
  /** Replicas no md-egroup entry names, deleted by the garbage collection since this record was created. */
  garbageDeleted: uint.optional(),
  /** Their bytes. */
  garbageBytes: uint.optional(),
  /** Extent groups the sweep deleted because no live vDisk names them (kept for snapshots or clones before, or released by their writers' owners), since this record was created. */
  egroupsReclaimed: uint.optional(),
  /** The replica bytes they held. */
  egroupsReclaimedBytes: uint.optional(),
  /** Extent groups that were mostly dead that their owners took to evacuate (compaction), since this record was created. */
  egroupsCompacted: uint.optional(),
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
  /** The scan running now: when it started, whether it is full, and its map tasks (done of total, per curator). */
  running: z
    .strictObject({
      startedAtMs: uint,
      full: z.boolean(),
      kind: scanKind.optional(),
      id: uint.optional(),
      tasksDone: uint.optional(),
      tasksTotal: uint.optional(),
      /** Per curator: tasks done, and mapping now. */
      workers: z.array(z.strictObject({ node: objectName, done: uint, mapping: uint })).max(1024).optional(),
    })
    .optional(),
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

/** Rows per page of a map task's answer: a task whose partitions hold more answers in pages. */
export const MAP_PAGE_ROWS = 500;
/** A page also stops once its rows' CBOR passes this many bytes (entries with many extents), with one row at least. */
export const MAP_PAGE_BYTES = 1024 * 1024;
/** Nodes a full scan's map task may name as alive (whose extent stores it asks). */
export const MAP_NODES_MAX = 1024;

const partitionList = z
  .array(z.number().int().min(0).max(MD_PARTITIONS - 1))
  .min(1)
  .max(MD_PARTITIONS);

/**
 * `strata.curator.<node>.map`: one page of one map task of a scan, from the curator
 * master to the curator of `<node>` (a slave; the master maps a task itself only when
 * alone, or when the task failed too often). The slave refuses it (FENCED) when the
 * lease `curator.master` has moved past `curatorEpoch`.
 */
export const curatorMapRequest = z.strictObject({
  /** The scan's id, the master and its lease epoch. */
  scan: uint,
  master: objectName,
  curatorEpoch: uint,
  task: uint,
  /** The md-egroup partitions (partitionOf of the key) the task covers. */
  partitions: partitionList,
  kind: scanKind,
  /** A partial scan: only entries whose revision is above this. */
  sinceRevision: uint,
  /** A full scan: the nodes alive in the configuration, whose extent stores are asked for each replica. */
  alive: z.array(objectName).max(MAP_NODES_MAX),
  /** The page cursor the previous page's reply gave (absent for the first page). */
  after: z.string().max(32).optional(),
});
export type CuratorMapRequest = z.output<typeof curatorMapRequest>;

/** One md-egroup entry a map task read, with its revision (the compare-and-set token of the copies). */
export const mapRow = z.strictObject({ egroup: u64, revision: uint, entry: egroupEntry });
export type MapRow = z.output<typeof mapRow>;

/** A replica whose extent store said it has no file for it (a full scan). */
export const mapMissing = z.strictObject({ egroup: u64, disk: u64 });

export const curatorMapReply = z.strictObject({
  rows: z.array(mapRow).max(MAP_PAGE_ROWS),
  /** A partial scan: extent groups whose entry was deleted since `sinceRevision`, with the deletion's revision. */
  deleted: z.array(z.strictObject({ egroup: u64, revision: uint })).max(MAP_PAGE_ROWS),
  missing: z.array(mapMissing).max(MAP_PAGE_ROWS * 8),
  /** Entries read for this page, deletions included. */
  entries: uint,
  /** Present when the task has more: the `after` of the next page. */
  next: z.string().max(32).optional(),
});
export type CuratorMapReply = z.output<typeof curatorMapReply>;

/** One map task of a persisted scan. */
export const scanTask = z.strictObject({
  task: uint,
  partitions: partitionList,
  done: z.boolean(),
  /** The curator that mapped it (done) or maps it now. */
  worker: objectName.optional(),
  /** Times it was handed out. */
  attempts: uint,
  /** Its output's pages (keys curator.map.<task>.<page>) and entries, once done. */
  pages: uint,
  entries: uint,
});
export type ScanTask = z.output<typeof scanTask>;

/**
 * The scan running, key `curator.scan` in `own`: written by the master when a complete
 * or full scan starts and as each task is done (each task's output stored before, under
 * `curator.map.<task>.<page>`); deleted, with the outputs, when the scan ends. A new
 * master finds it and resumes the scan, mapping only the tasks not done.
 */
export const curatorScanRecord = z.strictObject({
  id: uint,
  kind: scanKind,
  reason: z.string().max(200),
  master: objectName,
  curatorEpoch: uint,
  startedAtMs: uint,
  /** The md-egroup stream's last sequence when the scan started: a later partial scan reads the changes after it. */
  uptoRevision: uint,
  tasks: z.array(scanTask).min(1).max(MD_PARTITIONS),
});
export type CuratorScanRecord = z.output<typeof curatorScanRecord>;

/** One page of a map task's output, key `curator.map.<task>.<page>` in `own`, while its scan runs. */
export const curatorMapOutput = z.strictObject({
  scan: uint,
  task: uint,
  page: uint,
  rows: curatorMapReply.shape.rows,
  missing: curatorMapReply.shape.missing,
});
export type CuratorMapOutput = z.output<typeof curatorMapOutput>;
