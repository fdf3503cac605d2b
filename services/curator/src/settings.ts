// The curator's settings (flags or STRATA_* variables), checked at start-up.
import { z } from 'zod';
import { millis } from '@strata/actor';
import { EG_READ_BYTES_MAX, MD_PARTITIONS, objectName } from '@strata/proto';

const MiB = 2 ** 20;

export const curatorSettings = z
  .object({
    /** The node this curator runs on, as named in the config service (`n1`); required. */
    node: z.string({ error: 'is required: the name of this node in the config service, e.g. --node n1' }).pipe(objectName),
    /** The master lease `curator.master`. */
    curatorLeaseTtlMs: millis(3_000),
    /** How often the master scans the extent-group map. */
    curatorScanIntervalMs: millis(30_000),
    /**
     * A replica on a dead node is rebuilt only once the node has been dead this long:
     * a node that reboots within a minute comes back with its replicas, and copying
     * them all meanwhile would cost the cluster more than the short exposure.
     */
    reprotectDelayMs: millis(60_000),
    /** Copies running at once. */
    curatorCopiesInFlightMax: z.coerce.number().int().min(1).max(64).default(2),
    /** All copies together move at most this many bytes a second, leaving the disks to the VMs' I/O. */
    curatorCopyBytesPerSec: z.coerce.number().int().min(MiB).default(64 * MiB),
    /** Bytes per extent-store read and write of a copy (the protocol's limit is 4 MiB). */
    curatorCopyChunkBytes: z.coerce.number().int().min(4096).max(EG_READ_BYTES_MAX).default(EG_READ_BYTES_MAX),
    /** `off` makes the master scan and report without copying (to show what a test depends on). */
    rebuild: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on'),
    /** `off` keeps replicas where they are however uneven the disks (to show what a test depends on). */
    rebalance: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on'),
    /**
     * Rebalance moves start when the fullest and the emptiest disk (live, not draining)
     * differ by more than this many percentage points of their capacity (a node added
     * beside full ones); they stop once within it.
     */
    rebalanceThresholdPct: z.coerce.number().min(0).max(100).default(10),
    /** Rebalance moves planned at most per scan; a scan plans more only once they are done. */
    rebalanceMovesMax: z.coerce.number().int().min(1).max(1_000).default(16),
    /** `off` keeps cold extent groups on their tier however full it is (to show what a test depends on). */
    tiering: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on'),
    /**
     * A tier whose disks (live, not draining) are fuller than this share of their
     * capacity sends its coldest extent groups down the container's tier order,
     * until it is back under it.
     */
    tierThresholdPct: z.coerce.number().min(0).max(100).default(80),
    /** An extent group whose data has not been written for this long is cold (tiering moves the coldest first). */
    tierColdAfterMs: millis(3_600_000),
    /** Tiering moves planned at most per scan. */
    tierMovesMax: z.coerce.number().int().min(1).max(1_000).default(16),
    /** `off` makes the garbage collection list, plan and report without deleting (to show what a test depends on). */
    gc: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on'),
    /**
     * A replica no md-egroup entry names is deleted only once its last write is this
     * old: longer than any write or copy in flight, whose entry is written before
     * (a new extent group) or after (a copy) the replica's bytes.
     */
    gcGraceMs: millis(600_000),
    /**
     * A snapshot or clone still marked `creatingSinceMs` this long after it began was
     * interrupted (its CLI died): the sweep removes it. Longer than any snapshot's
     * making (a row copy of the vDisk map, seconds for a large vDisk).
     */
    creatingTimeoutMs: millis(600_000),
    /**
     * An extent group of a live vDisk that no row names is reclaimed (its writer's owner
     * asked to release it first) only once the sweeps have seen it unnamed and unchanged
     * for this long: longer than any read or write in flight that found it named.
     */
    reclaimGraceMs: millis(300_000),
    /**
     * An extent group of a live vDisk whose live bytes are below this share of its size,
     * every one named only by the vDisk at its current generation, is compacted: its
     * owner's drain moves those blocks, and the reclaim then frees it. 0: never.
     */
    compactLiveFraction: z.coerce.number().min(0).max(1).default(0.5),
    /** Live bytes the compaction asks owners to move per scan at most. */
    compactBytesPerScan: z.coerce.number().int().min(1).default(256 * MiB),
    /** Deletes of the garbage collection per second at most: the disks serve the VMs' I/O meanwhile. */
    gcDeletesPerSec: z.coerce.number().int().min(1).max(10_000).default(50),
    /**
     * Scrub: every replica on a live node read whole and its checksums verified, at most
     * this many bytes a second (STRATA_SCRUB_BYTES_PER_S): a slow, steady read the disks
     * serve beside the VMs' I/O. 4 MiB/s reads 1 TiB in about three days.
     */
    scrubBytesPerS: z.coerce.number().int().min(64 * 1024).default(4 * MiB),
    /** A scrub pass starts this long after the last one ended (and on `strata curator scrub`). */
    scrubIntervalMs: millis(24 * 3_600_000),
    /**
     * A full scan (every entry, and each replica's extent store asked for its file)
     * starts on the schedule when the last one is this old; the scans between are
     * partial (the entries changed since the last scan). `strata curator scan --full` runs one now.
     */
    curatorFullScanIntervalMs: millis(6 * 3_600_000),
    /** Map tasks a complete or full scan splits the md-egroup partitions into (a partial scan: one per curator at most). */
    curatorMapTasks: z.coerce.number().int().min(1).max(MD_PARTITIONS).default(8),
    /** The deadline of one page of a map task on a slave: past it, the task goes to another curator. */
    curatorMapTimeoutMs: millis(30_000),
    /**
     * A map task one curator has mapped this long may be given to an idle one too (a
     * backup; the first answer counts): a hung slave costs a scan this, not the map deadline.
     */
    curatorMapBackupAfterMs: millis(5_000),
    /** Times a map task is handed to slaves at most; after that the master maps it itself. */
    curatorMapAttemptsMax: z.coerce.number().int().min(1).max(16).default(3),
    /** Fault tests only: each page of a map task is answered this much later, so a test can kill a curator mid-task. 0 in production. */
    curatorMapHoldMs: z.coerce.number().int().min(0).max(600_000).default(0),
    /** `off` fails a scan whose map task failed instead of handing the task to another curator (to show what a test depends on). */
    curatorMapReassign: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on'),
    /** `off` makes a new master drop the scan its predecessor left instead of resuming it (to show what a test depends on). */
    curatorScanResume: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on'),
    /** Budget of each request to an extent store, a metadata shard or the config service. */
    curatorRequestTimeoutMs: millis(10_000),
  })
  .strict();
export type CuratorSettings = z.output<typeof curatorSettings>;
