// Whether a vDisk's container can still store a write, decided before the write is
// acknowledged: its placeable bytes (libs/space: free bytes on RF distinct nodes,
// counting no disk without room for a new extent group) against the vDisk's undrained
// backlog plus the write. When they do not fit, the write gets NO_SPACE (ENOSPC at the
// NBD client) instead of a place in an oplog that could never drain. The disks' usage
// comes from their stores' reports (every 2 s), so the answer is at most that stale;
// a drain or direct write that still meets NO_SPACE refuses writes too (vdisk.ts).
import { ErrorCode, StrataError } from '@strata/errors';
import type { DiskUsage, ObjectOf } from '@strata/proto';
import { diskSpace, formatBytes, placeableBytes, type DiskSpace, type SpaceThresholds } from '@strata/space';

export interface GuardedContainer {
  id: bigint;
  name: string;
  replicationFactor: number;
  tierOrder: readonly string[];
}

export interface SpaceGuardDeps {
  disks: () => Array<Pick<ObjectOf<'disk'>, 'id' | 'name' | 'spec'>>;
  nodes: () => Array<Pick<ObjectOf<'node'>, 'id' | 'name'>>;
  usage: (disk: bigint) => DiskUsage | undefined;
  /** A disk with fewer free bytes takes no new extent group (the controller's egroupSizeBytes). */
  fullFreeBytes: number;
  nowMs: () => number;
  /** How long one look at the disks serves before it is taken again. */
  refreshMs: number;
}

export class SpaceGuard {
  private view: { atMs: number; disks: DiskSpace[]; placeable: Map<bigint, number> } | undefined;

  constructor(private readonly deps: SpaceGuardDeps) {}

  /** NO_SPACE when `container` cannot place `backlogBytes` plus `bytes`; undefined when it can. */
  roomFor(container: GuardedContainer, bytes: number, backlogBytes: number): StrataError | undefined {
    const view = this.look();
    let placeable = view.placeable.get(container.id);
    if (placeable === undefined) {
      placeable = placeableBytes(view.disks, container.replicationFactor, container.tierOrder);
      view.placeable.set(container.id, placeable);
    }
    if (backlogBytes + bytes <= placeable) return undefined;
    const full = view.disks.filter((d) => d.state === 'full' && container.tierOrder.includes(d.tier)).map((d) => d.name);
    return new StrataError(
      ErrorCode.NO_SPACE,
      `container ${container.name} can place ${formatBytes(placeable)} more on ${container.replicationFactor} distinct nodes` +
        `${full.length === 0 ? '' : ` (full: ${full.join(', ')})`}; this write needs ${formatBytes(bytes)} after ${formatBytes(backlogBytes)} not yet drained`,
    );
  }

  private look(): { disks: DiskSpace[]; placeable: Map<bigint, number> } {
    const nowMs = this.deps.nowMs();
    if (this.view !== undefined && nowMs - this.view.atMs < this.deps.refreshMs) return this.view;
    const names = new Map(this.deps.nodes().map((n) => [n.id, n]));
    // Warnings do not matter here: only whether a disk is full and its free bytes.
    const t: SpaceThresholds = { warnPercent: 100, fullFreeBytes: this.deps.fullFreeBytes };
    const disks = this.deps.disks().map((d) => {
      const node = names.get(d.spec.node);
      // Every node's disks count, up or not: too few nodes up makes writes wait in the
      // oplog for them (drain retries), it does not make them fail NO_SPACE.
      return diskSpace({ id: d.id, name: d.name, node: node?.name ?? '?', tier: d.spec.tier, capacityBytes: d.spec.capacityBytes, usedBytes: this.deps.usage(d.id)?.usedBytes, live: true }, t);
    });
    this.view = { atMs: nowMs, disks, placeable: new Map() };
    return this.view;
  }
}
