// The tiering plan: when a tier is above its threshold, the coldest extent groups
// (oldest last write) with a replica there move down their container's tier order,
// until the tier is back at or under the threshold; nothing written within the cold
// age moves, nothing moves while every tier is under the threshold, a lower tier that
// is not the last takes a move only while it stays under the threshold, a move goes
// to the replica's own node or one without another replica, and a master's first
// scan counts every entry as just written. Random clusters (fast-check): moves keep
// replicas on distinct nodes and bring the tier down, never the reverse.
import fc from 'fast-check';
import type { EgroupEntry, ObjectOf } from '@strata/proto';
import type { ClusterView, EgroupRow } from '../src/plan';
import { applied } from './applied';
import { diskUse } from '../src/rebalance';
import { observeWrites, planTiering, type LastWrites } from '../src/tiering';
import { clusterView } from '../src/view';

const MiB = 2 ** 20;
const NOW = 1_735_689_600_000;
const HOUR = 3_600_000;

/** Nodes n1..nN, each with an ssd disk (id 100 + k, `ssdMiB`) and an hdd disk (id 200 + k, `hddMiB`); RF 2, order ssd, hdd. */
function view(nodes: number, ssdMiB = 100, hddMiB = 1000, tierOrder = ['ssd', 'hdd'], cloudMiB = 0): ClusterView {
  const ids = Array.from({ length: nodes }, (_, i) => i + 1);
  const nodeObjects = ids.map((k) => ({ kind: 'node', id: BigInt(k), name: `n${k}`, spec: {}, status: { liveness: 'alive', incarnation: 1, changedAtMs: NOW } })) as unknown as ObjectOf<'node'>[];
  const disk = (k: number, base: number, tier: string, mib: number) => ({ kind: 'disk', id: BigInt(base + k), name: `n${k}-${tier}`, spec: { node: BigInt(k), path: '/d', tier, capacityBytes: mib * MiB } });
  const disks = ids.flatMap((k) => [disk(k, 100, 'ssd', ssdMiB), disk(k, 200, 'hdd', hddMiB), ...(cloudMiB > 0 ? [disk(k, 300, 'cloud', cloudMiB)] : [])]) as unknown as ObjectOf<'disk'>[];
  const containers = [{ kind: 'container', id: 50n, name: 'c', spec: { replicationFactor: 2, tierOrder } }] as unknown as ObjectOf<'container'>[];
  const vdisks = [{ kind: 'vdisk', id: 7n, name: 'v', spec: { container: 50n } }] as unknown as ObjectOf<'vdisk'>[];
  return clusterView({ nodes: nodeObjects, disks, containers, vdisks }, () => 0);
}

/** Extent group `egroup` of `sizeMiB` with replicas on the given disks (100 + k: ssd of node k, 200 + k: hdd). */
function row(egroup: number, disks: number[], revision = egroup, sizeMiB = 4, version = 3): EgroupRow {
  const entry: EgroupEntry = { vdisk: 7n, replicas: disks.map((d) => ({ disk: BigInt(d), node: `n${d % 100}` })), version, sizeBytes: sizeMiB * MiB, extents: [] };
  return { egroup: BigInt(egroup), revision, entry };
}

/** Every row last written `agoMs` before NOW, except those in `recent` (written at NOW). */
function writes(rows: readonly EgroupRow[], agoMs: number, recent: number[] = []): LastWrites {
  return new Map(rows.map((r) => [r.egroup, { version: r.entry.version, atMs: recent.includes(Number(r.egroup)) ? NOW : NOW - agoMs }]));
}

const settings = { thresholdPct: 50, coldAfterMs: HOUR, movesMax: 100 };

const tierPct = (rows: readonly EgroupRow[], v: ClusterView, tier: string): number => {
  const disks = diskUse(rows, v).filter((d) => d.tier === tier);
  return (100 * disks.reduce((n, d) => n + d.usedBytes, 0)) / disks.reduce((n, d) => n + d.capacityBytes, 0);
};

describe('tiering', () => {
  it('moves the coldest extent groups off a tier above its threshold, down the order, until it is under it again', () => {
    const v = view(2); // 200 MiB of ssd
    // 15 extent groups of 4 MiB on both ssd disks: 120 MiB of 200, 60%.
    const rows = Array.from({ length: 15 }, (_, i) => row(i + 1, [101, 102]));
    const last = new Map(rows.map((r, i) => [r.egroup, { version: r.entry.version, atMs: NOW - (20 - i) * HOUR }]));
    const t = planTiering(rows, v, last, NOW, settings);
    expect(t.tiers).toEqual([
      { tier: 'ssd', usedBytes: 120 * MiB, capacityBytes: 200 * MiB, usedPct: 60 },
      { tier: 'hdd', usedBytes: 0, capacityBytes: 2000 * MiB, usedPct: 0 },
    ]);
    // 60% to 50% is 20 MiB: five replicas, one per extent group in a plan, the oldest writes first.
    expect(t.moves.map((m) => Number(m.egroup))).toEqual([1, 2, 3, 4, 5]);
    for (const m of t.moves) {
      expect(m).toMatchObject({ drop: true, tiering: true, left: 2, replicationFactor: 2 });
      expect(m.lost).toEqual(m.source);
      expect(Number(m.target.disk)).toBeGreaterThan(200); // an hdd disk
      expect(m.reason).toMatch(/^tiering: tier ssd at [\d.]+% used \(threshold 50%\); extent group not written for \d+ s moves to tier hdd$/);
    }
    const after = applied(rows, t.moves);
    expect(tierPct(after, v, 'ssd')).toBe(50);
    // At the threshold: the next scan moves nothing more.
    expect(planTiering(after, v, last, NOW, settings).moves).toEqual([]);
  });

  it('moves nothing while every tier is under its threshold, nor what was written within the cold age', () => {
    const v = view(2);
    const rows = Array.from({ length: 10 }, (_, i) => row(i + 1, [101, 102])); // 40%
    expect(planTiering(rows, v, writes(rows, 2 * HOUR), NOW, settings)).toMatchObject({ moves: [] });
    const full = Array.from({ length: 20 }, (_, i) => row(i + 1, [101, 102])); // 80%
    const hot = full.map((r) => Number(r.egroup));
    expect(planTiering(full, v, writes(full, 2 * HOUR, hot), NOW, settings).moves).toEqual([]);
    // Written 59 minutes ago: still hot.
    expect(planTiering(full, v, writes(full, HOUR - 60_000), NOW, settings).moves).toEqual([]);
    expect(planTiering(full, v, writes(full, HOUR), NOW, settings).moves.length).toBeGreaterThan(0);
  });

  it("counts every entry as written at a new master's first scan, an entry at a new data version as written then, and a moved replica not as a write", () => {
    const rows = [row(1, [101, 102], 10, 4, 3), row(2, [101, 102], 11, 4, 5)];
    const first = observeWrites(new Map(), rows, NOW);
    expect([...first.values()]).toEqual([{ version: 3, atMs: NOW }, { version: 5, atMs: NOW }]);
    // Egroup 1 moved a replica (new revision, same version); 2 was written; 3 is new.
    const later = observeWrites(first, [row(1, [101, 202], 20, 4, 3), row(2, [101, 102], 21, 4, 6), row(3, [101, 102], 22, 4, 1)], NOW + HOUR);
    expect([...later.entries()]).toEqual([
      [1n, { version: 3, atMs: NOW }],
      [2n, { version: 6, atMs: NOW + HOUR }],
      [3n, { version: 1, atMs: NOW + HOUR }],
    ]);
    // Gone from the map: forgotten.
    expect(observeWrites(later, [row(1, [101, 102], 10)], NOW + 2 * HOUR).has(2n)).toBe(false);
  });

  it('goes to the replica\'s own node or one without another replica, to the emptiest hdd disk there', () => {
    const v = view(3);
    // On n1's and n2's ssd; n3's hdd is the emptiest, but n1's and n2's own hdd disks are fine too.
    const rows = Array.from({ length: 20 }, (_, i) => row(i + 1, [101, 102])).concat([row(99, [203, 201], 99, 40)]);
    const t = planTiering(rows, v, writes(rows, 2 * HOUR), NOW, { ...settings, movesMax: 3 });
    expect(t.moves).toHaveLength(3);
    for (const m of t.moves) {
      const other = rows.find((r) => r.egroup === m.egroup)!.entry.replicas.find((r) => r.disk !== m.source.disk)!;
      expect(m.target.node).not.toBe(other.node);
    }
  });

  it('fills a middle tier only up to the threshold and passes the rest on to the next', () => {
    // ssd 80% (160 of 200 MiB), hdd (the middle tier) 48%: 60 MiB, 15 moves, bring ssd to 50%; one 4 MiB move
    // takes hdd to 50%, the other 14 go to cloud.
    const v = view(2, 100, 100, ['ssd', 'hdd', 'cloud'], 1000);
    const rows = Array.from({ length: 20 }, (_, i) => row(i + 1, [101, 102])).concat(Array.from({ length: 12 }, (_, i) => row(100 + i, [201, 202])));
    const t = planTiering(rows, v, writes(rows, 2 * HOUR), NOW, settings);
    const toTier = t.moves.map((m) => (Number(m.target.disk) >= 300 ? 'cloud' : 'hdd'));
    expect(toTier.filter((x) => x === 'hdd')).toHaveLength(1);
    expect(toTier.length).toBe(15);
    expect(tierPct(applied(rows, t.moves), v, 'hdd')).toBeLessThanOrEqual(50);
  });

  it('moves into the last tier only what fits, and nothing for a container whose order has no lower tier', () => {
    const v = view(2, 100, 100, ['ssd', 'hdd']);
    const rows = Array.from({ length: 20 }, (_, i) => row(i + 1, [101, 102])).concat(Array.from({ length: 24 }, (_, i) => row(100 + i, [201, 202])));
    // ssd at 80%, hdd (the last tier) at 96%: only what fits in hdd moves.
    const t = planTiering(rows, v, writes(rows, 2 * HOUR), NOW, settings);
    const hddFree = 2 * 4 * MiB; // 8 MiB left over the two hdd disks
    expect(t.moves.reduce((n, m) => n + m.bytes, 0)).toBeLessThanOrEqual(hddFree);
    const ssdOnly = view(2, 100, 100, ['ssd']);
    expect(planTiering(rows, ssdOnly, writes(rows, 2 * HOUR), NOW, settings).moves).toEqual([]);
  });

  it('keeps random clusters safe: distinct nodes per extent group, the tier only ever gets emptier, at most movesMax', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 5 }), fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 8 })), { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 10 }), (nodes, specs, movesMax) => {
        const v = view(nodes, 64, 256);
        const rows = specs.map(([a, b, mib], i) => {
          const n1 = (a % nodes) + 1;
          const n2 = ((n1 + (b % (nodes - 1))) % nodes) + 1;
          return row(i + 1, [100 + n1, 100 + n2], i + 1, mib);
        });
        const t = planTiering(rows, v, writes(rows, 2 * HOUR), NOW, { ...settings, movesMax });
        expect(t.moves.length).toBeLessThanOrEqual(movesMax);
        const once = t.moves.filter((m, i, all) => all.findIndex((o) => o.egroup === m.egroup) === i);
        const after = applied(rows, once);
        for (const r of after) expect(new Set(r.entry.replicas.map((x) => x.node)).size).toBe(r.entry.replicas.length);
        expect(tierPct(after, v, 'ssd')).toBeLessThanOrEqual(tierPct(rows, v, 'ssd'));
      }),
    );
  });
});
