// The rebalance plan: moves from the fullest disk to the emptiest only while they
// differ by more than the threshold, never overshooting, never to a node that holds
// a replica of the extent group, within the replica's tier, bounded per scan, and
// nothing for extent groups a copy is busy with. Random clusters (fast-check): every
// move keeps the extent group's replicas on distinct nodes, and the moves never widen
// the spread.
import fc from 'fast-check';
import type { EgroupEntry, ObjectOf } from '@strata/proto';
import type { ClusterView, EgroupRow } from '../src/plan';
import { applied } from './applied';
import { diskUse, planRebalance, spreadOf } from '../src/rebalance';
import { clusterView } from '../src/view';

const MiB = 2 ** 20;
const NOW = 1_735_689_600_000;

/** Nodes n1..nN, one disk each (id 100 + k) of `capacityMiB`, every vDisk RF `rf`. */
function view(nodes: Array<{ liveness?: 'alive' | 'dead'; draining?: boolean; tier?: string }>, rf = 2, capacityMiB = 100): ClusterView {
  const nodeObjects = nodes.map((n, i) => ({ kind: 'node', id: BigInt(i + 1), name: `n${i + 1}`, spec: n.draining === true ? { drainingSinceMs: NOW } : {}, status: { liveness: n.liveness ?? 'alive', incarnation: 1, changedAtMs: NOW } })) as unknown as ObjectOf<'node'>[];
  const disks = nodes.map((n, i) => ({ kind: 'disk', id: BigInt(101 + i), name: `n${i + 1}-d1`, spec: { node: BigInt(i + 1), path: '/d', tier: n.tier ?? 'ssd', capacityBytes: capacityMiB * MiB } })) as unknown as ObjectOf<'disk'>[];
  const containers = [{ kind: 'container', id: 50n, name: 'c', spec: { replicationFactor: rf, tierOrder: ['ssd', 'hdd'] } }] as unknown as ObjectOf<'container'>[];
  const vdisks = [{ kind: 'vdisk', id: 7n, name: 'v', spec: { container: 50n } }] as unknown as ObjectOf<'vdisk'>[];
  return clusterView({ nodes: nodeObjects, disks, containers, vdisks }, () => 0);
}

function row(egroup: number, nodes: number[], sizeBytes = 4 * MiB): EgroupRow {
  const entry: EgroupEntry = { vdisk: 7n, replicas: nodes.map((k) => ({ disk: BigInt(100 + k), node: `n${k}` })), version: 3, sizeBytes, extents: [] };
  return { egroup: BigInt(egroup), revision: 10, entry };
}

/** `count` extent groups of 4 MiB, each on nodes 1 and 2. */
const onTwo = (count: number): EgroupRow[] => Array.from({ length: count }, (_, i) => row(i + 1, [1, 2]));
const settings = { thresholdPct: 10, movesMax: 100 };

describe('rebalance', () => {
  it('gives a new empty node a share: moves off the fullest disks until within the threshold, never onto a node that holds the other replica', () => {
    const v = view([{}, {}, {}]);
    const rows = onTwo(10); // n1 and n2 at 40%, n3 empty
    const r = planRebalance(rows, v, settings);
    expect(r.spread).toEqual({ fullest: { disk: 101n, node: 'n1', usedPct: 40 }, emptiest: { disk: 103n, node: 'n3', usedPct: 0 }, spreadPct: 40 });
    expect(r.moves.length).toBeGreaterThan(0);
    for (const m of r.moves) {
      expect(m).toMatchObject({ target: { disk: 103n, node: 'n3' }, drop: true, rebalance: true, left: 2, replicationFactor: 2 });
      expect(m.lost).toEqual(m.source);
      expect(m.reason).toMatch(/^rebalance: disk 10[12] \(n[12]\) at [\d.]+% used, disk 103 \(n3\) at [\d.]+%: more than 10 points apart$/);
    }
    const after = spreadOf(diskUse(applied(rows, r.moves), v))!;
    expect(after.spreadPct).toBeLessThanOrEqual(10);
    // Balanced: nothing more.
    expect(planRebalance(applied(rows, r.moves), v, settings).moves).toEqual([]);
  });

  it('moves nothing within the threshold, with one disk, or for extent groups a copy is busy with; at most movesMax a scan', () => {
    expect(planRebalance(onTwo(10), view([{}, {}, {}]), { thresholdPct: 40, movesMax: 100 }).moves).toEqual([]);
    expect(planRebalance([row(1, [1])], view([{}]), settings)).toEqual({ moves: [] });
    const busy = new Set(onTwo(10).map((r) => r.egroup));
    expect(planRebalance(onTwo(10), view([{}, {}, {}]), settings, busy).moves).toEqual([]);
    expect(planRebalance(onTwo(10), view([{}, {}, {}]), { thresholdPct: 10, movesMax: 2 }).moves).toHaveLength(2);
  });

  it('leaves out dead and draining nodes (as source and target), other tiers, and replicas of extent groups with one there', () => {
    expect(planRebalance(onTwo(10), view([{}, {}, { liveness: 'dead' }]), settings).moves).toEqual([]);
    expect(planRebalance(onTwo(10), view([{}, {}, { draining: true }]), settings).moves).toEqual([]);
    expect(planRebalance(onTwo(10), view([{}, {}, { tier: 'hdd' }]), settings).moves).toEqual([]);
    // A replica on a dead node: its extent group is the plan's business, not moved.
    expect(planRebalance([row(1, [1, 3]), ...onTwo(10).slice(1)], view([{}, {}, { liveness: 'dead' }, {}]), settings).moves.map((m) => m.egroup)).not.toContain(1n);
  });

  it('never overshoots: a replica bigger than half the gap stays', () => {
    // n1 40 MiB in one extent group, n2 empty (RF 1): moving it would just swap them.
    const v = view([{}, {}], 1);
    expect(planRebalance([row(1, [1], 40 * MiB)], v, settings).moves).toEqual([]);
    const r = planRebalance([row(1, [1], 20 * MiB), row(2, [1], 20 * MiB)], v, settings);
    expect(r.moves.map((m) => [m.egroup, m.target.disk])).toEqual([[1n, 102n]]);
  });

  it('for any cluster: moves keep replicas on distinct nodes, go to live disks of the same tier that are not draining, and never widen the spread', () => {
    const nodeState = fc.record({ liveness: fc.constantFrom('alive' as const, 'alive' as const, 'dead' as const), draining: fc.boolean(), tier: fc.constantFrom('ssd', 'ssd', 'hdd') });
    fc.assert(
      fc.property(
        fc.array(nodeState, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.record({ nodes: fc.uniqueArray(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }), sizeMiB: fc.integer({ min: 0, max: 16 }) }), { maxLength: 30 }),
        fc.integer({ min: 0, max: 30 }),
        (nodes, rf, groups, threshold) => {
          const v = view(nodes, rf);
          const rows = groups.filter((g) => g.nodes.every((k) => k <= nodes.length)).map((g, i) => row(i + 1, g.nodes, g.sizeMiB * MiB));
          const s = { thresholdPct: threshold, movesMax: 8 };
          const r = planRebalance(rows, v, s);
          expect(r.moves.length).toBeLessThanOrEqual(8);
          expect(new Set(r.moves.map((m) => m.egroup)).size).toBe(r.moves.length);
          for (const m of r.moves) {
            const target = v.disks.get(m.target.disk)!;
            const source = v.disks.get(m.lost!.disk)!;
            expect({ alive: v.nodes.get(target.node)!.liveness, draining: target.draining, tier: target.tier }).toEqual({ alive: 'alive', draining: false, tier: source.tier });
          }
          const after = applied(rows, r.moves);
          for (const a of after) expect(new Set(a.entry.replicas.map((x) => x.node)).size).toBe(a.entry.replicas.length);
          if (r.moves.length > 0) expect(spreadOf(diskUse(after, v))!.spreadPct).toBeLessThanOrEqual(r.spread!.spreadPct);
        },
      ),
      { numRuns: 300 },
    );
  });
});
