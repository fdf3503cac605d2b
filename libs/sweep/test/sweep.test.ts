// The sweep's plan (pure) and its executor against an in-memory cluster: what a
// deleting vDisk holds is planned and nothing else; the deletes go bottom-up with the
// config object last; a sweep that fails at any step is finished by the next one.
import fc from 'fast-check';
import { ErrorCode, StrataError } from '@strata/errors';
import type { ClusterEvent, EgroupEntry, GatewayAttachments, ObjectOf, VdiskRow } from '@strata/proto';
import { markDeleting, openOn, planSweep, sweepDeleted, vdiskOfRowKey, type SweepPorts } from '@strata/sweep';

const MiB = 2 ** 20;

function vdisk(id: bigint, name: string, deletingSinceMs?: number, revision = 10): ObjectOf<'vdisk'> {
  return {
    kind: 'vdisk',
    id,
    name,
    createdAtMs: 0,
    updatedAtMs: 0,
    epoch: 1,
    revision,
    spec: { container: 1n, sizeBytes: 64 * MiB, blockSizeBytes: MiB, shared: false, qos: { priority: 'normal', weight: 1 }, ...(deletingSinceMs === undefined ? {} : { deletingSinceMs }) },
  };
}

function egroup(vdiskId: bigint, sizeBytes = 16 * MiB): EgroupEntry {
  return { vdisk: vdiskId, replicas: [{ disk: 101n, node: 'n1' }, { disk: 201n, node: 'n2' }], version: 3, sizeBytes, extents: [] };
}

describe('planSweep', () => {
  const input = {
    vdisks: [vdisk(7n, 'keep'), vdisk(8n, 'old', 2_000), vdisk(9n, 'older', 1_000)],
    rowKeys: ['7.0', '8.0', '8.3', '9.1', '80.0', 'junk'],
    egroups: [
      { id: 500n, entry: egroup(8n) },
      { id: 501n, entry: egroup(7n) },
      { id: 502n, entry: egroup(8n, 4 * MiB) },
    ],
    ownKeys: ['vdisk.7', 'vdisk.8', 'takeover.8', 'role.config', 'md.3'],
    references: new Map<bigint, Set<bigint>>(),
    vdisksMax: 10,
  };

  it('lists what each deleting vDisk holds, oldest mark first, and nothing of the others', () => {
    const plans = planSweep(input);
    expect(plans.map((p) => p.name)).toEqual(['older', 'old']);
    expect(plans[1]).toEqual({
      vdisk: 8n,
      name: 'old',
      revision: 10,
      deletingSinceMs: 2_000,
      egroups: [
        { id: 500n, replicas: [{ disk: 101n, node: 'n1' }, { disk: 201n, node: 'n2' }], sizeBytes: 16 * MiB },
        { id: 502n, replicas: [{ disk: 101n, node: 'n1' }, { disk: 201n, node: 'n2' }], sizeBytes: 4 * MiB },
      ],
      rows: ['8.0', '8.3'],
      own: ['vdisk.8', 'takeover.8'],
      oplogSubject: 'oplog.8',
    });
    // vDisk 9 was never written: only its config object remains to go.
    expect(plans[0]).toMatchObject({ vdisk: 9n, egroups: [], rows: ['9.1'], own: [] });
  });

  it('plans nothing when no vDisk is being deleted, and at most vdisksMax', () => {
    expect(planSweep({ ...input, vdisks: [vdisk(7n, 'keep')] })).toEqual([]);
    expect(planSweep({ ...input, vdisksMax: 1 }).map((p) => p.name)).toEqual(['older']);
    expect(() => planSweep({ ...input, vdisksMax: 0 })).toThrow(/vdisksMax must be a positive integer/);
  });

  it('reads the vDisk of a row key, and nothing from keys of other shapes', () => {
    expect(vdiskOfRowKey('12349.2')).toBe(12349n);
    expect(vdiskOfRowKey('12349')).toBeUndefined();
    expect(vdiskOfRowKey('a.2')).toBeUndefined();
  });

  it('plans every key of a deleting vDisk and never one of a vDisk that stays (property)', () => {
    const ids = fc.bigInt({ min: 1n, max: 40n });
    fc.assert(
      fc.property(fc.uniqueArray(ids, { minLength: 1, maxLength: 8 }), fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }), fc.array(fc.tuple(ids, fc.nat(20))), fc.array(fc.tuple(fc.bigInt({ min: 100n, max: 999n }), ids)), (vdiskIds, marks, rows, egroups) => {
        const vdisks = vdiskIds.map((id, i) => vdisk(id, `v${id}`, marks[i]! ? i + 1 : undefined));
        const deleting = new Set(vdisks.filter((v) => v.spec.deletingSinceMs !== undefined).map((v) => v.id));
        const rowKeys = [...new Set(rows.map(([v, r]) => `${v}.${r}`))];
        const egroupEntries = [...new Map(egroups.map(([id, v]) => [id, { id, entry: egroup(v) }])).values()];
        const plans = planSweep({ vdisks, rowKeys, egroups: egroupEntries, ownKeys: [], references: new Map(), vdisksMax: 100 });
        expect(new Set(plans.map((p) => p.vdisk))).toEqual(deleting);
        const plannedRows = plans.flatMap((p) => p.rows).sort();
        expect(plannedRows).toEqual(rowKeys.filter((k) => deleting.has(vdiskOfRowKey(k)!)).sort());
        const plannedEgroups = plans.flatMap((p) => p.egroups.map((g) => g.id)).sort();
        expect(plannedEgroups).toEqual(egroupEntries.filter((g) => deleting.has(g.entry.vdisk)).map((g) => g.id).sort());
      }),
    );
  });
});

/** An in-memory cluster: the config, md-vdisk, md-egroup, own, replicas on disks, oplog subjects. */
class FakeCluster {
  vdisks = new Map<bigint, ObjectOf<'vdisk'>>();
  rows = new Set<string>();
  /** The blocks of rows that hold any (the rest are empty). */
  rowValues = new Map<string, VdiskRow>();
  /** Generations of the vDisks' ownership records (absent: 0). */
  generations = new Map<bigint, number>();
  egroups = new Map<bigint, EgroupEntry>();
  own = new Map<string, { epoch: number }>();
  /** `<disk>/<egroup>` -> bytes. */
  replicas = new Map<string, number>();
  oplog = new Map<string, number>();
  events: ClusterEvent[] = [];
  /** Every delete, in order, as `<what> <key>`. */
  log: string[] = [];
  /** The port call that fails once (a crash at that step). */
  failAt: string | undefined;

  addVdisk(id: bigint, name: string, { rows = 2, egroups = 2, bytes = 8 * MiB } = {}): void {
    this.vdisks.set(id, vdisk(id, name));
    for (let r = 0; r < rows; r++) this.rows.add(`${id}.${r}`);
    for (let g = 0; g < egroups; g++) {
      const eg = id * 1000n + BigInt(g);
      const entry = egroup(id, bytes);
      this.egroups.set(eg, entry);
      for (const r of entry.replicas) this.replicas.set(`${r.disk}/${eg}`, bytes);
    }
    this.own.set(`vdisk.${id}`, { epoch: 1 });
    this.oplog.set(`oplog.${id}`, 5);
  }

  mark(id: bigint, atMs: number): void {
    const v = this.vdisks.get(id)!;
    this.vdisks.set(id, { ...v, revision: v.revision + 1, spec: { ...v.spec, deletingSinceMs: atMs } });
  }

  private step(name: string): void {
    if (this.failAt === name) {
      this.failAt = undefined;
      throw new StrataError(ErrorCode.UNAVAILABLE, `injected failure at ${name}`);
    }
  }

  ports(): SweepPorts {
    return {
      listVdisks: async () => [...this.vdisks.values()],
      rows: async () => [...this.rows].map((key) => ({ key, value: this.rowValues.get(key) ?? { blocks: {} } })),
      generation: async (id) => this.generations.get(id) ?? 0,
      egroups: async () => [...this.egroups].map(([id, entry]) => ({ id, entry })),
      ownKeys: async () => [...this.own.keys()],
      fenceOwnership: async (key) => {
        this.step('fence');
        const rec = this.own.get(key);
        if (rec !== undefined) rec.epoch++;
        this.log.push(`fence ${key}`);
      },
      deleteReplica: async (_node, disk, eg) => {
        this.step('replica');
        const bytes = this.replicas.get(`${disk}/${eg}`) ?? 0;
        this.replicas.delete(`${disk}/${eg}`);
        this.log.push(`replica ${disk}/${eg}`);
        return bytes;
      },
      deleteMd: async (map, key) => {
        this.step(`md-${map}`);
        if (map === 'egroup') this.egroups.delete(BigInt(key));
        else this.rows.delete(key);
        this.log.push(`md-${map} ${key}`);
      },
      deleteOwn: async (key) => {
        this.step('own');
        this.own.delete(key);
        this.log.push(`own ${key}`);
      },
      purgeOplog: async (subject) => {
        this.step('oplog');
        this.oplog.delete(subject);
        this.log.push(`oplog ${subject}`);
      },
      commit: async (id, _name, revision) => {
        this.step('commit');
        const v = this.vdisks.get(id);
        if (v === undefined) return;
        if (v.revision !== revision) throw new StrataError(ErrorCode.CONFLICT, 'changed');
        this.vdisks.delete(id);
        this.log.push(`commit ${id}`);
      },
      event: async (e) => {
        this.events.push(e);
      },
      sleep: async () => undefined,
      nowMs: () => 0,
    };
  }

  /** What is left of vDisk `id` anywhere. */
  leftOf(id: bigint): string[] {
    const left: string[] = [];
    if (this.vdisks.has(id)) left.push('config');
    for (const k of this.rows) if (vdiskOfRowKey(k) === id) left.push(`row ${k}`);
    for (const [eg, e] of this.egroups) if (e.vdisk === id) left.push(`egroup ${eg}`);
    for (const k of this.replicas.keys()) if (k.endsWith(`/${id * 1000n}`) || k.endsWith(`/${id * 1000n + 1n}`)) left.push(`replica ${k}`);
    if (this.own.has(`vdisk.${id}`)) left.push('own');
    if (this.oplog.has(`oplog.${id}`)) left.push('oplog');
    return left;
  }
}

describe('sweepDeleted', () => {
  it('deletes bottom-up with the config object last, records an event, and leaves the other vDisks alone', async () => {
    const c = new FakeCluster();
    c.addVdisk(7n, 'keep');
    c.addVdisk(8n, 'old', { bytes: 4 * MiB });
    c.mark(8n, 1_000);
    const result = await sweepDeleted(c.ports());
    expect(result).toEqual({ swept: [{ vdisk: 8n, name: 'old', egroups: 2, replicas: 4, rows: 2, own: 1, freedBytes: 16 * MiB }], failed: [] });
    expect(c.leftOf(8n)).toEqual([]);
    expect(c.leftOf(7n)).toEqual(expect.arrayContaining(['config', 'own', 'oplog']));
    const firstOf = (what: string): number => c.log.findIndex((l) => l.startsWith(what));
    expect(firstOf('fence')).toBe(0);
    expect(firstOf('replica')).toBeLessThan(firstOf('md-egroup'));
    expect(firstOf('md-egroup')).toBeLessThan(firstOf('md-vdisk'));
    expect(firstOf('md-vdisk')).toBeLessThan(firstOf('own'));
    expect(firstOf('oplog')).toBeLessThan(firstOf('commit'));
    expect(c.log.at(-1)).toBe('commit 8');
    expect(c.events).toEqual([expect.objectContaining({ type: 'vdisk.swept', kind: 'vdisk', id: 8n, name: 'old', freedBytes: 16 * MiB, cause: 'sweep' })]);
    expect(c.events[0]!.message).toBe('vdisk old swept: 2 extent groups (4 replicas, 16.0 MiB freed), 2 rows, 1 ownership record, oplog purged');
    // Nothing left to do: a second sweep is a no-op.
    expect(await sweepDeleted(c.ports())).toEqual({ swept: [], failed: [] });
  });

  it.each(['fence', 'replica', 'md-egroup', 'md-vdisk', 'own', 'oplog', 'commit'])('after a failure at %s, the vDisk stays marked and the next sweep finishes it', async (step) => {
    const c = new FakeCluster();
    c.addVdisk(8n, 'old');
    c.addVdisk(9n, 'other');
    c.mark(8n, 1_000);
    c.mark(9n, 2_000);
    c.failAt = step;
    const first = await sweepDeleted(c.ports());
    expect(first.failed).toEqual([{ vdisk: 8n, name: 'old', error: `injected failure at ${step}` }]);
    // One vDisk's failure does not hold the others back.
    expect(first.swept.map((s) => s.name)).toEqual(['other']);
    expect(c.leftOf(8n)).toContain('config');
    const second = await sweepDeleted(c.ports());
    expect(second.failed).toEqual([]);
    expect(second.swept.map((s) => s.name)).toEqual(['old']);
    expect(c.leftOf(8n)).toEqual([]);
  });

  it('refuses limits that are not positive integers', async () => {
    await expect(sweepDeleted(new FakeCluster().ports(), { vdisksMax: 1, inFlightMax: 0, requestsPerSecondMax: 1 })).rejects.toThrow(/inFlightMax must be a positive integer/);
  });

  it('paces its requests: at most requestsPerSecondMax started a second', async () => {
    const c = new FakeCluster();
    c.addVdisk(8n, 'old', { egroups: 5, rows: 5 });
    c.mark(8n, 1);
    let nowMs = 0;
    const ports = { ...c.ports(), nowMs: () => nowMs, sleep: async (ms: number) => void (nowMs += ms) };
    await sweepDeleted(ports, { vdisksMax: 10, inFlightMax: 4, requestsPerSecondMax: 10 });
    // 10 replicas + 5 egroup entries + 5 rows = 20 requests at 10 a second: the last starts at 1.9 s.
    expect(nowMs).toBeCloseTo(1_900, 5);
  });
});

describe('markDeleting', () => {
  const report = (node: string, vdisks: GatewayAttachments['vdisks'], atMs: number): GatewayAttachments => ({ node, vdisks, atMs, intervalMs: 5_000 });

  it('names the nodes with live reports that have the vDisk open', () => {
    const reports = [report('n2', [{ vdisk: 8n, connections: 2 }], 100_000), report('n1', [{ vdisk: 8n, connections: 1 }], 99_000), report('n3', [{ vdisk: 8n, connections: 1 }], 50_000), report('n4', [{ vdisk: 9n, connections: 1 }], 100_000)];
    // n3's report is 50 s old (over three 5 s intervals): its gateway died.
    expect(openOn(reports, 8n, 100_000)).toEqual([
      { node: 'n1', connections: 1 },
      { node: 'n2', connections: 2 },
    ]);
  });

  function ports(v: ObjectOf<'vdisk'>, reports: GatewayAttachments[]) {
    const updates: Array<{ spec: ObjectOf<'vdisk'>['spec']; revision: number }> = [];
    return {
      updates,
      ports: {
        get: async () => v,
        update: async (_name: string, spec: ObjectOf<'vdisk'>['spec'], revision: number) => void updates.push({ spec, revision }),
        attachments: async () => reports,
        nowMs: () => 100_000,
      },
    };
  }

  it('marks a closed vDisk deleting at the revision read', async () => {
    const p = ports(vdisk(8n, 'old', undefined, 4), []);
    expect(await markDeleting(p.ports, 'old', { force: false })).toEqual({ marked: true, openOn: [] });
    expect(p.updates).toEqual([{ spec: expect.objectContaining({ deletingSinceMs: 100_000 }), revision: 4 }]);
  });

  it('refuses an open vDisk with CONFLICT naming where, unless forced', async () => {
    const open = [report('n1', [{ vdisk: 8n, connections: 1 }], 99_000)];
    const p = ports(vdisk(8n, 'old'), open);
    await expect(markDeleting(p.ports, 'old', { force: false })).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/^vdisk old is open on n1 \(1 connection\); .*--force/) });
    expect(p.updates).toEqual([]);
    expect(await markDeleting(p.ports, 'old', { force: true })).toEqual({ marked: true, openOn: [{ node: 'n1', connections: 1 }] });
  });

  it('changes nothing for a vDisk already being deleted', async () => {
    const p = ports(vdisk(8n, 'old', 5), []);
    expect(await markDeleting(p.ports, 'old', { force: false })).toEqual({ marked: false, sinceMs: 5 });
    expect(p.updates).toEqual([]);
  });
});
