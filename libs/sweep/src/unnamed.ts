// Extent groups of a live vDisk that no row names (issue 17: extent-level garbage
// collection). Drain redirects blocks all the time (a staging extent adopted, a block
// shared with a snapshot or on a bad replica moved whole), so the extent groups a live
// vDisk writes fill with dead extents, and some end up named by no row at all. The
// sweep's other cases (plan.ts, planReclaim) never free those: their writer stays and
// they are not sealed.
//
// Such an extent group may still be in use by its writer's owner in memory: a lane's
// open extent group, a staging extent, an extent a drain allocated and has not
// recorded, an undrained `ref` op of the oplog. Only the owner knows, so it decides
// (`strata.vdc.<node>.release`, services/vdisk-controller Vdisk.release): it gives up
// the ones it does not use and never allocates, stages or writes there again. Then
// the rows are read again (only the writer's drain could have named one meanwhile, and
// the release excluded that; nothing at all is deleted while a snapshot or clone is
// being made), and the released ones still unnamed go: replicas, then the entry by
// compare-and-set on the revision the candidate was judged on, then an
// `egroup.reclaimed` event with the reason.
//
// Age. The entry has no timestamp, and its creation time would say nothing about how
// long it has been unnamed anyway (an old extent group loses its last block today). So
// the curator master remembers, in memory, since when each candidate has been unnamed
// at the revision it has now (UnnamedSince): a candidate is due once it was seen
// unnamed and unchanged on sweeps at least `graceMs` apart. Any drain activity in it
// (an extent recorded or freed) changes the revision and starts the clock again, so
// a read that found a row naming it has long finished. The memory starts empty on a
// master's failover: that only delays reclaiming.
import { RELEASE_EGROUPS_MAX, type EgroupEntry } from '@strata/proto';
import { byWriter, liveReference, makingAny, referencesOf, removedVdisks, type ReclaimInput, type ReplicaRef } from './plan';

/** An extent group of a live writer that no live row names, and that its writer's generation has not sealed. */
export interface UnnamedEgroup {
  id: bigint;
  /** Its writer (egroup-entry `vdisk`). */
  vdisk: bigint;
  /** The entry's revision when it was read (the delete is a compare-and-set on it). */
  revision: number;
  replicas: ReplicaRef[];
  sizeBytes: number;
}

export interface UnnamedInput extends Omit<ReclaimInput, 'egroups'> {
  egroups: ReadonlyArray<{ id: bigint; revision: number; entry: Pick<EgroupEntry, 'vdisk' | 'replicas' | 'sizeBytes' | 'gen'> }>;
}

/**
 * The extent groups whose writer is a live vDisk, that no row of a live vDisk names,
 * and that are not sealed (those planReclaim takes); none while a snapshot or clone is
 * being made (its rows may be half copied).
 */
export function planUnnamed(input: UnnamedInput): UnnamedEgroup[] {
  if (makingAny(input)) return [];
  const removed = removedVdisks(input);
  const existing = new Set(input.vdisks.map((v) => v.id));
  const out: UnnamedEgroup[] = [];
  for (const { id, revision, entry } of input.egroups) {
    if (!existing.has(entry.vdisk) || removed.has(entry.vdisk) || liveReference(input.references, removed, id)) continue;
    if ((entry.gen ?? 0) < (input.generations.get(entry.vdisk) ?? 0)) continue;
    out.push({ id, vdisk: entry.vdisk, revision, replicas: entry.replicas.map((r) => ({ disk: r.disk, node: r.node })), sizeBytes: entry.sizeBytes });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Since when each candidate has been seen unnamed at its current revision (the curator master's memory; see the top). */
export class UnnamedSince {
  private readonly since = new Map<bigint, { atMs: number; revision: number }>();

  /**
   * Records this sweep's candidates and returns those seen unnamed at the same revision
   * for at least `graceMs`. A candidate named again, gone, or changed is forgotten (a
   * changed one starts again from now).
   */
  observe(candidates: ReadonlyArray<Pick<UnnamedEgroup, 'id' | 'revision'>>, nowMs: number, graceMs: number): Set<bigint> {
    const current = new Map(candidates.map((c) => [c.id, c.revision]));
    for (const id of [...this.since.keys()]) if (!current.has(id)) this.since.delete(id);
    const due = new Set<bigint>();
    for (const [id, revision] of current) {
      const seen = this.since.get(id);
      if (seen === undefined || seen.revision !== revision) this.since.set(id, { atMs: nowMs, revision });
      else if (nowMs - seen.atMs >= graceMs) due.add(id);
    }
    return due;
  }

  /** Candidates remembered (for the scan's summary). */
  get size(): number {
    return this.since.size;
  }
}

/** What the live-writer reclaim needs besides the sweep's ports (sweep.ts). */
export interface UnnamedPorts {
  /** The vDisk's ownership record: its owner and epoch; null when it has none (no writer runs). */
  ownership(vdisk: bigint): Promise<{ owner: string; epoch: number } | null>;
  /** Asks `node`, the vDisk's owner at `epoch`, which of `egroups` it gives up (`strata.vdc.<node>.release`). */
  release(node: string, vdisk: bigint, epoch: number, egroups: readonly bigint[]): Promise<bigint[]>;
}

/** The due candidates to ask about in one sweep, RELEASE_EGROUPS_MAX in all (bounded work), by writer: a request per writer. */
export function releaseBatches(candidates: readonly UnnamedEgroup[], due: ReadonlySet<bigint>): Map<bigint, UnnamedEgroup[]> {
  return byWriter(candidates.filter((g) => due.has(g.id)).slice(0, RELEASE_EGROUPS_MAX));
}

/**
 * Of `released`, those the rows read again (`vdisks`, `rows`: after the release) still
 * do not name; none while a snapshot or clone is being made.
 */
export function stillUnnamed(
  released: readonly UnnamedEgroup[],
  after: Pick<ReclaimInput, 'vdisks' | 'nowMs' | 'creatingTimeoutMs'> & { rows: Parameters<typeof referencesOf>[0] },
): UnnamedEgroup[] {
  if (makingAny(after)) return [];
  const references = referencesOf(after.rows);
  const removed = removedVdisks(after);
  return released.filter((g) => !liveReference(references, removed, g.id));
}
