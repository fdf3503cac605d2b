// Where the replicas of an extent group go: RF disks on RF distinct live nodes, the
// local node first (reads stay local), then by the container's tier order and by free
// space; never a draining disk (its node or itself is leaving: `strata node drain`). A replacement for a lost replica follows the same rules, away from every node
// that holds a replica already. Pure: the caller passes the disks, the live nodes and
// the usage.

export interface CandidateDisk {
  id: bigint;
  node: string;
  tier: string;
  capacityBytes: number;
  usedBytes: number;
  /** The disk, or its node, is being drained: it takes no new replica. */
  draining?: boolean;
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
    .filter((d) => d.draining !== true && input.liveNodes.has(d.node) && d.capacityBytes - d.usedBytes >= needBytes && tierOrder.includes(d.tier))
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

export interface ReplacementInput {
  disks: readonly CandidateDisk[];
  liveNodes: ReadonlySet<string>;
  /** Nodes that hold a replica of the extent group already (a second one there adds no protection). */
  occupiedNodes: ReadonlySet<string>;
  tierOrder: readonly string[];
  /** Space the copy needs on its disk. */
  needBytes: number;
}

/**
 * One disk for a new replica of an existing extent group: `place` for one replica over
 * the live nodes that hold none yet, with no local preference (the curator runs on
 * any node; the replica serves the owner, wherever it is).
 */
export function placeReplacement(input: ReplacementInput): { ok: true; disk: CandidateDisk } | { ok: false; why: string } {
  const liveNodes = new Set([...input.liveNodes].filter((n) => !input.occupiedNodes.has(n)));
  const placed = place({ disks: input.disks, liveNodes, localNode: '', replicationFactor: 1, tierOrder: input.tierOrder, needBytes: input.needBytes });
  if (!placed.ok) {
    const held = [...input.occupiedNodes].sort().join(', ') || 'none';
    return { ok: false, why: `no live node without a replica (held on: ${held}) has a disk of tiers ${input.tierOrder.join(',')} with ${input.needBytes} free bytes` };
  }
  return { ok: true, disk: placed.replicas[0]! };
}
