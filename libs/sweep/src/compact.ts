// Compaction of extent groups that are mostly dead (issue 17). An extent group of a
// live vDisk whose live bytes (the extents some row names) are a small share of its
// size holds dead space that the reclaim of unnamed extent groups (unnamed.ts) never
// frees: a few live blocks keep it named. When every row naming it is its writer's
// own, at the writer's current generation (a block shared with a snapshot cannot be
// freed by moving it: the snapshot's row keeps naming it), the writer's owner can move
// those blocks elsewhere (`strata.vdc.<node>.compact`: its next drain moves them, as it
// moves a block shared with a snapshot); the extent group is then unnamed, and the
// reclaim deletes it on a later sweep. Pure: the plan; sweep.ts asks the owners.
import { COMPACT_EGROUPS_MAX, type EgroupEntry, type VdiskRow } from '@strata/proto';
import { makingAny, removedVdisks, vdiskOfRowKey, type ReclaimInput } from './plan';

/** An extent group to evacuate: its writer, and its live and recorded bytes. */
export interface CompactCandidate {
  id: bigint;
  vdisk: bigint;
  liveBytes: number;
  sizeBytes: number;
  /** The entry's revision when read (a candidate is asked about only once unchanged for the grace period). */
  revision?: number;
}

export interface CompactInput extends Pick<ReclaimInput, 'vdisks' | 'nowMs' | 'creatingTimeoutMs'> {
  rows: ReadonlyArray<{ key: string; value: VdiskRow }>;
  egroups: ReadonlyArray<{ id: bigint; revision?: number; entry: Pick<EgroupEntry, 'vdisk' | 'sizeBytes' | 'gen'> }>;
  /** Below this share of its size live, an extent group is compacted (0: never). */
  liveFraction: number;
}

/** What the rows say of one extent group: who names it, the live bytes, and the generations its locations carry. */
interface Use {
  vdisks: Set<bigint>;
  /** Distinct extents named (offset -> length). */
  extents: Map<number, number>;
  gens: Set<number>;
}

function usesOf(rows: CompactInput['rows']): Map<bigint, Use> {
  const out = new Map<bigint, Use>();
  for (const { key, value } of rows) {
    const vdisk = vdiskOfRowKey(key);
    if (vdisk === undefined) continue;
    for (const location of Object.values(value.blocks)) {
      let use = out.get(location.egroup);
      if (use === undefined) out.set(location.egroup, (use = { vdisks: new Set(), extents: new Map(), gens: new Set() }));
      use.vdisks.add(vdisk);
      use.extents.set(location.offset, location.length);
      use.gens.add(location.gen ?? 0);
    }
  }
  return out;
}

/**
 * The writers whose generation the plan needs: those of extent groups named only by
 * their writer's rows, below the live fraction (so the reads stay few).
 */
export function compactionWriters(input: CompactInput): bigint[] {
  return [...new Set(preCandidates(input).map((c) => c.vdisk))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function preCandidates(input: CompactInput): Array<CompactCandidate & { gen: number }> {
  if (input.liveFraction <= 0 || makingAny(input)) return [];
  const removed = removedVdisks(input);
  const existing = new Set(input.vdisks.map((v) => v.id));
  const uses = usesOf(input.rows);
  const out: Array<CompactCandidate & { gen: number }> = [];
  for (const { id, revision, entry } of input.egroups) {
    const use = uses.get(id);
    // Unnamed ones are the reclaim's; a removed writer's are the sweep's.
    if (use === undefined || !existing.has(entry.vdisk) || removed.has(entry.vdisk) || entry.sizeBytes === 0) continue;
    if (use.vdisks.size !== 1 || !use.vdisks.has(entry.vdisk) || use.gens.size !== 1) continue;
    const liveBytes = [...use.extents.values()].reduce((n, l) => n + l, 0);
    if (liveBytes >= input.liveFraction * entry.sizeBytes) continue;
    out.push({ id, vdisk: entry.vdisk, liveBytes, sizeBytes: entry.sizeBytes, ...(revision === undefined ? {} : { revision }), gen: [...use.gens][0]! });
  }
  return out;
}

/**
 * The extent groups to compact: a live writer's, named only by its own rows, every
 * location at its current generation (`generations`, absent: 0), with live bytes below
 * `liveFraction` of the recorded size; at most COMPACT_EGROUPS_MAX and `bytesMax` live
 * bytes in all (the emptiest first), so a sweep's moves are bounded. None while a
 * snapshot or clone is being made.
 */
export function planCompaction(input: CompactInput, generations: ReadonlyMap<bigint, number>, bytesMax: number): CompactCandidate[] {
  const out: CompactCandidate[] = [];
  let bytes = 0;
  const eligible = preCandidates(input)
    .filter((c) => c.gen === (generations.get(c.vdisk) ?? 0))
    .sort((a, b) => a.liveBytes / a.sizeBytes - b.liveBytes / b.sizeBytes || (a.id < b.id ? -1 : 1));
  for (const { gen: _gen, ...c } of eligible) {
    if (out.length >= COMPACT_EGROUPS_MAX || bytes + c.liveBytes > bytesMax) break;
    out.push(c);
    bytes += c.liveBytes;
  }
  return out;
}

/**
 * The curator master's memory of the candidates: one is asked about once it has been a
 * candidate at the same entry revision for the grace period (a transient state, an
 * extent group still being filled, is left alone), and again only a grace period after
 * it was last asked (an owner that restarted forgets what it was evacuating).
 */
export class CompactAsked {
  private readonly at = new Map<bigint, { sinceMs: number; revision: number | undefined; askedAtMs?: number }>();

  /** Of `candidates`, those to ask about now; forgets those no longer candidates. */
  due(candidates: readonly CompactCandidate[], nowMs: number, graceMs: number): CompactCandidate[] {
    const ids = new Set(candidates.map((c) => c.id));
    for (const id of [...this.at.keys()]) if (!ids.has(id)) this.at.delete(id);
    return candidates.filter((c) => {
      const seen = this.at.get(c.id);
      if (seen === undefined || seen.revision !== c.revision) {
        this.at.set(c.id, { sinceMs: nowMs, revision: c.revision });
        return false;
      }
      return nowMs - seen.sinceMs >= graceMs && (seen.askedAtMs === undefined || nowMs - seen.askedAtMs >= graceMs);
    });
  }

  asked(ids: readonly bigint[], nowMs: number): void {
    for (const id of ids) {
      const seen = this.at.get(id);
      if (seen !== undefined) seen.askedAtMs = nowMs;
    }
  }
}
