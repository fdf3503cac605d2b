// The states of disks and containers, and what a container can still place.
//
// A disk is `full` when it has no room for a new extent group (less than
// `fullFreeBytes` free: placement needs that much on each replica), `warning` when its
// used share of capacity reaches `warnPercent`, else `ok`. A container is `full` when
// its replication factor can no longer be met for one more extent group: fewer than
// RF nodes (`live` ones: the space report counts every node) have a disk of its tiers with room; `warning` when the disks it may
// use are used at `warnPercent` or more, taken together.
import { assert } from '@strata/errors';

export const SpaceState = { ok: 'ok', warning: 'warning', full: 'full' } as const;
export type SpaceState = (typeof SpaceState)[keyof typeof SpaceState];

export interface SpaceThresholds {
  /** Used share of capacity, in percent, from which a disk or container is in warning. */
  warnPercent: number;
  /** Free bytes below which a disk takes no new extent group: full. */
  fullFreeBytes: number;
}

/** 85% warns with room to act; 16 MiB is the default extent-group size (the vdisk-controller's egroupSizeBytes). */
export const SPACE_THRESHOLDS_DEFAULT: SpaceThresholds = { warnPercent: 85, fullFreeBytes: 16 * 2 ** 20 };

/** A bad threshold is an error that names it (config is checked at start-up). */
export function checkThresholds(t: SpaceThresholds): SpaceThresholds {
  if (!Number.isFinite(t.warnPercent) || t.warnPercent <= 0 || t.warnPercent > 100) throw new RangeError(`warnPercent must be above 0 and at most 100, not ${t.warnPercent}`);
  if (!Number.isInteger(t.fullFreeBytes) || t.fullFreeBytes < 0) throw new RangeError(`fullFreeBytes must be a non-negative integer, not ${t.fullFreeBytes}`);
  return t;
}

export interface DiskInput {
  id: bigint;
  name: string;
  /** The node's name (`n1`). */
  node: string;
  tier: string;
  capacityBytes: number;
  /** From the disk's usage report; undefined while its store has not reported. */
  usedBytes: number | undefined;
  /** Whether its node may take new data (not declared dead). */
  live: boolean;
}

export interface DiskSpace extends DiskInput {
  freeBytes: number;
  state: SpaceState;
  /** Why, for people: `1.0 MiB free of 64.0 MiB, below 16.0 MiB`. */
  reason: string;
}

export function diskSpace(d: DiskInput, t: SpaceThresholds): DiskSpace {
  const used = d.usedBytes ?? 0;
  const freeBytes = Math.max(0, d.capacityBytes - used);
  const known = d.usedBytes === undefined ? ' (no usage report yet)' : '';
  if (freeBytes < t.fullFreeBytes) {
    return { ...d, freeBytes, state: SpaceState.full, reason: `${formatBytes(freeBytes)} free of ${formatBytes(d.capacityBytes)}, below ${formatBytes(t.fullFreeBytes)} (no room for a new extent group)` };
  }
  if (used * 100 >= t.warnPercent * d.capacityBytes) {
    return { ...d, freeBytes, state: SpaceState.warning, reason: `${percent(used, d.capacityBytes)} used of ${formatBytes(d.capacityBytes)}, at or above ${t.warnPercent}%` };
  }
  return { ...d, freeBytes, state: SpaceState.ok, reason: `${percent(used, d.capacityBytes)} used of ${formatBytes(d.capacityBytes)}${known}` };
}

export interface ContainerInput {
  id: bigint;
  name: string;
  replicationFactor: number;
  tierOrder: readonly string[];
}

export interface ContainerSpace extends ContainerInput {
  /** Over the live disks of its tiers. */
  usedBytes: number;
  capacityBytes: number;
  /** The most new data (before replication) it can still place, RF copies on distinct nodes. */
  placeableBytes: number;
  /** Its disks that are full. */
  fullDisks: string[];
  state: SpaceState;
  reason: string;
}

/**
 * The most bytes D of new data that fit RF times on distinct nodes, given each node's
 * room (the free bytes of its live disks of the container's tiers that are not
 * full): the largest D with sum over nodes of min(room, D) >= RF * D. The left side
 * minus RF * D is concave in D and 0 at 0, so the D that satisfy it are an interval
 * from 0: binary search finds its end.
 */
export function placeableBytes(disks: readonly DiskSpace[], replicationFactor: number, tierOrder: readonly string[]): number {
  assert(Number.isInteger(replicationFactor) && replicationFactor >= 1, 'a replication factor is a positive integer');
  const room = new Map<string, number>();
  for (const d of disks) {
    if (!d.live || d.state === SpaceState.full || !tierOrder.includes(d.tier)) continue;
    room.set(d.node, (room.get(d.node) ?? 0) + d.freeBytes);
  }
  const nodes = [...room.values()];
  if (nodes.length < replicationFactor) return 0;
  const fits = (bytes: number): boolean => nodes.reduce((n, r) => n + Math.min(r, bytes), 0) >= replicationFactor * bytes;
  let lo = 0;
  let hi = Math.floor(nodes.reduce((n, r) => n + r, 0) / replicationFactor);
  while (lo < hi) {
    const mid = lo + Math.ceil((hi - lo) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export function containerSpace(c: ContainerInput, disks: readonly DiskSpace[], t: SpaceThresholds): ContainerSpace {
  const mine = disks.filter((d) => d.live && c.tierOrder.includes(d.tier));
  const usedBytes = mine.reduce((n, d) => n + (d.usedBytes ?? 0), 0);
  const capacityBytes = mine.reduce((n, d) => n + d.capacityBytes, 0);
  const fullDisks = mine.filter((d) => d.state === SpaceState.full).map((d) => d.name).sort();
  const placeable = placeableBytes(mine, c.replicationFactor, c.tierOrder);
  const base = { ...c, usedBytes, capacityBytes, placeableBytes: placeable, fullDisks };
  const withRoom = new Set(mine.filter((d) => d.state !== SpaceState.full).map((d) => d.node)).size;
  if (withRoom < c.replicationFactor) {
    const full = fullDisks.length === 0 ? '' : `; full: ${fullDisks.join(', ')}`;
    return { ...base, state: SpaceState.full, reason: `RF ${c.replicationFactor} needs ${c.replicationFactor} nodes with room on a disk of tiers ${c.tierOrder.join(',')}; ${withRoom} have it${full}` };
  }
  if (capacityBytes > 0 && usedBytes * 100 >= t.warnPercent * capacityBytes) {
    return { ...base, state: SpaceState.warning, reason: `${percent(usedBytes, capacityBytes)} used of ${formatBytes(capacityBytes)}, at or above ${t.warnPercent}%; ${formatBytes(placeable)} placeable` };
  }
  return { ...base, state: SpaceState.ok, reason: `${percent(usedBytes, capacityBytes)} used of ${formatBytes(capacityBytes)}; ${formatBytes(placeable)} placeable` };
}

export interface SpaceChange {
  kind: 'disk' | 'container';
  id: bigint;
  name: string;
  from: SpaceState;
  to: SpaceState;
  usedBytes: number;
  capacityBytes: number;
  reason: string;
}

/**
 * The changes of state since `previous` (key `<kind>.<id>`; an object not there was
 * `ok`), and the new map to keep. One change per crossing, however often it is asked.
 */
export function spaceChanges(
  previous: ReadonlyMap<string, SpaceState>,
  disks: readonly DiskSpace[],
  containers: readonly ContainerSpace[],
): { changes: SpaceChange[]; states: Map<string, SpaceState> } {
  const states = new Map<string, SpaceState>();
  const changes: SpaceChange[] = [];
  const note = (kind: 'disk' | 'container', o: { id: bigint; name: string; state: SpaceState; reason: string; usedBytes: number | undefined; capacityBytes: number }): void => {
    const key = `${kind}.${o.id}`;
    const from = previous.get(key) ?? SpaceState.ok;
    states.set(key, o.state);
    if (from !== o.state) changes.push({ kind, id: o.id, name: o.name, from, to: o.state, usedBytes: o.usedBytes ?? 0, capacityBytes: o.capacityBytes, reason: o.reason });
  };
  for (const d of disks) if (d.usedBytes !== undefined) note('disk', d);
  for (const c of containers) note('container', c);
  return { changes, states };
}

function percent(part: number, whole: number): string {
  return whole === 0 ? '0%' : `${((100 * part) / whole).toFixed(1)}%`;
}

/** `64.0 MiB`: bytes for people, in binary units. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
