// The garbage collection's decisions, pure: from the md-egroup entries, what each
// disk's extent store listed and the cluster view, which replica files nothing
// references and may be deleted. No I/O and no clock of its own: gc.ts passes
// everything in and re-checks each entry just before each delete.
//
// A listed replica is garbage when no entry names its disk: its extent group has no
// entry (an interrupted copy to a target whose entry was never updated, a sweep cut
// short after its entries went, a crash between placement and entry), or the entry
// names other disks (a node that came back after its replicas were re-replicated
// elsewhere; a partial copy the copier abandoned). It must also be older than the
// grace period: a new extent group's entry is written before any replica and a copy
// is recorded after its bytes are written, so a fresh file without a reference is an
// operation still in flight.
//
// The state of the entry's vDisk does not matter: a replica an entry names is never
// garbage here, even when the vDisk is being deleted (the sweep deletes those), and a
// replica no entry names is garbage whatever vDisk it once belonged to.
import type { EgListedReplica } from '@strata/proto';
import type { ClusterView, EgroupRow } from './plan';

/** What one disk's extent store listed, or why it could not be listed. */
export type DiskListing =
  | { node: string; disk: bigint; replicas: readonly EgListedReplica[] }
  | { node: string; disk: bigint; error: string };

export interface GarbageDelete {
  node: string;
  disk: bigint;
  egroup: bigint;
  bytes: number;
  why: string;
}

export interface SkippedDisk {
  node: string;
  disk: bigint;
  why: string;
}

export interface GarbagePlan {
  /** Ascending by disk, then extent group. */
  deletes: GarbageDelete[];
  /** Replicas listed on the disks judged. */
  listed: number;
  /** Replicas an entry names. */
  referenced: number;
  /** Replicas no entry names, younger than the grace period: left for a later scan. */
  young: number;
  /** Disks not judged at all: their view is partial or their node is not alive. */
  skippedDisks: SkippedDisk[];
}

/** Why a disk's listing cannot be judged, or undefined when it can. */
function skipReason(listing: DiskListing, view: ClusterView): string | undefined {
  if ('error' in listing) return `its listing failed: ${listing.error}`;
  const disk = view.disks.get(listing.disk);
  // The store answered for a disk the configuration no longer gives its node: it is
  // being moved or removed, and what it holds is not this scan's to judge.
  if (disk === undefined || disk.node !== listing.node) return `disk ${listing.disk} is not a disk of ${listing.node} in the configuration`;
  const liveness = view.nodes.get(listing.node)?.liveness ?? 'unknown';
  // A node not alive may hold the only good copy the next scan needs; never delete there.
  if (liveness !== 'alive') return `node ${listing.node} is ${liveness}`;
  return undefined;
}

export function planGarbage(rows: readonly EgroupRow[], listings: readonly DiskListing[], view: ClusterView, nowMs: number, graceMs: number): GarbagePlan {
  const entries = new Map(rows.map((row) => [row.egroup, row.entry]));
  const result: GarbagePlan = { deletes: [], listed: 0, referenced: 0, young: 0, skippedDisks: [] };
  const sorted = [...listings].sort((a, b) => (a.disk < b.disk ? -1 : a.disk > b.disk ? 1 : 0));
  for (const listing of sorted) {
    const skip = skipReason(listing, view);
    if (skip !== undefined || 'error' in listing) {
      result.skippedDisks.push({ node: listing.node, disk: listing.disk, why: skip ?? 'its listing failed' });
      continue;
    }
    const replicas = [...listing.replicas].sort((a, b) => (a.egroup < b.egroup ? -1 : a.egroup > b.egroup ? 1 : 0));
    for (const r of replicas) {
      result.listed++;
      const entry = entries.get(r.egroup);
      if (entry?.replicas.some((named) => named.disk === listing.disk) === true) {
        result.referenced++;
        continue;
      }
      if (nowMs - r.mtimeMs < graceMs) {
        result.young++;
        continue;
      }
      const why =
        entry === undefined
          ? `egroup ${r.egroup} has no md-egroup entry`
          : `the entry of egroup ${r.egroup} names disks ${entry.replicas.map((named) => named.disk).join(', ')}, not ${listing.disk}`;
      result.deletes.push({ node: listing.node, disk: listing.disk, egroup: r.egroup, bytes: r.sizeBytes, why });
    }
  }
  return result;
}

/** Whether `entry` (read again just before a delete) still leaves the replica on `disk` unnamed. */
export function stillGarbage(entry: EgroupRow['entry'] | undefined, disk: bigint): boolean {
  return entry === undefined || !entry.replicas.some((named) => named.disk === disk);
}
