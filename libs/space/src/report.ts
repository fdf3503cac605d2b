// The space of a whole cluster from its config objects and the disks' usage reports:
// what `strata status` prints and what the space monitor compares tick to tick.
import type { DiskUsage, ObjectOf } from '@strata/proto';
import { containerSpace, diskSpace, type ContainerSpace, type DiskSpace, type SpaceThresholds } from './space';

export interface ClusterObjects {
  disks: ReadonlyArray<Pick<ObjectOf<'disk'>, 'id' | 'name' | 'spec'>>;
  nodes: ReadonlyArray<Pick<ObjectOf<'node'>, 'id' | 'name'>>;
  containers: ReadonlyArray<Pick<ObjectOf<'container'>, 'id' | 'name' | 'spec'>>;
}

export interface SpaceReport {
  disks: DiskSpace[];
  containers: ContainerSpace[];
}

/** `usage(diskId)` is the disk's report in `hb` (disk.<id>), undefined while it has none. */
export function spaceReport(objects: ClusterObjects, usage: (disk: bigint) => DiskUsage | undefined, t: SpaceThresholds): SpaceReport {
  const nodes = new Map(objects.nodes.map((n) => [n.id, n]));
  const disks = objects.disks
    .map((d) => {
      const node = nodes.get(d.spec.node);
      return diskSpace(
        {
          id: d.id,
          name: d.name,
          node: node?.name ?? String(d.spec.node),
          tier: d.spec.tier,
          capacityBytes: d.spec.capacityBytes,
          usedBytes: usage(d.id)?.usedBytes,
          // Space states are about capacity: a node that is down is reported by the
          // failure detector (node.dead), and its disks keep their space.
          live: true,
        },
        t,
      );
    })
    .sort((a, b) => a.name.localeCompare(b.name));
  const containers = objects.containers
    .map((c) => containerSpace({ id: c.id, name: c.name, replicationFactor: c.spec.replicationFactor, tierOrder: c.spec.tierOrder }, disks, t))
    .sort((a, b) => a.name.localeCompare(b.name));
  return { disks, containers };
}
