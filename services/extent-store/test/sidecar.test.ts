// The format-2 sidecar: it round-trips through CBOR with its packed CRC table, refuses
// a sidecar that contradicts itself, and tells a format-1 sidecar (quarantined at open)
// from a damaged one.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode, encode } from '@strata/codec';
import { SidecarFormatError, readSidecar, sidecarSchema, writeSidecar, type Sidecar } from '../src/sidecar';
import { grownCrcs } from '../src/slices';

const good: Sidecar = {
  format: 2,
  vdisk: 2n ** 63n,
  epoch: 3,
  version: 7,
  // Three slices of 4 KiB, the last one partly past the end.
  sizeBytes: 10_000,
  sliceBytes: 4096,
  crcs: grownCrcs(new Uint8Array(0), 3, 4096),
  digest: new Uint8Array(32).fill(5),
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-sidecar-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('sidecar', () => {
  it('round-trips through CBOR with a 64-bit vDisk id and the CRCs as one byte string', async () => {
    const encoded = encode(good);
    expect(decode(encoded, sidecarSchema)).toEqual({ ...good, crcs: expect.any(Uint8Array), digest: expect.any(Uint8Array) });
    const back = decode(encoded, sidecarSchema);
    expect(Buffer.from(back.crcs).equals(Buffer.from(good.crcs))).toBe(true);
    // 12 bytes of CRCs: a byte string, not an array of numbers.
    expect(encoded.length).toBeLessThan(150);
    await writeSidecar(dir, 9n, good);
    const read = await readSidecar(join(dir, '9.meta'));
    expect(read.version).toBe(7);
    expect(Buffer.from(read.crcs).equals(Buffer.from(good.crcs))).toBe(true);
  });

  it('refuses a sidecar that contradicts itself', () => {
    expect(() => decode(encode({ ...good, sizeBytes: 12_289 }), sidecarSchema)).toThrow(/crcs: holds 12 bytes but 4 slices of 4096 bytes need 16/);
    expect(() => decode(encode({ ...good, sliceBytes: 3000 }), sidecarSchema)).toThrow(/sliceBytes: must be a whole number of bytes from 4096/);
    expect(() => decode(encode({ ...good, sliceBytes: 12_288 }), sidecarSchema)).toThrow(/sliceBytes: must be a power of two/);
    expect(() => decode(encode({ ...good, digest: new Uint8Array(31) }), sidecarSchema)).toThrow(/digest: must be 32 bytes/);
    expect(() => decode(encode({ ...good, version: 0 }), sidecarSchema)).toThrow(/version: must be at least 1/);
    expect(() => decode(encode({ ...good, extra: 1 }), sidecarSchema)).toThrow(/unknown field extra/);
  });

  it('names a format-1 sidecar as such, and any other format, apart from damage', async () => {
    const formatOne = { format: 1, vdisk: 5n, epoch: 1, version: 2, sizeBytes: 8192, extents: [{ offset: 0, length: 8192, crc32c: 1 }], last: { offset: 0, length: 8192, crc32c: 1 } };
    await writeFile(join(dir, '1.meta'), encode(formatOne));
    const err = await readSidecar(join(dir, '1.meta')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SidecarFormatError);
    expect((err as Error).message).toMatch(/^its sidecar is format 1 \(one CRC32C per whole extent\), which this store no longer reads; .*nothing to migrate$/);
    await writeFile(join(dir, '3.meta'), encode({ ...good, format: 3 }));
    await expect(readSidecar(join(dir, '3.meta'))).rejects.toThrow('its sidecar has format 3; this store reads format 2 only');
    await writeFile(join(dir, '4.meta'), Buffer.from([0xa1, 0x61, 0x78]));
    await expect(readSidecar(join(dir, '4.meta'))).rejects.toMatchObject({ code: 'INVALID' });
    await writeFile(join(dir, '5.meta'), encode({ ...good, crcs: new Uint8Array(4) }));
    await expect(readSidecar(join(dir, '5.meta'))).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('crcs: holds 4 bytes') });
  });
});
