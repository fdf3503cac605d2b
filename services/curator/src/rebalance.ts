// Rebalance, pure: when the disks' used shares differ by more than a threshold (a new
// node's empty disks beside full ones), moves of extent-group replicas from the
// fullest disks to the emptiest, run by the same machinery as a drain's moves (copy,
// compare-and-set of the entry, delete of the replaced replica: never below RF).
// A disk's use is counted from the extent-group rows of the scan (the replicas its
// entries name, at their sizes), so a move done shows at the next scan without
// waiting for a usage report. Only disks on live nodes, not draining, take part;
// a replica moves within its tier, and never to a node that holds a replica of the
// same extent group. Bounded: at most `movesMax` moves per plan.
import type { CopyAction, ClusterView, EgroupRow } from './plan';

export interface RebalanceSettings {
  /** Moves start when the fullest and emptiest disks' used shares differ by more than this many percentage points. */
  thresholdPct: number;
  /** Moves planned at most per scan. */
  movesMax: number;
}

/** The fullest and emptiest disks taking part, and their used shares (percent). */
export interface Spread {
  fullest: { disk: bigint; node: string; usedPct: number };
  emptiest: { disk: bigint; node: string; usedPct: number };
  /** fullest - emptiest, in percentage points. */
  spreadPct: number;
}

export interface Rebalance {
  moves: CopyAction[];
  /** Before the moves; absent with fewer than two disks taking part. */
  spread?: Spread;
}

export interface DiskUse {
  id: bigint;
  node: string;
  tier: string;
  capacityBytes: number;
  usedBytes: number;
}

const pct = (d: DiskUse): number => (d.capacityBytes <= 0 ? 100 : (100 * d.usedBytes) / d.capacityBytes);
const round1 = (x: number): number => Math.round(x * 10) / 10;

/** The disks that take part, with the bytes the rows' replicas put on each. */
export function diskUse(rows: readonly EgroupRow[], view: ClusterView): DiskUse[] {
  const alive = (node: string): boolean => view.nodes.get(node)?.liveness === 'alive' && view.nodes.get(node)?.draining !== true;
  const disks = new Map<bigint, DiskUse>();
  for (const d of view.disks.values()) if (d.draining !== true && alive(d.node)) disks.set(d.id, { id: d.id, node: d.node, tier: d.tier, capacityBytes: d.capacityBytes, usedBytes: 0 });
  for (const row of rows) for (const r of row.entry.replicas) {
    const d = disks.get(r.disk);
    if (d !== undefined) d.usedBytes += row.entry.sizeBytes;
  }
  return [...disks.values()];
}

export function spreadOf(disks: readonly DiskUse[]): Spread | undefined {
  if (disks.length < 2) return undefined;
  const byUse = [...disks].sort((a, b) => pct(b) - pct(a) || (a.id < b.id ? -1 : 1));
  const f = byUse[0]!;
  const e = byUse[byUse.length - 1]!;
  return { fullest: { disk: f.id, node: f.node, usedPct: round1(pct(f)) }, emptiest: { disk: e.id, node: e.node, usedPct: round1(pct(e)) }, spreadPct: round1(pct(f) - pct(e)) };
}

/**
 * The moves that bring the disks' used shares within `thresholdPct` of each other,
 * `movesMax` at most. `busy`: extent groups with a copy queued or running (not moved
 * again). Only extent groups whose every replica is on a disk taking part move (the
 * plan's own copies come first: the master asks for a rebalance only when the plan
 * has none). Each move takes the largest replica on the fullest disk that does not
 * overshoot (the target stays below the source after it), to the emptiest disk of
 * the same tier whose node holds no other replica of the extent group.
 */
export function planRebalance(rows: readonly EgroupRow[], view: ClusterView, settings: RebalanceSettings, busy: ReadonlySet<bigint> = new Set()): Rebalance {
  const disks = diskUse(rows, view);
  const spread = spreadOf(disks);
  const result: Rebalance = { moves: [], ...(spread === undefined ? {} : { spread }) };
  if (spread === undefined || spread.spreadPct <= settings.thresholdPct) return result;
  const byId = new Map(disks.map((d) => [d.id, d]));
  const movable = rows.filter((row) => row.entry.sizeBytes > 0 && !busy.has(row.egroup) && view.policies.has(row.entry.vdisk) && row.entry.replicas.every((r) => byId.has(r.disk)));
  const moved = new Set<bigint>();
  const exhausted = new Set<bigint>();
  while (result.moves.length < settings.movesMax) {
    const sources = disks.filter((d) => !exhausted.has(d.id)).sort((a, b) => pct(b) - pct(a) || (a.id < b.id ? -1 : 1));
    const from = sources[0];
    if (from === undefined) break;
    const move = bestMove(from, disks, byId, movable, moved, settings.thresholdPct);
    if (move === undefined) {
      exhausted.add(from.id);
      continue;
    }
    const { row, to } = move;
    const size = row.entry.sizeBytes;
    const reason = `rebalance: disk ${from.id} (${from.node}) at ${round1(pct(from))}% used, disk ${to.id} (${to.node}) at ${round1(pct(to))}%: more than ${settings.thresholdPct} points apart`;
    from.usedBytes -= size;
    to.usedBytes += size;
    moved.add(row.egroup);
    result.moves.push({ ...moveOf(row, from.id, to, view, reason), rebalance: true });
  }
  return result;
}

/**
 * The move of `row`'s replica on disk `fromDisk` to `to`: a copy that replaces it in
 * the entry, after which it is deleted (`drop`), as a drain moves replicas.
 */
export function moveOf(row: EgroupRow, fromDisk: bigint, to: { id: bigint; node: string }, view: ClusterView, reason: string): CopyAction {
  const replica = row.entry.replicas.find((r) => r.disk === fromDisk)!;
  return {
    egroup: row.egroup,
    revision: row.revision,
    vdisk: row.entry.vdisk,
    source: replica,
    lost: replica,
    target: { disk: to.id, node: to.node },
    bytes: row.entry.sizeBytes,
    left: row.entry.replicas.length,
    drop: true,
    replicationFactor: view.policies.get(row.entry.vdisk)!.replicationFactor,
    reason,
  };
}

/** The move off `from` that narrows the spread most, or undefined when none may go anywhere. */
function bestMove(from: DiskUse, disks: readonly DiskUse[], byId: ReadonlyMap<bigint, DiskUse>, rows: readonly EgroupRow[], moved: ReadonlySet<bigint>, thresholdPct: number): { row: EgroupRow; to: DiskUse } | undefined {
  const targets = disks.filter((d) => d.id !== from.id && d.tier === from.tier && pct(from) - pct(d) > thresholdPct).sort((a, b) => pct(a) - pct(b) || (a.id < b.id ? -1 : 1));
  const here = rows.filter((row) => !moved.has(row.egroup) && row.entry.replicas.some((r) => r.disk === from.id)).sort((a, b) => b.entry.sizeBytes - a.entry.sizeBytes || (a.egroup < b.egroup ? -1 : 1));
  for (const to of targets) {
    for (const row of here) {
      const size = row.entry.sizeBytes;
      // Never overshoot: after the move the target is still no fuller than the source.
      if (to.capacityBytes - to.usedBytes < size || (100 * (to.usedBytes + size)) / to.capacityBytes > (100 * (from.usedBytes - size)) / from.capacityBytes) continue;
      // The target's node holds no other replica (another disk of the source's node may take it).
      if (row.entry.replicas.some((r) => r.disk !== from.id && (byId.get(r.disk)?.node ?? r.node) === to.node)) continue;
      return { row, to };
    }
  }
  return undefined;
}
