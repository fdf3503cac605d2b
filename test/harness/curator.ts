// What the curator tests check of a `strata up` cluster: the extent-group entries of a
// vDisk in md-egroup, whether one is RF replicas on distinct live nodes, and where a
// replica's data file is.
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { openBucket } from '@strata/kv';
import { buckets, mdValue, type EgroupEntry } from '@strata/proto';
import type { UpCluster } from './up-cluster';
import { envSecurityOptions } from './suite-security';

/** Every extent-group entry of `vdisk` in md-egroup. */
export async function egroupsOf(natsUrl: string, vdisk: bigint): Promise<Map<bigint, EgroupEntry>> {
  const nc = await connect({ servers: natsUrl.split(','), timeout: 5_000, ...envSecurityOptions() });
  try {
    const bucket = await openBucket(nc, buckets.mdEgroup, mdValue.egroup, { history: 1 });
    return new Map((await bucket.entries()).filter((e) => e.value.vdisk === vdisk).map((e) => [BigInt(e.key), e.value]));
  } finally {
    await nc.close();
  }
}

/** Why `entry` is not RF replicas on distinct nodes (and distinct disks) none of which is in `dead`; undefined when it is. */
export function protectionProblem(id: bigint, entry: EgroupEntry, rf: number, dead: ReadonlySet<string>): string | undefined {
  const nodes = entry.replicas.map((r) => r.node);
  if (nodes.length !== rf) return `egroup ${id} has ${nodes.length} replicas (${nodes.join(',')}), not ${rf}`;
  if (new Set(nodes).size !== nodes.length) return `egroup ${id} has two replicas on one node (${nodes.join(',')})`;
  if (new Set(entry.replicas.map((r) => r.disk)).size !== nodes.length) return `egroup ${id} has two replicas on one disk`;
  const onDead = nodes.filter((n) => dead.has(n));
  if (onDead.length > 0) return `egroup ${id} still has a replica on ${onDead.join(',')}`;
  return undefined;
}

/** The data file of a replica: each node of `strata up` has one disk, `<dir>/disks/<node>-d1`. */
export function replicaFile(cluster: UpCluster, node: string, egroup: bigint): string {
  return join(cluster.dir, 'disks', `${node}-d1`, 'egroups', `${egroup}.eg`);
}
