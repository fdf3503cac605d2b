// The vdisk-controller's settings (flags or STRATA_* variables), checked at start-up.
import { z } from 'zod';
import { objectName } from '@strata/proto';
import { millis } from '@strata/actor';

const MiB = 2 ** 20;
const FAULT_STEP = '(direct-staged|direct-written|direct-committed|drain-adopted)';
const FAULT_HOLD_PATTERN = new RegExp(`^${FAULT_STEP}(,${FAULT_STEP})*:[1-9][0-9]*$`);
const bytes = (def: number) => z.coerce.number().int().positive().default(def);

export const controllerSettings = z
  .object({
    /** The node this controller serves (`n1`). */
    node: objectName,
    /** Undrained bytes per vDisk at which new writes wait for drain (backpressure). */
    undrainedBytesMax: bytes(64 * MiB),
    /** Undrained bytes at which drain starts without waiting for the vDisk to be idle. */
    drainStartBytes: bytes(8 * MiB),
    /** Idle time after the last write before drain runs anyway. */
    drainIdleMs: millis(500),
    /**
     * Longest wait between drain attempts after failures (the wait doubles from
     * drainIdleMs), and how long writes are refused NO_SPACE after a drain or a direct
     * write got NO_SPACE unless a drain succeeds first: a freed disk is used within it.
     */
    drainRetryMaxMs: millis(5_000),
    /** Extent groups one drain of a vDisk writes at once. */
    drainParallelism: z.coerce.number().int().min(1).max(64).default(4),
    /**
     * While the node serves high-class I/O, a lower-class vDisk's drain is busy at most
     * this share of the time (see DrainPacer); 100 never paces.
     */
    drainDutyPercentUnderHigh: z.coerce.number().int().min(1).max(100).default(10),
    /**
     * While a vDisk's drain is paced, one drain takes at most this many bytes of its
     * oplog, so its writers waiting for room get it back a little at a time.
     */
    drainRoundBytesPaced: bytes(2 * MiB),
    /** High-class I/O counts as being served for this long after its last request. */
    highActiveMs: millis(500),
    /**
     * Writes of at least this many bytes go straight to the extent stores, with only a
     * small reference through the oplog (direct writes; see vdisk.ts). Above the
     * gateway's largest I/O message (1 MiB, or 256 KiB; see ioChunkBytes), every write goes through the oplog.
     */
    directWriteBytesMin: bytes(64 * 1024),
    /**
     * Deadline of a direct write's extent-store writes. One that fails or runs out (a
     * replica's node hung) is written through the oplog instead, within the gateway's
     * 3 s attempt.
     */
    directWriteTimeoutMs: millis(1_500),
    /** Extent groups that direct writes fill at once; each takes one replica write at a time. */
    directLanes: z.coerce.number().int().min(1).max(64).default(8),
    /**
     * Fault tests only: `<step>[,<step>...]:<ms>` holds the controller for ms at those
     * steps of every direct write or adopting drain (direct-staged, direct-written,
     * direct-committed, drain-adopted), logging `fault hold at <step>`, so a test can
     * kill a process there. Unset in production.
     */
    faultHoldAt: z
      .string()
      .regex(FAULT_HOLD_PATTERN, 'must be <step>[,<step>...]:<ms>, each step one of direct-staged, direct-written, direct-committed, drain-adopted')
      .optional(),
    /** Blocks per vDisk map row. */
    rowBlocks: z.coerce.number().int().min(1).max(1024).default(16),
    /**
     * One attempt of an oplog append; an append with no ack by then is sent again
     * (the same message id: JetStream stores it once), up to oplogPublishAttempts.
     * Short, so that losing the stream's leader costs about its election, not a long
     * wait on a dead server: the gateway's attempts are 3 s.
     */
    oplogPublishTimeoutMs: millis(2_000),
    oplogPublishAttempts: z.coerce.number().int().min(1).max(20).default(8),
    /** Most payload bytes in one oplog message (group commit). */
    oplogBatchBytesMax: bytes(768 * 1024),
    /** Extent-group size; a new one starts when the open one is full. */
    egroupSizeBytes: bytes(16 * MiB),
    /** Most data bytes in one extent-store write (below the NATS payload limit). */
    drainWriteBytesMax: bytes(512 * 1024),
    /** Deadline of one request to an extent store, a metadata shard or the oplog. */
    backendTimeoutMs: millis(10_000),
    /**
     * Bound of reading a vDisk's whole undrained oplog tail when it is opened (a
     * restart or a takeover); past it the open fails and is tried again. Keep it
     * below the config service's takeoverStepTimeoutMs.
     */
    replayTimeoutMs: millis(10_000),
    /**
     * Replica reads are hedged: one that has not answered within a delay that follows
     * recent replica latency (never below the floor, never above the ceiling) is sent
     * to the next replica too.
     */
    hedgeFloorMs: millis(5),
    hedgeCeilingMs: millis(250),
    /** A node a replica request timed out against (or could not reach) is suspect this long: read last, written never. */
    failureSuspectMs: millis(10_000),
    /** I/O requests handled at once. */
    requestsInFlightMax: z.coerce.number().int().positive().default(512),
    /** How often the node renews its heartbeat (the controller writes it: it is what serves I/O). */
    heartbeatIntervalMs: millis(1_000),
    /**
     * A node that has not renewed its heartbeat for this long stops serving I/O by
     * itself. The config leader's dead timeout must be longer (it checks that at
     * its own start-up), so a node has stopped before its vDisks move.
     */
    fenceTimeoutMs: millis(4_000),
  })
  .strict()
  .refine((s) => s.fenceTimeoutMs > s.heartbeatIntervalMs, { message: 'fenceTimeoutMs must be greater than heartbeatIntervalMs', path: ['fenceTimeoutMs'] })
  .refine((s) => s.hedgeFloorMs <= s.hedgeCeilingMs, { message: 'hedgeFloorMs must not exceed hedgeCeilingMs', path: ['hedgeFloorMs'] })
  .refine((s) => s.drainStartBytes <= s.undrainedBytesMax, { message: 'drainStartBytes must not exceed undrainedBytesMax', path: ['drainStartBytes'] })
  .refine((s) => s.drainWriteBytesMax <= 4 * MiB, { message: 'drainWriteBytesMax must be at most 4 MiB', path: ['drainWriteBytesMax'] })
  .refine((s) => s.oplogBatchBytesMax <= 4 * MiB, { message: 'oplogBatchBytesMax must be at most 4 MiB', path: ['oplogBatchBytesMax'] });
export type ControllerSettingsInput = z.output<typeof controllerSettings>;
