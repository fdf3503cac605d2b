// Tiering, pure: when a tier of a container's tier order is fuller than a threshold
// (its disks' used bytes over their capacity), the coldest extent groups with a
// replica there move down the order: each such replica to the emptiest disk of the
// next tier with room, run by the same machinery as a drain's moves (copy, compare-
// and-set of the entry, delete of the replaced replica: never below RF).
//
// Cold means not written for `coldAfterMs`. Reads are not recorded in the metadata,
// so a write is the sign of use the curator sees: the master notes when each entry's
// data version last changed (observeWrites); a copy or a move of a replica changes
// the entry but not its version, and does not warm it. A new master knows no history and counts
// every entry as written when it started, so nothing moves before coldAfterMs has
// passed under it. A tier's fullness counts the replicas the rows name, as the
// rebalance does; only disks on live nodes, not draining, take part. The last tier of
// an order takes what fits; any other tier takes a move only while it stays at or
// below the threshold. Bounded: at most `movesMax` moves per plan.
import { diskUse, moveOf, type DiskUse } from './rebalance';
import type { ClusterView, CopyAction, EgroupRow } from './plan';

export interface TieringSettings {
  /** A tier above this share of its capacity (percent) sends cold extent groups down. */
  thresholdPct: number;
  /** An extent group not written for this long is cold. */
  coldAfterMs: number;
  /** Moves planned at most per scan. */
  movesMax: number;
}

/** When each extent group's data version was last seen to change (the master's clock, wall time). */
export type LastWrites = ReadonlyMap<bigint, { version: number; atMs: number }>;

/** `previous` brought up to the rows of a scan at `nowMs`: an entry at a new version (or new) was written now. */
export function observeWrites(previous: LastWrites, rows: readonly EgroupRow[], nowMs: number): LastWrites {
  const next = new Map<bigint, { version: number; atMs: number }>();
  for (const row of rows) {
    const seen = previous.get(row.egroup);
    const version = row.entry.tentative?.version ?? row.entry.version;
    next.set(row.egroup, seen !== undefined && seen.version === version ? seen : { version, atMs: nowMs });
  }
  return next;
}

/** One tier's disks together. */
export interface TierUse {
  tier: string;
  usedBytes: number;
  capacityBytes: number;
  usedPct: number;
}

export interface Tiering {
  moves: CopyAction[];
  /** Every tier with a disk taking part, as the scan found it (before the moves). */
  tiers: TierUse[];
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const pctOf = (used: number, capacity: number): number => (capacity <= 0 ? 100 : (100 * used) / capacity);

function tiersOf(disks: readonly DiskUse[]): Map<string, { usedBytes: number; capacityBytes: number }> {
  const tiers = new Map<string, { usedBytes: number; capacityBytes: number }>();
  for (const d of disks) {
    const t = tiers.get(d.tier) ?? { usedBytes: 0, capacityBytes: 0 };
    t.usedBytes += d.usedBytes;
    t.capacityBytes += d.capacityBytes;
    tiers.set(d.tier, t);
  }
  return tiers;
}

/**
 * The moves that bring every tier above `thresholdPct` back under it, coldest extent
 * groups first (oldest last write, then lowest revision), `movesMax` at most. `busy`:
 * extent groups with a copy queued or running. A replica moves to the emptiest disk
 * of the first lower tier (in its container's order) with room, on its own node or
 * one that holds no other replica of the extent group.
 */
export function planTiering(rows: readonly EgroupRow[], view: ClusterView, lastWrites: LastWrites, nowMs: number, settings: TieringSettings, busy: ReadonlySet<bigint> = new Set()): Tiering {
  const disks = diskUse(rows, view);
  const tiers = tiersOf(disks);
  const result: Tiering = { moves: [], tiers: [...tiers].map(([tier, t]) => ({ tier, ...t, usedPct: round1(pctOf(t.usedBytes, t.capacityBytes)) })) };
  const over = (tier: string): boolean => {
    const t = tiers.get(tier);
    return t !== undefined && pctOf(t.usedBytes, t.capacityBytes) > settings.thresholdPct;
  };
  if (!result.tiers.some((t) => t.usedPct > settings.thresholdPct)) return result;
  const byId = new Map(disks.map((d) => [d.id, d]));
  const writtenAt = (row: EgroupRow): number => lastWrites.get(row.egroup)?.atMs ?? nowMs;
  const cold = rows
    .filter((row) => row.entry.sizeBytes > 0 && row.entry.tentative === undefined && !busy.has(row.egroup) && view.policies.has(row.entry.vdisk))
    .filter((row) => row.entry.replicas.every((r) => byId.has(r.disk)) && nowMs - writtenAt(row) >= settings.coldAfterMs)
    .sort((a, b) => writtenAt(a) - writtenAt(b) || a.revision - b.revision);
  for (const row of cold) {
    if (result.moves.length >= settings.movesMax) break;
    const move = moveDown(row, view, byId, tiers, over, settings.thresholdPct);
    if (move === undefined) continue;
    const { from, to } = move;
    const size = row.entry.sizeBytes;
    const fromTier = tiers.get(from.tier)!;
    const reason = `tiering: tier ${from.tier} at ${round1(pctOf(fromTier.usedBytes, fromTier.capacityBytes))}% used (threshold ${settings.thresholdPct}%); extent group not written for ${Math.round((nowMs - writtenAt(row)) / 1000)} s moves to tier ${to.tier}`;
    from.usedBytes -= size;
    to.usedBytes += size;
    fromTier.usedBytes -= size;
    tiers.get(to.tier)!.usedBytes += size;
    result.moves.push({ ...moveOf(row, from.id, to, view, reason), tiering: true });
  }
  return result;
}

/** The replica of `row` on a tier over the threshold and the disk of a lower tier it may move to, if any. */
function moveDown(
  row: EgroupRow,
  view: ClusterView,
  byId: ReadonlyMap<bigint, DiskUse>,
  tiers: ReadonlyMap<string, { usedBytes: number; capacityBytes: number }>,
  over: (tier: string) => boolean,
  thresholdPct: number,
): { from: DiskUse; to: DiskUse } | undefined {
  const order = view.policies.get(row.entry.vdisk)!.tierOrder;
  const size = row.entry.sizeBytes;
  for (const r of row.entry.replicas) {
    const from = byId.get(r.disk)!;
    const level = order.indexOf(from.tier);
    if (level < 0 || !over(from.tier)) continue;
    for (const tier of order.slice(level + 1)) {
      const t = tiers.get(tier);
      if (t === undefined) continue;
      const last = tier === order[order.length - 1];
      if (!last && pctOf(t.usedBytes + size, t.capacityBytes) > thresholdPct) continue;
      const others = new Set(row.entry.replicas.filter((o) => o.disk !== from.id).map((o) => byId.get(o.disk)!.node));
      const to = [...byId.values()]
        .filter((d) => d.tier === tier && d.capacityBytes - d.usedBytes >= size && !others.has(d.node))
        .sort((a, b) => pctOf(a.usedBytes, a.capacityBytes) - pctOf(b.usedBytes, b.capacityBytes) || (a.id < b.id ? -1 : 1))[0];
      if (to !== undefined) return { from, to };
    }
  }
  return undefined;
}
