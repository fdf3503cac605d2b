// The three metadata requests of one partition (get, put, delete): the checks every
// request passes (the key belongs to the partition, the value fits its map, a fenced
// write's epoch is not older than its vDisk's: ownership.ts), then the cache or the
// store, with the cache rules of cache.ts. The caller (shard.ts) has already checked
// that this shard holds the partition.
import { z } from 'zod';
import { describeIssues } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { mdKeyProblem } from '@strata/md-client';
import { MD_PARTITIONS, type MdFence, type MdMap, mdValue, partitionOf, type mdDeleteReply, type mdDeleteRequest, type mdGetRequest, type mdPutRequest } from '@strata/proto';
import type { MdCache } from './cache';
import type { MdStore } from './store';
import type { MapWatch } from './watch';

type GetRequest = z.output<typeof mdGetRequest>;
type PutRequest = z.output<typeof mdPutRequest>;
type DeleteRequest = z.output<typeof mdDeleteRequest>;
type DeleteReply = z.output<typeof mdDeleteReply>;

/** Each map's value schema under the field name `value`, so an error names `value.replicas`. */
const valueEnvelope: Record<MdMap, z.ZodType> = {
  vdisk: z.strictObject({ value: mdValue.vdisk }),
  extent: z.strictObject({ value: mdValue.extent }),
  egroup: z.strictObject({ value: mdValue.egroup }),
};

/** Validates a value against its map; INVALID names the field. */
export function validateValue(map: MdMap, value: unknown): unknown {
  const parsed = valueEnvelope[map].safeParse({ value });
  if (!parsed.success) throw new StrataError(ErrorCode.INVALID, `${map} map: ${describeIssues(parsed.error)}`);
  return (parsed.data as { value: unknown }).value;
}

/**
 * INVALID unless `key` can be a KV key and hashes to `partition` (a client that routed
 * it here has a different partition function).
 */
export function checkPartition(key: string, partition: number): void {
  const problem = mdKeyProblem(key);
  if (problem !== undefined) throw new StrataError(ErrorCode.INVALID, `key "${key}" ${problem}`);
  const actual = partitionOf(key, MD_PARTITIONS);
  if (actual !== partition) throw new StrataError(ErrorCode.INVALID, `key "${key}" belongs to partition ${actual}, not ${partition}`);
}

/** Checks a fenced write (OwnershipFence in the shard): throws FENCED, or records the epoch as accepted. */
export interface FenceCheck {
  admit(fence: MdFence): void;
}

export class PartitionRequests {
  constructor(
    private readonly store: MdStore,
    private readonly cache: MdCache,
    private readonly watches: Record<MdMap, MapWatch>,
    private readonly fence: FenceCheck,
  ) {}

  async get(partition: number, req: GetRequest): Promise<{ value?: unknown; revision: number }> {
    checkPartition(req.key, partition);
    const cached = this.cache.lookup(req.map, req.key);
    if (cached !== undefined) return reply(cached);
    const ticket = this.cache.begin(req.map, req.key, partition);
    let result: { value: unknown; revision: number } | undefined;
    try {
      // An absent key is cached as revision 0: any change reported meanwhile is newer.
      result = (await this.store.get(req.map, req.key)) ?? { value: undefined, revision: 0 };
      return reply(result);
    } finally {
      this.cache.finish(ticket, result);
    }
  }

  async put(partition: number, req: PutRequest): Promise<{ revision: number }> {
    checkPartition(req.key, partition);
    const value = validateValue(req.map, req.value);
    // Last of the checks, and nothing awaited between it and the write: an epoch that
    // arrives meanwhile fences every write checked after it.
    if (req.fence !== undefined) this.fence.admit(req.fence);
    const ticket = this.cache.begin(req.map, req.key, partition);
    let result: { value: unknown; revision: number } | undefined;
    try {
      const revision = await this.store.put(req.map, req.key, value, req.revision);
      result = { value, revision };
      this.watches[req.map].wrote(revision);
      // Other operations on the key in flight must not store what they saw before this write.
      this.cache.changed(req.map, req.key, revision, () => result);
      return { revision };
    } catch (err) {
      forget(this.cache, req.map, req.key);
      throw err;
    } finally {
      this.cache.finish(ticket, result);
    }
  }

  async delete(partition: number, req: DeleteRequest): Promise<DeleteReply> {
    checkPartition(req.key, partition);
    if (req.fence !== undefined) this.fence.admit(req.fence);
    const ticket = this.cache.begin(req.map, req.key, partition);
    try {
      await this.store.delete(req.map, req.key, req.revision);
      forget(this.cache, req.map, req.key);
      return {};
    } catch (err) {
      forget(this.cache, req.map, req.key);
      throw err;
    } finally {
      this.cache.finish(ticket);
    }
  }
}

/**
 * Drops the key's entry, and keeps operations in flight from storing what they saw:
 * after a delete (whose revision is unknown) and after any failed write (a write that
 * timed out may have been applied; CONFLICT says the entry was not the newest).
 */
function forget(cache: MdCache, map: MdMap, key: string): void {
  cache.changed(map, key, Infinity, () => undefined);
}

function reply(entry: { value: unknown; revision: number }): { value?: unknown; revision: number } {
  return entry.value === undefined ? { revision: 0 } : { value: entry.value, revision: entry.revision };
}
