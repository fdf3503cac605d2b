// The extent store's settings (flags or STRATA_* variables), checked at start-up.
import { z } from 'zod';
import { millis } from '@strata/actor';
import { objectName } from '@strata/proto';

const MiB = 1024 * 1024;
const count = (defaultValue: number, max: number): z.ZodDefault<z.ZodCoercedNumber<unknown>> =>
  z.coerce.number().int().positive().max(max).default(defaultValue);

export const extentStoreSettings = z
  .object({
    /** The name of this store's node in the config service (`n1`); required. */
    node: z.string({ error: 'is required: the name of this node in the config service, e.g. --node n1' }).pipe(objectName),
    /** How often each disk's usage is written to the `hb` bucket. */
    usageReportIntervalMs: millis(2_000),
    /** How often the node's disks are listed again, to pick up added, removed or resized disks. */
    diskRefreshIntervalMs: millis(2_000),
    /** Budget of each call to the config service. */
    configTimeoutMs: millis(10_000),
    /** Requests handled at once per operation (write, read, stat, delete); beyond it QUEUE_FULL. */
    requestsInFlightMax: count(256, 65_536),
    /** File operations in progress at once on one disk. */
    diskOpsInFlightMax: count(16, 1_024),
    /** Operations waiting or running on one disk; beyond it QUEUE_FULL. */
    diskOpsPendingMax: count(1_024, 65_536),
    /** Largest extent-group file (the design's extent groups are 16 to 64 MiB). */
    egroupSizeMaxBytes: count(64 * MiB, 1024 * MiB),
    /** Most extents in one extent group: bounds each sidecar. */
    extentsPerEgroupMax: count(4_096, 65_536),
    /** Sidecars kept decoded in memory per disk. */
    sidecarCacheMax: count(1_024, 1_000_000),
    /** Most disks this node's store serves; more is a configuration mistake. */
    disksMax: count(64, 1_024),
  })
  .strict();
export type ExtentStoreSettings = z.output<typeof extentStoreSettings>;
