// The pure part of redirect-on-write: which blocks are shared, the generation stamp of
// a new home, and what a snapshot copies.
import fc from 'fast-check';
import { isShared, planRowCopy, rowCount, stamped } from '../src/snapshot';

describe('redirect decision', () => {
  it('shares a block of an older generation, or of another vDisk\'s extent group; never one written since the last snapshot', () => {
    const at = (gen?: number) => ({ egroup: 5n, offset: 0, length: 4096, ...(gen === undefined ? {} : { gen }) });
    expect(isShared(at(), 0, true)).toBe(false);
    expect(isShared(at(), 1, true)).toBe(true);
    expect(isShared(at(1), 1, true)).toBe(false);
    expect(isShared(at(1), 2, true)).toBe(true);
    expect(isShared(at(3), 3, false)).toBe(true);
  });

  it('a home stamped now is never shared until the next snapshot, and always after it (property)', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.option(fc.nat(1000), { nil: undefined }), (generation, old) => {
        const home = stamped({ egroup: 1n, offset: 0, length: 1, ...(old === undefined ? {} : { gen: old }) }, generation);
        expect(isShared(home, generation, true)).toBe(false);
        expect(isShared(home, generation + 1, true)).toBe(true);
        // Generation 0 adds no field: rows written before snapshots existed stay byte for byte the same.
        expect('gen' in home).toBe(generation > 0);
      }),
    );
  });
});

describe('row copy planning', () => {
  it('copies the rows that hold blocks, as they are, and counts them', () => {
    const location = { egroup: 9n, offset: 0, length: 4096, gen: 2 };
    const plan = planRowCopy([
      { row: 0, value: { blocks: { '1': location } } },
      { row: 1, value: { blocks: {} } },
      { row: 2, value: { blocks: { '32': location, '33': { ...location, offset: 4096 } } } },
    ]);
    expect(plan.rows.map((r) => r.row)).toEqual([0, 2]);
    expect(plan.blocks).toBe(3);
    expect(plan.rows[0]!.value.blocks['1']).toEqual(location);
  });

  it('counts the rows of a vDisk, the last one partial', () => {
    expect(rowCount(16 * 4096, 4096, 16)).toBe(1);
    expect(rowCount(17 * 4096, 4096, 16)).toBe(2);
    expect(rowCount(1000, 4096, 16)).toBe(1);
  });
});
