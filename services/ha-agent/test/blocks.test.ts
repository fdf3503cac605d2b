// The workload's disk layout: blocks that name their VM and counter and carry a
// digest, and the recovery rule (the counter on disk and the data blocks behind it
// verify after a crash at any point of a step).
import fc from 'fast-check';
import { BLOCK_BYTES, DATA_BLOCKS, checkData, countersToVerify, dataOffset, decodeBlock, encodeBlock, readCounter } from '../src/workload/blocks';

describe('blocks', () => {
  test('a block decodes to what was encoded; zeros read as empty', () => {
    const b = { kind: 'data' as const, vm: 'web', counter: 42 };
    expect(decodeBlock(encodeBlock(b))).toEqual(b);
    expect(decodeBlock(Buffer.alloc(BLOCK_BYTES))).toBe('empty');
    expect(readCounter('web', Buffer.alloc(BLOCK_BYTES))).toBe(0);
  });

  test('one flipped bit anywhere, a torn block, or another VM\'s block is caught', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: BLOCK_BYTES * 8 - 1 }), (bit) => {
        const bytes = encodeBlock({ kind: 'counter', vm: 'web', counter: 7 });
        bytes[bit >> 3]! ^= 1 << (bit & 7);
        return typeof readCounter('web', bytes) !== 'number';
      }),
    );
    const torn = Buffer.concat([encodeBlock({ kind: 'data', vm: 'web', counter: 8 }).subarray(0, 2048), encodeBlock({ kind: 'data', vm: 'web', counter: 72 }).subarray(2048)]);
    expect(checkData('web', 8, torn)).toBe('data block of counter 8: checksum mismatch');
    expect(readCounter('db', encodeBlock({ kind: 'counter', vm: 'web', counter: 3 }))).toEqual({ bad: 'counter block holds counter of vm web' });
  });

  test('property: after a crash between any two writes, the counter on disk and its blocks verify, and it is the last acknowledged or one more', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 }), (steps, writesOfNext) => {
        const disk = new Map<number, Buffer>();
        const step = (c: number, writes: number): void => {
          if (writes >= 1) disk.set(dataOffset(c), encodeBlock({ kind: 'data', vm: 'web', counter: c }));
          if (writes >= 2) disk.set(0, encodeBlock({ kind: 'counter', vm: 'web', counter: c }));
        };
        for (let c = 1; c <= steps; c++) step(c, 2);
        step(steps + 1, writesOfNext); // the crash: part of the next step is on disk
        const read = (offset: number): Buffer => disk.get(offset) ?? Buffer.alloc(BLOCK_BYTES);
        const counter = readCounter('web', read(0));
        if (typeof counter !== 'number' || counter < steps || counter > steps + 1) return false;
        return countersToVerify(counter).every((c) => checkData('web', c, read(dataOffset(c))) === undefined);
      }),
    );
  });

  test('it verifies the data blocks of the DATA_BLOCKS - 1 counters up to the one on disk', () => {
    expect(countersToVerify(0)).toEqual([]);
    expect(countersToVerify(3)).toEqual([1, 2, 3]);
    expect(countersToVerify(1000)).toHaveLength(DATA_BLOCKS - 1);
  });
});
