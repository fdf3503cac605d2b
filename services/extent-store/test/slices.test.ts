// The pure slice arithmetic of format 2: slice sizes, ranges, CRC32C of zeros and of a
// write's pieces, the packed CRC table, the write digest, and where a write's pieces
// land (planWrite + applyPieces), the last also against a brute-force model with
// seeded random pieces (replay a failure with SEED=<seed>).
import { crc32c } from '@node-rs/crc32';
import type { EgPiece } from '@strata/proto';
import { seededRandom } from '../../../test/harness/random';
import {
  SLICE_BYTES_DEFAULT,
  applyPieces,
  crc32cOfZeros,
  crcAt,
  grownCrcs,
  pieceLength,
  piecesCrc,
  planWrite,
  sameDigest,
  setCrc,
  sliceBytesProblem,
  sliceCount,
  slicesOf,
  writeDigest,
  zeroSliceCrc,
} from '../src/slices';

const KiB = 1024;

function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + seed * 13 + 1) & 0xff;
  return out;
}

const data = (offset: number, length: number, seed = 1): EgPiece => ({ offset, data: bytesOf(length, seed) });
const zeros = (offset: number, length: number): EgPiece => ({ offset, zeros: length });

describe('slice sizes and ranges', () => {
  it('accepts powers of two from 4 KiB to 1 MiB only', () => {
    for (const ok of [4 * KiB, 8 * KiB, SLICE_BYTES_DEFAULT, 1024 * KiB]) expect(sliceBytesProblem(ok)).toBeUndefined();
    expect(SLICE_BYTES_DEFAULT).toBe(32 * KiB);
    expect(sliceBytesProblem(2 * KiB)).toBe('must be a whole number of bytes from 4096 to 1048576, not 2048');
    expect(sliceBytesProblem(2048 * KiB)).toMatch(/from 4096 to 1048576/);
    expect(sliceBytesProblem(4096.5)).toBe('must be a whole number of bytes from 4096 to 1048576, not 4096.5');
    expect(sliceBytesProblem(4.5 * KiB)).toBe('must be a power of two, not 4608');
    expect(sliceBytesProblem(12 * KiB)).toBe('must be a power of two, not 12288');
    expect(sliceBytesProblem(Number.NaN)).toMatch(/whole number/);
  });

  it('counts slices and finds the slices a range touches', () => {
    expect(sliceCount(0, 4096)).toBe(0);
    expect(sliceCount(1, 4096)).toBe(1);
    expect(sliceCount(4096, 4096)).toBe(1);
    expect(sliceCount(4097, 4096)).toBe(2);
    expect(slicesOf(0, 1, 4096)).toEqual({ first: 0, last: 0 });
    expect(slicesOf(4095, 2, 4096)).toEqual({ first: 0, last: 1 });
    expect(slicesOf(4096, 4096, 4096)).toEqual({ first: 1, last: 1 });
    expect(slicesOf(1000, 10_000, 4096)).toEqual({ first: 0, last: 2 });
    expect(() => slicesOf(0, 0, 4096)).toThrow(/touches no slice/);
  });
});

describe('CRC32C', () => {
  it('of zeros, in chunks, equals that of a zero-filled buffer, and continues a running CRC', () => {
    for (const n of [0, 1, 4096, 65_536, 65_537, 200_000]) expect(crc32cOfZeros(n)).toBe(crc32c(new Uint8Array(n)));
    const head = bytesOf(100, 3);
    const whole = new Uint8Array(100 + 70_000);
    whole.set(head);
    expect(crc32cOfZeros(70_000, crc32c(head))).toBe(crc32c(whole));
    expect(zeroSliceCrc(32 * KiB)).toBe(crc32c(new Uint8Array(32 * KiB)));
    expect(zeroSliceCrc(4 * KiB)).toBe(crc32c(new Uint8Array(4 * KiB)));
  });

  it("of a write's pieces is that of their bytes in request order, zeros included", () => {
    const a = bytesOf(1000, 1);
    const b = bytesOf(10, 2);
    const all = new Uint8Array(1000 + 300 + 10);
    all.set(a);
    all.set(b, 1300);
    // Offsets do not matter, only order and bytes: the controller checks what it sent.
    expect(piecesCrc([{ offset: 5000, data: a }, zeros(0, 300), { offset: 1, data: b }])).toBe(crc32c(all));
    expect(piecesCrc([{ offset: 1, data: b }, { offset: 5000, data: a }])).not.toBe(piecesCrc([{ offset: 5000, data: a }, { offset: 1, data: b }]));
  });

  it('packs one little-endian uint32 per slice, read through any alignment, and grows by copying', () => {
    const table = new Uint8Array(8);
    setCrc(table, 0, 0x11223344);
    setCrc(table, 1, 0xfedcba98);
    expect([...table]).toEqual([0x44, 0x33, 0x22, 0x11, 0x98, 0xba, 0xdc, 0xfe]);
    // A view at an odd offset, as a decoded CBOR byte string may be.
    const backing = new Uint8Array(13);
    backing.set(table, 3);
    const view = backing.subarray(3, 11);
    expect(crcAt(view, 0)).toBe(0x11223344);
    expect(crcAt(view, 1)).toBe(0xfedcba98);

    const grown = grownCrcs(view, 4, 4096);
    expect(grown).toHaveLength(16);
    expect([crcAt(grown, 0), crcAt(grown, 1), crcAt(grown, 2), crcAt(grown, 3)]).toEqual([0x11223344, 0xfedcba98, zeroSliceCrc(4096), zeroSliceCrc(4096)]);
    setCrc(grown, 0, 7);
    expect(crcAt(view, 0)).toBe(0x11223344);
    expect(grownCrcs(view, 2, 4096)).toEqual(new Uint8Array(view));
    expect(() => grownCrcs(view, 1, 4096)).toThrow(/cannot shrink/);
  });
});

describe('write digest', () => {
  const base = [data(100, 500, 1), zeros(4096, 8192)];

  it('is the same for the same write and differs for any change in size, offset, length, kind, byte or order', () => {
    const digest = writeDigest(65_536, base);
    expect(digest).toHaveLength(32);
    expect(sameDigest(digest, writeDigest(65_536, [data(100, 500, 1), zeros(4096, 8192)]))).toBe(true);
    const flipped = bytesOf(500, 1);
    flipped[499]! ^= 1;
    const variants: Array<[string, number, EgPiece[]]> = [
      ['size', 65_537, base],
      ['offset', 65_536, [data(101, 500, 1), zeros(4096, 8192)]],
      ['zeros length', 65_536, [data(100, 500, 1), zeros(4096, 8191)]],
      ['a byte', 65_536, [{ offset: 100, data: flipped }, zeros(4096, 8192)]],
      ['data instead of zeros', 65_536, [data(100, 500, 1), { offset: 4096, data: new Uint8Array(8192) }]],
      ['order', 65_536, [zeros(4096, 8192), data(100, 500, 1)]],
      ['a piece less', 65_536, [data(100, 500, 1)]],
    ];
    for (const [what, size, pieces] of variants) {
      expect([what, sameDigest(digest, writeDigest(size, pieces))]).toEqual([what, false]);
    }
    expect(sameDigest(digest, digest.subarray(0, 31))).toBe(false);
  });
});

describe('planWrite', () => {
  const S = 4096;

  it('marks slices covered only in part, counting coverage up to the replica end', () => {
    // One piece from 1000 to 11000 over slices 0..2: the first and last in part.
    expect(planWrite([data(1000, 10_000)], S, 65_536, 256)).toEqual([{ first: 0, count: 3, partial: [0, 2], pieces: [0] }]);
    // Aligned whole slices need no old bytes.
    expect(planWrite([data(8192, 8192)], S, 65_536, 256)).toEqual([{ first: 2, count: 2, partial: [], pieces: [0] }]);
    // The replica ends at 10000: slice 2 is covered when the piece reaches the end.
    expect(planWrite([data(8192, 1808)], S, 10_000, 256)).toEqual([{ first: 2, count: 1, partial: [], pieces: [0] }]);
    expect(planWrite([data(8192, 1807)], S, 10_000, 256)).toEqual([{ first: 2, count: 1, partial: [2], pieces: [0] }]);
  });

  it('covers a slice with adjacent or overlapping pieces together, not with a gap between them', () => {
    expect(planWrite([data(0, 2048), zeros(2048, 2048)], S, 8192, 256)).toEqual([{ first: 0, count: 1, partial: [], pieces: [0, 1] }]);
    expect(planWrite([data(0, 3000), data(1000, 3096)], S, 8192, 256)).toEqual([{ first: 0, count: 1, partial: [], pieces: [0, 1] }]);
    expect(planWrite([data(0, 2000), data(2001, 2095)], S, 8192, 256)).toEqual([{ first: 0, count: 1, partial: [0], pieces: [0, 1] }]);
    // Two pieces meeting in slice 1 with a gap there; slice 0 and 2 covered.
    expect(planWrite([data(0, 5000), data(6000, 6288)], S, 12_288, 256)).toEqual([{ first: 0, count: 3, partial: [1], pieces: [0, 1] }]);
  });

  it('splits runs at gaps and at the run limit, and lists in request order the pieces that reach each run', () => {
    const pieces = [data(40_000, 100), data(0, 20_000), zeros(19_000, 2000)];
    expect(planWrite(pieces, S, 65_536, 2)).toEqual([
      { first: 0, count: 2, partial: [], pieces: [1] },
      { first: 2, count: 2, partial: [], pieces: [1] },
      { first: 4, count: 2, partial: [5], pieces: [1, 2] },
      { first: 9, count: 1, partial: [9], pieces: [0] },
    ]);
  });

  it('matches a brute-force model for random pieces', () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const int = (n: number): number => Math.floor(random() * n);
    for (let round = 0; round < 300; round++) {
      const sizeBytes = 1 + int(20 * S);
      const runSlicesMax = 1 + int(4);
      const pieces: EgPiece[] = Array.from({ length: 1 + int(6) }, () => {
        const offset = int(sizeBytes);
        const length = 1 + int(Math.min(sizeBytes - offset, 3 * S));
        return random() < 0.3 ? zeros(offset, length) : data(offset, length, int(200));
      });
      const context = `seed ${seed} round ${round} (replay with SEED=${seed})`;
      const runs = planWrite(pieces, S, sizeBytes, runSlicesMax);

      // Coverage byte by byte, then which slices are touched and which only in part.
      const cover = new Uint8Array(sizeBytes);
      for (const p of pieces) cover.fill(1, p.offset, p.offset + pieceLength(p));
      const touched: number[] = [];
      const partial: number[] = [];
      for (let s = 0; s < sliceCount(sizeBytes, S); s++) {
        const span = cover.subarray(s * S, Math.min((s + 1) * S, sizeBytes));
        if (span.some((c) => c === 1)) touched.push(s);
        if (span.some((c) => c === 1) && span.some((c) => c === 0)) partial.push(s);
      }
      const slices = runs.flatMap((r) => Array.from({ length: r.count }, (_, i) => r.first + i));
      expect([context, slices]).toEqual([context, touched]);
      expect([context, runs.flatMap((r) => r.partial)]).toEqual([context, partial]);
      for (const r of runs) {
        expect(r.count).toBeLessThanOrEqual(runSlicesMax);
        const reaching = pieces.flatMap((p, i) => (p.offset < (r.first + r.count) * S && p.offset + pieceLength(p) > r.first * S ? [i] : []));
        expect([context, r.pieces]).toEqual([context, reaching]);
      }

      // Applying each run's pieces to the old bytes equals applying every piece to a flat copy.
      const old = bytesOf(sizeBytes, round + 1000);
      const model = old.slice();
      for (const p of pieces) {
        if ('data' in p) model.set(p.data, p.offset);
        else model.fill(0, p.offset, p.offset + p.zeros);
      }
      const result = old.slice();
      for (const r of runs) {
        const start = r.first * S;
        const end = Math.min((r.first + r.count) * S, sizeBytes);
        const buffer = old.slice(start, end);
        applyPieces(buffer, start, pieces, r.pieces);
        result.set(buffer, start);
      }
      expect([context, Buffer.from(result).equals(Buffer.from(model))]).toEqual([context, true]);
    }
  });
});

describe('applyPieces', () => {
  it('copies the part of each listed piece inside the target, later pieces winning', () => {
    const target = new Uint8Array(10).fill(9);
    // The target holds bytes 100..109 of the replica.
    applyPieces(target, 100, [{ offset: 95, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7]) }, zeros(103, 2), { offset: 104, data: new Uint8Array([8]) }, { offset: 120, data: new Uint8Array([1]) }], [0, 1, 2, 3]);
    expect([...target]).toEqual([6, 7, 9, 0, 8, 9, 9, 9, 9, 9]);
    // Only the listed pieces are applied.
    const other = new Uint8Array(4);
    applyPieces(other, 0, [data(0, 4, 1), zeros(0, 4)], [0]);
    expect([...other]).toEqual([...bytesOf(4, 1)]);
  });
});
