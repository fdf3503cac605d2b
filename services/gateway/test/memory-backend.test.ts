// Proves the in-memory backend behaves as a disk: unwritten bytes read as zeros,
// writes and zeroes land exactly where asked across 64 KiB pages (checked against a
// flat reference buffer under a seeded random workload), whole zeroed pages are
// freed, and out-of-range requests are INVALID.
import { ErrorCode, isStrataError } from '@strata/errors';
import { MEMORY_PAGE_BYTES, MemoryCatalog, MemoryDevice } from '../src/memory-backend';
import { seededRandom } from '../../../test/harness/random';


describe('memory device', () => {
  test('unwritten bytes read as zeros and allocate nothing', async () => {
    const d = new MemoryDevice({ name: 'a', sizeBytes: 1 << 20 });
    expect((await d.read(1000, 5000)).every((b) => b === 0)).toBe(true);
    expect(d.allocatedBytes()).toBe(0);
  });

  test('a write across a page boundary reads back, neighbours stay zero', async () => {
    const d = new MemoryDevice({ name: 'a', sizeBytes: 1 << 20 });
    await d.write(MEMORY_PAGE_BYTES - 3, Buffer.from('abcdef'), false);
    expect(Buffer.from(await d.read(MEMORY_PAGE_BYTES - 4, 8)).toString('latin1')).toBe('\0abcdef\0');
    expect(d.allocatedBytes()).toBe(2 * MEMORY_PAGE_BYTES);
  });

  test('zeroing whole pages frees them; a partial page is cleared in place', async () => {
    const d = new MemoryDevice({ name: 'a', sizeBytes: 4 * MEMORY_PAGE_BYTES });
    await d.write(0, Buffer.alloc(4 * MEMORY_PAGE_BYTES, 7), false);
    await d.zero(10, 2 * MEMORY_PAGE_BYTES);
    expect(d.allocatedBytes()).toBe(3 * MEMORY_PAGE_BYTES);
    const bytes = await d.read(0, 4 * MEMORY_PAGE_BYTES);
    expect(bytes.subarray(0, 10).every((b) => b === 7)).toBe(true);
    expect(bytes.subarray(10, 10 + 2 * MEMORY_PAGE_BYTES).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(10 + 2 * MEMORY_PAGE_BYTES).every((b) => b === 7)).toBe(true);
  });

  test.each([
    ['past the end', 1 << 20, 1],
    ['ending past the end', (1 << 20) - 1, 2],
    ['at a negative offset', -1, 1],
    ['with a fractional offset', 0.5, 1],
  ])('a request %s is INVALID', async (_what, offset, length) => {
    const d = new MemoryDevice({ name: 'a', sizeBytes: 1 << 20 });
    for (const attempt of [() => d.read(offset, length), () => d.write(offset, Buffer.alloc(length), false), () => d.zero(offset, length)]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(isStrataError(err, ErrorCode.INVALID)).toBe(true);
    }
  });

  test('a random mix of writes, zeroes and reads matches a flat buffer', async () => {
    const seed = Number(process.env.SEED ?? Date.now() % 1_000_000);
    const random = seededRandom(seed);
    const sizeBytes = 8 * MEMORY_PAGE_BYTES + 123;
    const d = new MemoryDevice({ name: 'a', sizeBytes });
    const reference = Buffer.alloc(sizeBytes);
    for (let i = 0; i < 400; i++) {
      const offset = Math.floor(random() * sizeBytes);
      const length = Math.min(sizeBytes - offset, 1 + Math.floor(random() * 3 * MEMORY_PAGE_BYTES));
      const kind = random();
      if (kind < 0.45) {
        const data = Buffer.alloc(length, Math.floor(random() * 255) + 1);
        await d.write(offset, data, false);
        data.copy(reference, offset);
      } else if (kind < 0.65) {
        await d.zero(offset, length);
        reference.fill(0, offset, offset + length);
      } else {
        const got = Buffer.from(await d.read(offset, length));
        if (!got.equals(reference.subarray(offset, offset + length))) throw new Error(`mismatch at step ${i} (replay with SEED=${seed})`);
      }
    }
    expect(Buffer.from(await d.read(0, sizeBytes)).equals(reference)).toBe(true);
  });
});

describe('memory catalog', () => {
  test('lists and opens its exports; an unknown name is undefined', async () => {
    const c = new MemoryCatalog([
      { name: 'alpha', sizeBytes: 1024 },
      { name: 'beta', sizeBytes: 512, multiConn: false, description: 'second' },
    ]);
    expect(await c.list()).toEqual([
      { name: 'alpha', sizeBytes: 1024 },
      { name: 'beta', sizeBytes: 512, description: 'second' },
    ]);
    expect((await c.open('alpha'))?.multiConn).toBe(true);
    expect((await c.open('beta'))?.multiConn).toBe(false);
    expect(await c.open('gamma')).toBeUndefined();
    expect(() => c.add({ name: 'alpha', sizeBytes: 1 })).toThrow(/already exists/);
  });
});
