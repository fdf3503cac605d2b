// The garbage collection's plan: a listed replica is deleted only when no entry names
// its disk and it is older than the grace period; disks of nodes not alive and disks
// whose listing failed are skipped whole. Random clusters (fast-check) check the two
// rules that must always hold: a replica an entry names is never deleted, nor one
// within the grace period.
import fc from 'fast-check';
import type { EgroupEntry, ObjectOf } from '@strata/proto';
import { planGarbage, stillGarbage, type DiskListing } from '../src/garbage';
import type { ClusterView, EgroupRow } from '../src/plan';
import { clusterView } from '../src/view';

const NOW = 1_735_689_600_000;
const GRACE = 600_000;
const OLD = NOW - GRACE;

/** Nodes n1..nN, one disk each (id 100 + k). */
function view(liveness: Array<'alive' | 'dead' | 'unknown'>): ClusterView {
  const nodes = liveness.map((l, i) => ({ kind: 'node', id: BigInt(i + 1), name: `n${i + 1}`, spec: {}, status: { liveness: l, incarnation: 1, changedAtMs: NOW } })) as unknown as ObjectOf<'node'>[];
  const disks = liveness.map((_, i) => ({ kind: 'disk', id: BigInt(101 + i), name: `n${i + 1}-d1`, spec: { node: BigInt(i + 1), path: '/d', tier: 'ssd', capacityBytes: 2 ** 30 } })) as unknown as ObjectOf<'disk'>[];
  return clusterView({ nodes, disks, containers: [], vdisks: [] }, () => 0);
}

function row(egroup: number, nodes: number[]): EgroupRow {
  const entry: EgroupEntry = { vdisk: 7n, replicas: nodes.map((k) => ({ disk: BigInt(100 + k), node: `n${k}` })), version: 3, sizeBytes: 4096, extents: [] };
  return { egroup: BigInt(egroup), revision: 1, entry };
}

function listing(node: number, replicas: Array<[egroup: number, mtimeMs: number]>): DiskListing {
  return { node: `n${node}`, disk: BigInt(100 + node), replicas: replicas.map(([egroup, mtimeMs]) => ({ egroup: BigInt(egroup), sizeBytes: 1000 + egroup, version: 1, mtimeMs })) };
}

describe('planGarbage', () => {
  it('deletes an old replica of an extent group without entry, and one on a disk its entry does not name', () => {
    const p = planGarbage([row(1, [1, 2])], [listing(1, [[1, OLD]]), listing(2, [[1, OLD]]), listing(3, [[1, OLD], [9, OLD]])], view(['alive', 'alive', 'alive']), NOW, GRACE);
    expect(p.deletes).toEqual([
      { node: 'n3', disk: 103n, egroup: 1n, bytes: 1001, why: 'the entry of egroup 1 names disks 101, 102, not 103' },
      { node: 'n3', disk: 103n, egroup: 9n, bytes: 1009, why: 'egroup 9 has no md-egroup entry' },
    ]);
    expect(p).toMatchObject({ listed: 4, referenced: 2, young: 0, skippedDisks: [] });
  });

  it('leaves a replica without reference alone within the grace period', () => {
    const p = planGarbage([], [listing(1, [[5, OLD + 1], [6, OLD]])], view(['alive']), NOW, GRACE);
    expect(p.deletes.map((d) => d.egroup)).toEqual([6n]);
    expect(p.young).toBe(1);
  });

  it('skips a disk whose node is not alive, whose listing failed, or that the configuration gives another node', () => {
    const failed: DiskListing = { node: 'n3', disk: 103n, error: 'timed out' };
    const moved: DiskListing = { node: 'n1', disk: 102n, replicas: [{ egroup: 9n, sizeBytes: 1, version: 1, mtimeMs: OLD }] };
    const p = planGarbage([], [listing(1, [[9, OLD]]), moved, failed, listing(4, [[9, OLD]])], view(['dead', 'alive', 'alive', 'unknown']), NOW, GRACE);
    expect(p.deletes).toEqual([]);
    expect(p.skippedDisks).toEqual([
      { node: 'n1', disk: 101n, why: 'node n1 is dead' },
      { node: 'n1', disk: 102n, why: 'disk 102 is not a disk of n1 in the configuration' },
      { node: 'n3', disk: 103n, why: 'its listing failed: timed out' },
      { node: 'n4', disk: 104n, why: 'node n4 is unknown' },
    ]);
  });

  it('stillGarbage: the re-read entry decides', () => {
    expect(stillGarbage(undefined, 101n)).toBe(true);
    expect(stillGarbage(row(1, [2]).entry, 101n)).toBe(true);
    expect(stillGarbage(row(1, [1, 2]).entry, 101n)).toBe(false);
  });

  it('never deletes a replica an entry names, nor one within the grace period, nor on a node not alive (random clusters)', () => {
    const liveness = fc.constantFrom<'alive' | 'dead' | 'unknown'>('alive', 'alive', 'dead', 'unknown');
    const cluster = fc.record({
      nodes: fc.array(liveness, { minLength: 1, maxLength: 5 }),
      rows: fc.array(fc.record({ egroup: fc.integer({ min: 1, max: 20 }), nodes: fc.uniqueArray(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }) }), { maxLength: 15 }),
      listed: fc.array(fc.record({ node: fc.integer({ min: 1, max: 5 }), egroup: fc.integer({ min: 1, max: 25 }), ageMs: fc.integer({ min: 0, max: 2 * GRACE }) }), { maxLength: 40 }),
      failedNode: fc.option(fc.integer({ min: 1, max: 5 })),
    });
    fc.assert(
      fc.property(cluster, ({ nodes, rows, listed, failedNode }) => {
        const unique = new Map(rows.map((r) => [r.egroup, row(r.egroup, r.nodes)]));
        const v = view(nodes);
        const listings: DiskListing[] = [];
        for (let k = 1; k <= nodes.length; k++) {
          if (k === failedNode) {
            listings.push({ node: `n${k}`, disk: BigInt(100 + k), error: 'no answer' });
            continue;
          }
          const mine = new Map(listed.filter((l) => l.node === k).map((l) => [l.egroup, NOW - l.ageMs]));
          listings.push(listing(k, [...mine]));
        }
        const p = planGarbage([...unique.values()], listings, v, NOW, GRACE);
        for (const d of p.deletes) {
          const entry = unique.get(Number(d.egroup))?.entry;
          expect(entry?.replicas.some((r) => r.disk === d.disk) ?? false).toBe(false);
          const l = listings.find((x) => x.disk === d.disk)!;
          if ('error' in l) throw new Error(`a delete planned on disk ${d.disk}, whose listing failed`);
          const r = l.replicas.find((x) => x.egroup === d.egroup)!;
          expect(NOW - r.mtimeMs).toBeGreaterThanOrEqual(GRACE);
          expect(v.nodes.get(d.node)?.liveness).toBe('alive');
        }
      }),
      { numRuns: 300 },
    );
  });
});
