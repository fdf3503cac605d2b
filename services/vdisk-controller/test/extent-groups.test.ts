// Extent groups as the controller drives them: request chunking, the map entry a
// drain records, and writes that go past a replica left ahead by a failed attempt.
// The replicas are fakes that follow the extent store's version rule (apply below
// the write's version, CONFLICT otherwise); the metadata maps are MemoryMd, which
// fences the map's update by the vDisk's ownership epoch as the shards do.
import type { Bus } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { MemoryMd } from '@strata/md-client/testing';
import { keys, type EgroupEntry } from '@strata/proto';
import { applyChanges, chunks } from '../src/extent-groups';
import { testExtentGroups, testHealth } from './health';

interface FakeReplica {
  version: number;
  bytes: Uint8Array;
  /** A slice left damaged by a crash: every write answers CHECKSUM, as the store does for a write over part of it. */
  damaged?: boolean;
}

function fakeBus(replicas: Map<string, FakeReplica>, sent: string[], delayMs: () => number = () => 0): Bus {
  const request = async (subject: string, req: Record<string, unknown>): Promise<unknown> => {
    const op = subject.split('.').pop();
    const replica = replicas.get(String(req.disk))!;
    sent.push(`${op} disk ${String(req.disk)}${op === 'write' ? ` v${String(req.version)}` : ''}`);
    const ms = delayMs();
    if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    if (op === 'stat') return Promise.resolve({ version: replica.version, sizeBytes: replica.bytes.length });
    if (op === 'read') return Promise.resolve({ data: replica.bytes.slice(req.offset as number, (req.offset as number) + (req.length as number)) });
    const version = req.version as number;
    for (const p of req.pieces as Array<{ offset: number; data: Uint8Array }>) {
      if (p.offset + p.data.length > (req.sizeBytes as number)) return Promise.reject(new StrataError(ErrorCode.INVALID, `piece at ${p.offset} ends beyond sizeBytes ${String(req.sizeBytes)}`));
    }
    if (replica.damaged === true) return Promise.reject(new StrataError(ErrorCode.CHECKSUM, 'slice 0 failed its check before a write over part of it'));
    if (replica.version >= version) return Promise.reject(new StrataError(ErrorCode.CONFLICT, `at version ${replica.version}`));
    for (const p of req.pieces as Array<{ offset: number; data: Uint8Array }>) replica.bytes.set(p.data, p.offset);
    replica.version = version;
    return Promise.resolve({ version, crc32c: 0 });
  };
  return { request } as unknown as Bus;
}

describe('extent groups', () => {
  it('cuts pieces into requests of at most the byte limit, splitting long pieces and keeping zero pieces free', () => {
    const out = chunks(
      [
        { offset: 0, data: new Uint8Array(5) },
        { offset: 100, zeros: 1000 },
        { offset: 10, data: new Uint8Array(7) },
      ],
      6,
    );
    expect(out.map((c) => c.map((p) => ('data' in p ? `${p.offset}+${p.data.length}` : `${p.offset}z${p.zeros}`)))).toEqual([
      ['0+5', '100z1000', '10+1'],
      ['11+6'],
    ]);
  });

  it('never puts more pieces in one request than the limit', () => {
    const pieces = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? { offset: i * 10, data: new Uint8Array(1) } : { offset: i * 10, zeros: 5 }));
    const out = chunks(pieces, 1_000, 4);
    expect(out.map((c) => c.length)).toEqual([4, 4, 2]);
    expect(out.flat()).toEqual(pieces);
  });

  it('records new extents with one reference and freed ones with none', () => {
    const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }], version: 3, sizeBytes: 64, extents: [{ id: '7:0', offset: 0, length: 64, refs: 1 }] };
    const next = applyChanges(entry, 7n, { added: [{ block: 5, location: { egroup: 9n, offset: 64, length: 64 } }], freed: [{ egroup: 9n, offset: 0, length: 64 }] }, 4, 128);
    expect(next).toEqual({
      ...entry,
      version: 4,
      sizeBytes: 128,
      extents: [
        { id: '7:0', offset: 0, length: 64, refs: 0 },
        { id: '7:5', offset: 64, length: 64, refs: 1 },
      ],
    });
  });

  it('records a size that covers an extent adopted with no bytes written by this drain (a previous owner staged them)', () => {
    const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }], version: 0, sizeBytes: 0, extents: [] };
    const next = applyChanges(entry, 7n, { added: [{ block: 3, location: { egroup: 9n, offset: 1024, length: 512 } }], freed: [] }, 0, 0);
    expect(next.sizeBytes).toBe(1536);
    expect(next.extents).toEqual([{ id: '7:3', offset: 1024, length: 512, refs: 1 }]);
  });

  it('writes past a replica that a failed attempt left ahead of the map, then records the version reached', async () => {
    const md = new MemoryMd();
    const replicas = new Map<string, FakeReplica>([
      ['1', { version: 2, bytes: new Uint8Array(64) }],
      // A previous controller's failed drain got this replica to version 5.
      ['2', { version: 5, bytes: new Uint8Array(64) }],
    ]);
    const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }, { disk: 2n, node: 'n2' }], version: 2, sizeBytes: 64, extents: [{ id: '7:0', offset: 0, length: 64, refs: 1 }] };
    await md.put('egroup', keys.egroup(9n), entry, 0);
    const sent: string[] = [];
    const groups = testExtentGroups(fakeBus(replicas, sent), md);
    await groups.write(9n, [{ offset: 8, data: new Uint8Array([1, 2, 3]) }], { added: [], freed: [] });
    expect(sent).toEqual(['write disk 1 v3', 'write disk 2 v3', 'stat disk 1', 'stat disk 2', 'write disk 1 v6', 'write disk 2 v6']);
    expect((await md.get('egroup', keys.egroup(9n)))!.value.version).toBe(6);
    for (const r of replicas.values()) expect(Array.from(r.bytes.subarray(8, 11))).toEqual([1, 2, 3]);
    expect(Array.from(await groups.read({ egroup: 9n, offset: 0, length: 64 }, 7, 5))).toEqual([0, 1, 2, 3, 0]);
  });

  it('reads the entry again, once, when every replica it knows fails a read, and reads the replicas the curator put in their place', async () => {
    const md = new MemoryMd();
    const replicas = new Map<string, FakeReplica>([
      ['1', { version: 2, bytes: new Uint8Array(64).fill(1) }],
      ['2', { version: 2, bytes: new Uint8Array(64).fill(1) }],
      ['3', { version: 2, bytes: new Uint8Array(64).fill(1) }],
    ]);
    const dead = new Set<string>();
    const inner = fakeBus(replicas, []);
    const bus = {
      request: (subject: string, req: Record<string, unknown>, ...rest: unknown[]) =>
        dead.has(String(req.disk)) ? Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, `disk ${String(req.disk)}: no responders`)) : (inner.request as (...a: unknown[]) => Promise<unknown>)(subject, req, ...rest),
    } as unknown as Bus;
    const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }, { disk: 2n, node: 'n2' }], version: 2, sizeBytes: 64, extents: [{ id: '7:0', offset: 0, length: 64, refs: 1 }] };
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const groups = testExtentGroups(bus, md);
    const extent = { egroup: 9n, offset: 0, length: 64 };
    // The entry is cached by the first read.
    expect(Array.from(await groups.read(extent, 0, 2))).toEqual([1, 1]);
    // Node n1 is lost; the curator copies its replica to disk 3 (n3) and records it.
    dead.add('1');
    await md.put('egroup', keys.egroup(9n), { ...entry, replicas: [{ disk: 3n, node: 'n3' }, { disk: 2n, node: 'n2' }] }, revision);
    expect(Array.from(await groups.read(extent, 0, 2))).toEqual([1, 1]);
    // Then n2 is lost too: every replica the cached entry named fails, the fresh entry names disk 3.
    dead.add('2');
    expect(Array.from(await groups.read(extent, 0, 2))).toEqual([1, 1]);
    // With nothing new in the map, the read fails with the replicas' error (no loop).
    dead.add('3');
    await expect(groups.read(extent, 0, 2)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
  });

  describe("the curator's copy, recorded by the writer (the copy race)", () => {
    // Disks 1 and 2 hold egroup 9; the curator copies disk 2's replica to disk 3 (n2 drains).
    const setup = async (): Promise<{ md: MemoryMd; replicas: Map<string, FakeReplica>; sent: string[]; groups: ReturnType<typeof testExtentGroups>; entry: EgroupEntry; revision: number }> => {
      const md = new MemoryMd();
      const replicas = new Map<string, FakeReplica>([
        ['1', { version: 0, bytes: new Uint8Array(64) }],
        ['2', { version: 0, bytes: new Uint8Array(64) }],
      ]);
      const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }, { disk: 2n, node: 'n2' }], version: 0, sizeBytes: 64, extents: [] };
      const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
      const sent: string[] = [];
      const groups = testExtentGroups(fakeBus(replicas, sent), md);
      await groups.put(9n, [{ offset: 0, data: new Uint8Array([1]) }]);
      return { md, replicas, sent, groups, entry, revision };
    };
    const moved = (entry: EgroupEntry): EgroupEntry => ({ ...entry, replicas: [{ disk: 1n, node: 'n1' }, { disk: 3n, node: 'n3' }] });
    /** The copy of disk 2's replica onto disk 3, as the curator's copier leaves it. */
    const copy = (replicas: Map<string, FakeReplica>): void => {
      replicas.set('3', { version: replicas.get('2')!.version, bytes: replicas.get('2')!.bytes.slice() });
    };

    it('records the copy when the source is as the copy read it, and writes the new replicas from then on', async () => {
      const { md, replicas, sent, groups, entry, revision } = await setup();
      copy(replicas);
      const recorded = await groups.recordCopy({ egroup: 9n, source: { disk: 2n, node: 'n2' }, sourceVersion: 1, sourceSizeBytes: 64, entry: moved(entry), revision });
      expect(await md.get('egroup', keys.egroup(9n))).toEqual({ value: moved(entry), revision: recorded });
      await groups.put(9n, [{ offset: 1, data: new Uint8Array([2]) }]);
      expect(sent).toEqual(['write disk 1 v1', 'write disk 2 v1', 'stat disk 2', 'write disk 1 v2', 'write disk 3 v2']);
      expect(Array.from(replicas.get('3')!.bytes.subarray(0, 2))).toEqual([1, 2]);
    });

    it('refuses with CONFLICT, changing nothing, when the source was written after the copy read it', async () => {
      const { md, replicas, sent, groups, entry, revision } = await setup();
      copy(replicas);
      // A write the copy did not see: on disks 1 and 2, not on 3.
      await groups.put(9n, [{ offset: 1, data: new Uint8Array([2]) }]);
      await expect(groups.recordCopy({ egroup: 9n, source: { disk: 2n, node: 'n2' }, sourceVersion: 1, sourceSizeBytes: 64, entry: moved(entry), revision })).rejects.toMatchObject({
        code: ErrorCode.CONFLICT,
        message: expect.stringMatching(/written after the copy read it \(version 1 -> 2/),
      });
      expect(await md.get('egroup', keys.egroup(9n))).toEqual({ value: entry, revision });
      await groups.put(9n, [{ offset: 2, data: new Uint8Array([3]) }]);
      expect(sent.slice(-2)).toEqual(['write disk 1 v3', 'write disk 2 v3']);
    });

    it('checks the source only after a write in flight ends: that write is seen (CONFLICT), never missed', async () => {
      const { md, replicas, entry, revision } = await setup();
      copy(replicas);
      // Replica writes now take 20 ms: the write below is in flight when the record arrives.
      const slow = testExtentGroups(fakeBus(replicas, [], () => 20), md);
      const write = slow.put(9n, [{ offset: 1, data: new Uint8Array([2]) }]);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const record = slow.recordCopy({ egroup: 9n, source: { disk: 2n, node: 'n2' }, sourceVersion: 1, sourceSizeBytes: 64, entry: moved(entry), revision });
      await write;
      await expect(record).rejects.toMatchObject({ code: ErrorCode.CONFLICT });
      expect((await md.get('egroup', keys.egroup(9n)))!.value).toEqual(entry);
    });

    it('a write that arrives while the record runs waits for it and goes to the new replicas', async () => {
      const { replicas, groups, entry, revision } = await setup();
      copy(replicas);
      const record = groups.recordCopy({ egroup: 9n, source: { disk: 2n, node: 'n2' }, sourceVersion: 1, sourceSizeBytes: 64, entry: moved(entry), revision });
      const write = groups.put(9n, [{ offset: 1, data: new Uint8Array([2]) }]);
      await Promise.all([record, write]);
      expect(replicas.get('3')!.bytes[1]).toBe(2);
      expect(replicas.get('2')!.bytes[1]).toBe(0);
    });

    it("records under the owner's epoch: a deposed owner records nothing", async () => {
      const { md, replicas, groups, entry, revision } = await setup();
      copy(replicas);
      md.setOwnershipEpoch(7n, 2);
      await expect(groups.recordCopy({ egroup: 9n, source: { disk: 2n, node: 'n2' }, sourceVersion: 1, sourceSizeBytes: 64, entry: moved(entry), revision })).rejects.toMatchObject({ code: ErrorCode.FENCED });
      expect((await md.get('egroup', keys.egroup(9n)))!.value).toEqual(entry);
    });

    it("refuses another vDisk's extent group as INVALID", async () => {
      const { groups, entry, revision } = await setup();
      await expect(groups.recordCopy({ egroup: 9n, source: { disk: 2n, node: 'n2' }, sourceVersion: 1, sourceSizeBytes: 64, entry: { ...moved(entry), vdisk: 8n }, revision })).rejects.toMatchObject({ code: ErrorCode.INVALID });
    });
  });

  it('looks at the entry before reading when every replica it knows is on a dead or suspect node, and reads the new ones without waiting on the old', async () => {
    const md = new MemoryMd();
    const replicas = new Map<string, FakeReplica>([
      ['1', { version: 2, bytes: new Uint8Array(64).fill(4) }],
      ['2', { version: 2, bytes: new Uint8Array(64).fill(4) }],
      ['3', { version: 2, bytes: new Uint8Array(64).fill(4) }],
    ]);
    const sent: string[] = [];
    const { health } = testHealth();
    const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }, { disk: 2n, node: 'n2' }], version: 2, sizeBytes: 64, extents: [{ id: '7:0', offset: 0, length: 64, refs: 1 }] };
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const groups = testExtentGroups(fakeBus(replicas, sent), md, { health });
    const extent = { egroup: 9n, offset: 0, length: 64 };
    expect(Array.from(await groups.read(extent, 0, 1))).toEqual([4]);
    // Both nodes fail; the curator has moved one replica to n3.
    health.failed('n1');
    health.failed('n2');
    await md.put('egroup', keys.egroup(9n), { ...entry, replicas: [{ disk: 3n, node: 'n3' }, { disk: 2n, node: 'n2' }] }, revision);
    sent.length = 0;
    expect(Array.from(await groups.read(extent, 0, 1))).toEqual([4]);
    expect(sent).toEqual(['read disk 3']);
  });

  it('stops writing an extent group whose replica refused a write with CHECKSUM, keeps reading it from the others, and allocates new extents elsewhere', async () => {
    const md = new MemoryMd();
    const replicas = new Map<string, FakeReplica>([
      ['1', { version: 0, bytes: new Uint8Array(64).fill(5) }],
      ['2', { version: 0, bytes: new Uint8Array(64).fill(5), damaged: true }],
      ['3', { version: 0, bytes: new Uint8Array(64) }],
      ['4', { version: 0, bytes: new Uint8Array(64) }],
    ]);
    // Extent group 10 (replicas on disks 2 and 1) is made first, then 11 (disks 3 and 4).
    const placements = [
      [{ disk: 2n, node: 'n2' }, { disk: 1n, node: 'n1' }],
      [{ disk: 3n, node: 'n1' }, { disk: 4n, node: 'n3' }],
    ];
    let nextId = 10n;
    const groups = testExtentGroups(fakeBus(replicas, []), md, {
      createEgroup: async () => {
        const id = nextId++;
        const entry: EgroupEntry = { vdisk: 7n, replicas: placements.shift()!, version: 0, sizeBytes: 0, extents: [] };
        return { id, entry, revision: await md.put('egroup', keys.egroup(id), entry, 0) };
      },
    });
    const first = await groups.allocate(1, 16);
    expect(first.egroup).toBe(10n);
    const before = (await md.get('egroup', keys.egroup(10n)))!.value;
    await expect(groups.write(10n, [{ offset: 4, data: new Uint8Array([1, 2]) }], { added: [{ block: 1, location: first }], freed: [] })).rejects.toMatchObject({
      code: ErrorCode.UNAVAILABLE,
      message: expect.stringContaining('damaged replica (disk 2 on n2)'),
    });
    expect(await groups.writable(10n)).toBe(false);
    // The map is unchanged, and a second write is refused without asking any replica.
    expect((await md.get('egroup', keys.egroup(10n)))!.value).toEqual(before);
    const versionOfGood = replicas.get('1')!.version;
    await expect(groups.write(10n, [{ offset: 4, data: new Uint8Array([1, 2]) }], { added: [], freed: [] })).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(replicas.get('1')!.version).toBe(versionOfGood);
    // Reads still come from the replicas; a new extent goes to a new extent group.
    expect(Array.from(await groups.read({ egroup: 10n, offset: 0, length: 16 }, 0, 2))).toEqual([5, 5]);
    expect((await groups.allocate(2, 16)).egroup).toBe(11n);
    // Freeing extents touches the map alone, so it still goes through.
    await groups.write(10n, [], { added: [], freed: [{ egroup: 10n, offset: 0, length: 16 }] });
  });

  it("reads another vDisk's extent group (a clone's shared blocks) but never writes it: not owned, not writable, and a write is a broken invariant", async () => {
    const md = new MemoryMd();
    const replicas = new Map<string, FakeReplica>([['1', { version: 1, bytes: new Uint8Array(64).fill(4) }]]);
    const entry: EgroupEntry = { vdisk: 99n, replicas: [{ disk: 1n, node: 'n1' }], version: 1, sizeBytes: 64, extents: [{ id: '99:0', offset: 0, length: 64, refs: 1 }] };
    await md.put('egroup', keys.egroup(12n), entry, 0);
    const sent: string[] = [];
    const groups = testExtentGroups(fakeBus(replicas, sent), md);
    expect(Array.from(await groups.read({ egroup: 12n, offset: 0, length: 64 }, 0, 3))).toEqual([4, 4, 4]);
    expect(await groups.owns(12n)).toBe(false);
    expect(await groups.writable(12n)).toBe(false);
    await expect(groups.write(12n, [{ offset: 0, data: new Uint8Array([1]) }], { added: [], freed: [] })).rejects.toThrow(/belongs to vdisk 99/);
    expect(sent).toEqual(['read disk 1']);
    expect((await md.get('egroup', keys.egroup(12n)))!.value).toEqual(entry);
  });

  it('a snapshot seals the open extent groups: the next extent goes to a new one, and one created at an older generation is never opened', async () => {
    const md = new MemoryMd();
    let generation = 0;
    let nextId = 20n;
    const groups = testExtentGroups(fakeBus(new Map(), []), md, {
      generation: () => generation,
      createEgroup: async () => {
        const id = nextId++;
        const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }], version: 0, sizeBytes: 0, ...(generation > 0 ? { gen: generation } : {}), extents: [] };
        return { id, entry, revision: await md.put('egroup', keys.egroup(id), entry, 0) };
      },
    });
    expect((await groups.allocate(0, 16)).egroup).toBe(20n);
    expect((await groups.allocate(1, 16)).egroup).toBe(20n);
    groups.seal();
    generation = 1;
    expect((await groups.allocate(2, 16)).egroup).toBe(21n);
    expect((await groups.allocate(3, 16)).egroup).toBe(21n);
    // A creation that read generation 1 finishing after a bump to 2: used once, never opened.
    const stale = testExtentGroups(fakeBus(new Map(), []), md, {
      generation: () => 2,
      createEgroup: async () => {
        const id = nextId++;
        const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }], version: 0, sizeBytes: 0, gen: 1, extents: [] };
        return { id, entry, revision: await md.put('egroup', keys.egroup(id), entry, 0) };
      },
    });
    const a = await stale.allocate(0, 16);
    const b = await stale.allocate(1, 16);
    expect(a.egroup).not.toBe(b.egroup);
  });

  it('fences the extent-group map update with the writer’s epoch: refused once the vDisk has a newer one', async () => {
    const md = new MemoryMd();
    const replicas = new Map<string, FakeReplica>([['1', { version: 2, bytes: new Uint8Array(64) }]]);
    const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }], version: 2, sizeBytes: 64, extents: [] };
    const created = await md.put('egroup', keys.egroup(9n), entry, 0);
    let epoch = 3;
    md.setOwnershipEpoch(7n, 3);
    const groups = testExtentGroups(fakeBus(replicas, []), md, { epoch: () => epoch });
    await groups.write(9n, [{ offset: 0, data: new Uint8Array([1]) }], { added: [], freed: [] });
    const written = await md.get('egroup', keys.egroup(9n));
    expect(written!.revision).toBeGreaterThan(created);
    // A new owner took the vDisk at epoch 4; this one still writes at 3.
    md.setOwnershipEpoch(7n, 4);
    await expect(groups.write(9n, [{ offset: 1, data: new Uint8Array([2]) }], { added: [], freed: [] })).rejects.toMatchObject({ code: ErrorCode.FENCED });
    expect(await md.get('egroup', keys.egroup(9n))).toEqual(written);
    // At the current epoch it goes through again (the fence is the epoch, nothing else).
    epoch = 4;
    await groups.write(9n, [{ offset: 1, data: new Uint8Array([2]) }], { added: [], freed: [] });
  });

  it('writes one extent group one request at a time, direct writes and drain alike, so versions never cross; the map records the version all replicas reached', async () => {
    const md = new MemoryMd();
    const replicas = new Map<string, FakeReplica>([
      ['1', { version: 0, bytes: new Uint8Array(64) }],
      ['2', { version: 0, bytes: new Uint8Array(64) }],
    ]);
    const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }, { disk: 2n, node: 'n2' }], version: 0, sizeBytes: 64, extents: [] };
    await md.put('egroup', keys.egroup(9n), entry, 0);
    const sent: string[] = [];
    // The first requests are the slowest: sent at once, later versions would arrive first.
    let calls = 0;
    const groups = testExtentGroups(fakeBus(replicas, sent, () => Math.max(0, 30 - 10 * calls++)), md);
    await Promise.all([
      groups.put(9n, [{ offset: 0, data: new Uint8Array([1]) }]),
      groups.put(9n, [{ offset: 1, data: new Uint8Array([2]) }]),
      groups.write(9n, [{ offset: 2, data: new Uint8Array([3]) }], { added: [], freed: [] }),
    ]);
    expect(sent).toEqual(['write disk 1 v1', 'write disk 2 v1', 'write disk 1 v2', 'write disk 2 v2', 'write disk 1 v3', 'write disk 2 v3']);
    for (const r of replicas.values()) expect(Array.from(r.bytes.subarray(0, 3))).toEqual([1, 2, 3]);
    expect((await md.get('egroup', keys.egroup(9n)))!.value.version).toBe(3);
  });

  it("writes pieces past the map's size of an extent group it did not create (a previous owner's staging extent, adopted), and records the size", async () => {
    const md = new MemoryMd();
    const replicas = new Map<string, FakeReplica>([['1', { version: 1, bytes: new Uint8Array(64) }]]);
    // The previous owner's direct writes reached the replica; the map still says 0 bytes.
    const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }], version: 0, sizeBytes: 0, extents: [] };
    await md.put('egroup', keys.egroup(9n), entry, 0);
    const groups = testExtentGroups(fakeBus(replicas, []), md);
    await groups.write(9n, [{ offset: 32, data: new Uint8Array(16).fill(4) }], { added: [{ block: 3, location: { egroup: 9n, offset: 16, length: 32 } }], freed: [] });
    expect((await md.get('egroup', keys.egroup(9n)))!.value).toMatchObject({ sizeBytes: 48, extents: [{ id: '7:3', offset: 16, length: 32, refs: 1 }] });
  });

  it('a direct-write lane waits for a new extent group only within putTimeoutMs of its start, then fails at once until it exists; drain and other lanes do not wait behind it', async () => {
    const md = new MemoryMd();
    const entry = (): EgroupEntry => ({ vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }], version: 0, sizeBytes: 0, extents: [] });
    // Extent group 20, lane 0's, is created only when the test says (a metadata shard killed); every other at once.
    let release: () => void = () => undefined;
    const stuck = new Promise<void>((resolve) => (release = resolve));
    let nextId = 20n;
    const groups = testExtentGroups(fakeBus(new Map(), []), md, {
      putTimeoutMs: 200,
      createEgroup: async () => {
        const id = nextId++;
        if (id === 20n) await stuck;
        return { id, entry: entry(), revision: 1 };
      },
    });
    const startedAt = Date.now();
    await expect(groups.allocate(0, 16, 0)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, message: expect.stringContaining('lane 0') });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(190);
    // The creation is still in flight: the next write of the lane is refused without waiting.
    const again = Date.now();
    await expect(groups.allocate(8, 16, 0)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(Date.now() - again).toBeLessThan(100);
    // Another lane and drain get their own extent groups meanwhile.
    expect(await groups.allocate(1, 16, 1)).toEqual({ egroup: 21n, offset: 0, length: 16 });
    expect(await groups.allocate(2, 16)).toEqual({ egroup: 22n, offset: 0, length: 16 });
    // Once created, lane 0's extent group takes writes at once.
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(await groups.allocate(16, 16, 0)).toEqual({ egroup: 20n, offset: 0, length: 16 });
    expect(await groups.allocate(24, 16, 0)).toEqual({ egroup: 20n, offset: 16, length: 16 });
  });

  it('a direct-write lane whose extent group cannot be created fails with that error, and the next write tries again', async () => {
    const md = new MemoryMd();
    let calls = 0;
    const groups = testExtentGroups(fakeBus(new Map(), []), md, {
      createEgroup: async () => {
        calls++;
        if (calls === 1) throw new StrataError(ErrorCode.NO_SPACE, 'no disk has room');
        return { id: 30n, entry: { vdisk: 7n, replicas: [{ disk: 1n, node: 'n1' }], version: 0, sizeBytes: 0, extents: [] }, revision: 1 };
      },
    });
    await expect(groups.allocate(0, 16, 3)).rejects.toMatchObject({ code: ErrorCode.NO_SPACE });
    expect(await groups.allocate(0, 16, 3)).toEqual({ egroup: 30n, offset: 0, length: 16 });
    expect(calls).toBe(2);
  });
});
