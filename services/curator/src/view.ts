// The cluster as the plan needs it (plan.ts, ClusterView), built from configuration
// objects and disk usage reports: pure, so the plan's tests build views the same way.
import type { CandidateDisk } from '@strata/placement';
import type { ObjectOf } from '@strata/proto';
import type { Leaver } from './drain';
import type { ClusterView, EgroupRow, NodeView, Policy } from './plan';

export interface ConfigObjects {
  nodes: readonly ObjectOf<'node'>[];
  disks: readonly ObjectOf<'disk'>[];
  containers: readonly ObjectOf<'container'>[];
  vdisks: readonly ObjectOf<'vdisk'>[];
}

/** `usedBytes(disk)`: the disk's last usage report, 0 when it has none yet. */
export function clusterView(cfg: ConfigObjects, usedBytes: (disk: bigint) => number): ClusterView {
  const nodes = new Map<string, NodeView>(cfg.nodes.map((n) => [n.name, { name: n.name, liveness: n.status.liveness, changedAtMs: n.status.changedAtMs, draining: n.spec.drainingSinceMs !== undefined }]));
  const drainingNodes = new Set(cfg.nodes.filter((n) => n.spec.drainingSinceMs !== undefined).map((n) => n.id));
  const nodeName = new Map(cfg.nodes.map((n) => [n.id, n.name]));
  const disks = new Map<bigint, CandidateDisk>();
  for (const d of cfg.disks) {
    const node = nodeName.get(d.spec.node);
    // A disk whose node is gone holds nothing the cluster can read: its replicas count as lost.
    if (node === undefined) continue;
    const draining = d.spec.drainingSinceMs !== undefined || drainingNodes.has(d.spec.node);
    disks.set(d.id, { id: d.id, node, tier: d.spec.tier, capacityBytes: d.spec.capacityBytes, usedBytes: usedBytes(d.id), draining });
  }
  const containers = new Map<bigint, Policy>(cfg.containers.map((c) => [c.id, { replicationFactor: c.spec.replicationFactor, tierOrder: c.spec.tierOrder }]));
  const policies = new Map<bigint, Policy>();
  for (const v of cfg.vdisks) {
    const policy = containers.get(v.spec.container);
    if (policy !== undefined) policies.set(v.id, policy);
  }
  const leavers: Leaver[] = [];
  for (const n of cfg.nodes) {
    if (n.spec.drainingSinceMs !== undefined) leavers.push({ kind: 'node', name: n.name, id: n.id, disks: new Set(cfg.disks.filter((d) => d.spec.node === n.id).map((d) => d.id)) });
  }
  for (const d of cfg.disks) if (d.spec.drainingSinceMs !== undefined) leavers.push({ kind: 'disk', name: d.name, id: d.id, disks: new Set([d.id]) });
  return { nodes, disks, policies, leavers };
}

/**
 * The view with a policy for each writer that is gone but whose extent groups a
 * snapshot or clone still names (`strata vdisk rm` of a source with snapshots): those
 * extent groups are still data, and must be re-replicated and drained like any other.
 * Each takes the policy of a vDisk that names it (the lowest id, so scans agree).
 * `references`: which vDisks' rows name each extent group (@strata/sweep referencesOf).
 */
export function withKeptWriters(view: ClusterView, rows: readonly EgroupRow[], references: ReadonlyMap<bigint, ReadonlySet<bigint>>): ClusterView {
  const policies = new Map(view.policies);
  for (const row of rows) {
    if (policies.has(row.entry.vdisk)) continue;
    const namers = [...(references.get(row.egroup) ?? [])].filter((v) => view.policies.has(v)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const policy = namers.length === 0 ? undefined : view.policies.get(namers[0]!);
    if (policy !== undefined) policies.set(row.entry.vdisk, policy);
  }
  return policies.size === view.policies.size ? view : { ...view, policies };
}

/** Whether some extent group's writer has no policy (it is gone): only then are the rows read for withKeptWriters. */
export function writersGone(view: ClusterView, rows: readonly EgroupRow[]): boolean {
  return rows.some((row) => !view.policies.has(row.entry.vdisk));
}
