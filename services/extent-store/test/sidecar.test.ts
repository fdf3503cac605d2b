// The sidecar, format 3: a file header and two slots, each record checked by CRC32C.
// It round-trips with its packed CRC table; an update is written in place into the
// other slot without changing the file's size; the valid record of the higher
// sequence wins, so a torn update reads as the record before it; a payload that
// outgrows its slot and a format-2 file are replaced whole; a sidecar that contradicts
// itself, a damaged file and a format-1 sidecar are refused, each with its reason. A
// property test crashes random updates part way and checks what a reader finds.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { decode, encode } from '@strata/codec';
import {
  FILE_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  SidecarFormatError,
  decodeSidecarFile,
  encodeRecord,
  encodeSidecarFile,
  planUpdate,
  readSidecar,
  sidecarSchema,
  slotBytesFor,
  slotOffset,
  updateSidecar,
  type Sidecar,
  type StoredSidecar,
} from '../src/sidecar';
import { grownCrcs } from '../src/slices';

const good: Sidecar = {
  format: 3,
  vdisk: 2n ** 63n,
  epoch: 3,
  version: 7,
  // Three slices of 4 KiB, the last one partly past the end.
  sizeBytes: 10_000,
  sliceBytes: 4096,
  crcs: grownCrcs(new Uint8Array(0), 3, 4096),
  digest: new Uint8Array(32).fill(5),
};

/**
 * `good` at another version, with that version's digest (as each write has its own),
 * and optionally grown to `slices` slices of 4 KiB.
 */
function at(version: number, slices = 3): Sidecar {
  return { ...good, version, sizeBytes: slices * 4096, crcs: grownCrcs(new Uint8Array(0), slices, 4096), digest: new Uint8Array(32).fill(version) };
}

let dir: string;
const path = (egroup: bigint): string => join(dir, `${egroup}.meta`);
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-sidecar-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('sidecar', () => {
  it('round-trips through its file with a 64-bit vDisk id and the CRCs as one byte string', async () => {
    const encoded = encode(good);
    const back = decode(encoded, sidecarSchema);
    expect(back).toEqual({ ...good, crcs: expect.any(Uint8Array), digest: expect.any(Uint8Array) });
    expect(Buffer.from(back.crcs).equals(Buffer.from(good.crcs))).toBe(true);
    // 12 bytes of CRCs: a byte string, not an array of numbers.
    expect(encoded.length).toBeLessThan(150);
    const stored = await updateSidecar(dir, 9n, good, undefined);
    expect(stored.slots).toEqual({ slotBytes: 4096, sequence: 0 });
    expect((await stat(path(9n))).size).toBe(FILE_HEADER_BYTES + 2 * 4096);
    const read = await readSidecar(path(9n));
    expect(read.slots).toEqual(stored.slots);
    expect(read.sidecar.version).toBe(7);
    expect(read.sidecar.vdisk).toBe(2n ** 63n);
    expect(Buffer.from(read.sidecar.crcs).equals(Buffer.from(good.crcs))).toBe(true);
  });

  it('refuses a sidecar that contradicts itself', () => {
    expect(() => decode(encode({ ...good, sizeBytes: 12_289 }), sidecarSchema)).toThrow(/crcs: holds 12 bytes but 4 slices of 4096 bytes need 16/);
    expect(() => decode(encode({ ...good, sliceBytes: 3000 }), sidecarSchema)).toThrow(/sliceBytes: must be a whole number of bytes from 4096/);
    expect(() => decode(encode({ ...good, sliceBytes: 12_288 }), sidecarSchema)).toThrow(/sliceBytes: must be a power of two/);
    expect(() => decode(encode({ ...good, digest: new Uint8Array(31) }), sidecarSchema)).toThrow(/digest: must be 32 bytes/);
    expect(() => decode(encode({ ...good, version: 0 }), sidecarSchema)).toThrow(/version: must be at least 1/);
    expect(() => decode(encode({ ...good, extra: 1 }), sidecarSchema)).toThrow(/unknown field extra/);
  });

  it('writes an update in place into the other slot, the file keeping its size and inode', async () => {
    let stored = await updateSidecar(dir, 9n, at(1), undefined);
    const before = await stat(path(9n));
    for (let version = 2; version <= 5; version++) {
      stored = await updateSidecar(dir, 9n, at(version), stored);
      expect(stored.slots).toEqual({ slotBytes: 4096, sequence: version - 1 });
      const file = await readFile(path(9n));
      // The record just written is in slot sequence % 2, the one before it in the other.
      const record = encodeRecord(at(version), version - 1);
      expect(file.subarray(slotOffset(4096, version - 1), slotOffset(4096, version - 1) + record.length).equals(record)).toBe(true);
      expect(file.subarray(slotOffset(4096, version), slotOffset(4096, version) + RECORD_HEADER_BYTES).readUInt32LE(0)).not.toBe(0);
      expect((await readSidecar(path(9n))).sidecar.version).toBe(version);
    }
    const after = await stat(path(9n));
    expect([after.size, after.ino]).toEqual([before.size, before.ino]);
  });

  it('reads the valid record of the higher sequence, wherever it is', () => {
    // Sequence 4 in slot A, then 5 in slot B: 5 wins. Then 6 over 4 in slot A: 6 wins.
    const bytes = encodeSidecarFile(at(4), 4, 4096);
    bytes.set(encodeRecord(at(5), 5), slotOffset(4096, 5));
    expect(decodeSidecarFile(bytes)).toMatchObject({ sidecar: { version: 5 }, slots: { sequence: 5 } });
    bytes.set(encodeRecord(at(6), 6), slotOffset(4096, 6));
    expect(decodeSidecarFile(bytes)).toMatchObject({ sidecar: { version: 6 }, slots: { sequence: 6 } });
  });

  it('reads a torn newest slot as the record before it: garbage, a cut-short record, a bad CRC32C', async () => {
    const first = await updateSidecar(dir, 9n, at(1), undefined);
    await updateSidecar(dir, 9n, at(2), first);
    const intact = await readFile(path(9n));
    const newest = slotOffset(4096, 1);
    const record = encodeRecord(at(2), 1);
    const torn = (tear: (file: Buffer) => void): Buffer => {
      const file = Buffer.from(intact);
      tear(file);
      return file;
    };
    const cases: [string, Buffer][] = [
      ['garbage over the slot', torn((f) => f.fill(0x5a, newest, newest + 4096))],
      // The new record's first half over the old one's bytes: what a crash mid-pwrite leaves.
      ['half a record', torn((f) => encodeRecord(at(3), 3).copy(f, newest, 0, record.length / 2))],
      ['the header only', torn((f) => f.fill(0, newest + RECORD_HEADER_BYTES, newest + record.length))],
      ['a flipped payload byte', torn((f) => (f[newest + RECORD_HEADER_BYTES + 10]! ^= 1))],
      ['a bad CRC32C', torn((f) => f.writeUInt32LE(f.readUInt32LE(newest + 20) ^ 1, newest + 20))],
      ['a length past the slot', torn((f) => f.writeUInt32LE(5000, newest + 16))],
      ['a cut-short file', intact.subarray(0, newest + 100)],
    ];
    for (const [what, file] of cases) {
      await writeFile(path(9n), file);
      const read = await readSidecar(path(9n));
      expect([what, read.sidecar.version, read.slots]).toEqual([what, 1, { slotBytes: 4096, sequence: 0 }]);
    }
    // An update after such a crash goes into the torn slot again and reads back.
    const next = await updateSidecar(dir, 9n, at(3), await readSidecar(path(9n)));
    expect(next.slots).toEqual({ slotBytes: 4096, sequence: 1 });
    expect((await readSidecar(path(9n))).sidecar.version).toBe(3);
  });

  it('refuses a file with neither slot valid, or a damaged file header, saying why', async () => {
    const file = encodeSidecarFile(at(1), 0, 4096);
    const bothBad = Buffer.from(file);
    bothBad.fill(0x5a, slotOffset(4096, 0), slotOffset(4096, 0) + 100);
    await writeFile(path(1n), bothBad);
    await expect(readSidecar(path(1n))).rejects.toMatchObject({ code: 'INVALID', message: 'neither slot holds a valid record (slot A: no record; slot B: no record)' });
    const flipped = Buffer.from(file);
    flipped[slotOffset(4096, 0) + RECORD_HEADER_BYTES + 3]! ^= 1;
    expect(() => decodeSidecarFile(flipped)).toThrow('neither slot holds a valid record (slot A: its CRC32C fails; slot B: no record)');
    const badHeader = Buffer.from(file);
    badHeader[9] = 0x20;
    expect(() => decodeSidecarFile(badHeader)).toThrow('its file header fails its CRC32C');
    expect(() => decodeSidecarFile(file.subarray(0, 10))).toThrow('its file header is cut short at 10 bytes');
    expect(() => decodeSidecarFile(Buffer.from('half a sidecar'))).toThrow(/malformed CBOR/);
  });

  it('replaces the file when a payload outgrows its slot, with a slot that has room to grow', async () => {
    let stored = await updateSidecar(dir, 9n, at(1, 1), undefined);
    expect(stored.slots).toEqual({ slotBytes: 4096, sequence: 0 });
    stored = await updateSidecar(dir, 9n, at(2, 900), stored);
    expect(stored.slots).toEqual({ slotBytes: 4096, sequence: 1 });
    const before = await stat(path(9n));
    // 1100 slices: 4400 bytes of CRCs, past a 4 KiB slot; room is made for four times as many.
    stored = await updateSidecar(dir, 9n, at(3, 1100), stored);
    expect(stored.slots).toEqual({ slotBytes: 32 * 1024, sequence: 2 });
    const after = await stat(path(9n));
    expect(after.ino).not.toBe(before.ino);
    expect(after.size).toBe(FILE_HEADER_BYTES + 2 * 32 * 1024);
    expect(await readSidecar(path(9n))).toEqual({ sidecar: expect.objectContaining({ version: 3, sizeBytes: 1100 * 4096 }), slots: stored.slots });
    stored = await updateSidecar(dir, 9n, at(4, 4000), stored);
    expect(stored.slots).toEqual({ slotBytes: 32 * 1024, sequence: 3 });
    expect((await stat(path(9n))).ino).toBe(after.ino);
  });

  it('sizes a new slot for growth: a power of two, at least 4 KiB, bounded by the largest CRC table', () => {
    expect(slotBytesFor(200, 12)).toBe(4096);
    expect(slotBytesFor(24 + 130 + 8192, 8192)).toBe(64 * 1024);
    // 65536 slices: no room for more, but room for the table itself.
    expect(slotBytesFor(24 + 130 + 262_144, 262_144)).toBe(512 * 1024);
  });

  it('reads a format-2 file, and rewrites it as format 3 on its first update', async () => {
    const { format: _, ...fields } = at(4);
    await writeFile(path(9n), encode({ format: 2, ...fields }));
    const read = await readSidecar(path(9n));
    expect(read).toEqual({ sidecar: expect.objectContaining({ format: 3, version: 4 }), slots: undefined });
    const before = await stat(path(9n));
    const stored = await updateSidecar(dir, 9n, at(5), read);
    expect(stored.slots).toEqual({ slotBytes: 4096, sequence: 0 });
    expect((await stat(path(9n))).ino).not.toBe(before.ino);
    expect((await readFile(path(9n))).subarray(0, 4).toString()).toBe('SCAR');
    expect(await readSidecar(path(9n))).toEqual({ sidecar: expect.objectContaining({ format: 3, version: 5 }), slots: stored.slots });
  });

  it('names a format-1 sidecar as such, and any other format, apart from damage', async () => {
    const formatOne = { format: 1, vdisk: 5n, epoch: 1, version: 2, sizeBytes: 8192, extents: [{ offset: 0, length: 8192, crc32c: 1 }], last: { offset: 0, length: 8192, crc32c: 1 } };
    await writeFile(path(1n), encode(formatOne));
    const err = await readSidecar(path(1n)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SidecarFormatError);
    expect((err as Error).message).toMatch(/^its sidecar is format 1 \(one CRC32C per whole extent\), which this store no longer reads; .*nothing to migrate$/);
    await writeFile(path(4n), encode({ ...good, format: 4 }));
    await expect(readSidecar(path(4n))).rejects.toThrow('its sidecar has format 4; this store reads formats 2 and 3 only');
    // A file header of a later format.
    const later = encodeSidecarFile(good, 0, 4096);
    later.writeUInt32LE(4, 4);
    later.writeUInt32LE(crc32c(later.subarray(0, 12)), 12);
    expect(() => decodeSidecarFile(later)).toThrow(SidecarFormatError);
    await writeFile(path(5n), Buffer.from([0xa1, 0x61, 0x78]));
    await expect(readSidecar(path(5n))).rejects.toMatchObject({ code: 'INVALID' });
    await writeFile(path(6n), encode({ ...good, format: 2, crcs: new Uint8Array(4) }));
    await expect(readSidecar(path(6n))).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('crcs: holds 4 bytes') });
  });

  it('reads, after a crash at any point of any update, the last completed record or the one being written', () => {
    // Each step is an update to a sidecar of `slices` slices, and whether a crash cuts
    // it short after `cut` bytes of its record (an update in place) or before its
    // rename (a replacement). After a crash the file is read again and updates go on
    // from what it holds, as a store reopened would.
    const step = fc.record({ slices: fc.integer({ min: 1, max: 3000 }), crash: fc.boolean(), cut: fc.double({ min: 0, max: 1, noNaN: true }) });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), (steps) => {
        let file = encodeSidecarFile(at(1, 1), 0, 4096);
        let stored: StoredSidecar = decodeSidecarFile(file);
        let slices = 1;
        for (const [i, s] of steps.entries()) {
          const version = i + 2;
          slices = Math.max(slices, s.slices);
          const plan = planUpdate(at(version, slices), stored);
          let completed = !s.crash;
          if (plan.inPlace) {
            const length = s.crash ? Math.floor(s.cut * plan.record.length) : plan.record.length;
            plan.record.copy(file, plan.offset, 0, length);
            // A cut-short write whose missing tail the slot already held is whole.
            completed = file.subarray(plan.offset, plan.offset + plan.record.length).equals(plan.record);
          } else if (completed) {
            file = Buffer.from(plan.file);
          }
          const read = decodeSidecarFile(file);
          expect(read.sidecar.version).toBe(completed ? version : stored.sidecar.version);
          expect(read.sidecar.sizeBytes).toBe(completed ? slices * 4096 : stored.sidecar.sizeBytes);
          if (!completed) slices = stored.sidecar.sizeBytes / 4096;
          stored = read;
        }
      }),
      { numRuns: 200 },
    );
  });
});
