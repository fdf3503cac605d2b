// Extent groups of live vDisks that no row names (unnamed.ts): the plan (which are
// candidates), the grace memory (unnamed and unchanged long enough), and the executor
// against an in-memory cluster: the writer's owner is asked, only what it released is
// deleted, and only if the rows read again still name nothing of it.
import type { EgroupEntry, ObjectOf, VdiskRow } from '@strata/proto';
import { UnnamedSince, planUnnamed, referencesOf, sweepDeleted, type SweepPorts } from '@strata/sweep';

const MiB = 2 ** 20;
const NOW = 1_000_000_000;
const GRACE = 60_000;

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
  return { vdisk: writer, replicas: [{ disk: 101n, node: 'n1' }, { disk: 102n, node: 'n2' }], version: 1, sizeBytes: 4 * MiB, ...(gen === undefined ? {} : { gen }), extents: [] };
}

/** A row of `vdisk` naming `egroups` (one block each). */
function row(vdisk: bigint, index: number, egroups: bigint[]): { key: string; value: VdiskRow } {
  const blocks: VdiskRow['blocks'] = {};
  egroups.forEach((eg, i) => (blocks[String(index * 16 + i)] = { egroup: eg, offset: i * MiB, length: MiB }));
  return { key: `${vdisk}.${index}`, value: { blocks } };
}

describe('planUnnamed', () => {
  const base = { generations: new Map<bigint, number>(), nowMs: NOW };

  it('takes the extent groups of a live writer that no live row names and that are not sealed', () => {
    // 7 is live and writes 500 (named by its row), 501 (named by its snapshot 8 only), 502 (named by nothing),
    // 503 (named by nothing, sealed: planReclaim's); 9 is being deleted and writes 504 (its sweep plan's).
    const vdisks = [vdisk(7n), vdisk(8n, { snapshotOf: 7n }), vdisk(9n, { deletingSinceMs: 5 })];
    const references = referencesOf([row(7n, 0, [500n]), row(8n, 0, [501n]), row(9n, 0, [502n])]);
    const egroups = [
      { id: 500n, revision: 1, entry: egroup(7n, 1) },
      { id: 501n, revision: 1, entry: egroup(7n, 1) },
      { id: 502n, revision: 3, entry: egroup(7n, 1) },
      { id: 503n, revision: 1, entry: egroup(7n, 0) },
      { id: 504n, revision: 1, entry: egroup(9n) },
    ];
    const out = planUnnamed({ ...base, vdisks, references, egroups, generations: new Map([[7n, 1]]) });
    // 502 is named only by a row of 9, which is being deleted: that row counts for nothing.
    expect(out.map((g) => [g.id, g.vdisk, g.revision])).toEqual([[502n, 7n, 3]]);
    expect(out[0]!.replicas).toEqual([{ disk: 101n, node: 'n1' }, { disk: 102n, node: 'n2' }]);
  });

  it('takes nothing while a snapshot or clone is being made (its rows may be half copied)', () => {
    const vdisks = [vdisk(7n), vdisk(8n, { snapshotOf: 7n, creatingSinceMs: NOW - 1_000 })];
    expect(planUnnamed({ ...base, vdisks, references: new Map(), egroups: [{ id: 502n, revision: 1, entry: egroup(7n) }] })).toEqual([]);
  });
});

describe('UnnamedSince', () => {
  it('is due once seen unnamed at the same revision for the grace period; a change or a naming starts again', () => {
    const since = new UnnamedSince();
    const a = { id: 1n, revision: 5 };
    const b = { id: 2n, revision: 5 };
    expect(since.observe([a, b], 0, GRACE)).toEqual(new Set());
    expect(since.observe([a, b], GRACE - 1, GRACE)).toEqual(new Set());
    // b changed (an extent recorded or freed in it): its clock starts again.
    expect(since.observe([a, { id: 2n, revision: 6 }], GRACE, GRACE)).toEqual(new Set([1n]));
    expect(since.observe([a, { id: 2n, revision: 6 }], 2 * GRACE - 1, GRACE)).toEqual(new Set([1n]));
    // a named again (missing from a sweep) is forgotten: unnamed later, it waits the whole grace again.
    expect(since.observe([{ id: 2n, revision: 6 }], 2 * GRACE, GRACE)).toEqual(new Set([2n]));
    expect(since.observe([a, { id: 2n, revision: 6 }], 2 * GRACE + 1, GRACE)).toEqual(new Set([2n]));
    expect(since.size).toBe(2);
  });
});

/** A live vDisk 7 owned by n2 at epoch 4, with extent groups 500 (named), 501 and 502 (named by nothing). */
class Cluster {
  vdisks: Vdisk[] = [vdisk(7n)];
  rows = [row(7n, 0, [500n])];
  egroups = new Map<bigint, { entry: EgroupEntry; revision: number }>([
    [500n, { entry: egroup(7n), revision: 1 }],
    [501n, { entry: egroup(7n), revision: 1 }],
    [502n, { entry: egroup(7n), revision: 1 }],
  ]);
  replicas = new Set(['101/500', '102/500', '101/501', '102/501', '101/502', '102/502']);
  owner: { owner: string; epoch: number } | null = { owner: 'n2', epoch: 4 };
  /** What the owner gives up of what it is asked. */
  releases: (asked: readonly bigint[]) => bigint[] = (asked) => asked.filter((e) => e !== 502n);
  /** Runs when the owner answers (before the sweep reads the rows again). */
  afterRelease: () => void = () => undefined;
  asked: Array<{ node: string; vdisk: bigint; epoch: number; egroups: bigint[] }> = [];
  events: string[] = [];
  rowReads = 0;

  ports(): SweepPorts {
    return {
      listVdisks: async () => this.vdisks,
      rows: async () => {
        this.rowReads++;
        return this.rows;
      },
      generation: async () => 0,
      egroups: async () => [...this.egroups].map(([id, e]) => ({ id, entry: e.entry, revision: e.revision })),
      ownKeys: async () => ['vdisk.7'],
      fenceOwnership: async () => undefined,
      deleteReplica: async (_node, disk, eg) => {
        this.replicas.delete(`${disk}/${eg}`);
        return MiB;
      },
      deleteMd: async (_map, key, revision) => {
        const e = this.egroups.get(BigInt(key));
        if (e !== undefined && revision !== undefined && e.revision !== revision) throw new Error(`CONFLICT: egroup ${key} is at ${e.revision}`);
        this.egroups.delete(BigInt(key));
      },
      deleteOwn: async () => undefined,
      purgeOplog: async () => undefined,
      commit: async () => undefined,
      event: async (e) => void this.events.push(e.reason ?? ''),
      ownership: async () => this.owner,
      release: async (node, vdisk, epoch, egroups) => {
        this.asked.push({ node, vdisk, epoch, egroups: [...egroups] });
        const out = this.releases(egroups);
        this.afterRelease();
        return out;
      },
      sleep: async () => undefined,
      nowMs: () => 0,
    };
  }
}

describe('sweepDeleted: extent groups of live vDisks', () => {
  /** Two sweeps the grace period apart (the memory is what the curator master keeps). */
  async function twoSweeps(c: Cluster): Promise<Awaited<ReturnType<typeof sweepDeleted>>> {
    const since = new UnnamedSince();
    const first = await sweepDeleted(c.ports(), undefined, undefined, { since, graceMs: 0 });
    expect(first.unnamed).toEqual({ unnamed: 2, due: 0, released: 0, kept: 0 });
    expect(c.asked).toEqual([]);
    return sweepDeleted(c.ports(), undefined, undefined, { since, graceMs: 0 });
  }

  it('asks the owner at its epoch, and deletes only what it released: replicas, then the entry, with a reason', async () => {
    const c = new Cluster();
    const second = await twoSweeps(c);
    expect(c.asked).toEqual([{ node: 'n2', vdisk: 7n, epoch: 4, egroups: [501n, 502n] }]);
    expect(second.unnamed).toEqual({ unnamed: 2, due: 2, released: 1, kept: 1 });
    expect(second.reclaimed?.map((r) => [r.egroup, r.replicas, r.freedBytes])).toEqual([[501n, 2, 2 * MiB]]);
    expect([...c.egroups.keys()]).toEqual([500n, 502n]);
    expect([...c.replicas]).toEqual(['101/500', '102/500', '101/502', '102/502']);
    expect(c.events).toEqual([expect.stringMatching(/^no row names it .*released by its writer, vdisk 7, owned by n2$/)]);
  });

  it('asks the owner of each writer, then reads the rows again once for all of them', async () => {
    const c = new Cluster();
    c.vdisks.push(vdisk(9n));
    c.egroups.set(601n, { entry: egroup(9n), revision: 1 });
    c.replicas.add('101/601');
    const since = new UnnamedSince();
    await sweepDeleted(c.ports(), undefined, undefined, { since, graceMs: 0 });
    c.rowReads = 0;
    const second = await sweepDeleted(c.ports(), undefined, undefined, { since, graceMs: 0 });
    expect(c.asked.map((a) => [a.vdisk, a.egroups])).toEqual([[7n, [501n, 502n]], [9n, [601n]]]);
    expect(second.reclaimed?.map((r) => r.egroup)).toEqual([501n, 601n]);
    expect(c.rowReads).toBe(2);
  });

  it('keeps a released one that a row names when read again, and deletes nothing while a snapshot is being made', async () => {
    const c = new Cluster();
    c.afterRelease = () => (c.rows = [row(7n, 0, [500n, 501n])]);
    await twoSweeps(c);
    expect([...c.egroups.keys()]).toEqual([500n, 501n, 502n]);

    const d = new Cluster();
    d.afterRelease = () => d.vdisks.push(vdisk(8n, { snapshotOf: 7n, creatingSinceMs: Date.now() }));
    await twoSweeps(d);
    expect(d.replicas.size).toBe(6);
  });

  it('asks nobody and deletes nothing of a writer without an ownership record, or before the grace period', async () => {
    const c = new Cluster();
    c.owner = null;
    await twoSweeps(c);
    expect(c.egroups.size).toBe(3);

    const d = new Cluster();
    const since = new UnnamedSince();
    for (let i = 0; i < 3; i++) await sweepDeleted(d.ports(), undefined, undefined, { since, graceMs: 3_600_000 });
    expect(d.asked).toEqual([]);
    expect(d.egroups.size).toBe(3);
  });

  it('does not run without the memory (strata vdisk sweep)', async () => {
    const c = new Cluster();
    for (let i = 0; i < 2; i++) expect((await sweepDeleted(c.ports())).unnamed).toBeUndefined();
    expect(c.asked).toEqual([]);
  });
});
