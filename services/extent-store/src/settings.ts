// The extent store's settings (flags or STRATA_* variables), checked at start-up.
import { z } from 'zod';
import { millis } from '@strata/actor';
import { EG_READ_BYTES_MAX, objectName } from '@strata/proto';
import { DEFAULT_SYNC_READ_MAX_BYTES } from './disk-store';
import { SLICE_BYTES_DEFAULT, SLICES_PER_EGROUP_MAX, sliceBytesProblem, sliceCount } from './slices';

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
    /**
     * Slice size of new replicas: the unit of the CRC32C checked on every read (a 4 KiB
     * read fetches and checks the slices it touches) and of the read-modify-write of a
     * partial overwrite. A power of two from 4 KiB to 1 MiB; a replica keeps the size it
     * was made with, so changing it affects new replicas only.
     */
    sliceBytes: z.coerce
      .number()
      .default(SLICE_BYTES_DEFAULT)
      .superRefine((v, ctx) => {
        const problem = sliceBytesProblem(v);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
      }),
    /**
     * Reads of at most this many bytes (the slices they touch) are a synchronous pread
     * on the event loop rather than a threadpool job: much cheaper for data in the page
     * cache or on an SSD; set 0 for slow disks (see DEFAULT_SYNC_READ_MAX_BYTES).
     */
    syncReadMaxBytes: z.coerce.number().int().min(0).max(EG_READ_BYTES_MAX).default(DEFAULT_SYNC_READ_MAX_BYTES),
    /** Data files kept open per disk, so a read costs no open and close. */
    openFilesMax: count(256, 65_536),
    /** Sidecars kept decoded in memory per disk. */
    sidecarCacheMax: count(1_024, 1_000_000),
    /** Most disks this node's store serves; more is a configuration mistake. */
    disksMax: count(64, 1_024),
  })
  .strict()
  .superRefine((s, ctx) => {
    // Every write rewrites the sidecar with 4 bytes per slice: bound it.
    if (sliceBytesProblem(s.sliceBytes) === undefined && sliceCount(s.egroupSizeMaxBytes, s.sliceBytes) > SLICES_PER_EGROUP_MAX) {
      ctx.addIssue({
        code: 'custom',
        path: ['sliceBytes'],
        message: `is too small for extent groups of ${s.egroupSizeMaxBytes} bytes: at most ${SLICES_PER_EGROUP_MAX} slices per extent group, so at least ${Math.ceil(s.egroupSizeMaxBytes / SLICES_PER_EGROUP_MAX)} bytes`,
      });
    }
  });
export type ExtentStoreSettings = z.output<typeof extentStoreSettings>;
