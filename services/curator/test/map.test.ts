// A map task's page is bounded in bytes as well as rows: the size a row is counted
// for must never be below its CBOR (random entries, fast-check), so a page of rows
// within MAP_PAGE_BYTES always fits in a NATS message.
import fc from 'fast-check';
import { encode } from '@strata/codec';
import type { MapRow } from '@strata/proto';
import { rowBytesAtMost } from '../src/map';

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const uint = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,62}$/);

const row: fc.Arbitrary<MapRow> = fc.record({
  egroup: u64,
  revision: uint,
  entry: fc.record(
    {
      vdisk: u64,
      replicas: fc.array(fc.record({ node: name, disk: u64 }), { minLength: 1, maxLength: 5 }),
      version: uint,
      sizeBytes: uint,
      tentative: fc.record({ version: uint, atMs: uint }),
      gen: uint,
      extents: fc.array(fc.record({ id: fc.tuple(u64, uint).map(([v, b]) => `${v}:${b}`), offset: uint, length: uint, refs: uint }), { maxLength: 64 }),
    },
    { requiredKeys: ['vdisk', 'replicas', 'version', 'sizeBytes', 'extents'] },
  ),
});

describe('rowBytesAtMost', () => {
  it('is never below the CBOR of the row', () => {
    fc.assert(
      fc.property(row, (r) => {
        expect(encode(r).length).toBeLessThanOrEqual(rowBytesAtMost(r));
      }),
    );
  });
});
