// The storage engine of one disk, on real temporary directories (no NATS): versioned
// writes with idempotent retries, conflicts and epoch fencing, capacity (NO_SPACE),
// CRC32C verified on every read (a byte flipped in the .eg file gives CHECKSUM),
// recovery after reopening (temp files, orphans, torn tails, damaged sidecars), and
// per-egroup serialisation with parallelism across egroups.
import { mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { DiskStore, type DiskStoreOptions, type EgroupWrite } from '../src/disk-store';

const DISK = 77n;
const VDISK = 5n;
const KiB = 1024;

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-estore-unit-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function openStore(options: Partial<DiskStoreOptions> = {}): Promise<DiskStore> {
  return DiskStore.open({ diskId: DISK, path: root, capacityBytes: 16 * 1024 * KiB, ...options });
}

/** Bytes that differ with `seed`, so a test can tell one write's data from another's. */
function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7 + 1) & 0xff;
  return out;
}

function write(egroup: bigint, version: number, offset: number, data: Uint8Array, epoch = 1, vdisk = VDISK): EgroupWrite {
  return { egroup, vdisk, epoch, version, offset, data };
}

const egroupsDir = (): string => join(root, 'egroups');

describe('writes and versions', () => {
  it('creates a replica at version 1, advances one version per write, and reads each extent back', async () => {
    const store = await openStore();
    const a = pattern(4 * KiB, 1);
    const b = pattern(8 * KiB, 2);
    expect(await store.write(write(10n, 1, 0, a))).toEqual({ version: 1, crc32c: crc32c(a) });
    expect(await store.write(write(10n, 2, 4 * KiB, b))).toEqual({ version: 2, crc32c: crc32c(b) });
    expect(Buffer.from(await store.read({ egroup: 10n, offset: 0, length: a.length }))).toEqual(Buffer.from(a));
    expect(Buffer.from(await store.read({ egroup: 10n, offset: 4 * KiB, length: b.length }))).toEqual(Buffer.from(b));
    expect(await store.stat(10n)).toEqual({ version: 2, sizeBytes: 12 * KiB });
    expect(store.usedBytes).toBe(12 * KiB);
    expect(await readdir(egroupsDir())).toEqual(['10.eg', '10.meta']);
  });

  it('answers a retry of the version it has, with identical data, without writing again', async () => {
    const store = await openStore();
    const data = pattern(4 * KiB, 3);
    const first = await store.write(write(11n, 1, 0, data));
    const metaBefore = await stat(join(egroupsDir(), '11.meta'));
    expect(await store.write(write(11n, 1, 0, data))).toEqual(first);
    expect((await stat(join(egroupsDir(), '11.meta'))).mtimeMs).toBe(metaBefore.mtimeMs);
    expect(await store.stat(11n)).toEqual({ version: 1, sizeBytes: 4 * KiB });
  });

  it('refuses any other version with CONFLICT stating both versions', async () => {
    const store = await openStore();
    const data = pattern(4 * KiB, 4);
    await expect(store.write(write(12n, 2, 0, data))).rejects.toMatchObject({
      code: 'CONFLICT',
      message: 'disk 77: egroup 12 is at version 0 (no replica here); a write for version 2 needs it at version 1',
    });
    await store.write(write(12n, 1, 0, data));
    await store.write(write(12n, 2, 4 * KiB, pattern(4 * KiB, 5)));
    // Skipping ahead, going back, and a "retry" whose data differs from the write that made the version.
    await expect(store.write(write(12n, 4, 8 * KiB, data))).rejects.toMatchObject({
      code: 'CONFLICT',
      message: 'disk 77: egroup 12 is at version 2; a write for version 4 needs it at version 3',
    });
    await expect(store.write(write(12n, 1, 0, data))).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('is at version 2; a write for version 1') });
    await expect(store.write(write(12n, 2, 4 * KiB, pattern(4 * KiB, 6)))).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining('is at version 2; a write for version 2 with other data than the write that made it'),
    });
    // The earlier extent is not the last write, so it is no retry of version 2 either.
    await expect(store.write(write(12n, 2, 0, data))).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await store.stat(12n)).toEqual({ version: 2, sizeBytes: 8 * KiB });
  });

  it('refuses a write from another vDisk than the one that created the extent group', async () => {
    const store = await openStore();
    await store.write(write(13n, 1, 0, pattern(KiB, 1)));
    await expect(store.write(write(13n, 2, KiB, pattern(KiB, 2), 1, 6n))).rejects.toMatchObject({
      code: 'CONFLICT',
      message: 'disk 77: egroup 13 belongs to vdisk 5; vdisk 6 may not write it',
    });
  });

  it('rewrites a whole extent in place, but refuses a write over part of one, an empty write, and one past the largest extent group', async () => {
    const store = await openStore({ egroupSizeMaxBytes: 64 * KiB });
    await store.write(write(14n, 1, 0, pattern(8 * KiB, 1)));
    const again = pattern(8 * KiB, 9);
    expect(await store.write(write(14n, 2, 0, again))).toEqual({ version: 2, crc32c: crc32c(again) });
    expect(Buffer.from(await store.read({ egroup: 14n, offset: 0, length: 8 * KiB }))).toEqual(Buffer.from(again));
    await expect(store.write(write(14n, 3, 4 * KiB, pattern(8 * KiB, 2)))).rejects.toMatchObject({
      code: 'INVALID',
      message: expect.stringContaining('overlaps part of the extent at offset 0 (8192 bytes)'),
    });
    await expect(store.write(write(14n, 3, 8 * KiB, new Uint8Array(0)))).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('at least one byte') });
    await expect(store.write(write(14n, 3, 60 * KiB, pattern(8 * KiB, 3)))).rejects.toMatchObject({
      code: 'INVALID',
      message: expect.stringContaining('ends beyond the largest extent group (65536 bytes)'),
    });
    expect(await store.stat(14n)).toEqual({ version: 2, sizeBytes: 8 * KiB });
  });

  it('limits the extents of one extent group', async () => {
    const store = await openStore({ extentsPerEgroupMax: 2 });
    await store.write(write(15n, 1, 0, pattern(512, 1)));
    await store.write(write(15n, 2, 512, pattern(512, 2)));
    await expect(store.write(write(15n, 3, 1024, pattern(512, 3)))).rejects.toMatchObject({ code: 'INVALID', message: expect.stringContaining('already holds 2 extents') });
    // Rewriting an existing extent adds none.
    await store.write(write(15n, 3, 512, pattern(512, 4)));
  });
});

describe('fencing by epoch', () => {
  it('refuses a write with an epoch lower than the highest seen, also after a retry or a refused write raised it', async () => {
    const store = await openStore();
    const data = pattern(KiB, 1);
    await store.write(write(20n, 1, 0, data, 3));
    await expect(store.write(write(20n, 2, KiB, pattern(KiB, 2), 2))).rejects.toMatchObject({
      code: 'FENCED',
      message: 'disk 77: egroup 20: epoch 2 of vdisk 5 is superseded; epoch 3 has written here',
    });
    // A retry by the next owner (epoch 4) succeeds and fences epoch 3.
    await store.write(write(20n, 1, 0, data, 4));
    await expect(store.write(write(20n, 2, KiB, pattern(KiB, 2), 3))).rejects.toMatchObject({ code: 'FENCED' });
    // A refused write from epoch 5 still shows that epoch 4 is deposed.
    await expect(store.write(write(20n, 7, KiB, pattern(KiB, 2), 5))).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(store.write(write(20n, 2, KiB, pattern(KiB, 2), 4))).rejects.toMatchObject({ code: 'FENCED', message: expect.stringContaining('epoch 5 has written here') });
    await store.write(write(20n, 2, KiB, pattern(KiB, 2), 5));
    // The epoch survives a restart.
    const reopened = await openStore();
    await expect(reopened.write(write(20n, 3, 2 * KiB, pattern(KiB, 3), 4))).rejects.toMatchObject({ code: 'FENCED' });
  });
});

describe('capacity', () => {
  it('refuses with NO_SPACE a write that would take the disk beyond its capacity, counting growth only', async () => {
    const store = await openStore({ capacityBytes: 16 * KiB });
    await store.write(write(30n, 1, 0, pattern(8 * KiB, 1)));
    await store.write(write(31n, 1, 0, pattern(8 * KiB, 2)));
    await expect(store.write(write(32n, 1, 0, pattern(KiB, 3)))).rejects.toMatchObject({
      code: 'NO_SPACE',
      message: 'disk 77: egroup 32: 1024 more bytes would exceed the capacity (16384 of 16384 bytes in use or promised)',
    });
    // A rewrite in place does not grow the disk's use.
    await store.write(write(30n, 2, 0, pattern(8 * KiB, 4)));
    expect(store.usedBytes).toBe(16 * KiB);
    // Deleting frees the space; a raised capacity makes room too.
    expect(await store.delete(31n)).toEqual({ deleted: true });
    expect(store.usedBytes).toBe(8 * KiB);
    await store.write(write(32n, 1, 0, pattern(8 * KiB, 3)));
    store.setCapacityBytes(32 * KiB);
    await store.write(write(33n, 1, 0, pattern(8 * KiB, 5)));
    expect(store.usedBytes).toBe(24 * KiB);
    await expect(store.read({ egroup: 31n, offset: 0, length: 8 * KiB })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('never lets parallel writes to different extent groups overshoot the capacity together', async () => {
    const store = await openStore({ capacityBytes: 40 * KiB });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store.write(write(BigInt(100 + i), 1, 0, pattern(8 * KiB, i)))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'NO_SPACE' });
    expect(store.usedBytes).toBe(40 * KiB);
  });
});

describe('reads and checksums', () => {
  it('gives NOT_FOUND for an unknown extent group and INVALID for a range that is not one written extent', async () => {
    const store = await openStore();
    await expect(store.read({ egroup: 40n, offset: 0, length: KiB })).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'disk 77: egroup 40 has no replica here' });
    await expect(store.stat(40n)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await store.write(write(40n, 1, 0, pattern(8 * KiB, 1)));
    await expect(store.read({ egroup: 40n, offset: 0, length: 4 * KiB })).rejects.toMatchObject({
      code: 'INVALID',
      message: 'disk 77: egroup 40 has no extent of 4096 bytes at offset 0; a read names one extent exactly as it was written',
    });
    await expect(store.read({ egroup: 40n, offset: 4 * KiB, length: 4 * KiB })).rejects.toMatchObject({ code: 'INVALID' });
  });

  it('gives CHECKSUM naming the disk, extent group and offset after a byte of the data file flips', async () => {
    const store = await openStore();
    await store.write(write(41n, 1, 0, pattern(4 * KiB, 1)));
    await store.write(write(41n, 2, 4 * KiB, pattern(4 * KiB, 2)));
    const path = join(egroupsDir(), '41.eg');
    const bytes = await readFile(path);
    bytes[4 * KiB + 100]! ^= 0x01;
    await writeFile(path, bytes);
    await expect(store.read({ egroup: 41n, offset: 4 * KiB, length: 4 * KiB })).rejects.toMatchObject({
      code: 'CHECKSUM',
      message: expect.stringMatching(/^disk 77: egroup 41: the extent at offset 4096 \(4096 bytes\) failed its check: stored CRC32C 0x[0-9a-f]{8}, read 0x[0-9a-f]{8}$/),
    });
    // The other extent is intact and still reads.
    expect(Buffer.from(await store.read({ egroup: 41n, offset: 0, length: 4 * KiB }))).toEqual(Buffer.from(pattern(4 * KiB, 1)));
    // A data file cut short, or gone, fails the same way.
    await truncate(path, 6 * KiB);
    await expect(store.read({ egroup: 41n, offset: 4 * KiB, length: 4 * KiB })).rejects.toMatchObject({ code: 'CHECKSUM', message: expect.stringContaining('ends after 2048 of its 4096 bytes') });
    await rm(path);
    await expect(store.read({ egroup: 41n, offset: 0, length: 4 * KiB })).rejects.toMatchObject({ code: 'CHECKSUM', message: expect.stringContaining('data file is missing') });
  });
});

describe('delete', () => {
  it('removes both files, frees the bytes, succeeds again for a replica already gone, and lets the extent group start over', async () => {
    const store = await openStore();
    await store.write(write(50n, 1, 0, pattern(KiB, 1), 2));
    await store.write(write(50n, 2, KiB, pattern(KiB, 2), 2));
    expect(await store.delete(50n)).toEqual({ deleted: true });
    expect(await readdir(egroupsDir())).toEqual([]);
    expect(store.usedBytes).toBe(0);
    expect(await store.delete(50n)).toEqual({ deleted: false });
    await expect(store.stat(50n)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await store.write(write(50n, 1, 0, pattern(KiB, 3), 1))).toMatchObject({ version: 1 });
  });
});

describe('recovery', () => {
  it('finds every replica again after reopening: versions, extents, used bytes', async () => {
    const first = await openStore();
    for (let g = 0; g < 5; g++) {
      for (let v = 1; v <= 3; v++) await first.write(write(BigInt(60 + g), v, (v - 1) * 2 * KiB, pattern(2 * KiB, g * 10 + v)));
    }
    await first.close();
    const store = await openStore();
    expect(store.recovery).toMatchObject({ egroups: 5, usedBytes: 5 * 6 * KiB, removedTempFiles: [], removedOrphans: [], truncated: [], quarantined: [] });
    expect(store.usedBytes).toBe(30 * KiB);
    for (let g = 0; g < 5; g++) {
      expect(await store.stat(BigInt(60 + g))).toEqual({ version: 3, sizeBytes: 6 * KiB });
      expect(Buffer.from(await store.read({ egroup: BigInt(60 + g), offset: 2 * KiB, length: 2 * KiB }))).toEqual(Buffer.from(pattern(2 * KiB, g * 10 + 2)));
    }
    await store.write(write(60n, 4, 6 * KiB, pattern(KiB, 99)));
  });

  it('removes leftover temp files and orphan data files, cuts unacknowledged tails, and leaves unknown files alone', async () => {
    const first = await openStore();
    await first.write(write(70n, 1, 0, pattern(4 * KiB, 1)));
    await first.close();
    const dir = egroupsDir();
    // A sidecar write cut short, a first write never acknowledged, bytes past the end.
    await writeFile(join(dir, '70.meta.tmp'), 'half a sidecar');
    await writeFile(join(dir, '71.eg'), pattern(KiB, 2));
    await writeFile(join(dir, '70.eg'), Buffer.concat([await readFile(join(dir, '70.eg')), Buffer.from(pattern(KiB, 3))]));
    await writeFile(join(dir, 'README'), 'an operator note');

    const store = await openStore();
    expect(store.recovery).toMatchObject({ egroups: 1, usedBytes: 4 * KiB, removedTempFiles: ['70.meta.tmp'], removedOrphans: ['71.eg'], truncated: ['70.eg'], quarantined: [] });
    expect((await readdir(dir)).sort()).toEqual(['70.eg', '70.meta', 'README']);
    expect((await stat(join(dir, '70.eg'))).size).toBe(4 * KiB);
    expect(Buffer.from(await store.read({ egroup: 70n, offset: 0, length: 4 * KiB }))).toEqual(Buffer.from(pattern(4 * KiB, 1)));
    await expect(store.stat(71n)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('moves a replica with a damaged sidecar or a missing data file to quarantine, and counts its bytes as used', async () => {
    const first = await openStore();
    await first.write(write(80n, 1, 0, pattern(4 * KiB, 1)));
    await first.write(write(81n, 1, 0, pattern(4 * KiB, 2)));
    await first.write(write(82n, 1, 0, pattern(4 * KiB, 3)));
    await first.close();
    await writeFile(join(egroupsDir(), '80.meta'), Buffer.from([0xa1, 0x61, 0x78]));
    await rm(join(egroupsDir(), '81.eg'));

    const store = await openStore();
    expect(store.recovery.quarantined).toEqual(
      expect.arrayContaining([expect.stringMatching(/^80: its sidecar is unreadable: /), '81: its data file is missing']),
    );
    expect(store.recovery.egroups).toBe(1);
    expect((await readdir(egroupsDir())).sort()).toEqual(['82.eg', '82.meta']);
    const quarantined = (await readdir(join(root, 'quarantine'))).sort();
    expect(quarantined.map((n) => n.replace(/\.\d+$/, ''))).toEqual(['80.eg', '80.meta', '81.meta']);
    // 4 KiB of data for 82, plus everything in quarantine (80's data and both sidecars).
    let quarantinedBytes = 0;
    for (const name of quarantined) quarantinedBytes += (await stat(join(root, 'quarantine', name))).size;
    expect(store.usedBytes).toBe(4 * KiB + quarantinedBytes);
    await expect(store.stat(80n)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('concurrency and limits', () => {
  it('serialises writes to one extent group in arrival order while other extent groups proceed', async () => {
    const store = await openStore({ opsInFlightMax: 4 });
    const egroups = Array.from({ length: 16 }, (_, i) => BigInt(200 + i));
    // Every version of every extent group is sent at once: only per-group ordering makes them all apply.
    const replies = await Promise.all(egroups.flatMap((g) => [1, 2, 3, 4].map((v) => store.write(write(g, v, (v - 1) * KiB, pattern(KiB, Number(g) + v))))));
    expect(replies.map((r) => r.version)).toEqual(egroups.flatMap(() => [1, 2, 3, 4]));
    for (const g of egroups) {
      expect(await store.stat(g)).toEqual({ version: 4, sizeBytes: 4 * KiB });
      expect(Buffer.from(await store.read({ egroup: g, offset: 3 * KiB, length: KiB }))).toEqual(Buffer.from(pattern(KiB, Number(g) + 4)));
    }
  });

  it('answers QUEUE_FULL beyond the pending limit', async () => {
    const store = await openStore({ opsPendingMax: 3 });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.write(write(BigInt(300 + i), 1, 0, pattern(KiB, i)))));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused).toHaveLength(5);
    for (const r of refused) expect(r.reason).toMatchObject({ code: 'QUEUE_FULL' });
  });

  it('finishes operations in progress on close and refuses new ones', async () => {
    const store = await openStore();
    const inProgress = store.write(write(400n, 1, 0, pattern(KiB, 1)));
    const closed = store.close();
    await expect(store.read({ egroup: 400n, offset: 0, length: KiB })).rejects.toMatchObject({ code: 'UNAVAILABLE', message: 'disk 77: is closing' });
    await expect(inProgress).resolves.toMatchObject({ version: 1 });
    await closed;
  });
});
