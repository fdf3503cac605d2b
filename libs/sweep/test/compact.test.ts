// Compaction of extent groups that are mostly dead (compact.ts): which extent groups
// the plan gives to their owners to evacuate, the bounds, and the executor's requests.
import type { EgroupEntry, ObjectOf, VdiskRow } from '@strata/proto';
import { CompactAsked, UnnamedSince, compactionWriters, planCompaction, sweepDeleted, type CompactCandidate, type SweepPorts } from '@strata/sweep';

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

const entry = (writer: bigint, sizeBytes = 8 * MiB): EgroupEntry => ({ vdisk: writer, replicas: [{ disk: 101n, node: 'n1' }], version: 1, sizeBytes, extents: [] });

/** A row of `vdisk` with one block per [egroup, offset, gen]. */
function row(vdisk: bigint, index: number, blocks: Array<[bigint, number, number?]>): { key: string; value: VdiskRow } {
  const out: VdiskRow['blocks'] = {};
  blocks.forEach(([egroup, offset, gen], i) => (out[String(index * 16 + i)] = { egroup, offset, length: MiB, ...(gen === undefined ? {} : { gen }) }));
  return { key: `${vdisk}.${index}`, value: { blocks: out } };
}

describe('planCompaction', () => {
  // 7 writes 500 (1 of 8 MiB live), 501 (6 of 8 live), 502 (1 live, shared with snapshot 8),
  // 503 (1 live at generation 0 while 7 is at 1: a block shared with a snapshot), 504 (unnamed: the reclaim's).
  const vdisks = [vdisk(7n), vdisk(8n, { snapshotOf: 7n })];
  const rows = [
    row(7n, 0, [
      [500n, 0, 1],
      [501n, 0, 1],
      [501n, MiB, 1],
      [501n, 2 * MiB, 1],
      [501n, 3 * MiB, 1],
      [501n, 4 * MiB, 1],
      [501n, 5 * MiB, 1],
      [502n, 0, 1],
      [503n, 0],
    ]),
    row(8n, 0, [[502n, MiB, 1]]),
  ];
  const egroups = [500n, 501n, 502n, 503n, 504n].map((id) => ({ id, entry: entry(7n) }));
  const input = { vdisks, rows, egroups, liveFraction: 0.5, nowMs: 0 };

  it('takes a live writer\'s extent group below the live fraction, named only by its own rows at its current generation', () => {
    expect(compactionWriters(input)).toEqual([7n]);
    expect(planCompaction(input, new Map([[7n, 1]]), 1024 * MiB)).toEqual([{ id: 500n, vdisk: 7n, liveBytes: MiB, sizeBytes: 8 * MiB }]);
    // At generation 0 (no snapshot since), 503 qualifies instead of 500.
    expect(planCompaction(input, new Map(), 1024 * MiB).map((c) => c.id)).toEqual([503n]);
  });

  it('is bounded by the live bytes per sweep, off at fraction 0, and empty while a snapshot is being made', () => {
    expect(planCompaction(input, new Map([[7n, 1]]), MiB - 1)).toEqual([]);
    expect(planCompaction({ ...input, liveFraction: 0 }, new Map([[7n, 1]]), 1024 * MiB)).toEqual([]);
    const making = [...vdisks, vdisk(9n, { snapshotOf: 7n, creatingSinceMs: Date.now() })];
    expect(planCompaction({ ...input, vdisks: making, nowMs: Date.now() }, new Map([[7n, 1]]), 1024 * MiB)).toEqual([]);
  });
});

describe('CompactAsked', () => {
  it('asks about a candidate once it was one, unchanged, for the grace period, and again only a grace period later', () => {
    const asked = new CompactAsked();
    const c: CompactCandidate = { id: 500n, vdisk: 7n, liveBytes: MiB, sizeBytes: 8 * MiB, revision: 3 };
    expect(asked.due([c], 0, 100)).toEqual([]);
    expect(asked.due([c], 99, 100)).toEqual([]);
    // Changed (its entry was written): the clock starts again.
    expect(asked.due([{ ...c, revision: 4 }], 100, 100)).toEqual([]);
    expect(asked.due([{ ...c, revision: 4 }], 200, 100)).toEqual([{ ...c, revision: 4 }]);
    asked.asked([500n], 200);
    expect(asked.due([{ ...c, revision: 4 }], 299, 100)).toEqual([]);
    expect(asked.due([{ ...c, revision: 4 }], 300, 100)).toEqual([{ ...c, revision: 4 }]);
    // No longer a candidate: forgotten.
    expect(asked.due([], 301, 100)).toEqual([]);
    expect(asked.due([{ ...c, revision: 4 }], 302, 100)).toEqual([]);
  });
});

describe('sweepDeleted: compaction', () => {
  it('asks the owner at its epoch to evacuate once the candidate was seen for the grace period, and counts what it queued', async () => {
    const asked: Array<{ node: string; epoch: number; egroups: bigint[] }> = [];
    const ports: SweepPorts = {
      listVdisks: async () => [vdisk(7n)],
      rows: async () => [row(7n, 0, [[500n, 0]])],
      generation: async () => 0,
      egroups: async () => [{ id: 500n, entry: entry(7n), revision: 3 }],
      ownKeys: async () => ['vdisk.7'],
      fenceOwnership: async () => undefined,
      deleteReplica: async () => 0,
      deleteMd: async () => undefined,
      deleteOwn: async () => undefined,
      purgeOplog: async () => undefined,
      commit: async () => undefined,
      ownership: async () => ({ owner: 'n2', epoch: 4 }),
      release: async () => [],
      compact: async (node, _vdisk, epoch, egroups) => {
        asked.push({ node, epoch, egroups: [...egroups] });
        return { evacuating: [...egroups], blocks: 1 };
      },
      sleep: async () => undefined,
      nowMs: () => 0,
    };
    const live = { since: new UnnamedSince(), graceMs: 0, compact: { liveFraction: 0.5, bytesMax: 64 * MiB, asked: new CompactAsked() } };
    // First seen: nothing asked yet.
    expect((await sweepDeleted(ports, undefined, undefined, live)).compacted).toBeUndefined();
    expect(asked).toEqual([]);
    const second = await sweepDeleted(ports, undefined, undefined, live);
    expect(second.compacted).toEqual({ asked: 1, evacuating: 1, blocks: 1, liveBytes: MiB });
    expect(asked).toEqual([{ node: 'n2', epoch: 4, egroups: [500n] }]);
  });
});
