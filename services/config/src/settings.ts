// The config service's settings (flags or STRATA_* variables), checked at start-up.
import { hostname } from 'node:os';
import { z } from 'zod';
import { millis } from '@strata/actor';

export const configSettings = z
  .object({
    /** This replica's name, unique in the cluster. */
    replica: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'letters, digits, - and _ only').default(`config-${hostname().split('.')[0]}-${process.pid}`),
    /** How often nodes heartbeat; the detector assumes this interval. */
    heartbeatIntervalMs: millis(1_000),
    /** A node that cannot renew for this long stops serving I/O by itself. */
    fenceTimeoutMs: millis(4_000),
    /** The leader declares a node dead after this much silence; must exceed the fence timeout. */
    deadTimeoutMs: millis(6_000),
    /** The config leader's lease. */
    leaseTtlMs: millis(3_000),
    /** How often the failure detector looks at the heartbeats. */
    detectorTickMs: millis(100),
    /** How often the leader looks for vDisks of dead nodes and unfinished takeovers. */
    failoverSweepMs: millis(1_000),
    /** Bound of one takeover step (the new owner's replay of the oplog tail included). */
    takeoverStepTimeoutMs: millis(15_000),
    /** Requests handled at once per operation. */
    requestsInFlightMax: z.coerce.number().int().positive().default(256),
    /** Writes queued behind the one in progress before QUEUE_FULL. */
    writeQueueMax: z.coerce.number().int().positive().default(1_000),
    /** How often the leader's space monitor compares the disks' usage with their thresholds (space.* events). */
    spaceTickMs: millis(2_000),
    /** A disk or container whose used share of capacity reaches this percentage is in warning (space.warning). */
    spaceWarnPercent: z.coerce.number().gt(0).max(100).default(85),
    /** A disk with fewer free bytes takes no new extent group: full (space.full). The vdisk-controller's egroupSizeBytes. */
    spaceFullFreeBytes: z.coerce.number().int().nonnegative().default(16 * 2 ** 20),
  })
  .strict()
  .refine((s) => s.fenceTimeoutMs > s.heartbeatIntervalMs, { message: 'fenceTimeoutMs must be greater than heartbeatIntervalMs', path: ['fenceTimeoutMs'] })
  .refine((s) => s.deadTimeoutMs > s.fenceTimeoutMs, {
    message: 'deadTimeoutMs must be greater than fenceTimeoutMs, so a node has stopped serving before it is declared dead',
    path: ['deadTimeoutMs'],
  });
export type ConfigSettings = z.output<typeof configSettings>;
