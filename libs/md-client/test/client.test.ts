// MdClient over a fake bus: each key goes to its partition's subject; gets are sent
// with retry and an attempt bound; a reply's value is checked against its map
// (INTERNAL if the shard broke the protocol); put and delete are resent only after
// a refusal that proves nothing was done (MD_NOT_HELD_HINT), never after other
// failures (FENCED included); a fence travels as the request's `fence` member.
// MemoryMd (./testing) keeps the shards' compare-and-set and fencing rules.
import type { Bus, RequestOptions } from '@strata/bus';
import { ErrorCode, StrataError } from '@strata/errors';
import { partitionOf, subjects } from '@strata/proto';
import { MdClient, mdKeyProblem, MD_NOT_HELD_HINT } from '@strata/md-client';
import { MemoryMd } from '@strata/md-client/testing';

type Responder = (subject: string, request: any, options: RequestOptions) => unknown;

function fakeBus(respond: Responder): { bus: Bus; calls: { subject: string; request: any; options: RequestOptions }[] } {
  const calls: { subject: string; request: any; options: RequestOptions }[] = [];
  const bus = {
    request: async (subject: string, request: unknown, schema: { parse(v: unknown): unknown }, options: RequestOptions) => {
      calls.push({ subject, request, options });
      return schema.parse(await respond(subject, request, options));
    },
  } as unknown as Bus;
  return { bus, calls };
}

describe('MdClient', () => {
  it('sends a get to the key’s partition with retry, and validates the value', async () => {
    const { bus, calls } = fakeBus(() => ({ value: { egroup: 12 }, revision: 4 }));
    const client = new MdClient(bus, { timeoutMs: 3_000 });
    await expect(client.get('extent', 'abc')).resolves.toEqual({ value: { egroup: 12n }, revision: 4 });
    expect(calls[0]).toMatchObject({ subject: subjects.md(partitionOf('abc'), 'get'), request: { map: 'extent', key: 'abc' }, options: { timeoutMs: 3_000, retry: true, attemptTimeoutMs: 2_000 } });
  });

  it('answers null for an absent key, and INTERNAL for a value that does not fit its map', async () => {
    await expect(new MdClient(fakeBus(() => ({ revision: 0 })).bus).get('vdisk', 'k')).resolves.toBeNull();
    await expect(new MdClient(fakeBus(() => ({ value: { egroup: -1 }, revision: 3 })).bus).get('extent', 'k')).rejects.toMatchObject({ code: ErrorCode.INTERNAL });
  });

  it('resends a put refused as not held, and returns the new revision', async () => {
    let n = 0;
    const { bus, calls } = fakeBus(() => {
      if (n++ < 2) throw new StrataError(ErrorCode.UNAVAILABLE, 'moving', { hint: MD_NOT_HELD_HINT });
      return { revision: 9 };
    });
    await expect(new MdClient(bus).put('extent', 'k', { egroup: 1n }, 0)).resolves.toBe(9);
    expect(calls).toHaveLength(3);
    expect(calls[0]).toMatchObject({ subject: subjects.md(partitionOf('k'), 'put'), request: { map: 'extent', key: 'k', value: { egroup: 1n }, revision: 0 } });
    expect(calls[0]!.options.retry).toBeUndefined();
  });

  it('never resends a write after a failure whose outcome is unknown', async () => {
    for (const err of [new StrataError(ErrorCode.TIMEOUT, 'slow'), new StrataError(ErrorCode.UNAVAILABLE, 'kv down'), new StrataError(ErrorCode.CONFLICT, 'stale')]) {
      const { bus, calls } = fakeBus(() => {
        throw err;
      });
      await expect(new MdClient(bus).delete('egroup', 'k', 5)).rejects.toBe(err);
      expect(calls).toHaveLength(1);
      expect(calls[0]!.request).toEqual({ map: 'egroup', key: 'k', revision: 5 });
    }
  });

  it('sends a write’s fence as the request’s fence member, and none without one', async () => {
    const { bus, calls } = fakeBus((subject) => (subject.endsWith('.delete') ? {} : { revision: 9 }));
    const client = new MdClient(bus);
    await client.put('vdisk', '12349.0', { blocks: {} }, 4, { fence: { vdisk: 12349n, epoch: 3 } });
    await client.delete('vdisk', '12349.1', undefined, { fence: { vdisk: 12349n, epoch: 3 } });
    await client.put('vdisk', '12349.2', { blocks: {} }, 0);
    expect(calls.map((c) => c.request)).toEqual([
      { map: 'vdisk', key: '12349.0', value: { blocks: {} }, revision: 4, fence: { vdisk: 12349n, epoch: 3 } },
      { map: 'vdisk', key: '12349.1', fence: { vdisk: 12349n, epoch: 3 } },
      { map: 'vdisk', key: '12349.2', value: { blocks: {} }, revision: 0 },
    ]);
  });

  it('never resends a write refused as FENCED', async () => {
    for (const write of [(c: MdClient) => c.put('extent', 'k', { egroup: 1n }, 0, { fence: { vdisk: 7n, epoch: 2 } }), (c: MdClient) => c.delete('extent', 'k', 3, { fence: { vdisk: 7n, epoch: 2 } })]) {
      const fenced = new StrataError(ErrorCode.FENCED, 'vdisk 7: epoch 2 < 3');
      const { bus, calls } = fakeBus(() => {
        throw fenced;
      });
      await expect(write(new MdClient(bus))).rejects.toBe(fenced);
      expect(calls).toHaveLength(1);
    }
  });

  it('gives up resending within its budget', async () => {
    const { bus } = fakeBus(() => {
      throw new StrataError(ErrorCode.UNAVAILABLE, 'moving', { hint: MD_NOT_HELD_HINT });
    });
    const started = Date.now();
    await expect(new MdClient(bus, { timeoutMs: 300 }).put('extent', 'k', { egroup: 1n }, 0)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('mdKeyProblem', () => {
  it('accepts the keys of the three maps and refuses what a KV key cannot hold', () => {
    for (const ok of ['12345.0', '67890', '4096-9f86d081884c7d65', 'a/b=c_d']) expect(mdKeyProblem(ok)).toBeUndefined();
    for (const bad of ['', 'x'.repeat(201), '1:2:3', 'a b', 'a*', '>', '.a', 'a.']) expect(mdKeyProblem(bad)).toBeDefined();
  });
});

describe('MemoryMd', () => {
  it('keeps the compare-and-set rules of the shards', async () => {
    const md = new MemoryMd();
    const r1 = await md.put('extent', 'k', { egroup: 1n }, 0);
    await expect(md.put('extent', 'k', { egroup: 2n }, 0)).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(md.put('extent', 'k', { egroup: -2 } as never, r1)).rejects.toMatchObject({ code: 'INVALID', message: expect.stringMatching(/value\.egroup/) });
    const r2 = await md.put('extent', 'k', { egroup: 2n }, r1);
    expect(await md.get('extent', 'k')).toEqual({ value: { egroup: 2n }, revision: r2 });
    await expect(md.delete('extent', 'k', r1)).rejects.toMatchObject({ code: 'CONFLICT' });
    await md.delete('extent', 'k', r2);
    expect(await md.get('extent', 'k')).toBeNull();
    expect(md.keys('extent')).toEqual([]);
  });

  it('refuses a write fenced at an epoch older than the vDisk’s, and changes nothing', async () => {
    const md = new MemoryMd();
    md.setOwnershipEpoch(7n, 3);
    const r1 = await md.put('vdisk', '7.0', { blocks: {} }, 0, { fence: { vdisk: 7n, epoch: 3 } });
    await expect(md.put('vdisk', '7.0', { blocks: { '1': { egroup: 9n, offset: 0, length: 64 } } }, r1, { fence: { vdisk: 7n, epoch: 2 } })).rejects.toMatchObject({ code: 'FENCED' });
    await expect(md.delete('vdisk', '7.0', undefined, { fence: { vdisk: 7n, epoch: 2 } })).rejects.toMatchObject({ code: 'FENCED' });
    expect(await md.get('vdisk', '7.0')).toEqual({ value: { blocks: {} }, revision: r1 });
    // A newer epoch accepted in a write fences the older one before the record says so.
    const r2 = await md.put('vdisk', '7.0', { blocks: {} }, r1, { fence: { vdisk: 7n, epoch: 4 } });
    await expect(md.put('vdisk', '7.0', { blocks: {} }, r2, { fence: { vdisk: 7n, epoch: 3 } })).rejects.toMatchObject({ code: 'FENCED' });
    // Unfenced writes (tools) are not checked.
    await md.put('vdisk', '7.0', { blocks: {} }, r2);
  });
});
