// One copy against fake extent stores (the store's version rule: a write applies only
// above the replica's version), the in-memory metadata maps and a fake owner (which
// records a copy as the vdisk-controller does: the source's version checked, then the
// entry by compare-and-set): the bytes arrive whole at the source's version, the
// owner records the new replica in the lost one's place, a changed entry is planned
// again instead of overwritten, a source written during the copy, or before the owner
// records it, fails it; without an owner the copy is recorded here and one written
// between the copy's last check and the record rolls the record back; a move deletes
// the replica it replaced only once the record stands.
import type { Bus } from '@strata/bus';
import { createLogger } from '@strata/log';
import { ErrorCode, StrataError } from '@strata/errors';
import type { TypedBucket } from '@strata/kv';
import { MemoryMd } from '@strata/md-client/testing';
import { keys, type EgroupEntry, type VdcRecordCopyRequest, type vdiskOwnership } from '@strata/proto';
import { Copier } from '../src/copier';
import type { CopyAction, EgroupRow } from '../src/plan';

interface FakeReplica {
  version: number;
  sizeBytes: number;
  bytes: Uint8Array;
  epoch?: number;
}

/** The owner's side of `record-copy` (ExtentGroups.recordCopy): the source as the copy read it, or CONFLICT; then the entry by compare-and-set. */
async function ownerRecords(md: MemoryMd, replicas: Map<bigint, FakeReplica>, req: VdcRecordCopyRequest): Promise<{ revision: number }> {
  const now = replicas.get(req.source.disk);
  if ((now?.version ?? 0) !== req.sourceVersion || (now?.sizeBytes ?? 0) !== req.sourceSizeBytes) throw new StrataError(ErrorCode.CONFLICT, 'the source was written after the copy read it');
  return { revision: await md.put('egroup', keys.egroup(req.egroup), req.entry, req.revision) };
}

function fakeStores(replicas: Map<bigint, FakeReplica>, sent: string[], onRead: () => void = () => undefined, md?: MemoryMd): Bus {
  const request = (subject: string, req: Record<string, unknown>): Promise<unknown> => {
    const op = subject.split('.').pop();
    if (op === 'record-copy') {
      sent.push(`record-copy at ${subject.split('.')[2]} epoch ${String(req.epoch)}`);
      if (md === undefined) return Promise.reject(new StrataError(ErrorCode.UNAVAILABLE, 'no owner in this test'));
      sent.push(`stat ${String((req.source as { disk: bigint }).disk)}`);
      return ownerRecords(md, replicas, req as unknown as VdcRecordCopyRequest);
    }
    const disk = req.disk as bigint;
    const replica = replicas.get(disk);
    sent.push(`${op} ${disk}${op === 'write' ? ` v${String(req.version)}` : ''}`);
    if (op === 'delete') {
      replicas.delete(disk);
      return Promise.resolve({});
    }
    if (op === 'stat') return replica === undefined ? Promise.reject(new StrataError(ErrorCode.NOT_FOUND, 'no replica')) : Promise.resolve({ version: replica.version, sizeBytes: replica.sizeBytes });
    if (op === 'read') {
      onRead();
      const offset = req.offset as number;
      const out = new Uint8Array(req.length as number);
      out.set(replica!.bytes.subarray(offset, offset + out.length));
      return Promise.resolve({ data: out });
    }
    const target = replica ?? { version: 0, sizeBytes: 0, bytes: new Uint8Array(req.sizeBytes as number) };
    if (target.version >= (req.version as number)) return Promise.reject(new StrataError(ErrorCode.CONFLICT, `at version ${target.version}`));
    for (const p of req.pieces as Array<{ offset: number; data: Uint8Array }>) target.bytes.set(p.data, p.offset);
    target.version = req.version as number;
    target.sizeBytes = req.sizeBytes as number;
    target.epoch = req.epoch as number;
    replicas.set(disk, target);
    return Promise.resolve({ version: target.version, crc32c: 0 });
  };
  return { request } as unknown as Bus;
}

/** vDisk 7 is owned by n2 at epoch 5. */
const owned = { get: () => Promise.resolve({ key: 'vdisk.7', revision: 3, value: { owner: 'n2', epoch: 5, volunteers: [], drained: 0 } }) } as unknown as TypedBucket<typeof vdiskOwnership>;
/** vDisk 7 was never opened: nobody writes it. */
const unowned = { get: () => Promise.resolve(null) } as unknown as TypedBucket<typeof vdiskOwnership>;
const entry: EgroupEntry = { vdisk: 7n, replicas: [{ disk: 101n, node: 'n1' }, { disk: 102n, node: 'n2' }], version: 7, sizeBytes: 10_000, extents: [] };
const source = (): FakeReplica => ({ version: 7, sizeBytes: 10_000, bytes: Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7) % 251) });

function action(revision: number): CopyAction {
  return { egroup: 9n, revision, vdisk: 7n, source: { disk: 102n, node: 'n2' }, lost: { disk: 101n, node: 'n1' }, target: { disk: 103n, node: 'n3' }, bytes: 10_000, left: 1, drop: false, replicationFactor: 2, reason: 'node n1 dead' };
}

function copier(bus: Bus, md: MemoryMd, replan: (row: EgroupRow) => Promise<CopyAction | undefined> = () => Promise.resolve(undefined), own = unowned): Copier {
  return new Copier({ bus, md, own, log: createLogger({ service: 'test', level: 'silent' }), chunkBytes: 4096, timeoutMs: 1_000, pace: () => Promise.resolve(), leading: () => true, replan });
}

describe('a copy', () => {
  it('writes the source replica whole to the target in pieces, the versions rising to the source’s, and has the owner record it in the lost replica’s place', async () => {
    const md = new MemoryMd();
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const replicas = new Map([[102n, source()], [103n, { version: 9, sizeBytes: 10, bytes: new Uint8Array(10) }]]);
    const sent: string[] = [];
    const done = await copier(fakeStores(replicas, sent, undefined, md), md, undefined, owned).run(action(revision));
    // A leftover of an earlier, interrupted copy on the target is removed first; the
    // owner checks the source again when it records.
    expect(sent).toEqual(['stat 102', 'delete 103', 'read 102', 'write 103 v5', 'read 102', 'write 103 v6', 'read 102', 'write 103 v7', 'stat 102', 'record-copy at n2 epoch 5', 'stat 102']);
    expect(replicas.get(103n)).toMatchObject({ version: 7, sizeBytes: 10_000, epoch: 5 });
    expect(replicas.get(103n)!.bytes).toEqual(replicas.get(102n)!.bytes);
    expect(done?.bytes).toBe(10_000);
    expect((await md.get('egroup', keys.egroup(9n)))!.value.replicas).toEqual([{ disk: 103n, node: 'n3' }, { disk: 102n, node: 'n2' }]);
  });

  it('reads the next piece while one is written, never two of either at once, and writes them in order', async () => {
    const md = new MemoryMd();
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const replicas = new Map([[102n, source()]]);
    const sent: string[] = [];
    const inner = fakeStores(replicas, sent);
    const running = { read: 0, write: 0 };
    const most = { read: 0, write: 0, both: 0 };
    const bus = {
      request: async (subject: string, req: Record<string, unknown>): Promise<unknown> => {
        const op = subject.split('.').pop();
        if (op !== 'read' && op !== 'write') return (inner.request as (s: string, r: unknown) => Promise<unknown>)(subject, req);
        running[op]++;
        most[op] = Math.max(most[op], running[op]);
        most.both = Math.max(most.both, running.read + running.write);
        await new Promise((resolve) => setTimeout(resolve, op === 'write' ? 5 : 2));
        running[op]--;
        return (inner.request as (s: string, r: unknown) => Promise<unknown>)(subject, req);
      },
    } as unknown as Bus;
    await copier(bus, md).run(action(revision));
    expect(most).toEqual({ read: 1, write: 1, both: 2 });
    expect(sent.filter((s) => s.startsWith('write'))).toEqual(['write 103 v5', 'write 103 v6', 'write 103 v7']);
    expect(replicas.get(103n)!.bytes).toEqual(replicas.get(102n)!.bytes);
  });

  it('fails when a piece cannot be read, after the write in flight, and records nothing', async () => {
    const md = new MemoryMd();
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const replicas = new Map([[102n, source()]]);
    const inner = fakeStores(replicas, []);
    let reads = 0;
    const bus = {
      request: (subject: string, req: Record<string, unknown>): Promise<unknown> =>
        subject.endsWith('.read') && ++reads === 2 ? Promise.reject(new StrataError(ErrorCode.CHECKSUM, 'slice 1 failed its check')) : (inner.request as (s: string, r: unknown) => Promise<unknown>)(subject, req),
    } as unknown as Bus;
    await expect(copier(bus, md).run(action(revision))).rejects.toMatchObject({ code: ErrorCode.CHECKSUM });
    expect((await md.get('egroup', keys.egroup(9n)))!.value.replicas).toEqual(entry.replicas);
  });

  it('plans again when the entry changed since the plan, and never records a replica twice', async () => {
    const md = new MemoryMd();
    const planned = await md.put('egroup', keys.egroup(9n), entry, 0);
    // Another master replaced the lost replica meanwhile, on the same target node.
    await md.put('egroup', keys.egroup(9n), { ...entry, replicas: [{ disk: 103n, node: 'n3' }, { disk: 102n, node: 'n2' }] }, planned);
    const before = await md.get('egroup', keys.egroup(9n));
    const replanned: EgroupRow[] = [];
    const result = await copier(fakeStores(new Map([[102n, source()]]), []), md, (row) => {
      replanned.push(row);
      return Promise.resolve(undefined);
    }).run(action(planned));
    expect(result).toBeUndefined();
    expect(replanned.map((r) => r.entry.replicas.map((x) => x.node))).toEqual([['n3', 'n2']]);
    expect(await md.get('egroup', keys.egroup(9n))).toEqual(before);
  });

  it('records the copy the fresh entry needs after a change that still leaves it under-replicated', async () => {
    const md = new MemoryMd();
    const planned = await md.put('egroup', keys.egroup(9n), entry, 0);
    // The owner recorded a drain meanwhile: same replicas, a newer revision.
    const now = await md.put('egroup', keys.egroup(9n), { ...entry, version: 8 }, planned);
    const replicas = new Map([[102n, { ...source(), version: 8 }]]);
    const done = await copier(fakeStores(replicas, []), md, (row) => Promise.resolve({ ...action(row.revision) })).run(action(planned));
    expect(done?.row.revision).toBeGreaterThan(now);
    expect((await md.get('egroup', keys.egroup(9n)))!.value).toMatchObject({ version: 8, replicas: [{ disk: 103n, node: 'n3' }, { disk: 102n, node: 'n2' }] });
  });

  it('fails, recording nothing, when the source replica was written during the copy', async () => {
    const md = new MemoryMd();
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const replicas = new Map([[102n, source()]]);
    let reads = 0;
    const bus = fakeStores(replicas, [], () => {
      if (++reads === 2) replicas.get(102n)!.version = 8;
    });
    await expect(copier(bus, md).run(action(revision))).rejects.toMatchObject({ code: ErrorCode.CONFLICT, message: expect.stringContaining('changed during the copy') });
    expect((await md.get('egroup', keys.egroup(9n)))!.value).toEqual(entry);
  });

  it("plans again, recording nothing, when the owner finds the source written after the copy's last check", async () => {
    const md = new MemoryMd();
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const replicas = new Map([[102n, source()]]);
    const sent: string[] = [];
    const inner = fakeStores(replicas, sent, undefined, md);
    // The owner's write lands on the source between the copy's last stat and the record.
    const bus = {
      request: (subject: string, req: Record<string, unknown>): Promise<unknown> => {
        if (subject.endsWith('.record-copy')) replicas.get(102n)!.version = 8;
        return (inner.request as (s: string, r: unknown) => Promise<unknown>)(subject, req);
      },
    } as unknown as Bus;
    const replanned: EgroupRow[] = [];
    const result = await copier(bus, md, (row) => {
      replanned.push(row);
      return Promise.resolve(undefined);
    }, owned).run(action(revision));
    expect(result).toBeUndefined();
    expect(replanned).toHaveLength(1);
    expect(await md.get('egroup', keys.egroup(9n))).toEqual({ value: entry, revision });
  });

  it('asks the owner again once when the vDisk moved between reading its owner and asking (NOT_OWNER)', async () => {
    const md = new MemoryMd();
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const replicas = new Map([[102n, source()]]);
    const sent: string[] = [];
    const inner = fakeStores(replicas, sent, undefined, md);
    let asked = 0;
    const bus = {
      request: (subject: string, req: Record<string, unknown>): Promise<unknown> =>
        subject.endsWith('.record-copy') && ++asked === 1 ? Promise.reject(new StrataError(ErrorCode.NOT_OWNER, 'served at epoch 6')) : (inner.request as (s: string, r: unknown) => Promise<unknown>)(subject, req),
    } as unknown as Bus;
    const done = await copier(bus, md, undefined, owned).run(action(revision));
    expect(asked).toBe(2);
    expect(done?.row.entry.replicas).toEqual([{ disk: 103n, node: 'n3' }, { disk: 102n, node: 'n2' }]);
  });

  it('without an owner, records the copy itself by compare-and-set, then asks the source once more', async () => {
    const md = new MemoryMd();
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const replicas = new Map([[102n, source()]]);
    const sent: string[] = [];
    const done = await copier(fakeStores(replicas, sent), md).run(action(revision));
    expect(sent.slice(-2)).toEqual(['stat 102', 'stat 102']);
    expect(replicas.get(103n)).toMatchObject({ version: 7, epoch: 0 });
    expect(await md.get('egroup', keys.egroup(9n))).toEqual({ value: { ...entry, replicas: [{ disk: 103n, node: 'n3' }, { disk: 102n, node: 'n2' }] }, revision: done!.row.revision });
  });

  it('without an owner, rolls the record back when a write reaches the source after the last check and before the compare-and-set', async () => {
    const md = new MemoryMd();
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const replicas = new Map([[102n, source()]]);
    const sent: string[] = [];
    // The owner's write lands on every replica its entry names (the source, not the new
    // one) right when the copy records: after its last stat, before its compare-and-set.
    const put = md.put.bind(md);
    md.put = ((...args: Parameters<MemoryMd['put']>) => {
      if (args[0] === 'egroup' && (args[2] as EgroupEntry).replicas.some((r) => r.disk === 103n)) replicas.get(102n)!.version = 8;
      return put(...args);
    }) as MemoryMd['put'];
    await expect(copier(fakeStores(replicas, sent), md).run(action(revision))).rejects.toMatchObject({ code: ErrorCode.CONFLICT, message: expect.stringContaining('rolled back') });
    expect((await md.get('egroup', keys.egroup(9n)))!.value).toEqual(entry);
    expect(replicas.has(103n)).toBe(false);
    expect(sent.slice(-2)).toEqual(['stat 102', 'delete 103']);
  });

  it('moves a replica off a draining disk: the new one recorded in its place, then its file deleted', async () => {
    const md = new MemoryMd();
    const revision = await md.put('egroup', keys.egroup(9n), entry, 0);
    const replicas = new Map([[101n, source()], [102n, source()]]);
    const sent: string[] = [];
    const move: CopyAction = { ...action(revision), lost: { disk: 101n, node: 'n1' }, left: 2, drop: true, reason: 'disk 101: node n1 is draining' };
    const done = await copier(fakeStores(replicas, sent, undefined, md), md, undefined, owned).run(move);
    expect(done?.row.entry.replicas).toEqual([{ disk: 103n, node: 'n3' }, { disk: 102n, node: 'n2' }]);
    expect(sent.slice(-3)).toEqual(['record-copy at n2 epoch 5', 'stat 102', 'delete 101']);
    expect(replicas.has(101n)).toBe(false);
    expect(replicas.get(103n)!.bytes).toEqual(replicas.get(102n)!.bytes);
  });
});
