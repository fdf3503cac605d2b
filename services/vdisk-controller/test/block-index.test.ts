// The undrained-data index against a reference model: random writes, zeroes and
// drains, checked byte for byte against a plain array, with the seed printed on
// failure.
import { BlockIndex, overlay } from '../src/block-index';
import { seededRandom } from '../../../test/harness/random';


describe('block index', () => {
  it('splits a write across blocks and overlays the newest data', () => {
    const idx = new BlockIndex(8);
    idx.insert(4, 8, 1, new Uint8Array([1, 1, 1, 1, 1, 1, 1, 1]));
    idx.insert(6, 3, 2, undefined);
    const view = overlay(new Uint8Array(16).fill(9), 0, idx.query(0, 16));
    expect(Array.from(view)).toEqual([9, 9, 9, 9, 1, 1, 0, 0, 0, 1, 1, 1, 9, 9, 9, 9]);
    expect(idx.heldBytes).toBe(5);
    expect(idx.covers(4, 12)).toBe(true);
    expect(idx.covers(3, 12)).toBe(false);
    expect(idx.blocksUpTo(1)).toEqual([0, 1]);
  });

  it('drops drained segments but keeps newer ones', () => {
    const idx = new BlockIndex(8);
    idx.insert(0, 8, 1, new Uint8Array(8).fill(1));
    idx.insert(2, 2, 2, new Uint8Array(2).fill(2));
    idx.dropUpTo(0, 1);
    expect(idx.query(0, 8).map((s) => [s.start, s.end, s.seq])).toEqual([[2, 4, 2]]);
    expect(idx.heldBytes).toBe(2);
    idx.dropUpTo(0, 2);
    expect(idx.blockCount).toBe(0);
    expect(idx.heldBytes).toBe(0);
  });

  it('matches a reference model under random writes, zeroes and drains', () => {
    const seed = Number(process.env.SEED ?? Date.now() % 100000);
    const rand = seededRandom(seed);
    const size = 4096;
    const blockSize = 256;
    const idx = new BlockIndex(blockSize);
    const model = new Uint8Array(size);
    // The "extent store": what drains made durable.
    const durable = new Uint8Array(size);
    let seq = 0;
    try {
      for (let step = 0; step < 2000; step++) {
        const r = rand();
        const start = Math.floor(rand() * size);
        const length = 1 + Math.floor(rand() * Math.min(700, size - start));
        if (r < 0.6) {
          seq++;
          const data = new Uint8Array(length).fill(1 + (seq % 250));
          idx.insert(start, length, seq, data);
          model.set(data, start);
        } else if (r < 0.75) {
          seq++;
          idx.insert(start, length, seq, undefined);
          model.fill(0, start, start + length);
        } else if (r < 0.85) {
          // Drain everything up to the current sequence, block by block.
          for (const block of idx.blocksUpTo(seq)) {
            const a = block * blockSize;
            const b = a + blockSize;
            durable.set(overlay(durable.slice(a, b), a, idx.query(a, b)), a);
            idx.dropUpTo(block, seq);
          }
        }
        const view = overlay(durable.slice(start, start + length), start, idx.query(start, start + length));
        expect(Buffer.from(view).equals(Buffer.from(model.subarray(start, start + length)))).toBe(true);
      }
      const all = overlay(durable.slice(), 0, idx.query(0, size));
      expect(Buffer.from(all).equals(Buffer.from(model))).toBe(true);
    } catch (err) {
      throw new Error(`failed with SEED=${seed}: ${(err as Error).message}`);
    }
  });
});
