// The metadata shard's settings (flags or STRATA_* variables), checked at start-up.
// The heartbeat interval defaults to a third of the lease TTL, so that a dead shard
// drops out of the live count (three missed heartbeats) about when its leases expire.
import { hostname } from 'node:os';
import { z } from 'zod';
import { millis } from '@strata/actor';

export const shardSettings = z
  .object({
    /** This shard's name, unique in the cluster: the holder named in its partition leases. */
    shard: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'letters, digits, - and _ only').default(`md-${hostname().split('.')[0]}-${process.pid}`),
    /** How long a partition lease lasts without renewal. */
    leaseTtlMs: millis(3_000),
    /**
     * How often the shard heartbeats and rebalances; default leaseTtlMs / 3. A shard
     * is counted live while its heartbeat moved within the last three intervals.
     */
    heartbeatIntervalMs: z.coerce.number().int().positive().optional(),
    /** Entries of the read/write cache, all partitions together. */
    cacheEntriesMax: z.coerce.number().int().positive().default(50_000),
    /** Requests handled at once by this shard, all partitions together; beyond it QUEUE_FULL. */
    requestsInFlightMax: z.coerce.number().int().positive().default(512),
  })
  .strict()
  .refine((s) => s.leaseTtlMs >= 300, { message: 'leaseTtlMs must be at least 300', path: ['leaseTtlMs'] })
  .refine((s) => s.heartbeatIntervalMs === undefined || s.heartbeatIntervalMs < s.leaseTtlMs, {
    message: 'heartbeatIntervalMs must be below leaseTtlMs: the shard looks for expired leases once per interval',
    path: ['heartbeatIntervalMs'],
  });
export type ShardSettingsInput = z.output<typeof shardSettings>;

/** Settings with every default resolved. */
export interface ShardSettings {
  shard: string;
  leaseTtlMs: number;
  heartbeatIntervalMs: number;
  cacheEntriesMax: number;
  requestsInFlightMax: number;
}

export function resolveSettings(s: ShardSettingsInput): ShardSettings {
  return { ...s, heartbeatIntervalMs: s.heartbeatIntervalMs ?? Math.floor(s.leaseTtlMs / 3) };
}
