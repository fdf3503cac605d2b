// A partition's requests over an in-memory store: a key that hashes to another
// partition, a key KV cannot hold, and a value that does not fit its map are INVALID
// (naming the field) and
// change nothing; put is create-or-compare-and-set; a read after a write is served
// from the cache; a failed write and a delete leave nothing cached, so the next read
// goes to the store; a put or delete fenced at an epoch older than its vDisk's is
// FENCED and changes nothing, store and cache alike.
import { ErrorCode, StrataError } from '@strata/errors';
import { MdFenceCheck } from '@strata/md-client';
import { MD_PARTITIONS, partitionOf, type MdMap } from '@strata/proto';
import { MdCache } from '../src/cache';
import { PartitionRequests, validateValue } from '../src/requests';
import type { MdStore } from '../src/store';
import type { MapWatch } from '../src/watch';

class FakeStore {
  readonly data = new Map<string, { value: unknown; revision: number }>();
  seq = 0;
  reads = 0;
  async get(map: MdMap, key: string) {
    this.reads++;
    return this.data.get(`${map}/${key}`) ?? null;
  }
  async put(map: MdMap, key: string, value: unknown, revision: number) {
    const cur = this.data.get(`${map}/${key}`);
    if ((revision === 0 && cur !== undefined) || (revision !== 0 && cur?.revision !== revision)) throw new StrataError(ErrorCode.CONFLICT, 'stale');
    this.data.set(`${map}/${key}`, { value, revision: ++this.seq });
    return this.seq;
  }
  async delete(map: MdMap, key: string, revision?: number) {
    const cur = this.data.get(`${map}/${key}`);
    if (revision !== undefined && cur?.revision !== revision) throw new StrataError(ErrorCode.CONFLICT, 'stale');
    this.data.delete(`${map}/${key}`);
    this.seq++;
  }
}

function setup() {
  const store = new FakeStore();
  const cache = new MdCache(100);
  const watch = { wrote: jest.fn() } as unknown as MapWatch;
  /** vDisk -> the epoch of its ownership record, as the shard's watch would have it. */
  const ownership = new Map<bigint, number>();
  const fence = new MdFenceCheck((vdisk) => ownership.get(vdisk));
  const requests = new PartitionRequests(store as unknown as MdStore, cache, { vdisk: watch, extent: watch, egroup: watch }, fence);
  return { store, cache, requests, ownership };
}

const key = 'extent-key-1';
const p = partitionOf(key);

describe('partition requests', () => {
  it('refuses a key of another partition and a value that does not fit its map, naming the field', async () => {
    const { requests, store } = setup();
    await expect(requests.get((p + 1) % MD_PARTITIONS, { map: 'extent', key })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/partition/) });
    await expect(requests.put(p, { map: 'extent', key, value: { egroup: -1 }, revision: 0 })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/value\.egroup/) });
    await expect(requests.put(p, { map: 'egroup', key, value: { egroup: 1n }, revision: 0 })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/^egroup map: value/) });
    const badKey = 'a:b';
    await expect(requests.get(partitionOf(badKey), { map: 'extent', key: badKey })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/letters, digits/) });
    expect(store.data.size).toBe(0);
  });

  it('validates each map: a vDisk row, an extent entry and an extent group entry', () => {
    expect(validateValue('vdisk', { blocks: { '37': { egroup: 5n, offset: 0, length: 4096 } } })).toBeDefined();
    expect(() => validateValue('vdisk', { blocks: { x: { egroup: 5n, offset: 0, length: 4096 } } })).toThrow(/value\.blocks/);
    expect(() => validateValue('egroup', { vdisk: 1n, replicas: [], version: 0, sizeBytes: 0, extents: [] })).toThrow(/value\.replicas/);
  });

  it('creates with revision 0, then compare-and-sets; a read after a write comes from the cache', async () => {
    const { requests, store } = setup();
    expect(await requests.get(p, { map: 'extent', key })).toEqual({ revision: 0 });
    const r1 = (await requests.put(p, { map: 'extent', key, value: { egroup: 7 }, revision: 0 })).revision;
    await expect(requests.put(p, { map: 'extent', key, value: { egroup: 8 }, revision: 0 })).rejects.toMatchObject({ code: 'CONFLICT' });
    const reads = store.reads;
    expect(await requests.get(p, { map: 'extent', key })).toEqual({ value: { egroup: 7n }, revision: r1 });
    const r2 = (await requests.put(p, { map: 'extent', key, value: { egroup: 9 }, revision: r1 })).revision;
    expect(await requests.get(p, { map: 'extent', key })).toEqual({ value: { egroup: 9n }, revision: r2 });
    expect(store.reads).toBe(reads + 1); // only the read after the failed (CONFLICT) put went to the store
  });

  it('a delete leaves nothing cached; a stale delete is CONFLICT', async () => {
    const { requests } = setup();
    const r1 = (await requests.put(p, { map: 'extent', key, value: { egroup: 7 }, revision: 0 })).revision;
    await expect(requests.delete(p, { map: 'extent', key, revision: r1 + 100 })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect((await requests.get(p, { map: 'extent', key })).revision).toBe(r1);
    await requests.delete(p, { map: 'extent', key, revision: r1 });
    expect(await requests.get(p, { map: 'extent', key })).toEqual({ revision: 0 });
  });

  it('refuses a put and a delete fenced below the vDisk’s epoch with FENCED, changing nothing, and checks no unfenced write', async () => {
    const { requests, store, ownership } = setup();
    ownership.set(7n, 3);
    const r1 = (await requests.put(p, { map: 'extent', key, value: { egroup: 1 }, revision: 0, fence: { vdisk: 7n, epoch: 3 } })).revision;
    // Cached by that put: a stale cache would show the refused value below.
    expect(await requests.get(p, { map: 'extent', key })).toEqual({ value: { egroup: 1n }, revision: r1 });
    const seq = store.seq;
    await expect(requests.put(p, { map: 'extent', key, value: { egroup: 2 }, revision: r1, fence: { vdisk: 7n, epoch: 2 } })).rejects.toMatchObject({
      code: ErrorCode.FENCED,
      message: expect.stringMatching(/vdisk 7\b.*epoch 2\b.*epoch is 3\b/),
    });
    await expect(requests.delete(p, { map: 'extent', key, fence: { vdisk: 7n, epoch: 2 } })).rejects.toMatchObject({ code: ErrorCode.FENCED });
    expect(store.seq).toBe(seq);
    expect(await requests.get(p, { map: 'extent', key })).toEqual({ value: { egroup: 1n }, revision: r1 });
    // An operator's tool writes without a fence.
    await requests.put(p, { map: 'extent', key, value: { egroup: 3 }, revision: r1 });
  });
});
