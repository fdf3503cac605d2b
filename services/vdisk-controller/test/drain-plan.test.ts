// The drain plan's properties over random histories of writes and zeroings: every
// byte an entry at or below `upTo` wrote is in the plan with the newest such entry's
// content, unless a later entry (above `upTo`) rewrote it; nothing above `upTo` is.
import fc from 'fast-check';
import { BlockIndex } from '../src/block-index';
import { plan } from '../src/drain-plan';

const BLOCK = 64;
const BLOCKS = 6;
const SIZE = BLOCK * BLOCKS;

/** One oplog entry: a write of bytes (each byte its sequence) or a zeroing. */
const entryArb = fc.record({ offset: fc.integer({ min: 0, max: SIZE - 1 }), length: fc.integer({ min: 1, max: 3 * BLOCK }), zero: fc.boolean() });

describe('drain plan', () => {
  it('covers every entry up to upTo, newest first, and nothing newer', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { minLength: 1, maxLength: 25 }), fc.nat(), (entries, cut) => {
        const index = new BlockIndex(BLOCK);
        /** For each byte, the sequence of the newest entry that wrote it, and whether it zeroed. */
        const newest: Array<{ seq: number; zero: boolean } | undefined> = new Array(SIZE).fill(undefined);
        entries.forEach((e, i) => {
          const seq = i + 1;
          const length = Math.min(e.length, SIZE - e.offset);
          index.insert(e.offset, length, seq, e.zero ? undefined : new Uint8Array(length).fill(seq));
          for (let b = e.offset; b < e.offset + length; b++) newest[b] = { seq, zero: e.zero };
        });
        const upTo = cut % (entries.length + 1);
        const p = plan(index, () => undefined, upTo, () => BLOCK);
        expect(p.upTo).toBe(upTo);

        // What the plan says of each byte.
        const planned: Array<{ seq: number; zero: boolean; value: number | undefined } | undefined> = new Array(SIZE).fill(undefined);
        for (const b of p.blocks) {
          expect(b.start).toBe(b.block * BLOCK);
          let pos = b.start;
          for (const s of b.segments) {
            expect(s.start).toBeGreaterThanOrEqual(pos);
            expect(s.end).toBeLessThanOrEqual(b.start + b.length);
            expect(s.seq).toBeLessThanOrEqual(upTo);
            pos = s.end;
            for (let x = s.start; x < s.end; x++) planned[x] = { seq: s.seq, zero: s.data === undefined, value: s.data?.[x - s.start] };
          }
          expect(b.zerosOnly).toBe(b.segments.every((s) => s.data === undefined));
          expect(b.whole).toBe(b.segments.reduce((n, s) => n + s.end - s.start, 0) === b.length);
        }
        for (let x = 0; x < SIZE; x++) {
          const n = newest[x];
          if (n === undefined || n.seq > upTo) {
            // Never written, or rewritten later: the later write is drained by a later round.
            expect(planned[x]).toBeUndefined();
          } else {
            expect(planned[x]).toEqual({ seq: n.seq, zero: n.zero, value: n.zero ? undefined : n.seq });
          }
        }
        // Exactly the blocks with something to drain.
        const blocks = new Set<number>();
        for (let x = 0; x < SIZE; x++) if (planned[x] !== undefined) blocks.add(Math.floor(x / BLOCK));
        expect(p.blocks.map((b) => b.block)).toEqual([...blocks].sort((a, b) => a - b));
      }),
      { numRuns: 300 },
    );
  });

  it('passes each block its mapped location', () => {
    const index = new BlockIndex(BLOCK);
    index.insert(0, 2 * BLOCK, 1, new Uint8Array(2 * BLOCK).fill(1));
    const at = { egroup: 5n, offset: 0, length: BLOCK };
    const p = plan(index, (block) => (block === 1 ? at : undefined), 1, () => BLOCK);
    expect(p.blocks.map((b) => b.mapped)).toEqual([undefined, at]);
  });
});
