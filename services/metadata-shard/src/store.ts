// The three metadata buckets (md-vdisk, md-extent, md-egroup) behind one interface:
// reads that tell a broken stored value (INTERNAL) from a bad request, and writes that
// are compare-and-set on the key's revision (CONFLICT when stale).
import type { z } from 'zod';
import type { Bus } from '@strata/bus';
import { decode } from '@strata/codec';
import { ErrorCode, StrataError } from '@strata/errors';
import { openBucket, type TypedBucket } from '@strata/kv';
import { buckets, type MdMap, mdValue } from '@strata/proto';

/** A bucket of one map, typed loosely: values are validated against mdValue[map] before they get here. */
export type MdBucket = TypedBucket<z.ZodType>;
export type MdBuckets = Record<MdMap, MdBucket>;

export const bucketOfMap: Record<MdMap, string> = { vdisk: buckets.mdVdisk, extent: buckets.mdExtent, egroup: buckets.mdEgroup };

/** Opens (creating when missing) the three buckets, history 1: only the newest value of a key is kept. */
export async function openMdBuckets(nc: Bus['nc']): Promise<MdBuckets> {
  const [vdisk, extent, egroup] = await Promise.all([
    openBucket(nc, buckets.mdVdisk, mdValue.vdisk, { history: 1 }),
    openBucket(nc, buckets.mdExtent, mdValue.extent, { history: 1 }),
    openBucket(nc, buckets.mdEgroup, mdValue.egroup, { history: 1 }),
  ]);
  return { vdisk, extent, egroup } as MdBuckets;
}

export class MdStore {
  constructor(readonly buckets: MdBuckets) {}

  /** The key's value and revision, or null when it has none (never written, or deleted). */
  async get(map: MdMap, key: string): Promise<{ value: unknown; revision: number } | null> {
    const bucket = this.buckets[map];
    let e;
    try {
      e = await bucket.kv.get(key);
    } catch (err) {
      throw new StrataError(ErrorCode.UNAVAILABLE, `get ${bucket.name}/${key}: ${(err as Error).message}`, { cause: err });
    }
    if (e === null || e.operation !== 'PUT') return null;
    return { value: this.decodeStored(map, key, e.value), revision: e.revision };
  }

  /** Decodes a stored value; one that does not fit its schema is our bug, not the caller's. */
  decodeStored(map: MdMap, key: string, bytes: Uint8Array): unknown {
    try {
      return decode(bytes, mdValue[map]);
    } catch (err) {
      throw new StrataError(ErrorCode.INTERNAL, `stored value of ${bucketOfMap[map]}/${key} is unreadable: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Revision 0 creates (CONFLICT if the key has a value); otherwise compare-and-set at `revision`. Returns the new revision. */
  put(map: MdMap, key: string, value: unknown, revision: number): Promise<number> {
    const bucket = this.buckets[map];
    return revision === 0 ? bucket.create(key, value) : bucket.update(key, value, revision);
  }

  /** Deletes the key; with `revision`, only if it is still at that revision (CONFLICT otherwise). */
  delete(map: MdMap, key: string, revision: number | undefined): Promise<void> {
    return this.buckets[map].delete(key, revision);
  }
}
