// The pure parts of the extent store: where a write lands in an extent table, the
// sidecar's own consistency checks, and the two concurrency limits (per-key mutex,
// semaphore), driven with promises the test resolves by hand.
import { encode, decode } from '@strata/codec';
import { KeyedMutex, Semaphore } from '../src/concurrency';
import { findExtent, placeExtent, tableProblem, withExtent, type Extent } from '../src/extents';
import { sidecarSchema } from '../src/sidecar';

const table: Extent[] = [
  { offset: 0, length: 4096, crc32c: 1 },
  { offset: 8192, length: 4096, crc32c: 2 },
];

describe('extent table', () => {
  it('places a write in a gap, over an identical range, or refuses an overlap', () => {
    expect(placeExtent(table, { offset: 4096, length: 4096 })).toEqual({ kind: 'insert', index: 1 });
    expect(placeExtent(table, { offset: 12288, length: 1 })).toEqual({ kind: 'insert', index: 2 });
    expect(placeExtent([], { offset: 100, length: 1 })).toEqual({ kind: 'insert', index: 0 });
    expect(placeExtent(table, { offset: 8192, length: 4096 })).toEqual({ kind: 'replace', index: 1 });
    expect(placeExtent(table, { offset: 8192, length: 2048 })).toEqual({ kind: 'overlap', with: table[1] });
    expect(placeExtent(table, { offset: 2048, length: 4096 })).toEqual({ kind: 'overlap', with: table[0] });
    expect(placeExtent(table, { offset: 4096, length: 4097 })).toEqual({ kind: 'overlap', with: table[1] });
    expect(placeExtent(table, { offset: 0, length: 16384 })).toEqual({ kind: 'overlap', with: table[0] });
    expect(placeExtent(table, { offset: 4096, length: 16384 })).toEqual({ kind: 'overlap', with: table[1] });
  });

  it('finds only exact extents and keeps the table sorted', () => {
    expect(findExtent(table, 8192, 4096)).toBe(1);
    expect(findExtent(table, 8192, 4095)).toBe(-1);
    expect(findExtent(table, 4096, 4096)).toBe(-1);
    const e = { offset: 4096, length: 4096, crc32c: 3 };
    const next = withExtent(table, e, placeExtent(table, e));
    expect(next.map((x) => x.offset)).toEqual([0, 4096, 8192]);
    expect(tableProblem(next)).toBeUndefined();
    expect(table).toHaveLength(2);
  });

  it('names what is wrong with a table', () => {
    expect(tableProblem([{ offset: 0, length: 10, crc32c: 0 }, { offset: 5, length: 10, crc32c: 0 }])).toBe('extent 1 at offset 5 overlaps the one before (which ends at 10)');
    expect(tableProblem([{ offset: 0, length: 0, crc32c: 0 }])).toBe('extent 0 at offset 0 is empty');
  });
});

describe('sidecar schema', () => {
  const good = { format: 1, vdisk: 2n ** 63n, epoch: 3, version: 2, sizeBytes: 12288, extents: table, last: table[1] };

  it('round-trips through CBOR with a 64-bit vDisk id', () => {
    expect(decode(encode(good), sidecarSchema)).toEqual(good);
  });

  it('refuses a sidecar that contradicts itself', () => {
    expect(() => decode(encode({ ...good, sizeBytes: 1 }), sidecarSchema)).toThrow(/sizeBytes: is 1 but the extents end at 12288/);
    expect(() => decode(encode({ ...good, last: { offset: 1, length: 1, crc32c: 1 } }), sidecarSchema)).toThrow(/last: is not in the extent table/);
    expect(() => decode(encode({ ...good, format: 2 }), sidecarSchema)).toThrow(/format/);
    expect(() => decode(encode({ ...good, version: 0 }), sidecarSchema)).toThrow(/version: must be at least 1/);
  });
});

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('KeyedMutex', () => {
  it('runs one holder per key in arrival order, and different keys at once', async () => {
    const mutex = new KeyedMutex();
    const order: string[] = [];
    const gateA = deferred();
    const a1 = mutex.run('a', async () => {
      order.push('a1 start');
      await gateA.promise;
      order.push('a1 end');
    });
    const a2 = mutex.run('a', async () => void order.push('a2'));
    // Key b runs while a1 still holds a: it opens a1's gate.
    const b = mutex.run('b', async () => {
      order.push('b');
      gateA.resolve();
    });
    await Promise.all([a1, a2, b]);
    expect(order).toEqual(['a1 start', 'b', 'a1 end', 'a2']);
    expect(mutex.activeKeys).toBe(0);
  });

  it('releases a key when its holder throws', async () => {
    const mutex = new KeyedMutex();
    await expect(mutex.run('k', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(mutex.run('k', async () => 7)).resolves.toBe(7);
    expect(mutex.activeKeys).toBe(0);
  });
});

describe('Semaphore', () => {
  it('admits at most `limit` holders and hands slots over in arrival order', async () => {
    const semaphore = new Semaphore(2);
    const gates = [deferred(), deferred(), deferred()];
    const started: number[] = [];
    const runs = gates.map((gate, i) =>
      semaphore.run(async () => {
        started.push(i);
        await gate.promise;
      }),
    );
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1]);
    expect(semaphore.inUse).toBe(2);
    gates[1]!.resolve();
    await runs[1];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    gates[0]!.resolve();
    gates[2]!.resolve();
    await Promise.all(runs);
    expect(semaphore.inUse).toBe(0);
  });
});
