// The curator's plan: which replicas are lost (dead past the re-protection delay, disk
// gone, file missing), which extent groups are under-replicated, where each copy goes
// (a live node without a replica, room on a disk of the container's tiers), in what
// order (fewest replicas left, then most bytes), the moves off draining nodes and disks
// (copy first, then drop: never below RF), and the entry a copy records. Random
// clusters (fast-check) check the rules that must always hold.
import fc from 'fast-check';
import type { EgroupEntry, ObjectOf } from '@strata/proto';
import { plan, withCopy, type ClusterView, type EgroupRow } from '../src/plan';
import { clusterView, withKeptWriters, writersGone } from '../src/view';

const MiB = 2 ** 20;
const DELAY = 60_000;
const NOW = 1_735_689_600_000;
const settings = { reprotectDelayMs: DELAY };

/** A view of nodes n1..nN, one ssd disk each (id 100 + k), every vDisk in one container of the given RF. */
function view(nodes: Array<{ liveness: 'alive' | 'dead' | 'unknown'; deadForMs?: number; draining?: boolean }>, rf: number, freeBytes = 1024 * MiB): ClusterView {
  const nodeObjects = nodes.map((n, i) => ({ kind: 'node', id: BigInt(i + 1), name: `n${i + 1}`, spec: n.draining === true ? { drainingSinceMs: NOW } : {}, status: { liveness: n.liveness, incarnation: 1, changedAtMs: NOW - (n.deadForMs ?? 0) } })) as unknown as ObjectOf<'node'>[];
  const disks = nodes.map((_, i) => ({ kind: 'disk', id: BigInt(101 + i), name: `n${i + 1}-d1`, spec: { node: BigInt(i + 1), path: '/d', tier: 'ssd', capacityBytes: freeBytes } })) as unknown as ObjectOf<'disk'>[];
  const containers = [{ kind: 'container', id: 50n, name: 'c', spec: { replicationFactor: rf, tierOrder: ['ssd', 'hdd'] } }] as unknown as ObjectOf<'container'>[];
  const vdisks = [{ kind: 'vdisk', id: 7n, name: 'v', spec: { container: 50n } }] as unknown as ObjectOf<'vdisk'>[];
  return clusterView({ nodes: nodeObjects, disks, containers, vdisks }, () => 0);
}

function row(egroup: number, nodes: number[], sizeBytes = 4 * MiB, revision = 10): EgroupRow {
  const entry: EgroupEntry = { vdisk: 7n, replicas: nodes.map((k) => ({ disk: BigInt(100 + k), node: `n${k}` })), version: 3, sizeBytes, extents: [] };
  return { egroup: BigInt(egroup), revision, entry };
}

describe('plan', () => {
  it('re-replicates an extent group whose writer is gone but a snapshot still names (regression: it was skipped as garbage)', () => {
    const v = view([{ liveness: 'alive' }, { liveness: 'dead', deadForMs: DELAY }, { liveness: 'alive' }], 2);
    // Writer 42 was removed; snapshot 7 (the view's one vDisk) still names egroup 1.
    const kept: EgroupRow = { ...row(1, [1, 2]), entry: { ...row(1, [1, 2]).entry, vdisk: 42n } };
    const orphan: EgroupRow = { ...row(2, [1, 2]), entry: { ...row(2, [1, 2]).entry, vdisk: 42n } };
    expect(writersGone(v, [kept])).toBe(true);
    expect(plan([kept], v, NOW, settings).actions).toEqual([]);
    const references = new Map([[1n, new Set([7n, 99n])]]);
    const fixed = withKeptWriters(v, [kept, orphan], references);
    expect(fixed.policies.get(42n)).toEqual(v.policies.get(7n));
    expect(plan([kept], fixed, NOW, settings).actions).toEqual([expect.objectContaining({ egroup: 1n, vdisk: 42n, lost: { disk: 102n, node: 'n2' }, target: { disk: 103n, node: 'n3' } })]);
    // Nothing names egroup 2 alone: with no namer of its own, it gets no policy from 1's (it is garbage for the sweep).
    expect(withKeptWriters(v, [orphan], references)).toBe(v);
    expect(writersGone(v, [row(3, [1, 2])])).toBe(false);
  });

  it('waits out the re-protection delay before a replica on a dead node counts as lost, and says when it will', () => {
    const early = plan([row(1, [1, 2])], view([{ liveness: 'alive' }, { liveness: 'dead', deadForMs: DELAY - 1_000 }, { liveness: 'alive' }], 2), NOW, settings);
    expect(early).toMatchObject({ actions: [], underReplicated: [], lostReplicas: 0, nextLossAtMs: NOW + 1_000 });
    const late = plan([row(1, [1, 2])], view([{ liveness: 'alive' }, { liveness: 'dead', deadForMs: DELAY }, { liveness: 'alive' }], 2), NOW, settings);
    expect(late.underReplicated).toEqual([1n]);
    expect(late.actions).toEqual([
      expect.objectContaining({ egroup: 1n, revision: 10, source: { disk: 101n, node: 'n1' }, lost: { disk: 102n, node: 'n2' }, target: { disk: 103n, node: 'n3' }, bytes: 4 * MiB, left: 1 }),
    ]);
    expect(late.actions[0]!.reason).toMatch(/node n2 dead for 60 s/);
  });

  it('counts a replica whose disk left the configuration, or whose file a full scan did not find, as lost at once', () => {
    const v = view([{ liveness: 'alive' }, { liveness: 'alive' }, { liveness: 'alive' }], 2);
    const gone = plan([{ ...row(1, [1]), entry: { ...row(1, [1]).entry, replicas: [{ disk: 101n, node: 'n1' }, { disk: 999n, node: 'n2' }] } }], v, NOW, settings);
    expect(gone.actions[0]).toMatchObject({ lost: { disk: 999n }, target: { node: expect.stringMatching(/n2|n3/) } });
    const missing = plan([row(1, [1, 2])], v, NOW, settings, new Set(['1/102']));
    expect(missing.actions[0]).toMatchObject({ source: { disk: 101n }, lost: { disk: 102n }, target: { disk: 103n } });
  });

  it('orders copies fewest replicas left first, then most bytes', () => {
    const v = view([{ liveness: 'alive' }, { liveness: 'dead', deadForMs: DELAY }, { liveness: 'dead', deadForMs: DELAY }, { liveness: 'alive' }, { liveness: 'alive' }], 3);
    const p = plan([row(1, [1, 2, 4], MiB), row(2, [1, 2, 3], MiB), row(3, [1, 2, 4], 8 * MiB)], v, NOW, settings);
    expect(p.actions.map((a) => [a.egroup, a.left])).toEqual([
      [2n, 1],
      [3n, 2],
      [1n, 2],
    ]);
  });

  it('replaces a replica on a removed disk by another disk of the same node when no other node is free', () => {
    const v = view([{ liveness: 'alive' }, { liveness: 'alive' }], 2);
    const disks = new Map(v.disks);
    disks.set(103n, { ...disks.get(101n)!, id: 103n });
    disks.delete(101n);
    const p = plan([row(1, [1, 2])], { ...v, disks }, NOW, settings);
    expect(p.actions[0]).toMatchObject({ lost: { disk: 101n }, target: { disk: 103n, node: 'n1' } });
    expect(withCopy(row(1, [1, 2]).entry, p.actions[0]!)).toMatchObject({ ok: true, entry: { replicas: [{ disk: 103n, node: 'n1' }, { disk: 102n, node: 'n2' }] } });
  });

  it('reports an extent group with no replica on a live node, or no room anywhere, as unfixable', () => {
    const dead = plan([row(1, [2])], view([{ liveness: 'alive' }, { liveness: 'dead', deadForMs: DELAY }], 1), NOW, settings);
    expect(dead.unfixable).toEqual([{ egroup: 1n, why: expect.stringContaining('no replica on a live node') }]);
    const full = plan([row(1, [1, 2], 64 * MiB)], view([{ liveness: 'alive' }, { liveness: 'dead', deadForMs: DELAY }, { liveness: 'alive' }], 2, 16 * MiB), NOW, settings);
    expect(full.unfixable).toEqual([{ egroup: 1n, why: expect.stringContaining('no live node without a replica') }]);
  });

  it('leaves alone the extent groups of vDisks no longer in the configuration', () => {
    const r = row(1, [2]);
    const p = plan([{ ...r, entry: { ...r.entry, vdisk: 8n } }], view([{ liveness: 'alive' }, { liveness: 'dead', deadForMs: DELAY }], 1), NOW, settings);
    expect(p).toMatchObject({ actions: [], underReplicated: [], unfixable: [] });
  });

  it('records a copy in the lost replica’s place, and refuses one that no longer fits the entry', () => {
    const r = row(1, [1, 2]);
    const [action] = plan([r], view([{ liveness: 'alive' }, { liveness: 'dead', deadForMs: DELAY }, { liveness: 'alive' }], 2), NOW, settings).actions;
    expect(withCopy(r.entry, action!)).toEqual({ ok: true, entry: { ...r.entry, replicas: [{ disk: 101n, node: 'n1' }, { disk: 103n, node: 'n3' }] } });
    // Someone else already replaced it: the entry changed, and this copy must not go in twice.
    const replaced = { ...r.entry, replicas: [{ disk: 101n, node: 'n1' }, { disk: 103n, node: 'n3' }] };
    expect(withCopy(replaced, action!)).toEqual({ ok: false, why: expect.stringContaining('holds a replica') });
    const moved = { ...r.entry, replicas: [{ disk: 101n, node: 'n1' }, { disk: 104n, node: 'n4' }] };
    expect(withCopy(moved, action!)).toEqual({ ok: false, why: expect.stringContaining('no longer in egroup 1') });
  });

  it('moves each replica off a draining node to a node without one, keeping it counted until the entry drops it', () => {
    const v = view([{ liveness: 'alive' }, { liveness: 'alive', draining: true }, { liveness: 'alive' }], 2);
    const p = plan([row(1, [1, 2]), row(2, [1, 3])], v, NOW, settings);
    expect(p).toMatchObject({ underReplicated: [], lostReplicas: 0, unfixable: [], leaving: { replicas: 1, bytes: 4 * MiB } });
    expect(p.actions).toEqual([expect.objectContaining({ egroup: 1n, source: { disk: 101n, node: 'n1' }, lost: { disk: 102n, node: 'n2' }, target: { disk: 103n, node: 'n3' }, left: 2, drop: true })]);
    expect(p.actions[0]!.reason).toMatch(/node n2 is draining/);
    // One compare-and-set swaps the new replica in for the leaving one: RF copies before and after.
    expect(withCopy(row(1, [1, 2]).entry, p.actions[0]!)).toEqual({ ok: true, entry: { ...row(1, [1, 2]).entry, replicas: [{ disk: 101n, node: 'n1' }, { disk: 103n, node: 'n3' }] } });
    // RF 1: the leaving replica is the only copy, and the source.
    const single = plan([row(3, [2])], view([{ liveness: 'alive' }, { liveness: 'alive', draining: true }], 1), NOW, settings);
    expect(single.actions[0]).toMatchObject({ source: { disk: 102n }, lost: { disk: 102n }, target: { disk: 101n }, drop: true });
  });

  it('repairs under-replicated extent groups before it moves replicas off a draining node, and never onto a draining disk', () => {
    const v = view([{ liveness: 'alive' }, { liveness: 'alive', draining: true }, { liveness: 'dead', deadForMs: DELAY }, { liveness: 'alive' }], 2);
    const p = plan([row(1, [1, 2], 64 * MiB), row(2, [1, 3], MiB)], v, NOW, settings);
    expect(p.actions.map((a) => [a.egroup, a.drop, a.target.node])).toEqual([
      [2n, false, 'n4'],
      [1n, true, 'n4'],
    ]);
    // Nowhere to go but the draining node: unfixable, with a reason, and the replica stays.
    const stuck = plan([row(1, [1, 2])], view([{ liveness: 'alive' }, { liveness: 'alive', draining: true }], 2), NOW, settings);
    expect(stuck).toMatchObject({ actions: [], unfixable: [{ egroup: 1n, why: expect.stringContaining('no live node without a replica') }], leaving: { replicas: 1 } });
  });

  it('moves a replica off a draining disk to another disk of the same node when no other node is free', () => {
    const v = view([{ liveness: 'alive' }, { liveness: 'alive' }], 2);
    const disks = new Map(v.disks);
    disks.set(101n, { ...disks.get(101n)!, draining: true });
    disks.set(103n, { ...disks.get(101n)!, id: 103n, draining: false });
    const p = plan([row(1, [1, 2])], { ...v, disks }, NOW, settings);
    expect(p.actions[0]).toMatchObject({ source: { disk: 102n }, lost: { disk: 101n }, target: { disk: 103n, node: 'n1' }, drop: true });
    expect(p.actions[0]!.reason).toMatch(/disk 101 \(n1\) is draining/);
  });

  it('for any cluster with draining nodes: no copy goes to a draining or dead node, and no recorded entry has fewer copies that count than before', () => {
    const nodeState = fc.record({ liveness: fc.constantFrom('alive' as const, 'dead' as const), deadForMs: fc.integer({ min: 0, max: 2 * DELAY }), draining: fc.boolean() });
    fc.assert(
      fc.property(fc.array(nodeState, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 3 }), fc.array(fc.uniqueArray(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }), { maxLength: 20 }), (nodes, rf, groups) => {
        const v = view(nodes, rf, 256 * MiB);
        const rows = groups.map((g, i) => row(i + 1, g.filter((k) => k <= nodes.length).length > 0 ? g.filter((k) => k <= nodes.length) : [1], MiB));
        const p = plan(rows, v, NOW, settings);
        const counted = (replicas: readonly { disk: bigint; node: string }[]): number => replicas.filter((x) => v.nodes.get(x.node)!.liveness === 'alive' || v.nodes.get(x.node)!.changedAtMs > NOW - DELAY).length;
        for (const a of p.actions) {
          const target = v.nodes.get(a.target.node)!;
          expect(target.liveness === 'alive' && !target.draining && v.disks.get(a.target.disk)!.draining !== true).toBe(true);
          const r = rows.find((x) => x.egroup === a.egroup)!;
          const next = withCopy(r.entry, a);
          expect(next.ok).toBe(true);
          if (next.ok) expect(counted(next.entry.replicas)).toBeGreaterThanOrEqual(counted(r.entry.replicas));
          // A move drops only a replica that a new one replaces; it never leaves the extent group short.
          if (a.drop) expect(a.left).toBeGreaterThanOrEqual(rf);
        }
        // Every extent group at RF with a replica on a draining live node gets a move or a reason.
        for (const r of rows) {
          const leaving = r.entry.replicas.some((x) => v.nodes.get(x.node)!.liveness === 'alive' && v.nodes.get(x.node)!.draining);
          if (leaving && counted(r.entry.replicas) === r.entry.replicas.length && r.entry.replicas.length >= rf) {
            expect(p.actions.some((a) => a.egroup === r.egroup && a.drop) || p.unfixable.some((u) => u.egroup === r.egroup)).toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('for any cluster: copies read from a live replica, go to a live node without one, never two per extent group, and each recorded entry has distinct nodes', () => {
    const nodeState = fc.record({ liveness: fc.constantFrom('alive' as const, 'dead' as const, 'unknown' as const), deadForMs: fc.integer({ min: 0, max: 2 * DELAY }) });
    fc.assert(
      fc.property(
        fc.array(nodeState, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.record({ nodes: fc.uniqueArray(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }), sizeMiB: fc.integer({ min: 0, max: 64 }) }), { maxLength: 20 }),
        (nodes, rf, groups) => {
          const v = view(nodes, rf, 256 * MiB);
          const rows = groups.map((g, i) => row(i + 1, g.nodes.filter((k) => k <= nodes.length).length > 0 ? g.nodes.filter((k) => k <= nodes.length) : [1], g.sizeMiB * MiB));
          const p = plan(rows, v, NOW, settings);
          const seen = new Set<bigint>();
          const placedBytes = new Map<bigint, number>();
          for (const a of p.actions) {
            expect(seen.has(a.egroup)).toBe(false);
            seen.add(a.egroup);
            expect(v.nodes.get(a.source.node)?.liveness).toBe('alive');
            expect(v.nodes.get(a.target.node)?.liveness).toBe('alive');
            const r = rows.find((x) => x.egroup === a.egroup)!;
            expect(r.entry.replicas.some((x) => x.node === a.target.node)).toBe(false);
            const next = withCopy(r.entry, a);
            expect(next.ok).toBe(true);
            if (next.ok) expect(new Set(next.entry.replicas.map((x) => x.node)).size).toBe(next.entry.replicas.length);
            placedBytes.set(a.target.disk, (placedBytes.get(a.target.disk) ?? 0) + a.bytes);
          }
          // Never more on a disk than it has room for.
          for (const [disk, bytes] of placedBytes) expect(bytes).toBeLessThanOrEqual(v.disks.get(disk)!.capacityBytes);
          // Every under-replicated extent group gets a copy or a reason.
          expect(new Set([...p.actions.map((a) => a.egroup), ...p.unfixable.map((u) => u.egroup)])).toEqual(new Set(p.underReplicated));
          // The order: fewest replicas left first.
          for (let i = 1; i < p.actions.length; i++) expect(p.actions[i - 1]!.left).toBeLessThanOrEqual(p.actions[i]!.left);
        },
      ),
      { numRuns: 300 },
    );
  });
});
