// The storage engine of one disk (sidecar format 3), on real temporary directories (no NATS):
// pieces written in place at unaligned offsets across slice boundaries, overlapping
// pieces (later wins), zeros pieces, growth with sparse reads of zeros, reads of any
// sub-range checked against a model byte array (also with seeded random writes:
// replay a failure with SEED=<seed>), the version rules (apply below, retry at equal,
// CONFLICT otherwise), fencing by epoch, ownership, capacity, INVALID requests that
// change nothing, a flipped byte giving CHECKSUM for its slice only (also to a write
// over part of it), recovery after reopening (temp files, orphans, long data files,
// a torn sidecar update, format-1 sidecars), the open-file bound, and per-egroup ordering and limits.
import { appendFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { encode } from '@strata/codec';
import { EG_READ_BYTES_MAX, EG_WRITE_PIECES_MAX, type EgPiece } from '@strata/proto';
import { seededRandom } from '../../../test/harness/random';
import { DiskStore, type DiskStoreOptions, type EgroupWrite } from '../src/disk-store';
import { RECORD_HEADER_BYTES, decodeSidecarFile, slotOffset } from '../src/sidecar';

const DISK = 77n;
const VDISK = 5n;
const KiB = 1024;
const MiB = 1024 * KiB;
/** Small slices keep the files of most tests small; one test uses the default. */
const S = 4 * KiB;

let root: string;
const stores: DiskStore[] = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-estore-unit-'));
});

afterEach(async () => {
  // Close every store a test opened (each holds open data files), then remove the disk.
  await Promise.all(stores.splice(0).map((s) => s.close()));
  await rm(root, { recursive: true, force: true });
});

async function openStore(options: Partial<DiskStoreOptions> = {}): Promise<DiskStore> {
  const store = await DiskStore.open({ diskId: DISK, path: root, capacityBytes: 64 * MiB, sliceBytes: S, ...options });
  stores.push(store);
  return store;
}

/** Bytes that differ with `seed`, so a test can tell one write's data from another's (never zero). */
function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = ((i * 31 + seed * 7) % 255) + 1;
  return out;
}

const data = (offset: number, bytes: Uint8Array): EgPiece => ({ offset, data: bytes });
const zeros = (offset: number, length: number): EgPiece => ({ offset, zeros: length });

function write(egroup: bigint, version: number, sizeBytes: number, pieces: EgPiece[], epoch = 1, vdisk = VDISK): EgroupWrite {
  return { egroup, vdisk, epoch, version, sizeBytes, pieces };
}

/** A replica's bytes as the test expects them: pieces applied in order, growth as zeros. */
class Model {
  bytes = new Uint8Array(0);
  apply(sizeBytes: number, pieces: EgPiece[]): void {
    if (sizeBytes > this.bytes.length) {
      const grown = new Uint8Array(sizeBytes);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    for (const p of pieces) {
      if ('data' in p) this.bytes.set(p.data, p.offset);
      else this.bytes.fill(0, p.offset, p.offset + p.zeros);
    }
  }
  range(offset: number, length: number): Buffer {
    return Buffer.from(this.bytes.subarray(offset, offset + length));
  }
}

/** CRC32C of the pieces' bytes in order, zeros included, computed the slow way. */
function expectedCrc(pieces: EgPiece[]): number {
  return crc32c(Buffer.concat(pieces.map((p) => ('data' in p ? Buffer.from(p.data) : Buffer.alloc(p.zeros)))));
}

async function readAll(store: DiskStore, egroup: bigint): Promise<Buffer> {
  const { sizeBytes } = await store.stat(egroup);
  return Buffer.from(await store.read({ egroup, offset: 0, length: sizeBytes }));
}

const egroupsDir = (): string => join(root, 'egroups');
const dataFile = (egroup: bigint): string => join(egroupsDir(), `${egroup}.eg`);

async function flipByte(egroup: bigint, offset: number): Promise<void> {
  const bytes = await readFile(dataFile(egroup));
  bytes[offset]! ^= 0x01;
  await writeFile(dataFile(egroup), bytes);
}

describe('writes of pieces', () => {
  it('writes a piece at an unaligned offset across slice boundaries, leaving the rest of the replica as zeros', async () => {
    const store = await openStore();
    const a = pattern(10_000, 1);
    expect(await store.write(write(10n, 1, 20_000, [data(1000, a)]))).toEqual({ version: 1, crc32c: crc32c(a) });
    const model = new Model();
    model.apply(20_000, [data(1000, a)]);
    expect(await store.stat(10n)).toEqual({ version: 1, sizeBytes: 20_000 });
    expect((await readAll(store, 10n)).equals(model.range(0, 20_000))).toBe(true);
    // Sub-ranges: inside one slice, across a boundary, the zeros before and after.
    for (const [offset, length] of [
      [1000, 1],
      [4000, 200],
      [4095, 2],
      [0, 1000],
      [10_999, 2],
      [12_000, 8000],
      [19_999, 1],
    ] as const) {
      expect(Buffer.from(await store.read({ egroup: 10n, offset, length })).equals(model.range(offset, length))).toBe(true);
    }
    // Slices 0..2 were written; the file is sparse beyond them and never past sizeBytes.
    expect((await stat(dataFile(10n))).size).toBe(3 * S);
    expect(store.usedBytes).toBe(20_000);
    expect((await readdir(egroupsDir())).sort()).toEqual(['10.eg', '10.meta']);
  });

  it('applies overlapping pieces in order (later wins) and writes zeros for zeros pieces', async () => {
    const store = await openStore();
    const model = new Model();
    const first = [data(0, pattern(3 * S, 1))];
    await store.write(write(11n, 1, 3 * S, first));
    model.apply(3 * S, first);
    const pieces = [data(100, pattern(6000, 2)), data(3000, pattern(2000, 3)), zeros(4000, 500), data(4200, pattern(10, 4)), zeros(9000, 2000)];
    expect(await store.write(write(11n, 2, 3 * S, pieces))).toEqual({ version: 2, crc32c: expectedCrc(pieces) });
    model.apply(3 * S, pieces);
    expect((await readAll(store, 11n)).equals(model.range(0, 3 * S))).toBe(true);
    // Spot checks that do not rely on the model: a zeroed byte, and one of the later piece.
    expect([...(await store.read({ egroup: 11n, offset: 4100, length: 1 }))]).toEqual([0]);
    expect([...(await store.read({ egroup: 11n, offset: 4200, length: 1 }))]).toEqual([pattern(10, 4)[0]]);
  });

  it('grows the replica when asked, reading never-written bytes as zeros', async () => {
    const store = await openStore();
    const model = new Model();
    const steps: Array<[number, EgPiece[]]> = [
      [5000, [data(0, pattern(5000, 1))]],
      // Growth far beyond the data written: the gap is a hole.
      [100_000, [data(90_001, pattern(5000, 2))]],
      // A zeros piece that also grows the replica.
      [200_000, [zeros(150_000, 50_000)]],
    ];
    let version = 0;
    for (const [sizeBytes, pieces] of steps) {
      await store.write(write(12n, ++version, sizeBytes, pieces));
      model.apply(sizeBytes, pieces);
      expect(await store.stat(12n)).toEqual({ version, sizeBytes });
    }
    expect((await readAll(store, 12n)).equals(model.range(0, 200_000))).toBe(true);
    expect(Buffer.from(await store.read({ egroup: 12n, offset: 5000, length: 85_001 })).equals(Buffer.alloc(85_001))).toBe(true);
    expect(store.usedBytes).toBe(200_000);
  });

  it('splits a large write into runs and checks slices with the default 32 KiB slices', async () => {
    const store = await openStore({ sliceBytes: undefined });
    const model = new Model();
    // 3 MiB at an unaligned offset: several 1 MiB runs, partial slices at both ends.
    const big = [data(12_345, pattern(3 * MiB, 9))];
    await store.write(write(13n, 1, 4 * MiB, big));
    model.apply(4 * MiB, big);
    const small = [data(1 * MiB + 7, pattern(100, 10)), zeros(2 * MiB - 50, 100)];
    await store.write(write(13n, 2, 4 * MiB, small));
    model.apply(4 * MiB, small);
    expect((await readAll(store, 13n)).equals(model.range(0, 4 * MiB))).toBe(true);
    const { sidecar } = decodeSidecarFile(await readFile(join(egroupsDir(), '13.meta')));
    expect(sidecar.sliceBytes).toBe(32 * KiB);
    expect(sidecar.crcs.length).toBe(((4 * MiB) / (32 * KiB)) * 4);
  });

  it('matches a model under random writes, growth and reads, across reopening', async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const int = (n: number): number => Math.floor(random() * n);
    const context = `replay with SEED=${seed}`;
    let store = await openStore({ egroupSizeMaxBytes: 256 * KiB });
    const model = new Model();
    let sizeBytes = 0;
    for (let step = 1; step <= 120; step++) {
      if (random() < 0.3 || sizeBytes === 0) sizeBytes = Math.min(256 * KiB, sizeBytes + 1 + int(40 * KiB));
      const pieces = Array.from({ length: 1 + int(5) }, () => {
        const offset = int(sizeBytes);
        const length = 1 + int(Math.min(sizeBytes - offset, 3 * S));
        return random() < 0.25 ? zeros(offset, length) : data(offset, pattern(length, int(1000)));
      });
      const reply = await store.write(write(14n, step, sizeBytes, pieces));
      expect([context, step, reply]).toEqual([context, step, { version: step, crc32c: expectedCrc(pieces) }]);
      model.apply(sizeBytes, pieces);
      for (let r = 0; r < 4; r++) {
        const offset = int(sizeBytes);
        const length = 1 + int(Math.min(sizeBytes - offset, 2 * S));
        const got = Buffer.from(await store.read({ egroup: 14n, offset, length }));
        expect([context, step, offset, length, got.equals(model.range(offset, length))]).toEqual([context, step, offset, length, true]);
      }
      if (step % 40 === 0) {
        await store.close();
        store = await openStore({ egroupSizeMaxBytes: 256 * KiB });
      }
    }
    expect([context, (await readAll(store, 14n)).equals(model.range(0, sizeBytes))]).toEqual([context, true]);
  });
});

describe('versions', () => {
  it('applies a write above the version, also skipping versions, and answers a retry at the version without writing', async () => {
    const store = await openStore();
    const model = new Model();
    const v1 = [data(0, pattern(S, 1))];
    await store.write(write(20n, 1, 2 * S, v1));
    model.apply(2 * S, v1);
    // A controller that retries after a partial failure uses a higher version: 1 -> 5.
    const v5 = [data(100, pattern(200, 2)), zeros(S, 10)];
    const applied = await store.write(write(20n, 5, 2 * S, v5));
    expect(applied).toEqual({ version: 5, crc32c: expectedCrc(v5) });
    model.apply(2 * S, v5);

    const before = await Promise.all([stat(join(egroupsDir(), '20.meta')), stat(dataFile(20n))]);
    // The same write again (new objects with equal contents) is a retry.
    expect(await store.write(write(20n, 5, 2 * S, [data(100, pattern(200, 2)), zeros(S, 10)]))).toEqual(applied);
    const after = await Promise.all([stat(join(egroupsDir(), '20.meta')), stat(dataFile(20n))]);
    expect(after.map((s) => s.mtimeMs)).toEqual(before.map((s) => s.mtimeMs));
    expect(await store.stat(20n)).toEqual({ version: 5, sizeBytes: 2 * S });
    expect((await readAll(store, 20n)).equals(model.range(0, 2 * S))).toBe(true);

    await store.write(write(20n, 9, 2 * S, [data(0, pattern(10, 3))]));
    model.apply(2 * S, [data(0, pattern(10, 3))]);
    expect((await readAll(store, 20n)).equals(model.range(0, 2 * S))).toBe(true);
  });

  it('refuses with CONFLICT, naming the replica version, a write at the version that differs, or below it', async () => {
    const store = await openStore();
    const model = new Model();
    const v3 = [data(10, pattern(100, 1))];
    await store.write(write(21n, 3, S, v3));
    model.apply(S, v3);
    const refused: Array<[string, EgroupWrite, string]> = [
      ['other bytes', write(21n, 3, S, [data(10, pattern(100, 2))]), 'egroup 21 is at version 3; a write for version 3 is another write than the one that made it'],
      ['another offset', write(21n, 3, S, [data(11, pattern(100, 1))]), 'is another write than the one that made it'],
      ['another size', write(21n, 3, 2 * S, v3), 'is another write than the one that made it'],
      ['a piece more', write(21n, 3, S, [...v3, zeros(0, 1)]), 'is another write than the one that made it'],
      ['below', write(21n, 2, S, [data(0, pattern(1, 3))]), 'egroup 21 is at version 3; a write for version 2 is below it'],
    ];
    for (const [what, w, message] of refused) {
      await expect(store.write(w).catch((e: unknown) => [what, e])).resolves.toEqual([what, expect.objectContaining({ code: 'CONFLICT', message: expect.stringContaining(message) })]);
    }
    expect(await store.stat(21n)).toEqual({ version: 3, sizeBytes: S });
    expect((await readAll(store, 21n)).equals(model.range(0, S))).toBe(true);
  });

  it('takes a sizeBytes below the replica size as no growth, never a shrink', async () => {
    const store = await openStore();
    const model = new Model();
    await store.write(write(22n, 1, 10_000, [data(9000, pattern(1000, 1))]));
    model.apply(10_000, [data(9000, pattern(1000, 1))]);
    const smaller = [data(0, pattern(3000, 2))];
    await store.write(write(22n, 2, 3000, smaller));
    model.apply(3000, smaller);
    expect(await store.stat(22n)).toEqual({ version: 2, sizeBytes: 10_000 });
    expect(store.usedBytes).toBe(10_000);
    expect((await readAll(store, 22n)).equals(model.range(0, 10_000))).toBe(true);
    // Its retry is recognised too (the digest holds the request's sizeBytes).
    expect(await store.write(write(22n, 2, 3000, smaller))).toMatchObject({ version: 2 });
  });
});

describe('ownership and fencing', () => {
  it('refuses a write from another vDisk than the one that created the extent group', async () => {
    const store = await openStore();
    await store.write(write(30n, 1, S, [data(0, pattern(KiB, 1))]));
    await expect(store.write(write(30n, 2, S, [data(0, pattern(KiB, 2))], 1, 6n))).rejects.toMatchObject({
      code: 'CONFLICT',
      message: 'disk 77: egroup 30 belongs to vdisk 5; vdisk 6 may not write it',
    });
    expect(await store.stat(30n)).toEqual({ version: 1, sizeBytes: S });
  });

  it('refuses a lower epoch than the highest seen, remembering a higher one from a retry or a refused write, across a restart', async () => {
    const store = await openStore();
    const v1 = [data(0, pattern(KiB, 1))];
    await store.write(write(31n, 1, S, v1, 3));
    await expect(store.write(write(31n, 2, S, [data(KiB, pattern(KiB, 2))], 2))).rejects.toMatchObject({
      code: 'FENCED',
      message: 'disk 77: egroup 31: epoch 2 of vdisk 5 is superseded; epoch 3 has written here',
    });
    // A retry by the next owner (epoch 4) succeeds and fences epoch 3.
    expect(await store.write(write(31n, 1, S, v1, 4))).toMatchObject({ version: 1 });
    await expect(store.write(write(31n, 2, S, [data(KiB, pattern(KiB, 2))], 3))).rejects.toMatchObject({ code: 'FENCED', message: expect.stringContaining('epoch 4 has written here') });
    // A write from epoch 5 refused as a conflict still deposes epoch 4.
    await expect(store.write(write(31n, 1, S, [data(0, pattern(KiB, 9))], 5))).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(store.write(write(31n, 2, S, [data(KiB, pattern(KiB, 2))], 4))).rejects.toMatchObject({ code: 'FENCED', message: expect.stringContaining('epoch 5 has written here') });
    await store.write(write(31n, 2, S, [data(KiB, pattern(KiB, 2))], 5));
    await store.close();
    const reopened = await openStore();
    await expect(reopened.write(write(31n, 3, S, [data(0, pattern(KiB, 3))], 4))).rejects.toMatchObject({ code: 'FENCED' });
    expect(await reopened.stat(31n)).toEqual({ version: 2, sizeBytes: S });
  });
});

describe('invalid requests', () => {
  it('refuses with INVALID, changing nothing, a bad version, empty or out-of-bounds pieces, and a size beyond the largest extent group', async () => {
    const store = await openStore({ egroupSizeMaxBytes: 64 * KiB });
    const model = new Model();
    await store.write(write(40n, 1, 2 * S, [data(0, pattern(2 * S, 1))]));
    model.apply(2 * S, [data(0, pattern(2 * S, 1))]);
    const cases: Array<[EgroupWrite, string]> = [
      [write(40n, 0, 2 * S, [data(0, pattern(10, 2))]), 'version must be at least 1, not 0'],
      [write(40n, 2, 2 * S, [data(0, new Uint8Array(0))]), 'piece 0 at offset 0 is empty'],
      [write(40n, 2, 2 * S, [data(0, pattern(10, 2)), zeros(100, 0)]), 'piece 1 at offset 100 is empty'],
      // Within the replica's current size but beyond the request's own sizeBytes.
      [write(40n, 2, S, [data(S - 5, pattern(10, 2))]), `piece 0 (10 bytes at offset ${S - 5}) ends at ${S + 5}, beyond the extent group's sizeBytes ${S}`],
      [write(40n, 2, 2 * S, [data(0, pattern(10, 2)), zeros(2 * S, 1)]), 'piece 1 (1 bytes at offset 8192) ends at 8193'],
      [write(40n, 2, 64 * KiB + 1, [data(0, pattern(10, 2))]), 'sizeBytes 65537 is beyond the largest extent group (65536 bytes)'],
      [write(40n, 2, 2 * S, []), 'a write carries 1 to 4096 pieces, not 0'],
      [write(40n, 2, 2 * S, Array.from({ length: EG_WRITE_PIECES_MAX + 1 }, (_, i) => zeros(i, 1))), 'not 4097'],
    ];
    for (const [w, message] of cases) {
      await expect(store.write(w)).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining(message) });
    }
    // Not even a first write of another extent group happens.
    await expect(store.write(write(41n, 1, 10, [data(5, pattern(10, 3))]))).rejects.toMatchObject({ code: 'INVALID' });
    await expect(store.stat(41n)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await store.stat(40n)).toEqual({ version: 1, sizeBytes: 2 * S });
    expect((await readAll(store, 40n)).equals(model.range(0, 2 * S))).toBe(true);
    expect(store.usedBytes).toBe(2 * S);
    // Version 2 is still free: nothing above was taken for a write.
    expect(await store.write(write(40n, 2, 2 * S, [zeros(0, 1)]))).toMatchObject({ version: 2 });
  });

  it('refuses reads of no bytes, of more than EG_READ_BYTES_MAX, or past the end (INVALID), and of no replica (NOT_FOUND)', async () => {
    const store = await openStore();
    await expect(store.read({ egroup: 42n, offset: 0, length: 1 })).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'disk 77: egroup 42 has no replica here' });
    await expect(store.stat(42n)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await store.write(write(42n, 1, 10_000, [data(0, pattern(100, 1))]));
    await expect(store.read({ egroup: 42n, offset: 0, length: 0 })).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('a read is 1 to 4194304 bytes long, not 0') });
    await expect(store.read({ egroup: 42n, offset: 0, length: EG_READ_BYTES_MAX + 1 })).rejects.toMatchObject({ code: 'INVALID' });
    await expect(store.read({ egroup: 42n, offset: 9_999, length: 2 })).rejects.toMatchObject({
      code: 'INVALID',
      message: 'disk 77: egroup 42: a read of 2 bytes at offset 9999 ends beyond its 10000 bytes',
    });
    expect((await store.read({ egroup: 42n, offset: 9_999, length: 1 })).length).toBe(1);
  });
});

describe('capacity', () => {
  it('refuses with NO_SPACE growth beyond the capacity, but not a write in place', async () => {
    const store = await openStore({ capacityBytes: 16 * KiB });
    await store.write(write(50n, 1, 8 * KiB, [data(0, pattern(KiB, 1))]));
    await store.write(write(51n, 1, 8 * KiB, [data(0, pattern(KiB, 2))]));
    await expect(store.write(write(52n, 1, KiB, [data(0, pattern(KiB, 3))]))).rejects.toMatchObject({
      code: 'NO_SPACE',
      message: 'disk 77: egroup 52: 1024 more bytes would exceed the capacity (16384 of 16384 bytes in use or promised)',
    });
    await expect(store.write(write(50n, 2, 8 * KiB + 1, [data(0, pattern(KiB, 3))]))).rejects.toMatchObject({ code: 'NO_SPACE' });
    expect(await store.stat(50n)).toEqual({ version: 1, sizeBytes: 8 * KiB });
    // A write in place grows nothing, even once the capacity is lowered below the use.
    store.setCapacityBytes(4 * KiB);
    await store.write(write(50n, 2, 8 * KiB, [data(4 * KiB, pattern(4 * KiB, 4))]));
    expect(store.usedBytes).toBe(16 * KiB);
    store.setCapacityBytes(16 * KiB);
    // Deleting frees the space; a raised capacity makes room too.
    expect(await store.delete(51n)).toEqual({ deleted: true });
    expect(store.usedBytes).toBe(8 * KiB);
    await store.write(write(52n, 1, 8 * KiB, [data(0, pattern(KiB, 3))]));
    store.setCapacityBytes(32 * KiB);
    await store.write(write(53n, 1, 8 * KiB, [data(0, pattern(KiB, 5))]));
    expect(store.usedBytes).toBe(24 * KiB);
    await expect(store.read({ egroup: 51n, offset: 0, length: KiB })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('never lets parallel writes to different extent groups overshoot the capacity together', async () => {
    const store = await openStore({ capacityBytes: 40 * KiB });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store.write(write(BigInt(100 + i), 1, 8 * KiB, [data(0, pattern(8 * KiB, i))]))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'NO_SPACE' });
    expect(store.usedBytes).toBe(40 * KiB);
  });
});

describe('checksums', () => {
  it('gives CHECKSUM, naming the slice and its bytes, for a read of a slice with a flipped byte; other slices still read', async () => {
    const store = await openStore();
    const model = new Model();
    const pieces = [data(0, pattern(4 * S, 1))];
    await store.write(write(60n, 1, 4 * S, pieces));
    model.apply(4 * S, pieces);
    await flipByte(60n, S + 100);
    const checksum = {
      code: 'CHECKSUM',
      message: expect.stringMatching(/^disk 77: egroup 60: slice 1 \(bytes 4096 to 8191\) failed its check: stored CRC32C 0x[0-9a-f]{8}, read 0x[0-9a-f]{8}$/),
    };
    await expect(store.read({ egroup: 60n, offset: S + 100, length: 1 })).rejects.toMatchObject(checksum);
    // Any range that touches slice 1, even without its flipped byte, is refused.
    await expect(store.read({ egroup: 60n, offset: S - 10, length: 20 })).rejects.toMatchObject(checksum);
    await expect(store.read({ egroup: 60n, offset: 2 * S - 1, length: 1 })).rejects.toMatchObject(checksum);
    for (const [offset, length] of [
      [0, S],
      [2 * S, 2 * S],
      [3 * S + 5, 10],
    ] as const) {
      expect(Buffer.from(await store.read({ egroup: 60n, offset, length })).equals(model.range(offset, length))).toBe(true);
    }
  });

  it('refuses with CHECKSUM a write over part of a damaged slice, changing nothing; a write over all of it repairs it', async () => {
    const store = await openStore();
    const model = new Model();
    await store.write(write(61n, 1, 3 * S, [data(0, pattern(3 * S, 1))]));
    model.apply(3 * S, [data(0, pattern(3 * S, 1))]);
    // As a crash between pwrite and sidecar would leave it: bytes no longer matching the CRC.
    await flipByte(61n, S + 7);
    await expect(store.write(write(61n, 2, 3 * S, [data(S + 1000, pattern(10, 2))]))).rejects.toMatchObject({
      code: 'CHECKSUM',
      message: expect.stringMatching(/^disk 77: egroup 61: slice 1 \(bytes 4096 to 8191\) failed its check before a write over part of it: /),
    });
    expect(await store.stat(61n)).toEqual({ version: 1, sizeBytes: 3 * S });
    // Slice 0 is covered in part by a piece that ends in slice 1: still CHECKSUM, and slice 0 untouched.
    await expect(store.write(write(61n, 2, 3 * S, [data(100, pattern(S + 10, 3))]))).rejects.toMatchObject({ code: 'CHECKSUM' });
    expect(Buffer.from(await store.read({ egroup: 61n, offset: 0, length: S })).equals(model.range(0, S))).toBe(true);
    // A write that covers the whole damaged slice (here with two adjacent pieces) repairs it.
    const repair = [data(S, pattern(S / 2, 4)), zeros(S + S / 2, S / 2)];
    await store.write(write(61n, 2, 3 * S, repair));
    model.apply(3 * S, repair);
    expect((await readAll(store, 61n)).equals(model.range(0, 3 * S))).toBe(true);
  });

  it.each([
    ['on the threadpool', 0],
    ['synchronously', 2 * S],
  ])('reads the same bytes and finds the same damage with the pread %s', async (_how, syncReadMaxBytes) => {
    const store = await openStore({ syncReadMaxBytes });
    const model = new Model();
    // Bytes past the data file's end (the last slice and the growth) read as zeros.
    const pieces = [data(10, pattern(2 * S, 5))];
    await store.write(write(66n, 1, 4 * S, pieces));
    model.apply(4 * S, pieces);
    for (const [offset, length] of [
      [0, 4 * S],
      [S - 3, 6],
      [2 * S, 2 * S],
    ] as const) {
      expect(Buffer.from(await store.read({ egroup: 66n, offset, length })).equals(model.range(offset, length))).toBe(true);
    }
    await flipByte(66n, 20);
    await expect(store.read({ egroup: 66n, offset: 0, length: 1 })).rejects.toMatchObject({ code: 'CHECKSUM', message: expect.stringContaining('slice 0') });
    expect(Buffer.from(await store.read({ egroup: 66n, offset: S, length: S })).equals(model.range(S, S))).toBe(true);
  });

  it('answers reads in flight at once each with its own bytes, though synchronous reads share one scratch buffer', async () => {
    const store = await openStore({ syncReadMaxBytes: 2 * S });
    const egroups = [70n, 71n, 72n, 73n];
    await Promise.all(egroups.map((eg, i) => store.write(write(eg, 1, 2 * S, [data(0, pattern(2 * S, 10 + i))]))));
    const reads = [];
    for (let round = 0; round < 8; round++) {
      for (const [i, eg] of egroups.entries()) reads.push(store.read({ egroup: eg, offset: 100 + round, length: S }).then((got) => ({ got, i, round })));
    }
    for (const { got, i, round } of await Promise.all(reads)) {
      expect(Buffer.from(got).equals(Buffer.from(pattern(2 * S, 10 + i).subarray(100 + round, 100 + round + S)))).toBe(true);
    }
  });

  it('gives CHECKSUM when the data file of a replica is gone, to a read and to a write', async () => {
    const store = await openStore({ openFilesMax: 1 });
    await store.write(write(62n, 1, S, [data(0, pattern(S, 1))]));
    // Another file pushes 62's out of the open-file cache, so the removal is seen.
    await store.write(write(63n, 1, S, [data(0, pattern(S, 2))]));
    await rm(dataFile(62n));
    await expect(store.read({ egroup: 62n, offset: 0, length: 1 })).rejects.toMatchObject({ code: 'CHECKSUM', message: 'disk 77: egroup 62: its data file is missing' });
    await expect(store.write(write(62n, 2, S, [data(0, pattern(S, 3))]))).rejects.toMatchObject({ code: 'CHECKSUM', message: expect.stringContaining('data file is missing') });
  });

  it('takes bytes left past the end by a failed write as zeros, and cuts them off before growing', async () => {
    const store = await openStore({ openFilesMax: 1 });
    const model = new Model();
    await store.write(write(64n, 1, 5000, [data(0, pattern(5000, 1))]));
    model.apply(5000, [data(0, pattern(5000, 1))]);
    await store.write(write(65n, 1, S, [data(0, pattern(S, 2))]));
    // As a write that grew the file and then failed before its sidecar would leave it.
    await appendFile(dataFile(64n), Buffer.from(pattern(10_000, 3)));
    expect(Buffer.from(await store.read({ egroup: 64n, offset: 4000, length: 1000 })).equals(model.range(4000, 1000))).toBe(true);
    const grow = [data(20_000, pattern(100, 4))];
    await store.write(write(64n, 2, 30_000, grow));
    model.apply(30_000, grow);
    expect((await readAll(store, 64n)).equals(model.range(0, 30_000))).toBe(true);
  });
});

describe('delete', () => {
  it('removes both files, frees the bytes, succeeds again for a replica already gone, and lets the extent group start over', async () => {
    const store = await openStore();
    await store.write(write(70n, 1, S, [data(0, pattern(KiB, 1))], 2));
    await store.write(write(70n, 2, 2 * S, [data(KiB, pattern(KiB, 2))], 2));
    const open = store.openFileCount;
    expect(await store.delete(70n)).toEqual({ deleted: true });
    expect(store.openFileCount).toBe(open - 1);
    expect(await readdir(egroupsDir())).toEqual([]);
    expect(store.usedBytes).toBe(0);
    expect(await store.delete(70n)).toEqual({ deleted: false });
    await expect(store.stat(70n)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // A new replica: version 1 again, an epoch below the old one, and none of the old bytes.
    expect(await store.write(write(70n, 1, 2 * S, [data(0, pattern(10, 3))], 1))).toMatchObject({ version: 1 });
    expect(Buffer.from(await store.read({ egroup: 70n, offset: KiB, length: KiB })).equals(Buffer.alloc(KiB))).toBe(true);
  });
});

describe('list', () => {
  it('pages through every replica in ascending id with its size, version and last write time, also after reopening', async () => {
    const store = await openStore();
    const ids = [12n, 3n, 40n, 7n, 25n];
    for (const egroup of ids) await store.write(write(egroup, 2, 100 + Number(egroup), [data(0, pattern(10, 1))]));
    const seen: bigint[] = [];
    let after: bigint | undefined;
    for (let page = 0; page < 10; page++) {
      const { replicas, more } = store.list(after, 2);
      expect(replicas.length).toBeLessThanOrEqual(2);
      for (const r of replicas) expect(r).toMatchObject({ sizeBytes: 100 + Number(r.egroup), version: 2 });
      seen.push(...replicas.map((r) => r.egroup));
      if (!more) break;
      after = replicas.at(-1)!.egroup;
    }
    expect(seen).toEqual([3n, 7n, 12n, 25n, 40n]);
    const written = store.list(undefined, 10).replicas.map((r) => r.mtimeMs);
    await store.delete(7n);
    expect(store.list(undefined, 10).replicas.map((r) => r.egroup)).toEqual([3n, 12n, 25n, 40n]);
    await store.close();
    // After a restart the time comes from the files: within a second of the write (file system time granularity).
    const reopened = await openStore();
    const listed = reopened.list(undefined, 10).replicas;
    expect(listed.map((r) => r.egroup)).toEqual([3n, 12n, 25n, 40n]);
    for (const r of listed) expect(Math.abs(r.mtimeMs - written[0]!)).toBeLessThan(5_000);
    expect(() => reopened.list(undefined, 0)).toThrow('limit must be a positive whole number');
  });
});

describe('recovery', () => {
  it('finds every replica again after reopening: versions, sizes, bytes, used bytes and each replica its slice size', async () => {
    const first = await openStore();
    const models = new Map<bigint, Model>();
    for (let g = 0; g < 4; g++) {
      const egroup = BigInt(80 + g);
      const model = new Model();
      for (let v = 1; v <= 3; v++) {
        const pieces = [data((v - 1) * 3000 + g, pattern(3000, g * 10 + v)), zeros(v * 100, 50)];
        await first.write(write(egroup, v * 2, 10_000 + g, pieces));
        model.apply(10_000 + g, pieces);
      }
      models.set(egroup, model);
    }
    await first.close();
    // Reopened with another slice size: existing replicas keep 4 KiB, new ones get 16 KiB.
    const store = await openStore({ sliceBytes: 16 * KiB });
    expect(store.recovery).toMatchObject({ egroups: 4, removedTempFiles: [], removedOrphans: [], truncated: [], quarantined: [] });
    expect(store.usedBytes).toBe(4 * 10_000 + 0 + 1 + 2 + 3);
    for (const [egroup, model] of models) {
      const { sizeBytes } = await store.stat(egroup);
      expect(await store.stat(egroup)).toEqual({ version: 6, sizeBytes: 10_000 + Number(egroup - 80n) });
      expect((await readAll(store, egroup)).equals(model.range(0, sizeBytes))).toBe(true);
    }
    const partial = [data(S + 1, pattern(10, 99))];
    await store.write(write(80n, 7, 10_000, partial));
    models.get(80n)!.apply(10_000, partial);
    expect((await readAll(store, 80n)).equals(models.get(80n)!.range(0, 10_000))).toBe(true);
    await store.write(write(90n, 1, 100, [data(0, pattern(100, 1))]));
    const sliceBytes = async (egroup: bigint): Promise<number> => decodeSidecarFile(await readFile(join(egroupsDir(), `${egroup}.meta`))).sidecar.sliceBytes;
    expect(await sliceBytes(80n)).toBe(4 * KiB);
    expect(await sliceBytes(90n)).toBe(16 * KiB);
  });

  it('reopens at the previous version when a crash tore the sidecar update of the last write', async () => {
    const first = await openStore();
    const model = new Model();
    const v1 = [data(0, pattern(3 * S, 1))];
    const v2 = [data(100, pattern(S, 2))];
    await first.write(write(95n, 1, 3 * S, v1));
    await first.write(write(95n, 2, 3 * S, v2));
    model.apply(3 * S, v1);
    model.apply(3 * S, v2);
    const meta = join(egroupsDir(), '95.meta');
    const { ino } = await stat(meta);
    // Version 3 rewrites slice 2 and updates the sidecar in place, in the other slot.
    const v3 = [data(2 * S, pattern(S, 3))];
    await first.write(write(95n, 3, 3 * S, v3));
    expect((await stat(meta)).ino).toBe(ino);
    await first.close();

    // As a crash part way through that sidecar update would leave it: the newest slot torn.
    const file = await readFile(meta);
    const { slots } = decodeSidecarFile(file);
    expect(slots).toEqual({ slotBytes: 4 * KiB, sequence: 2 });
    file.fill(0x5a, slotOffset(slots!.slotBytes, slots!.sequence) + RECORD_HEADER_BYTES + 20, slotOffset(slots!.slotBytes, slots!.sequence) + 200);
    await writeFile(meta, file);

    const store = await openStore();
    expect(store.recovery.quarantined).toEqual([]);
    expect(await store.stat(95n)).toEqual({ version: 2, sizeBytes: 3 * S });
    // Slices 0 and 1 are version 2's; slice 2 holds version 3's bytes, which its CRC does not describe.
    expect(Buffer.from(await store.read({ egroup: 95n, offset: 0, length: 2 * S })).equals(model.range(0, 2 * S))).toBe(true);
    await expect(store.read({ egroup: 95n, offset: 2 * S, length: 10 })).rejects.toMatchObject({ code: 'CHECKSUM' });
    // The controller's retry of version 3 (never acknowledged) applies it again.
    await store.write(write(95n, 3, 3 * S, v3));
    model.apply(3 * S, v3);
    expect((await readAll(store, 95n)).equals(model.range(0, 3 * S))).toBe(true);
  });

  it('removes leftover temp files and orphan data files, cuts data files longer than their size, and leaves unknown files alone', async () => {
    const first = await openStore();
    const model = new Model();
    await first.write(write(100n, 1, 10_000, [data(0, pattern(10_000, 1))]));
    model.apply(10_000, [data(0, pattern(10_000, 1))]);
    // Shorter than its size: normal for a sparse replica, left as it is.
    await first.write(write(101n, 1, 50_000, [data(0, pattern(100, 2))]));
    await first.close();
    const dir = egroupsDir();
    await writeFile(join(dir, '100.meta.tmp'), 'half a sidecar');
    await writeFile(join(dir, '102.eg'), pattern(KiB, 3));
    await appendFile(join(dir, '100.eg'), Buffer.from(pattern(KiB, 4)));
    await writeFile(join(dir, 'README'), 'an operator note');

    const store = await openStore();
    expect(store.recovery).toMatchObject({ egroups: 2, usedBytes: 60_000, removedTempFiles: ['100.meta.tmp'], removedOrphans: ['102.eg'], truncated: ['100.eg'], quarantined: [] });
    expect((await readdir(dir)).sort()).toEqual(['100.eg', '100.meta', '101.eg', '101.meta', 'README']);
    expect((await stat(join(dir, '100.eg'))).size).toBe(10_000);
    expect((await stat(join(dir, '101.eg'))).size).toBe(S);
    expect((await readAll(store, 100n)).equals(model.range(0, 10_000))).toBe(true);
    expect(Buffer.from(await store.read({ egroup: 101n, offset: 40_000, length: 10_000 })).equals(Buffer.alloc(10_000))).toBe(true);
    await expect(store.stat(102n)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('moves to quarantine, with the reason, a format-1 sidecar, a damaged one, and one without its data file, counting their bytes as used', async () => {
    const first = await openStore();
    for (const g of [110n, 111n, 112n, 113n]) await first.write(write(g, 1, S, [data(0, pattern(S, Number(g)))]));
    await first.close();
    const dir = egroupsDir();
    await writeFile(
      join(dir, '110.meta'),
      encode({ format: 1, vdisk: VDISK, epoch: 1, version: 1, sizeBytes: S, extents: [{ offset: 0, length: S, crc32c: 1 }], last: { offset: 0, length: S, crc32c: 1 } }),
    );
    await writeFile(join(dir, '111.meta'), Buffer.from([0xa1, 0x61, 0x78]));
    await rm(join(dir, '112.eg'));

    const store = await openStore();
    expect([...store.recovery.quarantined].sort()).toEqual([
      expect.stringMatching(/^110: its sidecar is format 1 \(one CRC32C per whole extent\), which this store no longer reads; .*nothing to migrate$/),
      expect.stringMatching(/^111: its sidecar is unreadable: /),
      '112: its data file is missing',
    ]);
    expect(store.recovery.egroups).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(['113.eg', '113.meta']);
    const quarantined = (await readdir(join(root, 'quarantine'))).sort();
    expect(quarantined.map((n) => n.replace(/\.\d+$/, ''))).toEqual(['110.eg', '110.meta', '111.eg', '111.meta', '112.meta']);
    let quarantinedBytes = 0;
    for (const name of quarantined) quarantinedBytes += (await stat(join(root, 'quarantine', name))).size;
    expect(store.usedBytes).toBe(S + quarantinedBytes);
    await expect(store.stat(110n)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('concurrency and limits', () => {
  it('serialises writes to one extent group in arrival order while other extent groups proceed', async () => {
    const store = await openStore({ opsInFlightMax: 4 });
    const egroups = Array.from({ length: 16 }, (_, i) => BigInt(200 + i));
    // Every version of every extent group is sent at once: only per-group ordering makes them all apply.
    const replies = await Promise.all(egroups.flatMap((g) => [1, 2, 3, 4].map((v) => store.write(write(g, v, 4 * KiB, [data((v - 1) * KiB, pattern(KiB, Number(g) + v))])))));
    expect(replies.map((r) => r.version)).toEqual(egroups.flatMap(() => [1, 2, 3, 4]));
    for (const g of egroups) {
      expect(await store.stat(g)).toEqual({ version: 4, sizeBytes: 4 * KiB });
      expect(Buffer.from(await store.read({ egroup: g, offset: 3 * KiB, length: KiB }))).toEqual(Buffer.from(pattern(KiB, Number(g) + 4)));
    }
  });

  it('keeps at most openFilesMax data files open, and none after close', async () => {
    const store = await openStore({ openFilesMax: 3 });
    for (let g = 0; g < 8; g++) await store.write(write(BigInt(300 + g), 1, S, [data(0, pattern(S, g))]));
    expect(store.openFileCount).toBe(3);
    // Parallel reads of all of them still all succeed while the cache stays bounded.
    const reads = await Promise.all(Array.from({ length: 8 }, (_, g) => store.read({ egroup: BigInt(300 + g), offset: 0, length: S })));
    reads.forEach((r, g) => expect(Buffer.from(r)).toEqual(Buffer.from(pattern(S, g))));
    expect(store.openFileCount).toBeLessThanOrEqual(3);
    await store.close();
    expect(store.openFileCount).toBe(0);
  });

  it('answers QUEUE_FULL beyond the pending limit', async () => {
    const store = await openStore({ opsPendingMax: 3 });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.write(write(BigInt(400 + i), 1, KiB, [data(0, pattern(KiB, i))]))));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused).toHaveLength(5);
    for (const r of refused) expect(r.reason).toMatchObject({ code: 'QUEUE_FULL' });
  });

  it('finishes operations in progress on close and refuses new ones', async () => {
    const store = await openStore();
    const inProgress = store.write(write(500n, 1, KiB, [data(0, pattern(KiB, 1))]));
    const closed = store.close();
    await expect(store.read({ egroup: 500n, offset: 0, length: KiB })).rejects.toMatchObject({ code: 'UNAVAILABLE', message: 'disk 77: is closing' });
    await expect(inProgress).resolves.toMatchObject({ version: 1 });
    await closed;
    expect(store.openFileCount).toBe(0);
  });
});
