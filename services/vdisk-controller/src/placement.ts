// Where the replicas of a new extent group go: RF disks on RF distinct live nodes,
// the local node first (reads stay local), then by the container's tier order and
// by free space. Pure: the caller passes the disks, the live nodes and the usage.

export interface CandidateDisk {
  id: bigint;
  node: string;
  tier: string;
  capacityBytes: number;
  usedBytes: number;
}

export interface PlacementInput {
  disks: readonly CandidateDisk[];
  liveNodes: ReadonlySet<string>;
  localNode: string;
  replicationFactor: number;
  tierOrder: readonly string[];
  /** Space the new extent group needs on each replica. */
  needBytes: number;
}

export type Placement = { ok: true; replicas: CandidateDisk[] } | { ok: false; why: string };

export function place(input: PlacementInput): Placement {
  const { replicationFactor, tierOrder, needBytes, localNode } = input;
  const rank = (d: CandidateDisk): [number, number] => {
    const tier = tierOrder.indexOf(d.tier);
    return [tier === -1 ? tierOrder.length : tier, -(d.capacityBytes - d.usedBytes)];
  };
  const usable = input.disks
    .filter((d) => input.liveNodes.has(d.node) && d.capacityBytes - d.usedBytes >= needBytes && tierOrder.includes(d.tier))
    .sort((a, b) => {
      const [ta, fa] = rank(a);
      const [tb, fb] = rank(b);
      return ta - tb || fa - fb || (a.id < b.id ? -1 : 1);
    });
  const chosen: CandidateDisk[] = [];
  const nodes = new Set<string>();
  const local = usable.find((d) => d.node === localNode);
  if (local !== undefined) {
    chosen.push(local);
    nodes.add(local.node);
  }
  for (const d of usable) {
    if (chosen.length >= replicationFactor) break;
    if (nodes.has(d.node)) continue;
    chosen.push(d);
    nodes.add(d.node);
  }
  if (chosen.length < replicationFactor) {
    const nodesWithSpace = new Set(usable.map((d) => d.node)).size;
    return { ok: false, why: `replication factor ${replicationFactor} needs ${replicationFactor} live nodes with ${needBytes} free bytes on a disk of tiers ${tierOrder.join(',')}; ${nodesWithSpace} have it` };
  }
  return { ok: true, replicas: chosen.slice(0, replicationFactor) };
}
