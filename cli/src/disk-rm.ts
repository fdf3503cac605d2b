// `strata disk rm`: a disk that still holds replicas is removed only after a drain
// (`--wait`: drain.ts, the curator moves them first) or when forced. Each replica on it
// is one of its extent group's RF copies, so removing it by force leaves those extent
// groups a replica short until the curator copies them again (it counts a replica on
// a disk gone from the configuration as lost).
import type { NatsConnection } from '@nats-io/transport-node';
import { ErrorCode, StrataError } from '@strata/errors';
import { openBucket } from '@strata/kv';
import { buckets, mdValue, type EgroupEntry } from '@strata/proto';
import { formatSize } from './units';

/** What a disk holds: the extent groups with a replica on it, and their bytes. */
export interface DiskHoldings {
  egroups: number;
  bytes: number;
}

/** The extent groups among `entries` with a replica on `disk` (or on any of `disk`). */
export function holdingsOf(entries: Iterable<Pick<EgroupEntry, 'replicas' | 'sizeBytes'>>, disk: bigint | ReadonlySet<bigint>): DiskHoldings {
  const on = (d: bigint): boolean => (typeof disk === 'bigint' ? d === disk : disk.has(d));
  const out: DiskHoldings = { egroups: 0, bytes: 0 };
  for (const e of entries) {
    if (!e.replicas.some((r) => on(r.disk))) continue;
    out.egroups++;
    out.bytes += e.sizeBytes;
  }
  return out;
}

/** The refusal of removing disk `name` while it holds `held`; undefined when it holds nothing. */
export function diskRmRefusal(name: string, held: DiskHoldings): StrataError | undefined {
  if (held.egroups === 0) return undefined;
  const what = `${held.egroups} extent group${held.egroups === 1 ? '' : 's'} (${formatSize(held.bytes)})`;
  return new StrataError(
    ErrorCode.CONFLICT,
    `disk ${name} holds replicas of ${what}: removing it leaves each of them a replica short until the curator copies it again; "strata disk rm ${name} --wait" moves them off first, or use --force to remove it anyway`,
  );
}

/** Every extent-group entry of md-egroup (read from the bucket: the shards alone write it). */
export async function readEgroupEntries(nc: NatsConnection): Promise<EgroupEntry[]> {
  const bucket = await openBucket(nc, buckets.mdEgroup, mdValue.egroup, { history: 1 });
  return (await bucket.entries()).map((e) => e.value);
}
