// Proves requests are cut at chunk-size multiples with no gap or overlap, and that
// the bounded fan-out never exceeds its limit and stops starting pieces after a
// failure, waiting for the running ones before it reports the failure.
import { forEachLimited, splitRange } from '../src/pieces';

const KiB = 1024;

describe('splitRange', () => {
  test('cuts at multiples of the chunk size', () => {
    expect(splitRange(100 * KiB, 600 * KiB, 256 * KiB)).toEqual([
      { offset: 100 * KiB, lengthBytes: 156 * KiB, at: 0 },
      { offset: 256 * KiB, lengthBytes: 256 * KiB, at: 156 * KiB },
      { offset: 512 * KiB, lengthBytes: 188 * KiB, at: 412 * KiB },
    ]);
  });

  test('an aligned request of exactly one chunk is one piece; a tiny one too', () => {
    expect(splitRange(256 * KiB, 256 * KiB, 256 * KiB)).toEqual([{ offset: 256 * KiB, lengthBytes: 256 * KiB, at: 0 }]);
    expect(splitRange(7, 1, 256 * KiB)).toEqual([{ offset: 7, lengthBytes: 1, at: 0 }]);
    expect(splitRange(0, 0, 256 * KiB)).toEqual([]);
  });

  test('pieces cover the range exactly, each within one chunk', () => {
    for (const [offset, length, chunk] of [
      [1, 1_000_000, 4096],
      [4095, 8194, 4096],
      [2 ** 40 - 3, 70_000, 65536],
    ] as const) {
      const pieces = splitRange(offset, length, chunk);
      let next = offset;
      for (const p of pieces) {
        expect(p.offset).toBe(next);
        expect(p.at).toBe(next - offset);
        expect(p.lengthBytes).toBeGreaterThan(0);
        expect(Math.floor(p.offset / chunk)).toBe(Math.floor((p.offset + p.lengthBytes - 1) / chunk));
        next += p.lengthBytes;
      }
      expect(next).toBe(offset + length);
    }
  });
});

describe('forEachLimited', () => {
  test('never runs more than the limit at once, and runs everything', async () => {
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    await forEachLimited([...Array(20).keys()], 3, async (i) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, (i * 7) % 5));
      running--;
      done.push(i);
    });
    expect(peak).toBe(3);
    expect(done.sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
  });

  test('after a failure no new item starts, running ones finish, then it throws', async () => {
    const started: number[] = [];
    let finished = 0;
    const result = forEachLimited([...Array(10).keys()], 2, async (i) => {
      started.push(i);
      if (i === 1) throw new Error('piece 1 failed');
      await new Promise((r) => setTimeout(r, 20));
      finished++;
    });
    await expect(result).rejects.toThrow('piece 1 failed');
    expect(started).toEqual([0, 1]);
    expect(finished).toBe(1);
  });
});
