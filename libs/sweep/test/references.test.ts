// The sweep and snapshots/clones: extent groups are shared between vDisks (a row of one
// names an extent group another writes), and the references are derived from every
// row. The data-loss risk: an extent group a live snapshot or clone still names must
// never be deleted, whatever is being removed. These tests pin the plan (pure,
// property-checked) and the executor against an in-memory cluster.
import fc from 'fast-check';
import type { EgroupEntry, ObjectOf, VdiskRow } from '@strata/proto';
import { ownersToCheck, planReclaim, planSweep, referencesOf, sweepDeleted, type SweepPorts } from '@strata/sweep';

const MiB = 2 ** 20;

type Vdisk = ObjectOf<'vdisk'>;

function vdisk(id: bigint, extra: Partial<Vdisk['spec']> = {}): Vdisk {
  return {
    kind: 'vdisk',
    id,
    name: `v${id}`,
    createdAtMs: 0,
    updatedAtMs: 0,
    epoch: 1,
    revision: 10,
    spec: { container: 1n, sizeBytes: 64 * MiB, blockSizeBytes: MiB, shared: false, qos: { priority: 'normal', weight: 1 }, ...extra },
  };
}

function egroup(writer: bigint, gen?: number): EgroupEntry {
  return { vdisk: writer, replicas: [{ disk: 101n, node: 'n1' }], version: 1, sizeBytes: 4 * MiB, ...(gen === undefined ? {} : { gen }), extents: [] };
}

/** A row of `vdisk` naming `egroups` (one block each). */
function row(vdisk: bigint, index: number, egroups: bigint[]): { key: string; value: VdiskRow } {
  const blocks: VdiskRow['blocks'] = {};
  egroups.forEach((eg, i) => (blocks[String(index * 16 + i)] = { egroup: eg, offset: i * MiB, length: MiB }));
  return { key: `${vdisk}.${index}`, value: { blocks } };
}

const NOW = 1_000_000_000;

describe('references', () => {
  it('are derived from every row: which vDisks name each extent group', () => {
    const refs = referencesOf([row(7n, 0, [500n, 501n]), row(8n, 0, [500n]), { key: 'junk', value: { blocks: { '0': { egroup: 9n, offset: 0, length: 1 } } } }]);
    expect(refs).toEqual(
      new Map([
        [500n, new Set([7n, 8n])],
        [501n, new Set([7n])],
      ]),
    );
  });

  it('keep a deleted source\'s extent groups that its snapshot names, and plan those nothing else names', () => {
    // Source 7 (deleting) wrote 500 and 501; its snapshot 8 names 500 only.
    const vdisks = [vdisk(7n, { deletingSinceMs: 5 }), vdisk(8n, { snapshotOf: 7n })];
    const references = referencesOf([row(7n, 0, [500n, 501n]), row(8n, 0, [500n])]);
    const egroups = [
      { id: 500n, entry: egroup(7n) },
      { id: 501n, entry: egroup(7n) },
    ];
    const [plan] = planSweep({ vdisks, rowKeys: ['7.0', '8.0'], egroups, ownKeys: [], references, vdisksMax: 10, nowMs: NOW });
    expect(plan!.egroups.map((g) => g.id)).toEqual([501n]);
    expect(plan!.rows).toEqual(['7.0']);
  });

  it('delete nothing while a snapshot or clone is being made (its rows may be half copied), and sweep one left interrupted', () => {
    const references = referencesOf([row(7n, 0, [500n])]);
    const egroups = [{ id: 500n, entry: egroup(7n) }];
    const making = [vdisk(7n, { deletingSinceMs: 5 }), vdisk(9n, { cloneOf: 8n, creatingSinceMs: NOW - 1_000 })];
    const [plan] = planSweep({ vdisks: making, rowKeys: ['7.0'], egroups, ownKeys: [], references, vdisksMax: 10, nowMs: NOW });
    expect(plan!.egroups).toEqual([]);
    expect(planReclaim({ vdisks: making, egroups: [{ id: 600n, entry: egroup(99n) }], references, generations: new Map(), nowMs: NOW })).toEqual([]);
    // Left creating for longer than the timeout: an interrupted clone, swept like a delete.
    const interrupted = [vdisk(7n, { deletingSinceMs: 5 }), vdisk(9n, { cloneOf: 8n, creatingSinceMs: NOW - 3_600_000 })];
    const plans = planSweep({ vdisks: interrupted, rowKeys: ['7.0', '9.0'], egroups, ownKeys: [], references, vdisksMax: 10, nowMs: NOW, creatingTimeoutMs: 60_000 });
    expect(plans.map((p) => [p.vdisk, p.egroups.map((g) => g.id)])).toEqual([
      [7n, [500n]],
      [9n, []],
    ]);
  });
});

describe('planReclaim', () => {
  const vdisks = [vdisk(7n), vdisk(8n, { snapshotOf: 7n, deletingSinceMs: 5 }), vdisk(9n, { cloneOf: 8n })];

  it('deletes what nothing live names once its writer is gone or a snapshot sealed it; keeps the rest', () => {
    const references = referencesOf([row(7n, 0, [503n]), row(8n, 0, [500n, 501n, 502n]), row(9n, 0, [502n])]);
    const egroups = [
      // Sealed by vdisk 7's snapshot (gen 0 < 1), named only by the snapshot being deleted.
      { id: 500n, entry: egroup(7n) },
      // Written by 7 at its current generation: it may still be allocating in it.
      { id: 501n, entry: egroup(7n, 1) },
      // Named by the clone 9: kept.
      { id: 502n, entry: egroup(7n) },
      // Named by 7 itself: kept.
      { id: 503n, entry: egroup(7n) },
      // Its writer was swept (no config object) and nothing names it.
      { id: 504n, entry: egroup(42n) },
    ];
    expect(ownersToCheck({ vdisks, egroups, references, nowMs: NOW })).toEqual([7n]);
    const out = planReclaim({ vdisks, egroups, references, generations: new Map([[7n, 1]]), nowMs: NOW });
    expect(out.map((g) => [g.id, g.why])).toEqual([
      [500n, 'sealed by a snapshot of vdisk 7 (generation 0 < 1) and no live vdisk names it'],
      [504n, 'its writer, vdisk 42, is gone and no live vdisk names it'],
    ]);
  });

  it('never deletes an extent group a row of a live vDisk names, by the sweep or the reclaim (property)', () => {
    const ids = fc.bigInt({ min: 1n, max: 6n });
    const state = fc.constantFrom<'live' | 'deleting' | 'making' | 'gone'>('live', 'deleting', 'making', 'gone');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(ids, state), { minLength: 1, maxLength: 10 }),
        fc.array(fc.tuple(fc.bigInt({ min: 100n, max: 106n }), ids, fc.nat(3))),
        fc.array(fc.tuple(ids, fc.bigInt({ min: 100n, max: 106n }))),
        fc.array(fc.tuple(ids, fc.nat(3))),
        (vdiskStates, egroupList, refs, gens) => {
          const byId = new Map(vdiskStates.map(([id, st]) => [id, st]));
          const vdisks = [...byId]
            .filter(([, st]) => st !== 'gone')
            .map(([id, st]) => vdisk(id, st === 'deleting' ? { deletingSinceMs: 5 } : st === 'making' ? { cloneOf: 1n, creatingSinceMs: NOW } : {}));
          const egroups = [...new Map(egroupList.map(([id, writer, gen]) => [id, { id, entry: egroup(writer, gen) }])).values()];
          const rows = refs.map(([v, eg], i) => row(v, i, [eg]));
          const references = referencesOf(rows);
          const live = new Set(vdisks.filter((v) => v.spec.deletingSinceMs === undefined).map((v) => v.id));
          const named = new Set(refs.filter(([v]) => live.has(v)).map(([, eg]) => eg));
          const plans = planSweep({ vdisks, rowKeys: rows.map((r) => r.key), egroups, ownKeys: [], references, vdisksMax: 100, nowMs: NOW });
          const reclaim = planReclaim({ vdisks, egroups, references, generations: new Map(gens), nowMs: NOW });
          for (const id of [...plans.flatMap((p) => p.egroups.map((g) => g.id)), ...reclaim.map((g) => g.id)]) expect(named.has(id)).toBe(false);
          // And nothing at all while a clone is being made.
          if (vdisks.some((v) => v.spec.creatingSinceMs !== undefined)) expect(reclaim.length + plans.flatMap((p) => p.egroups).length).toBe(0);
        },
      ),
    );
  });
});

/** A small cluster in memory: the config, rows, extent groups with one replica each, generations. */
function cluster(): { ports: SweepPorts; vdisks: Map<bigint, Vdisk>; rows: Map<string, VdiskRow>; egroups: Map<bigint, EgroupEntry>; generations: Map<bigint, number> } {
  const vdisks = new Map<bigint, Vdisk>();
  const rows = new Map<string, VdiskRow>();
  const egroups = new Map<bigint, EgroupEntry>();
  const generations = new Map<bigint, number>();
  const ports: SweepPorts = {
    listVdisks: async () => [...vdisks.values()],
    rows: async () => [...rows].map(([key, value]) => ({ key, value })),
    generation: async (id) => generations.get(id) ?? 0,
    egroups: async () => [...egroups].map(([id, entry]) => ({ id, entry })),
    ownKeys: async () => [],
    fenceOwnership: async () => undefined,
    deleteReplica: async () => 4 * MiB,
    deleteMd: async (map, key) => void (map === 'egroup' ? egroups.delete(BigInt(key)) : rows.delete(key)),
    deleteOwn: async () => undefined,
    purgeOplog: async () => undefined,
    commit: async (id) => void vdisks.delete(id),
    sleep: async () => undefined,
  };
  return { ports, vdisks, rows, egroups, generations };
}

describe('sweepDeleted with snapshots and clones', () => {
  it('removing a source keeps what its snapshot names; removing the snapshot then frees it', async () => {
    const c = cluster();
    c.vdisks.set(7n, vdisk(7n, { deletingSinceMs: 5 }));
    c.vdisks.set(8n, vdisk(8n, { snapshotOf: 7n }));
    c.rows.set('7.0', row(7n, 0, [500n, 501n]).value);
    c.rows.set('8.0', row(8n, 0, [500n]).value);
    c.egroups.set(500n, egroup(7n));
    c.egroups.set(501n, egroup(7n));
    const first = await sweepDeleted(c.ports);
    expect(first.swept).toEqual([expect.objectContaining({ vdisk: 7n, egroups: 1 })]);
    expect([...c.egroups.keys()]).toEqual([500n]);
    expect([...c.rows.keys()]).toEqual(['8.0']);
    // The snapshot is removed: its rows go, and 500, whose writer is gone, with them.
    c.vdisks.set(8n, vdisk(8n, { snapshotOf: 7n, deletingSinceMs: 6 }));
    const second = await sweepDeleted(c.ports);
    expect(second.swept).toEqual([expect.objectContaining({ vdisk: 8n, egroups: 0, rows: 1 })]);
    expect(second.reclaimed).toEqual([expect.objectContaining({ egroup: 500n, vdisk: 7n, freedBytes: 4 * MiB })]);
    expect(c.egroups.size).toBe(0);
  });

  it('reclaims a sealed extent group no live vDisk names even when no vDisk is being removed (regression: found by the crash test)', async () => {
    const c = cluster();
    c.vdisks.set(7n, vdisk(7n));
    c.vdisks.set(8n, vdisk(8n, { snapshotOf: 7n }));
    // 503 was allocated by 7 and never named by a row; 8's snapshot of 7 sealed it (generation 1).
    c.generations.set(7n, 1);
    c.rows.set('7.0', row(7n, 0, [500n]).value);
    c.rows.set('8.0', row(8n, 0, [500n]).value);
    c.egroups.set(500n, egroup(7n));
    c.egroups.set(503n, egroup(7n));
    const result = await sweepDeleted(c.ports);
    expect(result.swept).toEqual([]);
    expect(result.reclaimed?.map((r) => r.egroup)).toEqual([503n]);
    expect([...c.egroups.keys()]).toEqual([500n]);
  });

  it('sweeps an interrupted clone once its creatingSinceMs is older than the timeout it is given, not before', async () => {
    const c = cluster();
    c.vdisks.set(7n, vdisk(7n));
    c.vdisks.set(8n, vdisk(8n, { snapshotOf: 7n }));
    c.vdisks.set(9n, vdisk(9n, { cloneOf: 8n, creatingSinceMs: Date.now() - 5_000 }));
    c.rows.set('9.0', row(9n, 0, [500n]).value);
    c.egroups.set(500n, egroup(7n));
    // The default (10 minutes): a clone begun 5 s ago is still being made.
    expect((await sweepDeleted(c.ports)).swept).toEqual([]);
    expect(c.vdisks.has(9n)).toBe(true);
    const result = await sweepDeleted(c.ports, undefined, 1_000);
    expect(result.swept).toEqual([expect.objectContaining({ vdisk: 9n, rows: 1 })]);
    expect(c.vdisks.has(9n)).toBe(false);
    await expect(sweepDeleted(c.ports, undefined, 0)).rejects.toThrow(/creatingTimeoutMs must be a positive integer/);
  });

  it('removing a snapshot frees the sealed extent groups only it named, and nothing the source or a clone still names', async () => {
    const c = cluster();
    c.vdisks.set(7n, vdisk(7n));
    c.vdisks.set(8n, vdisk(8n, { snapshotOf: 7n, deletingSinceMs: 5 }));
    c.vdisks.set(9n, vdisk(9n, { cloneOf: 8n }));
    c.generations.set(7n, 1);
    // The source rewrote block 0 into 510 (gen 1) after the snapshot; block 1 it never rewrote (500).
    c.rows.set('7.0', { blocks: { '0': { egroup: 510n, offset: 0, length: MiB, gen: 1 }, '1': { egroup: 500n, offset: MiB, length: MiB } } });
    c.rows.set('8.0', { blocks: { '0': { egroup: 501n, offset: 0, length: MiB }, '1': { egroup: 500n, offset: MiB, length: MiB }, '2': { egroup: 502n, offset: 0, length: MiB } } });
    c.rows.set('9.0', { blocks: { '2': { egroup: 502n, offset: 0, length: MiB } } });
    for (const [id, gen] of [
      [500n, 0],
      [501n, 0],
      [502n, 0],
      [510n, 1],
    ] as const)
      c.egroups.set(id, egroup(7n, gen));
    const result = await sweepDeleted(c.ports);
    expect(result.reclaimed?.map((r) => r.egroup)).toEqual([501n]);
    expect([...c.egroups.keys()].sort()).toEqual([500n, 502n, 510n]);
  });
});
